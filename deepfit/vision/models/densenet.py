"""DenseNet (Huang et al. 2017) for small images, with the BC variant's bottleneck and compression.

A DenseNet is a ResNet that concatenates instead of adding: each layer's `growth` new channels are
appended to everything before it in its block, so later layers see all earlier feature maps.
DenseNet-BC (L=100, k=12) has 0.8M parameters (the paper's table 2).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ...export import register_model
from ._common import init_cnn

__all__ = ["DenseNet", "densenet_bc", "DenseLayer", "Transition"]


class DenseLayer(nn.Module):
    """BN-ReLU-[conv1x1 to 4k -BN-ReLU]-conv3x3 to k, concatenated onto its input."""

    def __init__(self, ni: int, growth: int, bottleneck: bool = True, drop: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm2d(ni), nn.ReLU(inplace=True)]
        if bottleneck:
            layers += [nn.Conv2d(ni, 4 * growth, 1, bias=False), nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True)]
            ni = 4 * growth
        layers.append(nn.Conv2d(ni, growth, 3, padding=1, bias=False))
        if drop > 0:
            layers.append(nn.Dropout(drop))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.layers(x)], dim=1)


class Transition(nn.Sequential):
    """Between dense blocks: BN-ReLU-conv1x1 (to floor(compression * channels)) - 2x2 average pooling."""

    def __init__(self, ni: int, nf: int) -> None:
        super().__init__(nn.BatchNorm2d(ni), nn.ReLU(inplace=True), nn.Conv2d(ni, nf, 1, bias=False), nn.AvgPool2d(2))


@register_model
class DenseNet(nn.Sequential):
    """A DenseNet for 32x32 images: a 3x3 stem, three dense blocks with transitions between them, then
    BN-ReLU-global average pooling-linear.

    Args:
        depth: L; with the bottleneck each block has (L - 4) / 6 layers, without it (L - 4) / 3.
        growth: k, the channels each layer adds.
        bottleneck: the "B" of DenseNet-BC (a 1x1 conv to 4k before each 3x3).
        compression: the "C" (theta): transitions keep floor(theta * channels); 1.0 = plain DenseNet.
        n_out: classes.
        n_in: input channels.
        drop: dropout after each convolution of a dense layer (0.2 in the paper without augmentation).

    Example:
        >>> model = DenseNet(depth=100, growth=12)   # DenseNet-BC (L=100, k=12): 0.8M parameters
    """

    def __init__(self, depth: int = 100, growth: int = 12, bottleneck: bool = True, compression: float = 0.5,
                 n_out: int = 10, n_in: int = 3, drop: float = 0.0) -> None:
        per = 6 if bottleneck else 3
        if depth < 4 + per or (depth - 4) % per:
            raise ValueError(f"`depth` must be {per}n + 4 for bottleneck={bottleneck} (e.g. "
                             f"{'40, 100, 190, 250' if bottleneck else '40, 100'}); received depth={depth}.")
        if not 0 < compression <= 1:
            raise ValueError(f"`compression` must be in (0, 1]; received compression={compression}.")
        self.config = {"depth": int(depth), "growth": int(growth), "bottleneck": bool(bottleneck),
                       "compression": float(compression), "n_out": int(n_out), "n_in": int(n_in), "drop": float(drop)}
        n_layers = (depth - 4) // per
        ni = 2 * growth if bottleneck and compression < 1 else 16
        layers: list[nn.Module] = [nn.Conv2d(n_in, ni, 3, padding=1, bias=False)]
        for b in range(3):
            block = []
            for _ in range(n_layers):
                block.append(DenseLayer(ni, growth, bottleneck, drop))
                ni += growth
            layers.append(nn.Sequential(*block))
            if b < 2:
                nf = int(math.floor(compression * ni))
                layers.append(Transition(ni, nf))
                ni = nf
        layers += [nn.BatchNorm2d(ni), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(ni, n_out)]
        super().__init__(*layers)
        init_cnn(self)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def densenet_bc(depth: int = 100, growth: int = 12, n_out: int = 10, n_in: int = 3, drop: float = 0.0) -> DenseNet:
    """DenseNet-BC (bottleneck, compression 0.5)."""
    return DenseNet(depth, growth, bottleneck=True, compression=0.5, n_out=n_out, n_in=n_in, drop=drop)
