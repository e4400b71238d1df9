"""CIFAR-10 with deepfit.vision: accuracy and time, the Learner against a hand-written loop, deepfit
against fastai's `vision_learner` end to end, and transfer learning without downloads.

The data: `$DEEPFIT_DATA/cifar10/{train,test}/<class>/*.jpg` (50,000 + 10,000 JPEG files). deepfit
decodes them once (Pillow, worker threads) into a uint8 tensor, cached on disk with `--cache`.

Modes (each prints a small table and a JSON line with every number):

* `accuracy`: `FastNet` (a ResNet-9-style net, `--widths`) trained with `fit_one_cycle` on the
  training set (or `--n-train` images of it), flips + 4-pixel pad-and-crop on the batch, channels-last
  and bf16 autocast (`--no-fast` for fp32); test accuracy plain and with test-time augmentation
  (flip), wall time of the decoding and of the training.
* `speedrun`: the CIFAR-10 speed-record recipe (`deepfit.vision.speedrun`: AirbenchNet, `--widths` of its
  3 groups, default 64 256 256) with `fit_speedrun(--epochs)` at `--bs 1024`, tested once at the end (plain
  and with the recipe's TTA); the time from the cache to the TTA result. `--random-flip`, `--no-lookahead`
  switch parts off.
* `speed`: the same model and data trained by `Learner.fit_one_cycle` and by a hand-written loop
  (torch `AdamW` + `OneCycleLR`, the same batches through the same augmentation function, the same
  validation each epoch); runs alternate, `--repeats` each, median images/s and CPU time.
* `fastai`: end to end on the same folders (a `--per-class` subset linked into a temporary folder),
  data loading included: deepfit `ImageDataLoaders.from_folder` + `vision_learner(dls, "resnet18")`
  against fastai 2.8.12 `ImageDataLoaders.from_folder` + `vision_learner(dls, resnet18)` (torchvision's),
  both untrained bodies, flips, `fit_one_cycle(--epochs)`; with `--fast` (the default) each library's
  own speed switches that work on a CPU: deepfit channels-last + bf16 autocast, fastai
  `to_channelslast(use_amp=False)` (fastai's mixed precision autocasts on CUDA only). Needs the fastai venv:
  `PYTHONPATH=$PWD benchmarks/.fastai-venv/bin/python benchmarks/vision_cifar10.py fastai`.
* `transfer`: pre-train `resnet20` on 8 classes, save its weights, then on the other 2 classes (cat,
  dog) with 100 training images each: `vision_learner(..., pretrained=file).fine_tune` against the
  same learner from scratch with the same number of epochs; accuracy on those classes' test images
  (`--ft-test-per-class`, default all 1,000 of each).

Run: .venv/bin/python benchmarks/vision_cifar10.py accuracy --epochs 8 --threads 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepfit import DataLoader, Learner, MixedPrecision, accuracy, set_seed  # noqa: E402
from deepfit.losses import CrossEntropyLoss  # noqa: E402
from deepfit.vision import ChannelsLast, Flip, ImageDataLoaders, RandomCrop, vision_learner  # noqa: E402
from deepfit.vision.augment import BatchTransform  # noqa: E402
from deepfit.vision.models import FastNet, resnet20  # noqa: E402

DATA = Path(os.environ.get("DEEPFIT_DATA", REPO.parent / "shared" / "data")) / "cifar10"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cpu_s(children: bool = False) -> float:
    """CPU seconds of this process (and, with `children`, of its finished child processes: fastai's
    DataLoader workers end with each pass over the data)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    out = r.ru_utime + r.ru_stime
    if children:
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        out += c.ru_utime + c.ru_stime
    return out


def machine() -> str:
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), load average {load:.1f}")


def subset(dl: DataLoader, n: int | None, seed: int, shuffle: bool) -> DataLoader:
    """The first `n` images of a fixed random order (classes stay balanced on average)."""
    x, y = dl.tensors
    if n is not None and n < len(x):
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        x, y = x[idx], y[idx]
    return DataLoader(x, y, bs=dl.bs, shuffle=shuffle, drop_last=shuffle, device=dl.device, seed=seed,
                      after_batch=dl.after_batch)


def cifar_dls(args: argparse.Namespace, tfms: list[BatchTransform]) -> tuple[ImageDataLoaders, float]:
    t = time.perf_counter()
    dls = ImageDataLoaders.from_folder(DATA, train="train", valid="test", size=32, bs=args.bs, val_bs=512,
                                       batch_tfms=tfms, cache=args.cache, num_workers=args.threads, seed=0)
    load_s = time.perf_counter() - t
    dls.train = subset(dls.train, args.n_train, 0, True)
    dls.valid = subset(dls.valid, args.n_valid, 1, False)
    return dls, load_s


