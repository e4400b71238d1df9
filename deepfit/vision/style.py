"""Feature losses: the activations of a frozen network compared between two images.

- `gram_matrix`: the channel correlations of a feature map, which keep its textures (what occurs)
  and forget the layout (where).
- `FeatureExtractor`: any `nn.Module` plus layer names -> the activations of those layers (forward
  hooks; the module is frozen and kept in eval mode; the forward pass stops after the last layer needed).
- `RandomFeatures`: a network of random multi-scale filters that needs no download (Ustyuzhaninov et
  al. 2016, "Texture synthesis using shallow convolutional networks with random filters").
- `FeatureLoss`: content (feature MSE) + style (Gram-matrix MSE) + optional pixel MSE, with weights
  per layer; usable as a `Learner` loss `loss_func(pred, target)`, e.g. to train a U-Net for
  super-resolution or other image-to-image work (the "perceptual loss" of Johnson et al. 2016).
- `get_extractor`: an extractor from a name ("random", "vgg16", "vgg19"), a weight file, or a module.

`deepfit.vision.style_transfer` optimises an image with these losses (Gatys et al. 2016).

What quality to expect from each extractor:

- VGG16/VGG19 with torchvision's ImageNet weights (`"vgg19"`, from the local hub cache or a file): the
  reference. Its deep layers (conv4_2) keep objects recognisable while the style layers (conv1_1 ...
  conv5_1) carry brush strokes and textures over several scales. Best results, and the slowest
  (VGG19 costs about 20 GFLOPs per 224x224 forward pass, and L-BFGS needs a pass and its backward per step).
- `RandomFeatures` (`"random"`, the default): no weights needed. Ustyuzhaninov et al. showed that one
  layer of many random filters of several sizes synthesises textures close to VGG's for regular
  textures; here the scales come from an image pyramid (5 levels), which is much cheaper. Expect
  colours, local textures and their scales to transfer well, and less of the semantic, large-scale
  structure of a style (no "objects" are recognised: content is kept as a blurred layout of colours
  and edges rather than as shapes). Several times faster than VGG.
- Your own module (`extractor=my_net` with layer names of `my_net.named_modules()`): as good as its
  features; networks trained on images (any classifier body) work, untrained deep networks do not
  (random deep features lose the image's structure; a single random layer as above is the exception).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .augment import IMAGENET_STATS

__all__ = ["gram_matrix", "FeatureExtractor", "RandomFeatures", "FeatureLoss", "get_extractor", "EXTRACTORS",
           "DEFAULT_CONTENT_LAYERS", "DEFAULT_STYLE_LAYERS"]

#: Gatys et al.'s layers: content from conv4_2, style from the first convolution of each block.
DEFAULT_CONTENT_LAYERS: tuple[str, ...] = ("conv4_2",)
DEFAULT_STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
#: The extractors known by name (besides a weight file or a module).
EXTRACTORS = ("random", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")

Stats = tuple[Sequence[float], Sequence[float]]


def gram_matrix(x: torch.Tensor) -> torch.Tensor:
    """The Gram matrix of feature maps, averaged over positions: G[c, d] = sum_p F[c, p] F[d, p] / P.

    Dividing by the number of positions P = H * W makes Gram matrices of images of different sizes
    comparable. The MSE between two of them (mean over the C x C entries) is 4 times the per-layer style
    loss E_l of Gatys et al. 2016 (which divides the squared distance of unnormalised Gram matrices
    by 4 C^2 P^2).

    Args:
        x: feature maps (B, C, H, W), or one image's (C, H, W) or (C, P) (P positions).

    Returns:
        (B, C, C), or (C, C) for an input without a batch dimension.

    Example:
        >>> gram_matrix(torch.ones(1, 2, 3, 3))   # every entry 1.0
    """
    if x.ndim < 2:
        raise ValueError(f"gram_matrix needs feature maps (B, C, H, W) or (C, H, W); received shape {tuple(x.shape)}.")
    single = x.ndim <= 3  # (C, H, W), or (C, P) already flat
    f = (x[None] if single else x).flatten(2)  # (B, C, P)
    g = f @ f.transpose(1, 2) / f.shape[-1]
    return g[0] if single else g


class _Stop(Exception):
    """Raised by the last hook needed, to skip the rest of the forward pass."""


def _stats(normalize: Stats | str | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    if normalize is None:
        return None
    if isinstance(normalize, str):
        if normalize != "imagenet":
            raise ValueError(f"`normalize` must be None, 'imagenet' or (mean, std); received {normalize!r}.")
        normalize = IMAGENET_STATS
    try:
        mean, std = (torch.tensor([float(v) for v in s]).view(1, -1, 1, 1) for s in normalize)
    except (TypeError, ValueError):
        raise ValueError(f"`normalize` must be None, 'imagenet' or (mean, std) sequences; received {normalize!r}.") \
            from None
    if mean.numel() != std.numel() or (std <= 0).any():
        raise ValueError(f"`normalize` needs as many means as standard deviations, all deviations > 0; received "
                         f"{normalize!r}.")
    return mean, std


class FeatureExtractor(nn.Module):
    """The activations of chosen layers of a frozen module.

    The module is put in eval mode (and kept there) and its parameters get `requires_grad=False`, so it
    can serve as a fixed loss network while gradients still flow to its input. Forward hooks, present
    only during the extractor's own calls, record the outputs of the layers (copies, so in-place
    operations after them do not change the values); the forward pass stops as soon as the last of
    them has run (the classifier of a VGG never runs).

    Args:
        module: any network. It is frozen in place (not copied).
        layers: names of its submodules as in `module.named_modules()` (`"features.19"`), or names from
            `module.layer_aliases` when it has that mapping (`VGG`: `"conv4_2"`; `RandomFeatures`). A
            module called several times in one forward pass (a shared ReLU) gives its first output.
        normalize: applied to the input first: None, "imagenet" (`IMAGENET_STATS`, what torchvision's
            weights expect for [0, 1] images), or (mean, std) per channel.

    Example:
        >>> ext = FeatureExtractor(load_vgg("vgg16"), ["conv1_1", "conv4_2"], normalize="imagenet")
        >>> feats = ext(images)          # {"conv1_1": (B, 64, H, W), "conv4_2": (B, 512, H/8, W/8)}
    """

    def __init__(self, module: nn.Module, layers: Sequence[str], normalize: Stats | str | None = None) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"FeatureExtractor needs a torch.nn.Module; received {type(module).__name__}.")
        if isinstance(layers, str):
            layers = [layers]
        self.layers = list(dict.fromkeys(layers))
        if not self.layers:
            raise ValueError("FeatureExtractor needs at least one layer name.")
        aliases = dict(getattr(module, "layer_aliases", None) or {})
        modules = dict(module.named_modules())
        paths: dict[str, list[str]] = {}
        for name in self.layers:
            path = aliases.get(name, name)
            if not isinstance(name, str) or path == "" or path not in modules:
                known = list(aliases) or [n for n in modules if n]
                shown = ", ".join(known[:24]) + (f", ... ({len(known)} in all)" if len(known) > 24 else "")
                raise ValueError(f"FeatureExtractor: {type(module).__name__} has no layer {name!r}; its layers are "
                                 f"{shown}.")
            paths.setdefault(path, []).append(name)
        module.requires_grad_(False)
        module.eval()
        self.module = module
        self.paths = paths
        st = _stats(normalize)
        self.register_buffer("mean", st[0] if st else None, persistent=False)
        self.register_buffer("std", st[1] if st else None, persistent=False)
        self._feats: dict[str, torch.Tensor] = {}

    def _hook(self, names: list[str]) -> Any:
        def hook(mod: nn.Module, inp: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"FeatureExtractor: layer {names[0]!r} returns {type(out).__name__}, not a tensor; "
                                "choose a layer whose output is one tensor.")
            if names[0] in self._feats:  # called again in the same pass (a shared ReLU): keep the first output
                return
            for n in names:
                self._feats[n] = out.clone()
            if len(self._feats) == len(self.layers):
                raise _Stop
        return hook

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The chosen layers' activations for the batch `x`, in the order of `layers`."""
        p = next(self.module.parameters(), None)
        if p is not None and p.device != x.device:  # e.g. a loss built on the CPU, a model on the GPU
            self.module.to(x.device)
        if self.mean is not None:
            if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
                raise ValueError(f"FeatureExtractor expects images (B, {self.mean.shape[1]}, H, W); received shape "
                                 f"{tuple(x.shape)}.")
            x = (x - self.mean.to(x.device, x.dtype)) / self.std.to(x.device, x.dtype)
        # hooks only for the duration of this call: the module used elsewhere (or a deep copy of this
        # extractor) is never affected
        self._feats = {}
        handles = [self.module.get_submodule(p).register_forward_hook(self._hook(names))
                   for p, names in self.paths.items()]
        try:
            self.module(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        feats, self._feats = self._feats, {}
        missing = [n for n in self.layers if n not in feats]
        if missing:
            raise RuntimeError(f"FeatureExtractor: the layers {missing} did not run in {type(self.module).__name__}'s "
                               "forward pass; choose layers that its forward calls.")
        return {n: feats[n] for n in self.layers}

    def train(self, mode: bool = True) -> "FeatureExtractor":
        """Keeps the wrapped module in eval mode whatever `mode` is (batch norm statistics, dropout)."""
        self.training = mode
        self.module.eval()
        return self


class RandomFeatures(nn.Module):
    """Random multi-scale filters: an offline feature network for texture and style losses.

    Ustyuzhaninov et al. 2016 synthesised textures nearly as well as with VGG from a single layer of
    random filters of several sizes (3 to 55 pixels, 128 maps each, ReLU). Large filters are costly, so
    here the scales come from an image pyramid instead: level b (1 to `levels`) is the image blurred and
    halved b - 1 times (a Gaussian pyramid: 5x5 binomial filter, stride 2), to which `n_filters` random
    `kernel_size` filters and a ReLU are applied, so the filters span about 5, 10, 20, 40 and 80
    pixels of the image with the defaults, like the paper's range.
    The weights are drawn from N(0, 1 / fan_in) with `seed` (the same seed, the same network) and the
    biases are zero; nothing is trained.

    The levels also answer to VGG's layer names (`layer_aliases`): `convB_I` and `reluB_I` are level B
    (VGG's block B works at the same resolution, 1 / 2^(B-1)), so Gatys et al.'s default layers
    (content conv4_2, style conv1_1 ... conv5_1) work unchanged.

    Args:
        n_filters: random filters per level.
        kernel_size: size of the filters (odd; the borders are padded by reflection).
        levels: pyramid levels (1 to 8).
        n_in: input channels.
        seed: the seed of the weights.

    Example:
        >>> ext = FeatureExtractor(RandomFeatures(seed=0), ["level1", "level4"], normalize="imagenet")
    """

    def __init__(self, n_filters: int = 128, kernel_size: int = 5, levels: int = 5, n_in: int = 3,
                 seed: int = 0) -> None:
        super().__init__()
        for name, v, lo in (("n_filters", n_filters, 1), ("kernel_size", kernel_size, 1), ("levels", levels, 1),
                            ("n_in", n_in, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"RandomFeatures: `{name}` must be an int >= {lo}; received {name}={v!r}.")
        if kernel_size % 2 == 0:
            raise ValueError(f"RandomFeatures: `kernel_size` must be odd (centred filters); received {kernel_size}.")
        if levels > 8:
            raise ValueError(f"RandomFeatures: `levels` must be at most 8; received levels={levels}.")
        self.config = {"n_filters": n_filters, "kernel_size": kernel_size, "levels": levels, "n_in": n_in,
                       "seed": int(seed)}
        gen = torch.Generator().manual_seed(int(seed))
        fan_in = n_in * kernel_size * kernel_size
        for b in range(1, levels + 1):
            level = _RandomLevel(n_in, n_filters, kernel_size)
            with torch.no_grad():
                level.conv.weight.copy_(torch.randn(level.conv.weight.shape, generator=gen) / fan_in ** 0.5)
                level.conv.bias.zero_()
            self.add_module(f"level{b}", level)
        self.layer_aliases = {f"{kind}{b}_{i}": f"level{b}" for b in range(1, levels + 1) for i in range(1, 5)
                              for kind in ("conv", "relu")}
        self.layer_aliases.update({f"level{b}": f"level{b}" for b in range(1, levels + 1)})
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The ReLU maps of every level: level b is (B, n_filters, H / 2^(b-1), W / 2^(b-1))."""
        outs = []
        for b in range(1, self.config["levels"] + 1):
            if b > 1:
                x = _half(x)
            outs.append(getattr(self, f"level{b}")(x))
        return outs


class _RandomLevel(nn.Module):
    """One level of `RandomFeatures`: padding (reflection, or replication for images too small to reflect),
    a convolution, a ReLU."""

    def __init__(self, n_in: int, n_filters: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n_in, n_filters, kernel_size)
        self.pad = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = "reflect" if min(x.shape[-2:]) > self.pad else "replicate"
        return torch.relu(self.conv(F.pad(x, (self.pad,) * 4, mode=mode) if self.pad else x))


_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _half(x: torch.Tensor) -> torch.Tensor:
    """The next level of a Gaussian pyramid: a 5x5 binomial blur, then every second pixel. Smoother than
    averaging 2x2 blocks, whose gradients paint the image in visible squares."""
    h, w = x.shape[-2:]
    if min(h, w) < 2:
        return x
    c = x.shape[1]
    k = torch.outer(_BINOMIAL, _BINOMIAL).to(x.device, x.dtype).expand(c, 1, 5, 5)
    mode = "reflect" if min(h, w) > 2 else "replicate"
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode=mode), k, stride=2, groups=c)


def _weights(layers: Sequence[str] | Mapping[str, float], what: str) -> dict[str, float]:
    if isinstance(layers, str):
        layers = [layers]
    if isinstance(layers, Mapping):
        out = {}
        for k, v in layers.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not (v >= 0) or v == float("inf"):
                raise ValueError(f"`{what}`: the weight of layer {k!r} must be a finite number >= 0; received {v!r}.")
            out[str(k)] = float(v)
        return out
    return {str(k): 1.0 for k in layers}


def get_extractor(extractor: str | os.PathLike | nn.Module, layers: Sequence[str], *, seed: int = 0,
                  normalize: Stats | str | None = "auto") -> FeatureExtractor:
    """A `FeatureExtractor` for `layers` from a name, a weight file or a module.

    Args:
        extractor: "random" (`RandomFeatures(seed=seed)`); "vgg16", "vgg19" (or vgg11/13, `_bn` for batch
            norm) with torchvision's weights from torch's hub cache; the path of a VGG weight file
            (.pth/.pt/.safetensors; which VGG is read from its tensors); any `nn.Module`; or a
            `FeatureExtractor`, returned as it is when it has all `layers`.
        layers: the layer names needed.
        seed: the seed of the random filters.
        normalize: "auto" (ImageNet statistics for the named extractors and files, which expect [0, 1]
            images; none for a module), None, "imagenet" or (mean, std).

    Raises:
        FileNotFoundError: VGG weights not in the hub cache, or no such file.
        ValueError: an unknown name, an unreadable or non-VGG file, or unknown layers (naming them).
    """
    layers = list(dict.fromkeys(layers))
    if isinstance(extractor, FeatureExtractor):
        missing = [n for n in layers if n not in extractor.layers]
        if missing:
            raise ValueError(f"The FeatureExtractor given does not record the layers {missing} (it has "
                             f"{extractor.layers}); build it with them.")
        return extractor
    auto = "imagenet" if normalize == "auto" else normalize
    if isinstance(extractor, nn.Module):
        return FeatureExtractor(extractor, layers, normalize=None if normalize == "auto" else normalize)
    if not isinstance(extractor, (str, os.PathLike)):
        raise TypeError(f"`extractor` must be a name ({', '.join(EXTRACTORS)}), a weight file or an nn.Module; "
                        f"received {type(extractor).__name__}.")
    from .models.vgg import load_vgg, vgg_from_file
    name = str(extractor)
    if name == "random":
        return FeatureExtractor(RandomFeatures(seed=seed), layers, normalize=auto)
    if name in EXTRACTORS:
        net = load_vgg(name.removesuffix("_bn"), True, batch_norm=name.endswith("_bn"), features_only=True)
    elif Path(name).suffix.lower() in (".pth", ".pt", ".safetensors") or Path(name).is_file():
        net = vgg_from_file(name, features_only=True)
    else:
        raise ValueError(f"Unknown extractor {name!r}: use one of {', '.join(EXTRACTORS)}, the path of a VGG weight "
                         "file (.pth or .safetensors), or pass an nn.Module.")
    return FeatureExtractor(net, layers, normalize=auto)


class FeatureLoss(nn.Module):
    """Content, style and pixel losses between two images through a frozen feature network.

    loss = content_weight * sum_l w_l * MSE(F_l(pred), F_l(target))
         + style_weight * sum_l w_l * MSE(gram(F_l(pred)), gram(F_l(target)))
         + pixel_weight * MSE(pred, target)

    where the MSEs are means over all elements (of the feature maps, of the B x C x C Gram matrices:
    each image is compared with its own target). The target's features are computed without
    gradients. As a `Learner` loss, `loss_func(pred, target)` takes the model's output and the target
    images of a batch (B, C, H, W); the extractor follows the prediction's device.

    Args:
        extractor: a `FeatureExtractor`, a module, "random", "vgg16", "vgg19" or a VGG weight file (see
            `get_extractor`).
        content_layers: layer names (weight 1 each) or {name: weight}.
        style_layers: layer names (weight 1 each) or {name: weight}.
        content_weight, style_weight, pixel_weight: the weights of the three terms.
        normalize: how the extractor normalises its input (see `get_extractor`): "auto" uses ImageNet
            statistics for named extractors, which expect images in [0, 1]. Pass None when the images
            are already normalised (e.g. batches of `ImageDataLoaders(normalize="imagenet")`).
        seed: the seed of "random" filters.

    Attributes:
        last: the detached terms of the last call ({"content", "style", "pixel"}), for logging.

    Example:
        >>> loss = FeatureLoss("vgg16", content_layers=["conv2_2", "conv3_3"], style_layers=["conv2_2"],
        ...                    style_weight=5e3, pixel_weight=1.0, normalize=None)
        >>> learn = Learner(dls, unet, loss_func=loss)
    """

    def __init__(self, extractor: str | os.PathLike | nn.Module = "random",
                 content_layers: Sequence[str] | Mapping[str, float] = DEFAULT_CONTENT_LAYERS,
                 style_layers: Sequence[str] | Mapping[str, float] = (), *, content_weight: float = 1.0,
                 style_weight: float = 1.0, pixel_weight: float = 0.0, normalize: Stats | str | None = "auto",
                 seed: int = 0) -> None:
        super().__init__()
        for name, v in (("content_weight", content_weight), ("style_weight", style_weight),
                        ("pixel_weight", pixel_weight)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < float("inf")):
                raise ValueError(f"FeatureLoss: `{name}` must be a finite number >= 0; received {name}={v!r}.")
        self.content_layers = _weights(content_layers, "content_layers")
        self.style_layers = _weights(style_layers, "style_layers")
        if not self.content_layers and not self.style_layers and not pixel_weight:
            raise ValueError("FeatureLoss needs content layers, style layers or a pixel weight; all are empty.")
        self.content_weight, self.style_weight = float(content_weight), float(style_weight)
        self.pixel_weight = float(pixel_weight)
        needed = list(dict.fromkeys([*self.content_layers, *self.style_layers]))
        self.extractor = get_extractor(extractor, needed, seed=seed, normalize=normalize) if needed else None
        self.last: dict[str, torch.Tensor] = {}

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The activations of every layer this loss uses."""
        return self.extractor(x) if self.extractor is not None else {}

    def targets(self, content: torch.Tensor | None = None, style: torch.Tensor | None = None
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The fixed targets, without gradients: content features of `content`, Gram matrices of `style`."""
        with torch.no_grad():
            cf = self.features(content) if content is not None and self.content_layers else {}
            sf = self.features(style) if style is not None and self.style_layers else {}
        return ({n: cf[n] for n in self.content_layers} if cf else {},
                {n: gram_matrix(sf[n]) for n in self.style_layers} if sf else {})

    def terms(self, feats: Mapping[str, torch.Tensor], content_targets: Mapping[str, torch.Tensor],
              style_targets: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(content, style): the weighted sums over layers of feature MSEs and Gram-matrix MSEs, before
        `content_weight` / `style_weight`. Targets of batch size 1 serve a whole batch (broadcast)."""
        zero = next(iter(feats.values())).new_zeros(()) if feats else torch.zeros(())
        content, style = zero, zero
        for n, w in self.content_layers.items():
            if n in content_targets and w:
                f, t = feats[n], content_targets[n]
                content = content + w * F.mse_loss(f, t.expand_as(f))
        for n, w in self.style_layers.items():
            if n in style_targets and w:
                g, t = gram_matrix(feats[n]), style_targets[n]
                style = style + w * F.mse_loss(g, t.expand_as(g))
        return content, style

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of images `pred` against `target` (both (B, C, H, W))."""
        if pred.shape != target.shape:
            raise ValueError(f"FeatureLoss: the predictions have shape {tuple(pred.shape)} but the target images "
                             f"{tuple(target.shape)}; they must be images of the same size.")
        target = target.to(pred.dtype)
        ct, st = self.targets(target, target)
        content, style = self.terms(self.features(pred), ct, st)
        pixel = F.mse_loss(pred, target) if self.pixel_weight else pred.new_zeros(())
        self.last = {"content": content.detach(), "style": style.detach(), "pixel": pixel.detach()}
        return self.content_weight * content + self.style_weight * style + self.pixel_weight * pixel
