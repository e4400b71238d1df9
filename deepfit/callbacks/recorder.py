"""Recorder: losses, hyper-parameters and metrics of every batch and epoch, with plots."""
from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..optim import get_hyper, has_hyper
from ..plotting import finish_figure, pyplot
from .core import Callback

__all__ = ["Recorder", "smooth_losses", "ValidLossWarning", "valid_loss_rise", "VALID_LOSS_RISE"]

VALID_LOSS_RISE = 1.5
"""A fit whose last validation loss is more than this many times its best one gets a warning."""


class ValidLossWarning(UserWarning):
    """The validation loss ended far above its best epoch (the model got worse late in training)."""


def valid_loss_rise(log: list[dict[str, Any]], factor: float = VALID_LOSS_RISE) -> tuple[int, float, float] | None:
    """`(best epoch, best valid_loss, last valid_loss)` when the last epoch's validation loss is more
    than `factor` times the best epoch's (or not finite while an earlier one was); else None."""
    vals = [(int(r.get("epoch", i)), float(r["valid_loss"])) for i, r in enumerate(log)
            if isinstance(r.get("valid_loss"), (int, float))]
    finite = [(e, v) for e, v in vals if math.isfinite(v)]
    if len(vals) < 2 or not finite:
        return None
    best_e, best = min(finite, key=lambda ev: ev[1])
    last = vals[-1][1]
    if best_e == vals[-1][0]:
        return None
    if not math.isfinite(last) or (best >= 0 and last > factor * best):
        return best_e, best, last
    return None


def smooth_losses(losses: np.ndarray, beta: float = 0.98, avg: float = 0.0, start: int = 0) -> tuple[np.ndarray, float]:
    """Exponentially smoothed, bias-corrected losses: avg_i = beta*avg_{i-1} + (1-beta)*l_i and
    smooth_i = avg_i / (1 - beta**i) (i counted from 1 + `start`). Returns (smoothed, last avg)."""
    out = np.empty(len(losses))
    for i, l in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(l)
        out[i] = avg / (1 - beta ** (start + i + 1))
    return out, avg


