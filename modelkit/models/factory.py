"""create_model: guard -> resolve -> build (and load) -> adapt the stem -> adapt the head -> finish.

Each step is a named function: ``size_guard.check_model_size`` refuses a model too large for
this server; ``request.resolve`` checks the arguments and finds the entry and
checkpoint; families run as steps (torchvision, EfficientNet-Lite) are built by ``native``, timm
models by ``timm_factory``; both end with the model's public attributes, its ``model.modelkit``
record, and ``features_only`` cut by the source's own rule.
"""

from __future__ import annotations

from torch import nn

from modelkit.models import native
from modelkit.models.features import finish_model
from modelkit.models.request import random_parts, resolve
from modelkit.models.size_guard import check_model_size

__all__ = ["create_model", "random_parts"]


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
    """Build ``name`` (optionally ``arch.tag``), load and adapt its weights, in eval mode.

    Args:
        name: a registry name, ``arch`` or ``arch.tag`` (see ``list_models``).
        pretrained: load the tag's (or the default) weights.
        num_classes: None keeps the checkpoint's head, 0 removes it (pooled features), another
            count makes a new, random head.
        in_chans: input channels; the first conv is adapted (see ``in_chans_init``).
        features_only: return the feature maps of ``out_indices`` (a list of NCHW tensors).
        out_indices: feature levels for ``features_only`` (negatives count from the end).
        global_pool: "avg" (the family's own pooling) or "" (none, with num_classes=0).
        drop_rate: the head's dropout probability.
        checkpoint_path: a .pth/.safetensors file to load (also without ``pretrained``).
        pretrained_cfg_overlay: changes to the checkpoint's facts; its "state_dict" or "file"
            load those weights.
        in_chans_init: "repeat" (filters tiled and scaled), "rgb" (the RGB filters on
            ``rgb_channels``, zeros elsewhere) or "random".
        rgb_channels: three input channels for the RGB filters, with in_chans_init="rgb".
        **kwargs: for the family's builder (e.g. ``image_size`` for ViT, ``img_size`` in timm).

    Returns:
        The model, with ``pretrained_cfg``, ``data_config``, ``adaptations``, ``categories``,
        ``num_classes``, ``num_features``, ``feature_info`` and ``modelkit`` (its record).
    """
    check_model_size(name)  # too large for this server: refused before any download or build
    request = resolve(
        name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans,
        global_pool=global_pool, drop_rate=drop_rate,
        checkpoint_path=checkpoint_path, pretrained_cfg_overlay=pretrained_cfg_overlay,
        in_chans_init=in_chans_init, rgb_channels=rgb_channels, kwargs=kwargs,
    )  # fmt: skip
    if request.entry.source == "spectral":  # "bands": statistics, no network, no weights
        from modelkit.models.bands import create_bands_model, to_features

        return finish_model(create_bands_model(request), features_only, out_indices, to_features)
    if request.entry.source == "timm":  # timm builds, loads and adapts in its own way
        from modelkit.models.timm_factory import create_timm_model, to_timm_features

        return finish_model(create_timm_model(request), features_only, out_indices,
                            to_timm_features)  # fmt: skip
    model, built = native.build(request)
    native.adapt_stem(model, request, built)
    classes, categories = native.adapt_head(model, request, built)
    native.set_drop_rate(model, request)
    native.describe(model, request, built, classes, categories)
    return finish_model(model, features_only, out_indices, native.to_features)
