"""The image of "What is in this image?" (and of Compare and "Why this answer?"): the upload with
its examples, the preview, a short summary of what was read, the band picker, and the sensor
weights that fit the file (choosing them fills the model settings). A file that cannot be read
clears everything that showed the previous one."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from modelkit.app import figures, form
from modelkit.app.guard import clearing, guarded, status
from modelkit.app.runs import load_image
from modelkit.app.setup_form import ASSETS, FILE_TYPES, SetupForm
from modelkit.images import display
from modelkit.images.limits import ImageArray
from modelkit.images.preprocess import as_chw, band_limits
from modelkit.models import sensors
from modelkit.models.info import model_info
from modelkit.models.registry import split_name
from modelkit.runtime.settings import parse_indices

DEFAULT_IMAGE = str(ASSETS / "chelsea.png")  # the first task starts with it: one click answers
EXAMPLES = [
    "chelsea.png",
    "sentinel2_13band.tif",
    "sentinel2_b08_nir_16bit.png",
    "landsat8_7band.npy",
]


def _sensor(model, pretrained, tag) -> sensors.SensorWeights | None:
    """The sensor checkpoint the settings ask for, if they do."""
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


def _band_choices(image: ImageArray) -> list[tuple[str, str]]:
    names = image.band_names or [f"band {i}" for i in range(image.num_channels)]
    return [(f"{i}: {n}", str(i)) for i, n in enumerate(names)]


def _use_choices(image: ImageArray):
    """The "Use weights" picker: the sensor checkpoints that fit the file (hidden when none)."""
    fits = sensors.suggestions(image.num_channels, image.band_names)
    return gr.update(choices=fits, value=None, visible=bool(fits))


# --- handlers -----------------------------------------------------------------------------------


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
def on_use(name, current):
    """A suggested sensor checkpoint: set the model, pretrained and the tag to it."""
    weights = sensors.sensor_weights(name or "")
    if weights is None:
        return {status(): ""}
    model = f"timm/{weights.arch}"
    tags = model_info(model)["tags"]
    wanted = weights.tag if model != current else ""  # on_model picks it up when the model changes
    return "", model, True, gr.update(choices=tags, value=weights.tag), wanted


@guarded
def on_fit(file, model, pretrained, tag):
    """Sensor weights and a file: fill the channel picker with the file's channels in the
    weights' band order (matched by name; the model's input follows the pick), and say so;
    otherwise only say why not."""
    keep = gr.update()  # the status line and the picker stay as they are
    weights = _sensor(model, pretrained, tag)
    if weights is None or not file:
        return keep, "", keep
    image = load_image(file)
    fit = sensors.fit_bands(weights, image.band_names, image.num_channels)
    note = _fit_note(fit, weights, image)
    if fit.channels is None:
        return keep, note, keep
    return keep, note, [str(i) for i in fit.channels]


@guarded
def on_channels(file, channels, model, pretrained, tag):
    """The user's own pick (the model's input channels follow it); with sensor weights, say
    what it feeds."""
    image = load_image(file)
    picked = parse_indices(channels, "Image channels", image.num_channels)
    picked = picked or tuple(range(image.num_channels))
    weights = _sensor(model, pretrained, tag)
    if weights is None:
        return "", ""
    fit = sensors.fit_bands(weights, image.band_names, image.num_channels, picked)
    return "", _fit_note(fit, weights, image, picked)


def thumbnail(file):
    """A small composite of the first task's image, for the tasks that use it too."""
    if not file:
        return None
    try:
        return display.composite(load_image(file))
    except Exception:  # noqa: BLE001 - the first task's own upload says what is wrong
        return None


def mirror(upload: gr.File) -> gr.Image:
    """The first task's image, small, in another task (kept up to date)."""
    thumb = gr.Image(thumbnail(DEFAULT_IMAGE), label="The image (choose it under 'What is in "
                     "this image?')", interactive=False, height=200, buttons=[])  # fmt: skip
    upload.change(thumbnail, upload, thumb, api_visibility="private", show_progress="hidden")
    return thumb


# --- layout and wiring --------------------------------------------------------------------------


def build(demo: gr.Blocks, setup: SetupForm) -> gr.File:
    """The image section (inside the first task); sets and returns ``setup.upload``."""
    upload = gr.File(value=DEFAULT_IMAGE, file_types=FILE_TYPES, height=90,
                     label="Your image (PNG, JPEG, TIFF, NPY, NPZ; any number of bands)",
                     elem_id="mk-upload")  # fmt: skip
    gr.Examples([[str(ASSETS / name)] for name in EXAMPLES], inputs=[upload], label="Examples")
    preview = gr.Image(label="Preview", interactive=False, height=230, buttons=[],
                       elem_id="mk-preview")  # fmt: skip
    image_info = gr.Markdown(elem_id="mk-image-info")
    use = gr.Dropdown(label="Use weights pretrained on these bands (fills the model settings)",
                      choices=[], visible=False, elem_id="mk-use-weights")  # fmt: skip
    with gr.Accordion("Bands", open=False):
        with gr.Row():
            preset = gr.Dropdown(label="Band preset", choices=[])
            bands = gr.Dropdown(label="Preview bands (R, G, B)", multiselect=True, max_choices=3)
        gallery = gr.Gallery(columns=6, height=220, show_label=False)
    setup.upload = upload
    _wire(demo, setup, preview, image_info, use, preset, bands, gallery)
    return upload


def _wire(demo, setup: SetupForm, preview, image_info, use, preset, bands, gallery) -> None:
    private = dict(api_visibility="private")
    weights = [setup.model, setup.pretrained, setup.tag]
    fit = dict(fn=on_fit, inputs=[setup.upload, *weights],
               outputs=[status(), setup.fit_note, setup.channels],
               **private)  # fmt: skip
    setup.model_changed.then(**fit)
    setup.tag_changed.then(**fit)
    setup.pretrained.input(**fit)
    use.input(on_use, [use, setup.model],
              [status(), setup.model, setup.pretrained, setup.tag, setup.wanted_tag],
              **private).then(**fit)  # fmt: skip
    outputs = [status(), preview, image_info, preset, bands, setup.channels, gallery, use]
    read = clearing(on_upload, outputs)  # a file that cannot be read leaves no old image shown
    setup.upload.change(read, setup.upload, outputs, **private).then(**fit)
    preset.input(on_preset, [setup.upload, preset], [status(), preview, bands], **private)
    bands.input(on_bands, [setup.upload, bands], [status(), preview], **private)
    setup.channels.input(on_channels, [setup.upload, setup.channels, *weights],
                         [status(), setup.fit_note], **private)  # fmt: skip
    demo.load(read, setup.upload, outputs, **private)
