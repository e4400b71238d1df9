"""Validation metrics accumulated over batches.

A :class:`Metric` is fed every validation batch through :meth:`Metric.accumulate` with the model's
raw output and the target, and reports a float through :attr:`Metric.value`. Accumulation keeps
on-device tensors only (no ``.item()``, no ``.cpu()``), so it never forces a host-device sync;
only reading :attr:`Metric.value` does.

What users pass as ``metrics=[...]`` and :func:`to_metric` turns into a fresh :class:`Metric`:

* plain functions ``f(pred, targ) -> scalar tensor`` that are batch means (decomposable):
  :func:`accuracy`, :func:`error_rate`, :func:`mse`, :func:`mae`, or your own. They become an
  :class:`AvgMetric` (batch-size weighted mean, exact over uneven batches).
* metric instances: :data:`rmse`, :data:`r2_score`, :data:`exp_rmspe`, ``F1Score()``,
  ``RocAucBinary()``, ``AccumMetric(func)``. These are not batch means; they keep exact running
  statistics (sums, confusion counts) or, for ROC AUC, the scores, and compute at the end.
* metric classes (instantiated with no arguments), e.g. ``F1Score``.

Example:
    >>> ms = [to_metric(m) for m in (accuracy, rmse)]
    >>> [m.name for m in ms]
    ['accuracy', 'rmse']
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from typing import Any, Protocol, Union

import torch
from torch import Tensor

__all__ = [
    "Metric",
    "AvgMetric",
    "AccumMetric",
    "RMSE",
    "R2Score",
    "ExpRMSPE",
    "F1Score",
    "RocAucBinary",
    "MetricLike",
    "StateComm",
    "F1_AVERAGES",
    "accuracy",
    "error_rate",
    "mse",
    "mae",
    "rmse",
    "r2_score",
    "exp_rmspe",
    "to_metric",
]

F1_AVERAGES: tuple[str, ...] = ("binary", "macro", "micro", "weighted")
"""Values accepted by ``F1Score(average=...)``."""


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _acc_dtype(device: torch.device) -> torch.dtype:
    """Accumulation dtype: float64, except on backends without it (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _add(total: Tensor | None, x: Tensor) -> Tensor:
    return x if total is None else total + x


def _callable_name(func: Callable[..., Any]) -> str:
    """Lower-case name of a function, partial or callable object."""
    name = getattr(func, "__name__", None)
    if name is None and hasattr(func, "func"):  # functools.partial
        name = getattr(func.func, "__name__", None)
    if name is None:
        name = type(func).__name__
    return str(name).lower()


def _batch_size(pred: Tensor, targ: Tensor) -> int:
    if targ.ndim > 0:
        return int(targ.shape[0])
    if pred.ndim > 0:
        return int(pred.shape[0])
    return 1


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


def _binary_targ(targ: Tensor) -> Tensor:
    """0/1 (long) targets from int/bool labels or float 0./1. targets (> 0.5 is positive)."""
    if targ.is_floating_point():
        return (targ > 0.5).long()
    return targ.long()


def _class_pair(
    pred: Tensor, targ: Tensor, who: str, thresh: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Predicted and target class indices of the same shape.

    * ``pred`` with one more dim than ``targ`` and more than one column: argmax over the last dim.
    * a single logit per sample (``(N, 1)`` or same shape as ``targ``, floating): ``pred > thresh``.
    * integer ``pred`` of the same shape as ``targ``: taken as class labels.
    """
    pred = pred.detach()
    targ = targ.detach()
    if pred.ndim == targ.ndim + 1:
        if pred.shape[-1] > 1:
            pc = pred.argmax(dim=-1)
            if pc.shape != targ.shape:
                raise ValueError(
                    f"{who}: pred {tuple(pred.shape)} (argmax over the last dim) does not match "
                    f"targ {tuple(targ.shape)}"
                )
            return pc, targ.long()
        pred = pred.squeeze(-1)
    if pred.shape != targ.shape:
        raise ValueError(
            f"{who}: expected pred of shape targ.shape + (n_classes,) or a single logit per "
            f"sample; got pred {tuple(pred.shape)} and targ {tuple(targ.shape)}"
        )
    if pred.is_floating_point():
        return (pred > thresh).long(), _binary_targ(targ)
    return pred.long(), targ.long()


class StateComm(Protocol):
    """What :meth:`Metric.sync` needs to combine metric states across processes.

    Every process calls the same methods in the same order (they are collective operations).
    :class:`deepfit.distributed.ProcessGroupComm` implements it on ``torch.distributed``.
    """

    def sum(self, t: Tensor) -> Tensor:
        """Element-wise sum of ``t`` over all processes (same shape, device and dtype as ``t``)."""
        ...

    def cat(self, t: Tensor | None) -> Tensor | None:
        """``t`` of every process concatenated along dim 0 in rank order (None contributes
        nothing; None when every process passed None)."""
        ...


def _sum_pair(comm: StateComm, total: Tensor | None, count: int) -> tuple[Tensor | None, int]:
    """Sums a (scalar running total, count) pair over processes; total None means nothing seen."""
    if total is None:
        pair = torch.zeros(2, dtype=torch.float64)
    else:
        pair = torch.stack([total.reshape(()), total.new_tensor(float(count)).reshape(())])
    pair = comm.sum(pair)
    n = int(round(float(pair[1])))
    return (pair[0] if n > 0 else None), n


def _cat_list(comm: StateComm, parts: list[Tensor]) -> list[Tensor]:
    """Concatenates the stored batches of every process (rank order); returns a 0/1-element list."""
    out = comm.cat(torch.cat(parts) if parts else None)
    return [] if out is None else [out]


def _check_name(name: Any) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__} {name!r}")
    return name


# ----------------------------------------------------------------------------------------------
# Base classes
# ----------------------------------------------------------------------------------------------
class Metric:
    """Base class of metrics accumulated over validation batches.

    Subclasses set their configuration, then call ``super().__init__(name)`` (which calls
    :meth:`reset`), and implement :meth:`reset`, :meth:`accumulate` and :attr:`value`.

    Args:
        name: Name shown in logs; defaults to the lower-cased class name.

    Attributes:
        name: Name shown in logs.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name: str = _check_name(name) or type(self).__name__.lower()
        self.reset()

    def reset(self) -> None:
        """Clears the accumulated state (called before each validation pass)."""
        raise NotImplementedError

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        """Adds one batch.

        Args:
            pred: The model's raw output for the batch.
            targ: The batch target.
        """
        raise NotImplementedError

    @property
    def value(self) -> float:
        """The metric over everything accumulated since :meth:`reset` (NaN when empty)."""
        raise NotImplementedError

    def sync(self, comm: StateComm) -> None:
        """Combines the state accumulated by every process of a distributed run into this one.

        After it, :attr:`value` is the metric over the union of what every process saw, on every
        process. All processes must call it together (it runs collective operations, in the same
        order everywhere, whatever the local state). deepfit's metrics implement it with sums
        (:class:`AvgMetric`, :class:`RMSE`, :class:`R2Score`, :class:`F1Score`) or by gathering
        the stored outputs (:class:`AccumMetric`, :class:`RocAucBinary`); a custom metric
        overrides it to be usable under :class:`deepfit.distributed.DistributedTrainer`.

        Args:
            comm: Sums / concatenates tensors over the processes.
        """
        raise NotImplementedError(
            f"metric {self.name!r} ({type(self).__name__}) cannot be combined across processes: "
            "override `sync(comm)` (sum its running state with comm.sum or gather stored outputs "
            "with comm.cat), or wrap a batch-mean function in AvgMetric / all-data function in "
            "AccumMetric"
        )

    def __call__(self, pred: Tensor, targ: Tensor) -> float:
        """One-shot evaluation on a single ``(pred, targ)`` pair, leaving ``self`` untouched."""
        m = to_metric(self)
        m.accumulate(pred, targ)
        return m.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class AvgMetric(Metric):
    """Batch-size weighted mean of a per-batch function.

    Exact over any batching when ``func`` is a mean over the samples of the batch (accuracy,
    MSE, MAE, ...). The weight is ``targ.shape[0]``.

    Args:
        func: ``func(pred, targ) -> scalar tensor`` (or float).
        name: Name shown in logs; defaults to ``func``'s lower-cased name.
    """

    def __init__(self, func: Callable[[Tensor, Tensor], Tensor | float], name: str | None = None):
        if not callable(func):
            raise TypeError(f"func must be callable (pred, targ) -> scalar, got {func!r}")
        self.func = func
        super().__init__(_check_name(name) or _callable_name(func))

    def reset(self) -> None:
        self._total: Tensor | None = None
        self._count = 0

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        v = self.func(pred, targ)
        if not isinstance(v, Tensor):
            v = torch.as_tensor(float(v))
        if v.numel() != 1:
            raise ValueError(
                f"metric {self.name!r}: func must return a scalar, got shape {tuple(v.shape)}"
            )
        bs = _batch_size(pred, targ)
        self._total = _add(self._total, v.detach().reshape(()).to(_acc_dtype(v.device)) * bs)
        self._count += bs

    def sync(self, comm: StateComm) -> None:
        self._total, self._count = _sum_pair(comm, self._total, self._count)

    @property
    def value(self) -> float:
        if self._total is None or self._count == 0:
            return math.nan
        return float((self._total / self._count).item())

    def __repr__(self) -> str:
        return f"AvgMetric({_callable_name(self.func)}, name={self.name!r})"


class AccumMetric(Metric):
    """Stores all predictions and targets, then applies ``func`` to them at the end.

    For metrics that are neither batch means nor expressible through running sums. Outputs are
    kept (detached) on their device and concatenated along dim 0 by :attr:`value`.

    Args:
        func: ``func(all_preds, all_targs) -> float or scalar tensor``.
        name: Name shown in logs; defaults to ``func``'s lower-cased name.
    """

    def __init__(self, func: Callable[[Tensor, Tensor], Tensor | float], name: str | None = None):
        if not callable(func):
            raise TypeError(f"func must be callable (preds, targs) -> scalar, got {func!r}")
        self.func = func
        super().__init__(_check_name(name) or _callable_name(func))

    def reset(self) -> None:
        self._preds: list[Tensor] = []
        self._targs: list[Tensor] = []

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        self._preds.append(pred.detach())
        self._targs.append(targ.detach())

    def sync(self, comm: StateComm) -> None:
        self._preds = _cat_list(comm, self._preds)
        self._targs = _cat_list(comm, self._targs)

    @property
    def value(self) -> float:
        if not self._preds:
            return math.nan
        v = self.func(torch.cat(self._preds), torch.cat(self._targs))
        return float(v.item()) if isinstance(v, Tensor) else float(v)

    def __repr__(self) -> str:
        return f"AccumMetric({_callable_name(self.func)}, name={self.name!r})"


# ----------------------------------------------------------------------------------------------
# Decomposable metrics: plain functions (batch means)
# ----------------------------------------------------------------------------------------------
def accuracy(pred: Tensor, targ: Tensor) -> Tensor:
    """Fraction of correct predictions.

    Args:
        pred: Logits/scores of shape ``targ.shape + (n_classes,)`` (argmax over the last dim), or
            a single logit per sample (shape ``(N, 1)`` or ``targ.shape``), predicted positive
            when ``> 0``, or integer class labels of ``targ``'s shape.
        targ: Class indices; for a single logit, 0/1 labels (float targets: ``> 0.5``).

    Returns:
        Scalar tensor on ``pred``'s device (float64, float32 on MPS).
    """
    pc, tc = _class_pair(pred, targ, "accuracy")
    return (pc == tc).to(_acc_dtype(pc.device)).mean()


def error_rate(pred: Tensor, targ: Tensor) -> Tensor:
    """``1 - accuracy(pred, targ)``; see :func:`accuracy` for accepted shapes."""
    pc, tc = _class_pair(pred, targ, "error_rate")
    return (pc != tc).to(_acc_dtype(pc.device)).mean()


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
# Non-decomposable metrics
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


class F1Score(Metric):
    """F1 score from a confusion matrix accumulated on-device.

    Predicted classes: argmax over the last dim when ``pred`` has ``n_classes`` columns;
    ``pred > thresh`` for a single logit per sample (``thresh=0.5`` if the model outputs
    probabilities); integer ``pred`` of ``targ``'s shape is taken as labels.

    Args:
        average: ``'binary'`` (F1 of class ``pos_label``), ``'macro'`` (unweighted mean over the
            classes present in targets or predictions, as scikit-learn), ``'micro'`` (global
            counts) or ``'weighted'`` (mean weighted by true-class support).
        pos_label: Positive class for ``average='binary'``.
        thresh: Threshold for single-logit outputs.
        num_classes: Number of classes; needed only when ``pred`` holds integer labels of more
            than 2 classes (otherwise taken from ``pred``'s last dim, or 2).
        name: Name shown in logs (default ``'f1score'``).

    A class without any true or predicted sample has F1 0 (scikit-learn's ``zero_division=0``).
    """

    def __init__(
        self,
        average: str = "binary",
        pos_label: int = 1,
        thresh: float = 0.0,
        num_classes: int | None = None,
        name: str | None = None,
    ) -> None:
        if average not in F1_AVERAGES:
            raise ValueError(f"average must be one of {list(F1_AVERAGES)}, got {average!r}")
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
            raise ValueError(f"num_classes must be an integer >= 2 or None, got {num_classes!r}")
        if not isinstance(pos_label, int) or pos_label < 0:
            raise ValueError(f"pos_label must be a non-negative int, got {pos_label!r}")
        self.average = average
        self.pos_label = pos_label
        self.thresh = float(thresh)
        self.num_classes = num_classes
        super().__init__(name)

    def reset(self) -> None:
        self._cm: Tensor | None = None

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        pc, tc = _class_pair(pred, targ, self.name, self.thresh)
        if self.num_classes is not None:
            c = self.num_classes
        elif pred.ndim == targ.ndim + 1 and pred.shape[-1] > 1:
            c = int(pred.shape[-1])
        else:
            c = 2
        if self.average == "binary" and c > 2:
            raise ValueError(
                f"{self.name}: average='binary' needs 2 classes, but pred has {c}; use "
                f"average='macro', 'micro' or 'weighted'"
            )
        if self.pos_label >= c:
            raise ValueError(f"{self.name}: pos_label={self.pos_label} but only {c} classes")
        if self._cm is None:
            self._cm = torch.zeros(c * c, dtype=torch.long, device=pc.device)
        elif self._cm.numel() != c * c:
            raise ValueError(
                f"{self.name}: number of classes changed between batches "
                f"({math.isqrt(self._cm.numel())} then {c})"
            )
        idx = tc.reshape(-1) * c + pc.reshape(-1)
        self._cm.index_add_(0, idx, torch.ones_like(idx))

    def sync(self, comm: StateComm) -> None:
        local = 0 if self._cm is None else self._cm.numel()
        sizes = comm.cat(torch.tensor([local], dtype=torch.long))
        seen = sorted({int(s) for s in sizes.tolist()} - {0}) if sizes is not None else []
        if not seen:
            return
        if len(seen) > 1:
            raise ValueError(
                f"{self.name}: processes saw different numbers of classes "
                f"({[math.isqrt(s) for s in seen]}); pass num_classes= to F1Score"
            )
        cm = self._cm if self._cm is not None else torch.zeros(seen[0], dtype=torch.long)
        self._cm = comm.sum(cm)

    @property
    def confusion_matrix(self) -> Tensor:
        """The ``(n_classes, n_classes)`` counts on CPU, rows = true class, cols = predicted."""
        if self._cm is None:
            return torch.zeros(0, 0, dtype=torch.long)
        c = math.isqrt(self._cm.numel())
        return self._cm.cpu().reshape(c, c)

    @property
    def value(self) -> float:
        if self._cm is None:
            return math.nan
        cm = self.confusion_matrix.double()
        tp = cm.diagonal()
        n_true, n_pred = cm.sum(1), cm.sum(0)
        fp_fn = n_true + n_pred - 2 * tp
        denom = 2 * tp + fp_fn
        f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
        if self.average == "binary":
            return float(f1[self.pos_label])
        if self.average == "micro":
            d = float(2 * tp.sum() + fp_fn.sum())
            return float(2 * tp.sum()) / d if d > 0 else 0.0
        present = (n_true + n_pred) > 0
        if self.average == "macro":
            return float(f1[present].mean()) if bool(present.any()) else 0.0
        support = float(n_true.sum())
        return float((f1 * n_true).sum()) / support if support > 0 else 0.0

    def __repr__(self) -> str:
        return (
            f"F1Score(average={self.average!r}, pos_label={self.pos_label}, "
            f"thresh={self.thresh}, num_classes={self.num_classes}, name={self.name!r})"
        )


class RocAucBinary(Metric):
    """Area under the ROC curve for binary classification (ties count one half).

    Stores the scores and labels on-device and computes the Mann-Whitney statistic with average
    ranks at the end. Scores: a single logit/probability per sample (``(N,)`` or ``(N, 1)``), or
    two class logits (``(N, 2)``, scored by their difference, which orders samples like the
    softmax probability of class 1). Positive targets: 1 / True (float targets: ``> 0.5``).
    Returns NaN (with a warning) when only one class is present.

    Args:
        name: Name shown in logs (default ``'rocaucbinary'``).
    """

    def reset(self) -> None:
        self._scores: list[Tensor] = []
        self._targs: list[Tensor] = []

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        pred, targ = pred.detach(), targ.detach()
        if pred.ndim == targ.ndim + 1 and pred.shape[-1] == 2:
            score = pred[..., 1] - pred[..., 0]
        elif pred.ndim == targ.ndim + 1 and pred.shape[-1] == 1:
            score = pred[..., 0]
        else:
            score = pred
        if score.shape != targ.shape:
            raise ValueError(
                f"{self.name}: expected pred of shape (N,), (N, 1) or (N, 2) for targ (N,); got "
                f"pred {tuple(pred.shape)} and targ {tuple(targ.shape)}"
            )
        self._scores.append(score.reshape(-1))
        self._targs.append(_binary_targ(targ).reshape(-1) != 0)

    def sync(self, comm: StateComm) -> None:
        self._scores = _cat_list(comm, self._scores)
        self._targs = _cat_list(comm, self._targs)

    @property
    def value(self) -> float:
        if not self._scores:
            return math.nan
        scores = torch.cat(self._scores).cpu().double()
        pos = torch.cat(self._targs).cpu()
        n = scores.numel()
        n_pos = int(pos.sum())
        n_neg = n - n_pos
        if n_pos == 0 or n_neg == 0:
            warnings.warn(
                f"{self.name}: ROC AUC is undefined with only one class in the targets "
                f"({n_pos} positives, {n_neg} negatives); returning NaN",
                RuntimeWarning,
                stacklevel=2,
            )
            return math.nan
        _, inverse, counts = torch.unique(
            scores, sorted=True, return_inverse=True, return_counts=True
        )
        ends = counts.cumsum(0).double()
        avg_rank = ends - (counts.double() - 1.0) / 2.0  # 1-based average rank of each value
        rank_sum = float(avg_rank[inverse][pos].sum())
        return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


# ----------------------------------------------------------------------------------------------
# Ready-made instances and conversion
# ----------------------------------------------------------------------------------------------
rmse: RMSE = RMSE()
"""Root mean squared error (a :class:`RMSE` instance; ``rmse(pred, targ)`` also works one-shot)."""

r2_score: R2Score = R2Score()
"""Coefficient of determination (an :class:`R2Score` instance)."""

exp_rmspe: ExpRMSPE = ExpRMSPE()
"""Root mean squared percentage error on exp of log targets (an :class:`ExpRMSPE` instance)."""

MetricLike = Union[Metric, type, Callable[[Tensor, Tensor], Any]]
"""What :func:`to_metric` accepts."""


def to_metric(obj: MetricLike) -> Metric:
    """Turns an entry of ``metrics=[...]`` into a fresh :class:`Metric` with empty state.

    Args:
        obj: A :class:`Metric` instance (deep-copied and reset, so the same object can be shared
            between learners), a :class:`Metric` subclass (instantiated without arguments), or a
            callable ``f(pred, targ) -> scalar tensor`` that is a batch mean (wrapped in
            :class:`AvgMetric`).

    Returns:
        A new metric.

    Raises:
        TypeError: For anything else.
    """
    if isinstance(obj, Metric):
        m = copy.deepcopy(obj)
        m.reset()
        return m
    if isinstance(obj, type):
        if issubclass(obj, Metric):
            return obj()
        raise TypeError(
            f"metric classes must subclass deepfit.metrics.Metric, got class {obj.__name__}"
        )
    if callable(obj):
        return AvgMetric(obj)
    raise TypeError(
        "metric must be a Metric instance, a Metric subclass or a callable (pred, targ) -> "
        f"scalar tensor; got {type(obj).__name__} {obj!r}"
    )
