"""Data augmentation on whole batches: float tensors (N, C, H, W) in [0, 1], on the data's device.

Every transform draws its own random parameters *per image* from a `torch.Generator` (on the batch's
device), and is applied to each image with probability `p`. Geometric transforms (`Flip` excepted) are
described by one 3x3 matrix per image that maps output coordinates to input coordinates (in the
normalised [-1, 1] coordinates of `F.grid_sample`, `align_corners=False`); consecutive geometric
transforms are multiplied into one matrix, so a batch is resampled only once however many of them
there are (`apply_tfms`). Pixel transforms (`Brightness`, `Contrast`, `Cutout`) change values only.

Example:
    >>> tfms = aug_transforms(max_rotate=10, max_zoom=1.1, max_warp=0.2)
    >>> dls = ImageDataLoaders.from_folder(path, size=64, batch_tfms=tfms)
    >>> x = apply_tfms(torch.rand(8, 3, 64, 64), tfms, torch.Generator().manual_seed(0))
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..data.transforms import Normalize

__all__ = ["BatchTransform", "GeometricTransform", "Flip", "RandomCrop", "RandomResizedCrop", "Zoom", "Rotate",
           "Affine", "Perspective", "Brightness", "Contrast", "Cutout", "Normalize", "aug_transforms", "apply_tfms",
           "IMAGENET_STATS"]

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""Per-channel mean and std of ImageNet (in [0, 1] units), the statistics of torchvision's pretrained models."""

_PAD_MODES = ("reflection", "zeros", "border")


