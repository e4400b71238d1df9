"""Collaborative filtering on MovieLens 100k: deepfit vs fastai 2.8.12 vs a hand-written PyTorch loop.

All three train the same problem in one process: users x movie titles -> rating, an 80/20 random split
(`deepfit.data.split_indices(n, 0.2, seed=42)`, the SAME validation rows for all three: fastai gets them
through an IndexSplitter), n_factors=50, y_range=(0, 5.5), fit_one_cycle(5 epochs, lr_max=5e-3, wd=0.1),
at bs=64 and bs=1024.

* deepfit: `CollabDataLoaders.from_df` + `collab_learner` + `fit_one_cycle`.
* fastai: `TabularCollab` exactly as fastai's `CollabDataLoaders.from_df` builds it (but with our split),
  `collab_learner`, `fit_one_cycle`, progress bar and logging off.
* hand: the same model class as deepfit (`deepfit.collab.EmbeddingDotBias`), ids encoded with
  pandas categorical codes, batches by indexing tensors with a per-epoch permutation, `torch.optim.AdamW`
  (betas (0.9, 0.99), eps 1e-5, weight_decay 0.1) and `torch.optim.lr_scheduler.OneCycleLR` set up like
  fastai's one-cycle (25x warm-up over 25% of steps, final lr lr_max/1e5, momentum 0.95 -> 0.85 -> 0.95).

Each method validates after every epoch, as the libraries do. At bs>=512 each method runs `--repeats`
times with seeds 42, 43, ... (weights' init and batch order; the split stays the same) and the medians
of time and MSE are reported: the spread between seeds (about +-0.003 MSE) is larger than the
differences between deepfit and the hand loop, so one seed cannot rank them. bs=64 runs once (seed 42).
Times are the wall time of the training call only (data preparation excluded); CPU time of the
process is shown too because the benchmark machine may be shared. Every method first does a short warm-up fit so that one-time costs (torch's
lazy imports at the first optimizer step) are not charged to whichever runs first.

Run (fastai lives in its own virtualenv):
    PYTHONPATH=/work/main /work/fastai-venv/bin/python benchmarks/collab_ml100k.py [--data DIR]
        [--threads 1] [--repeats 5] [--bs 64 1024] [--skip-fastai]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from deepfit.collab import CollabDataLoaders, EmbeddingDotBias, collab_learner
from deepfit.data import split_indices

N_EPOCHS, LR, WD, N_FACTORS, Y_RANGE, SEED = 5, 5e-3, 0.1, 50, (0.0, 5.5), 42


def load_ratings(root: Path) -> pd.DataFrame:
    ratings = pd.read_csv(root / "u.data", sep="\t", header=None, names=["user", "movie", "rating", "timestamp"])
    movies = pd.read_csv(root / "u.item", sep="|", header=None, encoding="latin-1", usecols=[0, 1],
                         names=["movie", "title"])
    return ratings.merge(movies, on="movie")[["user", "title", "rating"]]


def timed(f: Callable[[], float]) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, valid MSE) of one training run."""
    w0, c0 = time.perf_counter(), time.process_time()
    mse = f()
    return time.perf_counter() - w0, time.process_time() - c0, mse


# ---- deepfit ------------------------------------------------------------------------------------------
def make_deepfit(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, seed: int = SEED) -> Callable[[], float]:
    dls = CollabDataLoaders.from_df(df, user_name="user", item_name="title", rating_name="rating",
                                    valid_idx=valid_idx, bs=bs, seed=seed, device="cpu")
    torch.manual_seed(seed)
    learn = collab_learner(dls, n_factors=N_FACTORS, y_range=Y_RANGE, progress=False)

    def run() -> float:
        learn.fit_one_cycle(N_EPOCHS, LR, wd=WD)
        return float(learn.recorder.log[-1]["valid_loss"])
    return run


# ---- fastai -------------------------------------------------------------------------------------------
def make_fastai(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, seed: int = SEED) -> Callable[[], float]:
    from fastai.collab import collab_learner as fa_collab_learner
    from fastai.data.block import TransformBlock
    from fastai.data.transforms import IndexSplitter
    from fastai.tabular.core import Categorify
    from fastai.collab import TabularCollab
    from fastcore.basics import range_of
    splits = IndexSplitter(list(valid_idx))(range_of(df))
    to = TabularCollab(df, [Categorify], ["user", "title"], y_names=["rating"], y_block=TransformBlock(),
                       splits=splits)
    torch.manual_seed(seed)  # fastai's shuffling draws from the global generators
    np.random.seed(seed)
    dls = to.dataloaders(bs=bs, path=".", device=torch.device("cpu"))
    learn = fa_collab_learner(dls, n_factors=N_FACTORS, y_range=Y_RANGE)

    def run() -> float:
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(N_EPOCHS, LR, wd=WD)
        return float(learn.recorder.values[-1][1])
    return run


