"""Benchmark ``nta flows`` (packets/s, flows, peak memory) beside NFStream on the same capture, in one run.

Usage::

    python tests/benchmarks/bench_flows.py [CAPTURE] [--memory SMALL ... BIG] [--repeat 3] [--no-nfstream]

Defaults: CAPTURE = /tmp/bench-3m.pcap (3M packets over 900 s, the capture the issue's figures were
measured on); memory check on /tmp/bench-1m.pcap (1M, 300 s) and /tmp/bench-10m.pcap (10M, 3000 s: 10x
the packets at the same rate); each generated with ``../shared/bench/gen_pcap.py`` when missing (a
``.done`` marker beside a file says it is complete; another process may be writing it; 10M packets is
about 6 GB and takes a while). Each run is a
fresh ``nta flows`` process measured by ``/usr/bin/time -v`` (wall time, peak RSS). NFStream runs from
``/tmp/nfs-venv`` (``python -m venv /tmp/nfs-venv && /tmp/nfs-venv/bin/pip install nfstream``) with
``../shared/bench/nfstream_run.py`` in its fastest mode (no dissection, no statistics) and its defaults;
when it is not installable, its column says so. Each tool runs ``--repeat`` times; the median is shown.
Memory check: peak RSS on each ``--memory`` capture, which should differ far less than the packet counts
do (memory follows concurrent flows, not file size).
Prints figures; asserts nothing (no timed tests).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
GEN = SHARED / "bench" / "gen_pcap.py"
NFS_RUN = SHARED / "bench" / "nfstream_run.py"
NFS_VENV = Path("/tmp/nfs-venv")


def ensure_capture(path: Path, packets: int, duration: int) -> Path:
    """Reuse ``path`` when its ``.done`` marker exists; wait if another process is writing it; else generate."""
    done = path.with_name(path.name + ".done")
    if done.exists():
        return path
    if path.exists():
        print(f"waiting for {path} (being written by another process) ...", flush=True)
        while not done.exists():
            time.sleep(5)
        return path
    print(f"generating {path} ({packets:,} packets over {duration} s) ...", flush=True)
    cmd = [sys.executable, str(GEN), str(path), "--packets", str(packets), "--duration", str(duration), "--seed", "1"]
    subprocess.run(cmd, check=True)
    done.touch()
    return path


def timed(cmd: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS in MiB, stdout+stderr) of one command under /usr/bin/time -v."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{out[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", out))
    return wall, cpu, int(m.group(1)) // 1024 if m else -1, out


def run_nta(capture: Path) -> dict:
    nta = shutil.which("nta") or str(Path(sys.executable).with_name("nta"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "flows.parquet"
        wall, cpu, rss, text = timed([nta, "flows", str(capture), "-o", str(out), "-q"])
    m = re.search(r"([\d,]+) packets -> ([\d,]+) flows", text)
    packets, flows = (int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))) if m else (0, 0)
    return {"tool": "nta flows", "wall_s": wall, "cpu_s": cpu, "records": packets, "flows": flows, "rss_mib": rss}


def nfstream_python() -> Path | None:
    py = NFS_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {NFS_VENV} and installing nfstream ...", flush=True)
        ok = subprocess.run([sys.executable, "-m", "venv", str(NFS_VENV)]).returncode == 0
        ok = ok and subprocess.run([str(py), "-m", "pip", "install", "-q", "nfstream"]).returncode == 0
        if not ok:
            print("NFStream: install failed, skipping its column")
            return None
    if subprocess.run([str(py), "-c", "import nfstream"], capture_output=True).returncode != 0:
        print("NFStream: not importable in /tmp/nfs-venv, skipping its column")
        return None
    return py


def run_nfstream(py: Path, capture: Path, fastest: bool, records: int) -> dict:
    extra = ["--dissections", "0", "--stats", "0"] if fastest else []
    wall, cpu, rss, text = timed([str(py), str(NFS_RUN), str(capture), *extra])
    m = re.search(r"RESULT (\{.*\})", text)
    res = json.loads(m.group(1)) if m else {}
    name = "NFStream (fastest: no dissection, no stats)" if fastest else "NFStream (defaults)"
    flows = res.get("flows", 0)
    return {"tool": name, "wall_s": wall, "cpu_s": cpu, "records": records, "flows": flows, "rss_mib": rss}


def show(rows: list[dict]) -> None:
    """One line per run; packets/s = capture records / whole-process wall time (same file for every tool).

    CPU s (user + system) is shown too: on a machine shared with other work, wall time overstates cost.
    """
    head = f"{'tool':46} {'records':>10} {'wall s':>7} {'CPU s':>7} {'packets/s':>10} {'pkts/CPU-s':>10}"
    print(head + f" {'flows':>8} {'peak RSS MiB':>12}")
    for r in rows:
        pps = r["records"] / r["wall_s"] if r["wall_s"] else 0
        cps = r["records"] / r["cpu_s"] if r["cpu_s"] else 0
        print(
            f"{r['tool']:46} {r['records']:10,} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} {pps:10,.0f} {cps:10,.0f}"
            f" {r['flows']:8,} {r['rss_mib']:12,}"
        )


def median_run(fn, repeat: int) -> dict:  # type: ignore[no-untyped-def]
    """The run with the median wall time of ``repeat`` runs (the figures in ../shared/bench/README.md are medians of 3)."""
    runs = sorted((fn() for _ in range(repeat)), key=lambda r: r["wall_s"])
    return runs[len(runs) // 2]


KNOWN = {  # default captures: (packets, seconds) for gen_pcap.py, one packet rate
    Path("/tmp/bench-1m.pcap"): (1_000_000, 300),
    Path("/tmp/bench-3m.pcap"): (3_000_000, 900),
    Path("/tmp/bench-10m.pcap"): (10_000_000, 3000),
}


def ensure(path: Path) -> Path:
    return ensure_capture(path, *KNOWN[path]) if path in KNOWN else path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture", nargs="?", type=Path, default=Path("/tmp/bench-3m.pcap"))
    ap.add_argument(
        "--memory",
        type=Path,
        nargs="*",
        default=[Path("/tmp/bench-1m.pcap"), Path("/tmp/bench-10m.pcap")],
        help="captures of growing size for the memory check (same packet rate); none to skip it",
    )
    ap.add_argument("--no-nfstream", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool on CAPTURE (the median is shown)")
    a = ap.parse_args()
    cap = ensure(a.capture)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; capture {cap} ({cap.stat().st_size / 2**20:,.0f} MiB)"
        f"; median of {a.repeat} runs per tool"
    )
    nta_run = median_run(lambda: run_nta(cap), a.repeat)
    rows = [nta_run]
    py = None if a.no_nfstream else nfstream_python()
    if py is not None:
        rows.append(median_run(lambda: run_nfstream(py, cap, True, nta_run["records"]), a.repeat))
        rows.append(median_run(lambda: run_nfstream(py, cap, False, nta_run["records"]), a.repeat))
    show(rows)
    if len(rows) > 1 and rows[1]["wall_s"]:
        print(f"nta flows / NFStream fastest: {rows[1]['wall_s'] / nta_run['wall_s']:.1f}x packets/s")
        print(f"nta flows / NFStream defaults: {rows[2]['wall_s'] / nta_run['wall_s']:.1f}x packets/s")
    if a.memory:
        runs = [run_nta(ensure(p)) for p in a.memory]
        print("\nmemory check (same packet rate, growing capture): peak RSS should follow concurrent flows, not size")
        show(runs)
        small, big = runs[0], runs[-1]
        ratio = big["records"] / max(small["records"], 1)
        print(
            f"peak RSS largest/smallest: {big['rss_mib'] / max(small['rss_mib'], 1):.2f}x for {ratio:.1f}x the packets"
        )


if __name__ == "__main__":
    main()
