"""``nta scan --engine ray``: the default engine's outputs, computed on a Ray cluster (local, or ``--address``).

Ray is an optional extra (``pip install 'nta[ray]'``); this module imports it only when a scan asks for it.
The work is split where the result can be put back together exactly:

1. **Decoding, per file** (tasks): each capture is decoded and its packets split into shards by host pair
   (``features.flows.shard``); what the file held (records, damage, sha256, last timestamp) comes back to the
   driver, which joins rotated files into streams as the default engine does (``features.capture.streams``).
2. **Flows, per stream and shard** (tasks): every packet of a host pair is in one shard, so a builder per
   shard, fed its files in stream order, builds exactly the flows one builder would.
3. **Order, on the driver**: the flows' sort keys (start time, stream, flow key) give every flow its
   ``flow_id``; the driver holds these keys (about 100 bytes a flow), not the flows.
4. **Per-flow features, per shard** (tasks): intrinsic and content features, and the window features' inputs
   with each record's position in window order.
5. **Window sums, by responder host and by service** (tasks; ``features.kdd.windows.host_sums`` /
   ``srv_sums``): every sum of a record counts only records with its responder host (or its service), within
   2 s of its start or among the 256 records up to it by position, so a part holding every record of its hosts
   (services), with their positions, sums exactly what the whole table would. Each record also carries its
   session (its stream, ``features.kdd.windows.Sessions``, numbered by the driver over the whole order) and its
   position is its place in that session (``positions``): the keys are per session, as in the default engine,
   so a record's windows count only its own session's records, and positions within a session are exact.
6. **Scoring, per chunk of flow ids** (actors, each loading the model once; one GPU each when the cluster has
   GPUs): the features put together, encoded, classified, the verdict rows built.

The driver receives the chunks in order and writes them as the default engine does (flows.parquet row
groups, the verdict rows spilled for verdicts.csv, the report's tallies), so the outputs are the same files.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from features.common import InputError, ProgressFn, path_text

INSTALL = "pip install 'nta[ray]'"


@dataclass(frozen=True)
class RayJob:
    """What the Ray engine needs from the scan's options."""

    model_dir_checked: Path
    batch_size: int
    novelty: bool
    merge: bool
    chunk_flows: int
    ray_address: str | None = None
    flow_config: Any = None  # features.flows.builder.FlowConfig (default timeouts when None)
    decap: bool = True  # decapsulate tunnels (features.capture.tunnels), as the default engine does
    packet_filter: Any = None  # features.capture.filter.PacketFilter (--since/--until/--host/--port)
    limits: Any = None  # features.capture.stream.ReadLimits (--max-bytes, --max-inflate); the default when None


def require_ray() -> Any:
    """The ``ray`` module, or an ``InputError`` (exit 2) with the install command."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--engine ray needs Ray, an optional extra: {INSTALL}") from None
    return ray


def scan(
    paths: list[Path],
    config: Any,
    engine: Any,
    progress: ProgressFn,
    on_start: Any,
) -> Any:
    """Scan ``paths`` on Ray; every finished chunk goes to ``engine.put_done`` in table order. Returns what was
    read (``features.flows.extract.Extraction`` without the table). ``config``: ``RayJob``."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=config.ray_address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            configure_logging=False,
        )
    try:
        return _scan(ray, paths, config, engine, progress, on_start)
    finally:
        if started:
            ray.shutdown()


