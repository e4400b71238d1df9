"""What a trained image classifier gets wrong: the confusion matrix, the most confused pairs of
classes, and the images with the highest loss shown with prediction / actual / loss / probability.

Example:
    >>> interp = ClassificationInterpretation.from_learner(learn)
    >>> interp.plot_confusion_matrix(fname="confusion.png")
    >>> interp.most_confused(min_val=2)
    >>> interp.plot_top_losses(9, fname="top_losses.png")
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data.core import DataLoader
from ..plotting import finish_figure, pyplot

__all__ = ["ClassificationInterpretation"]


class ClassificationInterpretation:
    """Predictions, targets and per-image losses of a single-label classifier on one loader.

    Args:
        learn: the trained learner.
        dl: the loader the predictions were made on (its images are shown by `plot_top_losses`).
        probs: (N, c) class probabilities; targs: (N,) class indices; losses: (N,) per-image losses.
        vocab: class names (default the data's `vocab`, else "0", "1", ...).
    """

    def __init__(self, learn: Any, dl: DataLoader, probs: torch.Tensor, targs: torch.Tensor, losses: torch.Tensor,
                 vocab: Sequence[str] | None = None) -> None:
        self.learn, self.dl = learn, dl
        self.probs, self.targs, self.losses = probs.float().cpu(), targs.long().cpu(), losses.float().cpu()
        self.preds = self.probs.argmax(dim=1)
        c = self.probs.shape[1]
        self.vocab = [str(v) for v in vocab] if vocab is not None else [str(i) for i in range(c)]
        if len(self.vocab) != c:
            raise ValueError(f"{len(self.vocab)} class names for predictions over {c} classes.")

    @classmethod
    def from_learner(cls, learn: Any, dl: DataLoader | None = None) -> "ClassificationInterpretation":
        """Predict on `dl` (default the validation loader) and keep what interpretation needs."""
        if getattr(learn.dls, "multi_label", False):
            raise ValueError("ClassificationInterpretation is for single-label classifiers; this data is multi-label "
                             "(a confusion matrix needs one class per image).")
        dl = dl if dl is not None else learn.dls.valid
        if dl is None:
            raise ValueError("No validation data to interpret: pass `dl=`.")
        probs, targs, losses = learn.get_preds(dl, with_loss=True)
        if targs is None:
            raise ValueError("The loader has no labels: interpretation compares predictions with targets.")
        if probs.ndim != 2 or targs.ndim != 1:
            raise ValueError(f"Expected (N, classes) predictions and (N,) class targets; received "
                             f"{tuple(probs.shape)} and {tuple(targs.shape)}.")
        return cls(learn, dl, probs, targs, losses, getattr(learn.dls, "vocab", None))

    # ---- numbers ---------------------------------------------------------------------------------------
    def confusion_matrix(self) -> np.ndarray:
        """(c, c) counts: row = actual class, column = predicted class."""
        c = len(self.vocab)
        flat = self.targs * c + self.preds
        return torch.bincount(flat, minlength=c * c).reshape(c, c).numpy()

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        """`(actual, predicted, count)` for every pair of different classes confused at least `min_val`
        times, most frequent first (ties in class order)."""
        cm = self.confusion_matrix()
        pairs = [(self.vocab[i], self.vocab[j], int(cm[i, j])) for i in range(len(cm)) for j in range(len(cm))
                 if i != j and cm[i, j] >= min_val]
        return sorted(pairs, key=lambda t: -t[2])

    def top_losses(self, k: int | None = None, largest: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The `k` highest (or lowest) per-image losses and their row indices in the loader."""
        k = len(self.losses) if k is None else min(int(k), len(self.losses))
        return self.losses.topk(k, largest=largest)

    # ---- plots -----------------------------------------------------------------------------------------
    def plot_confusion_matrix(self, normalize: bool = False, fname: str | Path | None = None,
                              cmap: str = "Blues", max_classes: int = 40) -> Any:
        """The confusion matrix as a heat map with the counts (or, `normalize`, the fraction of each
        actual class) written in the cells; returns the figure (saved to `fname` and closed when given)."""
        cm = self.confusion_matrix().astype(float)
        if normalize:
            cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        c = len(cm)
        plt = pyplot()
        side = min(max(4.0, 0.45 * c + 2), 16.0)
        fig, ax = plt.subplots(figsize=(side, side))
        ax.imshow(cm, cmap=cmap)
        ax.set_title("Confusion matrix" + (" (fraction of each actual class)" if normalize else ""))
        ticks = np.arange(c)
        if c <= max_classes:
            ax.set_xticks(ticks, self.vocab, rotation=90)
            ax.set_yticks(ticks, self.vocab)
            hi = cm.max() if cm.size else 0
            for i in range(c):
                for j in range(c):
                    txt = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                    ax.text(j, i, txt, ha="center", va="center", fontsize=8,
                            color="white" if cm[i, j] > hi / 2 else "black")
        ax.set_xlabel("Predicted")
        ax.set_ylabel("Actual")
        return finish_figure(fig, fname)

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        """The loader's images at rows `idx` as floats in [0, 1] for display: read from its uint8 cache
        when it has one, else the model inputs decoded by the data (`decode_images`) or rescaled per image."""
        idx = torch.as_tensor(idx).long()
        x = self.dl.tensors[0][idx.to(self.dl.tensors[0].device)].detach().cpu()
        dec = getattr(self.learn.dls, "decode_images", None)
        if dec is not None:
            return dec(x)
        if x.dtype == torch.uint8:
            return x.float() / 255.0
        x = x.float()
        flat = x.reshape(len(x), -1)
        lo, hi = flat.min(1)[0].reshape(-1, 1, 1, 1), flat.max(1)[0].reshape(-1, 1, 1, 1)
        return (x - lo) / (hi - lo).clamp_min(1e-8)

    def plot_top_losses(self, k: int = 9, fname: str | Path | None = None, largest: bool = True,
                        ncols: int | None = None) -> Any:
        """The `k` images with the highest loss in a grid, each titled
        "prediction/actual/loss/probability of the prediction"; returns the figure."""
        from .show import show_images
        losses, idx = self.top_losses(k, largest=largest)
        imgs = self.images(idx)
        if imgs.ndim != 4 or imgs.shape[1] not in (1, 3):
            raise ValueError(f"plot_top_losses shows images (N, 1 or 3, H, W); this loader's inputs are "
                             f"{tuple(imgs.shape)}.")
        titles = [f"{self.vocab[int(self.preds[i])]}/{self.vocab[int(self.targs[i])]}\n"
                  f"{float(l):.2f}/{float(self.probs[i, self.preds[i]]):.2f}" for l, i in zip(losses, idx)]
        return show_images(imgs, titles, fname=fname, ncols=ncols,
                           suptitle="prediction/actual/loss/probability")
