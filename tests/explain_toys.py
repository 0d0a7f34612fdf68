"""Tiny models with a known answer, for the explain tests: each looks only at the top-right
quadrant of its input (masked in its first step) and is zero-preserving elsewhere (no biases,
ReLUs, non-negative head weights for class 0), in each of the three layouts Grad-CAM handles:
a CNN (NCHW), a ViT (class token + patch tokens) and a Swin (channel-last)."""

from __future__ import annotations

import torch
from torch import nn

from modelkit.models.features import FamilySpec
from modelkit.models.registry import register_model

DIM, PATCH = 16, 4


class TopRight(nn.Module):
    """Zero everything but the top-right quadrant."""

    def forward(self, x):
        h, w = x.shape[-2:]
        mask = torch.zeros_like(x)
        mask[..., : h // 2, w // 2 :] = 1
        return x * mask


class Permute(nn.Module):
    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class TokenMLP(nn.Module):
    """x + relu(W x) on the last dim: keeps x >= 0 and zero rows zero."""

    def __init__(self, dim=DIM):
        super().__init__()
        self.fc = nn.Linear(dim, dim, bias=False)

    def forward(self, x):
        return x + torch.relu(self.fc(x))


class ClsFromPatches(nn.Module):
    def forward(self, x):
        return torch.cat([x[:, 1:].mean(dim=1, keepdim=True), x[:, 1:]], dim=1)


def _positive_head(linear: nn.Linear) -> nn.Linear:
    with torch.no_grad():
        linear.weight[0].abs_()
    return linear


class ToyCNN(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.mask = TopRight()
        self.conv1 = nn.Conv2d(3, DIM, 3, stride=2, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(DIM, DIM, 3, stride=2, padding=1, bias=False)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = _positive_head(nn.Linear(DIM, num_classes, bias=False))

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu(self.conv1(self.mask(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, 1, DIM), requires_grad=False)
        self.dropout = nn.Identity()
        self.layers = nn.Sequential(TokenMLP(), TokenMLP(), ClsFromPatches())


class ToyViT(nn.Module):
    patch_size = PATCH

    def __init__(self, num_classes=4):
        super().__init__()
        self.mask = TopRight()
        self.conv_proj = nn.Conv2d(3, DIM, PATCH, stride=PATCH, bias=False)
        self.class_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.encoder = _Encoder()
        self.heads = nn.Sequential(_positive_head(nn.Linear(DIM, num_classes, bias=False)))

    def _process_input(self, x):
        return torch.relu(self.conv_proj(self.mask(x))).flatten(2).transpose(1, 2)

    def forward(self, x):
        x = self._process_input(x)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.encoder.layers(x + self.encoder.pos_embedding)
        return self.heads(x[:, 0])


class ToySwin(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        stem = [TopRight(), nn.Conv2d(3, DIM, PATCH, stride=PATCH, bias=False), Permute(0, 2, 3, 1),
                nn.ReLU()]  # fmt: skip
        self.features = nn.Sequential(nn.Sequential(*stem), TokenMLP(), TokenMLP())
        self.norm = nn.Identity()
        self.permute = Permute(0, 3, 1, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.head = _positive_head(nn.Linear(DIM, num_classes, bias=False))

    def forward(self, x):
        x = self.permute(self.norm(self.features(x)))
        return self.head(torch.flatten(self.avgpool(x), 1))


SPECS = {
    "toy_cnn": (ToyCNN, FamilySpec(
        "toy_cnn", "conv1", "fc", ("mask", "conv1", "relu", "conv2", "relu2"),
        ("pool", "@flatten", "fc"), trace_size=32,
    )),
    "toy_vit": (ToyViT, FamilySpec(
        "toy_vit", "conv_proj", "heads.0", ("@vit_embed", "encoder.layers.*"),
        ("@cls_token", "heads.*"), layout="tokens", levels=("encoder.layers.*",), trace_size=32,
    )),
    "toy_swin": (ToySwin, FamilySpec(
        "toy_swin", "features.0.1", "head", ("features.*", "norm", "permute"),
        ("avgpool", "@flatten", "head"), layout="nhwc", nchw_from="permute",
        levels=("features.*",), trace_size=32,
    )),
}  # fmt: skip


def register_toys() -> None:
    for name, (cls, spec) in SPECS.items():
        register_model(name, spec, cls)
