"""The task "Teach it my classes": examples per class (a ZIP with one folder per class, the
example ZIP, or uploads under a class name), one button, then the answer in one sentence (right
on so many of every 100 examples it had not seen, beside guessing) with its warnings, the head
file and its code to keep; under "Details" the numbers (accuracy per class, the confusion
matrix, the examples it got wrong, the statistics); then try it on an image. The taught head is
the page's one head (Batch and "Why this answer?" use it). Endpoints: /teach (ZIP in; metrics
JSON and the head file out), /predict_with_head."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from modelkit.app import figures, label_page, runs, teach_figures, teach_state, words
from modelkit.app.api import endpoint
from modelkit.app.gpu import MAX_SECONDS, for_model, model_seconds, on_gpu
from modelkit.app.guard import MODEL_WORK, api_guarded, clearing, guarded, status
from modelkit.app.runs import FormRun, head_in_use
from modelkit.app.setup_form import ASSETS, FILE_TYPES, SetupForm
from modelkit.errors import ConfigError
from modelkit.runtime.embeddings import VIEW_SETS
from modelkit.runtime.settings import RunSettings
from modelkit.teach.head import TrainedHead, as_head
from modelkit.teach.snippet import head_snippet

INTRO = """Give a few examples of each of **your** classes (any number of bands): the model
learns them in seconds. Its score is honest: every example is judged by a version that never saw
it."""
EXAMPLE_ZIP = ASSETS / "teach_textures.zip"
SHOWN_WRONG = 24
RESULTS = 6  # answer, files, numbers, table, confusion, wrong: on_train's outputs


def _file_name(head: TrainedHead) -> str:
    model = re.sub(r"[^A-Za-z0-9_.-]", "-", head.model)[:60]
    return f"head-{model}-{len(head.classes)}classes.safetensors"


def _teach(examples, settings: RunSettings, augment: str, progress=None,
           curve: bool = False) -> TrainedHead:  # fmt: skip
    from modelkit.teach.train import train_head  # scikit-learn: imported when first teaching

    # the model takes the examples' channel count (the form's in_chans is the last image's);
    # channels picked for another image are used only where the examples have them
    count = examples.images[0].num_channels
    if settings.channels and max(settings.channels) >= count:
        settings = settings.replace(channels=None)
    settings = settings.replace(in_chans=None)
    return train_head(examples.images, examples.labels, settings, augment=augment,
                      image_bytes=examples.image_bytes, names=examples.names,
                      progress=progress, learning_curve=curve)  # fmt: skip


def _examples_view(items: list[dict], warnings=()):
    found = teach_state.counts(items)
    note = ", ".join(f"**{c}** {n}" for c, n in found.items()) or (
        "No examples yet: upload a ZIP with one folder per class, or use the example."
    )
    single = [c for c, n in found.items() if n < 2]
    if single:
        warnings = [*warnings, words.single_example_warning(single)]
    if warnings:
        note += "\n\n" + "\n".join(f"- ⚠️ {w}" for w in warnings)
    choices = list(found)
    return (
        "", items, note, teach_state.thumbnails(items),
        gr.update(choices=choices, value=choices[0] if choices else None),
        gr.update(interactive=not single),  # Train waits while a class has one example
    )  # fmt: skip


# --- handlers -----------------------------------------------------------------------------------


@guarded
def on_zip(file):
    """New examples: their classes, and the results of the old ones cleared."""
    if not file:
        return {status(): ""}
    items, warnings = teach_state.from_zip(file)
    return (*_examples_view(items, warnings), *[None] * RESULTS, *label_page.issues_cleared())


@guarded
def on_add(items, cls, files):
    return _examples_view(teach_state.add(items, cls, files))


@guarded
def on_rename(items, old, new):
    return _examples_view(teach_state.rename(items, old, new))


@guarded
def on_remove(items, cls):
    return _examples_view(teach_state.remove(items, cls))


@guarded
def on_refresh(items):
    """The examples' view after labelling changed them (moved, removed or given a class)."""
    return _examples_view(items or [])


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

    head = _teach(examples, settings, augment, count, curve=True)
    name = _file_name(head)
    files = [str(runs.EXPORTS.write(name, head.to_bytes())),
             str(runs.EXPORTS.write(name.replace(".safetensors", "-predict.py"),
                                    head_snippet(head.setup, name, "your_image.png")))]  # fmt: skip
    wrong = [
        (teach_state.thumbnail(examples.image_bytes[m["index"]], m["name"]),
         f"{m['true']} ► {m['predicted']} ({m['probability']:.0%})")
        for m in head.misclassified[:SHOWN_WRONG]
    ]  # fmt: skip
    missed = len(head.misclassified)  # all of them, not only those shown
    shown = f" (showing {SHOWN_WRONG})" if missed > SHOWN_WRONG else ""
    return (
        "", _answer(head), files, teach_figures.summary(head),
        teach_figures.per_class_rows(head),
        teach_figures.confusion_figure(head.confusion, head.classes),
        gr.update(value=wrong, label=f"Examples it got wrong (true ► predicted): {missed}{shown}"),
        head, f"Using the classes just taught ({', '.join(head.classes)}).",
        *label_page.issues_values(head, examples.image_bytes, items),
    )  # fmt: skip


