"""``nta scan`` end to end on every sample capture: exit codes, outputs and their schemas, --fail-on, --format json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from analyzer.cli import app
from analyzer.pipeline import KDD_RENAMED
from analyzer.verdicts import verdict_columns
from features.flows.schema import FLOW_COLUMNS, META_SOURCES
from features.kdd.columns import CLASSES, KDD_FEATURES

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
# The link-layer and tunnel variants of the format flow set give the same flows as fmt-pcap-be-usec.pcap
# (tests/golden checks that); scanning each again would add time, not coverage. The GRE-carried scan stays.
_VARIANTS = ("fmt-ppp", "fmt-cisco", "fmt-80211", "tunnel-")
CAPTURES = sorted(
    p.name
    for p in SAMPLES.iterdir()
    if p.name.endswith((".pcap", ".pcapng", ".pcap.gz"))
    and (not p.name.startswith(_VARIANTS) or p.name == "tunnel-gre-portscan.pcap")
)


def scan(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["scan", "--no-progress", *map(str, args)])


def test_every_sample_is_listed() -> None:
    assert "demo-mixed.pcap" in CAPTURES and "truncated.pcap" in CAPTURES and len(CAPTURES) >= 15


@pytest.mark.parametrize("name", CAPTURES)
def test_scan_sample_writes_consistent_outputs(name: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = scan(SAMPLES / name, "--out", out)
    assert res.exit_code == 0, res.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "alerts.ndjson",
        "flows.parquet",
        "report.html",
        "report.json",
        "verdicts.csv",
    ]

    v = pl.read_csv(out / "verdicts.csv")
    assert v.columns == verdict_columns(CLASSES)
    report = json.loads((out / "report.json").read_text())
    flows = pq.read_table(out / "flows.parquet")
    assert flows.column_names[: len(FLOW_COLUMNS)] == list(FLOW_COLUMNS)
    # NSL-KDD's whole-second duration is kdd_duration here; duration_s is the real one (schema)
    assert {KDD_RENAMED.get(c, c) for c in KDD_FEATURES} <= set(flows.column_names)
    assert "duration" not in flows.column_names
    assert META_SOURCES in (flows.schema.metadata or {})
    assert v.height == flows.num_rows == report["flows"] > 0
    assert v["flow_id"].to_list() == flows.column("flow_id").to_pylist()
    assert v["uid"].to_list() == flows.column("uid").to_pylist() and v["uid"].n_unique() == v.height
    # the verdict is in flows.parquet too: no join needed to query it
    assert v["label"].to_list() == flows.column("label").to_pylist()
    assert v["confidence"].to_list() == pytest.approx(flows.column("confidence").to_pylist(), abs=1e-6)
    assert report["schema_version"] and all(len(i["uids"]) == i["flows"] for i in report["incidents"])
    assert set(v["label"].unique()) <= set(CLASSES)
    assert v["confidence"].is_between(0, 1).all() and v["model_id"].n_unique() == 1
    # Incident ids in the CSV are exactly the report's incidents; attack flows only.
    ids = {str(i["incident_id"]) for i in report["incidents"]}
    assert set(v["incident_id"].drop_nulls().cast(pl.String).unique()) == ids
    assert (v.filter(pl.col("incident_id").is_not_null())["label"] != "normal").all()
    assert sum(i["flows"] for i in report["incidents"]) == (v["label"] != "normal").sum()
    assert report["captures"][0]["packets"] == report["packets"] > 0
    assert "Incidents:" in res.stdout and res.stderr == ""


def test_truncated_capture_warns_and_strict_refuses(tmp_path: Path) -> None:
    res = scan(SAMPLES / "truncated.pcap", "--out", tmp_path / "a")
    assert res.exit_code == 0
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["warnings"] and "Warning" in res.stdout


def test_fail_on_matches_verdicts(tmp_path: Path) -> None:
    """Exit 1 exactly when a flow has a --fail-on class at --min-confidence or above."""
    res = scan(SAMPLES / "demo-mixed.pcap", "--out", tmp_path / "o")
    v = pl.read_csv(tmp_path / "o" / "verdicts.csv")
    attacks = v.filter(pl.col("label") != "normal")
    assert attacks.height > 0, "the demo capture's scan, flood and sweep should raise attack verdicts"
    for i, (fail_on, p) in enumerate([("any", 0.0), ("dos,probe", 0.5), ("r2l", 0.0), ("any", 0.999)]):
        chosen = set(CLASSES[1:]) if fail_on == "any" else {c for c in CLASSES if c.lower() in fail_on.split(",")}
        want = 1 if v.filter(pl.col("label").is_in(list(chosen)) & (pl.col("confidence") >= p)).height else 0
        res = scan(
            SAMPLES / "demo-mixed.pcap", "--out", tmp_path / f"f{i}", "--fail-on", fail_on, "--min-confidence", str(p)
        )
        assert res.exit_code == want, (fail_on, p, res.stderr)
        report = json.loads((tmp_path / f"f{i}" / "report.json").read_text())
        assert report["exit_code"] == want and (report["fail_on"]["matched_flows"] > 0) == bool(want)


def test_format_json_prints_report(tmp_path: Path) -> None:
    res = scan(SAMPLES / "syn-portscan.pcap", "--out", tmp_path / "o", "--format", "json")
    assert res.exit_code == 0
    assert json.loads(res.stdout) == json.loads((tmp_path / "o" / "report.json").read_text())


def test_default_out_is_named_after_first_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = scan(SAMPLES / "fmt-gzip.pcap.gz", SAMPLES / "land.pcap")
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "nta-out" / "fmt-gzip"
    report = json.loads((out / "report.json").read_text())
    assert len(report["captures"]) == 2
    assert pl.read_csv(out / "verdicts.csv")["source_file"].n_unique() == 2


def test_folder_scan_skips_non_captures(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "scan.pcap").write_bytes((SAMPLES / "syn-portscan.pcap").read_bytes())
    (folder / "notes.txt").write_text("not a capture\n")
    (folder / "fake.pcap").write_text("not a capture either\n")
    res = scan(folder, "--out", tmp_path / "o")
    assert res.exit_code == 0, res.stderr
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [Path(c["file"]).name for c in report["captures"]] == ["scan.pcap"]
    assert sorted(Path(s["file"]).name for s in report["skipped"]) == ["fake.pcap", "notes.txt"]


def test_force_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert scan(SAMPLES / "land.pcap", "--out", out).exit_code == 0
    res = scan(SAMPLES / "ping-sweep.pcap", "--out", out, "--force")
    assert res.exit_code == 0, res.stderr
    assert "ping-sweep" in json.loads((out / "report.json").read_text())["captures"][0]["file"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_header_only_capture_gives_empty_outputs(tmp_path: Path) -> None:
    import dpkt

    cap = tmp_path / "header-only.pcap"
    with cap.open("wb") as f:
        dpkt.pcap.Writer(f)  # writes the global header only
    res = scan(cap, "--out", tmp_path / "o")
    assert res.exit_code == 0, res.stderr
    v = pl.read_csv(tmp_path / "o" / "verdicts.csv")
    assert v.height == 0 and v.columns == verdict_columns(CLASSES)
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert (report["packets"], report["flows"], report["incidents"]) == (0, 0, [])


def _shipped_model_edited(model: Path, edit: Callable[[dict[str, Any]], dict[str, Any]]) -> Path:
    """The shipped model copied to ``model`` with its weights' tensors passed through ``edit`` (sha256 redone)."""
    import hashlib
    import shutil

    from safetensors.torch import load_file, save_file

    from model.infer import default_model_dir

    shutil.copytree(default_model_dir(), model)
    tensors = edit(load_file(str(model / "weights.safetensors")))
    save_file(tensors, str(model / "weights.safetensors"), metadata={"format": "pt"})
    meta = json.loads((model / "metadata.json").read_text())
    meta["weights_sha256"] = hashlib.sha256((model / "weights.safetensors").read_bytes()).hexdigest()
    if not any(k.startswith("support.") for k in tensors):
        meta.pop("support", None)  # the metadata describes the profile only where the weights hold one
    (model / "metadata.json").write_text(json.dumps(meta))
    return model


