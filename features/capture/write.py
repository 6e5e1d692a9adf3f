"""Writing captured frames back out: classic pcap and pcapng writers for carved evidence.

A ``FrameWriter`` takes frames one at a time (time in ns, the captured bytes, the original length, the link
type) and writes them in the order given, to a temporary file renamed into place by ``commit`` (``discard``
removes it). ``PcapWriter`` keeps one link type and the input's timestamp resolution (micro- or
nanoseconds); ``PcapngWriter`` writes one section whose header carries a comment, and one interface per link
type it meets (nanosecond timestamps), so frames of several captures and link types fit in one file. Writers
may be parked (``park``) to free their file handle and pick up where they were on the next frame.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from features.common import atomic_path, make_parent

SNAPLEN = 262_144
PCAP_US, PCAP_NS = 0xA1B2C3D4, 0xA1B23C4D


class FrameWriter:
    """Common part: a temporary file beside the target, opened on demand, renamed by ``commit``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        make_parent(self.path)  # a file in the way is one line naming it, not Python's errno text
        self.frames = 0
        self._fh: BinaryIO | None = None
        self._started = False

    def _file(self) -> BinaryIO:
        if self._fh is None:
            self._fh = open(self.tmp, "ab" if self._started else "wb")  # noqa: SIM115 - kept open across calls
            if not self._started:
                self._started = True
                self._fh.write(self._header())
        return self._fh

    def _header(self) -> bytes:
        raise NotImplementedError

    def write(self, ts_ns: int, frame: bytes, wirelen: int, linktype: int) -> None:
        raise NotImplementedError

    def park(self) -> None:
        """Close the file handle; the next ``write`` reopens it and appends."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def commit(self) -> Path:
        """Finish the file and rename it into place (atomically); returns its path."""
        self._file()  # a writer that got no frame still writes its header
        self.park()
        with atomic_path(self.path) as tmp:
            os.replace(self.tmp, tmp)
        return self.path

    def discard(self) -> None:
        self.park()
        if self.tmp.exists():
            self.tmp.unlink()


class PcapWriter(FrameWriter):
    """Classic little-endian pcap of one link type, microsecond or nanosecond timestamps."""

    def __init__(self, path: Path, linktype: int, nano: bool) -> None:
        super().__init__(path)
        self.linktype = linktype
        self.nano = nano

    def _header(self) -> bytes:
        return struct.pack("<IHHiIII", PCAP_NS if self.nano else PCAP_US, 2, 4, 0, 0, SNAPLEN, self.linktype)

    def write(self, ts_ns: int, frame: bytes, wirelen: int, linktype: int) -> None:
        assert linktype == self.linktype, "a pcap file holds one link type"
        sec, ns = divmod(ts_ns, 1_000_000_000)
        frac = ns if self.nano else ns // 1000
        self._file().write(struct.pack("<IIII", sec, frac, len(frame), wirelen) + frame)
        self.frames += 1


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


class PcapngWriter(FrameWriter):
    """pcapng: one section (its header carries ``comment``), an interface per link type, nanosecond times."""

    def __init__(self, path: Path, comment: str) -> None:
        super().__init__(path)
        self.comment = comment
        self.ifaces: dict[int, int] = {}  # link type -> interface id

    def _header(self) -> bytes:
        opts = _option(1, self.comment.encode()) + _option(4, b"nta carve") + struct.pack("<HH", 0, 0)
        return _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)

    def write(self, ts_ns: int, frame: bytes, wirelen: int, linktype: int) -> None:
        fh = self._file()
        iface = self.ifaces.get(linktype)
        if iface is None:
            iface = self.ifaces[linktype] = len(self.ifaces)
            opts = _option(9, bytes([9])) + struct.pack("<HH", 0, 0)  # if_tsresol: 10^-9 s
            fh.write(_block(1, struct.pack("<HHI", linktype, 0, SNAPLEN) + opts))
        body = struct.pack("<IIIII", iface, ts_ns >> 32 & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF, len(frame), wirelen)
        fh.write(_block(6, body + frame))
        self.frames += 1
