"""Train one Learner on several processes with DistributedDataParallel.

Run:
    torchrun --nproc_per_node=2 examples/train_ddp.py            # 2 processes (gloo on CPU, nccl on GPUs)
    python examples/train_ddp.py                                   # the same script, one process

Every process runs this whole script. `setup_distrib()` joins the process group torchrun describes
(it does nothing in a plain run) and returns this process's device; `distrib_ctx` shards the data,
wraps the model in DistributedDataParallel, averages the loss and metrics over processes, and lets
only rank 0 print and write (`history.csv`, `models/final.pth`, `model.safetensors` under --out).

Batch size: `--bs` is per process, so each optimizer step sees `world_size * bs` rows. By default the
script keeps the global batch at `--global-bs` (bs = global_bs / world_size) so the run takes the same
steps whatever the number of processes, with the same learning rate.
"""
import argparse
import os
from pathlib import Path

import torch

from deepfit import CSVLogger, CrossEntropyLoss, DataLoaders, Learner, accuracy, set_seed
from deepfit.distributed import distrib_ctx, is_main_process, num_distrib, rank_distrib, setup_distrib
from deepfit.layers import MLP
from deepfit.metrics import F1Score


def make_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved noisy spirals in 2-D plus 8 noise features: a small non-linear problem."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * 3 * torch.pi
    y = torch.randint(0, 2, (n,), generator=g)
    r = t + 0.5
    angle = t + y * torch.pi
    xy = torch.stack([r * torch.cos(angle), r * torch.sin(angle)], 1) / 5 + 0.15 * torch.randn(n, 2, generator=g)
    return torch.cat([xy, torch.randn(n, 8, generator=g)], 1), y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--global-bs", type=int, default=128, help="rows per optimizer step, over all processes")
    ap.add_argument("--lr", type=float, default=1e-2)
    # not "--n": torchrun's own parser takes that for an abbreviation of its --nnodes/--nproc-per-node
    ap.add_argument("--rows", type=int, default=20_000, help="rows of generated data (80%% train)")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("DEEPFIT_OUT", "runs/train_ddp")))
    args = ap.parse_args()

    device = setup_distrib()            # joins the group under torchrun; this process's device
    world = num_distrib()
    if args.global_bs % world:
        raise SystemExit(f"--global-bs={args.global_bs} must be divisible by the {world} processes.")
    bs = args.global_bs // world

    set_seed(0)                         # same data and initial weights on every process
    x, y = make_data(args.rows)
    n_train = int(0.8 * args.rows)
    dls = DataLoaders.from_tensors(x[:n_train], y[:n_train], x[n_train:], y[n_train:], bs=bs, device=device,
                                   seed=0)
    learn = Learner(dls, MLP(10, [64, 64], 2), loss_func=CrossEntropyLoss(), metrics=[accuracy, F1Score()],
                    path=args.out, cbs=[CSVLogger("history.csv")])
    if is_main_process():
        print(f"{world} process(es), {bs} rows each per step ({args.global_bs} per step), device {device}")

    with distrib_ctx(learn):
        learn.fit_one_cycle(args.epochs, args.lr)
        learn.save("final")                      # rank 0 writes; the others skip
        learn.export("model.safetensors")

    final = learn.recorder.log[-1]               # the same (global) numbers on every rank
    print(f"rank {rank_distrib()}: valid_loss {final['valid_loss']:.4f}  accuracy {final['accuracy']:.4f}")


if __name__ == "__main__":
    main()
