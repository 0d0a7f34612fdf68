"""Labelling on a scene map: what ``SceneMap.suggest`` gains over random cells on the example
scene, and what ``suggest`` and ``similar`` cost on a map against the bare calls they wrap.

    .venv/bin/python bench/bench_scene_label.py [--seeds 16] [--cells 100000] [--dims 1280]
        [--threads 1] [--skip gain,cost]

Table 1: the example Sentinel-2 scene mapped by the bands model (a head from 15 tiles per
class, ``tile=16, stride=16``: 32 x 32 cells, 31 features). From one labelled cell per class
(drawn among the cells the documented rule labels), cells are added up to each budget, picked
by ``SceneMap.suggest`` or at random among the cells with data, each labelled with the class of
most of its pixels; a logistic regression on the labelled cells' embeddings is scored over the
cells the rule labels and over every cell (``scene_data.label_rounds``). The mean over seeds.
"auto, raw embeddings" is "auto" without the standardising ``SceneMap.suggest`` does first.
Table 2: one ``SceneMap.suggest(10)`` and ``SceneMap.similar(k=10)`` on the example's maps (32 x
32 and 64 x 64 cells) and on synthetic maps of ``--cells`` cells with 31 (the bands model's
width, which the map standardises first) and ``--dims`` (a CNN's) float16 features, against
the bare ``teach.suggest.suggest`` / ``teach.neighbours.nearest`` on the same embeddings
already flattened (without the map's standardising): median of 3, interleaved; the peak memory
the map's call adds (tracemalloc).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import tracemalloc
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import Table, print_tables  # noqa: E402
from scene_data import SCENE, bands_head, label_rounds  # noqa: E402

import modelkit  # noqa: E402
from modelkit.scenes.scene_map import SceneMap  # noqa: E402
from modelkit.teach.neighbours import nearest  # noqa: E402
from modelkit.teach.suggest import suggest  # noqa: E402

BUDGETS = (6, 10, 15, 20, 30, 45, 60)
STRATEGIES = ("random", "typical", "margin", "auto")
MEASURES = ("cells the rule labels", "every cell (most of its pixels)")


def gain_table(seeds: int) -> Table:
    scene_map = modelkit.map_scene(SCENE, head=bands_head(), tile=16, stride=16, embeddings=True)
    table = Table("Scene map accuracy after each labelling budget: cells from SceneMap.suggest "
                  "vs random cells", ["measured over", "strategy", *[f"{b} cells" for b in
                                                                     BUDGETS]],
                  formats={f"{b} cells": ".1%" for b in BUDGETS})  # fmt: skip
    means = {}
    for strategy in (*STRATEGIES, "auto, raw embeddings"):
        name = strategy.split(",")[0]
        raw = mock.patch("modelkit.scenes.label.comparable", new=lambda vectors, _: vectors)
        with raw if "raw" in strategy else contextlib.nullcontext():
            runs = [label_rounds(scene_map, name, BUDGETS, seed) for seed in range(seeds)]
        means[strategy] = np.mean(runs, 0)
    for m, measure in enumerate(MEASURES):
        for strategy, mean in means.items():
            table.add(measure, strategy, *mean[:, m])
        for strategy in ("auto", "auto, raw embeddings"):
            gain = means[strategy][:, m] - means["random"][:, m]
            table.add(measure, f"{strategy} - random (points)", *[f"{100 * g:+.1f}" for g in gain])
    table.meaning = (f"mean over {seeds} seeds; from 3 cells, one per class; 'auto' is "
                     "typical cells until 10 labels per class (30 cells), then the least "
                     "certain")  # fmt: skip
    return table


def synthetic_map(cells: int, dims: int, seed: int = 0) -> SceneMap:
    """A square map of ``cells`` cells with clustered float16 embeddings and probabilities."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(cells))
    centres = rng.normal(size=(40, dims)).astype(np.float32)
    embeddings = np.empty((side * side, dims), np.float16)
    for start in range(0, len(embeddings), 8192):  # no float64 copy of the whole map
        part = embeddings[start : start + 8192]
        part[:] = centres[rng.integers(0, 40, len(part))] + rng.normal(size=part.shape)
    probabilities = rng.dirichlet(np.ones(5), side * side).T.reshape(5, side, side)
    class_map = probabilities.argmax(0).astype(np.int32)
    return SceneMap(classes=[f"class {k}" for k in range(5)], class_map=class_map,
                    probabilities=probabilities.astype(np.float32),
                    confidence=probabilities.max(0).astype(np.float32), embedding_rgb=None,
                    cell=8, transform=None, crs=None, area=[], timings={}, notes=[],
                    embeddings=embeddings.reshape(side, side, dims), taught=True)  # fmt: skip


