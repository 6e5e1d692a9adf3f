"""``ScanResult``: what a scan found, as plain data. The pipeline fills it; the report and report.json read it.

Its own module so that neither the terminal report nor ``report.json`` depends on the pipeline that made it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.verdicts import Tally

OUTPUT_NAMES: tuple[str, ...] = ("flows.parquet", "verdicts.csv", "report.json", "report.html", "alerts.ndjson")
ZEEK_NAMES: tuple[str, ...] = ("conn.log", "nta.log")  # with nta scan --zeek / --zeek-json


@dataclass
class ScanResult:
    """Everything the report shows and ``report.json`` holds."""

    out_dir: Path
    captures: list[dict[str, Any]]
    skipped: list[tuple[Path, str]]
    packets: int
    bad_packets: dict[str, int]
    warnings: list[str]
    unknown_values: dict[str, int]
    model_id: str
    device: str
    classes: tuple[str, ...]
    tally: Tally  # counts and time span over every verdict row (verdicts.csv holds the rows themselves)
    # The verdicts.csv rows of attack flows (ATTACK_COLUMNS), with their incident_id: all of them, or, from a scan,
    # those the report names (``timelines``, ``talkers`` and ``suspicious_flows`` then say what every row adds up to)
    attacks: pl.DataFrame
    incidents: pl.DataFrame  # one row per incident, with "summary" and "reason" columns
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall seconds
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # stage -> CPU seconds of this process (all threads)
    fail_on: frozenset[str] = frozenset()
    min_confidence: float = 0.0
    matched: int = 0
    summary: dict[str, Any] = field(default_factory=dict)  # report.json content
    novelty: bool = False  # the novelty gate was applied (verdicts' "novel" column says where it relabelled)
    support: bool = False  # the model's support gate was applied (verdicts' "unsupported" column says where)
    confirmers: int = 0  # networks that voted on the model's attack calls (model.confirm)
    extra_outputs: tuple[str, ...] = ()  # outputs asked for besides OUTPUT_NAMES (ZEEK_NAMES)
    filters: tuple[str, ...] = ()  # the packet filter asked for ("since ...", "host ...", "port ...")
    filtered_packets: int = 0  # packets the filter left out
    allow_file: str | None = None  # --allow FILE
    allow_entries: int = 0
    decap: bool = True  # tunnels were decapsulated (nta carve must decode the same way)
    flow_table: pl.DataFrame | None = None  # flow-table rows of the flows the report names (top flows' filters)
    top_flows: pl.DataFrame | None = None  # the top flows' whole verdicts.csv rows (``attacks`` has ATTACK_COLUMNS)
    ranked: pl.DataFrame | None = None  # verdicts.top_flows(attacks) as the scan ranked them (None: rank again)
    carved: dict[int, tuple[Path, int]] = field(default_factory=dict)  # incident -> (capture file, packets)
    timelines: Any = None  # verdicts.Timeline of every attack row (None: computed from ``attacks``)
    talkers: pl.DataFrame | None = None  # verdicts.top_talkers of every attack row (None: from ``attacks``)
    suspicious_flows: int | None = None  # attack flows no --allow entry covers (None: counted in ``attacks``)
    # Files read as one packet stream (features.flows.extract.Extraction.streams): {"files": [...], "how": ...}
    streams: list[dict[str, Any]] = field(default_factory=list)
    sessions: int = 1  # sessions the window features were computed in (features.kdd.windows.Sessions)

    @property
    def joined(self) -> list[dict[str, Any]]:
        """Streams of more than one file: rotated files joined in time order, or files merged by time."""
        return [s for s in self.streams if len(s["files"]) > 1]

    input_kind: str = "capture"  # "zeek": the flows were read from Zeek conn logs (features.zeeklog)
    unavailable_features: tuple[str, ...] = ()  # KDD features the input cannot give, taken as 0
    alert_confidence: float = 0.9  # alerts.ndjson: an event per attack flow at least this confident
    alerts: int = 0  # events written to alerts.ndjson
    written: bool = True  # False with --no-write / --out -: no file on disk, ``outputs`` is empty

    @property
    def flows(self) -> int:
        return self.tally.flows

    @property
    def novel_flows(self) -> int:
        """Flows the novelty gate relabelled (0 without ``--novelty``)."""
        return self.tally.novel

    @property
    def unsupported_flows(self) -> int:
        """Attack calls the support gate set to normal (0 without one, and with ``--novelty``)."""
        return self.tally.unsupported

    @property
    def allowed_flows(self) -> int:
        """Flows an ``--allow`` entry covers (0 without ``--allow``)."""
        return self.tally.allowed

    @property
    def exit_code(self) -> int:
        return 1 if self.matched else 0

    @property
    def outputs(self) -> dict[str, Path]:
        if not self.written:
            return {}
        return {name: self.out_dir / name for name in (*OUTPUT_NAMES, *self.extra_outputs)}


def timeline_of(result: ScanResult, bins: int = 60) -> dict[str, Any]:
    """The attack timeline in ``bins`` bins (``verdicts.timeline``)."""
    from analyzer import verdicts

    if result.timelines is not None and bins in result.timelines.counts:
        return result.timelines.line(bins)  # type: ignore[no-any-return]
    return verdicts.timeline(result.attacks, result.classes, bins, span=(result.tally.ts_min, result.tally.ts_max))


def talkers_of(result: ScanResult, n: int) -> pl.DataFrame:
    """The top ``n`` talkers (``verdicts.top_talkers``)."""
    from analyzer import verdicts

    if result.talkers is not None:
        return result.talkers.head(n)
    return verdicts.top_talkers(result.attacks, n)


def suspicious_of(result: ScanResult) -> int:
    """How many attack flows no --allow entry covers."""
    from analyzer import verdicts

    if result.suspicious_flows is not None:
        return result.suspicious_flows
    return verdicts.suspicious(result.attacks).height
