"""train_head: teach a frozen model the user's classes from labelled examples.

    train_head(images, labels, model, *, augment="none", folds=5, seed=0, progress=None,
               image_bytes=None, names=None, batch_size=32, solver="torch",
               learning_curve=False, use_result_cache=True, model_cache=None,
               result_cache=None, <the run settings; pretrained=True here>) -> TrainedHead

The cost is the embeddings (batched, ``progress(done, total)`` counts images, cached per image
so teaching again after adding a few images or changing the fit costs only the new work); the
fit is ``teach.fit.fit_probe`` and the numbers ``teach.metrics.report``, all out of fold. The
head keeps its examples' out-of-fold probabilities, classes and names (``label_issues``); with
``learning_curve=True`` also ``teach.curve``'s estimate of what more examples would give.
Random weights (``pretrained=False``) are allowed and said loudly in ``warnings``. With neither
``in_chans`` nor ``channels`` given, the model takes the examples' channel count (gray photos
and 13-band tiles teach without settings); the head's settings keep it for prediction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import numpy as np

import modelkit
from modelkit.errors import ConfigError
from modelkit.runtime.embeddings import VIEW_SETS, embeddings
from modelkit.runtime.settings import RunSettings, takes_settings
from modelkit.teach.baseline import bands_baseline, baseline_warning
from modelkit.teach.curve import estimate_curve
from modelkit.teach.examples import check_examples, digest_groups
from modelkit.teach.fit import fit_probe
from modelkit.teach.head import RUN_CHOICES, TrainedHead
from modelkit.teach.metrics import report


def _random_note(parts: list[str]) -> str:
    return (
        f"RANDOM WEIGHTS: this head was taught on a model with random {', '.join(parts)} "
        "(pretrained=False or random extra filters). Its numbers describe that one random draw; "
        "a rebuilt model (after a restart, or from the saved file) draws other weights and the "
        "head will not fit it. Use pretrained weights for a head you mean to keep."
    )


@takes_settings(pretrained=True)
def train_head(
    images,
    labels: Sequence[str],
    settings: RunSettings,
    *,
    augment: str = "none",
    folds: int = 5,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    image_bytes: Sequence[bytes] | None = None,
    names: Sequence[str] | None = None,
    batch_size: int = 32,
    solver: str = "torch",
    learning_curve: bool = False,
    use_result_cache: bool = True,
    model_cache=None,
    result_cache=None,
) -> TrainedHead:
    """Embed the examples, cross-validate a logistic-regression head, refit it on all of them.

    Args:
        images: the examples (ImageArrays or (C, H, W) arrays), all with one channel count.
        labels: one class name per example.
        augment: views per example: "none", "flips" or "dihedral".
        folds: cross-validation folds (fewer when a class has fewer examples).
        seed: the folds' shuffle.
        progress: called with (images embedded, total).
        image_bytes: each example's file bytes (the cache's key; one file twice stays in one
            fold).
        names: where each example came from (shown with the examples it got wrong).
        batch_size: images per forward pass.
        solver: "torch" or "sklearn" (the same optimum).
        learning_curve: also estimate what twice as many examples would give (``teach.curve``;
            a few seconds for hundreds of examples), kept in ``head.learning_curve``.
        use_result_cache: keep and reuse embeddings on disk (never for random weights).
        model_cache: the built models to use (the process's when None).
        result_cache: the results on disk to use (the process's when None).

    Returns:
        TrainedHead: its classes, weights, settings and out-of-fold numbers.
    """
    if augment not in VIEW_SETS:
        raise ConfigError(f"augment={augment!r} is not one of {', '.join(VIEW_SETS)}.")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds={folds!r} must be a whole number of at least 2, e.g. 5.")
    items, labels = list(images), list(labels)
    warnings = check_examples(items, labels, names, None)
    classes = sorted(set(labels))
    y = np.array([classes.index(lab) for lab in labels])
    settings = settings.follow(items[0])  # the model takes what the examples have
    emb = embeddings(items, settings, views=augment, batch_size=batch_size,
                     image_bytes=image_bytes, progress=progress,
                     use_result_cache=use_result_cache, model_cache=model_cache,
                     result_cache=result_cache)  # fmt: skip
    folds = min(folds, int(np.bincount(y).min()))
    groups = digest_groups(image_bytes, len(y))
    probe = fit_probe(emb.vectors, y, folds=folds, groups=groups, seed=seed, solver=solver)
    numbers = report(y, probe.oof_proba, probe.fold_of, classes, names)
    if emb.random_weights:
        numbers["warnings"].insert(0, _random_note(emb.random_weights))
    numbers["warnings"] = warnings + numbers["warnings"]
    net, _ = settings.build(model_cache)
    taught = {k: v for k, v in settings.to_dict().items() if k not in RUN_CHOICES}
    setup = taught | {
        "model": settings.name, "arch": settings.model, "views": augment,
        "data_config": settings.data_config(net).to_dict(),
        "num_features": int(emb.vectors.shape[-1]), "adaptations": list(emb.adaptations),
        "random_weights": list(emb.random_weights), "examples": len(y),
        "modelkit": modelkit.__version__,
    }  # fmt: skip
    setup = json.loads(json.dumps(setup))  # plain JSON types: as the saved file gives it back
    fit = {"C": probe.C, "folds": folds, "seed": seed, "solver": solver, "grid": list(probe.grid),
           "grid_accuracy": probe.grid_accuracy, "grid_log_loss": probe.grid_log_loss,
           "embedding_cache_hits": int(emb.cache_hits.sum())}  # fmt: skip
    if settings.model != "bands":  # the honest baseline beside a network, on multi-band images
        baseline = bands_baseline(items, y, folds=folds, groups=groups, seed=seed,
                                  solver=solver, model_cache=model_cache)  # fmt: skip
        if baseline is not None:
            fit["baseline"] = baseline
            warning = baseline_warning(numbers["cv_accuracy"], baseline)
            numbers["warnings"] += [warning] if warning else []
    curve = {}
    if learning_curve:
        curve = estimate_curve(emb.vectors, y, C=probe.C, accuracy=numbers["cv_accuracy"],
                               folds=folds, groups=groups, seed=seed, solver=solver)  # fmt: skip
    names = list(names) if names is not None else [f"example {i}" for i in range(len(y))]
    return TrainedHead(classes=classes, weight=probe.weight, bias=probe.bias, setup=setup,
                       fit=fit, learning_curve=curve, oof_probabilities=probe.oof_proba,
                       example_labels=y, example_names=[str(n) for n in names],
                       **numbers)  # fmt: skip
