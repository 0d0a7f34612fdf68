"""Scene maps: tiles mode against a bare tile loop, dense against tiles, the bands model's speed,
and peak memory against the scene's size.

    .venv/bin/python bench/bench_scenes.py [--quick] [--sizes 1024,4096,10000]

Table 1: megapixels per second of ``map_scene(mode="tiles")`` against a bare loop that cuts the
same tiles and calls ``modelkit.predict`` on each (efficientnet_lite0, 13 bands, tile 224,
stride 112, scaling "none" in both so the work is the same). Goal >= 1.2x.
Table 2: dense against tiles at stride = tile / 2 (resnet50 with random weights: no weights
offline, the time is the same; efficientnet_lite0 with its ImageNet weights), and the fraction of
cells where the two modes give the same class (the model's own classes; and a head taught on 15
tiles per class of the example scene). Goal >= 5x.
Table 3: the bands model's maps (a head taught on the example scene) in megapixels per second,
from an array in memory and from a tiled Deflate GeoTIFF on disk. Goal >= 20 Mpx/s on 2 cores.
Table 4: peak memory growth of a fresh process mapping 1k^2, 4k^2, 10k^2 x 13-band tiled
Deflate GeoTIFFs (bands head; efficientnet_lite0 dense up to 4k^2). Goal: flat, <= 600 MB at
10k^2. Every scene is built here from the example scene's spectra; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import Table, print_tables, ratio  # noqa: E402
from scene_data import bands_head, labelled_tiles, scene_pixels, teaching_split  # noqa: E402

import modelkit  # noqa: E402
from modelkit.runtime.device import configure_cpu_threads  # noqa: E402
from modelkit.scenes.grid import tile_starts  # noqa: E402


def big_scene(side: int) -> np.ndarray:
    """The example scene mirrored to ``side`` x ``side`` (real spectra, no seams)."""
    base = scene_pixels()
    reps = -(-side // base.shape[1])
    rows = np.concatenate([base if i % 2 == 0 else base[:, ::-1] for i in range(reps)], 1)
    both = np.concatenate([rows if i % 2 == 0 else rows[:, :, ::-1] for i in range(reps)], 2)
    return np.ascontiguousarray(both[:, :side, :side])


def tiles_vs_loop(repeats: int) -> Table:
    table = Table("Tiles mode vs a bare loop of predict, efficientnet_lite0, 13 x 1024 x 1024, "
                  "tile 224, stride 112 (81 tiles)", ["method", "s", "Mpx/s", "vs bare loop"],
                  formats={"s": ".2f", "Mpx/s": ".3f", "vs bare loop": ".2f"})  # fmt: skip
    scene = big_scene(1024)
    options = dict(pretrained=True, in_chans=13, scaling="none", use_result_cache=False)
    starts = tile_starts(1024, 224, 112)  # the map's own tiles: 0, 112, ..., 784 and 800

    def bare() -> float:
        begin = time.perf_counter()
        for r in starts:
            for c in starts:
                modelkit.predict(scene[:, r : r + 224, c : c + 224], "efficientnet_lite0",
                                 **options)  # fmt: skip
        return time.perf_counter() - begin

    def ours() -> float:
        begin = time.perf_counter()
        modelkit.map_scene(scene, "efficientnet_lite0", mode="tiles", pretrained=True,
                           scaling="none")  # fmt: skip
        return time.perf_counter() - begin

    bare(), ours()  # warm up: the model is built once
    times = {"bare": [], "ours": []}
    for _ in range(repeats):  # interleaved: a busy moment hits both
        times["bare"].append(bare())
        times["ours"].append(ours())
    best = {k: min(v) for k, v in times.items()}
    table.add("bare loop: predict per tile", best["bare"], 1.048576 / best["bare"], 1.0)
    table.add("map_scene(mode='tiles')", best["ours"], 1.048576 / best["ours"],
              ratio(best["bare"], best["ours"]))  # fmt: skip
    return table


def dense_vs_tiles(side: int) -> Table:
    table = Table(f"Dense vs tiles at stride = tile / 2, 13 x {side} x {side}",
                  ["model", "tile", "tiles s", "dense s", "dense speed-up", "same class"],
                  formats={"tiles s": ".1f", "dense s": ".1f", "dense speed-up": ".2f",
                           "same class": ".1%"})  # fmt: skip
    scene = big_scene(side)
    for name, pretrained in (("efficientnet_lite0", True), ("resnet50", False)):
        maps, secs = {}, {}
        for mode in ("tiles", "dense"):
            begin = time.perf_counter()
            maps[mode] = modelkit.map_scene(scene, name, mode=mode, pretrained=pretrained)
            secs[mode] = time.perf_counter() - begin
        same = float(np.mean(maps["tiles"].class_map == maps["dense"].class_map))
        label = name if pretrained else f"{name} (random weights)"
        table.add(label, 224, secs["tiles"], secs["dense"], ratio(secs["tiles"], secs["dense"]),
                  same if pretrained else None)  # fmt: skip
    tiles, labels, _ = labelled_tiles()
    teach, _ = teaching_split()
    head = modelkit.train_head([tiles[i] for i in teach], list(labels[teach]),
                               "efficientnet_lite0", use_result_cache=False)  # fmt: skip
    maps, secs = {}, {}
    for mode in ("tiles", "dense"):
        begin = time.perf_counter()
        maps[mode] = modelkit.map_scene(scene_pixels(), head=head, tile=64, mode=mode)
        secs[mode] = time.perf_counter() - begin
    table.add("efficientnet_lite0 + head (example scene, 512 x 512)", 64, secs["tiles"],
              secs["dense"], ratio(secs["tiles"], secs["dense"]),
              float(np.mean(maps["tiles"].class_map == maps["dense"].class_map)))  # fmt: skip
    table.notes.append("Same class: the share of cells where the two modes agree. The head was "
                       "taught on 16-pixel tiles (cross-validated accuracy "
                       f"{head.cv_accuracy:.2f}) and maps 64-pixel ones.")  # fmt: skip
    return table


def bands_speed(side: int, repeats: int, folder: Path) -> Table:
    table = Table(f"The bands model's maps (bands head), 13 x {side} x {side}, tile 16, "
                  "stride 8", ["source", "s", "Mpx/s", "read s", "compute s"],
                  formats={"s": ".2f", "Mpx/s": ".1f", "read s": ".2f",
                           "compute s": ".2f"})  # fmt: skip
    head = bands_head()
    scene = big_scene(side)
    path = folder / f"bands-{side}.tif"
    tifffile.imwrite(path, scene, photometric="minisblack", planarconfig="separate",
                     tile=(256, 256), compression="zlib", predictor=True)  # fmt: skip
    for label, source in (("array in memory", scene), ("tiled Deflate GeoTIFF", path)):
        modelkit.map_scene(source, head=head)  # warm up
        runs = [modelkit.map_scene(source, head=head).timings for _ in range(repeats)]
        best = min(runs, key=lambda t: t["total_ms"])
        seconds = best["total_ms"] / 1e3
        table.add(label, seconds, side * side / 1e6 / seconds, best["read_ms"] / 1e3,
                  best["compute_ms"] / 1e3)  # fmt: skip
    table.notes.append("Read and compute overlap (the next window is read while this one is "
                       "computed), so they may add up to more than the total.")  # fmt: skip
    return table


CHILD = """
import sys, threading, time, psutil
sys.path.insert(0, sys.argv[4])
import modelkit
from scene_data import bands_head
import numpy as np
head = bands_head() if sys.argv[2] == "bands" else None
if head is None:  # build the model first (on a small array): memory of the map alone
    modelkit.map_scene(np.ones((13, 224, 224), np.uint16), sys.argv[2], mode="dense")
