"""Training extras for images: MixUp, channels-last memory format, alternating flips, and progressive
resizing.

Mixed precision is the core's `deepfit.MixedPrecision` callback (bf16 autocast on the CPU, fp16 with a
gradient scaler on CUDA); it works unchanged with the vision models.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..callbacks.core import Callback

__all__ = ["MixUp", "ChannelsLast", "AlternatingFlip", "progressive_resize", "resize_dls"]


class MixUp(Callback):
    """MixUp (Zhang et al. 2018): train on convex combinations of pairs of images, with the loss the
    same combination of the losses against both labels.

    Each training batch: `lam ~ Beta(alpha, alpha)` per image, taken as `max(lam, 1 - lam)` so the
    image keeps its own label's weight above one half; a random permutation `perm` of the batch;
    `x <- lam * x + (1 - lam) * x[perm]`; loss `mean(lam * l(pred, y) + (1 - lam) * l(pred, y[perm]))`
    with the learner's loss per image. Validation and prediction are untouched. `lam` and `perm` of
    the last batch are kept as attributes.

    Args:
        alpha: Beta parameter (0.4 is common; smaller mixes less).
        seed: seed of the mixing's own generators (default: drawn from torch's global RNG at the start
            of each fit, so `set_seed` makes runs repeat).
    """

    run_valid = False
    order = 5

    def __init__(self, alpha: float = 0.4, seed: int | None = None) -> None:
        if not alpha > 0:
            raise ValueError(f"`alpha` must be positive; received alpha={alpha}.")
        self.alpha, self.seed = float(alpha), seed
        self.lam: torch.Tensor | None = None
        self.perm: torch.Tensor | None = None
        self._y_b: tuple = ()
        self._old_loss: Any = None

    def before_fit(self) -> None:
        seed = self.seed if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
        self._np = np.random.default_rng(seed)
        self._gen = torch.Generator().manual_seed(seed)
        self._old_loss = self.learner.loss_func
        if not hasattr(self._old_loss, "reduction"):
            raise TypeError(f"MixUp needs a loss with a `reduction` attribute (deepfit's or torch's loss classes); "
                            f"received {type(self._old_loss).__name__}.")
        self.learner.loss_func = _MixedLoss(self)

    def after_fit(self) -> None:
        if self._old_loss is not None:
            self.learner.loss_func = self._old_loss
            self._old_loss = None

    def before_batch(self) -> None:
        learn = self.learner
        x = learn.xb[0]
        bs = x.shape[0]
        lam = torch.from_numpy(self._np.beta(self.alpha, self.alpha, size=bs)).float()
        lam = torch.maximum(lam, 1 - lam).to(x.device)
        perm = torch.randperm(bs, generator=self._gen).to(x.device)
        shape = (bs,) + (1,) * (x.ndim - 1)
        mixed = torch.lerp(x[perm], x, lam.reshape(shape).to(x.dtype))  # lam * x + (1 - lam) * x[perm]
        learn.xb = (mixed,) + tuple(learn.xb[1:])
        self.lam, self.perm = lam, perm
        self._y_b = tuple(y[perm] for y in learn.yb)


class _MixedLoss(torch.nn.Module):
    """The loss MixUp puts on the learner during a fit: mixed while training, the plain loss otherwise.
    Exposes the wrapped loss's activation / decoding, so predictions are unchanged."""

    def __init__(self, mix: MixUp) -> None:
        super().__init__()
        self.mix = mix
        self.base = mix._old_loss

    @property
    def reduction(self) -> str:
        return self.base.reduction

    @reduction.setter
    def reduction(self, value: str) -> None:
        self.base.reduction = value

    def forward(self, pred: torch.Tensor, *yb: torch.Tensor) -> torch.Tensor:
        mix = self.mix
        if not mix.learner.training or mix.lam is None:
            return self.base(pred, *yb)
        old = self.base.reduction
        self.base.reduction = "none"
        try:
            la = self.base(pred, *yb)
            lb = self.base(pred, *mix._y_b)
        finally:
            self.base.reduction = old
        lam = mix.lam.reshape((-1,) + (1,) * (la.ndim - 1)).to(la.dtype)
        loss = torch.lerp(lb, la, lam)
        return loss.mean() if old == "mean" else (loss.sum() if old == "sum" else loss)

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        from ..losses import activation_for
        return activation_for(self.base)(x)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        from ..losses import decode_for
        return decode_for(self.base)(x)


