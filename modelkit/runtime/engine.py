"""Predictions and feature maps from cached models, with results cached on disk.

    predict(image, model, *, top_k=5, image_bytes=None, use_result_cache=True, model_cache=None,
            result_cache=None, <the run settings>)
        -> Prediction                  for one image
        -> list[Prediction]            for a batch (a list/tuple of images, or an (N, C, H, W)
                                       tensor/array with N > 1); one forward pass for all
    features(image, model, *, out_indices=None, <the same keywords, no top_k>)
        -> Features                    level arrays are (C, H, W) for one image, (N, C, H, W)
                                       for a batch

The run settings are ``runtime.settings.RunSettings``' fields, as keywords (or a RunSettings as
``model``). ``image`` is an ``ImageArray`` or a (C, H, W) numpy array (both go through
``preprocess.preprocess`` with the model's data config, ``channels`` and ``scaling``), or a
ready, normalised torch tensor (C, H, W) or (N, C, H, W) (used as is). ``image_bytes`` (the
uploaded file) is hashed for the result cache instead of the decoded pixels when given.

``Prediction``: model, labels, probabilities, indices (top-k, best first), logits (np.float32,
num_classes), head_is_random, adaptations, model_cache_hit, result_cache_hit, timings, backend
(who served: torch, onnxruntime, openvino), notes (why, in words).
``Features``: model, levels (list of dicts: index, module, channels, reduction, array
np.float32, channel_mean np.float32 (C,), channel_rank np.int64 (C,) most active first),
adaptations, model_cache_hit, result_cache_hit, timings, backend, notes.
``Timings``: load_ms, preprocess_ms, forward_ms, total_ms.

Feature maps are rounded through float16 (the form the result cache keeps them in), so a
cache hit returns exactly what a fresh run does. Results of a model with random parts (not
pretrained, a new head, random extra input filters) are never cached: nothing is seeded, so a
rebuilt model answers differently. One built classifier serves both calls
(``forward_intermediates``), so asking for predictions then features loads the weights once.
A CUDA out-of-memory error empties the model cache and retries once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.errors import ConfigError
from modelkit.runtime.model_cache import ModelCache
from modelkit.runtime.result_cache import ResultCache
from modelkit.runtime.run import (
    Timings,
    complete,
    default_model_cache,
    default_result_cache,
    finish,
    forward,
    start,
)
from modelkit.runtime.settings import RunSettings, takes_settings

__all__ = [
    "Features", "Prediction", "Timings", "default_model_cache", "default_result_cache",
    "features", "predict", "top_k_of",
]  # fmt: skip


@dataclass
class Prediction:
    model: str
    labels: list[str]
    probabilities: list[float]
    indices: list[int]
    logits: np.ndarray
    head_is_random: bool
    adaptations: list[str]
    model_cache_hit: bool = False
    result_cache_hit: bool = False
    timings: Timings = field(default_factory=Timings)
    backend: str = "torch"  # who served the forward pass ("" for a result from the cache)
    notes: list[str] = field(default_factory=list)  # the compiled runtime's, in words


@dataclass
class Features:
    model: str
    levels: list[dict]
    adaptations: list[str]
    model_cache_hit: bool = False
    result_cache_hit: bool = False
    timings: Timings = field(default_factory=Timings)
    backend: str = "torch"
    notes: list[str] = field(default_factory=list)


# --- predict ----------------------------------------------------------------------------------
def top_k_of(probs: np.ndarray, categories, top_k: int) -> tuple[list[str], list[float], list[int]]:
    """(labels, probabilities, indices) of the ``top_k`` largest of one row of probabilities."""
    probs = torch.from_numpy(np.asarray(probs, dtype=np.float64))
    k = min(int(top_k), probs.shape[-1])
    values, indices = probs.topk(k)
    idx = [int(i) for i in indices]
    labels = [categories[i] if categories else f"class {i}" for i in idx]
    return labels, [float(v) for v in values], idx


@takes_settings()
def predict(
    image,
    settings: RunSettings,
    *,
    top_k: int = 5,
    image_bytes: bytes | Sequence[bytes] | None = None,
    use_result_cache: bool = True,
    model_cache: ModelCache | None = None,
    result_cache: ResultCache | None = None,
) -> Prediction | list[Prediction]:
    """Top-k labels and probabilities, logits and reports for one image or a batch.

    Args:
        image: an ImageArray, a (C, H, W) array, a ready tensor, or a list of them (a batch).
        top_k: how many classes to report, most likely first.
        image_bytes: the file's bytes (hashed for the result cache instead of the pixels).
        use_result_cache: keep and reuse results on disk (never for random weights).
        model_cache: the built models to use (the process's when None).
        result_cache: the results on disk to use (the process's when None).

    Returns:
        A Prediction for one image, a list of them for a batch.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} must be a whole number of at least 1, e.g. 5.")
    cache = default_model_cache(model_cache)
    results = default_result_cache(result_cache, use_result_cache)
    run = start("predict", image, settings, {"top_k": top_k}, image_bytes, results)
    stored = results.get(run.cache_key) if run.cache_key else None
    if stored is not None and not complete(stored, ["logits"], ["categories", "adaptations"]):
        stored = None
    if stored is not None:
        meta, arrays = stored
        logits, cats = arrays["logits"], meta["categories"]
        adaptations, model_hit = meta["adaptations"], False
    else:
        net, logits = forward(run, cache, "logits", _logits)
        logits = logits.float().cpu().numpy()
        cats = list(net.categories) if getattr(net, "categories", None) else None
        adaptations, model_hit = list(getattr(net, "adaptations", [])), run.model_cache_hit
        if run.cache_key:
            results.set(run.cache_key, {"categories": cats, "adaptations": adaptations},
                        {"logits": logits})  # fmt: skip
    timings = finish(run)
    out = []
    for row in logits:
        probs = torch.softmax(torch.from_numpy(row).double(), dim=-1).numpy()
        labels, probs, idx = top_k_of(probs, cats, top_k)
        out.append(Prediction(
            model=settings.name, labels=labels, probabilities=probs, indices=idx, logits=row,
            head_is_random=cats is None, adaptations=adaptations, model_cache_hit=model_hit,
            result_cache_hit=stored is not None, timings=timings,
            backend="" if stored is not None else run.backend, notes=list(run.notes),
        ))  # fmt: skip
    return out if run.is_batch else out[0]


def _logits(model, x: torch.Tensor, serve) -> torch.Tensor:
    if getattr(model, "num_classes", 1) == 0:
        raise ConfigError(
            "This model was created with num_classes=0, so it has no classifier to predict "
            "with; leave num_classes empty (or above 0), or look at its feature maps instead."
        )
    return serve(x)


# --- features ---------------------------------------------------------------------------------
def _level(info: dict, array: np.ndarray, is_batch: bool) -> dict:
    axes = (0, 2, 3) if array.ndim == 4 else (1, 2)
    mean = array.mean(axis=axes, dtype=np.float64).astype(np.float32)
    return {
        "index": int(info["index"]),
        "module": info["module"],
        "channels": int(info["channels"]),
        "reduction": int(info["reduction"]),
        "array": array if is_batch else array[0],
        "channel_mean": mean,
        "channel_rank": np.argsort(-mean, kind="stable").astype(np.int64),
    }


@takes_settings()
def features(
    image,
    settings: RunSettings,
    *,
    out_indices: Sequence[int] | int | None = None,
    image_bytes: bytes | Sequence[bytes] | None = None,
    use_result_cache: bool = True,
    model_cache: ModelCache | None = None,
    result_cache: ResultCache | None = None,
) -> Features:
    """Feature maps of the requested levels (all when ``out_indices`` is None), with stats.

    Args:
        image: an ImageArray, a (C, H, W) array, a ready tensor, or a list of them (a batch).
        out_indices: the feature levels (negatives count from the end); None: every level.
        image_bytes: the file's bytes (hashed for the result cache instead of the pixels).
        use_result_cache: keep and reuse results on disk (never for random weights).
        model_cache: the built models to use (the process's when None).
        result_cache: the results on disk to use (the process's when None).

    Returns:
        Features: one entry per level, arrays (C, H, W) for one image, (N, C, H, W) for a batch.
    """
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        out_indices = [out_indices]
    wanted = list(out_indices) if isinstance(out_indices, list | tuple) else out_indices
    cache = default_model_cache(model_cache)
    results = default_result_cache(result_cache, use_result_cache)
    run = start("features", image, settings, {"out_indices": wanted}, image_bytes, results)
    stored = results.get(run.cache_key) if run.cache_key else None
    if stored is not None:
        names = [f"level_{lv.get('index')}" for lv in stored[0].get("levels", [{}])]
        if not complete(stored, names, ["levels", "adaptations"]):
            stored = None
    if stored is not None:
        meta, arrays = stored
        infos, adaptations, model_hit = meta["levels"], meta["adaptations"], False
        maps = [arrays[f"level_{info['index']}"] for info in infos]
    else:
        from modelkit.models.features import resolve_out_indices

        def levels_of(m) -> str:  # the levels asked for, resolved: the compiled graph's name
            picked = resolve_out_indices(wanted, len(m.feature_info))
            return "features:" + ",".join(map(str, picked))

        net, outs = forward(run, cache, levels_of)
        all_levels = net.feature_info.get_dicts()
        picked = resolve_out_indices(wanted, len(all_levels))
        infos = [{k: all_levels[i][k] for k in ("index", "module", "channels", "reduction")}
                 for i in picked]  # fmt: skip
        maps = [o.float().cpu().numpy().astype(np.float16) for o in outs]
        adaptations, model_hit = list(getattr(net, "adaptations", [])), run.model_cache_hit
        if run.cache_key:
            arrays = {f"level_{info['index']}": a for info, a in zip(infos, maps, strict=True)}
            results.set(run.cache_key, {"levels": infos, "adaptations": adaptations}, arrays)
    levels = [_level(info, a.astype(np.float32), run.is_batch)
              for info, a in zip(infos, maps, strict=True)]  # fmt: skip
    return Features(
        model=settings.name, levels=levels, adaptations=adaptations, model_cache_hit=model_hit,
        result_cache_hit=stored is not None, timings=finish(run),
        backend="" if stored is not None else run.backend, notes=list(run.notes),
    )  # fmt: skip
