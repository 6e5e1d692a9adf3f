"""What every stage of ``features`` and the ``model`` package share, and nothing else.

Errors that end a command (each with the exit code a CI job acts on), atomic file output and the
progress callback type. No stage logic lives here; a module that needs one of these imports it from here.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "InputError",
    "ModelError",
    "NtaError",
    "ProgressFn",
    "atomic_folder",
    "atomic_path",
    "check_folder",
    "file_sha256",
    "machine_mb",
    "more_memory",
    "no_progress",
    "output_file",
    "output_lock",
    "own_strings",
    "path_text",
    "spilling_duckdb",
    "text_path",
]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, streamed (captures, data files and model weights alike)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --- errors: the message is one line that names the file and the problem; ``analyzer`` prints it to stderr
# without a traceback. Bad *packets* are never errors: they are counted by name.


class NtaError(Exception):
    """Base of every error nta reports to the user as one line."""

    exit_code: int = 1


class InputError(NtaError):
    """Bad input or usage: not a capture, unreadable, nothing to scan (exit 2)."""

    exit_code = 2


class ModelError(NtaError):
    """Model missing, corrupt, tampered with, or incompatible with the features (exit 3)."""

    exit_code = 3


# --- file names as text: a name is the bytes the OS gives (Python carries the undecodable ones as surrogates,
# PEP 383). Text outputs (JSON, CSV, Parquet strings, HTML, Zeek logs, the terminal) need valid UTF-8, so a name
# is written escaped but reversibly: unchanged when it is UTF-8 without a backslash (nearly always), else every
# byte that is not UTF-8 becomes ``\xNN`` and a backslash ``\\``; ``text_path`` undoes it.


def path_text(path: str | os.PathLike[str]) -> str:
    r"""``path`` as valid UTF-8 text, reversibly escaped (``cap\xff.pcap`` for the bytes ``cap<0xff>.pcap``)."""
    raw = os.fsencode(path)
    text = raw.decode("utf-8", "backslashreplace")  # a byte that is not UTF-8 becomes \xNN
    if "\\" not in text:
        return text  # valid UTF-8 without a backslash: the name itself (nearly always)
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def text_path(text: str) -> Path:
    """The path ``path_text`` wrote as ``text`` (names written before escaping existed come back unchanged)."""
    if "\\" not in text:
        return Path(text)
    raw = re.sub(
        rb"\\(\\|x[0-9a-fA-F]{2})",
        lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1)[1:], 16)]),
        text.encode("utf-8"),
    )
    return Path(os.fsdecode(raw))


def escape_surrogates(text: str) -> str:
    r"""Text that may hold a file name's undecodable bytes (surrogates) with them shown as ``\xNN``: printable."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that is no escaped byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


# --- atomic output: write to a temporary file beside the target, then rename, so no half-written file is seen.

# The process umask, read once at import (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def output_file(path: Path, *, force: bool = True, option: str = "-o") -> Path:
    """The file an output named ``path`` replaces; ``InputError`` (exit 2) if nta must not write there.

    Rules (README, "Reliability"): only regular files are ever replaced: a folder, a device (``/dev/null``), a
    named pipe or a socket is refused, ``--force`` or not. A symbolic link is followed: the file it points to
    is replaced (created if the link dangles) and the link stays; a link loop is refused. An existing file
    is replaced only with ``force``. ``-`` is refused: it names standard output on nta's command lines (``nta scan
    --out -``), and a file of that name in the working folder is never what was meant (a path to it, e.g.
    ``/case/-``, still names one).
    """
    if str(path) == "-":
        raise InputError(
            f"-: {option} - (standard output) is not possible here: the output is written to a file and renamed into "
            "place when complete; name a file"
        )
    path = Path(path)
    target = path
    if path.is_symlink():
        try:
            path.stat()
        except FileNotFoundError:
            pass  # dangling: the file it names is created
        except OSError as e:
            raise InputError(f"{path}: {option} is a symbolic link that cannot be followed ({e.strerror or e})") from e
        target = Path(os.path.realpath(path))
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as e:
        raise InputError(f"{path}: cannot check the output ({e.strerror or e})") from e
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a folder; {option} names the output file")
    if not stat.S_ISREG(mode):
        raise InputError(f"{path}: is {_kind(mode)}; nta writes its outputs only as regular files")
    if not force:
        raise InputError(f"{path}: exists; use --force to overwrite it")
    return target


ISO_UTC = "%Y-%m-%dT%H:%M:%S.%fZ"  # report.json's times: UTC, microseconds (strftime/strptime)


