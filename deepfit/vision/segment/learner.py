"""Segmentation learners: `unet_learner` (a U-Net on any body), `tiramisu_learner` (FC-DenseNet) and
`SegmentationLearner` (per-class IoU, `show_results`).

Example:
    >>> learn = unet_learner(dls, "resnet34")
    >>> learn.fit_one_cycle(20, 1e-3)
    >>> learn.per_class_iou()          # {'Sky': 0.91, 'Building': 0.78, ...}
    >>> learn.show_results(fname="results.png")
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ...callbacks.core import Callback
from ...data.core import DataLoader
from ...optim import Adam
from ..learner import VisionLearner, _arch_fn, _n_in_of, load_pretrained
from .metrics import (MEDIAN_FREQUENCY_POWERS, confusion_matrix, iou_from_confusion, median_frequency_weights,
                      segmentation_loss, segmentation_metrics)
from .tiramisu import TIRAMISU_CONFIGS, FCDenseNet
from .unet import DynamicUnet

__all__ = ["SegmentationLearner", "unet_learner", "tiramisu_learner", "segmentation_learner"]


def _split_groups(model: nn.Module) -> list[Any]:
    return model.layer_groups()


def _decode(scores: torch.Tensor, void: int | None) -> torch.Tensor:
    """Predicted codes (N, H, W) from scores or probabilities (N, C, H, W); void is never chosen."""
    if void is not None and 0 <= void < scores.shape[1]:
        scores = scores.clone()
        scores[:, void] = -float("inf")
    return scores.argmax(1)


class SegmentationLearner(VisionLearner):
    """A `Learner` for segmentation models (scores (N, C, H, W) against masks (N, H, W)): the confusion
    matrix and IoU of every class, and `show_results`."""

    def _codes(self) -> tuple[list[str], int | None]:
        codes = list(getattr(self.dls, "codes", None) or getattr(self.dls, "vocab", []))
        return codes, getattr(self.dls, "void", None)

    def confusion(self, dl: DataLoader | None = None) -> torch.Tensor:
        """The (c, c) confusion matrix (rows true codes, columns predicted, void pixels left out) on `dl`
        (default validation), accumulated batch by batch on the device."""
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("No validation data: pass `dl=` (a loader of images and masks).")
        codes, void = self._codes()
        c = len(codes)
        cm = torch.zeros(c, c, dtype=torch.long, device=self.dls.device)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), dl.preserved_order():
                for batch in dl:
                    if len(batch) < 2:
                        raise ValueError("The loader has no masks: per-class IoU needs images and their masks.")
                    cm += confusion_matrix(self.model(batch[0]).float(), batch[1], c, void).to(cm.device)
        finally:
            self.model.train(was)
        return cm.cpu()

    def predict(self, item: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Segment one image (a file, PIL image or array; resized as the training images were).

        Returns:
            `(mask, codes, probabilities)`: the mask as a uint8 array (H, W) of codes, the same as a long
            tensor, and the class probabilities (C, H, W). Void is never predicted.
        """
        xb = self.dls.encode_item(item)
        xb = tuple(x.to(self.dls.device) for x in xb)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(*xb).float()
        finally:
            self.model.train(was)
        probs = torch.softmax(out, dim=1)
        _, void = self._codes()
        dec = _decode(probs, void)[0]
        return self.dls.decode_pred(dec), dec, probs[0]

    def tta(self, dl: DataLoader | None = None, tfms: Any = None, n: int = 1,
            beta: float = 0.5) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Test-time augmentation for segmentation: the class probabilities (N, C, H, W) on `dl` (default
        validation) averaged with those on the mirrored images, mirrored back: `beta * plain + (1 - beta) *
        mirrored`. Other transforms would move the pixels away from their masks, so `tfms` must be None."""
        if tfms is not None:
            raise ValueError("Segmentation TTA only mirrors the images (and mirrors the predictions back); other "
                             "transforms would misalign predictions and masks. Leave `tfms` unset.")
        if not 0 <= beta <= 1:
            raise ValueError(f"`beta` must be in [0, 1]; received beta={beta}.")
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("No validation data to run test-time augmentation on: pass `dl=`.")
        from ..learner import _with_input_tfm, hflip
        plain, targs = self.get_preds(dl)[:2]
        mirrored = self.get_preds(_with_input_tfm(dl, hflip))[0].flip(-1)
        return beta * plain + (1 - beta) * mirrored, targs

    def interpret(self, dl: DataLoader | None = None) -> Any:
        """Not a classifier's interpretation: use `per_class_iou`, `confusion` and `show_results`."""
        raise NotImplementedError("A segmentation model has no ClassificationInterpretation: use "
                                  "learn.per_class_iou(), learn.confusion() and learn.show_results().")

    def per_class_iou(self, dl: DataLoader | None = None) -> dict[str, float]:
        """IoU of every class (void left out; NaN for a class in neither the truth nor the predictions)."""
        codes, void = self._codes()
        classes = [i for i in range(len(codes)) if i != void]
        iou = iou_from_confusion(self.confusion(dl), classes)
        return {codes[i]: float(v) for i, v in zip(classes, iou)}

    def show_results(self, n: int = 4, dl: DataLoader | None = None,
                     fname: str | os.PathLike | None = None) -> Any:
        """Rows of image, true mask and predicted mask (overlays with a colour legend) for `n` images of `dl`
        (default validation); returns the figure (saved as PNG to `fname`)."""
        from .interpret import show_segmentation
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("No validation data: pass `dl=`.")
        codes, void = self._codes()
        xb, yb = dl.one_batch()[:2]
        xb, yb = xb[:n], yb[:n]
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                pred = _decode(self.model(xb).float(), void)
        finally:
            self.model.train(was)
        imgs = self.dls.decode_images(xb.detach().cpu())
        return show_segmentation(imgs, [yb.cpu(), pred.cpu()], codes, void, ["truth", "prediction"], fname=fname)


