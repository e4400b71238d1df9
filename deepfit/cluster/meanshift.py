"""Mean-shift clustering in torch: every seed climbs to a mode of the kernel density of the points,
a batch of seeds per step (one distance matrix and one matrix product, or a neighbour search), on any
device; the modes are then merged and every point gets the label of its nearest mode.

The algorithm is scikit-learn's `MeanShift` (seeds move, the points stay; a seed stops when it moves
less than `tol * bandwidth`; modes closer than the bandwidth are merged, the one with the larger
window count kept), with the course's gaussian kernel as an option and exact or approximate
neighbour searches for large data.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin

from ..utils import default_device
from .bandwidth import bin_seeds, estimate_bandwidth
from .checks import ClusterInputError, check_points
from .grid import GridRows
from .neighbors import KERNELS, AllPoints, BoxTree, LSHNeighbors, TreeNeighbors, kernel_radius, sqdist

__all__ = ["MeanShift", "auto_neighbors", "climb", "mean_shift_step", "merge_modes", "nearest_center"]

NEIGHBORS = ("auto", "all", "grid", "boxtree", "tree", "lsh")
# neighbors="auto": AllPoints up to this many seed x point pairs; beyond, BoxTree up to BOXTREE_MAX_DIM
# features (in more dimensions few boxes fit inside a window: 3x slower than AllPoints at 16-D), else
# scikit-learn's tree. With more than 4 features the dense search beat the KD-tree at every size
# measured on the CPU (16-D blobs: 1.3x at 100k x 16k pairs, 1.2x at 1M x 52k, 2.2x at 1M x 1M; see
# benchmarks/RESULTS.md), so there the limit (1e13 pairs) only guards against runs of days.
# With 1 or 2 features and the flat kernel, GridRows replaces BoxTree, and on the CPU it is used from
# more than GRID_MIN_POINTS points whatever the number of seeds, or from more than GRID_SMALL_POINTS
# points when there are more than GRID_MIN_PAIRS seed x point pairs. Fits on the lesson's 2-D blobs,
# grid / dense CPU time: 10k points 0.52 (grid seeds), 0.31 (every point a seed); 5k 0.58, 0.55; 3k
# 1.24, 0.89; 2k 1.59, 0.69; 1.5k 1.79, 0.67; 1k 2.4, 1.13; and 200 points with 20k seeds 2.0: the
# dense tiles are cheap while the points fit in one or two 4,096-point tiles.
AUTO_DENSE_LIMIT = {"cpu": 25_000_000, "cpu_many_features": 10_000_000_000_000, "other": 4_000_000_000}
BOXTREE_MAX_DIM = 4
GRID_MAX_DIM = 2
GRID_MIN_POINTS = 4096
GRID_SMALL_POINTS = 1024
GRID_MIN_PAIRS = 2_000_000


def auto_neighbors(n_seeds: int, n_points: int, n_features: int, kernel: str = "flat",
                   device: str | torch.device = "cpu") -> str:
    """The window search `MeanShift(neighbors="auto")` uses for `n_seeds` seeds on `n_points` points
    with `n_features` features. Flat kernel with up to `GRID_MAX_DIM` features, on the CPU: "grid"
    from more than `GRID_MIN_POINTS` points, or from more than `GRID_SMALL_POINTS` points with more
    than `GRID_MIN_PAIRS` seed x point pairs. Otherwise "all" up to `AUTO_DENSE_LIMIT` seed x point
    pairs, beyond that "grid" (flat kernel, up to `GRID_MAX_DIM` features), "boxtree" (flat kernel, up
    to `BOXTREE_MAX_DIM` features) or "tree"."""
    low_dim = n_features <= BOXTREE_MAX_DIM
    grid = kernel == "flat" and n_features <= GRID_MAX_DIM
    cpu = torch.device(device).type == "cpu"
    if grid and cpu and (n_points > GRID_MIN_POINTS or
                         (n_points > GRID_SMALL_POINTS and n_seeds * n_points > GRID_MIN_PAIRS)):
        return "grid"
    limit = AUTO_DENSE_LIMIT["cpu" if cpu and low_dim else "cpu_many_features" if cpu else "other"]
    if n_seeds * n_points <= limit:
        return "all"
    if grid:
        return "grid"
    return "boxtree" if kernel == "flat" and low_dim else "tree"


class MeanShift(ClusterMixin, BaseEstimator):
    """Mean-shift clustering with scikit-learn's conventions (the constructor only stores its
    arguments; `fit` returns self; results in attributes ending in "_").

    Args:
        bandwidth: kernel bandwidth (the radius of the flat kernel, the standard deviation of the
            gaussian). None: `estimate_bandwidth(X)` (quantile 0.3) on all points, or on
            `bandwidth_samples` points drawn with `random_state` when there are more.
        kernel: "flat" (scikit-learn's: the mean of the points within `bandwidth`) or "gaussian"
            (the course's: weights exp(-d^2 / (2 bandwidth^2))).
        max_iter: most mean-shift steps per seed. (scikit-learn's `max_iter=k` allows k + 1 steps.)
        tol: a seed stops when a step moves it by at most `tol * bandwidth` (scikit-learn: 1e-3).
        seeds: starting positions (n_seeds, n_features); default: the points, or grid cells with
            `bin_seeding`.
        bin_seeding: start from the centres of the grid cells (side `bandwidth`) that hold at least
            `min_bin_freq` points, as scikit-learn does: far fewer seeds on large data.
        min_bin_freq: see `bin_seeding`.
        cluster_all: label every point with its nearest mode; False: points farther than `bandwidth`
            from every mode get -1.
        neighbors: which points each step looks at: "all" (exact; one matrix product per batch of
            seeds), "tree" (exact; scikit-learn's KD-tree radius search, only the points within the
            kernel's radius), "grid" (exact, flat kernel, 1 or 2 features; the points sorted by grid
            row and column, whole runs of cells inside a window added from prefix sums: the fastest
            on large 2-D data), "boxtree" (exact, flat kernel only; a KD-tree in torch that adds whole
            boxes inside a window at once), "lsh" (approximate; random-projection LSH in torch), or
            "auto": "grid" for the flat kernel with 1-2 features on the CPU from 4,097 points (from
            1,025 with more than 2M seed x point pairs); otherwise "all" up to 25M seed x point pairs on the CPU (1e13 with more than 4
            features; 4G on a GPU), beyond that "grid" (flat kernel, 1-2 features), "boxtree" (flat
            kernel, 3-4 features) or "tree". See `auto_neighbors`.
            The gaussian kernel is cut at 3 bandwidths by "tree" and "lsh".
        batch_size: seeds per batch (default: tiles of about 1M distances on the CPU, 16M elsewhere, for
            "all"; about 4M neighbour pairs (or leaf points) for the others).
        device: where to compute (default `deepfit.default_device()`).
        dtype: compute dtype, torch.float32 or torch.float64 (the points are centred first, so
            float32 distances are accurate to about 1e-6 of the data's spread).
        lsh_tables, lsh_projections, lsh_width: the LSH index's tables, projections per table and
            bucket width in units of the kernel's radius (see `LSHNeighbors`).
        bandwidth_samples: most points used to estimate the bandwidth (None: all; quadratic time).
        random_state: seed of the bandwidth's sample and of the LSH projections.

    Attributes:
        cluster_centers_: (n_clusters, n_features) modes, by decreasing window count.
        labels_: (n_samples,) index of each point's cluster (-1: none, with `cluster_all=False`).
        bandwidth_: the bandwidth used (given or estimated).
        n_iter_: the largest number of steps any seed took.
        n_seeds_: number of seeds that climbed.
        intensities_: (n_clusters,) window count (flat) or weight (gaussian) at each mode.
        neighbors_: the neighbour search used ("all", "grid", "boxtree", "tree" or "lsh").
        n_features_in_: number of features seen by `fit`.

    Example:
        >>> ms = MeanShift(bandwidth=2.5).fit(X)          # X: (n, 2) points
        >>> ms.cluster_centers_, ms.labels_
        >>> MeanShift(kernel="gaussian", device="cuda").fit_predict(X)
    """

    def __init__(self, bandwidth: float | None = None, *, kernel: str = "flat", max_iter: int = 300,
                 tol: float = 1e-3, seeds: Any = None, bin_seeding: bool = False, min_bin_freq: int = 1,
                 cluster_all: bool = True, neighbors: str = "auto", batch_size: int | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 lsh_tables: int = 6, lsh_projections: int = 2, lsh_width: float = 4.0,
                 bandwidth_samples: int | None = 10_000, random_state: int = 0):
        self.bandwidth = bandwidth
        self.kernel = kernel
        self.max_iter = max_iter
        self.tol = tol
        self.seeds = seeds
        self.bin_seeding = bin_seeding
        self.min_bin_freq = min_bin_freq
        self.cluster_all = cluster_all
        self.neighbors = neighbors
        self.batch_size = batch_size
        self.device = device
        self.dtype = dtype
        self.lsh_tables = lsh_tables
        self.lsh_projections = lsh_projections
        self.lsh_width = lsh_width
        self.bandwidth_samples = bandwidth_samples
        self.random_state = random_state

    # ---- checks ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        bw = self.bandwidth
        if bw is not None and (isinstance(bw, bool) or not isinstance(bw, numbers.Real)
                               or not math.isfinite(bw) or bw <= 0):
            raise ValueError(f"`bandwidth` must be a finite number > 0, or None to estimate it from the data; "
                             f"received bandwidth={bw!r}.")
        if self.kernel not in KERNELS:
            raise ValueError(f"`kernel` must be one of {KERNELS}; received kernel={self.kernel!r}.")
        if self.neighbors not in NEIGHBORS:
            raise ValueError(f"`neighbors` must be one of {NEIGHBORS}; received neighbors={self.neighbors!r}.")
        for name in ("max_iter", "min_bin_freq"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; received {name}={v!r}.")
        bs = self.batch_size
        if bs is not None and (isinstance(bs, bool) or not isinstance(bs, numbers.Integral) or bs < 1):
            raise ValueError(f"`batch_size` must be an integer >= 1 or None; received batch_size={bs!r}.")
        if not (isinstance(self.tol, numbers.Real) and 0 <= self.tol < math.inf):
            raise ValueError(f"`tol` must be a finite number >= 0; received tol={self.tol!r}.")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"`dtype` must be torch.float32 or torch.float64; received dtype={self.dtype!r}.")

    # ---- fit -------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> "MeanShift":
        """Cluster `X` (n_samples, n_features): climb every seed to its mode, merge the modes, label
        the points. `y` is ignored. Returns self."""
        self._check_params()
        X = check_points(X)
        n, d = X.shape
        device = torch.device(self.device) if self.device is not None else default_device()
        bw = self.bandwidth
        if bw is None:
            if n == 1:
                raise ClusterInputError("Cannot estimate a bandwidth from a single point; pass `bandwidth=`.")
            use = self.bandwidth_samples if self.bandwidth_samples is not None and n > self.bandwidth_samples else None
            bw = estimate_bandwidth(X, n_samples=use, random_state=self.random_state, device=device,
                                    dtype=self.dtype)
            if not bw > 0:
                raise ClusterInputError(f"The estimated bandwidth is 0 (at least 30% of the {n} points are "
                                        f"identical); pass `bandwidth=` explicitly.")
        bw = float(bw)
        if self.seeds is not None:
            seeds = check_points(self.seeds, name="seeds", n_features=d)
        elif self.bin_seeding:
            seeds = bin_seeds(X, bw, self.min_bin_freq)
        else:
            seeds = X
        # centre on the data's mean: float32 distances then lose little to cancellation
        offset = X.mean(0)
        Xt = torch.as_tensor(X - offset, dtype=self.dtype, device=device)
        St = torch.as_tensor(seeds - offset, dtype=self.dtype, device=device)
        search, self.neighbors_ = self._search(Xt, len(St), bw, device)
        pos, intensity, steps = climb(St, search, bw, self.kernel, self.max_iter, self.tol, self.batch_size)
        pos64 = pos.to("cpu", torch.float64).numpy()
        centers, strengths = merge_modes(pos64, intensity.to("cpu", torch.float64).numpy(), bw)
        if len(centers) == 0:
            raise ClusterInputError(f"No point was within bandwidth={bw:g} of any seed; increase the bandwidth "
                                    f"or use other seeds (bin_seeding=False starts from the points).")
        Ct = torch.as_tensor(centers, dtype=self.dtype, device=device)
        labels, d2 = nearest_center(Xt, Ct)
        if not self.cluster_all:
            labels[d2 > bw * bw] = -1
        self.bandwidth_ = bw
        self.cluster_centers_ = centers + offset
        self.intensities_ = strengths
        self.labels_ = labels.cpu().numpy()
        self.n_iter_ = int(steps.max()) if len(steps) else 0
        self.n_seeds_ = len(St)
        self.n_features_in_ = d
        self._offset = offset
        return self

    def _search(self, Xt: torch.Tensor, n_seeds: int, bw: float, device: torch.device):
        kind = self.neighbors
        if kind == "auto":
            kind = auto_neighbors(n_seeds, len(Xt), Xt.shape[1], self.kernel, device)
        if kind in ("boxtree", "grid") and self.kernel != "flat":
            raise ValueError(f"neighbors={kind!r} sums flat-kernel windows only; with kernel={self.kernel!r} use "
                             f"neighbors='tree', 'all' or 'lsh'.")
        radius = kernel_radius(bw, self.kernel)
        if kind == "all":
            return AllPoints(Xt), kind
        if kind == "tree":
            return TreeNeighbors(Xt, radius), kind
        if kind == "boxtree":
            return BoxTree(Xt), kind
        if kind == "grid":
            return GridRows(Xt, bw), kind
        return LSHNeighbors(Xt, radius, n_tables=self.lsh_tables, n_projections=self.lsh_projections,
                            width=self.lsh_width, seed=self.random_state), kind

    def predict(self, X: Any) -> np.ndarray:
        """Index of the nearest cluster centre for each row of `X` (n_samples, n_features)."""
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("This MeanShift is not fitted yet; call fit(X) first.")
        X = check_points(X, n_features=self.n_features_in_)
        device = torch.device(self.device) if self.device is not None else default_device()
        Xt = torch.as_tensor(X - self._offset, dtype=self.dtype, device=device)
        Ct = torch.as_tensor(self.cluster_centers_ - self._offset, dtype=self.dtype, device=device)
        return nearest_center(Xt, Ct)[0].cpu().numpy()

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """`fit(X)` and return `labels_`."""
        return self.fit(X).labels_


def mean_shift_step(Q: torch.Tensor, search: Any, bandwidth: float, kernel: str,
                    batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One mean-shift step for the positions `Q` (m, d): the kernel-weighted mean of the points in
    each window, and the window's total weight (the number of points, for the flat kernel). A window
    with no point keeps its position (weight 0)."""
    sums, totals = search.windows(Q, bandwidth, kernel, batch_size)
    new = sums / totals.clamp_min(torch.finfo(sums.dtype).tiny)[:, None]
    new = torch.where((totals > 0)[:, None], new, Q)
    return new, totals


def climb(seeds: torch.Tensor, search: Any, bandwidth: float, kernel: str, max_iter: int, tol: float,
          batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move every seed by mean-shift steps until a step moves it by at most `tol * bandwidth`, its
    window is empty, or it has taken `max_iter` steps. Returns the final positions, the total weight of
    each seed's last window (0: empty) and the number of steps of each seed.

    Only the seeds still moving are stepped, in batches (see `search.windows`).
    """
    pos = seeds.clone()
    m = len(pos)
    weight = torch.zeros(m, dtype=pos.dtype, device=pos.device)
    steps = torch.zeros(m, dtype=torch.int64, device=pos.device)
    active = torch.arange(m, device=pos.device)
    for _ in range(max_iter):
        if len(active) == 0:
            break
        P = pos[active]
        new, w = mean_shift_step(P, search, bandwidth, kernel, batch_size)
        moved = (new - P).norm(dim=1)
        pos[active], weight[active] = new, w
        steps[active] += 1
        active = active[(w > 0) & (moved > tol * bandwidth)]
    return pos, weight, steps


def merge_modes(positions: np.ndarray, weights: np.ndarray, bandwidth: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge the seeds' final positions into modes, as scikit-learn does: drop seeds whose last window
    was empty, keep one of equal positions, order by (window weight, coordinates) decreasing, and keep
    a position unless it is within `bandwidth` of a position kept before it.
    Returns the modes (k, d) and their weights (k,)."""
    keep = weights > 0
    P, W = positions[keep], weights[keep]
    if len(P) == 0:
        return P, W
    # equal positions: keep the last seed's weight (what scikit-learn's dict of tuples keeps)
    _, last = np.unique(P[::-1], axis=0, return_index=True)
    idx = len(P) - 1 - last
    P, W = P[idx], W[idx]
    order = np.lexsort(tuple(P[:, j] for j in range(P.shape[1] - 1, -1, -1)) + (W,))[::-1]
    P, W = P[order], W[order]
    alive = np.arange(len(P))
    kept = []
    r2 = bandwidth * bandwidth
    while len(alive):
        i = alive[0]
        kept.append(i)
        d2 = ((P[alive] - P[i]) ** 2).sum(1)
        alive = alive[d2 > r2]
    kept = np.array(kept)
    return P[kept], W[kept]


def nearest_center(X: torch.Tensor, centers: torch.Tensor,
                   batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of `X` (n, d): the index of the nearest row of `centers` (k, d) and the squared
    distance to it, a batch of rows at a time."""
    bs = batch_size or max(1, 2**24 // max(len(centers), 1))
    idx, dist = [], []
    for s in range(0, len(X), bs):
        d2, i = sqdist(X[s:s + bs], centers).min(dim=1)
        idx.append(i), dist.append(d2)
    return torch.cat(idx), torch.cat(dist)
