"""The Teach tab's examples as page state (plain JSON, no gradio): which file or ZIP member holds
each example and its class; adding, renaming and removing classes; loading them for training.

    from_zip(path) -> (items, warnings)     add(items, cls, paths) -> items
    rename(items, old, new) -> items        remove(items, cls) -> items
    counts(items) -> {class: n}             load(items) -> teach.examples.Examples
    thumbnails(items, per_class=6) -> [(rgb uint8, caption)];  item_thumbnail(item)
    waiting(paths) -> items without a class     give_class(items, pool, index, cls)
    decoded(items) -> (images, bytes)           (no checks: for suggestions)

An item is {"cls", "file", "member", "name"}: ``file`` is a path gradio chose for an upload
(never one built from user input), ``member`` the path inside that ZIP or None. Images waiting
for a class (the pool) are items whose class is "" and, when from a ZIP, ``loose``: any
member of the ZIP, in any folder.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import numpy as np

from modelkit.errors import ConfigError
from modelkit.images import display
from modelkit.images.archive import read_zip
from modelkit.images.read import read_image
from modelkit.teach.examples import Examples, examples_from_files, zip_classes


def _class_name(cls) -> str:
    name = str(cls or "").strip()
    if not name:
        raise ConfigError("Type a class name first (e.g. 'healthy' or 'cloud').")
    if len(name) > 100:
        raise ConfigError("A class name may have at most 100 characters.")
    return name


@functools.lru_cache(maxsize=2)
def _zip_items(path: str, mtime_ns: int) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    return zip_classes(Path(path).read_bytes(), Path(path).name)


def from_zip(path: str) -> tuple[list[dict], list[str]]:
    """Items of a ZIP with one folder per class (checked, read in memory), and its warnings."""
    found, warnings = _zip_items(str(path), Path(path).stat().st_mtime_ns)
    items = [{"cls": cls, "file": str(path), "member": member, "name": member}
             for cls, member, _ in found]  # fmt: skip
    return items, warnings


def add(items: list[dict], cls, paths) -> list[dict]:
    if not paths:
        raise ConfigError("Choose one or more image files to add under the class name.")
    name = _class_name(cls)
    paths = [paths] if isinstance(paths, str) else list(paths)
    return items + [{"cls": name, "file": str(p), "member": None, "name": Path(p).name}
                    for p in paths]  # fmt: skip


def rename(items: list[dict], old, new) -> list[dict]:
    if not old:
        raise ConfigError("Pick the class to rename.")
    name = _class_name(new)
    return [{**it, "cls": name} if it["cls"] == old else it for it in items]


def remove(items: list[dict], cls) -> list[dict]:
    if not cls:
        raise ConfigError("Pick the class to remove.")
    return [it for it in items if it["cls"] != cls]


def counts(items: list[dict]) -> dict[str, int]:
    return dict(sorted(Counter(it["cls"] for it in items).items()))


@functools.lru_cache(maxsize=2)
def _loose_members(path: str, mtime_ns: int) -> dict[str, bytes]:
    return {m.path: m.data for m in read_zip(Path(path).read_bytes(), Path(path).name).members}


def _bytes(item: dict) -> bytes:
    if item["member"] is None:
        return Path(item["file"]).read_bytes()
    if item.get("loose"):
        return _loose_members(item["file"], Path(item["file"]).stat().st_mtime_ns)[item["member"]]
    found, _ = _zip_items(item["file"], Path(item["file"]).stat().st_mtime_ns)
    return next(data for _, member, data in found if member == item["member"])


def load(items: list[dict]) -> Examples:
    """Decode and check every example (see teach.examples)."""
    if not items:
        raise ConfigError("No examples yet: upload a ZIP with one folder per class, or add "
                          "images under a class name.")  # fmt: skip
    return examples_from_files([(it["cls"], it["name"], _bytes(it)) for it in items])


def thumbnail(data: bytes, name: str, size: int = 96) -> np.ndarray:
    """A small RGB composite of one example (any channel count)."""
    rgb = display.composite(read_image(data, name))
    step = max(1, max(rgb.shape[:2]) // size)
    return np.ascontiguousarray(rgb[::step, ::step])


def item_thumbnail(item: dict) -> np.ndarray:
    return thumbnail(_bytes(item), item["name"])


def thumbnails(items: list[dict], per_class: int = 6) -> list[tuple[np.ndarray, str]]:
    """The first few examples of every class, captioned with the class and its count."""
    total = counts(items)
    shown: Counter = Counter()
    out = []
    for it in items:
        if shown[it["cls"]] < per_class:
            shown[it["cls"]] += 1
            caption = f"{it['cls']} ({total[it['cls']]})"
            out.append((item_thumbnail(it), caption))
    return out


def waiting(paths) -> list[dict]:
    """Images without a class yet: files, or every image of a ZIP (in any folder)."""
    out = []
    for path in [paths] if isinstance(paths, str) else list(paths or []):
        path = str(path)
        if path.lower().endswith(".zip"):
            members = _loose_members(path, Path(path).stat().st_mtime_ns)
            out += [{"cls": "", "file": path, "member": m, "name": m, "loose": True}
                    for m in members]  # fmt: skip
        else:
            out.append({"cls": "", "file": path, "member": None, "name": Path(path).name})
    return out


def give_class(items: list[dict], pool: list[dict], index, cls) -> tuple[list, list]:
    """The examples with ``pool[index]`` added under ``cls``, and the pool without it."""
    if index is None or not 0 <= int(index) < len(pool):
        raise ConfigError("Click one of the suggested images first.")
    name = _class_name(cls)
    index = int(index)
    return items + [{**pool[index], "cls": name}], pool[:index] + pool[index + 1 :]


def decoded(items: list[dict]) -> tuple[list, list[bytes]]:
    """Every item's image and file bytes, without the checks teaching needs."""
    blobs = [_bytes(it) for it in items]
    return [read_image(b, it["name"]) for b, it in zip(blobs, items, strict=True)], blobs
