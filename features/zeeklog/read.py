"""Zeek logs in, typed frames out: the inverse of ``features.flows.zeek``'s writers, for logs Zeek itself wrote too.

``sniff(path)`` tells a Zeek log by its content, never by its name: after an optional gzip layer (recognised by
its magic bytes), a TSV log starts with ``#separator``, a JSON-lines log with ``{``. ``read_log(path, wanted)``
returns one typed frame with a column per wanted field (Zeek name -> Zeek type; dtypes from
``features.flows.zeek.ZEEK_DTYPES``; a field the log lacks is all null) and the records it could not use, counted
by name like bad packets:

* ``zeek_no_fields``: a TSV record before any ``#fields`` line (nothing says what its columns are);
* ``zeek_field_count``: a TSV record whose number of values differs from the ``#fields`` line;
* ``zeek_bad_value``: a value that does not parse as its type (a count that is not a number, a time that is
  neither seconds since the epoch nor ISO 8601, a bool that is not T/F);
* ``zeek_bad_json``: a JSON line that is not one object, or a set field that is not an array.

TSV rules (Zeek's ASCII writer): the header lines ``#separator \\xHH`` (written escaped, with a space),
``#set_separator``, ``#empty_field``, ``#unset_field``, ``#path``, ``#open``, ``#fields``, ``#types`` and
``#close``, each split by the separator; a header may come again mid-file (logs concatenated with ``cat``) and
holds for the records after it. Values are read as the type asked for (``#types`` is not trusted over it). A
value equal to the unset marker (``-``) is null; one equal to the empty marker (``(empty)``) is an empty string
or empty set; ``\\xHH`` escapes are decoded (as UTF-8 bytes). Records are parsed in blocks of lines with polars
(``str.split`` on the block, one column per field), not one Python object per record; only values that hold an
escape go through Python.

JSON rules (``LogAscii::use_json``): one object per line with the field names as keys (``id.orig_h``; a nested
``"id": {...}`` object is flattened too), unset fields left out; times as seconds since the epoch (a number or a
numeric string) or ISO 8601 text (``2024-03-01T10:00:05.123456Z``; no zone means UTC); sets as arrays.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl

from features.capture.stream import DEFAULT_LIMITS, ReadLimits
from features.common import InputError, ProgressFn, no_progress, path_text
from features.flows.zeek import EMPTY_FIELD, SET_SEPARATOR, UNSET_FIELD, ZEEK_DTYPES

BLOCK_BYTES = 8 << 20  # lines are parsed in blocks of about this many bytes: memory stays bounded per block
_GZIP_MAGIC = b"\x1f\x8b"
_HEX = re.compile(rb"\\x([0-9a-fA-F]{2})")
BAD_NAMES: tuple[str, ...] = ("zeek_no_fields", "zeek_field_count", "zeek_bad_value", "zeek_bad_json")


@dataclass(frozen=True)
class Sniffed:
    """What the first bytes of a file say: a Zeek log's format (``tsv``/``json``), its ``#path`` (TSV) or the keys
    of its first record (JSON), and whether it is gzip-compressed."""

    format: str
    path_name: str  # "#path" of a TSV log; "" for JSON
    keys: frozenset[str] = frozenset()  # fields of the first JSON record (a nested "id" flattened)
    gz: bool = False


@dataclass
class ReadLog:
    """One log read: its typed frame (a column per wanted field), counts of unusable records, what it held."""

    frame: pl.DataFrame
    bad: Counter[str] = field(default_factory=Counter)
    records: int = 0  # record lines seen (good and bad)
    format: str = "tsv"
    path_name: str = ""
    warnings: list[str] = field(default_factory=list)


def _open(path: Path) -> tuple[IO[bytes], IO[bytes], bool]:
    """(text stream to read, raw file for progress, gzipped?); InputError if it cannot be opened."""
    try:
        raw = path.open("rb")
    except FileNotFoundError as e:
        raise InputError(f"{path}: no such file") from e
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    magic = raw.read(2)
    raw.seek(0)
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw, True  # type: ignore[return-value]
    return raw, raw, False


def sniff(path: Path) -> Sniffed | None:
    """The Zeek log format of ``path`` by content, or None when it is not a Zeek log (InputError if unreadable)."""
    stream, raw, gz = _open(path)
    try:
        head, _ = _read_some(stream, 64 << 10)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e})") from e
    finally:
        stream.close()
        raw.close()
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"#separator"):
        m = re.search(rb"^#path[^\n]*?[\t ,|]([^\t\r\n]+)\r?$", text, re.MULTILINE)
        return Sniffed("tsv", m.group(1).decode("utf-8", "replace") if m else "", gz=gz)
    if text.startswith(b"{"):
        for line in text.splitlines()[:20]:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return Sniffed("json", "", frozenset(_flatten(obj)), gz=gz)
        return Sniffed("json", "", gz=gz)
    return None


def _flatten(obj: dict[str, Any]) -> dict[str, Any]:
    """``{"id": {"orig_h": ...}}`` -> ``{"id.orig_h": ...}`` (one level, as Zeek's record fields nest)."""
    if not any(isinstance(v, dict) for v in obj.values()):
        return obj
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def _read_some(stream: IO[bytes], n: int) -> tuple[bytes, str]:
    """Up to ``n`` bytes, and why the stream broke off ("" when it did not): a damaged or cut gzip stream gives
    the bytes inflated before the damage (read in small pieces, so little is lost) and the reason."""
    parts: list[bytes] = []
    got = 0
    read1 = getattr(stream, "read1", stream.read)
    while got < n:
        try:
            chunk = read1(min(n - got, 1 << 16))
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            return b"".join(parts), str(e) or type(e).__name__
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts), ""