def _check_p(p: float) -> float:
    if not 0 <= p <= 1:
        raise ValueError(f"`p` (the probability of applying a transform to an image) must be in [0, 1]; "
                         f"received p={p!r}.")
    return float(p)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _apply_mask(n: int, p: float, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Bool (n,): which images the transform changes (drawn even when p is 0 or 1, so that the random
    stream does not depend on p)."""
    return torch.rand(n, generator=gen, device=device) < p


class BatchTransform:
    """Base class: `tfm(x, generator)` returns the transformed batch (float (N, C, H, W))."""

    p: float = 1.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class GeometricTransform(BatchTransform):
    """A transform given by one output->input 3x3 matrix per image (normalised coordinates).

    Subclasses implement `matrix(n, h, w, generator, device)`. `size` (optional) is the output size;
    `pad_mode` says what is sampled outside the image (``"reflection"``, ``"zeros"``, ``"border"``).
    """

    size: tuple[int, int] | None = None
    pad_mode: str = "reflection"
    projective: bool = False  # True when the matrices are not affine (their last row is not 0, 0, 1)

    def matrix(self, n: int, h: int, w: int, generator: torch.Generator | None,
               device: torch.device) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return apply_tfms(x, [self], generator)


def _eye(n: int, device: torch.device) -> torch.Tensor:
    return torch.eye(3, device=device).expand(n, 3, 3).clone()


def _masked(m: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # identity for the images the transform skips
    return torch.where(mask[:, None, None], m, _eye(len(m), m.device))


class Flip(BatchTransform):
    """Mirror images left-right (or up-down with `vertical=True`) with probability `p`."""

    def __init__(self, p: float = 0.5, vertical: bool = False) -> None:
        self.p, self.vertical = _check_p(p), vertical

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = _apply_mask(len(x), self.p, generator, x.device)
        return torch.where(mask[:, None, None, None], x.flip(-2 if self.vertical else -1), x)


class Rotate(GeometricTransform):
    """Rotate by an angle drawn uniformly in [min_deg, max_deg] degrees (default ±max_deg), with
    probability `p`. Positive angles turn the picture counter-clockwise, as `torch.rot90` does."""

    def __init__(self, max_deg: float = 10.0, p: float = 0.5, min_deg: float | None = None,
                 pad_mode: str = "reflection") -> None:
        self.max_deg, self.min_deg = float(max_deg), -float(max_deg) if min_deg is None else float(min_deg)
        if self.min_deg > self.max_deg:
            raise ValueError(f"`min_deg` ({self.min_deg}) must be <= `max_deg` ({self.max_deg}).")
        self.p, self.pad_mode = _check_p(p), _check_pad(pad_mode)

    def matrix(self, n: int, h: int, w: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        mask = _apply_mask(n, self.p, generator, device)
        a = _uniform(n, self.min_deg, self.max_deg, generator, device) * (math.pi / 180)
        cos, sin = torch.cos(a), torch.sin(a)
        m = _eye(n, device)
        # rotation in pixel space, expressed in normalised coordinates (x scaled by w/2, y by h/2), so that
        # a non-square image is rotated, not sheared; y points down, so this turns the picture anticlockwise
        m[:, 0, 0], m[:, 0, 1] = cos, -sin * (h / w)
        m[:, 1, 0], m[:, 1, 1] = sin * (w / h), cos
        return _masked(m, mask)


class Zoom(GeometricTransform):
    """Zoom in by a factor drawn uniformly in [min_zoom, max_zoom] on a random centre (the part seen
    stays inside the image), with probability `p`."""

    def __init__(self, max_zoom: float = 1.1, p: float = 0.5, min_zoom: float = 1.0,
                 pad_mode: str = "reflection") -> None:
        if not 0 < min_zoom <= max_zoom:
            raise ValueError(f"Need 0 < min_zoom <= max_zoom; received min_zoom={min_zoom!r}, max_zoom={max_zoom!r}.")
        self.max_zoom, self.min_zoom = float(max_zoom), float(min_zoom)
        self.p, self.pad_mode = _check_p(p), _check_pad(pad_mode)

    def matrix(self, n: int, h: int, w: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        mask = _apply_mask(n, self.p, generator, device)
        s = 1 / _uniform(n, self.min_zoom, self.max_zoom, generator, device)  # fraction of the image seen
        room = (1 - s).clamp(min=0)
        tx = _uniform(n, -1, 1, generator, device) * room
        ty = _uniform(n, -1, 1, generator, device) * room
        m = _eye(n, device)
        m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2] = s, s, tx, ty
        return _masked(m, mask)


class RandomResizedCrop(GeometricTransform):
    """Crop a random part of each image (area fraction in `scale`, aspect ratio in `ratio`, log-uniform)
    and resample it to `size` (default: the input's size). Always applied (the crop is the transform);
    at validation time the loaders use the whole (centre-cropped) image instead."""

    def __init__(self, size: int | tuple[int, int] | None = None, scale: tuple[float, float] = (0.35, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), pad_mode: str = "reflection") -> None:
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"`scale` must satisfy 0 < min <= max <= 1; received scale={scale!r}.")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"`ratio` must satisfy 0 < min <= max; received ratio={ratio!r}.")
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        self.scale, self.ratio, self.pad_mode = tuple(scale), tuple(ratio), _check_pad(pad_mode)
        self.p = 1.0

    def matrix(self, n: int, h: int, w: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        area = _uniform(n, self.scale[0], self.scale[1], generator, device)
        logr = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), generator, device)
        r = torch.exp(logr)  # width / height of the crop, in the output's pixel aspect
        # crop width and height as fractions of the image: cw * ch = area, (cw * w) / (ch * h) = r
        cw = torch.sqrt(area * r * h / w).clamp(max=1.0)
        ch = (area / cw).clamp(max=1.0)
        tx = _uniform(n, -1, 1, generator, device) * (1 - cw)
        ty = _uniform(n, -1, 1, generator, device) * (1 - ch)
        m = _eye(n, device)
        m[:, 0, 0], m[:, 1, 1], m[:, 0, 2], m[:, 1, 2] = cw, ch, tx, ty
        return m


class Affine(GeometricTransform):
    """A random affine warp: shear up to `max_shear` and shift up to `max_shift` (fractions of the half
    image) in each direction, with probability `p`."""

    def __init__(self, max_shear: float = 0.1, max_shift: float = 0.1, p: float = 0.5,
                 pad_mode: str = "reflection") -> None:
        if max_shear < 0 or max_shift < 0:
            raise ValueError(f"`max_shear` and `max_shift` must be >= 0; received {max_shear!r}, {max_shift!r}.")
        self.max_shear, self.max_shift = float(max_shear), float(max_shift)
        self.p, self.pad_mode = _check_p(p), _check_pad(pad_mode)

    def matrix(self, n: int, h: int, w: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        mask = _apply_mask(n, self.p, generator, device)
        m = _eye(n, device)
        m[:, 0, 1] = _uniform(n, -self.max_shear, self.max_shear, generator, device)
        m[:, 1, 0] = _uniform(n, -self.max_shear, self.max_shear, generator, device)
        m[:, 0, 2] = _uniform(n, -self.max_shift, self.max_shift, generator, device)
        m[:, 1, 2] = _uniform(n, -self.max_shift, self.max_shift, generator, device)
        return _masked(m, mask)


def homography(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The (n, 3, 3) matrices H with H @ [src, 1] ~ [dst, 1] for 4 point pairs per image (src, dst: (n, 4, 2))."""
    n = src.shape[0]
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], -1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], -1)
    a = torch.cat([rows_u, rows_v], 1)  # (n, 8, 8)
    b = torch.cat([u, v], 1)  # (n, 8)
    sol = torch.linalg.solve(a.double(), b.double()).to(src.dtype)
    return torch.cat([sol, torch.ones(n, 1, device=src.device, dtype=src.dtype)], 1).reshape(n, 3, 3)


