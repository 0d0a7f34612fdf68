"""The first task, "What is in this image?": the image on the left; on the right one button, the
answer in one sentence (with a caution where the model's labels mean little, and the next step
one click away), the top-k chart; under "Details" what its layers see (feature maps of every
level) and what to take away (snippet, CSV/JSON, NPZ, adapted weights)."""

from __future__ import annotations

import gradio as gr

from modelkit.app import exports, figures, form, image_input, runs, words
from modelkit.app.gpu import for_model, on_gpu
from modelkit.app.guard import MODEL_WORK, clearing, guarded, status
from modelkit.app.runs import FormRun
from modelkit.app.setup_form import SetupForm
from modelkit.app.snippet import make_snippet
from modelkit.errors import ConfigError
from modelkit.images.limits import ImageArray
from modelkit.models.registry import get_pretrained_cfg
from modelkit.runtime.engine import features, predict
from modelkit.runtime.settings import RunSettings


def _level_view(settings: RunSettings, image: ImageArray, level: dict):
    """Level line, channel grid, PCA and mean-over-input figures of one feature level."""
    fmap = level["array"]
    fmap = fmap[0] if fmap.ndim == 4 else fmap
    config = get_pretrained_cfg(settings.name).data_config()
    background = figures.input_view(image, config)
    name = f"level {level['index']}"
    return (
        form.level_summary(level, fmap.shape),
        figures.channel_grid_figure(fmap, title=f"Most active channels, {name}"),
        figures.pca_figure(fmap, title=f"PCA of {name}"),
        figures.mean_overlay_figure(fmap, background, title=f"Mean activation, {name}"),
    )


def _downloads(run: FormRun, rows: list[dict] | None, levels: list[dict]) -> list[str]:
    arrays = {f"level_{lv['index']}": lv["array"] for lv in levels}
    write = runs.EXPORTS.write
    files = [str(write("feature_maps.npz", exports.features_npz(arrays)))]
    if rows is None:  # no classifier: nothing was predicted
        return files
    return [
        str(write("predictions.csv", exports.predictions_csv(rows))),
        str(write("predictions.json", exports.predictions_json(rows, run.to_dict()))),
        *files,
    ]


NO_CLASSIFIER = (
    "These weights have no classes of their own (a feature extractor, such as SSL4EO's "
    "satellite backbones): there is nothing to name. Teach it your classes, or look at what its "
    "layers see under *Details*."
)


def _has_classifier(settings: RunSettings) -> bool:
    """False for weights published without a head (num_classes 0) when none is asked for."""
    if settings.num_classes is not None:
        return settings.num_classes > 0  # 0 asked for: the engine says so in words
    return bool(get_pretrained_cfg(settings.name).num_classes) or not settings.pretrained


def _run_settings(file, *form_values, progress=None) -> RunSettings:
    return FormRun.read(form_values).settings


def _level_settings(level, last) -> RunSettings:
    return FormRun.from_dict(last["run"]).settings


