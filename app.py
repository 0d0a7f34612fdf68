"""modelkit web app: find an image model, adapt it to any image, see predictions and feature maps.

Layout and event wiring only; every computation is a call into ``modelkit``. Run ``python app.py``
(honours GRADIO_SERVER_NAME / GRADIO_SERVER_PORT). Named API endpoints for gradio_client:
/search_models, /model_info, /predict, /features.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from modelkit import display, exports, ui, viz  # noqa: E402
from modelkit.errors import ConfigError, ImageReadError, ModelkitError  # noqa: E402
from modelkit.factory import model_info  # noqa: E402
from modelkit.io import ImageArray, read_image  # noqa: E402
from modelkit.preprocess import SCALINGS  # noqa: E402
from modelkit.registry import get_pretrained_cfg, list_families  # noqa: E402
from modelkit.snippet import make_snippet  # noqa: E402

log = logging.getLogger("modelkit.app")
ASSETS = Path(__file__).resolve().parent / "assets"
EXAMPLES = [
    "chelsea.png",
    "sentinel2_13band.tif",
    "sentinel2_b08_nir_16bit.png",
    "landsat8_7band.npy",
]
DEFAULT_MODEL = "efficientnet_lite0"
FILE_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz", ".webp", ".bmp", ".gif"]
MODEL_WORK = "model-work"  # one concurrency group around everything that runs a model
INTERNAL = "Something went wrong inside the app (it has been logged). Try other settings."
EXPORTS = exports.ExportDir()


def warm_model_facts() -> None:
    """Fill model_info's cache before serving: searches are then quick, and no meta-device build
    (which patches torch globally in modelkit.factory) can run beside a real model build.
    A model whose facts fail (a broken registered model) is logged and does not stop the app."""
    from modelkit.registry import list_models

    for name in list_models():
        try:
            model_info(name)
        except Exception:  # noqa: BLE001 - one broken model must not keep the others offline
            log.warning("model %s: its facts could not be computed", name, exc_info=True)


# --- helpers (a few lines each; the work is in modelkit) ---------------------------------------


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime_ns: int, size: int) -> ImageArray:
    return read_image(Path(path).read_bytes(), Path(path).name)


def load_image(file: str | None) -> ImageArray:
    """The image of a gr.File value (a path gradio chose for the upload, never one we build)."""
    if not file:
        raise ImageReadError("No image yet: upload a file or click one of the examples.")
    stat = Path(file).stat()
    return _read_cached(str(file), stat.st_mtime_ns, stat.st_size)


def problem(message: str) -> str:
    return f'<div class="mk-error">⚠️ {message}</div>'


def guarded(fn):
    """A UI handler: a user error becomes a warning and the status line; the page keeps working."""

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except ModelkitError as exc:
            gr.Warning(str(exc))
            return {status: problem(str(exc))}
        except Exception:
            log.exception("internal error in %s", fn.__name__)
            gr.Warning(INTERNAL)
            return {status: problem(INTERNAL)}

    return wrapper


def api_guarded(fn):
    """An API endpoint: a user error comes back as its message (gr.Error), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except ModelkitError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except gr.Error:
            raise
        except Exception:
            log.exception("internal error in %s", fn.__name__)
            raise gr.Error(INTERNAL, print_exception=False) from None

    return wrapper


def make_setup(model, pretrained, tag, in_chans, channels, num_classes, levels, top_k, *rest):
    scaling, device, precision = rest
    return ui.Setup.from_form(
        model=model, pretrained=pretrained, tag=tag, in_chans=in_chans, channels=channels,
        num_classes=num_classes, out_indices=levels, top_k=top_k, scaling=scaling,
        device=device, precision=precision,
    )  # fmt: skip


# --- handlers: model ---------------------------------------------------------------------------


@guarded
def on_search(query, pretrained_only, on_disk, family, sort, current):
    found = ui.search_models(query, pretrained_only, on_disk, family, sort)
    names = [m["name"] for m in found]
    value = current if current in names else (names[0] if names else None)
    note = f"{len(names)} model{'s' * (len(names) != 1)}" if names else "No model matches."
    return "", ui.search_rows(found), gr.update(choices=names, value=value), note


@guarded
def on_model(name):
    info = model_info(name)
    levels = [ui.level_choice(lv) for lv in info["feature_levels"]]
    return (
        "",
        ui.model_card(info),
        gr.update(choices=info["tags"], value=info["default_tag"] or None),
        gr.update(choices=levels, value=[v for _, v in levels]),
    )


