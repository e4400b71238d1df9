"""`deepfit train segment IMAGES MASKS --codes FILE`: a segmentation model (a class for every pixel) from a
folder of images and a folder of their masks, and `deepfit predict MODEL IMAGES...|FOLDER --out DIR` writing
one mask PNG per image for its exported models."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import cli_message
from .base import Application, CLIError, Console, Prepared, RunDir
from .vision import _warnings_to, parse_size

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ..learner import Learner

__all__ = ["SegmentApp"]

_UNET_BODIES = ("resnet18", "resnet34", "resnet50", "simple_cnn")
_TIRAMISU = ("fc_densenet56", "fc_densenet67", "fc_densenet103")


def _weights(text: str) -> list[float] | str:
    """argparse type for --class-weights: median, sqrt_median or comma-separated numbers >= 0."""
    from ..vision.segment.metrics import MEDIAN_FREQUENCY_POWERS
    if text.strip() in MEDIAN_FREQUENCY_POWERS:
        return text.strip()
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected median, sqrt_median or comma-separated numbers such as 1,2,0.5, "
                                         f"got {text!r}") from None
    if not vals or any(not (v >= 0 and v != float("inf")) for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers >= 0, got {text!r}")
    return vals


class SegmentApp(Application):
    """Images and their masks (PNG label maps): a U-Net on a ResNet body, or an FC-DenseNet."""

    name = "segment"
    reads_table = False
    help = "segmentation: a class for every pixel, from images and their mask files"
    description = ("Train a segmentation model on the images in IMAGES and their masks in MASKS: the mask of "
                   "IMAGES/a.jpg is MASKS/a.png (or a<suffix>.png with --mask-suffix), a grey or palette PNG of "
                   "the image's size whose pixel values are class codes. --codes names the classes, one per line "
                   "(line 0 is code 0); --void gives the code (or name) of unlabelled pixels, which the loss and "
                   "the metrics ignore. Validation images come from --valid-images/--valid-masks, else --valid-pct "
                   "of the training pairs are held out. Training batches are augmented (flip, rotation, zoom, "
                   "lighting: the masks move with the images) unless --no-aug. The report shows the IoU of every "
                   "class and validation images with their true and predicted masks.")
    examples = """examples:
  deepfit train segment camvid/train camvid/trainannot --codes camvid/codes.txt --void Unlabelled \\
      --valid-images camvid/val --valid-masks camvid/valannot --size 180x240 --arch resnet34 --epochs 30
  deepfit train segment photos masks --codes codes.txt --arch fc_densenet56 --size 224
  deepfit predict runs/camvid/model.safetensors street/ --out street-masks
