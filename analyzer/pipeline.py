"""``run_scan``: the one place the stages are wired together. Returns data (``ScanResult``); never prints.

Order matters for the user: everything that can refuse the job (inputs, existing outputs, the model)
is checked before the first packet is read. The flows then stream through in chunks (features, encoding,
inference on a thread) and the outputs are written as they complete, into a new folder that replaces the
output folder in one step at the end (``features.common.atomic_folder``): a failure or Ctrl-C leaves no
partial output, and readers see the old outputs or all the new ones, never a mix. Memory follows the open
flows and a chunk, not the capture (``features.flows.extract.FlowStream``, ``analyzer.outputs``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from analyzer import evidence, explain, incident_sql, incidents, inputs, verdicts
from analyzer.allow import allowed, read_allow
from analyzer.outputs import KDD_RENAMED as KDD_RENAMED  # re-exported: flows.parquet's renamed KDD feature
from analyzer.outputs import FlowsWriter, ParquetRows, VerdictRows, as_members, finish_flows, flows_table, with_verdicts
from analyzer.progress import QuietStages, Stages
from analyzer.result import OUTPUT_NAMES, ZEEK_NAMES, ScanResult
from analyzer.scoring import predict as _predict
from analyzer.summary import TOP_FLOWS, TOP_TALKERS, to_json
from features.capture.filter import PacketFilter
from features.capture.source import is_stream
from features.capture.stream import DEFAULT_LIMITS, ReadLimits
from features.common import InputError, ModelError, atomic_folder, check_folder, output_lock
from features.kdd.columns import KDD_FEATURES, KDD_SCHEMA


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
    merge: bool = False  # files overlapping in time: one stream merged by time (else kept apart)
    chunk_flows: int = 16_384  # flows per chunk through features, inference and the outputs (memory, not results)
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

    engine: str = "local"  # "ray": analyzer.ray_engine (same outputs, computed on a Ray cluster)
    ray_address: str | None = None  # the Ray cluster to join (None: a local one)


def capture_stem(path: Path) -> str:
    """``demo.pcap.gz`` -> ``demo``: the default output folder's name (``stdin`` for ``-``)."""
    if str(path) == "-":
        return "stdin"
    name = path.name
    for suffix in (".gz", ".pcapng", ".pcap", ".cap", ".log", ".json", ".ndjson"):
        name = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    return name or "capture"


STAGES = ("model", "reading", "features", "encoding", "inference", "incidents", "explaining", "writing")
INFER_AHEAD = 2  # chunks waiting for (or in) inference while the next ones are read
# Chunks are joined before their features while the window features carry more than this many times the chunks
# waiting: each chunk's window sums run over every carried record again, and a flood at 1M flows/s carries the
# 2M flows of its last 2 s, so 16,384-flow chunks cost 125 carried records a flow (3M-flow flood: 266 s of
# features); joined, at most 9, or 16 with the cap. At most JOIN_CHUNKS_MAX chunks are joined: the flows waiting
# cost memory (1M-flow flood: +216 MiB). Ordinary traffic carries fewer records than a chunk holds: no joining.
JOIN_CHUNKS_BELOW = 8
JOIN_CHUNKS_MAX = 8


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 32 << 20


