"""Ground truth for flows: label windows (who attacked whom, when, with what class) joined to flow records.

A label file is CSV with a header; one row per window: ``scenario,class,start_utc,end_utc,attackers,victims``
(more columns, such as ``tool`` and ``params``, are kept out of the join). ``class`` is ``normal``, ``DoS``,
``Probe``, ``R2L`` or ``U2R``; times are ISO 8601 UTC; ``attackers`` and ``victims`` are space-separated
addresses or CIDR networks, ``victims`` ``*`` for any address. The traffic lab (``lab/``) writes these files.

The join, per flow: a flow gets a window's class (and scenario) when its start ``ts`` lies in
``[start_utc, end_utc]`` and one endpoint is an attacker and the other a victim. Where windows overlap, the
one that started last wins (the most recent activity of that attacker). Flows that match no window are
``normal``, except flows touching an attacker address outside every window: those are *unexplained* (label
null), because a label file that does not cover its attackers' traffic is wrong, and guessing would teach
the model the wrong thing. Windows work for any cut of the capture: a cut keeps the times.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from features.common import InputError
from features.kdd.columns import CLASSES

__all__ = ["LABEL_CLASSES", "LabelJoin", "LabelWindow", "label_flows", "read_label_windows"]

LABEL_CLASSES: tuple[str, ...] = CLASSES  # NSL-KDD's five classes
_REQUIRED = ("scenario", "class", "start_utc", "end_utc", "attackers", "victims")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class LabelWindow:
    scenario: str
    cls: str
    start: dt.datetime  # UTC, aware
    end: dt.datetime
    attackers: tuple[Network, ...]
    victims: tuple[Network, ...] | None  # None: any address

    def covers(self, host: str, side: tuple[Network, ...] | None) -> bool:
        if side is None:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in side)


@dataclass(frozen=True)
class LabelJoin:
    """The join's result: one label and scenario per flow (row order kept), and what the join noticed."""

    label: pl.Series  # String: a class, or null for a flow of an attacker outside every window
    scenario: pl.Series  # String: the window's scenario, "" for normal flows
    flows_per_window: dict[str, int]  # scenario -> flows it labelled
    unexplained: int  # flows touching an attacker address outside every window
    empty_windows: list[str]  # scenarios whose window overlaps the flows' time span yet labelled no flow


def _time(text: str, path: Path, line: int) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{path}: line {line}: not an ISO 8601 time: {text!r}") from None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _networks(text: str, path: Path, line: int, what: str) -> tuple[Network, ...]:
    try:
        nets = tuple(ipaddress.ip_network(w, strict=False) for w in text.split())
    except ValueError as e:
        raise InputError(f"{path}: line {line}: {what}: {e}") from None
    if not nets:
        raise InputError(f"{path}: line {line}: {what} is empty")
    return nets


def read_label_windows(path: Path) -> list[LabelWindow]:
    """Read a label file (see the module docstring); any malformed row is an InputError naming file and line."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: cannot read label file: {e}") from None
    missing = [c for c in _REQUIRED if c not in header]
    if rows and missing:
        raise InputError(f"{path}: label file lacks column(s) {', '.join(missing)} (need {', '.join(_REQUIRED)})")
    windows = []
    for i, row in enumerate(rows, start=2):
        cls = (row["class"] or "").strip()
        if cls not in LABEL_CLASSES:
            raise InputError(f"{path}: line {i}: class {cls!r} is not one of {', '.join(LABEL_CLASSES)}")
        start, end = _time(row["start_utc"], path, i), _time(row["end_utc"], path, i)
        if end < start:
            raise InputError(f"{path}: line {i}: end_utc is before start_utc")
        victims_text = (row["victims"] or "").strip()
        windows.append(
            LabelWindow(
                scenario=(row["scenario"] or "").strip(),
                cls=cls,
                start=start,
                end=end,
                attackers=_networks(row["attackers"] or "", path, i, "attackers"),
                victims=None if victims_text == "*" else _networks(victims_text, path, i, "victims"),
            )
        )
    return windows


def label_flows(flows: pl.DataFrame, windows: list[LabelWindow]) -> LabelJoin:
    """Label each flow of ``flows`` (needs ``ts``, ``orig_h``, ``resp_h``) from ``windows`` (module docstring)."""
    n = flows.height
    hosts = pl.concat([flows.get_column("orig_h"), flows.get_column("resp_h")]).drop_nulls().unique().to_list()
    label = pl.Series("label", ["normal"] * n, dtype=pl.String)
    scenario = pl.Series("scenario", [""] * n, dtype=pl.String)
    matched = pl.Series([False] * n)
    attacker_hosts: set[str] = set()
    counts: dict[str, int] = {}
    empty: list[str] = []
    ts = flows.get_column("ts")
    lo, hi = (ts.min(), ts.max()) if n else (None, None)
    # Later-starting windows are applied last, so they win where windows overlap.
    for w in sorted(windows, key=lambda w: w.start):
        att = [h for h in hosts if w.covers(h, w.attackers)]
        vic = [h for h in hosts if w.covers(h, w.victims)]
        attacker_hosts.update(att)
        o, r = flows.get_column("orig_h"), flows.get_column("resp_h")
        pair = (o.is_in(att) & r.is_in(vic)) | (r.is_in(att) & o.is_in(vic))
        in_time = (ts >= w.start) & (ts <= w.end)
        hit = (pair & in_time).fill_null(False)
        k = int(hit.sum())
        counts[w.scenario] = counts.get(w.scenario, 0) + k
        if k == 0 and lo is not None and hi is not None and w.start <= hi and w.end >= lo:  # type: ignore[operator]
            empty.append(w.scenario)
        label = label.zip_with(~hit, pl.Series([w.cls] * n, dtype=pl.String))
        scenario = scenario.zip_with(~hit, pl.Series([w.scenario] * n, dtype=pl.String))
        matched = matched | hit
    touches = flows.get_column("orig_h").is_in(list(attacker_hosts)) | flows.get_column("resp_h").is_in(
        list(attacker_hosts)
    )
    outside = (touches & ~matched).fill_null(False)
    label = label.zip_with(~outside, pl.Series([None] * n, dtype=pl.String))
    return LabelJoin(
        label=label.alias("label"),
        scenario=scenario.alias("scenario"),
        flows_per_window=counts,
        unexplained=int(outside.sum()),
        empty_windows=empty,
    )
