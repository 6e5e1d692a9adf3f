"""Write many small synthetic benign captures for the capture model's normal class (not a test; not collected).

Usage: ``python tests/benchmarks/make_benign_train.py OUT_DIR [--count 60] [--first-seed 1000]``

Each capture comes from ``../shared/bench/gen_pcap.py`` (TCP sessions with handshakes/FIN/RST, refused
connections, SYN retries, idle gaps, mid-stream starts, DNS, NTP, QUIC-like UDP/443, multicast, ICMP) with
its own seed (``first_seed + i``; the benchmark captures use seed 1, never used here), a packet count drawn
log-uniformly in [300, 30000] and a duration log-uniformly in [5, 600] s. Real captures are taken at one
host or a small segment, so the generator's pool of 3,000 client addresses is cut, per capture, to
1, 2, 5, 20 or all of them (drawn uniformly): the window features (count, dst_host_*) of a workstation's
capture differ from those of a gateway's. A pool is never so small that a client would open more than
``MAX_FLOWS_PER_CLIENT`` sessions a second: one client spraying hundreds of sessions (and pings) a second at
random servers is what sweeps and floods look like, not a workstation. A real capture also stops at an instant, with connections still
open, so each file ends at its last session start (``gen_pcap.py`` would finish every session: no S1 flow).
The sizes, durations and pools are drawn from a RNG seeded by
``first_seed``, so the same command writes the same files. Nothing here looks at the evaluation corpus
(``../shared/data/pcaps/benign``).
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import math
import random
import sys
from pathlib import Path

GEN = Path(__file__).resolve().parents[2].parent / "shared" / "bench" / "gen_pcap.py"
POOLS = (1, 2, 5, 20, 0)  # clients per capture; 0: the generator's whole pool
MAX_FLOWS_PER_CLIENT = 5.0  # new sessions per second and client, at most (gen_pcap: ~13 packets a session)


def _load_gen():
    spec = importlib.util.spec_from_file_location("gen_pcap", GEN)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--first-seed", type=int, default=1000)
    a = ap.parse_args()
    if a.first_seed <= 1:
        sys.exit("seeds <= 1 are the benchmark captures'; use 1000+")
    mod = _load_gen()
    base_gen = mod.Gen
    a.out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.first_seed)
    for i in range(a.count):
        seed = a.first_seed + i
        packets = round(math.exp(rng.uniform(math.log(300), math.log(30000))))
        duration = round(math.exp(rng.uniform(math.log(5), math.log(600))), 1)
        pool = rng.choice(POOLS)
        if pool:
            pool = min(max(pool, math.ceil(packets / 13.0 / duration / MAX_FLOWS_PER_CLIENT)), 3000)

        class Gen(base_gen):  # type: ignore[misc,valid-type]
            clients4: list[bytes]  # gen_pcap.Gen's client address pools (4- and 16-byte addresses)
            clients6: list[bytes]

            def __init__(self, seed: int, duration: float, _pool: int = pool) -> None:
                super().__init__(seed, duration)
                if _pool:
                    self.clients4 = self.clients4[:_pool]
                    self.clients6 = self.clients6[: max(1, _pool // 4)]

        out = a.out_dir / f"benign-{seed}.pcap"
        written = _write(mod, Gen(seed, duration), out, packets, duration)
        print(f"{out.name}\tpackets={written}\tduration={duration}\tclients={pool or 'all'}", flush=True)


def _write(mod, g, out: Path, packets: int, duration: float) -> int:
    """gen_pcap.main's loop (Poisson session starts, packets in time order) without its final flush."""
    rate = packets / 13.0 / duration
    heap: list = []
    written = seq = 0
    t = g.t0
    kinds = g.flows()
    with open(out, "wb") as f:
        w = mod.dpkt.pcap.Writer(f, snaplen=65535)
        while written + len(heap) < packets:
            t += g.r.expovariate(rate)
            for ts, pkt in next(kinds)(t):
                heapq.heappush(heap, (ts, seq, pkt))
                seq += 1
            while heap and heap[0][0] <= t:
                ts, _, pkt = heapq.heappop(heap)
                w.writepkt_time(pkt, ts)
                written += 1
    return written


if __name__ == "__main__":
    main()
