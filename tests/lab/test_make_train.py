"""lab/make_train.py's row rules: what is left out of the training rows, on a file it wrote (no lab run needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

MAKE_TRAIN = Path(__file__).resolve().parents[2] / "lab" / "make_train.py"

ROWS = [  # (scenario, label, service, kept)
    ("ssh-privesc-srv", "U2R", "ssh", False),  # the escalation typed inside an encrypted session
    ("ssh-privesc-vic", "U2R", "ssh", False),
    ("ssh-privesc-srv", "U2R", "other", True),  # a download the session starts is seen in the clear
    ("hydra-ssh", "R2L", "ssh", True),  # many failed logins: seen in the window counts
    ("telnet-rootshell", "U2R", "telnet", True),  # plain text: seen
    ("benign-background", "normal", "ssh", True),
]


def test_rules_only_leaves_out_the_ssh_flows_of_attacks_inside_ssh(tmp_path: Path) -> None:
    src, out = tmp_path / "rows.parquet", tmp_path / "kept.parquet"
    pl.DataFrame(
        {
            "scenario": [r[0] for r in ROWS],
            "label": [r[1] for r in ROWS],
            "service": [r[2] for r in ROWS],
            "src_bytes": list(range(len(ROWS))),
        }
    ).write_parquet(src)
    res = subprocess.run(
        [sys.executable, str(MAKE_TRAIN), "--rules-only", str(src), "-o", str(out)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "6 rows, 2 left out" in res.stdout
    kept = pl.read_parquet(out)
    assert kept["src_bytes"].to_list() == [i for i, r in enumerate(ROWS) if r[3]]  # order and columns kept
    assert kept.columns == ["scenario", "label", "service", "src_bytes"]


def test_without_runs_or_a_file_it_says_what_it_needs(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, str(MAKE_TRAIN), "-o", str(tmp_path / "x.parquet")], capture_output=True, text=True
    )
    assert res.returncode == 2
    assert "give lab run folders, or --rules-only FILE" in res.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_a_run_and_its_host_cuts_folder_of_the_same_name_both_count(tmp_path: Path) -> None:
    """A run's folder and its host cuts' folder share a name (``seedS``): each capture's rows are kept (their
    temporary files once overwrote each other), and both count as one run for the caps."""
    sample = Path(__file__).resolve().parents[2] / "sample_pcaps" / "benign-web-dns-ssh.pcap"
    labels = (
        "scenario,class,start_utc,end_utc,attackers,victims,tool,params\n"
        "benign-background,normal,2000-01-01T00:00:00.000000Z,2100-01-01T00:00:00.000000Z,0.0.0.0/0 ::/0,"
        "0.0.0.0/0 ::/0,-,{}\n"
    )
    runs = [tmp_path / "runs" / "seed7", tmp_path / "hosts" / "seed7"]
    for run in runs:
        run.mkdir(parents=True)
        (run / "capture.pcap").write_bytes(sample.read_bytes())
        (run / "labels.csv").write_text(labels)
    outs = []
    for args in ([runs[0]], runs):
        out = tmp_path / f"rows-{len(args)}.parquet"
        res = subprocess.run(
            [sys.executable, str(MAKE_TRAIN), *map(str, args), "--benign-only", "-o", str(out)],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr
        outs.append(pl.read_parquet(out))
    one, both = outs
    assert one.height > 0 and both.height == 2 * one.height
    assert set(both["run"]) == {"seed7"} and set(both["label"]) == {"normal"}
