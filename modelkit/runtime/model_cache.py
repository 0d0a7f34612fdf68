"""ModelCache: built models kept in memory (on their device), bounded, least recently used first.

- Keyed by :class:`ModelKey`, every setting that changes the built model.
- Thread-safe and single-flight: concurrent ``get`` calls for one key build it once (the others
  wait for that build); different keys build in parallel (the lock is never held while building).
- Bounded by ``max_bytes`` of parameters + buffers (env ``MODELKIT_MODEL_CACHE_MB``, default 2048)
  and ``max_models`` (env ``MODELKIT_MODEL_CACHE_COUNT``, default 8). A model larger than the whole
  budget is handed out once and not kept. Eviction drops every reference, runs the garbage
  collector and returns cached GPU memory to the driver.
- The builder is injectable: ``ModelCache(builder=create_model)`` is the default.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from modelkit.hosting import MODEL_CACHE_MB, model_cache_mb
from modelkit.runtime.device import free_device_memory, prepare_model

DEFAULT_BUDGET_MB = MODEL_CACHE_MB  # the size guard's default limit counts this budget
DEFAULT_MAX_MODELS = 8


@dataclass(frozen=True)
class ModelKey:
    """Everything that changes a built model: its registry name (``arch.tag``), create_model's
    arguments, the device and the precision (``RunSettings.model_key`` makes it)."""

    name: str
    options: tuple[tuple[str, object], ...] = ()  # create_model's keyword arguments
    device: str = "cpu"
    precision: str = "fp32"

    def create_kwargs(self) -> dict:
        """Keyword arguments for ``create_model`` (device and precision are the cache's job)."""
        return dict(self.options)

    def to_dict(self) -> dict:
        return {"name": self.name, **dict(self.options), "device": self.device,
                "precision": self.precision}  # fmt: skip


def model_bytes(model: nn.Module) -> int:
    """Bytes of parameters and buffers (shared tensors counted once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


class _Pending:
    """One build in progress: waiters block on ``done`` then read ``model`` or ``error``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.model: nn.Module | None = None
        self.error: BaseException | None = None


class ModelCache:
    """Built models by :class:`ModelKey`, LRU within a byte budget and a count."""

    def __init__(
        self,
        builder: Callable[..., nn.Module] | None = None,
        max_bytes: int | None = None,
        max_models: int | None = None,
    ) -> None:
        if builder is None:
            from modelkit.models.factory import create_model as builder
        self.builder = builder
        self.max_bytes = model_cache_mb() * 2**20 if max_bytes is None else int(max_bytes)
        self.max_models = _env_int("MODELKIT_MODEL_CACHE_COUNT", DEFAULT_MAX_MODELS)
        if max_models is not None:
            self.max_models = int(max_models)
        self._lock = threading.Lock()
        self._models: OrderedDict[ModelKey, tuple[nn.Module, int]] = OrderedDict()
        self._pending: dict[ModelKey, _Pending] = {}
        self.builds = 0  # how many times the builder ran (for reports and tests)

    # --- lookups ---------------------------------------------------------------------------
    def __contains__(self, key: ModelKey) -> bool:
        with self._lock:
            return key in self._models

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def keys(self) -> list[ModelKey]:
        with self._lock:
            return list(self._models)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(size for _, size in self._models.values())

    def peek(self, key: ModelKey) -> nn.Module | None:
        """The cached model for ``key`` (marking it recently used), or None; never builds."""
        with self._lock:
            entry = self._models.get(key)
            if entry is None:
                return None
            self._models.move_to_end(key)
            return entry[0]

    # --- get or build ----------------------------------------------------------------------
    def get(self, key: ModelKey) -> tuple[nn.Module, bool]:
        """(model, was_cached). Builds at most once per key however many threads ask at once."""
        with self._lock:
            entry = self._models.get(key)
            if entry is not None:
                self._models.move_to_end(key)
                return entry[0], True
            pending = self._pending.get(key)
            owner = pending is None
            if owner:
                pending = self._pending[key] = _Pending()
        if not owner:
            pending.done.wait()
            if pending.error is not None:
                raise pending.error
            return pending.model, False
        try:
            model = self._build(key)
            pending.model = model
        except BaseException as error:
            pending.error = error
            raise
        finally:
            with self._lock:
                self._pending.pop(key, None)
                if pending.error is None:
                    self._store(key, pending.model)
            pending.done.set()
        trim_heap()  # the build's scratch (checkpoint, initial weights) and any evicted model
        return model, False

    def _build(self, key: ModelKey) -> nn.Module:
        with self._lock:
            self.builds += 1
        model = self.builder(key.name, **key.create_kwargs())
        with torch.inference_mode(False):
            return prepare_model(model, torch.device(key.device))

    def _store(self, key: ModelKey, model: nn.Module) -> None:
        """Keep ``model`` unless it alone exceeds the budget; evict LRU entries to make room."""
        size = model_bytes(model)
        if size > self.max_bytes or self.max_models < 1:
            return
        self._models[key] = (model, size)
        devices = set()
        while len(self._models) > self.max_models or (
            sum(s for _, s in self._models.values()) > self.max_bytes
        ):
            old, _size = self._models.pop(next(iter(self._models)))
            devices.update(t.device for t in old.parameters())
            del old  # the cache's only reference: nothing holds the evicted model after this
        if devices:
            self._release(devices)

    # --- eviction --------------------------------------------------------------------------
    def evict(self, key: ModelKey) -> bool:
        with self._lock:
            entry = self._models.pop(key, None)
        if entry is None:
            return False
        del entry
        self._release()
        return True

    def clear(self) -> None:
        """Evict everything (used after a CUDA out-of-memory error) and free the memory."""
        with self._lock:
            self._models.clear()
        self._release()

    @staticmethod
    def _release(devices=None) -> None:
        gc.collect()
        trim_heap()
        if devices is None or any(d.type != "cpu" for d in devices):
            free_device_memory()


@functools.lru_cache(maxsize=1)
def _libc_trim():
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)


def trim_heap() -> bool:
    """Hand freed heap memory back to the OS (glibc's malloc_trim; a no-op elsewhere).

    glibc keeps freed memory in its per-thread arenas, so without this an evicted model's
    memory stays in the process's RSS, and a server that cycles models grows and grows.
    """
    try:
        trim = _libc_trim()
    except OSError:
        return False
    if trim is None:
        return False
    trim(0)
    return True
