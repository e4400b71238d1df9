"""How regression targets are encoded for the model, and decoded back into the target's units.

A network learns values near 0 far more easily than house prices in dollars (1e5..1e6): its last
layer starts with outputs of order 1, and a learning rate that suits the hidden layers moves them
by far too little. So regression targets are (optionally) put through `log1p`, then standardised with
the mean and standard deviation of the TRAINING rows; predictions, metrics and exported models are
decoded back with the inverse. The encoded training range also gives the default `y_range`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .transforms import TabularDataError, _py, numeric_column

__all__ = ["TargetEncoding", "LOG_KINDS"]

LOG_KINDS = (None, "log1p", "log")
"""`TargetEncoding.log`: none, log1p (deepfit's `log_y`), or log (models exported before log1p)."""


def _floats(v: Any, what: str) -> list[float] | None:
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
        raise TabularDataError(f"The model's data state has a malformed {what}: {v!r}.")
    return [float(x) for x in v]


class TargetEncoding:
    """Regression targets for the model: `log1p` (with `log`), then `(y - mean) / std` per target
    column (with `scale`), the statistics taken from the training rows by `setup`.

    Args:
        y_names: the target columns.
        log: None, "log1p" or "log" (the latter only in models exported before log1p).
        scale: standardise.

    Attributes:
        mean, std: per target column (None without `scale` or before `setup`).
        lo, hi: the range of the encoded training targets.

    Example:
        >>> enc = TargetEncoding(["price"]).setup(train_df)
        >>> enc.decode(enc.encode(enc.values(valid_df)))   # the prices again
    """

    def __init__(self, y_names: Sequence[str], log: str | None = None, scale: bool = True) -> None:
        if log not in LOG_KINDS:
            raise TabularDataError(f"Unknown target encoding log={log!r}; expected one of {LOG_KINDS}.")
        self.y_names, self.log, self.scale = list(y_names), log, bool(scale)
        self.mean: list[float] | None = None
        self.std: list[float] | None = None
        self.lo: float | None = None
        self.hi: float | None = None

    @property
    def active(self) -> bool:
        """Whether the model sees anything but the raw values."""
        return self.log is not None or self.mean is not None

    def values(self, df: pd.DataFrame) -> np.ndarray:
        """The targets of `df` as float64 of shape (N, n_targets), checked: numbers, finite and within
        float32's range, and >= 0 for log1p (> 0 for log); the errors name the column and rows."""
        cols = []
        for n in self.y_names:
            y = numeric_column(df[n], n, role="Target column")
            low = y <= 0 if self.log == "log" else y < 0
            if self.log is not None and low.any():
                rows = [_py(r) for r in df.index[low][:5]]
                what = "negative" if self.log == "log1p" else "zero or negative"
                raise TabularDataError(f"Target column {n!r} has {int(low.sum())} {what} value(s) (e.g. "
                                       f"{y[low][0]:g} at row(s) {rows}): the logarithm of 1 + target is not defined there.",
                                       "Drop those rows or train without log_y.",
                                       cli_hint="Drop those rows or train without --log-y.")
            cols.append(y)
        return np.stack(cols, 1)

    def setup(self, train: pd.DataFrame) -> "TargetEncoding":
        """Fit the statistics on the training rows `train`."""
        y = self._log(self.values(train))
        if self.scale:
            mean, std = y.mean(0), y.std(0)
            std = np.where(np.isfinite(std) & (std > 0), std, 1.0)  # a constant target keeps std 1
            self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
            y = (y - mean) / std
        self.lo, self.hi = float(y.min()), float(y.max())
        return self

    def _log(self, y: np.ndarray) -> np.ndarray:
        if self.log == "log1p":
            return np.log1p(y)
        return np.log(y) if self.log == "log" else y

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Checked target values (N, n_targets) in the model's space."""
        y = self._log(np.asarray(y, dtype=np.float64))
        return (y - np.array(self.mean)) / np.array(self.std) if self.mean is not None else y

    def decode(self, y: np.ndarray) -> np.ndarray:
        """Model outputs (N, n_targets), or one row (n_targets,), in the target's units."""
        y = np.asarray(y, dtype=np.float64)
        if self.mean is not None:
            y = y * np.array(self.std) + np.array(self.mean)
        if self.log == "log1p":
            return np.expm1(y)
        return np.exp(y) if self.log == "log" else y

    def decode_tensor(self, y: torch.Tensor, log: bool = True) -> torch.Tensor:
        """`decode` on a tensor (N, n_targets) or (N,), on its device (float64 where available);
        `log=False` undoes the standardisation only (the log space of a `log_y` model)."""
        y = y.detach().to(torch.float32 if y.device.type == "mps" else torch.float64)
        if self.mean is not None:
            y = y * y.new_tensor(self.std) + y.new_tensor(self.mean)
        if log and self.log == "log1p":
            return torch.expm1(y)
        return torch.exp(y) if log and self.log == "log" else y

    def encode_value(self, v: float, j: int = 0) -> float:
        """One value of target `j` in the model's space (-inf where the log is not defined)."""
        v = float(v)
        if self.log == "log1p":
            v = math.log1p(v) if v > -1 else -math.inf
        elif self.log == "log":
            v = math.log(v) if v > 0 else -math.inf
        if self.mean is not None:
            v = (v - self.mean[j]) / self.std[j]
        return v

    def default_range(self, margin: float = 0.2) -> tuple[float, float] | None:
        """The encoded training range widened by `margin` of its width on each side (at least 0.5, for
        a constant target), as fastai widens the range of the training targets; None before `setup`."""
        if self.lo is None or self.hi is None:
            return None
        pad = max(margin * (self.hi - self.lo), 0.5)
        return (self.lo - pad, self.hi + pad)

    def describe(self) -> str:
        """What is done to the target, in words (for reports)."""
        steps = [f"{self.log}(y)"] if self.log is not None else []
        if self.mean is not None:
            stats = ", ".join(f"{n}: mean {m:.6g}, std {s:.6g}" for n, m, s in zip(self.y_names, self.mean, self.std))
            steps.append(f"standardised with the training rows' {stats}")
        if not steps:
            return "used as is (not scaled)"
        return "; ".join(steps) + "; the loss is in these units, predictions and metrics in the target's own"

    # ---- state ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"y_log": self.log, "scale_y": self.scale, "y_mean": self.mean, "y_std": self.std,
                "y_lo": self.lo, "y_hi": self.hi}

    @classmethod
    def from_state(cls, y_names: Sequence[str], state: dict[str, Any]) -> "TargetEncoding":
        """Rebuilt from a processor's state; states written before target scaling (no `y_log`) mean log
        (not log1p) with `log_y`, and no standardisation."""
        log = state.get("y_log", "log" if state.get("log_y") else None)
        self = cls(y_names, log=log, scale=bool(state.get("scale_y", False)))
        self.mean, self.std = _floats(state.get("y_mean"), "y_mean"), _floats(state.get("y_std"), "y_std")
        if (self.mean is None) != (self.std is None) or (
                self.mean is not None and not len(self.mean) == len(self.std) == len(self.y_names)):
            raise TabularDataError("The model's data state has target statistics y_mean/y_std that do not match "
                                   "its target columns.")
        if self.std is not None and not all(s > 0 for s in self.std):
            raise TabularDataError("The model's data state has a target std <= 0.")
        lo, hi = state.get("y_lo"), state.get("y_hi")
        self.lo, self.hi = (float(lo), float(hi)) if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) \
            else (None, None)
        return self
