"""The weights files modelkit downloads, bounded: a download is refused before its first byte
when it is larger than ``MODELKIT_MAX_WEIGHTS_GB`` or than the free disk less
``MODELKIT_MIN_FREE_DISK_MB``; the files modelkit downloaded are kept under that total, least
recently used first, and a file is never removed while a build reads it.

Only files modelkit itself downloaded are ever removed: they are listed in a ledger
(``<modelkit cache>/downloads.json``: path, bytes, last use). Files a person put in the Hugging
Face or torch hub cache by other means are never touched.

    reserve(size, folder, what)   # context: checks, makes room, holds the space while downloading
    record(path, size)            # a finished download joins the ledger
    in_use(path)                  # context: a build reads this file (never evicted meanwhile)
    note_use(path)                # the file was used now (least recently used goes first)
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelkit.errors import DiskLimitError
from modelkit.hosting import free_disk_bytes, human_bytes, limits
from modelkit.models.timm_source import cache_dir

log = logging.getLogger(__name__)
_LOCK = threading.RLock()
_IN_USE: Counter[str] = Counter()  # path -> builds reading it now
_PENDING: dict[int, int] = {}  # id of a reservation -> bytes it holds while downloading


def ledger_path() -> Path:
    """``downloads.json`` in modelkit's cache folder (MODELKIT_CACHE_DIR, or ~/.cache/modelkit)."""
    return cache_dir().parent / "downloads.json"


def _load() -> dict[str, dict]:
    try:
        data = json.loads(ledger_path().read_text())
    except (OSError, ValueError):
        return {}
    return {p: e for p, e in data.items() if isinstance(e, dict) and os.path.lexists(p)}


def _save(ledger: dict[str, dict]) -> None:
    path = ledger_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".partial")
        with os.fdopen(fd, "w") as out:
            json.dump(ledger, out)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache: the files stay, only the bound is lost
        log.warning("could not write %s: %s", path, exc)


def record(path: str | os.PathLike, size: int | None = None) -> None:
    """A file modelkit has just downloaded: it counts toward MODELKIT_MAX_WEIGHTS_GB."""
    path = str(path)
    size = size if size is not None else os.path.getsize(path)
    with _LOCK:
        ledger = _load()
        ledger[path] = {"size": int(size), "used": time.time()}
        _save(ledger)


def note_use(path: str | os.PathLike) -> None:
    """The file was used now: it goes last when room is made (only files in the ledger)."""
    path = str(path)
    with _LOCK:
        ledger = _load()
        if path in ledger:
            ledger[path]["used"] = time.time()
            _save(ledger)


@contextmanager
def in_use(path) -> Iterator[None]:
    """Within: a build reads ``path``, which is therefore never evicted (a state dict or None
    passes through: nothing on disk to protect)."""
    if not isinstance(path, str | os.PathLike):
        yield
        return
    path = str(path)
    note_use(path)
    with _LOCK:
        _IN_USE[path] += 1
    try:
        yield
    finally:
        with _LOCK:
            _IN_USE[path] -= 1
            if _IN_USE[path] <= 0:
                del _IN_USE[path]


def _remove(path: str) -> None:
    """A downloaded file: a Hugging Face cache link and the blob it points to, or the file; its
    folder too when that is left empty (so the model no longer counts as on disk)."""
    blob = os.path.realpath(path)
    for p in {path, blob}:
        try:
            os.remove(p)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:  # not empty
        pass


def _make_room(ledger: dict[str, dict], need: int, cap: int, what: str) -> None:
    """Evict the least recently used files not in use until ``need`` more bytes fit ``cap``."""
    total = sum(e["size"] for e in ledger.values()) + sum(_PENDING.values())
    for path in sorted(ledger, key=lambda p: ledger[p]["used"]):
        if total + need <= cap:
            break
        if _IN_USE[path]:
            continue
        log.info("removing %s (%s, least recently used) to make room", path, ledger[path]["size"])
        _remove(path)
        total -= ledger.pop(path)["size"]
    _save(ledger)
    if total + need > cap:
        raise DiskLimitError(
            f"{what} ({human_bytes(need)}) does not fit in the {human_bytes(cap)} this server "
            "keeps for downloaded weights: the weights there now are in use. Try again in a "
            "minute."
        )


@contextmanager
def reserve(size: int | None, folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Before a download of ``size`` bytes (None: not announced) into ``folder``: refuse it
    when it can never fit, make room for it, check the free disk, and hold its bytes until the
    block ends (so two downloads at once cannot both take the last room). ``what`` names the
    file in the messages, e.g. "model.safetensors of timm/vit_7b_patch16_dinov3.lvd1689m"."""
    lim = limits()
    cap, need = lim.max_weights_bytes, int(size or 0)
    with _LOCK:
        if cap is not None and need > cap:
            raise DiskLimitError(
                f"{what} is {human_bytes(need)}; this server keeps at most {human_bytes(cap)} of "
                "downloaded weights (MODELKIT_MAX_WEIGHTS_GB), so it was not downloaded. Pick a "
                "smaller model, or run this one on your own machine."
            )
        if cap is not None:
            _make_room(_load(), need, cap, what)
        free, margin = free_disk_bytes(folder), lim.min_free_disk_bytes
        if need + margin > free:
            raise DiskLimitError(
                f"{what} is {human_bytes(need)}, but the disk has {human_bytes(free)} free and "
                f"this server keeps {human_bytes(margin)} free (MODELKIT_MIN_FREE_DISK_MB), so it "
                "was not downloaded. Pick a smaller model, or ask the server's owner to free disk "
                "space."
            )
        token = object()
        _PENDING[id(token)] = need
    try:
        yield
    finally:
        with _LOCK:
            _PENDING.pop(id(token), None)