def steady_heap() -> None:
    """Buffers of 4 MiB and more (a chunk's arrays) get their own mappings, returned to the system when freed, and up
    to 32 MiB free at the heap's top is kept for the next inference batch, for as long as this process runs (glibc
    only; elsewhere nothing changes).

    glibc raises its mmap threshold each time such a buffer is freed, after which every chunk's buffers come
    from the heap and, freed in another order than they came, leave holes it cannot give back: over a 10M-packet
    scan the heap held 100-140 MiB of free memory (mallinfo2) and peak RSS kept growing with the capture.
    Fixed at 1 MiB, 6-10 MiB stayed free and the 10M scan peaked at 591 MiB instead of 686 MiB, but inference's
    per-batch tensors (1-2 MiB) were then mapped and unmapped each time: its CPU time doubled (1.3-1.9 s to
    3.3-3.8 s on the 1M capture). At 4 MiB they come from the heap again and the 10M scan peaks at 640 MiB.

    Fixing the mmap threshold also stops glibc's raising of its trim threshold (to twice the mmap threshold),
    which then stays at 128 KiB: each inference batch's tensors, freed at the top of the heap, were given back
    to the system and faulted in again on the next batch (280,000 page faults and 1.24 s of CPU for 87,762 flows
    on one thread, against 0.91 s without steady_heap). Up to ``TRIM_THRESHOLD`` of free memory at the top of
    the heap is kept for the next batch (0.9 s, almost no faults): a constant, not a share of the capture (1M
    packets: 6.57 -> 6.20 s end to end, peak RSS 574 -> 597 MiB; 10M: 634-638 -> 656-658 MiB).
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):  # not glibc (musl has no mallopt of this kind)
        pass


def run_scan(config: ScanConfig, stages: Stages | None = None) -> ScanResult:
    """Scan the captures, write the outputs, and return what was found (see the module docstring)."""
    from features.capture.source import TextStream, packet_span
    from features.flows.extract import FlowStream
    from model.files import check_model_files, default_model_dir

    stages = stages or QuietStages()
    steady_heap()
    seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)  # report order, whatever runs first
    cpu_seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    @contextlib.contextmanager
    def timed(name: str) -> Iterator[Any]:
        t0, c0 = time.perf_counter(), time.process_time()
        with stages.stage(name) as progress:
            yield progress
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        cpu_seconds[name] = cpu_seconds.get(name, 0.0) + time.process_time() - c0

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
            # The files are checked now: a bad model is refused before any packet is read. The network is built
            # once reading has started (torch's, where it is used, takes about 1.3 s to import): big captures are
            # read and their flows built in child processes (features.flows.extract.FlowStream.chunks) meanwhile.
            checked = check_model_files(config.model_dir or default_model_dir())
            _check_model_features(checked)
            if config.novelty and not checked.has_novelty:
                raise ModelError(
                    f"model {checked.model_id} has no novelty profile: --novelty needs one (nta train fits it)"
                )
        loaded: list[Any] = []

        def load_model() -> None:
            from model.scan_classifier import load_classifier  # numpy's network on the CPU, torch's otherwise

            t0, c0 = time.perf_counter(), time.process_time()
            loaded.append(load_classifier(checked.model_dir, config.device, config.threads))
            seconds["model"] += time.perf_counter() - t0
            cpu_seconds["model"] += time.process_time() - c0
            _warm_end()

        carved: dict[int, tuple[Path, int]] = {}
        try:
            with contextlib.ExitStack() as stack:
                # Every output is written into a new folder that replaces the output folder in one step at the end
                # (atomic_folder): the outputs change together or none does. flows.parquet's rows and the spilled
                # verdict rows are written there as the chunks stream past. With --no-write the same temporaries go
                # to a private folder that is removed at the end: nothing reaches the output folder.
                if config.write:
                    folder = stack.enter_context(atomic_folder(out_dir, (*OUTPUT_NAMES, *config.extra_outputs)))
                else:
                    import tempfile

                    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nta-scan-")))
                flows_path = folder / "flows.parquet"
                part = folder / ".flows.parquet.part"  # flows.parquet without incident ids, chunk by chunk
                spill = folder / ".verdicts.rows"  # removed before the folder is swapped in
                attack_spill = folder / ".attacks.rows"  # the attack rows' ATTACK_COLUMNS, read back at the end
                stack.callback(lambda: spill.unlink(missing_ok=True))
                stack.callback(lambda: part.unlink(missing_ok=True))
                stack.callback(lambda: attack_spill.unlink(missing_ok=True))
                engine = _Engine(config, loaded, part, spill, seconds, cpu_seconds, allow, attack_spill)
                stack.callback(engine.abort)  # on failure: the inference thread stops before temporaries go
                before, cpu_before = dict(seconds), dict(cpu_seconds)
                with timed("reading") as progress:
                    # Flows arrive in table order, chunk by chunk; each chunk's features, encoding and inference
                    # (on a thread) run while the next chunk is read; outputs are written as chunks complete.
                    zeek = None  # Zeek conn logs: their records are the flows, sorted out of core
                    if found.kind == "zeek":
                        zeek = _conn_stream(found.captures, progress, config, folder)
                    if zeek is None and config.engine == "ray":
                        from analyzer import ray_engine

                        job = ray_engine.RayJob(
                            checked.model_dir, config.batch_size, config.novelty, config.merge, config.chunk_flows,
                            config.ray_address, decap=config.decap, packet_filter=config.packet_filter,
                            limits=config.limits,
                        )  # fmt: skip
                        ext = ray_engine.scan(found.captures, job, engine, progress, load_model)
                    elif zeek is None:
                        try:
                            fs = FlowStream(
                                found.captures, progress=progress, merge=config.merge, on_start=load_model,
                                chunk_flows=config.chunk_flows, decap=config.decap, packet_filter=config.packet_filter,
                                limits=config.limits,
                            )  # fmt: skip
                        except TextStream as e:  # a Zeek conn log on a pipe (known by its first bytes)
                            copy, name = stack.enter_context(
                                spooled_pipe(e, list(found.captures), config.limits, folder)
                            )
                            zeek = _conn_stream([copy], progress, config, folder, [name])
                        else:
                            # A pipe (or standard input) is read once, here: a flow-building child could not reopen it.
                            piped = any(is_stream(Path(p)) for p in found.captures)
                            # closed on any failure: a flow-building child is stopped, not waited for at exit
                            with contextlib.closing(fs.chunks(forked=False if piped else None)) as chunks:  # type: ignore[type-var]
                                for chunk in chunks:
                                    engine.add(chunk)
                            engine.drain()
                            ext = fs.extraction()
                    if zeek is not None:
                        if config.carve:
                            raise InputError(
                                f"{found.captures[0]}: --carve needs packets, and a Zeek conn log has none"
                            )
                        load_model()
                        with contextlib.closing(zeek.chunks()) as chunks:  # the spool goes when they end or fail
                            for chunk in chunks:
                                engine.add(chunk)
                        engine.drain()
                        ext = zeek.extraction()
                # Time of the other stages inside the reading loop: this thread's (inference runs beside it, on its
                # own thread: its seconds overlap reading's, its CPU is the process's).
                seconds["reading"] -= sum(seconds[k] - before[k] for k in ("model", "features", "encoding", "writing"))
                cpu_seconds["reading"] -= sum(
                    cpu_seconds[k] - cpu_before[k] for k in ("model", "features", "encoding", "inference", "writing")
                )
                if not loaded:
                    load_model()
                clf = loaded[0]
                if config.strict and ext.warnings:
                    raise InputError(f"{ext.warnings[0]} (--strict turns capture warnings into errors)")
                engine.close()
                with timed("incidents"):
                    tally = engine.tally
                    tally.close()
                    # Every attack row is read by DuckDB from the spill and queried out of core (a flood makes every
                    # flow one): the scan holds the incidents and the rows the report names, not the attack rows.
                    store = stack.enter_context(incident_sql.Store(folder / ".incidents.tmp"))
                    store.load(attack_spill if tally.attack_rows else None, _empty_attacks(clf))
                    attack_spill.unlink(missing_ok=True)
                    inc, members = store.incidents(config.incidents)
                # flows.parquet (the streamed rows with their incident ids) is written on a thread while the incidents
                # are explained and the other outputs written, which read the same rows from the streamed part (only
                # incident_id differs; the part goes with the other temporaries). The pass over the incident ids
                # starts here: DuckDB's connection is not shared with another thread, only the pass's own cursor.
                stop_flows = threading.Event()
                flows_done = _Background(
                    engine.finish_flows, ext, clf.model_id, flows_path, as_members(members).cursor(), stop_flows,
                    name="nta-flows",
                )  # fmt: skip
                stack.callback(flows_done.join)  # on a failure, nothing is still writing when the temporaries go
                stack.callback(stop_flows.set)  # (callbacks run last first: told to stop, then waited for)
                flow_rows = stack.enter_context(ParquetRows(part, clf.spec))  # closed before the swap
                # The attack rows the report names: each incident's first LISTED_MEMBERS and its top flows' candidates
                att = store.rows(list(verdicts.ATTACK_COLUMNS), LISTED_MEMBERS, TOP_PER_INCIDENT)
                ranked = verdicts.top_flows(att, TOP_FLOWS, TOP_PER_INCIDENT)
                top_ids = ranked["flow_id"].to_numpy()
                # verdicts.csv and the flow alerts (one pass over the spilled verdict rows, which also keeps the top
                # flows' whole rows) on a thread too, while the incidents are explained: neither needs the other.
                # The incident alerts, which need the explanations, go first in alerts.ndjson (_finish_alerts).
                stop_rows = threading.Event()
                stack.callback(lambda: (folder / FLOW_ALERTS).unlink(missing_ok=True))  # (after the thread ends)
                rows_done = _Background(
                    _verdict_pass, engine.rows, as_members(members).cursor(), clf, config, folder if config.write else None,
                    top_ids, part, stop_rows, name="nta-verdicts",
                )  # fmt: skip
                stack.callback(rows_done.join)
                stack.callback(stop_rows.set)
                with timed("explaining"):
                    inc = _explain(clf, flow_rows, store, inc, config)
                listed = _listed_members(att)
                # Flow-table rows only for the flows the report names (its top flows, each incident's first flows):
                # the evidence of a flood of millions of flows is a few thousand rows.
                detail = flow_rows.flows(np.unique(np.concatenate([top_ids, listed["flow_id"].to_numpy()])))
                inc = _evidence_columns(inc, store, listed, detail)
                timelines = verdicts.Timeline(
                    clf.classes, (tally.ts_min, tally.ts_max), pl.Datetime("us", "UTC"), TIMELINE_BINS
                )
                for batch in store.batches(["ts", "label"]):
                    timelines.add(batch)
                talkers = store.top_talkers(TOP_TALKERS)
                suspicious_flows = store.suspicious()
                if config.carve:
                    with timed("carving") as progress:
                        ids = store.incident_rows(["flow_id", "incident_id"])
                        inc_members = evidence.incident_members(ids, flow_rows.flows(ids["flow_id"].to_numpy()))
                        carved = evidence.carve_incidents(
                            out_dir, list(found.captures), inc_members, inc, decap=config.decap, force=True,
                            progress=progress, streams=[list(st["files"]) for st in ext.streams],
                            spans={s["file"]: span for s in ext.sources if (span := packet_span(s)) is not None},
                        )  # fmt: skip
                        del inc_members, ids
                result = ScanResult(
                    out_dir=out_dir,
                    captures=list(ext.sources),
                    skipped=found.skipped,
                    packets=int(ext.packets),
                    bad_packets=dict(ext.bad_packets),
                    warnings=list(ext.warnings),
                    unknown_values={k: int(n) for k, n in engine.unknown.items() if n},
                    model_id=clf.model_id,
                    confirmers=len(clf.confirmers),
                    device=str(clf.device),
                    classes=tuple(clf.classes),
                    tally=tally,
                    attacks=att,
                    timelines=timelines,
                    talkers=talkers,
                    suspicious_flows=suspicious_flows,
                    incidents=inc,
                    seconds=seconds,
                    cpu_seconds=cpu_seconds,
                    fail_on=config.fail_on,
                    min_confidence=config.min_confidence,
                    matched=tally.matched,
                    novelty=config.novelty,
                    support=not config.novelty and checked.metadata.get("support") is not None,
                    streams=list(ext.streams),
                    sessions=ext.sessions if config.engine == "ray" and zeek is None else engine.kdd.sessions.count,
                    extra_outputs=config.extra_outputs,
                    filters=config.packet_filter.text if config.packet_filter is not None else (),
                    filtered_packets=int(ext.filtered),
                    allow_file=str(config.allow) if config.allow is not None else None,
                    allow_entries=len(allow),
                    decap=config.decap,
                    flow_table=detail,
                    ranked=ranked,
                    carved=carved,
                    written=config.write,
                    alert_confidence=config.alert_confidence,
                    input_kind=ext.kind,
                    unavailable_features=ext.unavailable,
                )
                with timed("writing"):
                    result.top_flows, flow_alerts = rows_done.result()
                    if not config.write:  # nothing on disk: the summary alone (printed by --out -)
                        _wait_for(flows_done, seconds)
                        result.summary = to_json(result)
                        return result
                    result.alerts = _finish_alerts(
                        folder, config, inc, _first_flows(att, detail, clf.model_id), flow_alerts
                    )
                    if config.zeek:
                        uids = getattr(ext, "uids", None)
                        _write_zeek(
                            folder, flow_rows, engine.rows, members, result, json_lines=config.zeek == "json", uids=uids
                        )
                    spill.unlink(missing_ok=True)
                    _wait_for(flows_done, seconds)
                    result.summary = to_json(result)  # "writing" in it: the time so far (report.json itself is small)
                    (folder / "report.json").write_text(json.dumps(result.summary, indent=2, default=str) + "\n")
                    from analyzer.html import render_html

                    (folder / "report.html").write_text(
                        render_html(json.loads(json.dumps(result.summary, default=str)))
                    )
        except BaseException:
            for path, _ in carved.values():  # nothing is left behind when the outputs cannot be written
                path.unlink(missing_ok=True)
            raise
        if carved and config.force:
            _remove_stale(carved_dir, {p for p, _ in carved.values()})
    return result


class _Engine:
    """Per chunk of flows: KDD features, encoding, inference on a worker thread (``INFER_AHEAD`` chunks in
    flight), then the verdict rows (counted in a ``Tally``, spilled for verdicts.csv) and flows.parquet's row
    group. Chunks complete in order."""

    def __init__(
        self,
        config: ScanConfig,
        loaded: list[Any],
        flows_path: Path,
        rows_path: Path,
        seconds: dict,
        cpu: dict,
        allow: list[Any] | None = None,
        attack_spill: Path | None = None,
    ) -> None:
        from features.kdd.frame import KddStream

        self.config = config
        self.allow = allow or []  # --allow entries (analyzer.allow): their flows are marked, not counted as matches
        self._loaded = loaded  # the classifier, once built (before the first chunk arrives)
        self.kdd = KddStream()
        self.flows_out = FlowsWriter(flows_path)
        self.rows = VerdictRows(rows_path)
        self.tally = verdicts.Tally(fail_on=config.fail_on, min_confidence=config.min_confidence, spill=attack_spill)
        self.unknown: dict[str, int] = {}
        self.seconds = seconds
        self.cpu = cpu  # CPU seconds per stage: this thread's, the inference thread's
        self._c = time.thread_time()
        self._todo: queue.Queue[Any] = queue.Queue(maxsize=INFER_AHEAD)
        self._done: queue.Queue[Any] = queue.Queue()
        self._inflight: list[tuple[pl.DataFrame, pl.Series, Any]] = []
        self._waiting: list[Any] = []  # chunks read, joined before their features (JOIN_CHUNKS_BELOW)
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()

    def _clf(self) -> Any:
        if not self._loaded:
            raise RuntimeError("flows arrived before the model was built")
        return self._loaded[0]

    def _timed(self, name: str, t0: float) -> float:
        t1, c1 = time.perf_counter(), time.thread_time()
        self.seconds[name] += t1 - t0
        self.cpu[name] += c1 - self._c
        self._c = c1
        return t1

    def add(self, chunk: Any) -> None:
        """One chunk of flows (``features.flows.extract.FlowChunk``), in table order; see ``JOIN_CHUNKS_BELOW``."""
        self._waiting.append(chunk)
        rows = sum(c.flows.height for c in self._waiting)
        if rows * JOIN_CHUNKS_BELOW < self.kdd.carried and len(self._waiting) < JOIN_CHUNKS_MAX:
            return
        chunks, self._waiting = self._waiting, []
        self._add(chunks[0] if len(chunks) == 1 else _joined(chunks))

    def _add(self, chunk: Any) -> None:
        clf = self._clf()
        t, self._c = time.perf_counter(), time.thread_time()
        kdd = self.kdd.add(
            chunk.flows,
            chunk.payloads,
            getattr(chunk, "service_hints", None),
            getattr(chunk, "stream_ids", None),
            getattr(chunk, "closed", ()),
        )
        t = self._timed("features", t)
        x, unknown = clf.spec.transform(kdd.select(KDD_FEATURES))  # (n, F) float32
        for k, n in unknown.items():
            self.unknown[k] = self.unknown.get(k, 0) + int(n)
        t = self._timed("encoding", t)
        if self._worker is None:
            self._worker = threading.Thread(target=self._infer, args=(clf,), name="nta-inference", daemon=True)
            self._worker.start()
        self._put(x)
        # flows.parquet's rows are built while the model runs, written with their verdicts (_complete)
        self._inflight.append((chunk.flows, kdd.get_column("service"), flows_table(chunk.flows, kdd)))
        self._timed("writing", t)
        self._complete(block=len(self._inflight) > INFER_AHEAD)

    def _put(self, x: np.ndarray) -> None:
        while True:
            try:
                self._todo.put(x, timeout=0.1)
                return
            except queue.Full:
                self._complete(block=False)  # make room: results are waiting

    def _infer(self, clf: Any) -> None:
        """Worker thread: chunks' probabilities in order (or the exception that stopped it)."""
        while not self._stop.is_set():
            try:
                x = self._todo.get(timeout=0.1)
            except queue.Empty:
                continue
            if x is None:
                return
            try:
                t0, c0 = time.perf_counter(), time.thread_time()
                out = _predict(clf, x, self.config.batch_size, lambda d, t: None, self.config.novelty)
                self._done.put((out, time.perf_counter() - t0, time.thread_time() - c0))
            except BaseException as e:  # raised in the main thread
                self._done.put(e)
                return

    def _wait(self) -> Any:
        """The next result, waited for in short steps: a wait without a timeout is not ended by a signal's
        handler here (SIGINT/SIGTERM must stop the scan while inference runs)."""
        while True:
            try:
                return self._done.get(timeout=0.1)
            except queue.Empty:
                continue

    def _complete(self, block: bool) -> None:
        """Finish the chunks whose inference is done (wait for the oldest when ``block``)."""
        clf = self._clf()
        while self._inflight:
            try:
                got = self._wait() if block else self._done.get_nowait()
            except queue.Empty:
                return
            block = False
            if isinstance(got, BaseException):
                raise got
            (proba, gated), took, cpu = got
            self.seconds["inference"] += took
            self.cpu["inference"] += cpu
            flows, service, table = self._inflight.pop(0)
            t, self._c = time.perf_counter(), time.thread_time()
            v = verdicts.build_verdicts(flows, service, proba, clf.classes, clf.model_id, gated)
            if self.allow:
                v = v.with_columns(allowed(flows, self.allow))
            self._write(table, v, t)

    def put_done(self, table: Any, v: pl.DataFrame, unknown: dict[str, int]) -> None:
        """A chunk finished elsewhere (``analyzer.ray_engine``): its flows.parquet rows and verdict rows."""
        t, self._c = time.perf_counter(), time.thread_time()
        for k, n in unknown.items():
            self.unknown[k] = self.unknown.get(k, 0) + int(n)
        if self.allow:
            v = v.with_columns(allowed(v, self.allow))  # the verdict rows carry the columns allow entries test
        self._write(table, v, t)

    def _write(self, table: Any, v: pl.DataFrame, t: float) -> None:
        """A finished chunk to the outputs: flows.parquet's rows with their verdicts, the report's tally, the
        spilled verdict rows (``t``: when this thread's work on the chunk began)."""
        self.flows_out.write(with_verdicts(table, v))
        self.tally.add(v)
        self.rows.write(v)
        self._timed("writing", t)

    def drain(self) -> None:
        """Wait for every chunk in flight."""
        if self._waiting:
            chunks, self._waiting = self._waiting, []
            self._add(chunks[0] if len(chunks) == 1 else _joined(chunks))
        while self._inflight:
            self._complete(block=True)
        if self._worker is not None:
            self._todo.put(None)
            self._worker.join()
            self._worker = None

    def close(self) -> None:
        """Close the streamed files (flows.parquet's rows without incident ids, the spilled verdict rows)."""
        from features.kdd.frame import kdd_features

        clf = self._clf()
        empty = _empty_flows()
        v = verdicts.build_verdicts(
            empty,
            pl.Series([], dtype=pl.String),
            np.zeros((0, len(clf.classes)), np.float32),
            clf.classes,
            clf.model_id,
        )
        self.flows_out.close({}, with_verdicts(flows_table(empty, kdd_features(empty)), v))
        self.rows.close()
        self.tally.close()

    def finish_flows(
        self, ext: Any, model_id: str, path: Path, members: Any, stop: threading.Event | None = None
    ) -> float:
        """flows.parquet at ``path``: the streamed rows with their incident ids (``members``) and the metadata
        (what reading learnt, the model id); the streamed file stays (its owner removes it). Returns the seconds
        it took."""
        from features.flows.table import flow_metadata

        t0 = time.perf_counter()
        meta = {**flow_metadata(ext), b"nta.model_id": model_id.encode()}
        finish_flows(self.flows_out.path, path, members, meta, stop)
        return time.perf_counter() - t0

    def abort(self) -> None:
        """After a failure: stop the worker and close the files (their owners remove them)."""
        self._stop.set()
        if self._worker is not None:
            # A short wait only: the worker writes nothing (it computes probabilities), and one stopped inside
            # a long batch (or paused) must not hold up a signal's exit; it is a daemon thread.
            self._worker.join(timeout=0.5)
        # Each file is closed whatever the others do: on a full disk finishing a stream fails again, and the
        # failure being handled is the one to report.
        for close in (self.flows_out.abort, self.rows.close, self.tally.close):
            with contextlib.suppress(OSError):
                close()


