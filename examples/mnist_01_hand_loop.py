"""Lesson 1: logistic regression on MNIST with nothing but tensors and autograd.

No nn.Module, no optimizer: the weights are two tensors, the model is `x @ w + b`, and one training
step is "compute the loss, backward, move each weight against its gradient, zero the gradients".

Data: $DEEPFIT_DATA/mnist10k (default ../shared/data next to the repo); generated digits when absent.
Run: python examples/mnist_01_hand_loop.py
"""
import math
import os
from pathlib import Path

import torch

from deepfit.data.mnist import load_digits

torch.manual_seed(0)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# 1. Data: 28x28 images as rows of 784 pixels in [0, 1]; 8000 to train on, 2000 to check on.
x, y, source = load_digits(DATA)
print(f"data: {source}")
x = x.reshape(len(x), 784).float() / 255
perm = torch.randperm(len(x))
train_idx, valid_idx = perm[2000:], perm[:2000]
x_train, y_train, x_valid, y_valid = x[train_idx], y[train_idx], x[valid_idx], y[valid_idx]

# Normalise with the statistics of the training set only (the validation set is "unseen" data).
mean, std = x_train.mean(), x_train.std()
x_train, x_valid = (x_train - mean) / std, (x_valid - mean) / std

# 2. Parameters: random weights scaled by 1/sqrt(fan_in) keep the initial outputs of order 1.
weights = (torch.randn(784, 10) / math.sqrt(784)).requires_grad_()
bias = torch.zeros(10, requires_grad=True)


def model(xb: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the 10 classes: log_softmax(x @ w + b)."""
    return torch.log_softmax(xb @ weights + bias, dim=-1)


def nll(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood: minus the log-probability of the right class, averaged."""
    return -log_probs[torch.arange(len(target)), target].mean()


def accuracy(log_probs: torch.Tensor, target: torch.Tensor) -> float:
    return (log_probs.argmax(dim=-1) == target).float().mean().item()


# 3. The training loop: mini-batches made by slicing the (shuffled) tensors.
lr, bs, epochs = 0.1, 64, 2
for epoch in range(epochs):
    order = torch.randperm(len(x_train))
    for i in range(0, len(x_train), bs):
        idx = order[i:i + bs]
        loss = nll(model(x_train[idx]), y_train[idx])
        loss.backward()                      # fills weights.grad and bias.grad
        with torch.no_grad():                # the update itself must not be recorded by autograd
            weights -= lr * weights.grad
            bias -= lr * bias.grad
            weights.grad.zero_()             # gradients accumulate unless zeroed
            bias.grad.zero_()
    with torch.no_grad():
        preds = model(x_valid)
        print(f"epoch {epoch}: valid loss {nll(preds, y_valid).item():.4f}, "
              f"accuracy {accuracy(preds, y_valid):.4f}")
