"""Sensor weights meet a file's bands: fit_bands (matched by name, by count, or not at all), and the
setup form's handlers that fill the channel picker and in_chans with it, in either order, without
overriding the user's own pick; and a real run with the filled form: native weights, no adaptation.
"""

from __future__ import annotations

import pytest
from sensor_files import ASSETS, SHUFFLED, fake_sensor_hub, write_stack

from modelkit.app.runs import FormRun
from modelkit.models.sensors import (
    LANDSAT_OLI_SR,
    SENTINEL2_L1C,
    fit_bands,
    sensor_weights,
    suggestions,
)
from modelkit.runtime.engine import features
from modelkit.runtime.settings import RunSettings

S12 = "timm/resnet18.ssl4eo_s12_all_moco"
TIF = str(ASSETS / "sentinel2_13band.tif")


@pytest.fixture(autouse=True)
def _temp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("MODELKIT_CACHE_DIR", str(tmp_path / "cache"))


def test_bands_named_in_the_weights_order_are_native():
    fit = fit_bands(sensor_weights(S12), list(SENTINEL2_L1C), 13)
    assert fit.channels == tuple(range(13)) and fit.native
    assert fit.message.startswith("Bands matched by name: B1, B2, B3")
    assert "→ channels 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12" in fit.message
    assert "native 13-band weights, no adaptation" in fit.message


def test_bands_in_another_order_and_a_superset_are_picked_in_the_weights_order():
    fit = fit_bands(sensor_weights(S12), SHUFFLED, len(SHUFFLED))
    # B1 is channel 4, B2..B4 are 0..2, B8 is 3, the rest in place; SCL (13) is left out
    assert fit.channels == (4, 0, 1, 2, 5, 6, 7, 3, 8, 9, 10, 11, 12)
    assert [SHUFFLED[i] for i in fit.channels][:4] == ["B01", "B02", "B03", "B04"]
    assert fit.native and "Left out: channel 13 SCL" in fit.message


def test_missing_bands_are_named_and_the_picker_is_left_alone():
    names = [b for b in SENTINEL2_L1C if b not in ("B1", "B9", "B10")]
    fit = fit_bands(sensor_weights(S12), names, len(names))
    assert fit.channels is None and not fit.native
    assert "missing B1, B9, B10" in fit.message and "left as it is" in fit.message


def test_unnamed_bands_by_count_the_order_is_assumed():
    landsat = sensor_weights("timm/resnet18.ssl4eo_l_oli_sr_moco")
    fit = fit_bands(landsat, None, 7)
    assert fit.channels is None and fit.native
    assert "assumed to be " + ", ".join(LANDSAT_OLI_SR) in fit.message
    wrong = fit_bands(landsat, None, 3)
    assert not wrong.native and "has 3 channels" in wrong.message and "take 7" in wrong.message


def test_a_hand_pick_is_described_never_replaced():
    w = sensor_weights(S12)
    three = fit_bands(w, list(SENTINEL2_L1C), 13, picked=(3, 2, 1))
    assert three.channels is None and not three.native and "3 channels" in three.message
    same = fit_bands(w, SHUFFLED, 14, picked=(4, 0, 1, 2, 5, 6, 7, 3, 8, 9, 10, 11, 12))
    assert same.channels is None and same.native and "matches the bands by name" in same.message
    other = fit_bands(w, SHUFFLED, 14, picked=tuple(range(13)))  # file order: B2 fed as B1 ...
    assert other.native and "feeds B02, B03" in other.message and "check that" in other.message


def test_suggestions_by_names_and_by_count():
    assert S12 in suggestions(14, SHUFFLED)
    assert "timm/resnet18.ssl4eo_l_oli_sr_moco" in suggestions(7, None)
    assert suggestions(3, None) == []


# --- the setup form's handlers ----------------------------------------------------------------


