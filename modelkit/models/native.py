"""create_model's steps for families run as a list of steps (torchvision, EfficientNet-Lite):
build (and load the checkpoint), adapt the stem, adapt the head, set the dropout, and describe
the result (public attributes and ``model.modelkit``).

Models keep their own class and state-dict keys; a mixin (``ClassifierMixin``, or
``FeaturesMixin`` for features_only) adds forward_features / forward_head / reset_classifier /
forward_intermediates, driven by the family's FamilySpec.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from modelkit.config import DataConfig, PretrainedCfg, data_config_for
from modelkit.errors import ConfigError, WeightsLoadError
from modelkit.models.arguments import check_reset
from modelkit.models.features import (
    FeatureInfo,
    FeaturesMixin,
    StepsMixin,
    expand_steps,
    prune_for_features,
    resolve_out_indices,
    run_step,
    step_layouts,
)
from modelkit.models.info import model_levels
from modelkit.models.pretrained import (
    adapt_input_conv,
    find_state_dict,
    head_in_features,
    head_note,
    new_head,
    set_conv_in_chans,
)
from modelkit.models.record import ModelRecord, swap_class
from modelkit.models.request import ModelRequest, random_parts


class ClassifierMixin(StepsMixin):
    """The timm-style classifier API, for any family described by a FamilySpec."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.modelkit.global_pool == "":  # reset_classifier(0, global_pool=""): unpooled
            return self.forward_features(x)
        self.check_input_size(x)
        return super().forward(x)  # the family's own forward, untouched

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.modelkit.global_pool == "":  # only with num_classes=0: the unpooled features
            return x
        spec = self.modelkit.spec
        steps = expand_steps(self, spec.head)
        if pre_logits:
            steps = list(spec.pre_logits or steps[: steps.index(spec.classifier)])
        for step in steps:
            x = run_step(self, step, x)
        return x

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.modelkit.classifier)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh head for ``num_classes`` (0: none, giving pooled features)."""
        record = self.modelkit
        num_classes, record.global_pool = check_reset(num_classes, global_pool, record.global_pool)
        head = new_head(self.num_features, num_classes, record.spec.head_init, record.conv_head)
        self.set_submodule(record.classifier, head)
        self.num_classes, self.categories = num_classes, None
        self.adaptations.append(head_note(record.classifier, num_classes))


@dataclass
class Built:
    """What the build step found: the checkpoint's own class and channel counts, and the notes."""

    src_classes: int
    src_chans: int
    cfg: PretrainedCfg
    data_config: DataConfig
    kwargs: dict  # the builder's arguments, as used
    adaptations: list[str] = field(default_factory=list)
    num_features: int = 0  # the classifier's input size (before any new head)
    conv_head: bool = False  # the classifier is a 1x1 convolution (SqueezeNet)


def build(request: ModelRequest) -> tuple[nn.Module, Built]:
    """The architecture, with the checkpoint loaded strictly when weights are asked for."""
    cfg, kwargs = request.cfg, request.kwargs
    if not request.load:
        # num_classes=0 is built with the default head, which adapt_head then removes
        classes = request.num_classes or cfg.num_classes
        model = request.entry.builder(num_classes=classes, **kwargs)
        return model, Built(classes, 3, cfg, _data_config(request, cfg, kwargs), kwargs)
    sd, where = find_state_dict(cfg, request.checkpoint_path, request.sources)
    model, src_classes, src_chans, kwargs = _load(request, sd, where)
    if request.checkpoint_path or request.sources:
        file = str(request.checkpoint_path or request.sources.get("file") or "")
        cfg = dataclasses.replace(cfg, file=file)
        cfg = dataclasses.replace(cfg, source="local") if request.checkpoint_path else cfg
    return model, Built(src_classes, src_chans, cfg, _data_config(request, cfg, kwargs), kwargs,
                        [f"weights loaded from {where}"])  # fmt: skip


def _data_config(request: ModelRequest, cfg: PretrainedCfg, kwargs: dict) -> DataConfig:
    config, size_kwarg = cfg.data_config(), request.entry.family.size_kwarg
    if size_kwarg and size_kwarg in kwargs:  # ViT's image_size=...
        size = int(kwargs[size_kwarg])
        config = dataclasses.replace(config, input_size=(3, size, size), resize_size=None)
    return config


def _load(request: ModelRequest, sd: dict, where: str):
    """Build the architecture the checkpoint was saved from and load it strictly."""
    entry, spec = request.entry, request.entry.family
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
    kwargs = {**spec.pretrained_kwargs, **request.kwargs}
    if spec.size_kwarg and spec.size_kwarg not in kwargs:
        kwargs[spec.size_kwarg] = request.cfg.input_size[-1]
    model = entry.builder(num_classes=src_classes, **kwargs)
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
    return model, src_classes, src_chans, kwargs


