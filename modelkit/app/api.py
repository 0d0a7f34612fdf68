"""The named API endpoints for gradio_client and HTTP: JSON in, JSON out, plain types only.

/search_models (query, pretrained_only, on_disk, family, sort, source), /model_info, /predict,
/features. Each runs through the queue (the app sets ``api_open=False``) and answers a user's
mistake with its message, never a traceback. /predict and /features report a download of
weights not on disk yet as progress (gradio_client: ``job.status().progress_data``)."""

from __future__ import annotations

import gradio as gr

from modelkit.app import exports, figures, form, runs
from modelkit.app.gpu import for_model, on_gpu
from modelkit.app.guard import MODEL_WORK, api_guarded
from modelkit.app.runs import FORM_FIELDS, FormRun
from modelkit.app.setup_form import DEFAULT_MODEL
from modelkit.errors import ConfigError
from modelkit.models.info import model_info
from modelkit.models.registry import list_sources
from modelkit.runtime.engine import features, predict
from modelkit.runtime.settings import RunSettings


@api_guarded
def api_search(query, pretrained_only, on_disk, family, sort, source=""):
    """``source`` ("", "torchvision", "efficientnet_lite", "timm", ...) comes last, so callers
    that pass the first five still work."""
    source = str(source or "").strip()
    known = list_sources()
    if source and source not in known:
        raise ConfigError(
            f"Unknown source {source!r}; use one of {', '.join(known)}, or leave it empty for all."
        )
    return form.search_models(
        query, bool(pretrained_only), bool(on_disk), family, sort or "name", source
    )


@api_guarded
def api_model_info(name):
    return model_info(str(name).strip())


# the model endpoints' inputs after the image, in the order gradio_client callers pass them
API_INPUTS = {
    "model": lambda: gr.Textbox(label="model", value=DEFAULT_MODEL),
    "pretrained": lambda: gr.Checkbox(label="pretrained", value=True),
    "in_chans": lambda: gr.Number(label="in_chans"),
    "channels": lambda: gr.Textbox(label="channels", info="e.g. 3, 2, 1; empty: all"),
    "num_classes": lambda: gr.Number(label="num_classes"),
    "out_indices": lambda: gr.Textbox(label="out_indices", info="e.g. 1, 3; empty: all"),
    "top_k": lambda: gr.Number(label="top_k", value=5),
    "scaling": lambda: gr.Textbox(label="scaling", value="auto"),
}
API_FIELDS = tuple(API_INPUTS)


def _api_run(values) -> FormRun:
    given = dict(zip(API_FIELDS, values, strict=True))
    return FormRun.read([given.get(name) for name in FORM_FIELDS])


def _model_settings(file, *form_values) -> RunSettings:
    return _api_run(form_values).settings


@api_guarded
@runs.shows_downloads
@on_gpu(**for_model(_model_settings))
def api_predict(file, *form_values, progress=gr.Progress()):  # noqa: B008
    image, run = runs.load_image(file), _api_run(form_values)
    result = predict(image, run.settings, top_k=run.top_k)
    return {
        "model": run.settings.name,
        "predictions": runs.top_rows(result),
        "head_is_random": bool(result.head_is_random),
        "adaptations": list(result.adaptations),
    }


@api_guarded
@runs.shows_downloads
@on_gpu(**for_model(_model_settings))
def api_features(file, *form_values, progress=gr.Progress()):  # noqa: B008
    image, run = runs.load_image(file), _api_run(form_values)
    levels = list(features(image, run.settings, out_indices=run.out_indices).levels)
    summary = [
        {k: lv[k] for k in ("index", "module", "channels", "reduction")}
        | {
            "shape": list(lv["array"].shape[-3:]),
            "top_channels": figures.top_channels(lv["array"], 8).tolist(),
        }
        for lv in levels
    ]
    arrays = {f"level_{lv['index']}": lv["array"] for lv in levels}
    npz = runs.EXPORTS.write("feature_maps.npz", exports.features_npz(arrays))
    return {"model": run.settings.name, "levels": summary}, str(npz)


def api_form() -> list:
    """Hidden inputs of the model endpoints, in API_FIELDS order (gradio_client passes them so)."""
    return [API_INPUTS[name]() for name in API_FIELDS]


def endpoint(fn, inputs, outputs, **options) -> None:
    """One named endpoint, on a hidden button of its own."""
    gr.Button(visible=False).click(fn, inputs, outputs, **options)


def build() -> None:
    """The hidden components and the endpoints (inside the page's Blocks)."""
    with gr.Group(visible=False):
        query, family = gr.Textbox(label="query"), gr.Textbox(label="family")
        sort = gr.Textbox(label="sort", value="name")
        source = gr.Textbox(label="source", value="", info="e.g. timm; empty: all")
        pretrained_only, on_disk = (
            gr.Checkbox(label="pretrained_only"),
            gr.Checkbox(label="on_disk"),
        )
        name = gr.Textbox(label="model", value=DEFAULT_MODEL)
        image = gr.File(label="image")
        model_form = api_form()
        result, npz = gr.JSON(), gr.File()
    endpoint(api_search, [query, pretrained_only, on_disk, family, sort, source], result,
             api_name="search_models")  # fmt: skip
    endpoint(api_model_info, name, result, api_name="model_info")
    endpoint(api_predict, [image, *model_form], result, api_name="predict",
             concurrency_id=MODEL_WORK)  # fmt: skip
    endpoint(api_features, [image, *model_form], [result, npz], api_name="features",
             concurrency_id=MODEL_WORK)  # fmt: skip
