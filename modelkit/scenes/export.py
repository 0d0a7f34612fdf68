"""Writing a SceneMap: a GeoTIFF a GIS puts in the right place, a PNG overlay, a CSV of areas.

The class map GeoTIFF: one band, uint8 (uint16 above 254 classes), palette colours (a colour
table, photometric palette) with the no-data value 255 (65535) in GDAL_NODATA; georeferencing
as ``georef.geotiff_tags`` writes it (the scene's CRS, the transform scaled to the cell); the
class names in GDAL_METADATA (items ``CLASS_0``, ``CLASS_1``, ...) and, with the model, mode,
tile and cell, as JSON in ImageDescription. Tiled 256 x 256, Deflate.

The probabilities go in a second file, ``<name>.probabilities.tif``: one float32 band per class
(band descriptions = class names, as GDAL reads them), NaN on no data, same georeferencing.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import tifffile
from PIL import Image, ImageDraw, ImageFont

from modelkit.errors import ConfigError
from modelkit.scenes.georef import geotiff_tags

# class-name word -> colour; other classes take PALETTE in order
NAMED_COLOURS = {
    "water": (40, 110, 220),
    "sea": (40, 110, 220),
    "river": (40, 110, 220),
    "vegetation": (40, 160, 60),
    "forest": (20, 110, 40),
    "tree": (20, 110, 40),
    "grass": (120, 200, 90),
    "crop": (190, 200, 60),
    "field": (190, 200, 60),
    "urban": (200, 60, 60),
    "built": (200, 60, 60),
    "town": (200, 60, 60),
    "sand": (225, 200, 140),
    "bare": (170, 130, 90),
    "soil": (170, 130, 90),
    "cloud": (235, 235, 235),
    "snow": (235, 235, 235),
    "other": (150, 150, 150),
}
PALETTE = [
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (120, 120, 120),
    (140, 86, 75),
    (148, 103, 189),
    (23, 190, 207),
    (188, 189, 34),
]
NODATA_COLOUR = (0, 0, 0)


def class_colours(classes: list[str]) -> np.ndarray:
    """(K, 3) uint8: a colour per class, from its name where a known word is in it."""
    out, spare = [], iter(PALETTE * (len(classes) // len(PALETTE) + 1))
    for name in classes:
        words = str(name).lower().replace("_", " ").replace("-", " ").split()
        named = next((NAMED_COLOURS[w] for w in words if w in NAMED_COLOURS), None)
        out.append(named or next(spare))
    return np.array(out, np.uint8).reshape(-1, 3)


def check_writable(path) -> Path:
    """The path, once it is sure a file can be written there (else a ConfigError in words)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    problem = None
    if path.is_dir():
        problem = "it is a folder"
    elif not folder.is_dir():
        problem = f"the folder {folder} does not exist"
    else:
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".modelkit-check-"):
                pass
        except OSError as exc:
            problem = f"the folder cannot be written ({exc.strerror or exc})"
    if problem:
        raise ConfigError(f"Cannot write the map to '{path}': {problem}. Choose another place.")
    return path


def _gdal_metadata(items: list[tuple[str, str, int | None]]) -> str:
    parts = []
    for name, value, sample in items:
        where = f' sample="{sample}" role="description"' if sample is not None else ""
        parts.append(f'<Item name="{escape(name)}"{where}>{escape(value)}</Item>')
    return "<GDALMetadata>" + "".join(parts) + "</GDALMetadata>"


def _geo_tags(scene_map) -> list[tuple]:
    if scene_map.georef is None or scene_map.transform is None:
        return []
    return geotiff_tags(scene_map.georef, scene_map.transform)


