"""deepfit.cluster.MeanShift vs scikit-learn's MeanShift on the course's blobs (lesson 13 of fast.ai
DL2 2017: 6 centroids uniform in [-35, 35]^d, each cluster drawn from N(centroid, 5 I)).

Run (project venv, from the repository root):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cluster_meanshift.py            # the full set (~20 min busy)
    PYTHONPATH=$PWD .venv/bin/python benchmarks/cluster_meanshift.py --sizes 1500 --dims 2 --threads 1

Cases: n = 1,500 (6 x 250, as in the lesson), 10k, 100k (against scikit-learn) and 1M (deepfit only),
in 2-D (bandwidth 2.5, the lesson's) and 16-D (bandwidth 10). Both libraries get the same points,
bandwidth, flat kernel and seeding:
- `bin` seeding (scikit-learn's `bin_seeding=True`, its setting for large data): full runs.
- `all` seeding (every point is a seed, scikit-learn's default).
A case runs in full while seeds x points <= `--full-pairs` (deepfit, 1.1e8: up to 10k points with
all seeds) or `--sklearn-full-pairs` (scikit-learn, 1.6e7: 1.5k points with all seeds); above, the
library climbs `--subset` seeds drawn at random from the case's seeds (MeanShift(seeds=...), the same
seeds for both), and 10 of them; the time is extrapolated as t(10) + (t(subset) - t(10)) x
(n_seeds - 10) / (subset - 10), i.e. fixed costs (trees, labelling every point) plus the cost per seed,
marked "est.". The 10 are seeds with at least one point within the bandwidth (a fit whose seeds all
have empty windows fails, and in 16-D most grid-cell centres are farther than the bandwidth from every
point); the other subset - 10 are drawn from all the seeds, so empty-window seeds (one step each, then
dropped) are counted in their share. deepfit's subset runs use the window search that
neighbors="auto" picks for the full number of seeds (`auto_neighbors`), not the one for the subset.
With `--sklearn-cap S`, a full scikit-learn run that passes S seconds is stopped and extrapolated. A scikit-learn seed climbs alone (one radius query per step from Python), so its cost
is proportional to the number of seeds; deepfit's batched climb is too, once a batch is full.
Also: the approximate LSH search (ARI against deepfit's exact result on the same seeds, and time),
the lesson's gaussian kernel at 1.5k, and estimate_bandwidth against scikit-learn's.

Times: wall-clock and CPU time of the process (`time.process_time`; with other processes on the
machine the CPU time is the steadier measure), median of `--repeats` runs for n = 1.5k and one run
above; torch threads as given by `--threads` (scikit-learn's MeanShift with n_jobs=None uses one
core either way); 2 threads only where the 1-thread run took <= `--multi-thread-max-cpu` CPU seconds,
since on a shared 2-core machine two OpenMP threads wait for each other and run many times slower.
ARI = adjusted Rand index of the labels.

`--alternate` times only full runs, scikit-learn and deepfit's `--exact` searches in turns, `--repeats`
rounds, so that a change of load hits both alike (one untimed fit of each first):

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cluster_meanshift.py --alternate --sizes 100000 --dims 2 \
        --seedings bin --threads 1 --repeats 7 --exact auto boxtree

"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

BANDWIDTH = {2: 2.5, 16: 10.0}


def lesson_blobs(n: int, d: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """6 clusters as in the lesson: centroids uniform in [-35, 35]^d, points N(centroid, 5 I)."""
    rng = np.random.default_rng(seed)
    centroids = rng.uniform(-35, 35, size=(6, d))
    sizes = [n // 6 + (i < n % 6) for i in range(6)]
    X = np.concatenate([c + np.sqrt(5.0) * rng.standard_normal((s, d)) for c, s in zip(centroids, sizes)])
    y = np.repeat(np.arange(6), sizes)
    return X, y


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float, float]:
    """Run `fn` `repeats` times: its last result, the median wall and median CPU seconds."""
    wall, cpu, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return out, statistics.median(wall), statistics.median(cpu)


def extrapolated(fit: Callable[[np.ndarray], Any], subset: np.ndarray, few: np.ndarray,
                 n_seeds: int) -> tuple[Any, float, float]:
    """Time `fit(seeds)` with `few` and with `subset` seeds and extrapolate to `n_seeds` seeds: the time
    of the small run (the fixed costs: trees, labelling every point) plus the cost per added seed."""
    _, w0, c0 = timed(lambda: fit(few), 1)
    out, w1, c1 = timed(lambda: fit(subset), 1)
    k = (n_seeds - len(few)) / (len(subset) - len(few))
    return out, w0 + max(w1 - w0, 0.0) * k, c0 + max(c1 - c0, 0.0) * k


def window_counts(X: np.ndarray, S: np.ndarray, bw: float) -> np.ndarray:
    """Number of rows of `X` within `bw` of each row of `S` (float64, a batch of rows of S at a time)."""
    batch = max(1, 2**24 // len(X))
    Xt = torch.as_tensor(X, dtype=torch.float64)
    St = torch.as_tensor(S, dtype=torch.float64)
    return np.concatenate([(torch.cdist(St[s:s + batch], Xt) <= bw).sum(1).numpy()
                           for s in range(0, len(St), batch)])


def seed_sample(X: np.ndarray, seeds: np.ndarray, bw: float, size: int, n_few: int = 10,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Seeds for an extrapolated case: `few` = `n_few` random seeds with a non-empty window (the fixed-
    cost run must find a mode), and `subset` = those plus `size - n_few` seeds drawn at random from all
    the seeds (their share of empty windows as in the full run). Also returns the share of the first
    `size` random seeds whose window holds a point."""
    order = np.random.default_rng(seed).permutation(len(seeds))
    sample = order[:size]
    used = window_counts(X, seeds[sample], bw) > 0
    few = sample[used][:n_few]
    pos = size
    while len(few) < n_few and pos < len(order):      # too few occupied windows in the sample: look further
        more = order[pos:pos + size]
        pos += size
        few = np.concatenate([few, more[window_counts(X, seeds[more], bw) > 0]])[:n_few]
    if len(few) == 0:
        raise ValueError(f"No point was within bandwidth={bw:g} of any of the {len(seeds)} seeds.")
    rest = sample[~np.isin(sample, few)][:size - len(few)]
    return seeds[np.sort(np.concatenate([few, rest]))], seeds[np.sort(few)], float(used.mean())