def _joined(chunks: list[Any]) -> Any:
    """Consecutive ``FlowChunk``s as one."""
    from features.flows.extract import FlowChunk, stream_ids_of

    hints = [c.service_hints for c in chunks]
    return FlowChunk(
        flows=pl.concat([_frame(c.flows) for c in chunks]),
        payloads=pl.concat([c.payloads for c in chunks]),
        service_hints=None if any(h is None for h in hints) else pl.concat(hints),
        stream_ids=stream_ids_of(chunks),
        closed=tuple(k for c in chunks for k in getattr(c, "closed", ())),
    )


def _frame(flows: Any) -> pl.DataFrame:
    out = flows if isinstance(flows, pl.DataFrame) else pl.from_arrow(flows)
    assert isinstance(out, pl.DataFrame)
    return out


def _empty_flows() -> pl.DataFrame:
    from features.kdd.frame import empty_flows

    return empty_flows()


def _write_zeek(
    folder: Path,
    rows: ParquetRows,
    spilled: VerdictRows,
    members: Any,
    result: ScanResult,
    json_lines: bool,
    uids: pl.DataFrame | None = None,
) -> None:
    """conn.log and nta.log (``features.flows.zeek``), chunk by chunk: each chunk of verdict rows (with its
    incidents) beside its flows read back from flows.parquet."""
    from features.flows import zeek as zk

    opened = result.tally.ts_min  # the first flow's start: Zeek's #open
    with (
        zk.LogWriter(zk.CONN_LOG, folder / "conn.log", json=json_lines, opened=opened) as conn,
        zk.LogWriter(zk.nta_log(result.classes), folder / "nta.log", json=json_lines, opened=opened) as nta,
    ):
        for v in spilled.joined(members, verdicts.verdict_columns(result.classes)):
            flows = rows.flows(v["flow_id"].to_numpy())
            # the Zeek log's uid where the flow's is nta's (Extraction.uids), so nta.log joins with the team's logs
            uid = None
            if uids is not None and uids.height:
                uid = v.select("flow_id").join(uids, on="flow_id", how="left", maintain_order="left")["uid"]
            conn.write(zk.conn_frame(flows, uid))
            nta.write(zk.nta_frame(flows, v, result.classes, uid))


