"""Label windows joined to flows (features.kdd.labels): the rule table, the file reader's errors, and the CLI join."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from features.common import InputError
from features.kdd.labels import label_flows, read_label_windows

T0 = dt.datetime(2024, 3, 1, 10, 0, tzinfo=dt.UTC)
HEADER = "scenario,class,start_utc,end_utc,attackers,victims,tool,params\n"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_pcaps" / "demo-mixed.pcap"


def _iso(s: float) -> str:
    return (T0 + dt.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _flows(rows: list[tuple[float, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(seconds=t) for t, _, _ in rows],
            "orig_h": [o for _, o, _ in rows],
            "resp_h": [r for _, _, r in rows],
        }
    )


def _windows(tmp_path: Path, lines: list[str]) -> Path:
    p = tmp_path / "labels.csv"
    p.write_text(HEADER + "".join(line + "\n" for line in lines))
    return p


# (flow start s, orig, resp) -> expected label (None: an attacker's flow outside every window)
CASES = [
    ((5.0, "10.77.0.66", "10.77.1.10"), "Probe"),  # attacker -> victim inside the scan window
    ((5.0, "10.77.1.10", "10.77.0.66"), "Probe"),  # the victim answering in its own flow: either direction
    ((5.0, "10.77.0.5", "10.77.1.10"), "normal"),  # a benign client to the same victim at the same time
    ((5.0, "10.77.0.66", "10.77.9.9"), "Probe"),  # victims "*" in the sweep window, which overlaps
    ((25.0, "10.77.0.66", "10.77.1.10"), None),  # attacker between windows: unexplained
    ((31.0, "10.77.0.66", "10.77.1.10"), "DoS"),  # the flood window
    ((31.0, "172.31.4.5", "10.77.1.10"), "DoS"),  # a spoofed source inside the flood's attacker CIDR
    ((31.0, "172.31.4.5", "10.77.1.11"), None),  # spoofed range, not the victim: unexplained
    ((40.0, "10.77.0.66", "10.77.1.10"), "DoS"),  # the end instant is inside the window
    ((40.5, "10.77.0.5", "10.77.1.10"), "normal"),
    ((9.0, "10.77.0.66", "10.77.1.10"), "R2L"),  # overlapping windows: the later-starting one wins
]


def test_join_rule_table(tmp_path: Path) -> None:
    labels = _windows(
        tmp_path,
        [
            f"scan,Probe,{_iso(0)},{_iso(20)},10.77.0.66,10.77.1.10,nmap,-sS",
            f"sweep,Probe,{_iso(4)},{_iso(6)},10.77.0.66,*,nmap,-sn",
            f"brute,R2L,{_iso(8)},{_iso(10)},10.77.0.66,10.77.1.10,hydra,ssh",
            f"flood,DoS,{_iso(30)},{_iso(40)},10.77.0.66 172.31.0.0/16,10.77.1.10,hping3,-S",
            f"idle,DoS,{_iso(100)},{_iso(110)},10.77.0.67,*,hping3,-S",
        ],
    )
    flows = _flows([c for c, _ in CASES])
    join = label_flows(flows, read_label_windows(labels))
    assert join.label.to_list() == [want for _, want in CASES]
    assert join.unexplained == 2
    assert join.flows_per_window["flood"] == 3 and join.flows_per_window["brute"] == 1
    assert join.empty_windows == []  # "idle" is after the last flow: outside the capture, not empty
    assert join.scenario.to_list()[0] == "sweep" and join.scenario.to_list()[2] == ""


def test_empty_window_inside_the_span_is_reported(tmp_path: Path) -> None:
    labels = _windows(tmp_path, [f"ghost,DoS,{_iso(2)},{_iso(3)},10.77.0.99,*,x,y"])
    join = label_flows(
        _flows([(0.0, "10.77.0.5", "10.77.1.10"), (9.0, "10.77.0.5", "10.77.1.10")]), read_label_windows(labels)
    )
    assert join.empty_windows == ["ghost"] and join.label.to_list() == ["normal", "normal"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (f"s,Worm,{_iso(0)},{_iso(1)},10.0.0.1,*", "class 'Worm'"),
        (f"s,DoS,yesterday,{_iso(1)},10.0.0.1,*", "not an ISO 8601 time"),
        (f"s,DoS,{_iso(2)},{_iso(1)},10.0.0.1,*", "end_utc is before start_utc"),
        (f"s,DoS,{_iso(0)},{_iso(1)},10.0.0.300,*", "attackers"),
        (f"s,DoS,{_iso(0)},{_iso(1)},,*", "attackers is empty"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    p = tmp_path / "labels.csv"
    p.write_text("scenario,class,start_utc,end_utc,attackers,victims\n" + line + "\n")
    with pytest.raises(InputError, match=rf"labels.csv: line 2: .*{message}"):
        read_label_windows(p)


def test_missing_columns_refused(tmp_path: Path) -> None:
    p = tmp_path / "labels.csv"
    p.write_text(f"scenario,class,start_utc\ns,DoS,{_iso(0)}\n")
    with pytest.raises(InputError, match="lacks column"):
        read_label_windows(p)


def test_cli_labels_demo_capture(tmp_path: Path) -> None:
    """On real bytes: the demo's scanner and flood, from how make_samples.py made them (see sample_pcaps/README)."""
    if not SAMPLE.exists():
        pytest.skip(f"needs {SAMPLE}")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        HEADER
        + "portscan,Probe,2024-03-01T10:00:11Z,2024-03-01T10:00:24Z,192.168.56.66,10.0.0.20,synthetic,-\n"
        # the sweep window ends too early on purpose: the sweep's last flows fall outside every window
        + "sweep,Probe,2024-03-01T10:00:24Z,2024-03-01T10:00:35Z,192.168.56.66,10.0.0.0/24,synthetic,-\n"
        + "flood,DoS,2024-03-01T10:00:25Z,2024-03-01T10:00:27Z,0.0.0.0/0,10.0.0.10,synthetic,-\n"
        + "nothing,R2L,2024-03-01T10:00:50Z,2024-03-01T10:00:51Z,192.168.56.99,*,synthetic,-\n"
    )
    out = tmp_path / "f.parquet"
    res = CliRunner().invoke(app, ["features", str(SAMPLE), "-o", str(out), "--labels", str(labels), "-q"])
    assert res.exit_code == 0, res.output
    df = pl.read_parquet(out)
    assert {"label", "scenario"} <= set(df.columns) and df["label"].null_count() == 0
    scanner = df.filter((pl.col("orig_h") == "192.168.56.66") | (pl.col("resp_h") == "192.168.56.66"))
    assert set(scanner["label"].to_list()) == {"Probe"}
    assert (df["label"] == "DoS").sum() >= 300  # the 300 spoofed SYNs (and any benign flow to :80 in those 2 s)
    left_out = 944 + 8 - df.height  # golden: 944 flows; those of the scanner after 10:00:35 are left out
    assert left_out > 0
    assert "outside every window" in res.output and "nothing" in res.output
    assert df.filter(pl.col("label") == "normal")["orig_h"].is_in(["192.168.56.66"]).sum() == 0


def test_cli_labels_and_label_exclusive(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["features", str(SAMPLE), "-o", str(tmp_path / "x.parquet"), "--labels", "x.csv", "--label", "normal"]
    )
    assert res.exit_code == 2 and "give one" in res.output
