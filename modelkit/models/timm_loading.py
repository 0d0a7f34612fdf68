"""Pretrained timm models: timm builds and reads the weights, modelkit adapts and reports.

Weights are found by us (safe loading, Hub cache, offline errors) and handed to timm, so its file
readers and checkpoint filters run. Three roads, the first that fits:

- without init (the usual one): timm builds with its parameters on the meta device and its own
  loader assigns the checkpoint's tensors; the first conv is adapted by modelkit's rules
  (repeat and scale, rgb_channels, random) just before the load. No random initialisation is
  paid for, which is most of what building a model costs.
- with init: the same for builders that compute from their weights while they build (Swin's
  attention masks, hybrid stems); costs what timm's own does.
  On both, a checkpoint with its own head (another class count) is built again with that count.
- plain (checkpoints with other keys or shapes, custom loaders): timm builds and loads at the
  checkpoint's class and channel counts, then the model is rebuilt for ``in_chans`` and loaded
  with the adapted filters. This road also says in words why a checkpoint does not fit.
"""

from __future__ import annotations

from contextlib import nullcontext

from torch import nn

from modelkit.config import PretrainedCfg
from modelkit.errors import ConfigError, ModelkitError, WeightsLoadError
from modelkit.models.hub import timm_weights, weight_shapes
from modelkit.models.no_init import (
    NeedsRealInit,
    has_meta_tensors,
    loads_assigning,
    params_on_meta,
)
from modelkit.models.pretrained import adapt_input_conv as adapt_filters
from modelkit.models.registry import ModelEntry
from modelkit.models.weights_store import in_use


def build(entry: ModelEntry, timm_id: str, what: str, **kwargs) -> nn.Module:
    """timm.create_model with any failure turned into a ConfigError naming model and settings."""
    import timm

    try:
        return timm.create_model(timm_id, **kwargs)
    except ModelkitError:
        raise
    except Exception as exc:  # timm raises anything: assertions, TypeErrors for unknown kwargs
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ConfigError(
            f"{entry.name} cannot be built with {what} ({type(exc).__name__}: {text}). "
            "Change that setting (in_chans, num_classes, img_size) or choose another model."
        ) from None


def paths(value: str) -> list[str]:
    return [p for p in (value or "").split(",") if p]


def settings(**kw) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items() if v is not None) or "default settings"


class _Unfit(Exception):
    """The checkpoint does not fit the road without init; the plain road takes it."""


class _OwnHead(Exception):
    """The checkpoint's classifier has its own class count: build again with it."""

    def __init__(self, classes: int):
        super().__init__(classes)
        self.classes = classes


def _adapt_stem(name: str, sd: dict, shapes: dict, cfg, in_chans: int, mode: str, rgb) -> list:
    """The first conv(s) in ``sd`` adapted in place to the ``shapes`` of the model they go into,
    by modelkit's rules; the notes for the report."""
    notes = []
    for conv in paths(cfg.first_conv):
        key = f"{conv}.weight"
        if key not in sd or key not in shapes:
            continue
        want, old = shapes[key][1], sd[key].shape[1]
        if rgb and want != in_chans:
            raise ConfigError(
                f"{name} does not feed the input channels straight into {conv}, so "
                "in_chans_init='rgb' cannot place R, G, B filters; use 'repeat' or 'random'."
            )
        sd[key], how = adapt_filters(sd[key], want, mode, rgb)
        notes.append(f"{key}: {old} -> {want} channels, {how}")
    return notes


def _assigned(name, timm_id, cfg, overlay, in_chans, mode, rgb, kwargs, init: bool) -> tuple:
    """(model, notes): timm builds (parameters on the meta device unless ``init``) and its loader
    assigns the checkpoint's tensors; ``prepare`` adapts the stem by our rules just before
    (``first_conv=None`` stops timm doing it its way). _Unfit: the checkpoint's keys or shapes
    are not the model's; NeedsRealInit (or a timm error): the builder needs real weights."""
    import timm

    notes: list[str] = []
    loaded: list[bool] = []

    def prepare(model: nn.Module, sd: dict) -> dict:
        loaded.append(True)
        target = model.state_dict()
        if sd.keys() != target.keys():
            raise _Unfit
        if in_chans != cfg.in_chans or rgb:
            shapes = {k: v.shape for k, v in target.items()}
            notes.extend(_adapt_stem(name, sd, shapes, cfg, in_chans, mode, rgb))
        heads = {f"{c}.{p}" for c in paths(cfg.classifier) for p in ("weight", "bias")}
        for key, want in target.items():
            if sd[key].shape != want.shape:
                if key in heads and sd[key].shape[1:] == want.shape[1:]:
                    # timm cut label_offset rows off (it does when the class count is the cfg's)
                    raise _OwnHead(sd[key].shape[0] + overlay.get("label_offset", 0))
                raise _Unfit
            if sd[key].dtype != want.dtype and sd[key].is_floating_point():
                sd[key] = sd[key].to(want.dtype)  # what a copying load would have done
        return sd

    with nullcontext() if init else params_on_meta(real_buffers=True), loads_assigning(prepare):
        model = timm.create_model(
            timm_id, pretrained=True, pretrained_cfg_overlay={**overlay, "first_conv": None},
            in_chans=in_chans, **kwargs,
        )  # fmt: skip
    if not loaded:  # timm loaded it another way (custom_load): the plain road lets it
        raise _Unfit
    if has_meta_tensors(model):
        raise NeedsRealInit(f"{timm_id} kept tensors on the meta device")
    return model, notes


