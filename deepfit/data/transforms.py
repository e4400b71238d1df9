"""Normalisation whose statistics come from the training set only and are stored for inference."""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["Normalize"]


class Normalize:
    """Subtract a mean and divide by a standard deviation computed on training data.

    Args:
        mean, std: the statistics (tensors broadcastable to the data).

    Example:
        >>> norm = Normalize.from_stats(x_train)          # scalar mean / std over all values
        >>> norm = Normalize.from_stats(x_train, dim=0)   # per-feature statistics
        >>> x_valid_n = norm(x_valid)
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, eps: float = 1e-7) -> None:
        self.mean, self.std, self.eps = torch.as_tensor(mean).float(), torch.as_tensor(std).float(), eps

    @classmethod
    def from_stats(cls, x_train: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> "Normalize":
        """Compute the statistics on `x_train` (over all values, or over `dim` keeping the others)."""
        x = torch.as_tensor(x_train).double()
        if dim is None:
            return cls(x.mean(), x.std())
        return cls(x.mean(dim=dim, keepdim=True), x.std(dim=dim, keepdim=True))

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # move the statistics to the data's device once, not at every batch
        if self.mean.device != device:
            self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self.mean, self.std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m, s = self._on(x.device)
        return (x.float() - m) / (s + self.eps)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the normalisation."""
        m, s = self._on(x.device)
        return x * (s + self.eps) + m

    def state_dict(self) -> dict[str, Any]:
        """The statistics, for export (`from_state_dict` rebuilds an equal Normalize)."""
        return {"mean": self.mean, "std": self.std, "eps": self.eps}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "Normalize":
        """Rebuild what `state_dict` returned."""
        return cls(state["mean"], state["std"], state.get("eps", 1e-7))

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten()[:4].tolist()}, std={self.std.flatten()[:4].tolist()})"
