"""Resize-then-crop that costs what the crop costs, whatever the image's shape.

Public API::

    plan_crop(height, width, data_config) -> CropPlan   # resized size, crop size and offset
    full_resize_bytes(plan, channels, itemsize) -> int  # what resize-then-crop would allocate
    source_box(plan, interpolation) -> (top, bottom, left, right)  # source pixels the crop reads
    window_resize_crop(data, plan, interpolation, *, fills=None) -> torch.Tensor  # (C, h, w)

torchvision resizes the shorter side to ``resize_size`` and then crops the centre; for a
1 x 100,000 image that resized image has 25.6 M columns (26 GB as float32) of which 224 are kept.
``plan_crop`` also plans timm's other crop modes ('squash' and 'border' shrink a strip's long side
instead, and 'border' pads). Resizing is separable and every output pixel is a weighted sum of a
few source pixels, so here each axis is resized on its own, a block of rows at a time: an axis
whose resized length is close to the crop's (any downscale) by torch's own kernel, then cut to
the crop; an axis blown up far beyond the crop (the long side of a thin strip) by the weights of
the kept positions only (the formulas of torch's antialiased CPU kernel: the same centres,
supports, filters and float32 arithmetic), applied to the few source pixels they read. When the
width pass would keep too many rows (a tall strip whose height is squashed), the image is
transposed and its height resized first. Memory is bounded by the crop and a block of rows;
time by the source pixels the crop reads.

Compared with torchvision's ``resize`` + ``center_crop`` the result agrees to float rounding
(~1e-6) on float tensors, and exactly on uint8 tensors where both axes go through torch's kernel
(its uint8 kernel then runs, pass by pass, on blocks of rows). Where a blown-up axis uses the
weights here, uint8 values are rounded after each pass as torch's fixed-point kernel does, and
can differ from it by a grey level or two (by one where the height pass runs first: the rounding
comes after it). ``preprocess`` keeps torchvision's own path whenever it
is cheap (ordinary images), so their results do not change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from modelkit.config import DataConfig, check_crop_mode
from modelkit.errors import ConfigError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
BLOCK_BYTES = 16 * 2**20  # float32 working set of one block of rows (or channels)


@dataclass(frozen=True)
class CropPlan:
    """Source (H, W), the resized (H, W), the crop (H, W), and the resized row and column where
    the crop starts (negative: the crop is larger and padded there); ``mode`` is the data
    config's crop_mode ('border' pads with the mean, the others with zeros)."""

    source: tuple[int, int]
    resized: tuple[int, int]
    crop: tuple[int, int]
    first: tuple[int, int]
    mode: str = "center"

    def padding(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right): rows and columns of the crop outside the resized image."""
        pads = []
        for axis in (0, 1):
            before = max(0, -self.first[axis])
            after = max(0, self.first[axis] + self.crop[axis] - self.resized[axis])
            pads += [min(before, self.crop[axis]), min(after, self.crop[axis])]
        return pads[0], pads[1], pads[2], pads[3]


def _resized_size(height: int, width: int, size: list[int]) -> tuple[int, int]:
    """torchvision's output size for ``resize(size)`` (one value: the shorter side)."""
    if len(size) == 2:
        return size[0], size[1]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size[0], int(size[0] * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def _keep_ratio(height: int, width: int, target: tuple[int, int], longest: bool) -> tuple[int, int]:
    """timm's ResizeKeepRatio: one scale for both sides, chosen so the longer (``longest``) or
    the shorter side fits ``target``; each side rounded (Python's round), never below 1 pixel
    (a 1 x 100,000 strip keeps a row where PIL would refuse a 0-pixel side)."""
    ratio_h, ratio_w = height / target[0], width / target[1]
    ratio = max(ratio_h, ratio_w) if longest else min(ratio_h, ratio_w)
    return max(1, round(height / ratio)), max(1, round(width / ratio))


def _crop_start(size: int, crop: int) -> int:
    """torchvision's centre-crop anchor on one axis (negative = padding before); timm's
    CenterCropOrPad puts the same floor(pad / 2) before and crops at the same rounded centre."""
    if crop > size:
        return -((crop - size) // 2)
    return int(round((size - crop) / 2.0))


def plan_crop(height: int, width: int, data_config: DataConfig) -> CropPlan:
    """Where ``preprocess``'s resize and crop put the model input, for an H x W source.

    timm's eval transform for each ``crop_mode``, with scale = floor(crop / crop_pct) per side
    (``resize_size`` instead, when set: torchvision's explicit resize):

    - ``center``: the shorter side to the scale (a non-square crop: the smallest aspect-keeping
      size that covers the scale on both sides), then the centre crop;
    - ``squash``: both sides to exactly the scale (aspect ratio not kept), then the centre crop;
    - ``border``: aspect kept, the longer side to the scale, then centre crop-or-pad (the pad
      is the mean, filled by ``preprocess``).
    """
    if data_config.interpolation not in INTERPOLATIONS:
        raise ConfigError(
            f"Interpolation '{data_config.interpolation}' is not known; use one of "
            f"{', '.join(INTERPOLATIONS)}."
        )
    mode = check_crop_mode(data_config.crop_mode)
    height, width = int(height), int(width)
    crop_h, crop_w = (int(v) for v in data_config.input_size[1:])
    if data_config.resize_size:
        scale = (int(data_config.resize_size),) * 2
    else:
        scale = (int(math.floor(crop_h / data_config.crop_pct)),
                 int(math.floor(crop_w / data_config.crop_pct)))  # fmt: skip
    if mode == "squash":
        out_h, out_w = scale
    elif mode == "border":
        out_h, out_w = _keep_ratio(height, width, scale, longest=True)
    elif scale[0] == scale[1]:  # torchvision's Resize(int): the shorter side, the other truncated
        out_h, out_w = _resized_size(height, width, [scale[0]])
    else:
        out_h, out_w = _keep_ratio(height, width, scale, longest=False)
    return CropPlan(
        source=(height, width),
        resized=(out_h, out_w),
        crop=(crop_h, crop_w),
        first=(_crop_start(out_h, crop_h), _crop_start(out_w, crop_w)),
        mode=mode,
    )


def full_resize_bytes(plan: CropPlan, channels: int, itemsize: int) -> int:
    """Bytes torchvision's resize allocates for this plan: the width pass, then the full image."""
    (in_h, _), (out_h, out_w) = plan.source, plan.resized
    return channels * itemsize * (in_h * out_w + out_h * out_w)


def _filter(x: np.ndarray, interpolation: str) -> np.ndarray:
    """torch's antialiasing filters: triangle, or Keys cubic with a = -0.5 (as PIL)."""
    x = np.abs(x)
    if interpolation == "bilinear":
        return np.where(x < 1, 1 - x, 0).astype(np.float32)
    a = np.float32(-0.5)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, 0)).astype(np.float32)


