"""The page for people who do not program, at the handler level: results start with a sentence,
errors are said in the page's words (the API keeps the library's), a model that knows photos is
cautioned on scientific images, recognised sensors name their bands, and no result of an old
input stays beside an error."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest

import app  # noqa: F401 - builds the page (its status line) as the server does
from modelkit.app import batch_page, compare_page, explore, guard, image_input, teach_page
from modelkit.app.runs import FORM_FIELDS, load_image
from modelkit.app.words import batch_sentence, caution, page_error, prediction_sentence
from modelkit.errors import ConfigError, WeightsUnavailableError
from modelkit.images.limits import ImageArray
from modelkit.runtime.settings import RunSettings

ASSETS = app.ASSETS
CODE = re.compile(r"\w=\S|\[\d")


def form(**values) -> list:
    base = {"model": "efficientnet_lite0", "pretrained": True, "top_k": 3, "scaling": "auto",
            "device": "cpu", "precision": "fp32"}  # fmt: skip
    return [{**base, **values}.get(name) for name in FORM_FIELDS]


def failed(out) -> str:
    """The status line's message of a handler's answer ('' when it did not fail)."""
    text = out.get(guard.status(), "") if isinstance(out, dict) else ""
    return re.sub(r"<[^>]+>", "", text)  # the words, without the line's HTML


@pytest.mark.parametrize(
    "given, shown",
    [({"in_chans": 600}, "Input channels 600 is not valid"),
     ({"num_classes": -1}, "Number of classes -1"),
     ({"in_chans_init": "rgb", "rgb_channels": (0, 0, 1)}, "RGB channels 0, 0, 1 repeats"),
     ({"scaling": "log"}, "Scaling log is not known")],
)  # fmt: skip
def test_errors_in_the_pages_words_and_the_librarys_own_for_programmers(given, shown):
    with pytest.raises(ConfigError) as error:
        RunSettings("resnet18", **given)
    assert "=" in str(error.value)  # the API's exact words name the argument
    assert shown in page_error(error.value) and not CODE.search(page_error(error.value))


def test_missing_weights_lead_to_the_page_not_to_code():
    text = page_error(WeightsUnavailableError("... pass checkpoint_path=... to a copy you have"))
    assert "Model settings" in text and "checkpoint_path" not in text


def test_sentences():
    assert prediction_sentence(["tiger cat", "tabby"], [0.394, 0.17]) == (
        "It looks most like **tiger cat** (39 %), then tabby (17 %).")  # fmt: skip
    assert "no images" in batch_sentence(0, 0, 1, None) and "1 other file left" in (
        batch_sentence(0, 0, 1, None))  # fmt: skip
    assert batch_sentence(10, 2, 0, ["a", "b"]).startswith("Labelled **8 of 10 images** with "
                                                           "the taught classes (a, b)")  # fmt: skip


def _image(channels: int, dtype: str) -> ImageArray:
    data = np.zeros((channels, 8, 8), dtype)
    return ImageArray(data, "x.tif", "tiff", data.shape, "CYX", dtype, (0.0, 1.0))


def test_a_photo_model_is_cautioned_on_scientific_images_only():
    assert caution(_image(3, "uint8"), knows_photos=True) == ""
    for image in (_image(13, "uint16"), _image(1, "uint16"), _image(3, "float32")):
        assert "knows everyday photos" in caution(image, knows_photos=True)
    assert caution(_image(13, "uint16"), knows_photos=False) == ""  # a taught head: no caution


def test_the_13_band_example_answers_with_the_caution_and_the_next_step():
    out = explore.on_run(str(ASSETS / "sentinel2_13band.tif"), *form())
    assert not failed(out)
    answer, next_step = out[1], out[2]
    assert answer.startswith("It looks most like") and "knows everyday photos" in answer
    assert next_step["visible"] is True


def test_recognised_sensors_and_photos_name_their_bands():
    landsat = load_image(str(ASSETS / "landsat8_7band.npy"))  # the file names none
    assert landsat.band_names == ["B1", "B2", "B3", "B4", "B5", "B6", "B7"]
    assert any("taken to be Landsat" in n for n in landsat.notes)
    assert load_image(str(ASSETS / "chelsea.png")).band_names == ["red", "green", "blue"]


def test_a_file_that_cannot_be_read_clears_what_showed_the_old_one(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    outputs = ["preview", "summary"]  # stand-ins: clearing empties every output given
    out = guard.clearing(image_input.on_upload, outputs)(str(bad))
    assert failed(out) and "broken.png" in failed(out)


def test_an_upload_the_host_pruned_asks_for_the_file_again(tmp_path):
    gone = tmp_path / "pruned.png"  # the page still names it; the cleanup removed it
    out = explore.on_run(str(gone), *form())
    assert "upload the file again" in failed(out) and "went wrong" not in failed(out)


def test_an_unusable_zip_leaves_no_old_examples_behind(tmp_path):
    good = tmp_path / "textures.zip"
    good.write_bytes((ASSETS / "teach_textures.zip").read_bytes())
    assert len(teach_page.on_zip(str(good))[1]) == 24
    empty = tmp_path / "empty.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", "no images here")
    empty.write_bytes(buf.getvalue())
    out = teach_page.on_zip(str(empty))
    assert failed(out)  # said in words; the page's wiring empties the examples (clearing)
    assert not CODE.search(failed(out))


def test_a_zip_without_images_gets_a_sentence(tmp_path):
    empty = tmp_path / "empty.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", "no images here")
    empty.write_bytes(buf.getvalue())
    out = batch_page.on_batch(str(empty), "own", None, *form())
    assert not failed(out) and "This ZIP holds no images" in out[1] and out[2] is None


def test_a_refused_comparison_is_said_in_words():
    out = compare_page.on_compare(str(ASSETS / "chelsea.png"), ["efficientnet_lite0"], *form())
    assert "Pick 2 to 4 models" in failed(out)


def test_the_wrong_examples_are_counted_before_the_gallery_is_cut(tmp_path, monkeypatch):
    """90 wrong and 24 shown: the label says 90 (it said 24 once)."""
    from modelkit.teach.head import TrainedHead

    def taught(examples, settings, augment, progress=None, curve=False):
        wrong = [{"index": i % len(examples.labels), "name": "x", "true": "a", "predicted": "b",
                  "probability": 0.6} for i in range(90)]  # fmt: skip
        return TrainedHead(["brick", "grass", "gravel"], np.zeros((3, 4)), np.zeros(3),
                           {"model": "efficientnet_lite0", "pretrained": True},
                           cv_accuracy=0.5, chance=1 / 3, misclassified=wrong,
                           fit={"C": 1.0, "folds": 5}, confusion=np.full((3, 3), 8))  # fmt: skip

    monkeypatch.setattr(teach_page, "_teach", taught)
    archive = tmp_path / "textures.zip"
    archive.write_bytes((ASSETS / "teach_textures.zip").read_bytes())
    items = teach_page.on_zip(str(archive))[1]
    out = teach_page.on_train(items, "none", *form())
    gallery = out[6]
    assert gallery["label"].endswith(": 90 (showing 24)") and len(gallery["value"]) == 24
    assert out[1].startswith("Right on **50 of every 100**")
