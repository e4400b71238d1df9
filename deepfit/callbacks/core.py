"""The callback base class, the list of training events and the exceptions that steer the loop.

The Learner fires an event at each stage of training (see `EVENTS`, in order). A callback is a class
with a method named after each event it cares about; every method of the base class is a documented
no-op. A method that looks like an event but is not one (a typo such as `after_epcoh`) is an error
at class-definition time, so it can never be silently ignored.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..learner import Learner

__all__ = ["Callback", "EVENTS", "CancelBatch", "CancelStep", "CancelBackward", "CancelTrain",
           "CancelValidate", "CancelEpoch", "CancelFit"]

#: Every event, in the order they fire in one epoch.
EVENTS: tuple[str, ...] = (
    "before_fit", "before_epoch", "before_train", "before_batch", "after_pred", "after_loss",
    "before_backward", "after_backward", "before_step", "after_step", "after_cancel_batch", "after_batch",
    "after_cancel_train", "after_train", "before_validate", "after_cancel_validate", "after_validate",
    "after_cancel_epoch", "after_epoch", "after_cancel_fit", "after_fit",
)


class CancelBatch(Exception):
    """Raise in a batch event to skip the rest of this batch (`after_cancel_batch` fires)."""


class CancelBackward(Exception):
    """Raise in `before_backward` to skip the backward pass of this batch."""


class CancelStep(Exception):
    """Raise in `before_step` to skip the optimizer step (e.g. a callback did the step itself)."""


class CancelTrain(Exception):
    """Raise during training to end the training phase of this epoch early."""


class CancelValidate(Exception):
    """Raise during validation to end it early."""


class CancelEpoch(Exception):
    """Raise to end the current epoch (`after_cancel_epoch` fires, then `after_epoch`)."""


class CancelFit(Exception):
    """Raise to stop training altogether (`after_cancel_fit` fires, then `after_fit`)."""


_EVENT_LIKE = re.compile(r"^(before|after)_[a-z_]+$")


class Callback:
    """Base class of every callback. Override the events you need; each gets no arguments and reads
    or writes the training state through `self.learner` (e.g. `self.learner.loss`, `self.learner.opt`).

    Attributes:
        order: callbacks run in increasing `order` at each event (ties keep insertion order).
        learner: set by the Learner when the callback is added.
        run_valid / run_train: set to False to skip this callback during validation / training batches.
        unique: at most one callback of this class per learner: adding another replaces it (one given
            to a single `fit(cbs=...)` replaces it for that fit only). True for the learner's own kind
            of callbacks (Recorder, ProgressCallback, TerminateOnNaN, CSVLogger, MixedPrecision,
            Checkpoint, LRFinder, DistributedTrainer); False by default, so that, e.g., two
            `EarlyStopping`s on different metrics both act.
    """

    order: int = 0
    run_train: bool = True
    run_valid: bool = True
    unique: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in vars(cls):
            if _EVENT_LIKE.match(name) and name not in EVENTS and callable(getattr(cls, name)):
                raise TypeError(f"{cls.__name__}.{name} looks like an event handler but '{name}' is not an "
                                f"event. Known events: {', '.join(EVENTS)}.")

    learner: "Learner"

    @property
    def name(self) -> str:
        """snake_case name derived from the class name (Recorder -> 'recorder', CSVLogger -> 'csv_logger')."""
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(self).__name__).lower()

    # --- events: documented no-ops -------------------------------------------------------------------
    def before_fit(self) -> None:
        """Start of `fit`, after the optimizer is built."""

    def before_epoch(self) -> None:
        """Start of each epoch."""

    def before_train(self) -> None:
        """Before the training phase of an epoch (model in train mode)."""

    def before_batch(self) -> None:
        """Before each batch; `learner.xb` / `learner.yb` may be modified here."""

    def after_pred(self) -> None:
        """After the forward pass; `learner.pred` holds the output."""

    def after_loss(self) -> None:
        """After the loss is computed: `learner.loss` (detached) and `learner.loss_grad`."""

    def before_backward(self) -> None:
        """Before `loss_grad.backward()` (training only)."""

    def after_backward(self) -> None:
        """After the backward pass; gradients are in the parameters (still scaled under fp16)."""

    def before_step(self) -> None:
        """Before the optimizer step; the place to clip or inspect gradients."""

    def after_step(self) -> None:
        """After the optimizer step, before gradients are zeroed."""

    def after_cancel_batch(self) -> None:
        """When a batch was cancelled by `CancelBatch`."""

    def after_batch(self) -> None:
        """End of each batch (training and validation)."""

    def after_cancel_train(self) -> None:
        """When the training phase was cancelled by `CancelTrain`."""

    def after_train(self) -> None:
        """End of the training phase of an epoch."""

    def before_validate(self) -> None:
        """Before the validation phase (model in eval mode, no gradients)."""

    def after_cancel_validate(self) -> None:
        """When validation was cancelled by `CancelValidate`."""

    def after_validate(self) -> None:
        """End of the validation phase."""

    def after_cancel_epoch(self) -> None:
        """When an epoch was cancelled by `CancelEpoch`."""

    def after_epoch(self) -> None:
        """End of each epoch. The epoch's results are in `learner.recorder.log[-1]` for callbacks that run
        after the Recorder (`order` > 50, like the trackers); earlier ones find them in
        `learner.recorder.last_valid` (validation loss and metrics)."""

    def after_cancel_fit(self) -> None:
        """When training was stopped by `CancelFit`."""

    def after_fit(self) -> None:
        """End of `fit`, always (also after an error or a cancellation)."""

    # --- state for checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """State to store in a checkpoint so that a resumed run continues exactly (default: none)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
