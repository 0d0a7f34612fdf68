"""Turn an image of any channel count into exactly the tensor a model's DataConfig asks for.

Public API (stable)::

    preprocess(image: ImageArray | np.ndarray, data_config: DataConfig, *,
               channels: Sequence[int] | None = None, scaling: str = "auto",
               percentiles: tuple[float, float] = (2.0, 98.0)) -> torch.Tensor  # (1, C, H, W)
    select_channels(data, channels, source="image") -> np.ndarray
    fill_nonfinite(data) -> np.ndarray          NaN/Inf -> the band's smallest finite value (or 0)
    band_limits(data, mode, percentiles) -> (low, high) float64 arrays, one value per band
    scale_image(data, scaling="auto", percentiles=(2, 98)) -> torch.Tensor (C, H, W) float32

Steps, in order: choose/order channels; check the count against ``data_config.in_chans``
(ChannelMismatchError); replace NaN/Inf; scale per channel; resize the shorter side to
``resize_size`` (or ``floor(size / crop_pct)``) with antialiasing; centre-crop to the input size;
subtract ``mean`` and divide by ``std``.

Scaling modes (per channel): ``auto`` = uint8 / 255, other integers by a 2-98 % percentile
stretch, floats and bools as they are; ``minmax`` = (x - min) / (max - min); ``percentile`` =
(x - p_low) / (p_high - p_low) clipped to [0, 1]; ``zscore`` = (x - mean) / std, and then the data
config's mean/std are NOT applied again (the values already are standardised); ``none`` = values as
float. A constant band scales to 0. Statistics are per band on the full-resolution image
(percentiles of bands over 1 Mpx from a regular grid of ~1 M pixels: every n-th row and column).
In ``preprocess`` the scaling, being per-band linear, is applied after the resize, on the small
tensor; for ``percentile`` the clip to [0, 1] is applied there too (so it clips resized values).

For a uint8 image with ``scaling="auto"`` the resize runs on the uint8 tensor, exactly as
torchvision's transforms do for a uint8 tensor (``v2.Resize(antialias=True)``, ``CenterCrop``,
``ToDtype(float32, scale=True)``, ``Normalize``), so an RGB photo gives torchvision's result to
float error, bilinear and bicubic alike. This is torchvision's *tensor* path: Pillow's own bicubic
filter (used when a transform gets a PIL image) differs by a few grey levels.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from modelkit.config import DataConfig
from modelkit.errors import ChannelMismatchError, ConfigError
from modelkit.images.limits import ImageArray

CHUNK_BYTES = 16 * 2**20
SAMPLE_PIXELS = 1_000_000  # percentiles of larger bands come from a regular grid of this many
SCALINGS = ("auto", "minmax", "percentile", "zscore", "none")
_INTERPOLATIONS = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


def as_chw(image: ImageArray | np.ndarray) -> np.ndarray:
    """The (C, H, W) array of an ImageArray, or of a 2-D / 3-D (C, H, W) numpy array."""
    data = image.data if isinstance(image, ImageArray) else np.asarray(image)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ConfigError(
            f"An image array must be (H, W) or (C, H, W); this one has shape {data.shape}. "
            "Read files with modelkit.images.read.read_image, which returns (C, H, W)."
        )
    return data


def select_channels(
    data: np.ndarray, channels: Sequence[int] | None, source: str = "image"
) -> np.ndarray:
    """The chosen channels in the chosen order (all when ``channels`` is None or empty)."""
    if channels is None or len(channels) == 0:
        return data
    count = data.shape[0]
    bad = [c for c in channels if not isinstance(c, (int, np.integer)) or not 0 <= c < count]
    if bad:
        raise ConfigError(
            f"Channel numbers {bad} do not exist in the {source}, which has {count} channels "
            f"(numbered 0 to {count - 1}). Pick channels from that range."
        )
    index = [int(c) for c in channels]
    if index == list(range(count)):
        return data
    return data[index]


def fill_nonfinite(data: np.ndarray) -> np.ndarray:
    """NaN/Inf replaced by the smallest finite value of the same band (0 if it has none)."""
    if data.dtype.kind != "f":
        return data
    finite = np.isfinite(data)
    if finite.all():
        return data
    out = data.copy()
    for band in range(out.shape[0]):
        good = finite[band]
        fill = out[band][good].min() if good.any() else 0
        out[band][~good] = fill
    return out


def _integer_percentiles(band: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """Exact percentiles (numpy's default linear rule) of an 8/16-bit band, via a histogram."""
    flat = band.ravel()
    if band.dtype.kind in "ub":  # non-negative already: count directly, no int64 copy
        offset, counts = 0, np.bincount(flat)
    else:
        offset = int(flat.min())
        counts = np.bincount(flat.astype(np.int64) - offset)
    cumulative = np.cumsum(counts)
    n = cumulative[-1]
    result = []
    for p in percentiles:
        position = (n - 1) * p / 100.0  # numpy's default 'linear' method
        below, frac = int(math.floor(position)), position - math.floor(position)
        lo = int(np.searchsorted(cumulative, below + 1))
        hi = int(np.searchsorted(cumulative, min(below + 2, n)))
        result.append(offset + lo + frac * (hi - lo))
    return result[0], result[1]


def band_limits(
    data: np.ndarray, mode: str = "percentile", percentiles: tuple[float, float] = (2.0, 98.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (low, high) for ``minmax`` or ``percentile`` stretching; NaN/Inf are ignored."""
    data = fill_nonfinite(data)
    lows, highs = np.empty(data.shape[0]), np.empty(data.shape[0])
    small_ints = data.dtype.kind in "ub" or (data.dtype.kind == "i" and data.dtype.itemsize <= 2)
    for i, band in enumerate(data):
        if mode == "minmax":
            lows[i], highs[i] = band.min(), band.max()
        elif small_ints:
            step = math.ceil(math.sqrt(band.size / SAMPLE_PIXELS))  # every step-th row and column
            lows[i], highs[i] = _integer_percentiles(band[::step, ::step], percentiles)
        else:
            flat = band.ravel()
            if flat.size > SAMPLE_PIXELS:  # a regular subsample keeps huge float bands fast
                flat = flat[:: math.ceil(flat.size / SAMPLE_PIXELS)]
            lows[i], highs[i] = np.percentile(flat, percentiles)
    return lows, highs


def scaling_params(
    data: np.ndarray, scaling: str = "auto", percentiles: tuple[float, float] = (2.0, 98.0)
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-band (offset, factor, clip): scaled = (x - offset) * factor, then clipped to [0, 1]
    when ``clip``. Computed on the full-resolution bands (NaN/Inf replaced first)."""
    if scaling not in SCALINGS:
        raise ConfigError(f"Scaling '{scaling}' is not known; use one of {', '.join(SCALINGS)}.")
    if not 0 <= percentiles[0] < percentiles[1] <= 100:
        raise ConfigError(
            f"Percentiles {percentiles} must satisfy 0 <= low < high <= 100, e.g. (2, 98)."
        )
    count = data.shape[0]
    if scaling == "auto":
        if data.dtype == np.uint8:
            return np.zeros(count), np.full(count, 1 / 255), False
        scaling = "percentile" if data.dtype.kind in "iu" else "none"
    if scaling == "none":
        return np.zeros(count), np.ones(count), False
    data = fill_nonfinite(data)
    if scaling == "zscore":
        low = np.array([band.mean(dtype=np.float64) for band in data])
        spread = np.array([band.std(dtype=np.float64, ddof=1) if band.size > 1 else 0.0
                           for band in data])  # fmt: skip
    else:
        low, high = band_limits(data, scaling, percentiles)
        spread = high - low
    factor = np.where(spread > 0, 1.0 / np.where(spread > 0, spread, 1.0), 0.0)
    return low, factor, scaling == "percentile"


def apply_scaling(
    tensor: torch.Tensor, params: tuple[np.ndarray, np.ndarray, bool]
) -> torch.Tensor:
    """(x - offset) * factor per band, in place on a float tensor, clipped when asked."""
    offset, factor, clip = params
    view = (-1, 1, 1)
    tensor.sub_(torch.tensor(offset, dtype=torch.float32).view(view))
    tensor.mul_(torch.tensor(factor, dtype=torch.float32).view(view))
    return tensor.clamp_(0.0, 1.0) if clip else tensor


def _float_tensor(data: np.ndarray) -> torch.Tensor:
    """A float32 tensor that never shares memory with the caller's array."""
    data = fill_nonfinite(data)
    tensor = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if tensor.data_ptr() == data.__array_interface__["data"][0]:
        tensor = tensor.clone()
    return tensor


def scale_image(
    data: np.ndarray, scaling: str = "auto", percentiles: tuple[float, float] = (2.0, 98.0)
) -> torch.Tensor:
    """Per-channel scaling of a (C, H, W) array to a float32 tensor (see the module docstring)."""
    params = scaling_params(data, scaling, percentiles)
    return apply_scaling(_float_tensor(data), params)


def resize_and_crop(tensor: torch.Tensor, data_config: DataConfig) -> torch.Tensor:
    """Shorter side to resize_size (or floor(size / crop_pct)), antialiased; then centre crop."""
    height, width = data_config.input_size[1:]
    interpolation = _INTERPOLATIONS.get(data_config.interpolation)
    if interpolation is None:
        raise ConfigError(
            f"Interpolation '{data_config.interpolation}' is not known; use one of "
            f"{', '.join(_INTERPOLATIONS)}."
        )
    if data_config.resize_size:
        size = [int(data_config.resize_size)]
    elif height == width:
        size = [int(math.floor(height / data_config.crop_pct))]
    else:
        size = [int(math.floor(height / data_config.crop_pct)),
                int(math.floor(width / data_config.crop_pct))]  # fmt: skip
    tensor = F.resize(tensor, size, interpolation=interpolation, antialias=True)
    return F.center_crop(tensor, [height, width])


def preprocess(
    image: ImageArray | np.ndarray,
    data_config: DataConfig,
    *,
    channels: Sequence[int] | None = None,
    scaling: str = "auto",
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> torch.Tensor:
    """A (1, C, H, W) float32 tensor ready for a model with this data config."""
    if scaling == "auto" and data_config.value_scaling:  # weights published on raw values
        scaling = data_config.value_scaling
    data = select_channels(as_chw(image), channels)
    want = data_config.in_chans
    if data.shape[0] != want:
        picked = "the chosen channels give" if channels else "the image has"
        raise ChannelMismatchError(
            f"The model takes {want} input channel{'s' * (want != 1)} (in_chans={want}), but "
            f"{picked} {data.shape[0]}. Either pick {want} channel{'s' * (want != 1)} (e.g. "
            f"channels={list(range(min(want, data.shape[0])))}), or create the model with "
            f"in_chans={data.shape[0]}."
        )
    if len(data_config.mean) != want or len(data_config.std) != want:
        raise ConfigError(
            f"The data config has {len(data_config.mean)} means and {len(data_config.std)} stds "
            f"for {want} channels; use DataConfig.with_in_chans({want})."
        )
    if scaling == "auto" and data.dtype == np.uint8:
        # torchvision's uint8 tensor path: resize in uint8, then scale (see the docstring)
        # from_numpy keeps the array's strides: an HWC photo stays channels-last, which
        # torchvision's resize handles fastest (the same memory layout its own pipeline sees)
        with warnings.catch_warnings():  # a read-only array (Pillow's) is fine: only read here
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            source = torch.from_numpy(data)
        tensor = resize_and_crop(source, data_config)
        tensor = tensor.float().div_(255.0)
    else:
        # The per-band statistics come from the full-resolution bands; the scaling itself is
        # linear, so it runs after the resize on the small tensor (clipping, for "percentile",
        # too). A few bands at a time keep the float copy under ~16 MB beside the image.
        params = scaling_params(data, scaling, percentiles)
        step = max(1, CHUNK_BYTES // (4 * data.shape[1] * data.shape[2]))
        parts = [
            resize_and_crop(_float_tensor(data[i : i + step]), data_config)
            for i in range(0, data.shape[0], step)
        ]
        tensor = apply_scaling(parts[0] if len(parts) == 1 else torch.cat(parts), params)
    if scaling != "zscore":
        tensor = F.normalize(tensor, list(data_config.mean), list(data_config.std))
    return tensor.unsqueeze(0).contiguous()
