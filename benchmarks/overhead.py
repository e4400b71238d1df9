"""Overhead of deepfit's Learner over a hand-written PyTorch loop doing the same work.

Two problems, each trained twice from the same initial weights on the same batches:

* an MLP 784-100-100-10 on MNIST (the 10k test set, 8000 train / 2000 valid; generated digits when
  the files are absent), batch size 64;
* an embedding dot-product model (users x items factors + biases, sigmoid to (0, 5.5)) on generated
  (user, item, rating) triples, batch size 256.

deepfit: `Learner(...).fit_one_cycle(n_epoch, lr)` (deepfit Adam: mom 0.9, sqr_mom 0.99, eps 1e-5,
decoupled weight decay 0.01; 1cycle with div 25, div_final 1e5, pct_start 0.25, momentum
0.95-0.85-0.95; validation loss and metric every epoch). Hand-written: `torch.optim.AdamW` with the
same betas / eps / weight decay and `torch.optim.lr_scheduler.OneCycleLR` with the matching div
factors, warm-up fraction and momentum cycling; batches are made by indexing the same tensors with
the same permutations; validation loss and the same metric every epoch.

Both validate with the same batch size (the hand loop uses deepfit's validation loader's `bs`), and each
first does a 1-epoch warm-up outside the timings. Each run is repeated (default 3 times, alternating
the two: deepfit, hand, deepfit, ...) and the median wall time and median process CPU time of each are
reported, with the ratios deepfit / hand-written (goal <= 1.05; the CPU ratio is steadier than the wall
ratio on a busy machine) and the final losses of both. Both use the same number of torch
threads (`--threads`, default 1).

Run: .venv/bin/python benchmarks/overhead.py [--threads 2] [--repeats 3] [--epochs 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepfit import DataLoaders, Learner, MSELoss, CrossEntropyLoss  # noqa: E402
from deepfit.data import DataLoader  # noqa: E402
from deepfit.data.mnist import digits_dls, load_digits  # noqa: E402
from deepfit.metrics import accuracy, rmse  # noqa: E402

WD, MOMS, DIV, DIV_FINAL, PCT_START = 0.01, (0.95, 0.85, 0.95), 25.0, 1e5, 0.25


# ---- the two problems ----------------------------------------------------------------------------------
class DotProduct(nn.Module):
    """rating = sigmoid_range(u . i + b_u + b_i, 0, 5.5)."""

    def __init__(self, n_users: int, n_items: int, n_factors: int = 50) -> None:
        super().__init__()
        self.u, self.i = nn.Embedding(n_users, n_factors), nn.Embedding(n_items, n_factors)
        self.ub, self.ib = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        for e in (self.u, self.i):
            nn.init.normal_(e.weight, std=0.01)
        for e in (self.ub, self.ib):
            nn.init.zeros_(e.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.u(users) * self.i(items)).sum(1) + self.ub(users)[:, 0] + self.ib(items)[:, 0]
        return torch.sigmoid(dot) * 5.5


@dataclass
class Problem:
    name: str
    dls: DataLoaders
    make_model: Callable[[], nn.Module]
    loss_func: nn.Module
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    lr: float
    description: str


def mnist_problem(bs: int = 64) -> Problem:
    data = Path(os.environ.get("DEEPFIT_DATA", REPO.parent / "shared" / "data"))
    x, y, source = load_digits(data)
    dls = digits_dls(x, y, valid_n=2000, bs=bs, seed=0)

    def make() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(),
                             nn.Linear(100, 10))
    return Problem("mlp_mnist", dls, make, CrossEntropyLoss(), accuracy, 1e-2,
                   f"MLP 784-100-100-10, {source}, bs {bs}")


def ratings_problem(n_users: int = 1000, n_items: int = 1700, n: int = 100_000, bs: int = 256) -> Problem:
    g = torch.Generator().manual_seed(0)
    users, items = torch.randint(0, n_users, (n,), generator=g), torch.randint(0, n_items, (n,), generator=g)
    tu, ti = torch.randn(n_users, 8, generator=g), torch.randn(n_items, 8, generator=g)
    score = (tu[users] * ti[items]).sum(1) / 8 ** 0.5 + 0.3 * torch.randn(n, generator=g)
    ratings = (3 + 1.2 * score).round().clamp(1, 5)
    cut = int(0.8 * n)
    train = DataLoader(users[:cut], items[:cut], ratings[:cut], bs=bs, shuffle=True, seed=0)
    valid = DataLoader(users[cut:], items[cut:], ratings[cut:], bs=2 * bs)
    return Problem("dot_ratings", DataLoaders(train, valid), lambda: DotProduct(n_users, n_items), MSELoss(), rmse,
                   5e-3, f"embedding dot product, {n_users} users x {n_items} items, {n} generated ratings, bs {bs}")


# ---- the two ways to train -----------------------------------------------------------------------------
def train_deepfit(p: Problem, epochs: int) -> tuple[tuple[float, float], dict[str, float]]:
    torch.manual_seed(0)
    model = p.make_model()
    p.dls.train.load_state_dict({"gen": torch.Generator().manual_seed(0).get_state()})  # same epoch orders
    learn = Learner(p.dls, model, loss_func=p.loss_func, metrics=[p.metric], wd=WD, moms=MOMS, progress=False)
    t, c = time.perf_counter(), time.process_time()
    learn.fit_one_cycle(epochs, p.lr, div=DIV, div_final=DIV_FINAL, pct_start=PCT_START)
    elapsed = (time.perf_counter() - t, time.process_time() - c)
    last = learn.recorder.log[-1]
    return elapsed, {"train_loss": last["train_loss"], "valid_loss": last["valid_loss"],
                     "metric": last[learn.metrics[0].name]}


def epoch_orders(dl: DataLoader, epochs: int) -> list[torch.Tensor]:
    """The permutations deepfit's loader uses in each epoch (seeded by its generator): an epoch
    seed drawn from the loader's generator, then randperm with a generator seeded by it."""
    gen = torch.Generator().manual_seed(0)
    n = len(dl.tensors[0])
    out = []
    for _ in range(epochs):
        epoch_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        out.append(torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed)))
    return out


