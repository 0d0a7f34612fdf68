"""RunSettings: every setting of one run, in one frozen object, from the page (or a call) to the
model; every check of a setting is made here, once, by one rule.

    s = RunSettings("resnet50", pretrained=True, in_chans=13)    # or RunSettings.from_form(...)
    s.name              "resnet50.<tag>" when a tag is asked for with weights, else the arch
    s.model_key()       the model cache's key (device resolved; precision checked)
    s.build()           (model, was_cached) through the model cache, errors in plain words
    s.random_parts()    what a build would draw at random (its results are never cached)
    s.result_key(kind, digest, **asked)    the result cache's key for one input
    s.follow(image)     in_chans follows the image (or the chosen channels) when not set
    s.check_image(image)                   the channel count against the image, in words

The public functions (predict, features, embeddings, explain, batch, train_head, map_scene) take
these settings as keywords, or a RunSettings as ``model`` (``RunSettings.of``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from modelkit.config import CROP_MODES, DataConfig
from modelkit.errors import ChannelMismatchError, ConfigError, ModelkitError
from modelkit.images.limits import ImageArray
from modelkit.images.preprocess import SCALINGS, as_chw, channel_mismatch, check_channels
from modelkit.models.arguments import (
    check_global_pool,
    check_in_chans,
    check_in_chans_init,
    check_num_classes,
    check_pool_fits,
)
from modelkit.models.registry import get_pretrained_cfg, split_name
from modelkit.models.request import random_parts
from modelkit.runtime.backends.names import check_backend
from modelkit.runtime.device import DEVICES, PRECISIONS, resolve_device, resolve_precision
from modelkit.runtime.model_cache import ModelCache, ModelKey

DEFAULT_MODEL = "efficientnet_lite0"
# the settings create_model takes (the rest shape the input, or where and how the model runs)
MODEL_SETTINGS = ("pretrained", "num_classes", "in_chans", "in_chans_init", "rgb_channels",
                  "global_pool")  # fmt: skip


# what each setting means: RunSettings' documentation, and the Args of every public function
SETTING_DOCS = {
    "model": "a registry name, arch or arch.tag (a typed tag wins over tag), or a RunSettings",
    "pretrained": "load the weights of tag (or of the default tag)",
    "tag": "the weights' tag; empty for the default",
    "in_chans": "the model's input channels (None: the checkpoint's own count)",
    "channels": "which image channels feed the model, in order (None: all)",
    "in_chans_init": "how filters for other channel counts are made: repeat, rgb or random",
    "rgb_channels": "the input channels that get the pretrained R, G, B filters (rgb)",
    "num_classes": "None keeps the checkpoint's head, 0 removes it, another count a new head",
    "global_pool": "None or 'avg' (the family's pooling), '' (none, with num_classes=0)",
    "scaling": "per-band scaling before normalisation: auto, minmax, percentile, zscore, none",
    "crop_mode": "None (the model's own), center, squash or border",
    "crop_pct": "None (the model's own), or the crop's share of the resized image (0 to 1]",
    "precision": "fp32, fp16 (GPU), bf16, or int8 (a compiled backend on the CPU, checked)",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "backend": "auto (the fastest on this CPU), torch, onnxruntime or openvino; None: "
    "MODELKIT_BACKEND, else auto. The GPU and gradients always run on torch",
}


@dataclass(frozen=True)
class RunSettings:
    """Every setting of one run (each one's meaning: ``SETTING_DOCS``)."""

    model: str = DEFAULT_MODEL
    pretrained: bool = False
    tag: str = ""
    in_chans: int | None = None
    channels: tuple[int, ...] | None = None
    in_chans_init: str = "repeat"
    rgb_channels: tuple[int, int, int] | None = None
    num_classes: int | None = None
    global_pool: str | None = None
    scaling: str = "auto"
    crop_mode: str | None = None
    crop_pct: float | None = None
    precision: str = "fp32"
    device: str = "auto"
    backend: str | None = None

    def __post_init__(self) -> None:
        arch, typed = split_name(str(self.model or "").strip() or DEFAULT_MODEL)
        fix = _setter(self)
        fix(model=arch, tag=typed or str(self.tag or "").strip(), pretrained=bool(self.pretrained))
        fix(in_chans=check_in_chans(self.in_chans), num_classes=check_num_classes(self.num_classes))
        fix(channels=_channels(self.channels), global_pool=check_global_pool(self.global_pool))
        check_pool_fits(self.global_pool, self.num_classes)
        cfg = get_pretrained_cfg(self.name)  # an unknown model or tag is refused here, in words
        rgb = check_in_chans_init(self.in_chans_init, self.rgb_channels,
                                  self.in_chans or cfg.in_chans)  # fmt: skip
        fix(rgb_channels=rgb)
        _one_of("scaling", self.scaling, SCALINGS)
        _one_of("precision", str(self.precision).lower(), (*PRECISIONS, "int8"))
        _one_of("device", str(self.device).lower().split(":")[0], DEVICES)
        fix(precision=str(self.precision).lower(), device=str(self.device).lower())
        fix(backend=check_backend(self.backend))  # None: MODELKIT_BACKEND, else auto
        if self.precision == "int8" and self.backend == "torch":
            raise ConfigError("precision='int8' runs on a compiled backend (onnxruntime or "
                              "openvino, on the CPU): choose backend='auto' or one of them, or "
                              "precision='fp32'.")  # fmt: skip
        if self.crop_mode is not None:
            _one_of("crop_mode", self.crop_mode, CROP_MODES)
        if self.crop_pct is not None and not (
            isinstance(self.crop_pct, int | float) and 0 < self.crop_pct <= 1
        ):
            raise ConfigError(f"crop_pct={self.crop_pct!r} must be a number above 0, at most 1.")

    # --- reading -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``arch.tag`` when a tag is chosen and weights are wanted, else the bare name."""
        return f"{self.model}.{self.tag}" if self.pretrained and self.tag else self.model

    def replace(self, **changes) -> RunSettings:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON types (lists for tuples): for head files, page state and snippets."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping) -> RunSettings:
        """Settings from ``to_dict`` (unknown keys are ignored: older head files)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # --- the model -----------------------------------------------------------------------
    def model_key(self) -> ModelKey:
        """The model cache's key: create_model's arguments, the resolved device, the precision
        (a device or precision this machine cannot give is refused here)."""
        device = resolve_device(self.device)
        if self.precision == "int8" and device.type != "cpu":
            raise ConfigError(
                f"precision='int8' runs on the CPU only; this run's device is "
                f"{device.type}. Choose device='cpu', or precision='fp32'."
            )
        # int8 is the compiled graph's: the model cache holds the fp32 model it is made from
        torch_precision = "fp32" if self.precision == "int8" else self.precision
        resolve_precision(torch_precision, device)
        options = {k: getattr(self, k) for k in MODEL_SETTINGS}
        cfg = get_pretrained_cfg(self.name)
        if options["in_chans"] == cfg.in_chans and self.in_chans_init != "rgb":
            options["in_chans"] = None  # the same model either way: one cache entry
        return ModelKey(self.name, tuple(options.items()), str(device), torch_precision)

    def compiles(self, device) -> bool:
        """Whether a compiled graph may serve this run's forward passes on ``device`` (the
        CPU, fp32 or int8, a backend other than torch); gradients always stay on torch."""
        return (self.backend != "torch" and device.type == "cpu"
                and self.precision in ("fp32", "int8"))  # fmt: skip

    def data_config(self, model) -> DataConfig:
        """The model's data config with this run's crop, where it sets one."""
        changes: dict = {"crop_mode": self.crop_mode} if self.crop_mode else {}
        if self.crop_pct:
            changes |= {"crop_pct": float(self.crop_pct), "resize_size": None}
        return dataclasses.replace(model.data_config, **changes) if changes else model.data_config

    def create_kwargs(self) -> dict:
        """create_model's keyword arguments that differ from their defaults (for snippets)."""
        default = RunSettings()
        return {
            k: getattr(self, k) for k in MODEL_SETTINGS if getattr(self, k) != getattr(default, k)
        }

    def random_parts(self, with_head: bool = True) -> list[str]:
        """The parts a build draws at random (nothing is seeded; see models.request)."""
        return random_parts(self.name, self.pretrained, self.num_classes, self.in_chans,
                            self.in_chans_init, with_head=with_head)  # fmt: skip

    def build(self, cache: ModelCache | None = None):
        """(model, was_cached): the model from ``cache`` (the process's when None), built on a
        miss; a model that cannot be built becomes a ModelkitError that names it."""
        from modelkit.runtime.run import default_model_cache, failure

        key = self.model_key()
        try:
            return default_model_cache(cache).get(key)
        except ModelkitError:
            raise
        except Exception as error:
            raise failure(key, error, "build") from error

    def result_key(self, kind: str, digest: str, **asked) -> str:
        """The result cache's key of ``kind`` for an input whose digest is ``digest``."""
        from modelkit.runtime.result_cache import result_key

        shaping = {k: getattr(self, k) for k in ("channels", "scaling", "crop_mode", "crop_pct")}
        if self.precision == "int8":  # fp32 backends agree to 1e-4 and share results; int8 not
            shaping["int8"] = True
        return result_key(kind, digest, self.model_key().to_dict() | shaping | asked)

    # --- the image -----------------------------------------------------------------------
    def follow(self, image) -> RunSettings:
        """These settings with ``in_chans`` following the image (or the chosen channels) when
        it is not set: a gray photo or a 13-band tile runs without settings."""
        if self.in_chans is not None or image is None or _is_tensor(image):
            return self
        count = len(self.channels) if self.channels else as_chw(image).shape[0]
        return self.replace(in_chans=count)

    def check_image(self, image) -> None:
        """The channels chosen exist in the image, and their count is what the model takes."""
        if image is None or _is_tensor(image):
            return
        count = as_chw(image).shape[0]
        if self.channels:
            check_channels(count, self.channels)
        fed = len(self.channels) if self.channels else count
        want = self.in_chans or get_pretrained_cfg(self.name).in_chans
        if fed != want:
            raise ChannelMismatchError(channel_mismatch(want, fed, bool(self.channels), count))

    # --- the page ------------------------------------------------------------------------
    @classmethod
    def from_form(cls, values: Mapping) -> RunSettings:
        """Settings from a form's raw values (strings, floats, lists of "3: B4"); empty fields
        mean the default; nonsense is a ConfigError in words."""
        values = {k: v for k, v in values.items() if not _empty(v)}
        parsed = dict(values)
        for name in ("in_chans", "num_classes"):
            if name in values:
                parsed[name] = _whole_number(values[name], name)
        for name in ("channels", "rgb_channels"):
            if name in values:
                parsed[name] = parse_indices(values[name], name.replace("_", " "))
        if "crop_pct" in values:
            parsed["crop_pct"] = float(values["crop_pct"])
        parsed["pretrained"] = bool(values.get("pretrained", True))
        return cls.from_dict(parsed)

    @classmethod
    def of(cls, model, given: Mapping, defaults: Mapping) -> RunSettings:
        """The settings of a public function's call: ``model`` is a name (the keywords make
        the settings) or a RunSettings (keywords that differ from the function's ``defaults``
        replace its values)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"model"}
        chosen = {k: v for k, v in given.items() if k in names}
        if isinstance(model, RunSettings):
            return model.replace(**{k: v for k, v in chosen.items() if v != defaults.get(k)})
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model={model!r}: give a model name (see list_models) or a "
                              "RunSettings.")  # fmt: skip
        return cls(model=model, **chosen)


def _setter(settings: RunSettings):
    """A setter for a frozen dataclass's own __post_init__ (normal forms of its fields)."""

    def fix(**values) -> None:
        for key, value in values.items():
            object.__setattr__(settings, key, value)

    return fix


