"""Plotly figures and preview images for the app, from plain numpy inputs.

Public API::

    topk_figure(labels, scores, *, title="Top predictions", value_name="probability") -> Figure
    top_channels(fmap, k) -> np.ndarray                 # indices, most active first
    channel_grid_figure(fmap, *, max_channels=16, cols=4, max_side=48, title=None) -> Figure
    pca_rgb(fmap) -> (np.ndarray (H, W, 3) uint8, np.ndarray explained-variance ratios (3,))
    pca_figure(fmap, *, title=None) -> Figure
    mean_overlay_figure(fmap, background, *, opacity=0.5, title=None) -> Figure
    input_view(rgb | image, data_config) -> np.ndarray (H, W, 3) uint8  # as the model sees it
    band_gallery(thumbnails, stats) -> list[(np.ndarray, caption)]
    message_figure(text) -> Figure                      # an empty plot that says why it is empty

``fmap`` is one level of feature maps for one image: (C, H, W) float. "Most active" ranks channels
by their mean absolute value, so layers whose outputs are signed (no ReLU after them, as in
ConvNeXt or ViT) rank by strength of response, not by sign.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from modelkit.config import DataConfig
from modelkit.images.display import model_view, shrink
from modelkit.images.limits import ImageArray
from modelkit.images.preprocess import resize_and_crop

FONT = dict(family="Inter, system-ui, sans-serif", size=13)
COLORSCALE = "Viridis"
MARGIN = dict(l=10, r=10, t=48, b=10)
OVERLAY_MAX_SIZE = 1024  # longest side of a background drawn under a heatmap


def _layout(fig: go.Figure, title: str | None, height: int) -> go.Figure:
    fig.update_layout(
        title=dict(text=title or "", x=0.01, font=dict(size=15)),
        template="plotly_white",
        font=FONT,
        margin=MARGIN,
        height=height,
    )
    return fig


def _as_fmap(fmap) -> np.ndarray:
    """(C, H, W) float32 from a numpy array or tensor; a leading batch of one is dropped."""
    if isinstance(fmap, torch.Tensor):
        fmap = fmap.detach().float().cpu().numpy()
    array = np.asarray(fmap, dtype=np.float32)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise ValueError(f"a feature map must be (C, H, W); got shape {array.shape}")
    return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)


def message_figure(text: str, height: int = 220) -> go.Figure:
    """A blank figure with one centred line of text (for 'nothing to show yet')."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, font=dict(size=14, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, None, height)


# --- predictions ------------------------------------------------------------------------------