"""
    dls_classes = ("SegmentationDataLoaders",)
    default_lr = 2e-3
    default_epochs = 10
    default_bs = 8

    def load_user_errors(self) -> tuple[type[BaseException], ...]:
        from ..vision.decode import ImageDecodeError
        from ..vision.segment import SegmentationDataError
        return (SegmentationDataError, ImageDecodeError)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("file", type=Path, metavar="IMAGES", help="the folder of training images")
        p.add_argument("masks", type=Path, metavar="MASKS", help="the folder of their masks (same names, PNG)")
        g = p.add_argument_group("masks and classes")
        g.add_argument("--codes", type=Path, required=True, metavar="FILE",
                       help="a text file naming the classes, one per line (line 0 is code 0)")
        g.add_argument("--void", default=None, metavar="CODE|NAME",
                       help="the code (or class name) of unlabelled pixels, ignored by the loss and the metrics")
        g.add_argument("--mask-suffix", default="", metavar="TEXT",
                       help="added to an image's name to name its mask (e.g. _P: a.jpg -> a_P.png)")
        g.add_argument("--valid-images", type=Path, default=None, metavar="DIR", help="folder of validation images")
        g.add_argument("--valid-masks", type=Path, default=None, metavar="DIR", help="folder of their masks")
        g.add_argument("--class-weights", type=_weights, default=None, metavar="W,W,...|median|sqrt_median",
                       help="a weight per code for the loss (e.g. to favour rare classes), or computed from the "
                            "training masks: median (median frequency balancing) or sqrt_median (its square root, "
                            "a softer balance)")
        im = p.add_argument_group("images")
        im.add_argument("--size", type=parse_size, default=None, metavar="N|HxW",
                        help="images and masks are fitted to this size (default: the first image's own size)")
        im.add_argument("--resize", choices=["squash", "crop", "pad"], default="squash",
                        help="how an image of another shape is fitted (masks follow by nearest neighbour; "
                             "default: %(default)s)")
        im.add_argument("--no-aug", action="store_true", help="do not augment training images")
        m = p.add_argument_group("model")
        m.add_argument("--arch", default="resnet34", metavar="NAME",
                       help=f"a U-Net on a body ({', '.join(_UNET_BODIES)}) or an FC-DenseNet "
                            f"({', '.join(_TIRAMISU)}) (default: %(default)s)")

    # ---- training ---------------------------------------------------------------------------------------
    def _dls(self, args: argparse.Namespace, console: Console) -> Any:
        from ..vision import Brightness, Contrast, Flip, Rotate, Zoom
        from ..vision.segment import SegmentationDataLoaders
        for flag, folder in (("IMAGES", args.file), ("MASKS", args.masks), ("--valid-images", args.valid_images),
                             ("--valid-masks", args.valid_masks)):
            if folder is None:
                continue
            if not folder.exists():
                raise CLIError(f"{flag} {folder}: no such folder")
            if not folder.is_dir():
                raise CLIError(f"{flag} {folder} is a file; give the folder that holds the "
                               f"{'masks' if 'mask' in flag.lower() else 'images'}")
        if not args.codes.is_file():
            raise CLIError(f"--codes {args.codes}: no such file (a text file naming the classes, one per line)")
        if (args.valid_images is None) != (args.valid_masks is None):
            raise CLIError("give both --valid-images and --valid-masks, or neither (then --valid-pct of the training "
                           "pairs are held out)")
        tfms = None if args.no_aug else [Flip(p=0.5), Rotate(10, p=0.75), Zoom(1.1, p=0.75), Brightness(0.2),
                                         Contrast(0.2)]
        with console.step("decoding the images and masks"), _warnings_to(console):
            return SegmentationDataLoaders.from_folders(
                args.file, args.masks, codes=args.codes, void=args.void, valid_images=args.valid_images,
                valid_masks=args.valid_masks, valid_pct=args.valid_pct, seed=args.seed, mask_suffix=args.mask_suffix,
                size=args.size, resize=args.resize, bs=args.bs, batch_tfms=tfms, device=args.device)

    def prepare(self, args: argparse.Namespace, console: Console) -> Prepared:
        from ..vision.decode import ImageDecodeError
        from ..vision.segment import SegmentationDataError, segmentation_learner
        known = _UNET_BODIES + _TIRAMISU
        if args.arch not in known:
            from .base import closest
            sugg = closest(args.arch, list(known))
            did = f"; did you mean {sugg!r}?" if sugg else "."
            raise CLIError(f"--arch {args.arch!r} is not a segmentation architecture{did} Known: {', '.join(known)}")
        try:
            dls = self._dls(args, console)
        except (SegmentationDataError, ImageDecodeError, ValueError) as e:
            raise CLIError(cli_message(e)) from None
        if len(dls.train) == 0:
            raise CLIError(f"{args.file} has too few training images ({dls.train.n}) for --bs {args.bs}")
        if dls.valid is None or dls.valid.n == 0:
            raise CLIError(f"{args.file}: no validation images; give --valid-images and --valid-masks, or raise "
                           "--valid-pct")
        if isinstance(args.class_weights, list) and len(args.class_weights) != dls.c:
            raise CLIError(f"--class-weights gives {len(args.class_weights)} weights for the {dls.c} codes of "
                           f"{args.codes}; give one per code")
        learn = segmentation_learner(dls, args.arch, class_weights=args.class_weights)
        size = f"{dls.size[0]}x{dls.size[1]}"
        void = f", void code {dls.void} ({dls.codes[dls.void]})" if dls.void is not None and dls.void < dls.c else (
            f", void code {dls.void}" if dls.void is not None else "")
        desc = (f"{args.file}: {dls.train.n + dls.valid.n:,} images with masks ({dls.train.n:,} train / "
                f"{dls.valid.n:,} valid), {len(dls.class_codes)} classes{void}, {size} ({dls.resize}), "
                f"model {args.arch}")
        facts: dict[str, Any] = {"images": dls.train.n + dls.valid.n,
                                 "classes": [dls.codes[i] for i in dls.class_codes], "void": dls.void,
                                 "size": size, "resize": dls.resize, "arch": args.arch,
                                 "augmentation": "none" if args.no_aug else "flip, rotate, zoom (masks too); lighting"}
        return Prepared(learn, desc, facts, "segmentation")

    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        import pandas as pd
        from ..vision.segment import plot_class_iou
        learn = prepared.learn
        dls = learn.dls
        with console.step("per-class IoU"):
            iou = learn.per_class_iou()
        run.summary["class_iou"] = iou
        run.add_figure("iou.png", "IoU per class", lambda p: plot_class_iou(iou, fname=p),
                       caption="Intersection over union of every class on the validation images (void pixels "
                               "ignored); the dashed line is the mean IoU.", console=console)
        run.add_figure("results.png", "Results", lambda p: learn.show_results(n=4, fname=p),
                       caption="Validation images, their true masks and the model's predictions.", console=console)
        run.add_figure("batch.png", "A training batch", lambda p: dls.show_batch(n=4, fname=p),
                       caption="Training images as the model sees them (augmented), with their masks.", console=console)
        run.add_table("IoU per class", pd.DataFrame({"class": list(iou), "iou": list(iou.values())}),
                      caption="Validation IoU of every class (NaN: the class is in neither the truth nor the "
                              "predictions).", csv_name="class_iou.csv")

    # ---- prediction -------------------------------------------------------------------------------------
    def predict(self, learn: "Learner", df: "pd.DataFrame", args: argparse.Namespace) -> "pd.DataFrame":
        raise CLIError("a segmentation model predicts image files or a folder: deepfit predict MODEL IMAGES... or "
                       "FOLDER --out DIR")

    def predict_command(self, args: argparse.Namespace, console: Console, model: Path) -> int:
        """`deepfit predict MODEL IMAGES...|FOLDER --out DIR`: one mask PNG per image in DIR (same stem; the
        pixel values are the codes), at the image's own size when the model squashes images to its size."""
        from ..export import load_learner
        from .vision import check_image_inputs
        inputs = [Path(p) for p in args.file]
        check_image_inputs(inputs)
        if args.out is None:
            base = inputs[0].resolve().name if len(inputs) == 1 and inputs[0].is_dir() else "predicted"
            out = Path(f"{base}.masks")
        else:
            out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise CLIError(f"--out {out} is a file; a segmentation model writes one mask PNG per image into a folder")
        for p in inputs:
            if p.is_dir() and out.resolve() == p.resolve():
                raise CLIError(f"--out {out} is an input folder: give another folder, so that no input file is "
                               "overwritten")
        with console.step("loading the model"):
            learn = load_learner(model, device=getattr(args, "device", None))
        files = self._files(inputs, args, console)
        stems: dict[str, Path] = {}
        for f in files:
            if f.stem in stems:
                raise CLIError(f"{stems[f.stem]} and {f} would both be written as {out / (f.stem + '.png')}; predict "
                               "them in separate commands with different --out folders")
            stems[f.stem] = f
        for f in files:
            if out.resolve() == f.parent.resolve() and f.suffix.lower() == ".png":
                raise CLIError(f"--out {out} would overwrite the input image {f}; give another folder")
        written = self._write_masks(learn, files, out, args, console)
        console.result(f"wrote {written:,} mask(s) to {out}/ (PNG; pixel values are the codes: "
                       f"{', '.join(f'{i} {c}' for i, c in enumerate(learn.dls.codes[:12]))}"
                       f"{' ...' if len(learn.dls.codes) > 12 else ''})")
        return 0

    def _files(self, inputs: list[Path], args: argparse.Namespace, console: Console) -> list[Path]:
        from ..vision.data import ImageDataError, get_image_files
        from ..vision.decode import IMAGE_EXTENSIONS
        skip = bool(getattr(args, "skip_bad", False))
        files: list[Path] = []
        for inp in inputs:
            if inp.is_dir():
                try:
                    found = get_image_files(inp, on_other="skip" if skip else "raise")
                except ImageDataError as e:
                    raise CLIError(str(e).replace("(on_error='skip')", "with --skip-bad")) from None
                if not found:
                    raise CLIError(f"{inp} holds no image files")
                files += found
            elif inp.suffix.lower() in IMAGE_EXTENSIONS:
                files.append(inp)
            elif skip:
                console.warn(f"{inp} is not an image file (by its extension); left out")
            else:
                raise CLIError(f"{inp} is not an image file (by its extension); give images or a folder, or pass "
                               "--skip-bad to leave it out")
        if not files:
            raise CLIError("no image to predict")
        return files

    def _write_masks(self, learn: "Learner", files: list[Path], out: Path, args: argparse.Namespace,
                     console: Console) -> int:
        import torch
        import torch.nn.functional as F
        from ..vision.decode import ImageDecodeError
        from ..vision.segment import save_mask
        from ..vision.segment.data import _upright_size
        dls = learn.dls
        try:
            with _warnings_to(console):
                dl = dls.test_dl(files, on_error="skip" if getattr(args, "skip_bad", False) else "raise")
        except ImageDecodeError as e:
            raise CLIError(str(e).replace("skip them (on_error='skip')", "pass --skip-bad to leave them out")) from None
        kept = list(dl.items)
        own_size = dls.resize == "squash"
        if not own_size:
            console.info(f"the model fits images to {dls.size[0]}x{dls.size[1]} by {dls.resize}: the masks are written "
                         "at that size")
        void = dls.void
        learn.model.eval()
        k = 0
        out.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            for (xb,) in dl:
                scores = learn.model(xb).float()
                for s in scores:
                    f = kept[k]
                    k += 1
                    if own_size:
                        w, h = _upright_size(f)
                        if (h, w) != tuple(s.shape[-2:]):
                            s = F.interpolate(s[None], size=(h, w), mode="bilinear", align_corners=False)[0]
                    if void is not None and 0 <= void < s.shape[0]:
                        s[void] = -float("inf")
                    save_mask(s.argmax(0).to(torch.uint8).cpu(), out / f"{f.stem}.png")
        return k

    def describe_state(self, state: dict[str, Any]) -> dict[str, Any]:
        codes = state.get("codes", [])
        return {"codes": ", ".join(f"{i} {c}" for i, c in enumerate(codes)), "void": state.get("void"),
                "size": "x".join(map(str, state.get("size", []))), "resize": state.get("resize"),
                "channels": state.get("channels")}
