"""What the pages share: the uploaded image, the form read into a ``FormRun`` (RunSettings plus
top-k and levels), the model of a run, prediction rows. No gradio here."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelkit.app import exports
from modelkit.errors import ConfigError, ImageReadError
from modelkit.images.limits import ImageArray
from modelkit.images.read import read_image
from modelkit.models.sensors import name_bands
from modelkit.runtime.settings import RunSettings, parse_indices

EXPORTS = exports.ExportDir()


PHOTO_BANDS = {3: ["red", "green", "blue"], 4: ["red", "green", "blue", "alpha"]}


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime_ns: int, size: int) -> ImageArray:
    image = read_image(Path(path).read_bytes(), Path(path).name)
    if image.format in ("png", "jpeg", "webp", "bmp", "gif") and not image.band_names:
        names = PHOTO_BANDS.get(image.num_channels)  # a photo's channels, by their colours
        return dataclasses.replace(image, band_names=names) if names else image
    return name_bands(image)  # a recognised sensor's band names where the file names none


def load_image(file: str | None) -> ImageArray:
    """The image of a gr.File value (a path gradio chose for the upload, never one we build)."""
    if not file:
        raise ImageReadError("No image yet: upload a file or click one of the examples.")
    try:
        stat = Path(file).stat()
    except FileNotFoundError:  # a public host prunes old uploads (modelkit/app/cleanup.py)
        raise ImageReadError("That upload is no longer on the server (old uploads are removed): "
                             "upload the file again.") from None  # fmt: skip
    return _read_cached(str(file), stat.st_mtime_ns, stat.st_size)


# the setup form's fields, in the order of ``SetupForm.inputs``: the one place that order lives
FORM_FIELDS = ("model", "pretrained", "tag", "in_chans", "channels", "num_classes", "out_indices",
               "top_k", "scaling", "device", "precision", "backend")  # fmt: skip


@dataclass(frozen=True)
class FormRun:
    """What the page's form asks for: the run's settings, and the call's own choices."""

    settings: RunSettings
    top_k: int = 5
    out_indices: tuple[int, ...] | None = None

    @classmethod
    def read(cls, values: Sequence) -> FormRun:
        """The form's raw values (in FORM_FIELDS order), checked; nonsense is a ConfigError."""
        raw = dict(zip(FORM_FIELDS, values, strict=True))
        top_k, levels = cls.read_top_k(raw.pop("top_k")), raw.pop("out_indices")
        return cls(RunSettings.from_form(raw), top_k, parse_indices(levels, "Feature levels"))

    @staticmethod
    def read_top_k(value) -> int:
        """Top-k from a form value (empty: 5)."""
        value = 5 if value in (None, "") else value
        whole = isinstance(value, int | float) and float(value).is_integer()
        if not (whole and 1 <= value <= 1000):
            raise ConfigError(f"top-k must be a whole number from 1 to 1000; got {value!r}.")
        return int(value)

    def to_dict(self) -> dict:
        out = list(self.out_indices) if self.out_indices is not None else None
        return {"settings": self.settings.to_dict(), "top_k": self.top_k, "out_indices": out}

    @classmethod
    def from_dict(cls, data: dict) -> FormRun:
        out = data.get("out_indices")
        return cls(RunSettings.from_dict(data["settings"]), int(data.get("top_k", 5)),
                   tuple(out) if out is not None else None)  # fmt: skip


def top_rows(result) -> list[dict]:
    """A Prediction's top-k as table rows (rank, label, index, probability)."""
    labels, probs, indices = result.labels, result.probabilities, result.indices
    return [
        {"rank": r + 1, "label": lab, "index": int(i), "probability": round(float(p), 6)}
        for r, (lab, p, i) in enumerate(zip(labels, probs, indices, strict=True))
    ]


def model_step(settings: RunSettings) -> str:
    """What the first model step will do: a first use builds and loads weights (the slow part)."""
    from modelkit.runtime.run import default_model_cache

    if settings.model_key() in default_model_cache():
        return f"Running {settings.name}"
    weights = " and loading its weights" if settings.pretrained else ""
    return f"Building {settings.name}{weights} (first use; later runs are faster)"


def cached_model(settings: RunSettings):
    """The built model of these settings (from the model cache; built on a miss)."""
    return settings.build()[0]


def head_in_use(head):
    """The page's taught head (one State that Teach fills and Explore, Explain, Batch read)."""
    if head is None:
        raise ConfigError("No taught head yet: train one on the Teach tab, or upload an earlier "
                          "head file there.")  # fmt: skip
    return head


def shows_downloads(fn):
    """A handler whose Hub downloads (weights not on disk yet) show in its ``progress`` argument
    (a gr.Progress): the file's name, megabytes and percent. Put it above ``@on_gpu``, so that on
    ZeroGPU the download in the main process, before the GPU call, shows too."""
    signature = inspect.signature(fn)
    default = signature.parameters["progress"].default

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        progress = signature.bind_partial(*args, **kwargs).arguments.get("progress", default)
        if not callable(progress):
            return fn(*args, **kwargs)

        from modelkit.models.hub import download_listener

        def show(download) -> None:
            progress(download.fraction, desc=download.text)

        with download_listener(show):
            return fn(*args, **kwargs)

    return handler
