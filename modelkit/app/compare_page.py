"""The task "Compare models": 2 to 4 models (or setups of one model) on the image of the first
task, side by side: one sentence on whether they agree, a table, their top-k and feature maps;
and the /compare endpoint (the same comparison as JSON)."""

from __future__ import annotations

import gradio as gr

from modelkit.app import batch_figures, compare, image_input, runs
from modelkit.app.api import endpoint
from modelkit.app.gpu import MAX_SECONDS, on_gpu
from modelkit.app.guard import MODEL_WORK, api_guarded, clearing, guarded, status
from modelkit.app.runs import FormRun
from modelkit.app.setup_form import SetupForm
from modelkit.models.registry import list_models
from modelkit.runtime.settings import RunSettings

HEADERS = ["model", "top-1", "parameters (M)", "forward ms", "total ms"]
DEFAULT = ["efficientnet_lite0", "efficientnet_lite1"]  # both work offline


def _run(file, entries, form_values):
    image = runs.load_image(file)
    base = FormRun.read(form_values)
    base = FormRun(base.settings.follow(image), base.top_k)  # the models take the image's bands
    return compare.compare(compare.parse_entries(entries, base), image, base)


@guarded
@runs.shows_downloads
@on_gpu(MAX_SECONDS)
def on_compare(file, entries, *form_values, progress=gr.Progress()):  # noqa: B008
    summary, maps = _run(file, entries, form_values)
    shared = set(summary["shared_labels"])
    bars = [{"title": m["title"], "labels": [r["label"] for r in m["predictions"]],
             "probabilities": [r["probability"] for r in m["predictions"]]}
            for m in summary["models"]]  # fmt: skip
    return (
        "", compare.agreement_text(summary), compare.table_rows(summary),
        batch_figures.topk_side_by_side(bars, shared),
        batch_figures.stride_maps(maps, summary["strides"]),
    )  # fmt: skip


@api_guarded
@on_gpu(MAX_SECONDS)
def api_compare(file, models, pretrained, top_k, scaling, channels):
    """JSON: models (title, setup, predictions, params, forward_ms, total_ms, strides),
    shared_labels, agreement, strides."""
    image = runs.load_image(file)
    settings = RunSettings.from_form({"pretrained": pretrained, "scaling": scaling,
                                      "channels": channels})  # fmt: skip
    base = FormRun(settings, FormRun.read_top_k(top_k))
    return compare.compare(compare.parse_entries(models, base), image, base)[0]


def build(setup_form: SetupForm) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            image_input.mirror(setup_form.upload)
        with gr.Column(scale=6):
            entries = gr.Dropdown(list_models(), value=DEFAULT, multiselect=True, max_choices=4,
                                  allow_custom_value=True, label="2 to 4 models",
                                  info="type to search; a setup of one model: name key=value, "
                                  "e.g. efficientnet_lite0 pretrained=no",
                                  elem_id="mk-compare-models")  # fmt: skip
            run = gr.Button("Compare them", variant="primary", elem_id="mk-compare-run")
            verdict = gr.Markdown(elem_id="mk-compare-answer")
    rows = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="mk-compare-table")
    bars = gr.Plot(show_label=False, elem_id="mk-compare-topk")
    maps = gr.Plot(show_label=False, elem_id="mk-compare-maps")
    outputs = [status(), verdict, rows, bars, maps]
    run.click(clearing(on_compare, outputs[1:]), [setup_form.upload, entries, *setup_form.inputs],
              outputs, concurrency_id=MODEL_WORK, api_visibility="private")  # fmt: skip
    # /compare: image, models ("a; b pretrained=no"), pretrained, top_k, scaling, channels
    with gr.Group(visible=False):
        api_inputs = [
            gr.File(label="image"), gr.Textbox(label="models", value="; ".join(DEFAULT)),
            gr.Checkbox(label="pretrained", value=True), gr.Number(label="top_k", value=5),
            gr.Textbox(label="scaling", value="auto"),
            gr.Textbox(label="channels", info="e.g. 3, 2, 1; empty: all"),
        ]  # fmt: skip
        result = gr.JSON()
    endpoint(api_compare, api_inputs, result, api_name="compare", concurrency_id=MODEL_WORK)
