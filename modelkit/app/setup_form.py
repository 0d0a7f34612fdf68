"""The shared setup form at the top of the page: 1 · Model (search, card), 2 · Image (upload,
preview, bands) and 3 · Set up (pretrained, in_chans, num_classes, levels, ...). Every tab below
reads it through ``SetupForm.inputs``; its handlers only fill the form."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from modelkit.app import figures, form
from modelkit.app.guard import guarded, status
from modelkit.app.runs import FORM_FIELDS, load_image
from modelkit.images import display
from modelkit.images.limits import ImageArray
from modelkit.images.preprocess import SCALINGS, as_chw, band_limits
from modelkit.models import sensors
from modelkit.models.info import model_info
from modelkit.models.registry import list_families, list_sources, split_name
from modelkit.runtime.settings import parse_indices

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[2] / "assets"
EXAMPLES = [
    "chelsea.png",
    "sentinel2_13band.tif",
    "sentinel2_b08_nir_16bit.png",
    "landsat8_7band.npy",
]
DEFAULT_MODEL = "efficientnet_lite0"
FILE_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz", ".webp", ".bmp", ".gif"]


@dataclass
class SetupForm:
    """The form's components; ``inputs`` are the handlers' arguments after the upload."""

    upload: gr.File
    model: gr.Dropdown
    pretrained: gr.Checkbox
    tag: gr.Dropdown
    in_chans: gr.Number
    channels: gr.Dropdown
    num_classes: gr.Textbox
    levels: gr.CheckboxGroup
    top_k: gr.Slider
    scaling: gr.Dropdown
    device: gr.Dropdown
    precision: gr.Dropdown
    card: gr.Markdown | None = None

    def refresh_card(self, event) -> None:
        """After a run that may have downloaded weights: the card again, so it says where the
        weights are now ("on this machine", not "download")."""
        if self.card is not None:  # the status line stays the run's (its error, if it gave one)
            event.success(card_again, [self.model, self.tag], [self.card],
                          api_visibility="private", show_progress="hidden")  # fmt: skip

    @property
    def fields(self) -> dict:
        """The form's components by the name of the setting each one holds."""
        return {"model": self.model, "pretrained": self.pretrained, "tag": self.tag,
                "in_chans": self.in_chans, "channels": self.channels,
                "num_classes": self.num_classes, "out_indices": self.levels, "top_k": self.top_k,
                "scaling": self.scaling, "device": self.device,
                "precision": self.precision}  # fmt: skip

    @property
    def inputs(self) -> list:
        """The components in ``runs.FORM_FIELDS`` order (``runs.FormRun.read`` reads them)."""
        return [self.fields[name] for name in FORM_FIELDS]


# --- handlers -----------------------------------------------------------------------------------


@guarded
def on_search(query, pretrained_only, on_disk, family, sort, source, current):
    found = form.search_models(query, pretrained_only, on_disk, family, sort, source)
    names = [m["name"] for m in found]
    value = current if current in names else (names[0] if names else None)
    note = f"{len(names)} model{'s' * (len(names) != 1)}" if names else "No model matches."
    return "", form.search_rows(found), gr.update(choices=names, value=value), note


@guarded
def on_model(name, wanted_tag=""):
    """A new model: its card, tags and levels. ``wanted_tag``: the tag "Use weights" chose (kept
    in a State while the model changes), else the model's default tag."""
    info = model_info(name)
    levels = [form.level_choice(lv) for lv in info["feature_levels"]]
    arch, typed = split_name(name)  # a name typed with its tag: that tag
    tag = next((t for t in (typed, wanted_tag) if t and t in info["tags"]), info["default_tag"])
    tag = tag or None
    card = form.model_card(model_info(f"{arch}.{tag}") if tag and tag != info["default_tag"]
                           else info)  # fmt: skip
    return (
        "",
        card,
        gr.update(choices=info["tags"], value=tag),
        gr.update(choices=levels, value=[v for _, v in levels]),
        "",
    )


