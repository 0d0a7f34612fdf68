"""The Explain tab's figures and its opacity redraw, without a model: bars whose numbers fit and
whose axis says what they measure, maps on the image's pixel grid, signed maps whose colours are not
taken by a few spiky pixels."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _temp(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


def test_bars_leave_room_for_their_numbers_and_name_their_measure():
    from modelkit.app.explain_figures import band_figure

    fig = band_figure(np.array([2.6, -0.8, 1.0]), ["B1", "B2", "B3"], axis="share of the score")
    low, high = fig.layout.yaxis.range
    assert low < -0.8 - 0.4 and high > 2.6 + 0.4  # 15 % of the span on both sides
    assert fig.data[0].cliponaxis is False and fig.layout.yaxis.title.text == "share of the score"
    assert "share of the score" in fig.data[0].hovertemplate
    positive = band_figure(np.array([1.0, 2.0]), ["a", "b"])
    assert positive.layout.yaxis.range[0] == 0  # no room below zero when nothing is negative


def test_a_shrunk_map_keeps_the_images_pixel_grid():
    from modelkit.app.explain_figures import map_figure, shrink

    rgb = np.zeros((1200, 600, 3), np.uint8)
    heat = np.random.default_rng(0).random((1200, 600)).astype(np.float32)
    back, small, step = shrink(rgb, heat, max_side=512)
    assert step == 3 and small.shape == (400, 200) and back.shape == (400, 200, 3)
    image, overlay = map_figure(back, small, step=step).data  # as the page redraws it
    assert (image.dx, overlay.dx, overlay.dy) == (3, 3, 3)
    assert "every 3th pixel" in overlay.hovertemplate
    again = map_figure(rgb, heat).data[1]  # the full map gives the same figure
    assert again.dx == 3 and np.array_equal(np.asarray(again.z), small)


def test_signed_maps_saturate_at_a_percentile_with_zero_transparent():
    from modelkit.app.explain_figures import map_figure

    heat = np.zeros((100, 100), np.float32)
    heat[:50] = np.linspace(-1, 1, 5000).reshape(50, 100)
    heat[0, 0] = 500.0  # one spike
    overlay = map_figure(np.zeros((100, 100, 3), np.uint8), heat).data[1]
    assert overlay.zmin == -overlay.zmax and 0.9 < overlay.zmax < 2  # not 500
    middle = dict((round(p, 2), c) for p, c in overlay.colorscale)[0.5]
    assert middle.endswith(",0)")  # zero attributions leave the image as it is
    cam = map_figure(np.zeros((10, 10, 3), np.uint8), np.eye(10, dtype=np.float32) * 3).data[1]
    assert (cam.zmin, cam.zmax) == (0.0, 3.0)  # Grad-CAM: 0 to its maximum


def test_opacity_redraws_the_last_map_without_model_work():
    from modelkit.app import explain_page
    from modelkit.app.explain_figures import shrink

    back, heat, step = shrink(np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), np.float32))
    shown = {"rgb": back, "heat": heat, "step": step, "title": "Grad-CAM: tabby"}
    status, fig = explain_page.on_opacity(0.8, shown)
    assert status == "" and fig.data[1].opacity == 0.8
    assert fig.layout.title.text == "Grad-CAM: tabby"
    nothing = {"__type__": "update"}
    assert explain_page.on_opacity(0.3, None) == (nothing, nothing)  # nothing explained yet