class Perspective(GeometricTransform):
    """A random perspective warp (fastai's "warp"): the four corners move by up to `max_warp` (fraction
    of the half image) each, with probability `p`."""

    projective = True

    def __init__(self, max_warp: float = 0.2, p: float = 0.5, pad_mode: str = "reflection") -> None:
        if not 0 <= max_warp < 1:
            raise ValueError(f"`max_warp` must be in [0, 1); received max_warp={max_warp!r}.")
        self.max_warp, self.p, self.pad_mode = float(max_warp), _check_p(p), _check_pad(pad_mode)

    def matrix(self, n: int, h: int, w: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        mask = _apply_mask(n, self.p, generator, device)
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=device).expand(n, 4, 2)
        moved = corners + _uniform(n * 8, -self.max_warp, self.max_warp, generator, device).reshape(n, 4, 2)
        return _masked(homography(corners, moved), mask)


class RandomCrop(BatchTransform):
    """The classic CIFAR augmentation: pad each image by `padding` pixels on every side (reflection by
    default, or zeros) and cut a random window of `size` (default: the input's size) out of it. Shifts
    are whole pixels, so nothing is resampled or blurred."""

    def __init__(self, size: int | tuple[int, int] | None = None, padding: int = 4,
                 pad_mode: str = "reflection") -> None:
        if padding < 0:
            raise ValueError(f"`padding` must be >= 0; received padding={padding!r}.")
        if pad_mode not in ("reflection", "zeros"):
            raise ValueError(f"`pad_mode` must be 'reflection' or 'zeros'; received pad_mode={pad_mode!r}.")
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        self.padding, self.pad_mode, self.p = int(padding), pad_mode, 1.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        oh, ow = self.size if self.size is not None else (h, w)
        p = self.padding
        if p:
            x = F.pad(x, (p, p, p, p), mode="reflect" if self.pad_mode == "reflection" else "constant")
        H, W = h + 2 * p, w + 2 * p
        if oh > H or ow > W:
            raise ValueError(f"RandomCrop of {oh}x{ow} from images of {h}x{w} padded by {p}: the crop is larger.")
        top = torch.randint(0, H - oh + 1, (n,), generator=generator, device=x.device)
        left = torch.randint(0, W - ow + 1, (n,), generator=generator, device=x.device)
        rows = (top[:, None] + torch.arange(oh, device=x.device))[:, :, None]  # (n, oh, 1)
        cols = (left[:, None] + torch.arange(ow, device=x.device))[:, None, :]  # (n, 1, ow)
        out = x[torch.arange(n, device=x.device)[:, None, None], :, rows, cols]  # (n, oh, ow, c)
        return out.permute(0, 3, 1, 2).contiguous()


