"""ResultCache: predictions and feature maps on disk (diskcache), an optimisation that never fails.

Lives in ``MODELKIT_CACHE_DIR`` (default ``~/.cache/modelkit/results``, or under
``XDG_CACHE_HOME``): outside the repository and any folder the web server serves. Bounded by
``MODELKIT_RESULT_CACHE_MB`` (default 1024), diskcache evicting least recently stored first.

Any failure to open, read or write the cache (unwritable folder, full disk, corrupt entry) is
logged once per kind of problem and the request goes on as a miss: nothing is lost.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

import modelkit

log = logging.getLogger(__name__)

DEFAULT_SIZE_MB = 1024


def default_cache_dir() -> Path:
    env = os.environ.get("MODELKIT_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(base) / "modelkit" / "results"


def hash_data(data: bytes | np.ndarray | torch.Tensor) -> str:
    """sha256 of raw bytes, or of an array's dtype, shape and bytes."""
    h = hashlib.sha256()
    if isinstance(data, bytes | bytearray | memoryview):
        h.update(b"bytes:")
        h.update(data)
        return h.hexdigest()
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().contiguous().numpy()
    array = np.ascontiguousarray(data)
    h.update(f"array:{array.dtype.str}:{array.shape}:".encode())
    h.update(memoryview(array).cast("B"))
    return h.hexdigest()


def result_key(kind: str, data_hash: str, settings: dict) -> str:
    """One key for one question: what was asked, about which input, with which settings."""
    payload = json.dumps(
        {"kind": kind, "data": data_hash, "settings": settings, "version": modelkit.__version__},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def encode(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """JSON metadata + arrays as one .npz blob (no pickle anywhere: safe to read back)."""
    buffer = io.BytesIO()
    blob = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buffer, __meta__=blob, **arrays)
    return buffer.getvalue()


def decode(blob: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    return meta, arrays


class ResultCache:
    """get/set that never raise; problems are logged once (per kind) and count as misses."""

    def __init__(self, directory: str | Path | None = None, size_mb: int | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        env_mb = os.environ.get("MODELKIT_RESULT_CACHE_MB", "").strip()
        if size_mb is None:
            size_mb = int(env_mb) if env_mb.isdigit() else DEFAULT_SIZE_MB
        self.size_limit = int(size_mb) * 2**20
        self._cache = None
        self._opened = False
        self._logged: set[str] = set()
        self.errors = 0  # problems met (for tests and reports)

    def _problem(self, kind: str, error: BaseException) -> None:
        self.errors += 1
        if kind not in self._logged:
            self._logged.add(kind)
            log.warning(
                "Result cache at %s: %s failed (%s: %s); going on without it.",
                self.directory, kind, type(error).__name__, error,
            )  # fmt: skip

    def _open(self):
        if not self._opened:
            self._opened = True
            try:
                import diskcache

                self.directory.mkdir(parents=True, exist_ok=True)
                self._cache = diskcache.Cache(
                    str(self.directory),
                    size_limit=self.size_limit,
                    eviction_policy="least-recently-stored",
                )
            except Exception as error:  # noqa: BLE001 - the cache is optional
                self._problem("open", error)
        return self._cache

    def get(self, key: str) -> tuple[dict, dict[str, np.ndarray]] | None:
        """(meta, arrays) stored under ``key``, or None (miss, or a problem: logged once)."""
        cache = self._open()
        if cache is None:
            return None
        try:
            blob = cache.get(key, default=None, retry=True)
            return None if blob is None else decode(blob)
        except Exception as error:  # noqa: BLE001 - a corrupt entry is a miss
            self._problem("read", error)
            try:
                cache.delete(key)
            except Exception:  # noqa: BLE001
                pass
            return None

    def set(self, key: str, meta: dict, arrays: dict[str, np.ndarray]) -> bool:
        """Store; False (logged once) when the cache cannot take it."""
        cache = self._open()
        if cache is None:
            return False
        try:
            return bool(cache.set(key, encode(meta, arrays), retry=True))
        except Exception as error:  # noqa: BLE001 - full or unwritable: the result stands
            self._problem("write", error)
            return False

    def clear(self) -> None:
        cache = self._open()
        if cache is not None:
            try:
                cache.clear()
            except Exception as error:  # noqa: BLE001
                self._problem("clear", error)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
