"""``map_scene``: a taught head or a model over a whole scene -> ``SceneMap``.

    map_scene(source, model=None, *, head=None, tile=None, stride=None, mode="auto",
              batch_size=None, progress=None, embeddings=False, use_result_cache=True,
              model_cache=None, engine="local", workers=None, parts=None,
              <the run settings; pretrained=True here>) -> SceneMap

``source``: a GeoTIFF path or its bytes (read window by window), an ImageArray or a (C, H, W)
array. ``tile`` defaults to the model's input size, ``stride`` to half a tile; the map has one
cell per ``stride`` pixels. ``mode``: ``"tiles"`` (each tile through ``preprocess`` and the
model, as ``predict`` would take it), ``"dense"`` (the trunk once per window, see ``dense``) or
``"auto"`` (dense where the model allows it and a probe finds it gives tiles mode's classes,
see ``mode``). ``progress(done, total)`` counts windows. ``model`` left out: the head's, or the
default model. With a ``head``, its settings win (a setting given beside it that it overrides
is named in the notes).
``engine="ray"`` spreads windows over Ray actors (``ray_engine``); ``parts`` is a folder where
finished windows are kept so that a rerun resumes (the command line uses ``<OUT>.parts``).
``use_result_cache`` is accepted for the run settings' sake: a map is not cached as a whole
(``parts`` is how a map's work is kept).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from modelkit.errors import ConfigError
from modelkit.images.resize import plan_crop
from modelkit.runtime.settings import RunSettings, takes_settings
from modelkit.scenes.blend import Blender
from modelkit.scenes.grid import Grid, check_tiling
from modelkit.scenes.mode import choose_mode
from modelkit.scenes.parts import Parts, fingerprint
from modelkit.scenes.preview import display_bands
from modelkit.scenes.run import ModelRun, plan_run
from modelkit.scenes.scaling import scene_scaling
from modelkit.scenes.scene_map import SceneMap, area_table, pca_rgb
from modelkit.scenes.windows import Scene, open_scene
from modelkit.scenes.worker import MapPlan, WindowResult, Worker

MODES = ("auto", "tiles", "dense")
ENGINES = ("local", "ray")
# tiles per forward pass when not given: one on a CPU, where a network's cost per tile does not
# fall with the batch (efficientnet_lite0 on 2 cores: 24 ms a tile at 1, 33 at 4, 43 at 16), 16
# on a GPU, and 64 for a model without parameters (bands: the cost is per call)
DEFAULT_BATCH = {"cpu": 1, "accelerator": 16, "no parameters": 64}
WINDOW_BYTES = 64 * 2**20  # source pixels of one window (tiles mode, and the bands model)
DENSE_SIDE = 1024  # resized pixels along a dense window's side, for a network
HALO = 0.5  # context around a dense window, in tiles: 97 % of cells as one window gives them
# (efficientnet_lite0, the example scene, windows of 448 px); 1.0 gives 99.6 % at 1.3x the time
MAP_BYTES = 2 * 2**30  # the map's own arrays (probabilities, features) must fit in this


def _check(mode, engine, batch_size) -> int:
    if mode not in MODES:
        raise ConfigError(f"mode={mode!r}: choose 'auto', 'tiles' or 'dense'.")
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}: choose 'local' or 'ray'.")
    if batch_size is None:
        return 0  # chosen once the model is built (_batch)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a whole number of at least 1.")
    return batch_size


def _batch(run: ModelRun) -> int:
    if not any(True for _ in run.model.parameters()):
        return DEFAULT_BATCH["no parameters"]
    return DEFAULT_BATCH["cpu" if run.device.type == "cpu" else "accelerator"]


def _halo(run: ModelRun, mode: str, tile: int) -> int:
    """Context pixels around a dense window: none for tiles, or for a model whose features see
    no neighbours (``grid_sums``: bands)."""
    if mode != "dense" or hasattr(run.model, "grid_sums"):
        return 0
    return round(HALO * tile)


def _window_pixels(run: ModelRun, scene: Scene, mode: str, tile: int, halo: int) -> int:
    """Source pixels of a window's own tiles: WINDOW_BYTES of model input (a dense window is
    resized as its tiles would be: a window of 1-pixel tiles for a 16-pixel input is 256 times
    larger), and for a network at most DENSE_SIDE resized pixels a side, halo included."""
    bands = run.data_config.in_chans
    pixels = WINDOW_BYTES // max(1, bands * max(4, scene.dtype.itemsize))
    if mode == "dense":
        grow = plan_crop(tile, tile, run.data_config).resized[0] / tile
        pixels = int(pixels / max(1.0, grow) ** 2)
        if not hasattr(run.model, "grid_sums"):
            side = DENSE_SIDE / grow - 2 * halo
            pixels = min(pixels, int(max(side, 0) ** 2))
    return max(pixels, tile * tile)


def _stretch(preview: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros((*preview.shape[1:], 3), np.uint8)
    for i, band in enumerate(preview):
        values = band[valid & np.isfinite(band)]
        if values.size:
            low, high = np.percentile(values, [2, 98])
            scaled = (band - low) / (high - low if high > low else 1.0)
            out[..., i] = np.clip(np.nan_to_num(scaled) * 255, 0, 255).astype(np.uint8)
    return out


@takes_settings(pretrained=True)
def map_scene(
    source,
    settings: RunSettings | None = None,
    *,
    head=None,
    tile: int | None = None,
    stride: int | None = None,
    mode: str = "auto",
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    embeddings: bool = False,
    use_result_cache: bool = True,
    model_cache=None,
    engine: str = "local",
    workers: int | None = None,
    parts=None,
) -> SceneMap:
    """Map a scene with a taught head or a model; see the module docstring.

    Args:
        source: a GeoTIFF path or its bytes, an ImageArray, or a (C, H, W) array.
        head: a TrainedHead or its .safetensors file: its classes, on its own model.
        tile: source pixels per tile side (default: the model's input size).
        stride: source pixels between tiles, and per map cell (default: half a tile).
        mode: "auto", "tiles" or "dense".
        batch_size: tiles per forward pass (default: chosen for the device).
        progress: called with (windows done, total).
        embeddings: keep each cell's pooled features (for suggest and similar).
        use_result_cache: accepted for the settings' sake (``parts`` keeps a map's work).
        model_cache: the built models to use (the process's when None).
        engine: "local" or "ray".
        workers: Ray actors.
        parts: a folder where finished windows are kept, so that a rerun resumes.

    Returns:
        SceneMap: the class map, probabilities, confidence, areas, georeferencing and notes.
    """
    started = time.perf_counter()
    batch = _check(mode, engine, batch_size)
    scene = open_scene(source)
    try:
        spec, notes = plan_run(scene.channels, scene.band_names, settings, head)
        run = spec.build(model_cache)
        batch = batch or _batch(run)
        if run.head is None and not getattr(run.model, "num_classes", 0):
            raise ConfigError(
                f"'{spec.model}' has no classes of its own: teach a head on a few "
                "labelled tiles (modelkit.train_head) and map with head=."
            )
        tile = run.data_config.input_size[1] if tile is None else tile
        stride = max(1, tile // 2) if stride is None and isinstance(tile, int) else stride
        tile, stride = check_tiling(tile, stride, scene.height, scene.width, scene.name)
        grid = Grid(scene.height, scene.width, tile, stride)
        k, h, w = len(run.classes), *grid.cells
        need = h * w * 4 * (k + 1 + (run.model.num_features if embeddings else 0))
        if need > MAP_BYTES:
            raise ConfigError(
                f"The map would have {h:,} x {w:,} cells x {k} classes ({need / 2**30:.1f} GiB); "
                f"use a larger stride (now {stride}) or a head with fewer classes."
            )
        scaling_plan = scene_scaling(
            scene, spec.scaling, run.data_config, list(spec.channels) if spec.channels else None
        )
        names = scene.band_names
        read_names = [names[c] for c in spec.channels] if names and spec.channels else names

        def plan_for(chosen: str) -> MapPlan:
            return MapPlan(grid, chosen, _halo(run, chosen, tile), scaling_plan,
                           list(spec.channels) if spec.channels else None,
                           display_bands(read_names, run.data_config.in_chans), batch,
                           bool(embeddings))  # fmt: skip

        plan = plan_for(choose_mode(mode, run, scene, plan_for, notes))
        chosen, halo = plan.mode, plan.halo
        windows = grid.windows(_window_pixels(run, scene, chosen, tile, halo), not scene.tiled)
        state = _Assembly(grid, k, run.model.num_features if embeddings else 0)
        store = None
        if parts is not None:
            store = Parts(
                parts,
                fingerprint(
                    source,
                    model=spec.model,
                    settings=spec.settings.to_dict(),
                    head=spec.head_digest,
                    tile=tile,
                    stride=stride,
                    mode=chosen,
                    scaling=spec.scaling,
                    channels=spec.channels,
                    embeddings=embeddings,
                ),
            )
            for result in store.load():
                state.add(result)
        todo = [win for win in windows if win.index not in state.done]
        if progress is not None:
            progress(len(windows) - len(todo), len(windows))

        def sink(result: WindowResult) -> None:
            if store is not None:
                store.add(result)
            state.add(result)
            if progress is not None:
                progress(len(state.done), len(windows))

        if engine == "ray" and todo:
            from modelkit.scenes.ray_engine import run_ray

            run_ray(source, spec, plan, todo, sink, workers)
        elif todo:
            _run_local(Worker(scene, run, plan), todo, sink)
        result = state.finish(run, scene, chosen, notes, scaling_plan, started)
        if store is not None:
            store.remove()
        return result
    finally:
        scene.close()


def _run_local(worker: Worker, windows: list, sink: Callable[[WindowResult], None]) -> None:
    """Every window through the worker; the next one is read (decoded, its no-data found)
    while this one is prepared and run on this thread."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="modelkit-scene") as ahead:
        pending = ahead.submit(worker.read, windows[0])
        for i in range(len(windows)):
            ready = pending.result()
            if i + 1 < len(windows):
                pending = ahead.submit(worker.read, windows[i + 1])
            sink(worker.compute(worker.prepare(ready)))


class _Assembly:
    """The map being put together from window results (in any order)."""

    def __init__(self, grid: Grid, classes: int, features: int) -> None:
        self.grid, self.blender = grid, Blender(grid, classes, features)
        h, w = grid.cells
        self.empty = np.zeros((h, w), bool)
        self.preview = np.zeros((3, h, w), np.float32)
        self.done: set[int] = set()
        self.counts = {
            "windows": 0,
            "tiles": 0,
            "tiles_skipped": 0,
            "read_ms": 0.0,
            "prepare_ms": 0.0,
            "compute_ms": 0.0,
            "blend_ms": 0.0,
        }

    def add(self, result: WindowResult) -> None:
        started = time.perf_counter()
        feats = None if result.feats is None else result.feats.astype(np.float32)
        self.blender.add(result.rows, result.cols, result.probs, feats)
        r0, r1, c0, c1 = result.cells
        self.empty[r0:r1, c0:c1] = result.empty
        self.preview[:, r0:r1, c0:c1] = result.preview
        self.done.add(result.index)
        counts = self.counts
        counts["windows"] += 1
        counts["tiles"] += len(result.rows)
        counts["tiles_skipped"] += result.skipped
        for name in ("read_ms", "prepare_ms", "compute_ms"):
            counts[name] += result.timings.get(name, 0.0)
        counts["blend_ms"] += (time.perf_counter() - started) * 1e3

    def finish(self, run, scene, mode, notes, scaling, started) -> SceneMap:
        probs, feats, covered = self.blender.result()
        empty = self.empty | ~covered
        probs[:, empty] = np.nan
        class_map = np.where(empty, -1, np.nan_to_num(probs, nan=-1).argmax(0)).astype(np.int32)
        confidence = np.where(empty, np.nan, np.nanmax(np.where(empty, 0, probs), 0))
        georef = scene.georef
        transform = georef.scaled(self.grid.stride) if georef is not None else None
        classes = run.classes
        notes = list(scene.notes) + notes + [f"Compiled runtime: {n}" for n in run.notes]
        if run.head is None:
            notes.append(
                f"These are '{run.spec.model}''s own classes (e.g. ImageNet): on a "
                "scene they mean little. Teach a head on a few labelled tiles."
            )
        random = run.random_parts()
        if random:
            notes.append(f"RANDOM WEIGHTS in {', '.join(random)}: the map is meaningless.")
        if scaling.scene_wide:
            notes.append(
                f"Scaling '{scaling.mode}' was computed once for the whole scene "
                "from a sample of its pixels, not per tile."
            )
        if empty.any():
            notes.append(
                f"{int(empty.sum()):,} of {empty.size:,} cells have no data (0, NaN "
                "or the no-data value); they are -1 in the class map."
            )
        area = area_table(
            class_map, classes, (scene.height, scene.width), self.grid.stride, georef, transform
        )
        embedded = None
        if feats is not None:
            embedded = np.moveaxis(feats, 0, -1).astype(np.float16)
        total_ms = (time.perf_counter() - started) * 1e3
        timings = dict(
            self.counts,
            total_ms=total_ms,
            megapixels_per_s=scene.height * scene.width / 1e3 / max(total_ms, 1e-9),
        )
        return SceneMap(
            classes=classes,
            class_map=class_map,
            probabilities=probs,
            confidence=confidence.astype(np.float32),
            embedding_rgb=None if embedded is None else pca_rgb(embedded, ~empty),
            cell=self.grid.stride,
            transform=transform,
            crs=georef.crs if georef is not None else None,
            area=area,
            timings=timings,
            notes=notes,
            model=run.spec.model,
            mode=mode,
            tile=self.grid.tile,
            scene_shape=tuple(scene.shape),
            embeddings=embedded,
            preview=_stretch(self.preview, ~empty),
            georef=georef,
            taught=run.head is not None,  # suggest() uses the probabilities only then
        )
