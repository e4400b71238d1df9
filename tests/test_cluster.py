"""deepfit.cluster: mean shift against hand-computed steps (float64), scikit-learn's MeanShift and
estimate_bandwidth, the exact and approximate neighbour searches, input checks and the plot."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.cluster import MeanShift as SkMeanShift
from sklearn.cluster import estimate_bandwidth as sk_estimate_bandwidth
from sklearn.cluster import get_bin_seeds
from sklearn.metrics import adjusted_rand_score

from deepfit.cluster import (AllPoints, BoxTree, ClusterInputError, GridRows, LSHNeighbors, MeanShift, TreeNeighbors,
                             bin_seeds, climb, estimate_bandwidth, mean_shift_step, plot_clusters)
from deepfit.cluster.plot import pca_2d

pytestmark = pytest.mark.usefixtures("one_thread")
F64 = torch.float64


def blobs(n_per: int = 40, k: int = 4, d: int = 2, std: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-20, 20, size=(k, d))
    return np.concatenate([c + std * rng.standard_normal((n_per, d)) for c in centres])


def ref_step(X: np.ndarray, q: np.ndarray, bw: float, kernel: str, cutoff: float = math.inf):
    """One mean-shift step for one position, written out point by point."""
    num, den = np.zeros(X.shape[1]), 0.0
    for x in X:
        d = math.sqrt(sum((a - b) ** 2 for a, b in zip(x, q)))
        if kernel == "flat":
            w = 1.0 if d <= bw else 0.0
        else:
            w = math.exp(-d * d / (2 * bw * bw)) if d <= cutoff else 0.0
        num += w * x
        den += w
    return num / den, den


# ---- one step, by hand ----------------------------------------------------------------------------
def test_single_step_by_hand_flat():
    X = torch.tensor([[0., 0.], [1., 0.], [0., 1.], [5., 5.], [6., 5.]], dtype=F64)
    Q = torch.tensor([[0.2, 0.2], [5.4, 5.0], [20., 20.]], dtype=F64)
    for search in (AllPoints(X), TreeNeighbors(X, 1.5), BoxTree(X, leaf_size=1), BoxTree(X), GridRows(X, 1.5),
                   GridRows(X, 1.5, rows_per_bandwidth=1), LSHNeighbors(X, 1.5, n_tables=8, width=20.0)):
        new, w = mean_shift_step(Q, search, 1.5, "flat")
        # (0,0), (1,0), (0,1) are within 1.5 of (0.2, 0.2); (5,5), (6,5) of (5.4, 5); nothing of (20, 20)
        torch.testing.assert_close(new, torch.tensor([[1 / 3, 1 / 3], [5.5, 5.0], [20., 20.]], dtype=F64))
        torch.testing.assert_close(w, torch.tensor([3., 2., 0.], dtype=F64))


@pytest.mark.parametrize("kernel", ["flat", "gaussian"])
def test_all_points_tiles_add_up_to_the_direct_float64_windows(kernel):
    # more than one 4,096-point tile and several query tiles (batch_size=7), float32 against a float64
    # computation of every distance
    g = torch.Generator().manual_seed(3)
    X = torch.randn(9000, 5, generator=g, dtype=F64) * 2
    Q = X[::400] + 0.1
    d2 = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    w = (d2 <= 2.5 ** 2).to(F64) if kernel == "flat" else torch.exp(-d2 / (2 * 2.5 ** 2))
    sums, totals = AllPoints(X.float()).windows(Q.float(), 2.5, kernel, batch_size=7)
    if kernel == "flat":
        near = ((d2 - 2.5 ** 2).abs() < 1e-4).sum()  # pairs within float32 rounding of the edge
        assert int(near) == 0 and torch.equal(totals.double(), w.sum(1))
    torch.testing.assert_close(totals.double(), w.sum(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sums.double(), w @ X, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind", ["all", "tree"])
def test_single_step_by_hand_gaussian(kind):
    X = blobs(15, k=3, std=2.0)
    Q = X[::7] + 0.3
    bw = 2.5
    Xt, Qt = torch.tensor(X), torch.tensor(Q)
    search = AllPoints(Xt) if kind == "all" else TreeNeighbors(Xt, 3 * bw)
    new, w = mean_shift_step(Qt, search, bw, "gaussian")
    cutoff = math.inf if kind == "all" else 3 * bw
    for i, q in enumerate(Q):
        ref, den = ref_step(X, q, bw, "gaussian", cutoff)
        np.testing.assert_allclose(new[i].numpy(), ref, rtol=1e-12, atol=1e-12)
        assert w[i].item() == pytest.approx(den, rel=1e-12)


def test_climb_steps_match_loop():
    """Three steps of every seed (max_iter=3, tol=0) equal three hand steps; counts are the last window's."""
    X = blobs(20, k=3, std=1.5, seed=1)
    pos, w, steps = climb(torch.tensor(X), AllPoints(torch.tensor(X)), 2.0, "flat", max_iter=3, tol=0.0)
    for i in range(0, len(X), 5):
        q = X[i]
        for _ in range(3):
            prev = q
            q, den = ref_step(X, prev, 2.0, "flat")
        np.testing.assert_allclose(pos[i].numpy(), q, atol=1e-12)
        assert w[i].item() == den
    assert steps.max().item() <= 3


