"""Registers every model on import: all torchvision classifiers and native EfficientNet-Lite."""

from __future__ import annotations

import functools

from modelkit.features import FamilySpec
from modelkit.models import efficientnet_lite
from modelkit.models.torchvision import FAMILIES, torchvision_entries
from modelkit.registry import register_model

EFFICIENTNET_LITE = FamilySpec(
    "efficientnet_lite",
    first_conv="conv_stem",
    classifier="classifier",
    steps=("conv_stem", "bn1", "act1", "blocks.*", "conv_head", "bn2", "act2"),
    head=("global_pool", "dropout", "classifier"),
    head_init="uniform_out",
    remap=efficientnet_lite.remap_package_state_dict,
)
FAMILIES[EFFICIENTNET_LITE.name] = EFFICIENTNET_LITE

for _entry in torchvision_entries():
    register_model(_entry["name"], FAMILIES[_entry["family"]], _entry["builder"], _entry["cfgs"])

_lite_cfgs = {cfg.architecture: cfg for cfg in efficientnet_lite.pretrained_cfgs()}
for _name in efficientnet_lite.VARIANTS:
    register_model(
        _name,
        EFFICIENTNET_LITE,
        functools.partial(efficientnet_lite.build_efficientnet_lite, _name),
        [_lite_cfgs[_name]] if _name in _lite_cfgs else [],
    )
