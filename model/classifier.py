"""What a scan asks of a model, and the CPU's way to answer without torch.

``ClassifierBase``: a loaded model's spec, classes and profiles, and everything that does not depend on how the
network is computed (probabilities checked finite, the novelty and support gates). Two subclasses compute it:
``model.infer.Classifier`` with torch's network (training, the studies, CUDA, every architecture) and
``NumpyClassifier`` with ``model.numpy_net`` (MSMRNet on the CPU). ``model.scan_classifier.load_classifier`` picks
for a scan: the numpy network when the scan runs on the CPU, which then never imports torch (about 1.3 s of CPU
alone; see ``model.numpy_net``), torch's otherwise. Their probabilities agree to about 1e-6.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from features.common import ModelError
from features.encode.spec import FeatureSpec
from model.config import NetConfig
from model.files import WEIGHTS
from model.novelty import NormalProfile
from model.numpy_net import NumpyNet
from model.support import SupportProfile
from model.weights import ModelParts, read_model

__all__ = ["ClassifierBase", "NumpyClassifier"]


@dataclass
class ClassifierBase:
    """A loaded network with its feature spec and class names; probabilities and attributions in batches."""

    net: Any  # the subclass's network
    net_config: NetConfig
    spec: FeatureSpec
    classes: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    novelty: NormalProfile | None = None  # model.novelty profile, when the model directory holds one
    support: SupportProfile | None = None  # model.support profile, when the model directory holds one
    threads: int | None = None  # CPU threads for inference (the subclass says how it reads None and 0)
    confirmers: list[Any] = field(default_factory=list)  # model.confirm: networks that vote on flagged rows

    @property
    def model_id(self) -> str:
        """A short stable id: the first 12 hex digits of the weights' sha256."""
        return str(self.metadata.get("weights_sha256", "unsaved"))[:12]

    @property
    def feature_set(self) -> str:
        """``capture`` or ``full`` (what the model was trained on)."""
        return str(self.metadata.get("feature_set", "full" if "hot" in self.spec.columns else "capture"))

    def encode(self, df: pl.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
        """``spec.transform``: float32 (n, F) and the per-column count of values outside the spec."""
        return self.spec.transform(df)

    def check_columns(self, encoded_columns: list[str]) -> None:
        """ModelError naming the first differences when ``encoded_columns`` is not the spec's list."""
        want = self.spec.encoded_columns
        if list(encoded_columns) == want:
            return
        extra = [c for c in encoded_columns if c not in set(want)]
        missing = [c for c in want if c not in set(encoded_columns)]
        detail = f"missing {missing[:3]}, unexpected {extra[:3]}" if extra or missing else "same columns, other order"
        raise ModelError(
            f"feature columns do not match model {self.model_id}: got {len(encoded_columns)}, model expects "
            f"{len(want)}; {detail}"
        )

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.net_config.n_features:
            raise ModelError(
                f"input has shape {x.shape}, model {self.model_id} expects (n, {self.net_config.n_features})"
            )
        return np.ascontiguousarray(x, dtype=np.float32)

    def _forward(self, x: np.ndarray, batch_size: int, keep_reps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``_pass`` on this classifier's device: the plain and the gated predictions rest on the same logits on
        every device (bf16 autocast on CUDA). Non-finite probabilities (NaN or
        infinity inside the network) are a ``ModelError``: an argmax would quietly turn them into "normal"."""
        x = self._check_x(x)
        proba, z = self._pass(x, batch_size, keep_reps)
        self._check_finite(proba)
        if self.confirmers:
            proba = self._confirmed(x, proba, batch_size)
        return proba, z

    def _check_finite(self, proba: np.ndarray) -> np.ndarray:
        bad = ~np.isfinite(proba).all(axis=1)
        if bad.any():
            raise ModelError(
                f"model {self.model_id}: class probabilities are NaN or infinite for {int(bad.sum()):,} of "
                f"{len(proba):,} rows (the network overflows or holds NaN); no verdict is given"
            )
        return proba

    def _confirmed(self, x: np.ndarray, proba: np.ndarray, batch_size: int) -> np.ndarray:
        """``model.confirm``'s rule: a row the primary network calls an attack class takes the mean of every
        network's probabilities (the primary's and each confirmer's, equal weights); the others keep the primary's.
        A row's result depends on that row alone (the numpy network's bits do not depend on a row's batch)."""
        flagged = np.flatnonzero(proba.argmax(axis=1) != 0)  # (m,)
        if not len(flagged):
            return proba
        xs = x[flagged]  # (m, F)
        total = proba[flagged].astype(np.float64)  # (m, K)
        for net in self.confirmers:
            total += self._check_finite(self._confirm_pass(net, xs, batch_size))
        out = proba.copy()
        out[flagged] = (total / (1 + len(self.confirmers))).astype(np.float32)
        return out

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Class probabilities: float32 (n, F) -> float32 (n, K), columns in ``classes`` order."""
        return self._forward(x, batch_size, keep_reps=False)[0]

    def predict(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(class index (n,) int64, probabilities (n, K) float32)."""
        p = self.predict_proba(x, batch_size)
        return p.argmax(axis=1), p

    def predict_gated(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class index (n,), probabilities (n, K), novel (n,) bool) with the ``model.novelty`` gate applied.

        ModelError when the model holds no novelty profile. The same pass as ``predict_proba`` (on CUDA
        under bf16 autocast; the representation is cast to float32 for the distance), so a row the gate
        leaves alone keeps exactly the class ``predict_proba`` gives it.
        """
        if self.novelty is None:
            raise ModelError(f"model {self.model_id} has no novelty profile (train it again with this nta)")
        proba, z = self._forward(x, batch_size, keep_reps=True)  # (n, K), (n, D)
        assert z is not None
        pred, novel = self.novelty.gate(proba, z)
        return pred, proba, novel

    def predict_supported(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class index (n,), probabilities (n, K), unsupported (n,) bool) with the ``model.support`` gate: rows
        called an attack class far from that class's training rows and near normal ones get class 0 (normal).

        Without a support profile: argmax, nothing unsupported. The probabilities are ``predict_proba``'s.
        """
        proba = self.predict_proba(x, batch_size)  # (n, K)
        pred = proba.argmax(axis=1)
        if self.support is None:
            return pred, proba, np.zeros(len(pred), dtype=bool)
        off = self.support.unsupported(pred, self._check_x(x))
        return np.where(off, 0, pred), proba, off

    def _pass(self, x: np.ndarray, batch_size: int, keep_reps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities float32 (n, K), the head's input float32 (n, D) or None) of float32 (n, F) rows."""
        raise NotImplementedError

    def _confirm_pass(self, net: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
        """A confirmer's probabilities, float32 (m, K), of float32 (m, F) rows."""
        raise NotImplementedError

    def attribute(self, x: np.ndarray, target: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Gradient x input of the ``target`` class logit per encoded feature: float32 (n, F).

        Sum over ``spec.source_feature`` groups for a per-KDD-feature attribution."""
        raise NotImplementedError


@dataclass
class NumpyClassifier(ClassifierBase):
    """``model.numpy_net`` on the CPU. ``threads``: None or 0 (nta's choice) computes on the caller's thread (a scan
    runs inference on a thread of its own beside the reader, on a machine its reading keeps busy); N > 1 splits the
    rows over N threads (numpy releases the GIL in its arithmetic)."""

    net: NumpyNet

    @classmethod
    def load(cls, model_dir: Path) -> NumpyClassifier:
        """Load and check a model directory (ModelError, one line, when missing/corrupt/tampered/mismatched, or
        ValueError when its network is not one ``model.numpy_net`` computes: ``supports``)."""
        return cls.from_parts(read_model(Path(model_dir)), Path(model_dir))

    @classmethod
    def from_parts(cls, m: ModelParts, model_dir: Path) -> NumpyClassifier:
        """The classifier of a model folder ``model.weights.read_model`` has read and checked."""
        net = NumpyNet(m.net_config, m.tensors)
        if m.novelty is not None and m.novelty.dims != net.reps_dims:
            raise ModelError(
                f"{Path(model_dir) / WEIGHTS}: novelty profile has {m.novelty.dims} dims, the "
                f"network's head takes {net.reps_dims}"
            )
        return cls(
            net=net, net_config=m.net_config, spec=m.spec, classes=m.classes, metadata=m.metadata, device="cpu",
            novelty=m.novelty, support=m.support, confirmers=[NumpyNet(m.net_config, t) for t in m.confirmers],
        )  # fmt: skip

    def _pass(self, x: np.ndarray, batch_size: int, keep_reps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        logits, reps = self._logits(self.net, x, keep_reps)
        return _softmax(logits), reps

    def _confirm_pass(self, net: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
        return _softmax(self._logits(net, x, False)[0])

    def _logits(self, net: NumpyNet, x: np.ndarray, keep_reps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(x)
        block = net.rows_per_block
        parts = max(1, min(self.threads or 1, -(-n // block)))
        if parts == 1:
            return net.logits(x, keep_reps)
        # whole blocks per thread: a row's bits do not depend on the split (model.numpy_net.BLOCK)
        step = -(-n // (parts * block)) * block
        with ThreadPoolExecutor(parts, thread_name_prefix="nta-numpy") as pool:
            done = list(pool.map(lambda s: net.logits(x[s : s + step], keep_reps), range(0, n, step)))
        logits = np.concatenate([d[0] for d in done])
        reps = np.concatenate([d[1] for d in done if d[1] is not None]) if keep_reps else None
        return logits, reps

    def attribute(self, x: np.ndarray, target: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Gradient x input of the ``target`` class logit per encoded feature: float32 (n, F).

        Sum over ``spec.source_feature`` groups for a per-KDD-feature attribution. The gradient is
        ``model.numpy_net.NumpyNet.input_grad``: the one torch's autograd gives (tests/model/test_numpy_net.py)."""
        x = self._check_x(x)
        tgt = np.asarray(target, dtype=np.int64).reshape(-1)
        if len(tgt) != len(x):
            raise ModelError(f"attribute: {len(tgt)} targets for {len(x)} rows")
        if len(tgt) and (tgt.min() < 0 or tgt.max() >= len(self.classes)):
            raise ModelError(f"attribute: targets outside the {len(self.classes)} classes")
        return self.net.input_grad(x, tgt) * x


def _softmax(logits: np.ndarray) -> np.ndarray:
    """float32 (n, K) logits -> probabilities, as ``torch.softmax``: shifted by the row's largest logit."""
    with np.errstate(over="ignore", invalid="ignore"):  # infinite logits give NaN: ClassifierBase refuses them
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
