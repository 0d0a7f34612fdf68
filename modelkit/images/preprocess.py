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
(ChannelMismatchError); replace NaN/Inf; scale per channel; resize with antialiasing and crop to
the input size as timm's eval transform does for the data config's ``crop_mode``
(``resize.plan_crop``): ``center`` resizes the shorter side to ``resize_size`` (or
``floor(size / crop_pct)``) and crops the centre, ``squash`` resizes both sides to that and crops
the centre, ``border`` resizes the longer side to it and crops or pads the centre, the pad being
the mean; subtract ``mean`` and divide by ``std``.

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
from modelkit.images.resize import CropPlan, full_resize_bytes, plan_crop, window_resize_crop

CHUNK_BYTES = 16 * 2**20
FULL_RESIZE_BYTES = 64 * 2**20  # above this, resize only the part of the image the crop reads
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
    index = check_channels(count, channels, source)
    if index == list(range(count)):
        return data
    return data[index]


def check_channels(count: int, channels: Sequence[int], source: str = "image") -> list[int]:
    """The channel numbers as ints; ConfigError naming any that a ``count``-channel image lacks."""
    bad = [c for c in channels if not isinstance(c, (int, np.integer)) or not 0 <= c < count]
    if bad:
        raise ConfigError(
            f"Channel numbers {bad} do not exist in the {source}, which has {count} channels "
            f"(numbered 0 to {count - 1}). Pick channels from that range."
        )
    return [int(c) for c in channels]


def channel_mismatch(want: int, fed: int, picked: bool, count: int) -> str:
    """Plain words for a channel count that does not fit, naming what would fit."""

    def channels(n: int) -> str:
        return f"{n} channel{'s' * (n != 1)}"

    what = f"the {fed} channels chosen" if picked else f"the image's {channels(fed)}"
    fixes = [f"set the model's input channels (in_chans) to {fed}"]
    if count >= want:
        fixes.append(f"choose {want} of the image's {count} channels")
    return (f"The model takes {channels(want)}, but it was given {what}. To fix it, "
            f"{' or '.join(fixes)}.")  # fmt: skip


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


def row_blocks(band: np.ndarray, itemsize: int = 8):
    """Successive blocks of rows of a (H, W) band, each about CHUNK_BYTES at ``itemsize``."""
    step = max(1, CHUNK_BYTES // max(1, band.shape[1] * itemsize))
    for r in range(0, band.shape[0], step):
        yield band[r : r + step]


def band_moments(band: np.ndarray, fill: float | None = None) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations) in float64, a block of rows at a time.

    NaN/Inf count as ``fill`` when it is given, else they are left out."""
    count, total = 0, 0.0
    for block in row_blocks(band):
        block = _finite_block(block, fill)
        count, total = count + block.size, total + float(block.sum(dtype=np.float64))
    mean = total / count if count else 0.0
    squares = 0.0
    for block in row_blocks(band):
        deviation = _finite_block(block, fill).astype(np.float64) - mean
        squares += float(np.dot(deviation.ravel(), deviation.ravel()))
    return count, mean, squares


def _finite_block(block: np.ndarray, fill: float | None) -> np.ndarray:
    if block.dtype.kind != "f":
        return block
    finite = np.isfinite(block)
    if finite.all():
        return block
    return np.where(finite, block, fill) if fill is not None else block[finite]


def band_limits(
    data: np.ndarray, mode: str = "percentile", percentiles: tuple[float, float] = (2.0, 98.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (low, high) for ``minmax`` or ``percentile`` stretching; NaN/Inf count as the
    band's smallest finite value. Reads the full bands without copying them."""
    fills = fill_values(data)
    lows, highs = np.empty(data.shape[0]), np.empty(data.shape[0])
    small_ints = data.dtype.kind in "ub" or (data.dtype.kind == "i" and data.dtype.itemsize <= 2)
    for i, band in enumerate(data):
        fill = None if fills is None else fills[i]
        if mode == "minmax":
            parts = [_finite_block(b, None) for b in row_blocks(band)]
            parts = [(b.min(), b.max()) for b in parts if b.size]
            lows[i] = min((p[0] for p in parts), default=0.0)
            highs[i] = max((p[1] for p in parts), default=0.0)
        elif small_ints:
            step = math.ceil(math.sqrt(band.size / SAMPLE_PIXELS))  # every step-th row and column
            lows[i], highs[i] = _integer_percentiles(band[::step, ::step], percentiles)
        else:
            flat = band.ravel()
            if flat.size > SAMPLE_PIXELS:  # a regular subsample keeps huge float bands fast
                flat = flat[:: math.ceil(flat.size / SAMPLE_PIXELS)]
            flat = _finite_block(np.array(flat), fill)
            lows[i], highs[i] = np.percentile(flat, percentiles)
    return lows, highs


