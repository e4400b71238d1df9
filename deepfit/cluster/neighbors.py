"""Kernel windows for mean shift: for a batch of query positions, the kernel-weighted sum of the data
points around each and the total weight, computed four ways.

- `AllPoints`: exact; a batch of queries against every point as one distance matrix and one matrix
  product (the course's broadcasting version). Best on a GPU, or for small data.
- `TreeNeighbors`: exact; only the points within the kernel's radius, found with scikit-learn's
  KD-tree (ball tree above 20 features) on the CPU, then summed in torch on the device.
- `BoxTree`: exact, flat kernel only; a KD-tree built in torch whose nodes carry their point count
  and sum, so boxes inside a window are added whole and only points near its edge are tested.
  (With 1 or 2 features `GridRows`, in grid.py, does the same from one sort and is faster.)
- `LSHNeighbors`: approximate; candidates from random-projection locality-sensitive hashing written
  in torch (works on any device), then the exact distance test. Some true neighbours can be missed
  (none are added): fewer tables or narrower buckets are faster and miss more.

The gaussian kernel is evaluated without a cut-off by `AllPoints`, and cut at
`GAUSSIAN_CUTOFF` bandwidths by the two neighbour searches (weights below exp(-4.5) = 1.1%).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["sqdist", "kernel_weights", "kernel_radius", "AllPoints", "TreeNeighbors", "BoxTree", "LSHNeighbors",
           "GAUSSIAN_CUTOFF", "KERNELS"]

KERNELS = ("flat", "gaussian")
GAUSSIAN_CUTOFF = 3.0
PAIR_BUDGET = 2**22          # (query, point) pairs held at once by the neighbour searches


def sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared euclidean distances (m, n) between the rows of `a` (m, d) and `b` (n, d), as
    |a|^2 + |b|^2 - 2 a.b (one matrix product), clamped at 0. Centre the data first in float32."""
    d2 = (a * a).sum(1, keepdim=True) + (b * b).sum(1) - 2.0 * (a @ b.T)
    return d2.clamp_min_(0)


def kernel_weights(d2: torch.Tensor, bandwidth: float, kernel: str) -> torch.Tensor:
    """Kernel weights from squared distances: flat = 1 within `bandwidth` (inclusive) else 0 (the
    kernel of scikit-learn's MeanShift); gaussian = exp(-d^2 / (2 bandwidth^2)) (the course's; its
    normalising constant cancels in the weighted mean)."""
    if kernel == "flat":
        return (d2 <= bandwidth * bandwidth).to(d2.dtype)
    return torch.exp(d2 * (-0.5 / (bandwidth * bandwidth)))


