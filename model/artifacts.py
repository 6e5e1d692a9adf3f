"""Model directories: ``weights.safetensors`` + ``metadata.json``, written atomically, checked on load.

Nothing is ever unpickled: tensors go through the safetensors format, everything else is JSON.
``metadata.json`` holds ``format_version``, the network config, the feature spec, the class names, the
sha256 of the weights file, and free-form provenance (training data sha256, seed, epochs, metrics, nta
and torch versions). Loading refuses, with a one-line ``ModelError`` naming what differs: a missing
file, unparsable JSON, another format version, a weights file whose sha256 is not the recorded one,
a spec whose column count is not the network's input width, or tensors that do not fit the network.

Nothing in ``metadata.json`` is trusted before ``model.files.validate_metadata`` has checked it against its bounds
(size, nesting, types, ranges, no NaN): a config asking for a million channels or ten million modules is
refused before anything is built. The shapes the config's network has (``model.weights.network_shapes``: MSMRNet's
computed, the baselines' from torch's ``meta`` device, no memory) are compared with the weights file's before the
real one is built, and every tensor must be finite (an all-NaN network would label every flow "normal"). Those
checks are ``model.weights.read_model``'s, which a scan on the CPU uses without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from features.common import ModelError, atomic_path, make_parent
from features.encode.spec import FeatureSpec
from model.baselines import build_network
from model.files import (
    FORMAT_VERSION,
    METADATA,
    WEIGHTS,
    read_metadata,
    sha256_file,
    validate_metadata,
)
from model.network import NetConfig
from model.novelty import NormalProfile, last_linear
from model.support import SupportProfile
from model.weights import read_model

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
    confirmers: list[nn.Module] = field(default_factory=list)  # model.confirm's networks, when it holds them


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
        tensors |= {k: torch.from_numpy(v) for k, v in novelty.to_tensors().items()}
    if support is not None:
        tensors |= {k: torch.from_numpy(v) for k, v in support.to_tensors().items()}
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
    meta.pop("confirm", None)  # one network's folder (model.confirm writes combined ones)
    write_metadata(model_dir, meta)
    return meta


def write_metadata(model_dir: Path, meta: dict[str, Any]) -> None:
    """Rewrite ``metadata.json`` atomically (e.g. to record test metrics); weights are untouched."""
    with atomic_path(Path(model_dir) / METADATA) as tmp:
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")


def load_model(model_dir: Path) -> LoadedModel:
    """Rebuild the network from a model directory after checking version, weights hash and shapes
    (``model.weights.read_model``).

    Raises:
        ModelError: one line naming the file and what is wrong.
    """
    parts = read_model(Path(model_dir))
    cfg, novelty = parts.net_config, parts.novelty
    wpath = Path(model_dir) / WEIGHTS
    net = _built(cfg, parts.tensors)
    head = last_linear(net)
    if novelty is not None and novelty.dims != head.in_features:
        raise ModelError(
            f"{wpath}: novelty profile has {novelty.dims} dims, the network's head takes {head.in_features}"
        )
    return LoadedModel(
        net=net, net_config=cfg, spec=parts.spec, classes=parts.classes, metadata=parts.metadata, novelty=novelty,
        support=parts.support, confirmers=[_built(cfg, t) for t in parts.confirmers],
    )  # fmt: skip


def _built(cfg: NetConfig, tensors: dict[str, Any]) -> nn.Module:
    """The config's network in eval mode with these (checked) tensors."""
    net = build_network(cfg)
    # copies: the arrays read from the file are read-only, and torch warns of tensors made from them
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    return net.eval()
