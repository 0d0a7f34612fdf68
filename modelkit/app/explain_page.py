"""The task "Why this answer?": which bands and which regions drive the answer for the image of
the first task, said in one sentence, shown as bars and a map; for the model's classes or the
ones taught. And the named endpoint /explain."""

from __future__ import annotations

import gradio as gr
import numpy as np

from modelkit.app import image_input, runs, words
from modelkit.app.explain_figures import band_figure, map_figure, shrink
from modelkit.app.gpu import MAX_SECONDS, for_model, model_seconds, on_gpu
from modelkit.app.guard import MODEL_WORK, api_guarded, clearing, guarded, status
from modelkit.app.runs import FormRun, head_in_use
from modelkit.app.setup_form import SetupForm
from modelkit.errors import ConfigError
from modelkit.explanations.bands import BASELINES
from modelkit.explanations.bandsets import BAND_SETS, band_labels
from modelkit.images import display
from modelkit.runtime.engine import predict
from modelkit.runtime.settings import RunSettings

METHODS = [
    ("Band importance (each band replaced)", "bands"),
    ("Band importance (Shapley, 8 orders)", "shapley"),
    ("Grad-CAM (where it looks)", "gradcam"),
    ("Integrated gradients (pixels and bands)", "integrated_gradients"),
]
FROM_FILE = "names from the file"
# what a band's bar measures, per method; and the method's name over the map
AXES = {
    "bands": "score drop without the band",
    "shapley": "score drop (Shapley average)",
    "gradcam": "estimated score drop",
    "integrated_gradients": "share of the score change",
}
TITLES = {"gradcam": "Grad-CAM", "integrated_gradients": "Integrated gradients"}
SHAPLEY_SAMPLES = 8


def _steps(steps) -> int:
    """Integrated gradients' steps from a form or API value (empty: 32)."""
    if steps in (None, ""):
        return 32
    try:
        whole = float(steps).is_integer() and 2 <= float(steps) <= 1024
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ConfigError(f"Steps {steps!r} must be a whole number from 2 to 1024, e.g. 32.")
    return int(float(steps))


def run_explain(settings, image, method: str, target, baseline: str, head=None, steps=32):
    """explain() with the form's settings, or with a taught head (whose settings win: explain
    names in its notes any setting of the form it did not use); 'shapley' is band importance by
    Shapley sampling."""
    from modelkit.explanations.api import explain

    samples = SHAPLEY_SAMPLES if method == "shapley" else None
    method = "bands" if method == "shapley" else method
    if method not in {m for _, m in METHODS}:
        raise ConfigError(f"Method {method!r} is not known; pick one from the list.")
    target = None if target in (None, "") else int(target)
    return explain(image, settings, head=head, method=method, target=target,
                   baseline=baseline or "mean", shapley_samples=samples,
                   steps=_steps(steps))  # fmt: skip


def _targets(settings, image, head) -> list[tuple[str, str]]:
    """The target choices: the model's top-k, or every taught class (most likely first)."""
    if head is not None:
        result = head.predict(image, top_k=len(head.classes), device=settings.device,
                              precision=settings.precision)  # fmt: skip
        pairs = zip(result.labels, result.probabilities, result.indices, strict=True)
    else:
        rows = runs.top_rows(predict(image, settings))
        pairs = ((r["label"], r["probability"], r["index"]) for r in rows)
    return [(f"{label} ({p:.1%})", str(i)) for label, p, i in pairs]


def _labels(out, preset: str | None) -> list[str]:
    count = len(out.band_importance)
    if not preset or preset == FROM_FILE:
        return list(out.band_names)
    return band_labels(None, count, preset)


# the tab's own inputs after the setup form's, in on_explain's order
TAB_INPUTS = ("method", "target", "baseline", "steps", "preset", "opacity", "use_head", "head")


