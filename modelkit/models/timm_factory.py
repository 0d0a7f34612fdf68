"""create_model for ``timm/...`` names: timm builds and loads, modelkit adapts and reports.

timm models already have forward_features / forward_head / reset_classifier / feature_info /
forward_intermediates, so no FamilySpec is needed: a mixin (class swapped in place, like the
torchvision path) only gives them modelkit's contract: NCHW feature maps for ``out_indices``,
``global_pool`` 'avg' (the model's own pooling) or '' (none), ``adaptations``, our
``pretrained_cfg`` and ``data_config``. Pretrained weights are loaded and adapted in
``timm_loading``.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect

import torch
from torch import nn

from modelkit.config import PretrainedCfg, data_config_for
from modelkit.errors import ConfigError, ModelkitError
from modelkit.models.arguments import check_reset
from modelkit.models.features import FeatureInfo, check_fixed_size, resolve_out_indices
from modelkit.models.pretrained import head_note
from modelkit.models.record import ModelRecord, swap_class
from modelkit.models.request import ModelRequest, random_parts
from modelkit.models.timm_loading import build as build_timm
from modelkit.models.timm_loading import load_pretrained_timm, paths, settings
from modelkit.models.timm_source import levels_of, timm_name


class TimmFeatureInfo(FeatureInfo):
    """modelkit's FeatureInfo that timm's own code can still index (``info[i]["num_chs"]``)."""

    def __getitem__(self, i):
        return self.levels[i]

    def __iter__(self):
        return iter(self.levels)

    def select(self, indices) -> TimmFeatureInfo:
        return TimmFeatureInfo([self.levels[i] for i in indices])


def _accepts(method, name: str) -> bool:
    try:
        return name in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def _as_nchw(x: torch.Tensor, channels: int, expect_hw: tuple[int, int], who: str) -> torch.Tensor:
    """A feature map as (N, C, H, W); channel-last maps are permuted, token lists refused."""
    if x.ndim == 4:
        if x.shape[1] == channels and (x.shape[-1] != channels or x.shape[2] == expect_hw[0]):
            return x
        if x.shape[-1] == channels:
            return x.permute(0, 3, 1, 2)
    raise ConfigError(
        f"{who} gives a feature map of shape {tuple(x.shape)} at this level, not a (N, C, H, W) "
        "map: feature maps are not available for this model. Choose another model for feature maps."
    )


# timm families (modules) whose stem is built for RGB: any other in_chans builds, then fails
RGB_ONLY = {"csatv2": "its DCT stem converts R, G, B to YCbCr with a fixed 3-colour matrix"}


def _off_config_error(model, x: torch.Tensor, exc: Exception) -> ConfigError | None:
    """A ConfigError in words for a timm forward that failed on an input the model's data config
    does not describe (another size or channel count: many timm models fix their token grid or
    attention biases at build time and fail deep inside), else None (a bug: raised as is)."""
    if isinstance(exc, torch.OutOfMemoryError) or not isinstance(x, torch.Tensor) or x.ndim != 4:
        return None
    want = tuple(int(v) for v in model.data_config.input_size)
    if tuple(x.shape[1:]) == want:
        return None
    text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return ConfigError(
        f"{model.pretrained_cfg.architecture} failed on a {x.shape[1]}-channel "
        f"{x.shape[-2]}x{x.shape[-1]} input ({type(exc).__name__}: {text}); it was built for "
        f"{want[0]} channels at {want[1]}x{want[2]}. Resize the image to {want[1]}x{want[2]} "
        "(modelkit.preprocess does, with the model's data config), or create the model with "
        "the size (img_size=...) where it accepts one."
    )


class TimmMixin:
    """modelkit's classifier contract over a timm model's own methods."""

    def check_input_size(self, x: torch.Tensor) -> None:
        check_fixed_size(x, self.modelkit.fixed_size, f"{self.pretrained_cfg.architecture} takes",
                         f", or create the model with img_size={x.shape[-1]}")  # fmt: skip

    def _guarded(self, run, x: torch.Tensor, *args, **kwargs):
        """``run(x, ...)``; a failure on an input off the data config becomes a ConfigError."""
        try:
            return run(x, *args, **kwargs)
        except ModelkitError:
            raise
        except Exception as exc:
            error = _off_config_error(self, x, exc)
            if error is None:
                raise
            raise error from exc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        if self.modelkit.global_pool == "":
            return self.forward_features(x)
        return self._guarded(super().forward, x)

    def forward_features(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        self.check_input_size(x)
        return self._guarded(super().forward_features, x, *args, **kwargs)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.modelkit.global_pool == "":
            return x
        return super().forward_head(x, pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A fresh head for ``num_classes`` (0: none); 'avg' keeps the model's own pooling."""
        record = self.modelkit
        num_classes, pool = check_reset(num_classes, global_pool, record.global_pool)
        super().reset_classifier(num_classes)
        self.num_classes, record.global_pool, self.categories = num_classes, pool, None
        self.adaptations.append(head_note(self.pretrained_cfg.classifier or "head", num_classes))

    def forward_intermediates(self, x: torch.Tensor, out_indices=None) -> list[torch.Tensor]:
        """NCHW maps of the requested levels (indices into ``feature_info``)."""
        self.check_input_size(x)
        levels = self.modelkit.levels
        indices = resolve_out_indices(out_indices, len(levels))
        native = super().forward_intermediates
        kwargs = {"indices": indices, "intermediates_only": True}
        if _accepts(native, "output_fmt"):
            kwargs["output_fmt"] = "NCHW"
        try:
            outs = native(x, **kwargs)
        except ModelkitError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"{self.pretrained_cfg.architecture} cannot give feature maps for levels "
                f"{indices} ({type(exc).__name__}: {str(exc)[:160]})."
            ) from exc
        who = self.pretrained_cfg.architecture
        return [
            _as_nchw(o, levels[i]["channels"], _grid(x, levels[i]["reduction"]), who)
            for o, i in zip(outs, indices, strict=True)
        ]


