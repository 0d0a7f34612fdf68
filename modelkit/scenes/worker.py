"""One window of a scene, from pixels to tile answers: the work the local loop and each Ray actor
do. ``MapPlan`` (picklable) says what to compute; ``Worker.process(window)`` reads the window,
finds its no-data cells and tiles, runs the tiles (``tiles`` mode: each tile through
``preprocess`` and the model, in batches) or the window (``dense``), and returns a
``WindowResult``: small arrays, one vector per tile, ready to blend or to keep on disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.scenes.dense import pooled_grid
from modelkit.scenes.grid import Grid, Window
from modelkit.scenes.run import ModelRun
from modelkit.scenes.scaling import Scaling
from modelkit.scenes.windows import Scene, nodata_mask

EMPTY_CELL = 0.5  # a cell with more than this share of no-data pixels is no data


@dataclass(frozen=True)
class MapPlan:
    """What to compute, the same for every window (and every Ray actor)."""

    grid: Grid
    mode: str  # "tiles" | "dense"
    halo: int  # context pixels around a dense window
    scaling: Scaling
    bands: list[int] | None  # the scene bands the model takes (None: all)
    display: tuple[int, int, int]  # bands (of those read) shown in the preview
    batch_size: int
    features: bool  # keep each tile's pooled features


@dataclass
class WindowResult:
    index: int
    rows: np.ndarray  # tile row indices of the tiles computed
    cols: np.ndarray
    probs: np.ndarray  # (n, K) float32
    feats: np.ndarray | None  # (n, D) float16
    cells: tuple[int, int, int, int]  # the cells whole inside the window: r0, r1, c0, c1
    empty: np.ndarray  # (r1 - r0, c1 - c0) bool: no-data cells
    preview: np.ndarray  # (3, r1 - r0, c1 - c0) float32: display bands at the cells' centres
    skipped: int = 0  # tiles of no data, not computed
    timings: dict = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k) for k in ("rows", "cols", "probs", "empty", "preview")}
        out["meta"] = np.array([self.index, *self.cells, self.skipped], np.int64)
        if self.feats is not None:
            out["feats"] = self.feats
        return out

    @classmethod
    def from_arrays(cls, arrays: dict) -> WindowResult:
        meta = [int(v) for v in arrays["meta"]]
        return cls(
            meta[0],
            arrays["rows"],
            arrays["cols"],
            arrays["probs"],
            arrays.get("feats"),
            tuple(meta[1:5]),
            arrays["empty"],
            arrays["preview"],
            meta[5],
        )


@dataclass
class Loaded:
    """A window read: its box, pixels (bands, h, w) and the integral of its no-data mask."""

    window: Window
    box: tuple[int, int, int, int]
    raw: np.ndarray
    total: np.ndarray
    read_ms: float


def _integral(mask: np.ndarray) -> np.ndarray:
    out = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    np.cumsum(np.cumsum(mask, 0, dtype=np.int64), 1, out=out[1:, 1:])
    return out


def _box_counts(total: np.ndarray, r0, r1, c0, c1) -> np.ndarray:
    return total[r1, c1] - total[r0, c1] - total[r1, c0] + total[r0, c0]


class Worker:
    """Reads and computes windows of one scene with one model run."""

    def __init__(self, scene: Scene, run: ModelRun, plan: MapPlan) -> None:
        self.scene, self.run, self.plan = scene, run, plan

    def process(self, window: Window) -> WindowResult:
        return self.compute(self.load(window))

    def load(self, window: Window) -> Loaded:
        """The window's pixels (with the halo in dense mode) and its no-data counts."""
        plan, started = self.plan, time.perf_counter()
        grid = plan.grid
        box = (
            window.halo_box(plan.halo, grid.height, grid.width)
            if plan.mode == "dense"
            else (window.box)
        )
        raw = self.scene.read(*box, plan.bands)
        total = _integral(nodata_mask(raw, self.scene.nodata))
        return Loaded(window, box, raw, total, (time.perf_counter() - started) * 1e3)

    def compute(self, loaded: Loaded) -> WindowResult:
        """The answers of the window's tiles that hold some data."""
        grid, window, started = self.plan.grid, loaded.window, time.perf_counter()
        top, _, left, _ = loaded.box
        cells = grid.cells_inside(window.box)
        empty, preview = self._cells(loaded.raw, loaded.total, loaded.box, cells)
        rows = grid.rows[window.rows[0] : window.rows[1]]
        cols = grid.cols[window.cols[0] : window.cols[1]]
        t = grid.tile
        full = _box_counts(
            loaded.total,
            (rows - top)[:, None],
            (rows - top + t)[:, None],
            (cols - left)[None],
            (cols - left + t)[None],
        )
        keep = full < t * t  # a tile of no data only is not computed
        ti, tj = np.nonzero(keep)
        probs, feats = self._compute(loaded.raw, (top, left), rows, cols, ti, tj)
        return WindowResult(
            window.index,
            ti + window.rows[0],
            tj + window.cols[0],
            probs,
            None if feats is None else feats.astype(np.float16),
            cells,
            empty,
            preview,
            int(keep.size - keep.sum()),
            {"read_ms": loaded.read_ms, "compute_ms": (time.perf_counter() - started) * 1e3},
        )

    def _cells(self, raw, total, box, cells):
        """No-data share and centre pixel of each cell whole inside the window."""
        s, (top, bottom, left, right) = self.plan.grid.stride, box
        r0, r1, c0, c1 = cells
        ys = np.arange(r0, r1) * s
        xs = np.arange(c0, c1) * s
        y_end = np.minimum(ys + s, bottom) - top
        x_end = np.minimum(xs + s, right) - left
        count = _box_counts(
            total, (ys - top)[:, None], y_end[:, None], (xs - left)[None], x_end[None]
        )
        area = (y_end - (ys - top))[:, None] * (x_end - (xs - left))[None]
        empty = count > EMPTY_CELL * area
        cy = np.minimum(ys + s // 2, bottom - 1) - top
        cx = np.minimum(xs + s // 2, right - 1) - left
        picked = raw[list(self.plan.display)][:, cy][:, :, cx]
        return empty, picked.astype(np.float32)

    def _compute(self, raw, origin, rows, cols, ti, tj):
        run, plan = self.run, self.plan
        k = len(run.classes)
        if len(ti) == 0:
            return np.zeros((0, k), np.float32), None
        if plan.mode == "dense":
            maps = pooled_grid(run, plan.scaling, raw, origin, rows, cols, plan.grid.tile)
            return run.pooled(maps[torch.from_numpy(ti), torch.from_numpy(tj)], plan.features)
        t, config = plan.grid.tile, run.data_config
        probs, feats = [], []
        for first in range(0, len(ti), plan.batch_size):
            batch = [
                plan.scaling.tile_input(
                    raw[
                        :,
                        rows[i] - origin[0] : rows[i] - origin[0] + t,
                        cols[j] - origin[1] : cols[j] - origin[1] + t,
                    ],
                    config,
                )
                for i, j in zip(
                    ti[first : first + plan.batch_size],
                    tj[first : first + plan.batch_size],
                    strict=True,
                )
            ]
            p, f = run.tiles(torch.cat(batch), plan.features)
            probs.append(p)
            feats.append(f)
        return np.concatenate(probs), np.concatenate(feats) if plan.features else None