def read_flows_of(
    found: inputs.Inputs, progress: Any, decap: bool = True, packet_filter: Any = None, **capture: Any
) -> Any:
    """The flows of what ``inputs.discover`` found: built from packets, or read from Zeek conn logs (files, or one
    piped in: ``zcat conn.*.log.gz | nta flows -``). ``capture``: more options of ``extract_flows``."""
    from features.capture.source import TextStream
    from features.zeeklog.stream import read_conn_logs

    limits = capture.get("limits", DEFAULT_LIMITS)
    if found.kind == "zeek":
        return read_conn_logs(found.captures, progress, packet_filter=packet_filter, limits=limits)
    from features.flows.extract import extract_flows

    try:
        return extract_flows(found.captures, progress=progress, decap=decap, packet_filter=packet_filter, **capture)
    except TextStream as e:
        with spooled_pipe(e, found.captures, limits) as (spool, name):
            return read_conn_logs([spool], progress, packet_filter=packet_filter, limits=limits, names=[name])


def _conn_stream(
    paths: list[Path], progress: Any, config: ScanConfig, folder: Path, names: list[str] | None = None
) -> Any:
    """The scan's ``ConnStream`` of Zeek conn logs: its spool and DuckDB's spill in the output folder (removed
    with the chunks), where the outputs go."""
    from features.zeeklog.stream import ConnStream

    return ConnStream(
        paths, progress, packet_filter=config.packet_filter, limits=config.limits, chunk_flows=config.chunk_flows,
        names=names, spool_dir=folder,
    )  # fmt: skip


