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

The machinery is in :mod:`deepfit.metrics.core`, the metrics themselves in
:mod:`deepfit.metrics.classification` and :mod:`deepfit.metrics.regression`; every public name is
importable from ``deepfit.metrics``.
"""

from __future__ import annotations

from .classification import F1_AVERAGES, F1Score, RocAucBinary, accuracy, error_rate
from .core import AccumMetric, AvgMetric, Metric, MetricLike, StateComm, to_metric
from .regression import RMSE, ExpRMSPE, R2Score, exp_rmspe, mae, mse, r2_score, rmse

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