def topk_figure(
    labels: Sequence[str],
    scores: Sequence[float],
    *,
    title: str = "Top predictions",
    value_name: str = "probability",
) -> go.Figure:
    """Horizontal bars, best on top; probabilities are shown as percentages."""
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    if not len(labels):
        return message_figure("No predictions")
    values = np.asarray(scores, dtype=np.float64)
    percent = value_name == "probability"
    text = [f"{v:.1%}" if percent else f"{v:.3g}" for v in values]
    fig = go.Figure(
        go.Bar(
            x=values[::-1],
            y=list(labels)[::-1],
            orientation="h",
            text=text[::-1],
            textposition="auto",
            marker_color=["#93c5fd"] * (len(values) - 1) + ["#2563eb"],  # best bar darker
            hovertemplate="%{y}<br>" + value_name + " %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(
        title=value_name,
        range=[0, 1] if percent else None,
        tickformat=".0%" if percent else None,
    )
    fig.update_yaxes(automargin=True)
    return _layout(fig, title, height=max(220, 70 + 34 * len(values)))


# --- feature maps -----------------------------------------------------------------------------


def top_channels(fmap, k: int) -> np.ndarray:
    """Indices of the ``k`` channels with the largest mean |activation|, most active first."""
    array = _as_fmap(fmap)
    strength = np.abs(array).mean(axis=(1, 2))
    order = np.argsort(-strength, kind="stable")  # ties keep channel order
    return order[: max(0, int(k))]


def _pool(plane: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    """Average-pool a (H, W) plane by an integer factor so its longer side is <= max_side."""
    factor = max(1, math.ceil(max(plane.shape) / max_side))
    if factor == 1:
        return plane, 1
    height, width = plane.shape
    pad_h, pad_w = (-height) % factor, (-width) % factor
    padded = np.pad(plane, ((0, pad_h), (0, pad_w)), mode="edge")
    pooled = padded.reshape(
        padded.shape[0] // factor, factor, padded.shape[1] // factor, factor
    ).mean(axis=(1, 3))
    return pooled.astype(np.float32), factor


def channel_grid_figure(
    fmap,
    *,
    max_channels: int = 16,
    cols: int = 4,
    max_side: int = 48,
    title: str | None = None,
) -> go.Figure:
    """The most active channels as a grid of heatmaps; hover shows channel, position and value.

    Large maps are average-pooled for display (hover positions stay in feature-map pixels).
    """
    array = _as_fmap(fmap)
    picked = top_channels(array, max_channels)
    cols = max(1, min(cols, len(picked)))
    rows = math.ceil(len(picked) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[f"ch {c}" for c in picked],
        horizontal_spacing=0.02,
        vertical_spacing=0.06 if rows > 1 else 0.0,
    )
    for n, channel in enumerate(picked):
        plane, factor = _pool(array[channel], max_side)
        offset = (factor - 1) / 2
        fig.add_trace(
            go.Heatmap(
                z=plane,
                x0=offset,
                dx=factor,
                y0=offset,
                dy=factor,
                colorscale=COLORSCALE,
                showscale=False,
                hovertemplate=(
                    f"channel {channel}<br>x %{{x:.0f}}, y %{{y:.0f}}<br>value %{{z:.3f}}"
                    "<extra></extra>"
                ),
            ),
            row=n // cols + 1,
            col=n % cols + 1,
        )
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    for n in range(1, len(picked)):  # keep every cell square
        fig.update_yaxes(scaleanchor=f"x{n + 1}", row=n // cols + 1, col=n % cols + 1)
    fig.update_annotations(font_size=11)
    return _layout(fig, title, height=60 + 170 * rows)


def pca_rgb(fmap) -> tuple[np.ndarray, np.ndarray]:
    """The first three principal components of the channels as an (H, W, 3) uint8 image.

    Each pixel is a sample with C features; components are stretched between their 1st and 99th
    percentiles. Signs are fixed so each component's largest loading is positive, which makes the
    colours repeatable. Returns the image and the explained-variance ratio of each component
    (zeros where the map has fewer than three independent directions).
    """
    array = _as_fmap(fmap)
    channels, height, width = array.shape
    samples = array.reshape(channels, -1).T.astype(np.float64)
    samples -= samples.mean(axis=0, keepdims=True)
    _, sing, vt = np.linalg.svd(samples, full_matrices=False)
    total = float((sing**2).sum())
    comps = min(3, vt.shape[0])
    vt = vt[:comps]
    signs = np.sign(vt[np.arange(comps), np.abs(vt).argmax(axis=1)])
    vt = vt * np.where(signs == 0, 1.0, signs)[:, None]
    projected = samples @ vt.T  # (H*W, comps)
    rgb = np.zeros((height * width, 3), dtype=np.float64)
    for i in range(comps):
        low, high = np.percentile(projected[:, i], [1.0, 99.0])
        if high > low:
            rgb[:, i] = np.clip((projected[:, i] - low) / (high - low), 0.0, 1.0)
    ratios = np.zeros(3)
    if total > 0:
        ratios[:comps] = sing[:comps] ** 2 / total
    image = (rgb.reshape(height, width, 3) * 255.0 + 0.5).astype(np.uint8)
    return image, ratios


def pca_figure(fmap, *, title: str | None = None) -> go.Figure:
    """The PCA-to-RGB rendering of a level, with the variance its three components explain."""
    image, ratios = pca_rgb(fmap)
    fig = go.Figure(go.Image(z=image, hovertemplate="x %{x}, y %{y}<extra></extra>"))
    explained = ", ".join(f"{r:.0%}" for r in ratios)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    text = f"{title or 'PCA of channels'}<br><sup>R, G, B = components 1-3 ({explained})</sup>"
    return _layout(fig, text, height=360)


def mean_overlay_figure(
    fmap,
    background: np.ndarray | None,
    *,
    opacity: float = 0.5,
    title: str | None = None,
) -> go.Figure:
    """Mean activation over channels as a translucent heatmap stretched over ``background``.

    ``background`` is (H, W, 3) uint8 in the model's input geometry (see ``input_view``); each
    feature-map cell covers the image pixels it was computed from, so no upsampling is needed.
    A background over ``OVERLAY_MAX_SIZE`` on its longer side is shown reduced (block means), so
    the figure stays small whatever image it is given.
    """
    array = _as_fmap(fmap)
    if background is not None:
        background = shrink(np.asarray(background, np.uint8), OVERLAY_MAX_SIZE)
    mean = array.mean(axis=0)
    fig = go.Figure()
    if background is not None:
        height, width = background.shape[:2]
        fig.add_trace(go.Image(z=background, hoverinfo="skip"))
    else:
        height, width = mean.shape
        opacity = 1.0
    dy, dx = height / mean.shape[0], width / mean.shape[1]
    fig.add_trace(
        go.Heatmap(
            z=mean,
            x0=-0.5 + dx / 2,
            dx=dx,
            y0=-0.5 + dy / 2,
            dy=dy,
            colorscale="Inferno",
            opacity=opacity,
            colorbar=dict(thickness=12, len=0.8, title=dict(text="mean", side="right")),
            customdata=np.stack(np.indices(mean.shape), axis=-1),
            hovertemplate=(
                "cell x %{customdata[1]}, y %{customdata[0]}<br>mean %{z:.3f}<extra></extra>"
            ),
        )
    )
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain")
    return _layout(fig, title or "Mean activation over the input", height=360)


def input_view(rgb: np.ndarray | ImageArray, data_config: DataConfig) -> np.ndarray:
    """An (H, W, 3) uint8 preview resized and centre-cropped exactly as the model input is.

    ``rgb`` is an (H, W, 3) uint8 preview (usually ``display.composite(image)``, which reduces
    images over 2048 pixels a side), or the ``ImageArray`` itself: then the view is made from
    the full-resolution pixels the crop reads (``display.model_view``), exact for any size or
    shape. Either way it costs what the crop costs (only the part the crop reads is resized)."""
    if isinstance(rgb, ImageArray):
        return model_view(rgb, data_config)
    tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(np.asarray(rgb, np.uint8), -1, 0)))
    cropped = resize_and_crop(tensor, data_config)
    return np.ascontiguousarray(cropped.permute(1, 2, 0).numpy())


# --- image preview ----------------------------------------------------------------------------


def band_gallery(
    thumbnails: Sequence[np.ndarray], stats: Sequence[dict]
) -> list[tuple[np.ndarray, str]]:
    """(thumbnail, caption) pairs for a gallery: band index and name, value range, NaN count."""
    items = []
    for thumb, stat in zip(thumbnails, stats, strict=True):
        caption = f"{stat['index']}: {stat['name']} ({stat['min']:.4g} to {stat['max']:.4g})"
        if stat.get("nonfinite"):
            caption += f", {stat['nonfinite']} NaN/Inf"
        items.append((thumb, caption))
    return items
