"""The score an explanation explains: the target's logit (the raw output before softmax) of the
model's own classifier, or of a taught head (a TrainedHead: a linear layer on the model's pooled
features, its scaling folded in). The head is read, never changed: its weights are copied to the
model's device per call.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from modelkit.errors import ConfigError
from modelkit.runtime.device import autocast
from modelkit.teach.head import TrainedHead


def check_head(head: TrainedHead, model: nn.Module
               ) -> tuple[list[str], torch.Tensor, torch.Tensor | None]:  # fmt: skip
    """(classes, weight, bias) of a taught head, checked against the model."""
    classes, linear = head.classes, head.linear
    num_features = getattr(model, "num_features", None)
    if linear.in_features != num_features:
        raise ConfigError(
            f"The head was taught on {linear.in_features} features per image, but this model "
            f"gives {num_features}: explain with the model (and in_chans / channels) the head "
            "was taught with."
        )
    if linear.out_features != len(classes):
        raise ConfigError(
            f"The head has {linear.out_features} outputs for {len(classes)} class names; "
            "it is damaged: teach it again."
        )
    weight = linear.weight.detach().float()
    bias = linear.bias.detach().float() if linear.bias is not None else None
    return [str(c) for c in classes], weight, bias


class Scorer:
    """Logits of a model (or of a taught head on its pooled features) for a batch of inputs.

    ``serve`` (optional) answers the passes that need no gradient (band importance) with the
    model's logits, or its pooled features when there is a head: a compiled graph may serve
    them (runtime.serving). Passes with gradients always run the model in torch."""

    def __init__(self, model: nn.Module, device: torch.device, precision: torch.dtype | None,
                 head=None, serve=None) -> None:  # fmt: skip
        self.model, self.device, self.precision, self.serve = model, device, precision, serve
        self.classes: list[str] | None = None
        self._weight = self._bias = None
        if head is not None:
            self.classes, weight, bias = check_head(head, model)
            self._weight = weight.to(device)
            self._bias = bias.to(device) if bias is not None else None
        else:
            if getattr(model, "num_classes", 1) == 0:
                raise ConfigError(
                    "This model was created with num_classes=0: it has no classifier whose "
                    "answer could be explained. Leave num_classes empty, or pass a taught head."
                )
            categories = getattr(model, "categories", None)
            self.classes = list(categories) if categories else None
        self.num_classes = len(self.classes) if self.classes else int(model.num_classes)

    def autocast(self):
        return autocast(self.device, self.precision) if self.precision else contextlib.nullcontext()

    def from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits from the trunk's output (``forward_features``)."""
        if self._weight is None:
            return self.model.forward_head(feats)
        return self._linear(self.model.forward_head(feats, pre_logits=True))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.serve is not None and not torch.is_grad_enabled():
            with self.autocast():
                out = self.serve(x)
            return (out if self._weight is None else self._linear(out)).float()
        with self.autocast():
            if self._weight is None:
                out = self.model(x)
            else:
                out = self.from_features(self.model.forward_features(x))
        return out.float()

    def _linear(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.linear(pooled.float(), self._weight, self._bias)

    def label(self, index: int) -> str:
        return self.classes[index] if self.classes else f"class {index}"

    def resolve_target(self, target, logits: torch.Tensor) -> int:
        """None -> the top class; an index; or a class name (case does not matter)."""
        if target is None:
            return int(logits[0].argmax())
        if isinstance(target, str) and not target.strip().lstrip("-").isdigit():
            names = [c.lower() for c in self.classes or []]
            if target.strip().lower() in names:
                return names.index(target.strip().lower())
            close = [c for c in self.classes or [] if target.strip().lower() in c.lower()][:5]
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"target={target!r} is not one of this model's class names.{hint} Give a class "
                f"name, or an index from 0 to {self.num_classes - 1}."
            )
        try:
            index = int(target)
        except (TypeError, ValueError):
            raise ConfigError(f"target={target!r} is not a class name or index.") from None
        if isinstance(target, bool) or not 0 <= index < self.num_classes:
            raise ConfigError(
                f"target={target!r} is out of range: this model has {self.num_classes} classes, "
                f"numbered 0 to {self.num_classes - 1}."
            )
        return index
