"""Lesson 2: the same logistic regression as an nn.Module, trained with an optimizer.

`nn.Parameter` registers the weights so `model.parameters()` finds them; the optimizer does the
update and `zero_grad` of lesson 1; deepfit's `DataLoader` makes the shuffled mini-batches by
indexing whole tensors. (`deepfit.layers.LogisticRegression` is this class.)

Run: python examples/mnist_02_logistic_module.py
"""
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepfit import SGD
from deepfit.data import DataLoader
from deepfit.data.mnist import load_digits

torch.manual_seed(0)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

x, y, source = load_digits(DATA)
print(f"data: {source}")
x = x.float() / 255
perm = torch.randperm(len(x))
x_train, y_train, x_valid, y_valid = x[perm[2000:]], y[perm[2000:]], x[perm[:2000]], y[perm[:2000]]
mean, std = x_train.mean(), x_train.std()          # training statistics only
train_dl = DataLoader((x_train - mean) / std, y_train, bs=64, shuffle=True, seed=0)
valid_dl = DataLoader((x_valid - mean) / std, y_valid, bs=256)


class LogisticRegression(nn.Module):
    """log_softmax(x @ W + b), with W drawn from randn scaled by 1/sqrt(fan_in)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) / math.sqrt(n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1)                  # (bs, 28, 28) -> (bs, 784)
        return torch.log_softmax(x @ self.weight + self.bias, dim=-1)


model = LogisticRegression(784, 10)
opt = SGD(model.parameters(), lr=0.1)

for epoch in range(2):
    model.train()
    for xb, yb in train_dl:
        loss = F.nll_loss(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        n_correct = total_loss = 0.0
        for xb, yb in valid_dl:
            out = model(xb)
            total_loss += F.nll_loss(out, yb, reduction="sum").item()
            n_correct += (out.argmax(-1) == yb).sum().item()
    print(f"epoch {epoch}: valid loss {total_loss / valid_dl.n:.4f}, accuracy {n_correct / valid_dl.n:.4f}")
