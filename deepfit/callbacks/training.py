"""Callbacks that guard or adjust the training step: NaN guard, gradient clipping."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import HintedError
from .core import Callback

__all__ = ["TerminateOnNaN", "GradientClip", "NonFiniteLossError"]


class NonFiniteLossError(HintedError, FloatingPointError):
    """Training stopped because the loss became NaN or infinite."""


class TerminateOnNaN(Callback):
    """Stop training with a clear message as soon as the training loss is NaN or infinite.

    On the CPU every batch is checked (reading a CPU scalar is cheap); on an accelerator the check is
    folded into a flag on the device and read every `every` batches to avoid a sync per step.
    """

    order = -10
    unique = True
    run_valid = False

    def __init__(self, every: int = 32) -> None:
        self.every = every

    def before_train(self) -> None:
        self._bad = None

    def after_loss(self) -> None:
        learn = self.learner
        loss = learn.loss
        if loss.device.type == "cpu":
            # a scalar is read directly (about 1 us; isfinite + all + bool cost ~30 us per step)
            if loss.numel() == 1:
                v = loss.item()
                if not math.isfinite(v):
                    self._stop(v)
            elif not torch.isfinite(loss).all():
                self._stop(float("nan"))
            return
        bad = ~torch.isfinite(loss).all()
        self._bad = bad if self._bad is None else self._bad | bad
        if learn.iter % self.every == self.every - 1:
            self._check()

    def after_train(self) -> None:
        self._check()

    def _check(self) -> None:
        if self._bad is not None and bool(self._bad):
            self._stop(float("nan"))

    def _stop(self, value: float) -> None:
        learn = self.learner
        raise NonFiniteLossError(
            f"The training loss became {value} at epoch {learn.epoch}, batch {learn.iter}.",
            "Lower the learning rate (try `learn.lr_find()`), check the inputs for NaN/inf, or clip "
            "gradients with GradientClip().",
            cli_hint="Lower --lr (deepfit lr-find suggests one, or pass --lr auto) and check the inputs for "
                     "NaN/inf or huge values.")


class GradientClip(Callback):
    """Clip the global gradient norm to `max_norm` before every optimizer step."""

    order = 0

    def __init__(self, max_norm: float = 1.0, norm_type: float = 2.0) -> None:
        self.max_norm, self.norm_type = max_norm, norm_type

    def before_step(self) -> None:
        nn.utils.clip_grad_norm_(self.learner.model.parameters(), self.max_norm, self.norm_type)
