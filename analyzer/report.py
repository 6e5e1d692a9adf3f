"""The terminal report (rich): ``render`` a ``ScanResult`` (``analyzer.summary.to_json`` is its report.json twin).

It reads a ``ScanResult`` only and computes no verdicts. The terminal report leads with what an
incident responder acts on: incidents (one line each, with why), then the flows and talkers behind them.
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from analyzer import __version__, verdicts
from analyzer.incidents import fmt_duration, fmt_endpoint, fmt_host
from analyzer.incidents import phrases as incident_phrases
from analyzer.result import ScanResult, suspicious_of, talkers_of, timeline_of
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


def _add(grid: Table, label: str, value: str | Text) -> None:
    """A header row; a plain value is Text, so file names and addresses are never read as markup or emoji."""
    grid.add_row(label, value if isinstance(value, Text) else Text(value))


def _header(result: ScanResult) -> Table:
    start, end = span(result)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    names = ", ".join(str(c["file"]) for c in result.captures[:3])
    more = f" and {len(result.captures) - 3} more" if len(result.captures) > 3 else ""
    zeek = result.input_kind == "zeek"
    _add(grid, "Zeek logs" if zeek else "Captures", f"{len(result.captures)}: {names}{more}")
    if zeek:
        from features.zeeklog.conn import unavailable_note

        _add(grid, "Input", unavailable_note(result.unavailable_features))
    for st in result.joined:
        files = st["files"]
        shown = ", ".join(files[:2]) + (f" ... {files[-1]}" if len(files) > 2 else "")
        # Joined files follow each other within the longest flow timeout: rotated files of one session, or unrelated
        # captures made one after the other. Which, nta cannot tell; it says what it did, not that they were rotated.
        how = (
            "read in time order as one stream (each starts where the one before ends, as rotated files do)"
            if st["how"] == "joined"
            else "merged by time (--merge)"
        )
        _add(grid, st["how"].capitalize(), f"{len(files)} files {how}: {shown}")
    if result.sessions > 1:
        _add(
            grid,
            "Sessions",
            f"{result.sessions} (one per packet stream: a capture, or files read as one): each session's window "
            "features are computed apart, as if it were scanned alone",
        )
    if result.skipped:
        p, why = result.skipped[0]
        _add(grid, "Skipped", f"{len(result.skipped)} files (e.g. {path_text(p)}: {escape_surrogates(why)})")
    _add(grid, "Packets", f"{result.packets:,}")
    if result.filters:
        asked = ", ".join(result.filters)
        _add(grid, "Filters", f"{asked}: {result.filtered_packets:,} packets outside, skipped while reading")
    _add(grid, "Flows", f"{result.flows:,}")
    if start is not None and end is not None:
        _add(grid, "Time span", f"{_when(start)} - {_when(end)} UTC ({fmt_duration((end - start).total_seconds())})")
    bad = ", ".join(f"{k} {n:,}" for k, n in sorted(result.bad_packets.items(), key=lambda kv: (-kv[1], kv[0])))
    _add(grid, "Bad records" if zeek else "Bad packets", bad or "none")
    for w in result.warnings:
        _add(grid, "Warning", Text(w, style="yellow"))
    if result.unknown_values:
        _add(grid, "Unseen values", ", ".join(f"{k} {n:,}" for k, n in sorted(result.unknown_values.items())))
    if result.allow_file is not None:
        _add(
            grid,
            "Allowed",
            f"{result.allowed_flows:,} flows known-good by {result.allow_file} ({result.allow_entries} entries): "
            "kept in the outputs, in no incident and no --fail-on match",
        )
    confirmed = (
        f"; each attack call confirmed by the mean vote of {result.confirmers + 1} networks"
        if result.confirmers
        else ""
    )
    _add(grid, "Model", f"{result.model_id} on {result.device}{confirmed}")
    if result.novelty:
        _add(
            grid,
            "Novelty gate",
            f"on: {result.novel_flows:,} flows the network called normal were unlike its normal training rows",
        )
    if result.support:
        _add(
            grid,
            "Support gate",
            f"{result.unsupported_flows:,} attack call{'' if result.unsupported_flows == 1 else 's'} far from that "
            f"class's training rows and near normal ones {'was' if result.unsupported_flows == 1 else 'were'} set to "
            "normal (verdicts.csv: unsupported)",
        )
    _add(grid, "Seconds", ", ".join(f"{k} {s:.1f}" for k, s in result.seconds.items()))
    return grid


def _verdict_table(result: ScanResult) -> Table:
    t = Table(
        title="Verdicts by class", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0)
    )
    t.add_column("class")
    t.add_column("flows", justify="right")
    t.add_column("share", justify="right")
    t.add_column("top services")
    for c in verdicts.class_summary(result.tally, result.classes):
        svc = ", ".join(f"{s} {n:,}" for s, n in c["top_services"])
        style = None if c["label"] == verdicts.NORMAL or not c["flows"] else "bold red"
        t.add_row(c["label"], f"{c['flows']:,}", f"{c['share']:.1%}", svc, style=style)
    return t


def _timeline(result: ScanResult, width: int) -> Group:
    # One character per bin; the label and the "peak" note take about 45 columns.
    bins = max(10, min(60, width - 45))
    line = timeline_of(result, bins)
    if not line["counts"]:
        return Group(Text("Attack flows over time: none"))
    head = Text(
        f"Attack flows over time ({line['bins']} bins of {fmt_duration(line['bin_s'])} from {_when(line['start'])})"
    )
    rows = [head]
    for cls, counts in line["counts"].items():
        rows.append(Text(f"  {cls:<6}▕{sparkline(counts)}▏ {sum(counts):,} flows, peak {max(counts):,}/bin"))
    return Group(*rows)


def packed(first: str, pieces: list[str], sep: str, width: int, indent: int) -> Text:
    """``first`` then ``pieces`` joined by ``sep``, broken into lines of at most ``width`` columns only between
    pieces (continuation lines indented by ``indent``): an address, a port or a phrase is never split. A piece
    longer than a whole line (a display filter's ``ip.addr in {...}`` set) is broken between its words; a
    single word longer than a line gets a line of its own, and only then may the terminal fold it."""
    room = max(width - indent, 1)
    tokens: list[tuple[str, str]] = []  # (glue before the token, token)
    for k, piece in enumerate(pieces):
        words = piece.split(" ") if len(piece) > room else [piece]
        tokens += [(sep if k and not j else (" " if j else ""), w) for j, w in enumerate(words)]
    lines: list[str] = []
    line = first
    mark = sep.rstrip()  # a line broken at a separator ends with its visible part ("," or "&&")
    for k, (glue, tok) in enumerate(tokens):
        nxt = tokens[k + 1][0] if k + 1 < len(tokens) else ""
        tail = len(mark) if nxt == sep else 0
        if not k and line.strip() and len(line) + len(tok) + tail > width:
            lines.append(line.rstrip())  # the first piece does not fit after the prefix: it starts the next line
            line = " " * indent + tok
        elif k and len(line) + len(glue) + len(tok) + tail > width:
            lines.append(line + (mark if glue == sep else ""))
            line = " " * indent + tok
        else:
            line += glue + tok
    lines.append(line)
    return Text("\n".join(line.rstrip() for line in lines), overflow="fold")


def _reason_text(d: dict[str, Any]) -> str:
    value = d["value"]
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{d['feature']} {value}"


def _incidents(result: ScanResult, width: int) -> Group:
    """One block per incident, most severe first (``#1`` is the first to look at: ``analyzer.incidents``)."""
    inc = result.incidents
    rows: list[Any] = [Text(f"Incidents: {inc.height:,}", style="bold")]
    for r in inc.sort("incident_id").head(MAX_INCIDENTS).iter_rows(named=True):
        tag = f"#{r['incident_id']}"
        head = packed(f"{tag:>4}  ", incident_phrases(r), ", ", width, 8)
        head.stylize("red")
        rows.append(head)
        why = [_reason_text(d) for d in r["reason"]]
        if why:  # the model's vocabulary, named: NSL-KDD feature names and values (README: glossary)
            rows.append(packed("      why (NSL-KDD features): ", why, ", ", width, 8))
        else:
            rows.append(Text("      why: not explained (only the first 20 incidents are)"))
        if r.get("wireshark_filter"):
            rows.append(packed("      filter: ", r["wireshark_filter"].split(" && "), " && ", width, 14))
        cids = r.get("community_ids") or []
        if cids:
            more = f" (+{len(cids) - 1:,} more in report.json)" if len(cids) > 1 else ""
            rows.append(packed("      community id: ", [cids[0], more.strip()] if more else [cids[0]], " ", width, 20))
        carved = result.carved.get(r["incident_id"])
        if carved is not None:
            rows.append(packed("      packets: ", [path_text(carved[0]), f"({carved[1]:,})"], " ", width, 15))
    if inc.height > MAX_INCIDENTS:
        rows.append(Text(f"  ... and {inc.height - MAX_INCIDENTS:,} less severe incidents (report.json has them all)"))
    return Group(*rows)


_FLOW_COLUMNS = ("flow", "time", "originator", "responder", "service", "state", "class", "p_attack", "inc")
# Columns given up, in this order, when the endpoints need the room; never the endpoints themselves.
_DROPPABLE = ("time", "state", "service")


def _top_flows(result: ScanResult, width: int) -> Any:
    """The top suspicious flows as a table when every endpoint fits whole on the terminal (columns dropped as
    needed), else as two lines a flow. Endpoints are never folded: a split port or address misleads."""
    rows = []
    for r in top_flow_rows(result).iter_rows(named=True):
        rows.append(
            {
                "flow": str(r["flow_id"]),
                "time": r["ts"].strftime("%H:%M:%S"),
                "originator": fmt_endpoint(r["orig_h"], r["orig_p"]),
                "responder": fmt_endpoint(r["resp_h"], r["resp_p"]),
                "service": f"{r['service']}",
                "state": r["conn_state"],
                "class": r["label"],
                "p_attack": f"{r['p_attack']:.2f}",
                "inc": "" if r["incident_id"] is None else f"#{r['incident_id']}",
            }
        )
    columns = list(_FLOW_COLUMNS)
    probe = Console(width=1000, file=io.StringIO())  # measures the natural width, unclipped
    for drop in (None, *_DROPPABLE):
        if drop is not None:
            columns.remove(drop)
        t = Table(
            title="Top suspicious flows",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            padding=(0, 1, 0, 0),
        )
        for name in columns:
            just = "right" if name in ("flow", "p_attack", "inc") else "left"
            t.add_column(name, justify=just, no_wrap=True)  # type: ignore[arg-type]
        for row in rows:
            t.add_row(*(Text(row[c]) for c in columns))  # Text: "[fd77::14]:80" is no markup, ":100:" no emoji
        if Measurement.get(probe, probe.options, t).maximum <= width:  # every cell whole at this width
            return t
    lines: list[Any] = [Text("Top suspicious flows", style="italic")]
    for row in rows:  # too narrow for a table: the flow's facts, then its endpoints on their own line
        lines.append(
            Text(f"{row['flow']:>6}  {row['class']} {row['p_attack']} {row['inc']}  {row['service']} {row['state']}")
        )
        lines.append(packed("        ", [row["originator"], "-> " + row["responder"]], " ", width, 10))
    return Group(*lines)


def _flow_filters(result: ScanResult, width: int) -> Group:
    """The top flows' display filters and Community IDs (too wide for the table), wrapped between terms."""
    rows = [Text("Wireshark filters and Community IDs of the top flows", style="bold")]
    for r in top_flow_rows(result).iter_rows(named=True):
        terms = (r["wireshark_filter"] or "").split(" && ")
        rows.append(packed(f"  {r['flow_id']:>6}  {r['community_id']}  ", terms, " && ", width, 10))
    return Group(*rows)


def _talkers(result: ScanResult) -> Table:
    t = Table(
        title="Top talkers among suspicious flows",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for name in ("originator", "flows", "classes", "targets", "ports", "max p_attack"):
        # The address never wraps; the headers of the number columns may, when the terminal is narrow.
        t.add_column(
            name, justify="left" if name in ("originator", "classes") else "right", no_wrap=name == "originator"
        )
    for r in talkers_of(result, TOP_TALKERS).iter_rows(named=True):
        cells = (fmt_host(r["orig_h"]), f"{r['flows']:,}", r["classes"], f"{r['targets']:,}", f"{r['ports']:,}",
                 f"{r['max_p_attack']:.2f}")  # fmt: skip
        t.add_row(*map(Text, cells))  # Text: an address is never read as markup or an :emoji: code
    return t


class _Console(Console):
    """rich's Console, except that a closed stdout raises ``BrokenPipeError`` (exit 141 in ``analyzer.errors``)
    instead of rich's ``SystemExit(1)``, the code of "verdicts matched --fail-on"."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError(32, "Broken pipe")


def make_console() -> Console:
    """The report's console: stdout, colour only on a terminal (rich decides)."""
    return _Console(highlight=False, emoji=False)  # "2001:db8:100:100::1" holds ":100:", an emoji code


def render(result: ScanResult, console: Console) -> None:
    """Print the report: header, verdicts, timeline, incidents, top flows and talkers, outputs, CI verdict."""
    console.print(Rule(f"nta scan {__version__}"))
    console.print(_header(result))
    console.print()
    console.print(_verdict_table(result))
    console.print(_timeline(result, console.width))
    console.print()
    console.print(_incidents(result, console.width))
    if suspicious_of(result):
        console.print()
        console.print(_top_flows(result, console.width))
        console.print(_flow_filters(result, console.width))
        console.print()
        console.print(_talkers(result))
    console.print()
    console.print("Outputs: " + (", ".join(path_text(p) for p in result.outputs.values()) or "none (--no-write)"))
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