def _card(name, tag) -> str:
    return form.model_card(model_info(f"{split_name(name)[0]}.{tag}" if tag else name))


@guarded
def on_tag(name, tag):
    """Another tag: the card of those weights (sensor weights name their bands there)."""
    return "", _card(name, tag)


def card_again(name, tag):
    """The card after a run, leaving the status line alone; unchanged if it cannot be made."""
    try:
        return _card(name, tag)
    except Exception:  # noqa: BLE001 - cosmetic: the card shown stays
        log.exception("the model card could not be made again")
        return gr.update()


@guarded
def on_use(name, current):
    """A suggested sensor checkpoint: set the model, pretrained and the tag to it."""
    weights = sensors.sensor_weights(name or "")
    if weights is None:
        return {status(): ""}
    model = f"timm/{weights.arch}"
    tags = model_info(model)["tags"]
    wanted = weights.tag if model != current else ""  # on_model picks it up when the model changes
    return "", model, True, gr.update(choices=tags, value=weights.tag), wanted


def _sensor(model, pretrained, tag) -> sensors.SensorWeights | None:
    """The sensor checkpoint the form asks for, if it does (the name RunSettings gives)."""
    if not (pretrained and model):
        return None
    arch, typed = split_name(str(model).strip())
    name = f"{arch}.{typed or tag}" if (typed or tag) else arch
    return sensors.sensor_weights(name) if "." in name else None


def _fit_note(fit: sensors.BandFit, weights: sensors.SensorWeights, image: ImageArray,
              fed: tuple[int, ...] | None = None) -> str:  # fmt: skip
    """The band note, and a warning when the values are not in the weights' range."""
    note = ("✓ " if fit.native else "⚠ ") + fit.message  # text symbols: no emoji font needed
    fed = fed or fit.channels or tuple(range(image.num_channels))
    highs = band_limits(as_chw(image), "percentile", (2.0, 98.0))[1]
    high = max(float(highs[i]) for i in fed)
    values = sensors.value_note(weights, high)
    return note + (f"\n\n⚠ {values}" if values else "")


@guarded
def on_fit(file, model, pretrained, tag):
    """Sensor weights and a file: fill the channel picker and in_chans with the file's channels
    in the weights' band order (matched by name), and say so; otherwise only say why not."""
    keep = gr.update()  # the status line, the picker and in_chans stay as they are
    weights = _sensor(model, pretrained, tag)
    if weights is None or not file:
        return keep, "", keep, keep
    image = load_image(file)
    fit = sensors.fit_bands(weights, image.band_names, image.num_channels)
    note = _fit_note(fit, weights, image)
    if fit.channels is None:
        return keep, note, keep, keep
    return keep, note, [str(i) for i in fit.channels], len(fit.channels)


def _families(source: str | None) -> list:
    """Family choices; at build only the eager sources' (listing timm's waits for a choice)."""
    if source is None:
        names = sorted({f for s in list_sources(lazy=False) for f in list_families(s)})
    else:
        names = list_families(source or None)
    return [("all", ""), *names]


@guarded
def on_source(source):
    return "", gr.update(choices=_families(source), value="")


def _band_choices(image: ImageArray) -> list[tuple[str, str]]:
    names = image.band_names or [f"band {i}" for i in range(image.num_channels)]
    return [(f"{i}: {n}", str(i)) for i, n in enumerate(names)]


def _use_choices(image: ImageArray):
    """The "Use weights" picker: the sensor checkpoints that fit the file (hidden when none)."""
    fits = sensors.suggestions(image.num_channels, image.band_names)
    return gr.update(choices=fits, value=None, visible=bool(fits))


