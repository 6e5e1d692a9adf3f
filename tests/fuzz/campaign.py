"""Fuzz nta's readers: a bounded run for CI, or a long campaign; prints inputs run, coverage and crashes per target.

    python tests/fuzz/campaign.py                      # every target, 15 s each (the CI step)
    python tests/fuzz/campaign.py --runs 1000000 pcap  # a long campaign: one million inputs of one target
    python tests/fuzz/campaign.py --seconds 600 --work /var/tmp/nta-fuzz   # keep the corpus between campaigns

With atheris (``pip install atheris``; coverage-guided libFuzzer over Python bytecode, ``features`` instrumented)
each target runs in its own process with libFuzzer's limits: ``-timeout`` (a hang: 10 s for one input),
``-rss_limit_mb`` (a memory blow-up: 2 GiB) and ``-max_len``. Without atheris a plain mutation loop (byte flips,
inserts, deletions, lying 16/32-bit fields, splices of seeds) runs instead, with the same time limit per input
and no coverage figure. Seeds: ``seeds.py``. The corpus grows in ``WORK/corpus/TARGET``; a crashing input is saved
as ``WORK/crashes/TARGET-crash-*`` (copy it to ``tests/fuzz/regressions/TARGET-NAME`` to make it a test).
Exit status: 1 if any target crashed, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import TypedDict

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TARGET_NAMES = ("pcap", "pcapng", "gzip", "link", "ip")
HANG_S = 10
# Inputs per worker process. Under atheris the worker's RSS grows about 14 KB per input whatever nta does (the
# same inputs replayed without atheris stay flat at 38 MB), so one process would hit the RSS limit after ~140,000
# inputs; a fresh process per segment keeps the limit meaningful for a single input's blow-up.
SEGMENT = 40_000
# features/capture modules that read no capture: the reference decoder of the differential tests, the writers
NOT_READERS = ("decode_ref.py", "write.py", "__init__.py")
RSS_MB = 2048


def _paths() -> None:
    for p in (str(HERE), str(REPO)):
        if p not in sys.path:
            sys.path.insert(0, p)


# --- the worker: one target in this process -------------------------------------------------------------------


def worker_atheris(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    _paths()
    with atheris.instrument_imports(include=["features"]):
        import targets
    from features.common import InputError

    fn = targets.TARGETS[target]

    def one(data: bytes) -> None:
        with contextlib.suppress(InputError):  # the documented refusal of a non-capture
            fn(data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one)
    atheris.Fuzz()


def _mutate(rng: random.Random, data: bytes, pool: list[bytes], max_len: int) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        op = rng.randrange(7)
        i = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(i, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(i, len(b) - 1)] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 2, 4, 16))))
        elif op == 3 and b:
            del b[i : i + rng.choice((1, 2, 4, 16, 256))]
        elif op == 4 and len(b) >= 4:
            j = rng.randrange(len(b) - 3)
            v = rng.choice((0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x10000, rng.randrange(1 << 32)))
            fmt = rng.choice(("<I", ">I", "<H", ">H"))
            struct.pack_into(fmt, b, j, v & (0xFFFF if fmt.endswith("H") else 0xFFFFFFFF))
        elif op == 5 and pool:
            other = rng.choice(pool)
            j = rng.randrange(len(other) + 1)
            b = b[:i] + bytearray(other[j:])
        elif op == 6:
            del b[i:]
    return bytes(b[:max_len])


def worker_plain(target: str, runs: int, seconds: float, corpus: Path, crashes: Path) -> None:
    """Mutation fuzzing without atheris: same targets, same limits per input, no coverage guidance."""
    _paths()
    import targets

    from features.common import InputError

    fn = targets.TARGETS[target]
    pool = [p.read_bytes() for p in sorted(corpus.iterdir())]
    rng = random.Random(int.from_bytes(os.urandom(8)))

    def hang(*_: object) -> None:
        raise TimeoutError(f"one input ran longer than {HANG_S} s")

    signal.signal(signal.SIGALRM, hang)
    n, found, t0 = 0, 0, time.monotonic()
    while (not runs or n < runs) and (not seconds or time.monotonic() - t0 < seconds):
        data = _mutate(rng, rng.choice(pool), pool, targets.MAX_LEN[target]) if pool else os.urandom(64)
        n += 1
        signal.alarm(HANG_S)
        try:
            fn(data)
        except InputError:
            pass
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                raise
            found += 1
            path = crashes.parent / f"{crashes.name}crash-{n}"
            path.write_bytes(data)
            print(f"==CRASH== {type(e).__name__}: {e} -> {path}", file=sys.stderr)
            traceback.print_exc()
            break
        finally:
            signal.alarm(0)
    rate = n / max(time.monotonic() - t0, 1e-9)
    print(f"#{n} DONE cov: n/a exec/s: {rate:.0f}", file=sys.stderr)
    print(f"stat::number_of_executed_units: {n}", file=sys.stderr)
    print(f"stat::peak_rss_mb: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}", file=sys.stderr)
    sys.exit(1 if found else 0)


def executable_lines(root: Path) -> dict[str, set[int]]:
    """{file: line numbers that hold code} for every module under ``root`` (from the compiled code objects)."""
    out: dict[str, set[int]] = {}
    for f in sorted(root.glob("*.py")):
        if f.name in NOT_READERS:
            continue
        lines: set[int] = set()
        todo = [compile(f.read_text(), str(f), "exec")]
        while todo:
            co = todo.pop()
            lines.update(ln for _, _, ln in co.co_lines() if ln is not None)
            todo.extend(c for c in co.co_consts if hasattr(c, "co_lines"))
        out[str(f)] = lines
    return out


def worker_replay(target: str, corpus: Path) -> None:
    """Run every corpus input once under ``sys.settrace`` and print the lines of features/capture/ they reached."""
    _paths()
    import targets

    from features.common import InputError

    root = REPO / "features" / "capture"
    total = executable_lines(root)
    hit: dict[str, set[int]] = {f: set() for f in total}

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        f = frame.f_code.co_filename
        if f not in hit:
            return None
        if event == "line":
            hit[f].add(frame.f_lineno)
        return tracer

    fn = targets.TARGETS[target]
    sys.settrace(tracer)
    threading.settrace(tracer)  # the reader thread of the file targets
    for p in sorted(corpus.iterdir()):
        with contextlib.suppress(InputError):
            fn(p.read_bytes())
    sys.settrace(None)
    threading.settrace(None)  # type: ignore[arg-type]
    n_hit = sum(len(hit[f] & total[f]) for f in total)
    n_all = sum(len(v) for v in total.values())
    print(f"lines: {n_hit} {n_all}")


# --- the driver: seeds, one worker per target, figures ---------------------------------------------------------


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


class TargetRun(TypedDict):
    """What ``run_target`` found for one target."""

    lines: str | None  # "HIT/ALL lines of the readers" with --lines
    target: str
    inputs: int
    cov: int | None  # libFuzzer's coverage figures (atheris only)
    ft: int | None
    corpus: int
    peak_rss_mb: int | None
    seconds: float
    crashed: bool
    crash_files: list[str]


def run_target(target: str, work: Path, runs: int, seconds: float, fuzzer: str, lines: bool = False) -> TargetRun:
    _paths()
    import seeds as seedlib
    import targets

    seed_dir, corpus, crashes = work / "seeds" / target, work / "corpus" / target, work / "crashes"
    for d in (seed_dir, corpus, crashes):
        d.mkdir(parents=True, exist_ok=True)
    for name, data in seedlib.seeds(target).items():
        (seed_dir / re.sub(r"[^\w.-]", "_", name)).write_bytes(data)
    regress = HERE / "regressions"
    for p in sorted(regress.glob(f"{target}-*")) if regress.is_dir() else []:
        (seed_dir / p.name).write_bytes(p.read_bytes())
    before = set(crashes.iterdir())
    base = [sys.executable, __file__, "--worker", target, "--fuzzer", fuzzer]
    t0 = time.monotonic()
    executed, peak, cov, ft, code, log = 0, 0, None, None, 0, ""
    while True:  # segments of at most SEGMENT inputs, each a fresh process (see SEGMENT); the corpus carries over
        left_s = seconds - (time.monotonic() - t0) if seconds else 0
        left_runs = runs - executed if runs else 0
        if (seconds and left_s < 1) or (runs and left_runs <= 0):
            break
        seg = min(left_runs, SEGMENT) if runs else SEGMENT
        if fuzzer == "atheris":
            cmd = [
                *base,
                "--",
                str(corpus),
                str(seed_dir),
                f"-max_len={targets.MAX_LEN[target]}",
                f"-timeout={HANG_S}",
                f"-rss_limit_mb={RSS_MB}",
                f"-artifact_prefix={crashes}/{target}-",
                "-print_final_stats=1",
                f"-runs={seg}",
                *([f"-max_total_time={int(left_s)}"] if seconds else []),
            ]
        else:
            for p in seed_dir.iterdir():  # the plain loop mutates the seeds (and what earlier runs left)
                (corpus / p.name).write_bytes(p.read_bytes())
            cmd = [*base, "--runs", str(seg), "--seconds", str(left_s), "--corpus", str(corpus)]
            cmd += ["--crashes", f"{crashes}/{target}-"]
        shm = tempfile.mkdtemp(prefix="nta-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        try:
            env = {**os.environ, "NTA_FUZZ_TMP": shm}
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO, env=env)
        finally:
            shutil.rmtree(shm, ignore_errors=True)
        log += proc.stderr
        got = re.findall(r"stat::number_of_executed_units:\s+(\d+)", proc.stderr)
        executed += int(got[-1]) if got else 0
        if covs := re.findall(r"cov: (\d+) ft: (\d+)", proc.stderr):
            cov, ft = int(covs[-1][0]), int(covs[-1][1])
        if rss := re.findall(r"stat::peak_rss_mb:\s+(\d+)", proc.stderr):
            peak = max(peak, int(rss[-1]))
        code = proc.returncode
        if code != 0 or not got:
            break
    wall = time.monotonic() - t0
    err = log
    (work / "logs").mkdir(exist_ok=True)
    (work / "logs" / f"{target}.log").write_text(err)
    new = sorted(set(crashes.iterdir()) - before)
    crashed = code != 0
    if crashed:
        tail = "\n".join(err.splitlines()[-40:])
        print(f"--- {target}: fuzzer exit {code}; last lines:\n{tail}\n---", file=sys.stderr)
    line_cov = None
    if lines:
        rp = subprocess.run(
            [sys.executable, __file__, "--worker", target, "--fuzzer", "replay", "--corpus", str(corpus)],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
        )
        if m := re.search(r"lines: (\d+) (\d+)", rp.stdout):
            line_cov = f"{m.group(1)}/{m.group(2)} lines of the readers"
    return {
        "lines": line_cov,
        "target": target,
        "inputs": executed,
        "cov": cov,
        "ft": ft,
        "corpus": len(list(corpus.iterdir())),
        "peak_rss_mb": peak or None,
        "seconds": wall,
        "crashed": crashed,
        "crash_files": [str(c) for c in new],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", help=f"targets (default: all of {', '.join(TARGET_NAMES)})")
    ap.add_argument("--runs", type=int, default=0, help="inputs per target (0: until --seconds)")
    ap.add_argument("--seconds", type=float, default=None, help="time per target (default 15 without --runs)")
    ap.add_argument("--work", type=Path, help="folder for seeds, corpus and crashes (default: a temporary one)")
    ap.add_argument("--fuzzer", choices=("auto", "atheris", "plain", "replay"), default="auto")
    ap.add_argument(
        "--lines", action="store_true", help="replay each corpus and count the lines of features/capture it reached"
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--crashes", type=Path, help=argparse.SUPPRESS)
    if "--" in sys.argv:  # libFuzzer's own arguments, for the worker
        i = sys.argv.index("--")
        a, extra = ap.parse_args(sys.argv[1:i]), sys.argv[i + 1 :]
    else:
        a, extra = ap.parse_args(), []
    if a.worker:
        if a.fuzzer == "replay":
            worker_replay(a.worker, a.corpus)
        elif a.fuzzer == "atheris":
            worker_atheris(a.worker, extra)
        else:
            worker_plain(a.worker, a.runs, a.seconds or 0, a.corpus, a.crashes)
        return
    seconds = a.seconds if a.seconds is not None else (0 if a.runs else 15)
    fuzzer = a.fuzzer if a.fuzzer != "auto" else ("atheris" if have_atheris() else "plain")
    names = a.targets or list(TARGET_NAMES)
    unknown = [t for t in names if t not in TARGET_NAMES]
    if unknown:
        ap.error(f"unknown target {unknown[0]} (one of {', '.join(TARGET_NAMES)})")
    print(f"fuzzer: {fuzzer}; per target: {a.runs or 'unbounded'} inputs, {seconds or 'unbounded'} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="nta-fuzz-") as tmp:
        work = a.work or Path(tmp)
        rows = []
        for t in names:
            r = run_target(t, work, a.runs, seconds, fuzzer, a.lines)
            rows.append(r)
            cov = "n/a" if r["cov"] is None else f"{r['cov']} (ft {r['ft']})"
            rate = r["inputs"] / max(r["seconds"], 1e-9)
            print(
                f"{t:7} inputs {r['inputs']:>10,}  {rate:6.0f}/s  cov {cov:18} corpus {r['corpus']:5}  "
                f"peak RSS {r['peak_rss_mb'] or '?'} MB  {r['lines'] or ''}  {'CRASH ' + ', '.join(r['crash_files']) if r['crashed'] else 'no crash'}",
                flush=True,
            )
        total = sum(r["inputs"] for r in rows)
        crashed = [r["target"] for r in rows if r["crashed"]]
        print(f"total: {total:,} inputs, crashes in: {', '.join(crashed) if crashed else 'none'}")
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
