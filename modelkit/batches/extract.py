"""The per-batch work that every engine shares: decode and preprocess files (in threads), embed
them (``runtime.embeddings``: batched, cached per file), and read predictions off the embeddings
through the classifier (or a taught head): one forward pass per image, not two.

    Extractor(settings, *, what, head, top_k, workers, use_result_cache, model_cache,
              result_cache)              a RunSettings; a TrainedHead, whose settings win
        .prepare(names, loaders) -> Prepared     decode + preprocess; a bad file is an error row
        .run(prepared) -> pyarrow.Table          one row per file (see table.schema)
        (batch) -> pyarrow.Table                 Ray Data's map_batches: columns "path", "bytes"

The class is what Ray Data runs in each actor (one model per actor), so everything it holds is
made in ``__init__`` from plain arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pyarrow as pa
import torch

from modelkit.batches.table import schema
from modelkit.errors import ConfigError, ModelkitError
from modelkit.images.preprocess import preprocess
from modelkit.images.read import read_image
from modelkit.runtime.embeddings import embeddings
from modelkit.runtime.run import default_model_cache
from modelkit.runtime.settings import RunSettings
from modelkit.teach.head import TrainedHead

WHATS = ("predictions", "embeddings")


def check_what(what) -> tuple[str, ...]:
    what = (what,) if isinstance(what, str) else tuple(what)
    bad = [w for w in what if w not in WHATS]
    if bad or not what:
        raise ConfigError(f"what={what!r}: choose one or both of {', '.join(WHATS)}.")
    return tuple(w for w in WHATS if w in what)


def run_settings(settings: RunSettings, head: TrainedHead | None) -> tuple[RunSettings, list[str]]:
    """The settings a batch runs with: the head's own when there is one (with notes on what it
    overrode), else those given."""
    return head.settings_for(settings) if head is not None else (settings, [])


def random_weights(settings: RunSettings, head: TrainedHead | None, what) -> list[str]:
    """The random parts of the model a batch runs (without building it)."""
    with_head = "predictions" in check_what(what) and head is None
    return run_settings(settings, head)[0].random_parts(with_head=with_head)


@dataclass
class Prepared:
    names: list[str]
    tensors: list[torch.Tensor | None]  # (1, C, H, W) ready for the model, None on error
    blobs: list[bytes | None]  # the file's bytes (the result cache's key)
    errors: list[str | None]


def _folder(name: str) -> str:
    return str(PurePosixPath(name).parent).strip(".")


class Extractor:
    def __init__(
        self,
        settings: RunSettings,
        *,
        what: Sequence[str] = WHATS,
        head: TrainedHead | None = None,
        top_k: int = 5,
        workers: int | None = None,
        use_result_cache: bool = True,
        model_cache=None,
        result_cache=None,
        names: dict[str, str] | None = None,
    ) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k={top_k!r} must be a whole number of at least 1, e.g. 5.")
        self.what, self.head = check_what(what), head
        self.settings, self.notes = run_settings(settings, head)
        self.model, self.top_k, self.names = self.settings.name, top_k, names or {}
        # a head taught on several views (flips, turns) predicts from all of them, as it does alone
        self.views = str(head.setup.get("views") or "none") if head is not None else "none"
        self.cache = default_model_cache(model_cache)
        self.cache_options = dict(use_result_cache=use_result_cache, result_cache=result_cache)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        net = self.net()  # build (or fetch) once: a model that cannot be built stops here
        self.config = self.settings.data_config(net)
        self.random_weights = random_weights(settings, head, self.what)
        if "predictions" in self.what and head is None and net.num_classes == 0:
            raise ConfigError(f"'{self.model}' has no classifier (num_classes=0) to predict "
                              "with; ask for embeddings only, or give a head.")  # fmt: skip
        self.classes = self._classes(net)

    def net(self):
        return self.settings.build(self.cache)[0]

    def _classes(self, net) -> list[str]:
        if self.head is not None:
            return [str(c) for c in self.head.classes]
        cats = getattr(net, "categories", None)
        return list(cats) if cats else [f"class {i}" for i in range(net.num_classes)]

    # --- decoding: threads (file reading, libjpeg/zlib and torch resizing release the GIL) ---
    def _one(self, name: str, load: Callable[[], bytes]):
        try:
            blob = load()
        except OSError as exc:
            return None, None, f"Cannot read the file '{name}': {exc.strerror or exc}."
        try:
            image = read_image(blob, PurePosixPath(name).name)
            x = preprocess(image, self.config, channels=self.settings.channels,
                           scaling=self.settings.scaling)  # fmt: skip
            return x, blob, None
        except ModelkitError as exc:
            return None, None, str(exc)
        except Exception as exc:  # a decoder's own crash is this file's problem, not the batch's
            return None, None, f"Cannot read '{name}' ({type(exc).__name__}: {exc})."

    def prepare(self, names: Sequence[str], loaders: Sequence[Callable[[], bytes]]) -> Prepared:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="modelkit-decode")
        done = list(self._pool.map(self._one, names, loaders))
        return Prepared(list(names), [d[0] for d in done], [d[1] for d in done],
                        [d[2] for d in done])  # fmt: skip

    # --- the model ----------------------------------------------------------------------------
    def _embed(self, tensors: list, blobs: list) -> np.ndarray:
        out = embeddings(tensors, self.settings, batch_size=max(1, len(tensors)),
                         image_bytes=blobs, views=self.views, model_cache=self.cache,
                         **self.cache_options)  # fmt: skip
        return out.vectors  # (N, V, D)

    def _vectors(self, p: Prepared) -> tuple[dict[int, np.ndarray], list[str | None]]:
        """Embeddings of the decoded files; if the batch fails, file by file (error rows)."""
        errors, ok = list(p.errors), [i for i, t in enumerate(p.tensors) if t is not None]
        if not ok:
            return {}, errors
        try:
            vectors = self._embed([p.tensors[i] for i in ok], [p.blobs[i] for i in ok])
            return dict(zip(ok, vectors, strict=True)), errors
        except ModelkitError:
            if len(ok) == 1:
                raise
        found = {}
        for i in ok:
            try:
                found[i] = self._embed([p.tensors[i]], [p.blobs[i]])[0]
            except ModelkitError as exc:
                errors[i] = str(exc)
        return found, errors

    def _predict(self, vectors: np.ndarray) -> tuple[list[list[str]], np.ndarray]:
        """Top-k labels and probabilities from (N, V, D) embeddings: the head's own rule, or the
        model's classifier on the first view."""
        if self.head is not None:
            probs = torch.from_numpy(self.head.probabilities(vectors)[1])
        else:
            layer = self.net().get_classifier()
            param = next(iter(layer.parameters()), None)
            x = torch.from_numpy(vectors[:, 0])
            if param is not None:
                x = x.to(device=param.device, dtype=param.dtype)
            with torch.inference_mode():
                probs = torch.softmax(layer(x).double(), dim=-1).cpu()
        values, indices = probs.topk(min(self.top_k, probs.shape[-1]), dim=-1)
        return [[self.classes[int(i)] for i in row] for row in indices], values.float().numpy()

    def run(self, p: Prepared) -> pa.Table:
        found, errors = self._vectors(p)
        n, ok = len(p.names), sorted(found)
        columns: dict[str, list] = {"file": p.names, "folder": [_folder(x) for x in p.names]}
        stacked = np.stack([found[i] for i in ok]) if ok else np.zeros((0, 0), np.float32)
        if "predictions" in self.what:
            labels, probs = self._predict(stacked) if ok else ([], [])
            where = {i: r for r, i in enumerate(ok)}
            columns["labels"] = [labels[where[i]] if i in where else None for i in range(n)]
            columns["probabilities"] = [probs[where[i]] if i in where else None for i in range(n)]
        if "embeddings" in self.what:
            # the embedding of the image as it is (the first view)
            columns["embedding"] = [found[i][0] if i in found else None for i in range(n)]
        columns["error"] = errors
        return pa.Table.from_pydict(columns, schema=schema(self.what))

    def __call__(self, batch) -> pa.Table:
        """Ray Data: a batch of binary files (columns "path" and "bytes") -> rows."""
        table = batch if isinstance(batch, pa.Table) else pa.table(batch)
        paths = [str(p) for p in table.column("path").to_pylist()]
        blobs = table.column("bytes").to_pylist()
        names = [self.names.get(p, p) for p in paths]
        return self.run(self.prepare(names, [(lambda b=b: b) for b in blobs]))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