def make_parent(target: Path) -> None:
    """Create the folders ``target`` goes in, or fail with one line naming ``target`` and the problem (a file in
    the way, a read-only or virtual file system), not Python's errno text."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where one of the folders should be
        blocker = next((p for p in (target.parent, *target.parent.parents) if p.exists() and not p.is_dir()), None)
        raise InputError(
            f"{target}: cannot create the folder it goes in ({blocker or target.parent}: a file is in the way)"
        ) from None
    except OSError as e:
        raise InputError(
            f"{target}: cannot create the folder it goes in ({target.parent}: {e.strerror or e})"
        ) from None


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it onto ``target``, else remove it.

    The rename is atomic on POSIX (same filesystem), so readers see the old file or the whole new one.
    The file gets the mode a plain ``open(target, "w")`` would give it: some writers (safetensors) create
    their files 0600, and a model folder a colleague cannot read is no use to them. ``target`` follows
    ``output_file``'s rules: a symbolic link is followed (the link stays), a non-regular file is refused.
    """
    target = output_file(Path(target))
    make_parent(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with _write_errors(target):
            yield tmp
            os.chmod(tmp, 0o666 & ~_UMASK)
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# "(os error 28)" (polars, other Rust writers), "[errno 28]" (pyarrow): an OS error reported as another exception.
_OS_ERROR = re.compile(r"(?:os error|errno) (\d+)", re.IGNORECASE)


@contextlib.contextmanager
def _write_errors(target: Path) -> Iterator[None]:
    """Writing ``target`` failed for a reason of the system (a full disk, a quota, an I/O error): ``InputError``
    naming it (exit 2), whichever library wrote and however it reported the OS error; anything else passes."""
    try:
        yield
    except NtaError:
        raise
    except Exception as e:
        if isinstance(e, OSError) and e.errno is not None:
            problem = os.strerror(e.errno)  # pyarrow's strerror carries its own wording around it
        elif (m := _OS_ERROR.search(str(e))) is not None:
            problem = os.strerror(int(m.group(1)))
        elif isinstance(e, OSError):
            problem = " ".join(str(e).split())
        else:
            raise
        raise InputError(f"{target}: cannot write ({problem})") from e


# --- atomic output folder: several files that must change together (nta scan's three outputs).

_FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h; the flags are an int
_LOCKED_FLAGS = 0x10 | 0x20  # FS_IMMUTABLE_FL, FS_APPEND_FL (chattr +i, +a): such a file cannot be removed
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _locked(path: Path) -> bool:
    """True for an immutable or append-only file (chattr +i / +a); False where the flags cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        flags = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, bytes(8))
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(int.from_bytes(flags[:4], sys.byteorder) & _LOCKED_FLAGS)


def check_folder(target: Path, replaces: Collection[str], option: str = "--out") -> Path:
    """The folder ``atomic_folder(target, replaces)`` would replace (a symbolic link followed), after checking it
    can: ``InputError`` if ``target`` is not a folder or an entry named in ``replaces`` cannot be removed
    (immutable or append-only), so that the swap is refused before any work is done."""
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    if not target.exists():
        return target
    if not target.is_dir():
        raise InputError(f"{target}: {option} exists and is not a folder")
    for name in replaces:
        p = target / name
        if p.is_symlink() or p.exists():
            if _locked(p):
                raise InputError(f"{p}: immutable or append-only (chattr): it cannot be replaced; nothing was changed")
            if p.is_dir() and not p.is_symlink():
                raise InputError(f"{p}: is a folder; nta replaces only files there")
    return target


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where that is not available."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # a filesystem without it
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def atomic_folder(target: Path, replaces: Collection[str]) -> Iterator[Path]:
    """Yield a new empty folder beside ``target``; on success it becomes ``target`` in one step, else it is removed.

    Write the files named in ``replaces`` into it. If ``target`` exists, everything else in it is kept: files
    and symbolic links are hard-linked (re-created) into the new folder, subfolders and other entries are moved
    there just before the swap (and back if the swap fails); then the two folders are exchanged atomically
    (``renameat2``; two renames where the filesystem lacks it) and the old one is deleted. Readers see the
    old outputs or all the new ones, never a mix. A symbolic link ``target`` is followed (the link stays).
    ``check_folder``'s refusals apply (an immutable output: nothing changes).
    """
    target = check_folder(target, replaces)
    make_parent(target)
    new = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent))
    os.chmod(new, 0o777 & ~_UMASK)  # mkdtemp makes it 0700; a new output folder gets the usual mode
    moved: list[str] = []
    done = False
    try:
        with _write_errors(target):
            yield new
        if not target.exists():
            os.rename(new, target)  # fails if a folder with entries appeared there meanwhile
            done = True
            return
        check_folder(target, replaces)
        st = target.stat()
        os.chmod(new, stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):
            os.chown(new, st.st_uid, st.st_gid)
        with os.scandir(target) as it:
            others = sorted((e for e in it if e.name not in replaces), key=lambda e: e.name)
        for e in others:  # files: hard links (the old folder keeps its own names until it is deleted)
            if e.is_symlink():
                os.symlink(os.readlink(e.path), new / e.name)
            elif e.is_file(follow_symlinks=False):
                os.link(e.path, new / e.name, follow_symlinks=False)
        for e in others:  # the rest (subfolders, pipes...) cannot be linked: moved, and moved back on failure
            if not (e.is_symlink() or e.is_file(follow_symlinks=False)):
                os.rename(e.path, new / e.name)
                moved.append(e.name)
        if _exchange(new, target):
            old = new  # the old folder now sits at the temporary name
        else:
            old = new.with_suffix(".old")
            os.rename(target, old)
            try:
                os.rename(new, target)
            except BaseException:
                os.rename(old, target)
                raise
        done = True
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if not done:
            for name in moved:
                with contextlib.suppress(OSError):
                    os.rename(new / name, target / name)
            shutil.rmtree(new, ignore_errors=True)


# --- one writer per output folder: two scans with the same --out must not interleave their outputs.


@contextlib.contextmanager
def output_lock(target: Path, option: str = "--out") -> Iterator[None]:
    """Hold an exclusive lock on the output folder ``target`` (``flock`` on a sibling ``.<name>.lock``) or fail at
    once with ``InputError``, naming the process that holds it.

    Failing beats waiting: a second scan into the same folder is nearly always a mistake (two analysts, one case
    folder), waiting would hide it and could block a CI job for as long as the other scan runs, and without
    ``--force`` the second scan would be refused at the end anyway. The lock file is removed on release while
    still locked; a process that opened it just before then sees the name gone (or a new file) once it gets the
    lock and tries again, so two holders are impossible. After a SIGKILL the file stays, unlocked: harmless.
    """
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # two links to one folder share its lock
    make_parent(target)
    lock = target.parent / f".{target.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666 & ~_UMASK)
        except OSError as e:
            raise InputError(
                f"{target}: cannot write in {target.parent} (creating its lock {lock.name}: {e.strerror or e})"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise InputError(
                f"{target}: another nta ({who}) is writing to this output folder; nothing was changed "
                f"(run again when it has finished, or choose another {option})"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it as we opened it: take the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


# --- progress: stages report work done without knowing about terminals.

# progress(done, total): units are the stage's own (bytes read, rows encoded, ...); total may be 0 if unknown.
ProgressFn = Callable[[int, int], None]


def machine_mb() -> int:
    """The machine's memory in MiB (DuckDB's limits are raised up to a share of it when a query runs out)."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)


