"""A head taught on a frozen model's pooled features: its classes, its honest numbers, how to
predict with it, and its file (one .safetensors: weights + setup, classes and metrics as JSON
metadata).

    TrainedHead.predict(images, top_k=5, ...) -> Prediction | list[Prediction]  (as predict)
    TrainedHead.save(path);  TrainedHead.to_bytes() -> bytes
    load_head(path_or_bytes) -> TrainedHead

``linear`` is a torch ``nn.Linear(num_features, len(classes))`` on the model's pooled features
(``forward_head(forward_features(x), pre_logits=True)``), the scaler folded in: its logits are
the head's answer for one view. With ``setup["views"]`` other than "none", ``predict`` averages
the probabilities of the views, as the cross-validation did.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from modelkit.errors import WeightsLoadError
from modelkit.runtime.embeddings import embeddings
from modelkit.runtime.engine import Prediction, _top

FORMAT = "modelkit-head"
VERSION = "1"
MAX_HEAD_BYTES = 256 * 2**20
METRICS = ("cv_accuracy", "balanced_accuracy", "confusion", "per_class", "chance", "p_value",
           "fold_accuracies", "misclassified", "warnings", "fit")  # fmt: skip
# setup -> the engine's settings (what rebuilds the same model and preprocessing)
ENGINE_SETTINGS = ("pretrained", "in_chans", "in_chans_init", "rgb_channels", "channels",
                   "scaling")  # fmt: skip


@dataclass
class TrainedHead:
    classes: list[str]
    weight: np.ndarray  # (K, D) float32, on raw pooled features
    bias: np.ndarray  # (K,) float32
    setup: dict
    cv_accuracy: float = float("nan")
    balanced_accuracy: float = float("nan")
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    per_class: dict = field(default_factory=dict)
    chance: float = float("nan")
    p_value: float = float("nan")
    fold_accuracies: list[float] = field(default_factory=list)
    misclassified: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fit: dict = field(default_factory=dict)  # C, folds, grid and its scores

    def __post_init__(self):
        self.weight = np.ascontiguousarray(self.weight, np.float32)
        self.bias = np.ascontiguousarray(self.bias, np.float32)
        self.confusion = np.asarray(self.confusion, np.int64)
        self.linear = torch.nn.Linear(self.weight.shape[1], self.weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(self.weight))
            self.linear.bias.copy_(torch.from_numpy(self.bias))
        self.linear.eval().requires_grad_(False)

    @property
    def model(self) -> str:
        """The base model's registry name (with its tag)."""
        return self.setup["model"]

    def engine_settings(self) -> dict:
        """The keyword arguments of predict/embeddings that rebuild this head's inputs."""
        return {k: self.setup[k] for k in ENGINE_SETTINGS if self.setup.get(k) is not None}

    def probabilities(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K) logits and probabilities from (N, V, D) pooled features; views averaged."""
        logits = torch.from_numpy(vectors).double() @ torch.from_numpy(self.weight).double().T
        logits = logits + torch.from_numpy(self.bias).double()
        probs = torch.softmax(logits, -1).mean(1)
        if vectors.shape[1] > 1:  # logits whose softmax is the mean of the views' softmaxes
            return probs.log().numpy(), probs.numpy()
        return logits[:, 0].numpy(), probs.numpy()

    def predict(self, images, top_k: int = 5, *, image_bytes=None, **options):
        """The taught classes for one image or a batch (as ``modelkit.predict`` returns them).

        ``options``: device, precision, batch_size, use_result_cache, model_cache, result_cache,
        progress (those of ``embeddings``)."""
        emb = embeddings(images, self.model, views=self.setup.get("views", "none"),
                         image_bytes=image_bytes, **self.engine_settings(),
                         **options)  # fmt: skip
        logits, _ = self.probabilities(emb.vectors)
        out = []
        for row in logits.astype(np.float32):
            labels, probs, idx = _top(row.astype(np.float64), self.classes, top_k)
            out.append(Prediction(
                model=self.model, labels=labels, probabilities=probs, indices=idx, logits=row,
                head_is_random=False, adaptations=list(emb.adaptations),
                result_cache_hit=bool(emb.cache_hits.all()), timings=emb.timings,
            ))  # fmt: skip
        single = not isinstance(images, list | tuple) and getattr(images, "ndim", 3) != 4
        return out[0] if single else out

    def metrics(self) -> dict:
        """The numbers as plain JSON types."""
        out = {name: getattr(self, name) for name in METRICS}
        out["confusion"] = self.confusion.tolist()
        return out

    def to_bytes(self) -> bytes:
        metadata = {
            "format": FORMAT,
            "version": VERSION,
            "classes": json.dumps(self.classes),
            "setup": json.dumps(self.setup),
            "metrics": json.dumps(self.metrics()),
        }
        tensors = {"weight": torch.from_numpy(self.weight), "bias": torch.from_numpy(self.bias)}
        return save_tensors(tensors, metadata=metadata)

    def save(self, path: str | Path) -> Path:
        """One .safetensors file: weight, bias, and the setup, classes and metrics as metadata."""
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path


def _refuse(name: str, problem: str) -> WeightsLoadError:
    return WeightsLoadError(
        f"Cannot use '{name}' as a taught head: {problem}. Give a .safetensors file saved by "
        "modelkit's Teach (TrainedHead.save or the app's export)."
    )


def _metadata(data: bytes, name: str) -> dict:
    if len(data) < 8:
        raise _refuse(name, "the file is too short")
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(len(data) - 8, 16 * 2**20):
        raise _refuse(name, "its header is damaged")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse(name, "its header is not readable") from None
    return header.get("__metadata__") or {} if isinstance(header, dict) else {}


def load_head(source: str | Path | bytes, name: str | None = None) -> TrainedHead:
    """Rebuild a TrainedHead from its .safetensors file (a path, or the file's bytes)."""
    if isinstance(source, bytes | bytearray):
        data, name = bytes(source), name or "head file"
    else:
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise _refuse(name, "the file does not exist")
        if path.stat().st_size > MAX_HEAD_BYTES:
            raise _refuse(name, f"it is larger than {MAX_HEAD_BYTES // 2**20} MiB")
        data = path.read_bytes()
    meta = _metadata(data, name)
    if meta.get("format") != FORMAT:
        raise _refuse(name, "it holds no modelkit head (its metadata has no 'format')")
    if meta.get("version") != VERSION:
        raise _refuse(name, f"it is version {meta.get('version')!r}; this modelkit reads "
                      f"version {VERSION}")  # fmt: skip
    try:
        tensors = load_tensors(data)
        classes, setup = json.loads(meta["classes"]), json.loads(meta["setup"])
        metrics = json.loads(meta.get("metrics", "{}"))
    except Exception as exc:  # noqa: BLE001 - any damage in a user's file is the same answer
        raise _refuse(name, f"it is damaged ({type(exc).__name__})") from None
    weight, bias = tensors.get("weight"), tensors.get("bias")
    if weight is None or bias is None or weight.ndim != 2 or bias.shape != (weight.shape[0],):
        raise _refuse(name, "its tensors are not a weight (K, D) and a bias (K,)")
    if len(classes) != weight.shape[0] or "model" not in setup:
        raise _refuse(name, "its classes or setup do not match its weights")
    metrics = {k: v for k, v in metrics.items() if k in METRICS}
    return TrainedHead(classes=list(classes), weight=weight.float().numpy(),
                       bias=bias.float().numpy(), setup=setup, **metrics)  # fmt: skip
