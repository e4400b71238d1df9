"""Loss functions that know their final activation and how to decode predictions.

`get_preds` applies `activation` (softmax for cross entropy, sigmoid for BCE-with-logits, nothing for
MSE) and `predict` applies `decode` (argmax, threshold, identity). torch's own loss modules and
functions are recognised too, through `activation_for` / `decode_for`.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossEntropyLoss", "BCEWithLogitsLoss", "MSELoss", "L1Loss", "activation_for", "decode_for",
           "loss_from_name"]


def _mismatch(loss: str, pred: torch.Tensor, targ: torch.Tensor, hint: str) -> ValueError:
    return ValueError(f"{loss}: the model's output has shape {tuple(pred.shape)} but the targets have shape "
                      f"{tuple(targ.shape)}; {hint}")


def _check_reduction(reduction: str) -> str:
    # 'none' is what `get_preds(with_loss=True)` switches to for per-row losses in one pass
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none'; received reduction={reduction!r}.")
    return reduction


class CrossEntropyLoss(nn.Module):
    """Cross entropy over the class dimension `axis` (default the last; extra dimensions, e.g. a sequence,
    are flattened). `axis=1` takes (N, C, H, W) scores against (N, H, W) targets, as for segmentation.
    Targets equal to `ignore_index` (a void code) count in neither the loss nor its mean, and that class is
    never the decoded answer."""

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 ignore_index: int = -100, reduction: str = "mean", axis: int = -1) -> None:
        super().__init__()
        self.weight, self.label_smoothing, self.ignore_index = weight, label_smoothing, ignore_index
        self.reduction = _check_reduction(reduction)
        self.axis = int(axis)

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Mean cross entropy of class scores `pred` (..., n_classes) against class indices `targ` (...)."""
        if self.axis not in (-1, pred.ndim - 1) and pred.ndim > 1:
            # (N, C, d1, ...) against (N, d1, ...): torch's own layout for extra dimensions
            cls_pred = pred.movedim(self.axis, 1)
            if cls_pred.shape[:1] + cls_pred.shape[2:] != targ.shape:
                raise _mismatch("CrossEntropyLoss", pred, targ, f"it needs one score per class in dimension "
                                f"{self.axis} and one class index per position as target.")
            weight = self.weight.to(pred.device, pred.dtype) if self.weight is not None else None
            return F.cross_entropy(cls_pred, targ.long(), weight=weight, ignore_index=self.ignore_index,
                                   label_smoothing=self.label_smoothing, reduction=self.reduction)
        if pred.ndim == 0 or pred.numel() != targ.numel() * pred.shape[-1]:
            raise _mismatch("CrossEntropyLoss", pred, targ, "it needs one score per class in the last dimension "
                            "and one class index per row as target (not one-hot targets).")
        return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), targ.reshape(-1).long(), weight=self.weight,
                               ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                               reduction=self.reduction)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities: softmax over the class dimension."""
        return F.softmax(x, dim=self.axis)

    def get_config(self) -> dict[str, Any]:
        """The settings `export` stores (the class weights are not: inference does not need them)."""
        cfg = {"label_smoothing": float(self.label_smoothing), "ignore_index": int(self.ignore_index)}
        if self.axis != -1:
            cfg["axis"] = self.axis
        return cfg

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable class (never `ignore_index`, a code no target teaches)."""
        if 0 <= self.ignore_index < x.shape[self.axis]:
            x = x.clone()
            x.select(self.axis, self.ignore_index).fill_(-float("inf"))
        return x.argmax(dim=self.axis)


