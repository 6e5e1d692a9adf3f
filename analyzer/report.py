"""The terminal report (rich): ``render`` a ``ScanResult`` (``analyzer.summary.to_json`` is its report.json twin).

It reads a ``ScanResult`` only and computes no verdicts. The terminal report leads with what an
incident responder acts on: incidents (one line each, with why), then the flows and talkers behind them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from analyzer import __version__, verdicts
from analyzer.incidents import fmt_duration
from analyzer.result import ScanResult
from analyzer.summary import TOP_TALKERS, span, top_flow_rows
from features.common import escape_surrogates, path_text

SPARK = " ▁▂▃▄▅▆▇█"
MAX_INCIDENTS = 15


def _when(t: dt.datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def sparkline(counts: list[int]) -> str:
    """One character per bin: blank for none, then eight heights scaled to the largest bin."""
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts)
    return "".join(SPARK[0] if c == 0 else SPARK[max(1, round(c / top * 8))] for c in counts)


def _header(result: ScanResult) -> Table:
    start, end = span(result)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    names = ", ".join(str(c["file"]) for c in result.captures[:3])
    more = f" and {len(result.captures) - 3} more" if len(result.captures) > 3 else ""
    zeek = result.input_kind == "zeek"
    grid.add_row("Zeek logs" if zeek else "Captures", f"{len(result.captures)}: {names}{more}")
    if zeek:
        from features.zeeklog.conn import unavailable_note

        grid.add_row("Input", unavailable_note(result.unavailable_features))
    if result.skipped:
        p, why = result.skipped[0]
        grid.add_row("Skipped", f"{len(result.skipped)} files (e.g. {path_text(p)}: {escape_surrogates(why)})")
    grid.add_row("Packets", f"{result.packets:,}")
    if result.filters:
        asked = ", ".join(result.filters)
        grid.add_row("Filters", f"{asked}: {result.filtered_packets:,} packets outside, skipped while reading")
    grid.add_row("Flows", f"{result.flows:,}")
    if start is not None and end is not None:
        grid.add_row("Time span", f"{_when(start)} - {_when(end)} UTC ({fmt_duration((end - start).total_seconds())})")
    bad = ", ".join(f"{k} {n:,}" for k, n in sorted(result.bad_packets.items(), key=lambda kv: (-kv[1], kv[0])))
    grid.add_row("Bad records" if zeek else "Bad packets", bad or "none")
    for w in result.warnings:
        grid.add_row("Warning", Text(w, style="yellow"))
    if result.unknown_values:
        grid.add_row("Unseen values", ", ".join(f"{k} {n:,}" for k, n in sorted(result.unknown_values.items())))
    if result.allow_file is not None:
        grid.add_row(
            "Allowed",
            f"{result.allowed_flows:,} flows known-good by {result.allow_file} ({result.allow_entries} entries): "
            "kept in the outputs, in no incident and no --fail-on match",
        )
    grid.add_row("Model", f"{result.model_id} on {result.device}")
    if result.novelty:
        grid.add_row(
            "Novelty gate",
            f"on: {result.novel_flows:,} flows the network called normal were unlike its normal training rows",
        )
    grid.add_row("Seconds", ", ".join(f"{k} {s:.1f}" for k, s in result.seconds.items()))
    return grid


def _verdict_table(result: ScanResult) -> Table:
    t = Table(
        title="Verdicts by class", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0)
    )
    t.add_column("class")
    t.add_column("flows", justify="right")
    t.add_column("share", justify="right")
    t.add_column("top services")
    for c in verdicts.class_summary(result.verdicts, result.classes):
        svc = ", ".join(f"{s} {n:,}" for s, n in c["top_services"])
        style = None if c["label"] == verdicts.NORMAL or not c["flows"] else "bold red"
        t.add_row(c["label"], f"{c['flows']:,}", f"{c['share']:.1%}", svc, style=style)
    return t


def _timeline(result: ScanResult, width: int) -> Group:
    # One character per bin; the label and the "peak" note take about 45 columns.
    line = verdicts.timeline(result.verdicts, result.classes, bins=max(10, min(60, width - 45)))
    if not line["counts"]:
        return Group(Text("Attack flows over time: none"))
    head = Text(
        f"Attack flows over time ({line['bins']} bins of {fmt_duration(line['bin_s'])} from {_when(line['start'])})"
    )
    rows = [head]
    for cls, counts in line["counts"].items():
        rows.append(Text(f"  {cls:<6}▕{sparkline(counts)}▏ {sum(counts):,} flows, peak {max(counts):,}/bin"))
    return Group(*rows)


def _incidents(result: ScanResult) -> Group:
    inc = result.incidents
    grid = Table.grid(padding=(0, 1, 0, 2))  # wrapped lines stay indented under their incident
    grid.add_column(justify="right", no_wrap=True)
    grid.add_column()
    shown = inc.sort(["flows", "incident_id"], descending=[True, False]).head(MAX_INCIDENTS)
    for r in shown.iter_rows(named=True):
        why = ", ".join(f"{d['feature']} {d['value']}" for d in r["reason"])
        body = Text(r["summary"], style="red")
        body.append(f"\n  why: {why or 'not explained (only the largest incidents are)'}", style="default")
        if r.get("wireshark_filter"):
            body.append(f"\n  filter: {r['wireshark_filter']}", style="default")
        cids = r.get("community_ids") or []
        if cids:
            more = f" (+{len(cids) - 1:,} more in report.json)" if len(cids) > 1 else ""
            body.append(f"\n  community id: {cids[0]}{more}", style="default")
        carved = result.carved.get(r["incident_id"])
        if carved is not None:
            body.append(f"\n  packets: {path_text(carved[0])} ({carved[1]:,})", style="default")
        grid.add_row(f"#{r['incident_id']}", body)
    rows: list[Any] = [Text(f"Incidents: {inc.height:,}", style="bold"), grid]
    if inc.height > MAX_INCIDENTS:
        rows.append(Text(f"  ... and {inc.height - MAX_INCIDENTS:,} smaller incidents (report.json has them all)"))
    return Group(*rows)


def _top_flows(result: ScanResult, width: int) -> Table:
    t = Table(
        title="Top suspicious flows", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0)
    )
    show_time = width >= 96  # on an 80-column terminal the endpoints matter more than the start time
    for name, just in [("flow", "right"), ("time", "left"), ("originator", "left"), ("responder", "left"),
                       ("service", "left"), ("state", "left"), ("class", "left"), ("p_attack", "right"),
                       ("inc", "right")]:  # fmt: skip
        if name == "time" and not show_time:
            continue
        # Only the endpoints may fold (long IPv6 addresses); every other column keeps its width.
        fold = name in ("originator", "responder")
        t.add_column(name, justify=just, no_wrap=not fold, overflow="fold", min_width=15 if fold else None)  # type: ignore[arg-type]
    for r in top_flow_rows(result).iter_rows(named=True):
        inc = "" if r["incident_id"] is None else f"#{r['incident_id']}"
        cells = [str(r["flow_id"]), r["ts"].strftime("%H:%M:%S"), _endpoint(r["orig_h"], r["orig_p"]),
                 _endpoint(r["resp_h"], r["resp_p"]), f"{r['service']}", r["conn_state"], r["label"],
                 f"{r['p_attack']:.2f}", inc]  # fmt: skip
        t.add_row(*(cells if show_time else cells[:1] + cells[2:]))
    return t


def _flow_filters(result: ScanResult) -> Group:
    """The top flows' display filters and Community IDs, one line each (too wide for the table)."""
    rows = [Text("Wireshark filters and Community IDs of the top flows", style="bold")]
    for r in top_flow_rows(result).iter_rows(named=True):
        rows.append(Text(f"  {r['flow_id']:>6}  {r['community_id']}  {r['wireshark_filter']}"))
    return Group(*rows)


