"""Look-alikes, with known answers: on a clearly clustered set an item's look-alikes are of its
own class; a Batch table's error rows are skipped; blocks of any size give the same answer as
one product; the query is a row, a file name or a vector; mistakes are said in words."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from label_data import clustered

import modelkit
from modelkit.batches import table as tables
from modelkit.batches.similar import similar
from modelkit.errors import ConfigError
from modelkit.teach.neighbours import nearest


def _batch_table(x: np.ndarray, broken=()) -> pa.Table:
    rows = [{"file": f"tiles/tile_{i}.tif", "folder": "tiles",
             "embedding": None if i in broken else x[i].tolist(),
             "error": "cannot read it" if i in broken else None}
            for i in range(len(x))]  # fmt: skip
    return pa.Table.from_pylist(rows, schema=tables.schema(("embeddings",)))


def test_look_alikes_of_an_item_are_its_own_class():
    x, y = clustered(0)
    for query in np.random.default_rng(0).choice(len(x), 20, replace=False):
        found = similar(int(query), x, k=3)  # the smallest region holds 4
        assert [r["index"] for r in found if r["index"] == query] == []  # never itself
        assert all(y[r["index"]] == y[query] for r in found)
        assert [r["distance"] for r in found] == sorted(r["distance"] for r in found)


def test_blocks_of_any_size_give_the_exact_answer():
    x = np.random.default_rng(1).normal(size=(1000, 24)).astype(np.float32)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[:7]
    expected = np.argsort(-(queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T,
                          axis=1)[:, :10]  # fmt: skip
    for rows in (7, 64, 5000):
        indices, distances = nearest(x, queries, 10, chunk_rows=rows)
        assert (indices == expected).all()
        assert np.allclose(distances[:, 0], 0, atol=1e-5)  # each query is its own row
    half, _ = nearest(x.astype(np.float16), x[0], 10)  # scene embeddings are float16
    assert len(set(half) & set(expected[0])) >= 9


def test_a_batch_table_skips_its_error_rows_and_takes_a_file_name(tmp_path):
    x, y = clustered(3)
    x, n = np.concatenate([x, x[[0, 0, 0]]]), len(x)  # three copies of row 0 that failed:
    table = _batch_table(x, broken={n, n + 1, n + 2})  # the nearest, were they not skipped
    table = pa.concat_tables([table.slice(0, 500), table.slice(500)])  # two chunks
    by_name = modelkit.similar("tiles/tile_0.tif", table, k=8)
    assert not {n, n + 1, n + 2} & {r["index"] for r in by_name}
    assert by_name == similar(0, table, k=8)
    assert by_name[0]["name"] == f"tiles/tile_{by_name[0]['index']}.tif"
    assert all(y[r["index"]] == y[0] for r in by_name[:3])
    by_vector = similar(x[0], table, k=9)  # a vector: the row itself is the nearest
    assert by_vector[0]["index"] == 0 and by_vector[1:] == by_name
    path = tmp_path / "batch.parquet"
    path.write_bytes(tables.parquet_bytes(table))
    assert similar(0, path, k=8) == by_name


def test_what_cannot_be_compared_is_said_in_words():
    x, _ = clustered(0)
    table = _batch_table(x[:50], broken={4})
    with pytest.raises(ConfigError, match="'tiles/tile_4.tif' could not be used"):
        similar(4, table, k=3)
    with pytest.raises(ConfigError, match="No file 'nope.png' in the table"):
        similar("nope.png", table, k=3)
    with pytest.raises(ConfigError, match="Row 99 is not in the table"):
        similar(99, table, k=3)
    with pytest.raises(ConfigError, match="the embeddings 32: use an embedding of the same"):
        similar(np.ones(5), table, k=3)
    with pytest.raises(ConfigError, match="not all zero"):
        similar(np.zeros(32), x, k=3)
    with pytest.raises(ConfigError, match="no embeddings"):
        similar(0, table.drop_columns(["embedding"]), k=3)


def test_no_data_cells_are_skipped_and_fewer_rows_come_back_when_fewer_exist():
    x = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    x[2] = 0  # a cell without data
    skip = np.zeros(6, bool)
    skip[0] = True
    indices, distances = nearest(x, x[0], 10, skip=skip)
    assert sorted(indices.tolist()) == [1, 3, 4, 5] and len(distances) == 4
