"""Plotly figures of an explanation: band importance in band order, and a map over the composite.

    band_figure(values, labels, *, title) -> Figure      # signed bars, one per band, in order
    map_figure(rgb, heatmap, *, opacity=0.5, title, max_side=512) -> Figure

Both take plain numpy. The map is shown at most ``max_side`` pixels on its longer side (every
n-th pixel), whatever the image's size, so a figure's size is bounded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from modelkit.app.figures import message_figure

FONT = dict(family="Inter, system-ui, sans-serif", size=13)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=15)), template="plotly_white",
                      font=FONT, margin=dict(l=10, r=10, t=48, b=10), height=height)  # fmt: skip
    return fig


def band_figure(values, labels: Sequence[str], *, title: str = "Band importance") -> go.Figure:
    """Vertical bars in band order: blue where the band raises the score, red where it lowers it."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return message_figure("No bands to show")
    colours = ["#2563eb" if v >= 0 else "#dc2626" for v in values]
    fig = go.Figure(go.Bar(
        x=list(labels), y=values, marker_color=colours, text=[f"{v:.3g}" for v in values],
        textposition="outside", hovertemplate="%{x}<br>score drop %{y:.4g}<extra></extra>",
    ))  # fmt: skip
    fig.update_xaxes(type="category", tickangle=-40 if len(values) > 6 else 0, automargin=True)
    fig.update_yaxes(title="score drop without the band", zeroline=True, zerolinecolor="#888")
    return _layout(fig, title, height=380)


def map_figure(rgb: np.ndarray, heatmap: np.ndarray, *, opacity: float = 0.5,
               title: str = "Where the model looks", max_side: int = 512) -> go.Figure:  # fmt: skip
    """``heatmap`` (H, W) over the (H, W, 3) uint8 composite, translucent."""
    if heatmap is None:
        return message_figure("This method draws no map: pick Grad-CAM or integrated gradients")
    step = max(1, int(np.ceil(max(heatmap.shape) / max_side)))
    heat = np.asarray(heatmap, np.float32)[::step, ::step]
    back = np.asarray(rgb, np.uint8)[::step, ::step]
    signed = heat.min() < 0
    limit = float(np.abs(heat).max()) or 1.0
    fig = go.Figure(go.Image(z=back, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(
        z=heat, colorscale="RdBu_r" if signed else "Inferno", opacity=float(opacity),
        zmin=-limit if signed else 0.0, zmax=limit, x0=0, dx=1, y0=0, dy=1,
        colorbar=dict(thickness=12, len=0.8),
        hovertemplate=f"x %{{x}}, y %{{y}} (every {step}. pixel)<br>%{{z:.3g}}<extra></extra>",
    ))  # fmt: skip
    height, width = heat.shape
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x", constrain="domain")
    return _layout(fig, title, height=420)
