"""Zeek conn.log records -> nta's flow records (``features.flows.schema``); ``features.zeeklog.stream`` reads them
into the flow table (``read_conn_logs(paths) -> Extraction``, or chunk by chunk).

Each connection becomes one flow record; the fields map by name (``id.orig_h`` -> ``orig_h``, ``orig_pkts``,
``orig_ip_bytes``, ``conn_state``, ``history``, ``community_id``, ...), with these rules:

* ``ts`` is the start; ``ts_end`` = ``ts`` + ``duration`` (unset duration: 0, as Zeek leaves it unset for a
  connection of one instant).
* ``proto``: ``tcp``/``udp`` keep their ports; ``icmp`` puts the ICMP type in ``id.orig_p`` and in ``id.resp_p``
  the code, or for a request/reply type (echo, timestamp, ...) the counterpart type, as Zeek keys ICMP
  (such a code is 0); they become ``icmp_type``/``icmp_code`` and the ports are null. ICMP over IPv6 (an IPv6
  address) is ``icmp6`` (IP protocol 58). A Zeek ICMP connection that holds a request and its replies becomes
  two records, request and reply, as nta's flow definition and NSL-KDD keep them apart (``eco_i``/``ecr_i``);
  both keep the connection's uid. Other protocols (``unknown_transport``) take the IP protocol
  and its name (``gre``, ``59``) from the ``ip_proto`` field where the log has it (Zeek 6.1 and later, and nta's
  own conn.log); without it they keep Zeek's name with IP protocol 255. No ports.
* ``orig_bytes``/``resp_bytes`` unset (Zeek sets them only when the duration is above zero): the IP bytes less an
  IP header (20 bytes IPv4, 40 IPv6) and the transport header (8 bytes UDP/ICMP, 20 TCP) per packet, exact for
  packets without IP or TCP options; for TCP only when the history shows data from that side (``D``/``d``),
  else 0 (an instant TCP connection without data is a lone SYN, RST or ACK, whose options are no payload).
* ``community_id`` from the log where it has one (Zeek's community-id policy script), else computed
  (``features.flows.community_id``). ``vlan`` from the ``vlan`` field where present (Zeek's vlan-logging).
* Not in conn.log, so 0: ``wrong_fragment`` (Zeek reports fragment trouble in weird.log, not per connection)
  and ``urgent``; ``tunnel`` is null (``tunnel_parents`` holds uids, not the tunnel's kind and endpoints).
  ``UNAVAILABLE_FEATURES`` lists the KDD features a conn.log cannot give (those two and the content features,
  of which only ``logged_in`` follows from the flag and byte counts: ``features.kdd.content``).
* Zeek's ``service`` (what its protocol analyzers confirmed) is kept beside the flows (``Extraction.service_hints``):
  NSL-KDD's ``service`` comes from the port as for captures, and Zeek's names it where the port names nothing
  (``features.kdd.services.service_expr``).
* ``uid`` is the connection's own where the logs give it once, so every output joins with the team's Zeek logs;
  nta's (``features.flows.uid``) where the record has none or the logs give it twice (an ICMP connection split in
  two records), and ``nta scan --zeek`` logs those under the log's uid (``Extraction.uids``).
* Records lacking a field every flow needs (``ts``, ``id.*``, ``proto``), or with an address that is not an IP
  address, are counted as ``zeek_missing_field``/``zeek_bad_value`` and left out.

Several logs (a rotated set: ``conn.log`` and ``conn.2024-03-01-10-00-00.log.gz``, given together or found in a
folder) are one stream: files are ordered by their first connection's time, records by (start time, file,
flow key), as ``features.flows.extract`` orders a capture's flows, so the window features span files. A log whose
first connection starts more than 5 minutes (the longest flow timeout) after every earlier record ended starts a
stream of its own (``log_streams``), whose window features are its own.
A non-conn Zeek log (``#path dns``, or JSON records without ``conn_state``) is refused.

Logs of any size are read block by block and sorted out of core (``features.zeeklog.stream.ConnStream``, what a
scan uses); ``features.zeeklog.stream.read_conn_logs`` gathers its chunks into one table.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from features.capture.filter import PacketFilter
from features.capture.streams import DEFAULT_GAP_NS
from features.common import InputError
from features.flows.community_id import ICMP4_COUNTERPART, ICMP6_COUNTERPART, community_id_array
from features.flows.records import PROTO_NAMES
from features.flows.zeek import CONN_LOG
from features.kdd.content import CONTENT_FEATURES
from features.zeeklog.read import Sniffed, sniff

WANTED: dict[str, str] = {
    **{f.name: f.type for f in CONN_LOG.fields},  # ip_proto among them: Zeek 6.1+ logs it
    "vlan": "int",  # policy/protocols/conn/vlan-logging
}
REQUIRED: tuple[str, ...] = ("ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
UNKNOWN_PROTO = 255  # IP protocol of an unknown_transport record when the log has no ip_proto field
UNAVAILABLE_FEATURES: tuple[str, ...] = (
    "wrong_fragment",
    "urgent",
    *(c for c in CONTENT_FEATURES if c != "logged_in"),
)


def unavailable_note(unavailable: Sequence[str] = UNAVAILABLE_FEATURES) -> str:
    """One line for the report and ``nta features``: which KDD features a Zeek conn log cannot give."""
    content = [c for c in unavailable if c in CONTENT_FEATURES]
    other = [c for c in unavailable if c not in content]
    text = f"Zeek conn log: not in it, taken as 0: {', '.join(other) or 'nothing'}"
    if content:
        text += (
            f" and {len(content)} content features ({content[0]} .. {content[-1]} but logged_in, which follows"
            " from flag and bytes)"
        )
    return text


# Sort order of the table: time, the log's place in time order, the flow key, then the log's records before the
# replies split from its ICMP connections, each in the log's order (``_flows``).
ORDER = (
    "ts", "_file", "ip_proto", "orig_h", "orig_p", "resp_h", "resp_p", "icmp_type", "icmp_code", "vlan", "_reply", "_row",
)  # fmt: skip
_V4_MAPPED = 0xFFFF_0000_0000  # IPv4 as ::ffff:a.b.c.d, PacketBatch's layout (what community_id_array reads)


def conn_kind(found: Sniffed | None) -> str:
    """Why ``found`` is not a Zeek conn log, for messages; "" when it is one."""
    if found is None:
        return "not a Zeek log"
    if found.format == "tsv":
        return "" if found.path_name in ("conn", "") else f"a Zeek {found.path_name} log, not conn"
    if not found.keys:
        return "JSON lines without a Zeek record in the first lines"
    if "conn_state" in found.keys or "orig_pkts" in found.keys:
        return ""
    return "JSON records without conn_state or orig_pkts: a Zeek log other than conn"


def check_conn_log(path: Path) -> str:
    """The format (``zeek-tsv``/``zeek-json``) of a Zeek conn log; InputError (one line) otherwise."""
    found = sniff(path)
    why = conn_kind(found)
    if why:
        raise InputError(f"{path}: {why}")
    assert found is not None
    return f"zeek-{found.format}"


def _addresses(text: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ip_version, hi, lo) per address (0, 0, 0 for text that is not an address); each distinct address parsed once."""
    uniq = text.unique()
    vals = {}
    for a in uniq.drop_nulls().to_list():
        try:
            ip = ipaddress.ip_address(a.split("%")[0])
        except ValueError:
            vals[a] = (0, 0, 0)
            continue
        n = int(ip) | (_V4_MAPPED if ip.version == 4 else 0)
        vals[a] = (ip.version, n >> 64, n & (2**64 - 1))
    keys = list(vals)
    idx = text.replace_strict(keys, list(range(len(keys))), default=len(keys), return_dtype=pl.Int64).to_numpy()
    table = np.array([*vals.values(), (0, 0, 0)], dtype=np.uint64).reshape(-1, 3)
    picked = table[idx]
    return picked[:, 0].astype(np.uint8), picked[:, 1], picked[:, 2]