@contextlib.contextmanager
def spooled_pipe(
    e: Any, paths: list[Path], limits: ReadLimits, where: Path | None = None
) -> Iterator[tuple[Path, str]]:
    """A Zeek log on a pipe or standard input (``e``: the ``TextStream`` its first bytes raised) copied to a file
    (the reader reads a file by blocks and by name, twice) in a private folder inside ``where`` (default: the
    system's temporary folder), removed at the end of the block: (the file, the name of the stream it came from)."""
    import tempfile

    name = str(e).split(": ", 1)[0]
    if len(paths) != 1:
        e.stream.close()
        raise InputError(f"{name}: a Zeek log on a pipe is read alone: give the other logs as files") from None
    with tempfile.TemporaryDirectory(prefix="nta-zeek-", dir=where) as tmp:
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
        yield spool, name


# An incident's uids and Community IDs in report.json are those of its first flows, at most this many: a flood's
# millions would make report.json gigabytes. Every member is in flows.parquet and verdicts.csv (incident_id).
LISTED_MEMBERS = 10_000
TOP_PER_INCIDENT = 2  # top flows from one incident at most (verdicts.top_flows)
TIMELINE_BINS = tuple(range(10, 61))  # the report's timeline has 10 to 60 bins, by the terminal's width


def _empty_attacks(clf: Any) -> pl.DataFrame:
    """The attack rows' columns (``verdicts.ATTACK_COLUMNS`` but the incident id), and no row."""
    return verdicts.build_verdicts(
        _empty_flows(), pl.Series([], dtype=pl.String), np.zeros((0, len(clf.classes)), np.float32),
        clf.classes, clf.model_id,
    ).select(verdicts.ATTACK_COLUMNS).drop("incident_id")  # fmt: skip


