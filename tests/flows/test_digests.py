"""Capture digests in a flow stream: each regular file is hashed once, on a thread, and that digest is both the
uids' and report.json's; a file that changes while it is read is named in a warning."""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

import pytest
from flows_capture import write_capture

import features.capture.source as source_mod
from features.flows.extract import FlowStream, extract_flows


def _drain(fs: FlowStream, forked: bool = False) -> int:
    return sum(c.flows.height for c in fs.chunks(forked=forked))


def test_a_file_is_hashed_once_and_reading_does_not_hash_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = write_capture(tmp_path / "a.pcap")
    calls: list[str] = []
    real = hashlib.sha256

    def counted(*a: object) -> object:
        calls.append("reader")
        return real(*a)  # type: ignore[arg-type]

    # the reader's module: counted; the up-front digest (features.flows.extract) uses features.common.file_sha256
    monkeypatch.setattr(source_mod, "hashlib", type("H", (), {"sha256": staticmethod(counted)}))
    fs = FlowStream([cap])
    assert _drain(fs) == 2
    ext = fs.extraction()
    assert calls == []
    assert [s["sha256"] for s in ext.sources] == [hashlib.sha256(cap.read_bytes()).hexdigest()]
    assert ext.warnings == []


def test_the_digest_reaches_the_parent_from_a_flow_building_child(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "a.pcap")
    fs = FlowStream([cap])
    assert _drain(fs, forked=True) == 2
    assert [s["sha256"] for s in fs.extraction().sources] == [hashlib.sha256(cap.read_bytes()).hexdigest()]


def test_a_damaged_file_is_still_hashed_whole(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "a.pcap")
    data = cap.read_bytes() + struct.pack("<IIII", 9, 0, 0x7FFFFFFF, 60) + b"\0" * 4096  # records end in damage
    cap.write_bytes(data)
    ext = extract_flows([cap])
    assert [s["sha256"] for s in ext.sources] == [hashlib.sha256(data).hexdigest()]
    assert any("corrupt_record" in w for w in ext.warnings)


def test_a_file_changed_while_it_is_read_is_named_in_a_warning(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "a.pcap")
    before = hashlib.sha256(cap.read_bytes()).hexdigest()

    def touch() -> None:  # runs once reading has started, after the file was hashed
        st = cap.stat()
        os.utime(cap, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    fs = FlowStream([cap], on_start=touch)
    assert _drain(fs) == 2
    ext = fs.extraction()
    assert ext.warnings == [f"{cap}: the file changed while it was read; its sha256 is of the file before"]
    assert ext.sources[0]["sha256"] == before


def test_a_file_that_cannot_be_hashed_is_one_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import features.flows.extract as extract_mod
    from features.common import InputError

    cap = write_capture(tmp_path / "a.pcap")

    def broken(_path: object) -> str:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(extract_mod, "file_sha256", broken)
    with pytest.raises(InputError, match=r"a\.pcap: cannot read \(Input/output error\)"):
        _drain(FlowStream([cap]))