def _endpoint(host: str, port: int | None) -> str:
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _talkers(result: ScanResult) -> Table:
    t = Table(
        title="Top talkers among suspicious flows",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for name in ("originator", "flows", "classes", "targets", "ports", "max p_attack"):
        t.add_column(name, justify="left" if name in ("originator", "classes") else "right")
    for r in verdicts.top_talkers(result.verdicts, TOP_TALKERS).iter_rows(named=True):
        t.add_row(
            r["orig_h"],
            f"{r['flows']:,}",
            r["classes"],
            f"{r['targets']:,}",
            f"{r['ports']:,}",
            f"{r['max_p_attack']:.2f}",
        )
    return t


class _Console(Console):
    """rich's Console, except that a closed stdout raises ``BrokenPipeError`` (exit 141 in ``analyzer.errors``)
    instead of rich's ``SystemExit(1)``, the code of "verdicts matched --fail-on"."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(32, "Broken pipe")


def make_console() -> Console:
    """The report's console: stdout, colour only on a terminal (rich decides)."""
    return _Console(highlight=False)


def render(result: ScanResult, console: Console) -> None:
    """Print the report: header, verdicts, timeline, incidents, top flows and talkers, outputs, CI verdict."""
    console.print(Rule(f"nta scan {__version__}"))
    console.print(_header(result))
    console.print()
    console.print(_verdict_table(result))
    console.print(_timeline(result, console.width))
    console.print()
    console.print(_incidents(result))
    if verdicts.suspicious(result.verdicts).height:
        console.print()
        console.print(_top_flows(result, console.width))
        console.print(_flow_filters(result))
        console.print()
        console.print(_talkers(result))
    console.print()
    console.print("Outputs: " + ", ".join(path_text(p) for p in result.outputs.values()))
    if result.fail_on:
        what = ",".join(sorted(result.fail_on))
        if result.matched:
            console.print(
                Text(
                    f"FAIL: {result.matched:,} flows matched --fail-on {what} (confidence >= {result.min_confidence})",
                    style="bold red",
                )
            )
        else:
            console.print(f"OK: no flows matched --fail-on {what} (confidence >= {result.min_confidence})")
