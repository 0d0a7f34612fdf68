"""Finished windows kept on disk beside a map's output, so that a rerun after an interruption
resumes: ``<OUT>.parts/`` holds ``plan.json`` (what was being computed: scene, model, head,
tile, stride, mode, ...) and one ``window-<index>.npz`` per finished window (its tiles'
vectors, no-data cells and preview). A rerun with the same plan loads them and computes only
the rest; a different plan starts afresh. The folder is removed once the map is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from modelkit.scenes.worker import WindowResult


def fingerprint(source, **plan) -> dict:
    """A JSON-able description of the work; a file is named by its path, size and mtime, bytes
    and arrays by a hash of their contents."""
    if isinstance(source, str | os.PathLike):
        stat = Path(source).stat()
        what = {
            "path": str(Path(source).resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
    else:
        data = getattr(source, "data", source)
        raw = bytes(data) if isinstance(data, bytes | bytearray) else np.ascontiguousarray(data)
        what = {"sha256": hashlib.sha256(memoryview(raw).cast("B")).hexdigest()}
    return json.loads(json.dumps({"scene": what, **plan}, default=str))


class Parts:
    """The finished windows of one plan, in ``folder``."""

    def __init__(self, folder: str | os.PathLike, plan: dict) -> None:
        self.folder = Path(folder)
        stamp = self.folder / "plan.json"
        if self.folder.is_dir():
            try:
                same = json.loads(stamp.read_text()) == plan
            except (OSError, ValueError):
                same = False
            if not same:
                shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not stamp.exists():
            stamp.write_text(json.dumps(plan))

    def done(self) -> set[int]:
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("window-*.npz")}

    def load(self) -> Iterator[WindowResult]:
        """The finished windows, one at a time (a damaged file is computed again)."""
        for path in sorted(self.folder.glob("window-*.npz")):
            try:
                with np.load(path, allow_pickle=False) as stored:
                    yield WindowResult.from_arrays(dict(stored))
            except (OSError, ValueError, KeyError):
                path.unlink(missing_ok=True)

    def add(self, result: WindowResult) -> None:
        final = self.folder / f"window-{result.index}.npz"
        tmp = self.folder / f".window-{result.index}.tmp.npz"
        np.savez(tmp, **result.arrays())
        os.replace(tmp, final)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
