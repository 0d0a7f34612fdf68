"""Scaling decided once for the whole scene, not per tile.

A per-tile stretch (``percentile``, ``minmax``, ``zscore``, or ``auto`` on integers other than
uint8, which is a percentile stretch) would give every tile the full range: a tile of calm
water and a tile of bright sand would look alike to the model, and the absolute differences a
map is made of would be gone. So when the scaling depends on the data, its per-band numbers
(2nd/98th percentiles, min/max, mean/std) are computed once from a sample of the scene (a grid
of ``SAMPLE_WINDOWS`` windows spread over it, about ``SAMPLE_PIXELS`` pixels, no-data pixels
left out) and every tile and window is scaled with them; the clip to [0, 1] of ``percentile``
then comes before the resize. A head taught elsewhere keeps its own scaling setting, applied
with the scene's numbers: taught on tiles stretched one by one, it sees the scene stretched as a
whole (close for tiles like the scene's, and the honest choice for a map).

When the scaling does not depend on the data (uint8 with ``auto``, floats, ``none``, and models
whose data config fixes it, such as ``bands`` and sensor weights) nothing is sampled: each tile
goes through ``preprocess`` exactly as ``predict`` would take it alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from modelkit.config import DataConfig
from modelkit.errors import ConfigError
from modelkit.images.preprocess import SCALINGS, preprocess, scaling_params
from modelkit.scenes.windows import Scene, nodata_mask

SAMPLE_PIXELS = 1_000_000
SAMPLE_WINDOWS = 8  # per side: an 8 x 8 grid of small windows


@dataclass(frozen=True)
class Scaling:
    """How raw pixels become the model's input: ``mode`` (the effective setting) and, when it
    depends on the data, the scene's per-band ``(offset, factor, clip)``."""

    mode: str
    params: tuple[np.ndarray, np.ndarray, bool] | None = None

    @property
    def scene_wide(self) -> bool:
        return self.params is not None

    def to_float(self, data: np.ndarray) -> np.ndarray:
        """A window or tile as float32, scaled with the scene's numbers (NaN left as NaN)."""
        out = data.astype(np.float32)
        if self.params is None:
            return out / 255.0 if self.mode == "auto" and data.dtype == np.uint8 else out
        offset, factor, clip = self.params
        out -= offset.astype(np.float32)[:, None, None]
        out *= factor.astype(np.float32)[:, None, None]
        return np.clip(out, 0.0, 1.0, out=out) if clip else out

    def tile_input(self, tile: np.ndarray, config: DataConfig) -> torch.Tensor:
        """(1, C, H, W): what the model takes for this tile (``preprocess``, after the scene
        scaling when there is one)."""
        if self.params is None:
            return preprocess(tile, config, scaling=self.mode)
        return preprocess(self.to_float(tile), self.config(config), scaling="none")

    def config(self, config: DataConfig) -> DataConfig:
        """After a z-score the data config's mean and std are not applied (as ``preprocess``)."""
        if self.mode != "zscore":
            return config
        return replace(config, mean=(0.0,) * config.in_chans, std=(1.0,) * config.in_chans)


def effective(scaling: str, config: DataConfig) -> str:
    if scaling not in SCALINGS:
        raise ConfigError(f"Scaling '{scaling}' is not known; use one of {', '.join(SCALINGS)}.")
    return config.value_scaling if scaling == "auto" and config.value_scaling else scaling


def depends_on_data(mode: str, dtype: np.dtype) -> bool:
    return mode in ("minmax", "percentile", "zscore") or (
        mode == "auto" and dtype.kind in "iu" and dtype != np.uint8
    )


def sample(scene: Scene, bands: list[int] | None) -> np.ndarray:
    """(C, 1, N) valid pixels from an even grid of small windows over the scene."""
    side = max(1, math.isqrt(SAMPLE_PIXELS // SAMPLE_WINDOWS**2))
    h, w = min(side, scene.height), min(side, scene.width)
    tops = np.linspace(0, scene.height - h, SAMPLE_WINDOWS).astype(int)
    lefts = np.linspace(0, scene.width - w, SAMPLE_WINDOWS).astype(int)
    parts = []
    for top in sorted(set(tops)):
        for left in sorted(set(lefts)):
            window = scene.read(top, top + h, left, left + w, bands)
            keep = ~nodata_mask(window, scene.nodata)
            parts.append(window[:, keep])
    pixels = np.concatenate(parts, axis=1)
    if pixels.shape[1] == 0:
        raise ConfigError(
            f"The scene '{scene.name}' seems to hold no data (every sampled pixel "
            "is 0, NaN or the no-data value)."
        )
    return pixels[:, None, :]


def scene_scaling(
    scene: Scene, scaling: str, config: DataConfig, bands: list[int] | None
) -> Scaling:
    """The scaling of every tile of the scene for this setting and model input."""
    mode = effective(scaling, config)
    if not depends_on_data(mode, scene.dtype):
        return Scaling(mode)
    offset, factor, clip = scaling_params(sample(scene, bands), mode)
    resolved = "percentile" if mode == "auto" else mode
    return Scaling(resolved, (offset, factor, clip))