def _blocks(
    stream: IO[bytes], raw: IO[bytes], out: ReadLog, path: Path, progress: ProgressFn, gz: bool, limits: ReadLimits
) -> Iterator[bytes]:
    """The file's bytes in blocks that end at a line end (the last one may not). A damaged gzip stream ends the
    file where the damage starts, with a warning in ``out`` (the records before it are kept, as for captures)."""
    total = path.stat().st_size
    rest = b""
    inflated = 0
    while True:
        try:
            chunk, broken = _read_some(stream, BLOCK_BYTES)
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
        inflated += len(chunk)
        if why := limits.check(inflated, raw.tell(), gz):  # the same guards as for captures (--max-inflate/-bytes)
            raise InputError(f"{path_text(path)}: {why}")
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield data[:cut]
        progress(raw.tell(), total)
        if broken:
            out.warnings.append(
                f"{path_text(path)}: gzip-compressed, but the stream is damaged ({broken}): read up to there"
            )
            rest = b""  # a line cut by the damage is not a record
            break
        if not chunk:
            break
    if rest:
        yield rest


def _lines(block: bytes) -> pl.Series:
    """Non-empty lines of a block (CR of CRLF ends removed), as one polars string column."""
    text = block.decode("utf-8", "replace")
    lines = pl.Series("line", [text]).str.split("\n").explode().str.strip_suffix("\r")
    return lines.filter(lines.str.len_bytes() > 0)


# ---------------------------------------------------------------------------------------------- values


