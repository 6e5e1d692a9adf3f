"""``run_scan``: the one place the stages are wired together. Returns data (``ScanResult``); never prints.

Order matters for the user: everything that can refuse the job (inputs, existing outputs, the model)
is checked before the first packet is read, and nothing is written until every stage has succeeded;
then the three outputs are written to a new folder that replaces the output folder in one step
(``features.common.atomic_folder``), so a failure or Ctrl-C leaves no partial output, and readers see the
old three outputs or the new three, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from analyzer import evidence, explain, incidents, inputs, verdicts
from analyzer.allow import allowed, read_allow
from analyzer.progress import QuietStages, Stages
from analyzer.result import OUTPUT_NAMES, ZEEK_NAMES, ScanResult
from analyzer.summary import to_json
from features.capture.filter import PacketFilter
from features.capture.stream import DEFAULT_LIMITS, ReadLimits
from features.common import InputError, ModelError, atomic_folder, check_folder, output_lock
from features.kdd.columns import KDD_FEATURES


@dataclass(frozen=True)
class ScanConfig:
    """What ``nta scan`` was asked to do (built by the command from its options)."""

    paths: tuple[Path, ...]
    out: Path | None = None  # default: ./nta-out/<first capture's stem>/
    model_dir: Path | None = None  # default: the shipped model
    device: str = "auto"
    batch_size: int = 4096
    fail_on: frozenset[str] = frozenset()  # class names whose verdicts make the exit code 1
    min_confidence: float = 0.0
    force: bool = False
    strict: bool = False  # damaged-capture warnings become errors (exit 2)
    incidents: incidents.IncidentConfig = field(default_factory=incidents.IncidentConfig)
    explain_incidents: int = 20  # the first (most severe) N incidents get feature attributions (the report shows 15)
    explain_flows: int = 32  # flows sampled per explained incident (attribution costs a backward pass)
    novelty: bool = False  # apply the model's novelty gate (model.novelty): more attacks found, more false alarms
    decap: bool = True  # decapsulate tunnels (features.capture.tunnels); False: the outer packets make the flows
    zeek: str = ""  # "tsv" or "json": also write conn.log and nta.log in Zeek's format (features.flows.zeek)
    packet_filter: PacketFilter | None = None  # --since/--until/--host/--port (features.capture.filter)
    allow: Path | None = None  # --allow FILE: known-good hosts, networks, services (analyzer.allow)
    carve: bool = False  # --carve: each incident's packets to incidents/NNN-<class>-<source>.pcap (analyzer.evidence)
    limits: ReadLimits = DEFAULT_LIMITS  # --max-bytes, --max-inflate (features.capture.stream)
    alert_confidence: float = 0.9  # alerts.ndjson (analyzer.alerts): an EVE alert per attack flow this confident
    write: bool = True  # False (--no-write, --out -): nothing on disk; the summary is still built for stdout
    threads: int | None = None  # --threads N: torch threads for inference at most; None: nta's choice

    @property
    def extra_outputs(self) -> tuple[str, ...]:
        return ZEEK_NAMES if self.zeek else ()


def capture_stem(path: Path) -> str:
    """``demo.pcap.gz`` -> ``demo``: the default output folder's name (``stdin`` for ``-``)."""
    if str(path) == "-":
        return "stdin"
    name = path.name
    for suffix in (".gz", ".pcapng", ".pcap", ".cap", ".log", ".json", ".ndjson"):
        name = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    return name or "capture"


