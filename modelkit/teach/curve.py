"""How many more labels? A learning curve from cross-validated accuracy on subsets of the
examples, extrapolated to twice as many examples.

    estimate_curve(vectors, y, *, C, accuracy=None, fractions=(0.25, 0.5, 0.75), repeats=3,
                   folds=5, groups=None, seed=0, solver="torch") -> dict (plain JSON types)

For each fraction, ``repeats`` random subsets keep that share of every class (at least 2 per
class); each is cross-validated with the head's own regularisation ``C`` (the folds only: no
grid, no refit). The full set's point is the head's own out-of-fold ``accuracy``. A point's x is
the number of examples per class a fold was trained on. Fitted: an inverse power law
``acc(n) = a - b * n ** -c`` (a <= 1, b >= 0, c on a grid from 0.1 to 2; for each c, a and b by
least squares), to the subsets' mean accuracies. The gain from twice the examples per class is
the curve's rise from the full set's x to twice it; ``expected`` is today's out-of-fold accuracy
plus that gain (so it compares with the accuracy the page shows). Its uncertainty: the same fit
on BOOTSTRAP draws (each fraction's repeats resampled, the full point jittered by its binomial
standard error); ``low`` and ``high`` add the 10th and 90th percentiles of the gain. When the
gain is under FLAT (1 point), more examples are unlikely to help much (``helps`` is False).
"""

from __future__ import annotations

import time

import numpy as np

from modelkit.teach.fit import cross_validate, split

FRACTIONS = (0.25, 0.5, 0.75)
REPEATS = 3
BOOTSTRAP = 400
FLAT = 0.01  # the gain (in accuracy) under which more examples "are unlikely to help much"
MIN_POINTS = 3  # fewer distinct subset sizes than this: too few to draw a curve
EXPONENTS = np.linspace(0.1, 2.0, 39)


