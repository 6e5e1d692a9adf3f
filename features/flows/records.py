"""Finished flow states to flow records (``features.flows.schema`` columns) as a polars DataFrame."""

from __future__ import annotations

import ipaddress

import numpy as np
import polars as pl
import pyarrow as pa

from features.flows.community_id import community_id_array
from features.flows.schema import FLOW_COLUMNS, FLOW_SCHEMA
from features.flows.tcpstate import conn_state

PROTO_NAMES: dict[int, str] = {
    1: "icmp",
    2: "igmp",
    4: "ipip",
    6: "tcp",
    17: "udp",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "icmp6",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
}
_V6_TEXT: dict[tuple[int, int], str] = {}  # IPv6 text forms already made (hosts recur across batches)
_STATES: dict[tuple[str, int], str] = {}  # (history, proto) -> conn_state already computed
PAYLOAD_SCHEMA = {"flow_id": pl.Int64, "ts_ns": pl.Int64, "from_orig": pl.Boolean, "payload": pl.Binary}


_NO_PAYLOADS = pl.DataFrame(schema=PAYLOAD_SCHEMA)


def empty_payloads() -> pl.DataFrame:
    """No payload snippets (one frame for every caller: polars frames are immutable, and nta never changes one in
    place; building it cost every batch of every small file a few hundred microseconds)."""
    return _NO_PAYLOADS


def addr_strings(hi: np.ndarray, lo: np.ndarray, ipv: np.ndarray) -> np.ndarray:
    """Text form of addresses (IPv4 dotted quad for version-4 packets, compressed IPv6 otherwise).

    Formatted once per distinct address: flows share few hosts.
    """
    out = np.empty(hi.size, object)
    v4 = ipv == 4
    if v4.any():
        uniq, inv = np.unique(lo[v4] & np.uint64(0xFFFFFFFF), return_inverse=True)
        text = [f"{x >> 24}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}" for x in uniq.tolist()]
        out[v4] = np.array(text, object)[inv]
    v6 = np.flatnonzero(~v4)
    if v6.size:
        if len(_V6_TEXT) > 1_000_000:  # bound the cache on captures with huge numbers of IPv6 hosts
            _V6_TEXT.clear()
        text6 = []
        for h, x in zip(hi[v6].tolist(), lo[v6].tolist(), strict=True):
            t = _V6_TEXT.get((h, x))
            if t is None:
                t = _V6_TEXT[(h, x)] = ipaddress.IPv6Address((h << 64) | x).compressed
            text6.append(t)
        out[v6] = text6
    return out


def _conn_states(hist: list[str], proto: list[int]) -> list[str]:
    """``conn_state`` of each (history, proto); computed once per distinct pair (histories repeat a lot)."""
    if len(_STATES) > 1_000_000:  # bound the cache on captures with huge numbers of distinct histories
        _STATES.clear()
    get = _STATES.get
    out: list[str] = []
    app = out.append
    for key in zip(hist, proto, strict=True):
        s = get(key)
        if s is None:
            s = _STATES[key] = conn_state(*key)
        app(s)
    return out


def tunnel_strings(tun: np.ndarray, names: dict[int, str]) -> pa.Array:
    """Text of each tunnel id (``PacketBatch.tunnels``), null where 0; one lookup per distinct id."""
    if not tun.any():
        return pa.nulls(tun.size, pa.string())
    uniq, inv = np.unique(tun, return_inverse=True)
    text = pa.array([names.get(t) if t else None for t in uniq.tolist()], pa.string())
    return text.take(pa.array(inv.reshape(-1)))


def _source_files(files: list[str], src: np.ndarray) -> pa.Array:
    """Each flow's file name from its index into ``files``: only the files these flows name become strings (a
    stream joined from 10,000 rotated files builds its flows batch by batch, and naming every file each time made
    reading them quadratic)."""
    used, back = np.unique(np.minimum(src, len(files) - 1), return_inverse=True)
    return pa.array([files[i] for i in used.tolist()], pa.string()).take(back.reshape(-1))


def empty_flows() -> pl.DataFrame:
    """An empty frame with the flow table's schema."""
    df = pl.from_arrow(FLOW_SCHEMA.empty_table())
    assert isinstance(df, pl.DataFrame)
    return df


_EMPTY = empty_flows()


