"""Lesson 3: the model from standard layers with nn.Sequential, then a hidden layer added.

`nn.Linear` holds the same weight and bias as lesson 2 (with its own initialisation), `nn.LogSoftmax`
the final activation; adding a hidden layer and a ReLU turns it into a multi-layer perceptron.
`fit` is the loop of lesson 2, written once for any model.

Run: python examples/mnist_03_sequential.py
"""
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepfit import Adam
from deepfit.data.mnist import digits_dls, load_digits

torch.manual_seed(0)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

x, y, source = load_digits(DATA)
print(f"data: {source}")
dls = digits_dls(x, y, valid_n=2000, bs=64, seed=0)   # 2000 held out; normalised with training stats


def fit(model: nn.Module, epochs: int, opt: torch.optim.Optimizer) -> None:
    for epoch in range(epochs):
        model.train()
        for xb, yb in dls.train:
            F.nll_loss(model(xb), yb).backward()
            opt.step()
            opt.zero_grad()
        model.eval()
        with torch.no_grad():
            preds, targs = zip(*[(model(xb), yb) for xb, yb in dls.valid])
            preds, targs = torch.cat(preds), torch.cat(targs)
        acc = (preds.argmax(-1) == targs).float().mean().item()
        print(f"  epoch {epoch}: valid loss {F.nll_loss(preds, targs).item():.4f}, accuracy {acc:.4f}")


print("logistic regression:")
logistic = nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.LogSoftmax(dim=-1))
fit(logistic, 2, torch.optim.SGD(logistic.parameters(), lr=0.1))

print("MLP 784-100-100-10:")
mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                    nn.Linear(100, 10), nn.LogSoftmax(dim=-1))
fit(mlp, 3, Adam(mlp.parameters(), lr=1e-3))
