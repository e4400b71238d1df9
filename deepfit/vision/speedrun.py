"""CIFAR-10 fast: the training recipe of the speed records (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds
on a single GPU", airbench94) on deepfit's `Learner`.

The pieces, each a deepfit part that also works on its own:

* `AirbenchNet` (`deepfit.vision.models`): patch-whitening first layer set from the training images,
  three conv groups, batch norms with a learned shift only, partial-identity initialisation.
* Nesterov SGD (momentum 0.85) with L2 weight decay, the batch norms' shifts in their own parameter
  group with a 64x larger learning rate (and a 64x smaller decay), the whitening layer's bias trained
  for 3 epochs only (`FreezeWhiteningBias`), label smoothing 0.2, batches of 1,024.
* A triangular learning-rate schedule (`speedrun_schedule`): from 0.2x up to the peak at 23% of the
  steps, then linearly down to 0.07x.
* `Lookahead` (every 5 steps, a pull that grows to 0.95**5), `AlternatingFlip` and 2-pixel random
  translations (`RandomCrop(padding=2)`), channels-last and bf16 autocast (`fast=True`).
* Test-time augmentation over mirror images and 1-pixel translations (`speedrun_tta`).

Example:
    >>> dls = ImageDataLoaders.from_folder("cifar10", train="train", valid="test", size=32, bs=1024,
    ...                                    batch_tfms=[RandomCrop(padding=2)])
    >>> learn = speedrun_learner(dls)
    >>> fit_speedrun(learn, 10)
    >>> probs, targs = speedrun_tta(learn)
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from ..annealing import combine_scheds, sched_lin
from ..callbacks.averaging import Lookahead
from ..callbacks.core import Callback
from ..callbacks.precision import MixedPrecision
from ..callbacks.schedule import ParamScheduler
from ..data.core import DataLoader, DataLoaders
from ..learner import Learner
from ..losses import CrossEntropyLoss
from ..metrics import accuracy
from ..optim import SGD
from ..utils import listify
from .callbacks import AlternatingFlip, ChannelsLast
from .learner import VisionLearner, hflip
from .models.airbench import AirbenchNet, PatchWhitening, ShiftBatchNorm

__all__ = ["speedrun_learner", "fit_speedrun", "speedrun_schedule", "speedrun_tta", "speedrun_tta_tfms", "translate",
           "bias_splitter", "whitening_images", "FreezeWhiteningBias", "SPEEDRUN_TTA_WEIGHTS"]

#: The paper's learning rate for the mean loss at 1,024 images a batch (11.5 / (1 + 1 / (1 - 0.85))).
BASE_LR = 1.5
#: L2 weight decay of the weights, as a coefficient on the mean loss's gradient (0.0153 / 11.5).
BASE_WD = 0.0153 / 11.5


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (oneDNN's check: AVX-512 bf16 or AMX); without it bf16
    autocast is slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bias_splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """Two layer groups: every parameter but the batch norms' shifts, then those shifts (biases), to
    which the recipe gives 64x the learning rate."""
    norm_types = (ShiftBatchNorm, nn.modules.batchnorm._BatchNorm)
    shifts = [m.bias for m in model.modules() if isinstance(m, norm_types) and getattr(m, "bias", None) is not None]
    ids = {id(p) for p in shifts}
    return [[p for p in model.parameters() if id(p) not in ids], shifts]


class FreezeWhiteningBias(Callback):
    """Train the bias of the patch-whitening layer(s) for the first `epochs` epochs only (the recipe: 3)."""

    def __init__(self, epochs: int = 3) -> None:
        self.epochs = int(epochs)

    def _set(self, trains: bool) -> None:
        for m in self.learner.model.modules():
            if isinstance(m, PatchWhitening):
                m.bias.requires_grad_(trains)

    def before_epoch(self) -> None:
        self._set(self.learner.epoch < self.epochs)

    def after_fit(self) -> None:
        self._set(True)


def whitening_images(dls: DataLoaders, n: int = 5000, seed: int | None = 0) -> torch.Tensor:
    """`n` training images drawn at random (`seed`; folders list their images class by class, so the
    first `n` would be one class) as the model sees them: decoded and normalised, not augmented. The data
    the whitening layer is fitted to."""
    tfm = getattr(dls, "valid_tfm", None)  # decoding + normalisation without augmentation
    if tfm is None:
        raise TypeError("`whitening_images` needs image loaders (`ImageDataLoaders`).")
    x = dls.train.tensors[0]
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    idx = torch.randperm(len(x), generator=gen)[:n].to(x.device)
    return tfm((x[idx].to(dls.device),))[0].float()


def speedrun_learner(dls: DataLoaders, widths: Sequence[int] = (64, 256, 256), lr: float | None = None,
                     wd: float = BASE_WD, bias_scale: float = 64.0, mom: float = 0.85, label_smoothing: float = 0.2,
                     lookahead: bool = True, alternating_flip: bool = True, fast: bool | None = None,
                     n_whiten: int = 5000, seed: int | None = 0) -> VisionLearner:
    """A `VisionLearner` with an `AirbenchNet` whose whitening layer is fitted to the training images, and the
    paper's optimiser, loss and callbacks (see the module's docstring).

    Args:
        dls: image loaders (`ImageDataLoaders`; 32x32 images for the paper's setting). Give the training
            loader `RandomCrop(padding=2)` and no random `Flip` (`AlternatingFlip` does the flips).
        widths: channels of the net's three groups.
        lr: peak learning rate of the weights for the mean loss (default `BASE_LR` x batch size / 1024);
            the batch norms' shifts get `lr * bias_scale`.
        wd: L2 weight decay of the weights (the shifts: `wd / bias_scale`).
        mom: Nesterov momentum.
        label_smoothing: of the cross-entropy loss.
        lookahead, alternating_flip: add `Lookahead()` and `AlternatingFlip(seed)`.
        fast: channels-last and `MixedPrecision()` (bf16 autocast on a CPU, fp16 on CUDA); default: on
            CUDA and on CPUs with bf16 instructions (AVX-512 bf16 / AMX), where it pays; off elsewhere.
        n_whiten: training images (drawn at random) the whitening layer is fitted to.
        seed: seed of the model's initialisation and of the flip bits (None: not seeded).
    """
    if seed is not None:
        torch.manual_seed(seed)
    model = AirbenchNet(widths, n_out=dls.c, n_in=dls.train.tensors[0].shape[1])
    model.init_whitening(whitening_images(dls, n_whiten, seed).cpu())
    lr = BASE_LR * dls.train.bs / 1024 if lr is None else float(lr)
    cbs: list[Callback] = [FreezeWhiteningBias(3)]
    if lookahead:
        cbs.append(Lookahead())
    if alternating_flip:
        cbs.append(AlternatingFlip(seed))
    if fast is None:
        fast = dls.device.type == "cuda" or (dls.device.type == "cpu" and cpu_has_bf16())
    if fast:
        cbs += [ChannelsLast(), MixedPrecision()]

    def opt_func(groups: list, lr: float) -> SGD:
        return SGD(groups, lr=lr, mom=mom, nesterov=True, decouple_wd=False)

    learn = VisionLearner(dls, model.to(dls.device), loss_func=CrossEntropyLoss(label_smoothing=label_smoothing),
                    opt_func=opt_func, lr=lr, wd=[wd, wd / bias_scale], splitter=bias_splitter, metrics=accuracy,
                    cbs=cbs)
    learn.speedrun_lrs = [lr, lr * bias_scale]
    return learn


def speedrun_schedule(lrs: Sequence[float], warmup: float = 0.23, start: float = 0.2, end: float = 0.07) -> Callable:
    """Triangular: `start * lr` rising linearly to `lr` at `warmup` of training, then falling linearly to
    `end * lr` (one value per parameter group)."""
    peak = np.asarray(lrs, dtype=float)
    return combine_scheds([warmup, 1 - warmup], [sched_lin(start * peak, peak), sched_lin(peak, end * peak)])


def fit_speedrun(learn: Learner, n_epoch: int, lrs: Sequence[float] | None = None, warmup: float = 0.23,
                 start: float = 0.2, end: float = 0.07, cbs: Sequence[Callback] | Callback = (),
                 resume_from: str | Path | None = None) -> None:
    """Train `n_epoch` epochs with the triangular schedule (`speedrun_schedule`) over the learner's two
    parameter groups (default rates: those `speedrun_learner` chose). `cbs`, `resume_from`: see
    `Learner.fit`."""
    lrs = list(lrs) if lrs is not None else getattr(learn, "speedrun_lrs", None)
    if lrs is None:
        raise ValueError("Pass `lrs` (one peak rate per parameter group) for a learner not made by speedrun_learner.")
    learn.fit(n_epoch, lr=lrs, cbs=[ParamScheduler({"lr": speedrun_schedule(lrs, warmup, start, end)})] + listify(cbs),
              resume_from=resume_from)


def translate(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift a batch (N, C, H, W) by whole pixels, `dy` down and `dx` right, reflecting at the border."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx))
    if p == 0:
        return x
    xp = F.pad(x, (p, p, p, p), mode="reflect")
    return xp[..., p - dy:p - dy + h, p - dx:p - dx + w]


def speedrun_tta_tfms() -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The test-time transforms of the records, for `learn.tta(tfms=..., weights=SPEEDRUN_TTA_WEIGHTS,
    beta=0.25)`: the mirror image, then the plain and mirror images shifted by one pixel down-right and
    up-left. With those weights: 1/4 for the plain and the mirror image, 1/8 for each of the other four."""
    def shift(dy: int, dx: int, flip: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        def tfm(x: torch.Tensor) -> torch.Tensor:
            return translate(hflip(x) if flip else x, dy, dx)
        return tfm
    return [hflip, shift(1, 1, False), shift(1, 1, True), shift(-1, -1, False), shift(-1, -1, True)]


#: Relative weights of `speedrun_tta_tfms()` in the augmented mean (the mirror counts as much as the plain image).
SPEEDRUN_TTA_WEIGHTS = (2.0, 1.0, 1.0, 1.0, 1.0)


def speedrun_tta(learn: VisionLearner, dl: DataLoader | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`learn.tta` with `speedrun_tta_tfms()`: (probabilities, targets) on `dl` (default validation)."""
    return learn.tta(dl, tfms=speedrun_tta_tfms(), beta=0.25, weights=SPEEDRUN_TTA_WEIGHTS)
