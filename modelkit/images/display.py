"""8-bit previews of images with any channel count: composites, band presets, thumbnails, stats.

Public API (stable)::

    composite(image, bands=None, *, percentiles=(2.0, 98.0), max_size=PREVIEW_MAX_SIZE)
        -> np.ndarray  # (h, w, 3) uint8, the longer side at most max_size
    band_presets(image) -> dict[str, tuple[int, int, int]]    # name -> (r, g, b) band indices
    stretch_to_uint8(data, percentiles=(2.0, 98.0)) -> np.ndarray  # (C, H, W) uint8, per band
    band_thumbnails(image, max_size=128, *, percentiles=(2.0, 98.0)) -> list[np.ndarray]  # (h, w)
    band_stats(image) -> list[dict]  # index, name, min, max, mean, std, p2, p98, nonfinite
    shrink(rgb, max_size=PREVIEW_MAX_SIZE) -> np.ndarray  # (H, W, C) uint8 reduced to fit
    model_view(image, data_config, bands=None) -> np.ndarray  # (h, w, 3): what the model sees

``image`` is an ``ImageArray`` or a (C, H, W) / (H, W) numpy array. Each band is stretched on its
own between its 2nd and 98th percentiles (NaN/Inf first replaced by the band minimum, as in
``preprocess``). ``bands`` picks what is shown: three indices give an RGB composite, one index a
gray image, two indices a two-colour blend (first band magenta, second green: the usual
colour-blind-safe pair in microscopy). ``bands=None`` takes the first preset when the band names
say the sensor, else bands 0, 1, 2 (1- and 2-channel images: gray and the blend).

Bounded for every image the readers accept: a preview or thumbnail larger than its ``max_size``
is first reduced by an integer factor (the mean of each factor x factor block, read a block of
rows at a time), stretched with the limits of the full-resolution band; the statistics are
computed a block of rows at a time. No step copies a whole band as floats, so a 1 x 100,000 strip
or a 100-megapixel image costs a few tens of MB beyond its own pixels.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from modelkit.config import DataConfig
from modelkit.errors import ConfigError
from modelkit.images.limits import ImageArray
from modelkit.images.preprocess import (
    as_chw,
    band_limits,
    band_moments,
    check_channels,
    fill_values,
    row_blocks,
)
from modelkit.images.resize import plan_crop, window_resize_crop

PREVIEW_MAX_SIZE = 2048  # longest side of a composite; larger images are reduced for display
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


def _reduce(band: np.ndarray, factor: int, fill: float | None) -> np.ndarray:
    """float32 mean of each factor x factor block (blocks at the bottom and right edges average
    the pixels they have), a block of rows at a time; NaN/Inf count as ``fill``."""
    height, width = band.shape
    out_h = -(-height // factor)
    col_starts = np.arange(0, width, factor)
    col_counts = np.diff(np.append(col_starts, width)).astype(np.float32)
    out = np.empty((out_h, len(col_starts)), np.float32)
    rows = max(1, (16 * 2**20) // (4 * width * factor))  # output rows per block
    for o0 in range(0, out_h, rows):
        o1 = min(out_h, o0 + rows)
        block = band[o0 * factor : o1 * factor].astype(np.float32)
        if fill is not None:
            block[~np.isfinite(block)] = fill
        sums = np.add.reduceat(block, col_starts, axis=1)
        row_starts = np.arange(0, block.shape[0], factor)
        row_counts = np.diff(np.append(row_starts, block.shape[0])).astype(np.float32)
        sums = np.add.reduceat(sums, row_starts, axis=0)
        out[o0:o1] = sums / row_counts[:, None] / col_counts[None, :]
    return out


def _stretch_band(band, low: float, high: float, fill: float | None) -> np.ndarray:
    """One band from [low, high] to uint8 [0, 255] (0 when constant), a block of rows at a time."""
    out = np.empty(band.shape, np.uint8)
    if high <= low:
        out[:] = 0
        return out
    factor = np.float32(255.0 / (high - low))
    r = 0
    for block in row_blocks(band, 4):
        scaled = (block.astype(np.float32) - np.float32(low)) * factor
        if fill is not None:
            scaled[~np.isfinite(scaled)] = (np.float32(fill) - np.float32(low)) * factor
        out[r : r + len(block)] = np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
        r += len(block)
    return out


def _preview_bands(
    data: np.ndarray, bands: Sequence[int], percentiles: tuple[float, float], factor: int
) -> np.ndarray:
    """(len(bands), h, w) uint8: each band stretched on its full-resolution limits, reduced by
    ``factor`` first when it is over 1."""
    planes = []
    for b in bands:
        band = data[b : b + 1]
        low, high = band_limits(band, "percentile", percentiles)
        fills = fill_values(band)
        fill = None if fills is None else float(fills[0])
        if factor > 1:
            planes.append(_stretch_band(_reduce(band[0], factor, fill), low[0], high[0], None))
        else:
            planes.append(_stretch_band(band[0], low[0], high[0], fill))
    return np.stack(planes)


def stretch_to_uint8(
    data: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)
) -> np.ndarray:
    """Each band mapped from its [p_low, p_high] to [0, 255]; constant bands become 0."""
    data = as_chw(data)
    return _preview_bands(data, range(data.shape[0]), percentiles, 1)


def _factor(height: int, width: int, max_size: int | None) -> int:
    if max_size is None or max(height, width) <= max_size:
        return 1
    return -(-max(height, width) // max(1, int(max_size)))


def _pick_bands(image, data: np.ndarray, bands) -> tuple[int, ...]:
    """The bands a preview shows: given, or the first preset, or the first three."""
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
    return tuple(check_channels(data.shape[0], bands, "image"))


def _to_rgb(stretched: np.ndarray) -> np.ndarray:
    """(k, h, w) uint8 -> (h, w, 3): RGB for 3 bands, gray for 1, magenta/green for 2."""
    if len(stretched) == 3:
        return np.ascontiguousarray(np.moveaxis(stretched, 0, -1))
    if len(stretched) == 1:
        return np.repeat(stretched[0][..., None], 3, axis=-1)
    blend = np.einsum("chw,cr->hwr", stretched.astype(np.float32), MAGENTA_GREEN)
    return np.clip(blend + 0.5, 0, 255).astype(np.uint8)


def composite(
    image: ImageArray | np.ndarray,
    bands: Sequence[int] | int | None = None,
    *,
    percentiles: tuple[float, float] = (2.0, 98.0),
    max_size: int | None = PREVIEW_MAX_SIZE,
) -> np.ndarray:
    """An (H, W, 3) uint8 preview: RGB for 3 bands, gray for 1, magenta/green blend for 2.

    An image whose longer side is over ``max_size`` is reduced by the smallest integer factor
    that fits it (``None``: full resolution)."""
    data = as_chw(image)
    bands = _pick_bands(image, data, bands)
    factor = _factor(data.shape[1], data.shape[2], max_size)
    return _to_rgb(_preview_bands(data, bands, percentiles, factor))


def model_view(
    image: ImageArray | np.ndarray,
    data_config: DataConfig,
    bands: Sequence[int] | int | None = None,
    *,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> np.ndarray:
    """(crop_h, crop_w, 3) uint8: the composite of exactly what a model with this data config
    sees (``preprocess``'s resize and centre crop), for an image of any size or shape.

    Each band is resized and cropped from the source pixels the crop reads only, then stretched
    with the limits of the full-resolution band; for a picture at its own size it equals
    ``input_view(composite(image))`` up to the order of resizing and stretching (a grey level).
    Use it to lay a model's maps (feature maps, CAMs) over the image in the model's geometry."""
    data = as_chw(image)
    bands = _pick_bands(image, data, bands)
    plan = plan_crop(data.shape[1], data.shape[2], data_config)
    planes = []
    for b in bands:
        band = data[b : b + 1]
        low, high = band_limits(band, "percentile", percentiles)
        cropped = window_resize_crop(band, plan, data_config.interpolation,
                                     fills=fill_values(band))  # fmt: skip
        planes.append(_stretch_band(cropped[0].float().numpy(), low[0], high[0], None))
    return _to_rgb(np.stack(planes))


def shrink(rgb: np.ndarray, max_size: int = PREVIEW_MAX_SIZE) -> np.ndarray:
    """An (H, W, C) uint8 image reduced by the smallest integer factor that brings its longer
    side to at most ``max_size`` (block means); returned as it is when it already fits."""
    factor = _factor(rgb.shape[0], rgb.shape[1], max_size)
    if factor == 1:
        return rgb
    planes = [_reduce(rgb[..., c], factor, None) for c in range(rgb.shape[-1])]
    return np.clip(np.stack(planes, axis=-1) + 0.5, 0, 255).astype(np.uint8)


def band_thumbnails(
    image: ImageArray | np.ndarray,
    max_size: int = 128,
    *,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> list[np.ndarray]:
    """One stretched (h, w) uint8 thumbnail per band, the longer side at most ``max_size``.

    Large bands are first reduced by an integer factor to at most twice ``max_size``, one band
    at a time; then all are resized (antialiased) to the final size."""
    data = as_chw(image)
    height, width = data.shape[1:]
    scale = min(1.0, max_size / max(height, width))
    factor = max(1, max(height, width) // (2 * max_size))
    thumbs = []
    for b in range(data.shape[0]):
        stretched = _preview_bands(data, (b,), percentiles, factor)
        if scale < 1.0:
            size = [max(1, round(height * scale)), max(1, round(width * scale))]
            stretched = F.resize(torch.from_numpy(stretched), size, antialias=True).numpy()
        thumbs.append(stretched[0])
    return thumbs


def band_stats(image: ImageArray | np.ndarray) -> list[dict]:
    """Per band: index, name, min, max, mean, std, p2, p98 (finite values) and nonfinite count.

    Read a block of rows at a time: a 100-megapixel band needs no float64 copy."""
    data = as_chw(image)
    names = _names(image)
    p_low, p_high = band_limits(data, "percentile", (2.0, 98.0))
    low, high = band_limits(data, "minmax")
    stats = []
    for i, band in enumerate(data):
        count, mean, squares = band_moments(band)  # finite values only
        stats.append({
            "index": i,
            "name": names[i] if names else f"band {i}",
            "min": float(low[i]) if count else 0.0,
            "max": float(high[i]) if count else 0.0,
            "mean": mean,
            "std": math.sqrt(squares / count) if count else 0.0,
            "p2": float(p_low[i]),
            "p98": float(p_high[i]),
            "nonfinite": band.size - count,
        })  # fmt: skip
    return stats
