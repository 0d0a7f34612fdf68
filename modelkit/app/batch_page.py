"""The Batch tab: a ZIP of images through the form's setup into a table (one row per file), with
Parquet and CSV downloads and a map of the embeddings coloured by predicted class or folder."""

from __future__ import annotations

import gradio as gr

from modelkit.app import batch_figures, runs
from modelkit.app.gpu import MAX_SECONDS, on_gpu
from modelkit.app.guard import MODEL_WORK, guarded, status
from modelkit.app.runs import FormRun, head_in_use
from modelkit.app.setup_form import SetupForm
from modelkit.batches import table as tables
from modelkit.batches.project import project
from modelkit.errors import ConfigError

HEADERS = ["file", "folder", "top label", "probability", "error"]
COLOUR_BY = ["predicted class", "folder"]


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


@guarded
@runs.shows_downloads
@on_gpu(MAX_SECONDS)
def on_batch(archive, use_head, head, *form_values, progress=gr.Progress()):  # noqa: B008
    from modelkit.batches.job import batch

    if not archive:
        raise ConfigError("Upload a .zip of images first (one sub-folder per group is fine).")
    run = FormRun.read(form_values)
    head = head_in_use(head) if use_head else None
    progress(0.0, desc="Reading the ZIP")

    def report(done: int, total: int) -> None:
        progress(done / max(total, 1), desc=f"{done} of {total} images")

    result = batch(str(archive), run.settings, head=head, top_k=run.top_k, progress=report)
    table = result.rows
    write = runs.EXPORTS.write
    files = [str(write("batch.parquet", tables.parquet_bytes(table))),
             str(write("batch.csv", tables.csv_text(table)))]  # fmt: skip
    state = _map_state(table)
    colour = "folder" if len(set(state["folders"])) > 1 else "predicted class"
    skipped = f" {len(result.skipped)} non-image files were left out." if result.skipped else ""
    note = (f"**{result.total} images** with `{result.model}`: {result.total - result.errors} "
            f"embedded, {result.errors} could not be used (see the error column)."
            f"{skipped}")  # fmt: skip
    if head is not None:
        note += f" Classes: the taught head's ({', '.join(head.classes)})."
    note += "".join(f"\n\n- {n}" for n in result.notes)
    return "", note, _rows(table), files, gr.update(value=colour), _figure(state, colour), state


@guarded
def on_colour(colour_by, state):
    if not state:
        return {status(): ""}
    return "", _figure(state, colour_by)


def build(setup_form: SetupForm, head: gr.State) -> None:
    gr.Markdown(
        "Run the setup above on every image of a ZIP: one row per file, with its top-k, "
        "its embedding (in the Parquet download) and a map of which images look alike."
    )
    with gr.Row():
        archive = gr.File(label="ZIP of images", file_types=[".zip"], elem_id="mk-batch-zip")
        use_head = gr.Checkbox(label="Use the taught head's classes (from the Teach tab)",
                               elem_id="mk-batch-use-head")  # fmt: skip
        run = gr.Button("Run the batch", variant="primary", elem_id="mk-batch-run")
    note = gr.Markdown()
    rows = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, max_height=420,
                        column_widths=["24%", "10%", "18%", "11%", "37%"],
                        elem_id="mk-batch-table")  # fmt: skip
    downloads = gr.File(label="Parquet and CSV", file_count="multiple", interactive=False)
    colour = gr.Radio(COLOUR_BY, value=COLOUR_BY[0], label="Colour the map by")
    chart = gr.Plot(show_label=False, elem_id="mk-batch-map")
    state = gr.State(None)
    run.click(on_batch, [archive, use_head, head, *setup_form.inputs],
              [status(), note, rows, downloads, colour, chart, state],
              concurrency_id=MODEL_WORK, api_visibility="private")  # fmt: skip
    colour.input(on_colour, [colour, state], [status(), chart], api_visibility="private")
