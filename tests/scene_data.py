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
def indices() -> tuple[np.ndarray, np.ndarray]:
    """(NDVI, MNDWI) per pixel of the example scene: (B8 - B4) / (B8 + B4), (B3 - B11) / (B3 +
    B11)."""
    raw = scene_pixels()
    b = {name: raw[i].astype(np.float64) for i, name in enumerate(BANDS)}
    return (b["B8"] - b["B4"]) / (b["B8"] + b["B4"]), (b["B3"] - b["B11"]) / (b["B3"] + b["B11"])


@functools.cache
def labelled_tiles() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(tiles, labels, (row, col) of each) for the 16-pixel tiles of the example scene that a
    pixel rule labels: "water" when at least 90 % of the pixels have MNDWI = (B3 - B11) /
    (B3 + B11) > 0; else "vegetation" when at least 90 % have NDVI = (B8 - B4) / (B8 + B4) >
    0.4; else "other" when at least half are land that is neither green nor wet (NDVI < 0.3
    and MNDWI < 0). Tiles that fit no rule are left out. The rule is on pixels, the bands
    model sees tile statistics: related, not the same numbers."""
    raw = scene_pixels()
    ndvi, mndwi = indices()
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


@functools.cache
def tile_truth() -> tuple[np.ndarray, np.ndarray]:
    """(rule, most) (32, 32) class indices (of CLASSES) of the example scene's 16-pixel tiles,
    which are the cells of a map with ``tile=16, stride=16``. ``rule``: the class
    ``labelled_tiles`` gives, -1 where it leaves the tile out. ``most``: the class of most of
    the tile's pixels, each pixel "water" when MNDWI > 0, else "vegetation" when NDVI > 0.4,
    else "other": what a person pointing at the tile would call it (it equals ``rule``
    wherever ``rule`` labels the tile)."""
    ndvi, mndwi = indices()
    pixel = np.where(mndwi > 0, 2, np.where(ndvi > 0.4, 1, 0))
    h, w = pixel.shape[0] // TILE, pixel.shape[1] // TILE
    blocks = pixel[: h * TILE, : w * TILE].reshape(h, TILE, w, TILE)
    most = np.stack([(blocks == k).sum((1, 3)) for k in range(len(CLASSES))]).argmax(0)
    rule = np.full((h, w), -1)
    _, labels, where = labelled_tiles()
    rule[where[:, 0] // TILE, where[:, 1] // TILE] = [CLASSES.index(x) for x in labels]
    return rule, most


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


def _taught(x: np.ndarray, most: np.ndarray, cells: list[tuple[int, int]]):
    from sklearn.linear_model import LogisticRegression

    w = most.shape[1]
    rows = [r * w + c for r, c in cells]
    return LogisticRegression(C=10.0, max_iter=500).fit(x[rows], most.ravel()[rows])


def label_rounds(scene_map, strategy: str, budgets, seed: int = 0) -> np.ndarray:
    """Label cells of a map of the example scene (``tile=16, stride=16``, with embeddings) in
    rounds: one cell of each class that the rule labels, drawn with ``seed``, then more up to
    each budget, picked by ``scene_map.suggest(strategy)`` (or at random among the cells with
    data, for "random"), each labelled with the class of most of its pixels (``tile_truth``).
    Each round a logistic regression is taught on the labelled cells' standardised embeddings;
    its probabilities become the map's, as mapping again with a head taught on those cells
    would make them, for the next round's suggestions.

    Returns:
        (budgets, 2): after each budget, the accuracy of the regression's classes over the cells
        the rule labels, and over every cell (against the class of most of its pixels).
    """
    import dataclasses

    rule, most = tile_truth()
    h, w = most.shape
    assert scene_map.class_map.shape == (h, w) and scene_map.cell == TILE
    has_data = np.flatnonzero(scene_map.class_map.ravel() >= 0)
    x = scene_map.embeddings.reshape(h * w, -1).astype(np.float32)
    x = (x - x[has_data].mean(0)) / x[has_data].std(0)
    rng = np.random.default_rng(seed)
    cells = [tuple(int(v) for v in rng.permutation(np.argwhere(rule == k))[0])
             for k in range(len(CLASSES))]  # fmt: skip
    scores = []
    for budget in budgets:
        n = budget - len(cells)
        if strategy == "random":
            free = np.setdiff1d(has_data, [r * w + c for r, c in cells])
            picks = [divmod(int(i), w) for i in rng.choice(free, n, replace=False)]
        else:
            model = _taught(x, most, cells)
            probabilities = np.zeros((h * w, len(CLASSES)), np.float32)
            probabilities[:, model.classes_] = model.predict_proba(x)
            now = dataclasses.replace(scene_map, probabilities=probabilities.T.reshape(-1, h, w))
            picks = now.suggest(n, strategy, labelled=cells, seed=seed)
        cells += picks
        predicted = _taught(x, most, cells).predict(x).reshape(h, w)
        on_rule = rule >= 0
        scores.append((np.mean(predicted[on_rule] == rule[on_rule]), np.mean(predicted == most)))
    return np.array(scores)
