"""Teach: embedding cost, fit + cross-validation time, re-teaching from cached embeddings,
out-of-fold accuracy and peak memory, each beside a hand-written baseline doing the same work.

    .venv/bin/python bench/bench_teach.py [--images 64] [--repeats 3] [--skip-baseline-fit]

Table 1: ``embeddings`` vs the bare model in a loop over the same decoded images (preprocess,
batches of 32, forward_features + forward_head(pre_logits) under inference_mode); goal <= 1.05x.
Table 2: fit + CV for 1000 examples x 1280 features x 10 classes (Gaussian classes, ImageNet-like
feature size): ``fit_probe`` (torch and scikit-learn solvers) vs StandardScaler +
LogisticRegressionCV with the same grid and folds; goal <= 3 s; OOF accuracy within 0.5 points.
Table 3: train_head again on 200 lfw images (64 px) whose embeddings are cached; goal <= 3 s; its
OOF accuracy beside the baseline's on the same embeddings; peak RSS growth during the teach
against the model + the features + 300 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import Table, print_tables  # noqa: E402

from modelkit import embeddings, train_head  # noqa: E402
from modelkit.images.limits import ImageArray  # noqa: E402
from modelkit.images.preprocess import preprocess  # noqa: E402
from modelkit.runtime.model_cache import ModelCache, model_bytes  # noqa: E402
from modelkit.runtime.result_cache import ResultCache  # noqa: E402
from modelkit.runtime.settings import RunSettings  # noqa: E402
from modelkit.teach.fit import C_GRID, fit_probe, split  # noqa: E402

MODEL = "efficientnet_lite0"


def decoded_images(count: int) -> list[ImageArray]:
    """RGB crops of scikit-image's photos, decoded once (both sides get the same arrays)."""
    from skimage import data

    photos = [data.chelsea(), data.astronaut(), data.coffee()]
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        photo = photos[i % 3]
        r, c = rng.integers(0, photo.shape[0] - 160), rng.integers(0, photo.shape[1] - 160)
        chw = np.ascontiguousarray(photo[r : r + 160, c : c + 160].transpose(2, 0, 1))
        out.append(ImageArray(chw, f"crop{i}.png", "png", chw.shape, "CHW", "uint8", (0, 255)))
    return out


def bare_loop(model, images, batch_size: int = 32) -> np.ndarray:
    """The baseline: preprocess, batch, forward to the pooled features, nothing else."""
    out = []
    with torch.inference_mode():
        for first in range(0, len(images), batch_size):
            x = torch.cat([preprocess(im, model.data_config) for im in images[first : first + 32]])
            out.append(model.forward_head(model.forward_features(x), pre_logits=True).numpy())
    return np.concatenate(out)


def embedding_table(count: int, repeats: int) -> Table:
    images = decoded_images(count)
    cache = ModelCache()
    model, _ = cache.get(RunSettings(MODEL, pretrained=True).model_key())
    embeddings(images[:2], MODEL, pretrained=True, use_result_cache=False, model_cache=cache)
    ours, base = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        t = time.perf_counter()
        a = embeddings(images, MODEL, pretrained=True, use_result_cache=False, model_cache=cache)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        b = bare_loop(model, images)
        base.append(time.perf_counter() - t)
    np.testing.assert_allclose(a.vectors[:, 0], b, atol=1e-4)  # the same work
    table = Table(f"Embedding {count} images (224 px, {MODEL}, batches of 32)",
                  ["what", "median s", "ms / image", "ratio"],
                  formats={"median s": ".2f", "ms / image": ".0f", "ratio": ".3f"},
                  meaning="embeddings() beside the bare model loop; goal <= 1.05")  # fmt: skip
    o, b = float(np.median(ours)), float(np.median(base))
    table.add("modelkit embeddings", o, 1e3 * o / count, o / b)
    table.add("bare model loop", b, 1e3 * b / count, 1.0)
    return table


