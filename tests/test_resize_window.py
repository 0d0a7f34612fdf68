"""The windowed resize (only the source pixels the crop reads) equals torchvision's resize then
centre crop: to float rounding for float tensors; for uint8 exactly where an axis is downscaled
(torch's own kernel runs on it) and within a grey level or two where a thin axis is blown up
(torchvision's fixed-point weights); on random shapes, on the real images in assets/ through
``preprocess``, and on an extreme shape against a hand-computed answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from modelkit.config import DataConfig
from modelkit.images import preprocess as pre
from modelkit.images.read import read_image
from modelkit.images.resize import (
    full_resize_bytes,
    plan_crop,
    source_box,
    window_resize_crop,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}


def torchvision_resize_crop(tensor: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    size = cfg.input_size[1]
    resize = [cfg.resize_size] if cfg.resize_size else [int(size / cfg.crop_pct)]
    resized = F.resize(tensor, resize, interpolation=MODES[cfg.interpolation], antialias=True)
    return F.center_crop(resized, [size, size])


def random_case(rng: np.random.Generator):
    height, width = (int(v) for v in rng.integers(1, 500, size=2))
    if rng.random() < 0.3:  # thin strips: the resized long side is up to ~100 x the crop
        height = int(rng.integers(1, 5))
    if rng.random() < 0.5:
        height, width = width, height
    size = int(rng.choice([16, 32, 64, 224]))
    cfg = DataConfig(
        input_size=(2, size, size), mean=(0.0, 0.0), std=(1.0, 1.0),
        interpolation=str(rng.choice(list(MODES))),
        crop_pct=float(rng.choice([0.875, 0.95, 1.0, 1.15])),  # 1.15: the crop is zero-padded
        resize_size=int(size + 7) if rng.random() < 0.2 else None,
    )  # fmt: skip
    return height, width, cfg


@pytest.mark.parametrize("seed", range(4))
def test_window_equals_torchvision_on_random_shapes_float(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        height, width, cfg = random_case(rng)
        data = rng.normal(size=(2, height, width)).astype(np.float32)
        expected = torchvision_resize_crop(torch.from_numpy(data), cfg)
        got = window_resize_crop(data, plan_crop(height, width, cfg), cfg.interpolation)
        assert got.shape == expected.shape, (height, width, cfg)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_window_equals_torchvision_on_random_shapes_uint8(seed):
    rng = np.random.default_rng(100 + seed)
    for _ in range(25):
        height, width, cfg = random_case(rng)
        data = rng.integers(0, 256, size=(2, height, width), dtype=np.uint8)  # noise: worst case
        expected = torchvision_resize_crop(torch.from_numpy(data), cfg).int()
        got = window_resize_crop(data, plan_crop(height, width, cfg), cfg.interpolation)
        assert got.dtype == torch.uint8 and got.shape == expected.shape
        diff = (got.int() - expected).abs()
        assert int(diff.max()) <= (2 if cfg.interpolation == "bicubic" else 1), cfg
        assert float((diff > 0).float().mean()) < 0.05, cfg  # a rounding, not a shift


def _assets():
    return sorted(p for p in ASSETS.iterdir() if p.suffix in (".png", ".tif", ".npy"))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("path", _assets(), ids=lambda p: p.name)
def test_preprocess_of_real_images_is_the_same_through_the_window(path, interpolation, monkeypatch):
    image = read_image(path.read_bytes(), path.name)
    channels = image.num_channels
    std = (0.229, 0.224, 0.225) if channels == 3 else (0.25,) * channels
    for size, crop_pct in [(224, 0.875), (96, 0.9), (300, 1.0)]:  # 300: an upscale
        cfg = DataConfig(input_size=(channels, size, size), mean=(0.5,) * channels, std=std,
                         interpolation=interpolation, crop_pct=crop_pct)  # fmt: skip
        usual = pre.preprocess(image, cfg)
        with monkeypatch.context() as patched:
            patched.setattr(pre, "FULL_RESIZE_BYTES", 0)  # every resize through the window
            windowed = pre.preprocess(image, cfg)
        # downscaling axes go through torch's own kernel, uint8 too: the same numbers
        torch.testing.assert_close(windowed, usual, atol=2e-5, rtol=1e-5)


def test_one_by_100000_ramp_gives_the_interpolated_centre():
    # bilinear upscaling is linear interpolation between pixel centres: resized column j sits
    # at source x = (j + 0.5) * W / W' - 0.5, so a ramp x / W gives exactly that over W
    width = 100_000
    data = (np.arange(width, dtype=np.float64) / width).astype(np.float32)[None, None]
    cfg = DataConfig(input_size=(1, 224, 224), mean=(0.0,), std=(1.0,), crop_pct=0.875)
    plan = plan_crop(1, width, cfg)
    assert plan.resized == (256, 25_600_000)
    assert full_resize_bytes(plan, 1, 4) > 26e9  # what torchvision would have allocated
    out = pre.preprocess(data, cfg, scaling="none")[0, 0].numpy()
    columns = np.arange(plan.first[1], plan.first[1] + 224)
    expected = ((columns + 0.5) * width / plan.resized[1] - 0.5) / width
    np.testing.assert_allclose(out, np.broadcast_to(expected, (224, 224)), atol=2e-6)
    top, bottom, left, right = source_box(plan, "bilinear")
    assert (top, bottom) == (0, 1) and (left, right) == (49_999, 50_001)


def test_tall_strip_equals_the_transpose_of_the_wide_one():
    # the two axes are handled alike: a 20,000 x 3 strip gives the transpose of 3 x 20,000
    # (float data: torchvision's uint8 resize rounds after its width pass, which breaks symmetry)
    rng = np.random.default_rng(7)
    wide = rng.random((3, 3, 20_000), dtype=np.float32)
    tall = np.ascontiguousarray(wide.transpose(0, 2, 1))
    cfg = DataConfig(interpolation="bicubic")
    torch.testing.assert_close(pre.preprocess(tall, cfg), pre.preprocess(wide, cfg).mT)


def test_nonfinite_values_are_filled_in_the_window_as_in_the_full_path(monkeypatch):
    rng = np.random.default_rng(3)
    data = rng.random((2, 40, 60)).astype(np.float32)
    data[0, 5:9, 10:30] = np.nan
    data[1, 20, :] = np.inf
    cfg = DataConfig(input_size=(2, 32, 32), mean=(0.0, 0.0), std=(1.0, 1.0))
    usual = pre.preprocess(data, cfg, scaling="minmax")
    monkeypatch.setattr(pre, "FULL_RESIZE_BYTES", 0)
    windowed = pre.preprocess(data, cfg, scaling="minmax")
    assert torch.isfinite(windowed).all()
    torch.testing.assert_close(windowed, usual, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["chelsea.png", "sentinel2_13band.tif"])
def test_model_view_is_the_input_view_of_the_composite(name):
    from modelkit.app.figures import input_view
    from modelkit.images.display import composite, model_view

    image = read_image((ASSETS / name).read_bytes(), name)
    cfg = DataConfig(interpolation="bicubic", crop_pct=0.875)  # 256 then the centre 224
    exact = model_view(image, cfg)
    assert exact.shape == (224, 224, 3) and exact.dtype == np.uint8
    np.testing.assert_array_equal(input_view(image, cfg), exact)
    diff = np.abs(exact.astype(int) - input_view(composite(image), cfg).astype(int))
    # stretching before or after the resize: the same picture to a grey level or two
    assert diff.mean() < 1.0 and np.mean(diff <= 2) > 0.99
