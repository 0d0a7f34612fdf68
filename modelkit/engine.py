"""Predictions and feature maps from cached models, with results cached on disk.

Public signatures (the app codes against these)::

    predict(image, model, *, pretrained=False, num_classes=None, in_chans=None,
            in_chans_init="repeat", rgb_channels=None, global_pool=None, channels=None,
            scaling="auto", device="auto", precision="fp32", top_k=5, image_bytes=None,
            use_result_cache=True, model_cache=None, result_cache=None)
        -> Prediction                  for one image
        -> list[Prediction]            for a batch (a list/tuple of images, or an (N, C, H, W)
                                       tensor/array with N > 1); one forward pass for all

    features(image, model, *, out_indices=None, <the same keyword arguments, no top_k>)
        -> Features                    level arrays are (C, H, W) for one image, (N, C, H, W)
                                       for a batch

``image`` is an ``io.ImageArray`` or a (C, H, W) numpy array (both go through
``preprocess.preprocess`` with the model's data config, ``channels`` and ``scaling``), or a
ready, normalised torch tensor (C, H, W) or (N, C, H, W) (used as is). ``image_bytes`` (the
uploaded file) is hashed for the result cache instead of the decoded pixels when given.

``Prediction``: model, labels, probabilities, indices (top-k, best first), logits (np.float32,
num_classes), head_is_random, adaptations, model_cache_hit, result_cache_hit, timings.
``Features``: model, levels (list of dicts: index, module, channels, reduction, array
np.float32, channel_mean np.float32 (C,), channel_rank np.int64 (C,) most active first),
adaptations, model_cache_hit, result_cache_hit, timings.
``Timings``: load_ms, preprocess_ms, forward_ms, total_ms.

Feature maps are rounded through float16 (the form the result cache keeps them in), so a
cache hit returns exactly what a fresh run does. Results of a model with random parts (not
pretrained, a new head, random extra input filters) are never cached: nothing is seeded, so a
rebuilt model answers differently. One built classifier serves both calls
(``forward_intermediates``), so asking for predictions then features loads the weights once.
A CUDA out-of-memory error empties the model cache and retries once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.device import (
    autocast,
    configure_cpu_threads,
    is_oom,
    prepare_input,
    resolve_device,
    resolve_precision,
)
from modelkit.errors import ConfigError, DeviceError, ModelkitError
from modelkit.factory import random_parts
from modelkit.io import ImageArray
from modelkit.model_cache import ModelCache, ModelKey
from modelkit.result_cache import ResultCache, hash_data, result_key

__all__ = ["Features", "Prediction", "Timings", "features", "model_key", "predict"]

log = logging.getLogger(__name__)


@dataclass
class Timings:
    load_ms: float = 0.0
    preprocess_ms: float = 0.0
    forward_ms: float = 0.0
    total_ms: float = 0.0


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


@dataclass
class Features:
    model: str
    levels: list[dict]
    adaptations: list[str]
    model_cache_hit: bool = False
    result_cache_hit: bool = False
    timings: Timings = field(default_factory=Timings)


# --- default caches, made on first use --------------------------------------------------------
_defaults_lock = threading.Lock()
_defaults: dict[str, object] = {}


def default_model_cache() -> ModelCache:
    with _defaults_lock:
        if "models" not in _defaults:
            _defaults["models"] = ModelCache()
        return _defaults["models"]


def default_result_cache() -> ResultCache:
    with _defaults_lock:
        if "results" not in _defaults:
            _defaults["results"] = ResultCache()
        return _defaults["results"]


# --- inputs -----------------------------------------------------------------------------------
def _as_list(image) -> tuple[list, bool]:
    """(items, is_batch): a list/tuple or an N > 1 4-D tensor/array is a batch."""
    if isinstance(image, list | tuple):
        if not image:
            raise ConfigError("An empty list of images was given; give at least one image.")
        return list(image), True
    if isinstance(image, torch.Tensor | np.ndarray) and image.ndim == 4:
        return list(image), image.shape[0] > 1
    if isinstance(image, ImageArray | torch.Tensor | np.ndarray):
        return [image], False
    raise ConfigError(
        f"Cannot use a {type(image).__name__} as an image; give an image read by "
        "modelkit.io.read_image, a (C, H, W) array, or a (N, C, H, W) tensor."
    )


def _input_hash(items: list, image_bytes) -> str:
    if image_bytes is not None:
        parts = image_bytes if isinstance(image_bytes, list | tuple) else [image_bytes]
        return hash_data(b"".join(hash_data(bytes(p)).encode() for p in parts))
    digests = []
    for item in items:
        data = item.data if isinstance(item, ImageArray) else item
        kind = "tensor" if isinstance(item, torch.Tensor) else "pixels"
        digests.append(f"{kind}:{hash_data(data)}")
    return hash_data("|".join(digests).encode())


def _to_batch(items: list, model, channels, scaling) -> torch.Tensor:
    from modelkit.preprocess import preprocess

    tensors = []
    for item in items:
        if isinstance(item, torch.Tensor):
            t = item.detach().float()
            tensors.append(t.unsqueeze(0) if t.ndim == 3 else t)
        else:
            tensors.append(preprocess(item, model.data_config, channels=channels, scaling=scaling))
    shapes = {tuple(t.shape[1:]) for t in tensors}
    if len(shapes) > 1:
        raise ConfigError(f"The images of a batch have different sizes {sorted(shapes)}.")
    return torch.cat(tensors)


# --- the shared run ---------------------------------------------------------------------------
@dataclass
class _Run:
    key: ModelKey
    items: list
    is_batch: bool
    cache_key: str | None
    started: float
    timings: Timings = field(default_factory=Timings)
    model_cache_hit: bool = False


def model_key(model: str, **settings) -> ModelKey:
    """The model cache's key for ``model`` with these settings (those of predict/features)."""
    return _key(model, _common(**settings))