# ---- hand-written loop --------------------------------------------------------------------------------
def make_hand(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, seed: int = SEED) -> Callable[[], float]:
    users = pd.Categorical(df["user"])
    titles = pd.Categorical(df["title"])
    x = torch.from_numpy(np.stack([users.codes, titles.codes], 1).astype(np.int64))
    y = torch.from_numpy(df["rating"].to_numpy(np.float32))
    is_valid = np.zeros(len(df), bool)
    is_valid[valid_idx] = True
    tr, va = torch.from_numpy(np.nonzero(~is_valid)[0]), torch.from_numpy(np.nonzero(is_valid)[0])
    xt, yt, xv, yv = x[tr], y[tr], x[va], y[va]
    torch.manual_seed(seed)
    model = EmbeddingDotBias(len(users.categories), len(titles.categories), N_FACTORS, Y_RANGE)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), eps=1e-5, weight_decay=WD)
    steps = (len(xt) + bs - 1) // bs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=N_EPOCHS * steps, pct_start=0.25,
                                                div_factor=25.0, final_div_factor=1e5 / 25.0,
                                                base_momentum=0.85, max_momentum=0.95)
    gen = torch.Generator().manual_seed(seed)

    def run() -> float:
        mse = float("nan")
        for _ in range(N_EPOCHS):
            model.train()
            perm = torch.randperm(len(xt), generator=gen)
            for b in range(steps):
                idx = perm[b * bs:(b + 1) * bs]
                loss = F.mse_loss(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                sched.step()
            model.eval()
            total = torch.zeros((), dtype=torch.float64)
            with torch.no_grad():
                for b in range(0, len(xv), 2 * bs):
                    total += F.mse_loss(model(xv[b:b + 2 * bs]), yv[b:b + 2 * bs], reduction="sum")
            mse = float(total) / len(xv)
        return mse
    return run


METHODS: dict[str, Callable[[pd.DataFrame, np.ndarray, int, int], Callable[[], float]]] = {
    "deepfit": make_deepfit, "fastai": make_fastai, "hand": make_hand}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve()
                                                                     .parents[2] / "shared" / "data")) / "ml-100k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5,
                    help="runs at bs>=512, with seeds 42, 43, ... for init and shuffling (medians reported)")
    ap.add_argument("--bs", type=int, nargs="+", default=[64, 1024])
    ap.add_argument("--skip-fastai", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    methods = [m for m in METHODS if not (args.skip_fastai and m == "fastai")]

    df = load_ratings(args.data)
    _, valid_idx = split_indices(len(df), 0.2, seed=SEED)
    print(f"{len(df)} ratings, {df.user.nunique()} users, {df.title.nunique()} titles; valid rows {len(valid_idx)}; "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, load average {os.getloadavg()}", flush=True)

    # warm-up: a short fit of each method on a small subset pays one-time costs outside the timings
    small = df.iloc[:3000].reset_index(drop=True)
    small_valid = np.arange(2400, 3000)
    for m in methods:
        f = METHODS[m](small, small_valid, 256)
        f()

    rows = []
    for bs in args.bs:
        reps = args.repeats if bs >= 512 else 1
        res: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
        for r in range(reps):
            for m in methods:  # interleaved, so a burst of load on a shared machine hits all methods alike
                run = METHODS[m](df, valid_idx, bs, SEED + r)
                res[m].append(timed(run))
                w, c, mse = res[m][-1]
                print(f"  bs={bs:<5} {m:<8} seed {SEED + r}: wall {w:7.2f}s  cpu {c:7.2f}s  valid MSE {mse:.4f}",
                      flush=True)
        for m in methods:
            walls, cpus, mses = zip(*res[m])
            rows.append({"method": m, "bs": bs, "wall": statistics.median(walls), "cpu": statistics.median(cpus),
                         "mse": statistics.median(mses), "n": reps})
    by = {(r["method"], r["bs"]): r for r in rows}
    print(f"\nload average after: {os.getloadavg()}")
    print("\n| method | bs | wall s (median) | CPU s | valid MSE | fastai wall / this | this wall / hand |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fa = by.get(("fastai", r["bs"]))
        hand = by[("hand", r["bs"])]
        vs_fa = f"{fa['wall'] / r['wall']:.2f}x" if fa else "-"
        print(f"| {r['method']} | {r['bs']} | {r['wall']:.2f} (n={r['n']}) | {r['cpu']:.2f} | {r['mse']:.4f} | "
              f"{vs_fa} | {r['wall'] / hand['wall']:.3f} |")


if __name__ == "__main__":
    main()
