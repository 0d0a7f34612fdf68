"""Labelling on a scene map: which cells to label next, and which cells look like a given one.

    suggest_cells(scene_map, n, strategy="auto", *, labelled=(), seed=0, min_cells=2)
        -> (cells [(row, col), ...], Suggestions)
    similar_cells(scene_map, row, col, k=10) -> (cells [(row, col), ...], distances)

Both read the map's per-cell embeddings (``map_scene(..., embeddings=True)``) as an (h * w, D)
view of ``SceneMap.embeddings``. Cells are (row, col) of the class map; a flat index is
``row * w + col``.

``suggest_cells`` hands ``teach.suggest.suggest`` the embeddings, the cells with data as
candidates, the grid position of every cell (so that no two suggestions lie within ``min_cells``
cells of each other) and, when a taught head made the map, its probabilities as (h * w, K).
Embeddings of at most PCA_DIMS (64) features, such as the bands model's 31 (log band statistics
beside indices in [-1, 1]), are standardised first (each feature less its mean, over its
standard deviation, over the cells with data; a float32 copy, as suggest makes of so few
features anyway): the typical strategy clusters the cells, and unstandardised the largest
features would decide the clusters. Measured on the example scene (bench/bench_scene_label.py,
16 seeds): picks on the raw bands embeddings fell 0.9-1.6 points below random ones at 10-30
labels, standardised ones -0.2 to +0.9. Wider embeddings (a network's pooled features, which
share one scale) are passed as they are, a view without a copy: suggest reduces them to
centred principal components itself, and a float16 copy of a 100,000-cell x 1280 map cost
2-3 s and 244 MiB on 2 cores.

``similar_cells`` hands the raw embeddings to ``teach.neighbours.nearest`` (exact cosine, read
in blocks: no copy), skipping no-data cells and the cell itself, as ``modelkit.similar`` does for
a Batch table (standardising changed nothing measurable there: look-alikes of the example's
water, vegetation and other cells are their own class 99.5-100 % of the time either way).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelkit.errors import ConfigError
from modelkit.teach.neighbours import nearest
from modelkit.teach.suggest import PCA_DIMS, Suggestions, suggest

NO_EMBEDDINGS = (
    "This map has no cell embeddings, which {what} needs. Map the scene again with "
    "embeddings=True (modelkit.map_scene(..., embeddings=True); on the command line "
    "`python -m modelkit map ... --embeddings`), or, in the app, map it again on the Map tab."
)
NO_DATA = (
    "That cell ({row}, {col}) has no data (outside the scene or no-data pixels); click inside "
    "the scene."
)


def flat_embeddings(scene_map, what: str) -> np.ndarray:
    """(h * w, D): the map's embeddings as rows (a view where the layout allows, no copy)."""
    if scene_map.embeddings is None:
        raise ConfigError(NO_EMBEDDINGS.format(what=what))
    return scene_map.embeddings.reshape(-1, scene_map.embeddings.shape[-1])


def check_cell(scene_map, row, col, what: str = "The cell") -> int:
    """The flat index of a cell, or a ConfigError naming the map's size."""
    h, w = scene_map.class_map.shape
    size = f"{h} rows and {w} columns of cells"
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (row, col)):
        raise ConfigError(f"{what} ({row}, {col}): give its row and column as whole numbers "
                          f"(the map has {size}).")  # fmt: skip
    if not (0 <= row < h and 0 <= col < w):
        raise ConfigError(f"{what} ({row}, {col}) is outside the map: it has {size}, so row "
                          f"is 0 to {h - 1} and col is 0 to {w - 1}.")  # fmt: skip
    return int(row) * w + int(col)


def comparable(vectors: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The embeddings as suggest should compare them: up to PCA_DIMS features, a float32 copy
    with each feature standardised over the ``valid`` rows that are finite (a feature that does
    not vary is only centred; other rows are scaled alike, NaN stays NaN); wider ones as
    they are."""
    if vectors.shape[1] > PCA_DIMS:
        return vectors
    rows = vectors.astype(np.float32)
    used = valid & np.isfinite(rows).all(1)
    if used.any():
        spread = rows[used].std(0)
        rows -= rows[used].mean(0)
        rows /= np.where(spread > 0, spread, 1)
    return rows


def cells_of(indices: np.ndarray, width: int) -> list[tuple[int, int]]:
    """Flat indices -> [(row, col), ...]."""
    return [(int(i) // width, int(i) % width) for i in indices]


def suggest_cells(
    scene_map,
    n: int,
    strategy: str = "auto",
    *,
    labelled: Sequence[tuple[int, int]] = (),
    seed: int = 0,
    min_cells: int = 2,
) -> tuple[list[tuple[int, int]], Suggestions]:
    """The ``n`` cells most worth labelling next (see ``SceneMap.suggest``).

    Returns:
        (cells, suggestions): (row, col) per pick, best first, and suggest's answer (its
        strategy and notes).
    """
    vectors = flat_embeddings(scene_map, "suggesting cells to label")
    h, w = scene_map.class_map.shape
    done = [check_cell(scene_map, *_pair(cell), what="The labelled cell") for cell in labelled]
    probabilities = None
    if scene_map.taught:
        probabilities = scene_map.probabilities.reshape(len(scene_map.classes), -1).T
    positions = np.stack(np.divmod(np.arange(h * w), w), 1)
    if isinstance(min_cells, bool) or not isinstance(min_cells, int | np.integer) or min_cells < 1:
        raise ConfigError(f"min_cells={min_cells!r}: give a whole number of cells, at least 1 "
                          "(2: no two suggestions are neighbours).")  # fmt: skip
    has_data = scene_map.class_map.ravel() >= 0
    picked = suggest(comparable(vectors, has_data), n, labelled=np.asarray(done, np.int64),
                     probabilities=probabilities, strategy=strategy, positions=positions,
                     min_cells=int(min_cells), candidates=has_data, seed=seed)  # fmt: skip
    return cells_of(picked.indices, w), picked


def _pair(cell) -> tuple:
    try:
        row, col = cell
    except (TypeError, ValueError):
        raise ConfigError(f"A labelled cell must be a (row, col) pair, not {cell!r}.") from None
    return row, col


def similar_cells(scene_map, row: int, col: int, k: int = 10) -> tuple[list[tuple[int, int]],
                                                                      np.ndarray]:  # fmt: skip
    """The ``k`` cells whose embeddings are nearest cell (row, col)'s (see ``SceneMap.similar``).

    Returns:
        (cells, distances): (row, col) per look-alike, nearest first, and their cosine
        distances.
    """
    vectors = flat_embeddings(scene_map, "finding look-alikes")
    index = check_cell(scene_map, row, col)
    no_data = scene_map.class_map.ravel() < 0
    if no_data[index]:
        raise ConfigError(NO_DATA.format(row=row, col=col))
    skip = no_data.copy()
    skip[index] = True
    found, distances = nearest(vectors, vectors[index], k, skip=skip)
    return cells_of(found, scene_map.class_map.shape[1]), distances
