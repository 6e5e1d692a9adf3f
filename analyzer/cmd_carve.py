"""``nta carve OUTDIR [--incident N]...``: a finished scan's incidents as captures (``analyzer.evidence``).

Reads the scan folder (``report.json``: the captures and their sha256, the incidents, whether tunnels were
decapsulated; ``flows.parquet``: the flows; ``verdicts.csv``: which flow is in which incident), streams the
captures again and writes each chosen incident's packets to ``OUTDIR/incidents/NNN-<class>-<source>.pcap``
(``.pcapng`` when a capture was pcapng). A capture that changed since the scan (another sha256) ends the run
with one line and nothing written (exit code 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from analyzer.errors import guarded
from features.common import InputError, output_lock, path_text, text_path


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("carve", help="Write a finished scan's incidents as captures (incidents/NNN-<class>-<source>.pcap).")(
        carve
    )


@guarded
def carve(
    outdir: Annotated[Path, typer.Argument(help="A folder nta scan wrote (report.json, flows.parquet, verdicts.csv).")],
    incident: Annotated[
        list[int] | None, typer.Option("--incident", help="Incident number to carve (repeatable; default: all).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite carved files that exist.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress output.")] = False,
) -> None:
    import polars as pl

    from analyzer.evidence import carve_incidents, incident_members
    from analyzer.progress import make_stages
    from features.capture.source import packet_span
    from features.flows.table import read_flows

    report_path = outdir / "report.json"
    for name in ("report.json", "flows.parquet", "verdicts.csv"):
        if not (outdir / name).is_file():
            raise InputError(f"{outdir}: no {name} (not a folder nta scan wrote)")
    try:
        report = json.loads(report_path.read_text())
        captures = [text_path(c["file"]) for c in report["captures"]]
        sha = {c["file"]: c["sha256"] for c in report["captures"]}
        streams = [[str(f) for f in st["files"]] for st in report.get("capture_streams", [])]
        spans = {c["file"]: span for c in report["captures"] if (span := packet_span(c)) is not None}
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(f"{report_path}: not an nta report ({e})") from None
    inc = pl.DataFrame(
        [
            {
                k: r.get(k)
                for k in ("incident_id", "label", "summary", "sources", "source", "targets", "target", "grouped_by")
            }
            for r in report.get("incidents", [])
        ],
        schema={
            "incident_id": pl.Int64,
            "label": pl.String,
            "summary": pl.String,
            "sources": pl.Int64,
            "source": pl.String,
            "targets": pl.Int64,
            "target": pl.String,
            "grouped_by": pl.String,
        },
    )
    known = set(inc["incident_id"].to_list())
    wanted = set(incident or known)
    if unknown := sorted(wanted - known):
        have = f"1-{max(known)}" if known else "none"
        raise InputError(f"--incident {unknown[0]}: the scan in {outdir} has no such incident (it has {have})")
    table, _ = read_flows(outdir / "flows.parquet")
    flows = pl.from_arrow(table)
    assert isinstance(flows, pl.DataFrame)
    with open(outdir / "verdicts.csv", "rb") as fh:  # polars cannot encode a non-UTF-8 folder name
        verdicts = pl.read_csv(fh, columns=["flow_id", "incident_id"])
    members = incident_members(verdicts, flows)
    decap = bool(report.get("options", {}).get("decap", True))
    with output_lock(outdir), make_stages(quiet) as stages, stages.stage("carving") as progress:
        carved = carve_incidents(
            outdir,
            captures,
            members,
            inc,
            decap=decap,
            only=wanted,
            force=force,
            progress=progress,
            expect_sha256=sha,
            streams=streams,
            spans=spans,
        )
    for i in sorted(carved):
        path, n = carved[i]
        print(f"#{i}: {path_text(path)} ({n:,} packets)")