def save_geotiff(scene_map, path, probabilities: bool = True) -> Path:
    path = check_writable(path)
    classes, cmap = scene_map.classes, scene_map.class_map
    dtype, nodata = (np.uint8, 255) if len(classes) < 255 else (np.uint16, 65535)
    data = np.where(cmap >= 0, cmap, nodata).astype(dtype)
    table = np.zeros((3, 2 ** (8 * np.dtype(dtype).itemsize)), np.uint16)
    table[:, : len(classes)] = class_colours(classes).T.astype(np.uint16) * 257
    items = [(f"CLASS_{k}", str(name), None) for k, name in enumerate(classes)]
    description = json.dumps(
        {
            "classes": classes,
            "nodata": nodata,
            "cell": scene_map.cell,
            "tile": scene_map.tile,
            "model": scene_map.model,
            "mode": scene_map.mode,
            "crs": scene_map.crs,
        }
    )
    extra = [(42112, "s", 0, _gdal_metadata(items), True), (42113, "s", 0, str(nodata), True)]
    _write(path, data, "palette", extra + _geo_tags(scene_map), description, colormap=table)
    if probabilities:
        probs = np.ascontiguousarray(scene_map.probabilities, np.float32)
        names = [(f"probability of {name}", str(name), k) for k, name in enumerate(classes)]
        extra = [(42112, "s", 0, _gdal_metadata(names), True), (42113, "s", 0, "nan", True)]
        _write(
            probability_path(path),
            probs,
            "minisblack",
            extra + _geo_tags(scene_map),
            json.dumps({"classes": classes, "cell": scene_map.cell}),
            predictor=3,
            planarconfig="separate",
        )
    return path


def probability_path(path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}.probabilities{path.suffix or '.tif'}")


def _write(
    path: Path, data: np.ndarray, photometric: str, extratags, description: str, **options
) -> None:
    tile = (256, 256) if min(data.shape[-2:]) >= 256 else None
    tmp = path.with_name(f".{path.name}.part")
    try:
        tifffile.imwrite(
            tmp,
            data,
            photometric=photometric,
            compression="zlib",
            tile=tile,
            description=description,
            metadata=None,
            extratags=extratags,
            **options,
        )
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"Cannot write the map to '{path}': {exc.strerror or exc}.") from None


def overlay(scene_map, opacity: float = 0.55) -> np.ndarray:
    """(h, w, 3) uint8: class colours over the preview; no-data cells black."""
    colours = class_colours(scene_map.classes)
    cmap = scene_map.class_map
    base = scene_map.preview if scene_map.preview is not None else np.zeros((*cmap.shape, 3))
    painted = colours[np.clip(cmap, 0, None)].astype(np.float32)
    out = (1 - opacity) * base.astype(np.float32) + opacity * painted
    out[cmap < 0] = NODATA_COLOUR
    return out.clip(0, 255).astype(np.uint8)


def save_png(scene_map, path) -> Path:
    path = check_writable(path)
    picture = Image.fromarray(overlay(scene_map))
    h, w = scene_map.class_map.shape
    zoom = max(1, min(1024 // max(h, w), 512 // max(1, min(h, w))))
    picture = picture.resize((w * zoom, h * zoom), Image.NEAREST)
    font = ImageFont.load_default()
    line = 16
    legend = Image.new("RGB", (max(picture.width, 320), 8 + line * len(scene_map.area)), "white")
    draw = ImageDraw.Draw(legend)
    for k, (row, colour) in enumerate(
        zip(scene_map.area, class_colours(scene_map.classes), strict=True)
    ):
        y = 4 + k * line
        draw.rectangle([4, y, 16, y + 11], fill=tuple(int(v) for v in colour), outline="black")
        km2 = f", {row['km2']:,.2f} km2" if row["km2"] is not None else ""
        draw.text(
            (22, y), f"{row['class']}: {100 * row['fraction']:.1f} %{km2}", fill="black", font=font
        )
    sheet = Image.new("RGB", (legend.width, picture.height + legend.height), "white")
    sheet.paste(picture, (0, 0))
    sheet.paste(legend, (0, picture.height))
    sheet.save(path, format="PNG")
    return path


def save_csv(scene_map, path) -> Path:
    path = check_writable(path)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "cells", "pixels", "fraction", "km2"])
        for row in scene_map.area:
            km2 = "" if row["km2"] is None else f"{row['km2']:.6f}"
            writer.writerow(
                [row["class"], row["cells"], row["pixels"], f"{row['fraction']:.6f}", km2]
            )
    return path
