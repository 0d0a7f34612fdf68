"""What the pages ask of the engine: the uploaded image, the form's setup, a prediction or the
feature maps, and their rows. No gradio here; every page shares these few lines."""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

from modelkit.app import exports
from modelkit.app.form import Setup
from modelkit.errors import ImageReadError
from modelkit.images.limits import ImageArray
from modelkit.images.read import read_image

EXPORTS = exports.ExportDir()


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, mtime_ns: int, size: int) -> ImageArray:
    return read_image(Path(path).read_bytes(), Path(path).name)


def load_image(file: str | None) -> ImageArray:
    """The image of a gr.File value (a path gradio chose for the upload, never one we build)."""
    if not file:
        raise ImageReadError("No image yet: upload a file or click one of the examples.")
    stat = Path(file).stat()
    return _read_cached(str(file), stat.st_mtime_ns, stat.st_size)


def make_setup(model, pretrained, tag, in_chans, channels, num_classes, levels, top_k, *rest):
    """The setup form's values, in the order of ``SetupForm.inputs``, as a checked Setup."""
    scaling, device, precision = rest
    return Setup.from_form(
        model=model, pretrained=pretrained, tag=tag, in_chans=in_chans, channels=channels,
        num_classes=num_classes, out_indices=levels, top_k=top_k, scaling=scaling,
        device=device, precision=precision,
    )  # fmt: skip


def engine_kwargs(setup: Setup, image: ImageArray | None, **extra) -> dict:
    """Setup -> the engine's keyword arguments (the one place that knows the engine's names)."""
    return dict(
        image=image, model=setup.name, pretrained=setup.pretrained, in_chans=setup.in_chans,
        num_classes=setup.num_classes, channels=setup.channels, scaling=setup.scaling,
        device=setup.device, precision=setup.precision, **extra,
    )  # fmt: skip


def run_predict(setup: Setup, image: ImageArray):
    from modelkit.runtime import engine

    return engine.predict(**engine_kwargs(setup, image, top_k=setup.top_k))


def run_features(setup: Setup, image: ImageArray):
    from modelkit.runtime import engine

    return engine.features(**engine_kwargs(setup, image, out_indices=setup.out_indices))


def field(obj, name: str):
    """A result's field, whether the result is a dataclass or its dict form from the cache."""
    return obj[name] if isinstance(obj, dict) else getattr(obj, name)


def top_rows(result) -> list[dict]:
    labels, probs, indices = (field(result, k) for k in ("labels", "probabilities", "indices"))
    return [
        {"rank": r + 1, "label": lab, "index": int(i), "probability": round(float(p), 6)}
        for r, (lab, p, i) in enumerate(zip(labels, probs, indices, strict=True))
    ]


def model_key(setup: Setup):
    from modelkit.runtime.engine import model_key as engine_model_key

    kw = engine_kwargs(setup, image=None)
    del kw["image"]
    return engine_model_key(kw.pop("model"), **kw)


def model_step(setup: Setup) -> str:
    """What the first model step will do: a first use builds and loads weights (the slow part)."""
    from modelkit.runtime.engine import default_model_cache

    if model_key(setup) in default_model_cache():
        return f"Running {setup.name}"
    weights = " and loading its weights" if setup.pretrained else ""
    return f"Building {setup.name}{weights} (first use; later runs are faster)"


def cached_model(setup: Setup):
    """The built model of a setup (from the model cache; built on a miss)."""
    from modelkit.runtime.engine import default_model_cache

    model, _ = default_model_cache().get(model_key(setup))
    return model


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