def parse_indices(value, what: str, count: int | None = None) -> tuple[int, ...] | None:
    """'3, 2, 1' / [3, 2, 1] / ['3: B4', ...] -> (3, 2, 1); empty -> None. Checked against count."""
    if _empty(value):
        return None
    items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else list(value)
    out = []
    for item in items:
        text = str(item).split(":", 1)[0].strip()
        if not re.fullmatch(r"-?\d+", text):
            raise ConfigError(f"{what}: {item!r} is not a number. Give whole numbers separated by "
                              "commas, e.g. 3, 2, 1.")  # fmt: skip
        index = int(text)
        if count is not None and not -count <= index < count:
            raise ConfigError(f"{what}: {index} is out of range; there are {count} to choose "
                              f"from (0 to {count - 1}).")  # fmt: skip
        out.append(index % count if count is not None else index)
    return tuple(out)


def _empty(value) -> bool:
    return value is None or (isinstance(value, str | list | tuple) and not len(value))


def _whole_number(value, what: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise ConfigError(f"{what} must be a whole number; got {value!r}.")
    return int(number)


def _channels(channels) -> tuple[int, ...] | None:
    if channels is None:
        return None
    if isinstance(channels, str) or not isinstance(channels, Sequence) or not channels:
        raise ConfigError(f"channels={channels!r}: give image channel numbers, e.g. (3, 2, 1), "
                          "or leave it empty for all.")  # fmt: skip
    if any(isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 0 for c in channels):
        raise ConfigError(f"channels={list(channels)!r}: each must be a channel number, 0 or "
                          "more.")  # fmt: skip
    return tuple(int(c) for c in channels)


def _one_of(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not known; use one of {', '.join(allowed)}.")


def _is_tensor(image) -> bool:
    """A ready tensor (used as it is) or a stack of images: nothing to follow or check here."""
    return isinstance(image, torch.Tensor) or (
        not isinstance(image, ImageArray) and getattr(image, "ndim", 3) == 4
    )


def takes_settings(**defaults) -> Callable:
    """Give a public function the run settings as typed keyword arguments.

    The function is written with a ``settings: RunSettings`` parameter; the public function
    has ``model`` in its place (a name or a RunSettings; None allowed where ``settings`` has a
    default) and every RunSettings field as a keyword after its own, its signature and
    docstring listing each (with ``defaults`` for this function, e.g. ``pretrained=True``).
    It calls the function with ``RunSettings.of(model, ...)``. So the names stay spelled once,
    here, and ``inspect.signature`` and ``help`` show them all."""
    fields = [f for f in dataclasses.fields(RunSettings) if f.name != "model"]
    values = {f.name: defaults.get(f.name, f.default) for f in fields}
    lines = [f"        {name}: {SETTING_DOCS[name]}." for name in ("model", *values)]
    appendix = "\n\n    Run settings (keywords):\n" + "\n".join(lines) + "\n"

    def decorate(fn: Callable) -> Callable:
        own = inspect.signature(fn)
        first = next(iter(own.parameters))
        optional = own.parameters["settings"].default is not inspect.Parameter.empty
        model = inspect.Parameter(
            "model",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None if optional else inspect.Parameter.empty,
            annotation="str | RunSettings" + " | None" * optional,
        )
        keywords = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                      default=values[f.name], annotation=f.type)
                    for f in fields]  # fmt: skip
        params = [model if p.name == "settings" else p for p in own.parameters.values()]
        signature = own.replace(parameters=[*params, *keywords])

        @functools.wraps(fn)
        def public(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:  # a misspelt keyword is a user's mistake: say which
                known = ", ".join(p for p in signature.parameters if p not in (first, "model"))
                raise ConfigError(f"{fn.__name__}: {exc}. Its keywords are {known}.") from None
            bound.apply_defaults()
            given = dict(bound.arguments)
            chosen = {f.name: given.pop(f.name) for f in fields}
            name = given.pop("model")
            settings = (
                RunSettings(**chosen) if name is None else RunSettings.of(name, chosen, values)
            )
            return fn(settings=settings, **given)

        public.__signature__ = signature
        public.__doc__ = (fn.__doc__ or "").rstrip() + appendix
        public.settings_defaults = dict(values)  # for the CLI and the app's forms
        return public

    return decorate
