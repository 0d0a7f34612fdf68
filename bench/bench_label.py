"""Labelling: what "where to label next" gains over random picks, how exact look-alike search with
numpy compares with index libraries, how well label issues find flipped labels, and what the
learning curve costs beside the fit it extrapolates.

    .venv/bin/python bench/bench_label.py [--seeds 3] [--rows 100000] [--dims 1280]
        [--queries 100] [--hnsw-rows 20000] [--threads 1] [--skip search,suggest,...]

Table 1: accuracy after each labelling budget (a logistic regression taught on the picks, scored
on every item), picks by ``suggest`` (typical, margin, auto) against random picks, averaged over
seeds, on clustered embeddings (classes of modes of unequal size) and on scikit-learn's digits.
Table 2: ``nearest`` (numpy, chunked) against one unchunked numpy product (the same work),
faiss-cpu's exact IndexFlatIP and usearch (exact, and its HNSW index with recall@10), when they
are importable (``pip install faiss-cpu usearch``; not requirements); 1 and ``--queries`` queries
over ``--rows`` x ``--dims`` float32 rows; build time, query time, peak extra memory.
Table 3: label issues on digits with 10 % of the labels flipped: precision at the number flipped
against "predicted != given" ranked the same way, and cleanlab's ``find_label_issues`` (when
importable) on the same out-of-fold probabilities.
Table 4: ``estimate_curve`` on 400 examples x 1280 features x 4 classes beside ``fit_probe``.
Table 5: one ``suggest`` call on a scene map's scale (``--rows`` float16 cells on a grid).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("MODELKIT_OFFLINE", "1")

from benchtable import Table, print_tables  # noqa: E402
from label_data import active_rounds, clustered, digits, flipped  # noqa: E402

from modelkit.batches.similar import similar  # noqa: E402
from modelkit.teach.curve import estimate_curve  # noqa: E402
from modelkit.teach.fit import fit_probe  # noqa: E402
from modelkit.teach.issues import find_label_issues, quality  # noqa: E402
from modelkit.teach.neighbours import nearest  # noqa: E402
from modelkit.teach.suggest import suggest  # noqa: E402

BUDGETS = (10, 20, 30, 50, 100, 150, 200)
STRATEGIES = ("random", "typical", "margin", "auto")


def suggestion_table(seeds: int) -> Table:
    table = Table("Accuracy after each labelling budget: picks by suggest vs random picks",
                  ["data", "strategy", *[f"{b} labels" for b in BUDGETS]],
                  formats={f"{b} labels": ".1%" for b in BUDGETS})  # fmt: skip
    for name, data in (("clustered", clustered), ("digits", lambda seed: digits())):
        means = {}
        for strategy in STRATEGIES:
            runs = [active_rounds(*data(seed), strategy, BUDGETS, seed=seed)
                    for seed in range(seeds)]  # fmt: skip
            means[strategy] = np.mean(runs, 0)
            table.add(name, strategy, *means[strategy])
        table.add(name, "auto - random (points)",
                  *[f"{100 * g:+.1f}" for g in means["auto"] - means["random"]])  # fmt: skip
    table.meaning = (
        f"mean over {seeds} seeds; 'margin' and 'auto' use the probabilities of the "
        "classifier taught on the labels so far (typical until it has two classes)"
    )
    return table


def suggest_cost_table(rows: int, dims: int) -> Table:
    """What one call costs on a scene map's scale: float16 cell embeddings, a grid."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, dims))
    x = (centres[rng.integers(0, 40, rows)] + rng.normal(size=(rows, dims))).astype(np.float16)
    probabilities = rng.dirichlet(np.ones(5), rows)
    grid = np.stack(np.divmod(np.arange(rows), int(np.sqrt(rows))), 1)
    labelled = rng.choice(rows, 30, replace=False)
    suggest(x[:2000], 5)  # imports and thread pools, outside the timing
    size = f"{rows:,} cells x {dims} float16 ({x.nbytes / 2**20:.0f} MiB)"
    table = Table(f"suggest(n=10) over {size}",
                  ["strategy", "seconds", "peak extra MiB", "closest two picks (cells)"],
                  formats={"seconds": ".2f", "peak extra MiB": ".0f"})  # fmt: skip
    for strategy in ("typical", "margin"):
        tracemalloc.start()
        start = time.perf_counter()
        picks = suggest(x, 10, labelled=labelled, probabilities=probabilities, positions=grid,
                        strategy=strategy).indices  # fmt: skip
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        cells = grid[picks]
        gaps = np.abs(cells[:, None] - cells[None]).max(-1) + np.eye(len(picks), dtype=int) * 10**6
        table.add(strategy, seconds, peak, int(gaps.min()))
    table.meaning = "min_cells=2: no two picks are neighbours on the grid"
    return table