# ---- against scikit-learn -------------------------------------------------------------------------
@pytest.mark.parametrize("bin_seeding", [False, True])
@pytest.mark.parametrize("neighbors", ["all", "tree", "boxtree", "grid"])
def test_matches_sklearn_meanshift(neighbors, bin_seeding):
    X = blobs(35, k=4, std=1.2, seed=2)
    ours = MeanShift(bandwidth=2.5, neighbors=neighbors, bin_seeding=bin_seeding, dtype=F64, device="cpu").fit(X)
    ref = SkMeanShift(bandwidth=2.5, bin_seeding=bin_seeding).fit(X)
    assert adjusted_rand_score(ref.labels_, ours.labels_) == 1.0
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-9)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)       # same order of centres, too
    assert ours.n_iter_ == ref.n_iter_ + 1                          # sklearn counts steps after the first


def test_matches_sklearn_float32_and_cluster_all_false():
    X = np.concatenate([blobs(35, k=3, std=1.0, seed=3), [[60.0, 60.0]]])
    ours = MeanShift(bandwidth=2.0, cluster_all=False, bin_seeding=True, device="cpu").fit(X)   # float32
    ref = SkMeanShift(bandwidth=2.0, cluster_all=False, bin_seeding=True).fit(X)
    assert adjusted_rand_score(ref.labels_, ours.labels_) == 1.0
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-4)
    assert (ours.labels_ == -1).sum() == (ref.labels_ == -1).sum()


@pytest.mark.parametrize("quantile,n_samples", [(0.3, None), (0.5, None), (0.1, 60), (0.0, None), (1.0, 40)])
def test_estimate_bandwidth_matches_sklearn(quantile, n_samples):
    X = blobs(30, k=3, d=3, std=2.0, seed=4)
    ours = estimate_bandwidth(X, quantile=quantile, n_samples=n_samples, random_state=7, device="cpu")
    ref = sk_estimate_bandwidth(X, quantile=quantile, n_samples=n_samples, random_state=7)
    assert ours == pytest.approx(ref, rel=1e-10)


def test_default_bandwidth_is_estimated():
    X = blobs(30, k=3, seed=5)
    ms = MeanShift(device="cpu", dtype=F64).fit(X)
    assert ms.bandwidth_ == pytest.approx(sk_estimate_bandwidth(X), rel=1e-10)


@pytest.mark.parametrize("n,d,scale", [(5000, 2, 20.0), (3000, 16, 3.0), (500, 3, 1e7)])
def test_unique_grid_cells_equal_numpys_unique_rows(n, d, scale):
    from deepfit.cluster.bandwidth import _unique_rows
    cells = np.round(np.random.default_rng(n).normal(size=(n, d)) * scale)
    ref, ref_counts = np.unique(cells, axis=0, return_counts=True)  # 16-D at scale 3 and 1e7: the fallback
    got, counts = _unique_rows(cells)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(counts, ref_counts)


