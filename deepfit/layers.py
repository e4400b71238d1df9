"""Building blocks: a configurable MLP, logistic regression, Lambda, and init helpers."""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

__all__ = ["MLP", "LogisticRegression", "Lambda", "LinBnDrop", "sigmoid_range", "SigmoidRange", "trunc_normal_"]


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Sigmoid scaled to the open interval (low, high)."""
    return torch.sigmoid(x) * (high - low) + low


class SigmoidRange(nn.Module):
    """Module form of `sigmoid_range`."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sigmoid_range(x, self.low, self.high)


def trunc_normal_(x: torch.Tensor, std: float = 0.01) -> torch.Tensor:
    """Truncated normal initialisation within two standard deviations (in place)."""
    return nn.init.trunc_normal_(x, std=std, a=-2 * std, b=2 * std)


class Lambda(nn.Module):
    """Wrap a function as a module (e.g. `Lambda(lambda x: x.view(-1, 784))`). Not exportable."""

    def __init__(self, func: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.func = func

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.func(x)


class LinBnDrop(nn.Sequential):
    """Optional batch-norm, optional dropout, then a linear layer and an optional activation."""

    def __init__(self, n_in: int, n_out: int, bn: bool = True, p: float = 0.0, act: nn.Module | None = None,
                 lin_first: bool = False) -> None:
        layers: list[nn.Module] = [nn.BatchNorm1d(n_out if lin_first else n_in)] if bn else []
        if p != 0:
            layers.append(nn.Dropout(p))
        lin: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not bn)]
        if act is not None:
            lin.append(act)
        super().__init__(*(lin + layers if lin_first else layers + lin))


class LogisticRegression(nn.Module):
    """Multinomial logistic regression written out by hand: weights drawn from randn scaled by
    1/sqrt(fan_in), then `log_softmax(x @ W + b)`. Pair it with `nn.NLLLoss` (or deepfit's
    CrossEntropyLoss, since log-softmax outputs are valid logits)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.randn(n_in, n_out) / math.sqrt(n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)  # (bs, 28, 28) -> (bs, 784)
        return torch.log_softmax(x @ self.weight + self.bias, dim=-1)

    def get_config(self) -> dict[str, Any]:
        return {"n_in": self.n_in, "n_out": self.n_out}


class MLP(nn.Module):
    """Fully connected network: flatten, then Linear + ReLU (+ optional dropout) per hidden size.

    Args:
        n_in: input features (inputs are flattened).
        hidden: sizes of the hidden layers, e.g. [100, 100].
        n_out: outputs (classes, or 1 for regression).
        p: dropout before each hidden layer's activation output (0 = none).
        bn: batch-norm after each hidden linear layer.

    Example:
        >>> MLP(784, [100, 100], 10)
    """

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, p: float = 0.0, bn: bool = False) -> None:
        super().__init__()
        self.n_in, self.hidden, self.n_out, self.p, self.bn = n_in, list(hidden), n_out, p, bn
        layers: list[nn.Module] = []
        sizes = [n_in] + self.hidden
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers.append(nn.Linear(a, b))
            if bn:
                layers.append(nn.BatchNorm1d(b))
            layers.append(nn.ReLU())
            if p:
                layers.append(nn.Dropout(p))
        layers.append(nn.Linear(sizes[-1], n_out))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.reshape(len(x), -1))

    def get_config(self) -> dict[str, Any]:
        return {"n_in": self.n_in, "hidden": self.hidden, "n_out": self.n_out, "p": self.p, "bn": self.bn}
