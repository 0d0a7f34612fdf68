"""``similar``: the look-alikes of an image in a Batch table (or of a row of any embeddings).

    similar(query, table_or_embeddings, k=10) -> [{"index", "name", "distance"}]
    table_embeddings(table) -> (rows, (M, D) float32)    the rows that have an embedding

``table_or_embeddings``: a Batch table (pyarrow, its ``embedding`` column; rows with an error
have none and are skipped), a BatchResult, a Parquet file written by ``batch``, or an (N, D)
array. ``query``: a row index, a file name of the table (its ``file`` column), or an embedding
(D,). The query's own row is never among its look-alikes. Distances are cosine distances
(``teach.neighbours``), exact, read a block of rows at a time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from modelkit.errors import ConfigError
from modelkit.teach.neighbours import CHUNK_ROWS, nearest, nearest_in_blocks


def _table(source) -> pa.Table | None:
    if isinstance(source, str | os.PathLike):
        from modelkit.batches.table import read

        if Path(source).suffix.lower() != ".parquet":
            raise ConfigError(
                f"'{Path(source).name}' holds no embeddings: give the Parquet file a batch wrote "
                "(with embeddings), its table, or an array."
            )
        return read(source)
    if hasattr(source, "table") and callable(source.table):  # a BatchResult
        return source.table()
    return source if isinstance(source, pa.Table) else None


def _blocks(column: pa.ChunkedArray):
    """(row indices, (rows, D) float32) for every row that has an embedding."""
    start = 0
    for chunk in column.chunks:
        for first in range(0, len(chunk), CHUNK_ROWS):
            part = chunk.slice(first, CHUNK_ROWS)
            has = ~part.is_null().to_numpy(zero_copy_only=False)
            if has.any():  # flatten skips null rows (no copy of the values when none is null)
                flat = part.flatten().to_numpy(zero_copy_only=False)
                if len(flat) % int(has.sum()):
                    raise ConfigError("The table's embeddings differ in length: they come from "
                                      "different models. Compare rows of one batch.")  # fmt: skip
                yield start + first + np.flatnonzero(has), flat.reshape(int(has.sum()), -1)
        start += len(chunk)


def table_embeddings(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a Batch table that have an embedding, and those embeddings (M, D)."""
    if "embedding" not in table.column_names:
        raise ConfigError("This table has no embeddings: run the batch with embeddings "
                          "(what= includes 'embeddings').")  # fmt: skip
    parts = list(_blocks(table.column("embedding")))
    if not parts:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.concatenate([r for r, _ in parts]), np.concatenate([v for _, v in parts])


def _query_row(query, table: pa.Table, count: int) -> int | None:
    if isinstance(query, str):
        files = table.column("file").to_pylist() if "file" in table.column_names else []
        if query not in files:
            raise ConfigError(f"No file '{query}' in the table; give a file name of its 'file' "
                              "column, a row number or an embedding.")  # fmt: skip
        return files.index(query)
    if isinstance(query, int | np.integer) and not isinstance(query, bool):
        if not -count <= int(query) < count:
            raise ConfigError(f"Row {int(query)} is not in the table ({count} rows).")
        return int(query) % count
    return None


def similar(query, table_or_embeddings, k: int = 10) -> list[dict]:
    """The ``k`` items whose embeddings are nearest the query's, nearest first.

    Args:
        query: a row index, a file name of a Batch table, or an embedding vector (D,).
        table_or_embeddings: a Batch table or BatchResult (rows with an error are skipped), a
            Parquet file written by ``batch``, or an (N, D) array of embeddings.
        k: how many look-alikes.

    Returns:
        [{"index": row, "name": file (None for an array), "distance": cosine distance}].
    """
    table = _table(table_or_embeddings)
    if table is None:
        vectors = np.asarray(table_or_embeddings)
        row = _query_row(query, pa.table({"file": pa.array([], pa.string())}), len(vectors))
        skip = None
        if row is not None:
            query, skip = vectors[row], np.zeros(len(vectors), bool)
            skip[row] = True
        indices, distances = nearest(vectors, query, k, skip=skip)
        return [{"index": int(i), "name": None, "distance": float(d)}
                for i, d in zip(indices, distances, strict=True)]  # fmt: skip
    if "embedding" not in table.column_names:
        table_embeddings(table)  # says what is missing
    column = table.column("embedding")
    row = _query_row(query, table, table.num_rows)
    skip = np.zeros(table.num_rows, bool)
    if row is not None:
        value = column[row].as_py()
        if value is None:
            name = table.column("file")[row].as_py() if "file" in table.column_names else row
            raise ConfigError(f"'{name}' could not be used in the batch, so it has no "
                              "embedding to compare; pick another image.")  # fmt: skip
        query, skip[row] = np.asarray(value, np.float32), True
    indices, distances = nearest_in_blocks(_blocks(column), query, k, skip=skip)
    files = table.column("file") if "file" in table.column_names else None
    return [{"index": int(i), "name": None if files is None else files[int(i)].as_py(),
             "distance": float(d)} for i, d in zip(indices, distances, strict=True)]  # fmt: skip