def _key(model: str, kw: dict) -> ModelKey:
    dev = resolve_device(kw["device"])
    resolve_precision(kw["precision"], dev)  # refuse impossible precisions before any work
    return ModelKey(
        name=model,
        pretrained=bool(kw["pretrained"]),
        num_classes=kw["num_classes"],
        in_chans=kw["in_chans"],
        in_chans_init=kw["in_chans_init"],
        rgb_channels=tuple(kw["rgb_channels"]) if kw["rgb_channels"] else None,
        global_pool=kw["global_pool"],
        device=str(dev),
        precision=str(kw["precision"] or "fp32").lower(),
    )


def _start(kind, image, model, kw, extra, image_bytes, use_result_cache, result_cache) -> _Run:
    started = time.perf_counter()
    configure_cpu_threads()
    key = _key(model, kw)
    items, is_batch = _as_list(image)
    cache_key = None
    # random weights are redrawn on every build: their results must not outlive the model
    random = random_parts(model, key.pretrained, key.num_classes, key.in_chans,
                          key.in_chans_init, with_head=kind == "predict")  # fmt: skip
    if use_result_cache and result_cache is not None and not random:
        settings = key.to_dict() | extra | {"channels": kw["channels"], "scaling": kw["scaling"]}
        cache_key = result_key(kind, _input_hash(items, image_bytes), settings)
    return _Run(key, items, is_batch, cache_key, started)