def fast_cbs(args: argparse.Namespace) -> list:
    """Channels-last memory format and bf16 autocast (`--fast`): on a CPU with AMX / AVX-512 bf16 a
    training step of FastNet takes about 0.4x the fp32 time."""
    return [ChannelsLast(), MixedPrecision()] if args.fast else []


def make_fastnet(args: argparse.Namespace) -> nn.Module:
    torch.manual_seed(args.seed)
    return FastNet(tuple(args.widths), n_out=10)


# ---- accuracy ------------------------------------------------------------------------------------------
def run_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    dls, load_s = cifar_dls(args, [Flip(), RandomCrop(padding=4)])
    set_seed(args.seed)
    learn = Learner(dls, make_fastnet(args), loss_func=CrossEntropyLoss(label_smoothing=args.label_smoothing),
                    metrics=accuracy, wd=args.wd, cbs=fast_cbs(args), progress=False)
    t, c = time.perf_counter(), cpu_s()
    learn.fit_one_cycle(args.epochs, args.lr)
    train_s, train_cpu = time.perf_counter() - t, cpu_s() - c
    from deepfit.vision.learner import VisionLearner
    vl = VisionLearner(dls, learn.model, loss_func=learn.loss_func, progress=False)
    probs, targs = vl.tta()
    res = {"mode": "accuracy", "machine": machine(), "fast": args.fast, "widths": args.widths, "n_train": dls.train.n,
           "n_test": dls.valid.n, "epochs": args.epochs, "lr": args.lr, "bs": args.bs, "load_s": round(load_s, 1),
           "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu, 1),
           "images_per_s": round(args.epochs * dls.train.n / train_s, 1),
           "log": learn.recorder.log, "test_acc": learn.recorder.log[-1]["accuracy"],
           "test_acc_tta": float((probs.argmax(1) == targs).float().mean())}
    print(f"FastNet{tuple(args.widths)}: {args.epochs} epochs on {dls.train.n} images in {train_s:.0f} s "
          f"(+{load_s:.0f} s decoding), test accuracy {res['test_acc']:.4f}, with TTA {res['test_acc_tta']:.4f}")
    return res


# ---- speedrun: the airbench94 recipe on the Learner -------------------------------------------------------
def run_speedrun(args: argparse.Namespace) -> dict[str, Any]:
    """Everything from the decoded-image cache to the test accuracy, timed as one: the data (read from the
    cache, or decoded), the whitening fit, `fit_speedrun`, and the test with and without TTA."""
    from deepfit.vision import fit_speedrun, speedrun_learner, speedrun_tta
    t0, c0 = time.perf_counter(), cpu_s()
    dls, load_s = cifar_dls(args, [RandomCrop(padding=2)])
    learn = speedrun_learner(dls, widths=tuple(args.widths[:3]), fast=args.fast, seed=args.seed,
                             alternating_flip=not args.random_flip, lookahead=not args.no_lookahead)
    if args.random_flip:
        dls.train.after_batch.tfms.insert(0, Flip())
    valid = dls.valid
    if not args.valid_every_epoch:
        dls.valid = None  # test once at the end, as the records do
    t, c = time.perf_counter(), cpu_s()
    fit_speedrun(learn, args.epochs)
    train_s, train_cpu = time.perf_counter() - t, cpu_s() - c
    dls.valid = valid
    test = learn.validate()
    probs, targs = speedrun_tta(learn)
    total_s, total_cpu = time.perf_counter() - t0, cpu_s() - c0
    res = {"mode": "speedrun", "machine": machine(), "fast": args.fast, "widths": args.widths[:3], "bs": args.bs,
           "epochs": args.epochs, "n_train": dls.train.n, "n_test": dls.valid.n, "load_s": round(load_s, 1),
           "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu, 1), "total_s": round(total_s, 1),
           "total_cpu_s": round(total_cpu, 1), "images_per_s": round(args.epochs * dls.train.n / train_s, 1),
           "log": learn.recorder.log, "test_acc": test["accuracy"],
           "test_acc_tta": float((probs.argmax(1) == targs).float().mean())}
    print(f"AirbenchNet{tuple(args.widths[:3])}: {args.epochs} epochs on {dls.train.n} images, training {train_s:.0f} s "
          f"wall / {train_cpu:.0f} s CPU; all in {total_s:.0f} s wall / {total_cpu:.0f} s CPU; test accuracy "
          f"{res['test_acc']:.4f}, with TTA {res['test_acc_tta']:.4f}")
    return res


