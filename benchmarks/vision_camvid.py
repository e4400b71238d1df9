"""CamVid segmentation with deepfit.vision.segment: a U-Net (or FC-DenseNet) trained from scratch on the
SegNet version of CamVid (367 train / 101 val images, 11 classes + void code 11), with a hard wall-time
budget, evaluated on the validation set: pixel accuracy without void, mean IoU, per-class IoU.

The data: `$DEEPFIT_DATA/camvid/{train,trainannot,val,valannot}/*.png` and `codes.txt`. Images and masks
are decoded once at `--size` (default half resolution, 180x240).

The schedule: 1cycle over the wall-time budget (`--budget-min`) rather than over a number of epochs: the
learning rate and momentum of each batch come from the fraction of the budget used so far, and training
stops when it is spent (on a shared CPU the speed varies with the other jobs; the annealing still ends
with the budget). There is no validation during training; the model is evaluated at the end. Training
uses random crops (`--crop`) of the images with flips, small rotations, zooms and lighting; validation uses
the whole images.

Anchors (on CamVid's test split, 233 images, at full resolution 360x480): SegNet 50.2 mean IoU / 88.6%
global accuracy; FC-DenseNet103 66.9 / 91.5; the 2017 fastai course's Tiramisu from scratch 89.6%
non-void accuracy. Our numbers are on the validation split (101 images), at the size used.

Run:  nice -n 5 .venv/bin/python benchmarks/vision_camvid.py --arch resnet18 --budget-min 40 --threads 1
      --out runs/camvid          (writes results.json, iou.png, results.png, train.log there)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deepfit import set_seed  # noqa: E402
from deepfit import schedule as sched  # noqa: E402
from deepfit.callbacks import MixedPrecision  # noqa: E402
from deepfit.callbacks.core import Callback, CancelFit, CancelValidate  # noqa: E402
from deepfit.optim import set_hyper  # noqa: E402
from deepfit.vision import Brightness, ChannelsLast, Contrast, Flip, RandomCrop, Rotate, Zoom  # noqa: E402
from deepfit.vision.segment import (SegmentationDataLoaders, iou_from_confusion, median_frequency_weights,
                                    plot_class_iou, segmentation_learner)  # noqa: E402

DATA = Path(os.environ.get("DEEPFIT_DATA", REPO.parent / "shared" / "data")) / "camvid"
ANCHORS = {"SegNet (test, full res.)": (50.2, 88.6), "FC-DenseNet103 (test, full res.)": (66.9, 91.5)}


class TimedOneCycle(Callback):
    """1cycle over a wall-time budget instead of a number of epochs: before every training batch the
    learning rate and momentum are set from the schedule at `elapsed / seconds`, and the fit stops once
    `seconds` have passed. On a shared CPU, where the speed changes with the other jobs, the annealing still
    ends when the budget does. Validation is skipped during the fit (the model is evaluated at the end)."""

    order = 70  # after the Recorder (50), so that it has started the validation it then sees cancelled

    def __init__(self, seconds: float, lr_max: float, pct_start: float = 0.25) -> None:
        self.seconds = seconds
        self.scheds = sched.one_cycle(lr_max, pct_start=pct_start)
        self.start = 0.0
        self.stopped_in_epoch: int | None = None

    def before_fit(self) -> None:
        self.start = time.perf_counter()

    def before_batch(self) -> None:
        if not self.learner.training:
            return
        pos = (time.perf_counter() - self.start) / self.seconds
        if pos >= 1:
            self.stopped_in_epoch = self.learner.epoch
            raise CancelFit()
        for name, s in self.scheds.items():
            set_hyper(self.learner.opt, name, s(pos))

    def before_validate(self) -> None:
        raise CancelValidate()


class EpochLog(Callback):
    """Print one line per epoch (losses, metrics, elapsed minutes) and flush it (for a log file)."""

    order = 60  # after the Recorder has logged the epoch

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def after_epoch(self) -> None:
        rec = self.learner.recorder
        row = rec.log[-1] if getattr(rec, "log", None) else None
        lr = self.learner.opt.param_groups[-1]["lr"]
        print(f"epoch {self.learner.epoch}: {row}, lr {lr:.2e} ({(time.perf_counter() - self.t0) / 60:.1f} min)",
              flush=True)


def make_dls(args: argparse.Namespace) -> SegmentationDataLoaders:
    h, w = args.size
    tfms: list[Any] = []
    if args.crop:
        tfms.append(RandomCrop(size=tuple(args.crop), padding=0))
    tfms += [Flip(p=0.5), Rotate(max_deg=args.max_rotate, p=0.75), Zoom(max_zoom=args.max_zoom, p=0.75),
             Brightness(0.2, p=0.75), Contrast(0.2, p=0.75)]
    return SegmentationDataLoaders.from_folders(
        DATA / "train", DATA / "trainannot", codes=DATA / "codes.txt", void=11, valid_images=DATA / "val",
        valid_masks=DATA / "valannot", size=(h, w), resize="squash", bs=args.bs, val_bs=args.bs * 2,
        batch_tfms=tfms, seed=args.seed, num_workers=args.threads, device="cpu")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="resnet18", help="U-Net body (resnet18, resnet34...) or fc_densenet56/67/103")
    p.add_argument("--size", type=int, nargs=2, default=[180, 240], help="height width of images and masks")
    p.add_argument("--crop", type=int, nargs=2, default=[128, 160], help="training crop (0 0: whole images)")
    p.add_argument("--bs", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--wd", type=float, default=1e-2)
    p.add_argument("--max-rotate", type=float, default=10.0)
    p.add_argument("--max-zoom", type=float, default=1.2)
    p.add_argument("--budget-min", type=float, default=40.0, help="hard wall-time budget of the training, minutes")
    p.add_argument("--class-weights", choices=["none", "median", "sqrt"], default="none",
                   help="weights of the loss per class: none, median frequency balancing, or its square root "
                        "(a softer balance)")
    p.add_argument("--bf16", action="store_true", help="train under bf16 autocast (MixedPrecision)")
    p.add_argument("--channels-last", action="store_true", help="images and weights in channels-last memory format")
    p.add_argument("--max-epochs", type=int, default=1000, help="stop after this many epochs if the budget lasts")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="runs/camvid")
    args = p.parse_args()
    if args.crop == [0, 0]:
        args.crop = None
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    dls = make_dls(args)
    load_s = time.perf_counter() - t0
    print(f"data: {dls} decoded in {load_s:.1f} s", flush=True)
    budget = TimedOneCycle(args.budget_min * 60, args.lr)
    weights = None if args.class_weights == "none" else median_frequency_weights(
        dls.train.tensors[1], dls.c, dls.void, power=0.5 if args.class_weights == "sqrt" else 1.0)
    if weights is not None:
        shown = ", ".join(f"{dls.codes[i]} {w:.2f}" for i, w in enumerate(weights) if i != dls.void)
        print(f"class weights ({args.class_weights} median frequency): {shown}", flush=True)
    learn = segmentation_learner(dls, args.arch, lr=args.lr, wd=args.wd, progress=False, metrics=[],
                                 class_weights=weights)
    n_params = sum(q.numel() for q in learn.model.parameters())
    print(f"{args.arch}: {n_params / 1e6:.1f}M parameters; 1cycle over {args.budget_min} min of wall time", flush=True)
    t = time.perf_counter()
    extra: list[Any] = ([MixedPrecision(torch.bfloat16)] if args.bf16 else []) + \
        ([ChannelsLast()] if args.channels_last else [])
    learn.fit(args.max_epochs, args.lr, cbs=[budget, EpochLog()] + extra)
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    cm = learn.confusion()
    iou = {dls.codes[k]: float(v) for k, v in zip(dls.class_codes, iou_from_confusion(cm, dls.class_codes))}
    eval_s = time.perf_counter() - t
    acc = float(cm.double().trace() / cm.sum())
    finite = [v for v in iou.values() if not math.isnan(v)]
    miou = sum(finite) / len(finite)
    plot_class_iou(iou, fname=out / "iou.png", title=f"CamVid val, U-Net {args.arch}" if not
                   args.arch.startswith("fc_") else f"CamVid val, {args.arch}")
    learn.show_results(n=4, fname=out / "results.png")
    res = {"arch": args.arch, "params_M": round(n_params / 1e6, 2), "size": args.size, "crop": args.crop,
           "bs": args.bs, "lr": args.lr, "wd": args.wd, "class_weights": weights, "bf16": args.bf16,
           "channels_last": args.channels_last,
           "epochs": len(learn.recorder.log),
           "stopped_in_epoch": budget.stopped_in_epoch, "budget_min": args.budget_min,
           "train_min": round(train_s / 60, 1), "decode_s": round(load_s, 1), "eval_s": round(eval_s, 1),
           "threads": args.threads, "val_pixel_accuracy": round(100 * acc, 2), "val_mean_iou": round(100 * miou, 2),
           "val_iou": {k: round(100 * v, 1) for k, v in iou.items()}, "torch": torch.__version__,
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "history": [{k: (round(float(v), 4) if isinstance(v, (int, float)) else v) for k, v in r.items()
                        if k != "valid_loss"} for r in learn.recorder.log]}  # (validation is skipped while training)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    print(f"val pixel accuracy (non-void) {res['val_pixel_accuracy']}%, mean IoU {res['val_mean_iou']}% after "
          f"{res['train_min']} min of training")
    for k, (m, a) in ANCHORS.items():
        print(f"  anchor {k}: mean IoU {m}, global accuracy {a}%")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