def _listed_members(att: pl.DataFrame) -> pl.DataFrame:
    """``flow_id``, ``incident_id``, ``ts`` of each incident's first ``LISTED_MEMBERS`` flows."""
    return (
        verdicts.where(att.select("flow_id", "incident_id", "ts"), pl.col("incident_id").is_not_null())
        .sort("ts", "flow_id")
        .group_by("incident_id", maintain_order=True)
        .head(LISTED_MEMBERS)
    )


def _evidence_columns(
    inc: pl.DataFrame, store: incident_sql.Store, listed: pl.DataFrame, detail: pl.DataFrame
) -> pl.DataFrame:
    """Each incident's Wireshark display filter (``analyzer.evidence``, from all its flows), and the uids and
    Community IDs of its first ``LISTED_MEMBERS`` flows (``listed``; their flow-table rows are in ``detail``)."""
    listed = listed.join(detail.select("flow_id", "uid", "community_id", "ip_proto"), on="flow_id", how="left")
    listed = listed.sort("ts", "flow_id")
    first_ip = dict(
        listed.sort("flow_id")
        .group_by("incident_id", maintain_order=True)
        .first()
        .select("incident_id", "ip_proto")
        .iter_rows()
    )
    filters = evidence.filters_from(store.filter_aggregates(evidence.MAX_SET, evidence.MAX_PORTS), first_ip)
    by_incident = {k[0]: g for k, g in listed.group_by("incident_id")} if listed.height else {}
    cids, uids = [], []
    for i in inc["incident_id"].to_list():
        g = by_incident.get(i)
        cids.append(g["community_id"].unique(maintain_order=True).to_list() if g is not None else [])
        uids.append(g["uid"].to_list() if g is not None else [])
    return inc.with_columns(
        wireshark_filter=pl.Series([filters.get(i, "") for i in inc["incident_id"].to_list()], dtype=pl.String),
        community_ids=pl.Series(cids, dtype=pl.List(pl.String)),
        uids=pl.Series(uids, dtype=pl.List(pl.String)),
    )


