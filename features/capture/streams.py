"""Several capture files as packet streams: rotated files joined in time order, overlapping ones kept apart or merged.

A capture session is often cut into files: ``tcpdump -C``/``-G`` and ring buffers write ``x.pcap``, ``x.pcap1``, ...
whose time ranges follow each other. Such files are **joined**: read in time order as one stream, so a flow
continues across a file boundary. Files whose time ranges overlap come from several sensors (or taps): by
default each sensor's files form their own stream, since the same packet seen by two sensors would otherwise be
counted twice; ``merge`` instead reads every file as one stream ordered by time (``merge_by_time``), for taps
that each see part of the traffic (one direction per file).

The joining rule (``StreamJoiner``), with files taken in order of their first record's timestamp
(``PacketSource.peek``, which reads only the start of a file): a file continues a stream when the stream's
files have the same link type and the file's first timestamp lies between ``JOIN_SLACK_NS`` before the
stream's latest one and the gap after it (``gap_ns``: the longest flow idle timeout, 5 minutes by default); among
several such streams, one of files in the same folder with the same name once digits are ignored (``x.pcap3``
after ``x.pcap2``) wins, then the one that ended last. Otherwise the file starts a stream. Past the gap no flow
can continue (every open flow has timed out), so a file that starts later is not read as a continuation: a folder
of unrelated captures made hours or days apart is not "joined". (Nor do such captures share window features: a
stream whose first flow starts more than the gap after every earlier flow ended starts a new *session*,
``features.kdd.windows.Sessions``.)

In a stream, ``pkt_idx`` is ``file number << FILE_SHIFT | record index``, so a packet (and its payload
snippet) is unique in the stream and a flow knows the file of its first packet (``source_file``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.capture.packets import PacketBatch

FILE_SHIFT = 40  # pkt_idx bits for the record index in one file (10^12 records)
JOIN_SLACK_NS = 10_000_000  # timestamps at a rotation cut may step back this much (reordered by the capturing host)
DEFAULT_GAP_NS = 300_000_000_000  # FlowConfig's longest idle timeout (TCP, 300 s): the flow builders pass theirs


def tag_batch(batch: PacketBatch, file_no: int) -> PacketBatch:
    """Mark a batch's packets (and payload snippets) as coming from file ``file_no`` of its stream; in place."""
    if file_no:
        tag = np.int64(file_no) << np.int64(FILE_SHIFT)
        batch.cols["pkt_idx"] = batch.cols["pkt_idx"] | tag
        batch.payload_idx = np.asarray(batch.payload_idx, np.int64) | tag
    return batch


def file_of(pkt_idx: np.ndarray) -> np.ndarray:
    """The file number (within its stream) of each tagged ``pkt_idx``."""
    return np.asarray(pkt_idx, np.int64) >> np.int64(FILE_SHIFT)


def name_pattern(path: Path) -> tuple[str, str]:
    """(folder, file name with every run of digits replaced): what rotated files of one session share."""
    return str(path.parent), re.sub(r"\d+", "#", path.name)


@dataclass
class Stream:
    """Files read as one packet stream, in reading order (indices into the caller's file list)."""

    sid: int
    files: list[int] = field(default_factory=list)
    linktype: int | None = None
    pattern: tuple[str, str] = ("", "")
    last_ts: int | None = None  # latest record timestamp read so far
    busy: bool = False  # a file of the stream is being read: it cannot take another one yet


class StreamJoiner:
    """Assigns files, taken in time order, to streams (the joining rule in the module docstring)."""

    def __init__(self, gap_ns: int = DEFAULT_GAP_NS) -> None:
        self.streams: list[Stream] = []
        self.gap_ns = gap_ns  # past this gap after a stream's last packet, a file does not continue it
        self._open: list[Stream] = []  # the streams a later file may still continue (``ended`` says which not)

    @staticmethod
    def order(starts: Sequence[tuple[int | None, int | None]]) -> list[int]:
        """File indices by first record timestamp (given order on ties); files without records last."""
        return sorted(range(len(starts)), key=lambda i: (starts[i][0] is None, starts[i][0] or 0, i))

    def assign(self, index: int, path: Path, first_ts: int | None, linktype: int | None) -> Stream:
        """The stream file ``index`` joins (a new one when none can take it)."""
        pattern = name_pattern(path)
        best: Stream | None = None
        if first_ts is not None:
            # Files come in time order: a stream that cannot take this file cannot take a later one either, so
            # thousands of unrelated files are not each compared with every stream before them.
            self._open = [s for s in self._open if not self.ended(s, first_ts)]
            fits = [
                s
                for s in self._open
                if not s.busy
                and s.linktype == linktype
                and s.last_ts is not None
                and s.last_ts - JOIN_SLACK_NS <= first_ts <= s.last_ts + self.gap_ns
            ]
            if fits:
                best = max(fits, key=lambda s: (s.pattern == pattern, s.last_ts))
        if best is None:
            best = Stream(len(self.streams), linktype=linktype, pattern=pattern)
            self.streams.append(best)
            self._open.append(best)
        best.files.append(index)
        return best

    def ended(self, stream: Stream, next_first_ts: int | None) -> bool:
        """True when ``stream`` can take no file whose first timestamp is ``next_first_ts`` or later (files come
        in that order; None: a file without records, which starts no continuation but may precede ones that do):
        it is not being read and it ended more than the gap before (or holds no record)."""
        if stream.busy or next_first_ts is None:
            return False
        return stream.last_ts is None or next_first_ts > stream.last_ts + self.gap_ns

    @staticmethod
    def read(stream: Stream, ts_last: int | None) -> None:
        """The stream's newest file has been read to its end; ``ts_last`` is its latest timestamp."""
        if ts_last is not None:
            stream.last_ts = ts_last if stream.last_ts is None else max(stream.last_ts, ts_last)


