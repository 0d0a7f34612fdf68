"""Scenes for the scene-map tests: the shipped Sentinel-2 example, tiles of it labelled by a
documented index rule, and GeoTIFFs written here with chosen layouts and georeferencing."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parent.parent
SCENE = ROOT / "assets" / "sentinel2_scene_20m.tif"
BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
TILE = 16  # the bands model's input: 320 m at 20 m
CLASSES = ("other", "vegetation", "water")


@functools.cache
def scene_pixels() -> np.ndarray:
    return tifffile.imread(SCENE)


@functools.cache
def labelled_tiles() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(tiles, labels, (row, col) of each) for the 16-pixel tiles of the example scene that a
    pixel rule labels: "water" when at least 90 % of the pixels have MNDWI = (B3 - B11) /
    (B3 + B11) > 0; else "vegetation" when at least 90 % have NDVI = (B8 - B4) / (B8 + B4) >
    0.4; else "other" when at least half are land that is neither green nor wet (NDVI < 0.3
    and MNDWI < 0). Tiles that fit no rule are left out. The rule is on pixels, the bands
    model sees tile statistics: related, not the same numbers."""
    raw = scene_pixels()
    b = {name: raw[i].astype(np.float64) for i, name in enumerate(BANDS)}
    ndvi = (b["B8"] - b["B4"]) / (b["B8"] + b["B4"])
    mndwi = (b["B3"] - b["B11"]) / (b["B3"] + b["B11"])
    tiles, labels, where = [], [], []
    for r in range(0, raw.shape[1], TILE):
        for c in range(0, raw.shape[2], TILE):
            nv, mw = ndvi[r : r + TILE, c : c + TILE], mndwi[r : r + TILE, c : c + TILE]
            if (mw > 0).mean() >= 0.9:
                label = "water"
            elif (nv > 0.4).mean() >= 0.9:
                label = "vegetation"
            elif ((nv < 0.3) & (mw < 0)).mean() >= 0.5:
                label = "other"
            else:
                continue
            tiles.append(np.ascontiguousarray(raw[:, r : r + TILE, c : c + TILE]))
            labels.append(label)
            where.append((r, c))
    return tiles, np.array(labels), np.array(where)


def teaching_split(per_class: int = 15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices to teach on: ``per_class`` of each class, the other labelled indices)."""
    _, labels, _ = labelled_tiles()
    rng = np.random.default_rng(seed)
    teach = np.concatenate([rng.choice(np.flatnonzero(labels == k), per_class, replace=False)
                            for k in CLASSES])  # fmt: skip
    return teach, np.setdiff1d(np.arange(len(labels)), teach)


def geo_tags(x0=500000.0, y0=4200000.0, size=20.0, epsg=32618, point=False, geographic=False):
    """extratags for a north-up GeoTIFF: scale, tiepoint at the top-left corner, GeoKeys."""
    keys = [1, 1, 0, 3, 1024, 0, 1, 2 if geographic else 1, 1025, 0, 1, 2 if point else 1,
            2048 if geographic else 3072, 0, 1, epsg]  # fmt: skip
    return [(33550, "d", 3, (size, size, 0.0), True),
            (33922, "d", 6, (0.0, 0.0, 0.0, x0, y0, 0.0), True),
            (34735, "H", len(keys), tuple(keys), True)]  # fmt: skip


def write_scene(path, data: np.ndarray, extratags=(), **options) -> Path:
    """A (C, H, W) array as a GeoTIFF, bands as separate planes, Deflate unless told."""
    options = {"compression": "zlib", "planarconfig": "separate", **options}
    if data.ndim == 3 and data.shape[0] == 1:  # one band: a plain 2-D image
        data, options["planarconfig"] = data[0], None
    tifffile.imwrite(path, data, photometric="minisblack", metadata=None,
                     extratags=list(extratags), **options)  # fmt: skip
    return Path(path)


@functools.cache
def bands_head():
    """A head taught on "bands.sentinel2_l1c" features from 15 labelled tiles per class."""
    import modelkit

    tiles, labels, _ = labelled_tiles()
    teach, _ = teaching_split()
    return modelkit.train_head([tiles[i] for i in teach], list(labels[teach]),
                               "bands.sentinel2_l1c", use_result_cache=False)  # fmt: skip
