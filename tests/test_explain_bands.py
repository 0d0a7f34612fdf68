"""Band importance: a known answer (a model that sees one band only), captum's ablation against a
hand-written loop, Shapley's efficiency, chunking, band names, and maps placed on the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelkit.errors import ConfigError
from modelkit.explanations.api import explain
from modelkit.explanations.bands import baseline_tensor
from modelkit.explanations.bandsets import band_labels, presets_for
from modelkit.explanations.heatmap import MAX_HEATMAP_PIXELS, to_image
from modelkit.explanations.scoring import Scorer
from modelkit.images.preprocess import preprocess
from modelkit.models.factory import create_model
from modelkit.models.registry import get_pretrained_cfg
from modelkit.runtime.model_cache import ModelCache

BAND = 3
CHANS = 5


def _only_band(name, **kwargs):
    """efficientnet_lite0 (real weights, adapted to 5 bands) that sees band BAND only."""
    model = create_model(name, **kwargs)
    with torch.no_grad():
        weight = model.conv_stem.weight
        keep = weight[:, BAND].clone()
        weight.zero_()
        weight[:, BAND] = keep
    return model


@pytest.fixture(scope="module")
def image():
    """A ready, normalised 5-band tensor at 32 px (tensors go to the model as they are)."""
    return torch.randn(CHANS, 32, 32, generator=torch.Generator().manual_seed(0))


SETUP = dict(pretrained=True, in_chans=CHANS, use_result_cache=False)


@pytest.fixture(scope="module")
def one_band_cache():
    return ModelCache(builder=_only_band)


@pytest.mark.parametrize(
    "method, extra",
    [("bands", {}), ("bands", {"shapley_samples": 2}), ("gradcam", {}),
     ("integrated_gradients", {"steps": 8})],
)  # fmt: skip
def test_a_model_that_sees_one_band_puts_all_importance_there(image, one_band_cache, method, extra):
    out = explain(image, "efficientnet_lite0", method=method, model_cache=one_band_cache,
                  **SETUP, **extra)  # fmt: skip
    imp = np.abs(out.band_importance)
    assert imp.shape == (CHANS,) and out.band_importance.dtype == np.float32
    assert imp[BAND] > 0
    assert imp[BAND] / imp.sum() > 0.99, out.band_importance


@pytest.fixture(scope="module")
def setup_5band(image):
    model = create_model("efficientnet_lite0", pretrained=True, in_chans=CHANS)
    x = image[None]
    scorer = Scorer(model, torch.device("cpu"), None)
    with torch.inference_mode():
        logits = scorer(x)
    return model, x, scorer, int(logits.argmax())


@pytest.mark.parametrize("baseline", ["mean", "zero", "blur"])
def test_captum_ablation_equals_a_hand_written_loop(image, setup_5band, baseline):
    model, x, scorer, target = setup_5band
    cache = ModelCache(builder=lambda name, **kw: model)
    out = explain(image, "efficientnet_lite0", baseline=baseline, model_cache=cache, **SETUP)
    reference = baseline_tensor(x, baseline)
    expected = []
    with torch.inference_mode():
        full = float(scorer(x)[0, target])
        for band in range(CHANS):
            copy = x.clone()
            copy[:, band] = reference[:, band]
            expected.append(full - float(scorer(copy)[0, target]))
    assert out.target_index == target
    np.testing.assert_allclose(out.band_importance, expected, rtol=1e-3, atol=1e-3)
    assert np.abs(expected).max() > 1e-2  # the bands matter: the comparison is not 0 == 0


def test_shapley_values_add_up_to_the_change_with_every_band_replaced(image, setup_5band):
    model, x, scorer, target = setup_5band
    cache = ModelCache(builder=lambda name, **kw: model)
    out = explain(image, "efficientnet_lite0", shapley_samples=3, model_cache=cache, **SETUP)
    with torch.inference_mode():
        drop = float(scorer(x)[0, target] - scorer(baseline_tensor(x, "mean"))[0, target])
    assert out.band_importance.sum() == pytest.approx(drop, rel=1e-3, abs=1e-3)
    assert "Shapley values over 3 random band orders" in " ".join(out.notes)


def test_chunks_change_the_batching_not_the_answer(image, setup_5band):
    model = setup_5band[0]
    cache = ModelCache(builder=lambda name, **kw: model)
    one = explain(image, "efficientnet_lite0", chunk=1, model_cache=cache, **SETUP)
    all_ = explain(image, "efficientnet_lite0", chunk=16, model_cache=cache, **SETUP)
    np.testing.assert_allclose(one.band_importance, all_.band_importance, rtol=1e-4, atol=1e-4)
    # the unperturbed pass that chose the target is reused: one pass per band, plus that one
    assert one.checks["forward_passes"] == all_.checks["forward_passes"] == CHANS + 1


def test_band_labels_from_the_file_or_a_preset():
    labels = band_labels(["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10",
                          "B11", "B12"], 13)  # fmt: skip
    assert labels[8] == "B8A narrow NIR (865 nm)" and labels[12] == "B12 SWIR 2 (2190 nm)"
    assert band_labels(None, 2) == ["band 0", "band 1"]
    assert band_labels(["red", "nir"], 2) == ["red", "nir"]
    assert band_labels(None, 7, "Landsat-8 OLI (bands 1-7)")[4] == "B5 NIR (865 nm)"
    assert presets_for(13) == ["Sentinel-2 L1C (13 bands)"]
    with pytest.raises(ConfigError, match="has 7 bands but the model sees 13"):
        band_labels(None, 13, "Landsat-8 OLI (bands 1-7)")


def test_a_map_lands_on_the_part_of_the_image_the_model_saw():
    # a ramp image: every pixel's value is its column, so the model input tells which source
    # columns (and, transposed, rows) it was cut from
    config = get_pretrained_cfg("resnet18").data_config()
    height, width = 300, 451
    cols = np.broadcast_to(np.arange(width, dtype=np.float32), (height, width))
    rows = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))
    seen = preprocess(np.stack([cols, rows, cols]), config, scaling="none")[0]
    mean, std = np.array(config.mean)[:, None, None], np.array(config.std)[:, None, None]
    seen = seen.numpy() * std + mean
    ones = np.ones(config.input_size[1:], np.float32)
    placed = to_image(ones, (height, width), config, config.input_size[1:])
    ys, xs = np.nonzero(placed)
    assert placed.shape == (height, width) and placed.dtype == np.float32
    assert abs(xs.min() - seen[0].min()) <= 1.5 and abs(xs.max() - seen[0].max()) <= 1.5
    assert abs(ys.min() - seen[1].min()) <= 1.5 and abs(ys.max() - seen[1].max()) <= 1.5


def test_maps_of_extreme_shapes_are_bounded_or_refused():
    config = get_pretrained_cfg("resnet18").data_config()
    line = to_image(np.ones((7, 7), np.float32), (1, 100_000), config, (224, 224))
    assert line.shape == (1, 100_000) and 0 < np.count_nonzero(line) <= 2
    assert to_image(np.ones((7, 7)), (1, 1), config, (224, 224)).shape == (1, 1)
    side = int(MAX_HEATMAP_PIXELS**0.5) + 1
    with pytest.raises(ConfigError, match="Crop or downscale"):
        to_image(np.ones((7, 7)), (side, side), config, (224, 224))
