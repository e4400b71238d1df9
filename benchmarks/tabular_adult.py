"""deepfit vs fastai 2.8.12 on the adult census table, in one process.

Run (fastai's environment, deepfit from the source tree):

    PYTHONPATH=/work/main /work/fastai-venv/bin/python benchmarks/tabular_adult.py [--bs 64 1024]

Both libraries get the same rows for training and validation (deepfit's 80/20 split with the seed,
42 first, handed to fastai as `valid_idx`, i.e. its IndexSplitter), the same columns, processors
(Categorify, FillMissing, Normalize), layers [200, 100], batch sizes, 5 epochs of fit_one_cycle at
lr 1e-2 and the same weight decay (0.01). Printed per batch size: preprocessing time (building the
DataLoaders from the DataFrame, median of 3), median time per epoch (train + validation), final
validation accuracy (mean and std over `--seeds`, each seed giving its own split and initialisation),
and the fastai/deepfit ratios.

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
    learn.fit_one_cycle(epochs, lr)
    return {**prep, "epoch_times": timer.wall, "epoch_cpu": timer.cpu, "accuracy": learn.recorder.log[-1]["accuracy"],
            "valid_idx": dls.valid_idx}


def run_fastai(df: pd.DataFrame, valid_idx: np.ndarray, bs: int, epochs: int, lr: float, seed: int) -> dict:
    from fastai.callback.core import Callback
    from fastai.metrics import accuracy
    from fastai.tabular.all import Categorify, FillMissing, Normalize, TabularDataLoaders, tabular_learner
    from fastai.torch_core import set_seed

    class EpochTimer(EpochTiming, Callback):
        pass

    dls, prep = timed_prep(lambda: TabularDataLoaders.from_df(df, path=".", procs=[Categorify, FillMissing, Normalize],
                                                              cat_names=CAT, cont_names=CONT, y_names=Y,
                                                              valid_idx=list(valid_idx), bs=bs, val_bs=bs,
                                                              device=torch.device("cpu")))
    set_seed(seed)
    timer = EpochTimer()
    learn = tabular_learner(dls, layers=[200, 100], metrics=accuracy, wd=1e-2, cbs=[timer])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
    acc = float(learn.recorder.values[-1][2])
    return {**prep, "epoch_times": timer.wall, "epoch_cpu": timer.cpu, "accuracy": acc}


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
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import warnings
    warnings.filterwarnings("ignore")
    import fastai
    df = pd.read_csv(args.csv)
    print(f"adult: {len(df)} rows; torch {torch.__version__}, fastai {fastai.__version__}, pandas {pd.__version__}, "
          f"threads {torch.get_num_threads()}, epochs {args.epochs}, lr {args.lr}, seeds {args.seeds}")
    rows = []
    for bs in args.bs:
        runs: dict[str, list[dict]] = {"deepfit": [], "fastai": []}
        for seed in args.seeds:
            d = run_deepfit(df, bs, args.epochs, args.lr, seed)
            f = run_fastai(df, d["valid_idx"], bs, args.epochs, args.lr, seed)
            runs["deepfit"].append(d)
            runs["fastai"].append(f)
            print(f"bs={bs} seed={seed}: deepfit acc {d['accuracy']:.4f} epoch cpu "
                  f"{['%.2f' % t for t in d['epoch_cpu']]} wall {['%.2f' % t for t in d['epoch_times']]} | fastai acc "
                  f"{f['accuracy']:.4f} epoch cpu {['%.2f' % t for t in f['epoch_cpu']]} wall "
                  f"{['%.2f' % t for t in f['epoch_times']]}", flush=True)
        for name, rs in runs.items():
            wall = [t for r in rs for t in r["epoch_times"]]
            cpu = [t for r in rs for t in r["epoch_cpu"]]
            accs = [r["accuracy"] for r in rs]
            rows.append({"bs": bs, "method": name, "prep_cpu_s": statistics.median(r["prep_cpu"] for r in rs),
                         "prep_wall_s": statistics.median(r["prep"] for r in rs),
                         "epoch_cpu_s": statistics.median(cpu), "epoch_wall_s": statistics.median(wall),
                         "epoch_wall_min_s": min(wall), "valid_acc_mean": float(np.mean(accs)),
                         "valid_acc_std": float(np.std(accs))})
        d, f = rows[-2], rows[-1]
        d["epoch_x_cpu"] = f["epoch_cpu_s"] / d["epoch_cpu_s"]
        d["epoch_x_wall"] = f["epoch_wall_s"] / d["epoch_wall_s"]
        d["prep_x_cpu"] = f["prep_cpu_s"] / d["prep_cpu_s"]
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))


if __name__ == "__main__":
    main()