def _flows(
    frame: pl.DataFrame, file_index: int, source: str, bad: Counter[str], rows: tuple[int, int] = (0, 0)
) -> pl.DataFrame:
    """Flow records of one log's records: FLOW_COLUMNS but flow_id, plus _file, _reply, _row, _service and _uid
    (Zeek's). ``_row`` numbers the log's records (``_reply`` false) and, apart, the replies split from its ICMP
    connections (``_reply`` true), each in the log's order; ``rows``: how many of each the log's earlier blocks
    gave, so a log read block by block is numbered as one read whole."""
    missing = pl.any_horizontal([pl.col(c).is_null() for c in REQUIRED])
    n_missing = frame.select(missing.sum()).item()
    if n_missing:
        bad["zeek_missing_field"] += n_missing
        frame = frame.filter(~missing)
    ov, oh, ol = _addresses(frame["id.orig_h"])
    rv, rh, rl = _addresses(frame["id.resp_h"])
    ok = (ov > 0) & (ov == rv)
    if not ok.all():
        bad["zeek_bad_value"] += int((~ok).sum())
        keep = pl.Series(ok)
        frame = frame.filter(keep)
        ov, oh, ol, rh, rl = ov[ok], oh[ok], ol[ok], rh[ok], rl[ok]
    zproto = frame["proto"].str.to_lowercase()
    given = frame["ip_proto"].cast(pl.Int64)
    by_name = (
        pl.DataFrame({"p": zproto, "v": ov})
        .select(
            pl.when(pl.col("p") == "tcp")
            .then(6)
            .when(pl.col("p") == "udp")
            .then(17)
            .when(pl.col("p") == "icmp")
            .then(pl.when(pl.col("v") == 6).then(58).otherwise(1))
            .otherwise(UNKNOWN_PROTO)
        )
        .to_series()
    )
    ip_proto = given.fill_null(by_name).clip(0, 255).cast(pl.UInt8).to_numpy()
    names = np.array([PROTO_NAMES.get(p, str(p)) for p in range(256)], object)
    known = given.is_not_null().to_numpy() | (by_name.to_numpy() != UNKNOWN_PROTO)
    proto_name = np.where(known, names[ip_proto], zproto.to_numpy().astype(object))
    icmp = (ip_proto == 1) | (ip_proto == 58)
    ports = (ip_proto == 6) | (ip_proto == 17)
    op = frame["id.orig_p"].cast(pl.Int64).to_numpy()
    rp = frame["id.resp_p"].cast(pl.Int64).to_numpy()
    counter = _counterparts(ip_proto, op)
    code = np.where(icmp & (counter >= 0) & (rp == counter), 0, rp)  # Zeek: a paired type's counterpart, not code
    cid_given = frame["community_id"]
    need = cid_given.is_null() | (cid_given == "")
    if need.any():
        sp = np.where(ports | icmp, op, -1)
        dp = np.where(ports | icmp, rp, -1)
        computed = pl.Series(community_id_array(ov.astype(np.int64), ip_proto, oh, ol, rh, rl, sp, dp), dtype=pl.String)
        cid = pl.select(pl.when(pl.lit(need)).then(pl.lit(computed)).otherwise(pl.lit(cid_given))).to_series()
    else:
        cid = cid_given
    dur_us = frame["duration"].dt.total_microseconds().fill_null(0).clip(lower_bound=0)
    hdr = np.where(ov == 6, 40, 20) + 8
    est: dict[str, np.ndarray] = {}
    history = frame["history"].fill_null("")
    for side, letter in (("orig", "D"), ("resp", "d")):
        ipb = frame[f"{side}_ip_bytes"].cast(pl.Int64).fill_null(0).to_numpy()
        pk = frame[f"{side}_pkts"].cast(pl.Int64).fill_null(0).to_numpy()
        data = history.str.contains(letter, literal=True).to_numpy()  # TCP payload seen from this side
        tcp_est = np.where(data, np.maximum(0, ipb - pk * (hdr + 12)), 0)  # a 20-byte TCP header, not 8
        est[side] = np.where(ip_proto == 6, tcp_est, np.maximum(0, ipb - pk * hdr))
    flows = pl.DataFrame(
        {
            "community_id": cid,
            "source_file": pl.Series([source] * frame.height, dtype=pl.String),
            "ts": frame["ts"],
            "ts_end": frame["ts"] + pl.Series(dur_us).cast(pl.Duration("us")),
            "duration_s": dur_us.cast(pl.Float64) / 1e6,
            "proto": pl.Series(proto_name, dtype=pl.String),
            "ip_proto": pl.Series(ip_proto),
            "ip_version": pl.Series(ov),
            "vlan": frame["vlan"].cast(pl.Int32, strict=False),
            "tunnel": pl.Series([None] * frame.height, dtype=pl.String),
            "orig_h": frame["id.orig_h"],
            "orig_p": pl.Series(np.where(ports, op, 0), dtype=pl.Int32).scatter(np.flatnonzero(~ports), None),
            "resp_h": frame["id.resp_h"],
            "resp_p": pl.Series(np.where(ports, rp, 0), dtype=pl.Int32).scatter(np.flatnonzero(~ports), None),
            "icmp_type": pl.Series(np.where(icmp, op, 0), dtype=pl.Int16).scatter(np.flatnonzero(~icmp), None),
            "icmp_code": pl.Series(np.where(icmp, code, 0), dtype=pl.Int16).scatter(np.flatnonzero(~icmp), None),
            "orig_pkts": frame["orig_pkts"].cast(pl.Int64).fill_null(0),
            "resp_pkts": frame["resp_pkts"].cast(pl.Int64).fill_null(0),
            "orig_bytes": frame["orig_bytes"].cast(pl.Int64).fill_null(pl.Series(est["orig"])),
            "resp_bytes": frame["resp_bytes"].cast(pl.Int64).fill_null(pl.Series(est["resp"])),
            "orig_ip_bytes": frame["orig_ip_bytes"].cast(pl.Int64).fill_null(0),
            "resp_ip_bytes": frame["resp_ip_bytes"].cast(pl.Int64).fill_null(0),
            "conn_state": frame["conn_state"].fill_null("OTH"),
            "history": frame["history"].fill_null(""),
            "land": pl.Series((oh == rh) & (ol == rl) & (~ports | (op == rp))),
            "wrong_fragment": pl.Series(np.zeros(frame.height, np.int32)),
            "urgent": pl.Series(np.zeros(frame.height, np.int32)),
            "_file": pl.Series([file_index] * frame.height, dtype=pl.Int64),
            "_service": frame["service"],
            "_uid": frame["uid"],
        }
    )
    flows = _split_icmp_pairs(flows.with_columns(_reply=pl.lit(False)), counter)
    requests = flows.height - int(flows["_reply"].sum())  # the replies come after the records
    base = np.where(flows["_reply"].to_numpy(), rows[1] - requests, rows[0])
    return flows.with_columns(_row=pl.Series(np.arange(flows.height, dtype=np.int64) + base))


