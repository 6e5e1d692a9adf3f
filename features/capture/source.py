"""One capture file as a stream of PacketBatch: open, validate, walk, decode, count.

``PacketSource(path)`` validates the file at once (``InputError`` naming the file if it is not a
capture); ``batches()`` then streams it in blocks (``features.capture.stream``), walks the records (classic
pcap there, pcapng in ``features.capture.pcapng``) and decodes them (``features.capture.decode``). Memory is bounded by
the block size and ``chunk_records``, never by the file size.
"""

from __future__ import annotations

import hashlib
import os
import select
import stat
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from features.capture.decode import decode_chunk
from features.capture.filter import PacketFilter
from features.capture.packets import PacketBatch
from features.capture.pcap import PAD, PCAP_MAGICS, PCAPNG_MAGIC, PcapWalker, RecordChunk, WalkState
from features.capture.pcapng import BOM, PcapngWalker
from features.capture.stream import DEFAULT_LIMITS, HEADROOM, Hasher, Inflate, ReadLimits, Unhashed, stream_blocks
from features.common import ISO_UTC, InputError, ProgressFn, no_progress, path_text

STDIN = "-"  # the capture name that reads standard input
FIFO_WAIT_S = 10.0  # how long a named pipe may stay without data (no writer) before it is refused
SNIFF_BYTES = 64  # leading (inflated) bytes that decide the format
PEEK_BYTES = 1 << 20  # bytes ``PacketSource.peek`` reads for the first record
# Plain files smaller than this are read and decoded on the caller's thread (``stream_blocks(ahead=False)``,
# ``features.capture.readahead``): nothing to overlap in them, and two threads started and handed over to per file
# cost a folder of 3,000 small rotated files about a millisecond each.
SMALL_FILE_BYTES = 1 << 20


def _read_some(raw: BinaryIO, gz: bool, limit: int) -> bytes:
    """Up to ``limit`` (inflated) bytes; a damaged or cut gzip stream gives what inflated before the damage.
    Only ``peek`` reads this way (the first record's time): the damage is not reported here but by the read of the
    whole file (``batches``: a ``truncated_gzip`` warning), and named by ``_validate`` if it comes before the
    first record."""
    if not gz:
        return raw.read(limit)
    inflate = Inflate(raw)
    buf = bytearray(limit)
    n = 0
    try:
        while n < limit and (k := inflate.readinto(memoryview(buf)[n:])):
            n += k
    except (EOFError, zlib.error):
        return bytes(buf[:n])  # what inflated before the damage (see above)
    return bytes(buf[:n])


