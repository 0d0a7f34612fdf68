"""The Explain tab's pieces: the /explain endpoint's answer, the band chart and the map figure,
and the endpoint through the running app (slow)."""

from __future__ import annotations

import numpy as np
import pytest
from app_server import ASSETS


@pytest.fixture(autouse=True)
def _temp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("MODELKIT_CACHE_DIR", str(tmp_path / "results"))


def test_the_endpoint_explains_a_sentinel2_scene_band_by_band():
    from modelkit.app.explain_page import api_explain

    file = str(ASSETS / "sentinel2_13band.tif")
    result, heat = api_explain(file, "efficientnet_lite0", True, 13, "", None, "auto",
                               "gradcam", "", "mean")  # fmt: skip
    assert result["method"] == "gradcam" and result["layer"].startswith("level")
    assert [b["band"] for b in result["bands"]][8] == "B8A narrow NIR (865 nm)"
    assert len(result["bands"]) == 13 and any(b["importance"] != 0 for b in result["bands"])
    assert any("repeating its RGB filters" in n for n in result["notes"])  # the honesty note
    heatmap = np.load(heat, allow_pickle=False)
    assert heatmap.shape == (256, 256) and heatmap.min() >= 0 and heatmap.max() > 0


def test_integrated_gradients_steps_come_from_the_form_and_are_checked():
    import gradio as gr

    from modelkit.app.explain_page import api_explain, passes

    file = str(ASSETS / "chelsea.png")
    args = (file, "efficientnet_lite0", True, None, "", None, "auto", "integrated_gradients", "",
            "zero")  # fmt: skip
    coarse, _ = api_explain(*args, 4)
    fine, _ = api_explain(*args, 64)
    assert any("in 4 steps" in n for n in coarse["notes"])
    assert any("in 64 steps" in n for n in fine["notes"])
    # the sum rule holds better with more steps (the check the note reports)
    assert fine["checks"]["completeness_error"] < coarse["checks"]["completeness_error"]
    assert passes("integrated_gradients", 64) == 130 and passes("bands", None) == 15
    for bad in (1, 2.5, "many"):
        with pytest.raises(gr.Error, match="Steps .* must be a whole number from 2 to 1024"):
            api_explain(*args, bad)


def test_the_endpoint_answers_mistakes_in_words():
    import gradio as gr

    from modelkit.app.explain_page import api_explain

    file = str(ASSETS / "chelsea.png")
    with pytest.raises(gr.Error, match="method 'lime' is not known|Method 'lime'"):
        api_explain(file, "mobilenet_v3_small", True, None, "", None, "auto", "lime", "", "mean")


def test_band_chart_and_map_figures():
    from modelkit.app.explain_figures import band_figure, map_figure

    fig = band_figure(np.array([0.5, -0.2, 0.0]), ["B2", "B3", "B4"], title="t")
    bar = fig.data[0]
    assert list(bar.x) == ["B2", "B3", "B4"] and list(bar.y) == [0.5, -0.2, 0.0]
    assert bar.marker.color[1] != bar.marker.color[0]  # a band that lowers the score is red
    rgb = np.zeros((3000, 20, 3), np.uint8)
    heat = np.random.default_rng(0).random((3000, 20)).astype(np.float32)
    fig = map_figure(rgb, heat, opacity=0.3)
    image, overlay = fig.data
    assert overlay.opacity == 0.3 and np.asarray(overlay.z).shape[0] <= 512  # bounded size
    assert "no map" in map_figure(rgb, None).layout.annotations[0].text


@pytest.mark.slow
def test_explain_through_the_running_app(shared_app):
    from gradio_client import Client, handle_file

    client = Client(shared_app.url, verbose=False)
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert "/explain" in endpoints
    result, _ = client.predict(
        handle_file(str(ASSETS / "chelsea.png")), "efficientnet_lite0", True, None, "", None,
        "auto", "bands", "", "mean", api_name="/explain",
    )  # fmt: skip
    assert result["target_label"] == "tiger cat" and len(result["bands"]) == 3


def test_the_tab_explains_a_taught_head_in_its_own_classes(tmp_path):
    from modelkit import TrainedHead, read_image
    from modelkit.app.explain_page import _targets, run_explain
    from modelkit.app.runs import FormRun
    from modelkit.teach.head import as_head

    rng = np.random.default_rng(0)
    setup = {"model": "efficientnet_lite0", "pretrained": True, "scaling": "auto"}
    weight = rng.normal(0, 0.05, (2, 1280))
    weight[1, :10] += 1.0  # class "b" reads a few features: its score has gradients
    path = tmp_path / "head.safetensors"
    TrainedHead(classes=["a", "b"], weight=weight, bias=np.zeros(2), setup=setup).save(path)
    head = as_head(str(path))
    image = read_image((ASSETS / "chelsea.png").read_bytes(), "chelsea.png")
    form = FormRun.read(["resnet18", True, None, None, None, "", None, 5, "auto", "cpu",
                         "fp32", None]).settings  # fmt: skip
    choices = _targets(form, image, head)
    assert sorted(label.split(" (")[0] for label, _ in choices) == ["a", "b"]
    alone = head.predict(image, top_k=2)
    assert choices[0][0].startswith(alone.labels[0])
    out = run_explain(form, image, "bands", choices[1][1], "mean", head)
    assert out.target_label == alone.labels[1] and out.band_importance.shape == (3,)
    # the head's own model and settings were used, not the form's resnet18
    assert abs(out.score - float(alone.logits[int(choices[1][1])])) < 1e-3
    assert "model 'resnet18' given was not used" in out.notes[0]
