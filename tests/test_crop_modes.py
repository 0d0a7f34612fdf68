"""timm's eval crop modes (center, squash, border) in ``preprocess``: the same geometry as timm's
own eval transform (exactly), the same pixels on RGB photos and multi-band floats (within a grey
level), the mean pad of 'border', bounded work on huge images, and a real timm tag's crop mode
flowing from create_model into predict.

Tolerance against timm: timm's eval transform resizes a PIL image, which rounds the resampled
values to 8 bits (between its two passes too) with Pillow's fixed-point weights; ours runs torch's
antialiased kernel (the same filters and supports) on the uint8 tensor, which rounds with its own.
Where a value lies near a half grey level the two round differently: measured over 150 random
shapes and sizes, at most 1 grey level for bilinear and 2 for bicubic (whose negative lobes
overshoot and are clipped between the passes), on under 2 % of the values (mean < 0.02 levels;
a 2-pixel strip blown up 35 times has more values on half levels: up to 12 %). So: ``LEVELS``
grey levels, i.e. LEVELS / (255 * std) in normalised units, and a mean under 0.05 levels (a
rounding, not a shift). The pad of 'border' is equal exactly (uint8 path).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from skimage import data as skdata
from timm.data import create_transform, resolve_data_config

from modelkit.config import CROP_MODES, DataConfig
from modelkit.errors import ConfigError
from modelkit.images import preprocess as pre
from modelkit.images.resize import plan_crop

ROOT = Path(__file__).resolve().parent.parent
INTERPOLATIONS = ("bilinear", "bicubic")
LEVELS = {"bilinear": 1.0 + 1e-3, "bicubic": 2.0 + 1e-3}  # see the module docstring
# (H, W) of the source: wide, tall, near square, strips, one smaller than the crop (upscaled),
# an 8-pixel strip (border: one column)
SHAPES = [(300, 451), (451, 300), (233, 240), (37, 500), (500, 61), (90, 70), (700, 8)]
SIZES = [224, 224, 96, 160, 128, 224, 64]


def timm_eval(photo_hwc: np.ndarray, cfg: DataConfig) -> torch.Tensor:
    """timm's own eval transform for this data config, on a PIL image."""
    timm_cfg = resolve_data_config(pretrained_cfg=dict(
        input_size=cfg.input_size, interpolation=cfg.interpolation, mean=cfg.mean, std=cfg.std,
        crop_pct=cfg.crop_pct, crop_mode=cfg.crop_mode,
    ))  # fmt: skip
    assert timm_cfg["crop_mode"] == cfg.crop_mode
    return create_transform(**timm_cfg)(Image.fromarray(photo_hwc))


