"""The scan streams flows through features, inference and the outputs in chunks: the chunk size changes memory,
never the outputs; a failure midway leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from analyzer.pipeline import ScanConfig, run_scan

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
CAPS = tuple(SAMPLES / n for n in ("demo-mixed.pcap", "syn-flood.pcap", "ftp-bruteforce.pcap", "ping-sweep.pcap"))


def outputs(out: Path) -> tuple[pl.DataFrame, bytes, dict, bytes]:
    report = json.loads((out / "report.json").read_text())
    report.pop("seconds"), report.pop("outputs")
    flows = pl.read_parquet(out / "flows.parquet")
    return flows, (out / "verdicts.csv").read_bytes(), report, (out / "alerts.ndjson").read_bytes()


def test_small_chunks_write_the_same_outputs(tmp_path: Path) -> None:
    whole = outputs(run_scan(ScanConfig(paths=CAPS, out=tmp_path / "a", device="cpu")).out_dir)
    small = run_scan(ScanConfig(paths=CAPS, out=tmp_path / "b", device="cpu", chunk_flows=37))
    got = outputs(small.out_dir)
    assert got[0].equals(whole[0]) and got[1] == whole[1] and got[2] == whole[2] and got[3] == whole[3]
    assert whole[0]["uid"].null_count() == 0 and whole[0]["incident_id"].null_count() < whole[0].height
    assert whole[2]["incidents"] and all(i["reason"] for i in whole[2]["incidents"][:3])  # explained, read back
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "alerts.ndjson",
        "flows.parquet",
        "report.html",
        "report.json",
        "verdicts.csv",
    ]


@pytest.mark.parametrize(("join_below", "features_calls"), [(0, 2), (10**9, 7)])
def test_joined_chunks_write_the_same_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, join_below: int, features_calls: int
) -> None:
    """While the window features carry many times the waiting chunks (a flood), chunks are joined before their
    features (pipeline.JOIN_CHUNKS_BELOW): 0 joins every chunk after the first, 10**9 none."""
    from analyzer import pipeline

    whole = outputs(run_scan(ScanConfig(paths=CAPS[:1], out=tmp_path / "a", device="cpu")).out_dir)
    calls: list[int] = []
    real = pipeline._Engine._add

    def counted(self: object, chunk: object) -> None:
        calls.append(1)
        real(self, chunk)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "JOIN_CHUNKS_BELOW", join_below)
    monkeypatch.setattr(pipeline._Engine, "_add", counted)
    got = outputs(run_scan(ScanConfig(paths=CAPS[:1], out=tmp_path / "b", device="cpu", chunk_flows=150)).out_dir)
    assert len(calls) == features_calls
    assert got[0].equals(whole[0]) and got[1] == whole[1] and got[2] == whole[2] and got[3] == whole[3]


def test_a_failure_in_inference_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer import pipeline

    calls: list[int] = []

    def fails_on_third(
        clf: Any, x: np.ndarray, batch_size: int, progress: Any, novelty: bool = False
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("inference broke")
        return real(clf, x, batch_size, progress, novelty)

    real = pipeline._predict
    monkeypatch.setattr(pipeline, "_predict", fails_on_third)
    with pytest.raises(RuntimeError, match="inference broke"):
        run_scan(ScanConfig(paths=CAPS, out=tmp_path / "o", device="cpu", chunk_flows=50))
    assert len(calls) == 3 and not (tmp_path / "o").exists()


def test_a_piped_capture_gets_the_files_uids() -> None:
    """A uid hashes its capture's SHA-256: regular files are hashed before their flows leave; a pipe's flows wait
    until it is read to the end, so both give the uids of the whole file, in small chunks too."""
    import os
    import threading

    from features.flows.extract import FlowStream, extract_flows

    cap = SAMPLES / "demo-mixed.pcap"
    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            f.write(cap.read_bytes())

    t = threading.Thread(target=feed)
    t.start()
    try:
        chunks = list(FlowStream([Path(f"/dev/fd/{r}")], payloads=False, chunk_flows=50))
    finally:
        t.join()
        os.close(r)
    piped = pl.concat([c.flows for c in chunks])
    whole = pl.from_arrow(extract_flows([cap], payloads=False).flows)
    assert isinstance(whole, pl.DataFrame) and whole["uid"].null_count() == 0
    assert piped["uid"].to_list() == whole["uid"].to_list()
    small = pl.concat([c.flows for c in FlowStream([cap], payloads=False, chunk_flows=50)])
    assert small["uid"].to_list() == whole["uid"].to_list()


def test_rows_read_back_own_their_memory(tmp_path: Path) -> None:
    """The scan reads attack flows back from flows.parquet, a few rows from each row group: it gets exactly those
    rows, in the order asked, and their strings in buffers of their own. A polars frame filtered from a whole
    row group shares the group's string buffers (string views point into them), so a few rows from every group
    held the whole table's strings at the end of a big scan (10M packets: +109 MiB)."""
    import numpy as np

    from analyzer.outputs import ParquetRows

    run_scan(ScanConfig(paths=CAPS[:1], out=tmp_path / "o", device="cpu", chunk_flows=37))
    path = tmp_path / "o" / "flows.parquet"
    table = pl.read_parquet(path)
    want = np.array([table.height - 1, 3, 40, 3, *range(5, table.height, 37)])  # unordered, repeated, every group
    rows = ParquetRows(path, spec=None)
    got = rows.flows(want)
    expect = table.join(pl.DataFrame({"flow_id": want}).with_row_index("_i"), on="flow_id").sort("_i")
    assert got.equals(expect.select(got.columns))
    got = rows._read(want, ["uid", "community_id"])  # what every reader of rows builds on, group by group
    assert got.equals(expect.select(got.columns))
    for name in ("uid", "community_id"):  # longer than 12 bytes: held in a data buffer, not inline in the view
        held = got[name].to_arrow(compat_level=pl.CompatLevel.newest()).buffers()[2:]
        assert sum(b.size for b in held if b is not None) <= 2 * sum(len(u) for u in got[name]), name


def test_rows_asked_in_order_skip_the_join_and_match_it(tmp_path: Path) -> None:
    """Rows asked in flow_id order, each once (an explanation's every member of a flood), come straight from the row
    groups; any other request goes through the join: both give the flow table's rows, in the order asked."""
    import numpy as np

    from analyzer.outputs import ParquetRows

    run_scan(ScanConfig(paths=CAPS[:1], out=tmp_path / "o", device="cpu", chunk_flows=37))
    path = tmp_path / "o" / "flows.parquet"
    table = pl.read_parquet(path)
    rows = ParquetRows(path, spec=None)
    ordered = np.arange(1, table.height, 2)
    got = rows._read(ordered, ["uid", "duration_s"])
    assert got.equals(table.filter(pl.col("flow_id").is_in(ordered.tolist())).select(got.columns))
    shuffled = np.random.default_rng(0).permutation(ordered)
    assert rows._read(shuffled, ["uid", "duration_s"])["flow_id"].to_list() == shuffled.tolist()
    missing = np.append(ordered, table.height + 5)  # an id past the table: a null row, still in its place
    got = rows._read(missing, ["uid"])
    assert got.height == missing.size and got["uid"][-1] is None
