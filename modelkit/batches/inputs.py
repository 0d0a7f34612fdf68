"""What a batch reads: a ZIP, a folder or a list of files, as named items whose bytes are read
only when needed (a folder of 100,000 files costs a list of names, not their contents).

    collect(inputs) -> Inputs(items [Item(name, folder, load)], skipped [(name, reason)], root)

Names are stable across runs (a folder's files by their path below it, a ZIP's members by their
path inside it, listed files by the path given), so a rerun can tell which files are done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from modelkit.errors import ConfigError, ImageReadError
from modelkit.images.archive import IMAGE_SUFFIXES, ArchiveLimits, read_zip


@dataclass(frozen=True)
class Item:
    name: str  # the row's `file`: stable across runs
    load: Callable[[], bytes] = field(repr=False, compare=False)
    path: str | None = None  # the file on disk, when there is one (the Ray engine reads it)

    @property
    def folder(self) -> str:
        """The item's folder (inside the ZIP or below the input folder; "" at the top)."""
        return str(PurePosixPath(self.name).parent).strip(".")


@dataclass
class Inputs:
    items: list[Item]
    skipped: list[tuple[str, str]]  # files that are not images, with the reason
    root: Path | None = None  # the folder the names are relative to (None for a ZIP)
    kind: str = "files"  # "zip", "folder" or "files"


def _reader(path: Path) -> Callable[[], bytes]:
    return lambda: path.read_bytes()


def _is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


def _from_zip(data: bytes, filename: str, limits: ArchiveLimits | None) -> Inputs:
    archive = read_zip(data, filename, limits)
    items = [Item(m.path, (lambda blob=m.data: blob)) for m in archive.members]
    return Inputs(items, list(archive.skipped), None, "zip")


def _from_folder(folder: Path) -> Inputs:
    items, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in filenames:
            path = Path(dirpath) / filename
            name = path.relative_to(folder).as_posix()
            if filename.startswith("."):
                continue  # hidden files (.DS_Store, ._name) are not part of the folder's data
            if _is_image(filename):
                items.append(Item(name, _reader(path), str(path)))
            else:
                skipped.append((name, f"not an image type ({path.suffix or 'no extension'})"))
    items.sort(key=lambda item: item.name)
    skipped.sort()
    return Inputs(items, skipped, folder, "folder")


def collect(inputs, limits: ArchiveLimits | None = None) -> Inputs:
    """The images of ``inputs``: a .zip path, a folder path, or a list of file paths or
    (name, bytes) pairs. Non-images in a folder or ZIP are listed in ``skipped``."""
    if isinstance(inputs, str | os.PathLike):
        path = Path(inputs)
        if path.is_dir():
            return _from_folder(path)
        if not path.is_file():
            raise ConfigError(f"The input '{path}' is neither a folder nor a file; check the path.")
        if path.suffix.lower() == ".zip":
            return _from_zip(path.read_bytes(), path.name, limits)
        inputs = [path]
    if not isinstance(inputs, Sequence) or isinstance(inputs, bytes):
        raise ConfigError(
            f"Cannot read images from a {type(inputs).__name__}; give a folder, a .zip file, "
            "or a list of image files."
        )
    items: list[Item] = []
    for entry in inputs:
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], bytes):
            items.append(Item(str(entry[0]), (lambda blob=entry[1]: blob)))
            continue
        path = Path(entry)
        if not path.is_file():
            raise ImageReadError(f"The file '{path}' does not exist or is not a file.")
        items.append(Item(str(entry), _reader(path), str(path)))
    if not items:
        raise ConfigError("No images were given; give a folder, a .zip or a list of files.")
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise ConfigError(f"The file '{item.name}' is listed twice; list each file once.")
        seen.add(item.name)
    return Inputs(items, [], None, "files")