class ChannelsLast(Callback):
    """Train in the channels-last memory format (NHWC): the model's 4-d weights and every 4-d input batch
    are converted. Convolutions on recent CPUs (oneDNN) and on tensor-core GPUs are often faster
    so; the results are the same up to floating-point rounding. Measure before relying on it."""

    order = -5

    def before_fit(self) -> None:
        self.learner.model.to(memory_format=torch.channels_last)

    def before_batch(self) -> None:
        learn = self.learner
        learn.xb = tuple(x.contiguous(memory_format=torch.channels_last) if isinstance(x, torch.Tensor) and x.ndim == 4
                         else x for x in learn.xb)


class AlternatingFlip(Callback):
    """Mirror training images in alternate epochs instead of at random (Jordan 2024): each training image
    gets a random bit once; in even epochs (0, 2, ...) the images whose bit is set are mirrored, in odd
    epochs the others. Every image is so seen both ways in every two epochs, which random flips only
    give on average. Use it instead of a random `Flip` in the loader's `batch_tfms`; validation batches
    are left alone.

    Args:
        seed: seed of the bits (None: torch's global generator).
    """

    order = -6  # before ChannelsLast and the model

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.bits: torch.Tensor | None = None

    def before_fit(self) -> None:
        dl = self.learner.dls.train
        n = len(dl.tensors[0])
        gen = torch.Generator().manual_seed(self.seed) if self.seed is not None else None
        self.bits = (torch.rand(n, generator=gen) < 0.5).to(dl.tensors[0].device)

    def before_batch(self) -> None:
        learn = self.learner
        if not learn.training or self.bits is None:
            return
        x = learn.xb[0]
        flip = self.bits[learn.dl.batch_indices].to(x.device) ^ bool(learn.epoch % 2)
        learn.xb = (torch.where(flip.view(-1, *([1] * (x.ndim - 1))), x.flip(-1), x),) + tuple(learn.xb[1:])

    def state_dict(self) -> dict[str, Any]:
        return {"bits": self.bits.cpu() if self.bits is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("bits") is not None and self.bits is not None:
            self.bits.copy_(state["bits"])


def resize_dls(dls: Any, size: int | tuple[int, int]) -> Any:
    """`dls` at another image size, through its `resized(size)` (or `new_size(size)`) method; the
    method may return new DataLoaders or resize in place (returning None)."""
    for name in ("resized", "new_size"):
        method = getattr(dls, name, None)
        if callable(method):
            out = method(size)
            return dls if out is None else out
    raise TypeError(f"{type(dls).__name__} cannot change its image size (no `resized` method): progressive "
                    "resizing needs ImageDataLoaders.")


def progressive_resize(learn: Any, sizes: Sequence[int | tuple[int, int]], epochs: int | Sequence[int],
                       lr: Any = None, **fit_kwargs: Any) -> None:
    """Progressive resizing: train at small images first, then at larger ones (the same weights: every
    deepfit vision model pools adaptively, so it accepts any size). For each size in turn the data
    are resized and `learn.fit_one_cycle(epochs_i, lr, **fit_kwargs)` runs.

    Args:
        learn: a Learner on image DataLoaders that can resize (`ImageDataLoaders`).
        sizes: image sizes in order, e.g. (64, 128, 224).
        epochs: epochs per size (one number for all, or one per size).
        lr: the rate for each `fit_one_cycle` (default the learner's).
        fit_kwargs: passed to `fit_one_cycle` (e.g. wd, cbs).

    Example:
        >>> progressive_resize(learn, sizes=(64, 128), epochs=(3, 2), lr=1e-3)
    """
    eps = [int(epochs)] * len(sizes) if isinstance(epochs, (int, np.integer)) else [int(e) for e in epochs]
    if len(eps) != len(sizes):
        raise ValueError(f"`epochs` gives {len(eps)} values for {len(sizes)} sizes.")
    for size, ep in zip(sizes, eps):
        learn.dls = resize_dls(learn.dls, size)
        learn.fit_one_cycle(ep, lr, **fit_kwargs)