# --- handlers: image ---------------------------------------------------------------------------


def _band_choices(image: ImageArray) -> list[tuple[str, str]]:
    names = image.band_names or [f"band {i}" for i in range(image.num_channels)]
    return [(f"{i}: {n}", str(i)) for i, n in enumerate(names)]


@guarded
def on_upload(file, progress=gr.Progress()):  # noqa: B008 (gradio fills a Progress default in)
    if not file:  # cleared: wait for the next file
        return {status: ""}
    progress(0.1, desc=f"Reading {Path(file).name}")
    image = load_image(file)
    progress(0.6, desc="Drawing the preview and the band thumbnails")
    presets = display.band_presets(image)
    bands = (
        list(next(iter(presets.values()))) if presets else list(range(min(3, image.num_channels)))
    )
    thumbs = viz.band_gallery(display.band_thumbnails(image), display.band_stats(image))
    return (
        "",
        display.composite(image, bands),
        ui.image_summary(image),
        gr.update(choices=list(presets), value=next(iter(presets), None)),
        gr.update(choices=_band_choices(image), value=[str(b) for b in bands]),
        gr.update(choices=_band_choices(image), value=[]),
        image.num_channels,
        thumbs,
    )


@guarded
def on_preset(file, preset):
    image = load_image(file)
    bands = display.band_presets(image).get(preset)
    if bands is None:
        return {status: ""}
    return "", display.composite(image, bands), [str(b) for b in bands]


@guarded
def on_bands(file, bands):
    image = load_image(file)
    picked = ui.parse_indices(bands, "Preview bands", image.num_channels) or (0,)
    return "", display.composite(image, picked[:3])


@guarded
def on_channels(file, channels):
    image = load_image(file)
    picked = ui.parse_indices(channels, "Image channels", image.num_channels)
    return "", len(picked) if picked else image.num_channels


# --- handlers: run -----------------------------------------------------------------------------


def _engine_kwargs(setup: ui.Setup, image: ImageArray, **extra) -> dict:
    """Setup -> the engine's keyword arguments (the one place that knows the engine's names)."""
    return dict(
        image=image, model=setup.name, pretrained=setup.pretrained, in_chans=setup.in_chans,
        num_classes=setup.num_classes, channels=setup.channels, scaling=setup.scaling,
        device=setup.device, precision=setup.precision, **extra,
    )  # fmt: skip


def run_predict(setup: ui.Setup, image: ImageArray):
    from modelkit import engine

    return engine.predict(**_engine_kwargs(setup, image, top_k=setup.top_k))


def run_features(setup: ui.Setup, image: ImageArray):
    from modelkit import engine

    return engine.features(**_engine_kwargs(setup, image, out_indices=setup.out_indices))


def _field(obj, name: str):
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def _top_rows(result) -> list[dict]:
    labels, probs, indices = (_field(result, k) for k in ("labels", "probabilities", "indices"))
    return [
        {"rank": r + 1, "label": lab, "index": int(i), "probability": round(float(p), 6)}
        for r, (lab, p, i) in enumerate(zip(labels, probs, indices, strict=True))
    ]


def _level_view(setup: ui.Setup, image: ImageArray, level: dict):
    """Level line, channel grid, PCA and mean-over-input figures of one feature level."""
    fmap = level["array"]
    fmap = fmap[0] if fmap.ndim == 4 else fmap
    config = get_pretrained_cfg(setup.name).data_config()
    background = viz.input_view(display.composite(image), config)
    name = f"level {level['index']}"
    return (
        ui.level_summary(level, fmap.shape),
        viz.channel_grid_figure(fmap, title=f"Most active channels, {name}"),
        viz.pca_figure(fmap, title=f"PCA of {name}"),
        viz.mean_overlay_figure(fmap, background, title=f"Mean activation, {name}"),
    )


def _downloads(setup: ui.Setup, rows: list[dict], levels: list[dict]) -> list[str]:
    arrays = {f"level_{lv['index']}": lv["array"] for lv in levels}
    return [
        str(EXPORTS.write("predictions.csv", exports.predictions_csv(rows))),
        str(EXPORTS.write("predictions.json", exports.predictions_json(rows, setup.to_dict()))),
        str(EXPORTS.write("feature_maps.npz", exports.features_npz(arrays))),
    ]


def _model_key(setup: ui.Setup):
    from modelkit.engine import model_key

    kw = _engine_kwargs(setup, image=None)
    del kw["image"]
    return model_key(kw.pop("model"), **kw)


