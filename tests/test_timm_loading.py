"""Pretrained timm models built without a random init (modelkit/models/timm_loading.py and
no_init.py): the same weights and outputs as timm's own pretrained load, the plain road for
what that road does not fit, and the switches acting only in their own thread."""

from __future__ import annotations

import re
import threading

import pytest
import timm
import torch
from torch import nn

from modelkit import ConfigError, WeightsLoadError, create_model
from modelkit.models import timm_loading
from modelkit.models.no_init import has_meta_tensors, loads_assigning, params_on_meta
from tests.test_timm import save_weights
from tests.test_timm_sweep import FAMILIES


@pytest.fixture
def roads(monkeypatch) -> list[str]:
    """The road each create_model took: 'without init', 'with init' or 'plain'."""
    taken, assigned, plain = [], timm_loading._assigned, timm_loading._plain

    def assigned_spy(*args, init):
        model = assigned(*args, init=init)
        taken.append("with init" if init else "without init")
        return model

    def plain_spy(*args, **kwargs):
        taken.append("plain")
        return plain(*args, **kwargs)

    monkeypatch.setattr(timm_loading, "_assigned", assigned_spy)
    monkeypatch.setattr(timm_loading, "_plain", plain_spy)
    return taken


def _checkpoint(tmp_path, arch: str, suffix: str = ".pth", edit=None, **kwargs):
    torch.manual_seed(0)
    sd = timm.create_model(arch, **kwargs).state_dict()
    if edit:
        sd = edit(sd)
    path = tmp_path / f"{arch}{suffix}"
    save_weights(sd, path)
    return str(path), sd


def _same_as_timm(name: str, path: str, chans: int, size: int, **kwargs) -> nn.Module:
    """create_model from ``path`` has timm's own pretrained load's tensors and outputs."""
    ours = create_model(f"timm/{name}", checkpoint_path=path, in_chans=chans, **kwargs)
    theirs = timm.create_model(name, pretrained=True, in_chans=chans,
                               pretrained_cfg_overlay={"file": path}, **kwargs).eval()  # fmt: skip
    mine = ours.state_dict()
    assert mine.keys() == theirs.state_dict().keys()
    for key, want in theirs.state_dict().items():
        assert mine[key].dtype == want.dtype and torch.allclose(mine[key], want), key
    assert all(p.device.type == "cpu" and p.is_leaf and p.requires_grad for p in ours.parameters())
    x = torch.randn(2, chans, size, size)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5, rtol=1e-4)
    return ours


@pytest.mark.parametrize("arch", ["resnet18", "vit_tiny_patch16_224"])
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_without_init_gives_timms_own_load(arch, suffix, tmp_path, roads):
    """ViT's checkpoint filter runs (timm's loader reads the file); the stem is ours."""
    path, sd = _checkpoint(tmp_path, arch, suffix)
    for chans in (3, 5):
        model = _same_as_timm(arch, path, chans, 224 if "vit" in arch else 64)
        stem = model.pretrained_cfg.first_conv
        assert (f"{stem}.weight: 3 -> 5 channels" in " ".join(model.adaptations)) == (chans == 5)
    assert set(roads) == {"without init"}


def test_shared_parameters_stay_shared(tmp_path, roads):
    """CoaT shares its position-encoding modules between blocks: 220 parameter names point to
    tensors other names own. Loaded by assignment, they must still be the same tensors."""
    path, _ = _checkpoint(tmp_path, "coat_tiny", img_size=32)
    model = _same_as_timm("coat_tiny", path, 3, 32, img_size=32)

    def shared(m):
        return len(list(m.named_parameters(remove_duplicate=False))) - len(list(m.parameters()))

    assert shared(model) == shared(timm.create_model("coat_tiny", img_size=32)) == 220
    assert roads == ["without init"]
    # one parameter registered in two modules (tied weights) is one tensor again after the load
    tied = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    source = {k: torch.randn(v.shape) for k, v in tied.state_dict().items()}
    source["1.weight"] = source["0.weight"]
    with params_on_meta(), loads_assigning(lambda model, sd: sd):
        tied = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
        tied[1].weight = tied[0].weight
        tied.load_state_dict(source)
    assert tied[1].weight is tied[0].weight and torch.equal(tied[0].weight, source["0.weight"])


def test_half_precision_checkpoint_loads_as_float32(tmp_path, roads):
    def half(sd):
        return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}

    path, sd = _checkpoint(tmp_path, "resnet18", edit=half)
    model = _same_as_timm("resnet18", path, 3, 64)
    assert torch.equal(model.fc.weight, sd["fc.weight"].float())
    assert set(roads) == {"without init"}


