"""Labelling on the Teach tab: after teaching, "These N examples may be labelled wrong" (a gallery;
click one, then move it to the class it looks like, or remove it, and teach again); and "Which
images should I label next?" (images without a class yet, files or a ZIP; the ones worth a
label first; click one, give it a class). ``teach_page`` builds these blocks and refreshes its
examples after each change."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from modelkit.app import label_state, teach_state, words
from modelkit.app.gpu import for_model, on_gpu
from modelkit.app.guard import guarded, status
from modelkit.app.runs import FormRun
from modelkit.app.setup_form import FILE_TYPES
from modelkit.errors import ConfigError
from modelkit.runtime.settings import RunSettings

# galleries of a few cards: small squares with their captions, however few there are
CARDS = dict(show_label=False, allow_preview=False, fit_columns=False, object_fit="contain")


@dataclass
class IssuesBlock:
    box: gr.Column
    title: gr.Markdown
    gallery: gr.Gallery
    issues: gr.State  # [{index, name, given, suggested, score, key, thumb}]
    chosen: gr.State  # the clicked card's place, or None
    move: gr.Button
    remove: gr.Button

    @property
    def outputs(self) -> list:
        """What ``issues_values`` fills, in its order."""
        return [self.box, self.title, self.gallery, self.issues, self.chosen, self.move,
                self.remove]  # fmt: skip


def issues_values(head, image_bytes, items: list[dict]) -> tuple:
    """The block's values after teaching (hidden when no label looks wrong)."""
    issues, count = label_state.issue_cards(head, image_bytes, items)
    return (gr.update(visible=bool(count)), "#### " + words.issues_title(count, len(issues)),
            label_state.cards(issues), issues, None, *_buttons(None))  # fmt: skip


def issues_cleared() -> tuple:
    """The block's values for examples not taught yet (hidden, empty)."""
    return gr.update(visible=False), "", [], [], None, *_buttons(None)


def _buttons(issue: dict | None) -> tuple:
    move = f"Move it to '{issue['suggested']}'" if issue else "Move it to the class it looks like"
    active = issue is not None
    return gr.update(value=move, interactive=active), gr.update(interactive=active)


# --- handlers -----------------------------------------------------------------------------------


@guarded
def on_issue_pick(issues, evt: gr.SelectData):
    index = evt.index if isinstance(evt.index, int) else evt.index[0]
    return "", index, *_buttons(issues[index] if 0 <= index < len(issues) else None)


def _changed(items, issues, note: str) -> tuple:
    title = words.issues_title(len(issues), len(issues)) if issues else "All checked."
    return ("", items, "#### " + title, label_state.cards(issues), issues, None, *_buttons(None),
            note)  # fmt: skip


CHANGES = {  # what a click does to the chosen example, and what the page says then
    "move": (label_state.relabel, "Moved **{name}** to **{suggested}**."),
    "remove": (label_state.drop, "Removed **{name}** from the examples."),
}


def _change(kind: str, items, issues, chosen) -> tuple:
    issue = label_state.chosen_issue(issues, chosen)
    change, said = CHANGES[kind]
    items, issues = change(items, issues, chosen)
    return _changed(items, issues, said.format(**issue) + " Teach again to use the change.")


@guarded
def on_move(items, issues, chosen):
    return _change("move", items, issues, chosen)


@guarded
def on_remove(items, issues, chosen):
    return _change("remove", items, issues, chosen)


@guarded
def on_waiting(files):
    """Images without a class yet: they replace the earlier ones; old suggestions go."""
    pool = teach_state.waiting(files)
    note = f"{len(pool)} image{'s' * (len(pool) != 1)} without a class." if pool else ""
    return "", pool, note, [], []


def _suggest_settings(items, pool, head, *form_values, **_) -> RunSettings:
    return head.settings if head is not None else FormRun.read(form_values).settings


def _suggest_images(items, pool, head, *form_values, **_) -> int:
    return len(items or []) + len(pool or [])


@guarded
@on_gpu(**for_model(_suggest_settings, images=_suggest_images))
def on_suggest(items, pool, head, *form_values):
    settings = FormRun.read(form_values).settings
    found = label_state.next_in_pool(items or [], pool or [], head, settings)
    picks = [int(i) for i in found.indices]
    note = words.suggestion_sentence(found.strategy, len(picks), found.notes)
    classes = list(teach_state.counts(items or []))
    return "", _suggestion_cards(pool, picks), picks, note, gr.update(choices=classes)


