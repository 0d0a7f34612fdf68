"""Read a ZIP of images safely, in memory: the members a person meant, or a clear refusal.

    read_zip(data, filename, limits=None) -> Archive(members, skipped)
        members  [Member(path, data)] in archive order: image files only, read into memory
        skipped  [(path, reason)] files left out: not an image type, a nested ZIP, system clutter

Refused outright (ImageReadError naming the entry): entries with ``..``, absolute paths or drive
letters, symlinks, more entries than ``max_entries``, a member or a total larger than the limits
(declared sizes checked before reading, actual bytes counted while reading), and compression
ratios that only a ZIP bomb has. Nothing is ever extracted to disk. Limits can be raised with
MODELKIT_MAX_ZIP_ENTRIES and MODELKIT_MAX_ZIP_MB.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from modelkit.errors import ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz", ".webp", ".bmp",
                  ".gif")  # fmt: skip
_CLUTTER = re.compile(r"(^|/)(__MACOSX|\.DS_Store|Thumbs\.db|desktop\.ini)(/|$)|(^|/)\._")
_CHUNK = 1 << 20


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int = field(default_factory=lambda: _env_int("MODELKIT_MAX_ZIP_ENTRIES", 20_000))
    max_total_bytes: int = field(
        default_factory=lambda: _env_int("MODELKIT_MAX_ZIP_MB", 2048) * 2**20
    )
    max_member_bytes: int = 512 * 2**20
    max_ratio: float = 200.0  # uncompressed / compressed, for members over 1 MiB


@dataclass
class Member:
    path: str  # the path inside the archive, with forward slashes
    data: bytes

    @property
    def folder(self) -> str:
        """The member's folder inside the archive ("" at the top)."""
        return str(PurePosixPath(self.path).parent).strip(".")

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass
class Archive:
    members: list[Member]
    skipped: list[tuple[str, str]]


def _refuse(filename: str, entry: str, problem: str) -> ImageReadError:
    return ImageReadError(
        f"Cannot use the ZIP '{filename}': its entry '{entry}' {problem}. Make the ZIP again "
        "from a plain folder of images (one sub-folder per class when teaching)."
    )


def _check_entry(info: zipfile.ZipInfo, filename: str, limits: ArchiveLimits) -> None:
    name = info.filename
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _refuse(filename, name, "has an absolute path or a drive letter")
    if ".." in PurePosixPath(name).parts:
        raise _refuse(filename, name, "points outside the archive ('..')")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise _refuse(filename, name, "is a symbolic link")
    if info.file_size > limits.max_member_bytes:
        most = limits.max_member_bytes / 2**20
        raise _refuse(filename, name, f"is {info.file_size / 2**20:,.0f} MiB unpacked; at most "
                      f"{most:,.0f} MiB are accepted per file")  # fmt: skip
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > 2**20 and ratio > limits.max_ratio:
        raise _refuse(filename, name, f"unpacks {ratio:,.0f} times larger than it is stored "
                      "(a ZIP bomb)")  # fmt: skip


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, filename: str, budget: int) -> bytes:
    """The member's bytes, never more than it declares nor than the budget left."""
    out = bytearray()
    with zf.open(info) as stream:
        while chunk := stream.read(_CHUNK):
            out += chunk
            if len(out) > info.file_size or len(out) > budget:
                raise _refuse(filename, info.filename, "holds more data than its header says")
    return bytes(out)


def read_zip(data: bytes, filename: str, limits: ArchiveLimits | None = None) -> Archive:
    """The image members of a ZIP, read into memory within the limits; see the module doc."""
    limits = limits or ArchiveLimits()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ImageReadError(
            f"Cannot open '{filename}' as a ZIP ({exc}). Upload a .zip made from a folder."
        ) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise ImageReadError(
                f"The ZIP '{filename}' has {len(infos):,} entries; at most {limits.max_entries:,} "
                "are accepted (MODELKIT_MAX_ZIP_ENTRIES). Split it into smaller ZIPs."
            )
        for info in infos:
            _check_entry(info, filename, limits)
        declared = sum(i.file_size for i in infos if not i.is_dir())
        if declared > limits.max_total_bytes:
            raise ImageReadError(
                f"The ZIP '{filename}' unpacks to {declared / 2**20:,.0f} MiB; at most "
                f"{limits.max_total_bytes / 2**20:,.0f} MiB are accepted (MODELKIT_MAX_ZIP_MB)."
            )
        members, skipped, used = [], [], 0
        for info in infos:
            name = info.filename
            if info.is_dir() or _CLUTTER.search(name):
                continue
            suffix = PurePosixPath(name).suffix.lower()
            if suffix == ".zip":
                skipped.append((name, "a ZIP inside the ZIP (not opened)"))
                continue
            if suffix not in IMAGE_SUFFIXES:
                skipped.append((name, f"not an image type ({suffix or 'no extension'})"))
                continue
            try:
                blob = _read_member(zf, info, filename, limits.max_total_bytes - used)
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as exc:
                raise _refuse(filename, name, f"cannot be unpacked ({exc})") from None
            used += len(blob)
            members.append(Member(name, blob))
    return Archive(members, skipped)
