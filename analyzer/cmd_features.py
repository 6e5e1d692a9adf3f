"""``nta features CAPTURE... -o kdd.parquet [--format parquet|nsl-kdd]``: NSL-KDD's 41 features from captures.

``parquet`` (default): the flow identity columns (``features.kdd.IDENTITY_COLUMNS``) and the 41 features.
``nsl-kdd``: NSL-KDD text rows (41 comma-separated columns, no header, rates as ``0.00``), readable by
any tool built for NSL-KDD; flows of IP protocols NSL-KDD has no value for are left out and counted.
Both are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from analyzer.errors import guarded
from features.errors import InputError


class FeatureFormat(enum.StrEnum):
    parquet = "parquet"
    nsl_kdd = "nsl-kdd"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("features", help="Extract NSL-KDD's 41 features from captures (Parquet or NSL-KDD text).")(features)


@guarded
def features(
    captures: Annotated[list[Path], typer.Argument(help="Capture files (pcap/pcapng, gzipped or not) or folders.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output file.")],
    fmt: Annotated[
        FeatureFormat, typer.Option("--format", help="parquet: identity + 41 features; nsl-kdd: NSL-KDD text.")
    ] = FeatureFormat.parquet,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress output.")] = False,
) -> None:
    """Read the captures, build flows, compute the 41 features, write them."""
    from analyzer import inputs
    from analyzer.progress import make_stages
    from features.atomic import atomic_path
    from features.extract import extract_flows
    from features.kdd import kdd_features
    from features.nslkdd_text import write_nslkdd

    if output.exists() and not force:
        raise InputError(f"{output}: exists; use --force to overwrite it")
    if output.is_dir():
        raise InputError(f"{output}: is a folder; -o names the output file")
    found = inputs.discover(captures)
    with make_stages(quiet) as stages:
        with stages.stage("reading") as progress:
            ext = extract_flows(found.captures, progress=progress)
        with stages.stage("features"):
            kdd = kdd_features(ext.flows, ext.payloads)
        with stages.stage("writing"):
            if fmt is FeatureFormat.nsl_kdd:
                written, left_out = write_nslkdd(kdd, output)
            else:
                with atomic_path(output) as tmp:
                    kdd.write_parquet(tmp)
                written, left_out = kdd.height, 0
    for path, reason in found.skipped:
        print(f"nta: skipped {path}: {reason}", file=sys.stderr)
    for warning in getattr(ext, "warnings", ()):
        print(f"nta: warning: {warning}", file=sys.stderr)
    if not quiet:
        note = f" ({left_out} flows of other IP protocols left out)" if left_out else ""
        print(f"nta: wrote {written} rows to {output}{note}", file=sys.stderr)
