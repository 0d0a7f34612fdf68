"""What a model is, without building its weights: parameter count and feature levels traced on
the meta device, and ``model_info`` (family, size, accuracy, input, licence, levels)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache

from torch import nn

from modelkit.errors import ModelkitError
from modelkit.models.features import trace_levels
from modelkit.models.pretrained import weights_on_disk
from modelkit.models.registry import ModelEntry, get_entry, get_pretrained_cfg

# --- building without weights (meta device) ---------------------------------------------------


class _MetaParams(threading.local):
    """Per-thread switch: while on, new parameters go to the meta device (no memory, no init)."""

    depth = 0


_META = _MetaParams()
_PATCH_LOCK = threading.Lock()
_patch_users = 0  # threads inside _params_on_meta; the patch is installed while this is > 0
_original_register = nn.Module.register_parameter


def _register_parameter(self, name, param):
    _original_register(self, name, param)
    if param is not None and _META.depth:  # other threads see the original behaviour
        self._parameters[name] = nn.Parameter(param.to("meta"), param.requires_grad)


@contextmanager
def _params_on_meta():
    """Build without weights. ``torch.device("meta")`` cannot: RegNet reads tensor values while
    it builds. The patch acts only in this thread, so real builds elsewhere are untouched."""
    global _patch_users
    with _PATCH_LOCK:
        _patch_users += 1
        nn.Module.register_parameter = _register_parameter
    _META.depth += 1
    try:
        yield
    finally:
        _META.depth -= 1
        with _PATCH_LOCK:
            _patch_users -= 1
            if not _patch_users:
                nn.Module.register_parameter = _original_register


def _freeze(kwargs: dict) -> tuple:
    return tuple(sorted(kwargs.items()))


@lru_cache(maxsize=256)
def _meta_facts(arch: str, frozen_kwargs: tuple) -> tuple[int, tuple]:
    """(parameter count, feature levels) of an architecture, without allocating weights."""
    entry = get_entry(arch)
    kwargs = dict(frozen_kwargs)
    try:
        with _params_on_meta():
            model = entry.builder(**kwargs)
    except Exception as exc:  # a registered builder that is broken: say which model, go on
        raise ModelkitError(
            f"The model {arch!r} could not be built ({type(exc).__name__}: {exc}). "
            "Choose another model."
        ) from exc
    model = model.to("meta").eval()
    params = sum(p.numel() for p in model.parameters())
    spec = entry.family
    size = kwargs.get(spec.size_kwarg) if spec.size_kwarg else None
    levels = trace_levels(model, spec, int(size or spec.trace_size))
    return params, tuple(levels)


def model_levels(entry: ModelEntry, kwargs: dict) -> list[dict]:
    build = {k: v for k, v in kwargs.items() if k != "num_classes"}
    return [dict(level) for level in _meta_facts(entry.name, _freeze(build))[1]]


def model_info(name: str) -> dict:
    """What a model is, without building it: family, size, accuracy, input, licence, levels."""
    entry = get_entry(name)
    cfg = get_pretrained_cfg(name)
    params, levels = _meta_facts(entry.name, ())
    return {
        "name": entry.name,
        "family": entry.family.name,
        "params": params,
        "gflops": cfg.gflops,
        "acc@1": cfg.metrics.get("acc@1"),
        "acc@5": cfg.metrics.get("acc@5"),
        "input_size": cfg.input_size,
        "fixed_input_size": tuple(cfg.input_size[1:]) if entry.family.fixed_input else None,
        "mean": cfg.mean,
        "std": cfg.std,
        "interpolation": cfg.interpolation,
        "license": cfg.license,
        "tags": list(entry.cfgs),
        "default_tag": entry.default_tag,
        "file_size_mb": cfg.file_size_mb,
        "feature_levels": [
            {k: lvl[k] for k in ("index", "module", "channels", "reduction")} for lvl in levels
        ],
        "weights_on_disk": weights_on_disk(cfg),
    }
