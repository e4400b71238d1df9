"""Bandwidth estimate and grid ("bin") seeds for mean shift, with scikit-learn's definitions:
`estimate_bandwidth` is the mean, over the points, of the distance to their k-th nearest neighbour
(the point itself counted first, k = int(quantile * n)); `bin_seeds` are the occupied cells of a grid
of side `bin_size`. Distances are computed in torch, a batch of points against all points at a time."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ..utils import default_device
from .checks import ClusterInputError, check_points

__all__ = ["estimate_bandwidth", "bin_seeds"]


def estimate_bandwidth(X: Any, quantile: float = 0.3, n_samples: int | None = None, random_state: int = 0,
                       batch_size: int | None = None, device: torch.device | str | None = None,
                       dtype: torch.dtype = torch.float64) -> float:
    """A bandwidth for mean shift: the mean distance from each point to its k-th nearest neighbour,
    k = max(1, int(quantile * n)), where a point is its own first neighbour (distance 0). The same
    definition as `sklearn.cluster.estimate_bandwidth`, also for `n_samples` (the points are first
    reduced to `np.random.RandomState(random_state).permutation(n)[:n_samples]`, both as queries and
    as neighbours). Takes time quadratic in the number of points used: give `n_samples` for large data.

    Args:
        X: points, shape (n_samples, n_features).
        quantile: in [0, 1]; 0.5 means the median of pairwise distances is used.
        n_samples: use this many randomly chosen points (all when None).
        random_state: seed of that choice.
        batch_size: points whose distances are computed at once (default: about 16M distances a batch).
        device: where to compute (default: `deepfit.default_device()`).
        dtype: compute dtype (float64: the same value as scikit-learn to about 1e-12).

    Example:
        >>> estimate_bandwidth(np.array([[1, 1], [2, 1], [1, 0], [4, 7], [3, 5], [3, 6]]), quantile=0.5)
        1.6101...
    """
    X = check_points(X)
    if not 0 <= quantile <= 1:
        raise ValueError(f"`quantile` must be in [0, 1]; received quantile={quantile!r}.")
    if n_samples is not None:
        if n_samples < 1:
            raise ValueError(f"`n_samples` must be >= 1 or None; received n_samples={n_samples!r}.")
        X = X[np.random.RandomState(random_state).permutation(len(X))[:n_samples]]
    n = len(X)
    k = max(1, int(n * quantile))
    device = torch.device(device) if device is not None else default_device()
    x = torch.as_tensor(X, dtype=dtype, device=device)
    x = x - x.mean(0)
    bs = batch_size or max(1, min(n, 2**24 // n))
    total = torch.zeros((), dtype=torch.float64, device=device)
    for s in range(0, n, bs):
        # differences, not the |a|^2 + |b|^2 - 2ab shortcut: a point's distance to itself stays 0
        dist = torch.cdist(x[s:s + bs], x, compute_mode="donot_use_mm_for_euclid_dist")
        kth = dist.kthvalue(k, dim=1).values if k < n else dist.max(dim=1).values
        total += kth.to(torch.float64).sum()
    return float(total) / n


def bin_seeds(X: np.ndarray, bin_size: float, min_bin_freq: int = 1) -> np.ndarray:
    """Seeds for mean shift from a grid of side `bin_size`: the centre (index * bin_size) of every cell
    holding at least `min_bin_freq` points, cells found by rounding X / bin_size, as in scikit-learn's
    `get_bin_seeds`. When every point has a cell of
    its own, binning saves nothing: a warning is given and the points themselves are returned."""
    X = check_points(X)
    if not bin_size > 0:
        raise ValueError(f"`bin_size` must be > 0; received bin_size={bin_size!r}.")
    cells, counts = _unique_rows(np.round(X / bin_size))
    seeds = cells[counts >= min_bin_freq]
    if len(seeds) == len(X):
        warnings.warn(f"Binning the points with bin_size={bin_size:g} left one point per cell; using the "
                      f"points as seeds.", stacklevel=2)
        return X
    if len(seeds) == 0:
        raise ClusterInputError(f"No grid cell of side {bin_size:g} holds min_bin_freq={min_bin_freq} points; "
                                f"lower `min_bin_freq` or use bin_seeding=False.")
    return seeds * float(bin_size)


def _unique_rows(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(cells, axis=0, return_counts=True)` for rows of whole numbers, in the same (lexicographic)
    order: each row becomes one int64 key (row-major index in the grid's bounding box), which sorts 10-20x
    faster than rows; grids too large for int64 keys fall back to sorting rows."""
    lo = cells.min(0)
    span = cells.max(0) - lo + 1
    if float(np.prod(span)) >= 2.0**62:
        return np.unique(cells, axis=0, return_counts=True)
    dims = tuple(int(v) for v in span)
    keys = np.ravel_multi_index(tuple((cells - lo).astype(np.int64).T), dims)
    uniq, counts = np.unique(keys, return_counts=True)
    return np.stack(np.unravel_index(uniq, dims), axis=1) + lo, counts