def _timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _peak(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def search_table(rows: int, dims: int, queries: int, hnsw_rows: int) -> Table:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, dims)).astype(np.float32)
    q1, qs = x[:1], x[:queries] + 0.1 * rng.normal(size=(queries, dims)).astype(np.float32)
    table = Table(f"Look-alikes: exact k=10 search over {rows:,} x {dims} float32",
                  ["method", "build s", "1 query ms", f"{queries} queries s", "peak extra MiB",
                   "recall@10"], formats={"build s": ".2f", "1 query ms": ".1f",
                                          f"{queries} queries s": ".2f",
                                          "peak extra MiB": ".0f", "recall@10": ".3f"})  # fmt: skip
    exact, _ = nearest(x, qs, 10)
    table.add("modelkit nearest (numpy, 8192-row blocks)", 0.0,
              1e3 * _timed(lambda: nearest(x, q1[0], 10)), _timed(lambda: nearest(x, qs, 10), 1),
              _peak(lambda: nearest(x, q1[0], 10)), 1.0)  # fmt: skip

    def whole(q):
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return np.argsort(-(q @ unit.T), axis=1)[:, :10]

    table.add("numpy, one unchunked product (baseline)", 0.0, 1e3 * _timed(lambda: whole(q1)),
              _timed(lambda: whole(qs), 1), _peak(lambda: whole(q1)), 1.0)  # fmt: skip
    start = time.perf_counter()
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    build = time.perf_counter() - start

    def prepared(q):
        scores = q @ unit.T
        return np.argpartition(-scores, 10, axis=1)[:, :10]

    table.add("numpy on vectors normalised once (as an index keeps them)", build,
              1e3 * _timed(lambda: prepared(q1)), _timed(lambda: prepared(qs), 1),
              _peak(lambda: prepared(q1)), 1.0)  # fmt: skip
    batch_table = _batch_table(x)
    table.add("modelkit.similar on a Batch table (pyarrow, row query)", 0.0,
              1e3 * _timed(lambda: similar(0, batch_table, 10)), None,
              _peak(lambda: similar(0, batch_table, 10)), 1.0)  # fmt: skip
    try:
        import faiss

        start = time.perf_counter()
        index = faiss.IndexFlatIP(dims)
        index.add(unit)
        build = time.perf_counter() - start
        qn = qs / np.linalg.norm(qs, axis=1, keepdims=True)
        _, found = index.search(qn, 10)
        table.add(f"faiss-cpu {faiss.__version__} IndexFlatIP (exact)", build,
                  1e3 * _timed(lambda: index.search(unit[:1], 10)),
                  _timed(lambda: index.search(qn, 10), 1), None, _recall(found, exact))  # fmt: skip
    except ImportError:
        table.add_not_measured("faiss-cpu", reason="not installed")
    try:
        import usearch
        from usearch.index import Index, search

        qn = qs / np.linalg.norm(qs, axis=1, keepdims=True)
        found = search(unit, qn, 10, metric="cos", exact=True).keys
        table.add(f"usearch {usearch.__version__} search(exact=True)", 0.0,
                  1e3 * _timed(lambda: search(unit, unit[:1], 10, metric="cos", exact=True)),
                  _timed(lambda: search(unit, qn, 10, metric="cos", exact=True), 1), None,
                  _recall(found, exact))  # fmt: skip
        part = unit[:hnsw_rows]
        sub_exact, _ = nearest(part, qn, 10)
        start = time.perf_counter()
        index = Index(ndim=dims, metric="cos")
        index.add(np.arange(len(part)), part)
        build = time.perf_counter() - start
        found = index.search(qn, 10).keys
        table.add(f"usearch HNSW on the first {len(part):,} rows (approximate)", build,
                  1e3 * _timed(lambda: index.search(part[:1], 10)),
                  _timed(lambda: index.search(qn, 10), 1), None,
                  _recall(found, sub_exact))  # fmt: skip
    except ImportError:
        table.add_not_measured("usearch", reason="not installed")
    table.meaning = ("query times are medians of 3 (the many-query column: one run); peak extra "
                     "memory by tracemalloc (numpy allocations only)")  # fmt: skip
    return table


def _batch_table(x: np.ndarray):
    import pyarrow as pa

    from modelkit.batches.table import schema

    embedding = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    columns = {"file": pa.array([f"tile_{i}.tif" for i in range(len(x))]),
               "folder": pa.array([""] * len(x)),
               "embedding": embedding.cast(pa.list_(pa.float32())),
               "error": pa.nulls(len(x), pa.string())}  # fmt: skip
    return pa.table(columns).cast(schema(("embeddings",)))


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    pairs = zip(found, exact, strict=True)
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in pairs]))


