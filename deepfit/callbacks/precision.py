"""Mixed precision: bf16 autocast on the CPU, fp16 autocast with a gradient scaler on CUDA."""
from __future__ import annotations

from typing import Any

import torch

from .core import Callback, CancelStep

__all__ = ["MixedPrecision"]


class MixedPrecision(Callback):
    """Run forward passes under `torch.autocast`.

    Args:
        dtype: torch.float16 or torch.bfloat16; default fp16 on CUDA, bf16 elsewhere.

    With fp16 the loss is scaled before backward (GradScaler); gradients are unscaled in
    `after_backward`, so callbacks that look at gradients in `before_step` (GradientClip) see true values.
    """

    order = 10  # after GradientClip (order 0) in before_step, so clipping sees unscaled gradients
    unique = True

    def __init__(self, dtype: torch.dtype | None = None) -> None:
        self.dtype = dtype
        self._ctx: Any = None

    def before_fit(self) -> None:
        dev = self.learner.dls.device.type
        self.device_type = dev
        self.active_dtype = self.dtype or (torch.float16 if dev == "cuda" else torch.bfloat16)
        use_scaler = self.active_dtype == torch.float16 and dev == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None

    def before_batch(self) -> None:
        self._ctx = torch.autocast(self.device_type, dtype=self.active_dtype)
        self._ctx.__enter__()

    def _exit(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None

    def after_loss(self) -> None:
        self._exit()

    def after_cancel_batch(self) -> None:
        self._exit()

    def after_batch(self) -> None:
        self._exit()

    def after_fit(self) -> None:
        # an error inside a batch skips after_batch: never leave autocast switched on for the caller
        self._exit()

    def before_backward(self) -> None:
        if self.scaler is not None:
            self.learner.loss_grad = self.scaler.scale(self.learner.loss_grad)

    def after_backward(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.learner.opt)

    def before_step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.learner.opt)
            self.scaler.update()
            raise CancelStep()

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict()} if getattr(self, "scaler", None) is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("scaler") and getattr(self, "scaler", None) is not None:
            self.scaler.load_state_dict(state["scaler"])
