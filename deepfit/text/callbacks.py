"""Callbacks of language-model training: hidden-state resets, AR/TAR, and a validation loss per token.

* `ResetHidden`: calls `model.reset()` at the start of every training epoch and of every validation, and
  carries the hidden state in checkpoints taken in the middle of an epoch (so a resumed fit continues
  with the state the interrupted one had).
* `RNNRegularizer(alpha, beta)`: activation regularisation (alpha * mean of the squared dropped-out last
  layer output) and temporal activation regularisation (beta * mean squared difference of consecutive
  raw outputs), added to the loss that is back-propagated (the recorded loss stays the cross entropy).
* `LMRecorder`: the Recorder, with the validation loss averaged over tokens rather than over rows, so
  that a shorter last batch counts for what it holds.
* `ScaleLRByLength`: AWD-LSTM's learning rate per batch scaled by the batch's length over `bptt`, so that
  with random batch lengths every token moves the weights by the same amount.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..callbacks.core import Callback
from ..callbacks.recorder import Recorder

__all__ = ["ResetHidden", "RNNRegularizer", "LMRecorder", "ScaleLRByLength"]


def _inner(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)  # DistributedDataParallel wraps the model


def _detached(h: Any) -> Any:
    if isinstance(h, torch.Tensor):
        return h.detach().clone()
    if isinstance(h, (list, tuple)):
        return [_detached(x) for x in h]
    return h


class ResetHidden(Callback):
    """Reset a stateful model's hidden state (`model.reset()`) before each training epoch and each
    validation. Models without `reset()` are left alone."""

    order = -10  # before anything that looks at the first batch
    unique = True  # one reset per event: a second ResetHidden replaces the learner's own

    def __init__(self) -> None:
        self._mid_epoch = False

    def _reset(self) -> None:
        reset = getattr(_inner(self.learner.model), "reset", None)
        if callable(reset):
            reset()

    def before_train(self) -> None:
        self._reset()
        self._mid_epoch = False

    def before_validate(self) -> None:
        self._reset()

    def after_batch(self) -> None:
        if self.learner.training:
            self._mid_epoch = True

    def after_train(self) -> None:
        self._mid_epoch = False

    def state_dict(self) -> dict[str, Any]:
        """The hidden state, while inside a training epoch (a checkpoint at an epoch end needs none)."""
        hidden = getattr(_inner(self.learner.model), "hidden", None)
        if not self._mid_epoch or hidden is None:
            return {}
        h = _detached(hidden)
        if isinstance(h, torch.Tensor):
            return {"hidden": h, "kind": "tensor"}
        # a list of per-layer tensors or (h, c) pairs, stored flat with the pair structure
        flat, shape = [], []
        for x in h:
            if isinstance(x, list):
                flat.extend(x)
                shape.append(len(x))
            else:
                flat.append(x)
                shape.append(0)
        return {"hidden": flat, "shape": shape, "kind": "list"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state or "hidden" not in state:
            return
        model = _inner(self.learner.model)
        device = next(model.parameters()).device
        if state["kind"] == "tensor":
            model.hidden = state["hidden"].to(device)
            return
        flat, out, i = list(state["hidden"]), [], 0
        for n in state["shape"]:
            if n == 0:
                out.append(flat[i].to(device))
                i += 1
            else:
                out.append(tuple(t.to(device) for t in flat[i:i + n]))
                i += n
        model.hidden = out
        self._mid_epoch = True


class RNNRegularizer(Callback):
    """AR and TAR (Merity et al. 2017) for `RNNLanguageModel`: adds
    `alpha * mean(dropped_output**2) + beta * mean((raw_output[:, 1:] - raw_output[:, :-1])**2)`
    to the training loss before the backward pass. The recorded training loss is the loss before it.

    Args:
        alpha: weight of activation regularisation (on the last layer's output after dropout).
        beta: weight of temporal activation regularisation (on the raw output's change over time).
    """

    def __init__(self, alpha: float = 2.0, beta: float = 1.0) -> None:
        for name, v in (("alpha", alpha), ("beta", beta)):
            if not v >= 0:
                raise ValueError(f"`{name}` must be >= 0; received {name}={v!r}.")
        self.alpha, self.beta = float(alpha), float(beta)
        self.run_valid = False

    def before_batch(self) -> None:
        m = _inner(self.learner.model)
        if hasattr(m, "last_output"):  # never use the previous batch's activations
            m.last_raw_output = m.last_output = None

    def after_loss(self) -> None:
        m = _inner(self.learner.model)
        raw, out = getattr(m, "last_raw_output", None), getattr(m, "last_output", None)
        if raw is None or out is None or self.learner.loss_grad is None:
            return
        extra = raw.new_zeros(())
        if self.alpha:
            extra = extra + self.alpha * out.float().pow(2).mean()
        if self.beta and raw.shape[1] > 1:
            extra = extra + self.beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        self.learner.loss_grad = self.learner.loss_grad + extra


class LMRecorder(Recorder):
    """The `Recorder`, with the validation loss weighted by the number of target tokens of each batch
    (the mean cross entropy per token over the whole validation stream). Named "recorder"."""

    @property
    def name(self) -> str:
        return "recorder"

    def after_batch(self) -> None:
        learn = self.learner
        if learn.training or learn.loss is None or not learn.yb:
            super().after_batch()
            return
        n = learn.yb[0].numel()
        self._vloss = self._vloss + learn.loss.float() * n
        self._vcount += n
        for m in learn.metrics:
            m.accumulate(learn.pred, *learn.yb)


class ScaleLRByLength(Callback):
    """Scale the learning rate of each training batch by `seq_len / bptt` (Merity et al. 2017, with
    `LMDataLoader(random_bptt=True)`): a batch of half the usual length then moves the weights half as
    far, since its loss is a mean over half as many positions. The scheduled rate is restored after the
    batch, so schedules, the Recorder's plotted rates and checkpoints see the unscaled values.

    Args:
        bptt: the reference length (default: the training loader's `bptt`).
    """

    order = 2  # after ParamScheduler (order 1) has set this batch's rate
    run_valid = False

    def __init__(self, bptt: int | None = None) -> None:
        if bptt is not None and (not isinstance(bptt, int) or bptt < 1):
            raise ValueError(f"`bptt` must be a positive integer or None; received bptt={bptt!r}.")
        self.bptt = bptt
        self._saved: list[float] | None = None

    def before_batch(self) -> None:
        bptt = self.bptt or getattr(self.learner.dls.train, "bptt", None)
        if bptt is None:
            raise ValueError("ScaleLRByLength needs `bptt=` or a training loader with a `bptt` (LMDataLoader).")
        factor = self.learner.xb[0].shape[-1] / bptt
        groups = self.learner.opt.param_groups
        self._saved = [g["lr"] for g in groups]
        for g in groups:
            g["lr"] = g["lr"] * factor

    def _restore(self) -> None:
        if self._saved is not None:
            for g, lr in zip(self.learner.opt.param_groups, self._saved):
                g["lr"] = lr
            self._saved = None

    def after_batch(self) -> None:
        self._restore()

    def after_cancel_batch(self) -> None:
        self._restore()
