"""``batch``: embed and classify a ZIP, a folder or a list of files into one table.

    batch(inputs, model=None, *, what=("predictions", "embeddings"), head=None, batch_size=None,
          top_k=5, out=None, engine="local", workers=None, progress=None,
          use_result_cache=True, model_cache=None, result_cache=None, <the run settings>)
        -> BatchResult

One row per file: ``file``, ``folder``, ``labels`` and ``probabilities`` (top-k), ``embedding``
(the pooled features the classifier sees), ``error`` (why the file could not be used; the batch
goes on). Predictions are read off the embeddings through the model's classifier, or through a
taught ``head`` (a TrainedHead or its .safetensors file, read once), so each image runs through
the network once; the head's settings decide the model and its input (``notes`` name what they
overrode). With ``out`` (.parquet, .csv or .npz) the rows are written as they come and a rerun skips
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
from modelkit.batches.extract import WHATS, Extractor, check_what, random_weights
from modelkit.batches.inputs import collect
from modelkit.batches.local import run_local
from modelkit.errors import ConfigError
from modelkit.hosting import check_batch_images
from modelkit.runtime.settings import RunSettings, takes_settings
from modelkit.teach.head import as_head

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
    notes: list[str] = field(default_factory=list)  # e.g. settings a head overrode

    def table(self) -> pa.Table:
        """All rows: in memory, or read back from a Parquet/CSV output."""
        return self.rows if self.out is None else tables.read(self.out)


def _check_batch_size(batch_size) -> int:
    if batch_size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a whole number of at least 1.")
    return batch_size


@takes_settings()
def batch(
    inputs,
    settings: RunSettings | None = None,
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
) -> BatchResult:
    """Rows of predictions and embeddings for every image of ``inputs``; see the module doc.

    Args:
        inputs: a folder, a .zip, a list of files, or (name, bytes) pairs.
        what: "predictions", "embeddings" or both.
        head: a TrainedHead or its .safetensors file: its classes, on its own model (the
            model may then be left out).
        batch_size: images per forward pass (32).
        top_k: labels per row.
        out: a .parquet, .csv or .npz file, written as rows come; a rerun skips what is there.
        engine: "local" or "ray".
        workers: decoding threads (local) or model actors (ray).
        progress: called with (images done, total) after each batch.
        use_result_cache: keep and reuse embeddings on disk (never for random weights).
        model_cache: the built models to use (the process's when None).
        result_cache: the results on disk to use (the process's when None).

    Returns:
        BatchResult: counts, the output file or the rows, the random parts and notes.
    """
    what, size = check_what(what), _check_batch_size(batch_size)
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}: choose {' or '.join(ENGINES)}.")
    output = tables.Output(out, what) if out is not None else None
    if output is not None:
        output.check()  # an output that cannot be written fails before any work
    elif engine == "ray":
        raise ConfigError("The Ray engine writes a file: give out='results.parquet'.")
    head = as_head(head) if head is not None else None
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
    options = dict(what=what, head=head, top_k=top_k, use_result_cache=use_result_cache)
    notes = head.settings_for(settings)[1] if head is not None else []
    try:
        if todo and engine == "ray":
            from modelkit.batches.ray_engine import run_ray

            scratch = output.parts if output is not None else Path(".")
            scratch.mkdir(exist_ok=True)
            run_ray(settings, todo, scratch, options, size, workers, sink, step)
        elif todo:
            extractor = Extractor(settings, workers=workers, model_cache=model_cache,
                                  result_cache=result_cache, **options)  # fmt: skip
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
    ran = head.settings_for(settings)[0] if head is not None else settings
    return BatchResult(
        model=ran.name, out=output.path if output else None, total=len(found.items),
        already_done=already, computed=counts["rows"], errors=counts["errors"],
        skipped=found.skipped, random_weights=random_weights(settings, head, what), rows=rows,
        notes=notes,
    )  # fmt: skip
