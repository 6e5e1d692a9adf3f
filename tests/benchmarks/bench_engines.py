"""The default engine against ``--engine ray`` on one capture: wall time and the driver's peak RSS, each scan in a
fresh process.

    python tests/benchmarks/bench_engines.py [--capture /tmp/bench-10m.pcap] [--ray-cpus 2] [--nodes 1]

``--nodes 2`` runs Ray on a simulated cluster of that many nodes (``ray.cluster_utils.Cluster``, ``--ray-cpus``
CPUs in all, split evenly) on this machine. Also checks that both engines wrote the same verdicts.csv. Prints
figures; asserts nothing (no timed tests). Needs Ray (``pip install 'nta[ray]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from analyzer.pipeline import ScanConfig, run_scan

def main():
    engine, cpus, nodes = {engine!r}, {cpus}, {nodes}
    cluster = None
    if engine == "ray":
        import ray
        if nodes > 1:
            from ray.cluster_utils import Cluster
            cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": cpus // nodes}})
            for _ in range(nodes - 1):
                cluster.add_node(num_cpus=cpus // nodes)
            ray.init(address=cluster.address, log_to_driver=False)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    t0 = time.perf_counter()
    r = run_scan(ScanConfig(paths=(Path({capture!r}),), out=Path({out!r}), device="cpu", engine=engine))
    wall = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps({{"wall": wall, "rss": me, "packets": r.packets, "flows": r.flows}}), flush=True)
    if engine == "ray":
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()

if __name__ == "__main__":
    main()
"""


def run(engine: str, capture: Path, out: Path, cpus: int, nodes: int) -> dict:
    code = CHILD.format(repo=str(REPO), engine=engine, cpus=cpus, nodes=nodes, capture=str(capture), out=str(out))
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
    try:
        proc = subprocess.run([sys.executable, f.name], capture_output=True, text=True, check=False)
    finally:
        os.unlink(f.name)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{engine} scan failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=Path("/tmp/bench-10m.pcap"))
    ap.add_argument("--ray-cpus", type=int, default=2)
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--skip-local", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        if not args.skip_local:
            runs["default engine"] = run("local", args.capture, Path(tmp) / "local", 0, 1)
        label = f"ray, {args.ray_cpus} CPUs" + (f", {args.nodes} nodes" if args.nodes > 1 else "")
        runs[label] = run("ray", args.capture, Path(tmp) / "ray", args.ray_cpus, args.nodes)
        print(f"{args.capture}: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'engine':<24} {'wall s':>8} {'packets/s':>12} {'flows':>10} {'driver peak RSS':>16}")
        for name, r in runs.items():
            print(
                f"{name:<24} {r['wall']:8.1f} {r['packets'] / r['wall']:12,.0f} {r['flows']:10,} {r['rss']:13,.0f} MiB"
            )
        if not args.skip_local:
            same = (Path(tmp) / "local" / "verdicts.csv").read_bytes() == (
                Path(tmp) / "ray" / "verdicts.csv"
            ).read_bytes()
            print(f"verdicts.csv identical: {same}")


if __name__ == "__main__":
    main()
