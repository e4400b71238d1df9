"""A fast small network for CIFAR-10 in the style of the speed records (Myrtle's ResNet-9, airbench):
few layers, wide channels, max pooling to shrink the image early, two residual blocks, and a scaled
linear output. Trains to 94% on a GPU in about 10 epochs with one-cycle SGD and flips + crops."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ...export import register_model
from ._common import conv_bn, init_cnn

__all__ = ["FastNet", "fastnet"]


class Residual(nn.Module):
    """x + two conv-BN-ReLU layers."""

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.res = nn.Sequential(conv_bn(nf, nf, 3, act=nn.ReLU(inplace=True)),
                                 conv_bn(nf, nf, 3, act=nn.ReLU(inplace=True)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res(x)


class Scale(nn.Module):
    """Multiply by a constant (the records scale the logits down by 8)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


@register_model
class FastNet(nn.Sequential):
    """prep conv (w0) -> [conv (w1), maxpool 2, residual] -> [conv (w2), maxpool 2] ->
    [conv (w3), maxpool 2, residual] -> global max pooling -> linear -> x `scale`.

    Args:
        widths: the four widths (64, 128, 256, 512 is ResNet-9; halve them for a CPU).
        n_out: classes.
        n_in: input channels.
        scale: factor on the logits.
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), n_out: int = 10, n_in: int = 3,
                 scale: float = 0.125) -> None:
        if len(widths) != 4:
            raise ValueError(f"`widths` must give 4 channel widths; received widths={list(widths)}.")
        self.config = {"widths": [int(w) for w in widths], "n_out": int(n_out), "n_in": int(n_in),
                       "scale": float(scale)}
        w0, w1, w2, w3 = widths

        def relu() -> nn.Module:
            return nn.ReLU(inplace=True)

        super().__init__(
            conv_bn(n_in, w0, 3, act=relu()),
            nn.Sequential(conv_bn(w0, w1, 3, act=relu()), nn.MaxPool2d(2), Residual(w1)),
            nn.Sequential(conv_bn(w1, w2, 3, act=relu()), nn.MaxPool2d(2)),
            nn.Sequential(conv_bn(w2, w3, 3, act=relu()), nn.MaxPool2d(2), Residual(w3)),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(w3, n_out, bias=False), Scale(scale))
        init_cnn(self)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def fastnet(n_out: int = 10, n_in: int = 3, widths: Sequence[int] = (64, 128, 256, 512)) -> FastNet:
    """A `FastNet` (see there)."""
    return FastNet(widths, n_out=n_out, n_in=n_in)
