"""Capture bytes in big blocks from a background thread that also hashes and inflates them.

``stream_blocks`` reads the file into numpy buffers on a daemon thread, hashing every raw byte (sha256)
and inflating gzip on the way, so I/O, hashing and inflation overlap with decoding (file reads, hashlib
and zlib release the GIL). Memory is bounded by a one-block queue.

Sizes are bounded too (``ReadLimits``): a gzip capture that inflates far beyond its compressed size (a
decompression bomb) and a stream that never ends are stopped with an ``InputError`` naming the file.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from features.capture.pcap import PAD, WalkState
from features.common import InputError

BLOCK_BYTES = 32 << 20  # bytes read per block: bounds memory (a few blocks live at once)
HEADROOM = 1 << 20  # free bytes before each block's data, where the previous block's tail is copied

# Real captures deflate 2-20x (a flood of near-identical packets up to ~60x); a run of zeros deflates 1030x,
# deflate's ceiling. So a ratio of 100 lets every real capture through and stops padding bombs.
MAX_INFLATE = 100.0
INFLATE_FLOOR = 64 << 20  # the ratio is judged only past this many inflated bytes: small files may deflate well
MAX_BYTES = 1 << 40  # 1 TiB of capture data from one input: generous for evidence files, finite for live pipes


@dataclass(frozen=True)
class ReadLimits:
    """How much one capture may give: ``max_bytes`` capture bytes (after inflation; 0: no limit) and, for gzip,
    ``max_inflate`` times the compressed bytes read (0: no limit; judged past ``INFLATE_FLOOR``)."""

    max_bytes: int = MAX_BYTES
    max_inflate: float = MAX_INFLATE

    def check(self, total: int, raw: int, gz: bool) -> str:
        """Why reading must stop after ``total`` capture bytes from ``raw`` file bytes; "" to go on."""
        if self.max_bytes and total > self.max_bytes:
            return (
                f"more than {_size(self.max_bytes)} of capture data (an endless stream?); "
                "nothing written (--max-bytes raises the limit, 0 removes it)"
            )
        if gz and self.max_inflate and total > INFLATE_FLOOR and total > self.max_inflate * max(raw, 1):
            return (
                f"gzip inflates more than {self.max_inflate:g}x ({_size(total)} from {_size(raw)}; a decompression "
                "bomb?); nothing written (--max-inflate raises the limit, 0 removes it)"
            )
        return ""


DEFAULT_LIMITS = ReadLimits()
NO_LIMITS = ReadLimits(0, 0)


def _size(n: int) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.4g} {unit}"
    return f"{n} bytes"


class _Limit(Exception):
    """Raised on the reader thread when a ``ReadLimits`` is crossed; the consumer makes it an ``InputError``."""


@dataclass
class Block:
    """Bytes of the capture (inflated if gzip) at buf[HEADROOM:HEADROOM + size], then ``PAD`` zero bytes; a short
    block's bytes past those are unset (``_block_buffer``)."""

    buf: np.ndarray  # (HEADROOM + block + PAD,) uint8
    size: int
    done: int  # raw file bytes read so far (for progress)


