"""nta's own conn.log (features.flows.zeek) read back by features.zeeklog gives the capture's features.

For every column a conn.log carries, ``nta scan conn.log`` must see what ``nta scan capture.pcap`` sees: the flow
fields, and the KDD header and window features computed from them. The content features (payload rules),
``wrong_fragment`` and ``urgent`` are not in a conn.log and are left out of the comparison.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from features.flows.extract import extract_flows
from features.flows.zeek import CONN_LOG, conn_frame, save_log
from features.kdd.content import CONTENT_FEATURES
from features.kdd.frame import kdd_features
from features.zeeklog.conn import UNAVAILABLE_FEATURES
from features.zeeklog.stream import read_conn_logs

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"

NOT_CARRIED = (*CONTENT_FEATURES, "wrong_fragment", "urgent")
# Flow fields a conn.log carries exactly (tunnel: tunnel_parents holds uids; wrong_fragment/urgent: not logged;
# vlan: nta writes no vlan field (Zeek's vlan-logging does; the reader takes it: test_logs.py);
# duration_s: the log holds microseconds, the capture's is from nanosecond times, so it is compared to 1 us).
CARRIED = (
    "flow_id", "community_id", "ts", "ts_end", "proto", "ip_proto", "ip_version", "orig_h",
    "orig_p", "resp_h", "resp_p", "icmp_type", "icmp_code", "orig_pkts", "resp_pkts", "orig_bytes", "resp_bytes",
    "orig_ip_bytes", "resp_ip_bytes", "conn_state", "history", "land",
)  # fmt: skip


def _write(capture: Path, out: Path, json: bool = False) -> pl.DataFrame:
    flows = pl.from_arrow(extract_flows([capture]).flows)
    assert isinstance(flows, pl.DataFrame)
    save_log(CONN_LOG, conn_frame(flows), out, json=json)
    return flows


def _same_flows(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.select(CARRIED).equals(want.select(CARRIED))
    assert (got["duration_s"] - want["duration_s"]).abs().max() <= 1.001e-6  # type: ignore[operator]


def _features(paths: list[Path]) -> tuple[pl.DataFrame, pl.DataFrame]:
    ext = read_conn_logs(paths)
    flows = pl.from_arrow(ext.flows)
    assert isinstance(flows, pl.DataFrame)
    return flows, kdd_features(ext.flows, ext.payloads, ext.service_hints)


@pytest.mark.parametrize(
    "name",
    ["demo-mixed.pcap", "syn-portscan.pcap", "ping-sweep.pcap", "udp-flood.pcap", "land.pcap", "ftp-bruteforce.pcap",
     "benign-web-dns-ssh.pcap", "tunnel-gre-portscan.pcap", "fmt-vlan-qinq.pcap"],
)  # fmt: skip
@pytest.mark.parametrize("json", [False, True], ids=["tsv", "json"])
def test_sample_capture_round_trip(name: str, json: bool, tmp_path: Path) -> None:
    capture = SAMPLES / name
    log = tmp_path / ("conn.json" if json else "conn.log")
    flows = _write(capture, log, json)
    got, feats = _features([log])
    want = kdd_features(extract_flows([capture]).flows, extract_flows([capture]).payloads)
    assert got.height == flows.height > 0
    _same_flows(got, flows)
    assert got["source_file"].unique().to_list() == [str(log)]
    assert got["wrong_fragment"].sum() == 0 and got["urgent"].sum() == 0
    carried = [c for c in want.columns if c not in (*NOT_CARRIED, "source_file")]
    assert feats.select(carried).equals(want.select(carried))


def test_content_features_differ_only_by_payload(tmp_path: Path) -> None:
    """On the FTP brute force the capture reads 530 replies; the log cannot (so the test above is not vacuous)."""
    capture = SAMPLES / "ftp-bruteforce.pcap"
    _write(capture, tmp_path / "conn.log")
    _, feats = _features([tmp_path / "conn.log"])
    ext = extract_flows([capture])
    want = kdd_features(ext.flows, ext.payloads)
    assert want["num_failed_logins"].sum() > 0 and feats["num_failed_logins"].sum() == 0
    assert set(UNAVAILABLE_FEATURES) == set(NOT_CARRIED) - {"logged_in"}


@pytest.mark.corpus
@pytest.mark.parametrize(
    "rel",
    ["attack/nmap-syn-scan-top100.pcap", "attack/synack-reflection-ddos.pcap", "benign/tls-browsing-2021.pcap",
     "benign/icmpv6-ping.pcap", "attack/host-sweep-icmp-echo.pcapng", "attack/masscan-udp-ports-0-1000.pcap"],
)  # fmt: skip
def test_shared_capture_round_trip(rel: str, shared: Path, tmp_path: Path) -> None:
    capture = shared / "data" / "pcaps" / rel
    if not capture.exists():
        pytest.skip(f"needs {capture}, which is missing")
    log = tmp_path / "conn.log.gz"
    plain = tmp_path / "plain.log"
    flows = _write(capture, plain)
    log.write_bytes(gzip.compress(plain.read_bytes()))
    got, feats = _features([log])
    ext = extract_flows([capture])
    want = kdd_features(ext.flows, ext.payloads)
    _same_flows(got, flows)
    carried = [c for c in want.columns if c not in (*NOT_CARRIED, "source_file")]
    assert feats.select(carried).equals(want.select(carried))
