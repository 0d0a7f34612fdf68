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

from modelkit.runtime.model_cache import trim_heap
from modelkit.scenes.dense import dense_input, pooled_grid
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
class Prepared:
    """A window read and made ready for the model: its box, cells, the tiles to run (ti, tj:
    indices in the window), and ``inputs``: its pixels once read, the model's inputs (tile
    batches, or the dense window) once prepared."""

    window: Window
    box: tuple[int, int, int, int]
    cells: tuple[int, int, int, int]
    empty: np.ndarray
    preview: np.ndarray
    ti: np.ndarray
    tj: np.ndarray
    skipped: int
    inputs: np.ndarray | list | torch.Tensor | None
    read_ms: float
    prepare_ms: float = 0.0


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
        return self.compute(self.prepare(self.read(window)))

    def read(self, window: Window) -> Prepared:
        """Read the window (with the halo in dense mode) and find its no-data cells and the
        tiles to run: numpy and the decoders only, so it can run in another thread while the
        model runs (torch work there would fight the model's threads: 2.5x slower here)."""
        plan, started = self.plan, time.perf_counter()
        grid = plan.grid
        box = window.box
        if plan.mode == "dense":
            box = window.halo_box(plan.halo, grid.height, grid.width)
        top, _, left, _ = box
        raw = self.scene.read(*box, plan.bands)
        total = _integral(nodata_mask(raw, self.scene.nodata))
        cells = grid.cells_inside(window.box)
        empty, preview = self._cells(raw, total, box, cells)
        rows = grid.rows[window.rows[0] : window.rows[1]]
        cols = grid.cols[window.cols[0] : window.cols[1]]
        t = grid.tile
        full = _box_counts(total, (rows - top)[:, None], (rows - top + t)[:, None],
                           (cols - left)[None], (cols - left + t)[None])  # fmt: skip
        keep = full < t * t  # a tile of no data only is not computed
        ti, tj = np.nonzero(keep)
        skipped = int(keep.size - keep.sum())
        return Prepared(window, box, cells, empty, preview, ti, tj, skipped, raw,
                        (time.perf_counter() - started) * 1e3)  # fmt: skip

    def prepare(self, ready: Prepared) -> Prepared:
        """The model's inputs in place of the pixels: the tiles preprocessed in batches, or the
        dense window resized."""
        plan, raw, (top, _, left, _) = self.plan, ready.inputs, ready.box
        window, t, started = ready.window, plan.grid.tile, time.perf_counter()
        ready.inputs = None
        if len(ready.ti) and plan.mode == "dense":
            ready.inputs = dense_input(self.run, plan.scaling, raw, t)
        elif len(ready.ti):
            rows = plan.grid.rows[window.rows[0] : window.rows[1]] - top
            cols = plan.grid.cols[window.cols[0] : window.cols[1]] - left
            config = self.run.data_config
            tiles = [plan.scaling.tile_input(raw[:, rows[i] : rows[i] + t, cols[j] : cols[j] + t],
                                             config)
                     for i, j in zip(ready.ti, ready.tj, strict=True)]  # fmt: skip
            ready.inputs = [torch.cat(tiles[k : k + plan.batch_size])
                            for k in range(0, len(tiles), plan.batch_size)]  # fmt: skip
        ready.prepare_ms = (time.perf_counter() - started) * 1e3
        return ready

    def compute(self, ready: Prepared) -> WindowResult:
        """The answers of the window's tiles that hold some data."""
        started, window, grid = time.perf_counter(), ready.window, self.plan.grid
        run, plan = self.run, self.plan
        if ready.inputs is None:
            probs, feats = np.zeros((0, len(run.classes)), np.float32), None
        elif plan.mode == "dense":
            rows = grid.rows[window.rows[0] : window.rows[1]]
            cols = grid.cols[window.cols[0] : window.cols[1]]
            maps = pooled_grid(run, ready.inputs, ready.box[::2], rows, cols, grid.tile)
            pick = (torch.from_numpy(ready.ti), torch.from_numpy(ready.tj))
            probs, feats = run.pooled(maps[pick], plan.features)
        else:
            answers = [run.tiles(batch, plan.features) for batch in ready.inputs]
            probs = np.concatenate([p for p, _ in answers])
            feats = np.concatenate([f for _, f in answers]) if plan.features else None
        ready.inputs = None
        trim_heap()  # the window's arrays were freed in several threads' arenas: give them back
        return WindowResult(
            window.index, ready.ti + window.rows[0], ready.tj + window.cols[0], probs,
            None if feats is None else feats.astype(np.float16), ready.cells, ready.empty,
            ready.preview, ready.skipped,
            {"read_ms": ready.read_ms, "prepare_ms": ready.prepare_ms,
             "compute_ms": (time.perf_counter() - started) * 1e3},
        )  # fmt: skip

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