def _counterparts(ip_proto: np.ndarray, itype: np.ndarray) -> np.ndarray:
    """(n,) the counterpart type of each ICMP request/reply type (echo 8 <-> 0, ...), -1 for one-way messages."""
    out = np.full(ip_proto.shape, -1, np.int64)
    for proto, table in ((1, ICMP4_COUNTERPART), (58, ICMP6_COUNTERPART)):
        for t, c in table.items():
            out[(ip_proto == proto) & (itype == t)] = c
    return out


def _split_icmp_pairs(flows: pl.DataFrame, counter: np.ndarray) -> pl.DataFrame:
    """A Zeek ICMP connection holding a request and its replies becomes two records, as nta's flow definition and
    NSL-KDD have them (``eco_i`` and ``ecr_i`` apart): the replies are a record of their own from the responder,
    of the counterpart type, at the connection's start (the log does not say when the first reply came)."""
    pair = (counter >= 0) & (flows["resp_pkts"].to_numpy() > 0)
    if not pair.any():
        return flows
    keep = pl.Series(pair)
    replies = flows.filter(keep).with_columns(
        _reply=pl.lit(True),
        orig_h=pl.col("resp_h"),
        resp_h=pl.col("orig_h"),
        icmp_type=pl.Series(counter[pair], dtype=pl.Int16),
        icmp_code=pl.lit(0, pl.Int16),
        orig_pkts=pl.col("resp_pkts"),
        orig_bytes=pl.col("resp_bytes"),
        orig_ip_bytes=pl.col("resp_ip_bytes"),
        history=pl.lit(""),
    )
    silent = {"resp_pkts": pl.lit(0, pl.Int64), "resp_bytes": pl.lit(0, pl.Int64), "resp_ip_bytes": pl.lit(0, pl.Int64)}
    requests = flows.with_columns(**{k: pl.when(keep).then(v).otherwise(pl.col(k)) for k, v in silent.items()})
    return pl.concat([requests, replies.with_columns(**silent)])


