"""create_model arguments: defaults, tags, data config, and a clear error for every bad value."""

from __future__ import annotations

import pytest
import torch

from modelkit import ConfigError, UnknownModelError, create_model


def test_tag_sets_cfg_and_data_config():
    model = create_model("resnet50.imagenet1k_v1")
    assert model.pretrained_cfg.name == "resnet50.imagenet1k_v1"
    assert model.data_config.resize_size == 256 and model.categories is None
    assert model.adaptations == [] and model.num_classes == 1000 and model.num_features == 2048


def test_in_chans_changes_data_config():
    model = create_model("mobilenet_v3_small", in_chans=1, num_classes=4)
    cfg = model.data_config
    assert cfg.input_size == (1, 224, 224) and len(cfg.mean) == 1
    assert cfg.mean[0] == pytest.approx(sum((0.485, 0.456, 0.406)) / 3)
    assert model(torch.randn(1, 1, 32, 32)).shape == (1, 4)
    assert any("3 -> 1 channels" in a for a in model.adaptations)


def test_drop_rate_sets_head_dropout():
    model = create_model("mobilenet_v3_small", drop_rate=0.5)
    assert model.classifier[2].p == 0.5
    with pytest.raises(ConfigError, match="no dropout"):
        create_model("resnet18", drop_rate=0.1)


def test_global_pool_and_num_classes_zero():
    model = create_model("resnet18", num_classes=0, global_pool="")
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)
    model = create_model("resnet18", num_classes=0)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 512)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"num_classes": -1}, "num_classes=-1"),
        ({"num_classes": 2.5}, "num_classes=2.5"),
        ({"in_chans": 0}, "in_chans=0"),
        ({"global_pool": "max"}, "global_pool='max'"),
        ({"global_pool": "", "num_classes": 5}, "num_classes=0"),
        ({"drop_rate": 1.5}, "drop_rate=1.5"),
        ({"in_chans_init": "copy"}, "in_chans_init='copy'"),
        ({"in_chans": 5, "in_chans_init": "rgb"}, "rgb_channels=(r, g, b)"),
        ({"in_chans": 5, "in_chans_init": "rgb", "rgb_channels": (0, 1, 7)}, "from 0 to 4"),
        ({"in_chans": 5, "in_chans_init": "rgb", "rgb_channels": (0, 1, 1)}, "repeats"),
        ({"rgb_channels": (0, 1, 2)}, "in_chans_init='rgb'"),
        ({"pretrained_cfg_overlay": {"colour": 1}}, "unknown keys"),
    ],
)
def test_bad_arguments_raise_config_error(kwargs, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        create_model("resnet18", **kwargs)


def test_unknown_model_suggests_names():
    with pytest.raises(UnknownModelError, match="convnext_tiny"):
        create_model("convnext_tiyn")


def test_reset_classifier_validates():
    model = create_model("resnet18")
    with pytest.raises(ConfigError, match="num_classes=0"):
        model.reset_classifier(3, global_pool="")
    model.reset_classifier(3)
    assert model.fc.out_features == 3 and model.categories is None


def test_meta_build_in_one_thread_leaves_real_builds_in_others_alone():
    """model_info builds on the meta device by patching nn.Module; a model built at the same time
    in another thread (the app serves both at once) must still get real weights."""
    import threading

    from torch import nn

    from modelkit.models.no_init import params_on_meta

    original = nn.Module.register_parameter
    entered, release, inside = threading.Event(), threading.Event(), []

    def meta_build():
        with params_on_meta():
            entered.set()
            release.wait(60)
            inside.append(nn.Linear(2, 2))

    thread = threading.Thread(target=meta_build)
    thread.start()
    try:
        assert entered.wait(60)
        assert nn.Module.register_parameter is not original  # the patch is live now
        model = create_model("resnet18", in_chans=5, num_classes=3)
    finally:
        release.set()
        thread.join()
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert model(torch.zeros(1, 5, 64, 64)).shape == (1, 3)
    assert inside[0].weight.is_meta
    assert nn.Module.register_parameter is original  # removed once no thread needs it


@pytest.mark.parametrize(
    "settings",
    [
        {"pretrained": True},
        {"pretrained": True, "in_chans": 5},
        {"pretrained": True, "in_chans": 2, "in_chans_init": "random"},
        {"pretrained": True, "in_chans": 5, "in_chans_init": "random"},
        {"pretrained": True, "num_classes": 7},
        {"pretrained": True, "num_classes": 1000},
        {"pretrained": False},
    ],
)
def test_random_parts_says_when_two_builds_differ(settings):
    """random_parts (used to keep random results out of the disk cache) against real builds:
    two builds under different seeds agree exactly when it names no random part."""
    from modelkit.models.factory import random_parts

    x = torch.randn(
        1, settings.get("in_chans", 3), 64, 64, generator=torch.Generator().manual_seed(0)
    )
    outs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = create_model("efficientnet_lite0", **settings)
        with torch.inference_mode():
            outs.append((model(x), model.forward_features(x)))
    (logits_a, maps_a), (logits_b, maps_b) = outs
    named = {k: v for k, v in settings.items() if k != "pretrained"}
    parts = random_parts("efficientnet_lite0", settings["pretrained"], **named)
    assert bool(parts) == (not torch.equal(logits_a, logits_b))
    body = random_parts("efficientnet_lite0", settings["pretrained"], **named, with_head=False)
    assert bool(body) == (not torch.equal(maps_a, maps_b))


def test_a_fixed_size_model_names_its_size_instead_of_asserting():
    from modelkit import model_info

    assert model_info("vit_b_16")["fixed_input_size"] == (224, 224)
    assert model_info("maxvit_t")["fixed_input_size"] == (224, 224)
    assert model_info("resnet18")["fixed_input_size"] is None
    for kwargs in ({}, {"features_only": True}):
        model = create_model("vit_b_16", **kwargs).eval()
        with pytest.raises(ConfigError, match="224x224 inputs only, got 96x96"):
            model(torch.zeros(1, 3, 96, 96))
