"""The timm source: lazy names, the create contract over timm models, our first-conv adaptation
against timm's own, Hub weights offline, sensor weights with their bands, search and card."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import timm
import torch

from modelkit import (
    ConfigError,
    WeightsUnavailableError,
    create_model,
    get_pretrained_cfg,
    list_models,
    list_pretrained,
)
from modelkit.models import sensors

# one small architecture per family; sizes that every one of them accepts
SAMPLE = {
    "timm/resnet18": {}, "timm/mobilenetv3_small_050": {},
    "timm/convnext_atto": {}, "timm/vit_tiny_patch16_224": {"img_size": 32},
}  # fmt: skip
SLOW_SAMPLE = {
    "timm/regnetx_002": {}, "timm/efficientnet_b0": {}, "timm/densenet121": {},
    "timm/mobilenetv4_conv_small": {},
    "timm/efficientvit_b0": {}, "timm/fastvit_t8": {}, "timm/deit_tiny_patch16_224": {
        "img_size": 32}, "timm/swin_tiny_patch4_window7_224": {"img_size": 64},
    "timm/edgenext_xx_small": {}, "timm/ghostnet_050": {}, "timm/levit_128s": {"img_size": 64},
    "timm/mobilevitv2_050": {}, "timm/poolformer_s12": {}, "timm/resnet18d": {},
    "timm/coatnet_nano_rw_224": {"img_size": 64}, "timm/deit3_small_patch16_224": {
        "img_size": 32}, "timm/maxvit_nano_rw_256": {"img_size": 64}, "timm/tresnet_m": {},
    "timm/repvit_m1": {}, "timm/hgnetv2_b0": {}, "timm/caformer_s18": {},
}  # fmt: skip
SIZE = {"timm/swin_tiny_patch4_window7_224": 64, "timm/levit_128s": 64}


def _size(name: str, kwargs: dict) -> int:
    if "img_size" in kwargs:
        return kwargs["img_size"]
    return SIZE.get(name, 64)


def _check_features(outs, info, size: int, batch: int) -> None:
    assert len(outs) == len(info)
    for out, chans, red in zip(outs, info.channels(), info.reduction(), strict=True):
        assert out.ndim == 4 and out.shape[:2] == (batch, chans)
        assert max(out.shape[2:]) <= math.ceil(size / red) + 1
        assert torch.isfinite(out).all()


def _listed(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


@torch.no_grad()
def check_default(name: str, kwargs: dict, size: int) -> None:
    """Classifier: logits, forward_features/forward_head, pre-logits, intermediates, pooling
    and classifier resets (the contract tests/test_sweep.py asks of every torchvision model)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    model = create_model(name, **kwargs)
    if not model.num_classes:  # a backbone (e.g. DINOv3, SAM2's Hiera): give it a head
        model = create_model(name, num_classes=1000, **kwargs)
    out = model(x)
    assert out.shape == (2, model.num_classes) and torch.isfinite(out).all()
    feats = model.forward_features(x)
    assert torch.allclose(model.forward_head(feats), out, atol=1e-5)
    pre = model.forward_head(feats, pre_logits=True)
    # timm's pre-logits width: head_hidden_size (MobileNetV3's conv_head widens after pooling)
    assert pre.shape == (2, getattr(model, "head_hidden_size", None) or model.num_features)
    _check_features(model.forward_intermediates(x), model.feature_info, size, 2)
    assert model.data_config.input_size[0] == 3
    model.reset_classifier(0)
    assert torch.allclose(model(x), pre, atol=1e-5, rtol=1e-4)
    model.reset_classifier(0, global_pool="")
    unpooled = model(x)  # CoaT and EfficientViM give a list of token maps here, as timm does
    assert all(map(torch.equal, *(_listed(v) for v in (unpooled, feats))))
    model.reset_classifier(7, global_pool="avg")
    assert model(x).shape == (2, 7) and model.get_classifier() is not None