def _failure(key: ModelKey, error: Exception, stage: str) -> ModelkitError:
    """A plain-words error for a model that failed to build or to run (the traceback is logged).

    Not a user's mistake as such, but the user must learn which model failed and what to try;
    a ModelkitError reaches the page, any other exception only a generic note.
    """
    log.error("%s of %s failed", stage, key, exc_info=error)
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    what = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if isinstance(error, MemoryError) or is_oom(error) or "not enough memory" in str(error).lower():
        return ModelkitError(
            f"There is not enough memory to {stage} '{key.name}' with these settings ({what}). "
            "Try a smaller model or fewer classes, or use a machine with more memory."
        )
    if stage == "build":
        return ModelkitError(
            f"The model '{key.name}' could not be built ({what}). The fault is in that model's "
            "definition or in how these settings fit it, not in your image: choose another "
            "model, or change in_chans / num_classes."
        )
    return ModelkitError(
        f"The model '{key.name}' failed on this input ({what}). Try another model, or other "
        "settings (in_chans, channels); the server has logged the details."
    )


def _forward(run: _Run, cache: ModelCache, kw, fn):
    """Load (cached), preprocess and run ``fn(model, x)``; a CUDA OOM clears the cache, retries.

    A model that cannot be built or run becomes a ModelkitError that names it (see _failure)."""
    for attempt in (0, 1):
        t0 = time.perf_counter()
        try:
            model, run.model_cache_hit = cache.get(run.key)
        except ModelkitError:
            raise
        except Exception as error:
            if is_oom(error) and not attempt:
                cache.clear()
                continue
            raise _failure(run.key, error, "build") from error
        t1 = time.perf_counter()
        x = _to_batch(run.items, model, kw["channels"], kw["scaling"])
        t2 = time.perf_counter()
        dev = torch.device(run.key.device)
        try:
            with torch.inference_mode(), autocast(dev, resolve_precision(run.key.precision, dev)):
                out = fn(model, prepare_input(x, dev))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        except ModelkitError:
            raise
        except Exception as error:
            if not is_oom(error):
                raise _failure(run.key, error, "run") from error
            del model, x
            cache.clear()
            if attempt:
                raise DeviceError(
                    f"The {dev.type.upper()} device ran out of memory running '{run.key.name}', "
                    "even after unloading every other model. Try fewer images at once, "
                    "precision='fp16', a smaller model, or device='cpu'."
                ) from None
            continue
        t3 = time.perf_counter()
        run.timings.load_ms += (t1 - t0) * 1e3
        run.timings.preprocess_ms += (t2 - t1) * 1e3
        run.timings.forward_ms += (t3 - t2) * 1e3
        return model, out
    raise AssertionError("unreachable")


def _finish(run: _Run) -> Timings:
    run.timings.total_ms = (time.perf_counter() - run.started) * 1e3
    return run.timings


SETTINGS = {
    "pretrained": False, "num_classes": None, "in_chans": None, "in_chans_init": "repeat",
    "rgb_channels": None, "global_pool": None, "channels": None, "scaling": "auto",
    "device": "auto", "precision": "fp32",
}  # fmt: skip