def log_streams(spans: Sequence[tuple[int | None, int | None]]) -> list[int]:
    """Each log's stream (the rank of the stream's first log), logs in time order, given each log's (earliest start,
    latest end) in ns (None without flow records): a log continues the stream before it unless its first
    connection starts more than the longest flow timeout after every earlier record ended.
    Looser than captures' joining (``features.capture.streams``): Zeek writes a connection when it is removed, up to
    its inactivity timeout after its last packet, so rotated logs overlap in time, and times cannot tell a second
    sensor's log from the next piece of a rotated set."""
    keys: list[int] = []
    stream, end = -1, None
    for rank, (first, last) in enumerate(spans):
        if first is not None and last is not None:
            if end is None or first > end + DEFAULT_GAP_NS:
                stream = rank
            end = last if end is None else max(end, last)
        keys.append(stream if stream >= 0 else rank)
    return keys


def _filter_mask(flows: pl.DataFrame, f: PacketFilter) -> np.ndarray:
    """Records that start inside the time window and touch a host and a port asked for (``PacketFilter``)."""
    ts_ns = flows["ts"].dt.epoch("ns").to_numpy()
    keep = f.time_mask(ts_ns)
    if f.by_packet:
        ov, oh, ol = _addresses(flows["orig_h"])
        _, rh, rl = _addresses(flows["resp_h"])
        cols = {
            "ts_ns": ts_ns,
            "ip_version": ov,
            "src_hi": oh,
            "src_lo": ol,
            "dst_hi": rh,
            "dst_lo": rl,
            "sport": flows["orig_p"].cast(pl.Int64).fill_null(-1).to_numpy(),
            "dport": flows["resp_p"].cast(pl.Int64).fill_null(-1).to_numpy(),
            "is_frag": np.zeros(flows.height, bool),
        }
        keep &= f.packet_mask(cols)
    return keep
