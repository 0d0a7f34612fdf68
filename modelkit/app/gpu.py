"""``on_gpu``: mark a handler that runs a model, so that on a ZeroGPU Space it runs in the GPU
worker; everywhere else (no ``spaces`` package, or not on ZeroGPU) the handler is returned as it
is, the same function object.

What ZeroGPU does (read in the ``spaces`` package, 0.51): importing ``spaces`` with
``SPACES_ZERO_GPU`` set patches torch in the main process so that ``torch.cuda.is_available()`` is
True and ``.to("cuda")`` keeps the tensors in CPU memory (CUDA *emulation*); ``spaces.GPU(fn)``
asks the platform for a GPU for ``duration`` seconds, forks a worker (or reuses an idle one) that
moves every emulated-CUDA tensor of the main process onto the real GPU, runs ``fn`` there, and
sends the result back pickled. So:

- ``prepare`` (optional) runs first, in the main process, outside the GPU time: the model helpers
  below build the model there, into the model cache, on the emulated ``cuda`` (weights read or
  downloaded on the CPU, not on the visitor's GPU quota). Hugging Face's ZeroGPU docs ask for
  exactly this: models placed on ``cuda`` outside ``@spaces.GPU``.
- ``duration`` is an int or a function of the handler's arguments (``spaces`` calls it with the
  same arguments); :func:`model_seconds` estimates it from the model's size and the work.
- A ModelkitError raised in the worker would reach the main process only as a generic
  "ZeroGPU worker error" (``spaces`` keeps the class *name*, not the exception), so it is carried
  back as a value and raised again here: put ``@on_gpu`` under ``@guarded`` / ``@api_guarded``.
- Return CPU data only (numbers, numpy arrays, figures, paths): results cross a pickle.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass

from modelkit.errors import ModelkitError

log = logging.getLogger("modelkit.app")

# Duration model, in seconds. ZeroGPU charges the time a call really takes, but refuses a call
# whose *declared* duration exceeds the visitor's quota left, and queues shorter declarations
# first: declare little, but enough. Not measured on ZeroGPU (no GPU machine was lent): a
# worker's start (fork, CUDA context, moving the cached weights) is taken as 4 s; a model that a
# reused worker must still build costs 1 s + 1 s per 50 M parameters (weights from disk, moved
# to the GPU); a forward pass 0.05 s + 1 ms per GFLOP per image (an H200 or Blackwell slice runs
# these models in milliseconds; the margin covers cuDNN's first-call set-up); the handler's own
# CPU work (reading the image, figures) 2 s.
WORKER_START_S = 4.0
BUILD_S, BUILD_S_PER_50M = 1.0, 1.0
FORWARD_S, FORWARD_S_PER_GFLOP = 0.05, 0.001
HANDLER_CPU_S = 2.0
MIN_SECONDS, MAX_SECONDS = 5, 60
FALLBACK_SECONDS = 30  # a model whose size is not known (the estimate could not be made)


def on_zero_gpu() -> bool:
    """True on a ZeroGPU Space (the platform sets SPACES_ZERO_GPU; ``spaces`` reads it alike)."""
    return os.environ.get("SPACES_ZERO_GPU", "").strip().lower() in ("1", "t", "true")


@dataclass
class _Carried:
    """A user's mistake raised in the GPU worker, carried back as a value."""

    error: ModelkitError


def _carry_errors(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def inner(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ModelkitError as exc:
            try:
                pickle.dumps(exc)
            except Exception:  # noqa: BLE001 - an odd subclass: keep its words
                exc = ModelkitError(str(exc))
            return _Carried(exc)

    return inner


def on_gpu(
    duration: int | Callable[..., int],
    prepare: Callable[..., object] | None = None,
) -> Callable:
    """A decorator: ``spaces.GPU(duration=...)`` on ZeroGPU (``prepare`` first, in the main
    process), the handler unchanged elsewhere."""

    def decorate(fn: Callable) -> Callable:
        if not on_zero_gpu():
            return fn
        import spaces

        gpu_fn = spaces.GPU(duration=_safe_duration(duration))(_carry_errors(fn))

        @functools.wraps(fn)
        def handler(*args, **kwargs):
            if prepare is not None:
                prepare(*args, **kwargs)
            result = gpu_fn(*args, **kwargs)
            if isinstance(result, _Carried):
                raise result.error
            return result

        handler.gpu_duration = duration  # for tests and reports
        return handler

    return decorate


def _safe_duration(duration: int | Callable[..., int]) -> int | Callable[..., int]:
    """A duration function that never fails: a bad argument is the handler's to report."""
    if not callable(duration):
        return int(duration)

    def seconds(*args, **kwargs) -> int:
        try:
            return int(duration(*args, **kwargs))
        except Exception:  # noqa: BLE001 - the handler raises the user's mistake itself
            return FALLBACK_SECONDS

    return seconds


# --- the model handlers' estimate and preparation ------------------------------------------------
def model_seconds(model: str, images: int = 1, passes: int = 1) -> int:
    """Seconds of GPU to declare for ``passes`` forward passes of ``model`` over ``images``."""
    from modelkit.models.info import model_info

    try:
        info = model_info(model)
    except ModelkitError:
        return FALLBACK_SECONDS
    params_m = (info.get("params") or 0) / 1e6
    gflops = info.get("gflops") or params_m / 5  # no figure: a convnet's rough ratio
    seconds = (
        WORKER_START_S
        + BUILD_S
        + BUILD_S_PER_50M * params_m / 50
        + max(1, int(images)) * max(1, int(passes)) * (FORWARD_S + FORWARD_S_PER_GFLOP * gflops)
        + HANDLER_CPU_S
    )
    return int(min(MAX_SECONDS, max(MIN_SECONDS, math.ceil(seconds))))


def for_model(setup_of: Callable, images: int | Callable[..., int] = 1, passes: int = 1) -> dict:
    """``on_gpu`` arguments for a handler that runs the model of ``setup_of(*args)`` (a
    ``RunSettings``, or None when the handler will not run one): the duration from the model's
    size, and the model built in the main process before the GPU call."""

    def duration(*args, **kwargs) -> int:
        setup = setup_of(*args, **kwargs)
        if setup is None:
            return MIN_SECONDS
        n = images(*args, **kwargs) if callable(images) else images
        return model_seconds(setup.name, n, passes)

    def prepare(*args, **kwargs) -> None:
        setup = setup_of(*args, **kwargs)  # a user's mistake stops here, as it would in fn
        if setup is None:
            return
        from modelkit.app import runs

        try:
            runs.cached_model(setup)  # on ZeroGPU: built on the emulated cuda, in CPU memory
        except ModelkitError:
            raise
        except Exception:  # noqa: BLE001 - the GPU call builds it again and words the failure
            log.warning("building %s before the GPU call failed", setup.name, exc_info=True)

    return {"duration": duration, "prepare": prepare}