def flat_window_totals(search: str, Q: torch.Tensor, kernel: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Zeroed float64 window sums (m, d) and counts (m,) for the `m` rows of `Q`, after checking that the
    kernel is flat (the searches that add whole boxes or runs of points can only count, not weigh)."""
    if kernel != "flat":
        raise ValueError(f"{search} sums flat-kernel windows only; use TreeNeighbors or AllPoints for "
                         f"kernel={kernel!r}.")
    m, d = Q.shape
    return (torch.zeros(m, d, dtype=torch.float64, device=Q.device),
            torch.zeros(m, dtype=torch.float64, device=Q.device))


def kernel_radius(bandwidth: float, kernel: str) -> float:
    """The distance beyond which the neighbour searches ignore points."""
    return bandwidth if kernel == "flat" else GAUSSIAN_CUTOFF * bandwidth


class AllPoints:
    """Exact windows from all points, in tiles of (queries x points): per tile one matrix product for
    |x|^2 - 2 q.x, the kernel weights, and one product `weights @ X` added to the window sums.

    On the CPU the tiles are small (about 1M distances: 256 queries x 4,096 points) so that each tile's
    distances, weights and products stay in the cache: 4x faster than one (queries x all points)
    matrix, which the memory bandwidth limits (16-D, 100k points). Elsewhere (GPU) a tile spans all
    points and about 16M distances."""

    exact = True

    def __init__(self, X: torch.Tensor):
        self.X = X
        self.sq = (X * X).sum(1)  # |x|^2 of every point, once

    def windows(self, Q: torch.Tensor, bandwidth: float, kernel: str,
                batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted sums (m, d) and total weights (m,) of the windows around the rows of `Q`; `batch_size`
        queries per tile (default: see the class)."""
        X, n = self.X, len(self.X)
        cpu = X.device.type == "cpu"
        bp = min(n, 4096) if cpu else n
        bq = batch_size or max(1, (2**20 if cpu else 2**24) // max(bp, 1))
        r2, c = bandwidth * bandwidth, -0.5 / (bandwidth * bandwidth)
        sums = torch.zeros(len(Q), X.shape[1], dtype=X.dtype, device=X.device)
        totals = torch.zeros(len(Q), dtype=X.dtype, device=X.device)
        for s in range(0, len(Q), bq):
            q = Q[s:s + bq]
            qq = (q * q).sum(1, keepdim=True)
            acc, tot = sums[s:s + bq], totals[s:s + bq]  # views: the tiles add into the results
            for p in range(0, n, bp):
                xp = X[p:p + bp]
                part = torch.addmm(self.sq[None, p:p + bp], q, xp.T, alpha=-2.0)  # |x|^2 - 2 q.x = d^2 - |q|^2
                if kernel == "flat":  # d^2 <= r^2, as |x|^2 - 2 q.x <= r^2 - |q|^2 (no d^2 matrix made)
                    w = (part <= r2 - qq).to(X.dtype)
                else:
                    w = torch.exp((part + qq).clamp_min_(0) * c)
                acc.addmm_(w, xp)
                tot += w.sum(1)
        return sums, totals


class _PairSearch:
    """Shared part of the neighbour searches: `pairs(Q)` gives (row in Q, point index, squared distance
    or None for 'not needed') for the points within `radius`; `windows` sums them in adaptive batches."""

    exact = True

    def __init__(self, X: torch.Tensor, radius: float):
        self.X, self.radius = X, float(radius)
        self.n_pairs = 0                      # pairs visited so far (for benchmarks)

    def pairs(self, Q: torch.Tensor, need_d2: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def windows(self, Q: torch.Tensor, bandwidth: float, kernel: str,
                batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        m, d = Q.shape
        sums = torch.zeros(m, d, dtype=self.X.dtype, device=self.X.device)
        totals = torch.zeros(m, dtype=self.X.dtype, device=self.X.device)
        s, bs = 0, batch_size or 256
        while s < m:
            e = min(m, s + bs)
            rows, cols, d2 = self.pairs(Q[s:e], need_d2=kernel != "flat")
            self.n_pairs += len(rows)
            pts = self.X[cols]
            if kernel == "flat":          # every pair is inside the radius = bandwidth: weight 1
                w = torch.ones(len(rows), dtype=self.X.dtype, device=self.X.device)
            else:
                w = kernel_weights(d2, bandwidth, kernel)
                pts = pts * w[:, None]
            sums[s:e].index_add_(0, rows, pts)
            totals[s:e].index_add_(0, rows, w)
            if batch_size is None:        # keep about PAIR_BUDGET pairs a batch
                per_query = max(1.0, len(rows) / (e - s))
                bs = int(min(65536, max(1, PAIR_BUDGET / per_query)))
            s = e
        return sums, totals


class TreeNeighbors(_PairSearch):
    """Exact radius search with scikit-learn's KDTree (BallTree for more than 20 features), built once
    on the CPU in float64. The windows are summed on the CPU in float64 straight from the tree's
    answer (one gather and one segment sum per batch), then moved to the data's device."""

    def __init__(self, X: torch.Tensor, radius: float, leaf_size: int = 40):
        super().__init__(X, radius)
        from sklearn.neighbors import BallTree, KDTree
        self.data = X.detach().to("cpu", torch.float64).numpy()
        self.tree = (KDTree if X.shape[1] <= 20 else BallTree)(self.data, leaf_size=leaf_size)

    def _query(self, q: np.ndarray, need_d2: bool):
        if need_d2:
            ind, dist = self.tree.query_radius(q, self.radius, return_distance=True)
        else:
            ind, dist = self.tree.query_radius(q, self.radius), None
        counts = np.fromiter((len(i) for i in ind), dtype=np.int64, count=len(ind))
        cols = np.concatenate(ind) if len(ind) else np.zeros(0, np.int64)
        d2 = np.concatenate(dist) ** 2 if need_d2 else None
        return counts, cols, d2

    def pairs(self, Q, need_d2):
        counts, cols, d2 = self._query(Q.detach().to("cpu", torch.float64).numpy(), need_d2)
        dev = self.X.device
        rows = torch.repeat_interleave(torch.arange(len(counts)), torch.from_numpy(counts)).to(dev)
        return rows, torch.from_numpy(cols).to(dev), None if d2 is None else torch.from_numpy(d2).to(dev, self.X.dtype)

    def windows(self, Q: torch.Tensor, bandwidth: float, kernel: str,
                batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        q_all = Q.detach().to("cpu", torch.float64).numpy()
        m, d = q_all.shape
        sums, totals = np.zeros((m, d)), np.zeros(m)
        s, bs = 0, batch_size or 256
        while s < m:
            e = min(m, s + bs)
            counts, cols, d2 = self._query(q_all[s:e], need_d2=kernel != "flat")
            self.n_pairs += len(cols)
            if len(cols):
                starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
                nonempty = counts > 0
                pts = self.data[cols]
                if kernel == "flat":
                    totals[s:e] = counts
                else:
                    w = np.exp(d2 * (-0.5 / (bandwidth * bandwidth)))
                    pts *= w[:, None]
                    totals[s:e][nonempty] = np.add.reduceat(w, starts[nonempty])
                # reduceat over the non-empty windows only (it misreads empty segments)
                sums[s:e][nonempty] = np.add.reduceat(pts, starts[nonempty], axis=0)
            if batch_size is None:        # keep about PAIR_BUDGET pairs a batch
                per_query = max(1.0, len(cols) / (e - s))
                bs = int(min(65536, max(1, PAIR_BUDGET / per_query)))
            s = e
        dev, dt = self.X.device, self.X.dtype
        return torch.from_numpy(sums).to(dev, dt), torch.from_numpy(totals).to(dev, dt)


class BoxTree:
    """Exact flat-kernel windows from a KD-tree built in torch whose nodes know their box, their
    number of points and (through prefix sums) the sum of their points: a node whose box lies inside a
    window is added whole, a node whose box misses it is dropped, and only the points of leaves that
    straddle the window's edge are tested one by one. The work per window grows with its boundary, not
    with the number of points inside, which is what makes large windows on large data cheap. Flat
    kernel only (a gaussian weight is not a sum over a box); runs on the data's device.

    The tree is complete and balanced: level l has 2^l nodes, node j holding the points at sorted
    positions [j n / 2^l, (j + 1) n / 2^l), split at the median of the node's widest coordinate.

    Args:
        X: the data points (n, d).
        leaf_size: at most about this many points per leaf (between leaf_size / 2 and leaf_size).
    """

    exact = True

    def __init__(self, X: torch.Tensor, leaf_size: int = 12):
        n, d = X.shape
        self.n, self.X = n, X
        self.depth = max(0, math.ceil(math.log2(n / leaf_size))) if n > leaf_size else 0
        self.n_pairs = 0
        dev = X.device
        Xp = X
        self.lo, self.hi = [], []
        for level in range(self.depth + 1):
            bounds = (torch.arange(2**level + 1, device=dev) * n) >> level
            node_of = torch.repeat_interleave(torch.arange(2**level, device=dev), bounds.diff())
            idx = node_of[:, None].expand(-1, d)
            lo = torch.full((2**level, d), math.inf, dtype=X.dtype, device=dev).scatter_reduce(0, idx, Xp, "amin")
            hi = torch.full((2**level, d), -math.inf, dtype=X.dtype, device=dev).scatter_reduce(0, idx, Xp, "amax")
            self.lo.append(lo), self.hi.append(hi)
            if level < self.depth:
                # order each node's points along its widest coordinate, all nodes in one sort: the key
                # is node + (coordinate - node's min) / (node's spread) * 0.5, so nodes stay in order
                # (equal coordinates may come in any order: any split of them is a valid tree)
                dim = (hi - lo).argmax(1)
                span = (hi - lo).gather(1, dim[:, None])[:, 0].to(torch.float64).clamp_min(1e-300)
                base = lo.gather(1, dim[:, None])[:, 0].to(torch.float64)
                coord = Xp.gather(1, dim[node_of][:, None])[:, 0].to(torch.float64)
                key = node_of.to(torch.float64) + 0.5 * (coord - base[node_of]) / span[node_of]
                Xp = Xp.index_select(0, torch.argsort(key))
        self.Xp = Xp
        self.boxes = [torch.cat([lo, hi], 1) for lo, hi in zip(self.lo, self.hi)]     # (2^l, 2d)
        self.csum = torch.cat([torch.zeros(1, d, dtype=torch.float64, device=dev), Xp.to(torch.float64).cumsum(0)])

    def windows(self, Q: torch.Tensor, bandwidth: float, kernel: str,
                batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        sums, counts = flat_window_totals("BoxTree", Q, kernel)
        m = len(Q)
        s, bs = 0, batch_size or 1024
        while s < m:
            e = min(m, s + bs)
            work = self._windows(Q[s:e], bandwidth * bandwidth, sums[s:e], counts[s:e])
            if batch_size is None:        # keep about PAIR_BUDGET leaf points a batch
                per_query = max(1.0, work / (e - s))
                bs = int(min(65536, max(1, PAIR_BUDGET / per_query)))
            s = e
        return sums.to(self.X.dtype), counts.to(self.X.dtype)

    def _windows(self, Q: torch.Tensor, r2: float, sums: torch.Tensor, counts: torch.Tensor) -> int:
        # index_select rather than tensor[index]: several times faster on the CPU
        n, d, dev = self.n, Q.shape[1], Q.device
        q = torch.arange(len(Q), device=dev)
        node = torch.zeros(len(Q), dtype=torch.int64, device=dev)
        for level in range(self.depth + 1):
            c = Q.index_select(0, q)
            box = self.boxes[level].index_select(0, node)
            lo, hi = box[:, :d], box[:, d:]
            dmin2 = ((lo - c).clamp_min_(0) + (c - hi).clamp_min_(0)).pow_(2).sum(1)
            dmax2 = torch.maximum(c - lo, hi - c).pow_(2).sum(1)
            inside = (dmax2 <= r2).nonzero()[:, 0]
            if len(inside):
                qi, ni = q.index_select(0, inside), node.index_select(0, inside)
                start, end = (ni * n) >> level, ((ni + 1) * n) >> level
                sums.index_add_(0, qi, self.csum.index_select(0, end) - self.csum.index_select(0, start))
                counts.index_add_(0, qi, (end - start).to(torch.float64))
            edge = ((dmin2 <= r2) & (dmax2 > r2)).nonzero()[:, 0]
            q, node = q.index_select(0, edge), node.index_select(0, edge)
            if level < self.depth:
                q = q.repeat_interleave(2)
                node = torch.stack([2 * node, 2 * node + 1], 1).view(-1)
        # leaves across the window's edge: test their points one by one
        start, end = (node * n) >> self.depth, ((node + 1) * n) >> self.depth
        cnt = end - start
        total = int(cnt.sum())
        self.n_pairs += total
        if total:
            rows = torch.repeat_interleave(q, cnt)
            pos = torch.repeat_interleave(start - (torch.cumsum(cnt, 0) - cnt), cnt) + torch.arange(total, device=dev)
            pts = self.Xp.index_select(0, pos)
            keep = ((pts - Q.index_select(0, rows)).pow_(2).sum(1) <= r2).nonzero()[:, 0]
            rows = rows.index_select(0, keep)
            sums.index_add_(0, rows, pts.index_select(0, keep).to(torch.float64))
            counts.index_add_(0, rows, torch.ones(len(rows), dtype=torch.float64, device=dev))
        return total


class LSHNeighbors(_PairSearch):
    """Approximate radius search by random-projection LSH, in torch on the data's device.

    Each of `n_tables` tables hashes a point by `n_projections` random projections a.x + b cut into
    buckets of width `width * radius` (a ~ N(0, I), b ~ U[0, width * radius)); a query's candidates are
    the points that share its bucket in at least one table (each counted once), kept when their exact
    distance is within the radius. Two points at distance r share one projection's bucket with
    probability about 1 - 0.8 r / bucket width, so wider buckets and more tables find more of the true
    neighbours at the price of more candidates.

    Args:
        X: the data points (n, d) on the device.
        radius: the search radius.
        n_tables: number of hash tables.
        n_projections: projections per table.
        width: bucket width in units of `radius`.
        seed: seed of the random projections (drawn on the CPU, so equal on every device).
    """

    exact = False

    def __init__(self, X: torch.Tensor, radius: float, n_tables: int = 6, n_projections: int = 2,
                 width: float = 4.0, seed: int = 0):
        super().__init__(X, radius)
        for name, v in (("n_tables", n_tables), ("n_projections", n_projections)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be an integer >= 1; received {name}={v!r}.")
        if not width > 0:
            raise ValueError(f"`width` must be > 0; received width={width!r}.")
        g = torch.Generator().manual_seed(seed)
        d, L, k = X.shape[1], n_tables, n_projections
        self.L, self.k, self.w = L, k, float(width) * self.radius
        self.A = torch.randn(d, L * k, generator=g, dtype=torch.float64).to(X.device, X.dtype)
        self.b = (torch.rand(L * k, generator=g, dtype=torch.float64) * self.w).to(X.device, X.dtype)
        # odd 62-bit multipliers mix k bucket numbers into one int64 key (wrapping; a rare collision
        # only adds candidates, which the distance test removes)
        self.mult = (torch.randint(0, 2**61, (k,), generator=g) * 2 + 1).to(X.device)
        self.keys = self._keys(X)                                   # (n, L)
        self.sorted_keys, self.order = torch.sort(self.keys.T.contiguous(), dim=1)   # (L, n) each

    def _keys(self, P: torch.Tensor) -> torch.Tensor:
        codes = torch.floor((P @ self.A + self.b) / self.w).to(torch.int64).view(len(P), self.L, self.k)
        return (codes * self.mult).sum(-1)

    def pairs(self, Q, need_d2):
        qk = self._keys(Q)
        qkT = qk.T.contiguous()
        dev = self.X.device
        all_rows, all_cols, all_d2 = [], [], []
        for t in range(self.L):
            lo = torch.searchsorted(self.sorted_keys[t], qkT[t])
            hi = torch.searchsorted(self.sorted_keys[t], qkT[t], right=True)
            cnt = hi - lo
            total = int(cnt.sum())
            if total == 0:
                continue
            rows = torch.repeat_interleave(torch.arange(len(Q), device=dev), cnt)
            start = torch.repeat_interleave(lo - (torch.cumsum(cnt, 0) - cnt), cnt)
            cols = self.order[t][start + torch.arange(total, device=dev)]
            if t > 0:    # seen in an earlier table already: skip, so each pair counts once
                seen = (self.keys[cols, :t] == qk[rows, :t]).any(1)
                rows, cols = rows[~seen], cols[~seen]
            d2 = (self.X[cols] - Q[rows]).pow(2).sum(1)
            keep = d2 <= self.radius * self.radius
            all_rows.append(rows[keep]), all_cols.append(cols[keep]), all_d2.append(d2[keep])
        if not all_rows:
            empty = torch.zeros(0, dtype=torch.int64, device=dev)
            return empty, empty, torch.zeros(0, dtype=self.X.dtype, device=dev)
        return torch.cat(all_rows), torch.cat(all_cols), torch.cat(all_d2)

