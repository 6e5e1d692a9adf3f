"""A model folder's files, checked without torch: where the shipped models are, ``metadata.json``, the weights' hash.

Nothing in ``metadata.json`` is trusted before ``validate_metadata`` has checked it against its bounds (size,
nesting, types, ranges, no NaN): a config asking for a million channels is refused before torch is imported.

``nta scan`` checks these before reading any packet (a bad model is refused at once) and builds the network
(``model.scan_classifier.load_classifier``: numpy's on the CPU, torch's otherwise, whose import takes about 1.3 s) while
the captures are read.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.common import InputError, ModelError, file_sha256
from features.encode.spec import SCALINGS, SPEC_VERSION, FeatureSpec

__all__ = [
    "ARCHS",
    "CONFIRM_PREFIX",
    "FORMAT_VERSION",
    "MAX_CONFIRMERS",
    "MAX_PARAMETERS",
    "METADATA",
    "NOVELTY_PREFIX",
    "SUPPORT_PREFIX",
    "WEIGHTS",
    "CheckedModel",
    "check_model_files",
    "default_full_model_dir",
    "default_model_dir",
    "read_hashed",
    "read_metadata",
    "sha256_file",
    "validate_metadata",
]

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
METADATA = "metadata.json"
NOVELTY_PREFIX = "novelty."  # tensors of the model.novelty profile in the weights file
SUPPORT_PREFIX = "support."  # tensors of the model.support profile in the weights file
CONFIRM_PREFIX = "confirm"  # tensors of confirmer i (model.confirm) in the weights file: ``confirm{i}.<name>``
MAX_CONFIRMERS = 8
ARCHS: tuple[str, ...] = ("msmrnet", "msmnet", "mlp", "cnn", "lstm")  # networks model.baselines builds


def default_model_dir() -> Path:
    """The shipped capture-features model (``model/default``), used by ``nta scan`` unless told otherwise."""
    return Path(__file__).resolve().parent / "default"


def default_full_model_dir() -> Path:
    """The shipped all-41-features model (``model/default-full``), for NSL-KDD-style records."""
    return Path(__file__).resolve().parent / "default-full"


sha256_file = file_sha256  # the name model.artifacts and its callers use


# --- what metadata.json may hold (every bound a real model is far inside: the shipped ones use 5 classes,
# 112/125 encoded columns, depth 5/10, 16 channels; their files are ~30 KB)

MAX_METADATA_BYTES = 4 << 20
MAX_NESTING = 32  # JSON containers inside each other, free-form provenance included
MAX_PARAMETERS = 20_000_000  # of the network the config describes (counted on the meta device, before building)
_NAME = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,63}$")  # printable ASCII, 1-64 characters, no leading space


class _Bad(Exception):
    """A metadata field out of bounds: ``where`` (a dotted path) and what is wrong."""


def _int(d: dict[str, Any], key: str, lo: int, hi: int, where: str) -> int:
    v = d.get(key)
    if type(v) is not int:
        raise _Bad(f"{where}{key}: {v!r} is not an integer")
    if not lo <= v <= hi:
        raise _Bad(f"{where}{key}: {v} is outside {lo}..{hi}")
    return v


def _float(v: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if type(v) not in (int, float) or not math.isfinite(v):
        raise _Bad(f"{where}: {v!r} is not a finite number")
    if not lo <= v <= hi:
        raise _Bad(f"{where}: {v} is outside {lo:g}..{hi:g}")
    return float(v)


def _names(v: Any, where: str, lo: int, hi: int, unique: bool = True) -> list[str]:
    if not isinstance(v, list) or not lo <= len(v) <= hi:
        raise _Bad(f"{where}: expected a list of {lo}..{hi} names")
    for x in v:
        if not isinstance(x, str) or not _NAME.match(x):
            raise _Bad(f"{where}: {str(x)[:40]!r} is not a name (printable ASCII, 1-64 characters)")
    if unique and len(set(v)) != len(v):
        raise _Bad(f"{where}: names repeat")
    return v


def _keys(d: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise _Bad(f"{where}: expected a JSON object")
    unknown, missing = sorted(set(d) - allowed), sorted(required - set(d))
    if unknown or missing:
        raise _Bad(f"{where}: {'unknown keys ' + str(unknown[:3]) if unknown else 'missing keys ' + str(missing[:3])}")
    return d


def _nesting(doc: Any) -> int:
    """How deep containers nest in ``doc`` (iterative: any depth is measured without recursion)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        x, depth = stack.pop()
        if isinstance(x, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_NESTING:
                stack.extend((y, depth + 1) for y in (x.values() if isinstance(x, dict) else x))
    return deepest


def _net_config(d: Any) -> None:
    w = "net_config."
    fields = {"n_features", "n_classes", "arch", "depth", "residual", "patch", "channels", "branch_channels"}
    d = _keys(d, "net_config", fields | {"kernels", "dropout"}, fields | {"kernels", "dropout"})
    _int(d, "n_features", 1, 4096, w)
    _int(d, "n_classes", 2, 64, w)
    if d["arch"] not in ARCHS:
        raise _Bad(f"{w}arch: {str(d['arch'])[:40]!r} is not one of {', '.join(ARCHS)}")
    _int(d, "depth", 1, 32, w)
    if type(d["residual"]) is not bool:
        raise _Bad(f"{w}residual: {d['residual']!r} is not true or false")
    _int(d, "patch", 1, 4096, w)
    _int(d, "channels", 1, 512, w)
    _int(d, "branch_channels", 1, 512, w)
    k = d["kernels"]
    if not isinstance(k, list) or not 1 <= len(k) <= 8:
        raise _Bad(f"{w}kernels: expected a list of 1..8 odd kernel sizes")
    for i in range(len(k)):
        if _int({"k": k[i]}, "k", 1, 31, f"{w}kernels[{i}].") % 2 == 0:
            raise _Bad(f"{w}kernels[{i}]: {k[i]} is even (the branches need odd kernels)")
    _float(d["dropout"], f"{w}dropout", 0.0, 0.99)


def _feature_spec(d: Any) -> None:
    w = "feature_spec"
    d = _keys(
        d, w, {"spec_version", "columns", "scaling", "vocab", "stats", "aliases", "encoded_columns"},
        {"spec_version", "columns", "scaling", "vocab", "stats"},
    )  # fmt: skip
    if d["spec_version"] != SPEC_VERSION:
        raise _Bad(f"{w}.spec_version: {d['spec_version']!r}, this nta reads {SPEC_VERSION}")
    columns = _names(d["columns"], f"{w}.columns", 1, 256)
    if d["scaling"] not in SCALINGS:
        raise _Bad(f"{w}.scaling: {str(d['scaling'])[:40]!r} is not one of {', '.join(SCALINGS)}")
    vocab, stats = d["vocab"], d["stats"]
    if not isinstance(vocab, dict) or not isinstance(stats, dict) or set(vocab) | set(stats) != set(columns):
        raise _Bad(f"{w}: vocab and stats must cover exactly the columns")
    if set(vocab) & set(stats):
        raise _Bad(f"{w}: a column is both categorical (vocab) and numeric (stats)")
    for c, values in vocab.items():
        _names(values, f"{w}.vocab.{c}", 1, 1024)
    for c, st in stats.items():
        st = _keys(st, f"{w}.stats.{c}", {"min", "max", "mean", "std", "log1p"}, {"min", "max", "log1p"})
        lo, hi = _float(st["min"], f"{w}.stats.{c}.min"), _float(st["max"], f"{w}.stats.{c}.max")
        if lo > hi:
            raise _Bad(f"{w}.stats.{c}: min {lo} is above max {hi}")
        for k in ("mean", "std"):
            if k in st:
                _float(st[k], f"{w}.stats.{c}.{k}", 0.0 if k == "std" else -math.inf)
        if type(st["log1p"]) is not bool:
            raise _Bad(f"{w}.stats.{c}.log1p: {st['log1p']!r} is not true or false")
    aliases = d.get("aliases", {})
    if not isinstance(aliases, dict) or not set(aliases) <= set(vocab):
        raise _Bad(f"{w}.aliases: expected an object keyed by categorical columns")
    for c, m in aliases.items():
        if not isinstance(m, dict) or len(m) > 1024:
            raise _Bad(f"{w}.aliases.{c}: expected an object of at most 1024 names")
        _names([*m.keys(), *m.values()], f"{w}.aliases.{c}", 0, 2048, unique=False)
    if "encoded_columns" in d:
        _names(d["encoded_columns"], f"{w}.encoded_columns", 1, 8192)


def _novelty(d: Any) -> None:
    if d is None:
        return
    w = "novelty."
    d = _keys(
        d, "novelty", {"dims", "clusters", "quantile", "threshold"}, {"dims", "clusters", "quantile", "threshold"}
    )
    _int(d, "dims", 1, 4096, w)
    _int(d, "clusters", 1, 4096, w)
    _float(d["quantile"], f"{w}quantile", 0.0, 1.0)
    _float(d["threshold"], f"{w}threshold", 0.0)


def _support(d: Any) -> None:
    if d is None:
        return
    w = "support."
    d = _keys(d, "support", {"centres", "quantile", "radius", "normal_range"}, {"centres", "quantile", "radius"})
    if "normal_range" in d and not isinstance(d["normal_range"], bool):
        raise _Bad(f"{w}normal_range: expected true or false")
    _int(d, "centres", 0, 1 << 20, w)
    _float(d["quantile"], f"{w}quantile", 0.0, 1.0)
    r = d["radius"]
    if not isinstance(r, list) or not 1 <= len(r) <= 64:
        raise _Bad(f"{w}radius: expected a list of 1 to 64 numbers")
    for i, v in enumerate(r):
        _float(v, f"{w}radius[{i}]", 0.0)


def _confirm(d: Any) -> None:
    if d is None:
        return
    w = "confirm."
    d = _keys(d, "confirm", {"members", "rule", "primary", "sources"}, {"members", "rule"})
    n = _int(d, "members", 1, MAX_CONFIRMERS, w)
    if "primary" in d and not (isinstance(d["primary"], str) and re.fullmatch(r"[0-9a-f]{64}", d["primary"])):
        raise _Bad(f"{w}primary: expected a sha256 (64 hex digits)")
    if d["rule"] != "mean-of-flagged":
        raise _Bad(f"{w}rule: {str(d['rule'])[:40]!r} is not mean-of-flagged, the one rule this nta computes")
    sources = d.get("sources", [])
    if (
        not isinstance(sources, list)
        or len(sources) > n
        or not all(isinstance(s, str) and re.fullmatch(r"[0-9a-f]{64}", s) for s in sources)
    ):
        raise _Bad(f"{w}sources: expected at most {n} sha256 strings (64 hex digits)")


def validate_metadata(meta: Any, path: Path) -> dict[str, Any]:
    """``meta`` if every field nta uses is within bounds (``ModelError`` naming the field otherwise).

    Checked: the nesting of the whole document (free-form provenance included), ``format_version``,
    ``net_config`` (every field, its ranges), ``classes`` (``n_classes`` distinct names, ``normal`` first:
    the novelty gate and the verdicts rely on it), ``feature_spec`` (names, sizes, finite statistics,
    min <= max), ``weights_sha256`` (64 hex digits), ``novelty`` (null or its four numbers), ``support`` (absent,
    null or its numbers), ``confirm`` (absent, null or its count, rule and hashes: ``model.confirm``) and the few
    other strings nta reads. NaN and infinities are refused wherever they appear (``_parse``).
    """
    try:
        if not isinstance(meta, dict):
            raise _Bad("model metadata is not a JSON object")
        if _nesting(meta) > MAX_NESTING:
            raise _Bad(f"nested more than {MAX_NESTING} levels deep")
        if meta.get("format_version") != FORMAT_VERSION:
            raise _Bad(f"model format version {meta.get('format_version')!r}, this nta reads version {FORMAT_VERSION}")
        _net_config(meta.get("net_config"))
        classes = _names(meta.get("classes"), "classes", 2, 64)
        if len(classes) != meta["net_config"]["n_classes"]:
            raise _Bad(f"classes: {len(classes)} names for a {meta['net_config']['n_classes']}-class network")
        if classes[0] != "normal":
            raise _Bad(f"classes: the first class must be 'normal' (got {classes[0]!r})")
        _feature_spec(meta.get("feature_spec"))
        sha = meta.get("weights_sha256")
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise _Bad(f"weights_sha256: {str(sha)[:70]!r} is not 64 hex digits")
        _novelty(meta.get("novelty"))
        _support(meta.get("support"))
        _confirm(meta.get("confirm"))
        for key in ("arch", "feature_set", "nta_version", "torch_version"):
            if key in meta and not (isinstance(meta[key], str) and len(meta[key]) <= 64):
                raise _Bad(f"{key}: expected a short string")
        if "arch" in meta and meta["arch"] not in ARCHS:
            raise _Bad(f"arch: {meta['arch']!r} is not one of {', '.join(ARCHS)}")
    except _Bad as e:
        raise ModelError(f"{path}: {e}") from None
    return meta


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number nta accepts")


def _parse(path: Path) -> Any:
    """``metadata.json`` parsed within ``MAX_METADATA_BYTES``, refusing NaN/Infinity and runaway nesting."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_METADATA_BYTES + 1)
    except OSError as e:
        raise ModelError(f"{path}: unreadable model metadata: {e.strerror or e}") from None
    if len(raw) > MAX_METADATA_BYTES:
        raise ModelError(f"{path}: model metadata larger than {MAX_METADATA_BYTES >> 20} MiB")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ModelError(f"{path}: model metadata nested too deep (more than {MAX_NESTING} levels)") from None
    except (UnicodeDecodeError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        raise ModelError(f"{path}: unreadable model metadata: {' '.join(str(e).split())}") from None


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """Parse ``metadata.json`` and check it against the schema's bounds (``validate_metadata``; ModelError)."""
    model_dir = Path(model_dir)
    path = model_dir / METADATA
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no model directory there")
    if not path.is_file():
        raise ModelError(f"{path}: missing (a model directory holds {WEIGHTS} and {METADATA})")
    return validate_metadata(_parse(path), path)


@dataclass(frozen=True)
class CheckedModel:
    """What a model folder says about itself, its weights' hash checked."""

    model_dir: Path
    metadata: dict[str, Any]
    spec: FeatureSpec
    has_novelty: bool  # the weights file holds a novelty profile

    @property
    def model_id(self) -> str:
        return str(self.metadata.get("weights_sha256", "unsaved"))[:12]


def read_hashed(model_dir: Path) -> tuple[dict[str, Any], Path]:
    """A model folder's checked metadata and its weights file, whose sha256 is the one the metadata records
    (ModelError, one line, otherwise)."""
    meta = read_metadata(model_dir)
    wpath = model_dir / WEIGHTS
    if not wpath.is_file():
        raise ModelError(f"{wpath}: missing")
    got = sha256_file(wpath)
    if got != meta.get("weights_sha256"):
        raise ModelError(
            f"{wpath}: sha256 {got[:12]}... differs from the {str(meta.get('weights_sha256'))[:12]}... recorded "
            f"in {METADATA} (file modified or from another model)"
        )
    return meta, wpath


def check_model_files(model_dir: Path) -> CheckedModel:
    """Metadata, the weights' sha256 and the feature spec of a model folder (ModelError, one line, otherwise)."""
    model_dir = Path(model_dir)
    meta, wpath = read_hashed(model_dir)
    try:
        spec = FeatureSpec.from_dict(meta["feature_spec"])
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise ModelError(f"{model_dir / METADATA}: malformed model metadata: {e}") from None
    return CheckedModel(model_dir, meta, spec, any(k.startswith(NOVELTY_PREFIX) for k in _tensor_names(wpath)))


def _tensor_names(path: Path) -> list[str]:
    """Tensor names in a safetensors file's JSON header (8-byte little-endian length, then the JSON)."""
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(min(n, 1 << 24)))
    except (OSError, struct.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable safetensors file: {e}") from None
    return [k for k in header if k != "__metadata__"] if isinstance(header, dict) else []
