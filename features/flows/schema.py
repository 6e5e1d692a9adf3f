"""The flow record, defined once. Parquet, CSV, report columns and the docs/flows.md table derive from ``FLOW_FIELDS``.

Flow definition
---------------
* A flow is bidirectional and keyed by (outer VLAN id, tunnel, IP protocol, the two endpoints (address,
  port)). Rotated files of one capture session are one packet stream (``features.capture.streams``), so a
  flow continues across their boundaries; files overlapping in time are kept apart unless merged.
  ``source_file`` names the file of the flow's first packet.
* Tunnels (GRE, ERSPAN, PPTP, IP-in-IP, 6in4, VXLAN, Geneve, Teredo, GTP-U; ``features.capture.tunnels``) are
  decapsulated: the flow is the inner conversation, and ``tunnel`` names the kind and the outer endpoints.
  With ``decap=False`` (``--no-decap``) the outer packets are the flow instead.
* The originator (``orig_*``) is the sender of the first packet seen, except that a TCP flow whose first
  packet is a SYN-ACK is flipped, as Zeek does it: the SYN-ACK's receiver becomes the originator and the
  history starts with ``^``.
* TCP: a flow ends after both sides sent FIN, or after a RST, plus a short delay for stragglers (5 s,
  Zeek's ``tcp_close_delay``/``tcp_reset_delay``); a new SYN on the same tuple after the end starts a new
  flow. On an open flow, a SYN whose sequence number differs from the flow's ISN (or, while the
  originator has sent nothing, a SYN-ACK with a new sequence number) also starts a new flow, as
  Zeek's connection-reuse check and tshark do (see ``features.flows.reuse``). Idle timeouts (capture time,
  never wall time) are configurable with Zeek's defaults: TCP 300 s, UDP 60 s, ICMP and other protocols 60 s.
* ICMP and ICMPv6: echo request and echo reply are separate records (NSL-KDD's ``eco_i``/``ecr_i``);
  a record is keyed by (src, dst, type, code) in the sender's direction. ICMP errors that quote a
  packet stay ICMP records with their own type and code.
* IP fragments: a non-first fragment is attributed to the flow of its datagram (VLAN, src, dst, protocol,
  IP id), through the nearest first fragment within 30 s (before it, else after it); without one it forms
  a flow without ports. Fragments that overlap an earlier fragment of their datagram (exact duplicates
  excepted), or that make an impossible datagram (past 65,535 bytes), are counted per flow in
  ``wrong_fragment``, as NSL-KDD defines it (teardrop and ping-of-death live only there).
* ``conn_state`` and ``history`` follow Zeek's definitions (see ``features.flows.tcpstate``); UDP and other
  protocols get Zeek's UDP/other rules.
* ``land``: same address and same port on both ends (same address for protocols without ports).
* Byte counts: ``*_bytes`` are transport payload bytes (as Zeek and NSL-KDD count them), ``*_ip_bytes``
  are IP-level bytes from the IP length fields. Counts come from the headers, not the captured length,
  so snaplen-truncated packets count in full.

Timestamps are UTC, microsecond resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = "3"  # 2: the tunnel column; 3: uid (files of older versions read with them null)


@dataclass(frozen=True)
class Field:
    """One column of the flow table: its name, Arrow type, unit and meaning."""

    name: str
    type: pa.DataType
    unit: str
    doc: str
    nullable: bool = False


_TS = pa.timestamp("us", tz="UTC")

FLOW_FIELDS: tuple[Field, ...] = (
    Field(
        "flow_id",
        pa.int64(),
        "",
        "Row number of the flow in this table, in (ts, key) order; names a flow within one run only (use uid across runs).",
    ),
    Field(
        "uid",
        pa.string(),
        "",
        "Unique id of the flow across runs, Zeek-style ('C' + 17 base-62 characters): a hash of the capture's SHA-256, "
        "the flow key and its start time, so the same capture always gives the same uids (features.flows.uid); "
        "null in files of schema version 2 or older.",
        nullable=True,
    ),
    Field("community_id", pa.string(), "", "Community ID v1 (seed 0) of the flow, to pivot to Zeek and Suricata."),
    Field("source_file", pa.string(), "", "Capture file of the flow's first packet."),
    Field("ts", _TS, "UTC", "Time of the flow's first packet."),
    Field("ts_end", _TS, "UTC", "Time of the flow's last packet."),
    Field(
        "duration_s",
        pa.float64(),
        "s",
        "ts_end - ts in seconds (real, microsecond resolution; NSL-KDD's whole-second 'duration' exists only in the "
        "KDD feature table, and as kdd_duration in nta scan's flows.parquet).",
    ),
    Field("proto", pa.string(), "", "Transport: tcp, udp, icmp, icmp6, or the IP protocol name/number."),
    Field("ip_proto", pa.uint8(), "", "IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...)."),
    Field("ip_version", pa.uint8(), "", "4 or 6."),
    Field("vlan", pa.int32(), "", "Outermost 802.1Q/802.1ad VLAN id; null when untagged.", nullable=True),
    Field(
        "tunnel",
        pa.string(),
        "",
        "Tunnel the flow came out of: kind (gre, erspan, pptp, ipip, 6in4, vxlan, geneve, teredo, gtpu; nested "
        "ones joined by /) and the outer endpoints, e.g. 'vxlan 10.0.0.1 10.0.0.2'; null when not tunnelled.",
        nullable=True,
    ),
    Field("orig_h", pa.string(), "", "Originator IP address."),
    Field("orig_p", pa.int32(), "", "Originator port (TCP/UDP); null otherwise.", nullable=True),
    Field("resp_h", pa.string(), "", "Responder IP address."),
    Field("resp_p", pa.int32(), "", "Responder port (TCP/UDP); null otherwise.", nullable=True),
    Field("icmp_type", pa.int16(), "", "ICMP/ICMPv6 type; null for other protocols.", nullable=True),
    Field("icmp_code", pa.int16(), "", "ICMP/ICMPv6 code; null for other protocols.", nullable=True),
    Field("orig_pkts", pa.int64(), "packets", "Packets sent by the originator."),
    Field("resp_pkts", pa.int64(), "packets", "Packets sent by the responder."),
    Field("orig_bytes", pa.int64(), "bytes", "Transport payload bytes sent by the originator."),
    Field("resp_bytes", pa.int64(), "bytes", "Transport payload bytes sent by the responder."),
    Field("orig_ip_bytes", pa.int64(), "bytes", "IP-level bytes sent by the originator."),
    Field("resp_ip_bytes", pa.int64(), "bytes", "IP-level bytes sent by the responder."),
    Field(
        "conn_state",
        pa.string(),
        "",
        "Zeek conn_state (S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH).",
    ),
    Field(
        "history", pa.string(), "", "Zeek history letters; upper case from the originator, lower from the responder."
    ),
    Field("land", pa.bool_(), "", "Same address and port on both ends (NSL-KDD 'land')."),
    Field("wrong_fragment", pa.int32(), "fragments", "Overlapping or impossible IP fragments in the flow."),
    Field("urgent", pa.int32(), "packets", "Packets with the TCP URG flag set."),
)

FLOW_COLUMNS: tuple[str, ...] = tuple(f.name for f in FLOW_FIELDS)

FLOW_SCHEMA: pa.Schema = pa.schema([pa.field(f.name, f.type, nullable=f.nullable) for f in FLOW_FIELDS])

# Columns whose values differ from flow to flow. Parquet's dictionary encoding of such a column builds a dictionary
# as big as the column, finds it too big and falls back to plain pages: on the 1M-packet capture's flows.parquet
# it cost 15% more of the writer's CPU for a file 11% bigger (8.10 against 7.23 MB).
UNIQUE_PER_FLOW: tuple[str, ...] = ("flow_id", "uid", "community_id", "ts", "ts_end", "duration_s")


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The columns of ``schema`` worth Parquet's dictionary encoding: all but ``UNIQUE_PER_FLOW``."""
    return [name for name in schema.names if name not in UNIQUE_PER_FLOW]


# Parquet key-value metadata keys (values are UTF-8 JSON strings).
META_SCHEMA_VERSION = b"nta.schema_version"
META_NTA_VERSION = b"nta.version"
META_SOURCES = b"nta.sources"  # JSON list of {"file", "sha256", "packets", "bytes"}
META_BAD_PACKETS = b"nta.bad_packets"  # JSON object {name: count}
META_WARNINGS = b"nta.warnings"  # JSON list of one-line warnings


def markdown_table() -> str:
    """The flow columns as a Markdown table, for docs/flows.md (tests/test_readme.py checks it)."""
    rows = ["| column | type | unit | meaning |", "| --- | --- | --- | --- |"]
    rows += [f"| `{f.name}` | {f.type} | {f.unit} | {f.doc} |" for f in FLOW_FIELDS]
    return "\n".join(rows)
