"""A scene seen at reduced resolution, for a page: the display bands of every ``step``-th pixel,
read a block of rows at a time (bounded memory whatever the scene's size), stretched 2-98 %.

    display_bands(names, count) -> (r, g, b)     the bands a person sees the scene in
    scene_preview(scene, max_side=1024) -> Preview(rgb (h, w, 3) uint8, step, valid (h, w))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modelkit.models.band_roles import band_roles
from modelkit.scenes.windows import Scene, nodata_mask

BLOCK_ROWS = 512  # source rows read at once


@dataclass
class Preview:
    rgb: np.ndarray  # (h, w, 3) uint8
    step: int  # source pixels per preview pixel
    valid: np.ndarray  # (h, w) bool: pixels with data


def display_bands(names: list[str] | None, count: int) -> tuple[int, int, int]:
    """Red, green and blue when the band names say which they are, else the first three."""
    roles, _ = band_roles(names)
    if all(r in roles for r in ("red", "green", "blue")):
        return roles["red"], roles["green"], roles["blue"]
    return tuple(min(i, count - 1) for i in range(3))


def scene_preview(scene: Scene, max_side: int = 1024) -> Preview:
    """The scene's display bands at one pixel every ``step`` source pixels (the longer side at
    most ``max_side``), each band stretched between its 2nd and 98th percentiles."""
    step = max(1, math.ceil(max(scene.height, scene.width) / max_side))
    bands = list(display_bands(scene.band_names, scene.channels))
    rows, valid = [], []
    block = max(step, BLOCK_ROWS // step * step)
    for top in range(0, scene.height, block):
        window = scene.read(top, min(scene.height, top + block), 0, scene.width, bands)
        window = window[:, ::step, ::step]
        rows.append(window.astype(np.float32))
        valid.append(~nodata_mask(window, scene.nodata))
    data, ok = np.concatenate(rows, 1), np.concatenate(valid, 0)
    out = np.zeros((*data.shape[1:], 3), np.uint8)
    for i in range(3):
        band = data[i][ok & np.isfinite(data[i])]
        if band.size:
            low, high = np.percentile(band, (2, 98))
            scaled = (data[i] - low) / max(high - low, 1e-9)
            out[..., i] = (np.nan_to_num(scaled).clip(0, 1) * 255).astype(np.uint8)
    out[~ok] = 0
    return Preview(out, step, ok)