class BCEWithLogitsLoss(nn.Module):
    """Binary cross entropy on logits; targets are cast to float and reshaped to the predictions."""

    def __init__(self, pos_weight: torch.Tensor | None = None, thresh: float = 0.5, reduction: str = "mean") -> None:
        super().__init__()
        self.pos_weight, self.thresh = pos_weight, thresh
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Mean binary cross entropy of logits `pred` against 0/1 targets with as many values."""
        if pred.numel() != targ.numel():
            raise _mismatch("BCEWithLogitsLoss", pred, targ, "it needs one logit per target value (for one "
                            "label out of several classes use CrossEntropyLoss).")
        return F.binary_cross_entropy_with_logits(pred, targ.reshape(pred.shape).to(pred.dtype),
                                                  pos_weight=self.pos_weight, reduction=self.reduction)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities of the positive class: sigmoid."""
        return torch.sigmoid(x)

    def get_config(self) -> dict[str, Any]:
        """The settings `export` stores: the decoding threshold (not `pos_weight`, a training weight)."""
        return {"thresh": float(self.thresh)}

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """1 where the probability exceeds `thresh`, else 0."""
        return (x > self.thresh).long()


def _fit_regression(pred: torch.Tensor, targ: torch.Tensor, loss: str) -> torch.Tensor:
    # (N, 1) outputs against (N,) targets (and the reverse) are the same values; any other difference
    # would broadcast into a wrong loss or fail deep inside torch
    if pred.shape == targ.shape:
        return pred
    if pred.numel() == targ.numel():
        return pred.reshape(targ.shape)
    raise _mismatch(loss, pred, targ, "a regression model needs one output per target value (e.g. n_out=1 "
                    "for one target column).")


class MSELoss(nn.Module):
    """Mean squared error; predictions of shape (N, 1) are compared with targets of shape (N,)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Mean squared error of `pred` against `targ` (same number of values)."""
        pred = _fit_regression(pred, targ, "MSELoss")
        return F.mse_loss(pred, targ if targ.dtype == pred.dtype else targ.to(pred.dtype), reduction=self.reduction)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """None: the outputs are the predicted values."""
        return x

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """None: the predicted values are the answer."""
        return x


class L1Loss(MSELoss):
    """Mean absolute error, with the same shape handling as `MSELoss`."""

    def forward(self, pred: torch.Tensor, targ: torch.Tensor) -> torch.Tensor:
        """Mean absolute error of `pred` against `targ` (same number of values)."""
        pred = _fit_regression(pred, targ, "L1Loss")
        return F.l1_loss(pred, targ if targ.dtype == pred.dtype else targ.to(pred.dtype), reduction=self.reduction)


def _is(loss: Any, *kinds: Any) -> bool:
    return any(loss is k or isinstance(loss, k) for k in kinds if isinstance(k, type)) or \
        any(loss is k for k in kinds if not isinstance(k, type))


def activation_for(loss_func: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The final activation that turns raw model outputs into predictions for this loss."""
    if hasattr(loss_func, "activation"):
        return loss_func.activation
    if _is(loss_func, nn.CrossEntropyLoss, F.cross_entropy):
        return lambda x: F.softmax(x, dim=-1)
    if _is(loss_func, nn.NLLLoss, F.nll_loss):
        return torch.exp  # the model outputs log-probabilities
    if _is(loss_func, nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits):
        return torch.sigmoid
    return lambda x: x


def decode_for(loss_func: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """How to turn activated predictions into a decoded answer (class index, 0/1, value)."""
    if hasattr(loss_func, "decode"):
        return loss_func.decode
    if _is(loss_func, nn.CrossEntropyLoss, nn.NLLLoss, F.cross_entropy, F.nll_loss):
        return lambda x: x.argmax(dim=-1)
    if _is(loss_func, nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits):
        return lambda x: (x > 0.5).long()
    return lambda x: x


_LOSSES = {"CrossEntropyLoss": CrossEntropyLoss, "BCEWithLogitsLoss": BCEWithLogitsLoss, "MSELoss": MSELoss,
           "L1Loss": L1Loss}


def loss_from_name(name: str, config: dict[str, Any] | None = None) -> nn.Module:
    """Rebuild a deepfit loss from its class name and the `get_config()` it was exported with (used
    when loading an exported model; no config gives the defaults)."""
    if name not in _LOSSES:
        raise ValueError(f"Unknown loss {name!r}; exported models support {sorted(_LOSSES)}.")
    return _LOSSES[name](**(config or {}))
