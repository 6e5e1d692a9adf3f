"""Chunking must not change the flows: the same packets cut into batches anywhere give the same table."""

from __future__ import annotations

import random

import polars as pl
import pytest
from flows_build import build
from flows_pkts import ACK, FIN, PSH, RST, SYN, pkt
from hypothesis import example, given, settings
from hypothesis import strategies as st

from features.flows.builder import FlowConfig

HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::1", "2001:db8::2"]
FLAGS = [SYN, SYN | ACK, ACK, ACK | PSH, ACK | FIN, RST, RST | ACK, FIN, SYN | FIN, SYN | ACK | FIN | PSH]


def traffic(seed: int, n: int) -> list[dict]:
    """Random but plausible packets over few tuples, so reuse, ends, timeouts and fragments all happen."""
    r = random.Random(seed)
    t = 0.0
    out: list[dict] = []
    while len(out) < n:
        t += r.choice([0.001, 0.01, 0.5, 2.0, 7.0, 70.0])
        v6 = r.random() < 0.3
        a, b = r.sample(HOSTS[3:] if v6 else HOSTS[:3], 2)
        kind = r.random()
        if kind < 0.6:
            sp, dp = r.choice([(1000, 80), (80, 1000), (1001, 80)])
            out.append(
                pkt(t, a, b, sp, dp, flags=r.choice(FLAGS), seq=r.choice([1, 2, 500]), plen=r.choice([0, 0, 10]))
            )
        elif kind < 0.8:
            out.append(pkt(t, a, b, 53, 5353, proto=17, plen=r.randint(0, 50)))
        elif kind < 0.9:
            out.append(pkt(t, a, b, proto=58 if v6 else 1, icmp=r.choice([(8, 0), (0, 0), (3, 3)]), plen=8))
        else:  # a fragmented UDP datagram, fragments adjacent in time, in random order
            ip_id = r.randint(1, 3)
            parts = [
                pkt(t, a, b, 7000, 2049, proto=17, plen=100, ip_id=ip_id, frag_off=0, mf=True),
                pkt(t, a, b, proto=17, plen=r.choice([100, 60]), ip_id=ip_id, frag_off=r.choice([108, 80]), mf=True),
                pkt(t, a, b, proto=17, plen=20, ip_id=ip_id, frag_off=216, mf=False),
            ]
            r.shuffle(parts)
            for i, p in enumerate(parts):
                p["ts_ns"] += i * 1000
            out.extend(parts)
    return out


def canon(df: pl.DataFrame) -> pl.DataFrame:
    return df.drop("flow_id").sort(df.drop("flow_id").columns)


CFG = FlowConfig(tcp_idle_s=60.0, udp_idle_s=20.0, icmp_idle_s=20.0)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 120), cuts=st.lists(st.floats(0, 1), max_size=6))
def test_batch_cuts_do_not_change_flows(seed: int, n: int, cuts: list[float]) -> None:
    pk = traffic(seed, n)
    idx = sorted({int(c * len(pk)) for c in cuts})
    whole = build(pk, config=CFG)
    split = build(pk, cuts=idx, config=CFG)
    assert canon(whole).equals(canon(split))
    assert int(whole["orig_pkts"].sum() + whole["resp_pkts"].sum()) == len(pk)


def test_one_packet_per_batch_equals_one_batch() -> None:
    pk = traffic(7, 150)
    assert canon(build(pk, config=CFG)).equals(canon(build(pk, cuts=list(range(1, len(pk))), config=CFG)))


def test_many_reuses_of_one_tuple_in_one_batch() -> None:
    """SYN/RST on one tuple over and over: beyond the vectorised passes, the sequential fallback takes over."""
    pk = []
    for i in range(200):
        pk.append(pkt(i * 0.01, "10.0.0.1", "10.0.0.2", 1000, 23, flags=SYN, seq=i * 1000))
        pk.append(pkt(i * 0.01 + 0.001, "10.0.0.2", "10.0.0.1", 23, 1000, flags=RST | ACK, ack=i * 1000 + 1))
    f = build(pk)
    assert f.height == 200 and set(f["conn_state"]) == {"REJ"}
    assert canon(f).equals(canon(build(pk, cuts=[37, 150, 151])))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 150))
@example(seed=931, n=55)  # a flipped flow whose half-open reuse split is followed by a non-flipped SYN-ACK
def test_sequential_fallback_equals_vectorised_passes(seed: int, n: int) -> None:
    """The Python fallback (used for keys reused many times in one batch) decides every split the same way."""
    import features.flows.builder as flows_mod

    pk = traffic(seed, n)
    vectorised = build(pk, config=CFG)
    old = flows_mod._MAX_VECTOR_PASSES
    flows_mod._MAX_VECTOR_PASSES = 0
    try:
        sequential = build(pk, config=CFG)
    finally:
        flows_mod._MAX_VECTOR_PASSES = old
    assert canon(vectorised).equals(canon(sequential))


def test_hash_collisions_fall_back_to_the_full_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key hashing alike must give the same flows (the sort falls back to the full key)."""
    import numpy as np

    import features.flows.state as fs

    pk = traffic(11, 200)
    normal = build(pk, cuts=[50, 120], config=CFG)
    monkeypatch.setattr(fs, "key_hash", lambda k: np.zeros(k["a_hi"].shape, np.uint64))
    colliding = build(pk, cuts=[50, 120], config=CFG)
    assert canon(normal).equals(canon(colliding))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 2**64 - 1), max_size=60),
    st.lists(st.integers(0, 2**64 - 1), max_size=60),
    st.lists(st.integers(0, 59), max_size=20),
)
def test_open_flow_membership_is_np_isin(x: list[int], of: list[int], shared: list[int]) -> None:
    import numpy as np

    from features.flows.builder import _member

    xs = np.array(x + [of[i] for i in shared if i < len(of)], np.uint64)
    ofs = np.array(of, np.uint64)
    assert np.array_equal(_member(xs, ofs), np.isin(xs, ofs))