# ---- deepfit against a hand-written loop ----------------------------------------------------------------
def hand_loop(model: nn.Module, dls: ImageDataLoaders, epochs: int, lr: float, wd: float, seed: int) -> dict[str, float]:
    """The same training written by hand: AdamW + OneCycleLR, batches by indexing the uint8 tensors with a
    new permutation each epoch, the same augmentation function, validation loss and accuracy per epoch."""
    x, y = dls.train.tensors
    xv, yv = dls.valid.tensors
    tfm, vtfm = dls.train.after_batch, dls.valid.after_batch
    bs, n = dls.train.bs, len(x)
    steps = n // bs
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=wd, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.25,
                                                div_factor=25, final_div_factor=4000, base_momentum=0.85,
                                                max_momentum=0.95)
    g = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for b in range(steps):
            idx = perm[b * bs:(b + 1) * bs]
            xb, yb = tfm((x[idx], y[idx]))
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        tot, correct = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(xv), 512):
                xb, yb = vtfm((xv[i:i + 512], yv[i:i + 512]))
                o = model(xb)
                tot += float(F.cross_entropy(o, yb, reduction="sum"))
                correct += int((o.argmax(1) == yb).sum())
        out = {"train_loss": float(loss.detach()), "valid_loss": tot / len(xv), "accuracy": correct / len(xv)}
    return out


def run_speed(args: argparse.Namespace) -> dict[str, Any]:
    dls, _ = cifar_dls(args, [Flip(), RandomCrop(padding=4)])
    rows: dict[str, list[tuple[float, float]]] = {"deepfit": [], "hand": []}
    final: dict[str, Any] = {}
    for r in range(-1, args.repeats):  # run -1 warms up both sides (oneDNN kernels, caches); not timed
        for side in (("deepfit", "hand") if r % 2 == 0 else ("hand", "deepfit")):
            model = make_fastnet(args)
            t, c = time.perf_counter(), cpu_s()
            if side == "deepfit":
                learn = Learner(dls, model, loss_func=CrossEntropyLoss(), metrics=accuracy, wd=args.wd, progress=False)
                learn.fit_one_cycle(args.epochs, args.lr)
                final[side] = learn.recorder.log[-1]
            else:
                final[side] = hand_loop(model, dls, args.epochs, args.lr, args.wd, args.seed)
            if r >= 0:
                rows[side].append((time.perf_counter() - t, cpu_s() - c))
                print(f"  run {r}: {side:8s} {rows[side][-1][0]:.1f} s wall, {rows[side][-1][1]:.1f} s CPU", flush=True)
    n_img = args.epochs * (dls.train.n // args.bs) * args.bs
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}
    res = {"mode": "speed", "machine": machine(), "widths": args.widths, "n_train": dls.train.n, "n_valid": dls.valid.n,
           "epochs": args.epochs, "bs": args.bs, "repeats": args.repeats, "runs": rows,
           "images_per_s": {k: round(n_img / w, 1) for k, (w, _) in med.items()},
           "ratio_wall": round(med["deepfit"][0] / med["hand"][0], 3),
           "ratio_cpu": round(med["deepfit"][1] / med["hand"][1], 3),
           "final": {k: {m: (round(v, 4) if isinstance(v, float) else v) for m, v in d.items()} for k, d in final.items()}}
    print(f"images/s (median of {args.repeats}): deepfit {res['images_per_s']['deepfit']}, hand "
          f"{res['images_per_s']['hand']}; time ratio deepfit/hand {res['ratio_wall']} (CPU {res['ratio_cpu']})")
    return res


# ---- deepfit against fastai, end to end ----------------------------------------------------------------
def linked_subset(per_class: int, test_per_class: int) -> Path:
    root = Path(tempfile.mkdtemp(prefix="cifar_subset_"))
    for split, k in (("train", per_class), ("test", test_per_class)):
        for c in CLASSES:
            d = root / split / c
            d.mkdir(parents=True)
            for f in sorted((DATA / split / c).iterdir())[:k]:
                (d / f.name).symlink_to(f)
    return root