def _grid(x: torch.Tensor, reduction: int) -> tuple[int, int]:
    return (-(-x.shape[-2] // reduction), -(-x.shape[-1] // reduction))


class TimmFeaturesMixin(TimmMixin):
    """features_only: ``forward(x)`` gives the list of NCHW maps for ``out_indices``."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_intermediates(x, self.out_indices)


# --- building ---------------------------------------------------------------------------------


def _categories(cfg: PretrainedCfg, num_classes: int) -> tuple[str, ...] | None:
    """Label words for ImageNet-1k / 12k / 22k heads (timm ships them)."""
    if cfg.categories is not None:
        return cfg.categories
    from timm.data import infer_imagenet_subset

    subset = infer_imagenet_subset({"num_classes": num_classes})
    return _imagenet_labels(subset) if subset else None


@functools.lru_cache(maxsize=4)
def _imagenet_labels(subset: str) -> tuple[str, ...] | None:
    from timm.data import ImageNetInfo

    try:
        return tuple(ImageNetInfo(subset).label_descriptions())
    except (AssertionError, OSError):
        return None


def create_timm_model(request: ModelRequest) -> nn.Module:
    """The timm path of ``create_model``: build (and load), adapt, describe (``features_only``
    is create_model's last step, with ``to_timm_features``)."""
    entry, cfg = request.entry, request.cfg
    arch = timm_name(entry.name)
    tagged = f"{arch}.{cfg.tag}" if cfg.tag and cfg.source == "timm" else arch
    family = getattr(entry.family, "name", "")
    in_chans = request.in_chans or cfg.in_chans
    if family in RGB_ONLY and in_chans != 3:
        raise ConfigError(
            f"{entry.name} takes 3 channels (R, G, B) only: {RGB_ONLY[family]}. Create it with "
            "in_chans=3 and pick 3 channels of the image, or choose another model."
        )
    build = dict(request.kwargs)
    if request.drop_rate is not None:
        build["drop_rate"] = float(request.drop_rate)
    if request.load:
        model, adaptations, src_classes = load_pretrained_timm(
            entry, tagged, cfg, in_chans=in_chans, mode=request.in_chans_init,
            rgb=request.rgb_channels, checkpoint_path=request.checkpoint_path,
            sources=request.sources, kwargs=build,
        )  # fmt: skip
    else:
        src_classes = request.num_classes if request.num_classes is not None else cfg.num_classes
        what = settings(in_chans=in_chans, num_classes=src_classes, **build)
        model = build_timm(entry, tagged, what, pretrained=False, in_chans=in_chans,
                           num_classes=src_classes, **build)  # fmt: skip
        adaptations = []
        if in_chans != 3:
            conv = paths(cfg.first_conv)[0] if cfg.first_conv else "first conv"
            adaptations.append(f"{conv}.weight: 3 -> {in_chans} channels, random weights")
    target = request.num_classes if request.num_classes is not None else src_classes
    _describe(model, request, adaptations, src_classes, target)
    if target != src_classes:
        model.reset_classifier(target)  # notes the new head
    return model


def _fixed_size(model: nn.Module) -> tuple[int, int] | None:
    """The input size a strict patch embedding takes (None: any size)."""
    embed = getattr(model, "patch_embed", None)
    strict = embed is not None and getattr(embed, "strict_img_size", False)
    return tuple(int(v) for v in embed.img_size) if strict and embed.img_size else None


def _describe(model: nn.Module, request: ModelRequest, adaptations: list[str],
              src_classes: int, target: int) -> None:  # fmt: skip
    """The public attributes and ``model.modelkit``; the model gets modelkit's contract."""
    cfg, load = request.cfg, request.load
    fixed, data_config = _fixed_size(model), cfg.data_config()
    if fixed and fixed != tuple(data_config.input_size[1:]):  # img_size=... chose another
        data_config = dataclasses.replace(data_config, input_size=(cfg.in_chans, *fixed),
                                          resize_size=None)  # fmt: skip
    levels = levels_of(model)
    model.adaptations = adaptations
    named = load and target == src_classes and target
    model.categories = _categories(cfg, target) if named else None
    model.num_classes = src_classes
    model.pretrained_cfg = cfg
    model.data_config = data_config_for(data_config, request.in_chans or cfg.in_chans,
                                        request.rgb_channels)  # fmt: skip
    model.feature_info = TimmFeatureInfo(levels)
    model.modelkit = ModelRecord(
        name=request.name, tag=cfg.tag if load else "", source=request.entry.source,
        classifier=cfg.classifier or "", levels=levels,
        random_parts=random_parts(request.entry.name, load, request.num_classes,
                                  request.in_chans, request.in_chans_init),
        global_pool="avg" if request.global_pool is None else request.global_pool,
        fixed_size=fixed, native=type(model),
    )  # fmt: skip
    swap_class(model, TimmMixin)


def to_timm_features(model: nn.Module, out_indices=None) -> nn.Module:
    """features_only, in place: the head and the blocks after the deepest level are dropped."""
    levels = model.modelkit.levels
    if not levels:
        raise ConfigError(f"{model.pretrained_cfg.architecture} has no feature levels to return.")
    indices = resolve_out_indices(out_indices, len(levels))
    if hasattr(model, "prune_intermediate_layers"):
        try:
            model.prune_intermediate_layers(indices, prune_norm=False, prune_head=True)
        except Exception:  # noqa: BLE001 - pruning only saves memory; the model still works
            pass
    model.out_indices = indices
    model.feature_info = TimmFeatureInfo(levels).select(indices)
    model.num_classes, model.categories = 0, None
    swap_class(model, TimmFeaturesMixin)
    return model