def issues_table() -> Table:
    x, y = digits()
    noisy, flips = flipped(y, 0.1, seed=0)
    probe = fit_probe(x, noisy, folds=5, seed=0, grid=(0.1,))
    oof, count = probe.oof_proba, len(flips)
    table = Table(f"Label issues: digits, {count} of {len(y)} labels flipped (10 %)",
                  ["method", "flagged", "flagged that were flipped", f"precision at {count}",
                   "recall", "suggested = true class", "seconds"],
                  formats={f"precision at {count}": ".1%", "flagged that were flipped": ".1%",
                           "recall": ".1%", "suggested = true class": ".1%",
                           "seconds": ".3f"})  # fmt: skip

    def row(name, indices, suggested, seconds):
        hit = np.isin(indices, flips)
        table.add(
            name,
            len(indices),
            hit.mean(),
            hit[:count].sum() / count,
            hit.sum() / count,
            (suggested[hit] == y[indices[hit]]).mean(),
            seconds,
        )

    start = time.perf_counter()
    found = find_label_issues(noisy, oof)
    row("modelkit confident learning", found.indices, found.suggested,
        time.perf_counter() - start)  # fmt: skip
    wrong = np.flatnonzero(oof.argmax(1) != noisy)
    wrong = wrong[np.argsort(quality(noisy, oof, "self_confidence")[wrong])]
    row("predicted != given (baseline)", wrong, oof.argmax(1)[wrong], 0.0)
    try:
        from cleanlab.filter import find_label_issues as cleanlab_issues

        start = time.perf_counter()
        theirs = cleanlab_issues(noisy, oof, return_indices_ranked_by="self_confidence", n_jobs=1)
        row("cleanlab find_label_issues", theirs, oof.argmax(1)[theirs],
            time.perf_counter() - start)  # fmt: skip
        shared = len(set(theirs) & set(found.indices))
        table.notes.append(f"cleanlab and modelkit flag {shared} of the same examples "
                           f"({len(theirs)} and {len(found.indices)} flagged).")  # fmt: skip
    except ImportError:
        table.add_not_measured("cleanlab", reason="not installed")
    agree = np.mean(oof.argmax(1) == noisy)
    table.meaning = ("out-of-fold probabilities of our logistic-regression probe on the 64 "
                     f"pixels (accuracy against the given labels {agree:.1%})")  # fmt: skip
    return table


def curve_table() -> Table:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 1280)) * 4 / np.sqrt(1280)
    x = np.concatenate([c + rng.normal(size=(100, 1280)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(4), 100)
    table = Table(
        "Learning curve: 400 examples x 1280 features x 4 classes",
        ["what", "seconds", "x the fit"],
        formats={"seconds": ".2f", "x the fit": ".2f"},
    )
    fits, curves, result = [], [], None
    for _ in range(3):  # interleaved
        start = time.perf_counter()
        probe = fit_probe(x, y)
        fits.append(time.perf_counter() - start)
        start = time.perf_counter()
        accuracy = probe.grid_accuracy[probe.grid.index(probe.C)]
        result = estimate_curve(x, y, C=probe.C, accuracy=accuracy)
        curves.append(time.perf_counter() - start)
    fit, curve = float(np.median(fits)), float(np.median(curves))
    table.add("fit_probe (grid + 5-fold CV + refit)", fit, 1.0)
    table.add("estimate_curve (3 fractions x 3 subsets, 5 folds, one L-BFGS)", curve, curve / fit)
    table.meaning = (f"now {result['now']:.1%}, twice the examples {result['expected']:.1%} "
                     f"({result['low']:.1%}-{result['high']:.1%}); torch threads "
                     f"{torch.get_num_threads()}")  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--hnsw-rows", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--skip", default="", help="comma-separated: suggest,cost,search,issues,curve"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    skip = set(args.skip.split(","))
    tables = []
    if "suggest" not in skip:
        tables.append(suggestion_table(args.seeds))
    if "cost" not in skip:
        tables.append(suggest_cost_table(args.rows, args.dims))
    if "search" not in skip:
        tables.append(search_table(args.rows, args.dims, args.queries, args.hnsw_rows))
    if "issues" not in skip:
        tables.append(issues_table())
    if "curve" not in skip:
        tables.append(curve_table())
    print(f"load average at the end: {os.getloadavg()}")
    print_tables(tables)


if __name__ == "__main__":
    main()
