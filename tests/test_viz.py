"""viz: figures carry the right numbers, in the right places."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torchvision.transforms import v2

from modelkit.app.figures import (
    band_gallery,
    channel_grid_figure,
    input_view,
    mean_overlay_figure,
    message_figure,
    pca_figure,
    pca_rgb,
    top_channels,
    topk_figure,
)
from modelkit.config import DataConfig


def test_topk_best_on_top_with_percentages():
    fig = topk_figure(["tiger cat", "tabby", "Egyptian cat"], [0.6, 0.25, 0.1])
    bar = fig.data[0]
    assert bar.orientation == "h"
    # plotly draws the last y at the top: the best class must be last
    assert list(bar.y) == ["Egyptian cat", "tabby", "tiger cat"]
    assert np.allclose(bar.x, [0.1, 0.25, 0.6])
    assert list(bar.text) == ["10.0%", "25.0%", "60.0%"]
    assert bar.marker.color[-1] != bar.marker.color[0]  # the winner stands out
    assert tuple(fig.layout.xaxis.range) == (0, 1)


def test_topk_raw_scores_and_errors():
    fig = topk_figure(["a", "b"], [3.5, -1.25], value_name="logit")
    assert list(fig.data[0].text) == ["-1.25", "3.5"]
    assert fig.layout.xaxis.range is None
    with pytest.raises(ValueError):
        topk_figure(["a"], [0.1, 0.2])
    assert fig.to_json()  # serialisable
    assert topk_figure([], []).layout.annotations[0].text == "No predictions"


def test_top_channels_rank_by_mean_absolute_value():
    fmap = np.zeros((5, 4, 4), np.float32)
    fmap[0] = 1.0
    fmap[1] = -3.0  # strongest, though negative
    fmap[2] = 2.0
    fmap[3, 0, 0] = 100.0  # mean 6.25
    assert top_channels(fmap, 3).tolist() == [3, 1, 2]
    assert top_channels(torch.from_numpy(fmap)[None], 10).tolist() == [3, 1, 2, 0, 4]


def test_channel_grid_shows_top_channels_with_values():
    rng = np.random.default_rng(0)
    fmap = rng.normal(size=(20, 7, 7)).astype(np.float32)
    fmap[13] += 10.0
    fig = channel_grid_figure(fmap, max_channels=6, cols=3)
    assert len(fig.data) == 6
    first = fig.data[0]
    assert "channel 13" in first.hovertemplate
    np.testing.assert_array_equal(np.asarray(first.z), fmap[13])
    assert (first.x0, first.dx) == (0, 1)
    assert [a.text for a in fig.layout.annotations][0] == "ch 13"
    # two rows of three, every cell square
    assert fig.data[5].xaxis == "x6" and fig.data[5].yaxis == "y6"
    assert fig.layout.yaxis6.scaleanchor == "x6"


def test_channel_grid_pools_large_maps_keeping_pixel_positions():
    fmap = np.arange(2 * 100 * 100, dtype=np.float32).reshape(2, 100, 100)
    fig = channel_grid_figure(fmap, max_channels=1, max_side=48)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (34, 34)  # factor 3, edge-padded from 100 to 102
    np.testing.assert_allclose(z[0, 0], fmap[1, :3, :3].mean())
    np.testing.assert_allclose(z[5, 7], fmap[1, 15:18, 21:24].mean())
    assert (fig.data[0].x0, fig.data[0].dx) == (1.0, 3)  # cell centres in feature-map pixels
    assert len(fig.to_json()) < 200_000


def test_pca_recovers_a_rank_one_map():
    yy, xx = np.mgrid[0:8, 0:10]
    pattern = (xx + 2 * yy).astype(np.float64)
    weights = np.array([0.5, -2.0, 1.0, 3.0])  # largest loading positive
    fmap = weights[:, None, None] * pattern[None]
    image, ratios = pca_rgb(fmap)
    assert image.shape == (8, 10, 3) and image.dtype == np.uint8
    assert ratios[0] == pytest.approx(1.0)
    assert ratios[1:] == pytest.approx([0.0, 0.0], abs=1e-9)
    # red rises with the pattern: the lowest pattern value is dark, the highest bright
    assert image[0, 0, 0] == 0 and image[7, 9, 0] == 255
    assert np.corrcoef(image[..., 0].ravel(), pattern.ravel())[0, 1] > 0.99


def test_pca_is_repeatable_under_channel_order_and_small_channel_counts():
    rng = np.random.default_rng(1)
    fmap = rng.normal(size=(12, 6, 6))
    perm = rng.permutation(12)
    np.testing.assert_array_equal(pca_rgb(fmap)[0], pca_rgb(fmap[perm])[0])
    ratios = pca_rgb(fmap)[1]
    assert ratios[0] >= ratios[1] >= ratios[2] > 0 and ratios.sum() < 1
    image, ratios = pca_rgb(rng.normal(size=(2, 5, 5)))
    assert image[..., 2].max() == 0 and ratios[2] == 0  # no third component
    assert pca_rgb(np.ones((4, 3, 3)))[0].max() == 0  # a constant map has no variance
    fig = pca_figure(fmap, title="level 2")
    assert isinstance(fig.data[0], go.Image) and "level 2" in fig.layout.title.text


def test_mean_overlay_covers_the_image_cell_for_cell():
    rng = np.random.default_rng(2)
    fmap = rng.random((3, 7, 7)).astype(np.float32)
    background = np.full((224, 224, 3), 128, np.uint8)
    fig = mean_overlay_figure(fmap, background)
    image, heat = fig.data
    assert isinstance(image, go.Image) and isinstance(heat, go.Heatmap)
    np.testing.assert_allclose(np.asarray(heat.z), fmap.mean(axis=0), rtol=1e-6)
    assert heat.dx == 32 and heat.x0 == pytest.approx(15.5)  # cell 0 spans pixels 0..31
    assert heat.x0 - heat.dx / 2 == -0.5
    assert 0 < heat.opacity < 1
    alone = mean_overlay_figure(fmap, None)
    assert len(alone.data) == 1 and alone.data[0].opacity == 1.0


def test_input_view_crops_like_torchvision():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(300, 451, 3), dtype=np.uint8)
    config = DataConfig(input_size=(3, 224, 224), crop_pct=0.875, interpolation="bilinear")
    view = input_view(rgb, config)
    assert view.shape == (224, 224, 3) and view.dtype == np.uint8
    expected = v2.Compose([v2.Resize(256, antialias=True), v2.CenterCrop(224)])(
        torch.from_numpy(rgb).permute(2, 0, 1)
    )
    np.testing.assert_array_equal(view, expected.permute(1, 2, 0).numpy())


def test_band_gallery_captions_and_message():
    thumbs = [np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)]
    stats = [
        {"index": 0, "name": "B1", "min": 0.0, "max": 1200.0, "nonfinite": 0},
        {"index": 1, "name": "band 1", "min": -0.5, "max": 0.25, "nonfinite": 3},
    ]
    items = band_gallery(thumbs, stats)
    assert [c for _, c in items] == ["0: B1 (0 to 1200)", "1: band 1 (-0.5 to 0.25), 3 NaN/Inf"]
    assert items[1][0] is thumbs[1]
    fig = message_figure("Run the model to see feature maps")
    assert json.loads(fig.to_json())["layout"]["annotations"][0]["text"].startswith("Run")
