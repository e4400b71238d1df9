"""Augmenting images and their masks together: the same geometry for both, lighting for the image only.

The batch transforms of `deepfit.vision.augment` are reused unchanged. For a batch of images (N, C, H, W)
and masks (N, H, W):

- a run of `GeometricTransform`s (rotate, zoom, warp, random resized crop...) is combined into one matrix
  per image, exactly as `apply_tfms` does; the image is resampled bilinearly and the mask with the *same*
  matrices by nearest neighbour, so a label is never blended into a value between two classes;
- transforms that move whole pixels (`Flip`, the 90-degree turns of `aug_transforms(flip_vert=True)`,
  `RandomCrop`) run once on the image and the mask stacked as channels, so both draw the same random
  numbers;
- pixel transforms (`Brightness`, `Contrast`, `Cutout`) change the image only.

Pixels that a warp brings in from outside the image (the padding) are labelled `void` in the mask when the
data has a void code, so the loss and the metrics ignore them; without a void code the mask is padded as
the image is (reflected or repeated border).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..augment import (BatchTransform, Brightness, Contrast, Cutout, Flip, GeometricTransform, RandomCrop, _resample,
                       _Rot90, compose_geometric)

__all__ = ["apply_tfms_seg", "PIXEL_TFMS", "MOVING_TFMS"]

#: Transforms that change pixel values only: applied to the image, never to the mask.
PIXEL_TFMS: tuple[type, ...] = (Brightness, Contrast, Cutout)
#: Transforms that move whole pixels without resampling: applied to the image and mask stacked together.
MOVING_TFMS: tuple[type, ...] = (Flip, _Rot90, RandomCrop)


def _check_tfm(t: BatchTransform) -> None:
    if not isinstance(t, (GeometricTransform,) + PIXEL_TFMS + MOVING_TFMS):
        raise TypeError(f"Segmentation cannot tell whether {type(t).__name__} moves pixels (then the masks must move "
                        "with the images) or only changes their values. Use deepfit.vision.augment's transforms, or "
                        "subclass GeometricTransform (a matrix per image) for a new warp.")


def check_seg_tfms(tfms: Sequence[BatchTransform]) -> list[BatchTransform]:
    """`tfms` as a list, each checked to be a transform whose effect on masks is known."""
    out = list(tfms or [])
    for t in out:
        _check_tfm(t)
    return out


def apply_tfms_seg(x: torch.Tensor, y: torch.Tensor, tfms: Sequence[BatchTransform],
                   generator: torch.Generator | None = None, void: int | None = None) -> tuple[torch.Tensor,
                                                                                                torch.Tensor]:
    """Apply `tfms` in order to float images `x` (N, C, H, W) and integer masks `y` (N, H, W).

    Args:
        x: images in [0, 1].
        y: class codes per pixel (any integer dtype; returned as long).
        tfms: batch transforms (see the module doc for how each kind treats the mask).
        generator: the random generator (one stream for the images and masks).
        void: the code of pixels to ignore, given to pixels brought in from outside the image.

    Returns:
        `(x, y)` augmented: float images, long masks of the same spatial size as the images.
    """
    y = y.long()
    tfms = list(tfms)
    i = 0
    while i < len(tfms):
        t = tfms[i]
        _check_tfm(t)
        if isinstance(t, PIXEL_TFMS):
            x = t(x, generator)
            i += 1
        elif isinstance(t, MOVING_TFMS):
            c = x.shape[1]
            # stacked: image channels, the mask, and a channel of ones that is 0 where padding came in
            z = torch.cat([x, y[:, None].to(x.dtype), torch.ones_like(x[:, :1])], 1)
            z = t(z, generator)
            x, ym, inside = z[:, :c], z[:, c].round().long(), z[:, c + 1]
            y = torch.where(inside > 0.5, ym, torch.full_like(ym, void)) if void is not None else ym
            i += 1
        else:  # a run of geometric transforms: one matrix per image, one resampling of each
            total, size, projective, i = compose_geometric(tfms, i, x.shape, generator, x.device)
            pad = t.pad_mode
            x = _resample(x, total, size, pad, projective)
            y = _resample_mask(y, total, size, pad, projective, void)
    return x, y


def _resample_mask(y: torch.Tensor, m: torch.Tensor, size: tuple[int, int], pad_mode: str, projective: bool,
                   void: int | None) -> torch.Tensor:
    """The masks `y` (N, H, W) sampled by nearest neighbour at the points the images were sampled at."""
    mask_pad = "border" if pad_mode == "zeros" else pad_mode  # without void, a zero pad would invent class 0
    codes = y[:, None].float()
    if void is not None:
        both = torch.cat([codes, torch.ones_like(codes)], 1)
        out = _resample(both, m, size, "zeros", projective, mode="nearest")
        inside = out[:, 1] > 0.5
        return torch.where(inside, out[:, 0].round().long(), torch.full_like(out[:, 0], void).long())
    return _resample(codes, m, size, mask_pad, projective, mode="nearest")[:, 0].round().long()
