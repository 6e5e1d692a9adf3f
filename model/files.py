"""A model folder's files, checked without torch: where the shipped models are, ``metadata.json``, the weights' hash.

``nta scan`` checks these before reading any packet (a bad model is refused at once) and builds the network
(``model.artifacts.load_model``, which imports torch, about 1.3 s) on a thread while the captures are read.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.common import InputError, ModelError
from features.encode.spec import FeatureSpec

__all__ = [
    "FORMAT_VERSION",
    "METADATA",
    "NOVELTY_PREFIX",
    "WEIGHTS",
    "CheckedModel",
    "check_model_files",
    "default_full_model_dir",
    "default_model_dir",
    "read_metadata",
    "sha256_file",
]

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
METADATA = "metadata.json"
NOVELTY_PREFIX = "novelty."  # tensors of the model.novelty profile in the weights file


def default_model_dir() -> Path:
    """The shipped capture-features model (``model/default``), used by ``nta scan`` unless told otherwise."""
    return Path(__file__).resolve().parent / "default"


def default_full_model_dir() -> Path:
    """The shipped all-41-features model (``model/default-full``), for NSL-KDD-style records."""
    return Path(__file__).resolve().parent / "default-full"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_metadata(model_dir: Path) -> dict[str, Any]:
    """Parse ``metadata.json`` and check its format version (ModelError otherwise)."""
    model_dir = Path(model_dir)
    path = model_dir / METADATA
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no model directory there")
    if not path.is_file():
        raise ModelError(f"{path}: missing (a model directory holds {WEIGHTS} and {METADATA})")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable model metadata: {e}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path}: model metadata is not a JSON object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{path}: model format version {meta.get('format_version')!r}, this nta reads version {FORMAT_VERSION}"
        )
    return meta


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


def check_model_files(model_dir: Path) -> CheckedModel:
    """Metadata, the weights' sha256 and the feature spec of a model folder (ModelError, one line, otherwise)."""
    model_dir = Path(model_dir)
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
