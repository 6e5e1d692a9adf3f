"""``uid``: the same capture gives the same uids wherever it lies and whatever it is called; different captures,
and different flows, never share one (features.flows.uid)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from features.flows.extract import extract_flows

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def _uids(*paths: Path) -> list[str]:
    return extract_flows(list(paths), payloads=False).flows.column("uid").to_pylist()


def test_same_capture_same_uids_under_another_name(tmp_path: Path) -> None:
    copy = tmp_path / "renamed-elsewhere.pcap"
    shutil.copy(SAMPLES / "demo-mixed.pcap", copy)
    a, b = _uids(SAMPLES / "demo-mixed.pcap"), _uids(copy)
    assert a == b and len(set(a)) == len(a) == 944
    assert all(re.fullmatch(r"C[0-9A-Za-z]{17}", u) for u in a)


def test_uids_differ_across_captures_with_the_same_flows() -> None:
    # the format variants hold the same packets (so the same flow keys and times) in different files
    a, b = _uids(SAMPLES / "fmt-pcap-be-usec.pcap"), _uids(SAMPLES / "fmt-pcap-le-nsec.pcap")
    assert len(a) == len(b) > 0 and not set(a) & set(b)


def test_two_captures_in_one_run_keep_their_own_uids() -> None:
    both = _uids(SAMPLES / "land.pcap", SAMPLES / "syn-portscan.pcap")
    assert set(both) == set(_uids(SAMPLES / "land.pcap")) | set(_uids(SAMPLES / "syn-portscan.pcap"))
    assert len(set(both)) == len(both)


def test_vectorised_base62_equals_the_reference() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from features.flows.uid import _b62_uids, make_uid

    @given(st.lists(st.text(), max_size=50))
    def same(keys: list[str]) -> None:
        assert _b62_uids(keys) == [make_uid(k) for k in keys]

    same()