def scaling_params(
    data: np.ndarray, scaling: str = "auto", percentiles: tuple[float, float] = (2.0, 98.0)
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-band (offset, factor, clip): scaled = (x - offset) * factor, then clipped to [0, 1]
    when ``clip``. Computed on the full-resolution bands (NaN/Inf as the band minimum), a block
    of rows at a time (no copy of the image)."""
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
    if scaling == "zscore":
        fills = fill_values(data)
        moments = [band_moments(band, None if fills is None else fills[i])
                   for i, band in enumerate(data)]  # fmt: skip
        low = np.array([mean for _, mean, _ in moments])
        spread = np.array([math.sqrt(sq / (n - 1)) if n > 1 else 0.0 for n, _, sq in moments])
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
    """Resize and crop as ``data_config.crop_mode`` says (``resize.plan_crop``), antialiased;
    a pad (a crop larger than the resized image) is left at 0 here (see ``fill_padding``).

    torchvision's own resize when what it allocates is small (every ordinary image); otherwise
    only the source pixels the crop reads are resized (``resize.window_resize_crop``), so a
    1 x 100,000 image costs what a square one does. uint8 in, uint8 out.
    """
    plan = plan_crop(tensor.shape[-2], tensor.shape[-1], data_config)
    cost = full_resize_bytes(plan, tensor.shape[0], tensor.element_size())
    if tensor.dtype == torch.uint8:  # its uint8 kernel first repacks the image, 4 bytes a pixel
        cost += 4 * tensor.shape[-2] * tensor.shape[-1] * math.ceil(tensor.shape[0] / 4)
    # torch 2.14's antialiased float kernel gives every row the same value when the output is
    # one column wide (a 'border' resize of a thin tall strip); the window's weights do not
    one_column = plan.resized[1] == 1 and tensor.dtype != torch.uint8
    if cost > FULL_RESIZE_BYTES or one_column:
        return window_resize_crop(tensor, plan, data_config.interpolation)
    interpolation = _INTERPOLATIONS[data_config.interpolation]
    tensor = F.resize(tensor, list(plan.resized), interpolation=interpolation, antialias=True)
    return F.center_crop(tensor, list(plan.crop))


def fill_padding(tensor: torch.Tensor, plan: CropPlan, values: Sequence[float]) -> torch.Tensor:
    """In place: the rows and columns of the crop outside the resized image (a pad) set to
    ``values``, one per channel."""
    top, bottom, left, right = plan.padding()
    if not (top or bottom or left or right):
        return tensor
    fill = torch.tensor(list(values), dtype=tensor.dtype).view(-1, 1, 1)
    height, width = tensor.shape[-2:]
    for rows, cols in (
        (slice(0, top), slice(None)),
        (slice(height - bottom, height), slice(None)),
        (slice(None), slice(0, left)),
        (slice(None), slice(width - right, width)),
    ):
        tensor[:, rows, cols] = fill
    return tensor


def fill_values(data: np.ndarray) -> np.ndarray | None:
    """Per band, what NaN/Inf become (see fill_nonfinite), read in row blocks; None if none."""
    if data.dtype.kind != "f":
        return None
    fills, found = np.zeros(data.shape[0]), False
    for i, band in enumerate(data):
        low = np.inf
        for block in row_blocks(band, data.itemsize):
            finite = np.isfinite(block)
            found = found or not finite.all()
            if finite.any():
                low = min(low, float(block[finite].min()))
        fills[i] = low if np.isfinite(low) else 0.0
    return fills if found else None


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
        count = as_chw(image).shape[0]
        raise ChannelMismatchError(channel_mismatch(want, data.shape[0], bool(channels), count))
    if len(data_config.mean) != want or len(data_config.std) != want:
        raise ConfigError(
            f"The data config has {len(data_config.mean)} means and {len(data_config.std)} stds "
            f"for {want} channels; use DataConfig.with_in_chans({want})."
        )
    plan = plan_crop(data.shape[1], data.shape[2], data_config)
    if scaling == "auto" and data.dtype == np.uint8:
        # torchvision's uint8 tensor path: resize in uint8, then scale (see the docstring)
        # from_numpy keeps the array's strides: an HWC photo stays channels-last, which
        # torchvision's resize handles fastest (the same memory layout its own pipeline sees)
        with warnings.catch_warnings():  # a read-only array (Pillow's) is fine: only read here
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            source = torch.from_numpy(data)
        tensor = resize_and_crop(source, data_config)
        tensor = tensor.float().div_(255.0)
        # 'border' pads with the mean. timm pads its 8-bit image with round(255 * mean): the
        # mean to the nearest grey level; so does this path, which gives timm's numbers exactly
        mean = [round(255 * m) / 255 for m in data_config.mean]
    else:
        # The per-band statistics come from the full-resolution bands; the scaling itself is
        # linear, so it runs after the resize on the small tensor (clipping, for "percentile",
        # too). A few bands at a time keep the float copy under ~16 MB beside the image.
        # A band too large for a float copy plus torchvision's resize is resized from the part
        # the crop reads only, a block of rows at a time.
        params = scaling_params(data, scaling, percentiles)
        one_band = 4 * data.shape[1] * data.shape[2] + full_resize_bytes(plan, 1, 4)
        if one_band > FULL_RESIZE_BYTES:
            tensor = window_resize_crop(data, plan, data_config.interpolation,
                                        fills=fill_values(data))  # fmt: skip
        else:
            step = max(1, CHUNK_BYTES // (4 * data.shape[1] * data.shape[2]))
            parts = [
                resize_and_crop(_float_tensor(data[i : i + step]), data_config)
                for i in range(0, data.shape[0], step)
            ]
            tensor = torch.cat(parts) if len(parts) > 1 else parts[0]
        tensor = apply_scaling(tensor, params)
        # 'border' pads with the mean itself: float and 16-bit data have no grey levels to round
        # to, so the pad normalises to exactly 0 (timm's 8-bit rounding moves it by at most
        # 0.5 / 255 / std). After a z-score the mean is 0, and the data config's is not applied.
        mean = [0.0] * want if scaling == "zscore" else list(data_config.mean)
    # the other modes pad with zeros (torchvision's and timm's CenterCrop), after the scaling
    tensor = fill_padding(tensor, plan, mean if plan.mode == "border" else [0.0] * want)
    if scaling != "zscore":
        tensor = F.normalize(tensor, list(data_config.mean), list(data_config.std))
    return tensor.unsqueeze(0).contiguous()