def _model_step(setup: ui.Setup) -> str:
    """What the first model step will do: a first use builds and loads weights (the slow part)."""
    from modelkit.engine import default_model_cache

    if _model_key(setup) in default_model_cache():
        return f"Running {setup.name}"
    weights = " and loading its weights" if setup.pretrained else ""
    return f"Building {setup.name}{weights} (first use; later runs are faster)"


@guarded
def on_run(file, model, pretrained, tag, in_chans, channels, num_classes, levels, top_k,
           scaling, device, precision, progress=gr.Progress()):  # noqa: B008  # fmt: skip
    progress(0.05, desc="Reading the image")
    image = load_image(file)
    setup = make_setup(model, pretrained, tag, in_chans, channels, num_classes, levels, top_k,
                       scaling, device, precision)  # fmt: skip
    progress(0.15, desc=_model_step(setup))
    result = run_predict(setup, image)
    progress(0.6, desc="Computing the feature maps")
    levels = list(_field(run_features(setup, image), "levels"))
    progress(0.8, desc="Drawing the charts")
    rows = _top_rows(result)
    head_new = bool(_field(result, "head_is_random"))
    chart = viz.topk_figure([r["label"] for r in rows], [r["probability"] for r in rows])
    note = ui.prediction_note(
        head_new, len(_field(result, "logits")), _field(result, "adaptations")
    )
    choices = [(f"level {lv['index']}", lv["index"]) for lv in levels]
    return (
        "",
        chart,
        note,
        gr.update(choices=choices, value=levels[0]["index"]),
        *_level_view(setup, image, levels[0]),
        make_snippet(setup, image.filename),
        _downloads(setup, rows, levels),
        {"file": file, "setup": setup.to_dict()},
    )


@guarded
def on_weights(last):
    if not last:
        raise ConfigError("Run a model first; then its adapted weights can be downloaded.")
    setup = ui.Setup(**last["setup"])
    from modelkit.engine import default_model_cache

    model, _ = default_model_cache().get(_model_key(setup))
    meta = {"model": setup.name, "in_chans": model.data_config.in_chans}
    data = exports.weights_safetensors(model, meta)
    return "", str(EXPORTS.write(f"{setup.model}-adapted.safetensors", data))


@guarded
def on_level(level, last):
    if not last or level is None:
        return {status: ""}
    setup = ui.Setup(**{**last["setup"], "out_indices": (int(level),)})
    levels = _field(run_features(setup, load_image(last["file"])), "levels")
    return "", *_level_view(setup, load_image(last["file"]), levels[0])


# --- API endpoints (JSON in, JSON out; shown in the page's "Use via API") ----------------------


@api_guarded
def api_search(query, pretrained_only, on_disk, family, sort):
    return ui.search_models(query, bool(pretrained_only), bool(on_disk), family, sort or "name")


@api_guarded
def api_model_info(name):
    return model_info(str(name).strip())


def _api_setup(model, pretrained, in_chans, channels, num_classes, out_indices, top_k, scaling):
    return ui.Setup.from_form(
        model=model, pretrained=pretrained, in_chans=in_chans, channels=channels,
        num_classes=num_classes, out_indices=out_indices, top_k=top_k, scaling=scaling,
    )  # fmt: skip


@api_guarded
def api_predict(file, *form):
    image, setup = load_image(file), _api_setup(*form)
    result = run_predict(setup, image)
    return {
        "model": setup.name,
        "predictions": _top_rows(result),
        "head_is_random": bool(_field(result, "head_is_random")),
        "adaptations": list(_field(result, "adaptations")),
    }


@api_guarded
def api_features(file, *form):
    image, setup = load_image(file), _api_setup(*form)
    levels = list(_field(run_features(setup, image), "levels"))
    summary = [
        {k: lv[k] for k in ("index", "module", "channels", "reduction")}
        | {
            "shape": list(lv["array"].shape[-3:]),
            "top_channels": viz.top_channels(lv["array"], 8).tolist(),
        }
        for lv in levels
    ]
    arrays = {f"level_{lv['index']}": lv["array"] for lv in levels}
    return {"model": setup.name, "levels": summary}, str(
        EXPORTS.write("feature_maps.npz", exports.features_npz(arrays))
    )


# --- layout: reads top to bottom like the page -------------------------------------------------

CSS = """
.mk-error { background: #fef2f2; border: 1px solid #fca5a5; color: #991b1b; padding: 8px 12px;
            border-radius: 8px; }
#mk-status:empty { display: none; }
"""

