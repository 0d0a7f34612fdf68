"""preprocess: equal to torchvision's eval transform for RGB photos; hand-computed values for N
channels; channel choice, scaling modes, NaN rule and the errors a user can cause."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata
from torchvision.transforms import v2

from modelkit.config import DataConfig
from modelkit.errors import ChannelMismatchError, ConfigError
from modelkit.images.preprocess import band_limits, fill_nonfinite, preprocess, scale_image
from modelkit.images.read import read_image

MODES = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


def torchvision_eval(photo_hwc: np.ndarray, cfg: DataConfig) -> torch.Tensor:
    size = cfg.input_size[1]
    resize = cfg.resize_size or int(size / cfg.crop_pct)
    transform = v2.Compose([
        v2.Resize(resize, interpolation=MODES[cfg.interpolation], antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(cfg.mean, cfg.std),
    ])  # fmt: skip
    return transform(torch.from_numpy(photo_hwc).permute(2, 0, 1))


SIZES = [(224, 0.875, None), (240, 0.882, None), (224, 0.875, 232), (260, 0.89, None)]


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size,crop_pct,resize_size", SIZES)
def test_rgb_photo_matches_torchvision_eval_transform(interpolation, size, crop_pct, resize_size):
    photo = skdata.chelsea()  # (300, 451, 3) uint8
    cfg = DataConfig(input_size=(3, size, size), interpolation=interpolation, crop_pct=crop_pct,
                     resize_size=resize_size)  # fmt: skip
    ours = preprocess(np.moveaxis(photo, -1, 0), cfg)
    assert ours.shape == (1, 3, size, size) and ours.dtype == torch.float32
    torch.testing.assert_close(ours[0], torchvision_eval(photo, cfg), atol=1e-6, rtol=0)


def test_read_image_then_preprocess_matches_torchvision_for_png(tmp_path):
    import io

    from PIL import Image

    photo = skdata.coffee()
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    image = read_image(buffer.getvalue(), "coffee.png")
    cfg = DataConfig(interpolation="bicubic", mean=(0.5,) * 3, std=(0.5,) * 3)
    torch.testing.assert_close(preprocess(image, cfg)[0], torchvision_eval(photo, cfg), atol=1e-6,
                               rtol=0)  # fmt: skip


def test_n_channel_minmax_hand_computed_without_resize():
    # 5 bands of 4x4, crop_pct 1 and size 4: no resize, so values are (x - min) / span, normalised
    data = np.arange(5 * 16, dtype=np.uint16).reshape(5, 4, 4) * 3
    mean, std = (0.1, 0.2, 0.3, 0.4, 0.5), (1.0, 2.0, 0.5, 0.25, 4.0)
    cfg = DataConfig(input_size=(5, 4, 4), mean=mean, std=std, crop_pct=1.0)
    out = preprocess(data, cfg, scaling="minmax")[0]
    base = np.arange(16, dtype=np.float64).reshape(4, 4) / 15.0  # every band spans 0..15 steps
    for band in range(5):
        expected = (base - mean[band]) / std[band]
        np.testing.assert_allclose(out[band].numpy(), expected, atol=1e-6)


def test_n_channel_resize_halves_by_averaging():
    # bilinear antialiased 2x downscale of a constant-per-2x2-block image returns the block values
    blocks = np.arange(7 * 4 * 4, dtype=np.float32).reshape(7, 4, 4)
    data = blocks.repeat(2, axis=1).repeat(2, axis=2)  # (7, 8, 8)
    cfg = DataConfig(input_size=(7, 4, 4), mean=(0.0,) * 7, std=(1.0,) * 7, crop_pct=1.0)
    out = preprocess(data, cfg, scaling="none")[0].numpy()
    # the blocks form a linear ramp, and the symmetric triangle filter of an antialiased 2x
    # bilinear downscale returns a ramp's value exactly away from the borders
    np.testing.assert_allclose(out[:, 1:3, 1:3], blocks[:, 1:3, 1:3], atol=1e-4)
    assert out.shape == (7, 4, 4)


def test_channel_selection_orders_bands():
    data = np.stack([np.full((6, 6), v, np.uint8) for v in (10, 20, 30, 40)])
    cfg = DataConfig(input_size=(3, 6, 6), mean=(0,) * 3, std=(1,) * 3, crop_pct=1.0)
    out = preprocess(data, cfg, channels=[3, 0, 2])[0]
    np.testing.assert_allclose(out[:, 0, 0].numpy(), np.array([40, 10, 30]) / 255, atol=1e-6)


def test_channel_mismatch_message_names_both_numbers_and_two_ways_out():
    data = np.zeros((13, 8, 8), np.uint16)
    with pytest.raises(ChannelMismatchError) as info:
        preprocess(data, DataConfig())
    assert str(info.value) == (
        "The model takes 3 channels, but it was given the image's 13 channels. To fix it, set "
        "the model's input channels (in_chans) to 13 or choose 3 of the image's 13 channels."
    )
    with pytest.raises(ChannelMismatchError, match="given the 2 channels chosen"):
        preprocess(data, DataConfig(), channels=[1, 2])
    with pytest.raises(ChannelMismatchError) as info:  # 3 of 1 channel cannot be chosen
        preprocess(data[:1], DataConfig())
    assert "choose" not in str(info.value) and "(in_chans) to 1." in str(info.value)


def test_bad_channel_index_and_unknown_settings_are_config_errors():
    data = np.zeros((3, 8, 8), np.uint8)
    with pytest.raises(ConfigError, match="numbered 0 to 2"):
        preprocess(data, DataConfig(), channels=[0, 1, 5])
    with pytest.raises(ConfigError, match="Scaling"):
        preprocess(data.astype(np.uint16), DataConfig(), scaling="magic")
    with pytest.raises(ConfigError, match="Interpolation"):
        preprocess(data, DataConfig(interpolation="lanczos7"))


def test_percentile_scaling_matches_numpy_and_clips():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 10000, (2, 50, 50), dtype=np.uint16)
    out = scale_image(data, "percentile", (2, 98)).numpy()
    for band in range(2):
        low, high = np.percentile(data[band], (2, 98))
        expected = np.clip((data[band] - low) / (high - low), 0, 1)
        np.testing.assert_allclose(out[band], expected, atol=1e-5)
    auto = scale_image(data, "auto").numpy()  # uint16 auto = percentile stretch
    np.testing.assert_allclose(auto, out)


def test_auto_scaling_rules_per_dtype():
    u8 = np.array([[[0, 51, 255]]], np.uint8)
    np.testing.assert_allclose(scale_image(u8, "auto").numpy(), [[[0, 0.2, 1.0]]], atol=1e-7)
    f = np.array([[[-3.5, 0.0, 7.25]]], np.float32)
    np.testing.assert_array_equal(scale_image(f, "auto").numpy(), f)


def test_zscore_is_standardised_and_skips_config_normalisation():
    rng = np.random.default_rng(2)
    data = (rng.normal(size=(4, 16, 16)) * 50 + 100).astype(np.float32)
    z = scale_image(data, "zscore").numpy()
    np.testing.assert_allclose(z.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(1, 2), ddof=1), 1, atol=1e-4)
    cfg = DataConfig(input_size=(4, 16, 16), mean=(9,) * 4, std=(9,) * 4, crop_pct=1.0)
    np.testing.assert_allclose(preprocess(data, cfg, scaling="zscore")[0].numpy(), z, atol=1e-5)


def test_nonfinite_values_become_the_band_minimum():
    data = np.array([[[1.0, np.nan], [np.inf, 4.0]], [[np.nan, np.nan], [np.nan, np.nan]]],
                    np.float32)  # fmt: skip
    filled = fill_nonfinite(data)
    np.testing.assert_array_equal(filled[0], [[1, 1], [1, 4]])
    np.testing.assert_array_equal(filled[1], np.zeros((2, 2)))
    assert np.isnan(data[0, 0, 1])  # the caller's array is untouched
    low, high = band_limits(data, "minmax")
    assert (low[0], high[0]) == (1.0, 4.0)


def test_constant_band_scales_to_zero_not_nan():
    data = np.full((2, 5, 5), 7, np.uint16)
    for mode in ("minmax", "percentile", "zscore"):
        out = scale_image(data, mode)
        assert torch.isfinite(out).all() and out.abs().max() == 0


def test_input_array_is_not_modified():
    data = np.random.default_rng(3).random((3, 10, 10)).astype(np.float32)
    copy = data.copy()
    preprocess(data, DataConfig(input_size=(3, 8, 8)), scaling="minmax")
    np.testing.assert_array_equal(data, copy)


@pytest.mark.parametrize("scaling", ["auto", "minmax", "percentile", "zscore", "none"])
def test_band_chunks_give_the_same_tensor(monkeypatch, scaling):
    import modelkit.images.preprocess as pp

    data = np.random.default_rng(4).integers(0, 5000, (6, 40, 36), dtype=np.uint16)
    cfg = DataConfig(input_size=(6, 24, 24)).with_in_chans(6)
    whole = preprocess(data, cfg, scaling=scaling)
    monkeypatch.setattr(pp, "CHUNK_BYTES", 4 * 40 * 36 * 2)  # two bands per chunk
    torch.testing.assert_close(preprocess(data, cfg, scaling=scaling), whole, atol=0, rtol=0)
