"""What every stage of ``features`` and the ``model`` package share, and nothing else.

Errors that end a command (each with the exit code a CI job acts on), atomic file output and the
progress callback type. No stage logic lives here; a module that needs one of these imports it from here.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["InputError", "ModelError", "NtaError", "ProgressFn", "atomic_path", "no_progress", "output_file"]


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
    is replaced only with ``force``.
    """
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


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it onto ``target``, else remove it.

    The rename is atomic on POSIX (same filesystem), so readers see the old file or the whole new one.
    The file gets the mode a plain ``open(target, "w")`` would give it: some writers (safetensors) create
    their files 0600, and a model folder a colleague cannot read is no use to them. ``target`` follows
    ``output_file``'s rules: a symbolic link is followed (the link stays), a non-regular file is refused.
    """
    target = output_file(Path(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --- progress: stages report work done without knowing about terminals.

# progress(done, total): units are the stage's own (bytes read, rows encoded, ...); total may be 0 if unknown.
ProgressFn = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """Default callback: report nothing."""