def _loss_and_metrics(dls: Any, n_out: int, loss_func: Callable | None, class_weights: Any,
                      metrics: Sequence[Any] | Any | None) -> tuple[Callable, Any]:
    void = getattr(dls, "void", None)
    if isinstance(class_weights, str):
        if class_weights not in MEDIAN_FREQUENCY_POWERS:
            raise ValueError(f"`class_weights` must be 'median', 'sqrt_median', one weight per code or None; "
                             f"received {class_weights!r}.")
        train = getattr(dls, "train", None)
        if train is None or len(getattr(train, "tensors", ())) < 2:
            raise ValueError(f"class_weights={class_weights!r} reads the training masks of `dls.train.tensors`; "
                             "these DataLoaders have none: pass one weight per code.")
        class_weights = median_frequency_weights(train.tensors[1], n_out, void, MEDIAN_FREQUENCY_POWERS[class_weights])
    if loss_func is None:
        loss_func = segmentation_loss(n_out, void, class_weights)
    elif class_weights is not None:
        raise ValueError("`class_weights` applies to the default loss; with `loss_func=` put the weights in it.")
    if metrics is None:
        metrics = segmentation_metrics(n_out, void)
    return loss_func, metrics


def _n_out(dls: Any, n_out: int | None) -> int:
    if n_out is not None:
        return int(n_out)
    c = getattr(dls, "c", None)
    if c is None:
        raise ValueError("Cannot tell the number of classes from these DataLoaders: pass `n_out=`.")
    return int(c)