def run_fastai(args: argparse.Namespace) -> dict[str, Any]:
    import fastai
    from fastai.vision.all import (Flip as FFlip, ImageDataLoaders as FImageDataLoaders, Normalize as FNormalize,
                                   accuracy as faccuracy, vision_learner as fvision_learner)
    from torchvision.models import resnet18 as tv_resnet18
    root = linked_subset(args.per_class, args.test_per_class)
    rows: dict[str, list[tuple[float, float]]] = {"deepfit": [], "fastai": []}
    final: dict[str, Any] = {}
    for r in range(args.repeats):
        for side in (("deepfit", "fastai") if r % 2 == 0 else ("fastai", "deepfit")):
            set_seed(args.seed)
            t, c = time.perf_counter(), cpu_s(children=True)
            if side == "deepfit":
                dls = ImageDataLoaders.from_folder(root, train="train", valid="test", size=32, bs=args.bs,
                                                   batch_tfms=[Flip()], num_workers=args.threads, seed=0)
                learn = vision_learner(dls, "resnet18", metrics=accuracy, progress=False, cbs=fast_cbs(args))
                learn.fit_one_cycle(args.epochs, args.lr)
                final[side] = learn.recorder.log[-1]
            else:
                fdls = FImageDataLoaders.from_folder(root, train="train", valid="test", bs=args.bs, seed=0,
                                                     batch_tfms=[FFlip(), FNormalize.from_stats(*_stats(root))],
                                                     num_workers=args.fastai_workers, device="cpu")
                flearn = fvision_learner(fdls, tv_resnet18, pretrained=False, metrics=faccuracy)
                if args.fast:  # fastai's channels-last (its mixed precision autocasts on CUDA only: not here)
                    flearn.to_channelslast(use_amp=False)
                with flearn.no_bar(), flearn.no_logging():
                    flearn.fit_one_cycle(args.epochs, args.lr)
                vals = flearn.recorder.values[-1]
                final[side] = {"train_loss": float(vals[0]), "valid_loss": float(vals[1]), "accuracy": float(vals[2])}
            rows[side].append((time.perf_counter() - t, cpu_s(children=True) - c))
            print(f"  run {r}: {side:8s} {rows[side][-1][0]:.1f} s wall, {rows[side][-1][1]:.1f} s CPU", flush=True)
    n_img = args.epochs * args.per_class * 10
    med = {k: statistics.median(w for w, _ in v) for k, v in rows.items()}
    med_cpu = {k: statistics.median(c for _, c in v) for k, v in rows.items()}
    res = {"mode": "fastai", "machine": machine(), "fastai": fastai.__version__, "fast": args.fast,
           "per_class": args.per_class,
           "test_per_class": args.test_per_class, "epochs": args.epochs, "bs": args.bs, "runs": rows,
           "images_per_s": {k: round(n_img / w, 1) for k, w in med.items()},
           "speedup": round(med["fastai"] / med["deepfit"], 2),
           "speedup_cpu": round(med_cpu["fastai"] / med_cpu["deepfit"], 2), "final": final}
    print(f"end to end, images/s (median of {args.repeats}): deepfit {res['images_per_s']['deepfit']}, fastai "
          f"{res['images_per_s']['fastai']}: deepfit {res['speedup']}x faster (CPU time, workers included: "
          f"{res['speedup_cpu']}x)")
    return res


def _stats(root: Path) -> tuple[list[float], list[float]]:
    # the same per-channel statistics deepfit's normalize="data" computes, for fastai's Normalize
    dls = ImageDataLoaders.from_folder(root, train="train", valid="test", size=32, bs=64, num_workers=1)
    return dls.mean, dls.std


