"""Neural style transfer (Gatys, Ecker & Bethge 2016): optimise the pixels of an image so that its deep
features match a content image's and the Gram matrices of its features match a style image's.

    result = style_transfer("photo.jpg", "painting.jpg", size=256, steps=200)
    result.save("out.png")

The optimiser is L-BFGS, as in the paper (torch.optim.LBFGS with a strong-Wolfe line search); the
pixels stay in [0, 1] (clamped every 10 iterations). The feature network is pluggable (see
`deepfit.vision.style`): "random" (default; random multi-scale filters, no download), torchvision's
"vgg16"/"vgg19" from the local hub cache or a weight file, or any module with layer names.

Loss scale: with `relative=True` (the default) each layer's weight is divided by the mean square of
its target (features for content, Gram entries for style) and by the number of layers, so both losses
are mean relative squared errors, of order 1 whatever the network; `content_weight` and
`style_weight` then mean the same thing for VGG, random filters or your own module. `style_weight`
around 1e2..1e4 gives a stylised image that keeps the content's layout (larger: more style).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import HintedError
from ..utils import atomic_path, parse_device
from .decode import ImageDecodeError, decode_image, to_uint8_array
from .style import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, FeatureLoss, Stats, _weights

__all__ = ["style_transfer", "StyleTransferResult", "StyleTransferError", "load_image", "image_size"]

ImageLike = Any  # a path, a PIL image, or an array / tensor (C, H, W), (1, C, H, W) or (H, W, C)
_CLAMP_EVERY = 10  # L-BFGS iterations between two clampings of the pixels to [0, 1]


class StyleTransferError(HintedError, ValueError):
    """The optimisation failed (the loss became NaN or infinite); the message says what to change (as a
    Python argument, or as a flag of `deepfit style` in `cli_message(e)`)."""


@dataclass
class StyleTransferResult:
    """The stylised image and how the losses went.

    Attributes:
        tensor: the image, float (3, H, W) in [0, 1] on the CPU.
        history: one dict per evaluation of the loss by L-BFGS (several per iteration when the line
            search tries step sizes): `iteration`, `loss` (weighted total), `content`, `style` (the
            unweighted sums over layers).
        iterations: L-BFGS iterations done (fewer than `steps` when it converged).
    """

    tensor: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0

    @property
    def image(self) -> Any:
        """The image as an RGB `PIL.Image`."""
        from PIL import Image
        arr = (self.tensor.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")

    def save(self, path: str | os.PathLike) -> Path:
        """Write the image as a PNG file, atomically (a temporary name, then renamed)."""
        path = Path(path)
        with atomic_path(path, suffix=".png") as tmp:
            self.image.save(tmp, format="PNG")
        return path


def image_size(own: tuple[int, int], size: int | Sequence[int] | None) -> tuple[int, int]:
    """The (height, width) of the result: `own` for None, the longer side scaled to `size` (aspect kept)
    for an int, exactly `size` for a (height, width) pair."""
    if size is None:
        return own
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"`size` must be at least 1 pixel; received size={size!r}.")
        h, w = own
        scale = int(size) / max(h, w)
        return max(1, round(h * scale)), max(1, round(w * scale))
    if (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in size)):
        return int(size[0]), int(size[1])
    raise ValueError(f"`size` must be None, an int (the longer side) or a (height, width) pair of ints >= 1; received "
                     f"size={size!r}.")


def load_image(image: ImageLike, what: str = "image", size: int | Sequence[int] | None = None,
               resize: str = "squash") -> torch.Tensor:
    """An image as a float tensor (1, 3, H, W) in [0, 1].

    Args:
        image: an image file (read with Pillow: JPEG, PNG...), a PIL image, or an array / tensor shaped
            (C, H, W), (1, C, H, W) or (H, W, C) with C = 1 or 3 (uint8, or floats in [0, 1]). Grey
            images are repeated on the 3 channels.
        what: how messages name it ("content image").
        size: see `image_size` (int: the longer side; (height, width): exactly, cut or stretched as
            `resize` says).
        resize: "squash", "crop" or "pad" when `size` is a (height, width) pair of another aspect.

    Raises:
        ImageDecodeError: a file that is missing or not an image (naming it and `what`).
        ValueError: an array of another shape or range.
    """
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "getbands"):  # a file or a PIL image
        name = str(image) if isinstance(image, (str, os.PathLike)) else getattr(image, "filename", "") or "PIL image"
        try:
            arr = decode_image(image)
        except ImageDecodeError as e:
            raise ImageDecodeError(f"The {what} {e.path}: {e.reason}. Give an image file (JPEG, PNG, ...).", e.path,
                                   e.reason) from None
    else:
        name = what
        x = image.detach().cpu() if isinstance(image, torch.Tensor) else np.asarray(image)
        if x.ndim == 3 and x.shape[0] not in (1, 3) and x.shape[-1] in (1, 3):
            x = x.permute(2, 0, 1) if isinstance(x, torch.Tensor) else x.transpose(2, 0, 1)  # (H, W, C) -> (C, H, W)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[0] != 1:
            raise ValueError(f"The {what} must be one image (C, H, W), (1, C, H, W) or (H, W, C); received shape "
                             f"{tuple(x.shape)}.")
        arr = to_uint8_array(x, what)[0]
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    hw = image_size((arr.shape[1], arr.shape[2]), size)
    if hw != (arr.shape[1], arr.shape[2]):
        from PIL import Image
        try:
            arr = decode_image(Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0))), hw, resize)
        except ImageDecodeError as e:  # pragma: no cover - a decoded array always converts
            raise ImageDecodeError(f"The {what} {name}: {e.reason}", name, e.reason) from None
    return torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)[None]


def _initial(init: str | ImageLike, content: torch.Tensor, style: torch.Tensor, seed: int) -> torch.Tensor:
    if isinstance(init, str):
        if init == "content":
            return content.clone()
        if init == "style":
            return style.clone()
        if init == "noise":  # white noise, as in the paper
            return torch.rand(content.shape, generator=torch.Generator().manual_seed(int(seed)))
        raise ValueError(f"`init` must be 'content', 'noise', 'style' or an image; received init={init!r}.")
    x = load_image(init, "initial image", size=tuple(content.shape[-2:]))
    return x


def _relative(layers: Sequence[str] | Mapping[str, float], targets: Mapping[str, torch.Tensor],
              what: str) -> dict[str, float]:
    # each layer's weight / (number of layers * mean square of its target): mean relative squared errors
    w = _weights(layers, what)
    n = max(1, len(w))
    return {k: v / (n * max(float(targets[k].pow(2).mean()), 1e-12)) for k, v in w.items()}


def style_transfer(content: ImageLike, style: ImageLike, *, extractor: str | os.PathLike | nn.Module = "random",
                   content_layers: Sequence[str] | Mapping[str, float] = DEFAULT_CONTENT_LAYERS,
                   style_layers: Sequence[str] | Mapping[str, float] = DEFAULT_STYLE_LAYERS,
                   content_weight: float = 1.0, style_weight: float = 1e3, steps: int = 200,
                   size: int | Sequence[int] | None = None, init: str | ImageLike = "content", relative: bool = True,
                   normalize: Stats | str | None = "auto", seed: int = 0, device: str | torch.device | None = None,
                   callback: Callable[[dict[str, float]], None] | None = None) -> StyleTransferResult:
    """Paint `content` in the style of `style` (Gatys et al. 2016), optimising the pixels with L-BFGS.

    Minimises content_weight * content + style_weight * style, where content is the feature MSE at
    `content_layers` between the result and `content`, and style the Gram-matrix MSE at `style_layers`
    between the result and `style` (see `FeatureLoss`; with `relative`, each layer's MSE is divided by
    its target's mean square and by the number of layers).

    Args:
        content: the content image (a file, PIL image, array or tensor; see `load_image`).
        style: the style image, cut to the result's size (scaled to cover it, centre kept), so the
            scale of its textures follows the result's size.
        extractor: "random" (random multi-scale filters: no download, fast, textures and colours transfer
            well, less of a style's large-scale structure), "vgg16"/"vgg19" (torchvision's weights from the
            local hub cache: the paper's quality, slower), a VGG weight file, or an `nn.Module` with
            those layer names (`FeatureExtractor` names).
        content_layers: where content is compared (default conv4_2), names or {name: weight}.
        style_layers: where style is compared (default conv1_1, conv2_1, conv3_1, conv4_1, conv5_1).
        content_weight, style_weight: the weights of the two losses (with `relative`, around 1 and
            1e2..1e4; without it they depend on the network's activation sizes).
        steps: L-BFGS iterations (each costs one or a few forward and backward passes).
        size: the result's size: None (the content's own), an int (its longer side) or (height, width).
        init: start from "content" (default: fastest), "noise" (white noise, as the paper), "style",
            or an image.
        relative: make each layer's loss relative to its target (see above).
        normalize: the extractor's input normalisation (see `get_extractor`; "auto": ImageNet's for the
            named extractors, none for a module).
        seed: the seed of the random filters and of the noise.
        device: where to compute (default: CUDA when present, else the CPU).
        callback: called with each history entry (e.g. to show progress).

    Returns:
        a `StyleTransferResult`: `.image` (PIL), `.tensor` (3, H, W), `.history`, `.save(path)`.

    Raises:
        ImageDecodeError: `content` or `style` is not an image (naming the file).
        StyleTransferError: the loss became NaN or infinite (lower `style_weight`).

    Example:
        >>> res = style_transfer("cat.jpg", "starry_night.jpg", size=256, steps=100)
        >>> res.save("cat_starry.png"); res.history[-1]["style"]
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"`steps` must be an int >= 1; received steps={steps!r}.")
    for name, v in (("content_weight", content_weight), ("style_weight", style_weight)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < math.inf):
            raise ValueError(f"`{name}` must be a finite number >= 0; received {name}={v!r}.")
    dev = parse_device(device) if device is not None else _default_device()
    c_img = load_image(content, "content image", size)
    s_img = load_image(style, "style image", tuple(c_img.shape[-2:]), resize="crop")
    c_img, s_img = c_img.to(dev), s_img.to(dev)
    loss = FeatureLoss(extractor, content_layers, style_layers, content_weight=content_weight,
                       style_weight=style_weight, normalize=normalize, seed=seed)
    ct, st = loss.targets(c_img, s_img)
    if relative:
        loss.content_layers = _relative(content_layers, ct, "content_layers")
        loss.style_layers = _relative(style_layers, st, "style_layers")
    x = _initial(init, c_img.cpu(), s_img.cpu(), seed).to(dev).requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=_CLAMP_EVERY, history_size=50, line_search_fn="strong_wolfe",
                            tolerance_grad=0.0, tolerance_change=1e-12)
    history: list[dict[str, float]] = []
    done = 0

    def closure() -> torch.Tensor:
        opt.zero_grad()
        c, s = loss.terms(loss.features(x), ct, st)
        total = content_weight * c + style_weight * s
        it = opt.state[x].get("n_iter", 0)
        entry = {"iteration": float(it), "loss": float(total.detach()), "content": float(c.detach()),
                 "style": float(s.detach())}
        if not math.isfinite(entry["loss"]):
            raise StyleTransferError(f"style_transfer: the loss became {entry['loss']} after {it} L-BFGS "
                                     f"iterations (content {entry['content']:.4g}, style {entry['style']:.4g}).",
                                     "Lower `style_weight` (or use relative=True).",
                                     cli_hint="Give a smaller --style-weight.")
        history.append(entry)
        if callback is not None:
            callback(entry)
        total.backward()
        return total

    while done < steps:
        n = min(_CLAMP_EVERY, steps - done)
        opt.param_groups[0]["max_iter"] = n
        opt.param_groups[0]["max_eval"] = n * 4
        before = opt.state[x].get("n_iter", 0)
        opt.step(closure)
        did = opt.state[x].get("n_iter", 0) - before
        done += did
        with torch.no_grad():
            x.clamp_(0.0, 1.0)
        if did == 0:  # converged: no step makes progress
            break
    if not torch.isfinite(x).all():  # pragma: no cover - the closure stops first
        raise StyleTransferError("style_transfer: the image has NaN pixels.", "Lower `style_weight`.",
                                 cli_hint="Give a smaller --style-weight.")
    return StyleTransferResult(tensor=x.detach()[0].cpu(), history=history, iterations=done)


def _default_device() -> torch.device:
    from ..utils import default_device
    dev = default_device()
    return dev if dev.type != "mps" else torch.device("cpu")  # L-BFGS and reflection padding are fine on the CPU
