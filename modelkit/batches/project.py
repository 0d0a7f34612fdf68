"""Embeddings on a plane, for a map of which files look alike: PCA (scikit-learn)."""

from __future__ import annotations

import numpy as np


def project(vectors: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """(N, 2) coordinates of (N, D) vectors on their first two principal components, and the
    share of the variance each explains. Fewer than 3 vectors (or no spread): what exists."""
    vectors = np.asarray(vectors, dtype=np.float64)
    out = np.zeros((len(vectors), 2))
    if len(vectors) < 2 or not np.ptp(vectors, axis=0).any():
        return out, (0.0, 0.0)
    from sklearn.decomposition import PCA

    parts = min(2, len(vectors) - 1, vectors.shape[1])
    pca = PCA(n_components=parts, random_state=0)
    out[:, :parts] = pca.fit_transform(vectors)
    ratios = [float(r) for r in pca.explained_variance_ratio_] + [0.0] * (2 - parts)
    return out, (ratios[0], ratios[1])
