"""A batch's output: one row per file, written as Parquet, CSV (predictions only) or NPZ, and
resumable.

    schema(what) -> pyarrow.Schema      file, folder, labels, probabilities, embedding, error
    Output(path, what): .check() (before any work), .done() (files already written),
                        .add(table) (one part, written atomically), .finish() (merge)

While a run goes, each batch's rows land in ``OUT.parts/part-NNNNNN.parquet`` (each part written
to a temporary name, then renamed: a part is whole or absent). ``finish`` (also run when the batch
is interrupted) merges the previous output and the parts into a temporary file, renames it over
``OUT`` and removes the parts: an interrupted run leaves a valid ``OUT`` with every row done so
far, and a killed one leaves its parts for the next run to merge. Parquet is merged batch by batch,
so memory does not grow with the number of rows; CSV streams too; NPZ (one array per column) is
built in memory.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from modelkit.errors import ConfigError

FORMATS = {".parquet": "parquet", ".csv": "csv", ".npz": "npz"}
CSV_COLUMNS = ("file", "folder", "labels", "probabilities", "error")
_MERGE_ROWS = 1024  # rows per Parquet row group when merging


def schema(what: Sequence[str]) -> pa.Schema:
    fields = [pa.field("file", pa.string()), pa.field("folder", pa.string())]
    if "predictions" in what:
        fields += [pa.field("labels", pa.list_(pa.string())),
                   pa.field("probabilities", pa.list_(pa.float32()))]  # fmt: skip
    if "embeddings" in what:
        fields.append(pa.field("embedding", pa.list_(pa.float32())))
    fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def _atomic_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _csv_row(row: dict) -> list:
    probs = row.get("probabilities")
    return [
        row["file"], row["folder"],
        "" if row.get("labels") is None else json.dumps(row["labels"]),
        "" if probs is None else json.dumps([round(float(p), 6) for p in probs]),
        row.get("error") or "",
    ]  # fmt: skip


class Output:
    def __init__(self, path: str | os.PathLike, what: Sequence[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"The output '{self.path}' is a folder; give a file name such as "
                              f"{self.path / 'results.parquet'}.")  # fmt: skip
        self.format = FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise ConfigError(f"Cannot write '{self.path.name}': the output must end with "
                              f"{', '.join(FORMATS)}.")  # fmt: skip
        if self.format == "csv" and "predictions" not in what:
            raise ConfigError("A CSV output holds predictions; ask for predictions, or write "
                              ".parquet or .npz for embeddings.")  # fmt: skip
        self.what = tuple(what)
        self.schema = schema(self.what)
        self.parts = self.path.with_name(self.path.name + ".parts")
        self._count = 0

    # --- before any work ------------------------------------------------------------------------
    def check(self) -> None:
        """Refuse an output that cannot be written (or holds other columns) before any work."""
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise ConfigError(f"Cannot write '{self.path}': the folder '{folder}' does not "
                              "exist. Create it first or choose another --out.")  # fmt: skip
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{self.path.name}."):
                pass
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise PermissionError(self.path)
        except OSError as exc:
            raise ConfigError(f"Cannot write '{self.path}' ({type(exc).__name__}): choose a "
                              "folder you may write to.") from None  # fmt: skip
        if self.path.exists() and self.format == "parquet":
            self._check_schema(self.path)
        for part in self._part_files():
            self._check_schema(part)

    def _check_schema(self, path: Path) -> None:
        try:
            found = pq.read_schema(path)
        except (OSError, pa.ArrowException) as exc:
            raise ConfigError(f"'{path}' exists but is not a readable Parquet file ({exc}); move "
                              "it away or choose another --out.") from None  # fmt: skip
        if found.names != self.schema.names:
            raise ConfigError(f"'{path}' holds the columns {', '.join(found.names)}, but this run "
                              f"writes {', '.join(self.schema.names)}; ask for the same outputs "
                              "(what=) or choose another --out.")  # fmt: skip

    # --- resuming -------------------------------------------------------------------------------
    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []

    def done(self) -> set[str]:
        """The files already in the output or in parts left by an interrupted run."""
        names: set[str] = set()
        try:
            if self.path.exists():
                names |= set(self._output_files())
            for part in self._part_files():
                names |= set(pq.read_table(part, columns=["file"]).column("file").to_pylist())
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            raise ConfigError(f"Cannot read the existing output '{self.path}' to resume ({exc}); "
                              "move it away or choose another --out.") from None  # fmt: skip
        return names

    def _output_files(self) -> list[str]:
        if self.format == "parquet":
            return pq.read_table(self.path, columns=["file"]).column("file").to_pylist()
        if self.format == "csv":
            with self.path.open(newline="", encoding="utf-8") as f:
                return [row["file"] for row in csv.DictReader(f)]
        with np.load(self.path, allow_pickle=False) as data:
            return [str(x) for x in data["file"]]

    # --- writing --------------------------------------------------------------------------------
    def add(self, table: pa.Table) -> None:
        """One batch's rows as a part of their own (whole or absent)."""
        if table.num_rows == 0:
            return
        self.parts.mkdir(exist_ok=True)
        if not self._count:
            self._count = len(self._part_files())
        target = self.parts / f"part-{self._count:06d}.parquet"
        tmp = _atomic_path(target)
        pq.write_table(table.cast(self.schema), tmp)
        os.replace(tmp, target)
        self._count += 1

    def _new_batches(self) -> Iterator[pa.RecordBatch]:
        for part in self._part_files():
            yield from pq.read_table(part).cast(self.schema).to_batches()

    def finish(self) -> None:
        """Merge the previous output and the parts into ``path`` (atomically); drop the parts."""
        if not self._part_files() and self.path.exists():
            return
        tmp = _atomic_path(self.path)
        try:
            {"parquet": self._merge_parquet, "csv": self._merge_csv,
             "npz": self._merge_npz}[self.format](tmp)  # fmt: skip
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        shutil.rmtree(self.parts, ignore_errors=True)

    def _merge_parquet(self, tmp: Path) -> None:
        def old() -> Iterator[pa.RecordBatch]:
            if self.path.exists():
                for b in pq.ParquetFile(self.path).iter_batches(batch_size=_MERGE_ROWS):
                    yield pa.Table.from_batches([b]).cast(self.schema).to_batches()[0]

        pending: list[pa.RecordBatch] = []
        rows = written = 0
        with pq.ParquetWriter(tmp, self.schema) as writer:
            for b in itertools.chain(old(), self._new_batches()):
                pending.append(b)
                rows += b.num_rows
                if rows >= _MERGE_ROWS:
                    writer.write_table(pa.Table.from_batches(pending, self.schema))
                    pending, written, rows = [], written + rows, 0
            if pending or not written:  # the rest, or an empty file that still has the columns
                writer.write_table(pa.Table.from_batches(pending, self.schema))

    def _merge_csv(self, tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            if self.path.exists():
                with self.path.open(newline="", encoding="utf-8") as old:
                    for row in csv.DictReader(old):
                        writer.writerow([row.get(c, "") for c in CSV_COLUMNS])
            for b in self._new_batches():
                writer.writerows(_csv_row(row) for row in b.to_pylist())

    def _merge_npz(self, tmp: Path) -> None:
        tables = [pa.Table.from_batches([b], self.schema) for b in self._new_batches()]
        new = pa.concat_tables(tables) if tables else self.schema.empty_table()
        arrays = npz_arrays(new, self.what)
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                old = {k: data[k] for k in data.files}
            arrays = {k: _concat(old[k], arrays[k]) for k in arrays}
        # np.savez's own first parameter is called "file": write the members directly
        with zipfile.ZipFile(tmp, "w") as zf:
            for key, array in arrays.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, array, allow_pickle=False)