def _suggestion_cards(pool, picks) -> list:
    return [(teach_state.item_thumbnail(pool[i]), f"{rank}. {pool[i]['name']}")
            for rank, i in enumerate(picks, 1)]  # fmt: skip


@guarded
def on_suggestion_pick(evt: gr.SelectData):
    return "", evt.index if isinstance(evt.index, int) else evt.index[0]


@guarded
def on_give(items, pool, picks, chosen, cls):
    if chosen is None or not 0 <= int(chosen) < len(picks or []):
        raise ConfigError("Click one of the suggested images first, then give it a class.")
    index = picks[int(chosen)]
    name = pool[index]["name"]
    items, pool = teach_state.give_class(items or [], pool, index, cls)
    picks = [i - (i > index) for i in picks if i != index]
    note = f"Added **{name}** to **{str(cls).strip()}**. Teach again to use it."
    return "", items, pool, _suggestion_cards(pool, picks), picks, None, note


# --- layout ---------------------------------------------------------------------------------------


def build_issues() -> IssuesBlock:
    """The gallery of examples whose labels look wrong, hidden until teaching finds some."""
    with gr.Column(visible=False, elem_id="mk-teach-issues-box") as box:
        title = gr.Markdown(elem_id="mk-teach-issues-title")
        gallery = gr.Gallery(columns=8, height=200, elem_id="mk-teach-issues",
                             **CARDS)  # fmt: skip
        with gr.Row():
            move = gr.Button("Move it to the class it looks like", size="sm", interactive=False,
                             elem_id="mk-teach-issue-move")  # fmt: skip
            remove = gr.Button("Remove it", size="sm", interactive=False,
                               elem_id="mk-teach-issue-remove")  # fmt: skip
    block = IssuesBlock(box, title, gallery, gr.State([]), gr.State(None), move, remove)
    gallery.select(on_issue_pick, block.issues, [status(), block.chosen, move, remove],
                   api_visibility="private")  # fmt: skip
    return block


def wire_issues(block: IssuesBlock, items: gr.State, note: gr.Markdown) -> list:
    """Move and remove change the examples; returns their events (the page refreshes after)."""
    outputs = [status(), items, block.title, block.gallery, block.issues, block.chosen,
               block.move, block.remove, note]  # fmt: skip
    inputs = [items, block.issues, block.chosen]
    private = dict(api_visibility="private")
    return [block.move.click(on_move, inputs, outputs, **private),
            block.remove.click(on_remove, inputs, outputs, **private)]  # fmt: skip


def build_next(items: gr.State, head: gr.State, form_inputs: list, model_work: dict) -> list:
    """Which images without a class to label next; returns the events that change the examples."""
    with gr.Accordion("Which images should I label next?", open=False,
                      elem_id="mk-teach-next"):  # fmt: skip
        with gr.Row():
            files = gr.File(label="Images without a class yet (image files, or a ZIP)",
                            file_count="multiple", file_types=[*FILE_TYPES, ".zip"], height=90,
                            scale=3, elem_id="mk-teach-waiting")  # fmt: skip
            ask = gr.Button("Which should I label next?", scale=1, elem_id="mk-teach-suggest")
        note = gr.Markdown(elem_id="mk-teach-suggest-note")
        gallery = gr.Gallery(columns=8, height=180, elem_id="mk-teach-suggestions",
                             **CARDS)  # fmt: skip
        with gr.Row():
            cls = gr.Dropdown(label="Its class (pick or type)", choices=[], scale=2,
                              allow_custom_value=True, elem_id="mk-teach-give-class")  # fmt: skip
            give = gr.Button("Give it this class", scale=1, elem_id="mk-teach-give")
    pool, picks, chosen = gr.State([]), gr.State([]), gr.State(None)
    private = dict(api_visibility="private")
    files.change(on_waiting, files, [status(), pool, note, gallery, picks], **private)
    ask.click(on_suggest, [items, pool, head, *form_inputs], [status(), gallery, picks, note, cls],
              **model_work)  # fmt: skip
    gallery.select(on_suggestion_pick, None, [status(), chosen], **private)
    outputs = [status(), items, pool, gallery, picks, chosen, note]
    given = give.click(on_give, [items, pool, picks, chosen, cls], outputs, **private)
    return [given]
