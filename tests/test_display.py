"""display: composites with a per-band 2-98 % stretch, Sentinel-2 presets, gray and two-colour
previews, thumbnails and statistics."""

from __future__ import annotations

import numpy as np
import pytest

from modelkit.errors import ConfigError
from modelkit.images.display import (
    band_presets,
    band_stats,
    band_thumbnails,
    composite,
    stretch_to_uint8,
)
from modelkit.images.read import ImageArray

S2_NAMES = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def image_with(data: np.ndarray, names: list[str] | None) -> ImageArray:
    return ImageArray(data=data, filename="x", format="tiff", original_shape=data.shape,
                      axes="CYX", dtype=str(data.dtype), value_range=(0, 1),
                      band_names=names)  # fmt: skip


def test_sentinel2_presets_follow_band_names_in_any_order():
    data = np.zeros((13, 4, 4), np.uint16)
    presets = band_presets(image_with(data, S2_NAMES))
    assert presets == {
        "True colour (B4, B3, B2)": (3, 2, 1),
        "Colour infrared (B8, B4, B3)": (7, 3, 2),
        "SWIR (B12, B8A, B4)": (12, 8, 3),
    }
    shuffled = ["B04", "B8A", "B12", "B03", "B02", "B08"]  # zero-padded names, other order
    presets = band_presets(image_with(np.zeros((6, 2, 2)), shuffled))
    assert presets["True colour (B4, B3, B2)"] == (0, 3, 4)
    assert presets["SWIR (B12, B8A, B4)"] == (2, 1, 0)


def test_presets_without_sensor_names():
    assert band_presets(np.zeros((4, 2, 2))) == {"Bands 0, 1, 2": (0, 1, 2)}
    assert band_presets(np.zeros((1, 2, 2))) == {}
    named = image_with(np.zeros((3, 2, 2)), ["Blue", "Green", "Red"])
    assert band_presets(named) == {"Natural colour (red, green, blue)": (2, 1, 0)}


def test_stretch_maps_p2_p98_to_0_255_per_band():
    ramp = np.arange(101, dtype=np.float32).reshape(1, 1, 101)
    data = np.concatenate([ramp, ramp * 1000 + 5])  # same shape of values, other units
    out = stretch_to_uint8(data)
    # p2 = 2, p98 = 98 for the ramp: 2 -> 0, 50 -> 127.5 -> 128, 98 -> 255, clipped beyond
    for band in out:
        assert band[0, 0] == 0 and band[0, 2] == 0 and band[0, 98] == 255 and band[0, 100] == 255
        assert band[0, 50] == 128
    np.testing.assert_array_equal(out[0], out[1])


def test_composite_default_uses_true_colour_for_sentinel2():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 5000, (13, 8, 8), dtype=np.uint16)
    img = image_with(data, S2_NAMES)
    rgb = composite(img)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    expected = np.moveaxis(stretch_to_uint8(data[[3, 2, 1]]), 0, -1)
    np.testing.assert_array_equal(rgb, expected)


def test_gray_and_two_colour_previews():
    data = np.stack([np.tile(np.arange(50, dtype=np.uint16), (3, 1)),
                     np.tile(np.arange(50, dtype=np.uint16)[::-1], (3, 1))])  # fmt: skip
    gray = composite(data[:1])
    assert gray.shape == (3, 50, 3) and (gray[..., 0] == gray[..., 2]).all()
    blend = composite(data)  # 2 channels: first magenta (R and B), second green
    stretched = stretch_to_uint8(data)
    np.testing.assert_array_equal(blend[..., 0], stretched[0])
    np.testing.assert_array_equal(blend[..., 2], stretched[0])
    np.testing.assert_array_equal(blend[..., 1], stretched[1])


def test_composite_with_nan_and_constant_bands_is_finite():
    data = np.ones((3, 4, 4), np.float32)
    data[0, 0, 0] = np.nan
    data[1] = np.arange(16).reshape(4, 4)
    rgb = composite(data, (0, 1, 2))
    assert rgb[..., 0].max() == 0 and rgb[..., 1].max() == 255


def test_composite_rejects_bad_band_choices():
    with pytest.raises(ConfigError, match="numbered 0 to 2"):
        composite(np.zeros((3, 2, 2)), (0, 1, 7))
    with pytest.raises(ConfigError, match="1, 2 or 3 bands"):
        composite(np.zeros((5, 2, 2)), (0, 1, 2, 3))


def test_thumbnails_keep_aspect_and_limit_size():
    data = np.random.default_rng(1).random((4, 300, 150)).astype(np.float32)
    thumbs = band_thumbnails(data, max_size=64)
    assert len(thumbs) == 4 and all(t.shape == (64, 32) and t.dtype == np.uint8 for t in thumbs)
    small = band_thumbnails(data[:, :20, :10], max_size=64)
    np.testing.assert_array_equal(small[0], stretch_to_uint8(data[:1, :20, :10])[0])


def test_band_stats_values():
    data = np.array([[[1.0, 2.0], [3.0, np.nan]], [[10.0, 10.0], [10.0, 10.0]]], np.float32)
    stats = band_stats(image_with(data, ["a", "b"]))
    assert stats[0]["name"] == "a" and stats[0]["nonfinite"] == 1
    assert (stats[0]["min"], stats[0]["max"], stats[0]["mean"]) == (1.0, 3.0, 2.0)
    assert stats[0]["std"] == pytest.approx(np.std([1, 2, 3]))
    assert stats[1] == {"index": 1, "name": "b", "min": 10.0, "max": 10.0, "mean": 10.0,
                        "std": 0.0, "p2": 10.0, "p98": 10.0, "nonfinite": 0}  # fmt: skip