def unescape(text: str) -> str:
    """Zeek's ``\\xHH`` escapes decoded (the bytes joined as UTF-8, so escaped multibyte characters come back)."""
    if "\\x" not in text:
        return text
    return _HEX.sub(lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8")).decode("utf-8", "replace")


def _unescape_series(s: pl.Series) -> pl.Series:
    """``unescape`` on the values that hold an escape; the others untouched (no Python for them)."""
    has = s.str.contains("\\x", literal=True).fill_null(False)
    if not has.any():
        return s
    idx = has.arg_true()
    fixed = pl.Series([unescape(v) for v in s.gather(idx).to_list()], dtype=pl.String)
    return s.scatter(idx, fixed)


def _micros(s: pl.Series, iso: bool) -> pl.Series:
    """Seconds text (``[-]S[.F]``, exact to the microsecond; longer fractions and exponent forms via float) ->
    Int64 microseconds; with ``iso``, ISO 8601 text too. Unparsable -> null."""
    m = pl.col("s").str.extract_groups(r"^(-?)(\d{1,12})(?:\.(\d{0,6}))?$")
    frac = m.struct.field("3").fill_null("").str.pad_end(6, "0").cast(pl.Int64, strict=False)
    exact = m.struct.field("2").cast(pl.Int64, strict=False) * 1_000_000 + frac
    exact = pl.when(m.struct.field("1") == "-").then(-exact).otherwise(exact)
    floaty = (pl.col("s").cast(pl.Float64, strict=False) * 1_000_000).round(0)
    floaty = pl.when(floaty.is_finite() & (floaty.abs() < 2**62)).then(floaty).cast(pl.Int64)
    out = exact.fill_null(floaty)
    if iso:
        text = pl.col("s").str.replace(r"Z$", "+00:00")
        zoned = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", time_unit="us", time_zone="UTC", strict=False)
        naive = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
        out = out.fill_null(zoned.fill_null(naive.dt.replace_time_zone("UTC")).dt.epoch("us"))
    return pl.DataFrame({"s": s.cast(pl.String)}).select(out.alias(s.name)).to_series()


def typed(s: pl.Series, ztype: str) -> tuple[pl.Series, pl.Series]:
    """A field's raw text (String; List(String) for sets) as its Zeek type's dtype, and a bool mask of the values
    that did not parse (present but unreadable)."""
    name = s.name
    if ztype.startswith(("set[", "vector[")):
        out = s if s.dtype == pl.List(pl.String) else s.cast(pl.List(pl.String))
        return out.rename(name), pl.Series(name, [False] * len(s), dtype=pl.Boolean)
    match ztype:
        case "time" | "interval":
            us = _micros(s, iso=ztype == "time")
            dtype = ZEEK_DTYPES[ztype]
            out = us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC") if ztype == "time" else us.cast(dtype)
        case "count" | "int" | "port" | "double":
            out = s.str.strip_chars().cast(ZEEK_DTYPES[ztype], strict=False)
            if ztype != "double":
                whole = s.str.contains(r"^\s*-?\d+\s*$").fill_null(True)
                out = pl.select(pl.when(pl.lit(whole)).then(pl.lit(out))).to_series()
        case "bool":
            low = s.str.to_lowercase()
            out = pl.select(
                pl.when(low.is_in(["t", "true"])).then(True).when(low.is_in(["f", "false"])).then(False)
            ).to_series()
        case _:
            out = s
    out = out.rename(name)
    return out, (s.is_not_null() & out.is_null()).rename(name)


# ---------------------------------------------------------------------------------------------- TSV


@dataclass
class _Header:
    separator: str = "\t"
    set_separator: str = SET_SEPARATOR
    empty: str = EMPTY_FIELD
    unset: str = UNSET_FIELD
    path: str = ""
    fields: list[str] | None = None
    types: list[str] | None = None

    def update(self, line: str) -> None:
        if line.startswith("#separator"):
            value = line[len("#separator") :].strip(" ")
            self.separator = unescape(value) or "\t"
            return
        key, _, rest = line[1:].partition(self.separator)
        values = rest.split(self.separator)
        match key:
            case "set_separator":
                self.set_separator = unescape(values[0])
            case "empty_field":
                self.empty = values[0]
            case "unset_field":
                self.unset = values[0]
            case "path":
                self.path = values[0]
            case "fields":
                self.fields, self.types = values, None
            case "types":
                self.types = values


def _tsv_segment(lines: pl.Series, h: _Header, wanted: Mapping[str, str], bad: Counter[str]) -> pl.DataFrame | None:
    """Typed frame of data lines under header ``h`` (bad lines counted and dropped)."""
    if h.fields is None:
        bad["zeek_no_fields"] += len(lines)
        return None
    parts = lines.str.split(h.separator)
    ok = parts.list.len() == len(h.fields)
    if not ok.all():
        bad["zeek_field_count"] += int((~ok).sum())
        parts = parts.filter(ok)
    cols, broken = [], pl.Series("broken", [False] * len(parts), dtype=pl.Boolean)
    for name, want in wanted.items():
        if name not in h.fields:
            cols.append(pl.Series(name, [None] * len(parts), ZEEK_DTYPES.get(want, pl.String())))
            continue
        raw = parts.list.get(h.fields.index(name)).rename(name)
        ztype = want  # the type asked for, whatever #types says: a damaged #types line cannot turn a count into a set
        raw = pl.select(pl.when(pl.lit(raw) != h.unset).then(pl.lit(raw))).to_series().rename(name)
        if ztype.startswith(("set[", "vector[")):
            empty = raw == h.empty
            split = raw.str.split(h.set_separator).list.eval(
                pl.element().map_batches(_unescape_series, return_dtype=pl.String)
            )
            raw = pl.select(pl.when(pl.lit(empty)).then(pl.lit([], pl.List(pl.String))).otherwise(split)).to_series()
        elif ztype not in ("time", "interval", "count", "int", "port", "double", "bool"):
            raw = _unescape_series(
                pl.select(pl.when(pl.lit(raw) == h.empty).then(pl.lit("")).otherwise(raw)).to_series()
            )
        value, failed = typed(raw.rename(name), ztype)
        dtype = ZEEK_DTYPES.get(want, pl.String())
        cast = value.cast(dtype, strict=False)
        broken |= failed | (value.is_not_null() & cast.is_null())
        cols.append(cast.rename(name))
    frame = pl.DataFrame(cols)
    if broken.any():
        bad["zeek_bad_value"] += int(broken.sum())
        frame = frame.filter(~broken)
    return frame


def _read_tsv(blocks: Iterator[bytes], wanted: Mapping[str, str], out: ReadLog) -> Iterator[pl.DataFrame]:
    h = _Header()
    for block in blocks:
        lines = _lines(block)
        hdr = lines.str.starts_with("#")
        marks = hdr.arg_true().to_list()
        start = 0
        for i in [*marks, len(lines)]:
            if i > start:
                seg = lines.slice(start, i - start)
                out.records += len(seg)
                got = _tsv_segment(seg, h, wanted, out.bad)
                if got is not None and got.height:
                    yield got
            if i < len(lines):
                h.update(lines[i])
                out.path_name = h.path
            start = i + 1


# ---------------------------------------------------------------------------------------------- JSON


def _json_schema(wanted: Mapping[str, str]) -> dict[str, pl.DataType]:
    return {n: pl.List(pl.String()) if t.startswith(("set[", "vector[")) else pl.String() for n, t in wanted.items()}


def _json_slow(lines: list[str], wanted: Mapping[str, str], bad: Counter[str]) -> pl.DataFrame:
    """One line at a time (only for blocks the fast reader refused): bad lines counted and left out."""
    schema = _json_schema(wanted)
    rows: dict[str, list[Any]] = {n: [] for n in wanted}
    for line in lines:
        try:
            obj = json.loads(line, parse_float=str, parse_int=str)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            bad["zeek_bad_json"] += 1
            continue
        obj = _flatten(obj)
        row: dict[str, Any] = {}
        for n, dtype in schema.items():
            v = obj.get(n)
            if isinstance(dtype, pl.List):
                if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
                    break
                row[n] = v
            elif isinstance(v, dict | list):
                break
            else:
                row[n] = None if v is None else ("true" if v is True else "false" if v is False else str(v))
        else:
            for n in wanted:
                rows[n].append(row[n])
            continue
        bad["zeek_bad_json"] += 1
    return pl.DataFrame(rows, schema=schema)


def _read_json(blocks: Iterator[bytes], wanted: Mapping[str, str], out: ReadLog) -> Iterator[pl.DataFrame]:
    schema = _json_schema(wanted)
    for block in blocks:
        lines = _lines(block)
        out.records += len(lines)
        raw: pl.DataFrame | None = None
        if not lines.str.contains(r'"id"\s*:\s*\{').any():  # a nested id needs flattening: one line at a time
            try:
                raw = pl.read_ndjson(io.BytesIO("\n".join(lines.to_list()).encode()), schema=schema)
            except Exception:
                raw = None
            if raw is not None and raw.height != len(lines):
                raw = None
        if raw is None:
            raw = _json_slow(lines.to_list(), wanted, out.bad)
        cols, broken = [], pl.Series("broken", [False] * raw.height, dtype=pl.Boolean)
        for name, ztype in wanted.items():
            value, failed = typed(raw[name], ztype)
            cast = value.cast(ZEEK_DTYPES.get(ztype, pl.String()), strict=False)
            broken |= failed | (value.is_not_null() & cast.is_null())
            cols.append(cast)
        frame = pl.DataFrame(cols)
        if broken.any():
            out.bad["zeek_bad_value"] += int(broken.sum())
            frame = frame.filter(~broken)
        if frame.height:
            yield frame


# ---------------------------------------------------------------------------------------------- files


def read_log(
    path: Path, wanted: Mapping[str, str], progress: ProgressFn = no_progress, limits: ReadLimits = DEFAULT_LIMITS
) -> ReadLog:
    """The records of one Zeek log (TSV or JSON, gzipped or not) as a typed frame of the ``wanted`` fields.

    ``wanted`` maps Zeek field names to Zeek types (keys of ``ZEEK_DTYPES``; others are read as strings).
    ``progress`` gets (bytes of the file read, file size). InputError when the file is not a Zeek log, or when it
    gives more than ``limits`` allow (a gzip bomb, an endless log).
    """
    out = ReadLog(empty_frame(wanted))
    frames = list(log_frames(path, wanted, out, progress, limits))
    out.frame = pl.concat([out.frame, *frames], how="vertical") if frames else out.frame
    return out


def empty_frame(wanted: Mapping[str, str]) -> pl.DataFrame:
    """A typed frame of the ``wanted`` fields without rows (``read_log``'s frame of a log without records)."""
    return pl.DataFrame(schema={n: ZEEK_DTYPES.get(t, pl.String()) for n, t in wanted.items()})


def log_frames(
    path: Path,
    wanted: Mapping[str, str],
    out: ReadLog,
    progress: ProgressFn = no_progress,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[pl.DataFrame]:
    """``read_log``'s records block by block (about ``BLOCK_BYTES`` of the log each, fewer rows where a header
    line comes between them), as typed frames of the ``wanted`` fields: a log of any size is read in memory set
    by the block. ``out`` (its frame left alone) counts the records and the bad ones, and takes the log's format,
    ``#path`` and warnings, as they are read."""
    found = sniff(path)
    if found is None:
        raise InputError(f"{path}: not a Zeek log (neither '#separator' nor '{{' at the start)")
    out.format = found.format
    stream, raw, gz = _open(path)
    try:
        blocks = _blocks(stream, raw, out, path, progress, gz, limits)
        yield from _read_tsv(blocks, wanted, out) if found.format == "tsv" else _read_json(blocks, wanted, out)
    finally:
        stream.close()
        raw.close()
