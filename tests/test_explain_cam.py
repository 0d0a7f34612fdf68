"""Grad-CAM and integrated gradients: known answers (models that look at one quadrant, in the
CNN, ViT and Swin layouts), captum's LayerGradCam as a cross-check, model randomisation,
completeness, and every family of the registry."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam

from modelkit.explanations.api import explain
from modelkit.explanations.scoring import Scorer
from modelkit.models.factory import create_model
from modelkit.runtime.model_cache import ModelCache
from tests.explain_toys import register_toys

register_toys()
NO_CACHE = dict(use_result_cache=False)


@pytest.fixture(scope="module")
def cache():
    return ModelCache()


@pytest.mark.parametrize("name", ["toy_cnn", "toy_vit", "toy_swin"])
def test_a_model_that_looks_at_one_quadrant_gets_the_map_there(cache, name):
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    out = explain(x, name, method="gradcam", target=0, model_cache=cache, **NO_CACHE)
    heat = out.heatmap
    assert heat.shape == (64, 64) and heat.dtype == np.float32 and heat.min() >= 0
    top_right, bottom_left = heat[:32, 32:].sum(), heat[32:, :32].sum()
    assert top_right / heat.sum() > 0.8, (name, top_right / heat.sum())
    assert bottom_left / heat.sum() < 0.02  # not transposed


@pytest.mark.parametrize("name", ["toy_vit", "toy_swin"])
def test_integrated_gradients_find_the_quadrant_too(cache, name):
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(2))
    out = explain(x, name, method="integrated_gradients", target=0, baseline="zero",
                  model_cache=cache, **NO_CACHE)  # fmt: skip
    heat = np.abs(out.heatmap)
    assert heat[:32, 32:].sum() / heat.sum() > 0.99
    assert out.checks["completeness_error"] < 0.05


def test_grad_cam_equals_captums_layer_grad_cam_on_a_private_copy(cache):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10)
    x = torch.randn(1, 3, 64, 64)
    shared = ModelCache(builder=lambda name, **kw: model)
    for level, module in ((2, "layer2"), (-1, "layer4")):
        ours = explain(x, "resnet18", method="gradcam", layer=level, num_classes=10,
                       model_cache=shared, **NO_CACHE)  # fmt: skip
        private = copy.deepcopy(model)  # captum hooks this copy, never the shared model
        theirs = LayerGradCam(private, private.get_submodule(module)).attribute(
            x.clone(), target=ours.target_index, relu_attributions=True
        )
        theirs = torch.nn.functional.interpolate(theirs, size=(64, 64), mode="bilinear")
        assert ours.layer.endswith(f"({module})")
        np.testing.assert_allclose(ours.heatmap, theirs[0, 0].detach().numpy(), rtol=1e-4,
                                   atol=1e-5 * float(theirs.detach().abs().max()))  # fmt: skip


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = (np.argsort(np.argsort(v.ravel())) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


@pytest.fixture(scope="module")
def chelsea():
    from pathlib import Path

    from modelkit.images.read import read_image

    path = Path(__file__).resolve().parents[1] / "assets" / "chelsea.png"
    return read_image(path.read_bytes(), "chelsea.png")


def test_randomised_weights_change_the_map(cache, chelsea):
    """Adebayo et al.'s model-randomisation check: a map that survives re-initialising the
    weights shows the image, not the model."""
    trained = explain(chelsea, "efficientnet_lite0", method="gradcam", pretrained=True,
                      target=282, model_cache=cache, **NO_CACHE)  # fmt: skip
    torch.manual_seed(0)
    random = explain(chelsea, "efficientnet_lite0", method="gradcam", pretrained=False,
                     target=282, model_cache=cache, **NO_CACHE)  # fmt: skip
    assert trained.target_label == "tiger cat" and trained.heatmap.shape == (300, 451)
    assert trained.heatmap.max() > 0 and random.heatmap.max() > 0
    ys, xs = np.nonzero(trained.heatmap + random.heatmap)  # the part of the image the model saw
    seen = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert _rank_corr(trained.heatmap[seen], random.heatmap[seen]) < 0.5


def test_integrated_gradients_are_complete_within_5_percent(cache):
    x = torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(3))
    out = explain(x, "efficientnet_lite0", method="integrated_gradients", pretrained=True,
                  steps=32, model_cache=cache, **NO_CACHE)  # fmt: skip
    assert out.checks["completeness_error"] < 0.05
    total = out.band_importance.astype(np.float64).sum()
    assert total == pytest.approx(out.checks["score_change"], rel=0.05)
    assert out.heatmap.sum() == pytest.approx(total, rel=1e-3)  # map and bands agree
    assert "within" in out.notes[1]


def _random_head(name, **kwargs):
    """A random model whose head is not all zeros (ViT's is, at init: every gradient would be 0)."""
    model = create_model(name, **kwargs)
    head = model.get_classifier()
    if not head.weight.any():
        torch.nn.init.normal_(head.weight, std=0.02)
    return model


@pytest.mark.parametrize(
    "name, size, kwargs",
    [
        ("resnet18", 64, {}),
        ("mobilenet_v3_small", 64, {}),
        ("efficientnet_lite0", 64, {"in_chans": 4}),
        ("swin_t", 64, {}),
        pytest.param("vit_b_16", 224, {}, marks=pytest.mark.slow),
        pytest.param("maxvit_t", 224, {}, marks=pytest.mark.slow),
        pytest.param("densenet121", 64, {}, marks=pytest.mark.slow),
    ],
)
def test_grad_cam_runs_for_every_family(name, size, kwargs):
    torch.manual_seed(0)
    chans = kwargs.get("in_chans", 3)
    x = torch.randn(chans, size, size, generator=torch.Generator().manual_seed(4))
    cache = ModelCache(builder=_random_head)
    out = explain(x, name, method="gradcam", model_cache=cache, **kwargs, **NO_CACHE)
    assert out.heatmap.shape == (size, size) and np.isfinite(out.heatmap).all()
    assert out.heatmap.min() >= 0 and out.heatmap.max() > 0
    assert out.band_importance.shape == (chans,) and np.isfinite(out.band_importance).all()
    model = cache.peek(next(iter(cache.keys())))
    scorer = Scorer(model, torch.device("cpu"), None)
    with torch.inference_mode():
        assert out.score == pytest.approx(float(scorer(x[None])[0, out.target_index]), rel=1e-4)
