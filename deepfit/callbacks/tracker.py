"""Callbacks that watch a monitored value each epoch: EarlyStopping and SaveBestModel."""
from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np

from .core import Callback, CancelFit

__all__ = ["TrackerCallback", "EarlyStopping", "SaveBestModel"]


# metrics whose names say neither "loss" nor "error" but where lower is better
_LOWER_IS_BETTER = frozenset({"mse", "mae", "rmse", "exp_rmspe"})


class TrackerCallback(Callback):
    """Track `monitor` (a column of the epoch log: `valid_loss`, a metric name, `train_loss`).

    Args:
        monitor: the value to watch.
        comp: `operator.lt` (lower is better) or `operator.gt`; default lower for names containing
            "loss" or "error" and for deepfit's error metrics (mse, mae, rmse, exp_rmspe), higher
            otherwise.
        min_delta: an improvement must beat the best by more than this.
    """

    order = 70

    def __init__(self, monitor: str = "valid_loss", comp: Callable[[Any, Any], bool] | None = None,
                 min_delta: float = 0.0) -> None:
        if comp is None:
            lower = "loss" in monitor or "error" in monitor or monitor in _LOWER_IS_BETTER
            comp = operator.lt if lower else operator.gt
        self.monitor, self.comp, self.min_delta = monitor, comp, min_delta
        # any comparison works (operator.lt, np.less, a lambda): ask it which way is better
        self._lower_is_better = bool(comp(0.0, 1.0))

    def before_fit(self) -> None:
        self.best = np.inf if self._lower_is_better else -np.inf
        self.best_epoch = -1

    def _improved(self) -> bool:
        row = self.learner.recorder.log[-1]
        if self.monitor not in row:
            raise KeyError(f"{type(self).__name__} monitors {self.monitor!r}, which is not logged; "
                           f"available: {sorted(k for k in row if k not in ('epoch', 'time'))}.")
        val = row[self.monitor]
        delta = -self.min_delta if self._lower_is_better else self.min_delta
        if self.comp(val - delta, self.best):
            self.best, self.best_epoch = val, self.learner.epoch
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": float(self.best), "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopping(TrackerCallback):
    """Stop training when `monitor` has not improved for `patience` epochs."""

    def __init__(self, monitor: str = "valid_loss", comp: Callable | None = None, min_delta: float = 0.0,
                 patience: int = 1) -> None:
        super().__init__(monitor, comp, min_delta)
        self.patience = patience

    def before_fit(self) -> None:
        super().before_fit()
        self.wait = 0
        self.stopped_epoch: int | None = None

    def after_epoch(self) -> None:
        if self._improved():
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = self.learner.epoch
            from ..distributed import is_main_process
            if is_main_process():  # every process stops (their logs agree); one says so
                print(f"No improvement in {self.monitor} since epoch {self.best_epoch} "
                      f"(best {self.best:.6g}): stopping.")
            raise CancelFit()


class SaveBestModel(TrackerCallback):
    """Save the model whenever `monitor` improves (to `learn.save(fname)`), and load the best
    weights back at the end of training with `load_best`.
    With `every_epoch`, save `fname_<epoch>` after every epoch instead."""

    def __init__(self, monitor: str = "valid_loss", comp: Callable | None = None, min_delta: float = 0.0,
                 fname: str = "best", every_epoch: bool = False, load_best: bool = True, with_opt: bool = False) -> None:
        super().__init__(monitor, comp, min_delta)
        self.fname, self.every_epoch, self.load_best, self.with_opt = fname, every_epoch, load_best, with_opt

    def after_epoch(self) -> None:
        if self.every_epoch:
            self.learner.save(f"{self.fname}_{self.learner.epoch}", with_opt=self.with_opt)
        elif self._improved():
            self.learner.save(self.fname, with_opt=self.with_opt)

    def after_fit(self) -> None:
        if self.load_best and not self.every_epoch and self.best_epoch >= 0:
            self.learner.load(self.fname, with_opt=False)
