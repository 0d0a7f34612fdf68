"""The model, shared by every task: a compact model box (type to search; the default works
offline) with one line about the model, and one "Model settings" panel, closed by default, with
every technical setting (a plain label, the technical name in small text), the search over the
whole registry and the model card. Empty fields follow the task's input: a person who never
opens the panel never meets a channel mismatch. The handlers here only fill the form.

Every task reads the form through ``SetupForm.inputs`` (``runs.FormRun.read`` turns them into
the run's settings); the image of the first task is ``SetupForm.upload`` (image_input.py)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from modelkit.app import form
from modelkit.app.guard import guarded, status
from modelkit.app.runs import FORM_FIELDS
from modelkit.images.preprocess import SCALINGS
from modelkit.models.info import model_info
from modelkit.models.registry import list_families, list_models, list_sources, split_name
from modelkit.runtime.backends import BACKENDS, default_backend

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_MODEL = "efficientnet_lite0"
FILE_TYPES = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz", ".webp", ".bmp", ".gif"]


@dataclass
class SetupForm:
    """The form's components; ``inputs`` are every task's settings, in FORM_FIELDS order."""

    model: gr.Dropdown
    pretrained: gr.Checkbox
    tag: gr.Dropdown
    in_chans: gr.Textbox
    channels: gr.Dropdown
    num_classes: gr.Textbox
    levels: gr.CheckboxGroup
    top_k: gr.Slider
    scaling: gr.Dropdown
    device: gr.Dropdown
    precision: gr.Dropdown
    backend: gr.Dropdown
    card: gr.Markdown
    line: gr.Markdown  # one line about the model, beside the model box
    fit_note: gr.Markdown  # what sensor weights make of the image's bands
    upload: gr.File | None = None  # the first task's image (image_input.build sets it)
    wanted_tag: gr.State | None = None  # the tag "Use weights" chose, for on_model
    model_changed: object = None  # the model's and the tag's change events (image_input
    tag_changed: object = None  # chains the band fit to them)

    def refresh_card(self, event) -> None:
        """After a run that may have downloaded weights: the card again, so it says where the
        weights are now ("on this machine", not "download")."""
        event.success(card_again, [self.model, self.tag], [self.card, self.line],
                      api_visibility="private", show_progress="hidden")  # fmt: skip

    @property
    def fields(self) -> dict:
        """The form's components by the name of the setting each one holds."""
        return {"model": self.model, "pretrained": self.pretrained, "tag": self.tag,
                "in_chans": self.in_chans, "channels": self.channels,
                "num_classes": self.num_classes, "out_indices": self.levels, "top_k": self.top_k,
                "scaling": self.scaling, "device": self.device, "precision": self.precision,
                "backend": self.backend}  # fmt: skip

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
    """A new model: its card, its line, tags and levels. ``wanted_tag``: the tag "Use weights"
    chose (kept in a State while the model changes), else the model's default tag."""
    info = model_info(name)
    levels = [form.level_choice(lv) for lv in info["feature_levels"]]
    arch, typed = split_name(name)  # a name typed with its tag: that tag
    tag = next((t for t in (typed, wanted_tag) if t and t in info["tags"]), info["default_tag"])
    tag = tag or None
    shown = model_info(f"{arch}.{tag}") if tag and tag != info["default_tag"] else info
    return (
        "",
        form.model_card(shown),
        form.model_line(shown),
        gr.update(choices=info["tags"], value=tag),
        gr.update(choices=levels, value=[v for _, v in levels]),
        "",
    )


def _info(name, tag) -> dict:
    return model_info(f"{split_name(name)[0]}.{tag}" if tag else name)


@guarded
def on_tag(name, tag):
    """Another tag: the card of those weights (sensor weights name their bands there)."""
    info = _info(name, tag)
    return "", form.model_card(info), form.model_line(info)


def card_again(name, tag):
    """The card and line after a run, leaving the status line alone; unchanged if they cannot
    be made."""
    try:
        info = _info(name, tag)
        return form.model_card(info), form.model_line(info)
    except Exception:  # noqa: BLE001 - cosmetic: the card shown stays
        log.exception("the model card could not be made again")
        return gr.update(), gr.update()


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


# --- layout and wiring --------------------------------------------------------------------------