def test_bin_seeds_match_sklearn():
    X = blobs(50, k=3, std=2.0, seed=6)
    ours = bin_seeds(X, 1.7, min_bin_freq=2)
    ref = get_bin_seeds(X, 1.7, min_bin_freq=2)
    assert sorted(map(tuple, np.round(ours, 5))) == sorted(map(tuple, np.round(ref.astype(np.float64), 5)))


# ---- neighbour searches ---------------------------------------------------------------------------
def exact_pairs(X, Q, r):
    d = np.sqrt(((Q[:, None, :] - X[None]) ** 2).sum(-1))
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(d <= r))}


@pytest.mark.parametrize("d", [2, 16])
def test_tree_pairs_exact_and_lsh_pairs_subset(d):
    X = blobs(60, k=3, d=d, std=1.0, seed=7)
    Q = X[::9] + 0.1
    r = 1.0 if d == 2 else 4.0
    ref = exact_pairs(X, Q, r)
    Xt, Qt = torch.tensor(X), torch.tensor(Q)
    rows, cols, _ = TreeNeighbors(Xt, r).pairs(Qt, need_d2=False)
    assert set(zip(rows.tolist(), cols.tolist())) == ref
    rows, cols, d2 = LSHNeighbors(Xt, r, n_tables=6, n_projections=2, width=4.0).pairs(Qt, need_d2=True)
    found = list(zip(rows.tolist(), cols.tolist()))
    assert len(found) == len(set(found))                  # each pair once, whatever the tables
    assert set(found) <= ref                              # never a false neighbour
    assert len(set(found)) >= 0.8 * len(ref)              # most true ones (recall)
    np.testing.assert_allclose(d2.numpy(), ((X[cols.numpy()] - Q[rows.numpy()]) ** 2).sum(1), rtol=1e-10)
    # very wide buckets: every true pair is found
    rows, cols, _ = LSHNeighbors(Xt, r, n_tables=2, width=1e4).pairs(Qt, need_d2=True)
    assert set(zip(rows.tolist(), cols.tolist())) == ref


@pytest.mark.parametrize("d,leaf_size", [(2, 4), (2, 12), (16, 5), (3, 1000)])
def test_boxtree_windows_equal_brute_force(d, leaf_size):
    """Flat windows from whole boxes + edge leaves equal the sum over every point (float64), also with
    repeated points and windows that hold everything, nothing, or one box exactly."""
    X = np.concatenate([blobs(70, k=3, d=d, std=1.5, seed=15), np.repeat(blobs(1, k=1, d=d, seed=16), 9, 0)])
    Xt = torch.tensor(X)
    Q = torch.cat([Xt[::11] + 0.05, Xt.mean(0, keepdim=True), torch.full((1, d), 1e3, dtype=F64)])
    tree = BoxTree(Xt, leaf_size=leaf_size)
    for r in (0.5, 2.0, 8.0, 1e4):
        sums, counts = tree.windows(Q, r, "flat")
        ref_sums, ref_counts = AllPoints(Xt).windows(Q, r, "flat")
        torch.testing.assert_close(counts, ref_counts, rtol=0, atol=0)
        torch.testing.assert_close(sums, ref_sums, rtol=1e-12, atol=1e-9)
    # the tree holds every point once, in boxes that contain their points
    assert sorted(map(tuple, tree.Xp.tolist())) == sorted(map(tuple, X.tolist()))
    leaf = tree.boxes[-1]
    bounds = (torch.arange(2**tree.depth + 1) * len(X)) >> tree.depth     # leaf j: [bounds[j], bounds[j+1])
    node_of = torch.searchsorted(bounds, torch.arange(len(X)), right=True) - 1
    assert ((tree.Xp >= leaf[node_of, :d]) & (tree.Xp <= leaf[node_of, d:])).all()
    with pytest.raises(ValueError, match="flat"):
        tree.windows(Q, 1.0, "gaussian")


