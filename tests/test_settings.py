"""RunSettings: one object from the page to the model. Each setting is checked once, in words; the
public functions show every setting in their signatures; a head's settings win over what is given
beside it, with a note; no library call changes process-wide state (threads, environment)."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelkit
from modelkit import ChannelMismatchError, ConfigError, RunSettings, UnknownModelError
from modelkit.runtime.model_cache import ModelCache
from modelkit.runtime.settings import SETTING_DOCS
from modelkit.teach.head import TrainedHead

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("predict", "features", "embeddings", "explain", "batch", "train_head")


def test_every_public_function_shows_every_setting_as_a_typed_keyword():
    names = [n for n in SETTING_DOCS if n != "model"]
    for public in PUBLIC:
        fn = getattr(modelkit, public)
        params = inspect.signature(fn).parameters
        assert "model" in params and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        ), public
        for name in names:
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (public, name)
            assert params[name].annotation, (public, name)
            assert f"{name}: " in fn.__doc__, (public, name)
    assert inspect.signature(modelkit.train_head).parameters["pretrained"].default is True
    assert inspect.signature(modelkit.predict).parameters["pretrained"].default is False


@pytest.mark.parametrize(
    "given, phrase",
    [({"in_chans": 0}, "in_chans=0 is not valid"), ({"in_chans": 600}, "from 1 to 512"),
     ({"num_classes": -1}, "num_classes=-1"), ({"channels": (1, -2)}, "channel number"),
     ({"channels": "3,2"}, "give image channel numbers"), ({"scaling": "log"}, "scaling='log'"),
     ({"precision": "fp8"}, "precision='fp8'"), ({"device": "tpu"}, "device='tpu'"),
     ({"crop_mode": "zoom"}, "crop_mode='zoom'"), ({"crop_pct": 1.5}, "crop_pct=1.5"),
     ({"in_chans_init": "copy"}, "in_chans_init='copy'"),
     ({"in_chans_init": "rgb", "rgb_channels": (0, 0, 1)}, "repeats a channel"),
     ({"rgb_channels": (0, 1, 2)}, "only used with in_chans_init='rgb'"),
     ({"global_pool": ""}, "works only with num_classes=0")],
)  # fmt: skip
def test_each_setting_is_refused_in_words(given, phrase):
    with pytest.raises(ConfigError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        RunSettings("resnet18", **given)


def test_an_unknown_model_or_tag_is_refused_when_the_settings_are_made():
    with pytest.raises(UnknownModelError, match="resnet19"):
        RunSettings("resnet19")
    with pytest.raises(ConfigError, match="tag"):
        RunSettings("resnet18", pretrained=True, tag="no_such_tag")


def test_the_name_and_the_key():
    typed = RunSettings("resnet50.imagenet1k_v2", pretrained=True, tag="imagenet1k_v1")
    assert (typed.model, typed.tag, typed.name) == ("resnet50", "imagenet1k_v2",
                                                     "resnet50.imagenet1k_v2")  # fmt: skip
    assert RunSettings("resnet50", tag="imagenet1k_v2").name == "resnet50"  # no weights, no tag
    # in_chans equal to the checkpoint's is the same model: one cache entry, not two
    assert RunSettings("resnet18", in_chans=3).model_key() == RunSettings("resnet18").model_key()
    assert RunSettings("resnet18", in_chans=4).model_key() != RunSettings("resnet18").model_key()
    # preprocessing is not part of the model, but it is part of a result
    shaped = RunSettings("resnet18", scaling="minmax")
    assert shaped.model_key() == RunSettings("resnet18").model_key()
    assert shaped.result_key("predict", "d") != RunSettings("resnet18").result_key("predict", "d")
    assert RunSettings("resnet18", pretrained=True, num_classes=5).random_parts() == [
        "head for 5 classes"]  # fmt: skip
    assert RunSettings("resnet18", pretrained=True, num_classes=5).random_parts(False) == []


def test_the_form_and_the_dict_round_trip():
    form = RunSettings.from_form({"model": " resnet18 ", "pretrained": True, "in_chans": 4.0,
                                  "channels": ["3: B4", "2: B3", "1: B2", "0: B1"],
                                  "num_classes": "", "scaling": "percentile"})  # fmt: skip
    assert (form.in_chans, form.channels, form.num_classes) == (4, (3, 2, 1, 0), None)
    assert RunSettings.from_dict(form.to_dict()) == form
    assert RunSettings.from_dict({**form.to_dict(), "views": "flips"}) == form  # extra keys
    with pytest.raises(ConfigError, match="in_chans must be a whole number"):
        RunSettings.from_form({"in_chans": "four"})


def test_a_settings_object_and_keywords_together():
    base = RunSettings("efficientnet_lite0", pretrained=True, scaling="minmax")
    x = np.random.default_rng(0).integers(0, 255, (3, 40, 40), dtype=np.uint8)
    cache = ModelCache()
    via_object = modelkit.predict(x, base, model_cache=cache, use_result_cache=False)
    via_words = modelkit.predict(x, "efficientnet_lite0", pretrained=True, scaling="minmax",
                                 model_cache=cache, use_result_cache=False)  # fmt: skip
    np.testing.assert_array_equal(via_object.logits, via_words.logits)
    assert cache.builds == 1  # one settings object, one model
    # a keyword that differs from its default replaces the object's value
    other = modelkit.predict(x, base, num_classes=3, model_cache=cache, use_result_cache=False)
    assert other.logits.shape == (3,) and cache.builds == 2
    with pytest.raises(ConfigError, match="'in_chan'. Its keywords are .*in_chans"):
        modelkit.predict(x, "efficientnet_lite0", in_chan=4)


def test_the_channel_count_against_the_image_in_words():
    gray = np.zeros((1, 16, 16), np.uint8)
    with pytest.raises(ChannelMismatchError) as error:
        RunSettings("resnet18").check_image(gray)
    message = str(error.value)
    assert "takes 3 channels, but it was given the image's 1 channel" in message
    assert "set the model's input channels (in_chans) to 1" in message
    assert "choose 3" not in message  # 3 of 1 channels cannot be chosen: not offered
    with pytest.raises(ChannelMismatchError, match="choose 3 of the image's 13 channels"):
        RunSettings("resnet18").check_image(np.zeros((13, 8, 8), np.uint16))
    with pytest.raises(ConfigError, match=r"Channel numbers \[5\] do not exist"):
        RunSettings("resnet18", channels=(0, 5, 1)).check_image(np.zeros((4, 8, 8)))
    assert RunSettings("resnet18").follow(gray).in_chans == 1
    assert RunSettings("resnet18", channels=(0, 2)).follow(np.zeros((4, 8, 8))).in_chans == 2
    RunSettings("resnet18").follow(gray).check_image(gray)  # followed: it fits


def _head(**setup) -> TrainedHead:
    return TrainedHead(
        classes=["a", "b"],
        weight=np.zeros((2, 4)),
        bias=np.zeros(2),
        setup={"model": "resnet18", "pretrained": True, "in_chans": 1, **setup},
    )


def test_a_heads_settings_win_and_what_they_override_is_named():
    head = _head(scaling="percentile")
    assert head.settings == RunSettings("resnet18", pretrained=True, in_chans=1,
                                        scaling="percentile")  # fmt: skip
    own, notes = head.settings_for(RunSettings("resnet18", device="cpu", precision="bf16"))
    assert own.device == "cpu" and own.precision == "bf16" and own.in_chans == 1 and not notes
    own, notes = head.settings_for(RunSettings("vgg11", in_chans=3, scaling="minmax"))
    assert own == head.settings
    assert notes == [
        "The head was taught with model 'resnet18'; the model 'vgg11' given was not used.",
        "The head was taught with in_chans 1; the in_chans 3 given was not used.",
        "The head was taught with scaling 'percentile'; the scaling 'minmax' given was not used.",
    ]


@pytest.mark.slow  # a child process (imports torch)
def test_no_library_call_changes_threads_or_the_environment(tmp_path):
    code = (
        "import os, numpy as np, torch, modelkit\n"
        "torch.set_num_threads(1)\n"
        "x = np.random.default_rng(0).integers(0, 255, (3, 40, 40), dtype=np.uint8)\n"
        "modelkit.predict(x, 'resnet18', use_result_cache=False)\n"
        "modelkit.train_head([x] * 4, ['a', 'a', 'b', 'b'], 'resnet18', pretrained=False,\n"
        "                    folds=2, use_result_cache=False)\n"
        "try:\n"
        "    modelkit.create_model('timm/resnet18.a1_in1k', pretrained=True)\n"
        "except modelkit.WeightsUnavailableError:\n"
        "    pass\n"
        "print(torch.get_num_threads(), 'HF_HUB_OFFLINE' in os.environ)\n"
    )
    env = {**os.environ, "MODELKIT_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "MODELKIT_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    env.pop("HF_HUB_OFFLINE", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, check=True, timeout=300)  # fmt: skip
    assert out.stdout.split() == ["1", "False"]
