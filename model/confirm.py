"""Confirmers: networks of other seeds that vote on what a model's own network calls an attack.

Why: the seed of a training alone moves a capture model's false alarms on other networks' traffic by several points
(``docs/results/seed-variance.md``); averaging several seeds' networks steadies it, but running every network on every
flow would multiply a scan's inference. So a combined model keeps its **primary** network for every flow and asks its
confirmers only about the flows the primary calls an attack class: those take the class with the largest mean
probability over all the networks (equal weights), the others keep the primary's verdict
(``model.classifier.ClassifierBase._confirmed``). The stage can take an alarm away or change its class, never raise
one; on benign traffic it costs nothing beyond the few flagged flows. The primary's support and novelty profiles and
its explanations (input gradients) stay the primary's.

A combined model is one model folder: ``weights.safetensors`` holds the primary's tensors and profiles as before plus
confirmer i's tensors as ``confirm{i}.<name>``; ``metadata.json`` is the primary's with ``confirm`` (how many, the rule,
each source's weights sha256) and the new file's sha256, so its model id is its own; its ``train`` and
``metrics`` stay the primary's (``tests/benchmarks/validation_figure.py`` gives the combined model's own). ``combine`` refuses a confirmer
whose network config, classes or feature encoding differs from the primary's (every network must read the same
matrix). No torch is imported.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from features.common import ModelError, atomic_folder
from features.encode.spec import FeatureSpec
from model.files import CONFIRM_PREFIX, MAX_CONFIRMERS, METADATA, WEIGHTS, sha256_file
from model.weights import read_model

__all__ = ["RULE", "combine", "encoding"]

RULE = "mean-of-flagged"


def encoding(spec: FeatureSpec) -> dict[str, Any]:
    """What decides a spec's matrix (columns, scaling, vocabularies, aliases, each column's min, max and log1p): two
    specs with the same encoding turn the same features into the same floats whatever their means and deviations."""
    return {
        "columns": list(spec.columns),
        "scaling": spec.scaling,
        "vocab": {k: list(v) for k, v in spec.vocab.items()},
        "aliases": {k: dict(v) for k, v in spec.aliases.items()},
        "stats": {
            k: {"min": v["min"], "max": v["max"], "log1p": bool(v["log1p"])}
            | ({} if spec.scaling == "minmax" else {"mean": v.get("mean"), "std": v.get("std")})
            for k, v in spec.stats.items()
        },
    }


def combine(primary: Path, confirmers: list[Path], out: Path) -> dict[str, Any]:
    """Write a model folder at ``out``: ``primary`` with ``confirmers`` voting on its alarms; returns its metadata.

    Raises:
        ModelError: a folder unreadable or tampered (``model.weights.read_model``), a primary that already holds
            confirmers, a confirmer that does not fit the primary, too many or none.
    """
    if not 1 <= len(confirmers) <= MAX_CONFIRMERS:
        raise ModelError(f"{len(confirmers)} confirmers: a combined model takes 1 to {MAX_CONFIRMERS}")
    first = read_model(Path(primary))
    if first.confirmers:
        raise ModelError(f"{primary}: already holds confirmers; combine its primary network's folder instead")
    if first.metadata.get("arch", first.net_config.arch) not in ("msmrnet", "msmnet"):
        raise ModelError(f"{primary}: {first.net_config.arch} networks are not combined (MSMRNet and MSMNet are)")
    want = encoding(first.spec)
    # the primary's own names, profiles included (read_model has just checked the file's hash)
    tensors: dict[str, np.ndarray] = dict(load_file(str(Path(primary) / WEIGHTS)))
    sources = []
    for i, c in enumerate(confirmers):
        other = read_model(Path(c))
        for what, a, b in (
            ("network config", other.net_config.to_dict(), first.net_config.to_dict()),
            ("classes", list(other.classes), list(first.classes)),
            ("feature encoding", encoding(other.spec), want),
        ):
            if a != b:
                raise ModelError(f"{c}: its {what} differs from the primary's ({primary}); it cannot vote on its rows")
        if other.confirmers:
            raise ModelError(f"{c}: holds confirmers itself; give its primary network's folder")
        tensors |= {f"{CONFIRM_PREFIX}{i}.{k}": v for k, v in other.tensors.items()}
        sources.append(str(other.metadata["weights_sha256"]))
    meta = copy.deepcopy(first.metadata)
    meta["confirm"] = {
        "members": len(confirmers), "rule": RULE, "primary": str(first.metadata["weights_sha256"]), "sources": sources,
    }  # fmt: skip
    with atomic_folder(Path(out), (WEIGHTS, METADATA)) as new:  # both files or neither
        save_file(tensors, str(new / WEIGHTS), metadata={"format": "pt"})
        meta["weights_sha256"] = sha256_file(new / WEIGHTS)
        (new / METADATA).write_text(json.dumps(meta, indent=1, sort_keys=False) + "\n")
        read_model(new)  # what is written reads back, every check made
    return meta
