"""The image loaders' per-batch pipeline and normalisation: uint8 images -> float in [0, 1] -> augmentation
(on the device, with its own seeded generator, saved for exact resume) -> per-channel normalisation with
the data's or a pretrained model's statistics. Shared by classification (`deepfit.vision.data`) and
segmentation (`deepfit.vision.segment`)."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..data.core import DataLoader
from ..data.transforms import Normalize
from .augment import IMAGENET_STATS, BatchTransform, apply_tfms
from .sources import NormalizeArg

__all__ = ["ImageBatchTransform", "ImageDataLoader", "normalize_from_state", "make_normalize", "channel_stats",
           "cache_fits_device"]

class ImageBatchTransform:
    """The loaders' `after_batch`: uint8 images -> float in [0, 1] -> augmentation -> normalisation.

    Args:
        tfms: batch transforms (`deepfit.vision.augment`), applied in order; none at validation.
        normalize: a `Normalize` with per-channel statistics (shape (1, C, 1, 1)), or None.
        seed: seed of the augmentation's random generator (default: drawn from torch's global RNG when
            the first batch is made, so `set_seed` makes runs repeat).
    """

    def __init__(self, tfms: Sequence[BatchTransform] | None = None, normalize: Normalize | None = None,
                 seed: int | None = None) -> None:
        self.tfms, self.normalize, self.seed = list(tfms or []), normalize, seed
        self._gen: torch.Generator | None = None
        self._pending: torch.Tensor | None = None  # a generator state to restore (exact resume)

    def generator(self, device: torch.device) -> torch.Generator:
        """The augmentation's random generator, on `device`."""
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device)
            if self._pending is not None:  # resuming: continue the saved stream (and draw nothing else)
                self._gen.set_state(self._pending)
                self._pending = None
            else:
                # a given seed is offset so that this stream differs from the shuffle's (seeded with the same
                # number); without one, it is drawn from torch's global generator (`set_seed` repeats runs)
                seed = self.seed + 7919 if self.seed is not None else int(torch.randint(0, 2**62, (1,)))
                self._gen.manual_seed(seed)
        return self._gen

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in [0, 1]) images as float in [0, 1]."""
        return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = self.encode(batch[0])
        if self.tfms:
            x = apply_tfms(x, self.tfms, self.generator(x.device))
        if self.normalize is not None:
            x = self.normalize(x)
        return (x, *batch[1:])

    def state_dict(self) -> dict[str, Any]:
        """The generator's state (for exact resume; None before the first augmented batch)."""
        gen = self._gen.get_state() if self._gen is not None else self._pending
        return {"gen": gen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the augmentation's random stream from `state_dict`'s output."""
        gen = state.get("gen")
        self._gen, self._pending = None, (gen.cpu() if isinstance(gen, torch.Tensor) else None)

    def __repr__(self) -> str:
        return f"ImageBatchTransform(tfms={self.tfms}, normalize={self.normalize})"


class ImageDataLoader(DataLoader):
    """A `DataLoader` whose exact-resume state (`state_dict`) also holds the random generator of its
    augmentation, so that a run resumed from a checkpoint sees the same augmented batches."""

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if isinstance(self.after_batch, ImageBatchTransform):
            state["augment"] = self.after_batch.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if isinstance(self.after_batch, ImageBatchTransform) and "augment" in state:
            self.after_batch.load_state_dict(state["augment"])


def normalize_from_state(meta: dict[str, Any], channels: int) -> Normalize | None:
    """The `Normalize` an exported image pipeline stored (`mean`, `std`, `eps` of `export_state`), or None."""
    if meta.get("mean") is None:
        return None
    shape = (1, channels, 1, 1)
    return Normalize(torch.tensor(meta["mean"]).reshape(shape), torch.tensor(meta["std"]).reshape(shape),
                     meta.get("eps") or 1e-7)


def channel_stats(x: torch.Tensor, max_images: int = 20_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (float64, in [0, 1] units) of uint8 images, over at most `max_images`
    evenly spaced ones."""
    step = max(1, len(x) // max_images)
    c = x.shape[1]
    s = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    n = 0
    for lo in range(0, len(x), 1024 * step):
        xb = torch.as_tensor(x[lo:lo + 1024 * step:step]).double() / 255.0
        s += xb.sum(dim=(0, 2, 3))
        s2 += (xb * xb).sum(dim=(0, 2, 3))
        n += xb.shape[0] * xb.shape[2] * xb.shape[3]
    mean = s / n
    std = (s2 / n - mean * mean).clamp(min=0).sqrt()
    return mean, std


def make_normalize(normalize: NormalizeArg, x_train: torch.Tensor, channels: int) -> Normalize | None:
    if normalize is None:
        return None
    if isinstance(normalize, Normalize):
        return normalize
    if isinstance(normalize, str):
        if normalize == "data":
            mean, std = channel_stats(x_train)
            std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel: leave its scale alone
        elif normalize == "imagenet":
            mean, std = torch.tensor(IMAGENET_STATS[0]), torch.tensor(IMAGENET_STATS[1])
            if channels == 1:
                mean, std = mean.mean(0, keepdim=True), std.mean(0, keepdim=True)
        else:
            raise ValueError(f"`normalize` must be 'data', 'imagenet', a (mean, std) pair or None; received "
                             f"normalize={normalize!r}.")
    else:
        try:
            mean, std = (torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in normalize)
        except (TypeError, ValueError):
            raise ValueError(f"`normalize` must be 'data', 'imagenet', a (mean, std) pair or None; received "
                             f"normalize={normalize!r}.") from None
        if len(mean) == 1:
            mean, std = mean.expand(channels), std.expand(channels)
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"`normalize` needs one mean and one std per channel ({channels}); received "
                             f"{len(mean)} and {len(std)}.")
        if (std <= 0).any():
            raise ValueError(f"`normalize` std must be > 0; received {std.tolist()}.")
    return Normalize(mean.float().reshape(1, channels, 1, 1), std.float().reshape(1, channels, 1, 1))


def cache_fits_device(nbytes: int, device: torch.device, fraction: float = 0.25) -> bool:
    """Whether a uint8 image cache of `nbytes` is copied to `device` (at most `fraction` of the free memory
    of a CUDA device; always for the CPU and other devices)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free