@guarded
@runs.shows_downloads  # weights not on disk yet: their download shows in the progress bar
@on_gpu(**for_model(_run_settings, passes=2))
def on_run(file, *form_values, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
    progress(0.05, desc="Reading the image")
    image = runs.load_image(file)
    run = FormRun.read(form_values)
    settings = run.settings.follow(image)  # the model takes the image's channels
    progress(0.15, desc=runs.model_step(settings))
    result = predict(image, settings, top_k=run.top_k) if _has_classifier(settings) else None
    progress(0.6, desc="Computing the feature maps")
    maps = features(image, settings, out_indices=run.out_indices)
    levels = list(maps.levels)
    progress(0.8, desc="Drawing the charts")
    rows, chart, caution = None, None, ""
    answer = NO_CLASSIFIER
    note = form.prediction_note(False, 0, maps.adaptations)
    if result is not None:
        rows = runs.top_rows(result)
        chart = figures.topk_figure([r["label"] for r in rows], [r["probability"] for r in rows])
        note = form.prediction_note(result.head_is_random, len(result.logits), result.adaptations)
        answer = words.prediction_sentence(result.labels, result.probabilities)
        if result.head_is_random:
            answer = ("This model's classes are new and untrained: its answers mean nothing yet. "
                      "Teach it your classes.")  # fmt: skip
        caution = words.caution(image, knows_photos=not result.head_is_random)
    choices = [(f"level {lv['index']}", lv["index"]) for lv in levels]
    return (
        "",
        answer + (f"\n\n{caution}" if caution else ""),
        gr.update(visible=bool(caution) or result is None or result.head_is_random),
        chart,
        note,
        gr.update(choices=choices, value=levels[0]["index"]),
        *_level_view(settings, image, levels[0]),
        make_snippet(FormRun(settings, run.top_k, run.out_indices), image.filename),
        _downloads(run, rows, levels),
        {"file": file, "run": FormRun(settings, run.top_k, run.out_indices).to_dict()},
    )


# No GPU call: the weights of the model the run used are read from the model cache, on the CPU
# (on ZeroGPU the main process holds that model, built there by on_run's preparation).
@guarded
def on_weights(last):
    if not last:
        raise ConfigError("Run a model first; then its adapted weights can be downloaded.")
    settings = FormRun.from_dict(last["run"]).settings
    model = runs.cached_model(settings)
    meta = {"model": settings.name, "in_chans": model.data_config.in_chans}
    data = exports.weights_safetensors(model, meta)
    return "", str(runs.EXPORTS.write(f"{settings.model}-adapted.safetensors", data))


@guarded
def on_level(level, last):
    if not last or level is None:
        return {status(): ""}
    return _show_level(level, last)


@on_gpu(**for_model(_level_settings))
def _show_level(level, last):
    settings = _level_settings(level, last)
    image = runs.load_image(last["file"])
    levels = features(image, settings, out_indices=(int(level),)).levels
    return "", *_level_view(settings, image, levels[0])


def build(demo: gr.Blocks, setup_form: SetupForm, tabs: gr.Tabs, teach_tab: str,
          map_tab: str) -> gr.State:  # fmt: skip
    """The image, the button and the results; returns the state that holds the last run.
    ``tabs``, ``teach_tab`` and ``map_tab``: where the next step after a caution leads."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            image_input.build(demo, setup_form)
        with gr.Column(scale=6):
            run = gr.Button("What is in this image?", variant="primary", elem_id="mk-run")
            answer = gr.Markdown(elem_id="mk-answer")
            with gr.Row(visible=False) as next_step:
                teach = gr.Button("Teach it my classes", size="sm", elem_id="mk-next-teach")
                scene = gr.Button("Map my scene", size="sm", elem_id="mk-next-map")
            chart = gr.Plot(show_label=False, elem_id="mk-chart")
    with gr.Accordion("Details: what was adapted, what its layers see, what to take away",
                      open=False, elem_id="mk-details"):  # fmt: skip
        pred_note = gr.Markdown()
        with gr.Tabs():
            with gr.Tab("What its layers see", elem_id="mk-features-tab"):
                level = gr.Radio(label="Level", choices=[])
                level_info = gr.Markdown()
                grid = gr.Plot(show_label=False, elem_id="mk-grid")
                with gr.Row():
                    pca = gr.Plot(show_label=False)
                    overlay = gr.Plot(show_label=False)
            with gr.Tab("Take it away"):
                snippet = gr.Code(language="python", label="Reproduce this in Python", lines=12)
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False)
                weights_button = gr.Button("Prepare the adapted weights (safetensors)", size="sm")
                weights_file = gr.File(label="Adapted weights", interactive=False)
    last_run = gr.State(None)

    model_work = dict(concurrency_id=MODEL_WORK, api_visibility="private")
    level_outputs = [level_info, grid, pca, overlay]
    outputs = [status(), answer, next_step, chart, pred_note, level, *level_outputs, snippet,
               downloads, last_run]  # fmt: skip
    ran = run.click(clearing(on_run, outputs[1:]), [setup_form.upload, *setup_form.inputs],
                    outputs, **model_work)  # fmt: skip
    setup_form.refresh_card(ran)
    teach.click(lambda: gr.Tabs(selected=teach_tab), None, tabs, api_visibility="private")
    scene.click(lambda: gr.Tabs(selected=map_tab), None, tabs, api_visibility="private")
    level.input(on_level, [level, last_run], [status(), *level_outputs], **model_work)
    weights_button.click(on_weights, last_run, [status(), weights_file], **model_work)
    return last_run
