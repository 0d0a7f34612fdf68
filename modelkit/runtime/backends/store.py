"""Compiled graphs on disk: one folder per key under ``<result cache>/compiled/``, bounded in
total size (least recently used folders go first), written whole and renamed into place so a
restart, or another process, finds a complete graph or none.

A folder holds ``model.onnx`` (and ``model.int8.onnx``), ``meta.json`` (what the graph is),
``choice.json`` (what "auto" picked per batch size) and ``ov_cache/`` (OpenVINO's compiled
blobs). The key covers the model id, a fingerprint of every weight (random weights never share
a graph), the output, the shape policy, the precision and the package versions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import torch
from torch import nn

import modelkit
from modelkit.runtime.backends.names import versions
from modelkit.runtime.result_cache import default_cache_dir

log = logging.getLogger(__name__)

DEFAULT_SIZE_MB = 4096
SIZE_ENV = "MODELKIT_COMPILED_CACHE_MB"
META, CHOICE = "meta.json", "choice.json"


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 of every parameter and buffer (names, dtypes, shapes, bytes) and the class name."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(tensor.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().data)
    return h.hexdigest()


def graph_key(model_id: str, fingerprint: str, output: str, shape: str, precision: str) -> str:
    """The folder name for one graph: a hash of everything the graph depends on."""
    payload = json.dumps({"model": model_id, "weights": fingerprint, "output": output,
                          "shape": shape, "precision": precision, "versions": versions(),
                          "modelkit": modelkit.__version__}, sort_keys=True)  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()[:40]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class GraphStore:
    """Folders of compiled graphs; every method logs and carries on when the disk says no."""

    def __init__(self, directory: str | Path | None = None, size_mb: int | None = None) -> None:
        self.directory = Path(directory) if directory else default_cache_dir() / "compiled"
        env = os.environ.get(SIZE_ENV, "").strip()
        mb = size_mb if size_mb is not None else int(env) if env.isdigit() else DEFAULT_SIZE_MB
        self.size_limit = int(mb) * 2**20
        self._lock = threading.Lock()

    def folder(self, key: str) -> Path:
        return self.directory / key

    def find(self, key: str) -> Path | None:
        """The complete folder for ``key`` (marked as just used), or None."""
        path = self.folder(key)
        if not (path / META).is_file():
            return None
        try:
            os.utime(path / META)  # the LRU clock
        except OSError:
            pass
        return path

    def meta(self, key: str) -> dict:
        return _read_json(self.folder(key) / META)

    def update_meta(self, key: str, changes: dict) -> None:
        """Merge ``changes`` into ``key``'s meta.json (logged, not raised, when it fails)."""
        try:
            _write_json(self.folder(key) / META, self.meta(key) | changes)
        except OSError as error:
            log.warning("Could not update %s: %s", self.folder(key), error)

    def add(self, key: str, build) -> Path:
        """Make ``key``'s folder with ``build(tmp_folder) -> meta`` and move it into place.

        Args:
            key: the graph's key.
            build: writes the graph files into the folder it is given and returns the meta dict.
        Returns:
            The folder in place (another process's, when it finished first).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.directory))
        try:
            meta = build(tmp)
            _write_json(tmp / META, meta)
            try:
                os.rename(tmp, self.folder(key))
            except OSError:  # already there (a race with another process): keep theirs
                if self.find(key) is None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.trim(keep=key)
        return self.folder(key)

    def add_file(self, key: str, name: str, write) -> Path:
        """Write one more file (``write(tmp_path)``) into an existing folder, atomically."""
        final = self.folder(key) / name
        tmp = final.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            write(tmp)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.trim(keep=key)
        return final

    def choices(self, key: str) -> dict:
        """What "auto" picked for this graph, per batch size and thread count."""
        return _read_json(self.folder(key) / CHOICE)

    def record_choice(self, key: str, slot: str, choice: dict) -> None:
        with self._lock:
            data = self.choices(key) | {slot: choice}
            try:
                _write_json(self.folder(key) / CHOICE, data)
            except OSError as error:
                log.warning("Could not record the backend choice in %s: %s", self.folder(key),
                            error)  # fmt: skip

    def total_bytes(self) -> int:
        if not self.directory.is_dir():
            return 0
        return sum(_size(p) for p in self.directory.iterdir() if p.is_dir())

    def trim(self, keep: str | None = None) -> list[str]:
        """Delete least recently used folders until the store fits its size; returns their keys."""
        with self._lock:
            try:
                folders = [p for p in self.directory.iterdir()
                           if p.is_dir() and (p / META).is_file()]  # fmt: skip
                sizes = {p: _size(p) for p in folders}
                used = {p: (p / META).stat().st_mtime for p in folders}
            except OSError:
                return []
            total, dropped = sum(sizes.values()), []
            for path in sorted(folders, key=used.get):
                if total <= self.size_limit:
                    break
                if path.name == keep:
                    continue
                shutil.rmtree(path, ignore_errors=True)
                total -= sizes[path]
                dropped.append(path.name)
            return dropped


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)
