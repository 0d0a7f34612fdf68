"""A head taught on a frozen model's pooled features: its classes, its honest numbers, how to
predict with it, and its file (one .safetensors: weights + setup, classes and metrics as JSON
metadata).

    TrainedHead.settings -> RunSettings          the model and input it was taught on
    TrainedHead.settings_for(given) -> (RunSettings, notes)   the head's settings win
    TrainedHead.probabilities(vectors) -> (logits, probabilities)    the one probability rule
    TrainedHead.predict(images, top_k=5, ...) -> Prediction | list[Prediction]  (as predict)
    TrainedHead.label_issues(limit=None, rank_by="self_confidence") -> [{index, name, given,
        suggested, score}]   the examples whose label the out-of-fold probabilities contradict
    TrainedHead.save(path);  TrainedHead.to_bytes() -> bytes
    load_head(path_or_bytes) -> TrainedHead;  as_head(head_or_file) -> TrainedHead

``linear`` is a torch ``nn.Linear(num_features, len(classes))`` on the model's pooled features
(``forward_head(forward_features(x), pre_logits=True)``), the scaler folded in: its logits are
the head's answer for one view. With ``setup["views"]`` other than "none", the probabilities of
the views are averaged, as the cross-validation did.

The head keeps its examples' out-of-fold probabilities (N, K), their given classes (N,) and
names: two small tensors and a JSON list in the same file. They are optional, so the file stays
version "1": a file without them (saved before) loads, and only ``label_issues`` needs them.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from modelkit.errors import ConfigError, WeightsLoadError
from modelkit.models.registry import split_name
from modelkit.runtime.embeddings import embeddings
from modelkit.runtime.engine import Prediction, top_k_of
from modelkit.runtime.settings import RunSettings
from modelkit.teach.issues import find_label_issues

FORMAT = "modelkit-head"
VERSION = "1"
MAX_HEAD_BYTES = 256 * 2**20
METRICS = ("cv_accuracy", "balanced_accuracy", "confusion", "per_class", "chance", "p_value",
           "fold_accuracies", "misclassified", "warnings", "fit", "learning_curve")  # fmt: skip
# the run settings that are the user's to choose beside a head (where and how it runs)
RUN_CHOICES = ("device", "precision", "backend")


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
    learning_curve: dict = field(default_factory=dict)  # teach.curve's estimate, when asked for
    # the examples as the cross-validation saw them (None: a file saved without them)
    oof_probabilities: np.ndarray | None = None  # (N, K) float32, out of fold
    example_labels: np.ndarray | None = None  # (N,) int64: each example's given class
    example_names: list[str] = field(default_factory=list)  # where each example came from

    def __post_init__(self):
        self.weight = np.ascontiguousarray(self.weight, np.float32)
        self.bias = np.ascontiguousarray(self.bias, np.float32)
        self.confusion = np.asarray(self.confusion, np.int64)
        if self.oof_probabilities is not None:
            self.oof_probabilities = np.asarray(self.oof_probabilities, np.float32)
            self.example_labels = np.asarray(self.example_labels, np.int64)
        self.linear = torch.nn.Linear(self.weight.shape[1], self.weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(self.weight))
            self.linear.bias.copy_(torch.from_numpy(self.bias))
        self.linear.eval().requires_grad_(False)

    @property
    def model(self) -> str:
        """The base model's registry name (with its tag)."""
        return self.setup["model"]

    @property
    def settings(self) -> RunSettings:
        """The model and preprocessing the head was taught on (its setup's run settings)."""
        return RunSettings.from_dict({k: v for k, v in self.setup.items() if v is not None})

    def settings_for(self, given: RunSettings | None) -> tuple[RunSettings, list[str]]:
        """The settings of a run with this head: the head's own, with the device and precision
        ``given``. Any other setting ``given`` that differs from the head's (and from the
        default) is named in a note: it was not used, since the head was not taught with it."""
        own = self.settings
        if given is None:
            return own, []
        mine, defaults, notes = own.to_dict(), RunSettings().to_dict(), []
        for key, value in given.to_dict().items():
            if key in RUN_CHOICES or value in (mine[key], defaults[key]):
                continue
            if key in ("model", "tag") and split_name(given.name)[0] == own.model:
                continue
            notes.append(f"The head was taught with {key} {mine[key]!r}; the {key} {value!r} "
                         "given was not used.")  # fmt: skip
        return own.replace(**{k: getattr(given, k) for k in RUN_CHOICES}), notes

    def probabilities(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, K) logits and probabilities from (N, V, D) pooled features; views averaged."""
        logits = torch.from_numpy(vectors).double() @ torch.from_numpy(self.weight).double().T
        logits = logits + torch.from_numpy(self.bias).double()
        probs = torch.softmax(logits, -1).mean(1)
        if vectors.shape[1] > 1:  # logits whose softmax is the mean of the views' softmaxes
            return probs.log().numpy(), probs.numpy()
        return logits[:, 0].numpy(), probs.numpy()

    def predict(
        self,
        images,
        top_k: int = 5,
        *,
        image_bytes=None,
        device: str = "auto",
        precision: str = "fp32",
        backend: str | None = None,
        batch_size: int = 32,
        progress=None,
        use_result_cache: bool = True,
        model_cache=None,
        result_cache=None,
    ):
        """The taught classes for one image or a batch (as ``modelkit.predict`` returns them).

        Args:
            images: one image or a list (as ``modelkit.predict`` takes them).
            top_k: how many classes to report.
            image_bytes: the file's bytes (a list of them for a batch), for the result cache.
            device: where the model runs (the head's other settings are its own).
            precision: fp32, fp16 (GPU) or bf16.
            backend: auto, torch, onnxruntime or openvino (None: MODELKIT_BACKEND, else auto).
            batch_size: images per forward pass.
            progress: called with (images done, total).
            use_result_cache: keep and reuse embeddings on disk.
            model_cache: the built models to use (the process's when None).
            result_cache: the results on disk to use (the process's when None).

        Returns:
            A Prediction (one image) or a list of them, with the head's classes.
        """
        batch = isinstance(images, list | tuple) or getattr(images, "ndim", 3) == 4
        blobs = image_bytes if batch or image_bytes is None else [image_bytes]
        emb = embeddings(images if batch else [images],
                         self.settings.replace(device=device, precision=precision,
                                               backend=backend),
                         views=self.setup.get("views", "none"), image_bytes=blobs,
                         batch_size=batch_size, progress=progress,
                         use_result_cache=use_result_cache, model_cache=model_cache,
                         result_cache=result_cache)  # fmt: skip
        logits, probabilities = self.probabilities(emb.vectors)
        out = []
        for row, probs in zip(logits.astype(np.float32), probabilities, strict=True):
            labels, values, idx = top_k_of(probs, self.classes, top_k)
            out.append(Prediction(
                model=self.model, labels=labels, probabilities=values, indices=idx, logits=row,
                head_is_random=False, adaptations=list(emb.adaptations),
                result_cache_hit=bool(emb.cache_hits.all()), timings=emb.timings,
            ))  # fmt: skip
        return out if batch else out[0]

    def label_issues(
        self, limit: int | None = None, rank_by: str = "self_confidence"
    ) -> list[dict]:
        """The examples whose given label the out-of-fold probabilities contradict (confident
        learning, ``teach.issues``), most suspicious first.

        Args:
            limit: at most this many (all when None).
            rank_by: "self_confidence" (the probability of the given label) or
                "normalized_margin" (it beside the likeliest other class); the entry's score.

        Returns:
            [{"index", "name", "given", "suggested", "score"}]: the example's place among the
            examples taught, its file (or class folder and file), its given class, the class the
            probabilities point to, and how well the given label fits (0-1, low first).
        """
        if self.oof_probabilities is None:
            raise ConfigError("This head was saved without its examples' out-of-fold "
                              "probabilities (an older file): teach it again to find labels "
                              "that look wrong.")  # fmt: skip
        found = find_label_issues(self.example_labels, self.oof_probabilities, rank_by=rank_by)
        names = self.example_names or [f"example {i}" for i in range(len(self.example_labels))]
        given, classes = self.example_labels, self.classes
        picked = zip(found.indices, found.suggested, found.scores, strict=True)
        rows = [{"index": int(i), "name": names[i], "given": classes[given[i]],
                 "suggested": classes[s], "score": float(q)} for i, s, q in picked]  # fmt: skip
        return rows if limit is None else rows[: max(int(limit), 0)]

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
        if self.oof_probabilities is not None:
            metadata["example_names"] = json.dumps(list(self.example_names))
            tensors["oof_probabilities"] = torch.from_numpy(self.oof_probabilities)
            tensors["example_labels"] = torch.from_numpy(self.example_labels)
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
                       bias=bias.float().numpy(), setup=setup, **metrics,
                       **_examples(tensors, meta, len(classes), name))  # fmt: skip


def _examples(tensors: dict, meta: dict, k: int, name: str) -> dict:
    """The examples' out-of-fold probabilities, classes and names, when the file has them."""
    oof, labels = tensors.get("oof_probabilities"), tensors.get("example_labels")
    if oof is None and labels is None:
        return {}
    try:
        names = json.loads(meta.get("example_names", "[]"))
    except json.JSONDecodeError:
        raise _refuse(name, "its example names are damaged") from None
    n = 0 if labels is None else len(labels)
    if (oof is None or labels is None or oof.shape != (n, k) or labels.ndim != 1
            or (n and not 0 <= int(labels.min()) <= int(labels.max()) < k)
            or len(names) not in (0, n)):  # fmt: skip
        raise _refuse(name, "its examples' probabilities, classes and names do not match")
    return {"oof_probabilities": oof.float().numpy(), "example_labels": labels.long().numpy(),
            "example_names": [str(x) for x in names]}  # fmt: skip


def as_head(head) -> TrainedHead:
    """A TrainedHead as it is, or one read from its .safetensors file (a path or bytes)."""
    if isinstance(head, TrainedHead):
        return head
    if isinstance(head, str | os.PathLike | bytes | bytearray):
        return load_head(head)
    raise ConfigError(f"head= must be a TrainedHead or its .safetensors file; a "
                      f"{type(head).__name__} is neither.")  # fmt: skip
