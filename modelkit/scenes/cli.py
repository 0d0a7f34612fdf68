"""``python -m modelkit map SCENE (--model NAME | --head FILE) --out MAP.tif [...]``: a scene map
from a shell, with a progress bar (windows done, time left). Writes MAP.tif (the class map),
MAP.probabilities.tif, MAP.png (an overlay with a legend) and MAP.csv (areas). Finished windows
are kept in MAP.tif.parts while it runs, so the same command after an interruption resumes.
Exit status: 0 done, 2 a mistake in the command or the data (the message says which), 130
interrupted. ``python -m modelkit batch ...`` is dispatched to ``batches.cli`` unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from modelkit.batches.cli import _indices, add_batch_parser, guard
from modelkit.batches.cli import handle as handle_batch


def add_map_parser(sub) -> None:
    p = sub.add_parser(
        "map",
        help="map a whole scene (a GeoTIFF) with a model or a taught head",
        description="A class map of a scene, as a GeoTIFF that lines up with the "
        "ground, plus probabilities, a PNG overlay and a CSV of areas.",
    )
    p.add_argument("scene", metavar="SCENE", help="a GeoTIFF (tiled or striped, any bands)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a model name, e.g. efficientnet_lite0")
    which.add_argument("--head", help="a head taught in the app or with modelkit.train_head")
    p.add_argument("--out", required=True, help="MAP.tif, the class map to write")
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="tile side in pixels (default: the model's input size)",
    )
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        help="pixels between tiles and per map cell (default: half a tile)",
    )
    p.add_argument("--mode", choices=("auto", "tiles", "dense"), default="auto")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Ray actors (default: one per GPU, else half the CPUs)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="tiles per forward pass")
    p.add_argument("--no-pretrained", action="store_true", help="random weights instead")
    p.add_argument("--in-chans", type=int, default=None, help="input channels of the model")
    p.add_argument("--channels", type=_indices, default=None, help="scene bands, e.g. 3,2,1")
    p.add_argument("--scaling", default="auto", help="auto, minmax, percentile, zscore or none")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="fp32", help="fp32, fp16, bf16, or int8 (compiled, CPU)")
    p.add_argument("--backend", default=None, help="auto (the fastest on this CPU), torch, "
                   "onnxruntime or openvino (default: MODELKIT_BACKEND, else auto)")  # fmt: skip
    p.add_argument("--embeddings", action="store_true", help="keep each cell's features")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m modelkit", description="modelkit from a shell: batch and map."
    )
    sub = top.add_subparsers(dest="command", required=True)
    add_batch_parser(sub)
    add_map_parser(sub)
    return top


def outputs(out: Path) -> dict[str, Path]:
    """Every file the command writes, and the folder of finished windows."""
    from modelkit.scenes.export import probability_path

    return {
        "map": out,
        "probabilities": probability_path(out),
        "png": out.with_suffix(".png"),
        "csv": out.with_suffix(".csv"),
        "parts": out.with_name(out.name + ".parts"),
    }


def run_map(args: argparse.Namespace) -> int:
    from modelkit.scenes.export import check_writable

    files = outputs(Path(args.out))
    for name in ("map", "probabilities", "png", "csv"):
        check_writable(files[name])  # refused before any work (and before torch is imported)
    from tqdm import tqdm

    from modelkit.runtime.device import configure_cpu_threads
    from modelkit.scenes.api import map_scene

    configure_cpu_threads()  # the process's torch threads, once (MODELKIT_CPU_THREADS)
    bars: list = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(
                tqdm(
                    total=total,
                    initial=done,
                    unit="window",
                    desc="map",
                    disable=args.quiet,
                    file=sys.stderr,
                )
            )
        bars[0].n = done
        bars[0].refresh()

    try:
        scene_map = map_scene(
            args.scene,
            args.model,
            head=args.head,
            tile=args.tile,
            stride=args.stride,
            mode=args.mode,
            batch_size=args.batch_size,
            progress=progress,
            embeddings=args.embeddings,
            pretrained=not args.no_pretrained,
            in_chans=args.in_chans,
            channels=args.channels,
            scaling=args.scaling,
            device=args.device,
            precision=args.precision,
            backend=args.backend,
            engine=args.engine,
            workers=args.workers,
            parts=files["parts"],
        )
    finally:
        for bar in bars:
            bar.close()
    scene_map.save(files["map"])
    scene_map.save_png(files["png"])
    scene_map.save_csv(files["csv"])
    h, w = scene_map.class_map.shape
    where = f"EPSG:{scene_map.crs}" if scene_map.crs else "no georeferencing"
    print(
        f"{files['map']}: {w} x {h} cells of {scene_map.cell} pixels ({scene_map.mode} mode, "
        f"{where}); also {files['probabilities'].name}, {files['png'].name}, "
        f"{files['csv'].name}."
    )
    for row in scene_map.area:
        km2 = f", {row['km2']:,.2f} km2" if row["km2"] is not None else ""
        print(f"  {row['class']}: {100 * row['fraction']:.1f} %{km2}")
    for note in scene_map.notes:
        print(f"Note: {note}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "batch":
        return handle_batch(args)
    return guard(run_map, args, f"the windows done so far are in {args.out}.parts")