def test_a_checkpoint_with_its_own_head_is_built_again_with_its_class_count(tmp_path, roads):
    def seven(sd):
        return {**sd, "fc.weight": sd["fc.weight"][:7], "fc.bias": sd["fc.bias"][:7]}

    path, sd = _checkpoint(tmp_path, "resnet18", edit=seven)
    for chans in (3, 5):
        model = create_model("timm/resnet18.a1_in1k", checkpoint_path=path, in_chans=chans)
        assert model.num_classes == 7 and torch.equal(model.fc.weight, sd["fc.weight"])
        assert model.categories is None and not has_meta_tensors(model)
        stem = model.conv1.weight[:, :3] * chans / 3
        assert torch.allclose(stem, sd["conv1.weight"], atol=1e-6)
    assert roads == ["without init"] * 2
    # asked for 3 classes: the checkpoint's 7-class head is loaded, then replaced
    model = create_model("timm/resnet18.a1_in1k", checkpoint_path=path, num_classes=3)
    assert model.fc.out_features == 3
    assert torch.equal(model.layer4[0].conv1.weight, sd["layer4.0.conv1.weight"])


def test_a_stem_that_does_not_take_the_channels_straight_is_refused_in_words(tmp_path, roads):
    """TResNet's space-to-depth stem sees 16 x in_chans channels: repeat works, R, G, B filters
    cannot be placed, and the first build says so (no second build)."""
    path, _ = _checkpoint(tmp_path, "tresnet_m")
    with pytest.raises(ConfigError, match="does not feed the input channels straight"):
        create_model("timm/tresnet_m", checkpoint_path=path, in_chans=5, in_chans_init="rgb",
                     rgb_channels=(0, 1, 2))  # fmt: skip
    assert roads == []


def test_builders_that_compute_from_their_weights_are_built_with_init(tmp_path, roads):
    """A hybrid stem reads its weights while it builds, Swin computes attention masks: built
    with timm's init, the same numbers; in_chans=5 failed or gave meta masks before."""
    for arch, size in (("vit_tiny_r_s16_p8_224", 32), ("swin_tiny_patch4_window7_224", 32)):
        path, _ = _checkpoint(tmp_path, arch, img_size=size)
        for chans in (3, 5):
            _same_as_timm(arch, path, chans, size, img_size=size)
    assert roads == ["with init"] * 4


def test_checkpoints_that_do_not_fit_say_so(tmp_path):
    def lose_a_key(sd):
        return {k: v for k, v in sd.items() if k != "layer1.0.conv1.weight"}

    for edit in (lose_a_key, None):
        path, _ = _checkpoint(tmp_path, "resnet18" if edit else "resnet34", edit=edit)
        with pytest.raises(WeightsLoadError, match=re.escape(f"{path} do not fit timm/resnet18")):
            create_model("timm/resnet18", checkpoint_path=path)


def test_a_loader_that_leaves_the_model_on_meta_is_not_trusted(tmp_path, roads, monkeypatch):
    """A model whose weights timm loads some other way (``custom_load``) is never handed out
    with parameters on the meta device: it is built for real (here, timm loading nothing,
    the plain road too)."""
    path, sd = _checkpoint(tmp_path, "resnet18")
    monkeypatch.setattr("timm.models._builder.load_pretrained", lambda *a, **k: None)
    model = create_model("timm/resnet18.a1_in1k", checkpoint_path=path)
    assert roads == ["plain"]
    assert not any(p.is_meta for p in model.parameters())


def test_the_switches_act_only_in_their_thread():
    """While one thread builds without init, a model loaded in another copies as torch does."""
    original = nn.Module.load_state_dict
    entered, release, calls = threading.Event(), threading.Event(), []

    def prepare(model, sd):
        calls.append(model)
        return sd

    def meta_build():
        real = nn.Linear(2, 3).state_dict()
        with params_on_meta(), loads_assigning(prepare):
            entered.set()
            release.wait(60)
            model = nn.Linear(2, 3)
            model.load_state_dict(real)
            calls.append(model.weight.is_meta)

    thread = threading.Thread(target=meta_build)
    thread.start()
    try:
        assert entered.wait(60)
        assert nn.Module.load_state_dict is not original  # the switch is live now
        here = nn.Linear(2, 3)
        weight, source = here.weight, nn.Linear(2, 3).state_dict()
        here.load_state_dict(source)
        assert here.weight is weight and torch.equal(weight, source["weight"])  # copied
    finally:
        release.set()
        thread.join()
    assert len(calls) == 2 and calls[1] is False  # prepared once, then assigned real tensors
    assert nn.Module.load_state_dict is original  # removed once no thread needs it


SMALL_FAMILIES = {f: v for f, v in FAMILIES.items() if v[1] <= 5_000_000}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(SMALL_FAMILIES))
def test_family_loads_as_timm_does(family, tmp_path):
    """One cheap architecture per timm family (under 5 M parameters), in_chans=5: the weights
    and outputs of timm's own pretrained load, whichever road was taken."""
    arch, _, kwargs, size = SMALL_FAMILIES[family]
    path, _ = _checkpoint(tmp_path, arch, **kwargs)
    _same_as_timm(arch, path, 5, size, **kwargs)
