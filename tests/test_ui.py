"""ui (search, cards, form parsing), snippet (runs and reproduces) and exports (round trips)."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors

from modelkit import ConfigError, model_info
from modelkit.app.exports import (
    ExportDir,
    features_npz,
    predictions_csv,
    predictions_json,
    weights_safetensors,
)
from modelkit.app.form import (
    image_summary,
    level_choice,
    level_summary,
    model_card,
    prediction_note,
    search_models,
    search_rows,
)
from modelkit.app.runs import FORM_FIELDS, FormRun
from modelkit.app.snippet import make_snippet
from modelkit.images.read import read_image
from modelkit.runtime.settings import RunSettings, parse_indices

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def names(rows):
    return [r["name"] for r in rows]


def test_search_plain_words_wildcards_and_filters():
    assert names(search_models("lite", source="efficientnet_lite")) == [
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ]
    # two plain words must both appear; case does not matter
    assert names(search_models("Mobilenet LARGE", source="torchvision")) == ["mobilenet_v3_large"]
    assert "timm/mobilenetv3_large_100" in names(search_models("Mobilenet LARGE"))
    assert names(search_models("resnet1*")) == ["resnet101", "resnet152", "resnet18"]
    assert names(search_models("", on_disk=True, source="efficientnet_lite")) == names(
        search_models("lite", source="efficientnet_lite")
    )
    assert set(names(search_models(family="vgg", source="torchvision"))) == {
        f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")
    }
    assert search_models("no-such-model") == []


def test_search_sorting_and_rows():
    by_acc = search_models("resnet", sort="accuracy")
    accs = [r["acc1"] for r in by_acc if r["acc1"] is not None]
    assert accs == sorted(accs, reverse=True) and len(accs) >= 5
    assert by_acc[: len(accs)] == [r for r in by_acc if r["acc1"] is not None]  # unknown last
    by_size = search_models("efficientnet_lite", sort="size", source="efficientnet_lite")
    assert [r["params_m"] for r in by_size] == sorted(r["params_m"] for r in by_size)
    lite0 = search_models("lite0")[0]
    assert lite0["params_m"] == pytest.approx(4.65, abs=0.01)
    assert lite0["acc1"] == pytest.approx(75.1)
    assert search_rows([lite0]) == [
        ["efficientnet_lite0", "efficientnet_lite", 4.65, 75.1, "on this machine", ""]
    ]
    with pytest.raises(ConfigError, match="Sort by"):
        search_models(sort="colour")


def test_model_card_lists_facts_and_levels():
    card = model_card(model_info("efficientnet_lite0"))
    assert "### efficientnet_lite0" in card
    assert "4.65 M" in card and "75.1 %" in card and "Apache-2.0" in card
    assert "3 × 224 × 224" in card and "(0.5, 0.5, 0.5)" in card
    assert "on this machine" in card
    assert "| 4 | `act2` | 1280 | 32 |" in card
    resnet = model_card(model_info("resnet50"))
    assert "downloaded on first use (98 MB)" in resnet
    assert "`imagenet1k_v2` (default)" in resnet


def test_image_summary_of_the_sentinel_tiff():
    name = "sentinel2_13band.tif"
    image = read_image((ASSETS / name).read_bytes(), name)
    text = image_summary(image)
    assert "13 channels × 256 × 256" in text and "uint16" in text and "TIFF" in text
    assert "8 B8A" in text


@pytest.mark.parametrize(
    ("value", "count", "expected"),
    [
        ("3, 2, 1", 13, (3, 2, 1)),
        ("3 2,1", None, (3, 2, 1)),
        (["3: B4", "2: B3"], 13, (3, 2)),
        ([0, 4], None, (0, 4)),
        ("-1", 13, (12,)),
        ("", 13, None),
        ([], None, None),
        (None, 3, None),
    ],
)
def test_parse_indices(value, count, expected):
    assert parse_indices(value, "Image channels", count) == expected


def test_parse_indices_errors_say_what_to_do():
    with pytest.raises(ConfigError, match="'x' is not a number"):
        parse_indices("1, x", "Image channels")
    with pytest.raises(ConfigError, match="13 is out of range; there are 13"):
        parse_indices("13", "Image channels", 13)


def form(**values) -> list:
    """The setup form's values, in its order, with the fields not given left empty."""
    return [values.get(name) for name in FORM_FIELDS]


def test_the_form_is_read_into_run_settings():
    run = FormRun.read(form(model=" resnet18 ", pretrained=True, tag="imagenet1k_v1",
                            in_chans=13.0, channels=[], num_classes="", out_indices=["1", "3"],
                            top_k=3.0))  # fmt: skip
    setup = run.settings
    assert setup.name == "resnet18.imagenet1k_v1"
    assert setup.in_chans == 13 and setup.channels is None and setup.num_classes is None
    assert run.out_indices == (1, 3) and run.top_k == 3
    assert setup.create_kwargs() == {"pretrained": True, "in_chans": 13}
    assert FormRun.from_dict(run.to_dict()) == run  # the page's state keeps it whole
    unweighted = RunSettings.from_form({"model": "resnet18", "pretrained": False, "tag": "x"})
    assert unweighted.name == "resnet18"
    with pytest.raises(ConfigError, match="in_chans must be a whole number"):
        FormRun.read(form(in_chans=2.5))
    with pytest.raises(ConfigError, match="in_chans=600 is not valid; use a whole number from 1"):
        FormRun.read(form(in_chans=600))
    with pytest.raises(ConfigError, match="num_classes"):
        FormRun.read(form(num_classes=-1))
    with pytest.raises(ConfigError, match="top-k must be a whole number from 1 to 1000"):
        FormRun.read(form(top_k=0))