def test_upload_then_sensor_weights_fills_the_picker(tmp_path):
    from modelkit.app import image_input, setup_form

    shuffled = str(write_stack(tmp_path / "shuffled.tif", SHUFFLED))
    out = image_input.on_upload(shuffled)
    use = out[-1]
    assert use["visible"] and S12 in use["choices"]
    # the user picks the suggestion: model, pretrained and tag are set; the model changes, so the
    # tag also waits in the State for on_model
    _, model, pretrained, tag, wanted = image_input.on_use(S12, "efficientnet_lite0")
    assert (model, pretrained) == ("timm/resnet18", True)
    assert tag["value"] == wanted == "ssl4eo_s12_all_moco"
    _, card, line, tag_update, _, cleared = setup_form.on_model(model, wanted)
    assert tag_update["value"] == "ssl4eo_s12_all_moco" and cleared == ""
    assert "**Bands** 13" in card  # the card of the chosen weights, not of the default tag
    assert "feature extractor" in line
    _, note, channels = image_input.on_fit(shuffled, model, True, "ssl4eo_s12_all_moco")
    assert channels == ["4", "0", "1", "2", "5", "6", "7", "3", "8", "9", "10", "11", "12"]
    assert note.startswith("✓ Bands matched by name")  # the model's input follows the 13 picked
    # the same model already chosen: no State detour
    assert image_input.on_use(S12, "timm/resnet18")[-1] == ""


def test_sensor_weights_then_upload_and_the_users_own_edit(tmp_path):
    from modelkit.app import image_input

    # model first, with the example photo: nothing to fill, the note says why
    photo = str(ASSETS / "chelsea.png")
    _, note, channels = image_input.on_fit(photo, "timm/resnet18", True, "ssl4eo_s12_all_moco")
    assert channels == {"__type__": "update"}
    assert "do not match" in note and note.startswith("⚠ ")  # red, green, blue: not its bands
    # then the 13-band file
    _, note, channels = image_input.on_fit(TIF, "timm/resnet18", True, "ssl4eo_s12_all_moco")
    assert channels == [str(i) for i in range(13)]
    assert "native 13-band weights, no adaptation" in note
    # the user's own pick afterwards: the note says what it does, no refill
    _, note = image_input.on_channels(TIF, ["3: B4", "2: B3", "1: B2"], "timm/resnet18",
                                      True, "ssl4eo_s12_all_moco")  # fmt: skip
    assert "Your channel pick has 3 channels" in note
    # weights that are not a sensor's: no note, nothing touched
    assert image_input.on_fit(TIF, "timm/resnet18", True, "a1_in1k")[1:] == (
        "", {"__type__": "update"})  # fmt: skip
    assert image_input.on_fit(TIF, "timm/resnet18", False, "ssl4eo_s12_all_moco")[1] == ""
    missing = str(write_stack(tmp_path / "missing.tif", list(SENTINEL2_L1C[:-2])))
    _, note, channels = image_input.on_fit(missing, "timm/resnet18", True, "ssl4eo_s12_all_moco")
    assert "missing B11, B12" in note and channels == {"__type__": "update"}


@pytest.mark.slow
def test_the_filled_form_runs_the_native_weights(tmp_path, monkeypatch):
    """A real run with what the form filled in: the weights' first layer as published."""
    import torch

    from modelkit.app import image_input, runs

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    sd = fake_sensor_hub(tmp_path / "hub", S12)
    shuffled = str(write_stack(tmp_path / "shuffled.tif", SHUFFLED))
    _, _, channels = image_input.on_fit(shuffled, "timm/resnet18", True, "ssl4eo_s12_all_moco")
    setup = FormRun.read(["timm/resnet18", True, "ssl4eo_s12_all_moco", None, channels,
                          None, ["4"], 5, "auto", "cpu", "fp32", None])  # fmt: skip
    image = runs.load_image(shuffled)
    settings = setup.settings.follow(image)  # as the page runs it: the input follows the pick
    levels = features(image, settings, out_indices=setup.out_indices).levels
    model = runs.cached_model(settings)
    assert torch.equal(model.conv1.weight, sd["conv1.weight"])
    assert any("native 13-band weights" in a for a in model.adaptations)
    assert not any("->" in a for a in model.adaptations)
    # the same scene in the weights' order gives the same features: the bands were matched
    direct = RunSettings("timm/resnet18", pretrained=True, tag="ssl4eo_s12_all_moco", in_chans=13,
                         device="cpu")  # fmt: skip
    same = features(runs.load_image(TIF), direct, out_indices=(4,)).levels
    assert abs(levels[0]["array"] - same[0]["array"]).max() < 1e-4


