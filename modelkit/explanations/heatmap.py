"""Maps computed on the model's input, placed back onto the image the user gave, with bounded
memory whatever the image's shape.

The model saw a resized, cropped (or padded) copy (``preprocess``): a map at the model's input size
covers only the crop's box in the source image. ``to_image`` upsamples the map straight to that
box (in source pixels) and leaves 0 outside it: pixels the model never saw have no influence.
The result takes H * W * 4 bytes; images over ``MAX_HEATMAP_PIXELS`` are refused in words.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from modelkit.config import DataConfig
from modelkit.errors import ConfigError
from modelkit.images.resize import plan_crop

MAX_HEATMAP_PIXELS = 4096 * 4096  # 64 MiB of float32


def check_size(height: int, width: int) -> None:
    """Refuse a map that would be absurdly large (the readers allow 100 million pixels)."""
    if height * width > MAX_HEATMAP_PIXELS:
        raise ConfigError(
            f"The image is {width} x {height} = {height * width:,} pixels; a map at that "
            f"resolution would take {height * width * 4 / 2**20:,.0f} MiB, more than the "
            f"{MAX_HEATMAP_PIXELS:,}-pixel limit for explanation maps. Crop or downscale the "
            "image (e.g. to 4096 x 4096 at most), or use method='bands', which draws no map."
        )


def _axis(source: int, resized: int, crop: int, start: int) -> tuple[int, int, int, int]:
    """(first, last) map rows inside the image, and their (start, stop) in source pixels;
    ``start``: where the crop begins in resized pixels (negative: it was padded)."""
    first, last = max(0, -start), min(crop, resized - start)
    scale = source / resized
    lo = min(source - 1, max(0, int(round((start + first) * scale))))
    hi = max(lo + 1, min(source, int(round((start + last) * scale))))
    return first, last, lo, hi


def to_image(
    input_map: np.ndarray | torch.Tensor,
    image_hw: tuple[int, int] | None,
    config: DataConfig,
    input_hw: tuple[int, int],
) -> np.ndarray:
    """A (h, w) map over the model's input (``input_hw``: its size) -> float32 (H, W) over the
    source image; ``image_hw`` None (a ready tensor was given): over the input itself."""
    grid = torch.as_tensor(input_map, dtype=torch.float32).detach().cpu()
    crop_h, crop_w = (int(v) for v in input_hw)
    if tuple(grid.shape) != (crop_h, crop_w):
        grid = F.interpolate(grid[None, None], size=(crop_h, crop_w), mode="bilinear",
                             align_corners=False)[0, 0]  # fmt: skip
    if image_hw is None:
        return grid.numpy().astype(np.float32)
    height, width = (int(v) for v in image_hw)
    check_size(height, width)
    plan = plan_crop(height, width, config)  # where preprocess put the model's input
    r0, r1, y0, y1 = _axis(height, plan.resized[0], crop_h, plan.first[0])
    c0, c1, x0, x1 = _axis(width, plan.resized[1], crop_w, plan.first[1])
    part = grid[r0:r1, c0:c1]
    out = np.zeros((height, width), np.float32)
    if part.numel():
        placed = F.interpolate(part[None, None], size=(y1 - y0, x1 - x0), mode="bilinear",
                               align_corners=False)[0, 0]  # fmt: skip
        out[y0:y1, x0:x1] = placed.numpy()
    return out
