"""features.kdd.windows.Sessions: which records start a session (a stream seen for the first time after a quiet spell
longer than the gap), table-driven, and the same numbering whatever the batches."""

from __future__ import annotations

import numpy as np
import pytest

from features.kdd.windows import SESSION_GAP_NS, Sessions

S = 1_000_000_000
GAP = SESSION_GAP_NS // S  # 300 s


def number(records: list[tuple[float, float, int]], gap_s: int = GAP) -> list[int]:
    """Sessions of records given as (start s, end s, stream), in window order, numbered in one batch."""
    t = np.array([int(a * S) for a, _, _ in records], np.int64)
    end = np.array([int(b * S) for _, b, _ in records], np.int64)
    stream = np.array([k for _, _, k in records], np.int64)
    return Sessions(gap_s * S).number(t, end, stream).tolist()


@pytest.mark.parametrize(
    ("records", "sessions"),
    [
        # one capture with a quiet hour inside: still one session (only a new stream starts one)
        ([(0, 1, 0), (3_600, 3_601, 0)], [0, 0]),
        # a second capture a day later: its own session
        ([(0, 1, 0), (5, 6, 0), (86_400, 86_401, 1), (86_402, 86_403, 1)], [0, 0, 1, 1]),
        # a second capture within the gap (one after the other, or a second sensor): the same session
        ([(0, 1, 0), (1 + GAP, 2 + GAP, 1)], [0, 0]),
        ([(0, 1, 0), (1 + GAP + 1, 2 + GAP, 1)], [0, 1]),
        # the gap is counted from the latest end of any record, not the last one started
        ([(0, 1_000, 0), (10, 11, 0), (1_200, 1_201, 1)], [0, 0, 0]),
        # three captures on three days
        ([(0, 1, 5), (86_400, 86_401, 2), (172_800, 172_801, 9)], [0, 1, 2]),
        # an earlier capture's late flow (a clock jump) does not start a session: its stream is not new
        ([(0, 1, 0), (86_400, 86_401, 1), (200_000, 200_001, 0)], [0, 1, 1]),
        # a record with no duration (end = start) and one whose end lies before its start (taken as its start)
        ([(0, 0, 0), (400, 399, 1)], [0, 1]),
    ],
)
def test_which_records_start_a_session(records: list[tuple[float, float, int]], sessions: list[int]) -> None:
    assert number(records) == sessions


def test_the_first_record_is_session_zero_even_when_far_from_nothing() -> None:
    assert number([(1e9, 1e9, 7)]) == [0]
    assert Sessions().count == 1


@pytest.mark.parametrize("seed", range(20))
def test_batches_number_as_the_whole_does(seed: int) -> None:
    """Property: records cut into batches anywhere get the sessions the whole table gives them."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    t = np.sort(rng.integers(0, 5, n).cumsum() * rng.choice([S, 400 * S], n, p=[0.9, 0.1]))
    end = t + rng.integers(0, 400 * S, n)
    stream = rng.integers(0, 6, n)
    whole = Sessions().number(t, end, stream)
    k = min(n - 1, int(rng.integers(0, 10)))
    cuts: list[int] = sorted(rng.choice(np.arange(1, n), size=k, replace=False).tolist()) if k > 0 else []
    batched = Sessions()
    parts = [batched.number(t[a:b], end[a:b], stream[a:b]) for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    assert np.concatenate(parts).tolist() == whole.tolist()
    assert batched.count == int(whole[-1]) + 1