def _search_section(model: gr.Dropdown):
    """The registry search (words, wildcards, filters, sort) with its table of results."""
    with gr.Row():
        query = gr.Textbox(label="Search", placeholder="words or wildcards: resnet, *vit*, "
                           "mobile v3", scale=3, elem_id="mk-search")  # fmt: skip
        source = gr.Dropdown([("all", ""), *list_sources()], value="", label="Source", scale=1,
                             elem_id="mk-source")  # fmt: skip
        family = gr.Dropdown(_families(None), value="", label="Family", scale=2)
    with gr.Row():
        pretrained_only = gr.Checkbox(label="Pretrained only")
        on_disk = gr.Checkbox(label="Weights on this machine")
        sort = gr.Radio(list(form.SORTS), value="name", label="Sort by")
    found = gr.Markdown()
    table = gr.Dataframe(headers=form.SEARCH_HEADERS, interactive=False, max_height=240,
                         column_widths=["30%", "18%", "11%", "10%", "14%", "17%"],
                         wrap=True)  # fmt: skip
    inputs = [query, pretrained_only, on_disk, family, sort, source, model]
    private = dict(api_visibility="private")
    for trigger in (query.submit, pretrained_only.change, on_disk.change, family.change,
                    sort.change, source.change):  # fmt: skip
        trigger(on_search, inputs, [status(), table, model, found], **private)
    source.input(on_source, source, [status(), family], **private)


def build(demo: gr.Blocks) -> SetupForm:
    """The model box and the Model settings panel (closed), wired; the tasks come below."""
    with gr.Row(equal_height=True):
        # a custom value is allowed: a typed name is checked in words by on_model
        model = gr.Dropdown(list_models(), value=DEFAULT_MODEL, label="Model", scale=2,
                            info="type to search; the default works offline",
                            allow_custom_value=True, filterable=True,
                            elem_id="mk-model")  # fmt: skip
        line = gr.Markdown(elem_id="mk-model-line")
    with gr.Accordion("Model settings", open=False, elem_id="mk-settings"):
        gr.Markdown("Optional. Empty fields follow your image, or the classes you taught.")
        with gr.Row():
            pretrained = gr.Checkbox(value=True, label="Pretrained weights",
                                     info="pretrained: off gives random weights")  # fmt: skip
            tag = gr.Dropdown(label="Which weights", choices=[], elem_id="mk-tag",
                              info="tag", scale=2)  # fmt: skip
            # a text box: empty means "follow the image" (a number box would send 0)
            in_chans = gr.Textbox(label="Input channels", elem_id="mk-in-chans",
                                  info="in_chans · empty: as many as the image has",
                                  placeholder="empty: as many as the image has")  # fmt: skip
            channels = gr.Dropdown(label="Image channels fed to the model", multiselect=True,
                                   info="channels · empty: all, in order", elem_id="mk-channels",
                                   scale=3)  # fmt: skip
            num_classes = gr.Textbox(label="Number of classes", elem_id="mk-classes",
                                     info="num_classes · empty: the model's own",
                                     placeholder="empty: the model's own")  # fmt: skip
        fit_note = gr.Markdown(elem_id="mk-band-note")
        levels = gr.CheckboxGroup(label="Feature levels shown", info="out_indices",
                                  elem_id="mk-levels")  # fmt: skip
        with gr.Row():
            top_k = gr.Slider(1, 20, value=5, step=1, label="Answers shown", info="top_k")
            scaling = gr.Dropdown(list(SCALINGS), value="auto", label="Value scaling",
                                  info="scaling, per band")  # fmt: skip
            device = gr.Dropdown(["auto", "cpu", "cuda"], value="auto", label="Device",
                                 info="device")  # fmt: skip
            precision = gr.Dropdown(["fp32", "fp16", "bf16", "int8"], value="fp32",
                                    label="Precision", info="precision")  # fmt: skip
            backend = gr.Dropdown([("the fastest on this machine", "auto"),
                                   *[(b, b) for b in BACKENDS if b != "auto"]],
                                  value=default_backend(), label="Run with",
                                  info="backend · the GPU always runs torch")  # fmt: skip
        with gr.Accordion("Find a model in the registry", open=False):
            _search_section(model)
        with gr.Accordion("Model card", open=True):
            card = gr.Markdown(elem_id="mk-card")
    setup = SetupForm(model, pretrained, tag, in_chans, channels, num_classes, levels, top_k,
                      scaling, device, precision, backend, card, line, fit_note)  # fmt: skip
    _wire(demo, setup)
    return setup


def _wire(demo: gr.Blocks, setup: SetupForm) -> None:
    private = dict(api_visibility="private")
    setup.wanted_tag = gr.State("")
    outputs = [status(), setup.card, setup.line, setup.tag, setup.levels, setup.wanted_tag]
    setup.model_changed = setup.model.change(on_model, [setup.model, setup.wanted_tag], outputs,
                                             **private)  # fmt: skip
    setup.tag_changed = setup.tag.input(on_tag, [setup.model, setup.tag],
                                        [status(), setup.card, setup.line], **private)  # fmt: skip
    demo.load(on_model, [setup.model, setup.wanted_tag], outputs, **private)
