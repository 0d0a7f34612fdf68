"""Grad-CAM for every family, without a single hook on the shared model.

The model's trunk runs step by step (its FamilySpec steps, as ``forward_features`` does); the
chosen level's output is laid out as an (N, C, h, w) grid (a ViT's patch tokens on their grid,
class token dropped; Swin's channel-last output permuted), put back into the family's layout,
and the rest of the network runs on it. One backward pass gives the gradients at that grid (for
the map) and at the input (for the per-band view: gradient x (input - baseline), summed per
band, the first-order estimate of the band ablation's score drop).

Why not captum's LayerGradCam: it registers a forward hook on the module it is given (removed
in a ``finally``), so a prediction running through the same shared module meanwhile would pass
through that hook. Here every tensor is private to the call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modelkit.errors import ConfigError
from modelkit.models.features import run_step, to_nchw


def resolve_level(model: nn.Module, layer) -> tuple[int, str]:
    """(step index, description) of ``layer``: None (the default level), a feature-level index
    (negatives from the end) or a step/module name such as 'layer3' or 'features.5'."""
    record = model.modelkit
    if not record.runs_as_steps:
        raise ConfigError(
            f"Grad-CAM cannot look inside {record.name}: it is not one of the families modelkit "
            "runs step by step (torchvision's and EfficientNet-Lite). Use band importance "
            "(method='bands') or integrated gradients, which work for every model."
        )
    levels, steps = record.levels, record.steps
    if layer is None:
        # a ViT's last block changes the class token alone: gradients at its patch tokens are 0
        pick = -2 if record.spec.layout == "tokens" and len(levels) > 1 else -1
        level = levels[pick]
        return level["step"], f"level {level['index']} ({level['module']})"
    if isinstance(layer, str) and not layer.strip().lstrip("-").isdigit():
        name = layer.strip()
        if name in steps and not name.startswith("@"):
            return steps.index(name), name
        names = ", ".join(lv["module"] for lv in levels)
        raise ConfigError(
            f"layer={layer!r} is not a step of {record.spec.name}; give a feature level's "
            f"index (0 to {len(levels) - 1}) or one of its levels' names: {names}."
        )
    if isinstance(layer, bool) or not isinstance(layer, int | str):
        raise ConfigError(f"layer={layer!r} is not a level index or name.")
    index = int(layer)
    if not -len(levels) <= index < len(levels):
        raise ConfigError(
            f"layer={layer!r} is out of range: this model has {len(levels)} feature levels, "
            f"0 to {len(levels) - 1} (negatives count from the end)."
        )
    level = levels[index]
    return level["step"], f"level {level['index']} ({level['module']})"


def _from_nchw(grid: torch.Tensor, layout: str, native: torch.Tensor) -> torch.Tensor:
    """The grid back in the family's own layout (``native`` holds a ViT's class token)."""
    if layout == "nhwc":
        return grid.permute(0, 2, 3, 1)
    if layout == "tokens":
        tokens = grid.flatten(2).transpose(1, 2)
        return torch.cat([native[:, :1], tokens], dim=1)
    return grid.clone()  # a following in-place step (ReLU) must not change the grid we keep


def split_forward(scorer, x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, the level's (N, C, h, w) grid in the graph) for ``x``."""
    model = scorer.model
    record = model.modelkit
    model.check_input_size(x)
    with scorer.autocast():
        a = x
        for name in record.steps[: step + 1]:
            a = run_step(model, name, a)
        layout = record.layouts[step]
        grid = to_nchw(model, a, layout, tuple(x.shape[-2:]))
        a = _from_nchw(grid, layout, a)
        for name in record.steps[step + 1 :]:
            a = run_step(model, name, a)
        logits = scorer.from_features(a)
    return logits.float(), grid


def grad_cam(scorer, x: torch.Tensor, target, step: int, baseline: torch.Tensor):
    """(cam (h, w) >= 0, band estimate (C,), logits, target index) for one input (1, C, H, W);
    the target is resolved on this pass's logits (one forward in all)."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits, grid = split_forward(scorer, x, step)
        target = scorer.resolve_target(target, logits.detach())
        grads = torch.autograd.grad(logits[0, target], [grid, x])
    g_grid, g_x = (g.float() for g in grads)
    weights = g_grid.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * grid.detach().float()).sum(dim=1))[0]
    bands = (g_x * (x.detach() - baseline)).sum(dim=(2, 3))[0]
    return cam.cpu(), bands.cpu(), logits.detach(), target