def unet_learner(dls: Any, arch: str | Callable[..., nn.Module] = "resnet34",
                 pretrained: bool | str | Path = False, *, n_out: int | None = None, n_in: int | None = None,
                 cut: int | None = None, middle_mult: float = 2.0, loss_func: Callable | None = None,
                 class_weights: Sequence[float] | torch.Tensor | str | None = None,
                 metrics: Sequence[Any] | Any | None = None,
                 opt_func: Callable[..., torch.optim.Optimizer] = Adam, lr: float = 1e-3, wd: float | None = 1e-2,
                 cbs: Sequence[Callback] | Callback = (), path: str | Path | None = None,
                 model_dir: str | Path = "models", train_bn: bool = True,
                 moms: tuple[float, float, float] = (0.95, 0.85, 0.95), progress: bool = True) -> SegmentationLearner:
    """A `SegmentationLearner` with a `DynamicUnet` on `arch`'s body, in three layer groups (early encoder,
    late encoder, decoder). With pretrained weights the encoder is frozen (`fine_tune` trains the decoder
    first, then everything).

    Args:
        dls: `SegmentationDataLoaders` (or any loaders of images (N, C, H, W) and masks (N, H, W); then pass
            `n_out`).
        arch: a name of `deepfit.vision.models.ARCHS` ("resnet18", "resnet34", ...) or a function
            `arch(n_in=...) -> model` whose children are in forward order.
        pretrained: False, a local weight file, or True for torch's hub cache (never downloads).
        n_out: classes (default `dls.c`, void included when it is a code: it is ignored, never predicted).
        n_in: input channels (default the data's).
        cut, middle_mult: see `DynamicUnet`.
        loss_func: default cross entropy over the classes ignoring void (`segmentation_loss`), with optional
            `class_weights`: one per code, or "median" / "sqrt_median" to compute them from the training masks
            (`median_frequency_weights`, power 1 or 0.5; on CamVid "sqrt_median" beat "median" at equal
            compute, 52.9 against 48.1 mean IoU, and gave the benchmark's best run, 61.3).
        metrics: default pixel accuracy without void and mean IoU.
        opt_func, lr, wd, cbs, path, model_dir, train_bn, moms, progress: see `Learner`.
    """
    n_out = _n_out(dls, n_out)
    n_in = _n_in_of(dls) if n_in is None else int(n_in)
    name, fn = _arch_fn(arch)
    full = fn(n_in=n_in)
    if pretrained is not False and pretrained is not None:
        load_pretrained(full, pretrained, name, cut)
    size = getattr(dls, "size", None) or (128, 128)
    model = DynamicUnet(name if name is not None else fn, n_out=n_out, n_in=n_in, img_size=size, cut=cut,
                        middle_mult=middle_mult, full_model=full)
    loss_func, metrics = _loss_and_metrics(dls, n_out, loss_func, class_weights, metrics)
    learn = SegmentationLearner(dls, model, loss_func=loss_func, opt_func=opt_func, lr=lr, wd=wd, metrics=metrics,
                                cbs=cbs, splitter=_split_groups, path=getattr(dls, "path", ".") if path is None
                                else path, model_dir=model_dir, train_bn=train_bn, moms=moms, progress=progress)
    if pretrained:
        learn.freeze()
    return learn


def tiramisu_learner(dls: Any, arch: str = "fc_densenet103", *, n_out: int | None = None, n_in: int | None = None,
                     drop: float = 0.2, loss_func: Callable | None = None,
                     class_weights: Sequence[float] | torch.Tensor | str | None = None,
                     metrics: Sequence[Any] | Any | None = None, opt_func: Callable[..., torch.optim.Optimizer] = Adam,
                     lr: float = 1e-3, wd: float | None = 1e-4, cbs: Sequence[Callback] | Callback = (),
                     path: str | Path | None = None, model_dir: str | Path = "models",
                     progress: bool = True) -> SegmentationLearner:
    """A `SegmentationLearner` with an FC-DenseNet ("the one hundred layers tiramisu", trained from scratch).

    Args:
        arch: "fc_densenet56", "fc_densenet67" or "fc_densenet103".
        drop: dropout after every convolution (0.2 in the paper).
        Other arguments: as `unet_learner` (the paper uses weight decay 1e-4).
    """
    if arch not in TIRAMISU_CONFIGS:
        raise ValueError(f"Unknown FC-DenseNet {arch!r}; known: {', '.join(TIRAMISU_CONFIGS)}.")
    n_out = _n_out(dls, n_out)
    n_in = _n_in_of(dls) if n_in is None else int(n_in)
    model = FCDenseNet(n_out=n_out, n_in=n_in, drop=drop, **TIRAMISU_CONFIGS[arch])
    loss_func, metrics = _loss_and_metrics(dls, n_out, loss_func, class_weights, metrics)
    return SegmentationLearner(dls, model, loss_func=loss_func, opt_func=opt_func, lr=lr, wd=wd, metrics=metrics,
                               cbs=cbs, splitter=_split_groups, path=getattr(dls, "path", ".") if path is None
                               else path, model_dir=model_dir, progress=progress)


def segmentation_learner(dls: Any, arch: str = "resnet34", **kwargs: Any) -> SegmentationLearner:
    """`tiramisu_learner` for an FC-DenseNet name ("fc_densenet103"...), else `unet_learner`. Keyword
    arguments are passed on (each factory rejects those it does not take)."""
    if isinstance(arch, str) and arch in TIRAMISU_CONFIGS:
        return tiramisu_learner(dls, arch, **kwargs)
    return unet_learner(dls, arch, **kwargs)
