"""deepfit vs fastai 2.8.12 (two training loaders) on the adult census table, in one process.

Run (fastai's environment, deepfit from the source tree):

    PYTHONPATH=$PWD benchmarks/.fastai-venv/bin/python benchmarks/tabular_adult.py [--bs 64 1024]
        [--fastai-loader default shuffle]

Both libraries get the same rows for training and validation (deepfit's 80/20 split with the seed,
42 first, handed to fastai as `valid_idx`, i.e. its IndexSplitter), the same columns, processors
(Categorify, FillMissing, Normalize), layers [200, 100], training and validation batch sizes (both
drop the last incomplete training batch, so both take the same steps), 5 epochs of fit_one_cycle at
lr 1e-2 and the same weight decay (0.01). fastai runs with two training loaders (`--fastai-loader`):
`default` ("fastai"), the `TabWeightedDL` that `TabularPandas.dataloaders` uses as it comes, which draws
each epoch's rows with replacement (`np.random.choice(n, n, p=uniform)`: about 63% of the distinct
rows per epoch; the script measures and prints the fraction), and `shuffle` ("fastai-shuffle"), its
plain `TabDataLoader`, a shuffled permutation of the rows as deepfit uses.

Printed per batch size: preprocessing time (building the DataLoaders from the DataFrame, median of 3),
median time per epoch (train + validation), final validation accuracy (mean and std over `--seeds`,
each seed giving its own split and initialisation), and the fastai/deepfit ratios. Before timing, each
method does a short warm-up fit on a small part of the table, so that one-time costs are not charged
to whichever runs first; for each seed the methods run one after the other (deepfit, fastai,
fastai-shuffle, deepfit, ...) so that load on a shared machine hits them alike.

Times: CPU time of the process (`time.process_time`; with one thread and fastai's in-process tabular
loaders this is the work each library does, steady even when other processes load the machine) and
wall-clock time (median and best epoch), medians over every epoch of every seed; ratios are
fastai / deepfit (above 1: deepfit is faster).

Threads: the default is `--threads 1` for both. On a small shared CPU the matrix products of this
tiny model get ~100x slower with 2 OpenMP threads once other processes compete for the cores, which
would measure the machine's load rather than the libraries.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]
CONT = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
Y = "class"


class EpochTiming:
    """Mixin for either library's Callback: wall and CPU time of every epoch (train + validation)."""

    def before_fit(self):
        self.wall, self.cpu = [], []

    def before_epoch(self):
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def after_epoch(self):
        self.wall.append(time.perf_counter() - self.t0)
        self.cpu.append(time.process_time() - self.c0)


def timed_prep(build: Callable[[], Any], n: int = 3) -> tuple[Any, dict[str, float]]:
    """Build the DataLoaders `n` times; the last ones and the median wall (`prep`) and CPU (`prep_cpu`) time."""
    wall, cpu = [], []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        dls = build()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return dls, {"prep": statistics.median(wall), "prep_cpu": statistics.median(cpu)}


def run_deepfit(df: pd.DataFrame, bs: int, epochs: int, lr: float, seed: int) -> dict:
    from deepfit import set_seed
    from deepfit.callbacks import Callback
    from deepfit.tabular import TabularDataLoaders, tabular_learner

    class EpochTimer(EpochTiming, Callback):
        pass

    dls, prep = timed_prep(lambda: TabularDataLoaders.from_df(df, cat_names=CAT, cont_names=CONT, y_names=Y,
                                                              valid_pct=0.2, seed=seed, bs=bs, val_bs=bs,
                                                              device="cpu"))
    set_seed(seed)
    timer = EpochTimer()
    learn = tabular_learner(dls, layers=[200, 100], progress=False, wd=1e-2, cbs=[timer])
    gc.collect()  # garbage of the previous runs is not charged to this one
    learn.fit_one_cycle(epochs, lr)
    return {**prep, "epoch_times": timer.wall, "epoch_cpu": timer.cpu, "accuracy": learn.recorder.log[-1]["accuracy"],
            "valid_idx": dls.valid_idx, "work": (len(dls.train), dls.valid.bs)}


def fastai_dls(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, loader: str):
    """fastai's `TabularDataLoaders.from_df` with our split; `loader` 'default' keeps its training loader
    (TabWeightedDL: rows drawn with replacement), 'shuffle' asks for its plain TabDataLoader."""
    from fastai.tabular.all import Categorify, FillMissing, Normalize, TabDataLoader, TabularDataLoaders
    extra = {"dl_type": TabDataLoader} if loader == "shuffle" else {}
    return TabularDataLoaders.from_df(df, path=".", procs=[Categorify, FillMissing, Normalize], cat_names=CAT,
                                      cont_names=CONT, y_names=Y, valid_idx=list(valid_idx), bs=bs, val_bs=bs,
                                      device=torch.device("cpu"), **extra)


def run_fastai(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, epochs: int, lr: float, seed: int,
               loader: str = "default") -> dict:
    from fastai.callback.core import Callback
    from fastai.metrics import accuracy
    from fastai.tabular.all import tabular_learner
    from fastai.torch_core import set_seed

    class EpochTimer(EpochTiming, Callback):
        pass

    set_seed(seed)  # the loaders' generators are drawn from the global ones when they are built
    dls, prep = timed_prep(lambda: fastai_dls(df, valid_idx, bs, loader))
    set_seed(seed)
    timer = EpochTimer()
    learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy, wd=1e-2, cbs=[timer])
    gc.collect()  # garbage of the previous runs is not charged to this one
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
    acc = float(learn.recorder.values[-1][2])
    return {**prep, "epoch_times": timer.wall, "epoch_cpu": timer.cpu, "accuracy": acc,
            "work": (len(dls.train), dls.valid.bs)}


