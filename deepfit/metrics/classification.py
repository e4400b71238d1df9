"""Classification metrics: accuracy and error rate (batch means), F1 from a confusion matrix, and
binary ROC AUC (from the stored scores)."""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from .core import Metric, StateComm, _acc_dtype, _cat_list

__all__ = ["F1_AVERAGES", "F1Score", "RocAucBinary", "accuracy", "error_rate"]

F1_AVERAGES: tuple[str, ...] = ("binary", "macro", "micro", "weighted")
"""Values accepted by ``F1Score(average=...)``."""


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


# ----------------------------------------------------------------------------------------------
# Batch means (plain functions)
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


# ----------------------------------------------------------------------------------------------
# Metrics with running state
# ----------------------------------------------------------------------------------------------
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
