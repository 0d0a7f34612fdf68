"""The per-batch work that every engine shares: decode and preprocess files (in threads), embed
them (``runtime.embeddings``: batched, cached per file), and read predictions off the embeddings
through the classifier (or a taught head): one forward pass per image, not two.

    Extractor(model, *, what, head, top_k, workers, use_result_cache, model_cache, result_cache,
              **settings)
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

from modelkit.batches import head as heads
from modelkit.batches.table import schema
from modelkit.errors import ConfigError, ModelkitError
from modelkit.images.preprocess import preprocess
from modelkit.images.read import read_image
from modelkit.models.factory import random_parts
from modelkit.runtime.embeddings import embeddings
from modelkit.runtime.run import common, default_model_cache, failure, model_key_for

WHATS = ("predictions", "embeddings")


def check_what(what) -> tuple[str, ...]:
    what = (what,) if isinstance(what, str) else tuple(what)
    bad = [w for w in what if w not in WHATS]
    if bad or not what:
        raise ConfigError(f"what={what!r}: choose one or both of {', '.join(WHATS)}.")
    return tuple(w for w in WHATS if w in what)


def random_weights(model: str, options: dict) -> list[str]:
    """The random parts of the model a batch with these options runs (see factory.random_parts),
    without building it."""
    settings = {k: v for k, v in options.items() if k not in ("what", "head", "top_k",
                                                                "use_result_cache")}  # fmt: skip
    head = heads.load(options["head"]) if options.get("head") is not None else None
    if head is not None:
        model, settings = heads.merge(head, model, settings)
    key = model_key_for(model, common(**settings))
    with_head = "predictions" in check_what(options.get("what", WHATS)) and head is None
    return random_parts(model, key.pretrained, key.num_classes, key.in_chans,
                        key.in_chans_init, with_head=with_head)  # fmt: skip


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
        model: str,
        *,
        what: Sequence[str] = WHATS,
        head=None,
        top_k: int = 5,
        workers: int | None = None,
        use_result_cache: bool = True,
        model_cache=None,
        result_cache=None,
        names: dict[str, str] | None = None,
        **settings,
    ) -> None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ConfigError(f"top_k={top_k!r} must be a whole number of at least 1, e.g. 5.")
        self.what = check_what(what)
        self.head = heads.load(head) if head is not None else None
        if self.head is not None:
            model, settings = heads.merge(self.head, model, settings)
        self.model, self.top_k, self.names = model, top_k, names or {}
        # a head taught on several views (flips, turns) predicts from all of them, as it does alone
        self.views = str(getattr(self.head, "setup", {}).get("views") or "none")
        self.kw = common(**settings)
        self.key = model_key_for(model, self.kw)
        self.cache = default_model_cache(model_cache)
        self.cache_options = dict(use_result_cache=use_result_cache, result_cache=result_cache)
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        net = self.net()  # build (or fetch) once: a model that cannot be built stops here
        self.config = net.data_config
        self.random_weights = random_weights(model, {"what": self.what, "head": self.head,
                                                     **settings})  # fmt: skip
        if "predictions" in self.what and self.head is None and net.num_classes == 0:
            raise ConfigError(f"'{model}' has no classifier (num_classes=0) to predict with; "
                              "ask for embeddings only, or give a head.")  # fmt: skip
        self.classes = self._classes(net)

    def net(self):
        try:
            return self.cache.get(self.key)[0]
        except ModelkitError:
            raise
        except Exception as error:
            raise failure(self.key, error, "build") from error

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
            x = preprocess(image, self.config, channels=self.kw["channels"],
                           scaling=self.kw["scaling"])  # fmt: skip
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
        out = embeddings(tensors, self.model, batch_size=max(1, len(tensors)), image_bytes=blobs,
                         views=self.views, model_cache=self.cache, **self.cache_options,
                         **self.kw)  # fmt: skip
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
        """Top-k labels and probabilities from (N, V, D) embeddings."""
        if hasattr(self.head, "probabilities"):  # a TrainedHead: views averaged as it does alone
            probs = torch.from_numpy(self.head.probabilities(vectors)[1])
            values, indices = probs.topk(min(self.top_k, probs.shape[-1]), dim=-1)
            return [[self.classes[int(i)] for i in row] for row in indices], values.float().numpy()
        vectors = vectors[:, 0]
        layer = self.head.linear if self.head is not None else self.net().get_classifier()
        param = next(iter(layer.parameters()), None)
        x = torch.from_numpy(vectors)
        if param is not None:
            x = x.to(device=param.device, dtype=param.dtype)
        with torch.inference_mode():
            probs = torch.softmax(layer(x).double(), dim=-1)
        values, indices = probs.topk(min(self.top_k, probs.shape[-1]), dim=-1)
        labels = [[self.classes[int(i)] for i in row] for row in indices.cpu()]
        return labels, values.float().cpu().numpy()

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