def _without_plain(name, timm_id, cfg, weights, in_chans, mode, rgb, kwargs) -> tuple | None:
    """(model, notes, class count) without init, else with timm's init; None: the plain road.
    A checkpoint with its own head is built again with its class count."""
    classes, init = cfg.num_classes, False
    while True:
        try:
            model, notes = _assigned(
                name, timm_id, cfg, _overlay(cfg, weights, classes), in_chans, mode, rgb,
                dict(kwargs, num_classes=classes), init=init,
            )  # fmt: skip
            return model, notes, classes
        except ModelkitError:  # a setting the weights cannot take, said in words
            raise
        except _OwnHead as head:
            if classes != cfg.num_classes or head.classes == classes:
                return None
            classes = head.classes
        except _Unfit:
            return None
        except Exception:  # noqa: BLE001 - NeedsRealInit, or timm failing: the next road
            if init:  # repeats the build and turns its failure into words
                return None
            init = True


def _adapt_channels(entry, timm_id, model, cfg, in_chans, mode, rgb, kwargs) -> tuple:
    """Rebuild for ``in_chans`` and load the loaded model's weights into it with the first
    conv(s) adapted by modelkit's rules. The rebuild skips the init (parameters on the meta
    device) unless the builder computes from its weights (Swin's masks, hybrid stems)."""
    sd = model.state_dict()
    what = settings(in_chans=in_chans)
    try:
        with params_on_meta():
            target = build(entry, timm_id, what, in_chans=in_chans, **kwargs)
    except ConfigError:
        target = None
    if target is None or any(b.is_meta for b in target.buffers()):
        target = build(entry, timm_id, what, in_chans=in_chans, **kwargs)
    shapes = {k: v.shape for k, v in target.state_dict().items()}
    notes = _adapt_stem(entry.name, sd, shapes, cfg, in_chans, mode, rgb)
    bad = [k for k, s in shapes.items() if k in sd and sd[k].shape != s]
    if bad:
        raise ConfigError(
            f"{entry.name} cannot take in_chans={in_chans} with pretrained weights: besides its "
            f"first conv, {', '.join(bad[:3])} depend on the channel count. Use in_chans="
            f"{cfg.in_chans}, or pretrained=False."
        )
    try:
        target.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as exc:
        raise WeightsLoadError(
            f"Adapting {entry.name} to {in_chans} channels failed: {str(exc)[:200]}"
        ) from None
    return target, notes


def _plain(entry, timm_id, cfg, weights, where, in_chans, mode, rgb, kwargs) -> tuple:
    """(model, notes, source class count) the plain way (see the module's text)."""
    shapes = weight_shapes(weights)
    head = [f"{c}.weight" for c in paths(cfg.classifier) if f"{c}.weight" in shapes]
    src_classes = cfg.num_classes
    if head and shapes[head[0]][0] - cfg.label_offset != cfg.num_classes:
        src_classes = int(shapes[head[0]][0])  # a checkpoint with its own head
    overlay = _overlay(cfg, weights, src_classes)
    what = settings(pretrained=True, **kwargs)
    try:
        model = build(entry, timm_id, what, pretrained=True, pretrained_cfg_overlay=overlay,
                      in_chans=cfg.in_chans, num_classes=src_classes, **kwargs)  # fmt: skip
    except ConfigError as exc:
        raise WeightsLoadError(f"The weights from {where} do not fit {entry.name}: {exc}") from None
    notes = []
    if in_chans != cfg.in_chans or rgb:
        model, notes = _adapt_channels(
            entry, timm_id, model, cfg, in_chans, mode, rgb, dict(kwargs, num_classes=src_classes)
        )
    return model, notes, src_classes


def _overlay(cfg: PretrainedCfg, weights, num_classes: int) -> dict:
    # a file goes to timm by name: a state dict in its cfg is deep-copied (40 % of a ResNet-18
    # build), so only in-memory weights go as one
    source = {"state_dict": weights} if isinstance(weights, dict) else {"file": weights}
    overlay = {**source, "num_classes": num_classes, "input_size": cfg.input_size,
               "first_conv": paths(cfg.first_conv) or None,
               "classifier": paths(cfg.classifier) or None}  # fmt: skip
    if num_classes != cfg.num_classes:
        overlay["label_offset"] = 0  # the checkpoint's own head: nothing to cut off
    return overlay


def load_pretrained_timm(
    entry: ModelEntry, timm_id: str, cfg: PretrainedCfg, *, in_chans: int, mode: str,
    rgb: tuple[int, ...] | None, checkpoint_path, sources: dict, kwargs: dict,
) -> tuple[nn.Module, list[str], int]:  # fmt: skip
    """(model with the weights, adaptation report, the checkpoint's class count)."""
    weights, where = timm_weights(cfg, checkpoint_path, sources)
    with in_use(weights):  # a downloaded file is not evicted while it is read
        built = _without_plain(entry.name, timm_id, cfg, weights, in_chans, mode, rgb, kwargs)
        if built is None:
            built = _plain(entry, timm_id, cfg, weights, where, in_chans, mode, rgb, kwargs)
    model, notes, src_classes = built
    notes = [f"weights loaded from {where}", *notes]
    if in_chans == cfg.in_chans and not rgb and cfg.bands:
        bands = ", ".join(cfg.bands)
        notes.append(f"native {len(cfg.bands)}-band weights ({bands}): no adaptation")
    return model, notes, src_classes