def _first_flows(att: pl.DataFrame, detail: pl.DataFrame, model_id: str) -> pl.DataFrame:
    """Each incident's first flow with the columns its alert's tuple needs (``analyzer.alerts.first_flows``)."""
    from analyzer.alerts import first_flows

    first = first_flows(att.select("flow_id", "ts", "label", "allowed", "incident_id"))
    cols = ["flow_id", "uid", "community_id", "orig_h", "orig_p", "resp_h", "resp_p", "proto", "icmp_type", "icmp_code"]
    return first.join(detail.select(cols), on="flow_id", how="left", maintain_order="left").with_columns(
        model_id=pl.lit(model_id, pl.String)
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


FLOW_ALERTS = ".alerts.flows"  # the flow alerts, written beside verdicts.csv; alerts.ndjson ends with them


def _verdict_pass(
    rows: VerdictRows,
    members: Any,
    clf: Any,
    config: ScanConfig,
    folder: Path | None,
    keep: np.ndarray,
    part: Path,
    stop: threading.Event,
) -> tuple[pl.DataFrame | None, int]:
    """Thread: verdicts.csv and the flow alerts (to ``FLOW_ALERTS``) in ``folder`` (None: neither, --no-write) from
    one pass over the spilled verdict rows, with their incident ids from ``members`` (a pass already started);
    returns the rows of the flows ``keep`` (the report's top flows) and the number of flow alerts. Reads the
    ICMP columns from the streamed ``part`` through its own handle (the scan's thread reads it meanwhile)."""
    from analyzer.alerts import AlertWriter

    columns = verdicts.verdict_columns(clf.classes)
    if folder is None:
        return rows.finish(members, columns, keep=keep, stop=stop), 0
    with ParquetRows(part, clf.spec) as own:
        alerts = AlertWriter(folder / FLOW_ALERTS, config.alert_confidence)
        try:
            kept = rows.finish(
                members, columns, csv=folder / "verdicts.csv", alerts=alerts, keep=keep,
                icmp=lambda ids: own.read(ids, ["icmp_type", "icmp_code"]), stop=stop,
            )  # fmt: skip
        finally:
            alerts.close()
    return kept, alerts.events


def _finish_alerts(folder: Path, config: ScanConfig, inc: pl.DataFrame, first: pl.DataFrame, flow_alerts: int) -> int:
    """alerts.ndjson: the incident alerts (explained by now), then the flow alerts ``_verdict_pass`` wrote; returns
    the number of events."""
    from analyzer.alerts import AlertWriter

    alerts = AlertWriter(folder / "alerts.ndjson", config.alert_confidence)
    try:
        alerts.begin(inc, first)
        alerts.extend(folder / FLOW_ALERTS, flow_alerts)
    finally:
        alerts.close()
    (folder / FLOW_ALERTS).unlink()
    return alerts.events


def _warm_end() -> None:
    """Import what only the end of the scan uses (DuckDB, the alert and HTML writers) and set DuckDB up once, while
    the reader works (``load_model`` runs then): on the 1M capture, where every flow comes at the end of reading,
    these took ~60 ms after the last chunk, when nothing else could run (DuckDB's import 38 ms, its first database
    13 ms more than a later one, the writers 7 ms)."""
    import duckdb

    for name in ("analyzer.alerts", "analyzer.html", "features.flows.table"):
        importlib.import_module(name)
    duckdb.connect().close()


def _wait_for(flows_done: _Background, seconds: dict[str, float]) -> None:
    """flows.parquet written (its error raised here); the time it took counts as writing's."""
    seconds["writing"] += flows_done.result()


class _Background:
    """``fn(*args)`` on a daemon thread; ``result()`` waits and returns its value or raises its exception."""

    def __init__(self, fn: Any, *args: Any, name: str) -> None:
        self._out: list[Any] = []
        self._err: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(fn, *args), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Any, *args: Any) -> None:
        try:
            self._out.append(fn(*args))
        except BaseException as e:  # handed to the caller of result()
            self._err.append(e)

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._err:
            raise self._err[0]
        return self._out[0]


