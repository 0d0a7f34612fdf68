"""Which mode a map runs in: ``"auto"`` takes dense mode where it applies and gives tiles mode's
answers, tiles mode elsewhere.

Dense mode applies to models whose head averages the feature map (``dense.dense_unsupported``
says why not). Whether it gives tiles mode's answers depends on the model, the tile and the
head: a tile alone is framed by zero padding and, when small, blown up many times, so its
features can differ a lot from the same place seen in a window (measured: efficientnet_lite0 on
16-pixel Sentinel-2 tiles blown up 14x, pooled features at cosine 0.55 between the modes, and a
head taught on tiles lost its accuracy in dense mode). So ``auto`` runs a probe first: a block of
``PROBE`` x ``PROBE`` tiles at the scene's centre in both modes; dense is kept when it gives the
same class on at least ``AGREEMENT`` of them, and a note says which mode ran and why. A model
whose features see no neighbours (``bands``) gives the same numbers in both modes: no probe.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from modelkit.errors import ConfigError
from modelkit.scenes.dense import dense_unsupported
from modelkit.scenes.grid import Grid, Window
from modelkit.scenes.run import ModelRun
from modelkit.scenes.windows import Scene
from modelkit.scenes.worker import MapPlan, Worker

PROBE = 4
AGREEMENT = 0.9


def probe_window(grid: Grid) -> Window:
    """A block of up to PROBE x PROBE tiles around the scene's centre."""
    rows, cols = grid.rows, grid.cols
    i0 = max(0, min(len(rows) - PROBE, len(rows) // 2 - PROBE // 2))
    j0 = max(0, min(len(cols) - PROBE, len(cols) // 2 - PROBE // 2))
    i1, j1 = min(len(rows), i0 + PROBE), min(len(cols), j0 + PROBE)
    box = (int(rows[i0]), int(rows[i1 - 1]) + grid.tile, int(cols[j0]),
           int(cols[j1 - 1]) + grid.tile)  # fmt: skip
    return Window(-1, (i0, i1), (j0, j1), box)


def agreement(scene: Scene, run: ModelRun, tiles: MapPlan, dense: MapPlan) -> tuple[float, int]:
    """(share of the probe's tiles where both modes give the same class, tiles compared)."""
    window = probe_window(tiles.grid)
    a = Worker(scene, run, tiles).process(window)
    b = Worker(scene, run, dense).process(window)
    if len(a.rows) == 0:
        return 1.0, 0
    return float(np.mean(a.probs.argmax(1) == b.probs.argmax(1))), len(a.rows)


def choose_mode(asked: str, run: ModelRun, scene: Scene, plan: Callable[[str], MapPlan],
                notes: list[str]) -> str:  # fmt: skip
    """The mode to run (``plan(mode)`` makes the MapPlan of a mode, for the probe)."""
    why = dense_unsupported(run)
    if asked == "dense" and why:
        raise ConfigError(f"mode='dense' does not work with '{run.spec.model}': {why}. Use "
                          "mode='tiles' (or 'auto').")  # fmt: skip
    if asked != "auto":
        return asked
    if why:
        notes.append(f"Tiles mode: dense mode does not apply to this model ({why}).")
        return "tiles"
    if hasattr(run.model, "grid_sums"):
        return "dense"
    share, count = agreement(scene, run, plan("tiles"), plan("dense"))
    if share < AGREEMENT:
        notes.append(f"Tiles mode: dense mode gave tiles mode's class on only {share:.0%} of "
                     f"{count} sample tiles (its tiles see their neighbours, a tile alone does "
                     "not), so every tile was run alone.")  # fmt: skip
        return "tiles"
    notes.append(f"Dense mode: it gave tiles mode's class on {share:.0%} of {count} sample tiles.")
    return "dense"
