"""Exact flat-kernel windows in one or two dimensions from the points sorted once by grid row and column.

The plane is cut into horizontal rows of height `bandwidth / rows_per_bandwidth`, each row into narrow
columns, and the points are sorted by (row, column): the points of any run of columns in one row are
then one contiguous range of the sorted points. A disk meets about 2 * rows_per_bandwidth rows; in each
row the columns that lie wholly inside the disk form one run, added from prefix sums (count and sum)
without looking at its points, and the columns that cross the disk's edge form a run on either side,
whose points are tested one by one. A step for m windows is a fixed number of tensor operations on
m x (rows per window) ranges, whatever the data, instead of a walk down a tree level by level.
"""
from __future__ import annotations

import math
import numbers

import torch

from .neighbors import PAIR_BUDGET, flat_window_totals

__all__ = ["GridRows", "mean_window_estimate"]

COLUMNS_PER_BANDWIDTH = 256     # narrow columns: a row's edge runs are little wider than the disk's edge
MAX_CELLS = 2**60               # row x column keys stay well inside int64


def mean_window_estimate(P: torch.Tensor, bandwidth: float, origin: torch.Tensor) -> float:
    """About how many points a window of radius `bandwidth` holds, on average over windows centred on
    the points (n, 2): pi x the mean, over the points, of the number of points in their cell of side
    `bandwidth` (a disk of that radius has pi times a cell's area)."""
    cell = ((P - origin) / bandwidth).floor_().to(torch.int64)                 # (n, 2), >= 0
    cols = int(cell[:, 0].max()) + 1
    if cols * (int(cell[:, 1].max()) + 1) < 2**62:
        _, counts = torch.unique(cell[:, 1] * cols + cell[:, 0], return_counts=True)
    else:
        _, counts = torch.unique(cell, dim=0, return_counts=True)
    counts = counts.to(torch.float64)
    return math.pi * float((counts * counts).sum()) / len(P)