def axis_taps(
    in_size: int, out_size: int, first: int, count: int, interpolation: str
) -> tuple[np.ndarray, np.ndarray]:
    """Source indices (count, T) and weights (count, T) of resized positions ``first`` ..
    ``first + count - 1`` on one axis; positions outside the resized axis get zero weights."""
    f32 = np.float32
    pos = np.arange(first, first + count, dtype=np.int64)
    inside = (pos >= 0) & (pos < out_size)
    if interpolation == "nearest":  # torch's 'nearest': floor(i * in / out) in float32
        if out_size == in_size:
            src = pos
        elif out_size == 2 * in_size:
            src = pos >> 1
        else:
            scale = f32(in_size) / f32(out_size)
            src = np.floor(pos.astype(f32) * scale).astype(np.int64)
        src = np.clip(src, 0, in_size - 1)
        return src[:, None], inside[:, None].astype(f32)
    scale = f32(in_size) / f32(out_size)
    half = f32(1.0 if interpolation == "bilinear" else 2.0)  # half the filter's width
    support = half * scale if scale >= 1 else half
    invscale = f32(1) / scale if scale >= 1 else f32(1)
    center = (np.float64(scale) * (pos + 0.5)).astype(f32)
    lo = np.maximum(np.trunc((center - support).astype(np.float64) + 0.5).astype(np.int64), 0)
    hi = np.minimum(np.trunc((center + support).astype(np.float64) + 0.5).astype(np.int64), in_size)
    taps = int(math.ceil(support)) * 2 + 1
    size = np.clip(hi - lo, 0, taps)
    index = lo[:, None] + np.arange(taps)
    x = ((index.astype(f32) - center[:, None]).astype(np.float64) + 0.5) * invscale
    weights = _filter(x.astype(f32), interpolation)
    weights[(np.arange(taps) >= size[:, None]) | ~inside[:, None]] = 0
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total != 0)
    return np.clip(index, 0, in_size - 1), weights


def _matrix(index: np.ndarray, weights: np.ndarray) -> tuple[torch.Tensor, int, int]:
    """A dense (count, hi - lo) weight matrix over source positions lo..hi-1 that are read."""
    used = index[weights != 0]
    lo, hi = (int(used.min()), int(used.max()) + 1) if used.size else (0, 1)
    matrix = np.zeros((index.shape[0], hi - lo), np.float32)
    np.add.at(matrix, (np.arange(index.shape[0])[:, None], np.clip(index - lo, 0, hi - lo - 1)),
              weights)  # fmt: skip
    return torch.from_numpy(matrix), lo, hi


def source_box(plan: CropPlan, interpolation: str) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the source rows and columns the crop's pixels are made from."""
    box = []
    for axis in (0, 1):
        index, weights = axis_taps(plan.source[axis], plan.resized[axis], plan.first[axis],
                                   plan.crop[axis], interpolation)  # fmt: skip
        _, lo, hi = _matrix(index, weights)
        box += [lo, hi]
    return box[0], box[1], box[2], box[3]


