"""End-to-end speed of ``nta scan`` by stage: packets/s and flows/s on a big synthetic capture.

    python tests/benchmarks/bench_scan.py [--capture /tmp/bench-1m.pcap] [--device cpu] [--runs 1]
    python tests/benchmarks/bench_scan.py --device cuda --compare-cpu   # on the GPU machine
    python tests/benchmarks/bench_scan.py --cli --runs 5                 # the command itself, as a user runs it
    python tests/benchmarks/bench_scan.py --cli --nta /tmp/u/bin/nta     # ... installed as README's command 1 does

Makes the capture with ../shared/bench/gen_pcap.py when missing (1M packets, 300 s, seed 1; reused when
``<capture>.done`` exists, as other benchmarks leave it). Prints seconds, packets/s and flows/s per stage,
the end-to-end figure (run_scan plus rendering the report) against issue 14's target (``TARGET_PPS``), and
peak RSS. ``--cli`` times the command instead (``nta scan CAPTURE -q``, a new process each run: Python's start,
the imports and the worker started early included), with the CPU and peak RSS of its whole process tree;
``--nta`` names the command to time, e.g. the ``nta`` of a venv made by README's first command. That one is what
users run: ``pip install .`` compiles nta's modules, while a checkout's editable install under
PYTHONDONTWRITEBYTECODE (set on this machine) compiles them again in every process, ~0.2 s of each scan.
``--compare-cpu`` then scans again on the CPU and compares the verdicts (labels that differ, largest probability
difference): CUDA runs bf16 autocast, so they agree within rounding. Not collected by pytest (no timed tests):
figures go in the issue's note.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
GEN = REPO.parent / "shared" / "bench" / "gen_pcap.py"
TARGET_PPS = 250_000  # issue 14


def ensure_capture(path: Path, packets: int, duration: int) -> None:
    done = path.with_name(path.name + ".done")
    if path.exists() and done.exists():
        return
    if not GEN.exists():
        sys.exit(f"needs {GEN} (../shared beside the checkout) to make {path}")
    print(f"generating {path} ({packets:,} packets) ...", flush=True)
    subprocess.run(
        [sys.executable, str(GEN), str(path), "--packets", str(packets), "--duration", str(duration), "--seed", "1"],
        check=True,
    )
    done.touch()


def _all_cpu() -> float:
    """User + system CPU seconds of this process and of its children that have ended (the scan's flow builder and
    its decoder are waited for before the scan returns)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def cli_runs(args: argparse.Namespace) -> None:
    """``nta scan CAPTURE -q`` in a new process per run: wall time, the CPU of the command and its children,
    their largest peak RSS, and packets/s against the target (the packets counted by the scan's report.json)."""
    import json

    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            nta = [args.nta] if args.nta else [sys.executable, "-m", "analyzer"]
            cmd = [*nta, "scan", str(args.capture.resolve()), "-q", "-o", str(out)]
            cmd += ["--device", args.device, "--batch-size", str(args.batch_size)]
            t0 = time.perf_counter()
            # run from the checkout only when it is the checkout's code (-m puts the working folder first)
            proc = subprocess.Popen(cmd, cwd=tmp if args.nta else REPO)
            # this run's own figures: the command's and those of the children it waited for (wait4's rusage)
            _, status, use = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode not in (0, 1):
                sys.exit(f"nta scan exited {proc.returncode}")
            packets = json.loads((out / "report.json").read_text())["packets"]
        pps = packets / wall
        print(
            f"run {run + 1}: nta scan {args.capture}: {wall:.2f} s, {pps:,.0f} packets/s"
            f" ({'met' if pps >= TARGET_PPS else 'MISSED'}: {TARGET_PPS:,}); CPU {use.ru_utime + use.ru_stime:.2f} s"
            f" (user {use.ru_utime:.2f}, system {use.ru_stime:.2f}); peak RSS of its largest process"
            f" {use.ru_maxrss / 1024:,.0f} MiB; load {os.getloadavg()[0]:.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capture", type=Path, default=Path("/tmp/bench-1m.pcap"))
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=300)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--compare-cpu", action="store_true", help="also scan on the CPU and compare the verdicts")
    ap.add_argument("--cli", action="store_true", help="time the nta scan command, a new process per run")
    ap.add_argument("--nta", help="with --cli: the nta command to run (default: python -m analyzer from this checkout)")
    args = ap.parse_args()
    ensure_capture(args.capture, args.packets, args.duration)
    if args.cli:
        cli_runs(args)
        return

    from rich.console import Console

    from analyzer.pipeline import ScanConfig, run_scan
    from analyzer.report import render

    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = ScanConfig(
                paths=(args.capture,), out=Path(tmp) / "out", device=args.device, batch_size=args.batch_size
            )
            cpu0 = _all_cpu()
            t0 = time.perf_counter()
            result = run_scan(cfg)
            t1 = time.perf_counter()
            render(result, Console(file=io.StringIO(), width=100))
            wall = time.perf_counter() - t0
            render_s = time.perf_counter() - t1
            cpu_all = _all_cpu() - cpu0
        packets, flows = result.packets, result.flows
        print(f"\nrun {run + 1}: {args.capture} packets {packets:,} flows {flows:,} device {result.device}")
        # CPU seconds beside wall seconds: on a shared machine wall time includes waiting for a core.
        print(f"{'stage':<12} {'seconds':>8} {'cpu s':>8} {'packets/s':>12} {'flows/s':>12}")
        for stage, s in [*result.seconds.items(), ("report", render_s)]:
            cpu = result.cpu_seconds.get(stage, float("nan"))
            print(f"{stage:<12} {s:8.2f} {cpu:8.2f} {packets / s if s else 0:12,.0f} {flows / s if s else 0:12,.0f}")
        pps = packets / wall
        cpu_total = sum(result.cpu_seconds.values())
        print(f"{'end to end':<12} {wall:8.2f} {cpu_total:8.2f} {pps:12,.0f} {flows / wall:12,.0f}")
        # The scan's child processes (flow building, decoding) included: on n cores, wall time cannot fall below
        # this over n, whatever overlaps what.
        cores = os.cpu_count() or 1
        print(
            f"CPU of every process of the scan: {cpu_all:.2f} s; on {cores} cores at least {cpu_all / cores:.2f} s"
            f" of wall time ({packets / (cpu_all / cores) if cpu_all else 0:,.0f} packets/s at best)"
        )
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"target {TARGET_PPS:,} packets/s end to end: {'met' if pps >= TARGET_PPS else 'MISSED'}")
        me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        # Big captures are read in a child process (flows) with a grandchild (decoding): the largest of them
        # is the children's figure; the three run at once, so the sum of the two figures bounds the total.
        print(
            f"incidents {result.incidents.height:,}; peak RSS {me:,.0f} MiB (scan process), {kids:,.0f} MiB (largest child)"
        )


if __name__ == "__main__":
    main()
