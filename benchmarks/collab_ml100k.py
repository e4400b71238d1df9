"""Collaborative filtering on MovieLens 100k: deepfit vs fastai 2.8.12 (two training loaders) vs a hand loop.

All methods train the same problem in one process: users x movie titles -> rating, an 80/20 random split
(`deepfit.data.split_indices(n, 0.2, seed=42)`, the SAME validation rows for all: fastai gets them through
an IndexSplitter), n_factors=50, y_range=(0, 5.5), fit_one_cycle(5 epochs, lr_max=5e-3, wd=0.1), at
bs=64 and bs=1024.

* deepfit: `CollabDataLoaders.from_df` + `collab_learner` + `fit_one_cycle`.
* fastai: `TabularCollab` exactly as fastai's `CollabDataLoaders.from_df` builds it (but with our split),
  `collab_learner`, `fit_one_cycle`, progress bar and logging off. Two training loaders (`--fastai-loader`):
  - `default` (reported as "fastai"): what `TabularCollab.dataloaders` uses as it comes, `TabWeightedDL`
    (fastai/tabular/core.py). With no weights it draws each epoch's rows with `np.random.choice(n, n,
    p=uniform)`, i.e. WITH replacement: an epoch sees about 1 - 1/e = 63% of the distinct training
    rows, some of them two or more times. The script measures that fraction and prints it.
  - `shuffle` (reported as "fastai-shuffle"): the same with `dl_type=TabDataLoader`, fastai's plain
    tabular loader, which shuffles a permutation of the rows (without replacement), as deepfit and the
    hand loop do.
* hand: the same model class as deepfit (`deepfit.collab.EmbeddingDotBias`), ids encoded with
  pandas categorical codes, batches by indexing tensors with a per-epoch permutation, `torch.optim.AdamW`
  (betas (0.9, 0.99), eps 1e-5, weight_decay 0.1) and `torch.optim.lr_scheduler.OneCycleLR` set up like
  fastai's one-cycle (25x warm-up over 25% of steps, final lr lr_max/1e5, momentum 0.95 -> 0.85 -> 0.95).

Like for like: every method validates after every epoch with the same validation batch size (`--val-bs`,
default: the training batch size, fastai's default), and takes the same number of training steps per
epoch (fastai drops the last incomplete training batch by default while deepfit and the hand loop keep
it; at bs=1024, 80,000 rows would give fastai 78 steps and the others 79, so fastai is given
`drop_last=False`); the script checks both on the loaders each method really uses and stops if they
differ. Every method first does a short warm-up fit so that one-time costs (torch's lazy imports at the
first optimizer step) are not charged to whichever runs first, and garbage is collected before each
timed run. Each (method, bs) case runs
`--repeats` times (default 3) with seeds 42, 43, ... (weights' init and batch order; the split stays the
same), interleaved (deepfit, fastai, fastai-shuffle, hand, deepfit, ...) so that a burst of load on a
shared machine hits all methods alike; the medians of wall time, process CPU time and MSE are reported,
with every seed's MSE. Times cover the training call only (data preparation excluded).

Run (fastai lives in its own virtualenv, see README.md):
    PYTHONPATH=$PWD benchmarks/.fastai-venv/bin/python benchmarks/collab_ml100k.py [--data DIR]
        [--threads 1] [--repeats 3] [--bs 64 1024] [--val-bs N] [--fastai-loader default shuffle]
        [--skip-fastai]
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from dataclasses import dataclass
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


@dataclass
class Case:
    """One method set up to train: `run()` trains and returns the validation MSE; `train_batches` (per
    epoch) and `val_bs` are read from the loaders the method really uses, so that main can check that
    every method does the same work."""
    run: Callable[[], float]
    train_batches: int
    val_bs: int


def timed(f: Callable[[], float]) -> tuple[float, float, float]:
    """(wall seconds, process CPU seconds, valid MSE) of one training run. Garbage from the previous
    method (a fastai Learner holds reference cycles) is collected first, so it is not charged to this one."""
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    mse = f()
    return time.perf_counter() - w0, time.process_time() - c0, mse


# ---- deepfit ------------------------------------------------------------------------------------------
def make_deepfit(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, val_bs: int, seed: int) -> Case:
    dls = CollabDataLoaders.from_df(df, user_name="user", item_name="title", rating_name="rating",
                                    valid_idx=valid_idx, bs=bs, valid_bs=val_bs, seed=seed, device="cpu")
    torch.manual_seed(seed)
    learn = collab_learner(dls, n_factors=N_FACTORS, y_range=Y_RANGE, progress=False)

    def run() -> float:
        learn.fit_one_cycle(N_EPOCHS, LR, wd=WD)
        return float(learn.recorder.log[-1]["valid_loss"])
    return Case(run, len(dls.train), dls.valid.bs)


# ---- fastai -------------------------------------------------------------------------------------------
def fastai_dls(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, val_bs: int, loader: str):
    """fastai DataLoaders as `fastai.collab.CollabDataLoaders.from_df` builds them, with our split and
    batch sizes; `loader` 'default' keeps fastai's training loader (TabWeightedDL: rows drawn with
    replacement), 'shuffle' uses its plain TabDataLoader (a shuffled permutation)."""
    from fastai.collab import TabularCollab
    from fastai.data.block import TransformBlock
    from fastai.data.transforms import IndexSplitter
    from fastai.tabular.core import Categorify, TabDataLoader
    from fastcore.basics import range_of
    splits = IndexSplitter(list(valid_idx))(range_of(df))
    to = TabularCollab(df, [Categorify], ["user", "title"], y_names=["rating"], y_block=TransformBlock(),
                       splits=splits)
    extra = {"dl_type": TabDataLoader} if loader == "shuffle" else {}
    # drop_last=False: the same number of training steps per epoch as deepfit and the hand loop
    return to.dataloaders(bs=bs, val_bs=val_bs, drop_last=False, path=".", device=torch.device("cpu"), **extra)


def make_fastai(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, val_bs: int, seed: int,
                loader: str = "default") -> Case:
    from fastai.collab import collab_learner as fa_collab_learner
    from fastai.torch_core import set_seed
    set_seed(seed)  # fastai's loaders draw from the global generators (numpy for TabWeightedDL, random otherwise)
    dls = fastai_dls(df, valid_idx, bs, val_bs, loader)
    learn = fa_collab_learner(dls, n_factors=N_FACTORS, y_range=Y_RANGE)

    def run() -> float:
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(N_EPOCHS, LR, wd=WD)
        return float(learn.recorder.values[-1][1])
    return Case(run, len(dls.train), dls.valid.bs)


def make_fastai_shuffle(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, val_bs: int,
                        seed: int) -> Case:
    return make_fastai(df, valid_idx, bs, val_bs, seed, loader="shuffle")


def distinct_fraction(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, loader: str, epochs: int = 5) -> str:
    """Fraction of distinct training rows in each epoch's order of fastai's training loader: the rows
    its `get_idxs` returns, which is what `DataLoader.__iter__` iterates over (fastai/data/load.py)."""
    dl = fastai_dls(df, valid_idx, bs, bs, loader).train
    fr = [len(set(int(i) for i in dl.get_idxs())) / dl.n for _ in range(epochs)]
    return f"{type(dl).__name__}, {dl.n} training rows, {len(dl)} batches/epoch: distinct rows per epoch " + \
        " ".join(f"{f:.3f}" for f in fr)


# ---- hand-written loop --------------------------------------------------------------------------------
def make_hand(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, val_bs: int, seed: int) -> Case:
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
                for b in range(0, len(xv), val_bs):
                    total += F.mse_loss(model(xv[b:b + val_bs]), yv[b:b + val_bs], reduction="sum")
            mse = float(total) / len(xv)
        return mse
    return Case(run, steps, val_bs)


METHODS: dict[str, Callable[[pd.DataFrame, np.ndarray, int, int, int], Case]] = {
    "deepfit": make_deepfit, "fastai": make_fastai, "fastai-shuffle": make_fastai_shuffle, "hand": make_hand}
FASTAI_LOADERS = {"default": "fastai", "shuffle": "fastai-shuffle"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve()
                                                                     .parents[2] / "shared" / "data")) / "ml-100k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3,
                    help="runs of each (method, bs), with seeds 42, 43, ... for init and shuffling (medians reported)")
    ap.add_argument("--bs", type=int, nargs="+", default=[64, 1024])
    ap.add_argument("--val-bs", type=int, default=None,
                    help="validation batch size of every method (default: the training batch size)")
    ap.add_argument("--fastai-loader", nargs="+", choices=list(FASTAI_LOADERS), default=list(FASTAI_LOADERS),
                    help="fastai's training loader(s): 'default' = as it comes (TabWeightedDL, rows drawn with "
                         "replacement), 'shuffle' = its TabDataLoader (a shuffled permutation)")
    ap.add_argument("--skip-fastai", action="store_true")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be at least 1 (3 or more for medians)")
    torch.set_num_threads(args.threads)
    fastai_methods = [] if args.skip_fastai else [FASTAI_LOADERS[k] for k in FASTAI_LOADERS if k in args.fastai_loader]
    methods = [m for m in METHODS if not m.startswith("fastai") or m in fastai_methods]

    df = load_ratings(args.data)
    _, valid_idx = split_indices(len(df), 0.2, seed=SEED)
    versions = f"torch {torch.__version__}"
    if fastai_methods:
        import warnings
        warnings.filterwarnings("ignore")  # fastai 2.8.12 on torch 2.14: deprecation notices only
        import fastai
        versions += f", fastai {fastai.__version__}"
    print(f"{len(df)} ratings, {df.user.nunique()} users, {df.title.nunique()} titles; valid rows {len(valid_idx)}; "
          f"{versions}, threads {torch.get_num_threads()}, load average {os.getloadavg()}", flush=True)

    # warm-up: a short fit of each method on a small subset pays one-time costs outside the timings
    small = df.iloc[:3000].reset_index(drop=True)
    small_valid = np.arange(2400, 3000)
    for m in methods:
        METHODS[m](small, small_valid, 256, 256, SEED).run()
    for m in fastai_methods:
        loader = next(k for k, v in FASTAI_LOADERS.items() if v == m)
        print(f"{m} training loader: {distinct_fraction(df, valid_idx, args.bs[0], loader)}", flush=True)

    rows = []
    for bs in args.bs:
        val_bs = args.val_bs or bs
        res: dict[str, list[tuple[float, float, float]]] = {m: [] for m in methods}
        work: dict[str, tuple[int, int]] = {}
        for r in range(args.repeats):
            for m in methods:  # interleaved, so a burst of load on a shared machine hits all methods alike
                case = METHODS[m](df, valid_idx, bs, val_bs, SEED + r)
                work[m] = (case.train_batches, case.val_bs)
                if len(set(work.values())) > 1:
                    raise SystemExit(f"not like for like at bs={bs}: (training batches per epoch, validation batch "
                                     f"size) differ between methods: {work}")
                res[m].append(timed(case.run))
                w, c, mse = res[m][-1]
                print(f"  bs={bs:<5} val_bs={val_bs:<5} {m:<14} seed {SEED + r}: wall {w:7.2f}s  cpu {c:7.2f}s  "
                      f"valid MSE {mse:.4f}  (load {os.getloadavg()[0]:.1f})", flush=True)
        for m in methods:
            walls, cpus, mses = zip(*res[m])
            rows.append({"method": m, "bs": bs, "val_bs": work[m][1], "batches": work[m][0],
                         "wall": statistics.median(walls), "cpu": statistics.median(cpus),
                         "mse": statistics.median(mses), "mses": mses,
                         "n": args.repeats})
    by = {(r["method"], r["bs"]): r for r in rows}
    print(f"\nload average after: {os.getloadavg()}")
    print(f"\nmedians of {args.repeats} runs (seeds {SEED}..{SEED + args.repeats - 1})")
    print("| method | bs | val bs | train batches / epoch | wall s | CPU s | valid MSE | fastai / this (wall, CPU) "
          "| this / hand (wall, CPU) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        fa, hand = by.get(("fastai", r["bs"])), by.get(("hand", r["bs"]))
        vs_fa = f"{fa['wall'] / r['wall']:.2f}x, {fa['cpu'] / r['cpu']:.2f}x" if fa else "-"
        vs_hand = f"{r['wall'] / hand['wall']:.3f}, {r['cpu'] / hand['cpu']:.3f}" if hand else "-"
        print(f"| {r['method']} | {r['bs']} | {r['val_bs']} | {r['batches']} | {r['wall']:.2f} | {r['cpu']:.2f} | "
              f"{r['mse']:.4f} | "
              f"{vs_fa} | {vs_hand} |")
    print("\nvalid MSE per seed:")
    for r in rows:
        print(f"  bs={r['bs']:<5} {r['method']:<14} " + " ".join(f"{m:.4f}" for m in r["mses"]))


if __name__ == "__main__":
    main()
