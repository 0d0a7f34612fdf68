"""Device and precision: which device runs a model, in which dtype, with how many CPU threads.

- ``resolve_device("auto")`` picks CUDA, then Apple MPS, then the CPU; ``"cuda"`` where there is
  no CUDA raises :class:`DeviceError` with the fix.
- ``resolve_precision`` maps ``"fp32" | "fp16" | "bf16"`` to an autocast dtype (``None`` = fp32).
  fp16 autocast runs only on CUDA/MPS; on the CPU it is refused (slow, lossy), bf16 is allowed.
- ``configure_cpu_threads()`` sets torch's intra-op threads once per process, at start-up: the
  app and the command line call it (a library call never changes the process's threads). A
  server here runs one request per model at a time, so one request may use every core, capped at
  ``MODELKIT_CPU_THREADS`` (default: the usable cores, at most 16: more stop helping).
"""

from __future__ import annotations

import contextlib
import os
import threading

import torch

from modelkit.errors import DeviceError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
MAX_CPU_THREADS = 16

_threads_lock = threading.Lock()
_threads_set = False


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> cuda, mps, cpu (the first present); explicit choices are checked."""
    name = str(device or "auto").strip().lower()
    kind = name.split(":")[0]
    if kind not in DEVICES:
        raise DeviceError(f"device={device!r} is not known; use one of {', '.join(DEVICES)}.")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "device='cuda' was asked for, but this machine has no usable NVIDIA GPU (CUDA). "
            "Choose device='auto' or 'cpu'."
        )
    if kind == "mps" and not mps_available():
        raise DeviceError(
            "device='mps' was asked for, but Apple's Metal (MPS) is not available here. "
            "Choose device='auto' or 'cpu'."
        )
    if kind == "cuda" and ":" in name:
        index = int(name.split(":")[1]) if name.split(":")[1].isdigit() else -1
        if not 0 <= index < torch.cuda.device_count():
            raise DeviceError(
                f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                "use 'cuda' or 'cuda:0'."
            )
    return torch.device(name)


def resolve_precision(precision: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: plain fp32)."""
    name = str(precision or "fp32").strip().lower()
    if name not in PRECISIONS:
        known = ", ".join(PRECISIONS)
        raise DeviceError(f"precision={precision!r} is not known; use one of {known}.")
    dtype = PRECISIONS[name]
    if dtype is torch.float16 and device.type == "cpu":
        raise DeviceError(
            "precision='fp16' needs a GPU; on the CPU use 'fp32' (exact) or 'bf16' (faster on "
            "recent CPUs, slightly less precise)."
        )
    return dtype


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for ``dtype`` on ``device``, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Eval mode on ``device``; channels_last on CUDA (faster convolutions with cuDNN)."""
    model = model.eval().to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move the input to ``device`` (channels_last on CUDA, matching the model)."""
    if device.type == "cuda":
        return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return x.to(device)


def cpu_thread_count() -> int:
    env = os.environ.get("MODELKIT_CPU_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    # the cores this process may run on (a container's CPU set), not all the host's cores
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(usable or 1, MAX_CPU_THREADS))


def configure_cpu_threads() -> int:
    """Set torch's intra-op thread count once per process; returns the count in use."""
    global _threads_set
    with _threads_lock:
        if not _threads_set:
            torch.set_num_threads(cpu_thread_count())
            _threads_set = True
    return torch.get_num_threads()


def is_oom(error: BaseException) -> bool:
    """A CUDA (or MPS) out-of-memory error."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def is_memory_error(error: BaseException) -> bool:
    """Out of memory anywhere: the CPU (MemoryError, an allocator's "not enough memory"), CUDA
    or MPS (``is_oom``)."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or is_oom(error) or "not enough memory" in text


def free_device_memory(device: torch.device | None = None) -> None:
    """Return cached GPU memory to the driver (after models were dropped)."""
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        torch.cuda.empty_cache()
    if mps_available() and (device is None or device.type == "mps"):
        torch.mps.empty_cache()
