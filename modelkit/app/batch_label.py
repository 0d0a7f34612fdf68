"""Labelling on the Batch tab, from the table's embeddings (no model runs again): "Which images
should I label next?" (typical ones, or those the taught classes are least sure of), and a
row's look-alikes (click a row: its nearest images, ``modelkit.similar``). ``batch_page`` keeps
the table, the ZIP and whether the taught classes labelled it in its state."""

from __future__ import annotations

import gradio as gr

from modelkit.app import label_state, words
from modelkit.app.guard import guarded, status
from modelkit.app.label_page import CARDS
from modelkit.batches.similar import similar
from modelkit.errors import ConfigError

THEN = "Give them a class on the Teach tab (one folder per class), then teach again."


def _table(state):
    if not state or state.get("table") is None:
        raise ConfigError("Run a folder first: the suggestions and look-alikes come from its "
                          "table.")  # fmt: skip
    return state["table"]


@guarded
def on_next(state, head):
    table = _table(state)
    found = label_state.next_in_batch(table, head if state.get("taught") else None)
    files = table.column("file")
    names = [files[int(i)].as_py() for i in found.indices]
    cards = label_state.batch_cards(state["archive"], names,
                                    [f"{r}. {n}" for r, n in enumerate(names, 1)])  # fmt: skip
    note = words.suggestion_sentence(found.strategy, len(names), found.notes, then=THEN)
    return "", cards, note


@guarded
def on_look_alike(state, evt: gr.SelectData):
    table = _table(state)
    row = evt.index[0] if isinstance(evt.index, list | tuple) else int(evt.index)
    name = table.column("file")[row].as_py()
    found = similar(row, table, k=label_state.LOOK_ALIKES)
    names = [r["name"] for r in found]
    cards = label_state.batch_cards(state["archive"], names,
                                    [f"{r}. {n}" for r, n in enumerate(names, 1)])  # fmt: skip
    return "", cards, f"The images that look most like **{name}**, nearest first."


def build(rows: gr.Dataframe, state: gr.State, head: gr.State) -> None:
    """The labelling blocks under the Batch table: label next, and a row's look-alikes."""
    with gr.Row(equal_height=False):
        with gr.Column():
            ask = gr.Button("Which images should I label next?", elem_id="mk-batch-next")
            note = gr.Markdown(elem_id="mk-batch-next-note")
            suggested = gr.Gallery(columns=4, height=200, elem_id="mk-batch-suggestions",
                                   **CARDS)  # fmt: skip
        with gr.Column():
            alike_note = gr.Markdown("Click a row of the table to see the images that look "
                                     "most like it.", elem_id="mk-batch-alike-note")  # fmt: skip
            alike = gr.Gallery(columns=4, height=200, elem_id="mk-batch-alike",
                               **CARDS)  # fmt: skip
    private = dict(api_visibility="private")
    ask.click(on_next, [state, head], [status(), suggested, note], **private)
    rows.select(on_look_alike, state, [status(), alike, alike_note], **private)
