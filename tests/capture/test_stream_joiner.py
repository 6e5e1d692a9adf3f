"""Which files are read as one stream: ``features.capture.streams.StreamJoiner``'s rule on file time ranges."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from features.capture.streams import DEFAULT_GAP_NS, JOIN_SLACK_NS, StreamJoiner
from features.flows.builder import FlowConfig

S = 1_000_000_000


def join(files: Sequence[tuple[str, float, float, int]]) -> list[list[str]]:
    """Streams (file names in reading order) for files given as (name, first s, last s, link type)."""
    starts = [(int(a * S), lt) for _, a, _, lt in files]
    joiner = StreamJoiner()
    for i in joiner.order(starts):
        stream = joiner.assign(i, Path("/evidence") / files[i][0], *starts[i])
        joiner.read(stream, int(files[i][2] * S))
    return [[files[i][0] for i in s.files] for s in joiner.streams]


def test_rotated_files_join_in_time_order_whatever_the_given_order() -> None:
    files = [("x.pcap2", 20, 29, 1), ("x.pcap", 0, 9.5, 1), ("x.pcap1", 10, 19, 1)]
    assert join(files) == [["x.pcap", "x.pcap1", "x.pcap2"]]


def test_two_sensors_rotating_together_stay_two_streams() -> None:
    files = [("a-1.pcap", 0, 10, 1), ("b-1.pcap", 1, 11, 1), ("a-2.pcap", 10.5, 20, 1), ("b-2.pcap", 11.5, 21, 1)]
    assert join(files) == [["a-1.pcap", "a-2.pcap"], ["b-1.pcap", "b-2.pcap"]]


def test_the_same_name_pattern_wins_over_the_latest_end() -> None:
    files = [("a-1.pcap", 0, 10, 1), ("b-1.pcap", 5, 10.2, 1), ("a-2.pcap", 10.5, 20, 1)]
    assert join(files) == [["a-1.pcap", "a-2.pcap"], ["b-1.pcap"]]


def test_overlap_link_type_and_empty_files_start_streams() -> None:
    files = [("x1.pcap", 0, 10, 1), ("x2.pcap", 9, 20, 1), ("x3.pcap", 21, 30, 113)]
    assert join(files) == [["x1.pcap"], ["x2.pcap"], ["x3.pcap"]]
    starts = [(None, 1), (0, 1)]
    assert StreamJoiner.order(starts) == [1, 0]  # a header-only capture comes last, in a stream of its own


def test_timestamps_stepping_back_a_little_at_the_cut_still_join() -> None:
    slack = JOIN_SLACK_NS / S
    assert join([("x1.pcap", 0, 10, 1), ("x2.pcap", 10 - slack / 2, 20, 1)]) == [["x1.pcap", "x2.pcap"]]
    assert len(join([("x1.pcap", 0, 10, 1), ("x2.pcap", 10 - 2 * slack, 20, 1)])) == 2


GAP = DEFAULT_GAP_NS / S  # 300 s


def test_the_gap_is_the_longest_flow_timeout() -> None:
    assert DEFAULT_GAP_NS == FlowConfig().longest_idle_ns == 300 * S
    assert FlowConfig(tcp_idle_s=10, udp_idle_s=90).longest_idle_ns == 90 * S


@pytest.mark.parametrize(
    ("files", "streams"),
    [
        # rotated pieces a moment apart
        ([("x1.pcap", 0, 10, 1), ("x2.pcap", 10.2, 20, 1)], [["x1.pcap", "x2.pcap"]]),
        # a quiet link: the next piece starts just within the gap
        ([("x1.pcap", 0, 10, 1), ("x2.pcap", 10 + GAP, 20 + GAP, 1)], [["x1.pcap", "x2.pcap"]]),
        # just past the gap: no flow can continue
        ([("x1.pcap", 0, 10, 1), ("x2.pcap", 10 + GAP + 1, 20 + GAP, 1)], [["x1.pcap"], ["x2.pcap"]]),
        # captures a day apart (a folder of unrelated samples), whatever their names
        ([("web.pcap", 0, 60, 1), ("web.pcap1", 86_400, 86_500, 1)], [["web.pcap"], ["web.pcap1"]]),
        # the stream that ended within the gap takes the file, not one that ended long before
        (
            [("a1.pcap", 0, 10, 1), ("b1.pcap", 500, 900, 1), ("a2.pcap", 950, 990, 1)],
            [["a1.pcap"], ["b1.pcap", "a2.pcap"]],
        ),
    ],
)
def test_joining_stops_at_the_gap(files: list[tuple[str, float, float, int]], streams: list[list[str]]) -> None:
    assert join(files) == streams
