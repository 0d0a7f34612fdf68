"""The task "Run a whole folder": a ZIP of images (or the example) and one button; the answer in
one sentence, then a table (one row per file), Parquet and CSV downloads, which images to label
next and a row's look-alikes (``batch_label``), and a map of which images look alike, coloured
by class or folder. Once classes are taught, they are what the
folder gets (the taught head's settings win); else the model's own, with the model's input
following the folder's first image."""

from __future__ import annotations

import gradio as gr

from modelkit.app import batch_figures, batch_label, runs, words
from modelkit.app.gpu import MAX_SECONDS, on_gpu
from modelkit.app.guard import MODEL_WORK, clearing, guarded, status
from modelkit.app.runs import FormRun, head_in_use
from modelkit.app.setup_form import ASSETS, SetupForm
from modelkit.batches import table as tables
from modelkit.batches.inputs import collect
from modelkit.batches.project import project
from modelkit.errors import ConfigError, ModelkitError
from modelkit.images.read import read_image

HEADERS = ["file", "folder", "top label", "probability", "error"]
COLOUR_BY = ["predicted class", "folder"]
CLASSES = [("the model's own", "own"), ("the classes I taught", "taught")]
EXAMPLE_ZIP = ASSETS / "teach_textures.zip"


def _rows(table) -> list[list]:
    out = []
    for r in table.to_pylist():
        label = r["labels"][0] if r.get("labels") else ""
        prob = round(float(r["probabilities"][0]), 4) if r.get("probabilities") else None
        out.append([r["file"], r["folder"], label, prob, r["error"] or ""])
    return out


def _map_state(table) -> dict:
    good = [r for r in table.to_pylist() if r["error"] is None]
    coords, explained = project([r["embedding"] for r in good]) if good else ([], (0.0, 0.0))
    return {"x": [list(map(float, c)) for c in coords], "explained": list(explained),
            "files": [r["file"] for r in good], "folders": [r["folder"] for r in good],
            "classes": [r["labels"][0] for r in good]}  # fmt: skip


def _figure(state: dict, colour_by: str):
    import numpy as np

    groups = state["folders"] if colour_by == "folder" else state["classes"]
    return batch_figures.embedding_map(np.array(state["x"]).reshape(-1, 2), state["files"],
                                       groups, colour_by=colour_by,
                                       explained=tuple(state["explained"]))  # fmt: skip


def _follow_first(settings, archive: str):
    """The settings with the model's input following the folder's first readable image."""
    for item in collect(archive).items[:8]:
        try:
            return settings.follow(read_image(item.load(), item.name))
        except (ModelkitError, OSError):
            continue
    return settings


@guarded
@runs.shows_downloads
@on_gpu(MAX_SECONDS)
def on_batch(archive, classes, head, *form_values, progress=gr.Progress()):  # noqa: B008
    from modelkit.batches.job import batch

    if not archive:
        raise ConfigError("Upload a ZIP of images first, or click the example (one sub-folder "
                          "per group is fine).")  # fmt: skip
    run = FormRun.read(form_values)
    head = head_in_use(head) if classes == "taught" else None
    progress(0.0, desc="Reading the ZIP")
    settings = run.settings if head is not None else _follow_first(run.settings, str(archive))

    def report(done: int, total: int) -> None:
        progress(done / max(total, 1), desc=f"{done} of {total} images")

    result = batch(str(archive), settings, head=head, top_k=run.top_k, progress=report)
    table = result.rows
    note = words.batch_sentence(result.total, result.errors, len(result.skipped),
                                head.classes if head is not None else None)  # fmt: skip
    if not result.total:
        return "", note, None, None, gr.update(), None, None
    note += "".join(f"\n- {n}" for n in result.notes)
    if result.skipped:
        note += f"\n- Left out (not images): {len(result.skipped)} files."
    write = runs.EXPORTS.write
    files = [str(write("batch.parquet", tables.parquet_bytes(table))),
             str(write("batch.csv", tables.csv_text(table)))]  # fmt: skip
    labelling = {"table": table, "archive": str(archive), "taught": head is not None}
    state = _map_state(table) | labelling  # the table and ZIP: for batch_label
    colour = "folder" if len(set(state["folders"])) > 1 else "predicted class"
    return "", note, _rows(table), files, gr.update(value=colour), _figure(state, colour), state


@guarded
def on_colour(colour_by, state):
    if not state:
        return {status(): ""}
    return "", _figure(state, colour_by)


def build(setup_form: SetupForm, head: gr.State, taught: list) -> None:
    """The task's page; ``taught``: the events that set the page's head (then its classes are
    what the folder gets)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            gr.Markdown("Run every image of a ZIP through the model: one row per file, and a "
                        "map of which images look alike.")  # fmt: skip
            archive = gr.File(label="ZIP of images", file_types=[".zip"], height=90,
                              elem_id="mk-batch-zip")  # fmt: skip
            gr.Examples([[str(EXAMPLE_ZIP)]], inputs=[archive], label="Example: 24 textures")
        with gr.Column(scale=6):
            classes = gr.Radio(CLASSES, value="own", label="Label them with",
                               elem_id="mk-batch-classes")  # fmt: skip
            run = gr.Button("Run the whole folder", variant="primary", elem_id="mk-batch-run")
            note = gr.Markdown(elem_id="mk-batch-answer")
    rows = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, max_height=420,
                        column_widths=["24%", "10%", "18%", "11%", "37%"],
                        elem_id="mk-batch-table")  # fmt: skip
    downloads = gr.File(label="Parquet and CSV", file_count="multiple", interactive=False)
    state = gr.State(None)
    batch_label.build(rows, state, head)
    colour = gr.Radio(COLOUR_BY, value=COLOUR_BY[0], label="Colour the map by")
    chart = gr.Plot(show_label=False, elem_id="mk-batch-map")
    outputs = [status(), note, rows, downloads, colour, chart, state]
    run.click(clearing(on_batch, outputs[1:]), [archive, classes, head, *setup_form.inputs],
              outputs, concurrency_id=MODEL_WORK, api_visibility="private")  # fmt: skip
    colour.input(on_colour, [colour, state], [status(), chart], api_visibility="private")
    for event in taught:  # classes were just taught: the folder gets them
        event.success(lambda: "taught", None, classes, api_visibility="private")