def test_notes():
    note = prediction_note(True, 10, ["conv: 3 -> 13 channels"])
    assert "head is new" in note and "10 classes" in note and "- conv: 3 -> 13" in note
    assert prediction_note(False, 1000, []) == ""
    level = {"index": 2, "module": "blocks.2", "reduction": 8}
    assert level_summary(level, (1, 40, 28, 28)) == (
        "**Level 2** · `blocks.2` · 40 channels × 28 × 28 · stride 8"
    )


def test_level_choices_are_short_and_keep_numbered_modules_whole():
    vit = model_info("vit_b_16")["feature_levels"]
    assert level_choice(vit[11]) == ("11 · encoder_layer_11 (768 ch, /16)", "11")
    lite = model_info("efficientnet_lite0")["feature_levels"]
    assert all(level_choice(lv)[0].split(" · ")[1].split(" (")[0] == lv["module"]
               for lv in lite if lv["module"].rsplit(".", 1)[-1].isdigit())  # fmt: skip
    assert [level_choice(lv)[1] for lv in lite] == [str(lv["index"]) for lv in lite]


def test_snippet_runs_and_reproduces_the_prediction(capsys):
    run = FormRun(RunSettings("efficientnet_lite0", pretrained=True), top_k=3, out_indices=(1, 4))
    code = make_snippet(run, "chelsea.png")
    compile(code, "snippet", "exec")
    code = code.replace("path = 'chelsea.png'", f"path = {str(ASSETS / 'chelsea.png')!r}")
    exec(code, {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiger cat: ")
    assert [line.split(":")[0] for line in lines[:3]] == ["tiger cat", "Egyptian cat", "tabby"]
    assert lines[3] == "level 1 blocks.1 (1, 24, 56, 56)"
    assert lines[4] == "level 4 act2 (1, 1280, 7, 7)"


def test_snippet_quotes_every_value():
    setup = RunSettings("resnet18", in_chans=13, channels=(3, 2), num_classes=5)
    code = make_snippet(FormRun(setup), "x'); import os; os.system('echo hacked')#.tif")
    compile(code, "snippet", "exec")
    assert "path = \"x'); import os; os.system('echo hacked')#.tif\"" in code
    assert "create_model('resnet18', num_classes=5, in_chans=13)" in code
    assert "channels=[3, 2]" in code


def test_exports_round_trip(tmp_path):
    rows = [
        {"rank": 1, "label": "tiger cat", "index": 282, "probability": 0.5},
        {"rank": 2, "label": 'say "hi", ok', "index": 3, "probability": 0.25},
    ]
    parsed = list(csv.DictReader(io.StringIO(predictions_csv(rows))))
    assert parsed[1]["label"] == 'say "hi", ok' and parsed[0]["index"] == "282"
    doc = json.loads(predictions_json(rows, {"model": "m"}, {"logits": np.arange(3.0)}))
    assert doc["setup"] == {"model": "m"} and doc["logits"] == [0.0, 1.0, 2.0]
    maps = {"level_1": np.random.default_rng(0).normal(size=(4, 5, 5)).astype(np.float16)}
    loaded = np.load(io.BytesIO(features_npz(maps)), allow_pickle=False)
    np.testing.assert_array_equal(loaded["level_1"], maps["level_1"])

    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3))
    model[1].weight = model[0].weight  # tied: one storage, two keys
    tensors = load_safetensors(weights_safetensors(model, {"in_chans": 13}))
    assert set(tensors) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    torch.testing.assert_close(tensors["1.weight"], model[0].weight.detach())

    exports = ExportDir(tmp_path, max_age_s=3600)
    path = exports.write("predictions.csv", "a,b\n")
    assert path.read_text() == "a,b\n" and path.parent.parent == tmp_path
    with pytest.raises(ValueError):
        exports.write("../evil.csv", "x")
    old = exports.write("old.json", "{}")
    os.utime(old, (0, 0))
    exports.write("new.json", "[]")
    assert not old.exists() and path.exists()


def test_a_tag_typed_into_the_model_name_is_used_once():
    from modelkit.app import image_input, setup_form

    setup = RunSettings.from_form({"model": "timm/resnet18.ssl4eo_s12_all_moco",
                                   "tag": "a1_in1k"})  # fmt: skip
    assert (setup.model, setup.tag) == ("timm/resnet18", "ssl4eo_s12_all_moco")
    assert setup.name == "timm/resnet18.ssl4eo_s12_all_moco"
    plain = RunSettings.from_form({"model": "timm/resnet18", "tag": "a1_in1k"})
    assert plain.name == "timm/resnet18.a1_in1k"
    _, card, _, tag, _, _ = setup_form.on_model("timm/resnet18.ssl4eo_s12_all_moco")
    assert tag["value"] == "ssl4eo_s12_all_moco" and "B12" in card  # the sensor tag's card
    assert image_input._sensor("timm/resnet18.ssl4eo_s12_all_moco", True, "a1_in1k") is not None
