"""Segmentation metrics from one confusion matrix accumulated on the device, and the loss.

Every metric here counts, over the validation pixels whose true code is not void, how often true class i
was predicted as class j (`confusion_matrix`): a (c, c) integer tensor summed batch after batch with one
`bincount` on the device (no host sync until `value`). From it:

- pixel accuracy without void: trace / total;
- IoU of class k: TP / (TP + FP + FN) = cm[k, k] / (row k + column k - cm[k, k]); a class absent from both
  the truth and the predictions has no IoU (NaN) and is left out of the mean;
- mean IoU: the mean of the classes' IoUs (void excluded).

The predicted class is the arg-max over the class scores with the void code excluded, as in
`CrossEntropyLoss(axis=1, ignore_index=void).decode`.

Example:
    >>> learn = unet_learner(dls, "resnet18", metrics=[PixelAccuracy(void=11), MeanIoU(12, void=11)])
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ...losses import CrossEntropyLoss
from ...metrics import Metric, StateComm

__all__ = ["confusion_matrix", "iou_from_confusion", "ConfusionMetric", "PixelAccuracy", "MeanIoU", "ClassIoU",
           "segmentation_loss", "segmentation_metrics"]


def _predicted(pred: Tensor, void: int | None) -> Tensor:
    """Class codes predicted from scores (N, C, H, W) (void never chosen), or codes (N, H, W) as given."""
    if pred.is_floating_point() and pred.ndim >= 2:
        if void is not None and 0 <= void < pred.shape[1]:
            pred = pred.detach().clone()
            pred[:, void] = -float("inf")
        return pred.argmax(1)
    return pred.long()


def confusion_matrix(pred: Tensor, targ: Tensor, c: int, void: int | None = None) -> Tensor:
    """(c, c) counts: row = true code, column = predicted code, over the pixels whose truth is not void.

    Args:
        pred: scores (N, C, H, W) (arg-max over C, void excluded) or predicted codes (N, H, W).
        targ: true codes (N, H, W).
        c: the number of codes (void included when it is one of them).
        void: the code to leave out.
    """
    p = _predicted(pred, void).reshape(-1)
    t = targ.reshape(-1).long()
    if p.shape != t.shape:
        raise ValueError(f"Segmentation metrics: predictions of {tuple(pred.shape)} do not match targets of "
                         f"{tuple(targ.shape)} (need scores (N, C, H, W) or codes (N, H, W) for masks (N, H, W)).")
    keep = (t >= 0) & (t < c)
    if void is not None:
        keep &= t != void
    t, p = t[keep], p[keep].clamp(0, c - 1)
    return torch.bincount(t * c + p, minlength=c * c).reshape(c, c)


def iou_from_confusion(cm: Tensor, classes: Sequence[int] | None = None) -> Tensor:
    """IoU per class (float64, NaN for a class absent from truth and predictions) from a confusion matrix."""
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
    return iou if classes is None else iou[list(classes)]


class ConfusionMetric(Metric):
    """Base of the segmentation metrics: accumulates `confusion_matrix` on the device.

    Args:
        c: the number of codes (the model's outputs).
        void: the code ignored (None: none).
        name: shown in logs.
    """

    def __init__(self, c: int, void: int | None = None, name: str | None = None) -> None:
        if c < 1:
            raise ValueError(f"`c` (the number of codes) must be at least 1; received c={c!r}.")
        self.c, self.void = int(c), void
        super().__init__(name)

    def reset(self) -> None:
        self.cm: Tensor | None = None

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        cm = confusion_matrix(pred, targ, self.c, self.void)
        self.cm = cm if self.cm is None else self.cm + cm

    def sync(self, comm: StateComm) -> None:
        cm = self.cm if self.cm is not None else torch.zeros(self.c, self.c, dtype=torch.long)
        self.cm = comm.sum(cm)

    @property
    def classes(self) -> list[int]:
        """The codes that are classes (void left out)."""
        return [i for i in range(self.c) if i != self.void]

    @property
    def per_class(self) -> list[float]:
        """IoU of every class (code order, void left out; NaN where a class is in neither truth nor prediction)."""
        if self.cm is None:
            return [math.nan] * len(self.classes)
        return iou_from_confusion(self.cm, self.classes).tolist()


class PixelAccuracy(ConfusionMetric):
    """The fraction of non-void pixels whose class is predicted right."""

    def __init__(self, c: int, void: int | None = None, name: str | None = "pixel_accuracy") -> None:
        super().__init__(c, void, name)

    @property
    def value(self) -> float:
        if self.cm is None or int(self.cm.sum()) == 0:
            return math.nan
        return float(self.cm.double().trace() / self.cm.sum())


class MeanIoU(ConfusionMetric):
    """The mean over classes (void excluded) of intersection over union; classes in neither the truth nor
    the predictions are left out of the mean. `per_class` gives every class's IoU."""

    def __init__(self, c: int, void: int | None = None, name: str | None = "mean_iou") -> None:
        super().__init__(c, void, name)

    @property
    def value(self) -> float:
        iou = torch.tensor(self.per_class, dtype=torch.float64)
        iou = iou[~iou.isnan()]
        return float(iou.mean()) if len(iou) else math.nan


class ClassIoU(ConfusionMetric):
    """The IoU of one class (`code`), e.g. to log the pedestrians' IoU every epoch."""

    def __init__(self, c: int, code: int, void: int | None = None, name: str | None = None) -> None:
        if not 0 <= code < c or code == void:
            raise ValueError(f"`code` must be a class code in 0..{c - 1} other than void; received code={code!r}.")
        self.code = int(code)
        super().__init__(c, void, name or f"iou_{code}")

    @property
    def value(self) -> float:
        if self.cm is None:
            return math.nan
        return float(iou_from_confusion(self.cm)[self.code])


def segmentation_loss(c: int, void: int | None = None, weight: Sequence[float] | Tensor | None = None,
                      label_smoothing: float = 0.0) -> CrossEntropyLoss:
    """Cross entropy over the class dimension of (N, C, H, W) scores, ignoring `void` pixels.

    Args:
        c: the number of codes (the model's outputs).
        void: the code ignored (None: every pixel counts).
        weight: optional class weights (one per code; the loss is the weighted mean over counted pixels).
        label_smoothing: epsilon of label smoothing.
    """
    w = None
    if weight is not None:
        w = torch.as_tensor(weight, dtype=torch.float32).reshape(-1)
        if len(w) != c:
            raise ValueError(f"`weight` needs one value per code ({c}); received {len(w)}.")
        if (w < 0).any() or not torch.isfinite(w).all():
            raise ValueError("`weight` values must be finite and >= 0.")
    return CrossEntropyLoss(weight=w, label_smoothing=label_smoothing, axis=1,
                            ignore_index=-100 if void is None else int(void))


#: The named class weightings of the segmentation learners (`class_weights=`, `--class-weights`): the power
#: `median_frequency_weights` raises the median-frequency weights to.
MEDIAN_FREQUENCY_POWERS = {"median": 1.0, "sqrt_median": 0.5}


def median_frequency_weights(masks: Tensor, c: int, void: int | None = None, power: float = 1.0) -> list[float]:
    """Class weights by median frequency balancing (Eigen & Fergus 2015; SegNet trains CamVid with them).

    The frequency of class k is its pixels divided by the pixels of the images in which k appears at all;
    its weight is the median of those frequencies over the classes divided by its own, raised to `power`
    (1: the paper's; 0.5: a softer balance that costs the large classes less). Void and classes absent from
    every mask get 0.

    Args:
        masks: (N, H, W) integer label maps (e.g. `dls.train.tensors[1]`).
        c: the number of codes.
        void: the code left out (None: none).
        power: the exponent applied to the weights.
    """
    y = torch.as_tensor(masks).long()
    if y.ndim != 3:
        raise ValueError(f"`masks` must be (N, H, W) label maps; received shape {tuple(y.shape)}.")
    counts = torch.stack([(y == k).sum(dim=(1, 2)) for k in range(c)], 1).double()  # (images, codes)
    present = (counts > 0).double().sum(0) * float(y.shape[1] * y.shape[2])
    freq = counts.sum(0) / present.clamp(min=1)
    classes = [k for k in range(c) if k != void and freq[k] > 0]
    w = torch.zeros(c, dtype=torch.float64)
    if classes:
        med = torch.quantile(freq[classes], 0.5)  # the mean of the two middle ones for an even count
        w[classes] = (med / freq[classes]) ** power
    return w.tolist()


def segmentation_metrics(c: int, void: int | None = None) -> list[Metric]:
    """The default metrics: pixel accuracy without void and mean IoU."""
    return [PixelAccuracy(c, void), MeanIoU(c, void)]
