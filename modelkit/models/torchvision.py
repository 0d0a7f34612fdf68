"""Every torchvision classifier, described as data: one FamilySpec per family, one entry per name.

Each spec mirrors the family's own ``forward`` step for step (checked by the sweep test:
``forward_head(forward_features(x)) == forward(x)``). Pretrained tags come from torchvision's
weights enums, with their metadata (categories, metrics, transforms, file size).
"""

from __future__ import annotations

import fnmatch
import functools
from pathlib import PurePosixPath

import torchvision
from torchvision.models import get_model, get_model_weights

from modelkit.config import PretrainedCfg
from modelkit.models.features import FamilySpec

_TRUNK_SEQ = ("features.*",)
_LINEAR_POOL = ("avgpool", "@flatten")

FAMILIES: dict[str, FamilySpec] = {
    spec.name: spec
    for spec in [
        FamilySpec(
            "resnet", "conv1", "fc",
            steps=("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
            head=(*_LINEAR_POOL, "fc"),
        ),
        FamilySpec(
            "vgg", "features.0", "classifier.6", _TRUNK_SEQ, (*_LINEAR_POOL, "classifier.*"),
            head_init="normal_0.01",
        ),
        FamilySpec(
            "alexnet", "features.0", "classifier.6", _TRUNK_SEQ, (*_LINEAR_POOL, "classifier.*")
        ),
        FamilySpec(
            "densenet", "features.conv0", "classifier", ("features.*", "@relu"),
            ("@avgpool1", "@flatten", "classifier"), head_init="zero_bias",
        ),
        FamilySpec(
            "squeezenet", "features.0", "classifier.1", _TRUNK_SEQ, ("classifier.*", "@flatten"),
            pre_logits=("@avgpool1", "@flatten"), head_init="normal_0.01",
        ),
        FamilySpec(
            "mobilenet_v2", "features.0.0", "classifier.1", _TRUNK_SEQ,
            ("@avgpool1", "@flatten", "classifier.*"), head_init="normal_0.01",
        ),
        FamilySpec(
            "mobilenet_v3", "features.0.0", "classifier.3", _TRUNK_SEQ,
            (*_LINEAR_POOL, "classifier.*"), head_init="normal_0.01",
        ),
        FamilySpec(
            "mnasnet", "layers.0", "classifier.1", ("layers.*",), ("@mean", "classifier.*"),
            head_init="kaiming_sigmoid",
        ),
        FamilySpec(
            "shufflenet_v2", "conv1.0", "fc",
            ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"), ("@mean", "fc"),
        ),
        FamilySpec(
            "efficientnet", "features.0.0", "classifier.1", _TRUNK_SEQ,
            (*_LINEAR_POOL, "classifier.*"), head_init="uniform_out",
        ),
        FamilySpec(
            "regnet", "stem.0", "fc", ("stem", "trunk_output.*"), (*_LINEAR_POOL, "fc"),
            head_init="normal_0.01",
        ),
        FamilySpec(
            "convnext", "features.0.0", "classifier.2", _TRUNK_SEQ, ("avgpool", "classifier.*"),
            head_init="trunc_normal_0.02",
        ),
        FamilySpec(
            "googlenet", "conv1.conv", "fc",
            steps=("@transform_input", "conv1", "maxpool1", "conv2", "conv3", "maxpool2",
                   "inception3a", "inception3b", "maxpool3", "inception4a", "inception4b",
                   "inception4c", "inception4d", "inception4e", "maxpool4", "inception5a",
                   "inception5b"),
            head=(*_LINEAR_POOL, "dropout", "fc"),
            head_init="trunc_normal_0.01",
            pretrained_kwargs={"transform_input": True},
            drop_keys=("aux1.", "aux2."),
        ),
        FamilySpec(
            "inception_v3", "Conv2d_1a_3x3.conv", "fc",
            steps=("@transform_input", "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3",
                   "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2", "Mixed_5b",
                   "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                   "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"),
            head=("avgpool", "dropout", "@flatten", "fc"),
            head_init="trunc_normal_0.1",
            trace_size=299,
            pretrained_kwargs={"transform_input": True},
            drop_keys=("AuxLogits.",),
        ),
        FamilySpec(
            "vit", "conv_proj", "heads.head", ("@vit_embed", "encoder.layers.*", "encoder.ln"),
            ("@cls_token", "heads.*"), layout="tokens", levels=("encoder.layers.*",),
            head_init="zeros", size_kwarg="image_size", fixed_input=True,
        ),
        FamilySpec(
            "swin", "features.0.0", "head", ("features.*", "norm", "permute"),
            (*_LINEAR_POOL, "head"), layout="nhwc", nchw_from="permute",
            head_init="trunc_normal_0.02",
        ),
        FamilySpec(
            "maxvit", "stem.0.0", "classifier.5", ("stem", "blocks.*"), ("classifier.*",),
            head_init="normal_0.02", fixed_input=True,
        ),
    ]
}  # fmt: skip

# name pattern -> family (first match wins)
_FAMILY_OF = [
    ("resnet*", "resnet"), ("resnext*", "resnet"), ("wide_resnet*", "resnet"), ("vgg*", "vgg"),
    ("alexnet", "alexnet"), ("densenet*", "densenet"), ("squeezenet*", "squeezenet"),
    ("mobilenet_v2", "mobilenet_v2"), ("mobilenet_v3*", "mobilenet_v3"), ("mnasnet*", "mnasnet"),
    ("shufflenet_v2*", "shufflenet_v2"), ("efficientnet*", "efficientnet"), ("regnet*", "regnet"),
    ("convnext*", "convnext"), ("googlenet", "googlenet"), ("inception_v3", "inception_v3"),
    ("vit_*", "vit"), ("swin*", "swin"), ("maxvit*", "maxvit"),
]  # fmt: skip

# Default builder kwargs: googlenet/inception without aux heads (eval-only outputs, simpler head).
BUILD_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}

LICENSE = (
    "BSD-3-Clause (torchvision code); the weights may carry the terms of their training data "
    "(ImageNet-1K, and Instagram data for SWAG): see the torchvision model docs"
)


def family_of(name: str) -> str:
    for pattern, family in _FAMILY_OF:
        if fnmatch.fnmatchcase(name, pattern):
            return family
    raise LookupError(f"no family spec matches torchvision model {name!r}")


def _cfg(name: str, family: FamilySpec, weight, is_default: bool) -> PretrainedCfg:
    """A PretrainedCfg from one torchvision weights enum entry, transforms included."""
    meta, t = weight.meta, weight.transforms()
    crop = int(t.crop_size[0])
    resize = int(t.resize_size[0])
    metrics = next(iter(meta.get("_metrics", {}).values()), {})
    categories = tuple(meta["categories"]) if meta.get("categories") else None
    return PretrainedCfg(
        architecture=name,
        tag=weight.name.lower(),
        url=weight.url,
        hub_filename=PurePosixPath(weight.url).name,
        num_classes=len(categories) if categories else 1000,
        input_size=(3, crop, crop),
        resize_size=resize,
        mean=tuple(float(v) for v in t.mean),
        std=tuple(float(v) for v in t.std),
        interpolation=t.interpolation.value,
        crop_pct=round(crop / resize, 4),
        first_conv=family.first_conv,
        classifier=family.classifier,
        categories=categories,
        license=LICENSE,
        metrics={k: float(v) for k, v in metrics.items()},
        gflops=meta.get("_ops"),
        file_size_mb=meta.get("_file_size"),
        source="torchvision",
        is_default=is_default,
    )


def torchvision_entries() -> list[dict]:
    """One dict per torchvision classifier: name, family, builder, cfgs (default first)."""
    entries = []
    for name in torchvision.models.list_models(module=torchvision.models):
        family = FAMILIES[family_of(name)]
        enum = get_model_weights(name)
        default = enum.DEFAULT
        cfgs = [_cfg(name, family, default, True)]
        cfgs += [_cfg(name, family, w, False) for w in enum if w is not default]
        builder = functools.partial(get_model, name, **BUILD_KWARGS.get(family.name, {}))
        entries.append({"name": name, "family": family, "builder": builder, "cfgs": cfgs})
    return entries