class CapExceeded(Exception):
    pass


def capped(fn: Callable[[], Any], seconds: float | None) -> Any:
    """`fn()`, stopped with CapExceeded after `seconds` of wall time (None: no cap)."""
    if not seconds:
        return fn()

    def stop(signum: int, frame: Any) -> None:
        raise CapExceeded()
    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def ari(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    from sklearn.metrics import adjusted_rand_score
    return None if a is None or b is None else float(adjusted_rand_score(a, b))


def compare_searches(sizes: list[int], d: int, n_queries: int = 2000, device: str = "cpu") -> None:
    """One flat-kernel mean-shift step for `n_queries` positions (points + 0.1) with each window search:
    CPU seconds, pairs or leaf points visited, and the largest difference from the exact counts."""
    from deepfit.cluster import AllPoints, BoxTree, GridRows, LSHNeighbors, TreeNeighbors
    bw = BANDWIDTH[d]
    for n in sizes:
        X, _ = lesson_blobs(n, d)
        Xt = torch.as_tensor(X - X.mean(0), dtype=torch.float32, device=device)
        Q = Xt[:: max(1, n // n_queries)][:n_queries] + 0.1
        ref = None
        for name, build in (("grid", lambda: GridRows(Xt, bw)) if d <= 2 else ("grid", None),
                            ("boxtree", lambda: BoxTree(Xt)), ("tree", lambda: TreeNeighbors(Xt, bw)),
                            ("lsh", lambda: LSHNeighbors(Xt, bw)), ("all", lambda: AllPoints(Xt))):
            if (name == "all" and n * len(Q) > 2e8) or build is None:
                continue
            search, wb, cb = timed(build, 1)
            (sums, counts), w, c = timed(lambda: search.windows(Q, bw, "flat"), 1)
            if ref is None:
                ref = counts
            missed = float(((ref - counts) / ref.clamp_min(1)).mean())
            print(f"n={n} | d={d} | queries={len(Q)} | search={name} | build_cpu={cb:.3g} | step_cpu={c:.3g} | "
                  f"step_wall={w:.3g} | visited={getattr(search, 'n_pairs', n * len(Q))} | "
                  f"mean_neighbours={float(counts.mean()):.0f} | share_missed={missed:.3g}", flush=True)


def alternate(sizes: list[int], dims: list[int], seedings: list[str], repeats: int, device: str,
              exact: list[str]) -> None:
    """scikit-learn and deepfit in turns (scikit-learn, then each of deepfit's `exact` searches, then
    scikit-learn again...), `repeats` full runs each, so that a change in the machine's load hits both
    alike: every run's CPU seconds, the medians, the speed-up of the medians and the smallest and
    largest speed-up of one round (scikit-learn's run over deepfit's run of the same round)."""
    from sklearn.cluster import MeanShift as SkMeanShift

    from deepfit.cluster import MeanShift
    for d in dims:
        bw = BANDWIDTH[d]
        small, _ = lesson_blobs(1500, d)           # one untimed fit each first: lazy set-up costs
        SkMeanShift(bandwidth=bw).fit(small), MeanShift(bandwidth=bw, device=device).fit(small)
        for n in sizes:
            X, y = lesson_blobs(n, d)
            for seeding in seedings:
                binned = seeding == "bin"
                sk_cpu, sk_wall, ours = [], [], {name: ([], []) for name in exact}
                models = {}
                for _ in range(repeats):
                    sk, w, c = timed(lambda: SkMeanShift(bandwidth=bw, bin_seeding=binned).fit(X), 1)
                    sk_cpu.append(c), sk_wall.append(w)
                    for name in exact:
                        models[name], w, c = timed(lambda: MeanShift(bandwidth=bw, bin_seeding=binned, neighbors=name,
                                                                     device=device).fit(X), 1)
                        ours[name][0].append(c), ours[name][1].append(w)
                for name, (cpu, wall) in ours.items():
                    ms = models[name]
                    rounds = [a / b for a, b in zip(sk_cpu, cpu)]
                    print(f"n={n} | d={d} | seeding={seeding} | seeds={ms.n_seeds_} | runs={repeats} | "
                          f"search={ms.neighbors_} | sklearn_cpu={[round(v, 3) for v in sk_cpu]} | "
                          f"deepfit_cpu={[round(v, 3) for v in cpu]} | "
                          f"sklearn_cpu_median={statistics.median(sk_cpu):.4g} | "
                          f"deepfit_cpu_median={statistics.median(cpu):.4g} | "
                          f"speedup_cpu_median={statistics.median(sk_cpu) / statistics.median(cpu):.3g} | "
                          f"speedup_cpu_round_min={min(rounds):.3g} | speedup_cpu_round_max={max(rounds):.3g} | "
                          f"speedup_wall_median={statistics.median(sk_wall) / statistics.median(wall):.3g} | "
                          f"clusters={len(ms.cluster_centers_)}/{len(sk.cluster_centers_)} | "
                          f"ari_sklearn={ari(sk.labels_, ms.labels_):.4g}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1500, 10_000, 100_000, 1_000_000])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs per measurement for n <= 1.5k (median), and with --alternate for every size")
    ap.add_argument("--sklearn-max", type=int, default=100_000, help="largest n run with scikit-learn")
    ap.add_argument("--full-pairs", type=float, default=1.1e8,
                    help="deepfit climbs all seeds when seeds x points <= this (above: --subset seeds, extrapolated)")
    ap.add_argument("--sklearn-full-pairs", type=float, default=1.6e7,
                    help="the same for scikit-learn")
    ap.add_argument("--subset", type=int, default=500, help="seeds climbed when a case is extrapolated")
    ap.add_argument("--sklearn-cap", type=float, default=None,
                    help="stop a full scikit-learn run after this many wall seconds and extrapolate instead")
    ap.add_argument("--seedings", nargs="+", default=["bin", "all"], choices=["bin", "all"])
    ap.add_argument("--exact", nargs="+", default=["auto"], choices=["auto", "all", "grid", "boxtree", "tree"],
                    help="deepfit's exact window searches to time (auto: what MeanShift picks)")
    ap.add_argument("--lsh-max", type=int, default=100_000, help="largest n run with LSH")
    ap.add_argument("--lsh-all-max", type=int, default=1500,
                    help="largest n where LSH climbs all points as seeds (it visits many more candidates)")
    ap.add_argument("--multi-thread-max-cpu", type=float, default=1.0,
                    help="run more than one thread only when the 1-thread run took at most this many CPU s "
                         "(on a busy 2-core machine 2 OpenMP threads are many times slower)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--searches", action="store_true",
                    help="only compare the window searches on one step (2-D; --sizes)")
    ap.add_argument("--alternate", action="store_true",
                    help="only time scikit-learn and deepfit (--exact) in turns, --repeats full runs each")
    args = ap.parse_args()
    if args.alternate:
        torch.set_num_threads(args.threads[0])
        print(f"# load {os.getloadavg()[0]:.1f}; torch {torch.__version__}; {args.threads[0]} thread(s)", flush=True)
        alternate(args.sizes, args.dims, args.seedings, args.repeats, args.device, args.exact)
        return
    if args.searches:
        torch.set_num_threads(args.threads[0])
        for d in args.dims:
            compare_searches(args.sizes, d, device=args.device)
        return

    from sklearn.cluster import MeanShift as SkMeanShift
    from sklearn.cluster import estimate_bandwidth as sk_estimate_bandwidth

    from deepfit.cluster import MeanShift, auto_neighbors, bin_seeds, estimate_bandwidth

    torch.set_num_threads(args.threads[0])

    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}; device {args.device}")
    rows: list[dict] = []

    def emit(**row: Any) -> None:
        rows.append(row)
        fmt = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
        print(" | ".join(f"{k}={v}" for k, v in fmt.items()), flush=True)

    for d in args.dims:
        bw = BANDWIDTH[d]
        for n in args.sizes:
            X, y = lesson_blobs(n, d)
            reps = args.repeats if n <= 1500 else 1
            case = dict(n=n, d=d, bandwidth=bw)
            # -- bandwidth estimate: the same number as scikit-learn's (all points at 1.5k, 1,000 above)
            if n <= args.sklearn_max:
                ns = None if n <= 1500 else 1000
                ours_bw, w1, c1 = timed(lambda: estimate_bandwidth(X, n_samples=ns, device=args.device), 1)
                ref_bw, w2, c2 = timed(lambda: sk_estimate_bandwidth(X, n_samples=ns), 1)
                emit(**case, what="estimate_bandwidth", n_samples=ns, deepfit=ours_bw, sklearn=ref_bw,
                     rel_diff=abs(ours_bw - ref_bw) / ref_bw, cpu_deepfit=c1, cpu_sklearn=c2)
            for seeding in args.seedings:
                seeds = bin_seeds(X, bw) if seeding == "bin" else X
                work = len(seeds) * n            # seed x point pairs of one step
                full_ours = len(seeds) <= args.subset or work <= args.full_pairs
                full_sk = len(seeds) <= args.subset or work <= args.sklearn_full_pairs
                sk_kw = dict(bandwidth=bw, bin_seeding=seeding == "bin")
                case["n_seeds"] = len(seeds)
                case.pop("used_share", None)
                subset = few = None
                if not (full_ours and full_sk) or args.sklearn_cap:
                    try:
                        subset, few, case["used_share"] = seed_sample(X, seeds, bw, min(len(seeds), args.subset))
                    except ValueError as e:
                        emit(**case, seeding=seeding, method="seed sample", error=str(e)[:80])
                        continue
                # -- scikit-learn
                sk_labels, sk_wall, sk_cpu = None, None, None
                if n <= args.sklearn_max:
                    try:
                        if full_sk:
                            try:
                                sk, sk_wall, sk_cpu = capped(lambda: timed(lambda: SkMeanShift(**sk_kw).fit(X), reps),
                                                             args.sklearn_cap)
                            except CapExceeded:
                                emit(**case, seeding=seeding, method="sklearn", threads=1,
                                     skipped=f"stopped after --sklearn-cap {args.sklearn_cap:g} s; extrapolating")
                                full_sk = False
                        if full_sk:
                            sk_labels = sk.labels_
                            emit(**case, seeding=seeding, method="sklearn", threads=1, runs=reps, wall=sk_wall,
                                 cpu=sk_cpu, clusters=len(sk.cluster_centers_), ari_truth=ari(y, sk.labels_))
                        else:
                            sk, sk_wall, sk_cpu = extrapolated(lambda s: SkMeanShift(bandwidth=bw, seeds=s).fit(X),
                                                               subset, few, len(seeds))
                            emit(**case, seeding=seeding, method=f"sklearn est. from {len(subset)} seeds", threads=1,
                                 runs=1, wall=sk_wall, cpu=sk_cpu, clusters=len(sk.cluster_centers_))
                    except ValueError as e:
                        emit(**case, seeding=seeding, method="sklearn", error=str(e)[:80])
                # -- deepfit, exact (auto: grid in 1-2-D, boxtree in 3-4-D on large data) and approximate (lsh)
                exact_labels: dict[int, np.ndarray] = {}
                for neighbors in (*args.exact, "lsh"):
                    if neighbors == "lsh" and (not full_ours or n > args.lsh_max
                                               or (seeding == "all" and n > args.lsh_all_max)):
                        continue          # LSH's candidate lists are long; see RESULTS.md
                    one_thread_cpu = None
                    for threads in args.threads:
                        if threads > 1 and one_thread_cpu is not None and one_thread_cpu > args.multi_thread_max_cpu:
                            emit(**case, seeding=seeding, method=f"deepfit {neighbors}", threads=threads,
                                 skipped=f"1-thread run took {one_thread_cpu:.1f} CPU s > --multi-thread-max-cpu")
                            continue
                        torch.set_num_threads(threads)
                        kw = dict(bandwidth=bw, neighbors=neighbors, device=args.device)
                        try:
                            if full_ours:
                                ms, w, c = timed(lambda: MeanShift(bin_seeding=seeding == "bin", **kw).fit(X), reps)
                                tag = ""
                            else:
                                if neighbors == "auto":    # the search the full run would use
                                    kw["neighbors"] = auto_neighbors(len(seeds), n, d, "flat", args.device)
                                ms, w, c = extrapolated(lambda s: MeanShift(seeds=s, **kw).fit(X), subset, few,
                                                        len(seeds))
                                tag = f" est. from {len(subset)} seeds"
                        except ValueError as e:
                            emit(**case, seeding=seeding, method=f"deepfit {neighbors}", threads=threads,
                                 error=str(e)[:80])
                            continue
                        labels = ms.labels_
                        if threads == 1:
                            one_thread_cpu = c
                        if neighbors != "lsh":
                            exact_labels[threads] = labels
                        row = dict(**case, seeding=seeding, method=f"deepfit {ms.neighbors_}{tag}", threads=threads,
                                   runs=reps if full_ours else 1, wall=w, cpu=c, clusters=len(ms.cluster_centers_),
                                   n_iter=ms.n_iter_, ari_truth=ari(y, labels) if full_ours else None)
                        if full_ours and sk_labels is not None:
                            row["ari_sklearn"] = ari(sk_labels, labels)
                        if neighbors == "lsh":
                            row["ari_exact"] = ari(exact_labels.get(threads), labels)
                        if sk_wall is not None:
                            row["speedup_wall"], row["speedup_cpu"] = sk_wall / w, sk_cpu / c
                        emit(**row)
            # -- the lesson's gaussian kernel (deepfit only: scikit-learn has the flat kernel)
            if n == 1500:
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    ms, w, c = timed(lambda: MeanShift(bandwidth=bw, kernel="gaussian", device=args.device).fit(X),
                                     reps)
                    emit(**case, seeding="all", method=f"deepfit gaussian {ms.neighbors_}", threads=threads,
                         runs=reps, wall=w, cpu=c, clusters=len(ms.cluster_centers_), n_iter=ms.n_iter_,
                         ari_truth=ari(y, ms.labels_))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