def fit_power_law(x: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """(B, 3) parameters a, b, c of ``a - b * x ** -c`` for each row of ``acc`` (B, P)."""
    acc = np.atleast_2d(np.asarray(acc, np.float64))
    best = np.full((len(acc), 4), np.inf)  # a, b, c, squared error
    for c in EXPONENTS:
        z = -np.power(x, -c)  # acc = a + b z
        zc = z - z.mean()
        b = (acc - acc.mean(1, keepdims=True)) @ zc / max(float(zc @ zc), 1e-12)
        b = np.clip(b, 0, None)
        a = acc.mean(1) - b * z.mean()
        over = a > 1  # the ceiling: a = 1, b refitted with a fixed
        if over.any():
            a[over] = 1.0
            b[over] = np.clip((acc[over] - 1) @ z / float(z @ z), 0, None)
        error = ((acc - (a[:, None] + b[:, None] * z)) ** 2).sum(1)
        better = error < best[:, 3]
        best[better] = np.stack([a, b, np.full_like(a, c), error], 1)[better]
    return best[:, :3]


def predict(params: np.ndarray, n: float) -> np.ndarray:
    """The curve's accuracy at ``n`` examples per class, for each row of (B, 3) parameters."""
    params = np.atleast_2d(params)
    return np.clip(params[:, 0] - params[:, 1] * np.power(n, -params[:, 2]), 0, 1)


def _subset(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    keep = []
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        take = max(2, int(round(fraction * len(rows))))
        keep.append(rng.choice(rows, min(take, len(rows)), replace=False))
    return np.sort(np.concatenate(keep))


def _per_class(y: np.ndarray) -> float:
    return float(np.bincount(y)[np.unique(y)].mean())


def _folds(y: np.ndarray, folds: int) -> int:
    return min(folds, int(np.bincount(y)[np.unique(y)].min()))


def _point(fraction: float, y: np.ndarray, folds: int, accuracies: list[float]) -> dict:
    """One point of the curve: x is the examples per class each fold was trained on."""
    k = _folds(y, folds)
    return {"fraction": fraction, "per_class": _per_class(y),
            "trained_per_class": _per_class(y) * (k - 1) / k, "accuracies": accuracies,
            "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies))}  # fmt: skip


def estimate_curve(
    vectors: np.ndarray,
    y: np.ndarray,
    *,
    C: float,
    accuracy: float | None = None,
    fractions: tuple[float, ...] = FRACTIONS,
    repeats: int = REPEATS,
    folds: int = 5,
    groups: np.ndarray | None = None,
    seed: int = 0,
    solver: str = "torch",
) -> dict:
    """Cross-validated accuracy on subsets, the fitted curve and what twice as many would give.

    Args:
        vectors: (N, V, D) or (N, D) embeddings of the examples.
        y: (N,) class indices.
        C: the regularisation the head chose (every subset is fitted with it).
        accuracy: the full set's out-of-fold accuracy (cross-validated here when None).
        fractions: shares of every class to keep, below 1.
        repeats: random subsets per fraction.
        folds: cross-validation folds (fewer where a subset's class is smaller).
        groups: one id per example; equal ids never split across folds.
        seed: the subsets' and folds' draws.
        solver: "torch" or "sklearn" (as fit_probe).

    Returns:
        dict: ``points`` [{fraction, per_class, trained_per_class, accuracies, mean, std}],
        ``fit`` {a, b, c}, ``per_class`` (examples per class now), ``now`` (today's accuracy),
        ``more`` (examples per class to add: as many again), ``gain``, ``expected``, ``low``,
        ``high`` (accuracy with them; 10th-90th percentile), ``helps``, ``enough_points``,
        ``seconds``.
    """
    start = time.perf_counter()
    y = np.asarray(y, np.int64)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    subsets, sizes = [], []  # (fraction, rows) for every draw; sizes already drawn
    for fraction in sorted(fractions):
        drawn = [_subset(y, fraction, rng) for _ in range(repeats)]
        if len(drawn[0]) not in sizes and len(drawn[0]) < len(y):
            sizes.append(len(drawn[0]))
            subsets += [(fraction, rows) for rows in drawn]
    if accuracy is None:
        subsets.append((1.0, np.arange(len(y))))
    splits = np.full((len(subsets), len(y)), -1)
    for s, (_, rows) in enumerate(subsets):
        splits[s, rows] = split(y[rows], _folds(y[rows], folds), groups[rows], seed + s)
    oof = cross_validate(vectors, y, C, splits, classes=int(y.max()) + 1, solver=solver)
    accs = [float((oof[s, rows].argmax(1) == y[rows]).mean()) for s, (_, rows) in
            enumerate(subsets)]  # fmt: skip
    if accuracy is None:
        accuracy = accs.pop()
        subsets.pop()
    points = []
    for fraction in dict.fromkeys(f for f, _ in subsets):
        mine = [s for s, (f, _) in enumerate(subsets) if f == fraction]
        points.append(_point(fraction, y[subsets[mine[0]][1]], folds, [accs[s] for s in mine]))
    points.append(_point(1.0, y, folds, [float(accuracy)]))
    out = {"points": points, "per_class": _per_class(y), "more": int(round(_per_class(y))),
           "enough_points": len(points) >= MIN_POINTS}  # fmt: skip
    out.update(_extrapolate(points, len(y), rng))
    out["seconds"] = time.perf_counter() - start
    return out


def _extrapolate(points: list[dict], n: int, rng: np.random.Generator) -> dict:
    """The gain the fitted curve gives from twice the examples, added to today's accuracy, with
    its bootstrap percentiles. Both sides are cross-validated: a fold of twice the examples
    trains on twice as many."""
    x = np.array([p["trained_per_class"] for p in points])
    params = fit_power_law(x, [p["mean"] for p in points])[0]
    full = points[-1]["mean"]
    se = np.sqrt(max(full * (1 - full), 1 / n) / n)
    draws = np.empty((BOOTSTRAP, len(points)))
    for j, p in enumerate(points[:-1]):
        accs = np.asarray(p["accuracies"])
        draws[:, j] = accs[rng.integers(0, len(accs), (BOOTSTRAP, len(accs)))].mean(1)
    draws[:, -1] = np.clip(rng.normal(full, se, BOOTSTRAP), 0, 1)
    boot = fit_power_law(x, draws)
    gains = np.clip(predict(boot, 2 * x[-1]) - predict(boot, x[-1]), 0, None)
    gain = max(float(predict(params, 2 * x[-1])[0] - predict(params, x[-1])[0]), 0.0)
    low, high = (float(g) for g in np.percentile(gains, [10, 90]))
    return {"fit": {"a": float(params[0]), "b": float(params[1]), "c": float(params[2])},
            "now": full, "gain": gain, "expected": min(1.0, full + gain),
            "low": min(1.0, full + low), "high": min(1.0, full + high),
            "helps": gain >= FLAT}  # fmt: skip