def _lattice_case(d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer points (exact squared distances in float64, so points exactly on a window's edge are
    counted the same by every formula), many repeated, plus a few far ones; queries on and off the
    lattice, and one far from everything."""
    g = torch.Generator().manual_seed(18)
    X = torch.randint(-12, 13, (900, d), generator=g).to(F64)
    X = torch.cat([X, X[:100], torch.full((3, d), 40.0, dtype=F64)])
    Q = torch.cat([X[::9], X[::13] + 0.5, torch.full((1, d), -500.0, dtype=F64)])
    return X, Q


@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("grid_bw,rows", [(5.0, 16), (1.0, 3), (30.0, 16), (5.0, 1)])
def test_grid_rows_windows_equal_brute_force(d, grid_bw, rows):
    """Counts equal to the point-by-point test (float64), also for points exactly at the window's edge
    (a lattice with radius 5: (3, 4) from a query is inside), repeated points, radii other than the
    grid's bandwidth (more rows than the grid was laid out for, or less than one row) and an empty window."""
    X, Q = _lattice_case(d)
    grid = GridRows(X, grid_bw, rows_per_bandwidth=rows)
    for r in (5.0, 2.0, 0.5, 13.0, 1e4):
        sums, counts = grid.windows(Q, r, "flat")
        d2 = ((Q[:, None, :] - X[None]) ** 2).sum(-1)           # exact: small integers and halves
        inside = (d2 <= r * r).to(F64)
        torch.testing.assert_close(counts, inside.sum(1), rtol=0, atol=0)
        torch.testing.assert_close(sums, inside @ X, rtol=1e-12, atol=1e-9)
    assert counts[-1] == len(X) and (grid.windows(Q[-1:], 5.0, "flat")[1] == 0).all()
    # the whole-run shortcut is used (not every point tested one by one) when the grid fits the radius
    if rows >= 16 and grid_bw == 5.0:
        before = grid.n_pairs
        _, counts = grid.windows(Q, 5.0, "flat")
        assert grid.n_pairs - before < 0.5 * counts.sum()


def test_grid_rows_float32_degenerate_and_errors():
    """float32 data far from the origin, data on a line (one row, or one column), one point: counts
    equal to testing every point with the same float32 formula, sums to float32 rounding."""
    rng = np.random.default_rng(19)
    cases = [1e4 + rng.normal(size=(3000, 2)) * 3,                          # far from 0: rounding matters
             np.stack([rng.normal(size=2000) * 5, np.full(2000, 2.0)], 1),  # every point in one row
             np.stack([np.full(2000, -1.0), rng.normal(size=2000) * 5], 1),  # every point in one column
             np.array([[0.5, 0.25]])]
    for X in cases:
        Xt = torch.tensor(X, dtype=torch.float32)
        Q = torch.cat([Xt[::17] + 0.3, Xt[:1]])
        for r in (1.0, 2.5, 0.7):
            sums, counts = GridRows(Xt, 2.5).windows(Q, r, "flat")
            assert sums.dtype == counts.dtype == torch.float32
            inside = torch.stack([((Xt - q) ** 2).sum(1) <= r * r for q in Q])       # (m, n), in float32
            torch.testing.assert_close(counts, inside.sum(1).float(), rtol=0, atol=0)
            assert (counts > 0).all()
            torch.testing.assert_close(sums.to(F64), inside.to(F64) @ Xt.to(F64), rtol=1e-5,
                                       atol=1e-5 * float(counts.max()) * float(Xt.abs().max()))
    with pytest.raises(ValueError, match="1 or 2 features"):
        GridRows(torch.zeros(4, 3), 1.0)
    with pytest.raises(ValueError, match="rows_per_bandwidth"):
        GridRows(torch.zeros(4, 2), 1.0, rows_per_bandwidth=0)
    with pytest.raises(ValueError, match="flat"):
        GridRows(torch.zeros(4, 2), 1.0).windows(torch.zeros(1, 2), 1.0, "gaussian")


def test_grid_rows_per_bandwidth_from_the_window_size():
    """None: round(sqrt(W / 23)) rows per bandwidth, W = pi x the points' mean cell count (cells of side
    bandwidth): 5 cells of 200 points give W = 200 pi and 5 rows; denser data more rows, capped at 128."""
    from deepfit.cluster.grid import mean_window_estimate
    rng = np.random.default_rng(21)
    blocks = []
    for i in range(5):                                  # block i inside the cell [3i, 3i + 1) x [0, 1)
        b = np.array([3.0 * i, 0.0]) + rng.uniform(0.1, 0.9, size=(200, 2))
        b[0] = [3.0 * i + 0.1, 0.1]                     # the grid's origin is (0.1, 0.1)
        blocks.append(b)
    X = torch.tensor(np.concatenate(blocks))
    assert mean_window_estimate(X, 1.0, X.min(0).values) == pytest.approx(200 * math.pi, rel=1e-12)
    assert GridRows(X, 1.0).rows_per_bandwidth == 5
    assert GridRows(torch.cat([X] * 20), 1.0).rows_per_bandwidth == 23        # sqrt(4,000 pi / 23) ~ 23.4
    assert GridRows(torch.zeros(150_000, 2, dtype=F64), 1.0).rows_per_bandwidth == 128     # sqrt(150k pi / 23) ~ 143
    assert GridRows(X, 1.0, rows_per_bandwidth=7).rows_per_bandwidth == 7


def test_grid_meanshift_one_feature_matches_sklearn():
    rng = np.random.default_rng(20)
    X = np.concatenate([rng.normal(0, 1, 300), rng.normal(8, 1.5, 300), rng.normal(20, 0.5, 100)])[:, None]
    ours = MeanShift(bandwidth=1.5, neighbors="grid", bin_seeding=True, dtype=F64, device="cpu").fit(X)
    ref = SkMeanShift(bandwidth=1.5, bin_seeding=True).fit(X)
    np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, atol=1e-9)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)