def run_scan(config: ScanConfig, stages: Stages | None = None) -> ScanResult:
    """Scan the captures, write the outputs, and return what was found (see the module docstring)."""
    from features.kdd.frame import kdd_features
    from model.infer import Classifier, default_model_dir, limit_threads

    stages = stages or QuietStages()
    seconds: dict[str, float] = {}
    cpu_seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[Any]:
        t0, c0 = time.perf_counter(), time.process_time()
        with stages.stage(name) as progress:
            yield progress
        seconds[name] = time.perf_counter() - t0
        cpu_seconds[name] = time.process_time() - c0

    found = inputs.discover(config.paths)
    if found.kind == "zeek" and config.carve:
        raise InputError(f"{found.captures[0]}: --carve needs packets, and a Zeek conn log has none")
    out_dir = config.out if config.out is not None else Path("nta-out") / capture_stem(found.captures[0])
    # a second scan into the same folder fails at once: one writer per folder (none without outputs)
    with output_lock(out_dir) if config.write else contextlib.nullcontext():
        if config.write:
            _check_outputs(out_dir, config.force, (*OUTPUT_NAMES, *config.extra_outputs))
        carved_dir = out_dir / evidence.INCIDENTS_DIR
        if config.carve and not config.force and carved_dir.is_dir() and any(carved_dir.iterdir()):
            raise InputError(f"{carved_dir}: holds carved incidents already; use --force to replace them")
        allow = read_allow(config.allow) if config.allow is not None else []
        with timed("model"):
            clf = Classifier.load(config.model_dir or default_model_dir(), device=config.device)
            if config.threads is not None:
                limit_threads(config.threads)
            _check_model_features(clf)
            if config.novelty and clf.novelty is None:
                raise ModelError(
                    f"model {clf.model_id} has no novelty profile: --novelty needs one (nta train fits it)"
                )
        with timed("reading") as progress:
            ext = read_flows_of(found, progress, config.decap, config.packet_filter, limits=config.limits)
        if ext.kind == "zeek" and config.carve:  # a Zeek log piped in is known only now
            raise InputError(f"{found.captures[0]}: --carve needs packets, and a Zeek conn log has none")
        if config.strict and ext.warnings:
            raise InputError(f"{ext.warnings[0]} (--strict turns capture warnings into errors)")
        with timed("features"):
            flows = pl.from_arrow(ext.flows)
            assert isinstance(flows, pl.DataFrame)
            kdd = _aligned(flows, kdd_features(ext.flows, ext.payloads, ext.service_hints))
        with timed("encoding"):
            x, unknown = clf.spec.transform(kdd)  # (n, F) float32
        with timed("inference") as progress:
            proba, gated = _predict(clf, x, config.batch_size, progress, config.novelty)  # (n, K), gate or None
        with timed("incidents"):
            v = verdicts.build_verdicts(flows, kdd["service"], proba, clf.classes, clf.model_id, gated)
            if allow:
                v = v.with_columns(allowed(flows, allow))
            inc, members = incidents.find_incidents(v, config.incidents)
            v = v.drop("incident_id").join(members, on="flow_id", how="left", maintain_order="left")
            v = v.select(verdicts.verdict_columns(clf.classes))
        with timed("explaining"):
            inc = _explain(clf, x, kdd, v, inc, config)
        members = evidence.incident_members(v, flows)
        inc = _evidence_columns(inc, members)
        carved: dict[int, tuple[Path, int]] = {}
        if config.carve:
            with timed("carving") as progress:
                carved = evidence.carve_incidents(
                    out_dir, list(found.captures), members, inc, decap=config.decap, force=True, progress=progress
                )
        result = ScanResult(
            out_dir=out_dir,
            captures=list(ext.sources),
            skipped=found.skipped,
            packets=int(ext.packets),
            bad_packets=dict(ext.bad_packets),
            warnings=list(ext.warnings),
            unknown_values={k: int(n) for k, n in unknown.items() if n},
            model_id=clf.model_id,
            device=str(clf.device),
            classes=tuple(clf.classes),
            verdicts=v,
            incidents=inc,
            seconds=seconds,
            cpu_seconds=cpu_seconds,
            fail_on=config.fail_on,
            min_confidence=config.min_confidence,
            matched=verdicts.matches(v, config.fail_on, config.min_confidence),
            novelty=config.novelty,
            extra_outputs=config.extra_outputs,
            filters=config.packet_filter.text if config.packet_filter is not None else (),
            filtered_packets=int(ext.filtered),
            allow_file=str(config.allow) if config.allow is not None else None,
            allow_entries=len(allow),
            decap=config.decap,
            flow_table=flows,
            carved=carved,
            written=config.write,
            alert_confidence=config.alert_confidence,
            input_kind=ext.kind,
            unavailable_features=ext.unavailable,
        )
        if not config.write:
            result.summary = to_json(result)
            return result
        try:
            with timed("writing"):
                _write_outputs(result, kdd, ext, flows, config.zeek)
        except BaseException:
            for path, _ in carved.values():  # nothing is left behind when the outputs cannot be written
                path.unlink(missing_ok=True)
            raise
        if carved and config.force:
            _remove_stale(carved_dir, {p for p, _ in carved.values()})
    return result