def baseline_cv(x2d: np.ndarray, y: np.ndarray, fold_of: np.ndarray) -> float:
    """StandardScaler + LogisticRegressionCV, same grid and folds: its best mean CV accuracy."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.preprocessing import StandardScaler

    folds = [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f))
             for f in range(fold_of.max() + 1)]  # fmt: skip
    lr = LogisticRegressionCV(Cs=list(C_GRID), cv=folds, max_iter=100, scoring="accuracy")
    lr.fit(StandardScaler().fit_transform(x2d), y)
    scores = np.mean([s for s in lr.scores_.values()], axis=0)  # (folds, Cs)
    return float(scores.mean(0).max())


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def fit_table(skip_baseline: bool) -> Table:
    rng = np.random.default_rng(0)
    n, d, k = 1000, 1280, 10
    y = rng.integers(0, k, n)
    x = (0.1 * rng.normal(size=(k, d))[y] + rng.normal(size=(n, d))).astype(np.float32)
    table = Table("Fit + 5-fold CV: 1000 examples x 1280 features x 10 classes",
                  ["what", "seconds", "OOF accuracy %", "ratio to baseline"],
                  formats={"seconds": ".2f", "OOF accuracy %": ".1f", "ratio to baseline": ".2f"},
                  meaning="goal <= 3 s; OOF accuracy within 0.5 points of baseline")  # fmt: skip
    fold_of = split(y, 5)
    rows = []
    for solver in ("torch", "sklearn"):
        probe, s = timed(lambda solver=solver: fit_probe(x, y, solver=solver))
        rows.append(
            (f"fit_probe solver={solver}", s, 100 * (probe.oof_proba.argmax(1) == y).mean())
        )
    if not skip_baseline:
        acc, s = timed(lambda: baseline_cv(x, y, fold_of))
        rows.append(("baseline LogisticRegressionCV", s, 100 * acc))
    base = rows[-1][1] if not skip_baseline else None
    for what, s, acc in rows:
        table.add(what, s, acc, None if base is None else s / base)
    return table


def peak_rss_during(fn) -> tuple[object, float]:
    """fn's result and the highest RSS (bytes) sampled every 5 ms while it ran."""
    proc, peak, done = psutil.Process(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        return fn(), peak[0]
    finally:
        done.set()
        thread.join()


def reteach_table(skip_baseline: bool) -> Table:
    from teach_data import lfw

    x, labels = lfw(per_class=100)
    with tempfile.TemporaryDirectory() as tmp:
        results, cache = ResultCache(Path(tmp)), ModelCache()
        kw = dict(result_cache=results, model_cache=cache)
        first, s_first = timed(lambda: train_head(list(x), labels, MODEL, **kw))
        start = psutil.Process().memory_info().rss
        (again, s_again), peak = peak_rss_during(
            lambda: timed(lambda: train_head(list(x), labels, MODEL, **kw))
        )  # fmt: skip
        model, _ = cache.get(RunSettings(MODEL, pretrained=True, in_chans=3).model_key())
        vectors = embeddings(list(x), MODEL, pretrained=True, in_chans=3, **kw).vectors
    table = Table("Teach 200 lfw images (64 px): first time, and again from cached embeddings",
                  ["what", "seconds", "OOF accuracy %", "peak RSS growth MB", "budget MB"],
                  formats={"seconds": ".2f", "OOF accuracy %": ".1f",
                           "peak RSS growth MB": ".0f", "budget MB": ".0f"},
                  meaning="again: goal <= 3 s; RSS growth <= model + features + 300MB")  # fmt: skip
    budget = (model_bytes(model) + vectors.nbytes) / 2**20 + 300
    table.add("train_head, embeddings computed", s_first, 100 * first.cv_accuracy, None, None)
    table.add("train_head again (all cached)", s_again, 100 * again.cv_accuracy,
              (peak - start) / 2**20, budget)  # fmt: skip
    if not skip_baseline:
        y = np.array([again.classes.index(lab) for lab in labels])
        acc, s = timed(lambda: baseline_cv(vectors[:, 0], y, split(y, 5)))
        table.add("baseline LogisticRegressionCV (same embeddings)", s, 100 * acc, None, None)
    return table


def collect(images: int = 64, repeats: int = 3, skip_baseline: bool = False) -> list[Table]:
    tables = [embedding_table(images, repeats), fit_table(skip_baseline),
              reteach_table(skip_baseline)]  # fmt: skip
    load = os.getloadavg()[0]
    for table in tables:
        table.notes.append(f"{os.cpu_count()} CPU cores, load average {load:.1f} at the end "
                           "(the machine is shared: other work slows every row alike)")  # fmt: skip
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-baseline-fit", action="store_true")
    args = parser.parse_args()
    print_tables(collect(args.images, args.repeats, args.skip_baseline_fit))


if __name__ == "__main__":
    main()
