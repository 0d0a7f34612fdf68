"""Run a model as a list of steps: forward_features, forward_intermediates and features_only.

Every family is described by a :class:`FamilySpec` (data): the ordered steps of its trunk, the
steps of its head, where its first conv and classifier live, and how its tensors are laid out.
A step is a module path (``"layer1"``), a Sequential expanded into its children (``"features.*"``),
or a named function (``"@flatten"``, see ``FUNCS``) for the bits torchvision writes inline.
Feature levels are the last step at each stride (found by tracing on the meta device), or the
steps a family names explicitly (ViT blocks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from modelkit.errors import ConfigError


@dataclass(frozen=True)
class FamilySpec:
    """How to run, cut and adapt one family of models; see modelkit/models/torchvision.py."""

    name: str
    first_conv: str  # module path of the first conv / patch embedding
    classifier: str  # module path of the final Linear (or 1x1 conv) that gives the logits
    steps: tuple[str, ...]  # trunk, in order; forward_features runs them all
    head: tuple[str, ...]  # pooling and classifier, in order; forward_head runs them all
    layout: str = "nchw"  # "nchw" | "nhwc" (Swin) | "tokens" (ViT: class token + patch tokens)
    nchw_from: str | None = None  # first step whose output is NCHW again (Swin's permute)
    levels: tuple[str, ...] | None = None  # explicit feature levels; None = last step per stride
    pre_logits: tuple[str, ...] | None = None  # head steps for pre_logits if not "head minus fc"
    head_init: str = "default"  # how the family initialises its classifier (pretrained.HEAD_INITS)
    trace_size: int = 224  # input size used to trace channels and strides on the meta device
    size_kwarg: str | None = None  # builder kwarg fixing the input size (ViT image_size)
    fixed_input: bool = False  # the model takes only its data config's input size (ViT, MaxViT)
    pretrained_kwargs: dict = field(
        default_factory=dict
    )  # builder kwargs torchvision uses w/ weights
    drop_keys: tuple[
        str, ...
    ] = ()  # checkpoint key prefixes for modules we do not build (aux heads)
    remap: Callable[[dict], dict] | None = None  # package checkpoint keys -> our keys


def _vit_embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # torchvision VisionTransformer.forward up to the encoder blocks, op for op.
    x = model._process_input(x)
    x = torch.cat([model.class_token.expand(x.shape[0], -1, -1), x], dim=1)
    return model.encoder.dropout(x + model.encoder.pos_embedding)


FUNCS: dict[str, Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    "flatten": lambda m, x: torch.flatten(x, 1),
    "relu": lambda m, x: F.relu(x, inplace=True),
    "avgpool1": lambda m, x: F.adaptive_avg_pool2d(x, (1, 1)),
    "mean": lambda m, x: x.mean([2, 3]),
    "transform_input": lambda m, x: m._transform_input(x),
    "vit_embed": _vit_embed,
    "cls_token": lambda m, x: x[:, 0],
}
NOT_LEVELS = {"@transform_input", "@vit_embed"}  # input preparation, never a feature level


def expand_steps(model: nn.Module, steps: Sequence[str]) -> list[str]:
    """``"features.*"`` -> ``["features.0", "features.1", ...]``; other steps unchanged."""
    out = []
    for step in steps:
        if step.endswith(".*"):
            parent = model.get_submodule(step[:-2])
            out += [f"{step[:-2]}.{name}" for name, _ in parent.named_children()]
        else:
            out.append(step)
    return out


def run_step(model: nn.Module, step: str, x: torch.Tensor) -> torch.Tensor:
    if step.startswith("@"):
        return FUNCS[step[1:]](model, x)
    return model.get_submodule(step)(x)


def step_layouts(spec: FamilySpec, steps: Sequence[str]) -> list[str]:
    layouts, current = [], spec.layout
    for step in steps:
        if step == spec.nchw_from:
            current = "nchw"
        layouts.append(current)
    return layouts


def to_nchw(model: nn.Module, x: torch.Tensor, layout: str, in_hw: tuple[int, int]) -> torch.Tensor:
    """A feature map as (N, C, H, W), whatever the family's layout."""
    if layout == "nhwc":
        return x.permute(0, 3, 1, 2)
    if layout == "tokens":  # drop the class token, lay the patch tokens out on their grid
        patch = model.patch_size
        h, w = in_hw[0] // patch, in_hw[1] // patch
        return x[:, 1:].reshape(x.shape[0], h, w, x.shape[-1]).permute(0, 3, 1, 2)
    return x


class FeatureInfo:
    """What each feature level gives: channels, reduction (stride) and the step's module name."""

    def __init__(self, levels: Sequence[dict]):
        self.levels = [dict(level) for level in levels]

    def channels(self) -> list[int]:
        return [lvl["channels"] for lvl in self.levels]

    def reduction(self) -> list[int]:
        return [lvl["reduction"] for lvl in self.levels]

    def module_name(self) -> list[str]:
        return [lvl["module"] for lvl in self.levels]

    def get_dicts(self) -> list[dict]:
        return [dict(lvl) for lvl in self.levels]

    def select(self, indices: Sequence[int]) -> FeatureInfo:
        return FeatureInfo([self.levels[i] for i in indices])

    def __len__(self) -> int:
        return len(self.levels)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.levels})"