def to_frame(
    st: dict[str, np.ndarray], sources: str | list[str], tunnels: dict[int, str] | None = None
) -> pl.DataFrame:
    """Flow records of finished states; ``flow_id`` is the builder-local uid (renumbered by ``extract``);
    ``source_file`` is ``sources[st["src"]]`` (the file of the flow's first packet).

    ``tunnels``: tunnel id -> text (``PacketBatch.tunnels``) for the ``tunnel`` column.
    """
    if not st["uid"].size:
        # Most batches finish no flow (flows end by timeout or at the capture's end): building the empty table's
        # thirty columns cost about 1 ms a batch, 3 s of a folder of 3,000 small files. Polars frames are immutable.
        return _EMPTY
    files = [sources] if isinstance(sources, str) else sources
    o = st["odir"] == 0  # originator is the key's ``a`` endpoint

    def pick(a: np.ndarray, b: np.ndarray, orig: bool) -> np.ndarray:
        return np.where(o, a, b) if orig else np.where(o, b, a)

    proto = st["proto"].astype(np.int64)
    icmp = (proto == 1) | (proto == 58)
    oh, ol = pick(st["a_hi"], st["b_hi"], True), pick(st["a_lo"], st["b_lo"], True)
    rh, rl = pick(st["a_hi"], st["b_hi"], False), pick(st["a_lo"], st["b_lo"], False)
    op, rp = pick(st["a_port"], st["b_port"], True), pick(st["a_port"], st["b_port"], False)
    hist = st["hist"].tolist()
    states = _conn_states(hist, proto.tolist())
    cid = community_id_array(st["ipv"], st["proto"], oh, ol, rh, rl, op, rp)
    same_host = (oh == rh) & (ol == rl)
    has_ports = (op >= 0) & ~icmp
    ports = (op >= 0) & (rp >= 0) & ~icmp
    pu, pinv = np.unique(proto, return_inverse=True)  # few protocols: name each once
    names = np.array([PROTO_NAMES.get(p, str(p)) for p in pu.tolist()] or [""], object)[pinv.reshape(-1)]
    ts_type = FLOW_SCHEMA.field("ts").type
    cols: dict[str, pa.Array] = {
        "flow_id": pa.array(st["uid"].astype(np.int64)),
        "uid": pa.nulls(
            len(st["uid"]), pa.string()
        ),  # set once the capture's SHA-256 is known (features.flows.extract)
        "community_id": cid,
        "source_file": _source_files(files, st["src"]),
        "ts": pa.array(st["ts0"] // 1000, ts_type),
        "ts_end": pa.array(st["ts1"] // 1000, ts_type),
        "duration_s": pa.array((st["ts1"] - st["ts0"]) / 1e9),
        "proto": pa.array(names, pa.string()),
        "ip_proto": pa.array(st["proto"].astype(np.uint8)),
        "ip_version": pa.array(st["ipv"].astype(np.uint8)),
        "vlan": pa.array(st["vlan"].astype(np.int32), mask=st["vlan"] < 0),
        "tunnel": tunnel_strings(st["tun"], tunnels or {}),
        "orig_h": pa.array(addr_strings(oh, ol, st["ipv"]), pa.string()),
        "orig_p": pa.array(op.astype(np.int32), mask=~has_ports),
        "resp_h": pa.array(addr_strings(rh, rl, st["ipv"]), pa.string()),
        "resp_p": pa.array(rp.astype(np.int32), mask=~has_ports),
        "icmp_type": pa.array(op.astype(np.int16), mask=~icmp | (op < 0)),
        "icmp_code": pa.array(rp.astype(np.int16), mask=~icmp | (rp < 0)),
        "orig_pkts": pa.array(pick(st["pk0"], st["pk1"], True)),
        "resp_pkts": pa.array(pick(st["pk0"], st["pk1"], False)),
        "orig_bytes": pa.array(pick(st["by0"], st["by1"], True)),
        "resp_bytes": pa.array(pick(st["by0"], st["by1"], False)),
        "orig_ip_bytes": pa.array(pick(st["ib0"], st["ib1"], True)),
        "resp_ip_bytes": pa.array(pick(st["ib0"], st["ib1"], False)),
        "conn_state": pa.array(states, pa.string()),
        "history": pa.array(hist, pa.string()),
        "land": pa.array(same_host & (~ports | (op == rp))),
        "wrong_fragment": pa.array(st["wf"].astype(np.int32)),
        "urgent": pa.array(st["urg"].astype(np.int32)),
    }
    table = pa.Table.from_arrays([cols[c] for c in FLOW_COLUMNS], schema=FLOW_SCHEMA)
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df
