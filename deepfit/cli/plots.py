"""Plots the command line adds to a run's report: confusion matrix and top losses."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..plotting import finish_figure, pyplot

__all__ = ["confusion_matrix", "plot_confusion_matrix", "plot_top_losses_images", "plot_pred_vs_actual"]


def confusion_matrix(targs: Any, preds: Any, n_classes: int) -> np.ndarray:
    """Counts `cm[i, j]` of rows of actual class i predicted as class j."""
    t = np.asarray(targs, dtype=np.int64).reshape(-1)
    p = np.asarray(preds, dtype=np.int64).reshape(-1)
    if len(t) != len(p):
        raise ValueError(f"{len(t)} targets but {len(p)} predictions.")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def plot_confusion_matrix(cm: np.ndarray, classes: Sequence[str], fname: str | Path, max_classes: int = 30) -> Any:
    """Heat map of a confusion matrix with the counts written in the cells; saved to `fname` (the
    closed figure is returned)."""
    plt = pyplot()
    k = len(classes)
    if k > max_classes:  # keep the most frequent classes readable
        keep = np.argsort(-cm.sum(1))[:max_classes]
        cm, classes = cm[np.ix_(keep, keep)], [classes[i] for i in keep]
        k = max_classes
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    long = max((len(str(c)) for c in classes), default=0) > 3
    ax.set_xticklabels([str(c) for c in classes], rotation=90 if k > 6 and long else 0)
    ax.set_yticklabels([str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"confusion matrix\n(validation, accuracy {acc:.4f})")  # two lines: fits a small figure
    hi = cm.max() if cm.size else 0
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if cm[i, j] > hi / 2 else "black")
    return finish_figure(fig, fname)


def plot_top_losses_images(images: Any, actual: Sequence[str], predicted: Sequence[str], losses: Sequence[float],
                           probs: Sequence[float], fname: str | Path) -> Any:
    """A grid of images with `predicted / actual / loss / probability of the prediction` as titles."""
    plt = pyplot()
    n = len(images)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axs = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    for i, ax in enumerate(axs.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(np.asarray(images[i]), cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"{predicted[i]}/{actual[i]} / {losses[i]:.2f} / {probs[i]:.2f}", fontsize=9)
    fig.suptitle("prediction / actual / loss / probability", fontsize=10)
    finish_figure(fig, fname)
    return None


def plot_pred_vs_actual(actual: Any, pred: Any, fname: str | Path, name: str = "target") -> Any:
    """Scatter of predicted against actual values (validation) with the diagonal."""
    plt = pyplot()
    a, p = np.asarray(actual, float).reshape(-1), np.asarray(pred, float).reshape(-1)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(a, p, s=6, alpha=0.4)
    lo, hi = float(min(a.min(), p.min())), float(max(a.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="C1", lw=1)
    ax.set_xlabel(f"actual {name}")
    ax.set_ylabel(f"predicted {name}")
    ax.set_title("validation predictions")
    finish_figure(fig, fname)
    return None