def _concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.ndim == 2 and b.ndim == 2 and (a.shape[0] == 0 or b.shape[0] == 0):
        return a if b.shape[0] == 0 else b
    return np.concatenate([a, b])


def npz_arrays(table: pa.Table, what: Sequence[str]) -> dict[str, np.ndarray]:
    """Columns as arrays: file/folder/error as text ("" = no error), labels (N, k) text,
    probabilities (N, k) float32 and embedding (N, D) float32, NaN/"" on error rows."""
    rows = table.to_pylist()
    out = {
        "file": np.array([r["file"] for r in rows], dtype=str),
        "folder": np.array([r["folder"] for r in rows], dtype=str),
        "error": np.array([r["error"] or "" for r in rows], dtype=str),
    }
    for column, kind in (("labels", str), ("probabilities", np.float32),
                         ("embedding", np.float32)):  # fmt: skip
        if column not in table.column_names:
            continue
        width = max((len(r[column]) for r in rows if r[column] is not None), default=0)
        blank = "" if kind is str else np.nan
        out[column] = np.array(
            [r[column] if r[column] is not None else [blank] * width for r in rows], dtype=kind
        ).reshape(len(rows), width)
    return out


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def csv_text(table: pa.Table) -> str:
    """The CSV form of the rows (predictions; lists as JSON), as ``Output`` writes it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_row(row) for row in table.to_pylist())
    return buffer.getvalue()


def read(path: str | os.PathLike) -> pa.Table:
    """A Parquet or CSV output as a table (NPZ: use numpy.load)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        import pyarrow.csv as pacsv

        strings = {c: pa.string() for c in CSV_COLUMNS}
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=strings))
    return pq.read_table(path)