def packet_times(first_ns: int | None, last_ns: int | None) -> dict[str, str]:
    """report.json's ``first_packet``/``last_packet`` of a capture: its earliest and latest record times (UTC, ISO
    8601, microseconds: the earliest rounded down, the latest up, so the span holds every record). ``nta carve``
    reads a file of a stream only where this span meets a flow it carves. Nothing when the file had no record."""
    if first_ns is None or last_ns is None:
        return {}
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def iso(us: int) -> str:
        return (epoch + timedelta(microseconds=us)).strftime(ISO_UTC)

    return {"first_packet": iso(first_ns // 1000), "last_packet": iso(-(-last_ns // 1000))}


def packet_span(capture: dict[str, Any]) -> tuple[int, int] | None:
    """(earliest, latest record time in ns) from a report.json capture entry (``packet_times``); None when it has no
    times (no record, or a report written before they were kept)."""
    first, last = capture.get("first_packet"), capture.get("last_packet")
    if not isinstance(first, str) or not isinstance(last, str):
        return None
    try:
        a, b = (datetime.strptime(t, ISO_UTC).replace(tzinfo=UTC) for t in (first, last))
    except ValueError:
        return None
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return (a - epoch) // timedelta(microseconds=1) * 1000, (b - epoch) // timedelta(microseconds=1) * 1000


def is_stream(path: Path) -> bool:
    """True for ``-`` (standard input) and anything that is neither a regular file nor a folder: a pipe, a
    named pipe (FIFO), a character device. Those are read once, front to back, and never reopened."""
    if str(path) == STDIN:
        return True
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _open_stream(path: Path) -> BinaryIO:
    """Open a stream once (see ``is_stream``); a named pipe that gets no data within ``FIFO_WAIT_S`` is refused."""
    try:
        if str(path) == STDIN:
            fd = os.dup(0)
            if os.isatty(fd):
                os.close(fd)
                raise InputError(f"{path}: standard input is a terminal, not a capture (pipe one in: ... | nta ... -)")
        elif stat.S_ISFIFO(path.stat().st_mode):
            # A blocking open of a FIFO waits for a writer forever: open without blocking, then wait for data
            # (or for a writer that came and went) at most FIFO_WAIT_S.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            poller = select.poll()
            poller.register(fd, select.POLLIN | select.POLLHUP)
            if not poller.poll(FIFO_WAIT_S * 1000):
                os.close(fd)
                raise InputError(f"{path}: named pipe with no writer (no data within {FIFO_WAIT_S:g} s)")
            os.set_blocking(fd, True)
        else:
            fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    return os.fdopen(fd, "rb", buffering=0)


class _Replay:
    """A stream whose first bytes were read already (to sniff the format): hands them out again, then the rest.

    Counts every byte it hands out (``pos``): a stream has no size to stat.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.kept = bytearray()  # bytes read while sniffing, not yet handed out
        self.sniffing = True
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if self.sniffing:
            data = self.raw.read(n) or b""
            self.kept += data
            return data
        if self.kept:
            take = len(self.kept) if n < 0 else min(n, len(self.kept))
            data = bytes(self.kept[:take])
            del self.kept[:take]
        else:
            data = self.raw.read(n) or b""
        self.pos += len(data)
        return data

    def readinto(self, mv: memoryview) -> int:
        data = self.read(len(mv))
        mv[: len(data)] = data
        return len(data)

    def read_full(self, n: int) -> bytes:
        """Up to n bytes, fewer only at the end (a pipe hands out what it holds at the moment)."""
        out = b""
        while len(out) < n and (more := self.read(n - len(out))):
            out += more
        return out

    def __enter__(self) -> _Replay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.raw.close()


def _sniff_from(r: _Replay) -> tuple[bytes, bool, str]:
    """The first ``SNIFF_BYTES`` of the capture (inflated if gzip), whether it is gzip, and what stopped the
    inflation early ("" if nothing did). A damaged gzip stream is judged by the bytes it inflates to, exactly as
    a plain file cut at that length would be (one rule for both); reading it gives ``truncated_gzip``."""
    head = r.read_full(SNIFF_BYTES)
    r.sniffing = False  # from here on ``r`` hands out the bytes read so far again, then the rest
    gz = head[:2] == b"\x1f\x8b"
    damage = ""
    if gz:
        replayed = _Recorder(r)
        inflate = Inflate(replayed)
        buf = bytearray(SNIFF_BYTES)
        n = 0
        try:
            while n < SNIFF_BYTES and (k := inflate.readinto(memoryview(buf)[n:])):
                n += k
        except (EOFError, zlib.error) as e:
            damage = str(e)
        head = bytes(buf[:n])
        r.kept[:0] = replayed.taken  # everything the inflater read goes back in front of the stream
    r.pos = 0
    return head, gz, damage


class _Recorder:
    """Reads through a ``_Replay`` and keeps what it read (so it can be replayed once more)."""

    def __init__(self, src: _Replay) -> None:
        self.src = src
        self.taken = bytearray()

    def read(self, n: int = -1) -> bytes:
        data = self.src.read(n)
        self.taken += data
        return data


def _sniff(path: Path) -> tuple[bytes, bool, str]:
    """``_sniff_from`` on a regular file (opened for this and closed again); InputError if unreadable."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a capture file")
    try:
        with path.open("rb") as f, _Replay(f) as r:
            return _sniff_from(r)
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e


def _validate(path: Path, head: bytes, gz: bool, damage: str = "") -> str:
    """Format name of a capture whose first bytes are head; InputError with the reason otherwise."""
    try:
        return _format_of(path, head, gz)
    except InputError as e:
        if not damage:
            raise
        raise InputError(
            f"{e} (gzip-compressed, but the stream is damaged after {len(head)} bytes: {damage})"
        ) from None


def _format_of(path: Path, head: bytes, gz: bool) -> str:
    what = "gzip-compressed data" if gz else "file"
    if not head:
        raise InputError(f"{path}: empty {what}, not a capture")
    if len(head) < 4:
        raise InputError(f"{path}: {what} too short for a capture header ({len(head)} bytes)")
    magic = struct.unpack_from("<I", head)[0]
    if magic in PCAP_MAGICS:
        if len(head) < 24:
            raise InputError(f"{path}: pcap header cut short ({len(head)} of 24 bytes)")
        return PCAP_MAGICS[magic][3]
    if magic == PCAPNG_MAGIC:
        if len(head) < 28:
            raise InputError(f"{path}: pcapng section header cut short ({len(head)} bytes)")
        bom = struct.unpack_from("<I", head, 8)[0]
        if bom not in (BOM, 0x4D3C2B1A):
            raise InputError(f"{path}: pcapng section header without a byte-order magic")
        return "pcapng"
    raise InputError(f"{path}: not a pcap or pcapng capture (starts with {head[:4].hex()})")


class TextStream(InputError):
    """A pipe or standard input that carries a text log (a Zeek log starts with ``#separator`` or ``{``), not packets.

    ``stream`` hands out every byte of the stream from its first (gzip-compressed ones as they came), so the
    reader of such logs (``features.zeeklog``, wired in ``analyzer``) can take over a stream that can be read once.
    """

    def __init__(self, message: str, stream: _Replay) -> None:
        super().__init__(message)
        self.stream = stream


class PacketSource:
    """One capture file: pcap (any byte order, us/ns, modified) or pcapng, plain or gzip (by content).

    The constructor opens and validates the file and raises ``InputError("<path>: <reason>")`` if it is
    not a capture at all; a header-only file is a valid capture with 0 packets. ``sha256``, ``records``,
    ``bad`` and ``warnings`` are complete once ``batches()`` is exhausted.
    """

    def __init__(
        self,
        path: Path,
        *,
        chunk_records: int = 262_144,
        payloads: bool = True,
        decap: bool = True,
        packet_filter: PacketFilter | None = None,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> None:
        self.path = Path(path)
        self.limits = limits  # how much the capture may give (gzip ratio, bytes): features.capture.stream
        self.packet_filter = packet_filter if packet_filter is not None and packet_filter.active else None
        self.payloads = payloads  # False: batches carry no payload snippets (nothing downstream wants them)
        self.decap = decap  # False: tunnel packets stay as they are (features.capture.tunnels)
        self.keep_records = False  # True: each batch carries its RecordChunk (frames' bytes), for carving
        self._stream: _Replay | None = None  # a pipe, FIFO or standard input: opened once, read once
        if is_stream(self.path):
            self._stream = _Replay(_open_stream(self.path))
            try:
                head, self._gz, damage = _sniff_from(self._stream)
                if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"#separator", b"{")):
                    raise TextStream(
                        f"{self.path}: a text log (Zeek's '#separator' or '{{'), not a capture", self._stream
                    )
                fmt = _validate(self.path, head, self._gz, damage)
            except TextStream:
                raise  # the stream stays open: whoever reads text logs takes it over
            except BaseException:
                self.close()
                raise
            self.size_bytes = 0  # unknown until read: ``batches`` sets it
        else:
            head, self._gz, damage = _sniff(self.path)
            fmt = _validate(self.path, head, self._gz, damage)
            self.size_bytes = self.path.stat().st_size
        self._head = head
        self.format = fmt + ("+gzip" if self._gz else "")
        self.chunk_records = chunk_records
        self._read_once = False
        self.sha256 = ""
        # False: whoever reads this source hashes the file itself (a regular file only: a stream is read once)
        self.hash_bytes = True
        self.records = 0
        self.bad: Counter[str] = Counter()
        self.warnings: list[str] = []
        self.ts_last: int | None = None  # latest record timestamp (ns), once ``batches()`` is exhausted
        self.ts_first: int | None = None  # earliest one
        self.filtered = 0  # records left out by the packet filter

    def close(self) -> None:
        """Close a stream this source holds open (regular files are opened only while ``batches`` runs)."""
        if self._stream is not None:
            self._stream.close()

    @property
    def is_small(self) -> bool:
        """A regular, uncompressed file under ``SMALL_FILE_BYTES``: read and decoded on the caller's thread."""
        return self._stream is None and not self._gz and self.size_bytes < SMALL_FILE_BYTES

    @property
    def pcap_header(self) -> tuple[int, bool] | None:
        """(link type, nanosecond timestamps) of a classic pcap file; None for pcapng."""
        if self.format.startswith("pcapng"):
            return None
        endian, ns, _, _ = PCAP_MAGICS[struct.unpack_from("<I", self._head)[0]]
        return struct.unpack_from(endian + "I", self._head, 20)[0] & 0x03FFFFFF, ns

    def info(self) -> dict[str, Any]:
        """What report.json says of this capture once it is read: file, sha256, format, packets, bytes, and the
        times of its earliest and latest record (``packet_times``)."""
        return {
            "file": path_text(self.path),
            "sha256": self.sha256,
            "format": self.format,
            "packets": self.records,
            "bytes": self.size_bytes,
            **packet_times(self.ts_first, self.ts_last),
        }

    def outcome(self) -> tuple[int, Counter[str], list[str], str, int, int | None, int | None]:
        """What a finished ``batches()`` learnt: (records, bad counts, warnings, sha256, filtered, ts_last,
        ts_first); see ``adopt``."""
        bad, warnings = Counter(self.bad), list(self.warnings)
        return self.records, bad, warnings, self.sha256, self.filtered, self.ts_last, self.ts_first

    def adopt(self, outcome: tuple[int, Counter[str], list[str], str, int, int | None, int | None]) -> None:
        """Take the outcome of ``batches()`` run elsewhere (``features.capture.readahead``'s child process)."""
        self.records, bad, warnings, self.sha256, self.filtered, self.ts_last, self.ts_first = outcome
        self.bad, self.warnings = Counter(bad), list(warnings)

    def peek(self, limit: int = PEEK_BYTES) -> tuple[int | None, int | None]:
        """(timestamp in ns, link type) of the first record, from the first ``limit`` bytes only; (None, None)
        when they hold no complete record (a header-only capture). Cheap: how files are put in time order
        (``features.capture.streams``) before any is read."""
        if self._stream is not None:
            return None, None  # a pipe is read once: its start is unknown until it is read (its own stream)
        try:
            with self.path.open("rb", buffering=0) as f:
                data = _read_some(f, self._gz, limit)
        except OSError as e:
            raise InputError(f"{self.path}: cannot read ({e.strerror or e})") from e
        state = WalkState(str(self.path))
        walker: PcapWalker | PcapngWalker
        walker = PcapngWalker(state) if self.format.startswith("pcapng") else PcapWalker(self._head, state)
        buf = np.frombuffer(data + bytes(PAD), np.uint8).copy()
        start = walker.header_len if isinstance(walker, PcapWalker) else 0
        chunks, _ = walker.walk(buf, len(data), min(start, len(data)), False)
        for rc in chunks:
            if len(rc):
                return int(rc.ts_ns[0]), int(rc.linktype[0])
        return None, (walker.linktype if isinstance(walker, PcapWalker) else None)

    def batches(self, progress: ProgressFn = no_progress) -> Iterator[PacketBatch]:
        """Decoded packets in file order, at most ``chunk_records`` records per batch."""
        state = WalkState(path_text(self.path))
        if self._stream is not None and self._read_once:
            raise InputError(f"{self.path}: a pipe or standard input can be read only once")
        self._read_once = True
        self.records, self.bad, self.warnings, self.sha256 = 0, Counter(), [], ""  # a second pass starts afresh
        self.ts_last = self.ts_first = None
        self.filtered = 0
        walker: PcapWalker | PcapngWalker
        walker = PcapngWalker(state) if self.format.startswith("pcapng") else PcapWalker(self._head, state)
        sha: Hasher = hashlib.sha256() if self.hash_bytes or self._stream is not None else Unhashed()
        left = np.zeros(0, np.uint8)  # the incomplete record at the end of the previous block
        skip = walker.header_len  # the pcap global header is validated already
        self._attached: Counter[str] = Counter()  # reader-level counts already put on a batch
        total = self.size_bytes
        pos = 0  # stream offset of buf[start]
        stream = self._stream
        blocks = stream_blocks(
            self.path if stream is None else (lambda: stream),
            self._gz,
            sha,
            state,
            limits=self.limits,
            ahead=not self.is_small,
        )
        try:
            for blk in blocks:
                if state.stop:  # damage ended the records; keep reading only to finish the sha256
                    if isinstance(sha, Unhashed):
                        break
                    progress(blk.done, total)
                    continue
                nl = left.shape[0]
                if nl <= HEADROOM:
                    buf, start = blk.buf, HEADROOM - nl
                    buf[start:HEADROOM] = left
                else:  # a record longer than the headroom: copy once
                    buf, start = np.concatenate([left, blk.buf[HEADROOM:]]), 0
                length = start + nl + blk.size
                state.origin = pos - start
                yield from self._decode(walker, buf, length, start + skip, False, state)
                skip = 0
                pos += self._cut - start
                left = buf[self._cut : length].copy()
                progress(blk.done, total)
        finally:
            blocks.close()
        if not state.stop:
            buf = np.concatenate([left, np.zeros(PAD, np.uint8)])
            state.origin = pos
            yield from self._decode(walker, buf, left.shape[0], skip, True, state)
        if state.bad - self._attached:  # damage found after the last batch: report it on an empty one
            batch = PacketBatch.empty()
            batch.bad = state.bad - self._attached
            self.bad.update(batch.bad)
            yield batch
        self.sha256 = sha.hexdigest()
        self.warnings = list(state.warnings)
        if stream is not None:
            self.size_bytes = total = stream.pos
        progress(total, total)

    def _decode(
        self,
        walker: PcapWalker | PcapngWalker,
        buf: np.ndarray,
        length: int,
        start: int,
        at_eof: bool,
        state: WalkState,
    ) -> Iterator[PacketBatch]:
        chunks, self._cut = walker.walk(buf, length, start, at_eof)
        for rc in chunks:
            if len(rc):
                first, last = int(rc.ts_ns.min()), int(rc.ts_ns.max())
                self.ts_last = last if self.ts_last is None else max(self.ts_last, last)
                self.ts_first = first if self.ts_first is None else min(self.ts_first, first)
            for lo in range(0, len(rc), self.chunk_records):
                hi = min(lo + self.chunk_records, len(rc))
                part = RecordChunk(
                    rc.buf,
                    rc.data_off[lo:hi],
                    rc.caplen[lo:hi],
                    rc.wirelen[lo:hi],
                    rc.ts_ns[lo:hi],
                    rc.linktype[lo:hi],
                    rc.first_idx + lo,
                )
                batch = self._filtered_decode(part)
                if self.keep_records:
                    batch.chunk = part
                delta = state.bad - self._attached
                batch.bad.update(delta)
                self._attached.update(delta)
                self.records += batch.records
                self.filtered += batch.filtered
                self.bad.update(batch.bad)
                yield batch

    def _filtered_decode(self, part: RecordChunk) -> PacketBatch:
        """Decode a chunk, leaving out what the packet filter rejects: by time before decoding, by host/port after."""
        flt = self.packet_filter
        n = len(part)
        skipped = 0
        if flt is not None and flt.by_time:
            keep = flt.time_mask(part.ts_ns)
            if not keep.all():
                idx = np.flatnonzero(keep)
                skipped = n - idx.size
                part = RecordChunk(
                    part.buf,
                    part.data_off[idx],
                    part.caplen[idx],
                    part.wirelen[idx],
                    part.ts_ns[idx],
                    part.linktype[idx],
                    part.first_idx,
                    (part.pkt_idx[idx] if part.pkt_idx is not None else part.first_idx + idx).astype(np.int64),
                )
        batch = decode_chunk(part, payloads=self.payloads, decap=self.decap)
        batch.records = n
        if flt is not None and flt.by_packet and len(batch):
            keep = flt.packet_mask(batch.cols)
            if not keep.all():
                skipped += int((~keep).sum())
                batch.cols = {k: v[keep] for k, v in batch.cols.items()}
                if batch.payloads:
                    has = np.isin(batch.payload_idx, batch.cols["pkt_idx"])
                    batch.payload_idx = batch.payload_idx[has]
                    batch.payloads = [p for p, h in zip(batch.payloads, has.tolist(), strict=True) if h]
        batch.filtered = skipped
        return batch