@pytest.mark.parametrize("d,kernel,expected", [(2, "flat", "grid"), (3, "flat", "boxtree"), (2, "gaussian", "tree"),
                                               (16, "flat", "tree")])
def test_auto_neighbors_beyond_dense_limit(monkeypatch, d, kernel, expected):
    from deepfit.cluster import meanshift
    X = blobs(20, k=2, d=d, std=1.0, seed=17)
    assert MeanShift(bandwidth=3.0, kernel=kernel, device="cpu").fit(X).neighbors_ == "all"     # small: dense
    monkeypatch.setattr(meanshift, "AUTO_DENSE_LIMIT", {"cpu": 0, "cpu_many_features": 0, "other": 0})
    assert MeanShift(bandwidth=3.0, kernel=kernel, device="cpu").fit(X).neighbors_ == expected


def test_auto_neighbors_thresholds():
    """auto_neighbors (used by fit, and by the benchmark to time a seed subset with the full run's
    search) switches exactly at the documented pair counts."""
    from deepfit.cluster import auto_neighbors
    assert auto_neighbors(25_000, 1000, 2) == "all"                        # 25M pairs, 2 features
    assert auto_neighbors(25_001, 1000, 2) == "grid"
    assert auto_neighbors(25_001, 1000, 1) == "grid"
    assert auto_neighbors(1, 4096, 2) == "all"                             # grid from 4,097 points on the CPU
    assert auto_neighbors(488, 4096, 2) == "all"                           # 1,998,848 pairs
    assert auto_neighbors(489, 4096, 2) == "grid"                          # 2,002,944 pairs, > 1,024 points
    assert auto_neighbors(24_000, 1024, 2) == "all"                        # too few points for the grid first
    assert auto_neighbors(1951, 1025, 2) == "all" and auto_neighbors(1952, 1025, 2) == "grid"
    assert auto_neighbors(1, 4097, 2) == auto_neighbors(1, 4097, 1) == "grid"
    assert auto_neighbors(1, 4097, 2, kernel="gaussian") == "all"
    assert auto_neighbors(1, 4097, 3) == "all"
    assert auto_neighbors(25_001, 1000, 2, kernel="gaussian") == "tree"
    assert auto_neighbors(25_001, 1000, 3) == auto_neighbors(25_001, 1000, 4) == "boxtree"
    assert auto_neighbors(25_001, 1000, 5) == "all"                        # 1e13 pairs with > 4 features
    assert auto_neighbors(1_000_000, 1_000_000, 16) == "all"               # 1M x 1M: dense was 2.2x the tree
    assert auto_neighbors(10_000_000, 1_000_000, 16) == "all"
    assert auto_neighbors(10_000_001, 1_000_000, 16) == "tree"
    assert auto_neighbors(200_001, 1000, 2, device="cuda") == "all"        # 4G pairs off the CPU
    assert auto_neighbors(200_001, 5000, 2, device="cuda") == "all"        # no grid-first rule off the CPU
    assert auto_neighbors(4_000_001, 1000, 2, device="cuda") == "grid"
    assert auto_neighbors(4_000_001, 1000, 3, device="cuda") == "boxtree"
    X = blobs(20, k=2, d=16, std=1.0, seed=17)
    ms = MeanShift(bandwidth=3.0, device="cpu").fit(X)
    assert ms.neighbors_ == auto_neighbors(len(X), len(X), 16) == "all"


