"""``SceneMap``: a class map of a scene, where it lies on the ground, how much of each class.

Cells are ``cell`` x ``cell`` source pixels from the scene's top-left corner (the last row and
column may hang over the border). ``class_map`` is -1 on no-data cells, where
``probabilities`` and ``confidence`` are NaN. ``transform`` is the GDAL-order geotransform of
the cell grid in the scene's CRS (``crs``, an EPSG code); both are None for a scene without
georeferencing. ``embeddings`` (h, w, D) float16 holds each cell's pooled features (blended
like the probabilities) when ``map_scene(..., embeddings=True)``: what ``suggest`` (cells to
label next) and ``similar`` (look-alikes of a cell) search (``scenes/label.py``);
``embedding_rgb`` is their first three principal components as colours. ``taught`` says the
classes are a taught head's (``map_scene(..., head=...)``), not a model's own: only then do
suggestions use the probabilities. ``preview`` is the scene at cell resolution (the display
bands at each cell's centre, stretched), for the PNG overlay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from modelkit.scenes.georef import Georef, row_cell_km2

PCA_SAMPLE = 20_000  # cells the principal components are fitted on


@dataclass
class SceneMap:
    classes: list[str]
    class_map: np.ndarray  # (h, w) int32, -1 = no data
    probabilities: np.ndarray  # (K, h, w) float32
    confidence: np.ndarray  # (h, w) float32: the highest probability
    embedding_rgb: np.ndarray | None  # (h, w, 3) uint8
    cell: int  # source pixels per cell side (the stride)
    transform: tuple[float, ...] | None  # GDAL order, of the cell grid
    crs: int | None  # EPSG code
    area: list[dict]  # per class: class, cells, pixels, fraction, km2 (None: not georeferenced)
    timings: dict
    notes: list[str]
    model: str = ""
    mode: str = ""  # "tiles" or "dense"
    tile: int = 0
    scene_shape: tuple[int, int, int] = (0, 0, 0)  # (C, H, W) of the source
    embeddings: np.ndarray | None = None  # (h, w, D) float16, when asked for
    preview: np.ndarray | None = None  # (h, w, 3) uint8
    georef: Georef | None = field(default=None, repr=False)
    taught: bool = False  # the classes are a taught head's
    # what the last suggest() said: its notes (e.g. "no classes taught yet") and the strategy used
    last_notes: list[str] = field(default_factory=list, init=False, repr=False, compare=False)
    last_strategy: str = field(default="", init=False, repr=False, compare=False)

    def suggest(
        self,
        n: int,
        strategy: str = "auto",
        *,
        labelled: Sequence[tuple[int, int]] = (),
        seed: int = 0,
        min_cells: int = 2,
    ) -> list[tuple[int, int]]:
        """The ``n`` map cells most worth labelling next, best first (``teach.suggest``).

        "auto": while there are fewer than 10 labels per class, typical cells of the regions
        the labelled cells do not cover (k-means on the embeddings); then the cells the head
        is least sure of (the smallest margin between its two most probable classes). Only
        cells with data are suggested, never a labelled one, and no two within ``min_cells``
        cells of each other (but "random", the baseline, is not spread). A map of a model's
        own classes (no taught head) gets typical cells only, with a note. The notes and the
        strategy used are kept in ``last_notes`` and ``last_strategy`` for the caller to show.

        Args:
            n: how many cells to suggest (fewer come back when fewer are left).
            strategy: "auto", "typical", "margin" or "random".
            labelled: the (row, col) of the cells labelled so far.
            seed: the clustering's and random's draws.
            min_cells: no two suggestions closer than this many cells (Chebyshev; 2: no two
                are neighbours, diagonals included).

        Returns:
            [(row, col), ...] of the class map.
        """
        from modelkit.scenes.label import suggest_cells

        cells, picked = suggest_cells(self, n, strategy, labelled=labelled, seed=seed,
                                      min_cells=min_cells)  # fmt: skip
        self.last_notes, self.last_strategy = list(picked.notes), picked.strategy
        return cells

    def similar(self, row: int, col: int, k: int = 10) -> list[tuple[int, int]]:
        """The ``k`` cells whose embeddings are nearest cell (row, col)'s, nearest first (exact
        cosine search, ``teach.neighbours``); never the cell itself nor a cell without data.

        Args:
            row, col: the cell (of the class map) to find look-alikes of.
            k: how many.

        Returns:
            [(row, col), ...] of the class map.
        """
        from modelkit.scenes.label import similar_cells

        return similar_cells(self, row, col, k)[0]

    def save(self, path, probabilities: bool = True) -> Path:
        """A GeoTIFF of the class map (palette colours, class names, the scene's CRS and the
        transform of the cells); the probabilities as ``<name>.probabilities.tif`` (float32, one
        band per class) unless ``probabilities=False``. Returns the class map's path."""
        from modelkit.scenes.export import save_geotiff

        return save_geotiff(self, path, probabilities)

    def save_png(self, path) -> Path:
        """The class colours over the scene's preview, with a legend of classes and areas."""
        from modelkit.scenes.export import save_png

        return save_png(self, path)

    def save_csv(self, path) -> Path:
        """The area table: class, cells, pixels, fraction, km2."""
        from modelkit.scenes.export import save_csv

        return save_csv(self, path)


def cell_pixels(height: int, width: int, cell: int) -> np.ndarray:
    """(h, w) source pixels inside each cell (fewer in the last row and column)."""
    rows = np.minimum(cell, height - np.arange(0, height, cell))
    cols = np.minimum(cell, width - np.arange(0, width, cell))
    return rows[:, None] * cols[None]


def area_table(
    class_map: np.ndarray,
    classes: list[str],
    scene_hw: tuple[int, int],
    cell: int,
    georef: Georef | None,
    transform,
) -> list[dict]:
    """Per class: cells, source pixels, fraction of the pixels with data, km^2 (or None)."""
    pixels = cell_pixels(*scene_hw, cell)
    km2 = None
    if georef is not None and transform is not None:
        per_row = row_cell_km2(georef, transform, class_map.shape[0])
        if per_row is not None:
            km2 = np.asarray(per_row)[:, None] * pixels / float(cell * cell)
    valid = float(pixels[class_map >= 0].sum()) or 1.0
    out = []
    for k, name in enumerate(classes):
        where = class_map == k
        out.append(
            {
                "class": name,
                "cells": int(where.sum()),
                "pixels": int(pixels[where].sum()),
                "fraction": float(pixels[where].sum() / valid),
                "km2": None if km2 is None else float(km2[where].sum()),
            }
        )
    return out


def pca_rgb(features: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(h, w, 3) uint8: the first three principal components of the valid cells' features,
    each stretched from its 2nd to 98th percentile."""
    h, w, d = features.shape
    out = np.zeros((h, w, 3), np.uint8)
    rows = features[valid].astype(np.float32)
    if len(rows) < 2:
        return out
    step = max(1, len(rows) // PCA_SAMPLE)
    fit = rows[::step]
    mean = fit.mean(0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    comps = (rows - mean) @ vt[:3].T
    low, high = np.percentile(comps, [2, 98], axis=0)
    scaled = (comps - low) / np.where(high > low, high - low, 1.0)
    colours = np.zeros((len(rows), 3), np.uint8)
    colours[:, : comps.shape[1]] = np.clip(scaled * 255, 0, 255).astype(np.uint8)
    out[valid] = colours
    return out
