"""The end of a scan out of core: incidents (``analyzer.incidents``' rules as SQL) and everything else the end of a
scan reads from every attack row, queried where the attack rows lie on disk.

A flood of spoofed one-packet flows makes every flow an attack row and every row its own originator, so grouping
them in memory holds every row and a code per row for each of the rules' keys (~200 bytes a flow at 10M flows).
DuckDB runs the same rules (window counts, distinct counts, gap sessions, per-session aggregates) with partitioned
hash tables and sorts that spill to a folder once its ``memory_limit`` is reached: memory is set by that limit,
not by the number of attack rows (10M spoofed flows grouped in 540 MB and 38 s on this 2-core machine, in a
trial). The rules and their order are ``analyzer.incidents``' own; ``find_incidents`` there states them over
polars frames, and a test holds every query here to the polars statement it answers for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import polars as pl

from analyzer.explain import sample_rows, typical_median
from analyzer.incidents import IncidentConfig, _empty_incidents, numbered
from analyzer.outputs import BatchCursor
from analyzer.verdicts import NORMAL
from features.common import more_memory, spilling_duckdb

MEMORY_LIMIT = "256MB"  # DuckDB's own buffers; it spills past this
THREADS = 2

F = TypeVar("F", bound=Callable[..., Any])


def _roomy(method: F) -> F:
    """``method`` of a ``Store``, run again with twice DuckDB's memory limit while it runs out of memory, up to
    ``features.common.DUCKDB_MAX_SHARE`` of the machine's (every statement of a method replaces what it makes, so a
    second run starts clean)."""

    @functools.wraps(method)
    def run(self: Store, *args: Any, **kwargs: Any) -> Any:
        import duckdb

        while True:
            try:
                return method(self, *args, **kwargs)
            except duckdb.OutOfMemoryException:
                if (grown := more_memory(self.con, self.limit_mb)) is None:
                    raise
                self.limit_mb = grown

    return run  # type: ignore[return-value]


def connect(temp: Path, memory_limit: str = MEMORY_LIMIT) -> Any:
    """An in-memory DuckDB that spills to ``temp`` past ``memory_limit``."""
    con = spilling_duckdb(temp, int(memory_limit.removesuffix("MB")), THREADS)
    con.execute("SET preserve_insertion_order = false")
    return con


def load_ipc(con: Any, path: Path, table: str = "att") -> None:
    """The Arrow IPC stream at ``path`` (the scan's attack-row spill) as table ``table``, read batch by batch."""
    import pyarrow.ipc as ipc

    with open(path, "rb") as src:
        con.register("_spill", ipc.open_stream(src))
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _spill")
        con.unregister("_spill")


def load_frame(con: Any, frame: pl.DataFrame, table: str = "att") -> None:
    """A polars frame as table ``table`` (tests, and scans whose attack rows were kept in memory)."""
    con.register("_frame", frame.to_arrow())
    con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _frame")
    con.unregister("_frame")


def _rules(config: IncidentConfig, allowed: bool) -> list[str]:
    """SQL statements that leave, in table ``keyed``, each attack row's grouping key (``l``, ``gb``: 0 source,
    1 port, 2 target, ``k``) and session number ``sno`` within it; ``ord`` is the row's place in start order (ts,
    then flow_id). One statement a step, each table made before the next: as one query, its joins and windows ran
    at once and needed several times the memory (3M flood rows: more than 128 MB, against 64 MB step by step)."""
    m, s = int(config.minor_flows), int(config.spread_sources)
    gap = int(config.gap_s * 1e6)

    def few(src: str, keys: str, name: str) -> str:
        """Rows of ``src`` with ``name``: whether their ``keys`` have fewer than ``minor_flows`` rows (a count by a
        group-by and a join: both spill)."""
        return f"SELECT t.*, c.n < {m} AS {name} FROM {src} t JOIN (SELECT {keys}, count(*) AS n FROM {src} GROUP BY {keys}) c USING ({keys})"

    # "minor" inside a rule's window counts an originator's flows within that window's group, exactly as
    # analyzer.incidents._sessions (and the window expressions that first stated the rules) do.
    return [
        f"""CREATE OR REPLACE TABLE r0 AS
            SELECT flow_id, ts, ts_end, orig_h AS s, resp_h AS d, CAST(label AS VARCHAR) AS l,
              CAST(proto AS VARCHAR) || '/' || coalesce(resp_p, -1) AS p, row_number() OVER (ORDER BY ts, flow_id) AS ord
            FROM att WHERE CAST(label AS VARCHAR) <> '{NORMAL}' {"AND NOT coalesce(allowed, false)" if allowed else ""}""",
        f"CREATE OR REPLACE TABLE r1 AS {few('r0', 'l, s', 'minor')}",
        f"CREATE OR REPLACE TABLE r2 AS {few('r1', 'l, d, s', 'few_lds')}",
        f"CREATE OR REPLACE TABLE r3 AS {few('r2', 'l, p, s', 'minor_p')}",
        f"CREATE OR REPLACE TABLE r4 AS {few('r3', 'l, p, d, s', 'few_lpds')}",
        f"""CREATE OR REPLACE TABLE r5 AS
            SELECT c.*, minor AND coalesce(ld.n, 0) >= {s} AS to_target, minor_p AND coalesce(lpd.n, 0) >= {s} AS to_target_p
            FROM r4 c
            LEFT JOIN (SELECT l, d, count(*) AS n FROM (SELECT DISTINCT l, d, s FROM r4 WHERE few_lds) GROUP BY l, d) ld
              USING (l, d)
            LEFT JOIN (SELECT l, p, d, count(*) AS n FROM (SELECT DISTINCT l, p, d, s FROM r4 WHERE few_lpds)
                       GROUP BY l, p, d) lpd USING (l, p, d)""",
        f"""CREATE OR REPLACE TABLE r6 AS
            SELECT c.flow_id, c.ts, c.ts_end, c.ord, c.l,
              CASE WHEN to_target THEN 2 WHEN minor AND coalesce(lp.n, 0) >= {s} THEN 1 ELSE 0 END AS gb,
              CASE WHEN to_target THEN d WHEN minor AND coalesce(lp.n, 0) >= {s} THEN c.p ELSE s END AS k
            FROM r5 c LEFT JOIN (SELECT l, p, count(*) AS n FROM (
                SELECT DISTINCT l, p, s FROM r5 WHERE minor_p AND NOT to_target_p) GROUP BY l, p) lp USING (l, p)""",
        """CREATE OR REPLACE TABLE r7 AS
            SELECT *, max(ts_end) OVER (PARTITION BY l, gb, k ORDER BY ord
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
            FROM r6""",
        f"""CREATE OR REPLACE TABLE keyed AS
            SELECT flow_id, ord, l, gb, k,
              sum(CASE WHEN prev_end IS NULL OR epoch_us(ts) - epoch_us(prev_end) > {gap} THEN 1 ELSE 0 END)
                OVER (PARTITION BY l, gb, k ORDER BY ord ROWS UNBOUNDED PRECEDING) AS sno
            FROM r7""",
        "DROP TABLE r0; DROP TABLE r1; DROP TABLE r2; DROP TABLE r3; DROP TABLE r4; DROP TABLE r5; DROP TABLE r6; "
        "DROP TABLE r7",
    ]


def find_incidents(con: Any, config: IncidentConfig) -> pl.DataFrame:
    """``analyzer.incidents.find_incidents`` over table ``att`` (``ATTACK_COLUMNS`` rows): the same incidents; the
    membership (``flow_id``, ``incident_id``) is left in table ``members``."""
    types = {r[0]: r[1] for r in con.execute("DESCRIBE att").fetchall()}  # column -> SQL type
    for step in _rules(config, "allowed" in types):
        con.execute(step)
    # one row per session: its key, and the aggregates analyzer.incidents._aggregate takes. Distinct counts are a
    # DISTINCT and then a count: a count(DISTINCT) keeps a session's values in one hash table, which does not spill
    # (a flood's one session has millions of sources).
    key = "k.l, k.gb, k.k, k.sno"

    def distinct(col: str) -> str:
        return f"""(SELECT l, gb, k, sno, count(*) AS n FROM (
                      SELECT DISTINCT {key}, a.{col} FROM keyed k JOIN att a USING (flow_id) WHERE a.{col} IS NOT NULL)
                    GROUP BY ALL)"""

    con.execute(
        f"""
        CREATE OR REPLACE TABLE sess AS
        SELECT row_number() OVER (ORDER BY l, gb, k, sno) - 1 AS sid, s.*,
          coalesce(p.n, 0) AS ports, coalesce(o.n, 0) AS sources, coalesce(r.n, 0) AS targets
        FROM (
          SELECT {key},
            min(a.ts) AS start, max(a.ts_end) AS "end", count(*) AS flows,
            arg_min(a.orig_h, k.ord) AS source, arg_min(a.resp_h, k.ord) AS target,
            arg_min(a.resp_p, k.ord) FILTER (WHERE a.resp_p IS NOT NULL) AS port,
            sum(CAST(a.confidence AS DOUBLE)) AS conf_sum,
            coalesce(sum(a.orig_bytes + a.resp_bytes), 0) AS bytes
          FROM keyed k JOIN att a USING (flow_id)
          GROUP BY {key}) s
        LEFT JOIN {distinct("resp_p")} p USING (l, gb, k, sno)
        LEFT JOIN {distinct("orig_h")} o USING (l, gb, k, sno)
        LEFT JOIN {distinct("resp_h")} r USING (l, gb, k, sno)
        """
    )
    sess = con.sql("SELECT * FROM sess").pl()
    conf_type = pl.Float32 if types["confidence"] == "FLOAT" else pl.Float64
    if sess.height == 0:
        con.execute("CREATE OR REPLACE TABLE members (flow_id BIGINT, incident_id BIGINT)")
        return _empty_incidents()

    def top3(col: str, name: str) -> pl.DataFrame:
        counts = con.sql(
            f"""SELECT s.sid, CAST(a.{col} AS VARCHAR) AS value, count(*) AS n
                FROM keyed k JOIN att a USING (flow_id) JOIN sess s USING (l, gb, k, sno) GROUP BY ALL"""
        ).pl()
        return (
            counts.sort(["sid", "n", "value"], descending=[False, True, False])
            .group_by("sid", maintain_order=True)
            .agg(pl.struct("value", pl.col("n").cast(pl.UInt32)).head(3).alias(name))
        )

    by = pl.col("gb")
    inc = (
        sess.join(top3("conn_state", "states"), on="sid")
        .join(top3("service", "services"), on="sid")
        .with_columns(
            label=pl.col("l"),
            grouped_by=by.replace_strict({0: "source", 1: "port", 2: "target"}, return_dtype=pl.String),
            key=pl.col("k"),
            # a mean in the attack rows' own precision, as polars takes it (float32 probabilities: float32)
            confidence=(pl.col("conf_sum") / pl.col("flows")).cast(conf_type),
            duration_s=(pl.col("end") - pl.col("start")).dt.total_microseconds() / 1e6,
        )
    )
    schema = {c: t for c, t in _empty_incidents().schema.items() if c != "incident_id"}
    inc = inc.select("sid", *schema).cast(schema)  # type: ignore[arg-type]
    order, incident_of = numbered(inc, "sid")
    con.register(
        "ids", pl.DataFrame({"sid": np.arange(order.height, dtype=np.int64), "incident_id": incident_of}).to_arrow()
    )
    con.execute(
        """CREATE OR REPLACE TABLE members AS SELECT k.flow_id, CAST(i.incident_id AS BIGINT) AS incident_id
           FROM keyed k JOIN sess s USING (l, gb, k, sno) JOIN ids i ON i.sid = s.sid"""
    )
    con.execute("DROP TABLE keyed")
    con.unregister("ids")
    return order


class Store:
    """The attack rows of a scan in DuckDB, spilling to ``temp`` (removed on ``close``): incidents, and what the
    end of the scan reads from every attack row (rows of an incident that the report names, per-incident filters,
    top talkers, the timeline) as queries whose results are small."""

    def __init__(self, temp: Path, memory_limit: str | None = None) -> None:
        memory_limit = memory_limit or MEMORY_LIMIT
        try:
            str(temp).encode()
        except UnicodeEncodeError:  # DuckDB takes UTF-8 paths only: a folder of the system's temporary one instead
            import tempfile

            temp = Path(tempfile.mkdtemp(prefix="nta-incidents-"))
        self.temp = temp
        self.limit_mb = int(memory_limit.removesuffix("MB"))
        self.con = connect(temp, memory_limit)

    def close(self) -> None:
        import shutil

        self.con.close()
        shutil.rmtree(self.temp, ignore_errors=True)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_roomy
    def load(self, spill: Path | None, empty: pl.DataFrame) -> None:
        """The spilled attack rows (None: ``empty``, a frame of their columns and no row)."""
        if spill is None:
            load_frame(self.con, empty)
        else:
            load_ipc(self.con, spill)

    @_roomy
    def incidents(self, config: IncidentConfig) -> tuple[pl.DataFrame, QueryMembers]:
        """``find_incidents``, and the membership read a batch at a time; afterwards table ``ai`` holds the attack
        rows with their ``incident_id``."""
        inc = find_incidents(self.con, config)
        cols = {r[0] for r in self.con.execute("DESCRIBE att").fetchall()}
        self.con.execute(
            f"CREATE OR REPLACE TABLE ai AS SELECT a.*{' EXCLUDE (incident_id)' if 'incident_id' in cols else ''},"
            " m.incident_id FROM att a LEFT JOIN members m USING (flow_id)"
        )
        self.con.execute("DROP TABLE att")
        return inc, QueryMembers(self)

    @_roomy
    def frame(self, sql: str) -> pl.DataFrame:
        """The query's result, its timestamps in UTC as the attack rows have them (DuckDB says "Etc/UTC")."""
        return _utc(self.con.sql(sql).pl())

    @_roomy
    def rows(self, columns: list[str], per_incident_first: int, per_incident_top: int) -> pl.DataFrame:
        """Attack rows in ``flow_id`` order: every suspicious row of no incident (a scan has none), each incident's
        first ``per_incident_first`` (by ts, then flow_id) and its first ``per_incident_top`` by p_attack (ties by
        flow_id): all that the top flows, the listed members and the first flows read (not the rows an --allow
        entry covers, which take part in none of them)."""
        cols = ", ".join(f'"{c}"' for c in columns)
        suspicious = self._suspicious()
        return self.frame(
            f"""SELECT {cols} FROM (
                  SELECT *,
                    row_number() OVER (PARTITION BY incident_id ORDER BY ts, flow_id) AS _first,
                    row_number() OVER (PARTITION BY incident_id ORDER BY p_attack DESC, flow_id) AS _top
                  FROM ai)
                WHERE CASE WHEN incident_id IS NULL THEN {suspicious}
                           ELSE _first <= {int(per_incident_first)} OR _top <= {int(per_incident_top)} END
                ORDER BY flow_id"""
        )

    @_roomy
    def sampled(self, chosen: pl.DataFrame, per_incident: int) -> pl.DataFrame:
        """``flow_id``, ``incident_id`` of the rows ``analyzer.explain.sample_rows`` samples from each ``chosen``
        incident (``incident_id``, ``flows``): at most ``per_incident``, evenly spaced in start order."""
        want = [
            (i, int(p))
            for i, n in chosen.select("incident_id", "flows").iter_rows()
            for p in np.unique(sample_rows(np.arange(n), per_incident))
        ]
        pos = pl.DataFrame(want, schema={"incident_id": pl.Int64, "pos": pl.Int64}, orient="row")
        self.con.register("want", pos.to_arrow())
        try:
            return self.frame(
                """SELECT flow_id, incident_id FROM (
                     SELECT flow_id, incident_id,
                       row_number() OVER (PARTITION BY incident_id ORDER BY ts, flow_id) - 1 AS pos
                     FROM ai WHERE incident_id IN (SELECT incident_id FROM want))
                   JOIN want USING (incident_id, pos) ORDER BY incident_id, pos"""
            )
        finally:
            self.con.unregister("want")

    @_roomy
    def typical(
        self,
        asked: dict[int, list[str]],
        columns: Callable[[list[str], np.ndarray], Any],
        is_text: Callable[[str], bool],
    ) -> dict[tuple[int, str], tuple[str, float | None]]:
        """``analyzer.explain.Typical`` over every member of the incidents: ``columns(names, flow_ids)`` reads those
        features of those flows (sorted ids; ``flow_id`` and a column per name, a record batch reader), once: the
        members' values are kept in a table of DuckDB's (which spills), and each feature is a query of it (one pass
        per feature over every flow was most of an explanation's time: 1M packets, 13 features, 0.3 s). Only the
        members' rows reach DuckDB: handed every flow, its join held them all (10M packets: +15 MiB at the end of
        the scan, growing with the capture). Numbers' two middle values come from a sort, categories' counts
        from a group-by."""
        by_name: dict[str, list[int]] = {}
        for i, names in asked.items():
            for name in names:
                by_name.setdefault(name, []).append(i)
        out: dict[tuple[int, str], tuple[str, float | None]] = {}
        if not by_name:
            return out
        self.con.register("want", pl.DataFrame({"incident_id": pl.Series(list(asked), dtype=pl.Int64)}).to_arrow())
        try:
            member_ids = self.frame(
                "SELECT DISTINCT flow_id FROM members JOIN want USING (incident_id) ORDER BY flow_id"
            )["flow_id"]  # 8 bytes a member
            self.con.register("vals", columns(list(by_name), member_ids.cast(pl.Int64).to_numpy()))
            self.con.execute(
                """CREATE OR REPLACE TABLE mv AS SELECT m.incident_id, v.* EXCLUDE (flow_id)
                   FROM vals v JOIN members m USING (flow_id) JOIN want USING (incident_id)"""
            )
        finally:
            self.con.unregister("vals")
            self.con.unregister("want")
        try:
            for name, ids in by_name.items():
                rows = f"""SELECT incident_id, "{name}" AS value FROM mv
                           WHERE incident_id IN ({", ".join(str(int(i)) for i in ids)}) AND "{name}" IS NOT NULL"""
                if is_text(name):
                    counts = self.frame(f"SELECT incident_id, value, count(*) AS n FROM ({rows}) GROUP BY ALL")
                    top = counts.sort(["incident_id", "n", "value"], descending=[False, True, False])
                    mode = dict(
                        top.group_by("incident_id", maintain_order=True)
                        .first()
                        .select("incident_id", "value")
                        .iter_rows()
                    )
                    for i in ids:
                        out[(i, name)] = (str(mode.get(i) or "?"), None)
                    continue
                mid = self.frame(
                    f"""SELECT incident_id, i, n, value FROM (
                          SELECT incident_id, value, row_number() OVER (PARTITION BY incident_id ORDER BY value) - 1 AS i,
                                 count(*) OVER (PARTITION BY incident_id) AS n
                          FROM ({rows}))
                        WHERE i = (n - 1) // 2 OR i = n // 2"""
                )
                lower: dict[int, Any] = {}
                upper: dict[int, Any] = {}
                for i, k, n, value in mid.select("incident_id", "i", "n", "value").iter_rows():
                    if k == (n - 1) // 2:
                        lower[i] = value
                    if k == n // 2:
                        upper[i] = value
                for i in ids:
                    out[(i, name)] = typical_median(name, lower.get(i), upper.get(i))
        finally:
            self.con.execute("DROP TABLE IF EXISTS mv")
        return out

    @_roomy
    def incident_rows(self, columns: list[str]) -> pl.DataFrame:
        """``columns`` of every row of an incident, in ``flow_id`` order (carving: the incidents' flows)."""
        cols = ", ".join(f'"{c}"' for c in columns)
        return self.frame(f"SELECT {cols} FROM ai WHERE incident_id IS NOT NULL ORDER BY flow_id")

    @_roomy
    def filter_aggregates(self, max_set: int, max_ports: int) -> pl.DataFrame:
        """``analyzer.evidence.filter_aggregates`` of the incidents' rows, with the distinct values and their first
        sorted ones taken by queries (a flood's incident has millions of sources)."""

        def first_sorted(col: str, n: int, where: str = "TRUE") -> pl.DataFrame:
            return self.frame(
                f"""SELECT incident_id, v FROM (
                      SELECT DISTINCT incident_id, CAST({col} AS VARCHAR) AS v FROM ai
                      WHERE incident_id IS NOT NULL AND {where})
                    QUALIFY row_number() OVER (PARTITION BY incident_id ORDER BY v) <= {n}"""
            )

        def distinct(col: str) -> str:  # a DISTINCT, then a count: see find_incidents
            return f"""(SELECT incident_id, count(*) AS n FROM (
                          SELECT DISTINCT incident_id, {col} FROM ai WHERE incident_id IS NOT NULL) GROUP BY ALL)"""

        agg = self.frame(
            f"""SELECT a.incident_id, s.n AS n_src, a.v6, d.n AS n_dst, a.start, a."end" FROM (
                  SELECT incident_id, bool_and(contains(orig_h, ':')) AS v6, min(ts) AS start, max(ts_end) AS "end"
                  FROM ai WHERE incident_id IS NOT NULL GROUP BY incident_id) a
                JOIN {distinct("orig_h")} s USING (incident_id) JOIN {distinct("resp_h")} d USING (incident_id)"""
        )
        protos = self.frame(
            """SELECT incident_id, CAST(proto AS VARCHAR) AS v FROM (
                 SELECT DISTINCT incident_id, proto FROM ai WHERE incident_id IS NOT NULL)
               QUALIFY row_number() OVER (PARTITION BY incident_id ORDER BY v) <= 2"""
        )
        ports = self.frame(
            f"""SELECT incident_id, v FROM (
                  SELECT DISTINCT incident_id, resp_p AS v FROM ai WHERE incident_id IS NOT NULL AND resp_p IS NOT NULL)
                QUALIFY row_number() OVER (PARTITION BY incident_id ORDER BY v) <= {max_ports + 1}"""
        )

        def lists(frame: pl.DataFrame, name: str) -> pl.DataFrame:
            return (
                frame.sort("incident_id", "v").group_by("incident_id", maintain_order=True).agg(pl.col("v").alias(name))
            )

        out = agg
        for frame, name in (
            (first_sorted("orig_h", max_set + 1), "srcs"),
            (first_sorted("resp_h", max_set + 1), "dsts"),
            (protos, "protos"),
            (ports, "ports"),
        ):
            out = out.join(lists(frame, name), on="incident_id", how="left")
        return out.with_columns(pl.col("srcs", "dsts", "protos", "ports").fill_null([]))

    @_roomy
    def top_talkers(self, n: int) -> pl.DataFrame:
        """``verdicts.top_talkers`` of the attack rows (distinct values counted after a DISTINCT: see
        find_incidents)."""
        top = f"""s AS (SELECT orig_h, resp_h, resp_p, CAST(label AS VARCHAR) AS label, p_attack FROM ai
                        WHERE {self._suspicious()}),
                  top AS (SELECT orig_h, count(*) AS flows, max(p_attack) AS max_p_attack FROM s GROUP BY orig_h
                          ORDER BY flows DESC, orig_h LIMIT {int(n)}),
                  t AS (SELECT s.* FROM s JOIN top USING (orig_h))"""

        def distinct(col: str, where: str = "TRUE") -> str:
            return (
                f"(SELECT orig_h, count(*) AS n FROM (SELECT DISTINCT orig_h, {col} FROM t WHERE {where}) GROUP BY ALL)"
            )

        return self.frame(
            f"""WITH {top}
                SELECT top.orig_h, CAST(top.flows AS UINTEGER) AS flows, c.classes,
                  CAST(coalesce(d.n, 0) AS UINTEGER) AS targets, CAST(coalesce(p.n, 0) AS UINTEGER) AS ports,
                  top.max_p_attack
                FROM top
                JOIN (SELECT orig_h, string_agg(label, '/' ORDER BY label) AS classes
                      FROM (SELECT DISTINCT orig_h, label FROM t) GROUP BY orig_h) c USING (orig_h)
                LEFT JOIN {distinct("resp_h")} d USING (orig_h)
                LEFT JOIN {distinct("resp_p", "resp_p IS NOT NULL")} p USING (orig_h)
                ORDER BY flows DESC, orig_h"""
        )

    @_roomy
    def suspicious(self) -> int:
        """How many attack rows no --allow entry covers (``verdicts.suspicious``)."""
        return int(self.con.execute(f"SELECT count(*) FROM ai WHERE {self._suspicious()}").fetchall()[0][0])

    def _suspicious(self) -> str:
        """SQL of ``verdicts.suspicious``' condition."""
        allowed = " AND NOT coalesce(allowed, false)" if "allowed" in self._columns() else ""
        return f"CAST(label AS VARCHAR) <> '{NORMAL}'{allowed}"

    def batches(self, columns: list[str], rows: int = 1 << 20, table: str = "ai", order: str = "") -> Any:
        """``columns`` of every row of ``table`` (the attack rows), as polars frames of at most ``rows`` rows, in
        any order or ``ORDER BY order``. The query runs now, on the calling thread, on a cursor of its own (the
        store's connection stays free for other queries); the frames may then be read on another thread
        (``analyzer.pipeline`` writes flows.parquet on one)."""
        cols = ", ".join(f'"{c}"' for c in columns)
        cursor = self.con.cursor()  # its own result: the connection stays free for other queries
        sql = f"SELECT {cols} FROM {table}" + (f" ORDER BY {order}" if order else "")
        try:
            reader = self._reader(cursor, sql, rows)
        except BaseException:
            cursor.close()
            raise
        return _frames(cursor, reader)

    @_roomy
    def _reader(self, cursor: Any, sql: str, rows: int) -> Any:
        return cursor.sql(sql).to_arrow_reader(rows)

    def _columns(self) -> set[str]:
        return {r[0] for r in self.con.execute("DESCRIBE ai").fetchall()}


def _frames(cursor: Any, reader: Any) -> Iterator[pl.DataFrame]:
    """The batches of ``reader`` as polars frames; ``cursor`` is closed at the end (or when the frames are dropped)."""
    try:
        for batch in reader:
            yield _utc(pl.DataFrame(pl.from_arrow(batch)))
    finally:
        cursor.close()


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))


class QueryMembers:
    """``analyzer.outputs.Members`` of the table ``members``: each pass reads it sorted by ``flow_id``, a batch at
    a time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def cursor(self) -> BatchCursor:
        return BatchCursor(self.store.batches(["flow_id", "incident_id"], 1 << 16, "members", "flow_id"))

    def frame(self) -> pl.DataFrame:
        """Every pair, sorted by ``flow_id`` (for small scans and tests)."""
        return self.store.frame("SELECT flow_id, incident_id FROM members ORDER BY flow_id")