def test_lsh_meanshift_close_to_exact():
    X = blobs(60, k=4, std=1.0, seed=8)
    exact = MeanShift(bandwidth=2.0, neighbors="tree", device="cpu").fit(X)
    approx = MeanShift(bandwidth=2.0, neighbors="lsh", device="cpu").fit(X)
    assert approx.neighbors_ == "lsh" and exact.neighbors_ == "tree"
    assert adjusted_rand_score(exact.labels_, approx.labels_) >= 0.99
    assert len(approx.cluster_centers_) == len(exact.cluster_centers_)


def test_gaussian_kernel_finds_blobs():
    X = blobs(40, k=4, std=1.0, seed=9)
    truth = np.repeat(np.arange(4), 40)
    labels = {}
    for neighbors in ("all", "tree"):
        ms = MeanShift(bandwidth=1.5, kernel="gaussian", neighbors=neighbors, device="cpu").fit(X)
        assert adjusted_rand_score(truth, ms.labels_) >= 0.95
        labels[neighbors] = ms.labels_
    assert adjusted_rand_score(labels["all"], labels["tree"]) == 1.0    # the 3-bandwidth cut changes nothing here


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("neighbors", ["all", "tree", "lsh", "grid"])
def test_cuda_matches_cpu(neighbors):
    X = blobs(50, k=4, std=1.0, seed=10)
    cpu = MeanShift(bandwidth=2.0, neighbors=neighbors, device="cpu", dtype=F64).fit(X)
    gpu = MeanShift(bandwidth=2.0, neighbors=neighbors, device="cuda", dtype=F64).fit(X)
    np.testing.assert_array_equal(cpu.labels_, gpu.labels_)
    np.testing.assert_allclose(cpu.cluster_centers_, gpu.cluster_centers_, atol=1e-9)


# ---- estimator conventions ------------------------------------------------------------------------
def test_estimator_conventions():
    X = blobs(30, k=3, seed=11)
    ms = MeanShift(bandwidth=2.0, device="cpu")
    assert ms.fit(X) is ms
    assert ms.labels_.shape == (len(X),) and ms.cluster_centers_.shape == (3, 2)
    assert ms.n_features_in_ == 2 and ms.bandwidth_ == 2.0 and ms.n_seeds_ == len(X)
    np.testing.assert_array_equal(ms.predict(X), ms.labels_)
    np.testing.assert_array_equal(MeanShift(bandwidth=2.0, device="cpu").fit_predict(X), ms.labels_)
    twin = clone(ms)
    assert twin.get_params() == ms.get_params() and not hasattr(twin, "labels_")
    # tensors and DataFrames are accepted; the input is not modified
    import pandas as pd
    before = X.copy()
    np.testing.assert_array_equal(MeanShift(bandwidth=2.0, device="cpu").fit(torch.tensor(X)).labels_, ms.labels_)
    np.testing.assert_array_equal(MeanShift(bandwidth=2.0, device="cpu").fit(pd.DataFrame(X)).labels_, ms.labels_)
    np.testing.assert_array_equal(X, before)


