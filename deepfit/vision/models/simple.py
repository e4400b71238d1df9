"""A simple CNN: stride-2 convolutions with batch norm and ReLU, then average pooling and a linear layer."""
from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from ...export import register_model
from ._common import conv_bn, init_cnn

__all__ = ["SimpleCNN", "simple_cnn"]


@register_model
class SimpleCNN(nn.Sequential):
    """Conv(3x3, stride 2) + BatchNorm + ReLU per entry of `channels`, then global average pooling,
    flatten and a linear layer to `n_out` classes. Each conv halves the image, so 4 layers take a
    28x28 digit to 2x2. Children are in forward order (body first, then pooling/flatten/linear), so
    `create_body` can cut it.

    Args:
        n_out: number of classes.
        n_in: input channels (1 for MNIST, 3 for RGB).
        channels: output channels of each stride-2 convolution.

    Example:
        >>> model = SimpleCNN(n_out=10, n_in=1, channels=(16, 32, 64, 64))
    """

    def __init__(self, n_out: int = 10, n_in: int = 3, channels: Sequence[int] = (16, 32, 64, 128)) -> None:
        if not channels:
            raise ValueError("`channels` must list at least one convolution width; received an empty list.")
        self.config = {"n_out": int(n_out), "n_in": int(n_in), "channels": [int(c) for c in channels]}
        widths = [n_in] + list(channels)
        layers: list[nn.Module] = [conv_bn(widths[i], widths[i + 1], 3, stride=2, act=nn.ReLU(inplace=True))
                                   for i in range(len(channels))]
        super().__init__(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], n_out))
        init_cnn(self)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def simple_cnn(n_out: int = 10, n_in: int = 3, channels: Sequence[int] = (16, 32, 64, 128)) -> SimpleCNN:
    """A `SimpleCNN` (see there)."""
    return SimpleCNN(n_out=n_out, n_in=n_in, channels=channels)
