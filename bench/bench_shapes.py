"""Preprocess cost by image shape: the same pixel count as a square, a panorama and thin strips.

    .venv/bin/python bench/bench_shapes.py [--repeat 3] [--pixels 1000000]

Each image has ``--pixels`` pixels per band (RGB uint8, then one uint16 band); every case ends in
the (1, C, 224, 224) tensor of efficientnet_lite0's data config (bicubic, crop 0.875).

- baseline: torchvision's ``resize`` (shorter side to 256, antialiased) + ``center_crop`` +
  normalise, the pipeline modelkit used before issue 17. Not run where it would allocate over
  4 GiB (the table says how much it would ask for).
- modelkit: ``preprocess`` (resizes only the source pixels the crop reads when the full resize
  would be large).

Timing: median of ``--repeat`` runs after a warm-up. Memory: each case in a fresh subprocess,
peak RSS growth (VmHWM after resetting it) of one run after a warm-up.
Goal: a thin strip costs about what a square of the same pixel count costs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from benchtable import Table, print_tables  # noqa: E402

BASELINE_LIMIT = 4 * 2**30  # bytes the baseline may ask for before it is not run


def shapes(pixels: int) -> dict[str, tuple[int, int]]:
    side = int(math.isqrt(pixels))
    return {
        "square": (side, side),
        "panorama 4:1": (side // 2, side * 2),
        "strip 100:1": (side // 10, side * 10),
        "strip 1 px tall": (1, pixels),
        "strip 1 px wide": (pixels, 1),
    }


def make(case: str, dtype: str, pixels: int):
    import numpy as np

    height, width = shapes(pixels)[case]
    channels = 3 if dtype == "uint8" else 1
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    top = 255 if dtype == "uint8" else 4095
    planes = [((x * (c + 1) + y * 3) % 97) / 97 * top for c in range(channels)]
    return np.stack(planes).astype(dtype)


def functions(case: str, dtype: str, pixels: int) -> dict:
    import torch
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    from modelkit.images.preprocess import preprocess
    from modelkit.models.registry import get_pretrained_cfg

    data = make(case, dtype, pixels)
    cfg = get_pretrained_cfg("efficientnet_lite0").data_config().with_in_chans(data.shape[0])

    def baseline() -> torch.Tensor:
        tensor = torch.from_numpy(data)
        if tensor.dtype != torch.uint8:
            tensor = tensor.float().div_(4095.0)
        tensor = F.resize(tensor, [256], InterpolationMode.BICUBIC, antialias=True)
        tensor = F.center_crop(tensor, [224, 224])
        if tensor.dtype == torch.uint8:
            tensor = tensor.float().div_(255.0)
        return F.normalize(tensor, list(cfg.mean), list(cfg.std)).unsqueeze(0)

    def ours() -> torch.Tensor:
        return preprocess(data, cfg, scaling="auto" if dtype == "uint8" else "none")

    return {"baseline": baseline, "modelkit": ours}


def baseline_bytes(case: str, dtype: str, pixels: int) -> int:
    """What torchvision's resize allocates for this case (its width pass, then the full image)."""
    from modelkit.config import DataConfig
    from modelkit.images.resize import full_resize_bytes, plan_crop

    height, width = shapes(pixels)[case]
    channels = 3 if dtype == "uint8" else 1
    plan = plan_crop(height, width, DataConfig(crop_pct=0.875))
    return full_resize_bytes(plan, channels, 1 if dtype == "uint8" else 4)


def run_one(case: str, dtype: str, who: str, pixels: int, repeat: int) -> dict:
    """Executed in a fresh subprocess: median time and peak RSS growth of one run."""
    import gc

    fn = functions(case, dtype, pixels)[who]
    fn()  # warm-up
    gc.collect()
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    fn()
    peak = _status("VmHWM") - before
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"time": statistics.median(times), "peak": peak}


def _status(field: str) -> int:
    return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0]) * 1024


def _subprocess(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=True, env=env)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def collect(repeat: int = 3, pixels: int = 1_000_000) -> list[Table]:
    table = Table(
        f"preprocess to 224x224 by shape, {pixels:,} pixels per band, median of {repeat}",
        ["case", "dtype", "H x W", "baseline s", "modelkit s", "baseline peak MiB",
         "modelkit peak MiB", "modelkit s / square"],
        formats={"baseline s": ".3f", "modelkit s": ".3f", "baseline peak MiB": ".0f",
                 "modelkit peak MiB": ".1f", "modelkit s / square": ".2f"},
        meaning="the baseline is torchvision's resize + centre crop; modelkit resizes only the "
        "source pixels the crop reads once the full resize would be large",
    )  # fmt: skip
    for dtype in ("uint8", "uint16"):
        square = None
        for case, (height, width) in shapes(pixels).items():
            args = (case, dtype, str(pixels), str(repeat))
            ours = _subprocess("--one", *args[:2], "modelkit", *args[2:])
            square = square or ours["time"]
            asks = baseline_bytes(case, dtype, pixels)
            if asks > BASELINE_LIMIT:
                base = {"time": None, "peak": None}
                table.notes.append(f"{case} {dtype}: the baseline would allocate "
                                   f"{asks / 2**30:,.0f} GiB; not run")  # fmt: skip
            else:
                base = _subprocess("--one", *args[:2], "baseline", *args[2:])
            mib = lambda b: None if b is None else b / 2**20  # noqa: E731
            table.add(case, dtype, f"{height} x {width}", base["time"], ours["time"],
                      mib(base["peak"]), mib(ours["peak"]), ours["time"] / square)  # fmt: skip
    return [table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pixels", type=int, default=1_000_000)
    parser.add_argument("--one", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        case, dtype, who, pixels, repeat = args.one
        print(json.dumps(run_one(case, dtype, who, int(pixels), int(repeat))))
        return
    print_tables(collect(args.repeat, args.pixels))


if __name__ == "__main__":
    main()
