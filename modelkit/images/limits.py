"""What an image is once decoded (``ImageArray``), and the limits every reader checks before it
decodes anything (``ReadLimits``, ``check_size``, ``check_dtype``). Imports numpy only: every
reader imports this module, and it imports no reader."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from modelkit.errors import ImageReadError

_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float


@dataclass(frozen=True)
class ReadLimits:
    """Largest upload accepted: pixels per plane, channel count, and decoded bytes in total."""

    max_pixels: int = 100_000_000
    max_channels: int = 512
    max_bytes: int = 2 * 1024**3


@dataclass
class ImageArray:
    """A decoded image: ``data`` is (C, H, W) in the file's dtype, plus what was found and done."""

    data: np.ndarray
    filename: str
    format: str
    original_shape: tuple[int, ...]
    axes: str
    dtype: str
    value_range: tuple[float, float]
    band_names: list[str] | None = None
    nan_count: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def num_channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def height(self) -> int:
        return int(self.data.shape[1])

    @property
    def width(self) -> int:
        return int(self.data.shape[2])


def fail(filename: str, problem: str, fix: str) -> ImageReadError:
    """An ImageReadError whose message names the file, the problem and what would work."""
    return ImageReadError(f"Cannot read '{filename}': {problem}. {fix}")


def check_dtype(dtype: np.dtype, filename: str) -> None:
    """Refuse dtypes that are unsafe or meaningless as pixels."""
    if dtype.hasobject:
        raise fail(
            filename,
            "it holds Python objects, which cannot be read safely",
            "Save a numeric array, e.g. numpy.save('image.npy', array.astype('float32')).",
        )
    if dtype.names is not None or dtype.kind not in _NUMERIC_KINDS:
        raise fail(
            filename,
            f"its values have type '{dtype}', which is not a number type an image can have",
            "Save real numbers (uint8, uint16, int16, float32, ...); for complex data save "
            "numpy.abs(array) or the real and imaginary parts as two channels.",
        )


def check_size(
    shape_chw: tuple[int, int, int],
    itemsize: int,
    filename: str,
    limits: ReadLimits,
    total_bytes: int | None = None,
) -> None:
    """Check channels, pixels per plane and decoded bytes against the limits, before decoding."""
    channels, height, width = (int(v) for v in shape_chw)
    if min(channels, height, width) <= 0:
        raise fail(
            filename,
            f"the image is empty (shape {channels}x{height}x{width})",
            "Upload an image with at least one pixel.",
        )
    if channels > limits.max_channels:
        raise fail(
            filename,
            f"it has {channels} channels; at most {limits.max_channels} are accepted",
            "Keep only the bands you need, or check the channel layout.",
        )
    if height * width > limits.max_pixels:
        raise fail(
            filename,
            f"it is {width}x{height} = {height * width:,} pixels per band; at "
            f"most {limits.max_pixels:,} are accepted",
            "Downscale or crop it first.",
        )
    nbytes = total_bytes if total_bytes is not None else channels * height * width * itemsize
    if nbytes > limits.max_bytes:
        raise fail(
            filename,
            f"decoded it would take {nbytes / 2**20:,.0f} MiB; at most "
            f"{limits.max_bytes / 2**20:,.0f} MiB are accepted",
            "Crop it, keep fewer bands, or save it with a smaller dtype.",
        )
