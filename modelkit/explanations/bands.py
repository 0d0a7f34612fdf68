"""Per-band importance: how much the target's score falls when one band is replaced by a baseline.

Captum's FeatureAblation with one feature per band (``feature_mask`` = band index at every
pixel): the C copies run ``chunk`` at a time in a batch, beside one unperturbed pass (the one
that chose the target, reused). ShapleyValueSampling over the same mask averages each band's
effect over random orders of the other bands (for correlated bands), ``samples`` orders.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as TF

from modelkit.errors import ConfigError

BASELINES = {
    "mean": "each band's mean over the image",
    "zero": "zero after normalisation (the band at the model's mean value)",
    "blur": "a blurred copy of the band (Gaussian, sigma = 1/16 of the image side)",
}


def baseline_tensor(x: torch.Tensor, baseline: str) -> torch.Tensor:
    """The (1, C, H, W) reference input for ``x`` (1, C, H, W), in the model's normalised space."""
    if baseline == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "blur":
        sigma = max(x.shape[-2:]) / 16
        size = min(2 * math.ceil(2 * sigma) + 1, 2 * (min(x.shape[-2:]) // 2) - 1)
        if size < 3:
            return x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
        return TF.gaussian_blur(x, [size, size], [sigma, sigma])
    raise ConfigError(f"baseline={baseline!r} is not known; use one of {', '.join(BASELINES)}.")


class Reuse:
    """A forward function that answers the unperturbed input from the pass already made."""

    def __init__(self, scorer, x: torch.Tensor, logits: torch.Tensor) -> None:
        self.scorer, self.x, self.logits, self.calls = scorer, x, logits, 0

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs is self.x:
            return self.logits
        self.calls += inputs.shape[0]
        return self.scorer(inputs)


def band_mask(x: torch.Tensor) -> torch.Tensor:
    return torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)  # broadcast over pixels


def band_importance(scorer, x, logits, target: int, baseline: torch.Tensor, chunk: int,
                    samples: int | None = None) -> tuple[torch.Tensor, int]:  # fmt: skip
    """(importance (C,), forward passes made) by ablation, or Shapley sampling with ``samples``."""
    # captum (and matplotlib with it) is imported on first use: the app's start need not pay
    from captum.attr import FeatureAblation, ShapleyValueSampling

    forward = Reuse(scorer, x, logits)
    mask = band_mask(x)
    with torch.inference_mode():
        if samples:
            attr = ShapleyValueSampling(forward).attribute(
                x, baselines=baseline, target=target, feature_mask=mask, n_samples=int(samples),
                perturbations_per_eval=chunk, show_progress=False,
            )  # fmt: skip
        else:
            attr = FeatureAblation(forward).attribute(
                x, baselines=baseline, target=target, feature_mask=mask,
                perturbations_per_eval=chunk,
            )  # fmt: skip
    return attr[0, :, 0, 0].float().cpu(), forward.calls


def shared_filter_groups(model) -> list[list[int]]:
    """Groups of input channels whose first-conv filters are identical (repeated RGB filters)."""
    record = getattr(model, "modelkit", None)
    if record is None or record.spec is None:
        return []
    weight = model.get_submodule(record.spec.first_conv).weight.detach()
    groups: list[list[int]] = []
    for c in range(weight.shape[1]):
        for group in groups:
            if torch.equal(weight[:, group[0]], weight[:, c]):
                group.append(c)
                break
        else:
            groups.append([c])
    return [g for g in groups if len(g) > 1]