def passes(method, steps) -> int:
    """Forward (+ backward) passes a method makes, for the declared GPU time: band ablation one
    per band (13 for Sentinel-2) + 1, Grad-CAM a prediction + one with gradients, integrated
    gradients two per step (forward and backward) + the two ends."""
    if method == "integrated_gradients":
        return 2 * _steps(steps) + 2
    return {"gradcam": 3, "shapley": SHAPLEY_SAMPLES * 14}.get(method, 15)


def _tab(values) -> dict:
    return dict(zip(TAB_INPUTS, values[-len(TAB_INPUTS) :], strict=True))


def _explain_settings(file, *values, **_):
    return FormRun.read(values[: -len(TAB_INPUTS)]).settings


def _explain_passes(file, *values, **_) -> int:
    tab = _tab(values)
    return passes(tab["method"], tab["steps"])


def _api_explain_seconds(file, model, *rest, **_) -> int:
    method, _target, _baseline, *steps = rest[5:]
    return model_seconds(str(model), passes(method, (steps or [32])[0])) if model else MAX_SECONDS


@guarded
@runs.shows_downloads
@on_gpu(**for_model(_explain_settings, images=_explain_passes))
def on_explain(file, *values, progress=gr.Progress()):  # noqa: B008
    *form_values, method, target, baseline, steps, preset, opacity, use_head, head = values
    progress(0.05, desc="Reading the image")
    image = runs.load_image(file)
    settings = FormRun.read(form_values).settings.follow(image)
    head = head_in_use(head) if use_head else None
    progress(0.15, desc=runs.model_step(head.settings if head else settings))
    choices = _targets(settings, image, head)
    if target not in [c for _, c in choices]:
        target = choices[0][1]
    progress(0.35, desc="Explaining (band copies or gradients)")
    out = run_explain(settings, image, method, target, baseline, head, steps)
    progress(0.9, desc="Drawing the charts")
    title = f"Band importance for '{out.target_label}'"
    shown = None
    if out.heatmap is not None:  # kept small, so the opacity redraws without explaining again
        back, heat, step = shrink(display.composite(image), out.heatmap)
        name = TITLES.get(method, method)
        shown = {"rgb": back, "heat": heat, "step": step, "title": f"{name}: {out.target_label}"}
    notes = "\n".join(f"- {n}" for n in out.notes)
    labels = _labels(out, preset)
    return (
        "",
        words.explain_sentence(method, out.target_label, out.band_importance, labels),
        gr.update(choices=choices, value=target),
        band_figure(
            out.band_importance,
            labels,
            title=title,
            axis=AXES.get(method, AXES["bands"]),
        ),
        _map(shown, opacity),
        notes + ("\n- (from the result cache)" if out.result_cache_hit else ""),
        shown,
    )


def _map(shown: dict | None, opacity):
    if shown is None:
        return map_figure(None, None)
    return map_figure(shown["rgb"], shown["heat"], opacity=float(opacity), title=shown["title"],
                      step=shown["step"])  # fmt: skip


@guarded
def on_opacity(opacity, shown):
    """The last map again with another opacity (no model work)."""
    if shown is None:  # nothing explained yet
        return gr.update(), gr.update()
    return "", _map(shown, opacity)


