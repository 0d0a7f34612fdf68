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

from modelkit.scenes.grid import Grid

FLOOR = 0.05


def axis_weights(starts: np.ndarray, tile: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Along one axis, each tile's weights at the cells it touches: (first cell (tiles,),
    weights (tiles, span)), the floored Hann summed over each cell's pixels / the stride."""
    taper = np.maximum(np.sin(np.pi * (np.arange(tile) + 0.5) / tile) ** 2, FLOOR)
    first = starts // stride
    span = (tile + stride - 1) // stride + 1
    cell = (starts[:, None] + np.arange(tile)[None]) // stride - first[:, None]
    weights = np.zeros((len(starts), span))
    np.add.at(
        weights,
        (np.repeat(np.arange(len(starts)), tile), cell.ravel()),
        np.tile(taper, len(starts)),
    )
    return first, weights / stride


def _dense(first: np.ndarray, weights: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """The (tiles lo..hi-1, cells) block of the weights, and its first cell."""
    cell0 = int(first[lo])
    cells = int(first[hi - 1]) + weights.shape[1] - cell0
    out = np.zeros((hi - lo, cells))
    for k in range(weights.shape[1]):
        out[np.arange(hi - lo), first[lo:hi] - cell0 + k] = weights[lo:hi, k]
    return out, cell0


class Blender:
    """Accumulates tile vectors into cells: ``add`` a window's tiles, ``result`` the means."""

    def __init__(self, grid: Grid, classes: int, features: int = 0) -> None:
        self.grid = grid
        self.row_w = axis_weights(grid.rows, grid.tile, grid.stride)
        self.col_w = axis_weights(grid.cols, grid.tile, grid.stride)
        h, w = grid.cells
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
        wr, r0 = _dense(*self.row_w, i0, i1)
        wc, c0 = _dense(*self.col_w, j0, j1)
        h, w = self.weight.shape
        wr, wc = wr[:, : h - r0], wc[:, : w - c0]  # a tile span may end past the last cell
        cells = (slice(r0, r0 + wr.shape[1]), slice(c0, c0 + wc.shape[1]))
        mask = np.zeros((i1 - i0, j1 - j0))
        mask[rows - i0, cols - j0] = 1.0
        self.weight[cells] += wr.T @ mask @ wc
        self.probs[(slice(None), *cells)] += _spread(wr, wc, rows - i0, cols - j0, probs)
        if self.feats is not None and feats is not None:
            self.feats[(slice(None), *cells)] += _spread(
                wr.astype(np.float32), wc.astype(np.float32), rows - i0, cols - j0, feats
            )

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


def _spread(
    wr: np.ndarray, wc: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """(K, cells down, cells across): sum over tiles of wr[tile row] x wc[tile col] x value."""
    grid = np.zeros((values.shape[1], wr.shape[0], wc.shape[0]), wr.dtype)
    grid[:, rows, cols] = values.T
    return np.matmul(np.matmul(wr.T[None], grid), wc[None])