with gr.Blocks(title="modelkit") as demo:
    gr.Markdown(
        "# modelkit\nPick an image model, adapt it to your image (any number of channels), "
        "and see what it predicts and what its layers see."
    )
    status = gr.HTML(elem_id="mk-status")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            gr.Markdown("## 1 · Model")
            with gr.Row():
                query = gr.Textbox(
                    label="Search", placeholder="words or wildcards: resnet, *vit*, mobile v3",
                    scale=3, elem_id="mk-search",
                )  # fmt: skip
                family = gr.Dropdown(
                    [("all", "")] + list_families(), value="", label="Family", scale=2
                )
            with gr.Row():
                pretrained_only = gr.Checkbox(label="Pretrained only")
                on_disk = gr.Checkbox(label="Weights on this machine")
                sort = gr.Radio(list(ui.SORTS), value="name", label="Sort by")
            found = gr.Markdown()
            table = gr.Dataframe(
                headers=ui.SEARCH_HEADERS, interactive=False, max_height=240,
                column_widths=["34%", "24%", "14%", "12%", "16%"], wrap=True,
            )  # fmt: skip
            model = gr.Dropdown(
                [DEFAULT_MODEL], value=DEFAULT_MODEL, label="Model", elem_id="mk-model"
            )
            with gr.Accordion("Model card", open=True):
                card = gr.Markdown()
        with gr.Column(scale=1):
            gr.Markdown("## 2 · Image")
            upload = gr.File(
                value=str(ASSETS / "chelsea.png"), file_types=FILE_TYPES, elem_id="mk-upload",
                label="Image file (PNG, JPEG, TIFF, NPY, NPZ)", height=110,
            )  # fmt: skip
            gr.Examples(
                [[str(ASSETS / name)] for name in EXAMPLES], inputs=[upload], label="Examples"
            )
            preview = gr.Image(label="Preview", interactive=False, height=280, buttons=[])
            with gr.Row():
                preset = gr.Dropdown(label="Band preset", choices=[])
                bands = gr.Dropdown(
                    label="Preview bands (R, G, B)", multiselect=True, max_choices=3
                )
            image_info = gr.Markdown()
            with gr.Accordion("Bands", open=False):
                gallery = gr.Gallery(columns=6, height=220, show_label=False)
    gr.Markdown("## 3 · Set up")
    with gr.Row():
        pretrained = gr.Checkbox(value=True, label="Pretrained weights")
        tag = gr.Dropdown(label="Weights tag", choices=[])
        in_chans = gr.Number(label="in_chans", precision=0, minimum=1, elem_id="mk-in-chans")
        channels = gr.Dropdown(
            label="Image channels fed to the model (empty: all, in order)", multiselect=True
        )
        num_classes = gr.Textbox(
            label="num_classes", placeholder="empty: the pretrained head", elem_id="mk-classes"
        )
    # a row of its own: a ViT has 24 levels, which then take a few lines, not 24
    levels = gr.CheckboxGroup(label="Feature levels (out_indices)", elem_id="mk-levels")
    with gr.Row():
        top_k = gr.Slider(1, 20, value=5, step=1, label="Top-k", scale=1)
        scaling = gr.Dropdown(list(SCALINGS), value="auto", label="Scaling", scale=1)
        device = gr.Dropdown(["auto", "cpu", "cuda"], value="auto", label="Device", scale=1)
        precision = gr.Dropdown(["fp32", "fp16", "bf16"], value="fp32", label="Precision", scale=1)
    run = gr.Button("Run", variant="primary", elem_id="mk-run")
    gr.Markdown("## 4 · Results")
    with gr.Tabs():
        with gr.Tab("Predictions"):
            chart = gr.Plot(show_label=False, elem_id="mk-chart")
            pred_note = gr.Markdown()
        with gr.Tab("Feature maps", elem_id="mk-features-tab"):
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

    # --- wiring ----------------------------------------------------------------------------
    search_inputs = [query, pretrained_only, on_disk, family, sort, model]
    search_outputs = [status, table, model, found]
    for trigger in (
        query.submit,
        pretrained_only.change,
        on_disk.change,
        family.change,
        sort.change,
    ):
        trigger(on_search, search_inputs, search_outputs, api_visibility="private")
    model.change(on_model, model, [status, card, tag, levels], api_visibility="private")
    image_outputs = [status, preview, image_info, preset, bands, channels, in_chans, gallery]
    upload.change(on_upload, upload, image_outputs, api_visibility="private")
    preset.input(on_preset, [upload, preset], [status, preview, bands], api_visibility="private")
    bands.input(on_bands, [upload, bands], [status, preview], api_visibility="private")
    channels.input(on_channels, [upload, channels], [status, in_chans], api_visibility="private")
    form = [model, pretrained, tag, in_chans, channels, num_classes, levels, top_k]
    form += [scaling, device, precision]
    level_outputs = [level_info, grid, pca, overlay]
    run.click(
        on_run, [upload, *form],
        [status, chart, pred_note, level, *level_outputs, snippet, downloads, last_run],
        concurrency_id=MODEL_WORK, api_visibility="private",
    )  # fmt: skip
    level.input(
        on_level, [level, last_run], [status, *level_outputs],
        concurrency_id=MODEL_WORK, api_visibility="private",
    )  # fmt: skip
    weights_button.click(
        on_weights, last_run, [status, weights_file],
        concurrency_id=MODEL_WORK, api_visibility="private",
    )  # fmt: skip
    demo.load(on_search, search_inputs, search_outputs, api_visibility="private")
    demo.load(on_model, model, [status, card, tag, levels], api_visibility="private")
    demo.load(on_upload, upload, image_outputs, api_visibility="private")

    # --- API: hidden inputs with plain types -------------------------------------------------
    with gr.Group(visible=False):
        a_query, a_family, a_sort = (
            gr.Textbox(label="query"),
            gr.Textbox(label="family"),
            gr.Textbox(label="sort", value="name"),
        )
        a_pre, a_disk = gr.Checkbox(label="pretrained_only"), gr.Checkbox(label="on_disk")
        a_name = gr.Textbox(label="model", value=DEFAULT_MODEL)
        a_file = gr.File(label="image")
        a_pretrained = gr.Checkbox(label="pretrained", value=True)
        a_in_chans, a_classes = gr.Number(label="in_chans"), gr.Number(label="num_classes")
        a_channels = gr.Textbox(label="channels", info="e.g. 3, 2, 1; empty: all")
        a_levels = gr.Textbox(label="out_indices", info="e.g. 1, 3; empty: all")
        a_top_k = gr.Number(label="top_k", value=5)
        a_scaling = gr.Textbox(label="scaling", value="auto")
        a_json, a_npz = gr.JSON(), gr.File()
    api_form = [
        a_name,
        a_pretrained,
        a_in_chans,
        a_channels,
        a_classes,
        a_levels,
        a_top_k,
        a_scaling,
    ]
    gr.Button(visible=False).click(
        api_search, [a_query, a_pre, a_disk, a_family, a_sort], a_json, api_name="search_models"
    )
    gr.Button(visible=False).click(api_model_info, a_name, a_json, api_name="model_info")
    gr.Button(visible=False).click(
        api_predict, [a_file, *api_form], a_json, api_name="predict", concurrency_id=MODEL_WORK
    )
    gr.Button(visible=False).click(
        api_features, [a_file, *api_form], [a_json, a_npz], api_name="features",
        concurrency_id=MODEL_WORK,
    )  # fmt: skip