def read_flows_of(
    found: inputs.Inputs, progress: Any, decap: bool = True, packet_filter: Any = None, **capture: Any
) -> Any:
    """The flows of what ``inputs.discover`` found: built from packets, or read from Zeek conn logs (files, or one
    piped in: ``zcat conn.*.log.gz | nta scan -``). ``capture``: more options of ``extract_flows``."""
    from features.capture.source import TextStream
    from features.zeeklog.conn import read_conn_logs

    if found.kind == "zeek":
        return read_conn_logs(
            found.captures, progress, packet_filter=packet_filter, limits=capture.get("limits", DEFAULT_LIMITS)
        )
    from features.flows.extract import extract_flows

    try:
        return extract_flows(found.captures, progress=progress, decap=decap, packet_filter=packet_filter, **capture)
    except TextStream as e:
        return _zeek_stream(e, found.captures, progress, packet_filter, capture.get("limits", DEFAULT_LIMITS))


def _zeek_stream(
    e: Any, paths: list[Path], progress: Any, packet_filter: Any, limits: ReadLimits = DEFAULT_LIMITS
) -> Any:
    """A Zeek log on a pipe or standard input: spooled to a private temporary file (the reader reads a file by
    blocks and by name), read as a conn log, and named as the stream it came from."""
    import tempfile

    import pyarrow as pa

    from features.zeeklog.conn import read_conn_logs

    name = str(e).split(": ", 1)[0]
    if len(paths) != 1:
        e.stream.close()
        raise InputError(f"{name}: a Zeek log on a pipe is read alone: give the other logs as files") from None
    with tempfile.TemporaryDirectory(prefix="nta-zeek-") as tmp:
        spool = Path(tmp) / "stream"
        try:
            with spool.open("wb") as out:
                total = 0
                while chunk := e.stream.read(1 << 20):
                    total += len(chunk)
                    if why := limits.check(total, total, False):  # --max-bytes: an endless log on a pipe
                        raise InputError(f"{name}: {why}")
                    out.write(chunk)
        finally:
            e.stream.close()
        try:
            ext = read_conn_logs([spool], progress, packet_filter=packet_filter, limits=limits)
        except InputError as err:
            raise InputError(str(err).replace(str(spool), name)) from None
    at = ext.flows.schema.get_field_index("source_file")
    ext.flows = ext.flows.set_column(at, ext.flows.schema.field(at), pa.array([name] * ext.flows.num_rows, pa.string()))
    ext.sources = [{**s, "file": name} for s in ext.sources]
    ext.warnings = [w.replace(str(spool), name) for w in ext.warnings]
    return ext


