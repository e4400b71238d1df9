"""Input checks shared by the clustering tools: one place that turns arrays, tensors and DataFrames
into a 2-D float array, with messages that name the offending rows."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["ClusterInputError", "check_points"]


class ClusterInputError(ValueError):
    """Points given to a clustering tool that it cannot use (wrong shape, empty, NaN/inf rows...)."""


def check_points(X: Any, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """Return `X` as a 2-D NumPy array of floats (float32 and float64 are kept, other numbers become
    float64), or raise `ClusterInputError` saying what is wrong and how to fix it.

    Args:
        X: points of shape (n_samples, n_features): a NumPy array, a torch tensor, a pandas DataFrame
            or anything `np.asarray` understands. Nothing is modified.
        name: the argument's name, used in messages.
        n_features: when given, the number of columns `X` must have (e.g. for `predict`).
    """
    if isinstance(X, torch.Tensor):
        arr = X.detach().cpu().numpy()
    elif hasattr(X, "to_numpy"):
        arr = X.to_numpy()
    else:
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError) as e:  # ragged lists
            raise ClusterInputError(f"`{name}` must be a 2-D array of numbers (n_samples, n_features); "
                                    f"it could not be read as an array: {e}") from None
    if arr.dtype.kind in "biu" or arr.dtype == np.float16:
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError):
            raise ClusterInputError(f"`{name}` must hold numbers; received dtype {arr.dtype} that cannot be "
                                    f"converted to float. Encode non-numeric columns first.") from None
    if arr.ndim == 1:
        raise ClusterInputError(
            f"`{name}` must be 2-D (n_samples, n_features); received a 1-D array of shape {arr.shape}. "
            f"Use {name}.reshape(-1, 1) for {arr.shape[0]} points with one feature, or "
            f"{name}.reshape(1, -1) for one point with {arr.shape[0]} features.")
    if arr.ndim != 2:
        raise ClusterInputError(f"`{name}` must be 2-D (n_samples, n_features); received {arr.ndim}-D shape "
                                f"{arr.shape}. Flatten each point to one row, e.g. {name}.reshape(len({name}), -1).")
    if arr.shape[0] == 0:
        raise ClusterInputError(f"`{name}` is empty (0 rows, shape {arr.shape}): give at least one point.")
    if arr.shape[1] == 0:
        raise ClusterInputError(f"`{name}` has no columns (shape {arr.shape}): each point needs at least one feature.")
    if n_features is not None and arr.shape[1] != n_features:
        raise ClusterInputError(f"`{name}` has {arr.shape[1]} columns but the model was fitted on {n_features}; "
                                f"give points with the same {n_features} features.")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if len(bad) > 10 else "")
        raise ClusterInputError(
            f"`{name}` has NaN or infinite values in {len(bad)} row(s) (0-based positions: {shown}). "
            f"Drop or impute them first, e.g. {name}[np.isfinite({name}).all(axis=1)].")
    return arr
