"""Pictures of segmentations: masks overlaid on their images with a colour legend, and per-class IoU bars.

Example:
    >>> show_segmentation(images, [truth, pred], codes, void=11, titles=["truth", "prediction"], fname="r.png")
    >>> plot_class_iou(learn.per_class_iou(), fname="iou.png")
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ...plotting import finish_figure, pyplot

__all__ = ["class_colors", "colorize", "show_segmentation", "plot_class_iou", "save_mask"]


def class_colors(n: int) -> np.ndarray:
    """(n, 3) distinct RGB colours in [0, 1] (matplotlib's tab20, then evenly spaced hues)."""
    from matplotlib import colormaps
    base = np.asarray(colormaps["tab20"].colors)[:, :3]
    if n <= len(base):
        return base[:n]
    hsv = colormaps["hsv"]
    return np.concatenate([base, np.asarray([hsv(i / (n - len(base)))[:3] for i in range(n - len(base))])])


def colorize(mask: torch.Tensor | np.ndarray, n_codes: int, void: int | None = None) -> np.ndarray:
    """An (H, W, 4) RGBA picture of a mask of codes; void (and unknown codes) transparent."""
    m = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask).astype(np.int64)
    colors = class_colors(n_codes)
    out = np.zeros((*m.shape, 4))
    ok = (m >= 0) & (m < n_codes)
    if void is not None:
        ok &= m != void
    out[ok, :3] = colors[m[ok]]
    out[ok, 3] = 1.0
    return out


def show_segmentation(images: torch.Tensor, masks: Sequence[torch.Tensor], codes: Sequence[str],
                      void: int | None = None, titles: Sequence[str] | None = None, alpha: float = 0.7,
                      fname: str | os.PathLike | None = None, size: float = 3.0) -> Any:
    """One row per image: the image, then each of `masks` overlaid on it in grey (e.g. truth and prediction;
    void pixels left clear), and a legend of the class colours present; returns the figure (saved as PNG to `fname` and closed).

    Args:
        images: floats in [0, 1] (N, C, H, W).
        masks: tensors of codes (N, H, W), one per column after the image.
        codes: class names (code order); void: the code left transparent.
        titles: a title per mask column.
    """
    from matplotlib.patches import Patch
    x = torch.as_tensor(images).detach().cpu().float().clamp(0, 1)
    n = len(x)
    cols = 1 + len(masks)
    plt = pyplot()
    h, w = x.shape[-2:]
    fig, axs = plt.subplots(n, cols, figsize=(size * cols * w / max(h, w) + 1.5, size * n * h / max(h, w) + 0.3),
                            squeeze=False)
    present: set[int] = set()
    colors = class_colors(len(codes))
    for i in range(n):
        img = x[i].permute(1, 2, 0).numpy() if x.shape[1] == 3 else x[i, 0].numpy()
        grey = x[i].mean(0).numpy()  # under a mask: the image in grey, so the class colours read true
        for j in range(cols):
            ax = axs[i, j]
            ax.axis("off")
            if j == 0:
                ax.imshow(img, cmap=None if x.shape[1] == 3 else "gray", vmin=0, vmax=1)
                if i == 0:
                    ax.set_title("image", fontsize=9)
                continue
            ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
            m = masks[j - 1][i]
            present |= {int(v) for v in torch.as_tensor(m).unique().tolist()}
            ax.imshow(colorize(m, len(codes), void), alpha=alpha)
            if i == 0 and titles is not None:
                ax.set_title(titles[j - 1], fontsize=9)
    shown = [k for k in range(len(codes)) if k in present and k != void]
    handles = [Patch(color=colors[k], label=str(codes[k])) for k in shown]
    if handles:
        fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    return finish_figure(fig, fname)


def plot_class_iou(iou: Mapping[str, float], fname: str | os.PathLike | None = None,
                   title: str = "IoU per class (validation)") -> Any:
    """A horizontal bar chart of every class's IoU with its value (and the mean IoU as a line); returns the
    figure (saved as PNG to `fname` and closed)."""
    names = list(iou)
    vals = [iou[k] for k in names]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
    shown = [0.0 if math.isnan(v) else v for v in vals]
    ax.barh(range(len(names)), shown, color=class_colors(len(names)))
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    for k, v in enumerate(vals):
        ax.text(min(shown[k], 1.0) + 0.01, k, "n/a" if math.isnan(v) else f"{v:.3f}", va="center", fontsize=7)
    finite = [v for v in vals if not math.isnan(v)]
    if finite:
        mean = float(np.mean(finite))
        ax.axvline(mean, color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{title}; mean IoU {mean:.3f}", fontsize=9)
    else:
        ax.set_title(title, fontsize=9)
    ax.set_xlabel("intersection over union")
    return finish_figure(fig, fname)


def save_mask(mask: torch.Tensor | np.ndarray, path: str | os.PathLike) -> None:
    """Write a mask of codes (H, W) as an 8-bit grey PNG whose values are the codes (atomically)."""
    from PIL import Image

    from ...utils import atomic_path
    m = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask)
    if m.ndim != 2 or (m.size and (m.min() < 0 or m.max() > 255)):
        raise ValueError(f"A mask must be (H, W) codes in 0..255; received shape {m.shape}.")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(m.astype(np.uint8), mode="L").save(tmp, format="PNG")