class GridRows:
    """Exact flat-kernel windows for data with one or two features: the points sorted by grid cell
    (row, then column), with prefix sums of their coordinates; see the module's docstring.

    Whether a run of columns lies inside a window is decided with a margin of 1e-4 of the radius (plus
    the coordinates' rounding), so that every point not tested one by one is inside (or outside) by far
    more than the rounding of its distance: the counts are those of testing every point's distance
    (p - q)^2 <= r^2 in the data's dtype.

    Args:
        X: the data points (n, 1) or (n, 2).
        bandwidth: the window's radius the grid is laid out for (other radii work, more slowly: a
            radius of k bandwidths meets up to 2 k rows_per_bandwidth rows, but never more than the grid has).
        rows_per_bandwidth: grid rows per bandwidth: more rows test fewer points one by one (the edge
            runs cover about 4 / (pi x rows_per_bandwidth) of a window's area) but handle more ranges.
            None: round(sqrt(W / 23)) between 2 and 128, W = `mean_window_estimate` (the best measured on
            the lesson's 2-D blobs: 4-8 rows at 10k points, 16 at 100k, 32-48 at 1M).
    """

    exact = True

    def __init__(self, X: torch.Tensor, bandwidth: float, rows_per_bandwidth: int | None = None):
        n, d = X.shape
        if d > 2:
            raise ValueError(f"GridRows handles 1 or 2 features; received points with {d}. Use BoxTree or "
                             f"AllPoints in more dimensions.")
        if not bandwidth > 0:
            raise ValueError(f"`bandwidth` must be > 0; received bandwidth={bandwidth!r}.")
        if rows_per_bandwidth is not None and (isinstance(rows_per_bandwidth, bool) or rows_per_bandwidth < 1
                                               or not isinstance(rows_per_bandwidth, numbers.Integral)):
            raise ValueError(f"`rows_per_bandwidth` must be an integer >= 1; received "
                             f"rows_per_bandwidth={rows_per_bandwidth!r}.")
        self.X, self.n, self.d = X, n, d
        self.n_pairs = 0                       # points tested one by one so far (for benchmarks)
        P = self._plane(X)                     # (n, 2) float64; y = 0 in 1-D
        self.origin = P.min(0).values
        span = (P.max(0).values - self.origin).tolist()
        self.scale = max(abs(v) for v in P.abs().max(0).values.tolist())
        if d == 1:                             # one row: the window is a run of columns
            self.rows_per_bandwidth, self.hy = 0, 4.0 * bandwidth
        else:
            if rows_per_bandwidth is None:     # more rows where windows hold more points
                w = mean_window_estimate(P, bandwidth, self.origin)
                rows_per_bandwidth = min(128, max(2, round(math.sqrt(w / 23))))
            self.rows_per_bandwidth = int(rows_per_bandwidth)
            self.hy = max(bandwidth / rows_per_bandwidth, span[1] / 2**30)
        self.n_rows = int(span[1] // self.hy) + 1
        self.hx = max(bandwidth / COLUMNS_PER_BANDWIDTH, span[0] * self.n_rows / MAX_CELLS, span[0] / 2**40)
        self.n_cols = int(span[0] // self.hx) + 1
        cells = self._cells(P)
        self.keys, order = torch.sort(cells)
        self.Xp = X.index_select(0, order)
        self.csum = torch.cat([torch.zeros(1, d, dtype=torch.float64, device=X.device),
                               self.Xp.to(torch.float64).cumsum(0)])

    def _plane(self, P: torch.Tensor) -> torch.Tensor:
        P = P.to(torch.float64)
        return P if self.d == 2 else torch.cat([P, torch.zeros_like(P)], 1)

    def _cells(self, P: torch.Tensor) -> torch.Tensor:
        col = ((P[:, 0] - self.origin[0]) / self.hx).floor_().clamp_(0, self.n_cols - 1).to(torch.int64)
        row = ((P[:, 1] - self.origin[1]) / self.hy).floor_().clamp_(0, self.n_rows - 1).to(torch.int64)
        return row * self.n_cols + col

    def windows(self, Q: torch.Tensor, bandwidth: float, kernel: str,
                batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums (m, d) and counts (m,) of the points within `bandwidth` of each row of `Q` (flat kernel),
        `batch_size` rows at a time (default: about `PAIR_BUDGET` points tested per batch)."""
        sums, counts = flat_window_totals("GridRows", Q, kernel)
        m = len(Q)
        # at most about PAIR_BUDGET / 4 (window, row) ranges a batch: a radius far above the grid's
        # bandwidth meets many rows
        most = max(1, PAIR_BUDGET // 4 // self._rows_met(float(bandwidth) * (1 + 2e-4)))
        s, bs = 0, batch_size or min(4096, most)
        while s < m:
            e = min(m, s + bs)
            work = self._windows(Q[s:e], float(bandwidth), sums[s:e], counts[s:e])
            if batch_size is None:        # keep about PAIR_BUDGET tested points a batch
                bs = int(min(65536, most, max(1, PAIR_BUDGET / max(1.0, work / (e - s)))))
            s = e
        return sums.to(self.X.dtype), counts.to(self.X.dtype)

    def _rows_met(self, r_out: float) -> int:
        """Rows of the grid that a window of radius `r_out` can meet."""
        return 1 if self.d == 1 else min(int(2 * r_out // self.hy) + 2, self.n_rows)

    def _windows(self, Q: torch.Tensor, r: float, sums: torch.Tensor, counts: torch.Tensor) -> int:
        m, d, dev = len(Q), self.d, Q.device
        C = self._plane(Q)
        # margin: runs called inside (outside) are inside (outside) by more than the rounding of a distance
        scale = max(self.scale, float(C.abs().max()) if m else 0.0)
        delta = 1e-4 * r + 1e-12 * scale
        r_in, r_out = max(r - delta, 0.0), r + delta
        hx, hy, x0, y0 = self.hx, self.hy, float(self.origin[0]), float(self.origin[1])
        cy, cx = C[:, 1:2], C[:, 0:1]
        if d == 1:                                         # one row, and no distance across it
            n_per = 1
            row = torch.zeros(m, 1, dtype=torch.float64, device=dev)
            far = near = row
        else:
            # rows a window can meet, from the lowest one that holds points (none below row 0)
            n_per = self._rows_met(r_out)
            first = ((C[:, 1] - r_out - y0) / hy).floor().clamp_min_(0)                   # (m,)
            row = first[:, None] + torch.arange(n_per, dtype=torch.float64, device=dev)   # (m, R)
            lo, hi = y0 + row * hy, y0 + (row + 1) * hy    # each row's band of y
            far = torch.maximum((lo - cy).abs(), (hi - cy).abs())
            near = torch.where((lo <= cy) & (cy <= hi), torch.zeros_like(lo),
                               torch.minimum((lo - cy).abs(), (hi - cy).abs()))
        w_in = (r_in * r_in - far * far).clamp_min(0).sqrt()        # half-chord inside the disk across the band
        w_in = torch.where(far < r_in, w_in, torch.full_like(w_in, -1.0))
        w_out = (r_out * r_out - near * near).clamp_min(0).sqrt()   # half-chord reaching the band at all
        meets = (near <= r_out) & (row >= 0) & (row < self.n_rows)
        # column boundaries: edge run [c0, c1), inside run [c1, c2) (whole columns), edge run [c2, c3)
        c0 = ((cx - w_out - x0) / hx).floor()
        c3 = ((cx + w_out - x0) / hx).floor() + 1
        c1 = ((cx - w_in - x0) / hx).ceil()
        c2 = ((cx + w_in - x0) / hx).floor()
        c1 = torch.minimum(torch.maximum(c1, c0), c3)
        c2 = torch.minimum(torch.maximum(c2, c1), c3)
        cols = torch.stack([c0, c1, c2, c3], -1).clamp_(0, self.n_cols)                  # (m, R, 4)
        cols = torch.where(meets[..., None], cols, torch.zeros_like(cols))                  # empty runs
        key = row.clamp(0, self.n_rows - 1).to(torch.int64)[..., None] * self.n_cols + cols.to(torch.int64)
        pos = torch.searchsorted(self.keys, key)                                            # (m, R, 4)
        # inside runs: counts and sums from the prefix sums
        a, b = pos[..., 1].reshape(-1), pos[..., 2].reshape(-1)
        inside = (self.csum.index_select(0, b) - self.csum.index_select(0, a)).view(m, n_per, d).sum(1)
        sums += inside
        counts += (b - a).view(m, n_per).sum(1).to(torch.float64)
        # edge runs: test their points one by one
        start = torch.stack([pos[..., 0], pos[..., 2]], -1).reshape(-1)
        cnt = torch.stack([pos[..., 1], pos[..., 3]], -1).reshape(-1) - start
        total = int(cnt.sum())
        self.n_pairs += total
        if total:
            owner = torch.arange(m, device=dev).repeat_interleave(2 * n_per)
            rows = owner.repeat_interleave(cnt, output_size=total)
            offs = torch.cumsum(cnt, 0) - cnt
            at = (start - offs).repeat_interleave(cnt, output_size=total) + torch.arange(total, device=dev)
            pts = self.Xp.index_select(0, at)
            keep = ((pts - Q.index_select(0, rows)).pow_(2).sum(1) <= r * r).nonzero()[:, 0]
            rows = rows.index_select(0, keep)
            sums.index_add_(0, rows, pts.index_select(0, keep).to(torch.float64))
            counts.index_add_(0, rows, torch.ones(len(rows), dtype=torch.float64, device=dev))
        return total
