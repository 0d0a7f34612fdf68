"""Look-alikes: the items whose embeddings are nearest a query's, by exact search with numpy.

    nearest(vectors, query, k, *, skip=None, chunk_rows=CHUNK_ROWS) -> (indices, distances)
    nearest_in_blocks(blocks, query, k, *, skip=None) -> (indices, distances)

The distance is the cosine distance, 1 - cos(angle), in [0, 2]: embeddings are compared by
direction (the pooled features' scale follows the image's contrast more than its content), and
it is the Euclidean distance on L2-normalised vectors up to a monotone map (d_euclid^2 = 2 d).
The vectors are read CHUNK_ROWS rows at a time (any float dtype, float16 scene embeddings
included); each block's norms and its product with the queries are computed (no normalised copy
is written) and only the best k per query kept: memory stays at one block (8,192 x 1,280 float32
= 42 MB, for a float16 input its float32 copy) plus the queries, whatever N is. Rows that are not
finite or are all zero, and rows in ``skip``, are never returned.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from modelkit.errors import ConfigError

CHUNK_ROWS = 8192


def _unit_queries(query) -> tuple[np.ndarray, bool]:
    q = np.asarray(query, dtype=np.float32)
    single = q.ndim == 1
    q = np.atleast_2d(q)
    norms = np.linalg.norm(q, axis=1, keepdims=True)
    if q.ndim != 2 or not np.isfinite(q).all() or (norms == 0).any():
        raise ConfigError("The query embedding must be a vector of finite numbers, not all zero.")
    return q / norms, single


def nearest_in_blocks(
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    query,
    k: int,
    *,
    skip: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows over ``blocks`` of (row indices, (rows, D) vectors).

    Args:
        blocks: pairs of the rows' indices and their vectors, in any order and size.
        query: (D,) one query, or (Q, D) several.
        k: how many to return per query.
        skip: a boolean mask over the row indices (True: never return that row).

    Returns:
        (indices, distances): (k,) each for one query, (Q, k) for several; nearest first, fewer
        than k where fewer rows can be returned. Distances are cosine distances.
    """
    queries, single = _unit_queries(query)
    k = int(k)
    if k < 1:
        raise ConfigError(f"k={k} must be at least 1.")
    best_i = np.zeros((len(queries), 0), np.int64)
    best_s = np.zeros((len(queries), 0), np.float32)
    found = 0  # rows that can be returned
    for rows, vectors in blocks:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[1] != queries.shape[1]:
            raise ConfigError(
                f"The query has {queries.shape[1]} features, the embeddings "
                f"{vectors.shape[1]}: use an embedding of the same model."
            )
        # the norms and one product: no normalised copy of the block is written
        with np.errstate(invalid="ignore", over="ignore"):
            norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
            usable = np.isfinite(norms) & (norms > 0)
            if skip is not None:
                usable &= ~skip[rows]
            scores = (queries @ vectors.T) / np.where(usable, norms, 1)
        scores[:, ~usable] = -np.inf
        found += int(usable.sum())
        best_i = np.concatenate([best_i, np.broadcast_to(rows, scores.shape)], 1)
        best_s = np.concatenate([best_s, scores], 1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_i = np.take_along_axis(best_i, keep, 1)
            best_s = np.take_along_axis(best_s, keep, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")[:, : min(k, found)]
    indices = np.take_along_axis(best_i, order, 1)
    distances = np.clip(1 - np.take_along_axis(best_s, order, 1), 0, 2)
    return (indices[0], distances[0]) if single else (indices, distances)


def nearest(
    vectors: np.ndarray,
    query,
    k: int,
    *,
    skip: np.ndarray | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``vectors`` (N, D) nearest the query, by cosine distance.

    Args:
        vectors: (N, D) embeddings (any float dtype; read ``chunk_rows`` rows at a time).
        query: (D,) one query vector, or (Q, D) several.
        k: how many to return per query.
        skip: (N,) boolean mask of rows never to return (the query's own row, no-data cells).
        chunk_rows: rows compared at once (memory: chunk_rows x D float32).

    Returns:
        (indices, distances): nearest first; (k,) each for one query, (Q, k) for several.
    """
    if np.ndim(vectors) != 2:
        raise ConfigError(f"Give the embeddings as an (items, features) array, not "
                          f"{np.shape(vectors)}.")  # fmt: skip
    count = len(vectors)
    if skip is not None:
        skip = np.asarray(skip, bool)
        if skip.shape != (count,):
            raise ConfigError(f"skip: a mask of {skip.shape} for {count} items.")
    blocks = ((np.arange(s, min(s + chunk_rows, count)), vectors[s : s + chunk_rows])
              for s in range(0, count, chunk_rows))  # fmt: skip
    return nearest_in_blocks(blocks, query, k, skip=skip)
