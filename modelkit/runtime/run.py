"""The machinery every engine call shares: inputs to one batch, the result-cache key of a call,
and one guarded forward pass (build or fetch the model, preprocess, run, retry once on CUDA
out-of-memory, errors in plain words). The settings are a ``RunSettings`` (settings.py);
``engine`` builds predict, features and embeddings from these; nothing here knows what a call
returns."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.errors import ConfigError, DeviceError, ModelkitError
from modelkit.images.limits import ImageArray
from modelkit.runtime.device import autocast, is_memory_error, prepare_input, resolve_precision
from modelkit.runtime.model_cache import ModelCache, ModelKey
from modelkit.runtime.result_cache import ResultCache, hash_data
from modelkit.runtime.serving import server

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


def to_batch(items: list, model, settings) -> torch.Tensor:
    """One (N, C, H, W) batch: images preprocessed for the model (``settings``: channels,
    scaling, crop), ready tensors used as they are."""
    from modelkit.images.preprocess import preprocess

    config = settings.data_config(model)
    tensors = []
    for item in items:
        if isinstance(item, torch.Tensor):
            t = item.detach().float()
            tensors.append(t.unsqueeze(0) if t.ndim == 3 else t)
        else:
            tensors.append(preprocess(item, config, channels=settings.channels,
                                      scaling=settings.scaling))  # fmt: skip
    shapes = {tuple(t.shape[1:]) for t in tensors}
    if len(shapes) > 1:
        raise ConfigError(f"The images of a batch have different sizes {sorted(shapes)}.")
    return torch.cat(tensors)


# --- the shared run ---------------------------------------------------------------------------
@dataclass
class Run:
    settings: object  # RunSettings (its module imports this one)
    key: ModelKey
    items: list
    is_batch: bool
    cache_key: str | None
    started: float
    timings: Timings = field(default_factory=Timings)
    model_cache_hit: bool = False
    backend: str = "torch"  # who served the forward pass (see serving.py)
    notes: list[str] = field(default_factory=list)  # why (a compiled graph's notes)


def start(kind: str, image, settings, asked: dict, image_bytes, results) -> Run:
    """A call's run: its items, its model key, and its result-cache key (None when results
    must not be kept: no cache, or a model with random parts, which a rebuild draws anew)."""
    started = time.perf_counter()
    items, is_batch = as_list(image)
    for item in items:  # a channel count that cannot fit is said before any model is built
        settings.check_image(item)
    cache_key = None
    if results is not None and not settings.random_parts(with_head=kind == "predict"):
        cache_key = settings.result_key(kind, input_hash(items, image_bytes), **asked)
    return Run(settings, settings.model_key(), items, is_batch, cache_key, started)


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


def _plain(model, x, serve):
    return serve(x)


def forward(run: Run, cache: ModelCache, output, fn=None):
    """Load (cached), preprocess and run; running out of memory (CPU or GPU) clears the model
    cache and retries once.

    ``output``: what is served ("logits", "pooled", "trunk", "features:i,j"; or a function of
    the model that names it); ``fn(model, x, serve)`` (default ``serve(x)``) may prepare the
    batch around ``serve``, which torch or a compiled graph answers (serving.py). A model that
    cannot be built or run becomes a ModelkitError that names it (see failure)."""
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
        x = to_batch(run.items, model, run.settings)
        t2 = time.perf_counter()
        dev = torch.device(run.key.device)
        try:
            with torch.inference_mode(), autocast(dev, resolve_precision(run.key.precision, dev)):
                x = prepare_input(x, dev)
                name = output(model) if callable(output) else output
                serve, runner = server(run.settings, run.key, model, name, x)
                out = (fn or _plain)(model, x, serve)
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
        if runner is not None:
            run.backend = runner.backend
            run.notes += [n for n in runner.notes if n not in run.notes]
        run.timings.load_ms += (t1 - t0) * 1e3
        run.timings.preprocess_ms += (t2 - t1) * 1e3
        run.timings.forward_ms += (t3 - t2) * 1e3
        return model, out
    raise AssertionError("unreachable")


def finish(run: Run) -> Timings:
    run.timings.total_ms = (time.perf_counter() - run.started) * 1e3
    return run.timings


def complete(stored: tuple[dict, dict], arrays: list[str], meta: list[str]) -> bool:
    """A stored result with everything a hit needs (else it is treated as a miss)."""
    return all(k in stored[1] for k in arrays) and all(k in stored[0] for k in meta)
