"""Building blocks shared by the vision models: conv + batch-norm + activation, and weight init."""
from __future__ import annotations

from torch import nn

__all__ = ["conv_bn", "init_cnn"]


def conv_bn(ni: int, nf: int, ks: int = 3, stride: int = 1, act: nn.Module | None = None,
            bn_zero: bool = False) -> nn.Sequential:
    """`Conv2d` (no bias: the batch norm has one) -> `BatchNorm2d` -> optional activation.

    Args:
        ni, nf: input and output channels.
        ks: kernel size (padding `ks // 2` keeps the size at stride 1).
        stride: convolution stride.
        act: activation module appended after the batch norm (None: none).
        bn_zero: start the batch norm's scale at 0 (the last layer of a residual branch, so that
            each block starts as the identity).
    """
    bn = nn.BatchNorm2d(nf)
    if bn_zero:
        nn.init.zeros_(bn.weight)
    layers = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False), bn]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


def init_cnn(m: nn.Module) -> None:
    """Kaiming-normal init of every convolution and linear layer (fan-out for convolutions, as for
    ReLU networks), zero biases; batch norms start at scale 1, shift 0 unless already set."""
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
        elif isinstance(mod, nn.Linear):
            nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            if mod.bias is not None:
                nn.init.zeros_(mod.bias)
