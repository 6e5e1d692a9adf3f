"""Run the real ``nta`` command line with one pause inside a chosen stage, so a test can act at a known moment.

    python tests/stage_pause.py STAGE MARK [GO] -- nta-arguments...

When the run reaches STAGE it writes its pid to the file MARK, then waits until the file GO exists (and goes on)
or, without GO, until a signal ends it (at most 120 s). Only the pause is added; everything else is nta as
installed. Stages (where the pause sits):

* ``reading``: after the first chunk of flows arrived (``FlowStream.chunks``: for big captures the spawned
  flow-building child and its forked reader are running);
* ``flows``: in ``FlowBuilder.finish``, the file's flows built in memory (here, not in a child: the pause is
  in this process), no table yet;
* ``features``: as the KDD features of the first chunk start (``KddStream.add``); ``encoding``: as
  ``spec.transform`` starts;
* ``inference``: as the model starts on the first batch; ``incidents``: as incidents are grouped;
* ``writing``: in the output folder being written, after ``verdicts.csv`` and before ``alerts.ndjson`` and
  ``report.json`` (``flows.parquet`` being finished on its thread);
* ``carving``: as ``nta carve`` or ``nta scan --carve`` starts writing the incidents' captures.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

STAGES = ("reading", "flows", "features", "encoding", "inference", "incidents", "writing", "carving")


def _pause(mark: Path, go: Path | None) -> None:
    part = mark.with_name(mark.name + ".part")  # renamed: a waiter never reads the mark half-written
    part.write_text(str(os.getpid()))
    part.rename(mark)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if go is not None and go.exists():
            return
        time.sleep(0.01)
    raise SystemExit(f"stage_pause: nobody came within 120 s ({mark})")


def _before(obj: Any, name: str, pause: Callable[[], None]) -> None:
    """Patch ``obj.name`` so that its first call pauses first."""
    real = getattr(obj, name)
    done: list[bool] = []

    def patched(*args: Any, **kwargs: Any) -> Any:
        if not done:
            done.append(True)
            pause()
        return real(*args, **kwargs)

    setattr(obj, name, patched)


def install(stage: str, mark: Path, go: Path | None) -> None:
    def pause() -> None:
        _pause(mark, go)

    if stage == "reading":
        from features.flows import extract

        real = extract.FlowStream.chunks

        def chunks(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            for i, chunk in enumerate(real(self, *args, **kwargs)):
                yield chunk
                if i == 0:
                    pause()

        extract.FlowStream.chunks = chunks  # type: ignore[method-assign]
    elif stage == "flows":
        from features.flows import extract
        from features.flows.builder import FlowBuilder

        built_here = extract.FlowStream.chunks

        def in_process(self: Any, forked: bool | None = None) -> Iterator[Any]:
            return built_here(self, forked=False)

        extract.FlowStream.chunks = in_process  # type: ignore[method-assign]
        _before(FlowBuilder, "finish", pause)
    elif stage == "features":
        from features.kdd import frame

        _before(frame.KddStream, "add", pause)
    elif stage == "encoding":
        from features.encode.spec import FeatureSpec

        _before(FeatureSpec, "transform", pause)
    elif stage == "inference":
        from analyzer import pipeline

        _before(pipeline, "_predict", pause)
    elif stage == "incidents":
        from analyzer import incident_sql

        _before(incident_sql, "find_incidents", pause)
    elif stage == "writing":
        from analyzer import pipeline

        # on the scan's thread (a signal's handler runs there): verdicts.csv is written on a thread of its own
        _before(pipeline, "_finish_alerts", pause)
    elif stage == "carving":
        from features.flows import carve

        _before(carve, "_carve_one", pause)
    else:
        raise SystemExit(f"stage_pause: unknown stage {stage!r} (one of {', '.join(STAGES)})")


def main() -> None:
    args = sys.argv[1:]
    split = args.index("--")
    own, nta_args = args[:split], args[split + 1 :]
    stage, mark = own[0], Path(own[1])
    go = Path(own[2]) if len(own) > 2 else None
    install(stage, mark, go)
    from analyzer.cli import main as nta_main

    sys.argv = ["nta", *nta_args]
    nta_main()


if __name__ == "__main__":
    main()
