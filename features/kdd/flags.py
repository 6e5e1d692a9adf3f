"""NSL-KDD ``flag`` from Zeek's ``conn_state``, restricted to NSL-KDD's 11 values (``kdd_columns.FLAGS``).

Rules:

* **UDP, ICMP and every other non-TCP protocol: ``SF``.** Every UDP and ICMP row of KDDTrain+
  (14,993 and 8,291) and KDDTest+ is ``SF``; Zeek's UDP ``S0``/``SHR``/``OTH`` must not reach the model.
* **TCP**: the ten Zeek states NSL-KDD shares (S0 S1 S2 S3 SF REJ RSTO RSTR RSTOS0 SH OTH) pass through.
* **SHR and RSTRH -> OTH.** Zeek defines both as "the responder sent a SYN-ACK (then a FIN, or a RST)
  and we never saw a SYN from the originator". Every other NSL-KDD flag except OTH presupposes the
  originator's SYN; OTH is Zeek's (and NSL-KDD's) state for "no SYN seen, midstream traffic" (NSL-KDD's
  OTH rows: 35 portsweep with no bytes, 11 normal with responder bytes only). Mapping SHR to SH or
  RSTRH to RSTR would instead claim a SYN the capture does not show, and put SYN-ACK backscatter
  into the same bucket as half-open scans (SH) or established resets (RSTR).
* Anything else (null, an unknown string) -> OTH.

"Error" sets for the window features, derived from the NSL-KDD rows themselves: in the 27,763
KDDTrain+ rows with ``count == 1`` (the window holds only the record itself) ``serror_rate`` is 1
exactly for S0, S1, S2, S3, SH and 0 otherwise, and ``rerror_rate`` is 1 exactly for REJ, RSTO,
RSTR, RSTOS0 (tests/kdd/test_flags.py recomputes this). This matches the S0-S3 set of the maintained
extractors (AI-IDS, gureKDD) plus SH, and a REJ set wider than their REJ-only one.
"""

from __future__ import annotations

import polars as pl

from features.kdd.columns import FLAGS

FLAG_FROM_STATE: dict[str, str] = {
    **{f: f for f in FLAGS},
    "SHR": "OTH",
    "RSTRH": "OTH",
}

SERROR_FLAGS: frozenset[str] = frozenset({"S0", "S1", "S2", "S3", "SH"})
RERROR_FLAGS: frozenset[str] = frozenset({"REJ", "RSTO", "RSTR", "RSTOS0"})

assert set(FLAG_FROM_STATE.values()) <= set(FLAGS)


def flag_expr() -> pl.Expr:
    """A polars expression giving ``flag`` from FLOW_SCHEMA ``ip_proto`` and ``conn_state``."""
    tcp_flag = pl.col("conn_state").replace_strict(FLAG_FROM_STATE, default="OTH", return_dtype=pl.String)
    return pl.when(pl.col("ip_proto") == 6).then(tcp_flag.fill_null("OTH")).otherwise(pl.lit("SF")).alias("flag")