class Brightness(BatchTransform):
    """Add a brightness offset drawn uniformly in ±`max_lighting` to every pixel (clamped to [0, 1]),
    with probability `p`."""

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75) -> None:
        if not 0 <= max_lighting <= 1:
            raise ValueError(f"`max_lighting` must be in [0, 1]; received max_lighting={max_lighting!r}.")
        self.max_lighting, self.p = float(max_lighting), _check_p(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = len(x)
        mask = _apply_mask(n, self.p, generator, x.device)
        b = _uniform(n, -self.max_lighting, self.max_lighting, generator, x.device) * mask
        return (x + b[:, None, None, None].to(x.dtype)).clamp(0, 1)


class Contrast(BatchTransform):
    """Scale each image's deviations from its mean grey by a factor drawn log-uniformly in
    [1 / (1 + max_lighting), 1 + max_lighting] (clamped to [0, 1]), with probability `p`."""

    def __init__(self, max_lighting: float = 0.2, p: float = 0.75) -> None:
        if max_lighting < 0:
            raise ValueError(f"`max_lighting` must be >= 0; received max_lighting={max_lighting!r}.")
        self.max_lighting, self.p = float(max_lighting), _check_p(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n = len(x)
        mask = _apply_mask(n, self.p, generator, x.device)
        lim = math.log1p(self.max_lighting)
        c = torch.exp(_uniform(n, -lim, lim, generator, x.device))
        c = torch.where(mask, c, torch.ones_like(c))[:, None, None, None].to(x.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return ((x - mean) * c + mean).clamp(0, 1)


class Cutout(BatchTransform):
    """Blank `n_holes` random rectangles per image (sides a fraction in `size` of the image's sides)
    with `fill` (0: black, in [0, 1] units before normalisation), with probability `p`."""

    def __init__(self, n_holes: int = 1, size: tuple[float, float] = (0.2, 0.4), p: float = 0.5,
                 fill: float = 0.0) -> None:
        if n_holes < 1 or not 0 < size[0] <= size[1] <= 1:
            raise ValueError(f"Cutout needs n_holes >= 1 and 0 < size[0] <= size[1] <= 1; received "
                             f"n_holes={n_holes!r}, size={size!r}.")
        self.n_holes, self.size, self.p, self.fill = int(n_holes), tuple(size), _check_p(p), float(fill)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, _, h, w = x.shape
        dev = x.device
        mask = _apply_mask(n, self.p, generator, dev)
        ys = torch.arange(h, device=dev)[None, :, None]
        xs = torch.arange(w, device=dev)[None, None, :]
        hole = torch.zeros(n, h, w, dtype=torch.bool, device=dev)
        for _ in range(self.n_holes):
            hh = (_uniform(n, *self.size, generator, dev) * h).round()
            ww = (_uniform(n, *self.size, generator, dev) * w).round()
            top = (_uniform(n, 0, 1, generator, dev) * (h - hh + 1)).floor()
            left = (_uniform(n, 0, 1, generator, dev) * (w - ww + 1)).floor()
            t, l_ = top[:, None, None], left[:, None, None]
            hole |= (ys >= t) & (ys < t + hh[:, None, None]) & (xs >= l_) & (xs < l_ + ww[:, None, None])
        hole &= mask[:, None, None]
        return torch.where(hole[:, None], torch.full_like(x, self.fill), x)


def _check_pad(pad_mode: str) -> str:
    if pad_mode not in _PAD_MODES:
        raise ValueError(f"`pad_mode` must be one of {_PAD_MODES}; received pad_mode={pad_mode!r}.")
    return pad_mode


def _resample(x: torch.Tensor, m: torch.Tensor, size: tuple[int, int], pad_mode: str,
              projective: bool = True, mode: str = "bilinear") -> torch.Tensor:
    """Sample `x` at `m @ [x_out, y_out, 1]` for every output pixel (`mode` "bilinear", or "nearest" for
    label maps)."""
    n = len(x)
    oh, ow = size
    dev, dt = x.device, x.dtype
    # pixel centres of the output in normalised coordinates (align_corners=False)
    ys = (torch.arange(oh, device=dev, dtype=torch.float32) * 2 + 1) / oh - 1
    xs = (torch.arange(ow, device=dev, dtype=torch.float32) * 2 + 1) / ow - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    base = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1, oh * ow, 3)
    pts = base @ m.float().transpose(1, 2)  # (n, oh*ow, 3)
    if projective:  # back from homogeneous coordinates
        pts = pts[..., :2] / pts[..., 2:].clamp(min=1e-6)
    else:
        pts = pts[..., :2]
    grid = pts.reshape(n, oh, ow, 2).to(dt)
    return F.grid_sample(x, grid, mode=mode, padding_mode=pad_mode, align_corners=False)


def apply_tfms(x: torch.Tensor, tfms: Sequence[BatchTransform],
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply `tfms` in order to the float batch `x` (N, C, H, W); runs of geometric transforms are
    combined into one matrix per image and resampled once (with the first one's `pad_mode` and the
    last `size` given)."""
    i = 0
    tfms = list(tfms)
    while i < len(tfms):
        t = tfms[i]
        if not isinstance(t, GeometricTransform):
            x = t(x, generator)
            i += 1
            continue
        total, size, projective, i = compose_geometric(tfms, i, x.shape, generator, x.device)
        x = _resample(x, total, size, t.pad_mode, projective)
    return x


def compose_geometric(tfms: Sequence[BatchTransform], i: int, shape: Sequence[int], generator: torch.Generator | None,
                      device: torch.device) -> tuple[torch.Tensor, tuple[int, int], bool, int]:
    """Combine the run of geometric transforms starting at `tfms[i]` for a batch of `shape` (N, C, H, W):
    one matrix per image (each transform sees the size the previous ones produce), the output size, whether
    any is projective, and the index after the run."""
    n, _, h, w = shape
    total = _eye(n, device)
    size, projective = (h, w), False
    while i < len(tfms) and isinstance(tfms[i], GeometricTransform):
        g = tfms[i]
        projective = projective or g.projective
        total = total @ g.matrix(n, size[0], size[1], generator, device)
        if g.size is not None:
            size = tuple(g.size)
        i += 1
    return total, size, projective, i


def aug_transforms(do_flip: bool = True, flip_vert: bool = False, max_rotate: float = 10.0, min_zoom: float = 1.0,
                   max_zoom: float = 1.1, max_lighting: float = 0.2, max_warp: float = 0.2, p_affine: float = 0.75,
                   p_lighting: float = 0.75, pad_mode: str = "reflection") -> list[BatchTransform]:
    """The usual augmentation of photos (the defaults of the fastai course): flip, then a random
    rotation, zoom and perspective warp (each with probability `p_affine`, resampled once), then
    brightness and contrast (probability `p_lighting`). Set a maximum to 0 to leave that one out;
    `flip_vert=True` adds up-down flips and 90-degree turns (satellite and microscope images)."""
    tfms: list[BatchTransform] = []
    if do_flip:
        tfms.append(Flip(p=0.5))
        if flip_vert:
            tfms.append(Flip(p=0.5, vertical=True))
    if flip_vert:
        tfms.append(_Rot90())
    if max_rotate:
        tfms.append(Rotate(max_deg=max_rotate, p=p_affine, pad_mode=pad_mode))
    if max_zoom > 1 or min_zoom < 1:
        tfms.append(Zoom(max_zoom=max_zoom, min_zoom=min_zoom, p=p_affine, pad_mode=pad_mode))
    if max_warp:
        tfms.append(Perspective(max_warp=max_warp, p=p_affine, pad_mode=pad_mode))
    if max_lighting:
        tfms += [Brightness(max_lighting, p=p_lighting), Contrast(max_lighting, p=p_lighting)]
    return tfms


class _Rot90(BatchTransform):
    """Turn square images by a random multiple of 90 degrees (exact, no resampling); others unchanged."""

    def __init__(self, p: float = 1.0) -> None:
        self.p = _check_p(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            return x
        k = torch.randint(0, 4, (len(x),), generator=generator, device=x.device)
        k = torch.where(_apply_mask(len(x), self.p, generator, x.device), k, torch.zeros_like(k))
        out = x
        for turns in (1, 2, 3):
            out = torch.where((k == turns)[:, None, None, None], torch.rot90(x, turns, (-2, -1)), out)
        return out
