"""Proxy and target architectures, by name.

Every model maps a float batch (B, C, H, W) to logits (B, K) and exposes
`embed(x) -> (B, D)`, the penultimate features k-center greedy works on.
No training logic lives here.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
import torch.nn.functional as F

from pipeline.errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    def wrap(factory):
        _MODELS[name] = factory
        return factory
    return wrap


def model_names() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, in_channels: int, num_classes: int) -> nn.Module:
    if name not in _MODELS:
        raise ConfigError(f"unknown model '{name}': choose one of {', '.join(model_names())}")
    return _MODELS[name](in_channels=in_channels, num_classes=num_classes)


class Classifier(nn.Module):
    """A feature extractor followed by a linear head."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.features = features
        self.head = nn.Linear(feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, K)


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@register_model("small_cnn")
def small_cnn(in_channels: int, num_classes: int, width: int = 16) -> nn.Module:
    """Three conv blocks and global pooling: the cheap selection model."""
    features = nn.Sequential(
        *_conv_bn_relu(in_channels, width), nn.MaxPool2d(2),         # (B, w, H/2, W/2)
        *_conv_bn_relu(width, 2 * width), nn.MaxPool2d(2),           # (B, 2w, H/4, W/4)
        *_conv_bn_relu(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),                       # (B, 4w)
    )
    return Classifier(features, 4 * width, num_classes)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv twice, identity shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


def _preact_resnet(in_channels: int, num_classes: int, depth: int, base_width: int = 16) -> nn.Module:
    if (depth - 2) % 6:
        raise ConfigError(f"pre-activation ResNet depth {depth} is not 6n+2: use 20, 56, 110, ...")
    blocks_per_stage = (depth - 2) // 6
    layers: list[nn.Module] = [nn.Conv2d(in_channels, base_width, 3, padding=1, bias=False)]
    cin = base_width
    for stage, cout in enumerate((base_width, 2 * base_width, 4 * base_width)):
        for block in range(blocks_per_stage):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(PreActBlock(cin, cout, stride))
            cin = cout
    layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), cin, num_classes)


@register_model("preact_resnet20")
def preact_resnet20(in_channels: int, num_classes: int) -> nn.Module:
    """The paper's CIFAR proxy; works on any square input (28x28 included)."""
    return _preact_resnet(in_channels, num_classes, depth=20)


@register_model("preact_resnet56")
def preact_resnet56(in_channels: int, num_classes: int) -> nn.Module:
    return _preact_resnet(in_channels, num_classes, depth=56)
