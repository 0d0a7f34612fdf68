"""Factory overhead and early-exit features, side by side in one run (CPU, no downloads).

    .venv/bin/python bench/bench_factory.py [--repeats 3] [--size 224]

Table 1: create_model(checkpoint_path=...) vs torchvision's builder + torch.load +
load_state_dict of the same fabricated checkpoint (median of --repeats runs, seeded).
Table 2: features_only up to level 1 vs a full classifier forward (median per call).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from modelkit import create_model  # noqa: E402

NAMES = ["resnet18", "resnet50", "convnext_tiny", "vit_b_16"]


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare(name: str, path: Path) -> torch.nn.Module:
    model = torchvision.models.get_model(name)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("\nbuild + load a checkpoint (s)")
    print(f"{'model':<16}{'bare tv':>10}{'create_model':>14}{'overhead':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in NAMES:
            torch.manual_seed(0)
            path = Path(tmp) / f"{name}.pth"
            torch.save(torchvision.models.get_model(name).state_dict(), path)
            create_model(name, checkpoint_path=path)  # warm the meta-device feature trace
            t_bare = median_time(lambda n=name, p=path: bare(n, p), args.repeats)
            t_ours = median_time(
                lambda n=name, p=path: create_model(n, checkpoint_path=p), args.repeats
            )
            print(f"{name:<16}{t_bare:>10.3f}{t_ours:>14.3f}{(t_ours / t_bare - 1):>+10.1%}")

    print(f"\nforward, batch 1, {args.size}px (ms)")
    print(f"{'model':<16}{'full':>10}{'level 1':>10}{'ratio':>8}")
    x = torch.randn(1, 3, args.size, args.size)
    with torch.no_grad():
        for name in NAMES:
            full = create_model(name)
            early = create_model(name, features_only=True, out_indices=[1])
            full(x), early(x)  # warm-up
            t_full = median_time(lambda m=full: m(x), args.repeats * 3)
            t_early = median_time(lambda m=early: m(x), args.repeats * 3)
            print(f"{name:<16}{t_full * 1e3:>10.1f}{t_early * 1e3:>10.1f}{t_early / t_full:>8.2f}")


if __name__ == "__main__":
    main()
