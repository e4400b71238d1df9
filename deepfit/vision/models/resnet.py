"""Residual networks (He et al. 2016).

- `resnet18/34/50`: the ImageNet ResNets with torchvision's layout and parameter names (conv1, bn1,
  layer1..4, fc; BasicBlock / Bottleneck with downsample.0 / downsample.1), so a torchvision weight
  file loads into them with `load_state_dict` unchanged. The Bottleneck strides in its 3x3
  convolution ("ResNet v1.5"), as torchvision's does.
- `resnet20/56` (`CifarResNet`): the paper's networks for 32x32 images (section 4.2): a 3x3 stem of
  16 channels and three stages of n blocks at 16/32/64 channels (depth 6n + 2). Shortcuts that change
  shape are option A of the paper (subsample + zero-padded channels, no parameters: 0.27M parameters
  for ResNet20, 0.85M for ResNet56) or option B (1x1 convolution + batch norm).

Every model lists its children in forward order (body, then avgpool, flatten, fc), so `create_body`
cuts it by dropping the last children.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...export import register_model
from ._common import init_cnn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50", "CifarResNet", "resnet20",
           "resnet56"]


def _conv3x3(ni: int, nf: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, 3, stride=stride, padding=1, bias=False)


def _conv1x1(ni: int, nf: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(ni, nf, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; out = relu(branch(x) + shortcut(x))."""

    expansion = 1

    def __init__(self, ni: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(ni, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 (stride) -> 1x1 (expand x4) convolutions with batch norm, plus shortcut."""

    expansion = 4

    def __init__(self, ni: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(ni, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        idt = x if self.downsample is None else self.downsample(x)
        return self.relu(out + idt)


_BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


@register_model
class ResNet(nn.Module):
    """An ImageNet ResNet with torchvision's module names (so its weight files load unchanged).

    Args:
        block: "basic" (ResNet18/34) or "bottleneck" (ResNet50 and deeper).
        layers: blocks per stage, e.g. (2, 2, 2, 2) for ResNet18.
        n_out: classes of the final `fc` layer (1000 for ImageNet weights).
        n_in: input channels of `conv1`.
        zero_init_residual: start the last batch norm of each residual branch at 0.
    """

    def __init__(self, block: str = "basic", layers: Sequence[int] = (2, 2, 2, 2), n_out: int = 1000, n_in: int = 3,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        if block not in _BLOCKS:
            raise ValueError(f"`block` must be one of {sorted(_BLOCKS)}; received block={block!r}.")
        if len(layers) != 4:
            raise ValueError(f"`layers` must give 4 stage depths; received layers={list(layers)}.")
        self.config = {"block": block, "layers": [int(n) for n in layers], "n_out": int(n_out), "n_in": int(n_in),
                       "zero_init_residual": bool(zero_init_residual)}
        blk = _BLOCKS[block]
        self._ni = 64
        self.conv1 = nn.Conv2d(n_in, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(blk, 64, layers[0], 1)
        self.layer2 = self._stage(blk, 128, layers[1], 2)
        self.layer3 = self._stage(blk, 256, layers[2], 2)
        self.layer4 = self._stage(blk, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()  # no parameters: the state dict keeps torchvision's names
        self.fc = nn.Linear(512 * blk.expansion, n_out)
        init_cnn(self)
        nn.init.normal_(self.fc.weight, std=0.01)
        if zero_init_residual:
            for m in self.modules():
                last = getattr(m, "bn3", None) if isinstance(m, Bottleneck) else getattr(m, "bn2", None)
                if isinstance(m, (BasicBlock, Bottleneck)) and last is not None:
                    nn.init.zeros_(last.weight)

    def _stage(self, blk: type, planes: int, n: int, stride: int) -> nn.Sequential:
        down = None
        if stride != 1 or self._ni != planes * blk.expansion:
            nf = planes * blk.expansion
            down = nn.Sequential(_conv1x1(self._ni, nf, stride), nn.BatchNorm2d(nf))
        blocks = [blk(self._ni, planes, stride, down)]
        self._ni = planes * blk.expansion
        blocks += [blk(self._ni, planes) for _ in range(1, n)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def resnet18(n_out: int = 1000, n_in: int = 3) -> ResNet:
    """ResNet18 (11,689,512 parameters with 1000 classes)."""
    return ResNet("basic", (2, 2, 2, 2), n_out=n_out, n_in=n_in)


def resnet34(n_out: int = 1000, n_in: int = 3) -> ResNet:
    """ResNet34 (21,797,672 parameters with 1000 classes)."""
    return ResNet("basic", (3, 4, 6, 3), n_out=n_out, n_in=n_in)


def resnet50(n_out: int = 1000, n_in: int = 3) -> ResNet:
    """ResNet50 (25,557,032 parameters with 1000 classes)."""
    return ResNet("bottleneck", (3, 4, 6, 3), n_out=n_out, n_in=n_in)


class PadShortcut(nn.Module):
    """Option A shortcut: keep every `stride`-th pixel and append zero channels up to `nf`."""

    def __init__(self, ni: int, nf: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = nf - ni, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


class CifarBlock(nn.Module):
    """The paper's CIFAR basic block: two 3x3 conv + BN, ReLU after the sum; option A or B shortcut."""

    def __init__(self, ni: int, nf: int, stride: int = 1, shortcut: str = "A") -> None:
        super().__init__()
        self.conv1 = _conv3x3(ni, nf, stride)
        self.bn1 = nn.BatchNorm2d(nf)
        self.conv2 = _conv3x3(nf, nf)
        self.bn2 = nn.BatchNorm2d(nf)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or ni != nf:
            self.shortcut = PadShortcut(ni, nf, stride) if shortcut == "A" else \
                nn.Sequential(_conv1x1(ni, nf, stride), nn.BatchNorm2d(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


@register_model
class CifarResNet(nn.Module):
    """The CIFAR ResNet of depth 6n + 2 (He et al. 2016, section 4.2).

    Args:
        depth: 20, 32, 44, 56, 110, ... (6n + 2).
        n_out: classes.
        n_in: input channels.
        shortcut: "A" (zero-padding, parameter-free, the paper's CIFAR choice) or "B" (1x1 conv).
        width: channels of the first stage (16 in the paper); the stages have width, 2x, 4x.
    """

    def __init__(self, depth: int = 20, n_out: int = 10, n_in: int = 3, shortcut: str = "A", width: int = 16) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"`depth` must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110); received depth={depth}.")
        if shortcut not in ("A", "B"):
            raise ValueError(f"`shortcut` must be 'A' or 'B'; received shortcut={shortcut!r}.")
        self.config = {"depth": int(depth), "n_out": int(n_out), "n_in": int(n_in), "shortcut": shortcut,
                       "width": int(width)}
        n = (depth - 2) // 6
        self.conv1 = _conv3x3(n_in, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        stages, ni = [], width
        for i, nf in enumerate((width, 2 * width, 4 * width)):
            blocks = [CifarBlock(ni if j == 0 else nf, nf, 2 if (i > 0 and j == 0) else 1, shortcut) for j in range(n)]
            stages.append(nn.Sequential(*blocks))
            ni = nf
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * width, n_out)
        init_cnn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def resnet20(n_out: int = 10, n_in: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet20 for 32x32 images (0.27M parameters with shortcut A)."""
    return CifarResNet(20, n_out=n_out, n_in=n_in, shortcut=shortcut)


def resnet56(n_out: int = 10, n_in: int = 3, shortcut: str = "A") -> CifarResNet:
    """ResNet56 for 32x32 images (0.85M parameters with shortcut A)."""
    return CifarResNet(56, n_out=n_out, n_in=n_in, shortcut=shortcut)