def _check_model_features(clf: Any) -> None:
    """Refuse, before reading any packet, a model that needs features nta does not compute from captures."""
    unknown = [c for c in clf.spec.columns if c not in KDD_FEATURES]
    if unknown:
        raise ModelError(
            f"model {clf.model_id} expects features nta does not compute: {', '.join(unknown[:5])}"
            f"{' ...' if len(unknown) > 5 else ''} (a model for another feature spec)"
        )


def _explain(
    clf: Any, rows: ParquetRows, store: incident_sql.Store, inc: pl.DataFrame, cfg: ScanConfig
) -> pl.DataFrame:
    """Add ``summary`` (one line) and ``reason`` (top features) to the incidents; the largest N are explained.

    ``store``: the attack rows with ``incident_id``; ``rows``: the flows' features by row number (=
    ``flow_id``), read back from flows.parquet for the flows the explanations need.
    """
    chosen = inc.sort("incident_id").head(cfg.explain_incidents)
    # the rows to attribute, sampled by a query; the typical values asked of every member out of core
    members = store.sampled(chosen, cfg.explain_flows)
    members = members.select(pl.col("flow_id").cast(pl.Int64).alias("row"), "incident_id")

    def typical(asked: dict[int, list[str]]) -> dict[tuple[int, str], tuple[str, float | None]]:
        return store.typical(asked, rows.columns_reader, lambda name: KDD_SCHEMA[name] == pl.String)

    labels = dict(zip(chosen["incident_id"].to_list(), chosen["label"].to_list(), strict=True))
    drivers = explain.explain_rows(
        clf, clf.spec.source_feature, rows, members, labels, per_incident=cfg.explain_flows, batch_size=cfg.batch_size,
        typical=typical,
    )  # fmt: skip
    reason_type = pl.List(
        pl.Struct({"feature": pl.String, "value": pl.String, "score": pl.Float64, "number": pl.Float64})
    )
    reasons = [[d.__dict__ for d in drivers.get(i, [])] for i in inc["incident_id"]]
    summaries = [incidents.describe(r) for r in inc.iter_rows(named=True)]
    return inc.with_columns(summary=pl.Series(summaries, dtype=pl.String), reason=pl.Series(reasons, dtype=reason_type))