def test_values_outside_the_weights_range_are_warned(tmp_path):
    import numpy as np

    from modelkit.app import image_input
    from modelkit.models.sensors import value_note

    l_sr = sensor_weights("timm/resnet18.ssl4eo_l_oli_sr_moco")
    assert value_note(l_sr, 200.0) == "" and value_note(sensor_weights(S12), 4000.0) == ""
    assert "8-bit values (0-255)" in value_note(l_sr, 23530.0)
    assert "reflectance x 10000" in value_note(sensor_weights(S12), 0.9)  # 0-1 floats
    # the shipped Landsat example is 16-bit (values 6271-23530): SSL4EO-L weights say so
    npy = str(ASSETS / "landsat8_7band.npy")
    _, note, _ = image_input.on_fit(npy, "timm/resnet18", True, "ssl4eo_l_oli_sr_moco")
    assert "⚠ Values: the bands fed reach" in note and "8-bit" in note
    # the Sentinel-2 example is in the S12 weights' range: no value warning
    _, note, _ = image_input.on_fit(TIF, "timm/resnet18", True, "ssl4eo_s12_all_moco")
    assert "Values:" not in note
    # the same scene as 0-1 floats: warned
    import tifffile

    scene = tifffile.imread(TIF).astype(np.float32) / 10000
    floats = tmp_path / "floats.npy"
    np.save(floats, scene)
    _, note, _ = image_input.on_fit(str(floats), "timm/resnet18", True, "ssl4eo_s12_all_moco")
    assert "Values:" in note and "reflectance x 10000" in note


@pytest.mark.slow
def test_run_on_weights_without_a_classifier_shows_feature_maps(tmp_path, monkeypatch):
    """Explore's Run on SSL4EO weights (no head): no prediction error, the feature maps, and a
    note that says why there are no classes; a head asked for (num_classes) still predicts."""
    from modelkit.app import explore

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_sensor_hub(tmp_path / "hub", S12)
    args = (TIF, "timm/resnet18", True, "ssl4eo_s12_all_moco", 13, [], None, ["4"], 5, "auto",
            "cpu", "fp32", None)  # fmt: skip
    out = explore.on_run(*args)
    status, answer, _next, chart, note, level, *_rest, downloads, last = out
    assert status == "" and chart is None and answer.startswith(explore.NO_CLASSIFIER)
    assert "native 13-band weights" in note
    assert level["value"] == 4 and [p.rsplit("/", 1)[-1] for p in downloads] == [
        "feature_maps.npz"]  # fmt: skip
    # with a new head asked for, it predicts (random classes, said so)
    args = (*args[:6], "3", *args[7:])
    _, answer, _next, chart, note, *_ = explore.on_run(*args)
    assert chart is not None and "The classifier head is new" in note
    assert "untrained" in answer


@pytest.mark.slow
def test_teach_on_sensor_weights_uses_the_native_backbone(tmp_path, monkeypatch):
    """Teach on SSL4EO weights (no head of their own): 13-band tiles whose class is the NIR
    band's brightness (B8 high or low, every other band the same scene) are learnt from the
    backbone's features, the weights stay native, and the head predicts unseen tiles."""
    import numpy as np

    import modelkit

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_sensor_hub(tmp_path / "hub", S12)
    rng = np.random.default_rng(0)
    base = rng.integers(800, 3000, size=(13, 48, 48)).astype(np.float32)

    def tile(bright: bool) -> np.ndarray:
        out = base + rng.normal(0, 150, base.shape).astype(np.float32)
        out[7] = (6000 if bright else 1500) + rng.normal(0, 300, base.shape[1:])  # B8
        return np.clip(out, 0, None)

    labels = ["vegetation", "bare"] * 10
    images = [tile(lab == "vegetation") for lab in labels]
    head = modelkit.train_head(images, labels, "timm/resnet18", tag="ssl4eo_s12_all_moco",
                               in_chans=13, folds=5, device="cpu")  # fmt: skip
    assert head.setup["model"] == S12 and head.linear.in_features == 512
    assert any("native 13-band weights" in a for a in head.setup["adaptations"])
    assert head.cv_accuracy >= 0.9, head.cv_accuracy  # chance is 0.5
    unseen = [tile(True), tile(False)]
    assert head.predict(unseen, top_k=1)[0].labels[0] == "vegetation"
    assert head.predict(unseen, top_k=1)[1].labels[0] == "bare"
    # the control: the same tiles under shuffled labels teach nothing
    shuffled = list(np.random.default_rng(1).permutation(labels))
    control = modelkit.train_head(images, shuffled, "timm/resnet18", tag="ssl4eo_s12_all_moco",
                                  in_chans=13, folds=5, device="cpu")  # fmt: skip
    assert control.cv_accuracy <= 0.75, control.cv_accuracy