def distinct_fraction(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, loader: str, epochs: int = 5) -> str:
    """Fraction of distinct training rows in each epoch's order of fastai's training loader: the rows
    its `get_idxs` returns, which is what `DataLoader.__iter__` iterates over (fastai/data/load.py)."""
    dl = fastai_dls(df, valid_idx, bs, loader).train
    fr = [len(set(int(i) for i in dl.get_idxs())) / dl.n for _ in range(epochs)]
    return f"{type(dl).__name__}, {dl.n} training rows, {len(dl)} batches/epoch: distinct rows per epoch " + \
        " ".join(f"{f:.3f}" for f in fr)


FASTAI_LOADERS = {"default": "fastai", "shuffle": "fastai-shuffle"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    default_csv = data / "adult" / "adult.csv"
    ap.add_argument("--csv", default=str(default_csv))
    ap.add_argument("--bs", type=int, nargs="+", default=[64, 1024])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2],
                    help="split and training seeds; accuracy is averaged over them")
    ap.add_argument("--fastai-loader", nargs="+", choices=list(FASTAI_LOADERS), default=list(FASTAI_LOADERS),
                    help="fastai's training loader(s): 'default' = as it comes (TabWeightedDL, rows drawn with "
                         "replacement), 'shuffle' = its TabDataLoader (a shuffled permutation)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import warnings
    warnings.filterwarnings("ignore")
    import fastai
    loaders = [k for k in FASTAI_LOADERS if k in args.fastai_loader]
    df = pd.read_csv(args.csv)
    print(f"adult: {len(df)} rows; torch {torch.__version__}, fastai {fastai.__version__}, pandas {pd.__version__}, "
          f"threads {torch.get_num_threads()}, epochs {args.epochs}, lr {args.lr}, seeds {args.seeds}, "
          f"load average {os.getloadavg()}", flush=True)

    # warm-up: one short fit of each method on a small part of the table, outside the timings
    small = df.iloc[:2000].reset_index(drop=True)
    w = run_deepfit(small, 256, 1, args.lr, args.seeds[0])
    for loader in loaders:
        run_fastai(small, w["valid_idx"], 256, 1, args.lr, args.seeds[0], loader)
    # the rows fastai's training loader visits in an epoch (any 80/20 split: only the row count matters)
    from deepfit.data import split_indices
    _, va = split_indices(len(df), 0.2, seed=args.seeds[0])
    for loader in loaders:
        print(f"{FASTAI_LOADERS[loader]} training loader at bs {args.bs[0]}: "
              f"{distinct_fraction(df, va, args.bs[0], loader)}", flush=True)

    rows = []
    for bs in args.bs:
        runs: dict[str, list[dict]] = {"deepfit": [], **{FASTAI_LOADERS[k]: [] for k in loaders}}
        for seed in args.seeds:
            d = run_deepfit(df, bs, args.epochs, args.lr, seed)
            runs["deepfit"].append(d)
            line = f"bs={bs} seed={seed} (train batches/epoch, val bs) {d['work']}: deepfit acc {d['accuracy']:.4f} " \
                   f"epoch cpu {_fmt(d['epoch_cpu'])} wall " \
                   f"{_fmt(d['epoch_times'])}"
            for loader in loaders:
                f = run_fastai(df, d["valid_idx"], bs, args.epochs, args.lr, seed, loader)
                runs[FASTAI_LOADERS[loader]].append(f)
                if f["work"] != d["work"]:
                    raise SystemExit(f"not like for like at bs={bs}: (training batches per epoch, validation batch "
                                     f"size) deepfit {d['work']}, {FASTAI_LOADERS[loader]} {f['work']}")
                line += f" | {FASTAI_LOADERS[loader]} acc {f['accuracy']:.4f} epoch cpu {_fmt(f['epoch_cpu'])} " \
                        f"wall {_fmt(f['epoch_times'])}"
            print(line + f" (load {os.getloadavg()[0]:.1f})", flush=True)
        first = len(rows)
        for name, rs in runs.items():
            wall = [t for r in rs for t in r["epoch_times"]]
            cpu = [t for r in rs for t in r["epoch_cpu"]]
            accs = [r["accuracy"] for r in rs]
            rows.append({"bs": bs, "method": name, "prep_cpu_s": statistics.median(r["prep_cpu"] for r in rs),
                         "prep_wall_s": statistics.median(r["prep"] for r in rs),
                         "epoch_cpu_s": statistics.median(cpu), "epoch_wall_s": statistics.median(wall),
                         "epoch_wall_min_s": min(wall), "valid_acc_mean": float(np.mean(accs)),
                         "valid_acc_std": float(np.std(accs)), "accs": " ".join(f"{a:.4f}" for a in accs)})
        d = rows[first]
        for f in rows[first + 1:]:  # speed-ups of deepfit over each fastai variant, on fastai's row
            f["deepfit_x_cpu"] = f["epoch_cpu_s"] / d["epoch_cpu_s"]
            f["deepfit_x_wall"] = f["epoch_wall_s"] / d["epoch_wall_s"]
            f["deepfit_x_prep_cpu"] = f["prep_cpu_s"] / d["prep_cpu_s"]
    table = pd.DataFrame(rows)
    print(f"\nload average after: {os.getloadavg()}")
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))


def _fmt(times: list[float]) -> str:
    return "[" + " ".join(f"{t:.2f}" for t in times) + "]"


if __name__ == "__main__":
    main()
