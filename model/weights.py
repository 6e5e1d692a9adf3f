"""A model folder read and checked without torch: metadata, the weights' hash, the tensors' names, shapes and values.

``read_model`` does every check ``model.artifacts.load_model`` makes before it builds a network, and returns the
network's tensors as numpy arrays with the novelty and support profiles stored beside them: ``load_model`` builds
torch's network from them, a scan on the CPU ``model.numpy_net``'s (no torch imported). The tensors must be the ones
the config's network has, by name and shape; for MSMRNet those are known without building it
(``model.numpy_net.param_shapes``), for the other architectures torch's network is built on its ``meta`` device.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file

from features.common import InputError, ModelError
from features.encode.spec import FeatureSpec
from model.config import NetConfig
from model.files import CONFIRM_PREFIX, MAX_PARAMETERS, METADATA, NOVELTY_PREFIX, SUPPORT_PREFIX, read_hashed
from model.novelty import NormalProfile
from model.numpy_net import param_shapes, supports
from model.support import SupportProfile

__all__ = ["ModelParts", "network_shapes", "read_model"]

_PROFILES = (NOVELTY_PREFIX, SUPPORT_PREFIX, CONFIRM_PREFIX)  # tensors beside the network's own in the weights file
_CONFIRMER = re.compile(rf"^{CONFIRM_PREFIX}(\d+)\.(.+)$")  # confirmer i's tensor <name>


@dataclass
class ModelParts:
    """A checked model folder: the network's tensors (numpy, by state-dict name) and what describes them."""

    net_config: NetConfig
    spec: FeatureSpec
    classes: tuple[str, ...]
    metadata: dict[str, Any]
    tensors: dict[str, np.ndarray]
    novelty: NormalProfile | None = None  # model.novelty, when the weights file holds one
    support: SupportProfile | None = None  # model.support, when the weights file holds one
    confirmers: list[dict[str, np.ndarray]] = field(default_factory=list)  # model.confirm: each network's tensors


def network_shapes(cfg: NetConfig) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of the network ``cfg`` describes, without allocating it."""
    if supports(cfg):
        return param_shapes(cfg)
    import torch  # the baselines: their shapes from torch's network on the meta device (no memory)

    from model.baselines import build_network

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in build_network(cfg).state_dict().items()}


def read_model(model_dir: Path) -> ModelParts:
    """Read a model directory after checking version, weights hash, shapes and values.

    Raises:
        ModelError: one line naming the file and what is wrong.
    """
    model_dir = Path(model_dir)
    meta, wpath = read_hashed(model_dir)
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
    own = network_shapes(cfg)  # the config's network's size and shapes, before anything is built
    n_confirm = int((meta.get("confirm") or {}).get("members", 0))  # model.confirm's networks beside it
    n_params = sum(math.prod(shape) for shape in own.values()) * (1 + n_confirm)
    if n_params > MAX_PARAMETERS:
        raise ModelError(
            f"{model_dir / METADATA}: net_config describes {n_params:,} parameters"
            f"{f' in {1 + n_confirm} networks' if n_confirm else ''} (at most {MAX_PARAMETERS:,})"
        )
    try:
        with safe_open(str(wpath), framework="numpy") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelError(f"{wpath}: unreadable safetensors file: {e}") from None
    _check_shapes(own, {k: v for k, v in shapes.items() if not k.startswith(_PROFILES)}, cfg, f"{wpath}")
    confirm_shapes: list[dict[str, tuple[int, ...]]] = [{} for _ in range(n_confirm)]
    owner: dict[str, tuple[int, str]] = {}  # confirm tensor -> (its confirmer, its own name)
    for k, shape in shapes.items():
        if k.startswith(CONFIRM_PREFIX):
            hit = _CONFIRMER.match(k)
            if hit is None or int(hit[1]) >= n_confirm:
                raise ModelError(
                    f"{wpath}: tensor {k[:60]!r} belongs to none of the {n_confirm} confirmers {METADATA} names"
                )
            confirm_shapes[int(hit[1])][hit[2]] = shape
            owner[k] = (int(hit[1]), hit[2])
    for i, got in enumerate(confirm_shapes):
        _check_shapes(own, got, cfg, f"{wpath}: confirmer {i}")
    try:
        tensors = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError, TypeError) as e:  # TypeError: a dtype numpy lacks (bfloat16)
        raise ModelError(f"{wpath}: unreadable safetensors file: {e}") from None
    bad = {k: int((~np.isfinite(t)).sum()) for k, t in tensors.items() if np.issubdtype(t.dtype, np.floating)}
    bad = {k: n for k, n in bad.items() if n}
    if bad:
        name, n = next(iter(sorted(bad.items())))
        raise ModelError(
            f"{wpath}: {sum(bad.values()):,} weights are NaN or infinite ({len(bad)} tensors, e.g. {name}: {n:,}); "
            "such a network's verdicts mean nothing"
        )
    confirmers: list[dict[str, np.ndarray]] = [{} for _ in range(n_confirm)]
    for k, (i, name) in owner.items():
        confirmers[i][name] = tensors.pop(k)
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
    return ModelParts(cfg, spec, classes, meta, tensors, novelty, support, confirmers)


def _check_shapes(
    own: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]], cfg: NetConfig, where: str
) -> None:
    """ModelError unless ``stored`` holds exactly the config's tensors, each of its shape."""
    missing = sorted(set(own) - set(stored))
    unexpected = sorted(set(stored) - set(own))
    wrong = sorted(k for k in set(own) & set(stored) if own[k] != stored[k])
    if missing or unexpected or wrong:
        raise ModelError(
            f"{where}: tensors do not fit a {cfg.arch} network: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}, wrong shape {wrong[:3]}"
        )