@guarded
def on_upload(file, progress=gr.Progress()):  # noqa: B008 (gradio fills a Progress default in)
    if not file:  # cleared: wait for the next file
        return {status(): ""}
    progress(0.1, desc=f"Reading {Path(file).name}")
    image = load_image(file)
    progress(0.6, desc="Drawing the preview and the band thumbnails")
    presets = display.band_presets(image)
    bands = (
        list(next(iter(presets.values()))) if presets else list(range(min(3, image.num_channels)))
    )
    thumbs = figures.band_gallery(display.band_thumbnails(image), display.band_stats(image))
    return (
        "",
        display.composite(image, bands),
        form.image_summary(image),
        gr.update(choices=list(presets), value=next(iter(presets), None)),
        gr.update(choices=_band_choices(image), value=[str(b) for b in bands]),
        gr.update(choices=_band_choices(image), value=[]),
        image.num_channels,
        thumbs,
        _use_choices(image),
    )


@guarded
def on_preset(file, preset):
    image = load_image(file)
    bands = display.band_presets(image).get(preset)
    if bands is None:
        return {status(): ""}
    return "", display.composite(image, bands), [str(b) for b in bands]


@guarded
def on_bands(file, bands):
    image = load_image(file)
    picked = parse_indices(bands, "Preview bands", image.num_channels) or (0,)
    return "", display.composite(image, picked[:3])


@guarded
def on_channels(file, channels, model, pretrained, tag):
    """The user's own pick: in_chans follows it; with sensor weights, say what it feeds."""
    image = load_image(file)
    picked = parse_indices(channels, "Image channels", image.num_channels)
    picked = picked or tuple(range(image.num_channels))
    weights = _sensor(model, pretrained, tag)
    note = ""
    if weights is not None:
        fit = sensors.fit_bands(weights, image.band_names, image.num_channels, picked)
        note = _fit_note(fit, weights, image, picked)
    return "", len(picked), note


# --- layout and wiring --------------------------------------------------------------------------


def _model_column():
    gr.Markdown("## 1 · Model")
    with gr.Row():
        query = gr.Textbox(
            label="Search", placeholder="words or wildcards: resnet, *vit*, mobile v3",
            scale=3, elem_id="mk-search",
        )  # fmt: skip
        source = gr.Dropdown(
            [("all", ""), *list_sources()], value="", label="Source", scale=1,
            elem_id="mk-source",
        )  # fmt: skip
        family = gr.Dropdown(_families(None), value="", label="Family", scale=2)
    with gr.Row():
        pretrained_only = gr.Checkbox(label="Pretrained only")
        on_disk = gr.Checkbox(label="Weights on this machine")
        sort = gr.Radio(list(form.SORTS), value="name", label="Sort by")
    found = gr.Markdown()
    table = gr.Dataframe(
        headers=form.SEARCH_HEADERS, interactive=False, max_height=240,
        column_widths=["30%", "18%", "11%", "10%", "14%", "17%"], wrap=True,
    )  # fmt: skip
    # a custom value is allowed: the search narrows the choices while the current model stays
    # (gradio would refuse it as "not in the list"); on_model checks the name in words
    model = gr.Dropdown([DEFAULT_MODEL], value=DEFAULT_MODEL, label="Model", elem_id="mk-model",
                        allow_custom_value=True)  # fmt: skip
    with gr.Accordion("Model card", open=True):
        card = gr.Markdown()
    search_inputs = [query, pretrained_only, on_disk, family, sort, source, model]
    return model, card, search_inputs, [status(), table, model, found]


def _image_column():
    gr.Markdown("## 2 · Image")
    upload = gr.File(
        value=str(ASSETS / "chelsea.png"), file_types=FILE_TYPES, elem_id="mk-upload",
        label="Image file (PNG, JPEG, TIFF, NPY, NPZ)", height=110,
    )  # fmt: skip
    gr.Examples([[str(ASSETS / name)] for name in EXAMPLES], inputs=[upload], label="Examples")
    preview = gr.Image(label="Preview", interactive=False, height=280, buttons=[])
    with gr.Row():
        preset = gr.Dropdown(label="Band preset", choices=[])
        bands = gr.Dropdown(label="Preview bands (R, G, B)", multiselect=True, max_choices=3)
    image_info = gr.Markdown(elem_id="mk-image-info")
    use = gr.Dropdown(
        label="Use weights pretrained on these bands (sets model, tag and channels)",
        choices=[], visible=False, elem_id="mk-use-weights",
    )  # fmt: skip
    with gr.Accordion("Bands", open=False):
        gallery = gr.Gallery(columns=6, height=220, show_label=False)
    return upload, preview, preset, bands, image_info, use, gallery


