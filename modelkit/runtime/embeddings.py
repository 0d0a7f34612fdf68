"""Pooled embeddings of many images, batched and cached per image: the one embedding path that
Teach and Batch share.

    embeddings(images, model, *, views="none", batch_size=32, image_bytes=None, progress=None,
               use_result_cache=True, model_cache=None, result_cache=None, <the run settings>)
        -> Embeddings: vectors float32 (N, V, D), views, model, adaptations, cache_hits (N,),
           random_weights, timings

An embedding is what the classifier sees: ``forward_head(forward_features(x), pre_logits=True)``
(the pooled features before the last linear layer), so a linear head taught on them runs on any
image exactly as the app runs it. Each image's vectors are cached on disk under a key of its
bytes (or pixels) + model + weights + adaptation + preprocessing + views; a repeated call costs
only the images it has not seen. Views are flips and quarter turns of the preprocessed tensor:
``"flips"`` (identity, horizontal, vertical) or ``"dihedral"`` (the 8 flips and rotations, for
overhead and microscopy images). Random weights (not pretrained, random extra filters) are never
cached: nothing is seeded, so another build gives other vectors.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.errors import ConfigError
from modelkit.runtime.model_cache import ModelCache
from modelkit.runtime.result_cache import ResultCache
from modelkit.runtime.run import (
    Run,
    Timings,
    as_list,
    default_model_cache,
    default_result_cache,
    forward,
    input_hash,
)
from modelkit.runtime.settings import RunSettings, takes_settings

# view name -> the transform of an (N, C, H, W) tensor
VIEW_SETS: dict[str, tuple[str, ...]] = {
    "none": ("identity",),
    "flips": ("identity", "hflip", "vflip"),
    "dihedral": ("identity", "rot90", "rot180", "rot270", "hflip", "vflip", "transpose",
                 "antitranspose"),
}  # fmt: skip
_VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda x: x,
    "hflip": lambda x: x.flip(-1),
    "vflip": lambda x: x.flip(-2),
    "rot90": lambda x: x.rot90(1, (-2, -1)),
    "rot180": lambda x: x.rot90(2, (-2, -1)),
    "rot270": lambda x: x.rot90(3, (-2, -1)),
    "transpose": lambda x: x.transpose(-2, -1),
    "antitranspose": lambda x: x.rot90(2, (-2, -1)).transpose(-2, -1),
}


@dataclass
class Embeddings:
    model: str
    vectors: np.ndarray  # float32 (N, V, D): images x views x features
    views: tuple[str, ...]
    adaptations: list[str]
    cache_hits: np.ndarray  # bool (N,): taken from the result cache
    random_weights: list[str]  # the random parts of the model ([] for real weights)
    timings: Timings = field(default_factory=Timings)
    backend: str = ""  # who served the forward passes ("" when all came from the cache)
    notes: list[str] = field(default_factory=list)


def view_names(views: str) -> tuple[str, ...]:
    if views not in VIEW_SETS:
        raise ConfigError(f"views={views!r} is not one of {', '.join(VIEW_SETS)}.")
    return VIEW_SETS[views]


def pooled(model, x: torch.Tensor, views: Sequence[str], serve=None) -> torch.Tensor:
    """(N, V, D) pooled features of every view of a preprocessed batch, in one forward pass
    (``serve``: what gives the pooled features of a batch; torch's own when None)."""
    if not hasattr(model, "forward_head"):
        raise ConfigError("Embeddings need a classifier model, not a features_only one.")
    if x.shape[-1] != x.shape[-2] and any(v.startswith(("rot", "trans", "anti")) for v in views):
        raise ConfigError(
            f"Rotated views need a square model input, not {x.shape[-2]}x{x.shape[-1]}; "
            "use augment='flips' or 'none'."
        )
    # (V*N, C, H, W), view-major; one view needs no copy
    stacked = x if tuple(views) == ("identity",) else torch.cat([_VIEWS[v](x) for v in views])
    if serve is None:
        feats = model.forward_head(model.forward_features(stacked), pre_logits=True)
    else:
        feats = serve(stacked)
    return feats.reshape(len(views), x.shape[0], -1).transpose(0, 1)


@takes_settings()
def embeddings(
    images,
    settings: RunSettings,
    *,
    views: str = "none",
    batch_size: int = 32,
    image_bytes: Sequence[bytes] | None = None,
    progress: Callable[[int, int], None] | None = None,
    use_result_cache: bool = True,
    model_cache: ModelCache | None = None,
    result_cache: ResultCache | None = None,
) -> Embeddings:
    """Pooled features of every image (and view), computed in batches, cached per image.

    Args:
        images: a list of ImageArrays, (C, H, W) arrays or ready tensors (or one of them).
        views: "none", "flips" or "dihedral" (see VIEW_SETS).
        batch_size: images per forward pass.
        image_bytes: each image's file bytes (hashed for the result cache instead of pixels).
        progress: called with (images done, total) after each batch.
        use_result_cache: keep and reuse vectors on disk (never for random weights).
        model_cache: the built models to use (the process's when None).
        result_cache: the results on disk to use (the process's when None).

    Returns:
        Embeddings: vectors float32 (N, V, D), with the cache hits and the random parts.
    """
    started = time.perf_counter()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a whole number of at least 1.")
    names = view_names(views)
    items, _ = as_list(images)
    if image_bytes is not None and len(image_bytes) != len(items):
        raise ConfigError(f"{len(image_bytes)} byte strings were given for {len(items)} images.")
    key = settings.model_key()
    cache = default_model_cache(model_cache)
    random = settings.random_parts(with_head=False)
    results = default_result_cache(result_cache) if use_result_cache and not random else None
    keys = []  # hashing every image costs time: only when there is a cache to ask
    if results is not None:
        keys = [settings.result_key("embedding", input_hash([item], None if image_bytes is None
                                                            else image_bytes[i]),
                                    views=list(names), num_classes=None)
                for i, item in enumerate(items)]  # fmt: skip
    vectors: list[np.ndarray | None] = [None] * len(items)
    adaptations: list[str] = []
    for i, k in enumerate(keys):
        stored = results.get(k) if results is not None else None
        if stored is not None and "vectors" in stored[1]:
            vectors[i], adaptations = stored[1]["vectors"], stored[0].get("adaptations", [])
    hits = np.array([v is not None for v in vectors], dtype=bool)
    todo = [i for i in range(len(items)) if vectors[i] is None]
    timings, done, backend, notes = Timings(), int(hits.sum()), "", []
    if progress is not None:
        progress(done, len(items))
    for first in range(0, len(todo), batch_size):
        chunk = todo[first : first + batch_size]
        run = Run(settings, key, [items[i] for i in chunk], True, None, time.perf_counter(),
                  timings)  # fmt: skip
        net, out = forward(run, cache, "pooled", lambda m, x, serve: pooled(m, x, names, serve))
        adaptations = list(getattr(net, "adaptations", []))
        backend, notes = run.backend, notes + [n for n in run.notes if n not in notes]
        out = out.float().cpu().numpy()
        for row, i in enumerate(chunk):
            vectors[i] = out[row]
            if results is not None:
                results.set(keys[i], {"adaptations": adaptations}, {"vectors": out[row]})
        done += len(chunk)
        if progress is not None:
            progress(done, len(items))
    timings.total_ms = (time.perf_counter() - started) * 1e3
    return Embeddings(
        model=settings.name, vectors=np.stack(vectors).astype(np.float32, copy=False), views=names,
        adaptations=adaptations, cache_hits=hits, random_weights=random, timings=timings,
        backend=backend, notes=notes,
    )  # fmt: skip
