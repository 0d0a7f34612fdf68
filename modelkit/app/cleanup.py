"""Folders the app fills for visitors, kept within the hosting limits: Gradio's upload folder
(everything a visitor uploads, and the copies of files the app hands out) and the export folder.

Gradio's own ``Blocks(delete_cache=(every, age))`` deletes by age only, and only the files it
tracked; ``prune_folder`` also bounds the total (oldest files first) and removes the folders
left empty. ``start_upload_cleaner`` runs it on the upload folder every
``MODELKIT_CLEANUP_EVERY_S`` seconds, in a daemon thread. No gradio here.

    prune_folder(root, max_bytes=None, max_age_s=None, keep=()) -> list[Path]   # removed files
    delete_cache(limits) -> (every, age) | None                                  # for gr.Blocks
    start_upload_cleaner(folder, limits) -> threading.Thread | None
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from modelkit.hosting import Limits, human_bytes

log = logging.getLogger("modelkit.app")


def _files(root: Path) -> list[tuple[float, int, Path]]:
    """(modified time, bytes, path) of every file below ``root``."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                st = path.lstat()
            except FileNotFoundError:  # removed meanwhile
                continue
            found.append((st.st_mtime, st.st_size, path))
    return found


def _remove_empty_folders(root: Path) -> None:
    for folder, _, _ in sorted(os.walk(root), key=lambda w: -len(w[0])):
        if Path(folder) != root:
            try:
                os.rmdir(folder)
            except OSError:  # not empty, or gone
                pass


def prune_folder(
    root: str | os.PathLike,
    max_bytes: int | None = None,
    max_age_s: float | None = None,
    keep: Iterable[str | os.PathLike] = (),
) -> list[Path]:
    """Remove files below ``root`` older than ``max_age_s``, then the oldest until the rest
    take at most ``max_bytes``; folders left empty go too. ``keep``: files never removed.

    Returns:
        The files removed, oldest first.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    kept = {Path(p).resolve() for p in keep}
    files = sorted(_files(root))
    total = sum(size for _, size, _ in files)
    cutoff = None if max_age_s is None else time.time() - max_age_s
    removed = []
    for mtime, size, path in files:
        old = cutoff is not None and mtime < cutoff
        over = max_bytes is not None and total > max_bytes
        if not (old or over) or path.resolve() in kept:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        total -= size
        removed.append(path)
    if removed:
        _remove_empty_folders(root)
    return removed


def delete_cache(limits: Limits) -> tuple[int, int] | None:
    """``gr.Blocks(delete_cache=...)``: Gradio's own age-based cleanup, when uploads have an
    age limit (every MODELKIT_CLEANUP_EVERY_S, files older than MODELKIT_UPLOAD_MAX_AGE_S)."""
    if limits.upload_max_age_s is None:
        return None
    return limits.cleanup_every_s, limits.upload_max_age_s


def _clean_forever(folder: Path, limits: Limits) -> None:
    max_bytes = None if limits.max_uploads_mb is None else limits.max_uploads_mb * 2**20
    while True:
        try:
            removed = prune_folder(folder, max_bytes, limits.upload_max_age_s)
            if removed:
                log.info("upload folder: removed %d old files (limit %s)", len(removed),
                         human_bytes(max_bytes) if max_bytes else "none")  # fmt: skip
        except OSError:  # a folder removed under us: the next round tries again
            log.warning("upload folder cleanup failed", exc_info=True)
        time.sleep(limits.cleanup_every_s)


def start_upload_cleaner(folder: str | os.PathLike, limits: Limits) -> threading.Thread | None:
    """Keep ``folder`` (Gradio's upload folder) within MODELKIT_MAX_UPLOADS_MB and
    MODELKIT_UPLOAD_MAX_AGE_S, checked every MODELKIT_CLEANUP_EVERY_S seconds in a daemon
    thread; None when neither limit is set (a person's own machine, by default)."""
    if limits.max_uploads_mb is None and limits.upload_max_age_s is None:
        return None
    thread = threading.Thread(
        target=_clean_forever, args=(Path(folder), limits), name="modelkit-uploads", daemon=True
    )
    thread.start()
    return thread
