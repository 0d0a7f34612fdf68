"""``explain(image, model, ...)``: which bands and which regions drive a model's answer.

    explain(image, model, *, method="bands", target=None, head=None, layer=None,
            baseline="mean", shapley_samples=None, steps=32, chunk=None, image_bytes=None,
            use_result_cache=True, model_cache=None, result_cache=None, <the run settings>)
        -> Explanation

With a taught ``head`` the head's own settings decide the model and its input (the head's rule,
``TrainedHead.settings_for``); what the call gives besides is kept only where the head does not
say (device, precision), and a conflict is named in the notes.

``chunk``: how many band copies or path points run in one batch (None: chosen for the device,
see CHUNKS); memory grows with it, not with the bands or the steps.

The model comes from the runtime's model cache and is shared: nothing here hooks it or changes
its ``requires_grad``; gradients are taken with ``torch.autograd.grad`` (no ``.grad`` is ever
written), so explanations and predictions may run at once. Results are kept in the result cache
like predictions, except for models with random parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from modelkit.errors import ConfigError, ModelkitError
from modelkit.explanations import bands as band_ops
from modelkit.explanations.bandsets import band_labels
from modelkit.explanations.cam import grad_cam, resolve_level
from modelkit.explanations.gradients import integrated_gradients
from modelkit.explanations.heatmap import check_size, to_image
from modelkit.explanations.notes import explanation_notes
from modelkit.explanations.scoring import Scorer
from modelkit.hosting import check_ig_steps
from modelkit.images.limits import ImageArray
from modelkit.runtime.device import prepare_input, resolve_precision
from modelkit.runtime.result_cache import hash_data
from modelkit.runtime.run import (
    Timings,
    as_list,
    default_result_cache,
    failure,
    input_hash,
    to_batch,
)
from modelkit.runtime.serving import server
from modelkit.runtime.settings import RunSettings, takes_settings

METHODS = ("bands", "gradcam", "integrated_gradients")
# Copies run at once when ``chunk`` is not given. On a CPU a forward's cost per image does not
# fall with the batch (2 EPYC cores, efficientnet_lite0 at 224: 31-40 ms an image at batch 1 to
# 13; the activations outgrow the caches), so small chunks are fastest there and smallest in
# memory (bench/bench_explain.py, quiet machine: bands 0.7-1.2x of 14 forwards at chunk 2,
# 1.5-1.8x at 16; integrated gradients 1.1-1.4 s at chunk 8, 2.4 s at 32). On a GPU the batch
# is what makes it fast.
CHUNKS = {"cpu": {"bands": 2, "integrated_gradients": 8}}
GPU_CHUNK = 16


def default_chunk(method: str, device: torch.device) -> int:
    return CHUNKS.get(device.type, {}).get(method, GPU_CHUNK)


@dataclass
class Explanation:
    """What drives the answer for ``target``. ``score`` is the target's logit (before softmax).

    band_importance: float32 (C,), signed, one per channel the model sees: how much the score
    falls when that band is replaced by the baseline (ablation / Shapley for "bands"; the
    integrated gradients summed per band; gradient x (input - baseline) for "gradcam").
    heatmap: float32 (H, W) at the image's resolution (>= 0 for Grad-CAM, signed for integrated
    gradients, 0 where the model did not look: outside its centre crop); None for "bands".
    """

    method: str
    target_index: int
    target_label: str
    score: float
    band_importance: np.ndarray
    band_names: list[str]
    heatmap: np.ndarray | None
    layer: str | None
    notes: list[str]
    timings: Timings = field(default_factory=Timings)
    checks: dict = field(default_factory=dict)  # e.g. completeness_error, forward_passes
    result_cache_hit: bool = False


def _check(method, baseline, steps, chunk, shapley_samples) -> None:
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is not known; use one of {', '.join(METHODS)}.")
    if baseline not in band_ops.BASELINES:
        raise ConfigError(
            f"baseline={baseline!r} is not known; use one of {', '.join(band_ops.BASELINES)}."
        )
    for name, value, low, high in (("steps", steps, 2, 1024), ("chunk", chunk, 1, 4096)):
        if name == "chunk" and value is None:  # chosen for the device
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name}={value!r} must be a whole number from {low} to {high}.")
    if method == "integrated_gradients":
        check_ig_steps(steps)  # hosting: MODELKIT_MAX_IG_STEPS
    if shapley_samples is not None and (
        isinstance(shapley_samples, bool) or not isinstance(shapley_samples, int)
        or not 1 <= shapley_samples <= 1000
    ):  # fmt: skip
        raise ConfigError(f"shapley_samples={shapley_samples!r} must be a whole number, 1-1000.")


def _head_hash(head) -> str | None:
    if head is None:
        return None
    linear = head.linear
    parts = [hash_data(linear.weight.detach().cpu())]
    if linear.bias is not None:
        parts.append(hash_data(linear.bias.detach().cpu()))
    return hash_data("|".join([*parts, *map(str, head.classes)]).encode())


def _names(item, channels, count: int) -> list[str]:
    names = item.band_names if isinstance(item, ImageArray) else None
    if names and channels:
        names = [names[c] for c in channels]
    return band_labels(names if names and len(names) == count else None, count)


@takes_settings()
def explain(
    image,
    settings: RunSettings,
    *,
    method: str = "bands",
    target: int | str | None = None,
    head=None,
    layer: int | str | None = None,
    baseline: str = "mean",
    shapley_samples: int | None = None,
    steps: int = 32,
    chunk: int | None = None,
    image_bytes: bytes | None = None,
    use_result_cache: bool = True,
    model_cache=None,
    result_cache=None,
) -> Explanation:
    """Explain one image's answer (see the module docstring).

    Args:
        image: one ImageArray, (C, H, W) array or ready (1, C, H, W) tensor.
        method: "bands", "gradcam" or "integrated_gradients".
        target: the class to explain (index or label); None: the top class.
        head: a TrainedHead (or its file): explain its classes, with its own settings.
        layer: Grad-CAM's level (index or module name); None: the default level.
        baseline: what replaces a band: "mean", "zero" or "blur".
        shapley_samples: Shapley sampling over bands with this many orders (bands only).
        steps: integrated gradients' path points.
        chunk: band copies or path points per batch (None: chosen for the device).
        image_bytes: the file's bytes (hashed for the result cache instead of the pixels).
        use_result_cache: keep and reuse explanations on disk (never for random weights).
        model_cache: the built models to use (the process's when None).
        result_cache: the results on disk to use (the process's when None).

    Returns:
        Explanation: band importance, the heatmap (not for "bands"), notes and checks.
    """
    started = time.perf_counter()
    _check(method, baseline, steps, chunk, shapley_samples)
    head_notes: list[str] = []
    if head is not None:
        from modelkit.teach.head import as_head

        head = as_head(head)
        settings, head_notes = head.settings_for(settings)
    items, is_batch = as_list(image)
    if is_batch:
        raise ConfigError("explain takes one image at a time; give one image, not a batch.")
    item = items[0]
    image_hw = None if isinstance(item, torch.Tensor) else tuple(_shape(item)[-2:])
    if image_hw is not None and method != "bands":
        check_size(*image_hw)  # refuse absurd map sizes before any work

    results = default_result_cache(result_cache, use_result_cache)
    cache_key = None
    if results is not None and not settings.random_parts(with_head=head is None):
        asked = dict(method=method, target=target, layer=layer, baseline=baseline, steps=steps,
                     shapley_samples=shapley_samples, head=_head_hash(head))  # fmt: skip
        cache_key = settings.result_key("explain", input_hash(items, image_bytes), **asked)
        stored = results.get(cache_key)
        if stored is not None and "band_importance" in stored[1]:
            return _from_store(stored, started)

    timings = Timings()
    key = settings.model_key()
    t0 = time.perf_counter()
    net, _ = settings.build(model_cache)
    t1 = time.perf_counter()
    x = to_batch(items, net, settings)
    dev = torch.device(key.device)
    chunk = chunk or default_chunk(method, dev)
    x = prepare_input(x.detach().clone(), dev)  # never an inference tensor: it joins autograd
    t2 = time.perf_counter()
    try:
        serve = None
        if method == "bands":  # no gradients: the passes may run on a compiled graph
            output = "logits" if head is None else "pooled"
            serve, _ = server(settings, key, net, output, x.detach())
        out = _run(net, x, dev, key, method, target, head, layer, baseline, steps, chunk,
                   shapley_samples, image_hw, serve)  # fmt: skip
    except ModelkitError:
        raise
    except Exception as error:
        raise failure(key, error, "run") from error
    t3 = time.perf_counter()
    out.band_names = _names(item, settings.channels, x.shape[1])
    out.notes = head_notes + explanation_notes(out, net, baseline, shapley_samples, steps,
                                               head is not None)  # fmt: skip
    timings.load_ms, timings.preprocess_ms = (t1 - t0) * 1e3, (t2 - t1) * 1e3
    timings.forward_ms = (t3 - t2) * 1e3
    timings.total_ms = (time.perf_counter() - started) * 1e3
    out.timings = timings
    if cache_key:
        _store(results, cache_key, out)
    return out


def _shape(item) -> tuple[int, ...]:
    data = item.data if isinstance(item, ImageArray) else np.asarray(item)
    return data.shape if data.ndim == 3 else (1, *data.shape)


def _run(net, x, dev, key, method, target, head, layer, baseline, steps, chunk, samples, image_hw,
         serve=None):  # fmt: skip
    scorer = Scorer(net, dev, resolve_precision(key.precision, dev), head, serve)
    reference = band_ops.baseline_tensor(x, baseline)
    config, heatmap, level, checks = net.data_config, None, None, {}
    if method == "gradcam":  # its own pass gives the logits: no separate forward
        step, level = resolve_level(net, layer)
        cam, importance, logits, index = grad_cam(scorer, x, target, step, reference)
        heatmap = to_image(cam, image_hw, config, x.shape[-2:])
    else:
        with torch.inference_mode():
            logits = scorer(x)
        index = scorer.resolve_target(target, logits)
    if method == "bands":
        importance, passes = band_ops.band_importance(scorer, x, logits, index, reference, chunk,
                                                      samples)  # fmt: skip
        checks["forward_passes"] = passes + 1
    elif method == "integrated_gradients":
        attr, error, change = integrated_gradients(scorer, x, index, reference, steps, chunk)
        importance = attr.sum(dim=(1, 2))
        heatmap = to_image(attr.sum(dim=0), image_hw, config, x.shape[-2:])
        checks.update(completeness_error=error, score_change=change, steps=steps)
    return Explanation(
        method=method, target_index=index, target_label=scorer.label(index),
        score=float(logits[0, index]), band_importance=importance.numpy().astype(np.float32),
        band_names=[], heatmap=heatmap, layer=level, notes=[], checks=checks,
    )  # fmt: skip


_META = ("method", "target_index", "target_label", "score", "band_names", "layer", "notes",
         "checks")  # fmt: skip


def _store(results, cache_key: str, out: Explanation) -> None:
    arrays = {"band_importance": out.band_importance}
    if out.heatmap is not None:
        arrays["heatmap"] = out.heatmap
    results.set(cache_key, {k: getattr(out, k) for k in _META}, arrays)


def _from_store(stored, started: float) -> Explanation:
    meta, arrays = stored
    timings = Timings(total_ms=(time.perf_counter() - started) * 1e3)
    return Explanation(
        **{k: meta[k] for k in _META}, band_importance=arrays["band_importance"],
        heatmap=arrays.get("heatmap"), timings=timings, result_cache_hit=True,
    )  # fmt: skip
