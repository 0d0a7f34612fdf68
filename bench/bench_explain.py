"""Explanations against the plain work they replace, side by side, and peak memory by chunk.

    .venv/bin/python bench/bench_explain.py [--repeats 5] [--device auto]

efficientnet_lite0 (package weights, first conv adapted to 13 bands), a 13 x 224 x 224 input;
the model is built and warmed up before timing; runs interleaved, p50 of ``repeats``.
Table 1: explain(method="bands") (captum FeatureAblation, 13 band copies in chunks + the
unperturbed pass reused) vs the naive loop: 14 separate forward passes. Goal <= 0.7x.
Table 2: explain(method="gradcam") (forward + one backward, map placed on the image) vs one
forward. Goal <= 3x.
Table 3: explain(method="integrated_gradients", steps=32) vs 32 inputs forward and backward in
one batch. Goal <= 1.2x.
Tables 1 and 3 use explain's own chunk for the device (api.CHUNKS: small on a CPU, where a
forward's cost per image does not fall with the batch; 16 on a GPU).
Table 4: peak resident memory growth of one explanation by chunk size, and at twice the steps
(a fresh process each; the peak is reset after the model is built, Linux VmHWM).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import Table, print_tables  # noqa: E402

from modelkit.explanations.api import default_chunk, explain  # noqa: E402
from modelkit.runtime.device import prepare_input, resolve_device  # noqa: E402
from modelkit.runtime.model_cache import ModelCache  # noqa: E402
from modelkit.runtime.settings import RunSettings  # noqa: E402

NAME, BANDS, SIZE = "efficientnet_lite0", 13, 224


def setup(device: str, warm: bool = True):
    dev = resolve_device(device)
    cache = ModelCache()
    x = torch.randn(BANDS, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    kw = dict(pretrained=True, in_chans=BANDS, device=str(dev), model_cache=cache,
              use_result_cache=False)  # fmt: skip
    key = RunSettings(NAME, pretrained=True, in_chans=BANDS, device=str(dev)).model_key()
    model, _ = cache.get(key)
    xb = prepare_input(x[None], dev)
    with torch.inference_mode():
        model(xb)
    if warm:
        explain(x, NAME, **kw)
    return dev, model, xb, x, kw


def _time(fn, dev) -> float:
    start = time.perf_counter()
    fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(title, goal, ours, baseline, dev, repeats, ours_name, base_name) -> Table:
    ours(), baseline()  # warm up both shapes
    a, b = [], []
    for _ in range(repeats):
        a.append(_time(ours, dev))
        b.append(_time(baseline, dev))
    columns = ["device", f"{base_name} ms", f"{ours_name} ms", "ratio", "goal"]
    formats = {columns[1]: ".0f", columns[2]: ".0f", "ratio": ".2f"}
    table = Table(title, columns, formats=formats)
    pa, pb = statistics.median(a) * 1e3, statistics.median(b) * 1e3
    table.add(dev.type, pb, pa, pa / pb, goal)
    return table


def timing_tables(device: str, repeats: int) -> list[Table]:
    dev, model, xb, x, kw = setup(device)
    target = int(explain(x, NAME, **kw).target_index)

    def naive_loop():
        with torch.inference_mode():
            for band in range(BANDS + 1):
                copy = xb.clone()
                if band < BANDS:
                    copy[:, band] = copy[:, band].mean()
                model(copy)

    def one_forward():
        with torch.inference_mode():
            model(xb)

    def batched_grad():
        path = xb.detach().expand(32, -1, -1, -1).clone().requires_grad_(True)
        torch.autograd.grad(model(path)[:, target].sum(), path)

    bands_chunk, ig_chunk = default_chunk("bands", dev), default_chunk("integrated_gradients", dev)
    return [
        compare(f"Band importance, 13 bands at 224: explain(bands, chunk {bands_chunk}) vs 14 "
                "separate forwards",
                "<= 0.7x", lambda: explain(x, NAME, method="bands", **kw), naive_loop,
                dev, repeats, "explain", "14 forwards"),
        compare("Grad-CAM vs one forward", "<= 3x",
                lambda: explain(x, NAME, method="gradcam", **kw), one_forward, dev, repeats,
                "explain", "1 forward"),
        compare(f"Integrated gradients, 32 steps (chunk {ig_chunk}) vs 32 batched forward + "
                "backward", "<= 1.2x",
                lambda: explain(x, NAME, method="integrated_gradients", steps=32, **kw),
                batched_grad, dev, repeats, "explain", "fwd+bwd x32"),
    ]  # fmt: skip


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory since the last reset (Linux VmHWM), in MiB."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) / 1024 if match else None


def _reset_peak_rss() -> bool:
    """Start the peak over from the current RSS (Linux: write 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_one(method: str, chunk: int, steps: int, device: str) -> dict:
    """In this (fresh) process: peak RSS growth of one explanation, the peak counted from after
    the model was built and ran once (so the model's own build peak does not mask it)."""
    dev, model, xb, x, kw = setup(device, warm=False)
    gc.collect()
    reset = _reset_peak_rss()
    before = _peak_rss_mb() if reset else None
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    explain(x, NAME, method=method, chunk=chunk, steps=steps, **kw)
    after = _peak_rss_mb() if reset else None
    gpu = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.type == "cuda" else None
    growth = after - before if before is not None and after is not None else None
    return {"rss_growth_mb": growth, "gpu_peak_mb": gpu}


# (method, chunk, steps): chunks grow; the last IG row doubles the steps at the same chunk
MEMORY_RUNS = [("bands", 1, 32), ("bands", 4, 32), ("bands", 16, 32),
               ("integrated_gradients", 1, 32), ("integrated_gradients", 8, 32),
               ("integrated_gradients", 32, 32), ("integrated_gradients", 8, 64)]  # fmt: skip


def memory_table(device: str) -> Table:
    table = Table("Peak memory growth of one explanation by chunk size (fresh process each)",
                  ["method", "chunk", "steps", "peak RSS growth MB", "GPU peak MB"],
                  formats={"peak RSS growth MB": ".0f", "GPU peak MB": ".0f"},
                  meaning="memory grows with the chunk, not with the steps")  # fmt: skip
    table.notes.append(
        "Peak RSS (VmHWM) is reset after the model is built and has run once, then read after the "
        "explanation; GPU: torch.cuda.max_memory_allocated above what was allocated before. "
        "Empty where the OS does not allow the reset (not Linux)."
    )
    for method, chunk, steps in MEMORY_RUNS:
        command = [sys.executable, __file__, "--peak", method, str(chunk), "--steps", str(steps),
                   "--device", device]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        data = json.loads(out.strip().splitlines()[-1])
        table.add(method, chunk, steps, data["rss_growth_mb"], data["gpu_peak_mb"])
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--peak", nargs=2, metavar=("METHOD", "CHUNK"))
    parser.add_argument("--steps", type=int, default=32, help="integrated gradients' steps")
    args = parser.parse_args()
    if args.peak:
        print(json.dumps(peak_one(args.peak[0], int(args.peak[1]), args.steps, args.device)))
        return
    print_tables([*timing_tables(args.device, args.repeats), memory_table(args.device)])


if __name__ == "__main__":
    main()
