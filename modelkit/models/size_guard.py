"""The model-size guard: a model too large for this server is refused before any download or
build, in words, within a second and without allocating its weights.

The size comes from the facts that ship with modelkit (torchvision: ``model_sizes.json``; timm:
``timm_facts.json.gz``), else from building the model on the meta device (a deployer's own
registered model; no memory for weights). The build's peak is estimated as parameters x 4 bytes
(models are built in float32) x ``BUILD_FACTOR``, measured by ``bench/bench_size_guard.py`` (peak
RSS of real builds against their parameter bytes), and compared with ``MODELKIT_MAX_MODEL_MB``
(``modelkit.hosting``).

    check_model_size(name)              # raises ModelTooLargeError; create_model's first line
    too_large(name, params) -> str      # "" or the reason, for search and the model card
    known_params(name) -> int | None    # shipped facts, else the meta device
    build_peak_bytes(params) -> int
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from modelkit import hosting
from modelkit.errors import ModelTooLargeError
from modelkit.hosting import human_bytes
from modelkit.models.no_init import params_on_meta
from modelkit.models.registry import get_entry
from modelkit.models.timm_source import stored_facts, timm_name

BYTES_PER_PARAM = 4  # every model is built in float32 (fp16 is applied when it runs)
# peak RSS growth of a build / parameter bytes (bench/bench_size_guard.py, 11 models): 2.0-2.1
# for a .pth checkpoint read beside the built model (torchvision, timm's Swin), 1.0-1.2 for a
# random build or timm's assigning load, at most 2.32 (efficientnet_b0: the fixed costs of a
# 20 MB model). The margin above it covers allocator slack.
BUILD_FACTOR = 2.5
# parameter counts of the built-in models for the pinned torchvision (scripts/model_sizes.py):
# search shows sizes without building 83 models (13 s on the page's first search)
SHIPPED_SIZES = Path(__file__).with_name("model_sizes.json")


@lru_cache(maxsize=1)
def shipped_sizes() -> dict[str, int]:
    """name -> parameter count, when the file was made for the installed torchvision."""
    import torchvision

    try:
        data = json.loads(SHIPPED_SIZES.read_text())
    except (OSError, ValueError):
        return {}
    return data["params"] if data.get("torchvision") == torchvision.__version__ else {}


@lru_cache(maxsize=256)
def _count_on_meta(builder) -> int | None:
    """Parameters of a model built on the meta device (no weights allocated); None when it
    cannot be built that way (its own build then reports what is wrong). Keyed by the builder,
    so that a model registered again under the same name is counted again."""
    import torch

    for place in (params_on_meta, lambda: torch.device("meta")):
        try:
            with place():
                model = builder()
            return sum(p.numel() for p in model.parameters())
        except Exception:  # noqa: BLE001, S112 - try the other way, else unknown
            continue
    return None


def known_params(name: str) -> int | None:
    """Parameters of ``name`` (``arch[.tag]``) with default settings, without building its
    weights: the shipped facts, else a build on the meta device."""
    entry = get_entry(name)
    if entry.source == "timm":
        params = stored_facts().get(timm_name(entry.name), {}).get("params")
    else:
        params = shipped_sizes().get(entry.name)
    return params if params is not None else _count_on_meta(entry.builder)


def build_peak_bytes(params: int) -> int:
    """The estimated peak memory of building a model of ``params`` parameters."""
    return int(params * BYTES_PER_PARAM * BUILD_FACTOR)


def _count(params: int) -> str:
    if params >= 1e9:
        return f"{params / 1e9:,.1f} billion"
    return f"{params / 1e6:,.1f} million"


def too_large(name: str, params: int | None, max_model_mb: int | None = None) -> str:
    """Why this server cannot run ``name`` (a sentence), or "" when it can or the size is not
    known. ``max_model_mb``: the limit (default: MODELKIT_MAX_MODEL_MB read now)."""
    if params is None:
        return ""
    limit = (max_model_mb or hosting.limits().max_model_mb) * 2**20
    if build_peak_bytes(params) <= limit:
        return ""
    size, allowed = human_bytes(params * BYTES_PER_PARAM), human_bytes(limit / BUILD_FACTOR)
    return (
        f"{name} has {_count(params)} parameters, about {size} in memory; this server allows "
        f"models up to {allowed} (MODELKIT_MAX_MODEL_MB)."
    )


def check_model_size(name: str) -> None:
    """Refuse ``name`` when building it would need more memory than this server allows
    (ModelTooLargeError, in words); nothing is downloaded or allocated. Unknown names pass
    (the build names the mistake)."""
    try:
        params = known_params(name)
    except Exception:  # noqa: BLE001 - an unknown name: create_model's own error says which
        return
    reason = too_large(name, params)
    if reason:
        raise ModelTooLargeError(
            f"{reason} Run it on a machine with more memory, or pick a smaller model."
        )
