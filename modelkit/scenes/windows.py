"""A scene opened for reading window by window: from a path, bytes, an ImageArray or an array.

    open_scene(source, name=None) -> Scene
    Scene.read(top, bottom, left, right, bands=None) -> (C, h, w) array in the file's dtype
    nodata_mask(window, nodata) -> (h, w) bool

A TIFF (a path or bytes) is read through ``tiff_windows``: only the tiles or strips a window
touches are decoded, so the scene may be far larger than memory and than ``ReadLimits`` (which
bound what ``read_image`` decodes at once); its GeoTIFF georeferencing and GDAL_NODATA tag are
read. Other formats (PNG, JPEG, NPY, ...) have no windows: they are read whole by
``read_image``, under its limits. An ImageArray or a (C, H, W) / (H, W) array is used as it is
(an ImageArray carries no georeferencing: give the file for a map that keeps it).

No data: a pixel is no data when any band is NaN, when every band equals the GDAL_NODATA value,
or when every band is 0 (the fill of a scene's edges).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelkit.errors import ConfigError
from modelkit.images.limits import ImageArray, ReadLimits, fail
from modelkit.scenes.georef import Georef, read_georef

MAX_CHANNELS = ReadLimits().max_channels


@dataclass
class Scene:
    """A scene's size, type, band names, georeferencing and no-data value, and its reader."""

    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    dtype: np.dtype
    reader: object  # .read(top, bottom, left, right, bands) and .close()
    band_names: list[str] | None = None
    georef: Georef | None = None
    nodata: float | None = None
    tiled: bool = True  # False: stored in full-width strips (windows should be row bands)
    notes: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]

    def read(
        self, top: int, bottom: int, left: int, right: int, bands: list[int] | None = None
    ) -> np.ndarray:
        """Pixels of rows top..bottom-1 and columns left..right-1 (of ``bands``, all if None)."""
        return self.reader.read(top, bottom, left, right, bands)

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> Scene:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _ArrayReader:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def read(self, top, bottom, left, right, bands=None) -> np.ndarray:
        block = self.data[:, top:bottom, left:right]
        return block if bands is None else block[list(bands)]

    def close(self) -> None:
        pass


def _is_tiff(head: bytes) -> bool:
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _array_scene(data: np.ndarray, name: str, band_names=None, notes=None) -> Scene:
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ConfigError(
            f"A scene array must be (C, H, W) or (H, W); this one has shape {data.shape}."
        )
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    if data.dtype == bool:
        data = data.astype(np.uint8)
    names = list(band_names) if band_names and len(band_names) == data.shape[0] else None
    notes = list(notes or [])
    notes.append("The scene is an array: no georeferencing (give the GeoTIFF file to keep it).")
    return Scene(
        name, tuple(int(v) for v in data.shape), data.dtype, _ArrayReader(data), names, notes=notes
    )


def _tiff_scene(source, name: str) -> Scene:
    from modelkit.scenes.tiff_windows import TiffWindows

    reader = TiffWindows(source, name)
    try:
        georef, notes = read_georef(reader.page)
        nodata = _nodata(reader.page)
    except Exception:
        reader.close()
        raise
    return Scene(
        name,
        reader.shape,
        reader.dtype,
        reader,
        reader.band_names,
        georef,
        nodata,
        reader.tiled,
        reader.notes + notes,
    )


def _nodata(page) -> float | None:
    tag = page.tags.get(42113)
    if tag is None:
        return None
    try:
        return float(str(tag.value).strip().rstrip("\x00"))
    except ValueError:
        return None


def open_scene(source, name: str | None = None) -> Scene:
    """A Scene from a path, the file's bytes, an ImageArray or a (C, H, W) / (H, W) array."""
    if isinstance(source, ImageArray):
        scene = _array_scene(source.data, name or source.filename, source.band_names, source.notes)
    elif isinstance(source, np.ndarray):
        scene = _array_scene(source, name or "array")
    elif isinstance(source, bytes | bytearray | memoryview):
        name = name or "scene"
        scene = (
            _tiff_scene(bytes(source), name)
            if _is_tiff(bytes(source[:4]))
            else (_read_whole(bytes(source), name))
        )
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise fail(name, "the file does not exist", "Check the path.")
        with open(path, "rb") as handle:
            head = handle.read(4)
        scene = _tiff_scene(path, name) if _is_tiff(head) else _read_whole(path.read_bytes(), name)
    else:
        raise ConfigError(
            f"Cannot map a {type(source).__name__}; give a GeoTIFF path, the file's bytes, an "
            "image read by modelkit.read_image, or a (C, H, W) array."
        )
    if scene.channels > MAX_CHANNELS:
        scene.close()
        raise fail(
            scene.name,
            f"it has {scene.channels} bands; at most {MAX_CHANNELS} are accepted",
            "Keep only the bands you need.",
        )
    if min(scene.shape) <= 0:
        scene.close()
        raise fail(scene.name, f"the scene is empty (shape {scene.shape})", "Give a real scene.")
    return scene


def _read_whole(data: bytes, name: str) -> Scene:
    from modelkit.images.read import read_image

    image = read_image(data, name)
    scene = _array_scene(image.data, name, image.band_names, image.notes)
    scene.notes[-1] = f"A {image.format.upper()} file has no georeferencing; it was read whole."
    return scene


def _representable(value: float, dtype: np.dtype) -> bool:
    """Whether pixels of this dtype can equal ``value`` (-9999 cannot be uint16; NaN is
    handled on its own)."""
    if np.isnan(value):
        return False
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return float(value).is_integer() and info.min <= value <= info.max
    return True


def nodata_mask(window: np.ndarray, nodata: float | None) -> np.ndarray:
    """(h, w) True where the pixel is no data: any band NaN, or every band equal to ``nodata``
    or to 0."""
    empty = ~window.any(axis=0)
    if nodata is not None and nodata != 0 and _representable(nodata, window.dtype):
        empty |= (window == np.asarray(nodata, window.dtype)).all(axis=0)
    if window.dtype.kind == "f":
        empty |= np.isnan(window).any(axis=0)
    return empty
