"""The flow table on disk: Parquet with ``FLOW_SCHEMA`` and nta's key-value metadata, written atomically."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from features.behind import WriteBehind
from features.common import InputError, atomic_path
from features.flows.schema import (
    FLOW_SCHEMA,
    META_BAD_PACKETS,
    META_NTA_VERSION,
    META_SCHEMA_VERSION,
    META_SOURCES,
    META_WARNINGS,
    SCHEMA_VERSION,
    dictionary_columns,
)

if TYPE_CHECKING:
    from features.flows.extract import ChunkSource, Extraction

_JSON_KEYS = (META_SOURCES, META_BAD_PACKETS, META_WARNINGS)


def nta_version() -> str:
    """The installed nta version, or ``unknown`` when running from a tree that is not installed."""
    try:
        return metadata.version("nta")
    except metadata.PackageNotFoundError:
        return "unknown"


def flow_metadata(ext: Extraction) -> dict[bytes, bytes]:
    """Parquet key-value metadata: versions as text, sources (with sha256), bad packets and warnings as JSON."""
    return {
        META_SCHEMA_VERSION: SCHEMA_VERSION.encode(),
        META_NTA_VERSION: nta_version().encode(),
        META_SOURCES: json.dumps(list(ext.sources)).encode(),
        META_BAD_PACKETS: json.dumps(dict(ext.bad_packets)).encode(),
        META_WARNINGS: json.dumps(list(ext.warnings)).encode(),
    }


def write_flows(ext: Extraction, path: Path) -> None:
    """Write ``ext.flows`` to ``path`` as Parquet (zstd) with metadata; atomic: all of it or nothing."""
    table = ext.flows.cast(FLOW_SCHEMA).replace_schema_metadata(flow_metadata(ext))
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:  # file objects: pyarrow cannot encode non-UTF-8 names
        pq.write_table(table, fh, compression="zstd", use_dictionary=dictionary_columns(table.schema))


def write_flow_stream(fs: ChunkSource, path: Path) -> tuple[Extraction, int]:
    """Write ``fs``'s flows (built from packets, or Zeek conn logs' records) to ``path`` chunk by chunk (one row
    group each; memory follows a chunk, not the table) with the metadata at the end; atomic. Returns what was read
    (without the table) and the flow count."""
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:  # file objects: pyarrow cannot encode non-UTF-8 names
        writer = pq.ParquetWriter(
            fh, FLOW_SCHEMA, compression="zstd", store_schema=False, use_dictionary=dictionary_columns(FLOW_SCHEMA)
        )
        try:

            def write(flows: pl.DataFrame) -> None:
                writer.write_table(flows.to_arrow().cast(FLOW_SCHEMA))

            # Each row group is encoded on a thread while the next chunk is built (features.behind).
            with WriteBehind(write) as behind:
                for chunk in fs.chunks(forked=False):
                    behind.put(chunk.flows)
            ext = fs.extraction()
            writer.add_key_value_metadata(flow_metadata(ext))
        finally:
            writer.close()
    return ext, fs.flows


def read_flows(path: Path) -> tuple[pa.Table, dict[str, Any]]:
    """A flow table and its decoded metadata ({"schema_version", "nta_version", "sources", "bad_packets", "warnings"})."""
    try:
        with open(path, "rb") as fh:
            table = pq.read_table(fh)
    except (OSError, pa.ArrowInvalid) as e:
        raise InputError(f"{path}: not a readable Parquet flow table ({e})") from e
    raw = table.schema.metadata or {}
    if META_SCHEMA_VERSION not in raw:
        raise InputError(f"{path}: Parquet file without nta flow metadata (not written by nta flows)")
    meta: dict[str, Any] = {
        "schema_version": raw[META_SCHEMA_VERSION].decode(),
        "nta_version": raw.get(META_NTA_VERSION, b"unknown").decode(),
    }
    for key in _JSON_KEYS:
        name = key.decode().removeprefix("nta.")
        meta[name] = json.loads(raw[key]) if key in raw else None
    for f in FLOW_SCHEMA:  # columns added since (schema version 1 had no tunnel): null, as nothing was known
        if f.nullable and f.name not in table.column_names:
            table = table.append_column(pa.field(f.name, f.type), pa.nulls(table.num_rows, f.type))
    missing = [f.name for f in FLOW_SCHEMA if f.name not in table.column_names]
    if missing:
        raise InputError(f"{path}: flow table lacks columns {', '.join(missing)}")
    return table.select(FLOW_SCHEMA.names).cast(FLOW_SCHEMA).replace_schema_metadata(raw), meta
