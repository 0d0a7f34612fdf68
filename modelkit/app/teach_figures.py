"""What the Teach tab shows about a taught head: the confusion matrix (plotly; counts and
row-normalised), the accuracy beside chance in words, recall and precision per class, the
examples it got wrong, and the metrics as JSON. No gradio here.

    confusion_figure(confusion, classes) -> Figure
    summary(head) -> str (markdown)         per_class_rows(head) -> list[list]
    head_note(head, name) -> str            metrics_json(head) -> dict
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from modelkit.app.figures import _layout
from modelkit.teach.head import TrainedHead

PER_CLASS_HEADERS = ["class", "examples", "recall", "precision"]


def confusion_figure(confusion: np.ndarray, classes: list[str]) -> go.Figure:
    """Two heatmaps side by side: out-of-fold counts, and each row as shares of its true class."""
    counts = np.asarray(confusion, dtype=np.int64)
    rows = counts.sum(1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14,
                        subplot_titles=("Counts", "Share of each true class"))  # fmt: skip
    for col, (z, text) in enumerate(
        [(counts, counts.astype(str)), (shares, np.vectorize(lambda v: f"{v:.0%}")(shares))], 1
    ):
        fig.add_trace(go.Heatmap(
            z=z, x=classes, y=classes, text=text, texttemplate="%{text}", showscale=False,
            colorscale="Blues", zmin=0, zmax=1 if col == 2 else max(int(counts.max()), 1),
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        ), row=1, col=col)  # fmt: skip
        fig.update_xaxes(title="predicted", row=1, col=col, tickangle=-30)
        fig.update_yaxes(title="true", autorange="reversed", row=1, col=col, automargin=True)
    side = 60 + 40 * len(classes)
    return _layout(fig, "Confusion matrix (out of fold)", height=max(320, side + 120))


def summary(head: TrainedHead) -> str:
    """The accuracy beside chance, what the fit chose, and every warning."""
    n = int(head.confusion.sum())
    lines = [
        f"### Out-of-fold accuracy {head.cv_accuracy:.1%} · chance {head.chance:.1%}",
        f"Balanced accuracy {head.balanced_accuracy:.1%} · {n} examples, "
        f"{len(head.classes)} classes · {head.fit.get('folds')} folds (accuracy per fold: "
        + ", ".join(f"{a:.0%}" for a in head.fold_accuracies)
        + f") · binomial test against chance p = {head.p_value:.2g}",
        "",
        "Every example was scored by a head that had not seen it (cross-validation); the head "
        f"you keep was then refit on all {n}. Model `{head.model}`, views "
        f"`{head.setup.get('views')}`, regularisation C = {head.fit.get('C'):g}.",
    ]
    if head.warnings:
        lines += ["", "**Warnings**", *[f"- ⚠️ {w}" for w in head.warnings]]
    return "\n".join(lines)


def per_class_rows(head: TrainedHead) -> list[list]:
    return [[c, v["count"], f"{v['recall']:.0%}", f"{v['precision']:.0%}"]
            for c, v in head.per_class.items()]  # fmt: skip


def head_note(head: TrainedHead, name: str) -> str:
    """Which head answers: its file, its classes, its base model and its accuracy."""
    return (
        f"Answered by the taught head **{name}**: classes {', '.join(head.classes)} · base "
        f"model `{head.model}` · out-of-fold accuracy {head.cv_accuracy:.1%} "
        f"(chance {head.chance:.1%})."
    )


def metrics_json(head: TrainedHead) -> dict:
    return {"classes": head.classes, "model": head.model, **head.metrics(), "setup": head.setup}
