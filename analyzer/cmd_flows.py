"""``nta flows CAPTURE... -o flows.parquet``: captures to one bidirectional flow table (Parquet, atomic).

``--format zeek`` writes the table as Zeek's conn.log (TSV with Zeek's header), ``--format zeek-json`` as Zeek's
JSON lines (``features.flows.zeek``).
"""

from __future__ import annotations

import contextlib
import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from analyzer.errors import guarded
from analyzer.read_options import MaxBytesOpt, MaxInflateOpt
from features.common import escape_surrogates, output_file, path_text


class FlowFormat(enum.StrEnum):
    parquet = "parquet"
    zeek = "zeek"
    zeek_json = "zeek-json"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("flows", help="Turn captures into one bidirectional flow table (Parquet).")(flows)


@guarded
def flows(
    captures: Annotated[list[Path], typer.Argument(help="Capture files (pcap/pcapng, gzipped or not) or folders.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write (Parquet, or conn.log).")],
    tcp_idle: Annotated[float, typer.Option("--tcp-idle", help="TCP idle timeout, seconds.", min=0.001)] = 300.0,
    udp_idle: Annotated[float, typer.Option("--udp-idle", help="UDP idle timeout, seconds.", min=0.001)] = 60.0,
    icmp_idle: Annotated[float, typer.Option("--icmp-idle", help="ICMP idle timeout, seconds.", min=0.001)] = 60.0,
    merge: Annotated[
        bool, typer.Option("--merge", help="Read files overlapping in time as one stream merged by time.")
    ] = False,
    fmt: Annotated[
        FlowFormat,
        typer.Option("--format", help="parquet: the flow table; zeek / zeek-json: Zeek's conn.log (TSV / JSON lines)."),
    ] = FlowFormat.parquet,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the output file.")] = False,
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
    """Read the captures, build flows, write them with their provenance; print a one-paragraph summary."""
    from analyzer import inputs
    from analyzer.pipeline import spooled_pipe
    from analyzer.progress import make_stages
    from features.capture.filter import PacketFilter
    from features.flows.builder import FlowConfig
    from features.flows.extract import FlowStream
    from features.flows.table import write_flow_stream
    from features.zeeklog.stream import ConnStream, gather_conn

    PacketFilter.build(since, until, host or [], port or [])  # a bad option fails before anything is read
    output_file(output, force=force)  # refused before any packet is read: a folder, a device, exists without --force
    limits = inputs.read_limits(max_bytes, max_inflate)  # a bad size fails before anything is read
    found = inputs.discover(captures)
    config = FlowConfig(tcp_idle_s=tcp_idle, udp_idle_s=udp_idle, icmp_idle_s=icmp_idle)
    narrow = PacketFilter.build(since, until, host or [], port or [])
    with (
        contextlib.ExitStack() as stack,
        make_stages(quiet) as stages,
        stages.stage("reading") as progress,
    ):
        fs: FlowStream | ConnStream
        if found.kind != "zeek":
            from features.capture.source import TextStream

            try:
                # Flows go to the file as they are released (FlowStream): memory follows open flows, not the table.
                fs = FlowStream(
                    found.captures, config, progress, payloads=False, merge=merge, decap=not no_decap,
                    packet_filter=narrow, limits=limits,
                )  # fmt: skip
            except TextStream as e:  # a Zeek conn log on a pipe, copied to a file first
                spool, name = stack.enter_context(spooled_pipe(e, list(found.captures), limits))
                fs = ConnStream([spool], progress, packet_filter=narrow, limits=limits, names=[name])
        else:  # a conn log's records are the flows (sorted out of core): the idle timeouts apply to captures only
            fs = ConnStream(found.captures, progress, packet_filter=narrow, limits=limits)
        if fmt is FlowFormat.parquet:
            ext, n_flows = write_flow_stream(fs, output)
        else:  # Zeek's conn.log is written from the whole table, gathered first (not streamed)
            import polars as pl

            from features.flows.extract import gather
            from features.flows.zeek import CONN_LOG, conn_frame, save_log

            ext = gather(fs) if isinstance(fs, FlowStream) else gather_conn(fs)
            n_flows = ext.flows.num_rows
            flows = pl.from_arrow(ext.flows)
            assert isinstance(flows, pl.DataFrame)
            save_log(CONN_LOG, conn_frame(flows), output, json=fmt is FlowFormat.zeek_json)
    for path, reason in found.skipped:
        print(f"nta: skipped {path_text(path)}: {escape_surrogates(reason)}", file=sys.stderr)
    print(summary(ext, output, n_flows))


def summary(ext: object, output: Path, n_flows: int | None = None) -> str:
    """One paragraph: files, packets, flows, bad packets by name, warnings."""
    sources = getattr(ext, "sources", [])
    bad = getattr(ext, "bad_packets", {})
    warnings = getattr(ext, "warnings", [])
    if n_flows is None:
        n_flows = ext.flows.num_rows  # type: ignore[attr-defined]
    if getattr(ext, "kind", "capture") == "zeek":
        files = f"{len(sources)} Zeek conn log{'s' if len(sources) != 1 else ''}"
        records = sum(s.get("records", 0) for s in sources)
        text = f"Read {files}, {records:,} records -> {n_flows:,} flows written to {path_text(output)}."
        if getattr(ext, "filtered", 0):
            text += f" {ext.filtered:,} records outside the filters were skipped."  # type: ignore[attr-defined]
        text += (" Bad records: " + ", ".join(f"{k} {v:,}" for k, v in sorted(bad.items())) + ".") if bad else ""
        return escape_surrogates(text + "".join(f" Warning: {w}" for w in warnings))
    files = f"{len(sources)} capture file{'s' if len(sources) != 1 else ''}"
    text = f"Read {files}, {getattr(ext, 'packets', 0):,} packets -> {n_flows:,} flows written to {path_text(output)}."
    for s in getattr(ext, "joined", []):
        how = "joined in time order" if s["how"] == "joined" else "merged by time"
        text += f" {len(s['files'])} files {how}: {s['files'][0]} ... {s['files'][-1]}."
    if getattr(ext, "filtered", 0):
        text += f" {ext.filtered:,} packets outside the filters were skipped."  # type: ignore[attr-defined]
    if bad:
        text += " Bad packets: " + ", ".join(f"{k} {v:,}" for k, v in sorted(bad.items())) + "."
    else:
        text += " No bad packets."
    if warnings:
        text += f" {len(warnings)} warning{'s' if len(warnings) != 1 else ''}: " + "; ".join(warnings)
    return escape_surrogates(text)