def test_one_point_and_identical_points():
    ms = MeanShift(bandwidth=1.0, device="cpu").fit([[3.0, 4.0]])
    np.testing.assert_allclose(ms.cluster_centers_, [[3.0, 4.0]])
    assert ms.labels_.tolist() == [0]
    with pytest.raises(ClusterInputError, match="single point.*bandwidth="):
        MeanShift(device="cpu").fit([[3.0, 4.0]])
    with pytest.raises(ClusterInputError, match="estimated bandwidth is 0"):
        MeanShift(device="cpu").fit(np.ones((10, 2)))


@pytest.mark.parametrize("X,match", [
    (np.array([[0., 1.], [np.nan, 2.], [3., 4.], [5., np.inf]]), r"NaN or infinite values in 2 row\(s\).*1, 3"),
    (np.zeros((0, 2)), "empty"),
    (np.zeros((5, 0)), "no columns"),
    (np.arange(5.0), r"1-D.*reshape\(-1, 1\)"),
    (np.zeros((2, 3, 4)), "3-D"),
    (np.array([["a", "b"]]), "numbers"),
])
def test_bad_input_messages(X, match):
    with pytest.raises(ClusterInputError, match=match):
        MeanShift(bandwidth=1.0, device="cpu").fit(X)


@pytest.mark.parametrize("kw,match", [
    (dict(bandwidth=0), "bandwidth"), (dict(bandwidth=-1.0), "bandwidth"), (dict(bandwidth=float("nan")), "bandwidth"),
    (dict(kernel="epanechnikov"), "kernel"), (dict(neighbors="faiss"), "neighbors"), (dict(max_iter=0), "max_iter"),
    (dict(batch_size=0), "batch_size"), (dict(kernel="gaussian", neighbors="boxtree"), "flat"),
    (dict(kernel="gaussian", neighbors="grid"), "flat"),
    (dict(tol=-1.0), "tol"), (dict(dtype=torch.float16), "dtype"),
])
def test_bad_parameters(kw, match):
    kw.setdefault("bandwidth", 1.0)
    with pytest.raises(ValueError, match=match):
        MeanShift(device="cpu", **kw).fit(blobs(5, k=2))


def test_predict_checks():
    X = blobs(20, k=2, seed=12)
    with pytest.raises(RuntimeError, match="not fitted"):
        MeanShift(bandwidth=1.0).predict(X)
    ms = MeanShift(bandwidth=2.0, device="cpu").fit(X)
    with pytest.raises(ClusterInputError, match="3 columns but the model was fitted on 2"):
        ms.predict(np.zeros((4, 3)))
    with pytest.raises(ClusterInputError, match="seeds"):
        MeanShift(bandwidth=2.0, seeds=np.zeros((3, 5)), device="cpu").fit(X)


# ---- plot -----------------------------------------------------------------------------------------
def test_plot_clusters(tmp_path):
    backend = matplotlib.get_backend()
    X2 = blobs(30, k=3, seed=13)
    ms = MeanShift(bandwidth=2.0, device="cpu").fit(X2)
    fig = plot_clusters(X2, ms.labels_, ms.cluster_centers_, fname=tmp_path / "c2.png")
    assert (tmp_path / "c2.png").stat().st_size > 1000
    assert fig.axes[0].get_xlabel() == "x0"
    X16 = blobs(30, k=3, d=16, seed=14)
    ms16 = MeanShift(bandwidth=6.0, device="cpu").fit(X16)
    fig = plot_clusters(X16, ms16.labels_, ms16.cluster_centers_, fname=tmp_path / "c16.png")
    assert fig.axes[0].get_xlabel().startswith("PC1") and (tmp_path / "c16.png").exists()
    # the centres are projected like the points, on the principal axes (scikit-learn's PCA, up to sign)
    from sklearn.decomposition import PCA
    mean, axes, share = pca_2d(X16)
    ref = PCA(2).fit(X16)
    np.testing.assert_allclose(np.abs(axes.T), np.abs(ref.components_), atol=1e-8)
    np.testing.assert_allclose(share, ref.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(fig.axes[0].collections[1].get_offsets(), (ms16.cluster_centers_ - mean) @ axes)
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets(), (X16 - mean) @ axes)
    assert matplotlib.get_backend() == backend
    with pytest.raises(ClusterInputError, match="labels"):
        plot_clusters(X2, ms.labels_[:-1])
