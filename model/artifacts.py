"""Model directories: ``weights.safetensors`` + ``metadata.json``, written atomically, checked on load.

Nothing is ever unpickled: tensors go through the safetensors format, everything else is JSON.
``metadata.json`` holds ``format_version``, the network config, the feature spec, the class names, the
sha256 of the weights file, and free-form provenance (training data sha256, seed, epochs, metrics, nta
and torch versions). Loading refuses, with a one-line ``ModelError`` naming what differs: a missing
file, unparsable JSON, another format version, a weights file whose sha256 is not the recorded one,
a spec whose column count is not the network's input width, or tensors that do not fit the network.

Nothing in ``metadata.json`` is trusted before ``model.files.validate_metadata`` has checked it against its bounds
(size, nesting, types, ranges, no NaN): a config asking for a million channels or ten million modules is
refused before anything is built. The network is then built on torch's ``meta`` device (no memory) and
compared with the weights file's tensor shapes before the real one is built, and every tensor must be finite
(an all-NaN network would label every flow "normal").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from features.common import InputError, ModelError, atomic_path, make_parent
from features.encode.spec import FeatureSpec
from model.baselines import build_network
from model.files import (
    FORMAT_VERSION,
    MAX_PARAMETERS,
    METADATA,
    NOVELTY_PREFIX,
    SUPPORT_PREFIX,
    WEIGHTS,
    read_metadata,
    sha256_file,
    validate_metadata,
)
from model.network import NetConfig
from model.novelty import NormalProfile, last_linear
from model.support import SupportProfile

_PROFILES = (NOVELTY_PREFIX, SUPPORT_PREFIX)  # tensors beside the network's own in the weights file

__all__ = [
    "FORMAT_VERSION",
    "METADATA",
    "WEIGHTS",
    "LoadedModel",
    "load_model",
    "nta_version",
    "read_metadata",
    "save_model",
    "validate_metadata",
    "write_metadata",
]


@dataclass
class LoadedModel:
    """A network rebuilt from a model directory, in eval mode on CPU, with what describes it."""

    net: nn.Module
    net_config: NetConfig
    spec: FeatureSpec
    classes: tuple[str, ...]
    metadata: dict[str, Any]
    novelty: NormalProfile | None = None  # model.novelty, when the model directory holds one
    support: SupportProfile | None = None  # model.support, when the model directory holds one


def nta_version() -> str:
    """The installed nta version (model/ must not import analyzer, which holds the canonical string)."""
    try:
        return importlib_metadata.version("nta")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


_sha256 = sha256_file  # the name tests and older callers use


def save_model(
    model_dir: Path,
    net: nn.Module,
    net_config: NetConfig,
    spec: FeatureSpec,
    classes: tuple[str, ...],
    extra: dict[str, Any] | None = None,
    novelty: NormalProfile | None = None,
    support: SupportProfile | None = None,
) -> dict[str, Any]:
    """Write the weights, then the metadata (each atomically); return the metadata written.

    ``extra`` (provenance, metrics) is merged into the metadata; the keys this function owns win.
    ``novelty`` (``model.novelty``) and ``support`` (``model.support``) are stored as ``novelty.*`` and
    ``support.*`` tensors beside the weights.
    """
    model_dir = Path(model_dir)
    make_parent(model_dir / WEIGHTS)  # a file in the way is one line naming it, not Python's errno text
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    if novelty is not None:
        tensors |= novelty.to_tensors()
    if support is not None:
        tensors |= support.to_tensors()
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
    if support is not None:  # absent, not null, without one: metadata of models from before it stays as it was
        meta["support"] = {
            "centres": len(support.centres),
            "quantile": support.quantile,
            "radius": [round(float(r), 4) for r in support.radius],
            "normal_range": support.normal_lo is not None,
        }
    else:
        meta.pop("support", None)
    write_metadata(model_dir, meta)
    return meta


def write_metadata(model_dir: Path, meta: dict[str, Any]) -> None:
    """Rewrite ``metadata.json`` atomically (e.g. to record test metrics); weights are untouched."""
    with atomic_path(Path(model_dir) / METADATA) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")


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
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys() if not k.startswith(_PROFILES)}  # noqa: SIM118
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
    sup = {k: tensors.pop(k) for k in [k for k in tensors if k.startswith(SUPPORT_PREFIX)]}
    support = SupportProfile.from_tensors(sup, str(wpath), cfg.n_features, cfg.n_classes) if sup else None
    if (support is None) != (meta.get("support") is None):  # the scan's report says from the metadata alone
        raise ModelError(
            f"{wpath}: {'no' if support is None else 'a'} support profile, but {METADATA} says "
            f"{'there is one' if support is None else 'there is none'}"
        )
    if support is not None and bool(meta["support"].get("normal_range", False)) != (support.normal_lo is not None):
        raise ModelError(f"{wpath}: the support profile's normal ranges and {METADATA}'s normal_range disagree")
    net = build_network(cfg)
    net.load_state_dict(tensors, strict=True)
    net.eval()
    head = last_linear(net)
    if novelty is not None and novelty.dims != head.in_features:
        raise ModelError(
            f"{wpath}: novelty profile has {novelty.dims} dims, the network's head takes {head.in_features}"
        )
    return LoadedModel(
        net=net, net_config=cfg, spec=spec, classes=classes, metadata=meta, novelty=novelty, support=support
    )
