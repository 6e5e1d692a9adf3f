"""Arbitrary header values (damaged or hostile captures) never break the flow builder, and every packet lands in a flow."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.capture.packets import PACKET_COLUMNS, PacketBatch
from features.flows.builder import FlowBuilder, FlowConfig


def random_batch(rng: np.random.Generator, n: int, first_idx: int, t0: int) -> PacketBatch:
    small = rng.integers(0, 3, n)
    cols = {
        "pkt_idx": np.arange(first_idx, first_idx + n),
        "ts_ns": t0 + np.sort(rng.integers(0, 200 * 10**9, n)),
        "vlan": rng.choice([-1, -1, 5, 4095], n),
        "ip_version": rng.choice([4, 6], n),
        "proto": rng.choice([6, 6, 17, 1, 58, 47, 0, 255], n),
        "src_hi": small.astype(np.uint64),
        "src_lo": rng.integers(0, 3, n).astype(np.uint64),
        "dst_hi": rng.integers(0, 2, n).astype(np.uint64),
        "dst_lo": rng.integers(0, 3, n).astype(np.uint64),
        "sport": rng.choice([-1, 0, 1, 65535], n),
        "dport": rng.choice([-1, 0, 1, 65535], n),
        "icmp_type": rng.choice([-1, 0, 8, 3, 255], n),
        "icmp_code": rng.choice([-1, 0, 255], n),
        "tcp_flags": rng.integers(0, 256, n),
        "tcp_seq": rng.choice([0, 1, 2**31, 2**32 - 1], n),
        "tcp_ack": rng.choice([0, 1, 2**32 - 1], n),
        "tcp_win": rng.choice([0, 1, 65535], n),
        "ip_len": rng.integers(0, 70000, n),
        "payload_len": rng.integers(0, 70000, n),
        "ip_id": rng.integers(0, 3, n),
        "frag_off": rng.choice([0, 0, 8, 1480, 65528], n),
        "more_frags": rng.random(n) < 0.3,
        "is_frag": rng.random(n) < 0.3,
        "tunnel": rng.choice(np.array([0, 0, 0, 12345, 2**63 + 7], np.uint64), n),
    }
    return PacketBatch({k: np.asarray(v).astype(dt) for k, v in cols.items() for dt in [PACKET_COLUMNS[k]]})


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(0, 300), min_size=1, max_size=5))
def test_random_columns_never_break_and_keep_every_packet(seed: int, sizes: list[int]) -> None:
    rng = np.random.default_rng(seed)
    fb = FlowBuilder("fuzz.pcap", FlowConfig(tcp_idle_s=30, udp_idle_s=10, icmp_idle_s=10, other_idle_s=10))
    frames, first, t0 = [], 0, 1_700_000_000 * 10**9
    for n in sizes:
        frames.append(fb.add(random_batch(rng, n, first, t0)))
        first += n
        t0 += 200 * 10**9
    frames.append(fb.finish())
    total = sum(int(f["orig_pkts"].sum()) + int(f["resp_pkts"].sum()) for f in frames)
    assert total == sum(sizes)
    for f in frames:
        assert (
            f["conn_state"]
            .is_in(["S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH"])
            .all()
        )
        assert (f["orig_pkts"] >= 0).all() and (f["duration_s"] >= 0).all()
