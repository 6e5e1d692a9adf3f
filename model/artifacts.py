"""Model directories: ``weights.safetensors`` + ``metadata.json``, written atomically, checked on load.

Nothing is ever unpickled: tensors go through the safetensors format, everything else is JSON.
``metadata.json`` holds ``format_version``, the network config, the feature spec, the class names, the
sha256 of the weights file, and free-form provenance (training data sha256, seed, epochs, metrics, nta
and torch versions). Loading refuses, with a one-line ``ModelError`` naming what differs: a missing
file, unparsable JSON, another format version, a weights file whose sha256 is not the recorded one,
a spec whose column count is not the network's input width, or tensors that do not fit the network.

Nothing in ``metadata.json`` is trusted before ``validate_metadata`` has checked it against ``SCHEMA``'s bounds
(size, nesting, types, ranges, no NaN): a config asking for a million channels or ten million modules is
refused before anything is built. The network is then built on torch's ``meta`` device (no memory) and
compared with the weights file's tensor shapes before the real one is built, and every tensor must be finite
(an all-NaN network would label every flow "normal").
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from features.common import InputError, ModelError, atomic_path
from features.encode.spec import SCALINGS, SPEC_VERSION, FeatureSpec
from model.baselines import ARCHS, build_network
from model.network import NetConfig
from model.novelty import PREFIX as NOVELTY_PREFIX
from model.novelty import NormalProfile, last_linear

__all__ = [
    "FORMAT_VERSION",
    "METADATA",
    "WEIGHTS",
    "LoadedModel",
    "load_model",
    "nta_version",
    "save_model",
    "validate_metadata",
]

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
METADATA = "metadata.json"


@dataclass
class LoadedModel:
    """A network rebuilt from a model directory, in eval mode on CPU, with what describes it."""

    net: nn.Module
    net_config: NetConfig
    spec: FeatureSpec
    classes: tuple[str, ...]
    metadata: dict[str, Any]
    novelty: NormalProfile | None = None  # model.novelty, when the model directory holds one


def nta_version() -> str:
    """The installed nta version (model/ must not import analyzer, which holds the canonical string)."""
    try:
        return importlib_metadata.version("nta")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_model(
    model_dir: Path,
    net: nn.Module,
    net_config: NetConfig,
    spec: FeatureSpec,
    classes: tuple[str, ...],
    extra: dict[str, Any] | None = None,
    novelty: NormalProfile | None = None,
) -> dict[str, Any]:
    """Write the weights, then the metadata (each atomically); return the metadata written.

    ``extra`` (provenance, metrics) is merged into the metadata; the keys this function owns win.
    ``novelty`` (``model.novelty``) is stored as ``novelty.*`` tensors beside the weights.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    if novelty is not None:
        tensors |= novelty.to_tensors()
    with atomic_path(model_dir / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        weights_sha = _sha256(tmp)
    meta: dict[str, Any] = dict(extra or {})
    meta.update(
        {
            "format_version": FORMAT_VERSION,
            "arch": net_config.arch,
            "net_config": net_config.to_dict(),
            "classes": list(classes),
            "feature_spec": spec.to_dict(),
            "weights_sha256": weights_sha,
            "novelty": None
            if novelty is None
            else {
                "dims": novelty.dims,
                "clusters": novelty.clusters,
                "quantile": novelty.quantile,
                "threshold": round(novelty.threshold, 4),
            },
            "nta_version": nta_version(),
            "torch_version": torch.__version__,
        }
    )
    write_metadata(model_dir, meta)
    return meta


def write_metadata(model_dir: Path, meta: dict[str, Any]) -> None:
    """Rewrite ``metadata.json`` atomically (e.g. to record test metrics); weights are untouched."""
    with atomic_path(Path(model_dir) / METADATA) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")


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


def validate_metadata(meta: Any, path: Path) -> dict[str, Any]:
    """``meta`` if every field nta uses is within bounds (``ModelError`` naming the field otherwise).

    Checked: the nesting of the whole document (free-form provenance included), ``format_version``,
    ``net_config`` (every field, its ranges), ``classes`` (``n_classes`` distinct names, ``normal`` first:
    the novelty gate and the verdicts rely on it), ``feature_spec`` (names, sizes, finite statistics,
    min <= max), ``weights_sha256`` (64 hex digits), ``novelty`` (null or its four numbers) and the few
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


def load_model(model_dir: Path) -> LoadedModel:
    """Rebuild the network from a model directory after checking version, weights hash and shapes.

    Raises:
        ModelError: one line naming the file and what is wrong.
    """
    model_dir = Path(model_dir)
    meta = read_metadata(model_dir)
    wpath = model_dir / WEIGHTS
    if not wpath.is_file():
        raise ModelError(f"{wpath}: missing")
    got = _sha256(wpath)
    if got != meta.get("weights_sha256"):
        raise ModelError(
            f"{wpath}: sha256 {got[:12]}... differs from the {str(meta.get('weights_sha256'))[:12]}... recorded "
            f"in {METADATA} (file modified or from another model)"
        )
    try:
        cfg = NetConfig.from_dict(meta["net_config"])
        spec = FeatureSpec.from_dict(meta["feature_spec"])
        classes = tuple(str(c) for c in meta["classes"])
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise ModelError(f"{model_dir / METADATA}: malformed model metadata: {e}") from None
    if len(spec.encoded_columns) != cfg.n_features:
        raise ModelError(
            f"{model_dir / METADATA}: feature spec has {len(spec.encoded_columns)} columns, network expects "
            f"{cfg.n_features}"
        )
    if len(classes) != cfg.n_classes:
        raise ModelError(f"{model_dir / METADATA}: {len(classes)} class names for a {cfg.n_classes}-class network")
    with torch.device("meta"):  # the config's network without memory: its size and shapes, before building it
        own = {k: tuple(v.shape) for k, v in build_network(cfg).state_dict().items()}
    n_params = sum(math.prod(shape) for shape in own.values())
    if n_params > MAX_PARAMETERS:
        raise ModelError(
            f"{model_dir / METADATA}: net_config describes {n_params:,} parameters (at most {MAX_PARAMETERS:,})"
        )
    try:
        with safe_open(str(wpath), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys() if not k.startswith(NOVELTY_PREFIX)}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{wpath}: unreadable safetensors file: {e}") from None
    missing = sorted(set(own) - set(stored))
    unexpected = sorted(set(stored) - set(own))
    wrong = sorted(k for k in set(own) & set(stored) if own[k] != stored[k])
    if missing or unexpected or wrong:
        raise ModelError(
            f"{wpath}: tensors do not fit a {cfg.arch} network: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]}"
        )
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{wpath}: unreadable safetensors file: {e}") from None
    bad = {k: int((~torch.isfinite(t)).sum()) for k, t in tensors.items() if t.is_floating_point()}
    bad = {k: n for k, n in bad.items() if n}
    if bad:
        name, n = next(iter(sorted(bad.items())))
        raise ModelError(
            f"{wpath}: {sum(bad.values()):,} weights are NaN or infinite ({len(bad)} tensors, e.g. {name}: {n:,}); "
            "such a network's verdicts mean nothing"
        )
    nov = {k: tensors.pop(k) for k in [k for k in tensors if k.startswith(NOVELTY_PREFIX)]}
    novelty = NormalProfile.from_tensors(nov, str(wpath)) if nov else None
    net = build_network(cfg)
    net.load_state_dict(tensors, strict=True)
    net.eval()
    head = last_linear(net)
    if novelty is not None and novelty.dims != head.in_features:
        raise ModelError(
            f"{wpath}: novelty profile has {novelty.dims} dims, the network's head takes {head.in_features}"
        )
    return LoadedModel(net=net, net_config=cfg, spec=spec, classes=classes, metadata=meta, novelty=novelty)
