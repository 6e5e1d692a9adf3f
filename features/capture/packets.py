"""The contract between packet decoding and flow building: one numpy column per header field.

``features.capture.decode`` turns a chunk of raw frames into a ``PacketBatch``; ``features.flows.builder`` builds flows
from batches. No Python object per packet: every field is a numpy array of length n (packets that
decoded to IP). Addresses are 128-bit, split in two uint64 halves; IPv4 is IPv4-mapped IPv6
(``::ffff:a.b.c.d``), so one key layout serves both versions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from features.capture.pcap import RecordChunk

# name -> numpy dtype; "absent" sentinel in the comment.
PACKET_COLUMNS: dict[str, np.dtype] = {
    # index of the record in its capture file (0-based); in a stream of files, file number << 40 | index
    # (features.capture.streams)
    "pkt_idx": np.dtype(np.int64),
    "ts_ns": np.dtype(np.int64),  # capture timestamp, ns since the Unix epoch, UTC
    "vlan": np.dtype(np.int32),  # outermost VLAN id; -1 when untagged
    "ip_version": np.dtype(np.uint8),  # 4 or 6
    "proto": np.dtype(np.uint8),  # IP protocol of the transport (after IPv6 extension headers)
    "src_hi": np.dtype(np.uint64),  # source address, high 64 bits
    "src_lo": np.dtype(np.uint64),  # source address, low 64 bits
    "dst_hi": np.dtype(np.uint64),
    "dst_lo": np.dtype(np.uint64),
    "sport": np.dtype(np.int32),  # TCP/UDP source port; -1 when absent (other protos, non-first fragments)
    "dport": np.dtype(np.int32),  # TCP/UDP destination port; -1 when absent
    "icmp_type": np.dtype(np.int16),  # ICMP/ICMPv6 type; -1 when absent
    "icmp_code": np.dtype(np.int16),  # -1 when absent
    "tcp_flags": np.dtype(np.uint8),  # FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80
    "tcp_seq": np.dtype(np.uint32),  # 0 when not TCP
    "tcp_ack": np.dtype(np.uint32),
    "tcp_win": np.dtype(np.uint16),
    "ip_len": np.dtype(np.int32),  # IP bytes of this packet from the length field (IPv6: 40 + payload length)
    "payload_len": np.dtype(
        np.int32
    ),  # transport payload bytes from the length fields (0 for non-first fragments' share is their data)
    "ip_id": np.dtype(np.uint32),  # IPv4 identification, or the IPv6 fragment header id; 0 when not fragmented
    "frag_off": np.dtype(np.int32),  # fragment offset in bytes; 0 when not fragmented
    "more_frags": np.dtype(np.bool_),  # MF flag / IPv6 M flag
    "is_frag": np.dtype(np.bool_),  # part of a fragmented datagram (offset > 0 or MF set)
    "tunnel": np.dtype(np.uint64),  # id of the tunnel the packet came out of (PacketBatch.tunnels); 0: none
}


@dataclass
class PacketBatch:
    """Decoded packets of one chunk of one capture file, as columns.

    ``payloads`` holds the first bytes of TCP payload for packets on cleartext services whose
    content NSL-KDD's content features read (see ``CONTENT_PORTS``), keyed by ``pkt_idx``.
    """

    cols: dict[str, np.ndarray]
    payload_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # pkt_idx of each payload
    payloads: list[bytes] = field(default_factory=list)
    bad: Counter[str] = field(default_factory=Counter)  # bad/skipped packets by name
    records: int = 0  # capture records seen in this chunk, decoded or not
    tunnels: dict[int, str] = field(default_factory=dict)  # tunnel id -> "vxlan 10.0.0.1 10.0.0.2"
    filtered: int = 0  # records of this chunk left out by a PacketFilter (features.capture.filter)
    chunk: RecordChunk | None = None  # the records themselves, when PacketSource.keep_records (carving)

    def __len__(self) -> int:
        return int(self.cols["ts_ns"].shape[0])

    @staticmethod
    def empty() -> PacketBatch:
        return PacketBatch({k: np.zeros(0, dt) for k, dt in PACKET_COLUMNS.items()})

    @staticmethod
    def concat(batches: list[PacketBatch]) -> PacketBatch:
        """The batches one after another (packet order kept), with their counts and tunnels; no records."""
        if len(batches) <= 1:
            return batches[0] if batches else PacketBatch.empty()
        out = PacketBatch(
            {k: np.concatenate([b.cols[k] for b in batches]) for k in batches[0].cols},
            np.concatenate([np.asarray(b.payload_idx, np.int64) for b in batches]),
            [p for b in batches for p in b.payloads],
            records=sum(b.records for b in batches),
            filtered=sum(b.filtered for b in batches),
        )
        for b in batches:
            out.bad.update(b.bad)
            out.tunnels.update(b.tunnels)
        return out


def coalesced(batches: Iterator[PacketBatch], min_packets: int) -> Iterator[PacketBatch]:
    """``batches`` joined into batches of at least ``min_packets`` packets (the last may have fewer); a batch
    carrying its records (``chunk``, for carving) is passed on alone. Flows do not depend on where batches
    end; each batch costs the flow builder a pass over its open flows, so fewer, bigger batches cost less."""
    held: list[PacketBatch] = []
    size = 0
    try:
        for b in batches:
            if b.chunk is not None:
                if held:
                    yield PacketBatch.concat(held)
                    held, size = [], 0
                yield b
                continue
            held.append(b)
            size += len(b)
            if size >= min_packets:
                yield PacketBatch.concat(held)
                held, size = [], 0
    except Exception:  # what was decoded before an error still arrives first, as without coalescing
        if held:
            yield PacketBatch.concat(held)
        raise
    if held:
        yield PacketBatch.concat(held)


# TCP ports whose cleartext payload the content features read (FTP, Telnet, rlogin/rsh, HTTP, POP3, IMAP).
CONTENT_PORTS: frozenset[int] = frozenset({21, 23, 80, 110, 143, 512, 513, 514, 8080})
# How many payload bytes per packet are kept for content features.
CONTENT_SNAP = 512
