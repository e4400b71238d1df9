"""A U-Net on any CNN body (Ronneberger et al. 2015, built as in the fastai course's DynamicUnet).

The encoder is a classification network cut before its head (`create_body`). Forward hooks on its
children, run once on a probe image, record every child's output size; the last child before each
change of resolution gives a skip connection (for a ResNet: the stem's ReLU at 1/2, layer1 at 1/4,
layer2 at 1/8, layer3 at 1/16; layer4 at 1/32 is the encoder's output). The decoder climbs back one
resolution at a time: each `UnetBlock` doubles the resolution with a sub-pixel convolution
(`PixelShuffleICNR`: a 1x1 convolution to 4x the channels, then `PixelShuffle`, initialised with ICNR so it
starts as a nearest-neighbour upsampling, free of checkerboard artefacts; Aitken et al. 2017), concatenates
the batch-normalised skip features, and applies two 3x3 convolutions. A last upsampling returns to the
input's resolution, where the input image itself is concatenated before the final convolutions and the
1x1 classifier. Odd sizes (e.g. 180 -> 90 -> 45 -> 23) are handled by resizing the upsampled features to
the skip's size, so any input size works.

Example:
    >>> model = DynamicUnet("resnet34", n_out=12, img_size=(180, 240))
    >>> model(torch.zeros(2, 3, 180, 240)).shape
    torch.Size([2, 12, 180, 240])
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...export import register_model
from ..learner import _arch_fn, create_body
from ..models._common import init_cnn

__all__ = ["icnr_", "PixelShuffleICNR", "UnetBlock", "DynamicUnet", "child_sizes", "skip_indices"]

#: Where the body of these architectures is split into layer groups 1 and 2 (index into the body).
_BODY_SPLIT = {"resnet18": 6, "resnet34": 6, "resnet50": 6}


def icnr_(weight: torch.Tensor, scale: int = 2,
          init: Callable[[torch.Tensor], Any] = nn.init.kaiming_normal_) -> torch.Tensor:
    """ICNR initialisation (in place) of a convolution's weight (out * scale^2, in, kh, kw) that feeds
    `nn.PixelShuffle(scale)`: one kernel is drawn per output channel of the shuffle and copied to its
    scale^2 sub-pixel positions, so the upsampling starts as conv + nearest-neighbour resize."""
    out_c = weight.shape[0]
    r2 = scale * scale
    if out_c % r2:
        raise ValueError(f"ICNR needs output channels divisible by scale^2 = {r2}; the weight has {out_c}.")
    k = torch.empty(out_c // r2, *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    init(k)
    with torch.no_grad():
        # PixelShuffle turns channel c * r^2 + i into sub-pixel i of output channel c
        weight.copy_(k.repeat_interleave(r2, dim=0))
    return weight


class PixelShuffleICNR(nn.Sequential):
    """Upsample by `scale` with a sub-pixel convolution: 1x1 conv (ni -> nf * scale^2, ICNR) -> ReLU ->
    PixelShuffle."""

    def __init__(self, ni: int, nf: int, scale: int = 2) -> None:
        conv = nn.Conv2d(ni, nf * scale * scale, 1)
        if conv.weight.device.type != "meta":
            icnr_(conv.weight, scale)
            nn.init.zeros_(conv.bias)
        super().__init__(conv, nn.ReLU(inplace=True), nn.PixelShuffle(scale))


def _conv_layer(ni: int, nf: int, ks: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ni, nf, ks, padding=ks // 2, bias=False), nn.BatchNorm2d(nf), nn.ReLU(inplace=True))


def _to_size(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=tuple(size), mode="nearest")


class UnetBlock(nn.Module):
    """Upsample `up_c` channels to twice the resolution (half the channels), concatenate the skip features
    (`skip_c`, batch-normalised), then two 3x3 conv + BN + ReLU layers to `nf` channels."""

    def __init__(self, up_c: int, skip_c: int, nf: int) -> None:
        super().__init__()
        self.shuf = PixelShuffleICNR(up_c, up_c // 2)
        self.bn = nn.BatchNorm2d(skip_c)
        ni = up_c // 2 + skip_c
        self.conv1, self.conv2 = _conv_layer(ni, nf), _conv_layer(nf, nf)

    def forward(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = _to_size(self.shuf(up), skip.shape[-2:])
        x = F.relu(torch.cat([up, self.bn(skip)], dim=1))
        return self.conv2(self.conv1(x))


def child_sizes(body: nn.Module, n_in: int = 3, size: Sequence[int] = (64, 64)) -> list[tuple[int, int, int]]:
    """(channels, height, width) of the output of each child of `body`, recorded by forward hooks during
    one pass of a probe image (on the body's device; the train/eval mode is restored)."""
    shapes: list[tuple[int, int, int]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape[1:]))) for m in body.children()]
    was = body.training
    body.eval()
    try:
        p = next(body.parameters(), None)
        with torch.no_grad():
            body(torch.zeros(1, n_in, *size, device=p.device if p is not None else "cpu"))
    finally:
        body.train(was)
        for h in hooks:
            h.remove()
    for s in shapes:
        if len(s) != 3:
            raise ValueError(f"A child of the body gives an output of shape {s}; a U-Net body must give (C, H, W) "
                             "feature maps at every child (cut the model before its pooling/flatten layers).")
    return shapes