@torch.no_grad()
def check_in_chans(name: str, kwargs: dict, size: int, in_chans: int = 5) -> None:
    """num_classes=7 with in_chans=5: a new head, a first conv for 5 bands, 5-channel stats."""
    model = create_model(name, num_classes=7, in_chans=in_chans, **kwargs)
    out = model(torch.randn(2, in_chans, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert model.data_config.input_size[0] == in_chans
    assert len(model.data_config.mean) == in_chans
    assert any(f"3 -> {in_chans} channels, random weights" in a for a in model.adaptations)


@torch.no_grad()
def check_features_only(name: str, kwargs: dict, size: int) -> None:
    """features_only with in_chans=1: every level as NCHW; out_indices=[-1]: the deepest."""
    model = create_model(name, in_chans=1, features_only=True, **kwargs)
    outs = model(torch.randn(2, 1, size, size))
    assert model.out_indices == list(range(len(outs)))
    _check_features(outs, model.feature_info, size, 2)
    last = create_model(name, features_only=True, out_indices=[-1], **kwargs)
    (only,) = last(torch.randn(2, 3, size, size))
    assert only.shape[1] == model.feature_info.channels()[-1]


CHECKS = {"default": check_default, "in_chans": check_in_chans,
          "features_only": check_features_only}  # fmt: skip


def _contract(name: str, kwargs: dict) -> None:
    """The same contract tests/test_sweep.py asks of every torchvision model."""
    size = _size(name, kwargs)
    for check in CHECKS.values():
        check(name, kwargs, size)


@pytest.mark.parametrize("name", SAMPLE)
def test_timm_contract(name):
    _contract(name, SAMPLE[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_SAMPLE)
def test_timm_contract_wider(name):
    _contract(name, SLOW_SAMPLE[name])


def test_names_are_lazy_and_do_not_import_timm():
    code = (
        "import sys, modelkit\n"
        "assert 'timm' not in sys.modules\n"
        "assert modelkit.list_models('resnet1*') == ['resnet101', 'resnet152', 'resnet18']\n"
        "names = modelkit.list_models('timm/*vit*', pretrained=True)\n"
        "assert 'timm/vit_small_patch16_224' in names and len(names) > 200, len(names)\n"
        "assert 'timm' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_registry_names_tags_and_facts():
    assert len(list_models("timm/*")) == len(timm.list_models()) == 1371
    assert list_models("timm/convnext_tiny") == ["timm/convnext_tiny"]
    assert "timm/convnext_tiny.fb_in22k_ft_in1k" in list_pretrained("timm/convnext_tiny")
    cfg = get_pretrained_cfg("timm/convnext_tiny.fb_in22k_ft_in1k")
    ref = timm.models.get_pretrained_cfg("convnext_tiny.fb_in22k_ft_in1k")
    assert cfg.hf_hub_id == ref.hf_hub_id == "timm/convnext_tiny.fb_in22k_ft_in1k"
    assert (cfg.interpolation, cfg.crop_pct, cfg.license) == (
        ref.interpolation, ref.crop_pct, ref.license
    )  # fmt: skip
    assert cfg.input_size == ref.input_size and cfg.mean == ref.mean
    # the default tag is timm's default
    assert get_pretrained_cfg("timm/resnet50").tag == timm.models.get_pretrained_cfg("resnet50").tag
    assert len(list_models(source="torchvision")) == 80  # existing names unchanged


def test_shipped_index_matches_installed_timm():
    import gzip
    import json

    from modelkit.models.timm_source import SHIPPED_INDEX, build_index

    shipped = json.loads(gzip.decompress(SHIPPED_INDEX.read_bytes()))
    assert shipped == json.loads(json.dumps(build_index()))


# --- weights ----------------------------------------------------------------------------------


def _timm_checkpoint(tmp_path, arch, **kwargs):
    torch.manual_seed(1)
    sd = timm.create_model(arch, **kwargs).state_dict()
    path = tmp_path / f"{arch}.pth"
    torch.save(sd, path)
    return path, sd


def test_adaptation_matches_timms_own(tmp_path):
    from timm.models import adapt_input_conv

    path, sd = _timm_checkpoint(tmp_path, "resnet18")
    for chans in (1, 5):
        ours = create_model("timm/resnet18.a1_in1k", checkpoint_path=str(path), in_chans=chans)
        theirs = timm.create_model(
            "resnet18", pretrained=True, in_chans=chans,
            pretrained_cfg_overlay={"file": str(path)},
        )  # fmt: skip
        expect = adapt_input_conv(chans, sd["conv1.weight"].clone())
        assert torch.allclose(ours.conv1.weight, expect)
        assert ours.state_dict().keys() == theirs.state_dict().keys()
        for k, v in theirs.state_dict().items():
            assert torch.allclose(ours.state_dict()[k], v), k
        x = torch.randn(1, chans, 64, 64)
        with torch.no_grad():
            assert torch.allclose(ours(x), theirs.eval()(x), atol=1e-5)
        assert f"conv1.weight: 3 -> {chans} channels" in " ".join(ours.adaptations)
    # our own modes, which timm has not: R, G, B filters on chosen channels; random extras
    rgb = create_model("timm/resnet18.a1_in1k", checkpoint_path=str(path), in_chans=5,
                       in_chans_init="rgb", rgb_channels=(3, 2, 1))  # fmt: skip
    w = rgb.conv1.weight
    assert torch.equal(w[:, [3, 2, 1]], sd["conv1.weight"]) and not w[:, [0, 4]].any()
    assert rgb.data_config.mean[3] == pytest.approx(0.485)
    rnd = create_model("timm/resnet18.a1_in1k", checkpoint_path=str(path), in_chans=5,
                       in_chans_init="random")  # fmt: skip
    assert torch.equal(rnd.conv1.weight[:, :3], sd["conv1.weight"])
    assert "first 3 channels pretrained, the rest random" in " ".join(rnd.adaptations)
    # num_classes: a new head, the rest loaded
    head = create_model("timm/resnet18.a1_in1k", checkpoint_path=str(path), num_classes=4)
    assert head.fc.out_features == 4 and torch.equal(head.layer4[0].conv1.weight,
                                                     sd["layer4.0.conv1.weight"])  # fmt: skip


def save_weights(sd: dict, path) -> None:
    """A state dict as a .safetensors file or a torch one, by the file's name."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)


def _fake_hub(root, repo, filename, sd, revision="0" * 40):
    """A Hugging Face cache holding ``filename`` of ``repo`` (what a download leaves)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    snap = folder / "snapshots" / revision
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    save_weights(sd, snap / filename)


def test_offline_error_names_the_file_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(WeightsUnavailableError) as err:
        create_model("timm/resnet18.a1_in1k", pretrained=True)
    text = str(err.value)
    assert "MODELKIT_OFFLINE=1" in text and "model.safetensors" in text
    assert "https://huggingface.co/timm/resnet18.a1_in1k" in text and str(tmp_path / "hub") in text
    assert "checkpoint_path" in text
    import os

    # MODELKIT_OFFLINE stops modelkit's own downloads; it is not written into the environment
    # that later subprocesses inherit
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_hub_weights_with_imagenet_labels(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    torch.manual_seed(2)
    sd = timm.create_model("resnet18").state_dict()
    _fake_hub(tmp_path / "hub", "timm/resnet18.a1_in1k", "model.safetensors", sd)
    model = create_model("timm/resnet18.a1_in1k", pretrained=True)
    assert torch.equal(model.fc.weight, sd["fc.weight"])
    assert "the Hugging Face Hub (timm/resnet18.a1_in1k" in model.adaptations[0]
    assert len(model.categories) == 1000 and model.categories[0].startswith("tench")
    from modelkit.app import form
    from modelkit.models.info import model_info

    assert model_info("timm/resnet18.a1_in1k")["weights_on_disk"]
    rows = form.search_models("resnet18", on_disk=True, source="timm")
    assert [r["name"] for r in rows] == ["timm/resnet18"]


# --- sensor weights ---------------------------------------------------------------------------


SENSOR = {
    "resnet18.ssl4eo_s12_all_moco": ("resnet18", "fc."),
    "resnet50.ssl4eo_s12_all_moco": ("resnet50", "fc."),
    "vit_small_patch16_224.ssl4eo_s12_all_moco": ("vit_small_patch16_224", "head."),
    "resnet18.ssl4eo_l_oli_sr_moco": ("resnet18", "fc."),
}


@pytest.mark.parametrize(
    "tag",
    [pytest.param(t, marks=pytest.mark.slow) if "resnet50" in t else t for t in SENSOR],
)
def test_sensor_weights_native_bands(tag, tmp_path, monkeypatch):
    arch, head = SENSOR[tag]
    w = sensors.sensor_weights(f"timm/{tag}")
    n = len(w.bands)
    # the published files: timm's keys for in_chans=n, without the classifier
    torch.manual_seed(3)
    sd = {k: v for k, v in timm.create_model(arch, in_chans=n).state_dict().items()
          if not k.startswith(head)}  # fmt: skip
    repo, revision, filename = w.url.split("/", 3)[3].split("/resolve/")[0], *w.url.rsplit(
        "/resolve/", 1)[1].split("/", 1)  # fmt: skip
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    _fake_hub(tmp_path / "hub", repo, filename, sd, revision)
    model = create_model(f"timm/{tag}", pretrained=True)
    first = model.pretrained_cfg.first_conv
    assert torch.equal(model.get_submodule(first).weight, sd[f"{first}.weight"])
    assert any(f"native {n}-band weights" in a for a in model.adaptations)
    assert not any("channels" in a and "->" in a for a in model.adaptations)
    assert model.num_classes == 0 and model.categories is None
    cfg = model.pretrained_cfg
    if w.dataset == "SSL4EO-S12":
        assert cfg.bands == ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9",
                             "B10", "B11", "B12")  # fmt: skip
        assert model.data_config.std == (10000.0,) * 13 and model.data_config.mean == (0.0,) * 13
        assert (model.data_config.resize_size, model.data_config.input_size) == (
            256,
            (13, 224, 224),
        )
    else:
        assert cfg.bands == ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
        assert model.data_config.std == (255.0,) * 7
    x = torch.randn(1, n, 224, 224)
    with torch.no_grad():
        maps = model.forward_intermediates(x, [-1])
    assert maps[0].ndim == 4 and maps[0].shape[1] == model.feature_info.channels()[-1]


def test_sensor_preprocess_and_band_matching():
    from modelkit.images.preprocess import preprocess
    from modelkit.images.read import read_image

    cfg = get_pretrained_cfg("timm/resnet18.ssl4eo_s12_all_moco")
    raw = np.full((13, 300, 300), 2000, np.uint16)
    x = preprocess(raw, cfg.data_config())  # "auto" uses the raw values the weights want
    assert x.shape == (1, 13, 224, 224) and torch.allclose(x, torch.tensor(0.2))
    names = ["B02", "B03", "B04", "B8", "B1", "B5", "B6", "B7", "B8A", "B9", "B10", "B11", "B12"]
    order = sensors.match_bands(names, cfg.bands)
    assert [names[i] for i in order][:4] == ["B1", "B02", "B03", "B04"] and len(order) == 13
    assert sensors.match_bands(names[:12], cfg.bands) is None
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "assets" / "sentinel2_13band.tif"
    image = read_image(path.read_bytes(), path.name)
    assert sensors.match_bands(image.band_names, cfg.bands) == list(range(13))
    from modelkit.app.form import image_summary

    assert "timm/resnet18.ssl4eo_s12_all_moco" in image_summary(image)


# --- runtime, search and card -----------------------------------------------------------------


def test_engine_features_and_predict_with_timm(tmp_path):
    from modelkit.runtime.engine import features, predict
    from modelkit.runtime.model_cache import ModelCache
    from modelkit.runtime.result_cache import ResultCache

    path, _ = _timm_checkpoint(tmp_path, "resnet18")
    cache, results = ModelCache(), ResultCache(tmp_path / "results")
    image = np.random.default_rng(0).integers(0, 255, (5, 48, 48), dtype=np.uint8)
    name = "timm/resnet18"
    f1 = features(image, name, in_chans=5, out_indices=[1, -1], model_cache=cache,
                  result_cache=results)  # fmt: skip
    assert [lv["array"].shape[0] for lv in f1.levels] == [64, 512]
    p = predict(image, name, in_chans=5, num_classes=3, model_cache=cache, result_cache=results)
    assert len(p.logits) == 3 and p.head_is_random
    # pretrained (a local checkpoint through the registry): results are cached
    from modelkit.models.registry import get_entry

    entry = get_entry(name)
    cfg = entry.cfgs["a1_in1k"]
    import dataclasses

    entry.cfgs["a1_in1k"] = dataclasses.replace(cfg, file=str(path), hf_hub_id=None)
    try:
        first = predict(image[:3], "timm/resnet18.a1_in1k", pretrained=True,
                        model_cache=cache, result_cache=results)  # fmt: skip
        again = predict(image[:3], "timm/resnet18.a1_in1k", pretrained=True,
                        model_cache=cache, result_cache=results)  # fmt: skip
    finally:
        entry.cfgs["a1_in1k"] = cfg
    assert again.result_cache_hit and first.labels == again.labels
    assert first.labels[0] != "class 0" and not first.head_is_random


def test_search_and_card(monkeypatch):
    from modelkit.app import form
    from modelkit.models.info import model_info

    rows = form.search_models("vit small", source="timm", pretrained_only=True)
    assert rows and all(r["source"] == "timm" for r in rows)
    assert "timm/vit_small_patch16_224" in [r["name"] for r in rows]
    flagged = form.search_models("", source="timm", pretrained_only=True)
    nc = [r for r in flagged if r["licence"] == "non-commercial"]
    assert nc and all(
        get_pretrained_cfg(r["name"]).license
        in {
            "cc-by-nc-4.0",
            "fair-noncommercial-research-license",
            "seer-license",
            "apple-amlr",
            "sapiens2-license",
        }
        for r in nc
    )
    card = form.model_card(model_info("timm/convnext_tiny.fb_in22k_ft_in1k"))
    assert "bicubic, crop 0.875" in card and "apache-2.0" in card and "28.59 M" in card
    assert "| 3 | `stages.3` | 768 | 32 |" in card
    sensor = form.model_card(model_info("timm/resnet18.ssl4eo_s12_all_moco"))
    assert "**Bands** 13" in sensor and "Feature extractor" in sensor and "cc-by-4.0" in sensor


def test_clear_errors_for_settings_a_model_cannot_take():
    with pytest.raises(ConfigError, match="timm/resnet18 cannot be built with"):
        create_model("timm/resnet18", no_such_argument=1)
    with pytest.raises(ConfigError, match="takes 32x32 inputs only"):
        create_model("timm/vit_tiny_patch16_224", img_size=32)(torch.randn(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="out_indices"):
        create_model("timm/resnet18", features_only=True, out_indices=[9])
    # a family built for RGB only says so at create time (timm builds it, then fails inside)
    with pytest.raises(ConfigError, match="takes 3 channels .R, G, B. only: its DCT stem"):
        create_model("timm/csatv2", in_chans=5)
    # LeViT's attention biases are sized at build time: another input size fails deep inside
    # timm with a RuntimeError; modelkit says what the model was built for
    levit = create_model("timm/levit_128s")
    with pytest.raises(ConfigError, match="built for 3 channels at 224x224. Resize the image"):
        levit(torch.randn(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="levit_128s failed on a 3-channel 32x32 input"):
        levit.forward_features(torch.randn(1, 3, 32, 32))
