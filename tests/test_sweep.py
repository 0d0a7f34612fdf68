"""Every registered model, small inputs, no weights: the whole classifier and features contract."""

from __future__ import annotations

import math

import pytest
import torch

from modelkit import create_model, list_models
from modelkit.models.info import shipped_sizes
from modelkit.models.no_init import params_on_meta
from modelkit.models.registry import get_entry, list_sources

pytestmark = pytest.mark.slow

# Smallest input each family accepts (and builder kwargs where the size is fixed at build time).
SIZES = {"alexnet": 64, "squeezenet": 64, "inception_v3": 75, "maxvit": 224}
KWARGS = {"vit_h_14": {"image_size": 28}}
# the sources' own models (timm's: tests/test_timm.py; toy models other tests register are not)
ALL = [n for source in list_sources(lazy=False) for n in list_models(source=source)]


def _on_meta() -> set[str]:
    """Models over 100 M parameters run the contract on the meta device (shapes only), except
    the smallest of each family: their random init alone took 1-7 s per build, three builds
    each (a third of the sweep), and the builder's numbers are checked on that smallest one
    (and on vgg11_bn: the batch-norm VGGs are built another way)."""
    sizes = shipped_sizes()
    smallest: dict[str, str] = {}
    for name in sorted(ALL, key=sizes.__getitem__):
        smallest.setdefault(get_entry(name).family.name, name)
    checked = {*smallest.values(), "vgg11_bn"}
    return {n for n in ALL if sizes[n] > 100_000_000 and n not in checked}


ON_META = _on_meta()


def _setup(name: str) -> tuple[int, dict]:
    family = get_entry(name).family.name
    if family == "vit":
        kwargs = KWARGS.get(name, {"image_size": 32})
        return kwargs["image_size"], kwargs
    return SIZES.get(family, 32), {}


def _build(name: str, on_meta: bool, **kwargs) -> torch.nn.Module:
    if not on_meta:
        return create_model(name, **kwargs)
    with params_on_meta():
        return create_model(name, **kwargs).to("meta")


def _finite(t: torch.Tensor) -> bool:
    return t.is_meta or bool(torch.isfinite(t).all())


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and (a.is_meta or torch.equal(a, b))


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and (a.is_meta or torch.allclose(a, b, atol=1e-5, rtol=1e-4))


def _check_features(outs, info, size: int, batch: int) -> None:
    assert len(outs) == len(info)
    for out, chans, red in zip(outs, info.channels(), info.reduction(), strict=True):
        assert out.ndim == 4 and out.shape[:2] == (batch, chans)
        assert max(out.shape[2:]) <= math.ceil(size / red) + 1
        assert _finite(out)


def test_registry_holds_every_torchvision_classifier():
    import torchvision

    names = set(torchvision.models.list_models(module=torchvision.models))
    assert len(names) == 80 and names <= set(ALL)
    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"} <= set(ALL)


def test_shipped_sizes_are_the_built_models():
    """Search shows the sizes shipped in model_sizes.json instead of building 83 models; each
    must be the parameter count of what create_model builds (else: scripts/model_sizes.py)."""
    sizes = shipped_sizes()
    assert set(sizes) == set(ALL)
    for name in ALL:
        with params_on_meta():
            model = get_entry(name).builder()
        assert sizes[name] == sum(p.numel() for p in model.parameters()), name


@pytest.mark.parametrize("name", ALL)
@torch.no_grad()
def test_model_contract(name: str):
    size, kwargs = _setup(name)
    on_meta = name in ON_META
    device = "meta" if on_meta else "cpu"
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size, device=device)

    model = _build(name, on_meta, **kwargs)
    out = model(x)
    assert out.shape == (2, 1000) and _finite(out)
    feats = model.forward_features(x)
    assert _equal(model.forward_head(feats), out)
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == (2, model.num_features)
    _check_features(model.forward_intermediates(x), model.feature_info, size, 2)
    assert model.data_config.input_size[0] == 3

    model.reset_classifier(0)
    assert _close(model(x), pre)
    model.reset_classifier(0, global_pool="")
    assert _equal(model(x), feats)
    model.reset_classifier(7, global_pool="avg")
    if on_meta:
        model.to("meta")  # the new head was made on the CPU
    assert model(x).shape == (2, 7) and model.get_classifier() is not None
    del model

    model = _build(name, on_meta, num_classes=7, in_chans=5, **kwargs)
    out = model(torch.randn(2, 5, size, size, device=device))
    assert out.shape == (2, 7) and _finite(out)
    assert model.data_config.input_size[0] == 5 and len(model.data_config.mean) == 5
    del model

    model = _build(name, on_meta, in_chans=1, features_only=True, **kwargs)
    outs = model(torch.randn(2, 1, size, size, device=device))
    assert model.out_indices == list(range(len(outs)))
    _check_features(outs, model.feature_info, size, 2)