def stream_blocks(
    path: Path | Callable[[], Any],
    gz: bool,
    sha: Hasher,
    state: WalkState,
    block: int = BLOCK_BYTES,
    limits: ReadLimits = DEFAULT_LIMITS,
    ahead: bool = True,
) -> Generator[Block, None, None]:
    """Yield the capture's bytes block by block; hashes every raw byte of the file on the way.

    ``path`` is a file to open, or a function that returns the already opened stream (a pipe read once:
    ``features.capture.source``). With ``ahead``, reads run on a daemon thread with a one-block queue, straight
    into numpy buffers; without it (a small file: nothing to overlap, and a thread's start and hand-offs cost
    thousands of rotated files about a millisecond each) they run here. A damaged gzip stream ends the data with a
    ``truncated_gzip`` warning (the records before it are kept); the rest of the file is still hashed. Crossing
    ``limits`` raises ``InputError`` naming the file.
    """
    opener = (lambda: path.open("rb", buffering=0)) if isinstance(path, Path) else path
    stop = threading.Event()

    def produce() -> Generator[Block | BaseException, None, None]:
        try:
            with opener() as raw:
                hr = _HashingReader(raw, sha)
                src: _HashingReader | Inflate = Inflate(hr) if gz else hr
                total = 0
                while not stop.is_set():
                    buf = _block_buffer(HEADROOM + block + PAD)
                    size = 0
                    # one byte past --max-bytes is enough to know it is crossed
                    cap = min(block, limits.max_bytes - total + 1) if limits.max_bytes else block
                    try:
                        while size < cap and (k := src.readinto(buf.data[HEADROOM + size : HEADROOM + cap])):
                            size += k
                    except (EOFError, zlib.error) as e:
                        if size:
                            total += size
                            if why := limits.check(total, hr.pos, gz):  # a damaged bomb is still a bomb
                                yield _Limit(why)
                                return
                            buf[HEADROOM + size : HEADROOM + size + PAD] = 0
                            yield Block(buf, size, hr.pos)
                        yield ValueError(f"gzip stream damaged ({e})")
                        break
                    if not size:
                        break
                    total += size
                    if why := limits.check(total, hr.pos, gz):
                        yield _Limit(why)  # the block is dropped: the command fails, nothing is written
                        return
                    buf[HEADROOM + size : HEADROOM + size + PAD] = 0
                    yield Block(buf, size, hr.pos)
                while chunk := raw.read(1 << 20):  # hash what the decompressor did not consume
                    sha.update(chunk)
        except OSError as e:
            yield e

    def checked(items: Iterator[Block | BaseException]) -> Iterator[Block]:
        for item in items:
            if isinstance(item, ValueError):
                state.fail("truncated_gzip", str(item))
                continue
            if isinstance(item, _Limit):
                raise InputError(f"{state.name}: {item}")
            if isinstance(item, BaseException):
                raise InputError(f"{state.name}: cannot read: {getattr(item, 'strerror', None) or item}")
            yield item

    if not ahead:
        gen = produce()
        try:
            yield from checked(gen)
        finally:
            gen.close()
        return

    q: queue.Queue[Block | BaseException | None] = queue.Queue(maxsize=1)

    def put(item: Block | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        gen = produce()
        try:
            for item in gen:
                if not put(item):
                    break
        finally:
            gen.close()
            put(None)

    def received() -> Iterator[Block | BaseException]:
        while (item := q.get()) is not None:
            yield item

    t = threading.Thread(target=run, name=f"nta-read-{state.name}", daemon=True)
    t.start()
    try:
        yield from checked(received())
    finally:
        stop.set()
        t.join()


def _block_buffer(size: int) -> np.ndarray:
    """A block's buffer, uninitialised: the walkers read a block's bytes and the ``PAD`` zero bytes after them,
    nothing further, so a file's last (short) block zeroes ``PAD`` bytes, not the rest of its 32 MiB (which cost
    every small file about 8 ms of page faults: 3,000 rotated files spent 18 s in the kernel)."""
    return np.empty(size, np.uint8)


class Hasher(Protocol):
    """What reading feeds every raw byte to: a ``hashlib`` hash, or ``Unhashed``."""

    def update(self, data: Any, /) -> None: ...

    def hexdigest(self) -> str: ...


class Unhashed:
    """No hash: for a file whose digest its reader's caller computes itself (``PacketSource.hash_bytes``)."""

    def update(self, data: Any, /) -> None:
        pass

    def hexdigest(self) -> str:
        return ""


class RawReader(Protocol):
    """What the inflater reads from: ``read(n)`` returns up to n bytes, b"" at the end."""

    def read(self, n: int = -1) -> bytes: ...


class _HashingReader:
    """File wrapper that feeds every byte read to a hash (gzip reads through it)."""

    def __init__(self, raw: object, sha: Hasher) -> None:
        self.raw = raw
        self.sha = sha
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.raw.read(n)  # type: ignore[attr-defined]
        self.sha.update(data)
        self.pos += len(data)
        return data

    def readinto(self, mv: memoryview) -> int:
        k: int = self.raw.readinto(mv) or 0  # type: ignore[attr-defined]
        self.sha.update(mv[:k])
        self.pos += k
        return k


class Inflate:
    """gzip inflater with ``readinto`` that hands out every byte inflated before a damaged or cut stream.

    ``gzip.GzipFile`` drops the data of a read that hits a truncated stream; incident captures are often
    copied half-way, so we inflate with zlib ourselves. Concatenated members are followed; anything
    after the last member that is not another gzip header ends the data.
    """

    STEP = 1 << 20  # compressed bytes read at a time
    OUT = 1 << 22  # most inflated bytes produced per step, so a zip bomb cannot balloon memory

    def __init__(self, src: RawReader) -> None:
        self.src = src
        self.d = zlib.decompressobj(31)
        self.buf = b""
        self.pos = 0
        self.err: Exception | None = None
        self.done = False

    def readinto(self, mv: memoryview) -> int:
        while self.pos >= len(self.buf):
            if self.err is not None:
                err, self.err = self.err, None
                raise err
            if self.done:
                return 0
            self.buf, self.pos = self._more(), 0
        n = min(len(mv), len(self.buf) - self.pos)
        mv[:n] = self.buf[self.pos : self.pos + n]
        self.pos += n
        return n

    def _more(self) -> bytes:
        d = self.d
        if d.eof:  # first: at the end of a member zlib can leave the leftover in unconsumed_tail too
            rest = d.unused_data
            if len(rest) < 2:
                rest += self.src.read(self.STEP)
            if rest[:2] != b"\x1f\x8b":
                self.done = True
                return b""
            self.d = zlib.decompressobj(31)
            return self.d.decompress(rest, self.OUT)
        if d.unconsumed_tail:
            return d.decompress(d.unconsumed_tail, self.OUT)
        data = self.src.read(self.STEP)
        if not data:
            out = d.flush()  # output zlib still held back
            if not d.eof:
                self.err = EOFError("compressed stream ends early")
            return out
        return d.decompress(data, self.OUT)
