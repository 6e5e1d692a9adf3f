"""Every capture in ../shared/data/pcaps reads without an exception, with MANIFEST.tsv's packet count."""

from __future__ import annotations

import pytest
from capture_testlib import PCAPS, corpus_files, manifest, need

from features.capture.source import PacketSource

CUT = "formats/file-cut-mid-record.pcap"


@pytest.mark.corpus
def test_corpus_present() -> None:
    need(PCAPS)
    assert len(corpus_files()) >= 90


@pytest.mark.corpus
@pytest.mark.parametrize("rel", corpus_files() or ["(../shared missing)"])
def test_reads_every_capture(rel: str) -> None:
    path = need(PCAPS / rel)
    row = manifest()[rel]
    src = PacketSource(path)
    rows = sum(len(b) for b in src.batches())
    assert src.records == int(row["packets"])
    assert src.sha256 == row["sha256"]
    assert src.size_bytes == int(row["bytes"])
    assert (
        rows
        + sum(v for k, v in src.bad.items() if k not in ("truncated_transport", "bad_tcp_header", "truncated_record"))
        == src.records
    )
    if rel == CUT:
        assert src.warnings == [
            f"{path}: truncated_record: file cut mid-record (2 stray bytes) after 25 complete records"
        ]
    else:
        assert src.warnings == []