# --- DuckDB out of core: the end of a scan (analyzer.incident_sql) and Zeek conn logs (features.zeeklog.stream).

DUCKDB_MAX_SHARE = 0.5  # of the machine's memory: the most a query's DuckDB limit is raised to (more_memory)


def spilling_duckdb(temp: Path, limit_mb: int, threads: int) -> Any:
    """An in-memory DuckDB that spills to ``temp`` past ``limit_mb`` MiB of its own buffers (DuckDB is imported
    here, by the stages that use it)."""
    import duckdb

    return duckdb.connect(config={"memory_limit": f"{limit_mb}MB", "threads": threads, "temp_directory": str(temp)})


def more_memory(con: Any, limit_mb: int) -> int | None:
    """After a query of ``con`` ran out of DuckDB's memory: the limit doubled (returned), or None when that would pass
    ``DUCKDB_MAX_SHARE`` of the machine's memory. Some operators' memory grows, slowly, with the rows (10M flood rows:
    the incident grouping's joins needed 64-128 MB; the sort of a 877,620-connection conn log ran out of 64 MB)."""
    if limit_mb * 2 > machine_mb() * DUCKDB_MAX_SHARE:
        return None
    con.execute(f"SET memory_limit = '{limit_mb * 2}MB'")
    return limit_mb * 2


def no_progress(done: int, total: int) -> None:
    """Default callback: report nothing."""


# --- memory: small frames kept from chunk to chunk.


def own_strings(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its strings copied into buffers of its own (same columns and types, via Arrow).

    A frame filtered or sliced from a bigger one shares the bigger one's string buffers (polars' string views
    point into them) and keeps all of them alive: a few rows kept from each chunk hold every chunk's strings
    (measured: 3 rows kept from each of 60 chunks of 100,000 strings held 362 MiB). Frames kept across chunks
    (the report's attack rows, the window features' carried records) go through this first.
    """
    import polars as pl

    out = pl.from_arrow(df.to_arrow())
    assert isinstance(out, pl.DataFrame)
    return out