process = psutil.Process(); start = process.memory_info().rss; peak = [start]; stop = []
def watch():
    while not stop:
        peak[0] = max(peak[0], process.memory_info().rss); time.sleep(0.02)
thread = threading.Thread(target=watch); thread.start()
begin = time.perf_counter()
if head is not None:
    modelkit.map_scene(sys.argv[1], head=head)
else:
    modelkit.map_scene(sys.argv[1], sys.argv[2], mode="dense")
seconds = time.perf_counter() - begin
stop.append(1); thread.join()
print((peak[0] - start) / 2**20, seconds)
"""


def write_synthetic(path: Path, side: int) -> None:
    """A tiled Deflate GeoTIFF of side x side: the example scene mirrored to 1024 or 4096 pixels,
    repeated; written tile by tile, so the scene is never whole in memory here."""
    base = big_scene(min(side, 4096) if side <= 4096 else 4096)
    size = base.shape[1]
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(shape=(13, side, side), dtype=np.uint16, photometric="minisblack",
                  planarconfig="separate", tile=(256, 256), compression="zlib",
                  data=(base[b, r % size : r % size + 256, c % size : c % size + 256]
                        for b in range(13) for r in range(0, side, 256)
                        for c in range(0, side, 256)))  # fmt: skip


def memory(sizes: list[int], folder: Path) -> Table:
    table = Table("Peak memory growth of a fresh process mapping a 13-band tiled Deflate "
                  "GeoTIFF", ["model", "side", "scene GiB (uint16)", "growth MiB", "s"],
                  formats={"scene GiB (uint16)": ".2f", "growth MiB": ".0f",
                           "s": ".1f"})  # fmt: skip
    for side in sizes:
        path = folder / f"scene-{side}.tif"
        write_synthetic(path, side)
        for model in ("bands", "efficientnet_lite0"):
            if model != "bands" and side > 4096:
                table.add_not_measured(model, side, reason="not run: about 200 s of CPU time")
                continue
            done = subprocess.run([sys.executable, "-c", CHILD, str(path), model, "",
                                   str(ROOT / "tests")], capture_output=True, text=True,
                                  cwd=ROOT, check=True)  # fmt: skip
            growth, seconds = (float(v) for v in done.stdout.split()[-2:])
            table.add(model, side, 13 * side * side * 2 / 2**30, growth, seconds)
        path.unlink()
    table.notes.append(
        "bands: its head, tile 16, stride 8; efficientnet_lite0: its own "
        "classes, dense, tile 224, stride 112, built before the measure."
    )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small scenes, one repeat")
    parser.add_argument("--sizes", default="1024,4096,10000")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    args = parser.parse_args()
    configure_cpu_threads()
    repeats = 1 if args.quick else 3
    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tables = [
            tiles_vs_loop(repeats),
            dense_vs_tiles(512 if args.quick else 1024),
            bands_speed(1024 if args.quick else 4096, repeats, Path(tmp)),
            memory(sizes[:1] if args.quick else sizes, Path(tmp)),
        ]
    for table in tables:
        table.notes.append(f"load average at the start {load[0]:.1f} on {os.cpu_count()} cores")
    print_tables(tables)
    if args.markdown:
        args.markdown.write_text("\n".join(table.to_markdown() for table in tables))


if __name__ == "__main__":
    main()