def train_by_hand(p: Problem, epochs: int, foreach: bool | None = None) -> tuple[tuple[float, float], dict[str, float]]:
    torch.manual_seed(0)
    model = p.make_model()
    *xs, y = p.dls.train.tensors
    *vxs, vy = p.dls.valid.tensors
    bs, vbs, n = p.dls.train.bs, p.dls.valid.bs, len(y)
    orders = epoch_orders(p.dls.train, epochs)
    steps = epochs * ((n + bs - 1) // bs)
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, betas=(MOMS[0], 0.99), eps=1e-5, weight_decay=WD,
                            foreach=foreach)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=p.lr, total_steps=steps, pct_start=PCT_START, anneal_strategy="cos", cycle_momentum=True,
        base_momentum=MOMS[1], max_momentum=MOMS[0], div_factor=DIV, final_div_factor=DIV_FINAL / DIV)
    t, c = time.perf_counter(), time.process_time()
    for epoch in range(epochs):
        model.train()
        order, losses = orders[epoch], []
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            loss = p.loss_func(model(*(x[idx] for x in xs)), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        train_loss = torch.stack(losses).mean().item()
        model.eval()
        with torch.no_grad():
            tot, met = torch.zeros(()), torch.zeros(())
            for i in range(0, len(vy), vbs):
                out = model(*(x[i:i + vbs] for x in vxs))
                tot += p.loss_func(out, vy[i:i + vbs]) * len(out)
                met += p.metric(out, vy[i:i + vbs]) * len(out)
            valid_loss, metric = (tot / len(vy)).item(), (met / len(vy)).item()
    elapsed = (time.perf_counter() - t, time.process_time() - c)
    if p.metric is rmse:  # RMSE is not a mean of batch RMSEs: compute it on the whole set
        with torch.no_grad():
            metric = torch.sqrt(F.mse_loss(torch.cat([model(*(x[i:i + vbs] for x in vxs))
                                                      for i in range(0, len(vy), vbs)]), vy)).item()
    return elapsed, {"train_loss": train_loss, "valid_loss": valid_loss, "metric": metric}


# ---- running -------------------------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception:
        return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--only", choices=["mlp_mnist", "dot_ratings"], default=None)
    ap.add_argument("--foreach", action="store_true",
                    help="use AdamW's multi-tensor (foreach) implementation in the hand-written loop, as deepfit's "
                         "Adam does (torch's default on the CPU is one tensor at a time)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"deepfit overhead benchmark: torch {torch.__version__}, {args.threads} threads, {cpu_name()}, "
          f"{args.epochs} epochs, median of {args.repeats} runs"
          + (", hand-written loop with foreach AdamW" if args.foreach else "")
          + f", load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    problems = [mnist_problem(), ratings_problem()]
    header = (f"{'problem':<12} {'deepfit s':>10} {'hand s':>8} {'ratio':>6} {'deepfit cpu':>11} {'hand cpu':>8} "
              f"{'cpu ratio':>9}   final losses (train / valid / metric)")
    rows = []
    for p in problems:
        if args.only and p.name != args.only:
            continue
        print(f"- {p.name}: {p.description}")
        train_deepfit(p, 1)  # warm-up: first-call costs (imports, allocator) are not overhead
        train_by_hand(p, 1)
        times: dict[str, list[float]] = {"deepfit": [], "hand": []}
        cpu: dict[str, list[float]] = {"deepfit": [], "hand": []}
        res: dict[str, dict[str, float]] = {}
        for _ in range(args.repeats):
            for name in ("deepfit", "hand"):
                (t, c), r = train_deepfit(p, args.epochs) if name == "deepfit" else \
                    train_by_hand(p, args.epochs, foreach=True if args.foreach else None)
                times[name].append(t)
                cpu[name].append(c)
                res[name] = r
        td, th = statistics.median(times["deepfit"]), statistics.median(times["hand"])
        cd, ch = statistics.median(cpu["deepfit"]), statistics.median(cpu["hand"])
        fmt = lambda r: f"{r['train_loss']:.4f} / {r['valid_loss']:.4f} / {r['metric']:.4f}"  # noqa: E731
        rows.append(f"{p.name:<12} {td:>10.3f} {th:>8.3f} {td / th:>6.3f} {cd:>11.3f} {ch:>8.3f} {cd / ch:>9.3f}   "
                    f"deepfit {fmt(res['deepfit'])}; "
                    f"hand {fmt(res['hand'])}")
        print(f"  runs (wall s) deepfit {[round(t, 3) for t in times['deepfit']]}, "
              f"hand {[round(t, 3) for t in times['hand']]}"
              f"; (CPU s) deepfit {[round(t, 3) for t in cpu['deepfit']]}, hand {[round(t, 3) for t in cpu['hand']]}")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
