"""Image grids for people: a batch with its labels, or any images with titles (PNG via matplotlib)."""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import torch

from ..plotting import finish_figure, pyplot

__all__ = ["show_images"]


def show_images(images: torch.Tensor | np.ndarray, titles: Sequence[str] | None = None,
                fname: str | os.PathLike | None = None, ncols: int | None = None, size: float = 2.0,
                suptitle: str | None = None) -> Any:
    """Plot images in a grid with a title over each; returns the matplotlib figure (saved to `fname`
    as PNG and closed when given).

    Args:
        images: floats in [0, 1] (or uint8) shaped (N, C, H, W) with C = 1 (shown grey) or 3.
        titles: one text per image (e.g. the label, or "prediction/actual/loss/probability").
        ncols: images per row (default: a square-ish grid).
        size: inches per image.
    """
    x = torch.as_tensor(images).detach().cpu()
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"`images` must be shaped (N, C, H, W) with C = 1 or 3; received {tuple(x.shape)}.")
    n = len(x)
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} images.")
    plt = pyplot()
    cols = max(1, min(n, ncols or math.ceil(math.sqrt(max(n, 1)))))
    rows = max(1, math.ceil(n / cols))
    fig, axs = plt.subplots(rows, cols, figsize=(size * cols, size * rows + (0.3 if suptitle else 0)), squeeze=False)
    x = x.float().clamp(0, 1)
    for i, ax in enumerate(axs.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = x[i]
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img.permute(1, 2, 0).numpy())
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return finish_figure(fig, fname)