# ---- transfer learning -----------------------------------------------------------------------------------
def run_transfer(args: argparse.Namespace) -> dict[str, Any]:
    full, _ = cifar_dls(argparse.Namespace(**{**vars(args), "n_train": None, "n_valid": None}), [Flip(), RandomCrop(padding=4)])
    x, y = full.train.tensors
    xv, yv = full.valid.tensors
    target = [CLASSES.index("cat"), CLASSES.index("dog")]
    source = [i for i in range(10) if i not in target]
    g = torch.Generator().manual_seed(0)

    def pick(xs: torch.Tensor, ys: torch.Tensor, classes: list[int], k: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        idx = []
        for c in classes:
            ci = torch.nonzero(ys == c).flatten()
            ci = ci[torch.randperm(len(ci), generator=g)][:k] if k else ci
            idx.append(ci)
        i = torch.cat(idx)
        remap = {c: j for j, c in enumerate(classes)}
        return xs[i], torch.tensor([remap[int(v)] for v in ys[i]])

    # 1. pre-train resnet20 on the 8 other classes
    xs, ys = pick(x, y, source, args.pre_per_class)
    xsv, ysv = pick(xv, yv, source, 100)
    pre = ImageDataLoaders.from_arrays(xs, ys, valid_x=xsv, valid_y=ysv, bs=args.bs, batch_tfms=[Flip(), RandomCrop(padding=4)],
                                       seed=0)
    set_seed(args.seed)
    t = time.perf_counter()
    body = resnet20(n_out=8)
    learn = Learner(pre, body, loss_func=CrossEntropyLoss(), metrics=accuracy, cbs=fast_cbs(args), progress=False)
    learn.fit_one_cycle(args.pre_epochs, 5e-3)
    pre_s = time.perf_counter() - t
    weights = Path(tempfile.mkdtemp()) / "resnet20_8classes.pth"
    torch.save(body.state_dict(), weights)
    # 2. cat / dog with 100 training images each
    xt, yt = pick(x, y, target, 100)
    xtv, ytv = pick(xv, yv, target, args.ft_test_per_class)
    small = ImageDataLoaders.from_arrays(xt, yt, valid_x=xtv, valid_y=ytv, classes=["cat", "dog"], bs=32,
                                         batch_tfms=[Flip(), RandomCrop(padding=4)], seed=0)
    out = {}
    for name, pretrained in (("fine_tune from 8 classes", weights), ("from scratch", False)):
        set_seed(args.seed)
        lrn = vision_learner(small, "resnet20", pretrained=pretrained, metrics=accuracy, cbs=fast_cbs(args),
                             progress=False)
        if pretrained:
            lrn.fine_tune(args.ft_epochs, 2e-3, freeze_epochs=2)
        else:
            lrn.fit_one_cycle(args.ft_epochs + 2, 2e-3)
        out[name] = lrn.recorder.log[-1]["accuracy"]
    res = {"mode": "transfer", "machine": machine(), "fast": args.fast, "pre_per_class": args.pre_per_class, "pre_epochs": args.pre_epochs,
           "pre_valid_acc": learn.recorder.log[-1]["accuracy"], "pre_s": round(pre_s, 1), "ft_epochs": args.ft_epochs,
           "ft_test_images": len(xtv),
           "cat_dog_test_acc": out}
    print(f"pre-training on 8 classes ({args.pre_per_class}/class, {args.pre_epochs} epochs, {pre_s:.0f} s): "
          f"valid acc {res['pre_valid_acc']:.3f}; cat vs dog (100 images each, "
          f"{len(xtv)} test images): "
          + ", ".join(f"{k} {v:.3f}" for k, v in out.items()))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["accuracy", "speedrun", "speed", "fastai", "transfer"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--wd", type=float, default=0.01)
    p.add_argument("--bs", type=int, default=256)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--widths", type=int, nargs="+", default=None,
                   help="FastNet's 4 widths (default 64 128 256 512) or AirbenchNet's 3 (speedrun, default 64 256 256)")
    p.add_argument("--random-flip", action="store_true", help="speedrun: random flips instead of AlternatingFlip")
    p.add_argument("--no-lookahead", action="store_true", help="speedrun: without Lookahead")
    p.add_argument("--valid-every-epoch", action="store_true", help="speedrun: test after every epoch (default: at the end)")
    p.add_argument("--n-train", type=int, default=None, help="train on this many images (default all 50,000)")
    p.add_argument("--n-valid", type=int, default=None, help="test on this many images (default all 10,000)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default=None, help="memory-mapped cache file of the decoded images (reused)")
    p.add_argument("--per-class", type=int, default=200, help="fastai mode: training images per class")
    p.add_argument("--test-per-class", type=int, default=50, help="fastai mode: test images per class")
    p.add_argument("--fastai-workers", type=int, default=None, help="fastai mode: its DataLoader workers (default its own)")
    p.add_argument("--pre-per-class", type=int, default=1000, help="transfer mode: pre-training images per class")
    p.add_argument("--pre-epochs", type=int, default=5)
    p.add_argument("--ft-epochs", type=int, default=6)
    p.add_argument("--ft-test-per-class", type=int, default=1000, help="transfer mode: cat/dog test images per class")
    p.add_argument("--fast", action=argparse.BooleanOptionalAction, default=True,
                   help="accuracy and transfer modes: channels-last + bf16 autocast (--no-fast: fp32)")
    p.add_argument("--json", default=None, help="append the result as one JSON line to this file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.widths is None:
        args.widths = [64, 256, 256] if args.mode == "speedrun" else [64, 128, 256, 512]
    if len(args.widths) != (3 if args.mode == "speedrun" else 4):
        p.error(f"--widths needs {3 if args.mode == 'speedrun' else 4} numbers in {args.mode} mode")
    if args.mode == "fastai" and args.fastai_workers is None:
        args.fastai_workers = args.threads
    res = {"accuracy": run_accuracy, "speedrun": run_speedrun, "speed": run_speed, "fastai": run_fastai, "transfer": run_transfer}[args.mode](args)
    res["command"] = " ".join(sys.argv)
    line = json.dumps(res, default=str)
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
