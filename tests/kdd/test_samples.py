"""Per attack sample in sample_pcaps/: our features have the signature NSL-KDD's rows of that attack have.

Each expected signature is computed here from KDDTrain+ (the rows named in each test, by label), not
written from memory: e.g. "neptune rows with flag S0: median serror_rate". Our attack flows are the
flows the sample's README describes (filtered by host/port), and we compare medians with the NSL-KDD
rows' quantiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from features.kdd.frame import kdd_features

extract = pytest.importorskip("features.flows.extract", reason="needs the flow builder (features/flows/extract.py)")
SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def _features(name: str, need: Any) -> pl.DataFrame:
    ext = extract.extract_flows([need(SAMPLES / name)])
    return kdd_features(ext.flows, ext.payloads)


def _q(rows: pl.DataFrame, col: str, q: float) -> float:
    return float(rows.select(pl.col(col).quantile(q)).item())


def _median(values: pl.Series) -> float:
    """The median of a numeric column (polars types a median as any scalar or None)."""
    m = values.median()
    assert isinstance(m, int | float), (values.name, m)
    return m


def test_syn_flood_looks_like_neptune(need: Any, kdd_train: pl.DataFrame) -> None:
    ours = _features("syn-flood.pcap", need).filter(pl.col("resp_h") == "10.0.0.10", pl.col("flag") == "S0")
    assert ours.height >= 700
    neptune = kdd_train.filter(pl.col("label") == "neptune")
    assert neptune["flag"].mode().to_list() == ["S0"]  # 34,326 of 41,214 neptune rows
    s0 = neptune.filter(pl.col("flag") == "S0")
    # serror_rate, srv_serror_rate, dst_host_serror_rate: neptune S0 rows' median is 1.0.
    for c in ("serror_rate", "srv_serror_rate", "dst_host_serror_rate"):
        assert _q(s0, c, 0.5) == 1.0
        assert _median(ours[c]) >= 0.95, c
    # count: at least the neptune S0 rows' median (their floods are slower than ours: 800 SYNs in 2.5 s).
    assert _median(ours["count"]) >= _q(s0, "count", 0.5)
    # same_srv_rate: most neptune floods sweep many ports (median 0.07); the ones that hit one service
    # (same_srv_rate >= 0.9, 468 S0 rows) are the comparison for our one-port flood.
    one_port = s0.filter(pl.col("same_srv_rate") >= 0.9)
    assert one_port.height > 400
    assert _median(ours["same_srv_rate"]) >= _q(one_port, "same_srv_rate", 0.05)
    assert ours["src_bytes"].max() == 0 and _q(s0, "src_bytes", 0.95) == 0


def test_port_scan_looks_like_satan(need: Any, kdd_train: pl.DataFrame) -> None:
    ours = _features("syn-portscan.pcap", need).filter(pl.col("resp_h") == "10.0.0.20", pl.col("proto") == "tcp")
    assert ours.height >= 900
    assert ours["flag"].mode().to_list() == ["REJ"]
    # satan (one host, many ports, REJ the commonest flag): rerror_rate and diff_srv_rate medians 0.84 and 1.0.
    satan = kdd_train.filter(pl.col("label") == "satan", pl.col("protocol_type") == "tcp")
    assert satan["flag"].mode().to_list() == ["REJ"]
    for c in ("rerror_rate", "diff_srv_rate", "dst_host_rerror_rate", "dst_host_diff_srv_rate"):
        lo = _q(satan, c, 0.5)
        assert _median(ours[c]) >= lo - 0.05, (c, _median(ours[c]), lo)
    assert _median(ours["same_srv_rate"]) <= _q(satan, "same_srv_rate", 0.75)


def test_ping_sweep_looks_like_ipsweep(need: Any, kdd_train: pl.DataFrame) -> None:
    ours = _features("ping-sweep.pcap", need).filter(pl.col("service") == "eco_i")
    assert ours.height >= 250 and set(ours["protocol_type"]) == {"icmp"} and set(ours["flag"]) == {"SF"}
    ipsweep = kdd_train.filter(pl.col("label") == "ipsweep", pl.col("service") == "eco_i")
    # One echo per host: count 1 (ipsweep eco_i median 1), srv_count high, srv_diff_host_rate 1.
    assert _median(ours["count"]) == _q(ipsweep, "count", 0.5) == 1
    assert _median(ours["srv_count"]) >= _q(ipsweep, "srv_count", 0.5)
    assert _q(ipsweep, "srv_diff_host_rate", 0.5) == 1.0
    assert _median(ours["srv_diff_host_rate"]) >= 0.95  # (n - 1) / n for the n-th echo of the sweep
    assert _median(ours["dst_host_count"]) <= _q(ipsweep, "dst_host_count", 0.95)


def test_udp_flood(need: Any, kdd_train: pl.DataFrame) -> None:
    feats = _features("udp-flood.pcap", need)
    ours = feats.filter(pl.col("resp_h") == "10.0.0.30", pl.col("protocol_type") == "udp")
    assert ours.height >= 600 and set(ours["flag"]) == {"SF"}
    # NSL-KDD's UDP rows are all SF and unnamed UDP ports are private/other (as in its satan/teardrop rows).
    assert set(kdd_train.filter(pl.col("protocol_type") == "udp")["flag"]) == {"SF"}
    assert set(ours["service"]) <= {"other", "private"}
    # The nearest NSL-KDD rows: satan's UDP probes of unnamed ports of one host (1,408 rows): many records
    # to the host in 2 s (median count 15-23), few to the same port (same_srv_rate median 0.10-0.43).
    satan = kdd_train.filter(
        pl.col("label") == "satan", pl.col("protocol_type") == "udp", pl.col("service").is_in(["private", "other"])
    )
    random_ports = ours.filter(pl.col("service") == "other")
    assert _median(random_ports["count"]) >= _q(satan, "count", 0.5)
    assert _median(random_ports["same_srv_rate"]) <= _q(satan, "same_srv_rate", 0.5)
    assert ours["dst_host_count"].max() == 255


def test_teardrop_and_ping_of_death_have_wrong_fragment(need: Any, kdd_train: pl.DataFrame) -> None:
    feats = _features("teardrop.pcap", need)
    bad = feats.filter(pl.col("wrong_fragment") > 0)
    teardrop = kdd_train.filter(pl.col("label") == "teardrop")
    pod = kdd_train.filter(pl.col("label") == "pod")
    # teardrop rows: UDP, wrong_fragment 3 (884) or 1 (8); pod rows: ICMP, wrong_fragment 1.
    assert set(teardrop["protocol_type"]) == {"udp"} and _q(teardrop, "wrong_fragment", 0.05) >= 1
    assert set(pod["protocol_type"]) == {"icmp"} and _q(pod, "wrong_fragment", 0.05) >= 1
    # Our five teardrop pairs share one 5-tuple: one flow counting 5 bad fragments (NSL-KDD's maximum is 3,
    # a value the encoder clips to the training range).
    assert bad.filter(pl.col("protocol_type") == "udp")["wrong_fragment"].sum() >= 5
    assert bad.filter(pl.col("protocol_type") == "icmp").height >= 1
    # The well-formed out-of-order datagram is not a wrong fragment.
    assert feats.filter(pl.col("protocol_type") == "udp").height > bad.filter(pl.col("protocol_type") == "udp").height


def test_land(need: Any, kdd_train: pl.DataFrame) -> None:
    feats = _features("land.pcap", need)
    land_rows = kdd_train.filter(pl.col("label") == "land")
    assert set(land_rows["flag"]) == {"S0"} and set(land_rows["land"]) == {1.0}  # all 18 land rows
    ours = feats.filter(pl.col("land") == 1)
    assert ours.height >= 1 and set(ours["flag"]) == {"S0"}
    assert feats.filter(pl.col("resp_p") == 80)["land"].sum() == 0


def test_ftp_and_telnet_bruteforce_content(need: Any, kdd_train: pl.DataFrame) -> None:
    feats = _features("ftp-bruteforce.pcap", need)
    ftp = feats.filter(pl.col("service") == "ftp")
    # guess_passwd rows (telnet in NSL-KDD) have num_failed_logins >= 1 in 52 of 53.
    guess = kdd_train.filter(pl.col("label") == "guess_passwd")
    assert guess.filter(pl.col("num_failed_logins") >= 1).height >= 52
    assert ftp.filter(pl.col("num_failed_logins") == 3).height == 8
    assert ftp.filter(pl.col("logged_in") == 1).height == 1
    telnet = feats.filter(pl.col("service") == "telnet")
    assert telnet.height >= 1
    row = telnet.row(0, named=True)
    assert row["num_failed_logins"] >= 1 and row["logged_in"] == 1 and row["root_shell"] == 1
