"""Callbacks that set hyper-parameters as training progresses: ParamScheduler and the LR finder."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..optim import set_hyper
from .core import Callback, CancelFit, CancelValidate

__all__ = ["ParamScheduler", "LRFinder", "SuggestedLRs", "MIN_LR_FIND_ITERS"]

MIN_LR_FIND_ITERS = 10
"""Fewest batches `lr_find` accepts: the suggestions smooth the losses over at least 5 batches and need
a descent to look at."""


class ParamScheduler(Callback):
    """Before every training batch, set each scheduled value from its schedule `f(pos)`. Over the
    fit's N training batches pos runs from 0 at the first to 1 at the last (pos = i / (N - 1)), so the
    last step gets exactly the schedule's end value (e.g. one-cycle's `lr_max / div_final`); a
    schedule whose `endpoint` attribute is False (SGDR, CLR: periodic, counted in iterations) gets
    pos = i / N instead. With N = 1 the only step is at pos 0.

    Keys are optimizer hyper-parameters (`lr`, `mom`, `sqr_mom`, `wd`, `eps`; an array value gives one
    per param group) or attributes of the model written as `"model.<path>"`, e.g.
    `{"model.drop.p": sched_lin(0.5, 0.0)}` or a teacher-forcing ratio.

    `hps` keeps every value set, per key, for plotting and tests.
    """

    order = 1
    run_valid = False

    def __init__(self, scheds: dict[str, Callable[[float], Any]]) -> None:
        for k, s in scheds.items():
            if not callable(s):
                raise TypeError(f"The schedule for {k!r} must be callable f(pos); received {type(s).__name__}.")
        self.scheds = scheds
        self.hps: dict[str, list[Any]] = {k: [] for k in scheds}

    def before_fit(self) -> None:
        learn = self.learner
        self.total = learn.n_epoch * len(learn.dls.train)
        # divisor of the step index per schedule: i / (N - 1) reaches pos 1 at the last step
        self._denom = {k: float(self.total - 1 if getattr(s, "endpoint", True) and self.total > 1 else self.total)
                       for k, s in self.scheds.items()}
        for k in self.scheds:
            if k.startswith("model."):
                self._resolve(k)  # fail now, not at the first batch, when the path is wrong

    def _resolve(self, key: str) -> tuple[Any, str]:
        obj: Any = self.learner.model
        parts = key.split(".")[1:]
        for p in parts[:-1]:
            if not hasattr(obj, p):
                raise AttributeError(f"Cannot schedule {key!r}: the model has no attribute path {'.'.join(parts)!r}.")
            obj = getattr(obj, p)
        if not hasattr(obj, parts[-1]):
            raise AttributeError(f"Cannot schedule {key!r}: {type(obj).__name__} has no attribute {parts[-1]!r}.")
        return obj, parts[-1]

    def before_batch(self) -> None:
        i = self.learner.train_iter
        for k, s in self.scheds.items():
            v = s(i / self._denom[k])
            if k.startswith("model."):
                obj, attr = self._resolve(k)
                setattr(obj, attr, float(v) if np.ndim(v) == 0 else v)
            else:
                set_hyper(self.learner.opt, k, v)
            self.hps[k].append(v)


@dataclass
class SuggestedLRs:
    """Result of `lr_find`: the sweep and three suggestions.

    Attributes:
        lrs, losses: learning rates tried and (exponentially) smoothed losses seen.
        valley: where the loss is halfway down the descent that ends at the lowest loss (the default).
        steep: where the loss falls fastest against log(lr) on that descent.
        minimum: the lr of the lowest loss divided by 10.
        fallback: True when the sweep was too short for a curve and all three are that minimum.
    """

    lrs: np.ndarray
    losses: np.ndarray
    valley: float = float("nan")
    steep: float = float("nan")
    minimum: float = float("nan")
    fallback: bool = False

    def suggestions(self) -> dict[str, float]:
        """The three suggested learning rates by name: valley, steep, minimum."""
        return {"valley": self.valley, "steep": self.steep, "minimum": self.minimum}

    def __repr__(self) -> str:
        return f"SuggestedLRs(valley={self.valley:.3g}, steep={self.steep:.3g}, minimum={self.minimum:.3g})"


def centered_average(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Moving average over `window` points centred on each point (no lag, unlike an exponential
    average). Returns (averages, index of the centre of each window into `values`)."""
    window = max(1, min(window, len(values)))
    avg = np.convolve(values, np.ones(window) / window, mode="valid")
    return avg, np.arange(len(avg)) + window // 2