demo.queue(
    api_open=False, default_concurrency_limit=int(os.environ.get("MODELKIT_CONCURRENCY", "1"))
)


def check_private_folders(allowed_paths) -> None:
    """Refuse to start when the result cache lies in a folder the web server hands files out
    from (gradio's temp folder, its examples cache, the allowed paths): anyone could download
    it, with what other people uploaded."""
    from gradio.utils import get_cache_folder, get_upload_folder

    from modelkit.result_cache import default_cache_dir

    cache = default_cache_dir().expanduser().resolve()
    for folder in (get_upload_folder(), get_cache_folder(), *allowed_paths):
        served = Path(folder).expanduser().resolve()
        if cache == served or served in cache.parents:
            raise SystemExit(
                f"The result cache folder {cache} (MODELKIT_CACHE_DIR) is inside {served}, "
                "which the web server serves files from: anyone could download the cached "
                "results. Set MODELKIT_CACHE_DIR to a folder outside it."
            )


def launch(**kwargs):
    """Start the server; keyword arguments override the defaults (tests pass a port)."""
    options = dict(
        max_file_size=os.environ.get("MODELKIT_MAX_UPLOAD", "200mb"),
        allowed_paths=[str(ASSETS)],
        enable_monitoring=False,
        footer_links=["api"],
        theme=gr.themes.Soft(primary_hue="blue"),
        css=CSS,
    )
    options.update(kwargs)
    check_private_folders(options["allowed_paths"] or [])
    warm_model_facts()
    return demo.launch(**options)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    launch()