def _answer(head: TrainedHead) -> str:
    """The sentence, and the warnings that matter, in a list under it."""
    warnings = "".join(f"\n- ⚠ {w}" for w in head.warnings)
    curve = words.curve_sentence(head.learning_curve)
    return (words.teach_sentence(head) + (f"\n\n{curve}" if curve else "")
            + ("\n" + warnings if warnings else ""))  # fmt: skip


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


def build(form: SetupForm, head: gr.State) -> list:
    """The task's page; it fills ``head``, the page's taught head. Returns the events that set
    the head (other tasks start using it then)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            gr.Markdown(INTRO)
            zip_file = gr.File(label="Examples as a ZIP (one folder per class)", height=90,
                               file_types=[".zip"], elem_id="mk-teach-zip")  # fmt: skip
            gr.Examples([[str(EXAMPLE_ZIP)]], inputs=[zip_file],
                        label="Example: textures (brick, grass, gravel; 8 each)")  # fmt: skip
            counts = gr.Markdown(elem_id="mk-teach-counts")
        with gr.Column(scale=6):
            train = gr.Button("Teach it these classes", variant="primary",
                              elem_id="mk-teach-train")  # fmt: skip
            answer = gr.Markdown(elem_id="mk-teach-answer")
            keep = gr.File(label="Keep it: the taught classes (.safetensors) and Python code",
                           file_count="multiple", interactive=False,
                           elem_id="mk-teach-keep")  # fmt: skip
    gallery = gr.Gallery(label="Examples per class", columns=8, height=180, object_fit="contain")
    issues = label_page.build_issues()
    changed = gr.Markdown(elem_id="mk-teach-changed")
    with gr.Accordion("Add images by hand, rename or remove a class", open=False):
        with gr.Row():
            cls = gr.Textbox(label="Class name", scale=2, elem_id="mk-teach-class")
            files = gr.File(label="Images of this class", file_count="multiple", scale=3,
                            file_types=FILE_TYPES, height=90)  # fmt: skip
            add = gr.Button("Add them to this class", scale=1)
        with gr.Row():
            picked = gr.Dropdown(label="Class", choices=[], scale=2)
            new_name = gr.Textbox(label="New name", scale=2)
            rename = gr.Button("Rename", size="sm", scale=1)
            remove = gr.Button("Remove class", size="sm", scale=1)
        augment = gr.Radio([("none", "none"), ("flips", "flips"), ("flips and turns", "dihedral")],
                           value="none", label="Also learn from flipped and turned copies "
                           "(for overhead and microscope images)")  # fmt: skip
    items = gr.State([])
    model_work = dict(concurrency_id=MODEL_WORK, api_visibility="private")
    given = label_page.build_next(items, head, form.inputs, model_work)
    with gr.Accordion("Details: the numbers", open=False, elem_id="mk-teach-details"):
        report = gr.Markdown(elem_id="mk-teach-summary")
        with gr.Row(equal_height=False):
            table = gr.Dataframe(headers=teach_figures.PER_CLASS_HEADERS, interactive=False,
                                 scale=1)  # fmt: skip
            confusion = gr.Plot(show_label=False, elem_id="mk-teach-confusion", scale=2)
        wrong = gr.Gallery(label="Examples it got wrong (true ► predicted)", columns=8,
                           height=200, elem_id="mk-teach-wrong")  # fmt: skip
    gr.Markdown("### Try it on an image")
    with gr.Row():
        image = gr.File(label="Image", file_types=FILE_TYPES, elem_id="mk-teach-image",
                        height=120)  # fmt: skip
        earlier = gr.File(label="Or use classes taught earlier (.safetensors)", height=120,
                          file_types=[".safetensors"], elem_id="mk-teach-head-upload")  # fmt: skip
    head_note = gr.Markdown(elem_id="mk-teach-head-note")
    predict = gr.Button("Which of my classes is it?", elem_id="mk-teach-predict")
    chart = gr.Plot(show_label=False, elem_id="mk-teach-chart")
    result_note = gr.Markdown()

    private = dict(api_visibility="private")
    view = [status(), items, counts, gallery, picked, train]
    results = [answer, keep, report, table, confusion, wrong]
    # a ZIP that cannot be used leaves no old examples (nor results) behind
    fresh = view + results + issues.outputs
    zip_file.change(clearing(on_zip, fresh[1:]), zip_file, fresh, **private)
    add.click(on_add, [items, cls, files], view, **private)
    rename.click(on_rename, [items, picked, new_name], view, **private)
    remove.click(on_remove, [items, picked], view, **private)
    outputs = [status(), *results, head, head_note, *issues.outputs]
    taught = train.click(clearing(on_train, results + issues.outputs[1:3]),
                         [items, augment, *form.inputs], outputs, **model_work)  # fmt: skip
    for event in label_page.wire_issues(issues, items, changed) + given:
        event.success(on_refresh, items, view, **private)
    form.refresh_card(taught)
    uploaded = earlier.change(on_head_upload, earlier, [status(), head, head_note], **private)
    predict.click(clearing(on_predict, [chart, result_note]), [image, head, form.top_k],
                  [status(), chart, result_note], **model_work)  # fmt: skip
    _api()
    return [taught, uploaded]
