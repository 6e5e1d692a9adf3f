"""``report.html``: the scan report as one self-contained page to hand on (inline CSS and SVG, no script, no fetch).

It is made from ``report.json``'s content (``analyzer.summary.to_json``), so the page and the JSON never
disagree: the summary (captures, packets, flows, time span, filters, allow list, bad packets, warnings),
verdicts by class, the attack timeline per class as an SVG chart, the incidents (``<table id="incidents">``)
with their reasons, Wireshark filters, Community IDs and carved files, the top suspicious flows with their
filters, and the top talkers. Every text from the data is HTML-escaped.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

COLOURS = {"DoS": "#c62828", "Probe": "#ef6c00", "R2L": "#6a1b9a", "U2R": "#4e342e"}
OTHER_COLOUR = "#37474f"

CSS = """
:root { --fg: #1b1f23; --muted: #57606a; --line: #d0d7de; --bg: #ffffff; --soft: #f6f8fa; --bad: #b71c1c; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
       "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 130px; background: var(--soft); }
.card .n { font-size: 22px; font-weight: 600; }
.card .l { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card.alert .n { color: var(--bad); }
table { border-collapse: collapse; width: 100%; margin: 6px 0 12px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { background: var(--soft); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 1px 4px;
       word-break: break-all; }
.cls { display: inline-block; padding: 0 6px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.why { color: var(--muted); }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; }
.warn { color: #8a6d00; }
.none { color: var(--muted); font-style: italic; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
"""


def _e(v: Any) -> str:
    return escape("" if v is None else str(v))


def _n(v: int | float) -> str:
    return f"{v:,}"


def _cls(label: str) -> str:
    colour = COLOURS.get(label, OTHER_COLOUR if label != "normal" else "#2e7d32")
    return f'<span class="cls" style="background:{colour}">{_e(label)}</span>'


def _card(label: str, value: str, alert: bool = False) -> str:
    return f'<div class="card{" alert" if alert else ""}"><div class="n">{value}</div><div class="l">{_e(label)}</div></div>'


def _when(iso: str | None) -> str:
    return "-" if not iso else iso.replace("T", " ").replace("Z", " UTC")


def timeline_svg(line: dict[str, Any], width: int = 900) -> str:
    """Attack flows per class over time: one bar row per class, bars scaled to each class's busiest bin."""
    counts: dict[str, list[int]] = line.get("counts") or {}
    if not counts:
        return '<p class="none">No attack flows.</p>'
    bins = int(line["bins"])
    label_w, row_h, top = 70, 46, 8
    plot_w = width - label_w - 10
    bar_w = plot_w / bins
    height = top + row_h * len(counts) + 26
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="Attack flows over time per class">'
    ]
    for i, (cls, row) in enumerate(counts.items()):
        y0 = top + i * row_h
        peak = max(row) or 1
        colour = COLOURS.get(cls, OTHER_COLOUR)
        parts.append(f'<text x="0" y="{y0 + row_h / 2 + 4:.1f}">{_e(cls)} ({_n(sum(row))})</text>')
        parts.append(
            f'<line x1="{label_w}" y1="{y0 + row_h - 6}" x2="{label_w + plot_w}" y2="{y0 + row_h - 6}" stroke="#d0d7de"/>'
        )
        for j, c in enumerate(row):
            if c:
                h = max(2.0, (row_h - 12) * c / peak)
                x = label_w + j * bar_w
                parts.append(
                    f'<rect x="{x:.1f}" y="{y0 + row_h - 6 - h:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{_e(cls)}: {_n(c)} flows</title></rect>'
                )
    start = line.get("start")
    if start:
        t0 = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        span = float(line["bin_s"]) * bins
        y = height - 8
        for frac, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
            t = t0 + dt.timedelta(seconds=span * frac)
            x = label_w + plot_w * frac
            parts.append(f'<text x="{x:.1f}" y="{y}" text-anchor="{anchor}">{t.strftime("%H:%M:%S")}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _table(head: list[tuple[str, str]], rows: list[list[str]], table_id: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    th = "".join(f'<th class="{c}">{_e(h)}</th>' for h, c in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="{c}">{v}</td>' for v, (_, c) in zip(r, head, strict=True)) + "</tr>" for r in rows
    )
    return f"<table{ident}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _incident_rows(incidents: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for i in incidents:
        why = (
            ", ".join(f"{_e(d['feature'])} {_e(d.get('text', d['value']))}" for d in i.get("reason") or [])
            or "not explained"
        )
        cids = i.get("community_ids") or []
        cid = (
            f'<span class="mono">{_e(cids[0])}</span>' + (f" (+{_n(len(cids) - 1)})" if len(cids) > 1 else "")
            if cids
            else ""
        )
        carved = i.get("carved")
        carved_txt = (
            f'<span class="mono">{_e(carved["file"])}</span> ({_n(carved["packets"])} packets)' if carved else ""
        )
        rows.append(
            [
                f"#{i['incident_id']}",
                _cls(i["label"]),
                f'{_e(i["summary"])}<div class="why">why: {why}</div>',
                f"<code>{_e(i.get('wireshark_filter'))}</code>",
                cid,
                carved_txt,
            ]
        )
    return rows


def render_html(report: dict[str, Any]) -> str:
    """The whole page, from ``report.json``'s content."""
    span = report["time_span"]
    captures = report["captures"]
    attack = sum(c["flows"] for c in report["verdicts"] if c["label"] != "normal")
    bad = sum(report["bad_packets"].values())
    names = ", ".join(_e(c["file"]) for c in captures[:5]) + (
        f" and {len(captures) - 5} more" if len(captures) > 5 else ""
    )
    zeek = (report.get("input") or {}).get("kind") == "zeek"
    cards = "".join(
        [
            _card("packets", _n(report["packets"])),
            _card("flows", _n(report["flows"])),
            _card("attack flows", _n(attack), alert=attack > 0),
            _card("incidents", _n(len(report["incidents"])), alert=bool(report["incidents"])),
            _card("bad records" if zeek else "bad packets", _n(bad)),
            _card("warnings", _n(len(report["warnings"]))),
            _card("allowed flows", _n(report.get("allowed", {}).get("flows", 0))),
        ]
    )
    facts = [
        ("Zeek logs" if zeek else "Captures", f"{len(captures)}: {names}"),
        ("Time span", f"{_when(span['start'])} to {_when(span['end'])} ({span['seconds']:.1f} s)"),
        ("Model", f"{_e(report['model']['id'])} on {_e(report['model']['device'])}"),
    ]
    if (sessions := report.get("capture_sessions", 1)) > 1:
        facts.append(
            (
                "Sessions",
                f"{_n(sessions)}: one per packet stream (a capture, or files read as one), windows computed apart",
            )
        )
    if zeek:
        from features.zeeklog.conn import unavailable_note

        facts.append(("Input", _e(unavailable_note(report["input"]["unavailable_features"]))))
    filters = report.get("filters") or {}
    if filters.get("asked"):
        facts.append(
            ("Filters", f"{_e(', '.join(filters['asked']))}: {_n(filters['packets_skipped'])} packets skipped")
        )
    allowed = report.get("allowed") or {}
    if allowed.get("file"):
        facts.append(
            (
                "Allowed",
                f"{_n(allowed['flows'])} flows known-good by {_e(allowed['file'])} ({allowed['entries']} entries)",
            )
        )
    if report["fail_on"]["classes"]:
        fo = report["fail_on"]
        facts.append(("--fail-on", f"{_e(', '.join(fo['classes']))} at confidence &ge; {fo['min_confidence']}: {_n(fo['matched_flows'])} flows matched (exit code {report['exit_code']})"))  # fmt: skip
    kv = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts)

    verdict_rows = [
        [_cls(c["label"]), _n(c["flows"]), f"{c['share']:.1%}", _e(", ".join(f"{s} {n}" for s, n in c["top_services"]))]
        for c in report["verdicts"]
    ]
    incidents = report["incidents"]
    inc_html = (
        _table(
            [
                ("#", ""),
                ("class", ""),
                ("incident and why", ""),
                ("Wireshark filter", ""),
                ("Community ID", ""),
                ("packets", ""),
            ],
            _incident_rows(incidents),
            "incidents",
        )
        if incidents
        else '<table id="incidents"><tbody><tr><td class="none">No incidents.</td></tr></tbody></table>'
    )
    top_rows = [
        [
            str(f["flow_id"]),
            _e(_when(f["ts"])),
            _e(f"{f['orig_h']}:{f['orig_p']}" if f.get("orig_p") is not None else f["orig_h"]),
            _e(f"{f['resp_h']}:{f['resp_p']}" if f.get("resp_p") is not None else f["resp_h"]),
            _e(f["service"]),
            _e(f["conn_state"]),
            _cls(f["label"]),
            f"{f['p_attack']:.2f}",
            f'<span class="mono">{_e(f["community_id"])}</span><br><code>{_e(f.get("wireshark_filter"))}</code>',
        ]
        for f in report["top_flows"]
    ]
    talker_rows = [
        [
            _e(t["orig_h"]),
            _n(t["flows"]),
            _e(t["classes"]),
            _n(t["targets"]),
            _n(t["ports"]),
            f"{t['max_p_attack']:.2f}",
        ]
        for t in report["top_talkers"]
    ]
    bad_rows = [[_e(k), _n(v)] for k, v in sorted(report["bad_packets"].items(), key=lambda kv: (-kv[1], kv[0]))]
    warn_html = "".join(f'<li class="warn">{_e(w)}</li>' for w in report["warnings"])
    outputs = ", ".join(f'<span class="mono">{_e(p)}</span>' for p in report["outputs"].values())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="nta {_e(report["nta_version"])}">
<title>nta scan report: {names}</title>
<style>{CSS}</style>
</head>
<body>
<h1>nta scan report</h1>
<p class="sub">nta {_e(report["nta_version"])} &middot; {names}</p>
<div class="cards">{cards}</div>
<dl class="kv">{kv}</dl>
<h2>Verdicts by class</h2>
{_table([("class", ""), ("flows", "num"), ("share", "num"), ("top services", "")], verdict_rows, "verdicts")}
<h2>Attack timeline</h2>
<p class="sub">Attack flows per class by start time ({report["timeline"]["bins"]} bins of {report["timeline"]["bin_s"]:.2f} s, UTC); each row is scaled to its own peak.</p>
{timeline_svg(report["timeline"])}
<h2>Incidents ({_n(len(incidents))})</h2>
{inc_html}
<h2>Top suspicious flows</h2>
{_table([("flow", "num"), ("start", ""), ("originator", ""), ("responder", ""), ("service", ""), ("state", ""), ("class", ""), ("p_attack", "num"), ("Community ID and Wireshark filter", "")], top_rows, "top-flows") if top_rows else '<p class="none">None.</p>'}
<h2>Top talkers among suspicious flows</h2>
{_table([("originator", ""), ("flows", "num"), ("classes", ""), ("targets", "num"), ("ports", "num"), ("max p_attack", "num")], talker_rows, "talkers") if talker_rows else '<p class="none">None.</p>'}
<h2>Bad packets and warnings</h2>
{_table([("reason", ""), ("packets", "num")], bad_rows, "bad-packets") if bad_rows else '<p class="none">No bad packets.</p>'}
{f"<ul>{warn_html}</ul>" if warn_html else '<p class="none">No warnings.</p>'}
<footer>Outputs: {outputs}</footer>
</body>
</html>
"""
