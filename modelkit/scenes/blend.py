"""Blending the tiles' answers into the map's cells.

Each tile gives one vector (class probabilities, and pooled features when asked). A cell takes
the weighted mean of the vectors of every tile that covers it, normalised by the summed
weights. A tile's weight at a cell is a 2-D Hann window (sin^2 over the tile, the taper that
left the fewest seams in Pielawski & Waehlby 2020, PLoS ONE) summed over the cell's pixels
inside the tile, divided by the cell's pixel count: a cell near a tile's centre counts more
than one at its edge, a cell only partly inside a tile counts for that part. The window is
floored at ``FLOOR`` so that a cell at the scene's border, which only one tile covers, keeps a
weight. The weights are separable (row weight x column weight), so a window of tiles is added
with two small matrix products, and memory is the map's own: (K + 1) floats per cell.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from modelkit.scenes.grid import Grid

FLOOR = 0.05


def axis_weights(starts: np.ndarray, tile: int, stride: int, cells: int) -> sparse.csr_matrix:
    """(tiles, cells) weights along one axis, sparse: the floored Hann of each tile summed over
    each cell's pixels, divided by the stride."""
    taper = np.maximum(np.sin(np.pi * (np.arange(tile) + 0.5) / tile) ** 2, FLOOR)
    pixels = starts[:, None] + np.arange(tile)[None]
    rows = np.repeat(np.arange(len(starts)), tile)
    weights = sparse.coo_matrix(
        (np.tile(taper, len(starts)) / stride, (rows, pixels.ravel() // stride)),
        shape=(len(starts), cells),
    )
    return weights.tocsr()  # duplicate (tile, cell) entries are summed


class Blender:
    """Accumulates tile vectors into cells: ``add`` a window's tiles, ``result`` the means."""

    def __init__(self, grid: Grid, classes: int, features: int = 0) -> None:
        self.grid = grid
        h, w = grid.cells
        self.row_w = axis_weights(grid.rows, grid.tile, grid.stride, h)
        self.col_w = axis_weights(grid.cols, grid.tile, grid.stride, w)
        self.probs = np.zeros((classes, h, w), np.float64)
        self.feats = np.zeros((features, h, w), np.float32) if features else None
        self.weight = np.zeros((h, w), np.float64)

    def add(
        self, rows: np.ndarray, cols: np.ndarray, probs: np.ndarray, feats: np.ndarray | None = None
    ) -> None:
        """Tiles at tile indices (rows[i], cols[i]) with vectors probs[i] (and feats[i])."""
        if len(rows) == 0:
            return
        i0, i1, j0, j1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        wr, r0 = _block(self.row_w, i0, i1)
        wc, c0 = _block(self.col_w, j0, j1)
        cells = (slice(r0, r0 + wr.shape[1]), slice(c0, c0 + wc.shape[1]))
        mask = np.zeros((1, i1 - i0, j1 - j0))
        mask[0, rows - i0, cols - j0] = 1.0
        self.weight[cells] += _spread(wr, wc, mask)[0]
        self.probs[(slice(None), *cells)] += _spread(
            wr, wc, _grid(probs, rows - i0, cols - j0, mask.shape[1:])
        )
        if self.feats is not None and feats is not None:
            grid = _grid(feats, rows - i0, cols - j0, mask.shape[1:])
            self.feats[(slice(None), *cells)] += _spread(wr, wc, grid).astype(np.float32)

    def result(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """(probabilities (K, h, w) float32, features (D, h, w) float32 or None, covered
        (h, w) bool); uncovered cells are NaN."""
        covered = self.weight > 0
        safe = np.where(covered, self.weight, 1.0)
        probs = (self.probs / safe).astype(np.float32)
        probs[:, ~covered] = np.nan
        feats = None
        if self.feats is not None:
            feats = self.feats / safe.astype(np.float32)
            feats[:, ~covered] = np.nan
        return probs, feats, covered


def _block(weights: sparse.csr_matrix, lo: int, hi: int) -> tuple[sparse.csr_matrix, int]:
    """Tiles lo..hi-1 of the weights, cut to the cells they touch, and the first such cell."""
    part = weights[lo:hi]
    first, last = int(part.indices.min()), int(part.indices.max()) + 1
    return part[:, first:last], first


def _grid(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape) -> np.ndarray:
    grid = np.zeros((values.shape[1], *shape))
    grid[:, rows, cols] = values.T
    return grid


def _spread(wr: sparse.csr_matrix, wc: sparse.csr_matrix, grid: np.ndarray) -> np.ndarray:
    """(K, cells down, cells across): per k, wr^T @ grid[k] @ wc."""
    out = np.empty((grid.shape[0], wr.shape[1], wc.shape[1]))
    wrt, wct = wr.T.tocsr(), wc.T.tocsr()
    for k, layer in enumerate(grid):
        out[k] = (wct @ (wrt @ layer).T).T
    return out
