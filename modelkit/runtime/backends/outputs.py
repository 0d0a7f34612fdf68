"""What a compiled graph computes: one of four outputs of a built model, as a small module that
torch runs for the reference and the exporter traces.

- ``"logits"``: ``model(x)`` (a features_only model's ``forward`` gives its list of maps);
- ``"pooled"``: ``forward_head(forward_features(x), pre_logits=True)``, the embedding;
- ``"features:0,2,4"``: ``forward_intermediates(x, [0, 2, 4])``, a list of NCHW maps;
- ``"trunk"``: ``forward_features(x)``, for dense scene maps (spatial size may vary).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from modelkit.errors import ConfigError

KINDS = ("logits", "pooled", "features", "trunk")
# outputs whose rows are class scores: the probe also compares their top-1
RANKED = ("logits", "pooled")


@dataclass(frozen=True)
class Output:
    """A parsed output name: its kind and, for "features", the levels."""

    kind: str
    indices: tuple[int, ...] | None = None

    @property
    def name(self) -> str:
        if self.kind == "features":
            return "features:" + ",".join(str(i) for i in self.indices or ())
        return self.kind

    @property
    def dynamic_spatial(self) -> bool:
        """Whether to try a graph with free height and width (only the trunk needs one)."""
        return self.kind == "trunk"


def parse_output(output: str) -> Output:
    """``"logits" | "pooled" | "trunk" | "features:<i,j,...>"`` -> Output (ConfigError else).

    Args:
        output: the output's name.
    Returns:
        The parsed Output.
    """
    text = str(output).strip().lower().replace(" ", "")
    kind, _, rest = text.partition(":")
    if kind in ("logits", "pooled", "trunk") and not rest:
        return Output(kind)
    if kind == "features" and rest:
        try:
            indices = tuple(int(i) for i in rest.split(","))
        except ValueError:
            indices = ()
        if indices:
            return Output("features", indices)
    raise ConfigError(
        f"output={output!r} is not one a compiled graph can give; use 'logits', 'pooled', "
        "'trunk' or 'features:' with level numbers, e.g. 'features:1,2,3'."
    )


class OutputModule(nn.Module):
    """``forward(x)`` is the chosen output of ``model``: what torch serves and what is exported."""

    def __init__(self, model: nn.Module, output: Output) -> None:
        super().__init__()
        self.model = model
        self.output = output
        self.training = model.training  # a fresh module says True: the exporter restores that

    def forward(self, x: torch.Tensor):
        model, kind = self.model, self.output.kind
        if kind == "logits":
            return model(x)
        if kind == "pooled":
            return model.forward_head(model.forward_features(x), pre_logits=True)
        if kind == "trunk":
            return model.forward_features(x)
        return model.forward_intermediates(x, list(self.output.indices))


def as_list(out) -> list[torch.Tensor]:
    """A tensor or a list/tuple of tensors as a list."""
    return list(out) if isinstance(out, list | tuple) else [out]


def restore(arrays: list, like_list: bool) -> torch.Tensor | list[torch.Tensor]:
    """numpy outputs of a session as what torch gives: one tensor, or a list of them."""
    tensors = [torch.from_numpy(a) for a in arrays]
    return tensors if like_list else tensors[0]