def _evidence_columns(inc: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """Each incident's Wireshark display filter, its flows' Community IDs and uids (``analyzer.evidence``)."""
    filters, cids, uids = [], [], []
    by_incident = {k[0]: g for k, g in members.group_by("incident_id")} if members.height else {}
    for i in inc["incident_id"].to_list():
        g = by_incident.get(i)
        filters.append(evidence.incident_filter(g) if g is not None else "")
        cids.append(evidence.community_ids(g) if g is not None else [])
        uids.append(g.sort("ts", "flow_id")["uid"].to_list() if g is not None else [])
    return inc.with_columns(
        wireshark_filter=pl.Series(filters, dtype=pl.String),
        community_ids=pl.Series(cids, dtype=pl.List(pl.String)),
        uids=pl.Series(uids, dtype=pl.List(pl.String)),
    )


def _remove_stale(folder: Path, keep: set[Path]) -> None:
    """With --force, carved files of an earlier scan that this one did not write again are removed."""
    import re

    for p in folder.iterdir():
        if re.fullmatch(r"\d{3,}-.+\.pcap(ng)?", p.name) and p not in keep:
            p.unlink()


def _check_outputs(out_dir: Path, force: bool, names: tuple[str, ...]) -> None:
    out_dir = check_folder(out_dir, names)  # not a folder, or an output that cannot be replaced: refused
    existing = [n for n in names if (out_dir / n).exists()]
    if existing and not force:
        raise InputError(f"{out_dir}: outputs exist ({', '.join(existing)}); use --force to overwrite them")


def _check_model_features(clf: Any) -> None:
    """Refuse, before reading any packet, a model that needs features nta does not compute from captures."""
    unknown = [c for c in clf.spec.columns if c not in KDD_FEATURES]
    if unknown:
        raise ModelError(
            f"model {clf.model_id} expects features nta does not compute: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''} (a model for another feature spec)"
        )


def _aligned(flows: pl.DataFrame, kdd: pl.DataFrame) -> pl.DataFrame:
    """The 41 features in the flows' row order (joined on flow_id when the frame carries it)."""
    if "flow_id" in kdd.columns and not kdd["flow_id"].equals(flows["flow_id"]):
        kdd = flows.select("flow_id").join(kdd, on="flow_id", how="left", maintain_order="left")
    if kdd.height != flows.height:
        raise ValueError(f"KDD features have {kdd.height} rows for {flows.height} flows")
    return kdd.select(KDD_FEATURES)


def _predict(
    clf: Any, x: np.ndarray, batch_size: int, progress: Any, novelty: bool = False
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Class probabilities (n, K), computed once per distinct feature row, in chunks so the progress bar moves;
    with ``novelty``, also the gated class index (n,) and the novel flag (n,) (``Classifier.predict_gated``).

    Floods and scans repeat the same encoded row thousands of times (a SYN flood's flows differ only in
    addresses, which are not features), and inference is the slowest stage: deduplicating first makes
    attack-heavy captures cheap and costs one sort otherwise.
    """
    if len(x) == 0:
        empty = np.zeros((0, len(clf.classes)), np.float32)
        return empty, ((np.zeros(0, np.int64), np.zeros(0, bool)) if novelty else None)
    x = np.ascontiguousarray(x, dtype=np.float32)
    keys = x.view(np.dtype((np.void, x.itemsize * x.shape[1]))).ravel()  # (n,) one opaque key per row
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    xu = x[np.sort(first)]  # distinct rows in first-seen order, (u, F)
    order = np.argsort(np.argsort(first))  # unique-sorted index -> position in xu
    chunk = max(batch_size, 1)  # one progress step per batch: the bar moves every fraction of a second
    parts, preds, novels = [], [], []
    for start in range(0, len(xu), chunk):
        if novelty:
            pred, p, nov = clf.predict_gated(xu[start : start + chunk], batch_size=batch_size)
            preds.append(pred)
            novels.append(nov)
        else:
            p = clf.predict_proba(xu[start : start + chunk], batch_size=batch_size)
        parts.append(p)
        progress(min(start + chunk, len(xu)), len(xu))
    back = order[inverse.ravel()]  # (n,) row of xu for every flow
    proba_u = np.concatenate(parts).astype(np.float32)  # (u, K)
    if not novelty:
        return proba_u[back], None
    return proba_u[back], (np.concatenate(preds)[back], np.concatenate(novels)[back])


def _explain(
    clf: Any, x: np.ndarray, kdd: pl.DataFrame, v: pl.DataFrame, inc: pl.DataFrame, cfg: ScanConfig
) -> pl.DataFrame:
    """Add ``summary`` (one line) and ``reason`` (top features) to the incidents; the first N (the most severe,
    ``analyzer.incidents``' numbering, the ones the report shows first) are explained."""
    chosen = inc.sort("incident_id").head(cfg.explain_incidents)
    members = (
        v.with_row_index("row")
        .filter(pl.col("incident_id").is_in(chosen["incident_id"].implode()))
        .sort("ts", "flow_id")
        .select(pl.col("row").cast(pl.Int64), "incident_id")
    )
    labels = dict(zip(chosen["incident_id"].to_list(), chosen["label"].to_list(), strict=True))
    drivers = explain.explain_incidents(
        clf, clf.spec.source_feature, x, kdd, members, labels, per_incident=cfg.explain_flows, batch_size=cfg.batch_size
    )
    reason_type = pl.List(
        pl.Struct({"feature": pl.String, "value": pl.String, "score": pl.Float64, "number": pl.Float64})
    )
    reasons = [[d.__dict__ for d in drivers.get(i, [])] for i in inc["incident_id"]]
    summaries = [incidents.describe(r) for r in inc.iter_rows(named=True)]
    return inc.with_columns(summary=pl.Series(summaries, dtype=pl.String), reason=pl.Series(reasons, dtype=reason_type))


# The KDD feature named like a flow field but meaning something else: NSL-KDD's ``duration`` is whole seconds,
# the flow's ``duration_s`` real ones. In flows.parquet it is ``kdd_duration``; only the KDD feature table
# (``nta features``) calls it ``duration``.
KDD_RENAMED = {"duration": "kdd_duration"}


def _flows_table(ext: Any, kdd: pl.DataFrame, model_id: str, verdict: pl.DataFrame | None = None) -> Any:
    """The flow table as extracted (FLOW_SCHEMA types) plus the KDD features (``KDD_RENAMED``) and each flow's
    verdict (``label``, ``confidence``, ``incident_id``), with ``nta flows``' metadata: one file to query, no join.

    ``land``, ``wrong_fragment`` and ``urgent`` are flow fields and KDD features with the same values; the flow
    field stays (so ``features.flows.table.read_flows`` reads this file) and is not repeated.
    """
    from features.flows.table import flow_metadata

    table = ext.flows
    for name in KDD_FEATURES:
        if name not in table.column_names:
            table = table.append_column(KDD_RENAMED.get(name, name), kdd[name].to_arrow())
    if verdict is not None:
        for name in ("label", "confidence", "incident_id"):
            table = table.append_column(name, verdict[name].to_arrow())
    return table.replace_schema_metadata({**flow_metadata(ext), b"nta.model_id": model_id.encode()})


def _write_outputs(result: ScanResult, kdd: pl.DataFrame, ext: Any, flows: pl.DataFrame, zeek: str = "") -> None:
    """Every output into a new folder, which then replaces the output folder in one step (``atomic_folder``):
    the outputs change together or none does; on any failure nothing is left behind.

    ``zeek`` ("tsv" or "json"): conn.log and nta.log (``features.flows.zeek``) join the outputs.
    """
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    with atomic_folder(result.out_dir, tuple(result.outputs)) as folder:
        table = _flows_table(ext, kdd, result.model_id, result.verdicts)
        with open(folder / "flows.parquet", "wb") as fh:  # a file object: pyarrow cannot encode non-UTF-8 names
            pq.write_table(table, fh, compression="zstd")
        verdicts.write_csv(result.verdicts, folder / "verdicts.csv")
        from analyzer.alerts import write_alerts

        result.alerts = write_alerts(
            folder / "alerts.ndjson", result.verdicts, result.incidents, result.alert_confidence, flows
        )
        if zeek:
            from features.flows import zeek as zk

            uid = getattr(ext, "uids", None)  # a Zeek log's own uids, so nta.log joins with the team's logs
            zk.write_log(zk.CONN_LOG, zk.conn_frame(flows, uid), folder / "conn.log", json=zeek == "json")
            nta = zk.nta_frame(flows, result.verdicts, result.classes, uid)
            zk.write_log(zk.nta_log(result.classes), nta, folder / "nta.log", json=zeek == "json")
        result.seconds["writing"] = time.perf_counter() - t0  # so far: report.json itself is small
        result.summary = to_json(result)
        (folder / "report.json").write_text(json.dumps(result.summary, indent=2, default=str) + "\n")
        from analyzer.html import render_html

        (folder / "report.html").write_text(render_html(json.loads(json.dumps(result.summary, default=str))))