class Recorder(Callback):
    """Keeps, for the current fit: `losses` (per training batch), `smooth_losses` (beta 0.98),
    `lrs` and `moms` (last param group, per batch; every scheduled value of every group is in the
    fit's `ParamScheduler.hps`) and `log`, one dict per epoch: epoch, train_loss (mean of the batch
    losses), valid_loss, each metric and time.

    Per-batch losses stay on the device as tensors during an epoch and are read back once at its end,
    so recording costs no host-device synchronisation inside the step.
    """

    order = 50
    unique = True

    def __init__(self, beta: float = 0.98) -> None:
        self.beta = beta
        self.losses: list[float] = []
        self.smooth_losses: list[float] = []
        self.lrs: list[float] = []
        self.moms: list[float] = []
        self.log: list[dict[str, Any]] = []
        self.last_valid: dict[str, float] = {}
        self.lr_find_result: Any = None
        self._valid_started = False  # before_validate ran and after_validate has not logged it yet

    def before_fit(self) -> None:
        self.losses, self.smooth_losses, self.lrs, self.moms, self.log = [], [], [], [], []
        self._avg = 0.0
        self._has_mom = has_hyper(self.learner.opt, "mom")

    def before_train(self) -> None:
        self._epoch_losses: list[torch.Tensor] = []
        self._t0 = time.perf_counter()
        self._in_train = True

    def after_batch(self) -> None:
        learn = self.learner
        if learn.training:
            if learn.loss is not None:
                self._epoch_losses.append(learn.loss)
            self.lrs.append(learn.opt.param_groups[-1]["lr"])
            if self._has_mom:
                self.moms.append(get_hyper(learn.opt, "mom")[-1])
        elif learn.loss is not None and learn.yb:
            n = len(learn.yb[0])
            self._vloss = self._vloss + learn.loss.float() * n
            self._vcount += n
            for m in learn.metrics:
                m.accumulate(learn.pred, *learn.yb)

    def after_train(self) -> None:
        vals = torch.stack(self._epoch_losses).float().cpu().numpy() if self._epoch_losses else np.zeros(0)
        smooth, self._avg = smooth_losses(vals, self.beta, self._avg, start=len(self.losses))
        self.losses.extend(vals.tolist())
        self.smooth_losses.extend(smooth.tolist())
        self._train_loss = float(vals.mean()) if len(vals) else float("nan")
        self._train_time = time.perf_counter() - self._t0
        self.last_valid = {}
        self._in_train = False

    def before_validate(self) -> None:
        self._valid_started = True
        self._vloss = torch.zeros((), device=self.learner.dls.device)
        self._vcount = 0
        self._tv = time.perf_counter()
        for m in self.learner.metrics:
            m.reset()

    def sync_valid(self, comm: Any) -> None:
        """Sum the validation loss and merge the metric states of every process of a distributed run
        (`deepfit.distributed.DistributedTrainer` calls it, on every process, just before
        `after_validate`), so that the epoch log holds the values over the whole validation set.

        Args:
            comm: a `deepfit.metrics.StateComm` (e.g. `deepfit.distributed.ProcessGroupComm`).
        """
        tot = comm.sum(torch.tensor([float(self._vloss), float(self._vcount)], dtype=torch.float64))
        self._vloss, self._vcount = tot[0], int(round(float(tot[1])))
        for m in self.learner.metrics:
            m.sync(comm)

    def after_validate(self) -> None:
        if not self._valid_started:
            # an earlier callback cancelled the validation before this one's before_validate ran: nothing
            # was measured, so nothing is logged (never the previous epoch's values)
            self.last_valid = {}
            return
        self._valid_started = False
        res = {"valid_loss": float(self._vloss) / max(self._vcount, 1)}
        for m in self.learner.metrics:
            res[m.name] = m.value
        self.last_valid = res

    def before_epoch(self) -> None:
        self._te = time.perf_counter()
        self.last_valid = {}
        self._train_loss = float("nan")

    def after_epoch(self) -> None:
        row: dict[str, Any] = {"epoch": self.learner.epoch, "train_loss": self._train_loss}
        row.update(self.last_valid)
        row["time"] = time.perf_counter() - self._te
        self.log.append(row)

    def after_fit(self) -> None:
        rise = valid_loss_rise(self.log)
        if rise is not None and not getattr(self.learner, "_quiet_fit", False):
            e, best, last = rise
            warnings.warn(f"The validation loss ended at {last:.4g}, more than {VALID_LOSS_RISE}x its best "
                          f"({best:.4g} at epoch {e}): the model got worse late in training. Try a lower learning "
                          "rate, fewer epochs, or SaveBestModel to keep the best epoch's weights.",
                          ValidLossWarning, stacklevel=2)

    # ---- checkpoint state ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """History of the fit so far, the smoothing average and, in the middle of a training phase, the
        losses of the epoch's batches already done (so a resumed epoch reports the same train loss)."""
        state: dict[str, Any] = {"losses": list(self.losses), "smooth_losses": list(self.smooth_losses),
                                 "lrs": list(self.lrs), "moms": list(self.moms), "log": [dict(r) for r in self.log],
                                 "avg": float(getattr(self, "_avg", 0.0))}
        if getattr(self, "_in_train", False):
            ep = self._epoch_losses
            state["epoch_losses"] = torch.stack(ep).detach().cpu() if ep else torch.zeros(0)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses, self.smooth_losses = list(state["losses"]), list(state["smooth_losses"])
        self.lrs, self.moms, self.log = list(state["lrs"]), list(state["moms"]), [dict(r) for r in state["log"]]
        self._avg = float(state["avg"])
        if "epoch_losses" in state:
            self._epoch_losses = list(state["epoch_losses"].to(self.learner.dls.device).unbind(0))

    @property
    def metric_names(self) -> list[str]:
        """The columns of the epoch log: epoch, train_loss, valid_loss, each metric's name, time."""
        return ["epoch", "train_loss", "valid_loss"] + [m.name for m in self.learner.metrics] + ["time"]

    # ---- plots ---------------------------------------------------------------------------------------
    def plot_loss(self, skip_start: int = 5, with_valid: bool = True, fname: str | Path | None = None) -> Any:
        """Training loss per batch (raw and smoothed) and, per epoch, the validation loss."""
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        it = np.arange(len(self.losses))[skip_start:]
        ax.plot(it, self.losses[skip_start:], alpha=0.3, label="train (batch)")
        ax.plot(it, self.smooth_losses[skip_start:], label="train (smoothed)")
        if with_valid and self.log and "valid_loss" in self.log[0]:
            n_b = len(self.losses) / max(len(self.log), 1)
            x = [(i + 1) * n_b - 1 for i in range(len(self.log))]
            ax.plot(x, [r.get("valid_loss", np.nan) for r in self.log], "o-", label="valid")
        ax.set_xlabel("batch")
        ax.set_ylabel("loss")
        ax.legend()
        return finish_figure(fig, fname)

    def plot_sched(self, fname: str | Path | None = None) -> Any:
        """Learning rate (and momentum, when there is one) per training batch."""
        plt = pyplot()
        n = 2 if self.moms else 1
        fig, axs = plt.subplots(1, n, figsize=(5 * n, 3.5))
        axs = np.atleast_1d(axs)
        axs[0].plot(self.lrs)
        axs[0].set_title("learning rate")
        if self.moms:
            axs[1].plot(self.moms)
            axs[1].set_title("momentum")
        for a in axs:
            a.set_xlabel("batch")
        return finish_figure(fig, fname)

    def plot_lr_find(self, fname: str | Path | None = None) -> Any:
        """Smoothed loss against learning rate (log axis) from the last `lr_find`, suggestions marked."""
        res = self.lr_find_result
        if res is None:
            raise RuntimeError("Run `learn.lr_find()` before `plot_lr_find()`.")
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(res.lrs, res.losses)
        ax.set_xscale("log")
        # Keep the divergence at the end from squashing the interesting part of the curve.
        losses = np.asarray(res.losses, float)
        finite = losses[np.isfinite(losses)]
        if len(finite) > 2:
            i_min = int(np.nanargmin(np.where(np.isfinite(losses), losses, np.nan)))
            top, low = float(np.nanmax(losses[: i_min + 1])), float(finite.min())
            span = max(top - low, 1e-8)
            ax.set_ylim(low - 0.1 * span, top + 0.2 * span)
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("smoothed loss")
        for (name, lr), c in zip(res.suggestions().items(), ["C1", "C2", "C3"]):
            i = int(np.argmin(np.abs(np.log(res.lrs) - np.log(lr))))
            ax.plot([lr], [res.losses[i]], "o", color=c, label=f"{name}: {lr:.2e}")
        ax.legend()
        return finish_figure(fig, fname)
