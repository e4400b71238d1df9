"""Wide residual networks (Zagoruyko & Komodakis 2016): WRN-d-k, pre-activation blocks k times wider."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...export import register_model
from ._common import init_cnn

__all__ = ["WideResNet", "wrn"]


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3(stride)-BN-ReLU-dropout-conv3x3, plus shortcut (a 1x1
    convolution of the pre-activated input when the shape changes, as in the paper's code)."""

    def __init__(self, ni: int, nf: int, stride: int = 1, drop: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(ni)
        self.conv1 = nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(nf)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1, bias=False)
        self.shortcut = nn.Conv2d(ni, nf, 1, stride=stride, bias=False) if (ni != nf or stride != 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x))
        out = self.conv2(self.drop(F.relu(self.bn2(self.conv1(a)))))
        return out + (x if self.shortcut is None else self.shortcut(a))


@register_model
class WideResNet(nn.Module):
    """WRN-`depth`-`widen` for small images: a 3x3 stem of 16 channels, three groups of
    (depth - 4) / 6 blocks with 16k, 32k, 64k channels (stride 2 at groups 2 and 3), then
    BN-ReLU-average pooling-linear. WRN-40-4 has 8.9M parameters, WRN-16-8 11.0M, WRN-28-10 36.5M
    (the paper's table 3).

    Args:
        depth: 6n + 4 (16, 22, 28, 40).
        widen: width multiplier k.
        n_out: classes.
        n_in: input channels.
        drop: dropout between the two convolutions of each block (the paper uses 0.3 with k=10).
    """

    def __init__(self, depth: int = 16, widen: int = 4, n_out: int = 10, n_in: int = 3, drop: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"`depth` must be 6n + 4 with n >= 1 (16, 22, 28, 40); received depth={depth}.")
        if widen < 1:
            raise ValueError(f"`widen` must be a positive integer; received widen={widen}.")
        self.config = {"depth": int(depth), "widen": int(widen), "n_out": int(n_out), "n_in": int(n_in),
                       "drop": float(drop)}
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(n_in, 16, 3, padding=1, bias=False)
        ni, groups = 16, []
        for i, nf in enumerate(widths):
            groups.append(nn.Sequential(*[WideBlock(ni if j == 0 else nf, nf, 2 if (i > 0 and j == 0) else 1, drop)
                                          for j in range(n)]))
            ni = nf
        self.group1, self.group2, self.group3 = groups
        self.bn = nn.BatchNorm2d(ni)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(ni, n_out)
        init_cnn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.group3(self.group2(self.group1(self.conv1(x))))
        return self.fc(self.flatten(self.avgpool(self.relu(self.bn(x)))))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def wrn(depth: int = 16, widen: int = 4, n_out: int = 10, n_in: int = 3, drop: float = 0.0) -> WideResNet:
    """A `WideResNet` WRN-depth-widen."""
    return WideResNet(depth, widen, n_out=n_out, n_in=n_in, drop=drop)
