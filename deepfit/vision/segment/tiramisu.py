"""Fully convolutional DenseNets ("The One Hundred Layers Tiramisu", Jégou et al. 2017).

A 3x3 convolution of 48 filters, then a down path of dense blocks, each followed by a transition down
(BN, ReLU, 1x1 convolution keeping the channels, dropout, 2x2 max pooling); a bottleneck dense block; and
an up path that mirrors it: a transition up (3x3 transposed convolution, stride 2) of only the feature maps
the previous dense block *added* (so the channels do not explode), concatenated with the skip connection
of the same resolution, then a dense block. A dense block's layer is BN, ReLU, 3x3 convolution giving
`growth` new maps, dropout 0.2; each layer sees the concatenation of the block's input and every earlier
layer's output. A final 1x1 convolution gives the class scores.

The paper's three networks (its Table 2 and section 4), with their parameter counts:

==================  ======  ==========================================  ===========
name                growth  layers per dense block (down, bottleneck)    parameters
==================  ======  ==========================================  ===========
``fc_densenet56``   12      4 4 4 4 4, 4                                  1.5M
``fc_densenet67``   16      5 5 5 5 5, 5                                  3.5M
``fc_densenet103``  16      4 5 7 10 12, 15                               9.4M
==================  ======  ==========================================  ===========

The up path uses the same numbers in reverse. Odd sizes are handled by cropping the upsampled maps to the
skip connection's size (the transposed convolution gives 2n + 1).

Example:
    >>> model = fc_densenet103(n_out=12)
    >>> model(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 12, 224, 224])
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ...export import register_model

__all__ = ["DenseLayer", "DenseBlock", "TransitionDown", "TransitionUp", "FCDenseNet", "fc_densenet56",
           "fc_densenet67", "fc_densenet103", "TIRAMISU_CONFIGS"]

#: The paper's networks: growth rate, layers of the down path's dense blocks, of the bottleneck.
TIRAMISU_CONFIGS: dict[str, dict[str, Any]] = {
    "fc_densenet56": {"growth": 12, "down_layers": [4, 4, 4, 4, 4], "bottleneck_layers": 4},
    "fc_densenet67": {"growth": 16, "down_layers": [5, 5, 5, 5, 5], "bottleneck_layers": 5},
    "fc_densenet103": {"growth": 16, "down_layers": [4, 5, 7, 10, 12], "bottleneck_layers": 15},
}


class DenseLayer(nn.Sequential):
    """BN -> ReLU -> 3x3 conv (`growth` maps) -> dropout."""

    def __init__(self, ni: int, growth: int, drop: float = 0.2) -> None:
        super().__init__(nn.BatchNorm2d(ni), nn.ReLU(inplace=True), nn.Conv2d(ni, growth, 3, padding=1),
                         nn.Dropout(drop))


class DenseBlock(nn.Module):
    """`n_layers` dense layers, each fed the concatenation of the block's input and all earlier outputs.

    Returns the input and every new map concatenated (`ni + n_layers * growth` channels) or, with
    `new_only` (the bottleneck and the up path before its last block), the new maps only
    (`n_layers * growth`)."""

    def __init__(self, ni: int, growth: int, n_layers: int, drop: float = 0.2, new_only: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DenseLayer(ni + i * growth, growth, drop) for i in range(n_layers)])
        self.new_only = new_only
        self.n_new = n_layers * growth
        self.n_out = self.n_new if new_only else ni + self.n_new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            out = layer(x)
            new.append(out)
            x = torch.cat([x, out], 1)
        return torch.cat(new, 1) if self.new_only else x


class TransitionDown(nn.Sequential):
    """BN -> ReLU -> 1x1 conv (same channels) -> dropout -> 2x2 max pooling."""

    def __init__(self, ni: int, drop: float = 0.2) -> None:
        super().__init__(nn.BatchNorm2d(ni), nn.ReLU(inplace=True), nn.Conv2d(ni, ni, 1), nn.Dropout(drop),
                         nn.MaxPool2d(2))


class TransitionUp(nn.Module):
    """3x3 transposed convolution with stride 2 (same channels), centre-cropped to the skip's size, then
    concatenated with the skip connection."""

    def __init__(self, ni: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(ni, ni, 3, stride=2)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.conv(x)  # (2h + 1, 2w + 1)
        h, w = skip.shape[-2:]
        top, left = (up.shape[-2] - h) // 2, (up.shape[-1] - w) // 2
        return torch.cat([up[..., top:top + h, left:left + w], skip], 1)


@register_model
class FCDenseNet(nn.Module):
    """A fully convolutional DenseNet (see the module doc).

    Args:
        n_out: classes; n_in: input channels.
        growth: maps added by each dense layer.
        down_layers: layers of each dense block of the down path (the up path mirrors them).
        bottleneck_layers: layers of the bottleneck's dense block.
        first_filters: filters of the first 3x3 convolution.
        drop: dropout after every convolution.
    """

    def __init__(self, n_out: int = 12, n_in: int = 3, growth: int = 16, down_layers: Sequence[int] = (4, 5, 7, 10, 12),
                 bottleneck_layers: int = 15, first_filters: int = 48, drop: float = 0.2) -> None:
        super().__init__()
        if n_out < 1 or growth < 1 or not down_layers or min(down_layers) < 1 or bottleneck_layers < 1:
            raise ValueError("FCDenseNet needs n_out, growth, bottleneck_layers and every down_layers value >= 1; "
                             f"received n_out={n_out}, growth={growth}, down_layers={list(down_layers)}, "
                             f"bottleneck_layers={bottleneck_layers}.")
        self.first = nn.Conv2d(n_in, first_filters, 3, padding=1)
        c = first_filters
        self.down_blocks, self.trans_down = nn.ModuleList(), nn.ModuleList()
        skip_c = []
        for n in down_layers:
            block = DenseBlock(c, growth, n, drop)
            self.down_blocks.append(block)
            c = block.n_out
            skip_c.append(c)
            self.trans_down.append(TransitionDown(c, drop))
        self.bottleneck = DenseBlock(c, growth, bottleneck_layers, drop, new_only=True)
        up_c = self.bottleneck.n_new
        self.trans_up, self.up_blocks = nn.ModuleList(), nn.ModuleList()
        ups = list(reversed(down_layers))
        for k, (n, sc) in enumerate(zip(ups, reversed(skip_c))):
            self.trans_up.append(TransitionUp(up_c))
            last = k == len(ups) - 1
            block = DenseBlock(up_c + sc, growth, n, drop, new_only=not last)
            self.up_blocks.append(block)
            up_c = block.n_out
        self.final = nn.Conv2d(up_c, n_out, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")  # HeUniform, as the paper
                nn.init.zeros_(m.bias)
        self.config = {"n_out": int(n_out), "n_in": int(n_in), "growth": int(growth),
                       "down_layers": [int(v) for v in down_layers], "bottleneck_layers": int(bottleneck_layers),
                       "first_filters": int(first_filters), "drop": float(drop)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        skips = []
        for block, td in zip(self.down_blocks, self.trans_down):
            x = block(x)
            skips.append(x)
            x = td(x)
        x = self.bottleneck(x)
        for tu, block, skip in zip(self.trans_up, self.up_blocks, reversed(skips)):
            x = block(tu(x, skip))
        return self.final(x)

    def layer_groups(self) -> list[nn.Module]:
        """One group (the network is trained from scratch as a whole)."""
        return [self]

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def fc_densenet56(n_out: int = 12, n_in: int = 3, drop: float = 0.2) -> FCDenseNet:
    """FC-DenseNet56: growth 12, 4 layers per dense block (about 1.5M parameters)."""
    return FCDenseNet(n_out, n_in, drop=drop, **TIRAMISU_CONFIGS["fc_densenet56"])


def fc_densenet67(n_out: int = 12, n_in: int = 3, drop: float = 0.2) -> FCDenseNet:
    """FC-DenseNet67: growth 16, 5 layers per dense block (about 3.5M parameters)."""
    return FCDenseNet(n_out, n_in, drop=drop, **TIRAMISU_CONFIGS["fc_densenet67"])


def fc_densenet103(n_out: int = 12, n_in: int = 3, drop: float = 0.2) -> FCDenseNet:
    """FC-DenseNet103: growth 16, dense blocks of 4, 5, 7, 10, 12 layers and a bottleneck of 15 (about 9.4M
    parameters)."""
    return FCDenseNet(n_out, n_in, drop=drop, **TIRAMISU_CONFIGS["fc_densenet103"])
