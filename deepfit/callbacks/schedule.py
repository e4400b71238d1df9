"""Callbacks that set hyper-parameters as training progresses: ParamScheduler and the LR finder."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..optim import set_hyper
from .core import Callback, CancelFit, CancelValidate

__all__ = ["ParamScheduler", "LRFinder", "SuggestedLRs"]


class ParamScheduler(Callback):
    """Before every training batch, set each scheduled value from its schedule `f(pos)`, with
    pos = iteration / total iterations of the fit.

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
        pos = self.learner.train_iter / self.total
        for k, s in self.scheds.items():
            v = s(pos)
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
        lrs, losses: learning rates tried and smoothed losses seen.
        valley: a point well inside the longest stretch of falling loss (the default choice).
        steep: where the loss falls fastest against log(lr).
        minimum: the lr of the lowest loss divided by 10.
    """

    lrs: np.ndarray
    losses: np.ndarray
    valley: float = float("nan")
    steep: float = float("nan")
    minimum: float = float("nan")

    def suggestions(self) -> dict[str, float]:
        return {"valley": self.valley, "steep": self.steep, "minimum": self.minimum}

    def __repr__(self) -> str:
        return f"SuggestedLRs(valley={self.valley:.3g}, steep={self.steep:.3g}, minimum={self.minimum:.3g})"


def suggest_lrs(lrs: np.ndarray, losses: np.ndarray) -> SuggestedLRs:
    """Compute the three suggestions from a sweep (see `SuggestedLRs`)."""
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    res = SuggestedLRs(lrs, losses)
    ok = np.isfinite(losses)
    if ok.sum() < 3:
        return res
    lrs_ok, l_ok = lrs[ok], losses[ok]
    i_min = int(np.argmin(l_ok))
    res.minimum = float(lrs_ok[i_min] / 10)
    # Steepest descent before the minimum: slopes over a window of about a twentieth of the sweep
    # (central differences of single points are dominated by batch noise), ignoring the first
    # tenth of the sweep where the bias-corrected smoothing is still settling.
    w = max(1, len(l_ok) // 20)
    log_lr = np.log(lrs_ok)
    centers = np.arange(w, len(l_ok) - w)
    if len(centers) == 0:
        res.steep = float(lrs_ok[0])
    else:
        slope = (l_ok[centers + w] - l_ok[centers - w]) / (log_lr[centers + w] - log_lr[centers - w])
        keep = (centers >= len(l_ok) // 10) & (centers <= i_min)
        if not keep.any():
            keep = centers <= max(i_min, centers[0])
        i_steep = int(centers[keep][np.argmin(slope[keep])])
        res.steep = float(lrs_ok[i_steep])
    # Valley: go back from the minimum while the loss keeps rising (walking backwards, ignoring
    # small bumps of 1% of the loss range), i.e. find where the final descent started, then take
    # the point halfway down that descent in log-lr.
    span = max(float(l_ok.max() - l_ok[i_min]), 1e-12)
    start, peak = i_min, l_ok[i_min]
    for j in range(i_min - 1, -1, -1):
        if l_ok[j] >= peak - 0.01 * span:
            peak = max(peak, l_ok[j])
            start = j
        else:
            break
    # skip the flat beginning: the descent starts where the loss first falls below 99% of its height
    top = l_ok[start]
    while start < i_min and l_ok[start] > top - 0.01 * span:
        start += 1
    res.valley = float(lrs_ok[(start + i_min) // 2])
    return res


class LRFinder(Callback):
    """Raise the learning rate exponentially from `start_lr` to `end_lr` over `num_it` batches,
    recording the smoothed loss; stop early when it exceeds 4x its minimum (divergence)."""

    order = -20  # before TerminateOnNaN: a diverging sweep ends the sweep, not the program
    run_valid = False

    def __init__(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, stop_div: bool = True,
                 beta: float = 0.98) -> None:
        self.start_lr, self.end_lr, self.num_it, self.stop_div, self.beta = start_lr, end_lr, num_it, stop_div, beta
        self.result: SuggestedLRs | None = None

    def before_fit(self) -> None:
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self._avg, self._best, self._i = 0.0, math.inf, 0

    def before_batch(self) -> None:
        lr = self.start_lr * (self.end_lr / self.start_lr) ** (self._i / max(self.num_it - 1, 1))
        set_hyper(self.learner.opt, "lr", lr)
        self._lr = lr

    def after_loss(self) -> None:
        if not torch.isfinite(self.learner.loss).all():
            raise CancelFit()

    def after_batch(self) -> None:
        loss = float(self.learner.loss)  # one sync per batch is fine here: this is a short sweep
        self._i += 1
        self._avg = self.beta * self._avg + (1 - self.beta) * loss
        smooth = self._avg / (1 - self.beta ** self._i)
        self.lrs.append(self._lr)
        self.losses.append(smooth)
        self._best = min(self._best, smooth)
        if self.stop_div and (not math.isfinite(smooth) or smooth > 4 * self._best):
            raise CancelFit()
        if self._i >= self.num_it:
            raise CancelFit()

    def before_validate(self) -> None:
        raise CancelValidate()

    def after_fit(self) -> None:
        self.result = suggest_lrs(np.array(self.lrs), np.array(self.losses))