def _float_block(data, rows: slice, cols: slice, fills) -> torch.Tensor:
    """float32 copy of data[:, rows, cols] (numpy or torch), NaN/Inf set to the band's fill."""
    if isinstance(data, torch.Tensor):
        block = data[:, rows, cols].to(torch.float32, copy=True)
    else:
        block = torch.from_numpy(np.array(data[:, rows, cols], dtype=np.float32, copy=True))
    if fills is not None:
        for band, fill in enumerate(fills):
            plane = block[band]
            plane[~torch.isfinite(plane)] = float(fill)
    return block


def _interpolate(x: torch.Tensor, size: list[int], interpolation: str) -> torch.Tensor:
    """torch's antialiased resize of a float (C, H, W) tensor, as torchvision calls it."""
    smooth = interpolation != "nearest"
    return torch.nn.functional.interpolate(
        x[None], size=size, mode=interpolation, antialias=smooth,
        align_corners=False if smooth else None,
    )[0]  # fmt: skip


def _axis(plan: CropPlan, axis: int, interpolation: str):
    """(lo, hi, apply, native): the source range one axis reads and ``apply(x, dim)``, which resizes
    that range of ``x`` along ``dim`` and keeps the crop. torch's own kernel over the whole axis
    when its resized length is near the crop's (downscaling: the usual case; ``native``), else
    the weights of the kept positions only (a long axis blown up: a few source pixels)."""
    size, out, first, count = (plan.source[axis], plan.resized[axis], plan.first[axis],
                               plan.crop[axis])  # fmt: skip
    if 0 <= first and first + count <= out <= 4 * count + 64:

        def resize(x: torch.Tensor, dim: int) -> torch.Tensor:
            shape = list(x.shape[1:])
            shape[dim - 1] = out
            return _interpolate(x, shape, interpolation).narrow(dim, first, count)

        return 0, size, resize, True
    matrix, lo, hi = _matrix(*axis_taps(size, out, first, count, interpolation))
    transposed = matrix.T.contiguous()

    def weigh(x: torch.Tensor, dim: int) -> torch.Tensor:
        return x @ transposed if dim == 2 else matrix @ x

    return lo, hi, weigh, False


def _swap(data):
    """(C, H, W) -> (C, W, H), a view (numpy or torch)."""
    return data.transpose(1, 2) if isinstance(data, torch.Tensor) else data.transpose(0, 2, 1)


def _swap_plan(plan: CropPlan) -> CropPlan:
    """The plan of the transposed image."""
    return CropPlan(*(tuple(reversed(v)) for v in (plan.source, plan.resized, plan.crop,
                                                   plan.first)), mode=plan.mode)  # fmt: skip


def window_resize_crop(data, plan: CropPlan, interpolation: str, *, fills=None) -> torch.Tensor:
    """``center_crop(resize(data))`` computed from the source pixels the crop reads only.

    ``data`` is (C, H, W), numpy or torch, any real dtype; ``fills`` (one value per band)
    replaces NaN/Inf. Returns float32 (C, crop_h, crop_w); for uint8 input the values are
    rounded to whole grey levels (half up, after each pass, as torchvision's uint8 kernel does)
    and returned as uint8.
    """
    channels, (crop_h, crop_w) = data.shape[0], plan.crop
    row_lo, row_hi, resize_rows, rows_native = _axis(plan, 0, interpolation)
    col_lo, col_hi, resize_cols, cols_native = _axis(plan, 1, interpolation)
    height, width = row_hi - row_lo, col_hi - col_lo
    if height * crop_w > BLOCK_BYTES // 4 and width * crop_h < height * crop_w:
        # the width pass would keep every row it reads (a tall strip squashed or bordered:
        # 100,000 rows x the crop's columns); the height pass first keeps far less
        flipped = window_resize_crop(_swap(data), _swap_plan(plan), interpolation, fills=fills)
        return flipped.transpose(1, 2).contiguous()
    whole = data.dtype in (np.dtype(np.uint8), torch.uint8)
    out = torch.empty(channels, crop_h, crop_w)
    # channel groups keep the width-pass result (group, height, crop_w) within a block
    group = max(1, BLOCK_BYTES // (4 * height * crop_w))
    for c0 in range(0, channels, group):
        bands = slice(c0, min(channels, c0 + group))
        narrow = torch.empty(bands.stop - c0, height, crop_w)
        band_fills = None if fills is None else fills[bands]
        row_bytes = 4 * (bands.stop - c0) * (width + max(plan.resized[1], crop_w))
        step = max(1, BLOCK_BYTES // row_bytes)
        for r0 in range(0, height, step):
            rows, cols = slice(row_lo + r0, row_lo + min(height, r0 + step)), slice(col_lo, col_hi)
            if whole and cols_native:  # torch's uint8 kernel: torchvision's numbers exactly
                block = torch.as_tensor(data[bands][:, rows, cols]).contiguous()
            else:
                block = _float_block(data[bands], rows, cols, band_fills)
            narrow[:, r0 : r0 + step] = resize_cols(block, 2)
        if whole and not cols_native:  # torchvision's uint8 resize rounds between its passes
            narrow.add_(0.5).floor_().clamp_(0, 255)
        out[bands] = resize_rows(narrow.to(torch.uint8) if whole and rows_native else narrow, 1)
    if whole:
        return out.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8)
    return out