def adapt_stem(model: nn.Module, request: ModelRequest, built: Built) -> None:
    """The first conv and the data config for ``in_chans`` (filters repeated, on RGB channels,
    or random; see pretrained.adapt_input_conv)."""
    in_chans, rgb = request.in_chans or built.src_chans, request.rgb_channels
    # googlenet/inception_v3 re-normalise 3 channels inside; off for other counts, same maths.
    if getattr(model, "transform_input", False) and (in_chans != 3 or rgb):
        model.transform_input = False
        built.data_config = dataclasses.replace(built.data_config, mean=(0.5,) * 3, std=(0.5,) * 3)
        built.adaptations.append(
            "transform_input turned off (it assumes 3 channels); inputs are normalised with "
            "mean = std = 0.5 instead, which is what it computed"
        )
    path = request.entry.family.first_conv
    conv = model.get_submodule(path)
    if in_chans != conv.in_channels or rgb:
        weight = conv.weight.detach()
        mode = request.in_chans_init if request.load else "repeat"
        new, how = adapt_input_conv(weight, in_chans, mode, rgb)
        with torch.no_grad():
            set_conv_in_chans(conv, new.clone())
        how = how if request.load else "random weights"
        built.adaptations.append(f"{path}.weight: {weight.shape[1]} -> {in_chans} channels, {how}")
    built.data_config = data_config_for(built.data_config, in_chans, rgb)


def adapt_head(model: nn.Module, request: ModelRequest, built: Built) -> tuple[int, tuple | None]:
    """(class count, category names): the checkpoint's head, or a new one for num_classes."""
    src, path = built.src_classes, request.entry.family.classifier
    target = request.num_classes if request.num_classes is not None else src
    # None with a 1001-class checkpoint means the 1000 ImageNet classes (background dropped)
    background = src == 1001 and built.cfg.num_classes == 1000
    if request.load and request.num_classes is None and background:
        target = 1000
    head = model.get_submodule(path)
    built.num_features, built.conv_head = head_in_features(head), isinstance(head, nn.Conv2d)
    categories = built.cfg.categories if request.load else None
    if target != src and src == 1001 and target == 1000:
        with torch.no_grad():
            head.weight = nn.Parameter(head.weight[1:].clone())
            head.bias = nn.Parameter(head.bias[1:].clone())
        head.out_features = 1000
        built.adaptations.append(f"{path}: 1001-class checkpoint, background row dropped")
    elif target != src:
        init = request.entry.family.head_init
        model.set_submodule(path, new_head(built.num_features, target, init, built.conv_head))
        built.adaptations.append(head_note(path, target))
        categories = None
    return target, categories if categories is not None and len(categories) == target else None


def set_drop_rate(model: nn.Module, request: ModelRequest) -> None:
    """The head's dropout probability, when asked (a family without one says so)."""
    if request.drop_rate is None:
        return
    heads = [model.get_submodule(p) for p in expand_steps(model, request.entry.family.head)
             if p[0] != "@"]  # fmt: skip
    drops = [m for h in heads for m in h.modules() if isinstance(m, nn.Dropout)]
    if not drops:
        raise ConfigError(
            f"drop_rate={request.drop_rate} cannot be set for {request.entry.name}: its head has "
            "no dropout. Leave drop_rate empty."
        )
    for m in drops:
        m.p = float(request.drop_rate)


def describe(model: nn.Module, request: ModelRequest, built: Built, num_classes: int,
             categories) -> None:  # fmt: skip
    """The public attributes and ``model.modelkit``; the model gets the classifier methods."""
    spec = request.entry.family
    model.pretrained_cfg, model.data_config = built.cfg, built.data_config
    model.adaptations, model.categories = built.adaptations, categories
    model.num_classes, model.num_features = num_classes, built.num_features
    steps = expand_steps(model, spec.steps)
    levels = model_levels(request.entry, built.kwargs)
    model.modelkit = ModelRecord(
        name=request.name, tag=built.cfg.tag if request.load else "", source=request.entry.source,
        classifier=spec.classifier, levels=levels,
        random_parts=random_parts(request.entry.name, request.load, request.num_classes,
                                  request.in_chans, request.in_chans_init),
        global_pool="avg" if request.global_pool is None else request.global_pool,
        fixed_size=tuple(built.data_config.input_size[1:]) if spec.fixed_input else None,
        native=type(model), spec=spec, steps=steps, layouts=step_layouts(spec, steps),
        conv_head=built.conv_head,
    )  # fmt: skip
    model.feature_info = FeatureInfo(levels)
    swap_class(model, ClassifierMixin)


def to_features(model: nn.Module, out_indices=None) -> nn.Module:
    """Turn a created classifier into a features_only model, in place (its head is dropped)."""
    levels = model.modelkit.levels
    indices = resolve_out_indices(out_indices, len(levels))
    model.out_indices = indices
    model.feature_info = FeatureInfo(levels).select(indices)
    prune_for_features(model, max(levels[i]["step"] for i in indices))
    model.num_classes, model.categories = 0, None
    swap_class(model, FeaturesMixin)
    return model
