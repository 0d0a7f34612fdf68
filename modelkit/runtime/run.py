"""The machinery every engine call shares: settings with defaults, the model-cache key, inputs to
one batch, the result-cache key, and one guarded forward pass (build or fetch the model, preprocess,
run, retry once on CUDA out-of-memory, errors in plain words). ``engine`` builds predict, features
and embeddings from these; nothing here knows what a call returns."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.errors import ConfigError, DeviceError, ModelkitError
from modelkit.images.limits import ImageArray
from modelkit.models.factory import random_parts
from modelkit.runtime.device import (
    autocast,
    configure_cpu_threads,
    is_memory_error,
    prepare_input,
    resolve_device,
    resolve_precision,
)
from modelkit.runtime.model_cache import ModelCache, ModelKey
from modelkit.runtime.result_cache import ResultCache, hash_data, result_key

log = logging.getLogger("modelkit.runtime.engine")


@dataclass
class Timings:
    load_ms: float = 0.0
    preprocess_ms: float = 0.0
    forward_ms: float = 0.0
    total_ms: float = 0.0


# --- default caches, made on first use --------------------------------------------------------
_defaults_lock = threading.Lock()
_defaults: dict[str, object] = {}


def default_model_cache(given: ModelCache | None = None) -> ModelCache:
    """``given`` when the caller passed one, else the process's model cache."""
    if given is not None:
        return given
    with _defaults_lock:
        if "models" not in _defaults:
            _defaults["models"] = ModelCache()
        return _defaults["models"]


def default_result_cache(given: ResultCache | None = None, use: bool = True) -> ResultCache | None:
    """``given`` when the caller passed one, else the process's result cache (None if not used)."""
    if given is not None or not use:
        return given
    with _defaults_lock:
        if "results" not in _defaults:
            _defaults["results"] = ResultCache()
        return _defaults["results"]


# --- inputs -----------------------------------------------------------------------------------
def as_list(image) -> tuple[list, bool]:
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
        "modelkit.images.read.read_image, a (C, H, W) array, or a (N, C, H, W) tensor."
    )


def input_hash(items: list, image_bytes) -> str:
    if image_bytes is not None:
        parts = image_bytes if isinstance(image_bytes, list | tuple) else [image_bytes]
        return hash_data(b"".join(hash_data(bytes(p)).encode() for p in parts))
    digests = []
    for item in items:
        data = item.data if isinstance(item, ImageArray) else item
        kind = "tensor" if isinstance(item, torch.Tensor) else "pixels"
        digests.append(f"{kind}:{hash_data(data)}")
    return hash_data("|".join(digests).encode())


def to_batch(items: list, model, channels, scaling) -> torch.Tensor:
    from modelkit.images.preprocess import preprocess

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
class Run:
    key: ModelKey
    items: list
    is_batch: bool
    cache_key: str | None
    started: float
    timings: Timings = field(default_factory=Timings)
    model_cache_hit: bool = False


def model_key(model: str, **settings) -> ModelKey:
    """The model cache's key for ``model`` with these settings (those of predict/features)."""
    return model_key_for(model, common(**settings))


def model_key_for(model: str, kw: dict) -> ModelKey:
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


def start(kind, image, model, kw, extra, image_bytes, use_result_cache, result_cache) -> Run:
    started = time.perf_counter()
    configure_cpu_threads()
    key = model_key_for(model, kw)
    items, is_batch = as_list(image)
    cache_key = None
    # random weights are redrawn on every build: their results must not outlive the model
    random = random_parts(model, key.pretrained, key.num_classes, key.in_chans,
                          key.in_chans_init, with_head=kind == "predict")  # fmt: skip
    if use_result_cache and result_cache is not None and not random:
        settings = key.to_dict() | extra | {"channels": kw["channels"], "scaling": kw["scaling"]}
        cache_key = result_key(kind, input_hash(items, image_bytes), settings)
    return Run(key, items, is_batch, cache_key, started)


def failure(key: ModelKey, error: Exception, stage: str) -> ModelkitError:
    """A plain-words error for a model that failed to build or to run (the traceback is logged).

    Not a user's mistake as such, but the user must learn which model failed and what to try;
    a ModelkitError reaches the page, any other exception only a generic note.
    """
    log.error("%s of %s failed", stage, key, exc_info=error)
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    what = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if is_memory_error(error):
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


def forward(run: Run, cache: ModelCache, kw, fn):
    """Load (cached), preprocess and run ``fn(model, x)``; running out of memory (CPU or GPU)
    clears the model cache and retries once.

    A model that cannot be built or run becomes a ModelkitError that names it (see _failure)."""
    for attempt in (0, 1):
        t0 = time.perf_counter()
        try:
            model, run.model_cache_hit = cache.get(run.key)
        except ModelkitError:
            raise
        except Exception as error:
            if is_memory_error(error):  # hosting: whatever got past the size guard
                cache.clear()  # frees the other models; one retry
                if not attempt:
                    continue
            raise failure(run.key, error, "build") from error
        t1 = time.perf_counter()
        x = to_batch(run.items, model, kw["channels"], kw["scaling"])
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
            if not is_memory_error(error):
                raise failure(run.key, error, "run") from error
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


def finish(run: Run) -> Timings:
    run.timings.total_ms = (time.perf_counter() - run.started) * 1e3
    return run.timings


SETTINGS = {
    "pretrained": False, "num_classes": None, "in_chans": None, "in_chans_init": "repeat",
    "rgb_channels": None, "global_pool": None, "channels": None, "scaling": "auto",
    "device": "auto", "precision": "fp32",
}  # fmt: skip


def common(**settings) -> dict:
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


def complete(stored: tuple[dict, dict], arrays: list[str], meta: list[str]) -> bool:
    """A stored result with everything a hit needs (else it is treated as a miss)."""
    return all(k in stored[1] for k in arrays) and all(k in stored[0] for k in meta)
