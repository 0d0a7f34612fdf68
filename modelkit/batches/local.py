"""The local engine: the next batch is read and decoded in threads while the model runs on this
one, so reading overlaps compute; one batch ahead at most, so memory does not grow with the
number of files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from modelkit.batches.extract import Extractor
from modelkit.batches.inputs import Item


def run_local(
    extractor: Extractor,
    items: Sequence[Item],
    batch_size: int,
    sink: Callable[[pa.Table], None],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Every item through the extractor, ``batch_size`` at a time; each batch's rows to ``sink``."""
    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if not chunks:
        return

    def prepare(chunk: Sequence[Item]):
        return extractor.prepare([it.name for it in chunk], [it.load for it in chunk])

    with ThreadPoolExecutor(1, thread_name_prefix="modelkit-ahead") as ahead:
        pending = ahead.submit(prepare, chunks[0])
        for i in range(len(chunks)):
            prepared = pending.result()
            if i + 1 < len(chunks):
                pending = ahead.submit(prepare, chunks[i + 1])
            sink(extractor.run(prepared))
            if progress is not None:
                progress(len(chunks[i]))
