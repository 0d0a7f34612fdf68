"""The Teach tab: examples per class (a ZIP with one folder per class, or uploads under a class
name), thumbnails, train with a progress bar, then out-of-fold accuracy beside chance, recall and
precision per class, the confusion matrix, the examples it got wrong and the warnings; predict
with the taught classes; export the head file and a snippet; use an earlier head file again.
Endpoints: /teach (ZIP in; metrics JSON and the head file out), /predict_with_head."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from modelkit.app import figures, runs, teach_figures, teach_state
from modelkit.app.api import endpoint
from modelkit.app.gpu import MAX_SECONDS, for_model, model_seconds, on_gpu
from modelkit.app.guard import MODEL_WORK, api_guarded, guarded, status
from modelkit.app.runs import FormRun, head_in_use
from modelkit.app.setup_form import FILE_TYPES, SetupForm
from modelkit.errors import ConfigError
from modelkit.runtime.embeddings import VIEW_SETS
from modelkit.runtime.settings import RunSettings
from modelkit.teach.head import TrainedHead, as_head
from modelkit.teach.snippet import head_snippet

INTRO = """Teach the model **your** classes: give a few labelled examples per class (any channel
count). The frozen model turns each image into its pooled features, and a logistic-regression
head learns your classes on them. The accuracy shown is cross-validated: every example is scored
by a head that never saw it. Model, weights, tag, scaling and device come from the form above;
the channels follow your examples unless you pick channels there."""


def _file_name(head: TrainedHead) -> str:
    model = re.sub(r"[^A-Za-z0-9_.-]", "-", head.model)[:60]
    return f"head-{model}-{len(head.classes)}classes.safetensors"


def _teach(examples, settings: RunSettings, augment: str, progress=None) -> TrainedHead:
    from modelkit.teach.train import train_head  # scikit-learn: imported when first teaching

    # the model takes the examples' channel count (the form's in_chans is the last image's)
    settings = settings.replace(in_chans=None)
    return train_head(examples.images, examples.labels, settings, augment=augment,
                      image_bytes=examples.image_bytes, names=examples.names,
                      progress=progress)  # fmt: skip


def _examples_view(items: list[dict], warnings=()):
    found = teach_state.counts(items)
    note = ", ".join(f"**{c}** {n}" for c, n in found.items()) or "No examples yet."
    if warnings:
        note += "\n\n" + "\n".join(f"- ⚠️ {w}" for w in warnings)
    choices = list(found)
    return (
        "", items, note, teach_state.thumbnails(items),
        gr.update(choices=choices, value=choices[0] if choices else None),
    )  # fmt: skip


# --- handlers -----------------------------------------------------------------------------------


@guarded
def on_zip(file):
    if not file:
        return {status(): ""}
    items, warnings = teach_state.from_zip(file)
    return _examples_view(items, warnings)


@guarded
def on_add(items, cls, files):
    return _examples_view(teach_state.add(items, cls, files))


@guarded
def on_rename(items, old, new):
    return _examples_view(teach_state.rename(items, old, new))


@guarded
def on_remove(items, cls):
    return _examples_view(teach_state.remove(items, cls))


def _train_settings(items, augment, *form_values, **_) -> RunSettings:
    return FormRun.read(form_values).settings


def _train_views(items, augment, *form_values, **_) -> int:
    """Images x views: what the GPU embeds (the fit itself is a fraction of a second)."""
    return len(items or []) * len(VIEW_SETS.get(augment, ("identity",)))


def _predict_seconds(file, head, top_k, **_) -> int:
    head = head_in_use(head)
    return model_seconds(head.model, len(VIEW_SETS.get(head.setup.get("views"), ("identity",))))


@guarded
@runs.shows_downloads
@on_gpu(**for_model(_train_settings, images=_train_views))
def on_train(items, augment, *form_values, progress=gr.Progress()):  # noqa: B008
    settings = FormRun.read(form_values).settings
    progress(0.0, desc="Reading the examples")
    examples = teach_state.load(items)

    def count(done: int, total: int) -> None:
        progress((done, total), desc="Embedding the examples", unit="images")

    head = _teach(examples, settings, augment, count)
    name = _file_name(head)
    path = runs.EXPORTS.write(name, head.to_bytes())
    wrong = [
        (teach_state.thumbnail(examples.image_bytes[m["index"]], m["name"]),
         f"{m['true']} ► {m['predicted']} ({m['probability']:.0%})")
        for m in head.misclassified[:24]
    ]  # fmt: skip
    return (
        "", teach_figures.summary(head), teach_figures.per_class_rows(head),
        teach_figures.confusion_figure(head.confusion, head.classes),
        gr.update(value=wrong, label=f"Examples it got wrong (true ► predicted): {len(wrong)}"
                  + (" (showing 24)" if len(head.misclassified) > 24 else "")), str(path),
        head_snippet(head.setup, name, "your_image.png"), head,
        f"Using the head just trained ({name}).",
    )  # fmt: skip


@guarded
def on_head_upload(file):
    if not file:
        return {status(): ""}
    head = as_head(file)
    return (
        "", head, f"Using the uploaded head **{Path(file).name}**: "
        f"{', '.join(head.classes)} on `{head.model}`.\n\n" + teach_figures.summary(head),
    )  # fmt: skip


@guarded
@on_gpu(_predict_seconds)
def on_predict(file, head, top_k):
    head, image = head_in_use(head), runs.load_image(file)
    result = head.predict(image, top_k=int(top_k or 5))
    chart = figures.topk_figure(result.labels, result.probabilities,
                                title="Taught classes")  # fmt: skip
    return "", chart, teach_figures.head_note(head, _file_name(head))


# --- API ------------------------------------------------------------------------------------------


@api_guarded
@on_gpu(MAX_SECONDS)
def api_teach(zip_file, model, pretrained, scaling, augment):
    if not zip_file:
        raise ConfigError("Send a ZIP with one folder of images per class.")
    items, _ = teach_state.from_zip(zip_file)
    settings = RunSettings.from_form({"model": model, "pretrained": pretrained,
                                      "scaling": scaling})  # fmt: skip
    head = _teach(teach_state.load(items), settings, augment or "none")
    path = runs.EXPORTS.write(_file_name(head), head.to_bytes())
    return teach_figures.metrics_json(head), str(path)


@api_guarded
@on_gpu(_predict_seconds)
def api_predict_with_head(image, head_file, top_k):
    if not head_file:
        raise ConfigError("Send the head file (.safetensors) that Teach saved.")
    head = as_head(head_file)
    result = head.predict(runs.load_image(image), top_k=int(top_k or 5))
    return {"head": Path(head_file).name, "model": head.model, "classes": head.classes,
            "predictions": runs.top_rows(result)}  # fmt: skip


def _api() -> None:
    with gr.Group(visible=False):
        zip_file, image, head_file = gr.File(), gr.File(), gr.File()
        model = gr.Textbox(label="model", value="efficientnet_lite0")
        pretrained = gr.Checkbox(label="pretrained", value=True)
        scaling = gr.Textbox(label="scaling", value="auto")
        augment = gr.Textbox(label="augment", value="none")
        top_k = gr.Number(label="top_k", value=5)
        result, out_file = gr.JSON(), gr.File()
    endpoint(api_teach, [zip_file, model, pretrained, scaling, augment], [result, out_file],
             api_name="teach", concurrency_id=MODEL_WORK)  # fmt: skip
    endpoint(api_predict_with_head, [image, head_file, top_k], result,
             api_name="predict_with_head", concurrency_id=MODEL_WORK)  # fmt: skip


# --- layout ---------------------------------------------------------------------------------------


def build(form: SetupForm, head: gr.State) -> None:
    """The Teach tab; it fills ``head``, the page's taught head."""
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        with gr.Column():
            zip_file = gr.File(label="Examples as a ZIP (one folder per class)",
                               file_types=[".zip"], elem_id="mk-teach-zip", height=110)  # fmt: skip
        with gr.Column():
            with gr.Row():
                cls = gr.Textbox(label="Class name", scale=2, elem_id="mk-teach-class")
                add = gr.Button("Add images to this class", scale=1)
            files = gr.File(label="Images of this class", file_count="multiple",
                            file_types=FILE_TYPES, height=110)  # fmt: skip
    with gr.Row():
        picked = gr.Dropdown(label="Class", choices=[], scale=2)
        new_name = gr.Textbox(label="New name", scale=2)
        rename = gr.Button("Rename", size="sm", scale=1)
        remove = gr.Button("Remove class", size="sm", scale=1)
    counts = gr.Markdown(elem_id="mk-teach-counts")
    gallery = gr.Gallery(label="Examples per class", columns=8, height=220, object_fit="contain")
    with gr.Row():
        augment = gr.Radio(list(VIEW_SETS), value="none", label="Views (dihedral: 8 flips and "
                           "turns, for overhead and microscopy images)")  # fmt: skip
        train = gr.Button("Train", variant="primary", elem_id="mk-teach-train")
    report = gr.Markdown(elem_id="mk-teach-summary")
    with gr.Row(equal_height=False):
        table = gr.Dataframe(headers=teach_figures.PER_CLASS_HEADERS, interactive=False, scale=1)
        confusion = gr.Plot(show_label=False, elem_id="mk-teach-confusion", scale=2)
    wrong = gr.Gallery(label="Examples it got wrong (true ► predicted)", columns=8, height=200)
    with gr.Accordion("Export the head", open=False):
        head_file = gr.File(label="Head file (.safetensors)", interactive=False)
        snippet = gr.Code(language="python", label="Reproduce its probabilities in Python")
    gr.Markdown("### Predict with the taught classes")
    with gr.Row():
        image = gr.File(label="Image", file_types=FILE_TYPES, elem_id="mk-teach-image", height=110)
        earlier = gr.File(label="Or use an earlier head file", file_types=[".safetensors"],
                          elem_id="mk-teach-head-upload", height=110)  # fmt: skip
    head_note = gr.Markdown(elem_id="mk-teach-head-note")
    predict = gr.Button("Predict with the taught classes", elem_id="mk-teach-predict")
    chart = gr.Plot(show_label=False, elem_id="mk-teach-chart")
    answer = gr.Markdown()
    items = gr.State([])

    private = dict(api_visibility="private")
    view = [status(), items, counts, gallery, picked]
    zip_file.change(on_zip, zip_file, view, **private)
    add.click(on_add, [items, cls, files], view, **private)
    rename.click(on_rename, [items, picked, new_name], view, **private)
    remove.click(on_remove, [items, picked], view, **private)
    model_work = dict(concurrency_id=MODEL_WORK, **private)
    taught = train.click(on_train, [items, augment, *form.inputs],
                         [status(), report, table, confusion, wrong, head_file, snippet,
                          head, head_note], **model_work)  # fmt: skip
    form.refresh_card(taught)
    earlier.change(on_head_upload, earlier, [status(), head, head_note], **private)
    predict.click(on_predict, [image, head, form.top_k], [status(), chart, answer],
                  **model_work)  # fmt: skip
    _api()
