"""``nta scan``: captures in, verdicts, incidents and a report out. Thin: options -> ScanConfig -> run_scan -> render."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from analyzer.errors import guarded
from analyzer.read_options import MaxBytesOpt, MaxInflateOpt
from features.common import InputError


class Device(enum.StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Engine(enum.StrEnum):
    local = "local"
    ray = "ray"


class Format(enum.StrEnum):
    text = "text"
    json = "json"


def parse_threads(value: str) -> int | None:
    """``auto`` -> None (nta chooses); ``N`` -> N inference threads (an explicit choice)."""
    if value.strip().lower() == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"--threads: expected 'auto' or a number of threads >= 1, not {value!r}")
    return n


def parse_fail_on(value: str | None) -> frozenset[str]:
    """``any`` -> every attack class; ``dos,probe`` -> those classes (any case); empty -> none."""
    if not value:
        return frozenset()
    from features.kdd.columns import CLASSES  # imports polars: not at module level, so ``nta --help`` stays fast

    by_lower = {c.lower(): c for c in CLASSES}
    chosen: set[str] = set()
    for word in (w.strip().lower() for w in value.split(",")):
        if word == "any":
            chosen.update(c for c in CLASSES if c != "normal")
        elif word in by_lower:
            chosen.add(by_lower[word])
        elif word:
            raise InputError(f"--fail-on: unknown class {word!r} (use any, or a comma list of {', '.join(CLASSES)})")
    return frozenset(chosen)


HELP = """Label every flow in the captures and report incidents.