def build(demo: gr.Blocks) -> SetupForm:
    """Lay out sections 1-3 inside ``demo`` and wire their handlers."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            model, card, search_inputs, search_outputs = _model_column()
        with gr.Column(scale=1):
            upload, preview, preset, bands, image_info, use, gallery = _image_column()
    gr.Markdown("## 3 · Set up")
    with gr.Row():
        pretrained = gr.Checkbox(value=True, label="Pretrained weights")
        tag = gr.Dropdown(label="Weights tag", choices=[], elem_id="mk-tag", scale=2)
        in_chans = gr.Number(label="in_chans", precision=0, minimum=1, elem_id="mk-in-chans")
        channels = gr.Dropdown(
            label="Image channels fed to the model (empty: all, in order)", multiselect=True,
            elem_id="mk-channels", scale=3,  # room for 13 bands on two or three lines
        )  # fmt: skip
        num_classes = gr.Textbox(
            label="num_classes", placeholder="empty: the pretrained head", elem_id="mk-classes"
        )
    # what the sensor weights make of the file's bands (empty unless such weights are chosen)
    fit_note = gr.Markdown(elem_id="mk-band-note")
    # a row of its own: a ViT has 24 levels, which then take a few lines, not 24
    levels = gr.CheckboxGroup(label="Feature levels (out_indices)", elem_id="mk-levels")
    with gr.Row():
        top_k = gr.Slider(1, 20, value=5, step=1, label="Top-k", scale=1)
        scaling = gr.Dropdown(list(SCALINGS), value="auto", label="Scaling", scale=1)
        device = gr.Dropdown(["auto", "cpu", "cuda"], value="auto", label="Device", scale=1)
        precision = gr.Dropdown(["fp32", "fp16", "bf16"], value="fp32", label="Precision", scale=1)

    private = dict(api_visibility="private")
    query, pretrained_only, on_disk, family, sort, source, _ = search_inputs
    for trigger in (query.submit, pretrained_only.change, on_disk.change, family.change,
                    sort.change, source.change):  # fmt: skip
        trigger(on_search, search_inputs, search_outputs, **private)
    source.input(on_source, source, [status(), family], **private)
    wanted_tag = gr.State("")  # the tag "Use weights" chose, for on_model when the model changes
    weights = [model, pretrained, tag]
    fit = dict(fn=on_fit, inputs=[upload, *weights],
               outputs=[status(), fit_note, channels, in_chans], **private)  # fmt: skip
    model_outputs = [status(), card, tag, levels, wanted_tag]
    model.change(on_model, [model, wanted_tag], model_outputs, **private).then(**fit)
    tag.input(on_tag, [model, tag], [status(), card], **private).then(**fit)
    pretrained.input(**fit)
    use.input(on_use, [use, model], [status(), model, pretrained, tag, wanted_tag],
              **private).then(**fit)  # fmt: skip
    image_outputs = [status(), preview, image_info, preset, bands, channels, in_chans, gallery,
                     use]  # fmt: skip
    upload.change(on_upload, upload, image_outputs, **private).then(**fit)
    preset.input(on_preset, [upload, preset], [status(), preview, bands], **private)
    bands.input(on_bands, [upload, bands], [status(), preview], **private)
    channels.input(on_channels, [upload, channels, *weights], [status(), in_chans, fit_note],
                   **private)  # fmt: skip
    demo.load(on_search, search_inputs, search_outputs, **private)
    demo.load(on_model, [model, wanted_tag], model_outputs, **private)
    demo.load(on_upload, upload, image_outputs, **private)
    return SetupForm(upload, model, pretrained, tag, in_chans, channels, num_classes, levels,
                     top_k, scaling, device, precision, card)  # fmt: skip
