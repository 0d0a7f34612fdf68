"""8-bit previews of images with any channel count: composites, band presets, thumbnails, stats.

Public API (stable)::

    composite(image, bands=None, *, percentiles=(2.0, 98.0)) -> np.ndarray  # (H, W, 3) uint8
    band_presets(image) -> dict[str, tuple[int, int, int]]    # name -> (r, g, b) band indices
    stretch_to_uint8(data, percentiles=(2.0, 98.0)) -> np.ndarray  # (C, H, W) uint8, per band
    band_thumbnails(image, max_size=128, *, percentiles=(2.0, 98.0)) -> list[np.ndarray]  # (h, w)
    band_stats(image) -> list[dict]  # index, name, min, max, mean, std, p2, p98, nonfinite

``image`` is an ``ImageArray`` or a (C, H, W) / (H, W) numpy array. Each band is stretched on its
own between its 2nd and 98th percentiles (NaN/Inf first replaced by the band minimum, as in
``preprocess``). ``bands`` picks what is shown: three indices give an RGB composite, one index a
gray image, two indices a two-colour blend (first band magenta, second green: the usual
colour-blind-safe pair in microscopy). ``bands=None`` takes the first preset when the band names
say the sensor, else bands 0, 1, 2 (1- and 2-channel images: gray and the blend).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from modelkit.errors import ConfigError
from modelkit.images.limits import ImageArray
from modelkit.images.preprocess import as_chw, band_limits, fill_nonfinite, select_channels

# Sentinel-2 MSI band combinations, by band name (names as in ESA products: B1..B12, B8A)
SENTINEL2_PRESETS = {
    "True colour (B4, B3, B2)": ("B4", "B3", "B2"),
    "Colour infrared (B8, B4, B3)": ("B8", "B4", "B3"),
    "SWIR (B12, B8A, B4)": ("B12", "B8A", "B4"),
}
RGB_NAMES = ("red", "green", "blue")
MAGENTA_GREEN = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # band -> (r, g, b) weights


def _canonical(name: str) -> str:
    """'B04', 'b4', 'B4 (red)', 'Band 4' -> 'B4'; 'B8A' stays; other names are upper-cased."""
    match = re.match(r"^\s*(?:band\s*|b)0*(\d+)(a?)\b", name, flags=re.IGNORECASE)
    if match:
        return f"B{match.group(1)}{match.group(2).upper()}"
    return name.strip().upper()


def _names(image: ImageArray | np.ndarray) -> list[str] | None:
    return image.band_names if isinstance(image, ImageArray) else None


def band_presets(image: ImageArray | np.ndarray) -> dict[str, tuple[int, int, int]]:
    """Named (r, g, b) band choices this image supports, best first; empty when none apply."""
    count = as_chw(image).shape[0]
    names = _names(image)
    presets: dict[str, tuple[int, int, int]] = {}
    if names:
        index = {_canonical(n): i for i, n in enumerate(names)}
        if "B8A" in index or "B12" in index:  # Sentinel-2 naming
            for label, wanted in SENTINEL2_PRESETS.items():
                if all(w in index for w in wanted):
                    presets[label] = tuple(index[w] for w in wanted)
        lower = [n.strip().lower() for n in names]
        if all(c in lower for c in RGB_NAMES):
            presets["Natural colour (red, green, blue)"] = tuple(lower.index(c) for c in RGB_NAMES)
    if count >= 3 and not presets:
        presets["Bands 0, 1, 2"] = (0, 1, 2)
    return presets


def stretch_to_uint8(
    data: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)
) -> np.ndarray:
    """Each band mapped from its [p_low, p_high] to [0, 255]; constant bands become 0."""
    data = fill_nonfinite(as_chw(data))
    low, high = band_limits(data, "percentile", percentiles)
    span = np.where(high > low, high - low, 1.0)
    out = np.empty(data.shape, np.uint8)
    for i, band in enumerate(data):
        scaled = (band.astype(np.float32) - np.float32(low[i])) * np.float32(255.0 / span[i])
        if high[i] <= low[i]:
            scaled[:] = 0
        out[i] = np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    return out


def composite(
    image: ImageArray | np.ndarray,
    bands: Sequence[int] | int | None = None,
    *,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> np.ndarray:
    """An (H, W, 3) uint8 preview: RGB for 3 bands, gray for 1, magenta/green blend for 2."""
    data = as_chw(image)
    if bands is None:
        presets = band_presets(image)
        bands = next(iter(presets.values())) if presets else tuple(range(min(data.shape[0], 3)))
    elif isinstance(bands, (int, np.integer)):
        bands = (int(bands),)
    bands = tuple(bands)
    if not 1 <= len(bands) <= 3:
        raise ConfigError(
            f"A preview shows 1, 2 or 3 bands; {len(bands)} were asked for ({list(bands)}). "
            "Pick three bands for red, green and blue."
        )
    stretched = stretch_to_uint8(select_channels(data, bands, "image"), percentiles)
    if len(bands) == 3:
        return np.ascontiguousarray(np.moveaxis(stretched, 0, -1))
    if len(bands) == 1:
        return np.repeat(stretched[0][..., None], 3, axis=-1)
    blend = np.einsum("chw,cr->hwr", stretched.astype(np.float32), MAGENTA_GREEN)
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)


def band_thumbnails(
    image: ImageArray | np.ndarray,
    max_size: int = 128,
    *,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> list[np.ndarray]:
    """One stretched (h, w) uint8 thumbnail per band, the longer side at most ``max_size``."""
    data = as_chw(image)
    height, width = data.shape[1:]
    scale = min(1.0, max_size / max(height, width))
    stretched = stretch_to_uint8(data, percentiles)
    if scale < 1.0:
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        tensor = torch.from_numpy(stretched)
        stretched = F.resize(tensor, size, antialias=True).numpy()
    return list(stretched)


def band_stats(image: ImageArray | np.ndarray) -> list[dict]:
    """Per band: index, name, min, max, mean, std, p2, p98 (finite values) and nonfinite count."""
    data = as_chw(image)
    names = _names(image)
    filled = fill_nonfinite(data)
    p_low, p_high = band_limits(filled, "percentile", (2.0, 98.0))
    stats = []
    for i, band in enumerate(data):
        nonfinite = (
            int(band.size - np.count_nonzero(np.isfinite(band))) if band.dtype.kind == "f" else 0
        )
        values = band[np.isfinite(band)] if nonfinite else band
        empty = values.size == 0
        stats.append({
            "index": i,
            "name": names[i] if names else f"band {i}",
            "min": 0.0 if empty else float(values.min()),
            "max": 0.0 if empty else float(values.max()),
            "mean": 0.0 if empty else float(values.mean(dtype=np.float64)),
            "std": 0.0 if empty else float(values.std(dtype=np.float64)),
            "p2": float(p_low[i]),
            "p98": float(p_high[i]),
            "nonfinite": nonfinite,
        })  # fmt: skip
    return stats