PATHS: capture files (pcap, pcapng, gzipped or not) or folders, searched
recursively for *.pcap, *.pcapng, *.cap (and .gz); other files in a folder
are listed as skipped. Zeek conn logs (TSV or JSON lines, gzipped or not;
*.log, *.json in folders) are read in place of packets. Writes flows.parquet,
verdicts.csv, report.json, report.html and alerts.ndjson (Suricata EVE
alerts: one per incident and one per attack flow at --alert-confidence)
under --out (default ./nta-out/<first capture's name>/); with --zeek or
--zeek-json also Zeek's conn.log and nta.log (the verdicts, keyed by uid).
--no-write (or --out -) writes nothing to disk: the report (or with
--format json, report.json) goes to stdout only.

\b
Exit codes:
  0    scanned, nothing matched --fail-on
  1    verdicts matched --fail-on (at --min-confidence or above)
  2    bad input or usage: not a capture, unreadable, nothing to scan,
       outputs exist without --force, a damaged capture with --strict
  3    model problem: missing, corrupt, out of bounds, NaN, built for
       other features
  70   internal error (a bug in nta; --traceback shows it)
  130  interrupted (Ctrl-C)
  141  stdout closed by its reader (e.g. | head): outputs are written, and
       a closed stdout is not a finding, whatever --fail-on says
  143  terminated (SIGTERM)
Errors are one line on stderr (nta --traceback scan ... shows the traceback).
"""


def register(app: typer.Typer) -> None:
    """Add ``scan`` to the app."""
    app.command("scan", help=HELP)(scan)


@guarded
def scan(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Capture files, Zeek conn logs or folders.", show_default=False, metavar="PATH"),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR|-",
            help="Output folder (-: report.json on stdout, no files).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option("--model", metavar="DIR", help="Model folder (default: the shipped model).", show_default=False),
    ] = None,
    device: Annotated[Device, typer.Option(help="Where inference runs (auto: CUDA if present).")] = Device.auto,
    batch_size: Annotated[int, typer.Option(min=1, metavar="N", help="Flows per inference batch.")] = 4096,
    fail_on: Annotated[
        str | None,
        typer.Option(
            metavar="CLASSES", help="Exit 1 when flows get these labels: 'any' or e.g. 'dos,probe'.", show_default=False
        ),
    ] = None,
    min_confidence: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, metavar="P", help="Only verdicts at least this confident count for --fail-on."),
    ] = 0.0,
    alert_confidence: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="P",
            help="alerts.ndjson: an EVE alert for every attack flow at least this confident.",
        ),
    ] = 0.9,
    novelty: Annotated[
        bool,
        typer.Option(
            "--novelty",
            help="Hunting mode: flows the network calls normal but that are unlike its normal training rows "
            "become their most probable attack class (column 'novel'). Finds more attacks, with more false alarms.",
        ),
    ] = False,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Files overlapping in time (several sensors or taps): read them as one stream merged by time. "
            "Default: rotated files are joined, overlapping ones kept apart.",
        ),
    ] = False,
    engine: Annotated[
        Engine,
        typer.Option(help="local: this machine; ray: a Ray cluster (pip install 'nta\\[ray]'), same outputs."),
    ] = Engine.local,
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="With --engine ray: the cluster to join (default: start a local one).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Damaged-capture warnings are errors (exit 2).")] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="No progress and no report (outputs and exit code unchanged; --format json still prints).",
        ),
    ] = False,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No progress bars or stage lines; the report is still printed.")
    ] = False,
    no_write: Annotated[
        bool,
        typer.Option(
            "--no-write", help="Write nothing to disk: only stdout (the report, or report.json with --format json)."
        ),
    ] = False,
    threads: Annotated[
        str,
        typer.Option(
            "--threads",
            metavar="auto|N",
            help="CPU threads for inference. auto: nta's choice (numpy's network: one beside the reader; torch's: "
            "1 or every core, timed as it goes); N: exactly N (e.g. 1 on a machine other jobs share).",
        ),
    ] = "auto",
    allow: Annotated[
        Path | None,
        typer.Option(
            "--allow",
            metavar="FILE",
            help="Known-good hosts, networks and services (one per line: 10.0.0.5, 10.0.0.0/24, 53/udp, "
            "10.0.0.53 53/udp): their flows stay in the outputs but make no incident and no --fail-on match.",
            show_default=False,
        ),
    ] = None,
    carve: Annotated[
        bool,
        typer.Option(
            "--carve", help="Write each incident's packets to incidents/NNN-<class>-<source>.pcap under --out."
        ),
    ] = False,
    zeek: Annotated[
        bool, typer.Option("--zeek", help="Also write conn.log and nta.log (verdicts by uid) as Zeek TSV logs.")
    ] = False,
    zeek_json: Annotated[
        bool, typer.Option("--zeek-json", help="The same Zeek logs as JSON lines (Zeek's use_json format).")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="TIME", help="Read only packets at or after this ISO time (UTC if no zone)."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="Read only packets before this ISO time.")
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", metavar="ADDR|CIDR", help="Only packets from or to this address or CIDR (repeatable)."),
    ] = None,
    port: Annotated[
        list[int] | None, typer.Option("--port", metavar="N", help="Only TCP/UDP packets on this port (repeatable).")
    ] = None,
    max_bytes: MaxBytesOpt = "1T",
    max_inflate: MaxInflateOpt = 100.0,
    no_decap: Annotated[
        bool,
        typer.Option("--no-decap", help="Keep tunnel packets (GRE, VXLAN, ...) as the outer flows they make."),
    ] = False,
    format: Annotated[
        Format,
        typer.Option(
            "--format", help="text: the report; json: report.json on stdout (--out - implies it, and --no-write)."
        ),
    ] = Format.text,
) -> None:
    from features.capture.spawn import prespawned

    if zeek and zeek_json:
        raise InputError("--zeek and --zeek-json: choose one (both write conn.log and nta.log)")
    if out is not None and str(out) == "-":  # report.json on stdout, nothing on disk
        out, no_write, format = None, True, Format.json
    if no_write and (carve or zeek or zeek_json or force):
        used = [
            n for n, on in (("--carve", carve), ("--zeek", zeek), ("--zeek-json", zeek_json), ("--force", force)) if on
        ]
        raise InputError(f"--no-write (or --out -) writes nothing to disk: {', '.join(used)} cannot apply")

    if address is not None and engine is not Engine.ray:
        raise InputError("--address: only with --engine ray")
    if engine is Engine.ray:
        from analyzer.ray_engine import require_ray

        require_ray()  # one line with the install command when Ray is missing

    # Big captures are read in a worker interpreter: started now, it imports its modules while this one does.
    with prespawned(paths if engine is Engine.local else ()):
        from analyzer.inputs import read_limits
        from analyzer.pipeline import ScanConfig, run_scan
        from analyzer.progress import make_stages
        from features.capture.filter import PacketFilter

        config = ScanConfig(
            paths=tuple(paths),
            out=out,
            model_dir=model,
            device=device.value,
            batch_size=batch_size,
            fail_on=parse_fail_on(fail_on),
            min_confidence=min_confidence,
            force=force,
            strict=strict,
            novelty=novelty,
            merge=merge,
            decap=not no_decap,
            zeek="json" if zeek_json else "tsv" if zeek else "",
            packet_filter=PacketFilter.build(since, until, host or [], port or []),
            allow=allow,
            carve=carve,
            engine=engine.value,
            ray_address=address,
            limits=read_limits(max_bytes, max_inflate),
            write=not no_write,
            alert_confidence=alert_confidence,
            threads=parse_threads(threads),
        )
        with make_stages(quiet or no_progress) as stages:
            result = run_scan(config, stages)
        if format is Format.json:  # asked for by name, so printed even with --quiet (which silences the text report)
            sys.stdout.write(json.dumps(result.summary, indent=2, default=str) + "\n")
        elif quiet:
            pass  # outputs written, exit code below: nothing printed
        else:
            from analyzer.report import make_console, render

            render(result, make_console())
        if result.exit_code:
            raise typer.Exit(result.exit_code)
