"""features_only and forward_intermediates: levels, layouts, out_indices, early stop."""

from __future__ import annotations

import pytest
import torch

from modelkit import ConfigError, create_model


@torch.no_grad()
def test_features_match_the_classifier_levels():
    torch.manual_seed(0)
    classifier = create_model("resnet18")
    features = create_model("resnet18", features_only=True, out_indices=(1, -1))
    features.load_state_dict(classifier.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 64)
    outs = features(x)
    ref = classifier.forward_intermediates(x)
    assert features.out_indices == [1, 4]
    assert torch.equal(outs[0], ref[1]) and torch.equal(outs[1], ref[4])
    assert torch.equal(outs[1], classifier.forward_features(x))
    assert features.feature_info.channels() == [64, 512]
    assert features.feature_info.reduction() == [4, 32]
    assert features.feature_info.module_name() == ["layer1", "layer4"]
    assert "fc.weight" not in features.state_dict()  # the head is not kept


def test_nothing_runs_after_the_deepest_level():
    model = create_model("resnet18", features_only=True, out_indices=(2,))
    assert isinstance(model.layer3, torch.nn.Identity) and isinstance(
        model.layer4, torch.nn.Identity
    )
    classifier = create_model("resnet18")
    called = []
    classifier.layer3.register_forward_hook(lambda *a: called.append("layer3"))
    with torch.no_grad():
        classifier.forward_intermediates(torch.randn(1, 3, 32, 32), out_indices=[0, 2])
    assert called == []


@torch.no_grad()
def test_vit_tokens_become_a_grid_without_the_class_token():
    torch.manual_seed(0)
    model = create_model("vit_b_32", image_size=64)
    x = torch.randn(2, 3, 64, 64)
    last = model.forward_intermediates(x, out_indices=[-1])[0]
    assert last.shape == (2, 768, 2, 2)
    tokens = model.encoder.layers(model.encoder.dropout(
        torch.cat([model.class_token.expand(2, -1, -1), model._process_input(x)], 1)
        + model.encoder.pos_embedding))  # fmt: skip
    assert torch.equal(last, tokens[:, 1:].reshape(2, 2, 2, 768).permute(0, 3, 1, 2))


@torch.no_grad()
def test_swin_levels_are_nchw():
    model = create_model("swin_t", features_only=True)
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == model.feature_info.channels() == [96, 192, 384, 768]
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]


@pytest.mark.parametrize("bad", [[5], [-6], [0, 0], [1, -4], ["1"], [1.0], [], "all"])
def test_bad_out_indices_name_the_valid_range(bad):
    with pytest.raises(ConfigError, match="from -5 to 4"):
        create_model("resnet18", features_only=True, out_indices=bad)


def test_out_indices_need_features_only():
    with pytest.raises(ConfigError, match="features_only"):
        create_model("resnet18", out_indices=[1])
