"""Labelled examples for teaching: from a ZIP (one folder per class), from uploaded files under
class names, or from lists; checked before any model runs.

    examples_from_zip(data, filename, limits=None) -> Examples
    examples_from_files([(class, filename, bytes), ...]) -> Examples
    check_examples(images, labels, names=None, digests=None) -> list[str]   (warnings)

Refused, each with a ModelkitError naming the class or file and what to do: no labels or labels
that are not text, one class only, a class with one image, more images than
MODELKIT_MAX_TEACH_IMAGES (default 5000), images whose channel counts differ (the odd ones are
named), a ZIP with files outside any class folder or with a ZIP inside. Warned: the same file
(by content hash) in two classes, files of a ZIP that are not images (listed).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from modelkit.errors import ConfigError, ImageReadError
from modelkit.images.archive import ArchiveLimits, read_zip
from modelkit.images.limits import ImageArray
from modelkit.images.read import read_image


def max_images() -> int:
    try:
        return int(os.environ.get("MODELKIT_MAX_TEACH_IMAGES", 5000))
    except ValueError:
        return 5000


@dataclass
class Examples:
    images: list[ImageArray]
    labels: list[str]
    names: list[str]  # where each example came from (archive path or file name)
    image_bytes: list[bytes]
    warnings: list[str] = field(default_factory=list)


def channel_count(image) -> int:
    data = image.data if isinstance(image, ImageArray) else image
    return 1 if getattr(data, "ndim", 3) == 2 else int(data.shape[-3])


def _check_count(count: int) -> None:
    if count > max_images():
        raise ConfigError(
            f"{count:,} examples were given; at most {max_images():,} are accepted "
            "(MODELKIT_MAX_TEACH_IMAGES). Use fewer examples per class."
        )


def check_examples(
    images: Sequence,
    labels: Sequence[str],
    names: Sequence[str] | None = None,
    digests: Sequence[str] | None = None,
) -> list[str]:
    """Refuse examples that cannot teach anything; return warnings about doubtful ones."""
    if len(images) != len(labels):
        raise ConfigError(f"{len(images)} images were given with {len(labels)} labels; give one "
                          "class name per image.")  # fmt: skip
    _check_count(len(images))
    bad = [repr(lab) for lab in labels if not isinstance(lab, str) or not lab.strip()]
    if bad:
        raise ConfigError(f"Labels must be class names (text), not {', '.join(bad[:3])}.")
    names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
    counts = Counter(labels)
    if len(counts) < 2:
        only = next(iter(counts), "none")
        raise ConfigError(
            f"Only one class ('{only}') was given. Teaching needs at least two classes, "
            "each with at least two examples."
        )
    single = [c for c, n in counts.items() if n < 2]
    if single:
        raise ConfigError(
            f"The class{'es' * (len(single) > 1)} {', '.join(repr(c) for c in single)} "
            f"{'have' if len(single) > 1 else 'has'} one example only; give each class at least "
            "two (five or more for numbers you can trust), or remove it."
        )
    chans = [channel_count(im) for im in images]
    common = Counter(chans).most_common(1)[0][0]
    odd = [f"'{names[i]}' ({labels[i]}, {c})" for i, c in enumerate(chans) if c != common]
    if odd:
        raise ConfigError(
            f"The examples must all have the same number of channels; most have {common}, but "
            f"{', '.join(odd[:5])}{' and more' if len(odd) > 5 else ''} differ. Remove them or "
            "save them with the same bands."
        )
    warnings = []
    if digests is not None:
        where = defaultdict(set)
        for digest, label, name in zip(digests, labels, names, strict=True):
            where[digest].add((label, name))
        for places in where.values():
            if len({label for label, _ in places}) > 1:
                listed = ", ".join(f"'{n}' in '{lab}'" for lab, n in sorted(places))
                warnings.append(f"The same file is in two classes: {listed}. Keep it in one.")
    return warnings


def examples_from_files(items: Sequence[tuple[str, str, bytes]]) -> Examples:
    """Decode (class, filename, bytes) triples and check them (see check_examples)."""
    _check_count(len(items))
    images = [read_image(data, name) for _, name, data in items]
    labels = [str(label).strip() for label, _, _ in items]
    names = [name for _, name, _ in items]
    blobs = [data for _, _, data in items]
    digests = [hashlib.sha256(b).hexdigest() for b in blobs]
    warnings = check_examples(images, labels, names, digests)
    return Examples(images, labels, names, blobs, warnings)


def zip_classes(data: bytes, filename: str, limits: ArchiveLimits | None = None):
    """(class, path, bytes) per image of a ZIP, plus warnings; classes are the folders below
    the folder the whole archive shares (so 'set/cats/a.png' and 'cats/a.png' both say 'cats')."""
    archive = read_zip(data, filename, limits)
    nested = [p for p, why in archive.skipped if "ZIP inside" in why]
    if nested:
        raise ImageReadError(
            f"The ZIP '{filename}' holds other ZIPs ({', '.join(nested[:3])}); ZIPs inside a ZIP "
            "are not opened. Unpack them and put their images in the class folders."
        )
    if not archive.members:
        raise ImageReadError(f"The ZIP '{filename}' holds no images. Put the images of each "
                             "class in a folder of its own, then ZIP those folders.")  # fmt: skip
    folders = [m.path.split("/")[:-1] for m in archive.members]
    shared = 0
    while all(len(f) > shared + 1 for f in folders) and len({f[shared] for f in folders}) == 1:
        shared += 1
    loose = [m.path for m, f in zip(archive.members, folders, strict=True) if len(f) <= shared]
    if loose:
        raise ImageReadError(
            f"In the ZIP '{filename}', {', '.join(loose[:3])} {'is' if len(loose) == 1 else 'are'}"
            " not in a class folder. Put every image in the folder named after its class."
        )
    _check_count(len(archive.members))
    items = [(f[shared], m.path, m.data) for m, f in zip(archive.members, folders, strict=True)]
    warnings = []
    if archive.skipped:
        listed = ", ".join(f"{p} ({why})" for p, why in archive.skipped[:10])
        more = f" and {len(archive.skipped) - 10} more" if len(archive.skipped) > 10 else ""
        warnings.append(f"Files left out of '{filename}': {listed}{more}.")
    return items, warnings


def examples_from_zip(data: bytes, filename: str, limits: ArchiveLimits | None = None) -> Examples:
    """The examples of a ZIP with one folder per class, decoded and checked."""
    items, warnings = zip_classes(data, filename, limits)
    examples = examples_from_files(items)
    examples.warnings = warnings + examples.warnings
    return examples


def digest_groups(image_bytes: Sequence[bytes] | None, count: int) -> np.ndarray:
    """A group id per example: equal files share one (they must never sit in two folds)."""
    if image_bytes is None:
        return np.arange(count)
    seen: dict[str, int] = {}
    return np.array([seen.setdefault(hashlib.sha256(b).hexdigest(), len(seen))
                     for b in image_bytes])  # fmt: skip