class _Buffered:
    """One file's batches not yet merged: columns, payload snippets, and reader-level counts."""

    def __init__(self, it: Iterator[PacketBatch]) -> None:
        self.it = it
        self.parts: list[PacketBatch] = []
        self.done = False

    def fill(self) -> None:
        """Read batches until one holds packets (or the file ends)."""
        while not self.done and not any(len(b) for b in self.parts):
            b = next(self.it, None)
            if b is None:
                self.done = True
            else:
                self.parts.append(b)

    def top(self) -> int | None:
        """The latest buffered timestamp (None when nothing is buffered)."""
        ts = [int(b.cols["ts_ns"].max()) for b in self.parts if len(b)]
        return max(ts) if ts else None


def merge_by_time(starts: Sequence[int | None], readers: Sequence[Iterator[PacketBatch]]) -> Iterator[PacketBatch]:
    """The packets of several files as one stream in timestamp order (stable: file order on ties).

    ``starts[i]`` is file i's first timestamp (``PacketSource.peek``): a file is opened only when the merge
    reaches it, so rotated files in the list cost one reader at a time. Each file must be in time order
    (as a capture is, up to the small reordering flow building tolerates); batches are tagged with their
    file number (``tag_batch``) before merging. Emitted batches carry the bad-packet, record and filtered
    counts and the tunnel names of the batches they drew from.
    """
    pending = sorted(range(len(readers)), key=lambda i: (starts[i] is None, starts[i] or 0, i))
    active: dict[int, _Buffered] = {}
    while pending or active:
        for buf in active.values():
            buf.fill()
        tops = [t for t in (b.top() for b in active.values()) if t is not None]
        live = [b for b in active.values() if not b.done]
        # Everything up to ``bound`` is final: no open file can still deliver an earlier packet.
        bound = min((t for t in (b.top() for b in live) if t is not None), default=None)
        if pending:
            nxt = starts[pending[0]]
            if not live or nxt is None or bound is None or nxt <= bound:
                i = pending.pop(0)
                active[i] = _Buffered(iter(readers[i]))
                continue
        if bound is None:  # every open file is read to its end
            bound = max(tops, default=0)
        out = _take_until(active, bound)
        for i in [i for i, b in active.items() if b.done and not b.parts]:
            del active[i]
        if out is not None:
            yield out


def _take_until(active: dict[int, _Buffered], bound: int) -> PacketBatch | None:
    """Pop every buffered packet with ``ts_ns <= bound`` into one batch in time order."""
    taken: list[PacketBatch] = []
    for i in sorted(active):
        buf = active[i]
        keep: list[PacketBatch] = []
        for b in buf.parts:
            sel = b.cols["ts_ns"] <= bound
            if sel.all():
                taken.append(b)
                continue
            pidx = b.cols["pkt_idx"][sel]
            pin = np.isin(b.payload_idx, pidx)
            head = PacketBatch(
                {k: v[sel] for k, v in b.cols.items()},
                np.asarray(b.payload_idx)[pin],
                [p for p, k in zip(b.payloads, pin.tolist(), strict=True) if k],
                b.bad,
                b.records,
                b.tunnels,
                b.filtered,
            )
            rest = PacketBatch(
                {k: v[~sel] for k, v in b.cols.items()},
                np.asarray(b.payload_idx)[~pin],
                [p for p, k in zip(b.payloads, pin.tolist(), strict=True) if not k],
                tunnels=b.tunnels,
            )
            if len(head) or head.bad or head.records or head.filtered:
                taken.append(head)
            keep.append(rest)
        buf.parts = keep
    if not taken:
        return None
    if len(taken) == 1:
        return taken[0]
    out = PacketBatch.concat(taken)
    order = np.argsort(out.cols["ts_ns"], kind="stable")
    out.cols = {k: v[order] for k, v in out.cols.items()}
    return out
