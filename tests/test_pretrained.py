"""Weights: sources, safe loading, first-conv and head adaptation, checked exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import modelkit.models.pretrained as pretrained
from modelkit import WeightsLoadError, WeightsUnavailableError, create_model
from modelkit.config import IMAGENET_MEAN, IMAGENET_STD
from modelkit.models.registry import get_entry

# One model per family whose first conv differs in kind (plain conv, patch embedding, stems).
FIRST_CONVS = [
    ("resnet18", {}),
    ("vit_b_32", {"image_size": 32}),
    ("swin_t", {}),
    ("regnet_x_400mf", {}),
    ("googlenet", {}),
    ("mnasnet0_5", {}),
    ("squeezenet1_1", {}),
    ("efficientnet_lite0", {}),
    ("convnext_tiny", {}),
]


def _first_conv(model) -> torch.Tensor:
    return model.get_submodule(model.modelkit.spec.first_conv).weight.detach()


def _expected(weight: torch.Tensor, n: int) -> torch.Tensor:
    """Tiled and scaled by hand, channel by channel (summed for one channel)."""
    source = weight.shape[1]
    if n == 1:
        return weight.sum(1, keepdim=True)
    return torch.stack([weight[:, i % source] * (source / n) for i in range(n)], dim=1)


@pytest.mark.parametrize(("name", "kwargs"), FIRST_CONVS, ids=[n for n, _ in FIRST_CONVS])
def test_first_conv_summed_tiled_scaled(fabricate, name, kwargs):
    path, sd = fabricate(name, **kwargs)
    key = f"{get_entry(name).family.first_conv}.weight"
    for n in (1, 2, 4, 13):
        model = create_model(name, checkpoint_path=path, in_chans=n, **kwargs)
        assert torch.allclose(_first_conv(model), _expected(sd[key], n), atol=0, rtol=1e-6)
        assert f"{key}: 3 -> {n} channels" in " ".join(model.adaptations)
        assert model.data_config.input_size[0] == n and len(model.data_config.std) == n
        others = {k: v for k, v in model.state_dict().items() if k != key and k in sd}
        assert all(torch.equal(v, sd[k]) for k, v in others.items())
        x = torch.randn(1, n, *model.data_config.input_size[1:])
        if name.startswith("vit"):
            x = torch.randn(1, n, 32, 32)
        with torch.no_grad():
            assert torch.isfinite(model(x)).all()


def test_source_channels_come_from_the_checkpoint(fabricate):
    path, sd = fabricate("resnet18", in_chans=4)
    assert sd["conv1.weight"].shape[1] == 4
    kept = create_model("resnet18", checkpoint_path=path)
    assert torch.equal(_first_conv(kept), sd["conv1.weight"])
    wide = create_model("resnet18", checkpoint_path=path, in_chans=13)
    assert torch.allclose(_first_conv(wide), _expected(sd["conv1.weight"], 13), atol=0, rtol=1e-6)
    assert "conv1.weight: 4 -> 13 channels, repeated and scaled" in wide.adaptations


@pytest.mark.parametrize("name", ["resnet18", "regnet_x_400mf", "swin_t"])
@torch.no_grad()
def test_rgb_mode_gives_the_rgb_answer_on_those_bands(fabricate, name):
    path, _ = fabricate(name)
    rgb_model = create_model(name, checkpoint_path=path)
    bands = create_model(name, checkpoint_path=path, in_chans=13, in_chans_init="rgb",
                         rgb_channels=(3, 2, 1))  # fmt: skip
    x = torch.randn(2, 13, 64, 64)
    assert torch.allclose(bands(x), rgb_model(x[:, [3, 2, 1]]), atol=1e-5)
    cfg = bands.data_config
    assert (cfg.mean[3], cfg.mean[2], cfg.mean[1]) == pytest.approx(IMAGENET_MEAN)
    assert (cfg.std[3], cfg.std[2], cfg.std[1]) == pytest.approx(IMAGENET_STD)
    weight = _first_conv(bands)
    assert torch.count_nonzero(weight[:, [0, 4, 5, 6, 7, 8, 9, 10, 11, 12]]) == 0


@torch.no_grad()
def test_googlenet_transform_input_turned_off_is_the_same_maths(fabricate):
    path, _ = fabricate("googlenet")
    native = create_model("googlenet", checkpoint_path=path)
    assert native.transform_input is True  # torchvision's pretrained googlenet re-normalises
    rgb = create_model(
        "googlenet", checkpoint_path=path, in_chans_init="rgb", rgb_channels=(0, 1, 2)
    )
    assert rgb.transform_input is False and rgb.data_config.mean == (0.5, 0.5, 0.5)
    assert any("transform_input turned off" in a for a in rgb.adaptations)
    pixels = torch.rand(1, 3, 64, 64)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    assert torch.allclose(native((pixels - mean) / std), rgb((pixels - 0.5) / 0.5), atol=1e-4)


def test_random_mode_keeps_pretrained_filters_first(fabricate):
    path, sd = fabricate("resnet18")
    model = create_model("resnet18", checkpoint_path=path, in_chans=5, in_chans_init="random")
    weight = _first_conv(model)
    assert torch.equal(weight[:, :3], sd["conv1.weight"])
    assert weight[:, 3:].abs().sum() > 0


def test_head_kept_replaced_and_background_row_dropped(fabricate):
    path, sd = fabricate("resnet18")
    kept = create_model("resnet18", checkpoint_path=path)
    assert torch.equal(kept.fc.weight, sd["fc.weight"]) and kept.categories is not None
    assert len(kept.categories) == 1000
    new = create_model("resnet18", checkpoint_path=path, num_classes=7)
    assert new.fc.weight.shape == (7, 512) and new.categories is None
    assert "fc: new head for 7 classes" in new.adaptations
    assert torch.equal(new.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])

    path1001, sd1001 = fabricate("resnet18", num_classes=1001)
    for num_classes in (None, 1000):
        model = create_model("resnet18", checkpoint_path=path1001, num_classes=num_classes)
        assert torch.equal(model.fc.weight, sd1001["fc.weight"][1:])
        assert torch.equal(model.fc.bias, sd1001["fc.bias"][1:])
        assert model.num_classes == 1000 and len(model.categories) == 1000
    vit_path, _ = fabricate("vit_b_32", image_size=32)
    vit = create_model("vit_b_32", checkpoint_path=vit_path, num_classes=3, image_size=32)
    assert vit.heads.head.weight.shape == (3, 768) and vit.heads.head.weight.abs().sum() == 0


def test_safetensors_and_overlay_sources(fabricate):
    path, sd = fabricate("mobilenet_v3_small", suffix=".safetensors")
    model = create_model("mobilenet_v3_small", checkpoint_path=path)
    assert torch.equal(model.features[0][0].weight, sd["features.0.0.weight"])
    _, other = fabricate("mobilenet_v3_small", seed=1)
    # the in-memory state dict comes first, before checkpoint_path
    model = create_model("mobilenet_v3_small", checkpoint_path=path,
                         pretrained_cfg_overlay={"state_dict": other})  # fmt: skip
    assert torch.equal(model.features[0][0].weight, other["features.0.0.weight"])
    model = create_model("mobilenet_v3_small", pretrained_cfg_overlay={"file": str(path)})
    assert torch.equal(model.features[0][0].weight, sd["features.0.0.weight"])


def test_corrupt_and_wrong_files_raise_with_the_path(tmp_path, fabricate):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsLoadError, match="broken.pth"):
        create_model("resnet18", checkpoint_path=bad)
    path, _ = fabricate("resnet34")
    with pytest.raises(WeightsLoadError, match="do not fit resnet18"):
        create_model("resnet18", checkpoint_path=path)
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        create_model("resnet18", checkpoint_path=tmp_path / "missing.pth")


def test_offline_fails_without_touching_the_network(monkeypatch, tmp_path):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted while offline")

    monkeypatch.setattr(pretrained, "download", no_download)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsUnavailableError) as info:
        create_model("resnet18", pretrained=True)
    where = str(Path(tmp_path) / "checkpoints" / "resnet18-f37072fd.pth")
    assert where in str(info.value) and "MODELKIT_OFFLINE" in str(info.value)


def test_hub_cache_is_used_before_any_download(monkeypatch, tmp_path, fabricate):
    monkeypatch.setattr(pretrained, "download", lambda *a, **k: pytest.fail("downloaded"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    _, sd = fabricate("resnet18")
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    torch.save(sd, cached)
    model = create_model("resnet18", pretrained=True)
    assert torch.equal(model.conv1.weight, sd["conv1.weight"])
    assert model.pretrained_cfg.tag == "imagenet1k_v1" and model.categories[281] == "tabby"


@torch.no_grad()
def test_efficientnet_lite0_real_weights_rank_tiger_cat_first():
    import numpy as np
    from PIL import Image

    model = create_model("efficientnet_lite0", pretrained=True)
    cfg = model.data_config
    image = Image.open(Path(__file__).parent.parent / "assets" / "chelsea.png").convert("RGB")
    size = cfg.input_size[-1]
    short = round(size / cfg.crop_pct)
    w, h = image.size
    image = image.resize((round(w * short / min(w, h)), round(h * short / min(w, h))),
                         Image.Resampling.BICUBIC)  # fmt: skip
    left, top = (image.width - size) // 2, (image.height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
    x = (x - torch.tensor(cfg.mean)[:, None, None]) / torch.tensor(cfg.std)[:, None, None]
    top3 = model(x[None]).topk(3).indices[0].tolist()
    assert model.categories[top3[0]] == "tiger cat"
    assert {model.categories[i] for i in top3} <= {"tiger cat", "Egyptian cat", "tabby"}


def test_unreachable_network_fails_fast(monkeypatch, tmp_path):
    def refuse(address, timeout=None):
        assert timeout is not None and timeout <= 1.0
        raise OSError("network is unreachable")

    monkeypatch.delenv("MODELKIT_OFFLINE")
    monkeypatch.setattr(pretrained.socket, "create_connection", refuse)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsUnavailableError, match="resnet18-f37072fd.pth"):
        create_model("resnet18", pretrained=True)
    assert not (tmp_path / "checkpoints" / "resnet18-f37072fd.pth").exists()
