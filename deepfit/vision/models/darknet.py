"""The Darknet-style residual network of the 2018 fast.ai course (after YOLOv3's Darknet-53):
conv-BN-LeakyReLU layers and residual layers that squeeze to half the channels and expand back."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ...export import register_model
from ._common import conv_bn, init_cnn

__all__ = ["Darknet", "darknet"]


def _leaky() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class ResLayer(nn.Module):
    """x + conv3x3(ni/2 -> ni)(conv1x1(ni -> ni/2)(x)), each conv with BN and leaky ReLU."""

    def __init__(self, ni: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(ni, ni // 2, 1, act=_leaky())
        self.conv2 = conv_bn(ni // 2, ni, 3, act=_leaky())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


@register_model
class Darknet(nn.Sequential):
    """A stem conv to `nf` channels, then one group per entry of `blocks`: a conv that doubles the
    channels (stride 2 except the first group's) followed by that many `ResLayer`s; then global
    average pooling and a linear layer. The course trained Darknet((1, 2, 4, 6, 3), nf=32) on CIFAR-10.

    Args:
        blocks: residual layers per group.
        n_out: classes.
        nf: channels of the stem.
        n_in: input channels.
    """

    def __init__(self, blocks: Sequence[int] = (1, 2, 4, 6, 3), n_out: int = 10, nf: int = 32, n_in: int = 3) -> None:
        if not blocks:
            raise ValueError("`blocks` must list at least one group; received an empty list.")
        self.config = {"blocks": [int(b) for b in blocks], "n_out": int(n_out), "nf": int(nf), "n_in": int(n_in)}
        layers: list[nn.Module] = [conv_bn(n_in, nf, 3, act=_leaky())]
        for i, nb in enumerate(blocks):
            group = [conv_bn(nf, nf * 2, 3, stride=1 if i == 0 else 2, act=_leaky())]
            group += [ResLayer(nf * 2) for _ in range(nb)]
            layers.append(nn.Sequential(*group))
            nf *= 2
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(nf, n_out))
        init_cnn(self)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def darknet(blocks: Sequence[int] = (1, 2, 4, 6, 3), n_out: int = 10, nf: int = 32, n_in: int = 3) -> Darknet:
    """A `Darknet` (see there)."""
    return Darknet(blocks, n_out=n_out, nf=nf, n_in=n_in)
