"""Transfer learning on a folder of images: the course's recipe with deepfit.vision.

Pre-train a network on one task, then `vision_learner(dls, arch, pretrained=weights)` cuts its body,
adds a new head for this folder's classes and `fine_tune` trains the head with the body frozen, then
everything with discriminative rates. Then test-time augmentation, the confusion matrix, the images
with the highest loss, export and prediction on files.

Without a FOLDER argument the example draws a small folder of shapes (circles, squares, triangles) and
pre-trains on other generated shapes (crosses and rings), so it runs anywhere in seconds.

Run: python examples/vision_folder.py [FOLDER with train/<class>/ and valid/<class>/] [--epochs 2]
"""
import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from deepfit import Learner, accuracy, load_learner, set_seed
from deepfit.losses import CrossEntropyLoss
from deepfit.vision import ImageDataLoaders, aug_transforms, vision_learner
from deepfit.vision.models import resnet20


def draw_shapes(root: Path, classes: list[str], n: int, seed: int) -> None:
    """n images per class and split of coloured shapes on noisy backgrounds, 32x32 PNG files."""
    rng = np.random.default_rng(seed)
    for split, k in (("train", n), ("valid", n // 2)):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(k):
                img = Image.fromarray(rng.integers(0, 80, (32, 32, 3), dtype=np.uint8))
                d = ImageDraw.Draw(img)
                r, cx, cy = rng.integers(7, 12), rng.integers(12, 20), rng.integers(12, 20)
                col = tuple(int(v) for v in rng.integers(120, 256, 3))
                box = [cx - r, cy - r, cx + r, cy + r]
                if c == "circle":
                    d.ellipse(box, fill=col)
                elif c == "square":
                    d.rectangle(box, fill=col)
                elif c == "triangle":
                    d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=col)
                elif c == "cross":
                    d.line([(cx - r, cy), (cx + r, cy)], fill=col, width=3)
                    d.line([(cx, cy - r), (cx, cy + r)], fill=col, width=3)
                else:  # ring
                    d.ellipse(box, outline=col, width=3)
                img.save(root / split / c / f"{i}.png")


parser = argparse.ArgumentParser()
parser.add_argument("folder", nargs="?", default=None)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--n", type=int, default=40, help="generated images per class")
args = parser.parse_args()
set_seed(0)
OUT = Path(os.environ.get("DEEPFIT_OUT", "runs/vision_folder"))
OUT.mkdir(parents=True, exist_ok=True)

if args.folder is None:
    tmp = Path(tempfile.mkdtemp())
    draw_shapes(tmp / "shapes", ["circle", "square", "triangle"], args.n, 0)
    draw_shapes(tmp / "pretrain", ["cross", "ring"], args.n, 1)
    folder = tmp / "shapes"
    # 1. "pre-training": a resnet20 on another task; its weights go to a file like torchvision's
    pre = ImageDataLoaders.from_folder(tmp / "pretrain", size=32, bs=16, seed=0)
    net = resnet20(n_out=pre.c)
    Learner(pre, net, loss_func=CrossEntropyLoss(), metrics=[accuracy], progress=False).fit_one_cycle(2, 5e-3)
    weights = OUT / "pretrained_resnet20.pth"
    torch.save(net.state_dict(), weights)
    arch = "resnet20"
else:
    folder, weights, arch = Path(args.folder), True, "resnet34"   # torchvision's file from ~/.cache/torch
print(f"data: {folder}")

# 2. the folder: one sub-folder per class, flips/rotations/zoom/lighting on whole batches
dls = ImageDataLoaders.from_folder(folder, size=32, bs=16, batch_tfms=aug_transforms(), seed=0)
dls.show_batch(fname=OUT / "batch.png")
learn = vision_learner(dls, arch, pretrained=weights, metrics=[accuracy], path=OUT)
learn.fine_tune(args.epochs, 2e-3, freeze_epochs=1)

# 3. what it gets wrong
probs, targs = learn.tta()
print(f"accuracy {float((probs.argmax(1) == targs).float().mean()):.3f} (with test-time augmentation)")
interp = learn.interpret()
interp.plot_confusion_matrix(fname=OUT / "confusion.png")
interp.plot_top_losses(9, fname=OUT / "top_losses.png")
print("most confused:", interp.most_confused())

# 4. export, load, predict a file
path = learn.export("shapes.safetensors")
inference = load_learner(path)
some_file = dls.valid_items[0] if dls.valid_items else None
if some_file is not None:
    label, _, p = inference.predict(some_file)
    print(f"{some_file.name}: predicted {label} (p={float(p.max()):.2f})")
