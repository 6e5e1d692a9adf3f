"""Per-flow ``uid``: one name for a flow in every output and every run, like Zeek's ``uid`` and Suricata's ``flow_id``.

``flow_id`` is a row number: two scans both have a flow 25. The uid is ``C`` and 17 base-62 characters (Zeek's
shape) of a BLAKE2b hash of the capture file's SHA-256 and the flow's key (VLAN, tunnel, protocol, both
endpoints, ICMP type and code) and its first packet's time in microseconds. So the same capture gives the same
uids whatever it is called, where it lies and how often it is scanned, while flows of different captures, or
two flows on one 5-tuple at different times, get different ones. Community ID stays beside it: it names the
5-tuple (the same in Zeek and Suricata), not the flow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_KEY = ("vlan", "tunnel", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "icmp_type", "icmp_code")


def make_uid(key: str, prefix: str = "C") -> str:
    """``prefix`` + 17 base-62 characters of a 96-bit BLAKE2b hash of ``key``."""
    n = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=12).digest(), "big")
    out = []
    for _ in range(17):
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return prefix + "".join(reversed(out))


def flow_uids(flows: pl.DataFrame, capture_sha256: Sequence[str], file_index: str = "_file") -> pl.Series:
    """The uid of each flow; ``flows[file_index]`` is the index into ``capture_sha256`` of the flow's capture."""
    if flows.height == 0:
        return pl.Series("uid", [], pl.String)
    shas = pl.DataFrame({file_index: range(len(capture_sha256)), "_sha": list(capture_sha256)})
    with_sha = flows.select(file_index, *_KEY, "ts").with_columns(pl.col(file_index).cast(pl.Int64))
    with_sha = with_sha.join(shas.cast({file_index: pl.Int64}), on=file_index, how="left", maintain_order="left")
    keys = with_sha.select(
        pl.concat_str(
            [
                pl.col("_sha").fill_null(""),
                *(pl.col(c).cast(pl.String).fill_null("-") for c in _KEY),
                pl.col("ts").dt.epoch("us").cast(pl.String),
            ],
            separator="\0",
        )
    ).to_series()
    return pl.Series("uid", _b62_uids(keys.to_list()), pl.String)


def _b62_uids(keys: list[str], prefix: str = "C") -> list[str]:
    """``make_uid`` for many keys at once: the hashes in a loop (about 1 µs each), the base-62 digits in numpy.

    The 96-bit hash is three big-endian 32-bit words; each of the 17 rounds divides the whole number by 62 word
    by word (remainder carried down, never above 62 * 2**32, so uint64 holds it) and keeps the remainder.
    """
    blob = b"".join(hashlib.blake2b(k.encode(), digest_size=12).digest() for k in keys)
    words = np.frombuffer(blob, dtype=">u4").reshape(-1, 3).astype(np.uint64)  # (n, 3)
    digits = np.empty((len(keys), 17), np.uint8)  # (n, 17), most significant first
    for i in range(16, -1, -1):
        rem = np.zeros(len(keys), np.uint64)
        for j in range(3):
            cur = (rem << np.uint64(32)) | words[:, j]
            words[:, j] = cur // np.uint64(62)
            rem = cur % np.uint64(62)
        digits[:, i] = rem
    chars = np.frombuffer(_B62.encode(), np.uint8)[digits]  # (n, 17) ASCII codes
    flat = chars.tobytes().decode("ascii")
    return [prefix + flat[i : i + 17] for i in range(0, len(flat), 17)]
