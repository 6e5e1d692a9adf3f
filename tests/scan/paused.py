"""Start the real command line paused inside a stage (``tests/stage_pause.py``) and wait until it is there."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

PAUSE = Path(__file__).resolve().parents[1] / "stage_pause.py"


def start_paused(stage: str, tmp: Path, *args: str | Path, go: Path | None = None) -> tuple[subprocess.Popen, Path]:
    mark = tmp / f"paused-{stage}"
    own = [stage, mark] + ([go] if go else [])
    cmd: list[str | Path] = [sys.executable, PAUSE, *map(str, own), "--", *map(str, args)]
    out, err = (tmp / "stdout.txt").open("wb"), (tmp / "stderr.txt").open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=err)
    deadline = time.monotonic() + 90
    while not mark.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"never reached {stage}: exit {proc.wait()}, {(tmp / 'stderr.txt').read_text()!r}")
        time.sleep(0.02)
    return proc, mark
