"""Downloads: predictions (CSV, JSON), feature maps (NPZ), adapted weights (safetensors).

Public API::

    predictions_csv(rows) -> str          # rows: [{"rank", "label", "index", "probability"}]
    predictions_json(rows, setup, extra=None) -> str
    features_npz(levels) -> bytes         # levels: {"level_2": (C, H, W) array, ...}
    weights_safetensors(model, metadata=None) -> bytes
    ExportDir(root=None, max_age_s=3600).write(name, data) -> Path

Files are written under one private temporary folder per process (never a served folder, never a
name from user input: names are built from a content hash), and files older than ``max_age_s``
are removed on each write.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_safetensors

CSV_FIELDS = ("rank", "label", "index", "probability")


def predictions_csv(rows: Sequence[Mapping]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def predictions_json(rows: Sequence[Mapping], setup: Mapping, extra: Mapping | None = None) -> str:
    return json.dumps(
        {"setup": dict(setup), "predictions": list(rows), **dict(extra or {})},
        indent=2,
        default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o),
    )


def features_npz(levels: Mapping[str, np.ndarray]) -> bytes:
    """Compressed NPZ of plain numeric arrays (loadable with allow_pickle=False)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in levels.items()})
    return buffer.getvalue()


def weights_safetensors(model: torch.nn.Module, metadata: Mapping[str, str] | None = None) -> bytes:
    """The model's state dict as safetensors; shared tensors are stored once each."""
    tensors, storages = {}, set()
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        storage = value.untyped_storage().data_ptr()
        if storage in storages and value.numel():  # tied weights: safetensors refuses shared memory
            value = value.clone()
        storages.add(storage)
        tensors[key] = value
    return save_safetensors(tensors, metadata={k: str(v) for k, v in (metadata or {}).items()})


class ExportDir:
    """A private folder for download files; old files are pruned as new ones are written."""

    def __init__(self, root: str | Path | None = None, max_age_s: float = 3600.0):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="modelkit-exports-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s

    def _prune(self) -> None:
        cutoff = time.time() - self.max_age_s
        for path in self.root.glob("*/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    path.parent.rmdir()
            except OSError:  # another request got there first, or the folder is not empty
                pass

    def write(self, name: str, data: bytes | str) -> Path:
        """Write ``data`` as ``<hash>/<name>``; ``name`` must be a plain file name we chose."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) or name.startswith("."):
            raise ValueError(f"not a safe export file name: {name!r}")
        raw = data.encode() if isinstance(data, str) else data
        self._prune()
        folder = self.root / hashlib.sha256(raw).hexdigest()[:16]
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_bytes(raw)
        return path
