"""Finished flow states to flow records (``features.schema`` columns) as a polars DataFrame."""

from __future__ import annotations

import ipaddress

import numpy as np
import polars as pl

from features.community_id import community_ids
from features.schema import FLOW_COLUMNS
from features.tcpstate import conn_state

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
PAYLOAD_SCHEMA = {"flow_id": pl.Int64, "ts_ns": pl.Int64, "from_orig": pl.Boolean, "payload": pl.Binary}


def empty_payloads() -> pl.DataFrame:
    return pl.DataFrame(schema=PAYLOAD_SCHEMA)


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


def to_frame(st: dict[str, np.ndarray], source_file: str) -> pl.DataFrame:
    """Flow records of finished states; ``flow_id`` is the builder-local uid (renumbered by ``extract``)."""
    n = st["h"].size
    o = st["odir"] == 0  # originator is the key's ``a`` endpoint

    def pick(a: np.ndarray, b: np.ndarray, orig: bool) -> np.ndarray:
        return np.where(o, a, b) if orig else np.where(o, b, a)

    proto = st["proto"].astype(np.int64)
    icmp = (proto == 1) | (proto == 58)
    oh, ol = pick(st["a_hi"], st["b_hi"], True), pick(st["a_lo"], st["b_lo"], True)
    rh, rl = pick(st["a_hi"], st["b_hi"], False), pick(st["a_lo"], st["b_lo"], False)
    op, rp = pick(st["a_port"], st["b_port"], True), pick(st["a_port"], st["b_port"], False)
    hist = st["hist"].tolist()
    states = [conn_state(h, p) for h, p in zip(hist, proto.tolist(), strict=True)]
    cid = community_ids(st["ipv"], st["proto"], oh, ol, rh, rl, op, rp)
    same_host = (oh == rh) & (ol == rl)
    has_ports = (op >= 0) & ~icmp
    ports = (op >= 0) & (rp >= 0) & ~icmp
    names = [PROTO_NAMES.get(p, str(p)) for p in proto.tolist()]
    us_per = 1000
    df = pl.DataFrame(
        {
            "flow_id": st["uid"].astype(np.int64),
            "community_id": pl.Series(cid, dtype=pl.String),
            "source_file": pl.Series([source_file] * n, dtype=pl.String),
            "ts": pl.Series(st["ts0"] // us_per, dtype=pl.Int64),
            "ts_end": pl.Series(st["ts1"] // us_per, dtype=pl.Int64),
            "duration_s": (st["ts1"] - st["ts0"]) / 1e9,
            "proto": pl.Series(names, dtype=pl.String),
            "ip_proto": st["proto"].astype(np.uint8),
            "ip_version": st["ipv"].astype(np.uint8),
            "vlan": pl.Series(np.where(st["vlan"] >= 0, st["vlan"], 0).astype(np.int32)),
            "vlan_ok": st["vlan"] >= 0,
            "orig_h": pl.Series(addr_strings(oh, ol, st["ipv"]), dtype=pl.String),
            "orig_p": op.astype(np.int32),
            "resp_h": pl.Series(addr_strings(rh, rl, st["ipv"]), dtype=pl.String),
            "resp_p": rp.astype(np.int32),
            "has_ports": has_ports,
            "icmp_type": np.where(icmp, op, -1).astype(np.int16),
            "icmp_code": np.where(icmp, rp, -1).astype(np.int16),
            "orig_pkts": pick(st["pk0"], st["pk1"], True),
            "resp_pkts": pick(st["pk0"], st["pk1"], False),
            "orig_bytes": pick(st["by0"], st["by1"], True),
            "resp_bytes": pick(st["by0"], st["by1"], False),
            "orig_ip_bytes": pick(st["ib0"], st["ib1"], True),
            "resp_ip_bytes": pick(st["ib0"], st["ib1"], False),
            "conn_state": pl.Series(states, dtype=pl.String),
            "history": pl.Series(hist, dtype=pl.String),
            "land": same_host & (~ports | (op == rp)),
            "wrong_fragment": st["wf"].astype(np.int32),
            "urgent": st["urg"].astype(np.int32),
        }
    )
    utc = pl.Datetime("us", "UTC")
    return df.with_columns(
        pl.col("ts").cast(utc),
        pl.col("ts_end").cast(utc),
        pl.when(pl.col("vlan_ok")).then(pl.col("vlan")).otherwise(None).alias("vlan"),
        pl.when(pl.col("has_ports")).then(pl.col("orig_p")).otherwise(None).alias("orig_p"),
        pl.when(pl.col("has_ports")).then(pl.col("resp_p")).otherwise(None).alias("resp_p"),
        pl.when(pl.col("icmp_type") >= 0).then(pl.col("icmp_type")).otherwise(None).alias("icmp_type"),
        pl.when(pl.col("icmp_code") >= 0).then(pl.col("icmp_code")).otherwise(None).alias("icmp_code"),
    ).select(FLOW_COLUMNS)
