"""Neural style transfer (Gatys et al. 2016) with deepfit.vision: paint a photo in the style of another image.

The pixels of the result are optimised with L-BFGS so that its deep features match the content image's
(layer conv4_2) and the Gram matrices of its features, which keep textures and forget their layout, match
the style image's (conv1_1 ... conv5_1). The feature network is pluggable:

- "random" (default): random multi-scale filters (Ustyuzhaninov et al. 2016), nothing to download;
- "vgg16" / "vgg19": torchvision's ImageNet weights, read from ~/.cache/torch/hub/checkpoints (never
  downloaded) or given as a file: the paper's quality, several times slower.

Without arguments the example draws a street-like content image and a "painting" of coloured strokes,
so it runs anywhere in seconds (128 px, 50 L-BFGS steps on a CPU). It writes the result and a strip
(content | style | result) and prints how both losses fell.

Run: python examples/style_transfer.py [CONTENT STYLE] [--size 128] [--steps 50] [--extractor random]
"""
import argparse
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from deepfit.vision import style_transfer


def draw_content(size: int = 128) -> Image.Image:
    """A simple scene: sky, ground, two buildings with windows and a sun."""
    img = Image.new("RGB", (size, size * 3 // 4), (150, 190, 235))
    d = ImageDraw.Draw(img)
    h = img.height
    d.rectangle([0, h * 2 // 3, size, h], fill=(90, 110, 70))
    d.rectangle([size // 8, h // 4, size * 3 // 8, h * 2 // 3], fill=(170, 90, 70))
    d.rectangle([size // 2, h // 8, size * 3 // 4, h * 2 // 3], fill=(120, 120, 140))
    for y in range(h // 6, h * 3 // 5, max(2, h // 12)):
        d.rectangle([size * 9 // 16, y, size * 11 // 16, y + max(1, h // 30)], fill=(240, 230, 150))
    d.ellipse([size * 13 // 16, h // 12, size * 15 // 16, h // 12 + size // 8], fill=(250, 220, 80))
    return img


def draw_style(size: int = 128, seed: int = 1) -> Image.Image:
    """A "painting": short coloured strokes on a dark blue ground."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (20, 30, 80))
    d = ImageDraw.Draw(img)
    palette = [(250, 200, 40), (240, 90, 30), (40, 120, 220), (250, 250, 220), (20, 60, 160)]
    for _ in range(size * 2):
        x, y = rng.integers(0, size, 2)
        angle, length = rng.uniform(0, np.pi), rng.integers(size // 20, size // 6)
        d.line([x, y, x + length * np.cos(angle), y + length * np.sin(angle)],
               fill=palette[rng.integers(0, len(palette))], width=int(rng.integers(1, 4)))
    return img


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("content", nargs="?", help="content image (default: a drawn scene)")
    p.add_argument("style", nargs="?", help="style image (default: drawn strokes)")
    p.add_argument("--size", type=int, default=128, help="longer side of the result, pixels")
    p.add_argument("--steps", type=int, default=50, help="L-BFGS iterations")
    p.add_argument("--extractor", default="random", help="random, vgg16, vgg19 or a VGG weight file")
    p.add_argument("--style-weight", type=float, default=1e3)
    args = p.parse_args()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    out = Path(os.environ.get("DEEPFIT_OUT", "."))
    content = args.content or draw_content(args.size)
    style = args.style or draw_style(args.size)
    print(f"content: {args.content or 'a drawn scene'}; style: {args.style or 'drawn strokes'}; "
          f"extractor: {args.extractor}")
    res = style_transfer(content, style, extractor=args.extractor, size=args.size, steps=args.steps,
                         style_weight=args.style_weight, seed=0)
    first, last = res.history[0], res.history[-1]
    print(f"{res.iterations} L-BFGS steps, {len(res.history)} evaluations of the loss")
    print(f"content loss {first['content']:.4g} -> {last['content']:.4g} (relative squared error at conv4_2)")
    print(f"style loss   {first['style']:.4g} -> {last['style']:.4g} (relative Gram-matrix error, 5 layers)")
    res.save(out / "style_result.png")
    # the strip: content | style | result, at the result's height
    h = res.image.height
    tiles = [Image.open(content).convert("RGB") if isinstance(content, str) else content,
             Image.open(style).convert("RGB") if isinstance(style, str) else style, res.image]
    tiles = [t.resize((max(1, round(t.width * h / t.height)), h)) for t in tiles]
    strip = Image.new("RGB", (sum(t.width for t in tiles), h))
    x = 0
    for t in tiles:
        strip.paste(t, (x, 0))
        x += t.width
    strip.save(out / "style_strip.png")
    print(f"wrote {out / 'style_result.png'} and {out / 'style_strip.png'} (content | style | result)")


if __name__ == "__main__":
    main()