@torch.no_grad()
def trace_levels(meta_model: nn.Module, spec: FamilySpec, size: int) -> list[dict]:
    """Run the trunk on a meta tensor; return the feature levels (step index, channels, stride)."""
    steps = expand_steps(meta_model, spec.steps)
    layouts = step_layouts(spec, steps)
    x = torch.empty(1, 3, size, size, device="meta")
    shapes = []
    for step, layout in zip(steps, layouts, strict=True):
        x = run_step(meta_model, step, x)
        shapes.append(tuple(to_nchw(meta_model, x, layout, (size, size)).shape))

    def stride(shape: tuple) -> int:
        if spec.layout == "tokens":
            return int(meta_model.patch_size)
        return 2 ** round(math.log2(size / shape[2]))  # 299 -> 149 is stride 2, not 2.007

    if spec.levels is not None:
        wanted = expand_steps(meta_model, spec.levels)
        picks = [steps.index(s) for s in wanted]
    else:
        strides = [stride(s) for s in shapes]
        picks = [
            i
            for i, s in enumerate(steps)
            if s not in NOT_LEVELS and (i == len(steps) - 1 or strides[i + 1] != strides[i])
        ]
    return [
        {
            "index": n,
            "module": steps[i].lstrip("@"),
            "channels": int(shapes[i][1]),
            "reduction": stride(shapes[i]),
            "step": i,
        }
        for n, i in enumerate(picks)
    ]


def resolve_out_indices(out_indices: Sequence[int] | None, n_levels: int) -> list[int]:
    """Check ``out_indices`` against the level count; negatives count from the end."""
    if out_indices is None:
        return list(range(n_levels))
    valid = f"whole numbers from {-n_levels} to {n_levels - 1} (this model has {n_levels} levels)"
    if isinstance(out_indices, int | str) or not isinstance(out_indices, Sequence):
        if isinstance(out_indices, int) and not isinstance(out_indices, bool):
            out_indices = [out_indices]
        else:
            raise ConfigError(f"out_indices={out_indices!r} is not a list of levels; use {valid}.")
    if len(out_indices) == 0:
        raise ConfigError(f"out_indices is empty; pick at least one level: {valid}.")
    resolved = []
    for i in out_indices:
        if isinstance(i, bool) or not isinstance(i, int):
            raise ConfigError(
                f"out_indices={list(out_indices)!r}: {i!r} is not allowed; use {valid}."
            )
        if not -n_levels <= i < n_levels:
            raise ConfigError(
                f"out_indices={list(out_indices)!r}: {i} is out of range; use {valid}."
            )
        resolved.append(i % n_levels)
    if len(set(resolved)) != len(resolved):
        raise ConfigError(
            f"out_indices={list(out_indices)!r} names a level twice (after counting negatives "
            f"from the end: {resolved}); list each level once, {valid}."
        )
    return resolved


def check_fixed_size(x: torch.Tensor, size: tuple[int, int] | None, who: str,
                     also: str = "") -> None:  # fmt: skip
    """A model built for one input size says so in words, not with an assertion deep inside;
    ``who`` is the sentence's subject and verb ("vit models take"), ``also`` another way out."""
    if size is not None and tuple(x.shape[-2:]) != size:
        raise ConfigError(
            f"{who} {size[0]}x{size[1]} inputs only, got {x.shape[-2]}x{x.shape[-1]}. Resize the "
            f"image to {size[0]}x{size[1]} (modelkit.preprocess does, with the model's data "
            f"config){also}."
        )


def finish_model(model: nn.Module, features_only: bool, out_indices, to_features: Callable
                 ) -> nn.Module:  # fmt: skip
    """The end of create_model for every source: eval mode, and ``to_features`` (the source's
    own cut) when features_only."""
    model.eval()
    if features_only:
        to_features(model, out_indices)
    elif out_indices is not None:
        raise ConfigError("out_indices is only used with features_only=True.")
    return model


class StepsMixin:
    """forward_features / forward_intermediates for a model run as steps (``model.modelkit``
    holds its spec, steps, layouts and levels)."""

    def check_input_size(self, x: torch.Tensor) -> None:
        record = self.modelkit
        check_fixed_size(x, record.fixed_size, f"{record.spec.name} models take")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x)
        for step in self.modelkit.steps:
            x = run_step(self, step, x)
        return x

    def forward_intermediates(
        self, x: torch.Tensor, out_indices: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """NCHW maps of the requested levels; nothing after the deepest of them is computed."""
        self.check_input_size(x)
        record = self.modelkit
        indices = resolve_out_indices(out_indices, len(record.levels))
        at = {record.levels[i]["step"]: i for i in indices}
        last, in_hw, found = max(at), tuple(x.shape[-2:]), {}
        for i, step in enumerate(record.steps[: last + 1]):
            x = run_step(self, step, x)
            if i in at:
                found[at[i]] = to_nchw(self, x, record.layouts[i], in_hw)
        return [found[i] for i in indices]


class FeaturesMixin(StepsMixin):
    """features_only: ``forward(x)`` gives the list of NCHW maps for ``out_indices``."""

    out_indices: list[int]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_intermediates(x, self.out_indices)


def prune_for_features(model: nn.Module, last_step: int) -> None:
    """Drop the modules a features_only model never runs (steps after the deepest level, head)."""
    record = model.modelkit
    unused = record.steps[last_step + 1 :] + expand_steps(model, record.spec.head)
    for path in unused:
        if not path.startswith("@"):
            model.set_submodule(path, nn.Identity())
