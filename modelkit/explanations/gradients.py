"""Integrated gradients (captum) from the baseline to the input, per pixel and per band, with
the completeness check: the attributions should add up to the score's change between the two.

Captum runs the ``steps`` points of the path ``chunk`` at a time (forward and backward in one
batch); the Gauss-Legendre rule it uses by default converges fast on smooth paths.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients


def integrated_gradients(scorer, x, target: int, baseline, steps: int, chunk: int):
    """(attributions (C, H, W), relative completeness error, score change) for x (1, C, H, W)."""
    x = x.detach().clone()
    with torch.enable_grad():
        attr, delta = IntegratedGradients(scorer).attribute(
            x, baselines=baseline, target=target, n_steps=int(steps), internal_batch_size=chunk,
            return_convergence_delta=True,
        )  # fmt: skip
    attr = attr[0].detach().float().cpu()
    total = float(attr.double().sum())
    change = total - float(delta[0])  # captum's delta = sum(attributions) - (f(x) - f(baseline))
    error = abs(float(delta[0])) / max(abs(change), 1e-12)
    return attr, error, change
