"""``batch``: embed and classify a ZIP, a folder or a list of files into one table.

    batch(inputs, model, *, what=("predictions", "embeddings"), head=None, batch_size=None,
          top_k=5, out=None, engine="local", workers=None, progress=None,
          use_result_cache=True, model_cache=None, result_cache=None, <settings of predict>)
        -> BatchResult

One row per file: ``file``, ``folder``, ``labels`` and ``probabilities`` (top-k), ``embedding``
(the pooled features the classifier sees), ``error`` (why the file could not be used; the batch
goes on). Predictions are read off the embeddings through the model's classifier, or through a
taught ``head`` (a TrainedHead or its .safetensors file), so each image runs through the network
once. With ``out`` (.parquet, .csv or .npz) the rows are written as they come and a rerun skips
the files already there (see ``table.Output``); ``engine="ray"`` runs the same per-batch work on
a Ray cluster (``ray_engine``). ``progress(done, total)`` is called after each batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from modelkit.batches import table as tables
from modelkit.batches.extract import WHATS, Extractor, check_what
from modelkit.batches.head import load as load_head
from modelkit.batches.inputs import collect
from modelkit.batches.local import run_local
from modelkit.errors import ConfigError
from modelkit.hosting import check_batch_images

ENGINES = ("local", "ray")
DEFAULT_BATCH_SIZE = 32


@dataclass
class BatchResult:
    model: str
    out: Path | None  # the file written (None: the rows are in ``rows``)
    total: int  # images in the input
    already_done: int  # found in the output and skipped
    computed: int  # rows made by this run
    errors: int  # rows of this run with an error
    skipped: list[tuple[str, str]] = field(default_factory=list)  # non-images, with the reason
    random_weights: list[str] = field(default_factory=list)
    rows: pa.Table | None = None

    def table(self) -> pa.Table:
        """All rows: in memory, or read back from a Parquet/CSV output."""
        return self.rows if self.out is None else tables.read(self.out)


def _check_batch_size(batch_size) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a whole number of at least 1.")
    return batch_size


def batch(
    inputs,
    model: str,
    *,
    what: Sequence[str] | str = WHATS,
    head=None,
    batch_size: int | None = None,
    top_k: int = 5,
    out: str | os.PathLike | None = None,
    engine: str = "local",
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    use_result_cache: bool = True,
    model_cache=None,
    result_cache=None,
    **settings,
) -> BatchResult:
    """Rows of predictions and embeddings for every image of ``inputs``; see the module doc."""
    what, size = check_what(what), _check_batch_size(batch_size)
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}: choose {' or '.join(ENGINES)}.")
    output = tables.Output(out, what) if out is not None else None
    if output is not None:
        output.check()  # an output that cannot be written fails before any work
    elif engine == "ray":
        raise ConfigError("The Ray engine writes a file: give out='results.parquet'.")
    head = load_head(head) if head is not None else None
    found = collect(inputs)
    check_batch_images(len(found.items))  # hosting: MODELKIT_MAX_BATCH_IMAGES
    done = output.done() if output is not None else set()
    todo = [item for item in found.items if item.name not in done]
    already = len(found.items) - len(todo)
    counts = {"done": already, "rows": 0, "errors": 0}
    kept: list[pa.Table] = []

    def sink(rows: pa.Table) -> None:
        counts["rows"] += rows.num_rows
        counts["errors"] += rows.num_rows - pc.sum(pc.is_null(rows["error"])).as_py()
        (output.add if output is not None else kept.append)(rows)

    def step(n: int) -> None:
        counts["done"] += n
        if progress is not None:
            progress(counts["done"], len(found.items))

    if progress is not None:
        progress(already, len(found.items))
    options = dict(what=what, head=head, top_k=top_k, use_result_cache=use_result_cache,
                   **settings)  # fmt: skip
    random_weights: list[str] = []
    try:
        if todo and engine == "ray":
            from modelkit.batches.ray_engine import run_ray

            scratch = output.parts if output is not None else Path(".")
            scratch.mkdir(exist_ok=True)
            random_weights = run_ray(model, todo, scratch, options, size, workers, sink, step)
        elif todo:
            extractor = Extractor(model, workers=workers, model_cache=model_cache,
                                  result_cache=result_cache, **options)  # fmt: skip
            model, random_weights = extractor.model, extractor.random_weights
            try:
                run_local(extractor, todo, size, sink, step)
            finally:
                extractor.close()
    finally:
        if output is not None:
            output.finish()  # also when interrupted: a valid file with every row done so far
    rows = None
    if output is None:
        rows = pa.concat_tables(kept) if kept else tables.schema(what).empty_table()
    return BatchResult(
        model=model, out=output.path if output else None, total=len(found.items),
        already_done=already, computed=counts["rows"], errors=counts["errors"],
        skipped=found.skipped, random_weights=random_weights, rows=rows,
    )  # fmt: skip