def _without(prefix: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda t: {k: v for k, v in t.items() if not k.startswith(prefix)}


def test_novelty_gate_relabels_only_flows_the_network_called_normal(tmp_path: Path) -> None:
    # A gate a tenth as wide as the shipped one, so that the demo capture surely holds flows outside it whatever
    # the shipped model's profile: what is tested is which flows the gate may relabel, not where its edge lies.
    # Without the support gate: the plain scan is then the network's own argmax (--novelty never applies it).
    model = _shipped_model_edited(
        tmp_path / "model",
        lambda t: {**_without("support.")(t), "novelty.threshold": t["novelty.threshold"] * 0.1},
    )
    plain, gated = tmp_path / "plain", tmp_path / "gated"
    assert scan(SAMPLES / "demo-mixed.pcap", "--out", plain, "--model", model).exit_code == 0
    res = scan(SAMPLES / "demo-mixed.pcap", "--out", gated, "--novelty", "--model", model)
    assert res.exit_code == 0, res.stderr
    a, b = pl.read_csv(plain / "verdicts.csv"), pl.read_csv(gated / "verdicts.csv")
    assert not a["novel"].any() and b["novel"].any()
    assert (a.filter(b["novel"])["label"] == "normal").all()  # only flows the network called normal ...
    assert (b.filter(b["novel"])["label"] != "normal").all()  # ... become an attack class
    assert a.filter(~b["novel"])["label"].to_list() == b.filter(~b["novel"])["label"].to_list()
    report = json.loads((gated / "report.json").read_text())
    assert report["novelty_gate"] == {"applied": True, "relabelled_flows": int(b["novel"].sum())}
    assert json.loads((plain / "report.json").read_text())["novelty_gate"] == {"applied": False, "relabelled_flows": 0}
    assert "Novelty gate" in res.stdout


def _tenth_but_normal(t: dict[str, Any]) -> Any:
    radius = t["support.radius"].clone()
    radius[1:] *= 0.1
    return radius


def test_support_gate_sets_only_attack_calls_to_normal(tmp_path: Path) -> None:
    # the shipped model with its attack classes' support radii shrunk to a tenth (so that the samples surely hold
    # attack calls outside them, whatever the shipped profile: what is tested is which flows the gate may relabel, not
    # where its edge lies) against the same networks without a gate, on the demo capture and the UDP flood
    caps = (SAMPLES / "demo-mixed.pcap", SAMPLES / "udp-flood.pcap")
    bare = _shipped_model_edited(tmp_path / "bare", _without("support."))
    tight = _shipped_model_edited(tmp_path / "tight", lambda t: {**t, "support.radius": _tenth_but_normal(t)})
    plain, gated, hunting = tmp_path / "plain", tmp_path / "gated", tmp_path / "hunting"
    assert scan(*caps, "--out", plain, "--model", bare).exit_code == 0
    res = scan(*caps, "--out", gated, "--model", tight)
    assert res.exit_code == 0, res.stderr
    a, b = pl.read_csv(plain / "verdicts.csv"), pl.read_csv(gated / "verdicts.csv")
    off = b["unsupported"]
    assert not a["unsupported"].any() and off.any()
    assert (a.filter(off)["label"] != "normal").all() and (b.filter(off)["label"] == "normal").all()
    assert a.filter(~off)["label"].to_list() == b.filter(~off)["label"].to_list()  # nothing else moves
    assert b.filter(off)["confidence"].to_list() == b.filter(off)["p_normal"].to_list()
    assert a["p_attack"].to_list() == b["p_attack"].to_list()  # the network's probabilities stay
    report = json.loads((gated / "report.json").read_text())
    assert report["support_gate"] == {"applied": True, "relabelled_flows": int(off.sum())}
    assert json.loads((plain / "report.json").read_text())["support_gate"] == {"applied": False, "relabelled_flows": 0}
    assert "Support gate" in res.stdout
    # hunting mode: the novelty gate alone, no flow unsupported
    assert scan(*caps, "--out", hunting, "--novelty", "--model", tight).exit_code == 0
    h = pl.read_csv(hunting / "verdicts.csv")
    assert not h["unsupported"].any()
    assert json.loads((hunting / "report.json").read_text())["support_gate"]["applied"] is False


def test_a_support_profile_the_metadata_does_not_describe_is_refused(tmp_path: Path) -> None:
    model = _shipped_model_edited(tmp_path / "model", lambda t: t)
    meta = json.loads((model / "metadata.json").read_text())
    del meta["support"]
    (model / "metadata.json").write_text(json.dumps(meta))
    res = scan(SAMPLES / "demo-mixed.pcap", "--out", tmp_path / "o", "--model", model)
    assert res.exit_code == 3 and "support profile" in res.stderr and not (tmp_path / "o").exists()


def test_novelty_needs_a_model_with_a_profile(tmp_path: Path) -> None:
    model = _shipped_model_edited(
        tmp_path / "model", lambda t: {k: v for k, v in t.items() if not k.startswith("novelty.")}
    )
    assert scan(SAMPLES / "demo-mixed.pcap", "--out", tmp_path / "a", "--model", model).exit_code == 0
    res = scan(SAMPLES / "demo-mixed.pcap", "--out", tmp_path / "b", "--model", model, "--novelty")
    assert res.exit_code == 3 and "has no novelty profile" in res.stderr and not (tmp_path / "b").exists()