def suggest_lrs(lrs: np.ndarray, losses: np.ndarray, raw_losses: np.ndarray | None = None,
                start_lr: float | None = None) -> SuggestedLRs:
    """Compute the three suggestions from a sweep (see `SuggestedLRs`).

    Args:
        lrs: learning rate of each batch of the sweep.
        losses: the exponentially smoothed losses (kept in the result, for plotting).
        raw_losses: the loss of each batch. Suggestions are computed on a centred moving average of
            these over a tenth of the sweep: the exponential average lags and, early in the sweep, rests
            on a handful of batches, so on noisy losses (small batches of ratings) its lowest point can
            fall at the very start. Without raw losses the smoothed ones are used.
        start_lr: the sweep's first rate, suggested (with a warning) when no batch gave a finite loss.

    Too few usable batches for the curve (fewer than 7): every suggestion is a tenth of the rate of the
    lowest loss seen, `fallback` is set and a warning is issued; suggestions are NaN only when there
    is nothing at all to go on (no batch and no `start_lr`).
    """
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    res = SuggestedLRs(lrs, losses)
    base = losses if raw_losses is None else np.asarray(raw_losses, float)
    n_ok = int(np.argmax(~np.isfinite(base))) if not np.isfinite(base).all() else len(base)
    curve, centre = centered_average(base[:n_ok], max(5, n_ok // 10) if raw_losses is not None else 1) \
        if n_ok else (np.zeros(0), np.zeros(0, dtype=int))
    if len(curve) < 3:
        # too few usable batches for a curve (a very short sweep, or one that diverged at once): fall back
        # to a tenth of the rate of the lowest loss seen, or of the first rate tried, never NaN
        if n_ok:
            lr = float(lrs[int(np.argmin(base[:n_ok]))] / 10)
        elif start_lr is not None:
            lr = float(start_lr)
        else:
            return res
        res.valley = res.steep = res.minimum = lr
        res.fallback = True
        warnings.warn(f"lr_find recorded only {n_ok} usable batch(es), too few to find a valley; suggesting {lr:.3g} "
                      f"(a tenth of the rate with the lowest loss). Sweep more batches (num_it >= "
                      f"{MIN_LR_FIND_ITERS}) or start lower (start_lr).", stacklevel=2)
        return res
    log_lr = np.log(lrs[centre])
    i_min = int(np.argmin(curve))
    res.minimum = float(lrs[centre[i_min]] / 10)
    # The descent: from the highest point before the minimum down to the minimum. The valley is
    # where the loss has come halfway down it: past the flat start, where the model learns fast,
    # and well short of the minimum, beyond which training becomes unstable.
    top_i = int(np.argmax(curve[: i_min + 1]))
    half = (curve[top_i] + curve[i_min]) / 2
    below = np.nonzero(curve[top_i: i_min + 1] <= half)[0]
    res.valley = float(lrs[centre[top_i + int(below[0]) if len(below) else i_min]])
    # Steepest: the most negative slope on the descent, measured across one decade of lr so that
    # narrow bumps of batch noise in the flat part cannot win.
    half_decade = 0.5 * np.log(10)
    lo = np.searchsorted(log_lr, log_lr - half_decade)
    hi = np.minimum(np.searchsorted(log_lr, log_lr + half_decade, side="right") - 1, len(curve) - 1)
    idx = np.arange(top_i, i_min + 1)
    width = log_lr[hi[idx]] - log_lr[lo[idx]]
    slope = np.where(width > 0, (curve[hi[idx]] - curve[lo[idx]]) / np.where(width > 0, width, 1), 0.0)
    res.steep = float(lrs[centre[idx[int(np.argmin(slope))]]])
    return res


class LRFinder(Callback):
    """Raise the learning rate exponentially from `start_lr` to `end_lr` over `num_it` batches,
    recording the smoothed loss; stop early when it exceeds 4x its minimum (divergence)."""

    order = -20  # before TerminateOnNaN: a diverging sweep ends the sweep, not the program
    unique = True
    run_valid = False

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, stop_div: bool = True,
                 beta: float = 0.98) -> None:
        self.start_lr, self.end_lr, self.num_it, self.stop_div, self.beta = start_lr, end_lr, num_it, stop_div, beta
        self.result: SuggestedLRs | None = None

    def before_fit(self) -> None:
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.raw_losses: list[float] = []
        self._avg, self._best, self._i = 0.0, math.inf, 0

    def before_batch(self) -> None:
        lr = self.start_lr * (self.end_lr / self.start_lr) ** (self._i / max(self.num_it - 1, 1))
        set_hyper(self.learner.opt, "lr", lr)
        self._lr = lr

    def after_loss(self) -> None:
        if not torch.isfinite(self.learner.loss).all():
            raise CancelFit()

    def after_batch(self) -> None:
        if self.learner.loss is None:  # a batch cancelled before its loss: nothing to record
            return
        loss = float(self.learner.loss)  # one sync per batch is fine here: this is a short sweep
        self._i += 1
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smooth = self._avg / (1 - self.beta ** self._i)
        self.lrs.append(self._lr)
        self.losses.append(smooth)
        self.raw_losses.append(loss)
        self._best = min(self._best, smooth)
        if self.stop_div and (not math.isfinite(smooth) or smooth > 4 * self._best):
            raise CancelFit()
        if self._i >= self.num_it:
            raise CancelFit()

    def before_validate(self) -> None:
        raise CancelValidate()

    def after_fit(self) -> None:
        self.result = suggest_lrs(np.array(self.lrs), np.array(self.losses), np.array(self.raw_losses),
                                  start_lr=self.start_lr)
