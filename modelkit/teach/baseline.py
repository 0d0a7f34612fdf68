"""The honest baseline beside a deep model taught on multi-band examples: the same examples,
the same folds, with the spectral model ``"bands"`` (per-band statistics, no network). On
multispectral data this is the first thing a remote-sensing person tries, and it often wins
(a real Sentinel-2 scene: 0.97 against an ImageNet CNN's 0.78); a head must say so.

    bands_baseline(items, y, *, folds, groups, seed, solver, model_cache=None) -> dict | None
"""

from __future__ import annotations

import numpy as np
import torch

from modelkit.images.limits import ImageArray
from modelkit.models.bands import bands_name
from modelkit.runtime.embeddings import embeddings
from modelkit.runtime.settings import RunSettings
from modelkit.teach.fit import fit_probe

MIN_BANDS = 4  # a multi-band image: more than R, G, B


def multi_band(item) -> int:
    """The band count of an example that is a multi-band image (0 for anything else: a photo,
    a gray image, or a ready tensor, whose raw values are gone)."""
    if isinstance(item, torch.Tensor):
        return 0
    data = item.data if isinstance(item, ImageArray) else np.asarray(item)
    count = int(data.shape[0]) if data.ndim == 3 else 1
    return count if count >= MIN_BANDS else 0


def bands_baseline(items: list, y: np.ndarray, *, folds: int, groups, seed: int, solver: str,
                   model_cache=None) -> dict | None:  # fmt: skip
    """{"model", "cv_accuracy"} of band statistics on the same examples and folds, or None when
    the examples are not multi-band images."""
    count = multi_band(items[0])
    if not count:
        return None
    names = items[0].band_names if isinstance(items[0], ImageArray) else None
    settings = RunSettings(bands_name(names), pretrained=True, in_chans=count, backend="torch")
    vectors = embeddings(items, settings, model_cache=model_cache).vectors
    probe = fit_probe(vectors, y, folds=folds, groups=groups, seed=seed, solver=solver)
    accuracy = float((probe.oof_proba.argmax(1) == y).mean())
    return {"model": settings.name, "cv_accuracy": accuracy}


def baseline_warning(head_accuracy: float, baseline: dict) -> str | None:
    """A warning when band statistics alone do clearly better than the taught model."""
    if baseline["cv_accuracy"] < head_accuracy + 0.05:
        return None
    return (
        f"Band statistics alone are right on {round(100 * baseline['cv_accuracy'])} of every 100 "
        f"examples they had not seen; this model on {round(100 * head_accuracy)}. For these "
        "bands, teach the band statistics model ('bands') instead."
    )
