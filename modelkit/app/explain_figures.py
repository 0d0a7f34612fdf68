"""Plotly figures of an explanation: band importance in band order, and a map over the composite.

    band_figure(values, labels, *, title) -> Figure      # signed bars, one per band, in order
    shrink(rgb, heatmap, max_side=512) -> (rgb, heatmap, step)   # every step-th pixel
    map_figure(rgb, heatmap, *, opacity=0.5, title, max_side=512, step=1) -> Figure

Both take plain numpy. The map is shown at most ``max_side`` pixels on its longer side (every
n-th pixel), whatever the image's size, so a figure's size is bounded; ``shrink`` gives those
pixels (small enough to keep, so the opacity can be redrawn without explaining again) and
``step`` says which pixels an already shrunk map holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from modelkit.app.figures import message_figure

FONT = dict(family="Inter, system-ui, sans-serif", size=13)
# blue (lowers the score) - transparent (nothing) - red (raises it), for signed maps
SIGNED = [[0.0, "rgba(5,48,97,1)"], [0.25, "rgba(67,147,195,0.8)"], [0.5, "rgba(247,247,247,0)"],
          [0.75, "rgba(214,96,77,0.8)"], [1.0, "rgba(103,0,31,1)"]]  # fmt: skip


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=15)), template="plotly_white",
                      font=FONT, margin=dict(l=10, r=10, t=48, b=10), height=height)  # fmt: skip
    return fig


def band_figure(values, labels: Sequence[str], *, title: str = "Band importance",
                axis: str = "score drop without the band") -> go.Figure:  # fmt: skip
    """Vertical bars in band order: blue where the band raises the score, red where it lowers it.
    ``axis`` says what a bar measures (the method's own quantity)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return message_figure("No bands to show")
    colours = ["#2563eb" if v >= 0 else "#dc2626" for v in values]
    fig = go.Figure(go.Bar(
        x=list(labels), y=values, marker_color=colours, text=[f"{v:.3g}" for v in values],
        textposition="outside", cliponaxis=False, textfont=dict(size=11),
        hovertemplate=f"%{{x}}<br>{axis}: %{{y:.4g}}<extra></extra>",
    ))  # fmt: skip
    # room above and below the bars for their numbers (plotly clips or shrinks them otherwise)
    low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
    pad = 0.15 * ((high - low) or 1.0)
    fig.update_xaxes(type="category", tickangle=-40 if len(values) > 6 else 0, automargin=True)
    fig.update_yaxes(title=axis, zeroline=True, zerolinecolor="#888",
                     range=[low - pad if low < 0 else 0, high + pad])  # fmt: skip
    fig.update_layout(uniformtext=dict(minsize=10, mode="show"))
    return _layout(fig, title, height=400)


def shrink(rgb: np.ndarray, heatmap: np.ndarray, max_side: int = 512):
    """Every step-th pixel of the composite and the map, at most ``max_side`` on a side."""
    step = max(1, int(np.ceil(max(heatmap.shape) / max_side)))
    heat = np.asarray(heatmap, np.float32)[::step, ::step]
    return np.asarray(rgb, np.uint8)[::step, ::step], heat, step


def map_figure(rgb: np.ndarray, heatmap: np.ndarray, *, opacity: float = 0.5,
               title: str = "Where the model looks", max_side: int = 512,
               step: int = 1) -> go.Figure:  # fmt: skip
    """``heatmap`` (H, W) over the (H, W, 3) uint8 composite, translucent."""
    if heatmap is None:
        return message_figure("This method draws no map: pick Grad-CAM or integrated gradients")
    back, heat, more = shrink(rgb, heatmap, max_side)
    step *= more
    signed = heat.min() < 0
    # signed maps (integrated gradients) are spiky: a few pixels would take the whole colour
    # range, so the colours end at the 99.5th percentile; zero is transparent, not white
    limit = float(np.percentile(np.abs(heat), 99.5) if signed else np.abs(heat).max())
    limit = limit or float(np.abs(heat).max()) or 1.0
    colours = SIGNED if signed else "Inferno"
    # both layers on the image's own pixel grid, so the hover names the image's coordinates
    grid = dict(x0=0, dx=step, y0=0, dy=step)
    every = f" (the map shows every {step}th pixel)" if step > 1 else ""
    fig = go.Figure(go.Image(z=back, hoverinfo="skip", **grid))
    fig.add_trace(go.Heatmap(
        z=heat, colorscale=colours, opacity=float(opacity),
        zmin=-limit if signed else 0.0, zmax=limit, colorbar=dict(thickness=12, len=0.8), **grid,
        hovertemplate=f"x %{{x}}, y %{{y}}{every}<br>%{{z:.3g}}<extra></extra>",
    ))  # fmt: skip
    height, width = heat.shape
    fig.update_xaxes(visible=False, range=[-step / 2, (width - 0.5) * step], constrain="domain")
    fig.update_yaxes(visible=False, range=[(height - 0.5) * step, -step / 2], scaleanchor="x",
                     constrain="domain")  # fmt: skip
    return _layout(fig, title, height=420)
