"""The metric machinery: the :class:`Metric` protocol, the two generic wrappers and :func:`to_metric`.

A :class:`Metric` is fed every validation batch through :meth:`Metric.accumulate` with the model's
raw output and the target, and reports a float through :attr:`Metric.value`; :meth:`Metric.sync`
combines the states of the processes of a distributed run through a :class:`StateComm`.
:class:`AvgMetric` turns a batch-mean function into a metric (batch-size weighted mean, exact over
uneven batches); :class:`AccumMetric` keeps every output and applies its function at the end.
The concrete metrics live in :mod:`deepfit.metrics.classification` and
:mod:`deepfit.metrics.regression`; :mod:`deepfit.metrics` re-exports everything.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, Protocol, Union

import torch
from torch import Tensor

__all__ = ["Metric", "AvgMetric", "AccumMetric", "MetricLike", "StateComm", "to_metric"]


# ----------------------------------------------------------------------------------------------
# Helpers shared by the metrics
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


def _check_name(name: Any) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__} {name!r}")
    return name


# ----------------------------------------------------------------------------------------------
# Combining states across processes
# ----------------------------------------------------------------------------------------------
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
# Conversion
# ----------------------------------------------------------------------------------------------
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
