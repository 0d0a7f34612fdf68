"""A linear probe on frozen embeddings: standardised features, multinomial logistic regression,
its regularisation chosen by stratified group k-fold cross-validation on a log grid.

    fit_probe(vectors, y, *, folds=5, groups=None, seed=0, grid=C_GRID, solver="torch")
        -> Probe: weight (K, D) and bias (K,) on the raw pooled features (scaler folded in),
           C, oof_proba (N, K), fold_of (N,), grid_accuracy, grid_log_loss
    cross_validate(vectors, y, c, fold_of, *, classes=None, solver="torch") -> (N, K)
        out-of-fold probabilities at one C: the folds only, no grid and no refit

``vectors`` is (N, V, D): N source images, V views each (flips/turns), D features. Folds split
the images, never the views (all views of an image, and every image of a ``groups`` id such as
the same file twice, stay in one fold); a fold's scaler is fitted on its training rows only. An
image's out-of-fold probability is the mean of its views' probabilities. The objective is
scikit-learn's: ``sum over images of the mean view cross-entropy + ||W||^2 / (2 C)`` on
standardised features, intercept not penalised. C is the grid value with the best pooled
out-of-fold accuracy (ties: lower log-loss, then stronger regularisation); as in
LogisticRegressionCV, the reported accuracy is that of the chosen C on the same folds (a small
optimism over a 7-point grid). The grid stops early once two weaker settings in a row are less
accurate than the best (weak regularisation is the slow end).

Two solvers give the same optimum: ``"torch"`` (one L-BFGS over all folds at once, warm-started
along the grid; the default, faster in bench/bench_teach.py) and ``"sklearn"``
(LogisticRegression per fold and C, warm-started).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold

C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))
MAX_ITER = 100  # per grid value; warm starts make most fits far shorter
TOLERANCE = 1e-4  # on the gradient of the per-image objective


@dataclass
class Probe:
    weight: np.ndarray  # (K, D) float32, on raw features
    bias: np.ndarray  # (K,) float32
    C: float
    oof_proba: np.ndarray  # (N, K) float64
    fold_of: np.ndarray  # (N,) int: the fold each image was held out in
    grid: tuple[float, ...]
    grid_accuracy: list[float]
    grid_log_loss: list[float]


def split(y: np.ndarray, folds: int, groups: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """The fold each image is held out in: stratified by class, a group never split."""
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    fold_of = np.empty(len(y), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, groups)):
        fold_of[test] = f
    return fold_of


def _scaler(x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean and standard deviation of the rows (constant features get scale 1)."""
    total = weights.sum()
    mean = (weights[:, None] * x).sum(0) / total
    var = (weights[:, None] * (x - mean) ** 2).sum(0) / total
    scale = var.sqrt()
    return mean, torch.where(scale > 1e-12, scale, torch.ones_like(scale))


class _TorchPath:
    """Every fold's problem in one L-BFGS (they are independent, so their sum is too), stepped
    along the grid with warm starts. Logits of all folds come from one matrix product."""

    def __init__(self, vectors: np.ndarray, y: np.ndarray, k: int, train_masks: np.ndarray):
        n, v, d = vectors.shape
        folds = len(train_masks)
        self.shape = (folds, d, k)
        self.x = torch.from_numpy(vectors.reshape(n * v, d))
        self.onehot = torch.nn.functional.one_hot(torch.from_numpy(np.repeat(y, v)), k).float()
        # each fold's objective per image: the mean over its training images of the view mean
        weights = np.repeat(train_masks, v, axis=1) / (v * train_masks.sum(1, keepdims=True))
        self.row_w = torch.from_numpy(weights.T.astype(np.float32))  # (R, F)
        self.n = torch.from_numpy(train_masks.sum(1).astype(np.float32))  # (F,)
        stats = [_scaler(self.x, torch.from_numpy(np.repeat(m, v).astype(np.float32)))
                 for m in train_masks]  # fmt: skip
        self.mean = torch.stack([m for m, _ in stats])  # (F, D)
        self.scale = torch.stack([s for _, s in stats])
        self.w = torch.zeros(folds, d, k, requires_grad=True)
        self.b = torch.zeros(folds, k, requires_grad=True)

    def fit(self, c: float) -> list[tuple[np.ndarray, np.ndarray]]:
        folds, d, k = self.shape
        w, b = self.w, self.b

        def closure():
            opt.zero_grad()
            raw = w / self.scale[:, :, None]  # (F, D, K)
            bias = b - torch.einsum("fd,fdk->fk", self.mean, raw)
            logits = (self.x @ raw.permute(1, 0, 2).reshape(d, folds * k)).view(-1, folds, k)
            ce = -(self.onehot[:, None, :] * torch.log_softmax(logits + bias, -1)).sum(-1)
            loss = (self.row_w * ce).sum() + ((w**2).sum((1, 2)) / (2 * c * self.n)).sum()
            loss.backward()
            return loss

        opt = torch.optim.LBFGS([w, b], lr=1, max_iter=MAX_ITER, history_size=10,
                                tolerance_grad=TOLERANCE, tolerance_change=1e-9,
                                line_search_fn="strong_wolfe")  # fmt: skip
        opt.step(closure)
        with torch.no_grad():
            raw = w / self.scale[:, :, None]
            bias = b - torch.einsum("fd,fdk->fk", self.mean, raw)
            return [(raw[f].T.numpy().copy(), bias[f].numpy().copy()) for f in range(folds)]


