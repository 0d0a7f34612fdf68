"""The running app, through gradio_client: every named endpoint, each example file, a bad file."""

from __future__ import annotations

import numpy as np
import pytest

gradio_client = pytest.importorskip("gradio_client")
from app_server import ASSETS  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402


@pytest.fixture(scope="module")
def app(shared_app):
    return shared_app.url, shared_app.tmp


@pytest.fixture(scope="module")
def client(app):
    return Client(app[0], verbose=False)


def predict(client, name, model="efficientnet_lite0", **settings):
    args = dict(
        model=model, pretrained=True, in_chans=None, channels="", num_classes=None,
        out_indices="", top_k=5, scaling="auto",
    )  # fmt: skip
    args.update(settings)
    return client.predict(handle_file(str(ASSETS / name)), *args.values(), api_name="/predict")


def test_named_endpoints_are_listed(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/search_models", "/model_info", "/predict", "/features", "/teach",
            "/predict_with_head", "/explain", "/compare"} <= endpoints  # fmt: skip


def test_search_models(client):
    found = client.predict("lite", False, False, "", "size", api_name="/search_models")
    ours = [m for m in found if not m["name"].startswith("timm/")]  # timm has lite models too
    assert [m["name"] for m in ours] == [
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ]
    assert all("lite" in m["name"] for m in found) and len(found) > len(ours)
    assert ours[0]["weights"] == "on this machine"
    here = client.predict("", False, True, "", "name", api_name="/search_models")
    assert {m["name"] for m in here} == {m["name"] for m in ours}
    vgg = client.predict("*bn", True, False, "vgg", "name", api_name="/search_models")
    assert [m["name"] for m in vgg if not m["name"].startswith("timm/")] == [
        "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"
    ]  # fmt: skip


def test_model_info_and_unknown_model(client):
    info = client.predict("efficientnet_lite0", api_name="/model_info")
    assert info["params"] == 4652008 and info["weights_on_disk"] is True
    assert [lv["channels"] for lv in info["feature_levels"]] == [16, 24, 40, 112, 1280]
    with pytest.raises(Exception, match="Unknown model 'resnet5'"):
        client.predict("resnet5", api_name="/model_info")


def test_predict_the_default_photo(client):
    result = predict(client, "chelsea.png", top_k=3)
    labels = [p["label"] for p in result["predictions"]]
    assert labels == ["tiger cat", "Egyptian cat", "tabby"]
    assert result["head_is_random"] is False
    probs = [p["probability"] for p in result["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


@pytest.mark.parametrize(
    ("name", "in_chans"),
    [("sentinel2_13band.tif", 13), ("sentinel2_b08_nir_16bit.png", 1), ("landsat8_7band.npy", 7)],
)
def test_predict_every_example_with_matching_in_chans(client, name, in_chans):
    result = predict(client, name, in_chans=in_chans, num_classes=10, top_k=4)
    assert len(result["predictions"]) == 4
    assert result["head_is_random"] is True
    assert all(p["label"].startswith("class ") for p in result["predictions"])
    assert any(f"{in_chans}" in note for note in result["adaptations"])


def test_predict_with_chosen_channels(client):
    result = predict(client, "sentinel2_13band.tif", channels="3, 2, 1", top_k=2)
    assert len(result["predictions"]) == 2 and result["head_is_random"] is False


def test_channel_mismatch_is_a_clear_message(client):
    with pytest.raises(Exception, match=r"input channels \(in_chans\) to 13"):
        predict(client, "sentinel2_13band.tif")


def test_bad_file_is_a_clear_message(client, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"this is not an image at all")
    with pytest.raises(Exception, match="not a PNG, JPEG"):
        client.predict(
            handle_file(str(bad)), "efficientnet_lite0", True, None, "", None, "", 5, "auto",
            api_name="/predict",
        )  # fmt: skip


def test_features(client):
    summary, npz_path = client.predict(
        handle_file(str(ASSETS / "chelsea.png")), "efficientnet_lite0", True, None, "", None,
        "1, 4", 5, "auto", api_name="/features",
    )  # fmt: skip
    levels = summary["levels"]
    assert [(lv["index"], lv["shape"]) for lv in levels] == [(1, [24, 56, 56]), (4, [1280, 7, 7])]
    assert len(levels[0]["top_channels"]) == 8
    arrays = np.load(npz_path, allow_pickle=False)
    assert sorted(arrays.files) == ["level_1", "level_4"]
    assert arrays["level_4"].shape[-3:] == (1280, 7, 7)


def test_the_app_keeps_working_after_errors(client):
    with pytest.raises(Exception):  # noqa: B017
        client.predict("no_such_model", api_name="/model_info")
    assert client.predict("lite0", False, False, "", "name", api_name="/search_models")


def test_direct_posts_cannot_skip_the_queue(app):
    import httpx

    url = app[0]
    response = httpx.post(url + "gradio_api/run/predict", json={"data": []}, timeout=10)
    assert response.status_code in (403, 404, 405)
    # the page's handlers are not API endpoints
    assert httpx.get(url + "config", timeout=10).status_code == 200


def test_search_models_by_source(client):
    # the old call shape (five values) still works and searches every source
    old = client.predict("resnet18", False, False, "", "name", api_name="/search_models")
    assert {"torchvision", "timm"} <= {m["source"] for m in old}
    # the new one names a source, last
    timm_only = client.predict("resnet18", False, False, "", "name", "timm",
                               api_name="/search_models")  # fmt: skip
    assert timm_only and {m["source"] for m in timm_only} == {"timm"}
    assert [m["name"] for m in timm_only] == [m["name"] for m in old if m["source"] == "timm"]
    ours = client.predict("resnet18", False, False, "", "name", "torchvision",
                          api_name="/search_models")  # fmt: skip
    assert [m["name"] for m in ours] == ["resnet18"]
    with pytest.raises(Exception, match="Unknown source 'tensorflow'; use one of torchvision"):
        client.predict("resnet18", False, False, "", "name", "tensorflow",
                       api_name="/search_models")  # fmt: skip
