"""Data with known answers for the labelling tests and bench/bench_label.py: clustered embeddings
(classes made of modes of unequal size), scikit-learn's digits (shipped in the package) as
features, labels flipped on purpose, and an active-labelling loop that asks ``suggest`` which
items to label and scores a classifier trained on them."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from modelkit.teach.suggest import suggest


def clustered(seed: int = 0, classes: int = 4, modes: int = 4, dims: int = 32, total: int = 1200):
    """(N, D) embeddings and (N,) classes: every class is ``modes`` tight clusters whose sizes
    differ a lot (a random pick of a few misses the small ones)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(classes * modes, 0.6))
    sizes = np.maximum(4, np.round(weights * total)).astype(int)
    centres = rng.normal(size=(classes * modes, dims))
    modes_ = zip(centres, sizes, strict=True)
    x = np.concatenate([c + 0.25 * rng.normal(size=(s, dims)) for c, s in modes_])
    y = np.repeat(np.arange(classes * modes) % classes, sizes)
    return x.astype(np.float32), y


def digits():
    """scikit-learn's 8x8 digits (1797) as 64 pixel features scaled to [0, 1], and their classes."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16).astype(np.float32), y


def flipped(y: np.ndarray, share: float = 0.1, seed: int = 0):
    """Labels with ``share`` of them changed to another class, and the changed indices."""
    rng = np.random.default_rng(seed)
    k = int(y.max()) + 1
    flips = rng.choice(len(y), int(round(share * len(y))), replace=False)
    noisy = y.copy()
    noisy[flips] = (y[flips] + rng.integers(1, k, len(flips))) % k
    return noisy, np.sort(flips)


def _classifier(x, y, labelled):
    model = LogisticRegression(C=10.0, max_iter=300)
    return model.fit(x[labelled], y[labelled])


def accuracy_after(x, y, labelled) -> float:
    """Accuracy on every item of a classifier taught on the labelled ones (0 for one class)."""
    if len(np.unique(y[labelled])) < 2:
        return float(np.mean(y == y[labelled[0]]))
    return float(_classifier(x, y, labelled).score(x, y))


def active_rounds(x, y, strategy: str, budgets, seed: int = 0) -> list[float]:
    """Label ``budgets[0]`` items, then more up to each next budget, each round's items chosen by
    ``suggest`` (with the probabilities of a classifier taught on the labels so far, once it
    has two classes); the accuracy after each budget."""
    labelled = np.zeros(0, np.int64)
    out = []
    for budget in budgets:
        probabilities = None
        if len(np.unique(y[labelled])) >= 2:
            model = _classifier(x, y, labelled)
            probabilities = np.zeros((len(y), int(y.max()) + 1))
            probabilities[:, model.classes_] = model.predict_proba(x)
        picks = suggest(x, budget - len(labelled), labelled=labelled, strategy=strategy,
                        probabilities=probabilities, seed=seed).indices  # fmt: skip
        labelled = np.concatenate([labelled, picks])
        out.append(accuracy_after(x, y, labelled))
    return out


def blobs(per_class: int, dims: int, separation: float, classes: int = 4, seed: int = 0):
    """Gaussian classes (unit spread) whose centres lie ``separation`` apart on average."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims)) * separation / np.sqrt(dims)
    x = np.concatenate([c + rng.normal(size=(per_class, dims)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(classes), per_class)
