"""Registry: names, wildcards, tags, cfgs from torchvision metadata, model_info without weights."""

from __future__ import annotations

import pytest
import torch

from modelkit import (
    ConfigError,
    UnknownModelError,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    list_sources,
    model_info,
)


def test_list_models_filters():
    assert list_models("resnet1*") == ["resnet101", "resnet152", "resnet18"]
    assert list_models("vit_*", exclude_filters="*_32") == ["vit_b_16", "vit_h_14", "vit_l_16"]
    assert list_models(family="swin") == [
        "swin_b",
        "swin_s",
        "swin_t",
        "swin_v2_b",
        "swin_v2_s",
        "swin_v2_t",
    ]
    assert "efficientnet_lite0" in list_models(pretrained=True)
    assert sum(len(list_models(source=s)) for s in list_sources(lazy=False)) == 83
    # (other tests may register toy models of their own beside these)
    assert len(list_models()) >= 83 + len(list_models("timm/*")) == 83 + 1371


def test_tags_follow_torchvision_weights():
    tags = list_pretrained("resnet50")
    assert tags == ["resnet50.imagenet1k_v1", "resnet50.imagenet1k_v2"]
    assert get_pretrained_cfg("resnet50").tag == "imagenet1k_v2"  # torchvision's DEFAULT
    assert "vit_h_14.imagenet1k_swag_e2e_v1" in list_pretrained("vit_h_14*")
    assert is_model("resnet50.imagenet1k_v1") and not is_model("resnet5")


def test_cfg_transforms_match_torchvision():
    v2 = get_pretrained_cfg("resnet50.imagenet1k_v2")
    assert (v2.input_size, v2.resize_size, v2.interpolation) == ((3, 224, 224), 232, "bilinear")
    assert v2.metrics["acc@1"] == pytest.approx(80.858) and v2.gflops == pytest.approx(4.089)
    assert v2.categories[281] == "tabby" and v2.hub_filename == "resnet50-11ad3fa6.pth"
    swag = get_pretrained_cfg("vit_h_14.imagenet1k_swag_e2e_v1")
    assert (swag.input_size[-1], swag.resize_size, swag.interpolation) == (518, 518, "bicubic")
    assert swag.data_config().resize_size == 518


def test_unknown_names_and_tags():
    with pytest.raises(UnknownModelError, match="resnet50"):
        get_pretrained_cfg("resnet05")
    with pytest.raises(ConfigError, match="imagenet1k_v1"):
        get_pretrained_cfg("resnet50.nope")


def test_model_info_counts_parameters_without_weights():
    info = model_info("resnet18")
    assert info["params"] == sum(p.numel() for p in create_model_plain("resnet18").parameters())
    assert info["family"] == "resnet" and info["default_tag"] == "imagenet1k_v1"
    assert info["acc@1"] == pytest.approx(69.758) and info["gflops"] == pytest.approx(1.814)
    assert [lvl["reduction"] for lvl in info["feature_levels"]] == [2, 4, 8, 16, 32]
    assert [lvl["channels"] for lvl in info["feature_levels"]] == [64, 64, 128, 256, 512]
    assert model_info("efficientnet_lite0")["weights_on_disk"] is True
    big = model_info("regnet_y_128gf")  # 645M parameters, never allocated
    assert big["params"] == 644812894


def test_search_shows_sizes_without_building(monkeypatch):
    """The page's first search lists every model with its size; the built-in models' sizes
    are shipped (tests/test_sweep.py checks them against builds), so nothing is built."""
    from modelkit.models import info
    from modelkit.models.info import model_summaries

    def no_build(*args):
        raise AssertionError("search built a model")

    monkeypatch.setattr(info, "_meta_facts", no_build)
    names = [n for s in list_sources(lazy=False) for n in list_models(source=s)]
    rows = model_summaries(names)
    assert len(rows) == len(names) == 83
    assert {r["name"]: r["params"] for r in rows}["regnet_y_128gf"] == 644812894


def create_model_plain(name):
    import torchvision

    return torchvision.models.get_model(name)


@pytest.mark.slow  # traces all 83 models on the meta device
def test_every_model_has_levels_and_cfg():  # timm's: tests/test_timm.py
    for name in [n for s in list_sources(lazy=False) for n in list_models(source=s)]:
        info = model_info(name)
        assert info["feature_levels"] and info["params"] > 0
        assert info["input_size"][0] == 3 and len(info["mean"]) == 3
    assert torch.get_default_device().type == "cpu"
