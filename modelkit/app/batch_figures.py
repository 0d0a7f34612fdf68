"""Figures of the Batch and Compare tabs (plotly, from plain data; no gradio).

embedding_map(coords, files, groups, *, colour_by, explained) -> Figure
    one dot per file on the embeddings' first two principal components, coloured by group
    (predicted class or folder), the file name on hover
topk_side_by_side(results, shared) -> Figure
    one bar chart per model; labels in more than one model's top-k drawn in a shared colour
stride_maps(rows, strides) -> Figure
    the mean activation of each model at each common stride (rows: models, columns: strides)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from modelkit.app.figures import COLORSCALE, FONT, MARGIN, message_figure

SHARED, ALONE = "#2563eb", "#cbd5e1"
MAX_GROUPS = 12  # more groups than this: the rest are drawn as "other"


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0.01, font=dict(size=15)), template="plotly_white",
                      font=FONT, margin=MARGIN, height=height)  # fmt: skip
    return fig


def embedding_map(
    coords: np.ndarray,
    files: Sequence[str],
    groups: Sequence[str],
    *,
    colour_by: str = "predicted class",
    explained: tuple[float, float] = (0.0, 0.0),
) -> go.Figure:
    if len(files) == 0:
        return message_figure("No image could be embedded, so there is nothing to map.")
    counts: dict[str, int] = {}
    for g in groups:
        counts[g] = counts.get(g, 0) + 1
    keep = set(sorted(counts, key=lambda g: (-counts[g], g))[:MAX_GROUPS])
    shown = [g if g in keep else "other" for g in groups]
    fig = go.Figure()
    for group in sorted(set(shown), key=lambda g: (g == "other", g)):
        at = [i for i, g in enumerate(shown) if g == group]
        fig.add_trace(go.Scattergl(
            x=coords[at, 0], y=coords[at, 1], mode="markers", name=group or "(top folder)",
            text=[files[i] for i in at], hovertemplate=f"%{{text}}<extra>{group}</extra>",
            marker=dict(size=9, opacity=0.85),
        ))  # fmt: skip
    fig.update_xaxes(title=f"PC 1 ({explained[0]:.0%} of the variance)", zeroline=False)
    fig.update_yaxes(title=f"PC 2 ({explained[1]:.0%})", zeroline=False)
    fig.update_layout(legend=dict(title=colour_by))
    return _style(fig, f"Embeddings of {len(files)} images (PCA), by {colour_by}", 520)


def topk_side_by_side(results: Sequence[dict], shared: set[str]) -> go.Figure:
    """``results``: [{"title", "labels", "probabilities"}], best first."""
    fig = make_subplots(rows=1, cols=len(results), subplot_titles=[r["title"] for r in results],
                        horizontal_spacing=0.12)  # fmt: skip
    for col, r in enumerate(results, start=1):
        labels, probs = list(r["labels"])[::-1], list(r["probabilities"])[::-1]
        colours = [SHARED if lab in shared else ALONE for lab in labels]
        fig.add_trace(go.Bar(x=probs, y=labels, orientation="h", marker_color=colours,
                             hovertemplate="%{y}: %{x:.3f}<extra></extra>", showlegend=False),
                      row=1, col=col)  # fmt: skip
        fig.update_xaxes(range=[0, 1], tickformat=".0%", row=1, col=col)
    title = "Top predictions side by side (blue: in more than one model's top-k)"
    fig = _style(fig, title, 160 + 34 * max(len(r["labels"]) for r in results))
    fig.update_layout(margin=dict(MARGIN, t=90))
    return fig


def _short(text: str, most: int = 38) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def stride_maps(rows: Sequence[dict], strides: Sequence[int]) -> go.Figure:
    """``rows``: [{"title", "maps": {stride: (H, W) array}}]."""
    if not strides:
        return message_figure("These models share no feature-map stride to compare at.")
    titles = [(_short(r["title"]) + " · " if j == 0 else "") + f"stride {s}"
              for r in rows for j, s in enumerate(strides)]  # fmt: skip
    fig = make_subplots(rows=len(rows), cols=len(strides), subplot_titles=titles,
                        horizontal_spacing=0.04, vertical_spacing=0.08)  # fmt: skip
    for i, r in enumerate(rows, start=1):
        for j, s in enumerate(strides, start=1):
            fmap = np.asarray(r["maps"][s], dtype=np.float32)
            span = float(np.ptp(fmap)) or 1.0
            fig.add_trace(go.Heatmap(z=(fmap - fmap.min()) / span, colorscale=COLORSCALE,
                                     showscale=False, hoverinfo="skip"), row=i, col=j)  # fmt: skip
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{(i - 1) * len(strides) + j}",
                             showticklabels=False, row=i, col=j)  # fmt: skip
            fig.update_xaxes(showticklabels=False, row=i, col=j)
    title = "Mean |activation| at the strides all models share (each map scaled to its range)"
    fig = _style(fig, title, 100 + 200 * len(rows))
    fig.update_layout(margin=dict(MARGIN, t=90))
    return fig
