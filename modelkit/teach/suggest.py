"""Where to label next: which unlabelled items (images, or a scene map's cells) are worth a label.

    suggest(embeddings, n, *, labelled=(), probabilities=None, strategy="auto", positions=None,
            min_cells=2, min_distance=None, candidates=None, seed=0) -> Suggestions
        .indices (rows of ``embeddings``, best first), .strategy (the one used), .notes

Strategies (distances are cosine: Euclidean on L2-normalised embeddings):

- "typical" (few labels; TypiClust, Hacohen et al. 2022): the embeddings are clustered (k-means
  with k = labelled + n clusters, at most MAX_CLUSTERS, on at most PCA_DIMS principal components)
  and each pick is the most typical unlabelled item (the highest inverse mean distance to its
  KNN nearest neighbours in its cluster) of the largest cluster that holds the fewest labels, so
  regions the labels do not cover come first.
- "margin" (a head that is decent): the items whose two most probable classes are closest
  (the smallest top-1 minus top-2 probability), spread out: a pick is skipped while it lies
  within ``min_distance`` of an earlier pick (default: the median distance from an item to its
  nearest neighbour) or, with ``positions``, within ``min_cells`` cells of one (Chebyshev).
- "random": uniformly among the candidates (the baseline).
- "auto": "margin" once there are probabilities and at least AUTO_MARGIN_PER_CLASS labels per
  class; else "typical". Without probabilities (no head yet) only "typical" can be used, and a
  note says so.

A scene map passes its cells' embeddings (M, D), their probabilities (M, K), the indices of the
labelled cells and the cells' (row, col) as ``positions``, and reads positions[indices].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from modelkit.errors import ConfigError

STRATEGIES = ("auto", "typical", "margin", "random")
AUTO_MARGIN_PER_CLASS = 10  # labels per class from which "auto" turns to the margin
MAX_CLUSTERS = 500
PCA_DIMS = 64  # typical: k-means and typicality on at most this many principal components
KNN = 20  # typicality: neighbours whose mean distance says how dense an item's place is
MAX_CLUSTER_ROWS = 2000  # typicality in a larger cluster is measured on a sample of this size
MIN_CLUSTER = 5  # smaller clusters are picked from only when no larger one is left
CHUNK = 8192  # rows normalised at a time (a map's float16 embeddings are never copied whole)
NO_HEAD = (
    "No classes taught yet: these are typical examples of the groups your labels do not "
    "cover. Once classes are taught, the examples it is least sure of come next."
)


@dataclass
class Suggestions:
    indices: np.ndarray  # (n,) int: rows of the embeddings to label next, best first
    strategy: str  # "typical", "margin" or "random"
    notes: list[str] = field(default_factory=list)


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32; zero rows stay zero)."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def _mask(index, count: int, what: str) -> np.ndarray:
    mask = np.zeros(count, bool)
    if index is None:
        return mask
    index = np.asarray(index)
    if index.dtype == bool:
        if index.shape != (count,):
            raise ConfigError(f"{what}: a mask of {index.shape[0]} for {count} items.")
        return index.copy()
    if index.size and (index.min() < -count or index.max() >= count):
        raise ConfigError(f"{what}: an index outside the {count} items.")
    mask[index.astype(np.int64)] = True
    return mask


def _choose(strategy: str, probabilities, labelled: np.ndarray) -> tuple[str, list[str]]:
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r} is not one of {', '.join(STRATEGIES)}.")
    if probabilities is None and strategy in ("auto", "margin"):
        return "typical", [NO_HEAD]
    if strategy != "auto":
        return strategy, []
    enough = labelled.sum() >= AUTO_MARGIN_PER_CLASS * probabilities.shape[1]
    return ("margin" if enough else "typical"), []


def suggest(
    embeddings: np.ndarray,
    n: int,
    *,
    labelled: Sequence[int] | np.ndarray = (),
    probabilities: np.ndarray | None = None,
    strategy: str = "auto",
    positions: np.ndarray | None = None,
    min_cells: int = 2,
    min_distance: float | None = None,
    candidates: Sequence[int] | np.ndarray | None = None,
    seed: int = 0,
) -> Suggestions:
    """The ``n`` items most worth labelling next.

    Args:
        embeddings: (N, D) one embedding per item (labelled ones included: they say what is
            covered).
        n: how many to suggest.
        labelled: indices (or an (N,) boolean mask) of the items that have a label.
        probabilities: (N, K) a head's probabilities per item; None before any head.
        strategy: "auto", "typical", "margin" or "random".
        positions: (N, 2) grid (row, col) per item (a scene map's cells), or None.
        min_cells: with ``positions``, no two picks closer than this many cells (Chebyshev).
        min_distance: margin: no two picks closer than this cosine distance (None: the median
            nearest-neighbour distance; 0: no spreading in embedding space).
        candidates: indices (or mask) of the items that may be suggested (default: every
            unlabelled one).
        seed: k-means' and random's draws.

    Returns:
        Suggestions: the picked indices (best first), the strategy used and notes.
    """
    vectors = np.asarray(embeddings)
    if vectors.ndim != 2 or not len(vectors):
        raise ConfigError(f"Give the embeddings as an (items, features) array, not "
                          f"{vectors.shape}.")  # fmt: skip
    count = len(vectors)
    done = _mask(labelled, count, "labelled")
    free = ~done if candidates is None else _mask(candidates, count, "candidates") & ~done
    finite = _finite(vectors)
    free &= finite
    if probabilities is not None:
        probabilities = np.asarray(probabilities, np.float64)
        if probabilities.shape[0] != count:
            raise ConfigError(f"Give one row of probabilities per item: {count} items and "
                              f"{probabilities.shape[0]} rows.")  # fmt: skip
    used, notes = _choose(strategy, probabilities, done)
    n = int(n)
    if n <= 0 or not free.any():
        return Suggestions(np.zeros(0, np.int64), used, notes + ["Nothing left to suggest."] *
                           (not free.any()))  # fmt: skip
    spread = _Spread(positions, min_cells, count)
    if used == "random":
        picks = np.random.default_rng(seed).permutation(np.flatnonzero(free))[:n]
    elif used == "margin":
        picks = _margin(vectors, probabilities, free, n, min_distance, spread)
    else:
        picks = _typical(vectors, done & finite, free, n, spread, seed)
    if len(picks) < n:
        notes.append(f"Only {len(picks)} items could be suggested.")
    return Suggestions(np.asarray(picks, np.int64), used, notes)


class _Spread:
    """Whether an item is far enough, on the grid, from the picks so far."""

    def __init__(self, positions, min_cells: int, count: int):
        self.positions = None if positions is None else np.asarray(positions, np.float64)
        if self.positions is not None and self.positions.shape != (count, 2):
            raise ConfigError(f"positions: give (row, col) per item, an array of shape "
                              f"({count}, 2), not {self.positions.shape}.")  # fmt: skip
        self.min_cells, self.picked = min_cells, []

    def allows(self, i: int) -> bool:
        if self.positions is None or not self.picked:
            return True
        gap = np.abs(self.positions[self.picked] - self.positions[i]).max(1)
        return bool(gap.min() >= self.min_cells)

    def add(self, i: int) -> None:
        self.picked.append(int(i))


def _margin(vectors, probabilities, free, n, min_distance, spread) -> list[int]:
    top = np.sort(probabilities, axis=1)[:, ::-1]
    margin = top[:, 0] - (top[:, 1] if top.shape[1] > 1 else 0)
    order = np.flatnonzero(free)[np.argsort(margin[free], kind="stable")]
    if min_distance is None:
        min_distance = nearest_distance(normalised(vectors[order[: 4 * MAX_CLUSTER_ROWS]]))
    picks: list[int] = []
    chosen: list[np.ndarray] = []  # the picks' unit vectors
    for i in order:
        if len(picks) == n:
            break
        unit = normalised(vectors[i : i + 1])[0]
        if chosen and min_distance > 0 and (1 - np.stack(chosen) @ unit).min() < min_distance:
            continue
        if spread.allows(i):
            picks.append(int(i))
            chosen.append(unit)
            spread.add(i)
    return picks


def nearest_distance(unit: np.ndarray, sample: int = MAX_CLUSTER_ROWS) -> float:
    """The median cosine distance from an item to its nearest other item (on a sample)."""
    if len(unit) < 2:
        return 0.0
    rows = unit[np.linspace(0, len(unit) - 1, min(sample, len(unit))).astype(int)]
    distances = 1 - rows @ rows.T
    np.fill_diagonal(distances, np.inf)
    return float(np.median(distances.min(1)))


def _reduced(vectors: np.ndarray, rows: np.ndarray, seed: int) -> np.ndarray:
    """The rows as unit vectors on at most PCA_DIMS principal components (fitted on a sample of
    10,000), computed CHUNK rows at a time: no full-size copy of the embeddings is made."""
    if vectors.shape[1] <= PCA_DIMS:
        return normalised(vectors[rows])
    from sklearn.decomposition import PCA

    sample = np.sort(np.random.default_rng(seed).permutation(rows)[:10_000])
    pca = PCA(min(PCA_DIMS, len(sample)), svd_solver="randomized", random_state=seed)
    pca.fit(normalised(vectors[sample]))
    out = np.empty((len(rows), pca.n_components_), np.float32)
    for first in range(0, len(rows), CHUNK):
        out[first : first + CHUNK] = pca.transform(normalised(vectors[rows[first : first + CHUNK]]))
    return normalised(out)


def _finite(vectors: np.ndarray) -> np.ndarray:
    """(N,) True where a row has only finite numbers (checked CHUNK rows at a time)."""
    return np.concatenate([np.isfinite(vectors[first : first + CHUNK]).all(1)
                           for first in range(0, len(vectors), CHUNK)])  # fmt: skip


def _clusters(points: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if k <= 1:
        return np.zeros(len(points), np.int64)
    kind = MiniBatchKMeans if len(points) > 20_000 else KMeans
    return kind(n_clusters=k, n_init=1, random_state=seed).fit_predict(points)


def typicality(points: np.ndarray, knn: int = KNN) -> np.ndarray:
    """1 / the mean Euclidean distance of each point to its ``knn`` nearest other points."""
    if len(points) < 2:
        return np.ones(len(points))
    squared = (points**2).sum(1)
    d2 = squared[:, None] + squared[None, :] - 2 * points @ points.T
    np.fill_diagonal(d2, np.inf)
    k = min(knn, len(points) - 1)
    nearest = np.sqrt(np.clip(np.partition(d2, k - 1, axis=1)[:, :k], 0, None))
    return 1 / (nearest.mean(1) + 1e-12)


def _typical(vectors, done, free, n, spread, seed) -> list[int]:
    usable = np.flatnonzero(free | done)
    points = _reduced(vectors, usable, seed)
    k = int(min(done.sum() + n, MAX_CLUSTERS, len(usable)))
    cluster = _clusters(points, k, seed)
    rng = np.random.default_rng(seed)
    labels_in = np.bincount(cluster[done[usable]], minlength=k)
    sizes = np.bincount(cluster, minlength=k)
    ranked: dict[int, list[int]] = {}  # cluster -> its free items, most typical first
    picks: list[int] = []
    while len(picks) < n:
        open_ = [c for c in range(k) if ranked.get(c, True)]
        if not open_:
            break
        big = [c for c in open_ if sizes[c] >= MIN_CLUSTER] or open_
        c = min(big, key=lambda c: (labels_in[c], -sizes[c], c))
        if c not in ranked:
            ranked[c] = _ranked(points, usable, cluster == c, free, rng)
        while ranked[c] and not spread.allows(ranked[c][0]):
            ranked[c].pop(0)
        labels_in[c] += 1
        if ranked[c]:
            picks.append(ranked[c].pop(0))
            spread.add(picks[-1])
    return picks


def _ranked(points, usable, members, free, rng) -> list[int]:
    """A cluster's free items (indices into the embeddings), most typical first."""
    rows = np.flatnonzero(members)
    if len(rows) > MAX_CLUSTER_ROWS:
        rows = np.sort(rng.choice(rows, MAX_CLUSTER_ROWS, replace=False))
    score = typicality(points[rows])
    order = rows[np.argsort(-score, kind="stable")]
    return [int(usable[r]) for r in order if free[usable[r]]]