def skip_indices(shapes: Sequence[tuple[int, int, int]]) -> list[int]:
    """The children whose output is the last one at its resolution (the resolution changes right after),
    except the final one: the U-Net's skip connections, shallow to deep."""
    return [i for i in range(len(shapes) - 1) if shapes[i][1:] != shapes[i + 1][1:]]


@register_model
class DynamicUnet(nn.Module):
    """A U-Net whose encoder is `arch` cut before its head (see the module doc).

    Args:
        arch: an architecture name of `deepfit.vision.models.ARCHS` (e.g. "resnet34") or a function
            `arch(n_in=...) -> model` (only names can be exported).
        n_out: classes (outputs per pixel).
        n_in: input channels.
        img_size: (height, width) of the probe image that finds the resolutions (any size divisible by the
            body's total stride works; the model then accepts any input size).
        cut: where to cut `arch` (see `create_body`).
        middle_mult: the middle block widens the encoder's channels by this factor.
        split: index into the body where layer group 2 starts (default per architecture, else half).
        full_model: an already built `arch` model (e.g. with pretrained weights) to cut.

    Children: `body` (the encoder, a Sequential), `middle`, `blocks` (one `UnetBlock` per skip, deep to
    shallow), `final_up`, `head`.
    """

    def __init__(self, arch: str | Callable[..., nn.Module] = "resnet34", n_out: int = 2, n_in: int = 3,
                 img_size: Sequence[int] = (128, 128), cut: int | None = None, middle_mult: float = 2.0,
                 split: int | None = None, full_model: nn.Module | None = None) -> None:
        super().__init__()
        if n_out < 1:
            raise ValueError(f"`n_out` must be at least 1; received n_out={n_out}.")
        name, fn = _arch_fn(arch)
        self.body = create_body(full_model if full_model is not None else fn(n_in=n_in), cut)
        size = (int(img_size[0]), int(img_size[1]))
        shapes = child_sizes(self.body, n_in, size)
        self.skips = skip_indices(shapes)
        if not self.skips:
            raise ValueError(f"The body of {name or arch} never changes resolution on a {size[0]}x{size[1]} image: it "
                             "has nothing for a U-Net's skip connections.")
        nf = shapes[-1][0]
        mid = max(1, int(nf * middle_mult))
        self.middle = nn.Sequential(nn.BatchNorm2d(nf), nn.ReLU(), _conv_layer(nf, mid), _conv_layer(mid, nf))
        blocks = []
        up_c = nf
        for i in reversed(self.skips):
            skip_c = shapes[i][0]
            out_c = max(16, (up_c // 2 + skip_c) // 2)
            blocks.append(UnetBlock(up_c, skip_c, out_c))
            up_c = out_c
        self.blocks = nn.ModuleList(blocks)
        top = shapes[self.skips[0]][1:]
        # back to the input's resolution when the shallowest skip is coarser (a strided stem)
        # (half the channels there: layers at the input's resolution cost the most)
        if tuple(top) != size:
            self.final_up: nn.Module = PixelShuffleICNR(up_c, up_c // 2)
            up_c //= 2
        else:
            self.final_up = nn.Identity()
        self.head = nn.Sequential(_conv_layer(up_c + n_in, up_c), _conv_layer(up_c, up_c), nn.Conv2d(up_c, n_out, 1))
        for m in (self.middle, self.head):
            init_cnn(m)
        for b in self.blocks:
            init_cnn(b.conv1)
            init_cnn(b.conv2)
        self.arch_name = name
        self.split = split if split is not None else _BODY_SPLIT.get(name or "", max(1, len(self.body) // 2))
        self.config = {"arch": name, "n_out": int(n_out), "n_in": int(n_in), "img_size": list(size), "cut": cut,
                       "middle_mult": float(middle_mult), "split": int(self.split)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        h = x
        for i, child in enumerate(self.body):
            h = child(h)
            if i in self.skips:
                feats.append(h)
        h = self.middle(h)
        for block, skip in zip(self.blocks, reversed(feats)):
            h = block(h, skip)
        h = _to_size(self.final_up(h), x.shape[-2:])
        return self.head(torch.cat([h, x], dim=1))

    def layer_groups(self) -> list[nn.Module]:
        """Three groups: early encoder, late encoder, decoder."""
        return [self.body[:self.split], self.body[self.split:],
                nn.ModuleList([self.middle, self.blocks, self.final_up, self.head])]

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export); the architecture must be a name of `ARCHS`."""
        if self.config["arch"] is None:
            raise ValueError("This U-Net's encoder is a function outside deepfit.vision.models.ARCHS, so an exported "
                             "file could not rebuild it: add it to ARCHS under its name, or save the weights with "
                             "learn.save().")
        return dict(self.config)
