"""``nta features CAPTURE... -o kdd.parquet [--format parquet|nsl-kdd]``: NSL-KDD's 41 features from captures.

``parquet`` (default): the flow identity columns (``features.kdd.frame.IDENTITY_COLUMNS``) and the 41 features.
``nsl-kdd``: NSL-KDD text rows (41 comma-separated columns, no header, rates as ``0.00``), readable by
any tool built for NSL-KDD; flows of IP protocols NSL-KDD has no value for are left out and counted.
Both are written atomically (temporary file, then rename).

``--label NAME`` adds a ``label`` column (``normal``, a class such as ``DoS``, or an NSL-KDD attack name) to the
Parquet, so the file can train or evaluate a model (``nta train --data``): a responder's known-good traffic
becomes extra ``normal`` rows. ``--per-file`` computes the window features (count, dst_host_*) of each capture
on its own, so connections of unrelated captures never share a window, and adds a ``capture`` column (the
capture's path as found); without it the captures are read as ``nta scan`` reads them: rotated files joined into
one stream, each stream with windows of its own (``features.kdd.windows.Sessions``), so it matters only for
captures that ``nta scan`` would join (ones that follow each other within 5 minutes).
``--labels FILE`` labels each flow from label windows (``features.kdd.labels``: the traffic lab's
``labels.csv``) and adds ``label`` and ``scenario`` columns; flows of an attacker outside every window are left
out and counted.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.errors import guarded
from analyzer.read_options import MaxBytesOpt, MaxInflateOpt
from features.common import InputError, escape_surrogates, path_text

if TYPE_CHECKING:
    from features.kdd.labels import LabelJoin


class FeatureFormat(enum.StrEnum):
    parquet = "parquet"
    nsl_kdd = "nsl-kdd"


def _label_notes(path: Path | None, join: LabelJoin) -> list[str]:
    """What the label join noticed, as warnings: unexplained attacker flows (left out) and windows with no flow."""
    notes = []
    if join.unexplained:
        notes.append(
            f"{path}: {join.unexplained} flows touch an attacker address outside every window: left out (unlabelled)"
        )
    if join.empty_windows:
        notes.append(f"{path}: windows inside the capture's time span with no flow: {', '.join(join.empty_windows)}")
    return notes


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
    label: Annotated[
        str | None,
        typer.Option("--label", help="Add a label column (normal, DoS, Probe, R2L, U2R or an attack name)."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Label flows from a label-window CSV (the traffic lab's labels.csv): adds label and scenario columns.",
        ),
    ] = None,
    per_file: Annotated[
        bool, typer.Option("--per-file", help="Window features per capture (not across the captures).")
    ] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress output.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Read only packets at or after this ISO time (UTC if no zone).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Read only packets before this ISO time.")] = None,
    host: Annotated[
        list[str] | None, typer.Option("--host", help="Only packets from or to this address or CIDR (repeatable).")
    ] = None,
    port: Annotated[
        list[int] | None, typer.Option("--port", help="Only TCP/UDP packets on this port (repeatable).")
    ] = None,
    max_bytes: MaxBytesOpt = "1T",
    max_inflate: MaxInflateOpt = 100.0,
    no_decap: Annotated[
        bool,
        typer.Option("--no-decap", help="Keep tunnel packets (GRE, VXLAN, ...) as the outer flows they make."),
    ] = False,
) -> None:
    """Read the captures, build flows, compute the 41 features, write them."""
    import polars as pl

    from analyzer import inputs
    from analyzer.pipeline import read_flows_of
    from analyzer.progress import make_stages
    from features.capture.filter import PacketFilter
    from features.capture.source import is_stream
    from features.common import atomic_path, output_file
    from features.kdd.columns import ATTACK_CLASS, CLASSES
    from features.kdd.frame import kdd_features
    from features.kdd.labels import label_flows, read_label_windows
    from features.kdd.nslkdd_text import write_nslkdd

    if label is not None and label not in CLASSES and label not in ATTACK_CLASS:
        raise InputError(f"--label {label!r}: not a class ({', '.join(CLASSES)}) or an NSL-KDD attack name")
    if label is not None and labels is not None:
        raise InputError("--label and --labels: give one (a constant label, or label windows from a file)")
    if labels is not None and fmt is FeatureFormat.nsl_kdd:
        raise InputError("--labels needs --format parquet (NSL-KDD text has no scenario column)")
    windows = read_label_windows(labels) if labels is not None else None
    narrow = PacketFilter.build(since, until, host or [], port or [])
    if label is not None and fmt is FeatureFormat.nsl_kdd:
        raise InputError("--label needs --format parquet (NSL-KDD text carries the label in its own rows)")
    output_file(output, force=force)  # refused before any packet is read: a folder, a device, exists without --force
    limits = inputs.read_limits(max_bytes, max_inflate)  # a bad size fails before anything is read
    found = inputs.discover(captures)
    groups = [[p] for p in found.captures] if per_file else [found.captures]
    warnings: list[str] = []
    with make_stages(quiet) as stages:
        parts = []
        with stages.stage("reading") as progress:
            # One extraction per group: with --per-file the window features never see another capture's flows.
            sizes = [sum(0 if is_stream(f) else f.stat().st_size for f in group) for group in groups]
            for n, group in enumerate(groups):

                def overall(done: int, _total: int, base: int = sum(sizes[:n])) -> None:
                    progress(base + done, sum(sizes))  # one bar over all groups

                ext = read_flows_of(inputs.Inputs(group, kind=found.kind), overall, not no_decap, narrow, limits=limits)
                warnings.extend(ext.warnings)
                if ext.bad_packets:
                    bad = ", ".join(f"{k} {v:,}" for k, v in sorted(ext.bad_packets.items()))
                    warnings.append(f"{', '.join(map(path_text, group[:3]))}: records left out: {bad}")
                part = kdd_features(ext.flows, ext.payloads, ext.service_hints, ext.stream_ids)
                if per_file:
                    part = part.with_columns(pl.lit(path_text(group[0])).alias("capture"))
                parts.append(part)
        with stages.stage("features"):
            kdd = pl.concat(parts) if len(parts) > 1 else parts[0]
            if label is not None:
                kdd = kdd.with_columns(pl.lit(label).alias("label"))
            if windows is not None:
                join = label_flows(kdd, windows)
                kdd = kdd.with_columns(join.label, join.scenario).filter(pl.col("label").is_not_null())
                warnings.extend(_label_notes(labels, join))
        with stages.stage("writing"):
            if fmt is FeatureFormat.nsl_kdd:
                written, left_out = write_nslkdd(kdd, output)
            else:
                with atomic_path(output) as tmp, open(tmp, "wb") as fh:  # polars cannot encode non-UTF-8 names
                    kdd.write_parquet(fh)
                written, left_out = kdd.height, 0
    for path, reason in found.skipped:
        print(f"nta: skipped {path_text(path)}: {escape_surrogates(reason)}", file=sys.stderr)
    for warning in warnings:
        print(f"nta: warning: {escape_surrogates(warning)}", file=sys.stderr)
    if found.kind == "zeek":
        from features.zeeklog.conn import unavailable_note

        print(f"nta: {unavailable_note()}", file=sys.stderr)
    if not quiet:
        note = f" ({left_out} flows of other IP protocols left out)" if left_out else ""
        print(f"nta: wrote {written} rows to {path_text(output)}{note}", file=sys.stderr)
