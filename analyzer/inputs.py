"""Which files ``nta scan PATH...`` reads: captures named on the command line and found in folders.

Rules (also in the README):

* A file named on the command line must be a capture (pcap or pcapng, gzipped or not, recognised by
  content, not by name) or a Zeek conn log (TSV or JSON lines, gzipped or not: ``features.zeeklog``, also
  by content); anything else is an ``InputError`` (exit 2) naming the file. One scan reads captures or Zeek
  logs, not both (a conn.log made from the same capture would count every connection twice).
* A folder is walked recursively in sorted order; files named ``*.pcap``, ``*.pcapng``, ``*.cap``
  (optionally ``.gz``) are probed and used, and so are files named ``*.log``, ``*.json`` (optionally ``.gz``)
  that are Zeek conn logs (a rotated set: ``conn.log``, ``conn.2024-03-01-10-00-00.log.gz``, ...); other Zeek
  logs (dns, http, ...) are skipped with the reason. Other files, and capture-named entries that do not open as
  captures (dangling or looping symbolic links, named pipes, sockets, devices included: never opened), are
  *skipped*: listed in the report with the reason, never fatal.
* ``-`` is standard input; it, pipes and named pipes (FIFOs) named on the command line are read once, as
  streams, and checked when they are read (a Zeek conn log on a stream is told then too: ``analyzer.pipeline``) (a named pipe with no writer is refused after
  ``features.capture.source.FIFO_WAIT_S``).
* Nothing left to scan is an ``InputError``. The same file reached twice is read once, and so is a copy of a
  file (the same bytes under another name: evidence exported twice, ``capture (1).pcap``; or a plain capture's
  gzipped copy beside it): the copy is skipped, naming the file it repeats, since reading both would count every
  packet twice (``_copies``).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from features.capture.source import is_stream
from features.capture.stream import ReadLimits
from features.common import InputError, file_sha256

CAPTURE_SUFFIXES: tuple[str, ...] = (".pcap", ".pcapng", ".cap")
ZEEK_SUFFIXES: tuple[str, ...] = (".log", ".json", ".ndjson")


@dataclass
class Inputs:
    """The captures (or Zeek conn logs, ``kind`` "zeek") to read, in order, and the files left out with why."""

    captures: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    kind: str = "capture"


def looks_like_zeek_name(path: Path) -> bool:
    """True for ``x.log``, ``x.json``, ``x.ndjson`` and the same with ``.gz`` (any case)."""
    return path.name.lower().removesuffix(".gz").endswith(ZEEK_SUFFIXES)


def looks_like_capture_name(path: Path) -> bool:
    """True for ``x.pcap``, ``x.pcapng``, ``x.cap`` and the same with ``.gz`` (any case)."""
    name = path.name.lower()
    name = name.removesuffix(".gz")
    return name.endswith(CAPTURE_SUFFIXES)


def probe(path: Path) -> str:
    """``capture`` or ``zeek`` (a Zeek conn log) by content; ``InputError`` for anything else (reads the start only)."""
    from features.capture.source import PacketSource
    from features.zeeklog.conn import conn_kind
    from features.zeeklog.read import sniff

    try:
        src = PacketSource(path)
    except InputError as e:
        try:
            why = conn_kind(sniff(path))
        except InputError:
            raise e from None
        if why == "not a Zeek log":
            if looks_like_zeek_name(path) and not looks_like_capture_name(path):
                raise InputError(
                    f"{path}: neither a Zeek log ('#separator' or '{{' at the start) nor a capture"
                ) from None
            raise
        if why:
            raise InputError(f"{path}: {why} (nta reads Zeek conn logs)") from None
        return "zeek"
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    close = getattr(src, "close", None)
    if callable(close):
        close()
    return "capture"


def discover(paths: Sequence[Path]) -> Inputs:
    """Resolve command-line paths into the captures to scan (see the module docstring for the rules)."""
    found = Inputs()
    seen: set[Path] = set()
    kinds: dict[str, Path] = {}

    def add(p: Path, kind: str = "capture") -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            found.captures.append(p)
            kinds.setdefault(kind, p)

    for path in paths:
        path = Path(path)
        if is_stream(path):  # '-', a pipe, a named pipe: read once, when the flows are built (a probe would eat it)
            add(path)
        elif path.is_dir():
            _walk(path, found, add)
        elif path.exists():
            add(path, probe(path))  # a file the user named: not a capture or conn log is an error, not a skip
        else:
            raise InputError(f"{path}: no such file or directory")
    _copies(found)
    if not found.captures:
        where = ", ".join(str(p) for p in paths)
        extra = ""
        if found.skipped:
            first, why = found.skipped[0]
            extra = f" ({len(found.skipped)} files skipped, e.g. {first}: {why})"
        raise InputError(f"{where}: no capture files or Zeek conn logs to scan{extra}")
    if len(kinds) > 1:
        raise InputError(
            f"{kinds['capture']} is a capture and {kinds['zeek']} a Zeek conn log: scan captures or Zeek logs, "
            "not both at once (a conn.log of the same traffic would count every connection twice)"
        )
    found.kind = next(iter(kinds))
    return found


EDGE_BYTES = 1 << 16  # compared first: files that differ (rotated pieces of one size) differ here


def _copies(found: Inputs) -> None:
    """Move every file with the same bytes as an earlier one from ``found.captures`` to ``found.skipped``.

    Only files of equal size are compared: first their first and last ``EDGE_BYTES`` (``tcpdump -C`` pieces all
    have one size and differ there), then, where those match, their SHA-256. A gzipped file whose stored size
    matches a plain file's is decompressed and compared with it. A file that cannot be read is left for reading
    to report."""
    by_size: dict[int, list[Path]] = {}
    for p in found.captures:
        if not is_stream(p):
            try:
                by_size.setdefault(p.stat().st_size, []).append(p)
            except OSError:
                continue
    copies: dict[Path, Path] = {}  # copy -> the file it repeats
    for size, group in by_size.items():
        if len(group) < 2:
            continue
        by_edges: dict[str, list[Path]] = {}
        for p in group:
            with contextlib.suppress(OSError):
                by_edges.setdefault(_edges(p, size), []).append(p)
        for same in by_edges.values():
            by_hash: dict[str, Path] = {}
            for p in same if len(same) > 1 else ():
                try:
                    digest = file_sha256(p)
                except OSError:
                    continue
                if digest in by_hash:
                    copies[p] = by_hash[digest]
                else:
                    by_hash[digest] = p
    why = {p: f"the same bytes as {orig}: read once" for p, orig in copies.items()}
    # A gzipped copy of a plain capture (x.pcap beside x.pcap.gz): its stored size (gzip's ISIZE, mod 2^32) picks
    # the plain files to compare it with, decompressed no further than their size.
    left = [p for p in found.captures if p not in copies and not is_stream(p)]
    gz = {p: stored for p in left if (stored := _gz_size(p)) is not None}  # each file's start read once
    plain: dict[int, list[Path]] = {}  # size mod 2^32 -> plain files
    for p in left:
        if p not in gz:
            with contextlib.suppress(OSError):
                plain.setdefault(p.stat().st_size % (1 << 32), []).append(p)
    for g, stored in gz.items():
        orig = next((p for p in plain.get(stored, []) if _inflates_to(g, p)), None)
        if orig is not None:
            why[g] = f"the same capture as {orig}, gzipped: read once"
    if why:
        found.captures = [p for p in found.captures if p not in why]
        found.skipped += list(why.items())


def _edges(path: Path, size: int) -> str:
    """A digest of the first and last ``EDGE_BYTES`` of a file of ``size`` bytes."""
    with path.open("rb") as f:
        h = hashlib.sha256(f.read(EDGE_BYTES))
        f.seek(max(0, size - EDGE_BYTES))
        h.update(f.read(EDGE_BYTES))
        return h.hexdigest()


def _gz_size(path: Path) -> int | None:
    """The size a gzip file says its (last member's) content has (ISIZE: mod 2^32); None for other files. Never
    given a pipe or named pipe (those are read once, later)."""
    try:
        with path.open("rb") as f:
            if f.read(2) != b"\x1f\x8b":
                return None
            f.seek(-4, os.SEEK_END)
            return int.from_bytes(f.read(4), "little")
    except OSError:
        return None


def _inflates_to(gz: Path, plain: Path) -> bool:
    """True when ``gz`` decompresses to exactly ``plain``'s bytes (stops at the first difference)."""
    try:
        with gzip.open(gz, "rb") as g, plain.open("rb") as f:
            while chunk := f.read(1 << 20):
                if g.read(len(chunk)) != chunk:
                    return False
            return g.read(1) == b""
    except (OSError, EOFError, zlib.error):
        return False


def _walk(folder: Path, found: Inputs, add: Callable[[Path, str], None]) -> None:
    try:
        entries = sorted(p for p in folder.rglob("*") if not p.is_dir())
    except OSError as e:
        raise InputError(f"{folder}: cannot list folder ({e.strerror or e})") from e
    for p in entries:
        if not (looks_like_capture_name(p) or looks_like_zeek_name(p)):
            found.skipped.append((p, "not a capture file name (.pcap, .pcapng, .cap, optionally .gz) or Zeek log name"))
            continue
        why = _not_a_file(p)
        if why:  # a dangling link, a link loop, a named pipe...: listed, never opened (a FIFO would block)
            found.skipped.append((p, why))
            continue
        try:
            kind = probe(p)
        except InputError as e:
            found.skipped.append((p, _reason(str(e), p)))
            continue
        add(p, kind)


def _not_a_file(p: Path) -> str:
    """Why ``p`` (found in a folder) cannot be read as a capture file; "" for a regular file (or a link to one)."""
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        return f"dangling symbolic link (to {os.readlink(p)})" if p.is_symlink() else "vanished while listing"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"cannot read ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return ""
    kind = "named pipe (FIFO)" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device"
    return f"a {kind}, not a regular file (name it on the command line to read it as a stream)"


def _reason(message: str, path: Path) -> str:
    """The error message without the leading file name (the report shows the name beside it)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def describe(paths: Iterable[Path]) -> str:
    """A short human list of paths, for messages."""
    items = [str(p) for p in paths]
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}


def parse_size(text: str, option: str = "--max-bytes") -> int:
    """``"500M"`` -> bytes (K, M, G, T: powers of 1024; an optional ``B`` or ``iB``); ``InputError`` if not a size."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if m is None:
        raise InputError(f"{option}: {text!r} is not a size (e.g. 500M, 64G, 1T, 0 for no limit)")
    return int(float(m.group(1)) * (1 << _UNITS[m.group(2)]))


def read_limits(max_bytes: str, max_inflate: float) -> ReadLimits:
    """The ``ReadLimits`` that ``--max-bytes`` and ``--max-inflate`` ask for."""
    return ReadLimits(parse_size(max_bytes), max_inflate)
