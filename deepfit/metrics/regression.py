"""Regression metrics: MSE and MAE (batch means), RMSE, RMSPE on log targets and R2 (exact
running sums over all samples)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .core import Metric, StateComm, _acc_dtype, _add, _check_name, _sum_pair

__all__ = ["RMSE", "R2Score", "ExpRMSPE", "mse", "mae", "rmse", "r2_score", "exp_rmspe"]


def _regression_pair(pred: Tensor, targ: Tensor, who: str) -> tuple[Tensor, Tensor]:
    """Flattens a regression output and target to matching 1-D float tensors.

    Accepts equal shapes, or shapes with the same number of elements and the same leading
    dimension such as ``(N, 1)`` vs ``(N,)``.
    """
    if pred.shape != targ.shape:
        same_n = pred.numel() == targ.numel()
        same_lead = pred.ndim == 0 or targ.ndim == 0 or pred.shape[0] == targ.shape[0]
        if not (same_n and same_lead):
            raise ValueError(
                f"{who}: pred and targ must have the same shape, or the same number of elements "
                f"and batch size (e.g. (N, 1) and (N,)); got pred {tuple(pred.shape)} and "
                f"targ {tuple(targ.shape)}"
            )
    dt = _acc_dtype(pred.device)
    return pred.detach().reshape(-1).to(dt), targ.detach().reshape(-1).to(dt)


# ----------------------------------------------------------------------------------------------
# Batch means (plain functions)
# ----------------------------------------------------------------------------------------------
def mse(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean squared error over all elements (``(N, 1)`` outputs are matched to ``(N,)`` targets).

    Returns:
        Scalar tensor (float64, float32 on MPS).
    """
    p, t = _regression_pair(pred, targ, "mse")
    return (p - t).pow(2).mean()


def mae(pred: Tensor, targ: Tensor) -> Tensor:
    """Mean absolute error over all elements (``(N, 1)`` outputs are matched to ``(N,)`` targets).

    Returns:
        Scalar tensor (float64, float32 on MPS).
    """
    p, t = _regression_pair(pred, targ, "mae")
    return (p - t).abs().mean()


# ----------------------------------------------------------------------------------------------
# Metrics with running state
# ----------------------------------------------------------------------------------------------
class _MeanSquareRoot(Metric):
    """sqrt(mean(err(pred, targ) ** 2)) over all elements, from running sums."""

    def _err(self, p: Tensor, t: Tensor) -> Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        self._sum: Tensor | None = None
        self._n = 0

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        p, t = _regression_pair(pred, targ, self.name)
        self._sum = _add(self._sum, self._err(p, t).pow(2).sum())
        self._n += p.numel()

    def sync(self, comm: StateComm) -> None:
        self._sum, self._n = _sum_pair(comm, self._sum, self._n)

    @property
    def value(self) -> float:
        if self._sum is None or self._n == 0:
            return math.nan
        return float(torch.sqrt(self._sum / self._n).item())


class RMSE(_MeanSquareRoot):
    """Root mean squared error over all samples (not the mean of per-batch RMSEs).

    Args:
        name: Name shown in logs (default ``'rmse'``).
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(_check_name(name) or "rmse")

    def _err(self, p: Tensor, t: Tensor) -> Tensor:
        return p - t


class ExpRMSPE(_MeanSquareRoot):
    """Root mean squared percentage error for models trained on log targets.

    ``sqrt(mean(((exp(t) - exp(p)) / exp(t)) ** 2))``, computed as ``1 - exp(p - t)`` for
    numerical range.

    Args:
        name: Name shown in logs (default ``'exp_rmspe'``).
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(_check_name(name) or "exp_rmspe")

    def _err(self, p: Tensor, t: Tensor) -> Tensor:
        return 1.0 - torch.exp(p - t)


class R2Score(Metric):
    """Coefficient of determination ``1 - SS_res / SS_tot`` over all samples.

    Keeps running count, mean and centered sum of squares of the targets (merged per batch with
    Chan et al.'s parallel update) and the residual sum of squares. Multi-output predictions are
    flattened. Follows scikit-learn for degenerate cases: NaN with fewer than 2 samples; constant
    targets give 1.0 for a perfect fit and 0.0 otherwise.

    Args:
        name: Name shown in logs (default ``'r2_score'``).
    """

    def __init__(self, name: str | None = None) -> None:
        super().__init__(_check_name(name) or "r2_score")

    def reset(self) -> None:
        self._n = 0
        self._mean: Tensor | None = None
        self._m2: Tensor | None = None
        self._sse: Tensor | None = None

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        p, t = _regression_pair(pred, targ, self.name)
        nb = t.numel()
        if nb == 0:
            return
        mb = t.mean()
        self._merge(nb, mb, (t - mb).pow(2).sum(), (t - p).pow(2).sum())

    def _merge(self, nb: int, mb: Tensor, m2b: Tensor, sseb: Tensor) -> None:
        # Chan et al.'s parallel update: fold a part's count, target mean, centred target sum of
        # squares and residual sum of squares into the running state.
        if self._mean is None or self._m2 is None or self._sse is None:
            self._mean, self._m2, self._sse, self._n = mb, m2b, sseb, nb
            return
        n = self._n + nb
        delta = mb - self._mean
        self._mean = self._mean + delta * (nb / n)
        self._m2 = self._m2 + m2b + delta.pow(2) * (self._n * nb / n)
        self._sse = self._sse + sseb
        self._n = n

    def sync(self, comm: StateComm) -> None:
        # Gather (n, mean, m2, sse) of every process and merge them in rank order with the same
        # parallel update as `accumulate`, so every process ends with the same state.
        if self._mean is None or self._m2 is None or self._sse is None:
            row = torch.zeros(1, 4, dtype=torch.float64)
        else:
            stats = torch.stack([self._mean, self._m2, self._sse]).reshape(1, 3)
            row = torch.cat([stats.new_tensor([[float(self._n)]]), stats], dim=1)
        rows = comm.cat(row)
        self.reset()
        if rows is None:
            return
        for n_f, mb, m2b, sseb in rows:
            nb = int(round(float(n_f)))
            if nb > 0:
                self._merge(nb, mb, m2b, sseb)

    @property
    def value(self) -> float:
        if self._n < 2 or self._m2 is None or self._sse is None:
            return math.nan
        m2, sse = torch.stack([self._m2, self._sse]).tolist()
        if m2 == 0.0:
            return 1.0 if sse == 0.0 else 0.0
        return 1.0 - sse / m2


# ----------------------------------------------------------------------------------------------
# Ready-made instances
# ----------------------------------------------------------------------------------------------
rmse: RMSE = RMSE()
"""Root mean squared error (a :class:`RMSE` instance; ``rmse(pred, targ)`` also works one-shot)."""

r2_score: R2Score = R2Score()
"""Coefficient of determination (an :class:`R2Score` instance)."""

exp_rmspe: ExpRMSPE = ExpRMSPE()
"""Root mean squared percentage error on exp of log targets (an :class:`ExpRMSPE` instance)."""
