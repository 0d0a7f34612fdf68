"""Downloads: predictions (CSV, JSON), feature maps (NPZ), adapted weights (safetensors).

Public API::

    predictions_csv(rows) -> str          # rows: [{"rank", "label", "index", "probability"}]
    predictions_json(rows, setup, extra=None) -> str
    features_npz(levels) -> bytes         # levels: {"level_2": (C, H, W) array, ...}
    weights_safetensors(model, metadata=None) -> bytes
    ExportDir(root=None, max_age_s=None, max_bytes=None).write(name, data) -> Path

Files are written under one private temporary folder per process (never a served folder, never a
name from user input: names are built from a content hash). On each write, files older than
``max_age_s`` are removed, then the oldest until the new file fits ``max_bytes`` (by default the
hosting limits: one hour; no total on a person's own machine, 2 GB on a Space).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_safetensors

from modelkit.app.cleanup import prune_folder
from modelkit.errors import DiskLimitError
from modelkit.hosting import human_bytes, limits

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
    """A private folder for download files, bounded by age and by total size: older files
    are pruned as new ones are written, oldest first. ``max_age_s`` / ``max_bytes`` None: the
    hosting limits (MODELKIT_EXPORT_MAX_AGE_S, MODELKIT_MAX_EXPORTS_MB), read at each write."""

    def __init__(
        self,
        root: str | Path | None = None,
        max_age_s: float | None = None,
        max_bytes: int | None = None,
    ):
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix="modelkit-exports-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_s, self.max_bytes = max_age_s, max_bytes

    def _caps(self) -> tuple[float, int | None]:
        lim = limits()
        total = None if lim.max_exports_mb is None else lim.max_exports_mb * 2**20
        age = lim.export_max_age_s if self.max_age_s is None else self.max_age_s
        return age, total if self.max_bytes is None else self.max_bytes

    def write(self, name: str, data: bytes | str) -> Path:
        """Write ``data`` as ``<hash>/<name>``; ``name`` must be a plain file name we chose.
        A file larger than the whole total is refused (DiskLimitError), before any pruning."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name) or name.startswith("."):
            raise ValueError(f"not a safe export file name: {name!r}")
        raw = data.encode() if isinstance(data, str) else data
        max_age_s, max_bytes = self._caps()
        if max_bytes is not None and len(raw) > max_bytes:
            raise DiskLimitError(
                f"The file {name} would be {human_bytes(len(raw))}; this server keeps at most "
                f"{human_bytes(max_bytes)} of downloads (MODELKIT_MAX_EXPORTS_MB). Use a smaller "
                "model or fewer images, or run modelkit on your own machine."
            )
        room = None if max_bytes is None else max_bytes - len(raw)
        prune_folder(self.root, room, max_age_s)
        folder = self.root / hashlib.sha256(raw).hexdigest()[:16]
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_bytes(raw)
        return path
