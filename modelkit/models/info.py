"""What a model is, without building its weights: parameter count and feature levels traced on
the meta device, and ``model_info`` (family, size, accuracy, input, licence, levels)."""

from __future__ import annotations

from functools import lru_cache

import torch

from modelkit.errors import ModelkitError
from modelkit.hosting import limits
from modelkit.models.features import trace_levels
from modelkit.models.no_init import params_on_meta
from modelkit.models.pretrained import weights_on_disk
from modelkit.models.registry import ModelEntry, get_entry, get_pretrained_cfg
from modelkit.models.size_guard import SHIPPED_SIZES, shipped_sizes, too_large  # noqa: F401


def model_params(name: str) -> int:
    """Parameters of a built-in (non-timm) model as built with default settings."""
    shipped = shipped_sizes().get(name)
    return shipped if shipped is not None else _meta_facts(name, ())[0]


def _freeze(kwargs: dict) -> tuple:
    return tuple(sorted(kwargs.items()))


@lru_cache(maxsize=256)
def _meta_facts(arch: str, frozen_kwargs: tuple) -> tuple[int, tuple]:
    """(parameter count, feature levels) of an architecture, without allocating weights."""
    entry = get_entry(arch)
    kwargs = dict(frozen_kwargs)
    try:
        with params_on_meta():
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


def build_timm_facts(entry: ModelEntry) -> dict:
    """{"params", "levels"} of a timm architecture built on the meta device (a real build for
    the few that read weights while building), or {"error"} when it cannot be built here."""
    from modelkit.models.timm_source import levels_of

    try:
        try:
            with params_on_meta():
                model = entry.builder()
        except NotImplementedError:  # a few read weights while building: a real build
            model = entry.builder()
        except RuntimeError:  # hybrids run a probe forward while building: all on the meta device
            with torch.device("meta"):
                model = entry.builder()
        levels = [{k: v for k, v in lvl.items() if k != "num_chs"} for lvl in levels_of(model)]
        return {"params": sum(p.numel() for p in model.parameters()), "levels": levels}
    except Exception as exc:  # noqa: BLE001 - a timm model that cannot be built here
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def timm_facts(entry: ModelEntry) -> dict:
    """Parameters and feature levels of a timm architecture: shipped for the pinned timm, else
    built on the meta device once and kept on disk (a failure too, raised as ModelkitError)."""
    from modelkit.models.timm_source import store_facts, stored_facts, timm_name

    arch = timm_name(entry.name)
    facts = stored_facts().get(arch)
    if facts is None:
        facts = build_timm_facts(entry)
        store_facts(arch, facts)
    if "error" in facts:
        raise ModelkitError(
            f"The model {entry.name!r} could not be built ({facts['error']}). Choose another model."
        )
    return facts


def _weights_on_disk(entry: ModelEntry, cfg, repos: set[str] | None = None) -> bool:
    if entry.source != "timm":
        return weights_on_disk(cfg)
    from modelkit.models.hub import hub_location
    from modelkit.models.timm_source import repos_on_disk

    where = hub_location(cfg)
    return bool(where) and where[0] in (repos if repos is not None else repos_on_disk())


def model_info(name: str) -> dict:
    """What a model is, without building it: family, size, accuracy, input, licence, levels."""
    entry = get_entry(name)
    cfg = get_pretrained_cfg(name)
    if entry.source == "timm":
        facts = timm_facts(entry)
        params, levels = facts["params"], facts["levels"]
    else:
        params, levels = _meta_facts(entry.name, ())
    fixed = entry.family.fixed_input or (entry.source == "timm" and _fixed(cfg))
    return {
        "name": entry.name,
        "source": entry.source,
        "family": entry.family.name,
        "params": params,
        "gflops": cfg.gflops,
        "acc@1": cfg.metrics.get("acc@1"),
        "acc@5": cfg.metrics.get("acc@5"),
        "input_size": cfg.input_size,
        "fixed_input_size": tuple(cfg.input_size[1:]) if fixed else None,
        "crop_pct": cfg.crop_pct,
        "num_classes": cfg.num_classes,
        "bands": list(cfg.bands),
        "mean": cfg.mean,
        "std": cfg.std,
        "interpolation": cfg.interpolation,
        "license": cfg.license,
        "license_note": _license_note(cfg.license) if entry.source == "timm" else "",
        "tags": list(entry.cfgs),
        "default_tag": entry.default_tag,
        "file_size_mb": cfg.file_size_mb,
        "feature_levels": [
            {k: lvl[k] for k in ("index", "module", "channels", "reduction")} for lvl in levels
        ],
        "weights_on_disk": _weights_on_disk(entry, cfg),
        "too_large": too_large(entry.name, params),  # "" or why this server cannot run it
    }


def _license_note(license: str) -> str:
    from modelkit.models.timm_source import license_note

    return license_note(license)


def _fixed(cfg) -> bool:
    from modelkit.models.timm_source import load_index, timm_name

    arch = load_index()["archs"].get(timm_name(cfg.architecture), {})
    tag = arch.get("tags", {}).get(cfg.tag) or next(iter(arch.get("tags", {}).values()), {})
    return bool(tag.get("fixed_input_size"))


def model_summaries(names: list[str]) -> list[dict]:
    """What search shows per model, without building any: family, source, parameters (None for
    a timm model not looked at yet), top-1, tags, weights on disk, licence, and why this server
    cannot run it ("too_large", "" when it can)."""
    from modelkit.models.timm_source import license_note, repos_on_disk, stored_facts

    repos = repos_on_disk() if any(n.startswith("timm/") for n in names) else set()
    facts = stored_facts() if repos or any(n.startswith("timm/") for n in names) else {}
    out, max_model_mb = [], limits().max_model_mb
    for name in names:
        entry = get_entry(name)
        cfg = get_pretrained_cfg(name)
        if entry.source == "timm":
            params = facts.get(name[len("timm/") :], {}).get("params")
        else:
            params = model_params(entry.name)
        out.append({
            "name": name, "family": entry.family.name, "source": entry.source, "params": params,
            "acc@1": cfg.metrics.get("acc@1"), "tags": list(entry.cfgs),
            "weights_on_disk": _weights_on_disk(entry, cfg, repos) if entry.cfgs else False,
            "license": cfg.license, "license_note": license_note(cfg.license) if entry.cfgs else "",
            "too_large": too_large(entry.name, params, max_model_mb),
        })  # fmt: skip
    return out