def _common(**settings) -> dict:
    """The model and preprocessing settings with their defaults; unknown names are refused."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(SETTINGS)}."
        )
    kw = SETTINGS | settings
    if kw["channels"] is not None:
        kw["channels"] = tuple(int(c) for c in kw["channels"])
    return kw


def _complete(stored: tuple[dict, dict], arrays: list[str], meta: list[str]) -> bool:
    """A stored result with everything a hit needs (else it is treated as a miss)."""
    return all(k in stored[1] for k in arrays) and all(k in stored[0] for k in meta)


# --- predict ----------------------------------------------------------------------------------
def _top(logits: np.ndarray, categories, top_k: int) -> tuple[list[str], list[float], list[int]]:
    z = torch.from_numpy(logits).double()
    probs = torch.softmax(z, dim=-1)
    k = min(int(top_k), logits.shape[-1])
    values, indices = probs.topk(k)
    idx = [int(i) for i in indices]
    labels = [categories[i] if categories else f"class {i}" for i in idx]
    return labels, [float(v) for v in values], idx


def predict(
    image,
    model: str,
    *,
    top_k: int = 5,
    image_bytes: bytes | Sequence[bytes] | None = None,
    use_result_cache: bool = True,
    model_cache: ModelCache | None = None,
    result_cache: ResultCache | None = None,
    **settings,
) -> Prediction | list[Prediction]:
    """Top-k labels and probabilities, logits and reports for one image or a batch."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k={top_k!r} must be a whole number of at least 1, e.g. 5.")
    kw = _common(**settings)
    cache = model_cache if model_cache is not None else default_model_cache()
    results = result_cache if result_cache is not None else None
    if results is None and use_result_cache:
        results = default_result_cache()
    run = _start("predict", image, model, kw, {"top_k": top_k}, image_bytes,
                 use_result_cache, results)  # fmt: skip
    stored = results.get(run.cache_key) if run.cache_key else None
    if stored is not None and not _complete(stored, ["logits"], ["categories", "adaptations"]):
        stored = None
    if stored is not None:
        meta, arrays = stored
        logits, cats = arrays["logits"], meta["categories"]
        adaptations, model_hit = meta["adaptations"], False
    else:
        net, logits = _forward(run, cache, kw, lambda m, x: _logits(m, x))
        logits = logits.float().cpu().numpy()
        cats = list(net.categories) if getattr(net, "categories", None) else None
        adaptations, model_hit = list(getattr(net, "adaptations", [])), run.model_cache_hit
        if run.cache_key:
            results.set(run.cache_key, {"categories": cats, "adaptations": adaptations},
                        {"logits": logits})  # fmt: skip
    timings = _finish(run)
    out = []
    for row in logits:
        labels, probs, idx = _top(row, cats, top_k)
        out.append(Prediction(
            model=model, labels=labels, probabilities=probs, indices=idx, logits=row,
            head_is_random=cats is None, adaptations=adaptations, model_cache_hit=model_hit,
            result_cache_hit=stored is not None, timings=timings,
        ))  # fmt: skip
    return out if run.is_batch else out[0]


def _logits(model, x: torch.Tensor) -> torch.Tensor:
    if getattr(model, "num_classes", 1) == 0:
        raise ConfigError(
            "This model was created with num_classes=0, so it has no classifier to predict "
            "with; leave num_classes empty (or above 0), or look at its feature maps instead."
        )
    return model(x)


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


def features(
    image,
    model: str,
    *,
    out_indices: Sequence[int] | int | None = None,
    image_bytes: bytes | Sequence[bytes] | None = None,
    use_result_cache: bool = True,
    model_cache: ModelCache | None = None,
    result_cache: ResultCache | None = None,
    **settings,
) -> Features:
    """Feature maps of the requested levels (all when ``out_indices`` is None), with stats."""
    if isinstance(out_indices, int) and not isinstance(out_indices, bool):
        out_indices = [out_indices]
    wanted = list(out_indices) if isinstance(out_indices, list | tuple) else out_indices
    kw = _common(**settings)
    cache = model_cache if model_cache is not None else default_model_cache()
    results = result_cache if result_cache is not None else None
    if results is None and use_result_cache:
        results = default_result_cache()
    run = _start("features", image, model, kw, {"out_indices": wanted}, image_bytes,
                 use_result_cache, results)  # fmt: skip
    stored = results.get(run.cache_key) if run.cache_key else None
    if stored is not None:
        names = [f"level_{lv.get('index')}" for lv in stored[0].get("levels", [{}])]
        if not _complete(stored, names, ["levels", "adaptations"]):
            stored = None
    if stored is not None:
        meta, arrays = stored
        infos, adaptations, model_hit = meta["levels"], meta["adaptations"], False
        maps = [arrays[f"level_{info['index']}"] for info in infos]
    else:
        from modelkit.features import resolve_out_indices

        def run_levels(m, x):
            return m.forward_intermediates(x, wanted)

        net, outs = _forward(run, cache, kw, run_levels)
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
        model=model, levels=levels, adaptations=adaptations, model_cache_hit=model_hit,
        result_cache_hit=stored is not None, timings=_finish(run),
    )  # fmt: skip
