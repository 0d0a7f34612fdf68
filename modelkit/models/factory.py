"""create_model: name[.tag] -> build -> load weights -> adapt first conv and head -> wrap.

Models keep their torchvision class and state-dict keys; a mixin (one per native class, made on
the fly) adds forward_features / forward_head / reset_classifier / forward_intermediates, driven
by the family's spec. ``features_only`` swaps in a mixin whose forward returns the feature list.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import torch
from torch import nn

from modelkit.config import PretrainedCfg, data_config_for
from modelkit.errors import ConfigError, WeightsLoadError
from modelkit.models.features import (
    FamilySpec,
    FeatureInfo,
    FeaturesMixin,
    StepsMixin,
    expand_steps,
    finish_model,
    prune_for_features,
    resolve_out_indices,
    run_step,
    step_layouts,
)
from modelkit.models.info import model_levels
from modelkit.models.pretrained import adapt_input_conv as adapt_filters
from modelkit.models.pretrained import check_global_pool as _check_global_pool
from modelkit.models.pretrained import (
    check_in_chans_args,
    check_reset,
    find_state_dict,
    head_in_features,
    new_head,
    set_conv_in_chans,
)
from modelkit.models.pretrained import check_num_classes as _check_num_classes
from modelkit.models.pretrained import head_note as _head_note
from modelkit.models.registry import (
    ModelEntry,
    get_entry,
    get_pretrained_cfg,
    replace_cfg,
    split_name,
)


class ClassifierMixin(StepsMixin):
    """The timm-style classifier API, for any family described by a FamilySpec."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._mk_global_pool == "":  # reset_classifier(0, global_pool=""): unpooled features
            return self.forward_features(x)
        self.check_input_size(x)
        return super().forward(x)  # the family's own forward, untouched

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self._mk_global_pool == "":  # only with num_classes=0: the unpooled features
            return x
        spec = self._mk_spec
        steps = expand_steps(self, spec.head)
        if pre_logits:
            if spec.pre_logits is not None:
                steps = list(spec.pre_logits)
            else:
                steps = steps[: steps.index(spec.classifier)]
        for step in steps:
            x = run_step(self, step, x)
        return x

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self._mk_spec.classifier)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh head for ``num_classes`` (0: none, giving pooled features)."""
        num_classes, pool = check_reset(num_classes, global_pool, self._mk_global_pool)
        spec = self._mk_spec
        head = new_head(self.num_features, num_classes, spec.head_init, self._mk_conv_head)
        self.set_submodule(spec.classifier, head)
        self.num_classes, self._mk_global_pool, self.categories = num_classes, pool, None
        self.adaptations.append(_head_note(spec.classifier, num_classes))


_CLASSES: dict[tuple[type, type], type] = {}


def _swap_class(model: nn.Module, mixin: type) -> None:
    native = getattr(model, "_mk_native", type(model))
    key = (native, mixin)
    if key not in _CLASSES:
        _CLASSES[key] = type(native.__name__, (mixin, native), {"__module__": native.__module__})
    model.__class__ = _CLASSES[key]
    model._mk_native = native


# --- create_model -----------------------------------------------------------------------------


def _load_native(entry: ModelEntry, cfg: PretrainedCfg, sd: dict, where: str, kwargs: dict):
    """Build the architecture the checkpoint was saved from and load it strictly."""
    spec = entry.family
    if spec.remap and f"{spec.first_conv}.weight" not in sd:
        sd = spec.remap(sd)
    metadata = getattr(sd, "_metadata", None)
    sd = OrderedDict((k, v) for k, v in sd.items() if not k.startswith(spec.drop_keys or ("\0",)))
    try:
        src_classes = sd[f"{spec.classifier}.weight"].shape[0]
        src_chans = sd[f"{spec.first_conv}.weight"].shape[1]
    except KeyError as exc:
        raise WeightsLoadError(
            f"{where} is not a checkpoint for {entry.name}: it has no {exc.args[0]!r}."
        ) from None
    build = {**spec.pretrained_kwargs, **kwargs}
    if spec.size_kwarg and spec.size_kwarg not in build:
        build[spec.size_kwarg] = cfg.input_size[-1]
    model = entry.builder(num_classes=src_classes, **build)
    conv = model.get_submodule(spec.first_conv)
    if src_chans != conv.in_channels:
        set_conv_in_chans(
            conv, conv.weight.new_zeros(conv.out_channels, src_chans, *conv.kernel_size)
        )
    sd._metadata = metadata or model.state_dict()._metadata  # MNASNet needs its version
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise WeightsLoadError(
            f"The weights from {where} do not fit {entry.name} ({str(exc).splitlines()[0][:300]}). "
            "Check that the file is a checkpoint of this model."
        ) from None
    return model, src_classes, src_chans, build


def _check_args(num_classes, in_chans, global_pool, drop_rate) -> None:
    if num_classes is not None:
        _check_num_classes(num_classes)
    if in_chans is not None and (
        isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1
    ):
        raise ConfigError(f"in_chans={in_chans!r} is not valid; use a whole number >= 1.")
    if global_pool is not None:
        _check_global_pool(global_pool)
    if drop_rate is not None and not (isinstance(drop_rate, int | float) and 0 <= drop_rate < 1):
        raise ConfigError(f"drop_rate={drop_rate!r} is not valid; use a number from 0 up to 1.")


def random_parts(
    name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    in_chans_init: str = "repeat",
    with_head: bool = True,
) -> list[str]:
    """Which parts ``create_model`` would initialise at random with these settings (without
    building anything); empty when two builds give the same outputs.

    Nothing is seeded, so a rebuild draws new random weights: callers that cache results (the
    engine's disk cache) must not keep results of such a model. ``with_head=False`` is for
    feature maps, which never pass through the classifier.
    """
    from modelkit.models.sources import DETERMINISTIC_SOURCES

    # issue 23: "bands" computes statistics, nothing is drawn: only a new head is random
    if get_entry(name).source in DETERMINISTIC_SOURCES:
        return [f"head for {num_classes} classes"] if with_head and num_classes else []
    if not pretrained:
        return ["all weights"]
    parts = []
    cfg = get_pretrained_cfg(name)
    if in_chans_init == "random" and in_chans is not None and in_chans > cfg.in_chans:
        parts.append(f"first-conv filters for channels {cfg.in_chans} to {in_chans - 1}")
    if with_head and num_classes is not None and num_classes not in (0, cfg.num_classes):
        parts.append(f"head for {num_classes} classes")
    return parts


def create_model(
    name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    features_only: bool = False,
    out_indices: list[int] | tuple[int, ...] | None = None,
    global_pool: str | None = None,
    drop_rate: float | None = None,
    checkpoint_path: str | None = None,
    pretrained_cfg_overlay: dict | None = None,
    in_chans_init: str = "repeat",
    rgb_channels: tuple[int, int, int] | None = None,
    **kwargs,
) -> nn.Module:
    """Build ``name`` (optionally ``arch.tag``), load and adapt weights, return it in eval mode.

    Extra ``kwargs`` go to the family's builder (e.g. ``image_size`` for ViT).
    ``checkpoint_path`` or an overlay ``state_dict``/``file`` load weights even without
    ``pretrained=True``.
    """
    entry = get_entry(name)
    spec: FamilySpec = entry.family
    cfg = get_pretrained_cfg(name)
    overlay = dict(pretrained_cfg_overlay or {})
    sources = {k: overlay.pop(k) for k in ("state_dict", "file") if k in overlay}
    cfg = replace_cfg(cfg, **overlay) if overlay else cfg
    _check_args(num_classes, in_chans, global_pool, drop_rate)
    load = bool(pretrained or checkpoint_path or sources)
    if "num_classes" in kwargs or "weights" in kwargs:
        raise ConfigError(
            "Pass num_classes as its own argument and use pretrained=True for weights."
        )
    if entry.source == "spectral":  # issue 23: "bands", statistics without a network
        from modelkit.models.bands import create_bands_model

        return create_bands_model(
            cfg, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
            out_indices=out_indices, global_pool=global_pool, checkpoint_path=checkpoint_path,
            kwargs=kwargs,
        )  # fmt: skip
    if entry.source == "timm":  # timm models bring their own methods: no FamilySpec steps
        from modelkit.models.timm_factory import create_timm_model

        rgb = check_in_chans_args(in_chans or cfg.in_chans, in_chans_init, rgb_channels)
        return create_timm_model(
            entry, cfg, load=load, num_classes=num_classes, in_chans=in_chans,
            features_only=features_only, out_indices=out_indices, global_pool=global_pool,
            drop_rate=drop_rate, checkpoint_path=checkpoint_path, sources=sources, rgb=rgb,
            in_chans_init=in_chans_init, kwargs=kwargs,
        )  # fmt: skip

    if load:
        sd, where = find_state_dict(cfg, checkpoint_path, sources)
        model, src_classes, src_chans, kwargs = _load_native(entry, cfg, sd, where, kwargs)
        if checkpoint_path or sources:
            cfg = dataclasses.replace(cfg, file=str(checkpoint_path or sources.get("file") or ""))
            cfg = dataclasses.replace(cfg, source="local") if checkpoint_path else cfg
        adaptations = [f"weights loaded from {where}"]
    else:
        # num_classes=0 is built with the default head, then the head is removed (below)
        src_classes, src_chans = num_classes or cfg.num_classes, 3
        model = entry.builder(num_classes=src_classes, **kwargs)
        adaptations = []
    in_chans = in_chans or src_chans
    rgb = check_in_chans_args(in_chans, in_chans_init, rgb_channels)
    data_config = cfg.data_config()
    if spec.size_kwarg and spec.size_kwarg in kwargs:
        size = int(kwargs[spec.size_kwarg])
        data_config = dataclasses.replace(data_config, input_size=(3, size, size), resize_size=None)

    # googlenet/inception_v3 re-normalise 3 channels inside; off for other counts, same maths.
    if getattr(model, "transform_input", False) and (in_chans != 3 or rgb):
        model.transform_input = False
        data_config = dataclasses.replace(data_config, mean=(0.5,) * 3, std=(0.5,) * 3)
        adaptations.append(
            "transform_input turned off (it assumes 3 channels); inputs are normalised with "
            "mean = std = 0.5 instead, which is what it computed"
        )

    conv = model.get_submodule(spec.first_conv)
    if in_chans != conv.in_channels or rgb:
        weight = conv.weight.detach()
        mode = in_chans_init if load else "repeat"
        new, how = adapt_filters(weight, in_chans, mode, rgb)
        with torch.no_grad():
            set_conv_in_chans(conv, new.clone())
        how = how if load else "random weights"
        adaptations.append(
            f"{spec.first_conv}.weight: {weight.shape[1]} -> {in_chans} channels, {how}"
        )
    data_config = data_config_for(data_config, in_chans, rgb)

    target = num_classes if num_classes is not None else src_classes
    # None with a 1001-class checkpoint means the 1000 ImageNet classes (background dropped)
    if load and num_classes is None and src_classes == 1001 and cfg.num_classes == 1000:
        target = 1000
    head = model.get_submodule(spec.classifier)
    conv_head = isinstance(head, nn.Conv2d)
    categories = cfg.categories if load else None
    if target != src_classes:
        if src_classes == 1001 and target == 1000:
            with torch.no_grad():
                head.weight = nn.Parameter(head.weight[1:].clone())
                head.bias = nn.Parameter(head.bias[1:].clone())
            head.out_features = 1000
            adaptations.append(f"{spec.classifier}: 1001-class checkpoint, background row dropped")
        else:
            model.set_submodule(
                spec.classifier, new_head(head_in_features(head), target, spec.head_init, conv_head)
            )
            adaptations.append(_head_note(spec.classifier, target))
            categories = None
    if categories is not None and len(categories) != target:
        categories = None

    if drop_rate is not None:
        heads = [model.get_submodule(p) for p in expand_steps(model, spec.head) if p[0] != "@"]
        drops = [m for h in heads for m in h.modules() if isinstance(m, nn.Dropout)]
        if not drops:
            raise ConfigError(
                f"drop_rate={drop_rate} cannot be set for {entry.name}: its head has no dropout. "
                "Leave drop_rate empty."
            )
        for m in drops:
            m.p = float(drop_rate)

    model.pretrained_cfg = cfg
    model.data_config = data_config
    model.adaptations = adaptations
    model.categories = categories
    model.num_classes = target
    model.num_features = head_in_features(head)
    model._mk_conv_head = conv_head
    model._mk_spec = spec
    model._mk_steps = expand_steps(model, spec.steps)
    model._mk_layouts = step_layouts(spec, model._mk_steps)
    model._mk_levels = model_levels(entry, kwargs)
    model._mk_global_pool = "avg"
    model._mk_fixed_size = tuple(data_config.input_size[1:]) if spec.fixed_input else None
    model.feature_info = FeatureInfo(model._mk_levels)
    _swap_class(model, ClassifierMixin)
    return finish_model(model, target, global_pool, features_only, out_indices, to_features)


def to_features(model: nn.Module, out_indices=None) -> nn.Module:
    """Turn a created classifier into a features_only model, in place (its head is dropped)."""
    indices = resolve_out_indices(out_indices, len(model._mk_levels))
    model.out_indices = indices
    model.feature_info = FeatureInfo(model._mk_levels).select(indices)
    prune_for_features(model, max(model._mk_levels[i]["step"] for i in indices))
    model.num_classes, model.categories = 0, None
    _swap_class(model, FeaturesMixin)
    return model


def parse_name(name: str) -> tuple[str, str]:
    """``arch.tag`` -> (arch, tag); kept public for the app's model picker."""
    return split_name(name)
