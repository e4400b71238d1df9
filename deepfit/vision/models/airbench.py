"""The network of the CIFAR-10 speed records of Jordan (2024, "94% on CIFAR-10 in 3.29 seconds on a single
GPU", the `airbench94` network): a fixed patch-whitening first layer, then three groups of
conv -> max-pool -> batch norm -> GELU -> conv -> batch norm -> GELU, global max pooling and a scaled
linear output. Batch norms learn only their shift; convolutions start as partial identities.

`AirbenchNet.init_whitening(images)` must be called with (a few thousand) normalised training images
before training: it sets the first layer to whiten 2x2 patches of those images. `deepfit.vision.speedrun`
does that and trains the net with the paper's recipe.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...export import register_model
from .fastnet import Scale

__all__ = ["AirbenchNet", "airbench", "PatchWhitening", "ShiftBatchNorm", "patch_whitening_filters"]


def patch_whitening_filters(images: torch.Tensor, size: int = 2, eps: float = 5e-4) -> torch.Tensor:
    """Filters that whiten the `size` x `size` patches of `images` (N, C, H, W): the eigenvectors of the
    patches' covariance (about zero, as the images are normalised) divided by the square root of their
    eigenvalue + `eps`, largest first, then the same filters negated, so that a following GELU keeps both
    signs. Returns (2 * C * size**2, C, size, size)."""
    if images.ndim != 4:
        raise ValueError(f"`images` must be a batch (N, C, H, W); received shape {tuple(images.shape)}.")
    c = images.shape[1]
    patches = images.double().unfold(2, size, 1).unfold(3, size, 1)  # N, C, H', W', size, size
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * size * size)
    cov = patches.T @ patches / len(patches)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    evals, evecs = evals.flip(0), evecs.flip(1)
    filters = (evecs.T / torch.sqrt(evals.clamp_min(0) + eps)[:, None]).reshape(-1, c, size, size)
    return torch.cat([filters, -filters]).float()


class PatchWhitening(nn.Module):
    """A `size` x `size` convolution (no padding) with fixed whitening filters (a buffer, set by
    `init_whitening`) and a learnable bias."""

    def __init__(self, n_in: int = 3, size: int = 2) -> None:
        super().__init__()
        n_out = 2 * n_in * size * size
        self.register_buffer("weight", torch.zeros(n_out, n_in, size, size))
        self.bias = nn.Parameter(torch.zeros(n_out))

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the filters to whiten the patches of `images` (normalised, (N, C, H, W))."""
        if images.shape[1] != self.weight.shape[1]:
            raise ValueError(f"The whitening layer takes {self.weight.shape[1]} channels; the images have "
                             f"{images.shape[1]}.")
        self.weight.copy_(patch_whitening_filters(images, self.weight.shape[-1], eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


class ShiftBatchNorm(nn.Module):
    """Batch normalisation with a learnable shift and no scale (the scale would only rescale the next,
    scale-invariant layer). `momentum` is torch's: the weight of the new batch in the running stats."""

    def __init__(self, n: int, momentum: float = 0.4, eps: float = 1e-12) -> None:
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.bias = nn.Parameter(torch.zeros(n))
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, None, self.bias, self.training,
                            self.momentum, self.eps)


class ConvGroup(nn.Sequential):
    """conv 3x3 -> max-pool 2 -> batch norm -> GELU -> conv 3x3 -> batch norm -> GELU."""

    def __init__(self, ni: int, nf: int, bn_momentum: float) -> None:
        super().__init__(nn.Conv2d(ni, nf, 3, padding=1, bias=False), nn.MaxPool2d(2),
                         ShiftBatchNorm(nf, bn_momentum), nn.GELU(),
                         nn.Conv2d(nf, nf, 3, padding=1, bias=False), ShiftBatchNorm(nf, bn_momentum), nn.GELU())


@register_model
class AirbenchNet(nn.Sequential):
    """patch whitening (2x2) -> GELU -> 3 `ConvGroup`s (`widths`) -> global max-pool -> linear -> x `scale`.

    Made for 32x32 images (3x3 maps before the global max-pool); other sizes work too. Each 3x3 convolution starts with the identity on its
    first `in_channels` outputs (`nn.init.dirac_`), the rest of torch's default initialisation.

    Args:
        widths: channels of the three groups ((64, 256, 256) is airbench94).
        n_out: classes.
        n_in: input channels.
        scale: factor on the logits (1/9).
        bn_momentum: torch momentum of the batch norms' running statistics.
    """

    def __init__(self, widths: Sequence[int] = (64, 256, 256), n_out: int = 10, n_in: int = 3,
                 scale: float = 1 / 9, bn_momentum: float = 0.4) -> None:
        if len(widths) != 3 or any(int(w) < 1 for w in widths):
            raise ValueError(f"`widths` must give 3 positive channel widths; received widths={list(widths)}.")
        self.config = {"widths": [int(w) for w in widths], "n_out": int(n_out), "n_in": int(n_in),
                       "scale": float(scale), "bn_momentum": float(bn_momentum)}
        whiten = PatchWhitening(n_in)
        w1, w2, w3 = (int(w) for w in widths)
        super().__init__(whiten, nn.GELU(), ConvGroup(whiten.n_out, w1, bn_momentum), ConvGroup(w1, w2, bn_momentum),
                         ConvGroup(w2, w3, bn_momentum), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(w3, n_out, bias=False), Scale(scale))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.dirac_(m.weight.data[:m.in_channels])

    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the first layer's filters to whiten the 2x2 patches of `images` (normalised training
        images, (N, C, H, W); 5,000 are plenty)."""
        self[0].init_whitening(images, eps)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def airbench(n_out: int = 10, n_in: int = 3, widths: Sequence[int] = (64, 256, 256)) -> AirbenchNet:
    """An `AirbenchNet` (see there). Its whitening layer is zero until `init_whitening` is called."""
    return AirbenchNet(widths, n_out=n_out, n_in=n_in)
