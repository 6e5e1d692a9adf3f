"""features.kdd.windows.Sessions and positions: each packet stream is a session, numbered in order of its first
record, and each record's place in its session; table-driven, and the same numbering whatever the batches."""

from __future__ import annotations

import numpy as np
import pytest

from features.kdd.windows import Sessions, positions


@pytest.mark.parametrize(
    ("streams", "sessions", "places"),
    [
        # one stream (one capture, or rotated files joined): one session, records counted in window order
        ([0, 0, 0], [0, 0, 0], [0, 1, 2]),
        # stream ids are the streams' first files, not dense: sessions are numbered by first record
        ([7, 7, 3, 3], [0, 0, 1, 1], [0, 1, 0, 1]),
        # two sensors at once (kept apart): records interleave, each counts only its own session's
        ([4, 9, 4, 9, 9, 4], [0, 1, 0, 1, 1, 0], [0, 0, 1, 1, 2, 2]),
        # a stream seen again later (a capture's late flow, a clock jump) keeps its session and its count
        ([0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]),
        ([], [], []),
    ],
)
def test_sessions_and_places(streams: list[int], sessions: list[int], places: list[int]) -> None:
    got = Sessions().number(np.array(streams, np.int64))
    assert got.tolist() == sessions
    assert positions(got, {}).tolist() == places


def test_one_session_before_any_record_and_one_per_stream_after() -> None:
    s = Sessions()
    assert s.count == 1
    s.number(np.array([5, 2, 5], np.int64))
    assert s.count == 2 and s.session_of(2) == 1 and s.session_of(3) is None


@pytest.mark.parametrize("seed", range(20))
def test_batches_number_as_the_whole_does(seed: int) -> None:
    """Property: records cut into batches anywhere get the sessions and places the whole table gives them."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    stream = rng.choice(rng.integers(0, 1000, 6), n)
    whole = Sessions().number(stream)
    whole_pos = positions(whole, {})
    k = min(n - 1, int(rng.integers(0, 10)))
    cuts: list[int] = sorted(rng.choice(np.arange(1, n), size=k, replace=False).tolist()) if k > 0 else []
    batched = Sessions()
    counts: dict[int, int] = {}
    parts, places = [], []
    for a, b in zip([0, *cuts], [*cuts, n], strict=True):
        parts.append(batched.number(stream[a:b]))
        places.append(positions(parts[-1], counts))
    assert np.concatenate(parts).tolist() == whole.tolist()
    assert np.concatenate(places).tolist() == whole_pos.tolist()
    assert batched.count == len(set(stream.tolist())) == int(whole.max()) + 1
    assert counts == {s: int((whole == s).sum()) for s in set(whole.tolist())}