def photo(height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8: the cat photo resized to H x W (a real picture, not noise)."""
    return np.asarray(Image.fromarray(skdata.chelsea()).resize((width, height)))


def grey_levels(ours: torch.Tensor, theirs: torch.Tensor, std) -> torch.Tensor:
    """|ours - theirs| in grey levels (1/255 of the [0, 1] range before normalisation)."""
    return (ours - theirs).abs() * torch.tensor(std).view(-1, 1, 1) * 255


def pad_mask(plan) -> torch.Tensor:
    top, bottom, left, right = plan.padding()
    mask = torch.zeros(plan.crop, dtype=torch.bool)
    mask[:top], mask[plan.crop[0] - bottom :] = True, True
    mask[:, :left], mask[:, plan.crop[1] - right :] = True, True
    return mask


def random_shape(rng, i: int, high: int, *, thin_every: int, thin_below: int) -> tuple[int, int]:
    """The i-th random (height, width) below ``high``: every ``thin_every``-th a strip (one side
    below ``thin_below``), every other one transposed (tall and wide both come)."""
    height, width = (int(v) for v in rng.integers(1, high, size=2))
    if i % thin_every == 0:
        height = int(rng.integers(1, thin_below))
    return (width, height) if i % 2 else (height, width)


@pytest.mark.parametrize("mode", CROP_MODES)
def test_geometry_equals_timms_resize_on_random_shapes(mode):
    # the resized size of timm's first eval step (Resize / ResizeKeepRatio) on a PIL image, and
    # the output size, for random shapes and crop sizes, square and not
    rng = np.random.default_rng(5)
    first_step = 0
    for i in range(120):
        height, width = random_shape(rng, i, 700, thin_every=4, thin_below=6)
        crop = (int(rng.choice([32, 64, 224])),) * 2 if i % 3 else (48, 80)
        crop_pct = float(rng.choice([0.875, 0.9, 0.95, 1.0]))
        cfg = DataConfig(input_size=(3, *crop), crop_pct=crop_pct, crop_mode=mode)
        timm_cfg = resolve_data_config(pretrained_cfg=dict(
            input_size=cfg.input_size, crop_pct=crop_pct, crop_mode=mode))  # fmt: skip
        resize = create_transform(**timm_cfg).transforms[first_step]
        plan = plan_crop(height, width, cfg)
        try:
            resized = resize(Image.new("L", (width, height)))
        except ValueError:  # PIL refuses a 0-pixel side; we keep one pixel
            assert mode == "border" and 1 in plan.resized, (height, width)
            continue
        assert plan.resized == (resized.height, resized.width), (height, width, crop, mode)
        assert plan.crop == crop


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("mode", CROP_MODES)
def test_rgb_photo_matches_timms_eval_transform(mode, interpolation):
    for (height, width), size in zip(SHAPES, SIZES, strict=True):
        image = photo(height, width)
        cfg = DataConfig(input_size=(3, size, size), interpolation=interpolation, crop_pct=0.9,
                         crop_mode=mode)  # fmt: skip
        ours = pre.preprocess(np.moveaxis(image, -1, 0), cfg)[0]
        theirs = timm_eval(image, cfg)
        assert ours.shape == theirs.shape == (3, size, size)
        diff = grey_levels(ours, theirs, cfg.std)
        assert float(diff.max()) <= LEVELS[interpolation], (height, width)
        assert float(diff.mean()) < 0.05, (height, width)  # a rounding, not a shift
        mask = pad_mask(plan_crop(height, width, cfg))
        if mode == "border":  # the pad of the wide/tall pictures: exactly timm's grey
            assert mask.any() or abs(height - width) < 10
            torch.testing.assert_close(ours[:, mask], theirs[:, mask], atol=1e-6, rtol=0)
        else:
            assert not mask.any()


@pytest.mark.parametrize("mode", ["squash", "border"])
def test_non_square_input_matches_timm(mode):
    # sapiens2's tags: 1024 x 768 with squash; here a small non-square crop of both modes
    image = photo(300, 451)
    cfg = DataConfig(input_size=(3, 96, 64), interpolation="bicubic", crop_pct=0.95,
                     crop_mode=mode)  # fmt: skip
    ours = pre.preprocess(np.moveaxis(image, -1, 0), cfg)[0]
    theirs = timm_eval(image, cfg)
    assert ours.shape == theirs.shape == (3, 96, 64)
    assert float(grey_levels(ours, theirs, cfg.std).max()) <= LEVELS["bicubic"]


@pytest.mark.parametrize("mode", CROP_MODES)
def test_multiband_float_matches_timm_band_by_band(mode):
    # five float bands R, G, B, R, G (values / 255): each band equals timm's output for its
    # colour. Float values are not rounded to grey levels here (timm's PIL image is), and the
    # 'border' pad is the mean itself: 0 after normalisation (timm's: the mean's nearest grey
    # level, at most half a level away); both stay within the tolerance. Nor are they clipped:
    # a bicubic upscale overshoots an edge (a 37-row strip squashed to 252 rows: by 5 levels),
    # which an 8-bit image cannot hold, so ours is compared clipped to timm's [0, 1] range
    for height, width in [(451, 300), (37, 500), (233, 240), (700, 8)]:
        image = photo(height, width)
        bands = np.moveaxis(image, -1, 0)[[0, 1, 2, 0, 1]].astype(np.float32) / 255
        cfg = DataConfig(interpolation="bicubic", crop_pct=0.9, crop_mode=mode)
        ours = pre.preprocess(bands, cfg.with_in_chans(5), scaling="none")[0]
        theirs = timm_eval(image, cfg)[[0, 1, 2, 0, 1]]
        five = cfg.with_in_chans(5)
        mean, std = (torch.tensor(v).view(-1, 1, 1) for v in (five.mean, five.std))
        clipped = ((ours * std + mean).clamp(0, 1) - mean) / std
        levels = grey_levels(clipped, theirs, five.std)
        assert float(levels.max()) <= LEVELS["bicubic"], (height, width)
        mask = pad_mask(plan_crop(height, width, cfg))  # 233 x 240 still covers the crop
        assert mask.any() == (mode == "border" and abs(height - width) > 100)
        assert torch.equal(ours[:, mask], torch.zeros_like(ours[:, mask]))


def test_border_pad_is_the_mean_for_every_scaling():
    # 16-bit bands stretched by percentiles, z-scores, and raw values under a sensor's mean:
    # the pad is the mean in the scaled space the mean applies to, so 0 after normalisation
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4000, size=(4, 40, 120), dtype=np.uint16)
    cfg = DataConfig(input_size=(4, 32, 32), mean=(0.1, 0.2, 0.3, 0.4), std=(0.5,) * 4,
                     crop_pct=1.0, crop_mode="border")  # fmt: skip
    mask = pad_mask(plan_crop(40, 120, cfg))
    assert plan_crop(40, 120, cfg).resized == (11, 32) and int(mask.sum()) == 21 * 32
    for scaling in ("auto", "percentile", "minmax", "zscore", "none"):
        out = pre.preprocess(data, cfg, scaling=scaling)[0]
        assert torch.equal(out[:, mask], torch.zeros_like(out[:, mask])), scaling
        assert float(out[:, ~mask].abs().mean()) > 0.1, scaling  # the picture is not the pad
    # the other modes pad with zeros (torchvision's CenterCrop for crop_pct > 1), after scaling
    center = DataConfig(input_size=(4, 32, 32), mean=(0.1, 0.2, 0.3, 0.4), std=(0.5,) * 4,
                        crop_pct=1.2)  # fmt: skip
    out = pre.preprocess(data, center, scaling="minmax")[0]
    assert torch.allclose(out[:, 0, 0], torch.tensor([-0.2, -0.4, -0.6, -0.8]))


@pytest.mark.parametrize("mode", ["squash", "border"])
def test_window_path_equals_the_full_path(mode, monkeypatch):
    # the bounded path (only the source pixels the crop reads, a block of rows at a time) gives
    # the same numbers for the new modes, on random shapes, float and uint8; the last two cases
    # are tall strips whose height pass runs first (on the transposed image)
    rng = np.random.default_rng(11)
    for i in range(14):
        height, width = random_shape(rng, i, 400, thin_every=3, thin_below=4)
        size = int(rng.choice([32, 64, 96]))
        if i >= 12:
            height, width, size = 30_000, 3 + i - 12, 224
        cfg = DataConfig(input_size=(2, size, size), mean=(0.4, 0.6), std=(0.3, 0.2),
                         interpolation=str(rng.choice(["bilinear", "bicubic"])),
                         crop_pct=float(rng.choice([0.875, 1.0])), crop_mode=mode)  # fmt: skip
        floats = rng.random((2, height, width), dtype=np.float32)
        grey = rng.integers(0, 256, size=(2, height, width), dtype=np.uint8)
        usual = [pre.preprocess(floats, cfg), pre.preprocess(grey, cfg)]
        with monkeypatch.context() as patched:
            patched.setattr(pre, "FULL_RESIZE_BYTES", 0)
            windowed = [pre.preprocess(floats, cfg), pre.preprocess(grey, cfg)]
        torch.testing.assert_close(windowed[0], usual[0], atol=2e-5, rtol=1e-5)
        levels = grey_levels(windowed[1][0], usual[1][0], cfg.std)
        if i < 12:
            assert float(levels.max()) <= 2.0 + 1e-3 and float(levels.mean()) < 0.1, cfg
        else:  # uint8 noise rounded after the height pass, not torchvision's width pass
            assert float(levels.max()) <= 1.0 + 1e-3 and float(levels.mean()) < 0.25, cfg
            signed = (windowed[1][0] - usual[1][0]) * torch.tensor(cfg.std).view(-1, 1, 1) * 255
            assert abs(float(signed.mean())) < 0.02  # a rounding, not a shift


def test_unknown_crop_mode_is_a_clear_config_error():
    with pytest.raises(ConfigError, match="crop_mode 'zoom' is not known; use 'center'"):
        DataConfig(crop_mode="zoom")
    from modelkit import create_model

    with pytest.raises(ConfigError, match="crop_mode 'crop' is not known"):
        create_model("timm/resnet18", pretrained_cfg_overlay={"crop_mode": "crop"})


def test_explanation_maps_land_where_each_mode_put_the_pixels():
    # a map of ones over the model input, placed back on a 40 x 120 image: 'border' and
    # 'squash' (crop_pct 1) saw every pixel; 'center' saw the middle 40 x 40 only
    from modelkit.explanations.heatmap import to_image

    ones = np.ones((32, 32), np.float32)
    seen = {}
    for mode in CROP_MODES:
        cfg = DataConfig(input_size=(3, 32, 32), crop_pct=1.0, crop_mode=mode)
        seen[mode] = to_image(ones, (40, 120), cfg, (32, 32)) > 0
    assert seen["border"].all() and seen["squash"].all()
    assert seen["center"][:, 40:80].all() and not seen["center"][:, :39].any()
    assert not seen["center"][:, 81:].any()


# --- a real timm tag's crop mode, from create_model into predict ------------------------------

SQUASH_TAG = "tf_efficientnetv2_b3.in21k_ft_in1k"  # 240 px, crop_pct 0.9, crop_mode squash
BORDER_TAG = "deepseek_vit_412m.deepseek_v4_flash_vision_exp"  # 392 px, crop_pct 1.0, border


def test_real_tags_carry_their_crop_modes():
    from modelkit import get_pretrained_cfg

    for tag, mode in [(SQUASH_TAG, "squash"), (BORDER_TAG, "border")]:
        ours = get_pretrained_cfg(f"timm/{tag}").data_config()
        theirs = resolve_data_config(pretrained_cfg=timm.models.get_pretrained_cfg(tag).to_dict())
        assert ours.crop_mode == theirs["crop_mode"] == mode
        assert (ours.input_size, ours.crop_pct, ours.interpolation) == (
            theirs["input_size"], theirs["crop_pct"], theirs["interpolation"])  # fmt: skip
        assert ours.mean == pytest.approx(theirs["mean"]) and ours.std == pytest.approx(
            theirs["std"])  # fmt: skip


@pytest.mark.slow
def test_predict_with_a_squash_tag_equals_timm_on_its_own_transform():
    # a tag with crop_mode squash, random weights (no download): predict's logits equal the
    # same model's logits on timm's own eval transform of the same wide photo, and differ from
    # what the centre crop would give
    from modelkit import create_model
    from modelkit.runtime.engine import predict
    from modelkit.runtime.model_cache import ModelCache

    model = create_model(f"timm/{SQUASH_TAG}")
    assert model.data_config.crop_mode == "squash"
    image = photo(200, 400)
    cache = ModelCache()
    got = predict(np.moveaxis(image, -1, 0), f"timm/{SQUASH_TAG}", model_cache=cache,
                  use_result_cache=False, top_k=3)  # fmt: skip
    (key,) = cache.keys()
    net = cache.peek(key)
    assert net.data_config.crop_mode == "squash"
    timm_cfg = resolve_data_config(
        pretrained_cfg=timm.models.get_pretrained_cfg(SQUASH_TAG).to_dict()
    )
    assert timm_cfg["crop_mode"] == "squash" and timm_cfg["input_size"] == (3, 240, 240)
    with torch.no_grad():
        theirs = net(create_transform(**timm_cfg)(Image.fromarray(image))[None])[0].numpy()
        center_cfg = dataclasses.replace(net.data_config, crop_mode="center")
        center = net(pre.preprocess(np.moveaxis(image, -1, 0), center_cfg))[0].numpy()
    error = np.abs(got.logits - theirs).max()
    assert error < 0.05 * np.abs(theirs - center).max(), error
    assert got.indices[0] == int(np.argmax(theirs))


@pytest.mark.slow
def test_border_through_the_overlay_into_the_model_input():
    # pretrained_cfg_overlay={'crop_mode': 'border'} on a small timm model: its data config, and
    # so predict's input, pads with the mean; timm builds the same data config from the overlay
    from modelkit import create_model

    model = create_model("timm/resnet18", pretrained_cfg_overlay={"crop_mode": "border"})
    assert model.data_config.crop_mode == "border"
    reference = timm.create_model("resnet18", pretrained_cfg_overlay={"crop_mode": "border"})
    timm_cfg = resolve_data_config(model=reference)
    assert timm_cfg["crop_mode"] == "border"
    image = photo(120, 300)
    ours = pre.preprocess(np.moveaxis(image, -1, 0), model.data_config)[0]
    theirs = create_transform(**timm_cfg)(Image.fromarray(image))
    assert float(grey_levels(ours, theirs, timm_cfg["std"]).max()) <= LEVELS["bicubic"]
    assert pad_mask(plan_crop(120, 300, model.data_config)).sum() > 0


# --- bounded memory for the new modes ---------------------------------------------------------


def _child() -> None:
    """Preprocess huge images in every mode; print the peak RSS growth of each (MiB)."""
    from modelkit.images.preprocess import preprocess

    def growth(fn) -> float:
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
        before = _kib("VmRSS")
        fn()
        return (_kib("VmHWM") - before) / 1024

    images = {
        "1x400000 uint16": (np.arange(400_000) % 65536).astype(np.uint16)[None, None],
        "400000x1 float32": np.linspace(0, 1, 400_000, dtype=np.float32)[None, :, None],
        "1x10000x10000 uint16": np.full((1, 10_000, 10_000), 7, np.uint16),
        "3x6000x6000 uint8": np.full((3, 6000, 6000), 9, np.uint8),
    }
    out = {}
    for name, data in images.items():
        for mode in CROP_MODES:
            cfg = DataConfig(crop_mode=mode).with_in_chans(data.shape[0])
            out[f"{name} {mode}"] = growth(lambda: preprocess(data, cfg))  # noqa: B023
    print(json.dumps(out))


def _kib(field: str) -> int:
    return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0])


@pytest.mark.slow
def test_huge_images_are_not_resized_whole_in_any_mode():
    # a whole-image float copy of the 10,000 x 10,000 band alone is 381 MiB, and a width pass
    # that kept every row of the 400,000-row strip squashed to 256 x 256 would keep 342 MiB;
    # the bounded path needs a few blocks of 16 MiB
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True,
                          timeout=600, env=env, cwd=str(ROOT))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    growth = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(growth) == 12
    for name, mib in growth.items():
        assert mib < 100, f"{name} grew {mib:.0f} MiB"


if __name__ == "__main__":
    torch.set_num_threads(2)
    _child()