class _SklearnPath:
    """LogisticRegression per fold (its own StandardScaler), warm-started along the grid."""

    def __init__(self, vectors: np.ndarray, y: np.ndarray, k: int, train_masks: np.ndarray):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        n, v, d = vectors.shape
        self.k, self.v, self.parts = k, v, []
        for mask in train_masks:
            rows = vectors[mask].reshape(-1, d).astype(np.float64)
            scaler = StandardScaler().fit(rows)
            model = LogisticRegression(max_iter=MAX_ITER, warm_start=True, tol=TOLERANCE)
            self.parts.append((scaler, scaler.transform(rows), np.repeat(y[mask], v), model))

    def fit(self, c: float) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for scaler, xs, ys, model in self.parts:
            # sample weights 1/V: C means the same per image with and without views
            model.set_params(C=c).fit(xs, ys, sample_weight=np.full(len(ys), 1.0 / self.v))
            coef, intercept = np.zeros((self.k, xs.shape[1])), np.zeros(self.k)
            if len(model.classes_) == 2:  # scikit-learn keeps one row for two classes
                coef[model.classes_] = np.vstack([-model.coef_ / 2, model.coef_ / 2])
                intercept[model.classes_] = [-model.intercept_[0] / 2, model.intercept_[0] / 2]
            else:
                coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
            weight = coef / scaler.scale_
            out.append((weight, intercept - weight @ scaler.mean_))
        return out


def _proba(vectors: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(N, K): the mean over views of the softmax of the linear layer's logits."""
    logits = torch.from_numpy(vectors).double() @ torch.from_numpy(weight).double().T
    return torch.softmax(logits + torch.from_numpy(bias).double(), -1).mean(1).numpy()


SOLVERS = {"torch": _TorchPath, "sklearn": _SklearnPath}


def _views(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors[:, None, :] if vectors.ndim == 2 else vectors


def _held_out(vectors, fold_of, fits, k) -> np.ndarray:
    oof = np.zeros((len(vectors), k))
    for f, (weight, bias) in enumerate(fits):
        held = fold_of == f
        oof[held] = _proba(vectors[held], weight, bias)
    return oof


def cross_validate(
    vectors: np.ndarray,
    y: np.ndarray,
    c: float,
    fold_of: np.ndarray,
    *,
    classes: int | None = None,
    solver: str = "torch",
) -> np.ndarray:
    """Out-of-fold probabilities at one regularisation ``c``: each fold's head fitted on the
    other folds (as fit_probe does for each grid value), without the grid or the refit.

    Args:
        vectors: (N, V, D) or (N, D) features.
        y: (N,) class indices.
        c: the inverse regularisation strength.
        fold_of: (N,) the fold each example is held out in (see ``split``), or (S, N): S
            splits solved at once (one L-BFGS for all their folds), -1 leaving an example out of
            that split.
        classes: K (the largest label + 1 when None).
        solver: "torch" or "sklearn".

    Returns:
        (N, K), or (S, N, K) for S splits (zeros where an example was left out).
    """
    vectors, y = _views(vectors), np.asarray(y, dtype=np.int64)
    k = classes or int(y.max()) + 1
    splits = np.atleast_2d(fold_of)
    masks, held = [], []
    for s, row in enumerate(splits):
        for f in range(int(row.max()) + 1):
            masks.append((row >= 0) & (row != f))
            held.append((s, row == f))
    fits = SOLVERS[solver](vectors, y, k, np.stack(masks)).fit(c)
    oof = np.zeros((len(splits), len(y), k))
    for (s, rows), (weight, bias) in zip(held, fits, strict=True):
        oof[s, rows] = _proba(vectors[rows], weight, bias)
    return oof if np.ndim(fold_of) == 2 else oof[0]


def fit_probe(
    vectors: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    groups: np.ndarray | None = None,
    seed: int = 0,
    grid: tuple[float, ...] = C_GRID,
    solver: str = "torch",
) -> Probe:
    """Cross-validate C on the grid, keep the out-of-fold probabilities, refit on all images."""
    vectors, y = _views(vectors), np.asarray(y, dtype=np.int64)
    k = int(y.max()) + 1
    fold_of = split(y, folds, groups, seed)
    return _fit(vectors, y, k, fold_of, grid, solver)


def _fit(vectors, y, k, fold_of, grid, solver) -> Probe:
    folds = int(fold_of.max()) + 1
    path = SOLVERS[solver](vectors, y, k, np.stack([fold_of != f for f in range(folds)]))
    accuracy, log_loss, oofs = [], [], []
    for c in grid:  # weakest regularisation last: each fit starts from the previous optimum
        oof = _held_out(vectors, fold_of, path.fit(c), k)
        oofs.append(oof)
        accuracy.append(float((oof.argmax(1) == y).mean()))
        log_loss.append(float(-np.log(np.clip(oof[np.arange(len(y)), y], 1e-15, 1)).mean()))
        if _past_the_top(accuracy, log_loss):
            break
    # best accuracy, then lower log-loss, then the smaller C (stronger regularisation)
    best = min(range(len(accuracy)), key=lambda g: (-accuracy[g], log_loss[g], grid[g]))
    refit = SOLVERS[solver](vectors, y, k, np.ones((1, len(y)), bool))
    for c in grid[: best + 1]:
        ((weight, bias),) = refit.fit(c)
    return Probe(
        weight=np.asarray(weight, np.float32), bias=np.asarray(bias, np.float32), C=grid[best],
        oof_proba=oofs[best], fold_of=fold_of, grid=tuple(grid[: len(accuracy)]),
        grid_accuracy=accuracy, grid_log_loss=log_loss,
    )  # fmt: skip


def _past_the_top(accuracy: list[float], log_loss: list[float]) -> bool:
    """Two weaker regularisations in a row less accurate than the best so far: stop the grid
    (weak regularisation is the slow end; on pooled features accuracy has one top)."""
    best = max(accuracy)
    return len(accuracy) >= 3 and accuracy[-1] < best and accuracy[-2] < best