def build(form: SetupForm, head: gr.State, taught: list) -> None:
    """The task's page, wired to the model settings, the first task's image and the page's
    taught head (``taught``: the events that set it; then its classes are explained)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            image_input.mirror(form.upload)
        with gr.Column(scale=6):
            method = gr.Dropdown(METHODS, value="bands", label="What to look at",
                                 elem_id="mk-explain-method")  # fmt: skip
            use_head = gr.Checkbox(label="For the classes I taught", elem_id="mk-explain-use-head")
            button = gr.Button("Why this answer?", variant="primary", elem_id="mk-explain")
            answer = gr.Markdown(elem_id="mk-explain-answer")
    with gr.Row():
        bands = gr.Plot(show_label=False, elem_id="mk-explain-bands")
        heat = gr.Plot(show_label=False, elem_id="mk-explain-map")
    with gr.Accordion("More choices", open=False):
        with gr.Row():
            target = gr.Dropdown([], label="Which answer (empty: the top one)",
                                 elem_id="mk-explain-target")  # fmt: skip
            baseline = gr.Dropdown([(f"{k}: {v}", k) for k, v in BASELINES.items()],
                                   value="mean", label="What replaces a band",
                                   elem_id="mk-explain-baseline")  # fmt: skip
            preset = gr.Dropdown([FROM_FILE, *BAND_SETS], value=FROM_FILE, label="Band names",
                                 elem_id="mk-explain-preset")  # fmt: skip
        with gr.Row():
            steps = gr.Slider(8, 256, value=32, step=8, label="Steps (integrated gradients)",
                              info="more steps: a smaller completeness error, more time",
                              elem_id="mk-explain-steps")  # fmt: skip
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Map opacity",
                                elem_id="mk-explain-opacity")  # fmt: skip
    with gr.Accordion("Details", open=False):
        notes = gr.Markdown(elem_id="mk-explain-notes")
    shown = gr.State(None)  # the last map, shrunk (a few hundred pixels a side)
    inputs = [form.upload, *form.inputs, method, target, baseline, steps, preset, opacity,
              use_head, head]  # fmt: skip
    outputs = [status(), answer, target, bands, heat, notes, shown]
    explained = button.click(clearing(on_explain, [answer, bands, heat, notes, shown]), inputs,
                             outputs, concurrency_id=MODEL_WORK,
                             api_visibility="private")  # fmt: skip
    form.refresh_card(explained)
    opacity.input(on_opacity, [opacity, shown], [status(), heat], api_visibility="private",
                  trigger_mode="always_last", show_progress="hidden")  # fmt: skip
    for event in taught:  # classes were just taught: explain those
        event.success(lambda: True, None, use_head, api_visibility="private")


@api_guarded
@on_gpu(_api_explain_seconds)
def api_explain(file, model, pretrained, in_chans, channels, num_classes, scaling, method,
                target, baseline, steps=32):  # fmt: skip
    settings = RunSettings.from_form({"model": model, "pretrained": pretrained,
                                      "in_chans": in_chans, "channels": channels,
                                      "num_classes": num_classes, "scaling": scaling})  # fmt: skip
    image = runs.load_image(file)
    out = run_explain(
        settings, image, str(method or "bands"), target, str(baseline or "mean"), steps=steps
    )
    heat = None
    if out.heatmap is not None:
        import io

        buffer = io.BytesIO()
        np.save(buffer, out.heatmap, allow_pickle=False)
        heat = str(runs.EXPORTS.write("explanation_heatmap.npy", buffer.getvalue()))
    result = {
        "model": settings.name, "method": out.method, "target_index": out.target_index,
        "target_label": out.target_label, "score": out.score, "layer": out.layer,
        "bands": [{"band": n, "importance": float(v)}
                  for n, v in zip(out.band_names, out.band_importance, strict=True)],
        "notes": out.notes, "checks": out.checks,
    }  # fmt: skip
    return result, heat


def build_api() -> None:
    """The hidden inputs and the /explain endpoint (inside the page's Blocks)."""
    with gr.Group(visible=False):
        fields = [gr.File(label="image"), gr.Textbox(label="model", value="efficientnet_lite0"),
                  gr.Checkbox(label="pretrained", value=True), gr.Number(label="in_chans"),
                  gr.Textbox(label="channels"), gr.Number(label="num_classes"),
                  gr.Textbox(label="scaling", value="auto"),
                  gr.Textbox(label="method", value="bands"), gr.Textbox(label="target"),
                  gr.Textbox(label="baseline", value="mean"),
                  gr.Number(label="steps", value=32, precision=0)]  # fmt: skip
        result, heat = gr.JSON(), gr.File()
    gr.Button(visible=False).click(api_explain, fields, [result, heat], api_name="explain",
                                   concurrency_id=MODEL_WORK)  # fmt: skip