def _median_pair(first, second, repeats: int = 3) -> tuple[float, float]:
    times = [[], []]
    for _ in range(repeats):
        for i, fn in enumerate((first, second)):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def _peak(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def cost_table(cells: int, dims: int) -> Table:
    head = bands_head()
    maps = {f"example, {s}-pixel cells": modelkit.map_scene(SCENE, head=head, tile=16, stride=s,
                                                             embeddings=True)
            for s in (16, 8)}  # fmt: skip
    for width in (31, dims):  # the bands model's features (standardised first), a CNN's
        maps[f"synthetic, {cells:,} cells x {width}"] = synthetic_map(cells, width)
    table = Table("One call on a map vs the bare call on the flattened embeddings",
                  ["map", "call", "map ms", "bare ms", "x bare", "peak extra MiB"],
                  formats={"map ms": ".1f", "bare ms": ".1f", "x bare": ".2f",
                           "peak extra MiB": ".0f"})  # fmt: skip
    for name, scene_map in maps.items():
        _cost_rows(table, name, scene_map)
    table.meaning = ("the map's suggest standardises embeddings of up to 64 features first "
                     "(a float32 copy) and builds the cells' grid positions; similar adds the "
                     "no-data mask")  # fmt: skip
    return table


def _cost_rows(table: Table, name: str, scene_map: SceneMap) -> None:
    h, w, d = scene_map.embeddings.shape
    flat = scene_map.embeddings.reshape(-1, d)
    grid = np.stack(np.divmod(np.arange(h * w), w), 1)
    data = scene_map.class_map.ravel() >= 0
    probs = scene_map.probabilities.reshape(len(scene_map.classes), -1).T
    done = np.flatnonzero(data)[:: max(1, int(data.sum()) // 30)][:30]
    labelled = [divmod(int(i), w) for i in done]
    scene_map.suggest(3, labelled=labelled)  # imports and thread pools, outside the timing
    for strategy in ("typical", "margin"):

        def on_map(s=strategy):
            return scene_map.suggest(10, s, labelled=labelled)

        def bare(s=strategy):
            return suggest(flat, 10, labelled=done, probabilities=probs, strategy=s,
                           positions=grid, candidates=data)  # fmt: skip

        seconds = _median_pair(on_map, bare)
        table.add(name, f"suggest(10, {strategy!r})", *(1e3 * t for t in seconds),
                  seconds[0] / seconds[1],
                  _peak(on_map))  # fmt: skip
    row, col = divmod(int(np.flatnonzero(data)[0]), w)
    skip = ~data
    skip[row * w + col] = True
    seconds = _median_pair(lambda: scene_map.similar(row, col, 10),
                           lambda: nearest(flat, flat[row * w + col], 10, skip=skip))  # fmt: skip
    table.add(name, "similar(k=10)", *(1e3 * t for t in seconds), seconds[0] / seconds[1],
              _peak(lambda: scene_map.similar(row, col, 10)))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=1280)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip", default="", help="comma-separated: gain,cost")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(args.skip.split(","))
    print(f"load average at the start: {os.getloadavg()}")
    tables = []
    if "gain" not in skip:
        tables.append(gain_table(args.seeds))
    if "cost" not in skip:
        tables.append(cost_table(args.cells, args.dims))
    print(f"load average at the end: {os.getloadavg()}")
    print_tables(tables)


if __name__ == "__main__":
    main()
