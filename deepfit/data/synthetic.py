"""Generated MNIST-like digits, so that the course examples and `deepfit demo` run without a download.

Each digit 0-9 is rendered once with Pillow's built-in font at a few stroke widths (the templates,
cached). Every sample is then one template warped by its own random affine map (size, aspect, slant,
rotation, position) plus a smooth random displacement field that makes strokes wobble like
handwriting; all samples of a chunk are warped together with one `grid_sample` call. The result looks
like MNIST: 28x28 uint8 images, ink 255 on a 0 background, the digit about 20 pixels high in the centre.

Example:
    >>> x, y = make_digits(1000, seed=0)      # uint8 (1000, 28, 28), int64 (1000,)
    >>> dls = synthetic_digits_dls(n=4000, seed=0)
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from .mnist import DigitDataLoaders, digits_dls

__all__ = ["make_digits", "synthetic_digits_dls", "digit_templates"]

_CANVAS = 64       # template side in pixels
_FONT_SIZE = 44    # digits are about 32 pixels high on the template
_STROKES = (0, 0, 1, 2)  # extra stroke widths (template pixels): mostly thin, sometimes bold


@functools.lru_cache(maxsize=4)
def digit_templates(canvas: int = _CANVAS, font_size: int = _FONT_SIZE) -> tuple[torch.Tensor, float]:
    """The rendered digits: a float tensor (10, len(_STROKES), canvas, canvas) in [0, 1], each glyph
    centred on its ink bounding box, and the glyph height in pixels (of stroke width 0)."""
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.load_default(size=font_size)
    out = torch.zeros(10, len(_STROKES), canvas, canvas)
    heights = []
    for d in range(10):
        for j, sw in enumerate(_STROKES):
            img = Image.new("L", (canvas, canvas), 0)
            draw = ImageDraw.Draw(img)
            l, t, r, b = draw.textbbox((0, 0), str(d), font=font, stroke_width=sw)
            draw.text(((canvas - (r - l)) / 2 - l, (canvas - (b - t)) / 2 - t), str(d), fill=255, font=font,
                      stroke_width=sw, stroke_fill=255)
            out[d, j] = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
            if sw == 0:
                heights.append(b - t)
    return out, float(np.mean(heights))


def make_digits(n: int, seed: int = 0, size: int = 28, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate `n` MNIST-like digit images.

    Args:
        n: number of images.
        seed: the same seed gives the same images and labels.
        size: side of the square images (28 like MNIST).
        chunk: images warped per `grid_sample` call (bounds memory use).

    Returns:
        `(x, y)`: x uint8 (n, size, size) with ink 255 on 0, y int64 (n,) with balanced random labels 0..9.

    Example:
        >>> x, y = make_digits(10_000, seed=1)   # about a second on one CPU core
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"`n` must be a non-negative integer; received n={n!r}.")
    if size < 8:
        raise ValueError(f"`size` must be at least 8 pixels; received size={size!r}.")
    templates, glyph_h = digit_templates()
    g = torch.Generator().manual_seed(int(seed))
    # labels: a shuffled near-equal count of each digit
    y = torch.arange(n) % 10
    y = y[torch.randperm(n, generator=g)]
    x = torch.empty(n, size, size, dtype=torch.uint8)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        x[lo:hi] = _render(templates, glyph_h, y[lo:hi], size, g)
    return x, y


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _render(templates: torch.Tensor, glyph_h: float, y: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    n, canvas = len(y), templates.shape[-1]
    stroke = torch.randint(0, templates.shape[1], (n,), generator=g)
    src = templates[y, stroke].unsqueeze(1)  # (n, 1, canvas, canvas)
    # Random geometry, drawn per sample (units: output pixels and radians).
    height = _uniform(g, n, 0.64, 0.76) * size  # digit height: MNIST digits fit in 20 of 28 px
    aspect = _uniform(g, n, 0.8, 1.2)  # width relative to the font's
    slant = _uniform(g, n, -0.3, 0.3)  # italic shear
    angle = _uniform(g, n, -math.radians(12), math.radians(12))  # rotation, +-12 degrees
    shift = _uniform(g, 2 * n, -0.04, 0.04).reshape(n, 2) * size  # centre offset, about +-1 px
    # The sampling grid maps output coordinates (normalised to [-1, 1]) to template coordinates:
    # p_in = s * Rot(angle) @ Shear(slant) @ diag(1/aspect, 1) @ (p_out - c).
    s = (glyph_h / canvas) / (height / size)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shear = torch.zeros(n, 2, 2)
    shear[:, 0, 0], shear[:, 0, 1], shear[:, 1, 1] = 1.0, slant, 1.0
    squash = torch.zeros(n, 2, 2)
    squash[:, 0, 0], squash[:, 1, 1] = 1.0 / aspect, 1.0
    m = s[:, None, None] * rot @ shear @ squash
    c = 2 * shift / size
    theta = torch.cat([m, -(m @ c[:, :, None])], dim=2)  # (n, 2, 3)
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    # Smooth random displacements (a 4x4 field upsampled) make each stroke wobble a little.
    field = 0.04 * torch.randn(n, 2, 4, 4, generator=g)
    grid = grid + F.interpolate(field, size=(size, size), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    img = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    # Ink: saturate the stroke cores like MNIST's, vary the darkness, add faint noise on the ink only.
    gain = _uniform(g, n, 1.1, 1.7)[:, None, None]
    img = (img * gain).clamp(0, 1)
    img = img * (1 + 0.04 * torch.randn(img.shape, generator=g)) * (img > 0.1)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def synthetic_digits_dls(n: int = 10_000, seed: int = 42, valid_n: int | None = None, bs: int = 64,
                         normalize: bool = True, device: torch.device | str | None = None) -> DigitDataLoaders:
    """DataLoaders of `n` generated digits (see `make_digits`), split into train and valid like
    `mnist_dls` (default 20% validation), normalised with training statistics.

    Example:
        >>> dls = synthetic_digits_dls(n=4000, seed=0, bs=64)
    """
    x, y = make_digits(n, seed=seed)
    valid_n = max(1, n // 5) if valid_n is None else valid_n
    return digits_dls(x, y, valid_n=valid_n, bs=bs, seed=seed, normalize=normalize, device=device)