def _scan(ray: Any, paths: list[Path], config: Any, engine: Any, progress: ProgressFn, on_start: Any) -> Any:
    from features.capture.source import PacketSource
    from features.capture.streams import Stream, StreamJoiner
    from features.flows.builder import DEFAULT_CONFIG
    from features.flows.extract import Extraction, number_flows
    from features.flows.schema import FLOW_SCHEMA
    from features.kdd.windows import Sessions, positions

    tasks = _remote(ray)
    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    shards = max(2, cpus)
    from features.capture.source import is_stream

    for p in paths:
        if is_stream(Path(p)):  # read once by this process: a worker elsewhere cannot open it
            raise InputError(f"{p}: --engine ray reads files the workers can open, not a pipe or standard input")
    from features.capture.stream import DEFAULT_LIMITS

    limits = config.limits or DEFAULT_LIMITS
    sources = [
        PacketSource(Path(p), decap=config.decap, packet_filter=config.packet_filter, limits=limits) for p in paths
    ]
    starts = [s.peek() for s in sources]  # opened (validated) here first
    decoded = [
        tasks["decode"]
        .options(num_returns=shards + 1)
        .remote(str(s.path), shards, config.decap, config.packet_filter, limits)
        for s in sources
    ]
    on_start()  # the driver's own model (explanations) is built while the cluster decodes
    total = len(decoded) + 1
    for i, meta in enumerate(ray.get([d[0] for d in decoded])):
        if isinstance(meta, str):  # the worker's one-line InputError (a size guard, damage past the header)
            raise InputError(meta)
        sources[i].adopt(meta)
        progress(i + 1, total)

    # Streams, as the default engine joins files (first timestamps; last ones from decoding).
    joiner = StreamJoiner((config.flow_config or DEFAULT_CONFIG).longest_idle_ns)
    if config.merge:  # every file in one stream, merged by time
        joiner.streams = [Stream(0, files=joiner.order(starts))]
    else:
        for i in joiner.order(starts):
            st = joiner.assign(i, sources[i].path, *starts[i])
            StreamJoiner.read(st, sources[i].ts_last)
    built = []  # (flows ref, payloads ref, keys ref) per stream and shard
    for st in joiner.streams:
        names = [path_text(sources[i].path) for i in st.files]
        first = [starts[i][0] for i in st.files]
        for s in range(shards):
            parts = [decoded[i][1 + s] for i in st.files]
            built.append(
                tasks["flows"]
                .options(num_returns=3)
                .remote(
                    names,
                    [sources[i].sha256 for i in st.files],
                    config.flow_config or DEFAULT_CONFIG,
                    config.merge,
                    first,
                    st.files[0],
                    s,
                    shards,
                    *parts,
                )
            )
    keys = pl.concat([k for k in ray.get([b[2] for b in built]) if k.height] or [ray.get(built[0][2])])
    ids = number_flows(keys)
    n_flows = ids.height
    size = max(1, config.chunk_flows)
    chunks = max(1, -(-n_flows // size))
    view = keys.join(ids, on=["_file", "_uid"]).sort("flow_id").select("flow_id", "ip_proto", "_file")
    rec = view.filter(pl.col("ip_proto").is_in([1, 6, 17, 58]))  # the records in window order
    # Each record's session (its stream, here _file) and its place in it, over the whole window order, as the
    # default engine numbers them chunk by chunk (features.kdd.windows.Sessions, positions).
    session = Sessions().number(rec.get_column("_file").to_numpy())
    n_sessions = int(session.max()) + 1 if len(session) else 1
    pos = rec.select(
        "flow_id",
        pl.Series("pos", positions(session, {}), dtype=pl.Int64),
        pl.Series("session", session, dtype=pl.Int64),
    )
    ids = ids.join(pos, on="flow_id", how="left")
    hosts = services = max(1, cpus)

    # Per-flow features per shard, cut into the chunks of flow ids, and the window inputs shuffled.
    featured = []
    keys_of = [st.files[0] for st in joiner.streams for _ in range(shards)]  # built's order: stream, then shard
    for n, (flows_ref, pays_ref, _) in enumerate(built):
        mine = (pl.col("_file") == keys_of[n]) & ((pl.col("_uid") % shards) == n % shards)
        shard_ids = ids.filter(mine)
        featured.append(
            tasks["features"]
            .options(num_returns=chunks + hosts + services)
            .remote(flows_ref, pays_ref, ray.put(shard_ids), size, chunks, hosts, services)
        )
    host_parts = [
        tasks["host_sums"].options(num_returns=chunks).remote(size, chunks, *[f[chunks + q] for f in featured])
        for q in range(hosts)
    ]
    srv_parts = [
        tasks["srv_sums"].options(num_returns=chunks).remote(size, chunks, *[f[chunks + hosts + q] for f in featured])
        for q in range(services)
    ]
    host_parts = [_as_list(h, chunks) for h in host_parts]
    srv_parts = [_as_list(s, chunks) for s in srv_parts]
    featured = [_as_list(f, chunks + hosts + services) for f in featured]

    # Scoring actors, one per GPU, else one per two CPUs; chunks complete in order.
    n_actors = gpus if gpus else max(1, cpus // 2)
    opts: dict[str, Any] = {"num_gpus": 1} if gpus else {"num_cpus": 0}
    model = {
        "model_dir": str(config.model_dir_checked),
        "device": "cuda" if gpus else "cpu",
        "batch_size": config.batch_size,
        "novelty": config.novelty,
    }
    actors = [
        tasks["Scorer"].options(scheduling_strategy="SPREAD", **opts).remote(model)
        for _ in range(min(n_actors, chunks))
    ]
    pending: list[Any] = []
    for c in range(chunks):
        refs = [f[c] for f in featured] + [h[c] for h in host_parts] + [s[c] for s in srv_parts]
        pending.append(actors[c % len(actors)].score.remote(len(featured), len(host_parts), *refs))
    for c, ref in enumerate(pending):
        table, verdict_rows, unknown = ray.get(ref)
        pending[c] = None  # the driver keeps one chunk at a time
        engine.put_done(table, verdict_rows, unknown)
        progress(len(decoded) + (c + 1) / chunks, total)
    for a in actors:
        ray.kill(a)

    bad: Counter[str] = Counter()
    warnings: list[str] = []
    info = []
    for src in sources:
        bad.update(src.bad)
        warnings.extend(src.warnings)
        info.append(src.info())
    how = "merged" if config.merge else "joined"
    streams = [
        {"files": [path_text(sources[i].path) for i in st.files], "how": "single" if len(st.files) == 1 else how}
        for st in sorted(joiner.streams, key=lambda st: st.files[0])
    ]
    return Extraction(
        flows=FLOW_SCHEMA.empty_table(),
        payloads=pl.DataFrame(),
        sources=info,
        bad_packets=dict(sorted(bad.items())),
        warnings=warnings,
        packets=sum(s.records for s in sources),
        filtered=sum(s.filtered for s in sources),
        streams=streams,
        sessions=n_sessions,
    )


def _as_list(refs: Any, n: int) -> list[Any]:
    """Ray returns one ref, not a list, when a task has one return value."""
    return [refs] if n == 1 else list(refs)


_REMOTE: dict[str, Any] = {}
_KDD = "_kdd_"  # prefix of the KDD features that share a flow column's name, between tasks


def _remote(ray: Any) -> dict[str, Any]:
    """The remote functions and the actor class, made once per process."""
    if not _REMOTE:
        _REMOTE.update(
            decode=ray.remote(_decode),
            flows=ray.remote(_flows),
            features=ray.remote(_features),
            host_sums=ray.remote(_host_sums),
            srv_sums=ray.remote(_srv_sums),
            Scorer=ray.remote(Scorer),
        )
    return _REMOTE


# ---------------------------------------------------------------------------------------------- worker side


def _decode(
    path: str, shards: int, decap: bool = True, packet_filter: Any = None, limits: Any = None
) -> tuple[Any, ...]:
    """(what the file held, then each shard's packets: a list of batches in capture order). When the file
    cannot be read to its end (a size guard, ``InputError``), its one-line message instead of what it held, so
    the driver says it as the default engine would rather than as a remote traceback."""
    from features.capture.source import PacketSource
    from features.capture.stream import DEFAULT_LIMITS
    from features.flows.shard import split_batch

    src = PacketSource(Path(path), decap=decap, packet_filter=packet_filter, limits=limits or DEFAULT_LIMITS)
    parts: list[list[Any]] = [[] for _ in range(shards)]
    try:
        for batch in src.batches():
            for s, part in enumerate(split_batch(batch, shards)):
                if len(part) or part.bad or part.records or s == 0:
                    parts[s].append(part)
    except InputError as e:
        return (str(e), *([] for _ in range(shards)))
    return (src.outcome(), *parts)


def _flows(
    names: list[str],
    shas: list[str],
    config: Any,
    merge: bool,
    starts: list[int | None],
    key: int,
    shard: int,
    shards: int,
    *parts: list[Any],
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """One stream's shard (``parts``: its packets from each file of the stream, in order): (flows, payloads,
    sort keys), ``_uid`` unique across shards (uid * shards + shard); ``shas``: the files' SHA-256, for uids."""
    from features.flows.extract import SORT_KEYS
    from features.flows.shard import build_shard
    from features.flows.uid import uids_by_source

    flows, pays = build_shard(list(parts), names, config, merge=merge, starts=starts)
    sha_of = dict(zip(names, shas, strict=True))
    flows = flows.with_columns(uids_by_source(flows, lambda n: sha_of.get(n, "")))
    uid = (pl.col("flow_id") * shards + shard).alias("_uid")
    flows = flows.with_columns(uid, pl.lit(key, pl.Int64).alias("_file")).drop("flow_id")  # numbered later
    pays = pays.with_columns(uid, pl.lit(key, pl.Int64).alias("_file")).drop("flow_id")
    return flows, pays, flows.select(*SORT_KEYS)


def _features(
    flows: pl.DataFrame, pays: pl.DataFrame, ids: pl.DataFrame, size: int, chunks: int, hosts: int, services: int
) -> tuple[pl.DataFrame, ...]:
    """A shard's flows numbered and featured: one frame per chunk of flow ids (flow columns + per-flow
    features), then its window inputs (with ``pos``) split by responder host, then by service."""
    from features.flows.schema import FLOW_COLUMNS
    from features.kdd.frame import IDENTITY_COLUMNS, flow_features, window_input
    from features.kdd.windows import WINDOW_COLUMNS, service_key

    flows = flows.join(ids.select("_file", "_uid", "flow_id", "pos", "session"), on=["_file", "_uid"]).sort("flow_id")
    pays = pays.join(ids.select("_file", "_uid", "flow_id"), on=["_file", "_uid"])
    pays = pays.select("flow_id", "ts_ns", "from_orig", "payload").sort("flow_id", "ts_ns")
    feats = flow_features(flows.select(FLOW_COLUMNS), pays)
    # land, wrong_fragment and urgent are flow columns and (as numbers) KDD features: both travel.
    kdd_part = feats.drop(IDENTITY_COLUMNS).rename(lambda c: _KDD + c if c in FLOW_COLUMNS else c)
    table = flows.select(FLOW_COLUMNS).hstack(kdd_part)
    chunk = pl.col("flow_id") // size
    out: list[pl.DataFrame] = [table.filter(chunk == c) for c in range(chunks)]
    win = (
        window_input(feats)
        .select("flow_id", *WINDOW_COLUMNS)
        .join(flows.select("flow_id", "pos", "session"), on="flow_id")
    )
    h = win.get_column("resp_h").hash(0) % hosts
    out += [win.filter(h == q) for q in range(hosts)]
    sk = win.select(service_key()).to_series().hash(0) % services
    out += [win.filter(sk == q) for q in range(services)]
    return tuple(out)


def _sums(size: int, chunks: int, parts: tuple[pl.DataFrame, ...], how: Any) -> tuple[pl.DataFrame, ...]:
    # window order within each session (keys never match across sessions, so their relative order does not matter)
    recs = pl.concat([p for p in parts if p.height] or [parts[0]]).sort("session", "pos")
    sums = how(recs).with_columns(recs.get_column("flow_id"))
    chunk = pl.col("flow_id") // size
    return tuple(sums.filter(chunk == c) for c in range(chunks)) if chunks > 1 else sums  # type: ignore[return-value]


def _host_sums(size: int, chunks: int, *parts: pl.DataFrame) -> tuple[pl.DataFrame, ...]:
    """HOST_SUMS of every record of some responder hosts (all shards' parts), per chunk of flow ids."""
    from features.kdd.windows import host_sums

    return _sums(size, chunks, parts, host_sums)


def _srv_sums(size: int, chunks: int, *parts: pl.DataFrame) -> tuple[pl.DataFrame, ...]:
    """SRV_SUMS of every record of some services (all shards' parts), per chunk of flow ids."""
    from features.kdd.windows import srv_sums

    return _sums(size, chunks, parts, srv_sums)


class Scorer:
    """A Ray actor holding the model: puts a chunk's features together, encodes and classifies it."""

    def __init__(self, model: dict[str, Any]) -> None:
        from model.scan_classifier import load_classifier

        # the default engine's classifier (numpy's on the CPU, torch's on a GPU): the same probabilities, bit for bit
        self.clf = load_classifier(Path(model["model_dir"]), device=model["device"])
        self.batch_size = int(model["batch_size"])
        self.novelty = bool(model["novelty"])

    def score(self, n_feat: int, n_host: int, *parts: pl.DataFrame) -> tuple[Any, pl.DataFrame, dict[str, int]]:
        """(flows.parquet rows, verdict rows, values outside the model's vocabularies) of one chunk."""
        from analyzer import verdicts
        from analyzer.outputs import flows_table
        from analyzer.scoring import predict
        from features.flows.schema import FLOW_COLUMNS
        from features.kdd.columns import KDD_FEATURES
        from features.kdd.frame import IDENTITY_COLUMNS, with_windows
        from features.kdd.windows import window_rates

        table = pl.concat([p for p in parts[:n_feat] if p.height] or [parts[0]]).sort("flow_id")
        host = pl.concat([p for p in parts[n_feat : n_feat + n_host] if p.height] or [parts[n_feat]])
        srv = pl.concat([p for p in parts[n_feat + n_host :] if p.height] or [parts[n_feat + n_host]])
        sums = host.join(srv, on="flow_id")
        win = window_rates(sums).with_columns(sums.get_column("flow_id"))
        kdd_cols = [c for c in table.columns if c not in FLOW_COLUMNS]
        feats = table.select(*IDENTITY_COLUMNS, *(pl.col(c).alias(c.removeprefix(_KDD)) for c in kdd_cols))
        kdd = with_windows(feats, win)
        flows = table.select(FLOW_COLUMNS)
        x, unknown = self.clf.spec.transform(kdd.select(KDD_FEATURES))
        proba, gated = predict(self.clf, x, self.batch_size, lambda d, t: None, self.novelty)
        v = verdicts.build_verdicts(flows, kdd.get_column("service"), proba, self.clf.classes, self.clf.model_id, gated)
        return flows_table(flows, kdd), v, {k: int(n) for k, n in unknown.items()}


__all__ = ["INSTALL", "RayJob", "require_ray", "scan"]
