"""`deepfit style CONTENT STYLE --out result.png`: neural style transfer from the shell.

    deepfit style photo.jpg painting.jpg --out result.png --size 256 --steps 200
    deepfit style photo.jpg painting.jpg --extractor vgg19      # torchvision's weights in ~/.cache/torch/hub

See `deepfit.vision.style_transfer` for the method and `deepfit.vision.style` for what to expect from
each --extractor.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from .base import EXIT_OK, CLIError, Console, check_input_file, positive_int

__all__ = ["add_style_arguments", "cmd_style", "DEFAULT_MAX_SIDE"]

#: Without --size, a content image larger than this (longer side, pixels) is scaled down to it.
DEFAULT_MAX_SIDE = 512


def parse_style_size(text: str) -> int | tuple[int, int]:
    """argparse type for `deepfit style --size`: `N` (the longer side) or `HxW` (height x width)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size in pixels such as 256 (the longer side) or 192x256 "
                                         f"(height x width), got {text!r}")
    sides = [int(g) for g in m.groups() if g]
    if not all(8 <= s <= 4096 for s in sides):
        raise argparse.ArgumentTypeError(f"image sides must be between 8 and 4096 pixels, got {text!r}")
    return sides[0] if len(sides) == 1 else (sides[0], sides[1])


def _weight(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (0 <= v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return v


def add_style_arguments(p: argparse.ArgumentParser) -> None:
    """Options of `deepfit style`."""
    from ..vision.style import EXTRACTORS
    p.add_argument("content", type=Path, metavar="CONTENT", help="the image whose content (layout, objects) to keep")
    p.add_argument("style", type=Path, metavar="STYLE", help="the image whose style (colours, textures) to paint with")
    p.add_argument("--out", "-o", type=Path, default=None, metavar="PNG",
                   help="where to write the result (default: CONTENT-stem.styled.png in the current directory)")
    p.add_argument("--size", type=parse_style_size, default=None, metavar="N|HxW",
                   help="the result's longer side, or height x width (default: the content's size, at most "
                        f"{DEFAULT_MAX_SIDE} px on its longer side)")
    p.add_argument("--steps", type=positive_int, default=200, metavar="N",
                   help="L-BFGS iterations (default: %(default)s)")
    p.add_argument("--extractor", default="random", metavar="NAME|FILE",
                   help=f"the feature network: {', '.join(EXTRACTORS)} (torchvision's weights from the local torch hub "
                        "cache; never downloaded) or a VGG weight file (.pth/.safetensors) (default: random, random "
                        "multi-scale filters that need no download)")
    p.add_argument("--style-weight", type=_weight, default=1e3, metavar="W",
                   help="weight of the style loss: more style, less content (default: %(default)g)")
    p.add_argument("--content-weight", type=_weight, default=1.0, metavar="W",
                   help="weight of the content loss (default: %(default)g)")
    p.add_argument("--init", choices=("content", "noise", "style"), default="content",
                   help="the image the optimisation starts from (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random filters and noise (default: %(default)s)")
    p.add_argument("--device", default=None, help="cpu, cuda (default: cuda when present, else cpu)")


def _image_size(path: Path, what: str) -> tuple[int, int]:
    # (height, width) from the header, naming the file and its argument when it is not an image
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        reason = "not an image file (Pillow cannot identify it)" if isinstance(e, UnidentifiedImageError) else \
            f"unreadable image ({e})"
        raise CLIError(f"{what} {path}: {reason}; give an image file (JPEG, PNG, ...) as {what.split()[0].upper()}") \
            from None
    return h, w


def _check_extractor(spec: str) -> None:
    from ..vision.style import EXTRACTORS
    if spec in EXTRACTORS:
        return
    path = Path(spec)
    if path.suffix.lower() in (".pth", ".pt", ".safetensors") or path.exists() or "/" in spec:
        check_input_file(path, "--extractor weight file")
        return
    raise CLIError(f"--extractor {spec!r} is neither one of {', '.join(EXTRACTORS)} nor a weight file "
                   "(.pth/.safetensors); use --extractor random for the feature network that needs no download")


def cmd_style(args: argparse.Namespace, console: Console) -> int:
    """`deepfit style`: stylise CONTENT with STYLE and write a PNG."""
    from ..errors import cli_message
    from ..utils import parse_device
    from ..vision.decode import ImageDecodeError
    from ..vision.style import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, get_extractor
    from ..vision.style_transfer import StyleTransferError, load_image, style_transfer
    from . import _check_output_file
    content = check_input_file(args.content, "content image")
    style = check_input_file(args.style, "style image")
    out = args.out if args.out is not None else Path(f"{content.stem}.styled.png")
    if out.suffix.lower() != ".png":
        raise CLIError(f"--out {out}: deepfit style writes PNG images; give a name ending in .png")
    _check_output_file(out, [content, style])
    _check_extractor(args.extractor)
    own = _image_size(content, "content image")
    _image_size(style, "style image")
    size: Any = args.size
    if size is None and max(own) > DEFAULT_MAX_SIDE:
        size = DEFAULT_MAX_SIDE
        console.info(f"the content image's longer side is {max(own)} px; working at {DEFAULT_MAX_SIDE} px (choose "
                     "with --size)")
    try:
        device = None if args.device is None else parse_device(args.device)
    except ValueError as e:
        raise CLIError(f"--device: {e}") from None
    try:
        c_img = load_image(content, "content image", size)
        s_img = load_image(style, "style image", tuple(c_img.shape[-2:]), resize="crop")
    except ImageDecodeError as e:
        which = "CONTENT" if Path(e.path or "") == content else "STYLE"
        raise CLIError(f"{which} {e.path}: {e.reason}; give an image file (JPEG, PNG, ...)") from None
    h, w = c_img.shape[-2:]
    console.info(f"style transfer: {content.name} in the style of {style.name}, {w}x{h} px, {args.steps} "
                 f"L-BFGS steps, extractor {args.extractor}")
    try:
        with console.step(f"loading the feature network ({args.extractor})"):
            extractor = get_extractor(args.extractor, [*DEFAULT_CONTENT_LAYERS, *DEFAULT_STYLE_LAYERS], seed=args.seed)
    except FileNotFoundError as e:
        raise CLIError(f"--extractor {args.extractor}: {cli_message(e)}") from None
    except ValueError as e:
        raise CLIError(f"--extractor {args.extractor}: {cli_message(e)}") from None
    with console.bar("L-BFGS", total=args.steps, unit="step") as bar:
        seen = [0]

        def progress(entry: dict[str, float]) -> None:
            it = int(entry["iteration"])
            if it > seen[0]:
                bar.update(it - seen[0])
                seen[0] = it

        try:
            res = style_transfer(c_img, s_img, extractor=extractor, steps=args.steps,
                                 content_weight=args.content_weight, style_weight=args.style_weight,
                                 init=args.init, seed=args.seed, device=device, callback=progress)
        except StyleTransferError as e:
            raise CLIError(cli_message(e)) from None
    first, last = res.history[0], res.history[-1]
    console.info(f"{res.iterations} L-BFGS steps: content loss {first['content']:.4g} -> {last['content']:.4g}, "
                 f"style loss {first['style']:.4g} -> {last['style']:.4g}")
    try:
        res.save(out)
    except OSError as e:
        raise CLIError(f"cannot write {out}: {e.strerror or e}") from None
    console.result(f"wrote {out} ({w}x{h})")
    return EXIT_OK
