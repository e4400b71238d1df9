"""`deepfit train vision FOLDER`: an image classifier from a folder of images (one folder per class),
and `deepfit predict MODEL IMAGES...|FOLDER` for its exported models."""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .base import Application, CLIError, Console, Prepared, RunDir, check_columns, non_negative_int, read_table
from .training import quiet_learner, standard_train

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ..learner import Learner

__all__ = ["VisionApp", "parse_size"]

SPEEDRUN_ARCH = "airbench"
_ARCH_HELP = ("simple_cnn, resnet18, resnet34, resnet50, resnet20, resnet56, wrn, densenet_bc, darknet, fastnet, or "
              "airbench (the CIFAR-10 speed-run recipe: its own schedule, rates, flips and shifts; best at --size 32 "
              "--bs 1024)")


def parse_size(text: str) -> int | tuple[int, int]:
    """argparse type for `--size`: `N` (square) or `HxW` (height x width), in pixels."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a size in pixels such as 128 or 96x128 (height x width), "
                                         f"got {text!r}")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) else h
    if not (4 <= h <= 4096 and 4 <= w <= 4096):
        raise argparse.ArgumentTypeError(f"image sides must be between 4 and 4096 pixels, got {text!r}")
    return h if h == w else (h, w)


@contextlib.contextmanager
def _warnings_to(console: Console) -> Iterator[None]:
    """Show the library's warnings in the block (files left out...) as `deepfit: warning:` lines."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, UserWarning):
                    console.warn(_cli_message(str(w.message)))


def _cli_message(msg: str) -> str:
    """A library message with the Python argument it suggests replaced by the command-line flag."""
    return (msg.replace("skip them (on_error='skip')", "pass --skip-bad to leave them out")
            .replace("on_error='skip'", "--skip-bad")
            .replace("pass valid='name of the folder', or hold out part of the training images with valid_pct=0.2",
                     "pass --valid NAME, or --valid none to hold out --valid-pct of the training images")
            .replace("lower `valid_pct`", "lower --valid-pct")
            .replace("Check `path`/`folder`/`suff`", "Check FOLDER and --image-folder"))


class VisionApp(Application):
    """Images in one folder per class (or a CSV of file names and labels): a CNN, trained from scratch
    or from a pretrained body."""

    name = "vision"
    help = "images: classify pictures in one folder per class"
    description = ("Train an image classifier on FOLDER. Images are in one folder per class: FOLDER/train/<class>/ "
                   "and FOLDER/valid/<class>/ (or FOLDER/test/<class>/); without a valid or test folder, or with "
                   "--valid none, --valid-pct of the training images are held out at random; FOLDER may also hold "
                   "the class folders directly. With --labels, a CSV file names the images and their labels "
                   "(several labels per image with --label-delim). Images of any size and mode (grey, RGBA, "
                   "palette, CMYK, 16-bit) are converted to RGB and fitted to --size (--resize crop, squash or pad). "
                   "Training batches are augmented (flip, rotation, zoom, warp, lighting) unless --no-aug.")
    examples = """examples:
  deepfit train vision pets --size 128 --arch resnet34 --epochs 5
  deepfit train vision cifar10 --valid test --size 32 --arch resnet20 --bs 128 --lr auto
  deepfit train vision photos --pretrained resnet34-b627a593.pth --epochs 3 --size 224
  deepfit train vision planet --labels labels.csv --label-delim " " --size 128
"""
    dls_classes = ("ImageDataLoaders",)
    default_lr = 3e-3
    default_epochs = 5
    default_bs = 64

    def load_user_errors(self) -> tuple[type[BaseException], ...]:
        from ..vision.data import ImageDataError
        from ..vision.decode import ImageDecodeError
        return (ImageDataError, ImageDecodeError)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("file", type=Path, metavar="FOLDER", help="the image folder (one sub-folder per class)")
        g = p.add_argument_group("images")
        g.add_argument("--size", type=parse_size, default=128, metavar="N|HxW",
                       help="every image is fitted to this size in pixels (default: %(default)s)")
        g.add_argument("--resize", choices=["crop", "squash", "pad"], default="crop",
                       help="how an image of another shape is fitted: centre crop, squash or pad with black "
                            "(default: %(default)s)")
        g.add_argument("--valid", default="valid", metavar="NAME",
                       help="sub-folder of validation images (default: valid, else test); 'none' holds out "
                            "--valid-pct of the training images instead")
        g.add_argument("--train-folder", default="train", metavar="NAME",
                       help="sub-folder of training images (default: %(default)s)")
        g.add_argument("--grey", action="store_true", help="convert images to one grey channel (default: RGB)")
        g.add_argument("--no-aug", action="store_true", help="do not augment training images")
        g.add_argument("--skip-bad", action="store_true",
                       help="leave out unreadable images and non-image files with a warning (default: stop and "
                            "name them)")
        g.add_argument("--cache", type=Path, default=None, metavar="FILE.npy",
                       help="decode the images into this memory-mapped file (reused while the images are "
                            "unchanged), for sets larger than memory; default in memory")
        lab = p.add_argument_group("labels from a CSV file instead of class folders")
        lab.add_argument("--labels", type=Path, default=None, metavar="CSV",
                         help="a CSV file (in FOLDER or a path) with an image file name column and a label column")
        lab.add_argument("--fn-col", default="0", metavar="COL",
                         help="the file name column: a name or a position (default: the first)")
        lab.add_argument("--label-col", default="1", metavar="COL",
                         help="the label column: a name or a position (default: the second)")
        lab.add_argument("--label-delim", default=None, metavar="CHAR",
                         help="labels are several per image, separated by CHAR (multi-label)")
        lab.add_argument("--image-folder", default=None, metavar="NAME",
                         help="sub-folder of FOLDER the file names are relative to")
        m = p.add_argument_group("model")
        m.add_argument("--arch", default="resnet34", metavar="NAME", help=f"architecture: {_ARCH_HELP} "
                       "(default: %(default)s)")
        m.add_argument("--pretrained", type=Path, default=None, metavar="FILE",
                       help="weights of the architecture trained on another task (.pth or .safetensors, e.g. "
                            "torchvision's resnet34 file): the body starts from them, the data are normalised "
                            "with ImageNet statistics, and training starts with --freeze-epochs of the head alone")
        m.add_argument("--freeze-epochs", type=non_negative_int, default=1, metavar="N",
                       help="with --pretrained: epochs training only the head before the whole network "
                            "(default: %(default)s)")
        m.add_argument("--label-smoothing", type=float, default=None, metavar="EPS",
                       help="label smoothing of the cross entropy (default: 0, and 0.2 with --arch airbench)")

    def add_predict_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("image models")
        g.add_argument("--skip-bad", action="store_true",
                       help="images: leave out unreadable images and non-image files with a warning")
        g.add_argument("--no-labels", action="store_true",
                       help="images: do not read the names of sub-folders of FOLDER as the actual classes")

    # ---- training ---------------------------------------------------------------------------------------
    def _dls(self, args: argparse.Namespace, console: Console) -> Any:
        from ..vision import ImageDataLoaders, RandomCrop, aug_transforms
        folder = Path(args.file)
        if not folder.exists():
            raise CLIError(f"image folder not found: {folder}")
        if not folder.is_dir():
            raise CLIError(f"{folder} is a file; give the folder that holds the images (one sub-folder per class)")
        if args.pretrained is not None and not Path(args.pretrained).is_file():
            raise CLIError(f"--pretrained {args.pretrained}: no such file")
        on_error = "skip" if args.skip_bad else "raise"
        if args.arch == SPEEDRUN_ARCH:  # 2-pixel shifts here; AlternatingFlip mirrors the images
            tfms = None if args.no_aug else [RandomCrop(padding=2)]
        else:
            tfms = None if args.no_aug else aug_transforms()
        common: dict[str, Any] = dict(seed=args.seed, size=args.size, resize=args.resize, bs=args.bs, batch_tfms=tfms,
                                      normalize="imagenet" if args.pretrained is not None else "data",
                                      cache=args.cache, on_error=on_error, channels=1 if args.grey else 3,
                                      device=args.device)
        with console.step("decoding the images"), _warnings_to(console):
            if args.labels is not None:
                csv = args.labels if args.labels.is_absolute() or args.labels.exists() else folder / args.labels
                if not Path(csv).is_file():
                    raise CLIError(f"--labels {args.labels}: no such file (looked in {folder} too)")
                # the labels are text: read them with the command's careful reader (delimiter, encoding, header)
                df = read_table(csv, args.delimiter, args.encoding, args.header, args.names, console, na_values=[])
                for opt, col in (("--fn-col", args.fn_col), ("--label-col", args.label_col)):
                    if not col.isdigit():
                        check_columns(df.columns, [col], opt, Path(csv).name)
                return ImageDataLoaders.from_df(df.astype(str).where(df.notna(), None), folder,
                                                fn_col=_col(args.fn_col), label_col=_col(args.label_col),
                                                label_delim=args.label_delim, valid_pct=args.valid_pct,
                                                folder=args.image_folder, **common)
            if args.valid.lower() == "none":
                return ImageDataLoaders.from_folder(folder, train=args.train_folder, valid=None,
                                                    valid_pct=args.valid_pct, **common)
            has_train = (folder / args.train_folder).is_dir()
            has_valid = (folder / args.valid).is_dir() or (args.valid == "valid" and (folder / "test").is_dir())
            if has_train and not has_valid and args.valid != "valid":
                raise CLIError(f"{folder} has no {args.valid!r} folder of validation images; pass --valid NAME, or "
                               "--valid none to hold out --valid-pct of the training images")
            if has_train and not has_valid:
                console.info(f"{folder} has no valid or test folder: holding out {args.valid_pct:.0%} of the "
                             "training images at random (--valid-pct)")
            return ImageDataLoaders.from_folder(folder, train=args.train_folder,
                                                valid=args.valid if has_valid else None,
                                                valid_pct=None if has_valid else args.valid_pct, **common)

    def prepare(self, args: argparse.Namespace, console: Console) -> Prepared:
        from ..vision.data import ImageDataError
        from ..vision.decode import ImageDecodeError
        from ..vision.learner import vision_learner
        from ..vision.models import ARCHS
        speedrun = args.arch == SPEEDRUN_ARCH
        if speedrun and args.pretrained is not None:
            raise CLIError(f"--arch {SPEEDRUN_ARCH} trains from scratch; drop --pretrained or choose another --arch")
        if not speedrun and args.arch not in ARCHS:
            from .base import closest
            sugg = closest(args.arch, list(ARCHS) + [SPEEDRUN_ARCH])
            did = f"; did you mean {sugg!r}?" if sugg else "."
            raise CLIError(f"--arch {args.arch!r} is not a known architecture{did} "
                           f"Known: {', '.join(list(ARCHS) + [SPEEDRUN_ARCH])}")
        try:
            dls = self._dls(args, console)
        except (ImageDataError, ImageDecodeError, ValueError) as e:
            raise CLIError(_cli_message(str(e))) from None
        if len(dls.train) == 0:
            raise CLIError(f"{args.file} has too few training images ({dls.train.n}) for --bs {args.bs}")
        if dls.valid is None or dls.valid.n == 0:
            raise CLIError(f"{args.file}: no validation images; add some to the validation folder or use --valid none "
                           "with --valid-pct")
        try:
            if speedrun:
                from ..vision.speedrun import speedrun_learner
                smooth = 0.2 if args.label_smoothing is None else args.label_smoothing
                learn = speedrun_learner(dls, label_smoothing=smooth, alternating_flip=not args.no_aug, seed=args.seed)
            else:
                learn = vision_learner(dls, args.arch, pretrained=args.pretrained if args.pretrained is not None else False,
                                       label_smoothing=args.label_smoothing or 0.0)
        except (ValueError, FileNotFoundError) as e:
            what = f"--pretrained {args.pretrained}: " if args.pretrained is not None else ""
            raise CLIError(f"{what}{e}") from None
        size = f"{dls.size[0]}x{dls.size[1]}"
        kind = "multi-label, " if dls.multi_label else ""
        desc = (f"{args.file}: {dls.train.n + dls.valid.n:,} images ({dls.train.n:,} train / {dls.valid.n:,} valid), "
                f"{kind}{dls.c} classes, {'grey' if dls.channels == 1 else 'RGB'} {size} ({dls.resize}), "
                f"model {args.arch}{' (pretrained)' if args.pretrained is not None else ''}")
        facts: dict[str, Any] = {"images": dls.train.n + dls.valid.n, "classes": dls.vocab, "size": size,
                                 "resize": dls.resize, "arch": args.arch, "multi_label": dls.multi_label,
                                 "augmentation": "none" if args.no_aug else ("alternating flips, 2-pixel shifts" if speedrun
                                                                             else "flip, rotate, zoom, warp, lighting"),
                                 "normalisation": "ImageNet" if args.pretrained is not None else "training images"}
        if args.pretrained is not None:
            facts["pretrained"] = str(args.pretrained)
        if speedrun:
            facts["recipe"] = ("airbench94 (Jordan 2024): Nesterov SGD, bias rates x64, label smoothing, triangular "
                               "schedule, Lookahead, channels-last + mixed precision")
        return Prepared(learn, desc, facts, "classification",
                        extra={"pretrained": args.pretrained is not None, "speedrun": speedrun})

    def train(self, args: argparse.Namespace, run: RunDir, prepared: Prepared, console: Console) -> dict[str, Any]:
        """With --pretrained: --freeze-epochs of the head alone at --lr, then the whole network with
        discriminative rates (lr/200 .. lr/2 over the layer groups, as `fine_tune` does; with --lr auto, the
        rate found by lr_find for every group); otherwise the standard one-cycle training."""
        learn = prepared.learn
        if prepared.extra.get("speedrun"):
            from ..vision.speedrun import fit_speedrun

            def fit(learn: Any, lr: Any, cbs: list, fit_kw: dict) -> None:
                # --lr sets the weights' peak rate; the shifts keep the recipe's ratio to it
                lrs = None if lr == "auto" else [float(lr) * r / learn.speedrun_lrs[0] for r in learn.speedrun_lrs]
                fit_speedrun(learn, args.epochs, lrs=lrs, cbs=cbs, **fit_kw)
            return standard_train(self, args, run, prepared, console, fit=fit,
                                  schedule_caption="Learning rates of the weights and the biases (triangular), per "
                                                   "training batch.")
        if not prepared.extra.get("pretrained") or getattr(args, "resume", False):
            if prepared.extra.get("pretrained"):
                learn.unfreeze()
            return standard_train(self, args, run, prepared, console)
        quiet_learner(learn, console)
        head_lr = args.lr if args.lr != "auto" else self.default_lr
        if args.freeze_epochs:
            console.info(f"training the head alone for {args.freeze_epochs} epoch(s) (pretrained body frozen)")
            learn.fit_one_cycle(args.freeze_epochs, head_lr, pct_start=0.99)
            run.summary["frozen_phase"] = {k: v for k, v in learn.recorder.log[-1].items() if k != "time"}
        learn.unfreeze()
        args2 = argparse.Namespace(**vars(args))
        if args.lr != "auto":
            n = len(learn.layer_groups())
            lo, hi = head_lr / 2 / 100, head_lr / 2
            args2.lr = [float(lo * (hi / lo) ** (i / max(n - 1, 1))) for i in range(n)]
        return standard_train(self, args2, run, prepared, console)

    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        learn = prepared.learn
        dls = learn.dls
        run.add_figure("batch.png", "A training batch", lambda p: dls.show_batch(n=16, fname=p),
                       caption="Training images as the model sees them (augmented), with their labels.",
                       console=console)
        if dls.multi_label:
            return
        from ..vision.interpret import ClassificationInterpretation
        with console.step("interpretation"):
            interp = ClassificationInterpretation.from_learner(learn)
        run.add_figure("confusion_matrix.png", "Confusion matrix",
                       lambda p: interp.plot_confusion_matrix(fname=p),
                       caption="Validation images: rows are the actual class, columns the prediction.", console=console)
        run.add_figure("top_losses.png", "Top losses", lambda p: interp.plot_top_losses(9, fname=p),
                       caption="The validation images the model got most wrong: prediction / actual / loss / "
                               "probability of the prediction.", console=console)
        import pandas as pd
        pairs = interp.most_confused(min_val=1)[:15]
        if pairs:
            run.add_table("Most confused", pd.DataFrame(pairs, columns=["actual", "predicted", "images"]),
                          caption="Pairs of classes the model mixes up most on the validation images.",
                          csv_name="most_confused.csv")

    # ---- prediction -------------------------------------------------------------------------------------
    def predict(self, learn: "Learner", df: "pd.DataFrame", args: argparse.Namespace) -> "pd.DataFrame":
        raise CLIError("an image model predicts image files or a folder: deepfit predict MODEL IMAGES... or FOLDER")

    def predict_files(self, learn: "Learner", inputs: list[Path], args: argparse.Namespace,
                      console: Console) -> "pd.DataFrame":
        """Predictions for image files and folders: one row per image with `file`, `prediction`, one
        `prob_<class>` column per class, and `actual` when FOLDER holds folders named after the classes."""
        with _warnings_to(console):
            return self._predict_files(learn, inputs, args, console)

    def _predict_files(self, learn: "Learner", inputs: list[Path], args: argparse.Namespace,
                       console: Console) -> "pd.DataFrame":
        import numpy as np
        import pandas as pd
        from PIL import Image
        from ..vision.data import ImageDataError, get_image_files
        from ..vision.decode import IMAGE_EXTENSIONS, ImageDecodeError
        dls = learn.dls
        on_error = "skip" if args.skip_bad else "raise"
        files: list[Path] = []
        actual: list[str | None] = []
        for inp in inputs:
            if not inp.exists():
                raise CLIError(f"image file or folder not found: {inp}")
            if inp.is_dir():
                try:
                    found = get_image_files(inp, on_other="raise" if on_error == "raise" else "skip")
                except ImageDataError as e:
                    raise CLIError(_cli_message(str(e))) from None
                if not found:
                    raise CLIError(f"{inp} holds no image files")
                files += found
                actual += self._labels_from_folders(inp, found, dls.vocab, args)
            else:
                if inp.suffix.lower() not in IMAGE_EXTENSIONS:
                    if on_error == "raise":
                        raise CLIError(f"{inp} is not an image file (by its extension); give images or a folder, or "
                                       "pass --skip-bad to leave it out")
                    console.warn(f"{inp} is not an image file (by its extension); left out")
                    continue
                files.append(inp)
                actual.append(None)
        if not files:
            raise CLIError("no image to predict")
        want = (dls.size[1], dls.size[0])
        mode = "L" if dls.channels == 1 else "RGB"
        other = 0
        for f in files[:2000]:  # headers only: cheap
            try:
                with Image.open(f) as im:
                    other += im.size != want or im.mode != mode
            except Exception:  # noqa: BLE001 - unreadable files are reported by the decoder below
                pass
        if other:
            console.info(f"{other} image(s) are not {dls.size[0]}x{dls.size[1]} {mode}: they are converted and fitted "
                         f"({dls.resize}) as the training images were")
        try:
            dl = dls.test_dl(files, on_error=on_error)
        except (ImageDecodeError, ImageDataError) as e:
            raise CLIError(_cli_message(str(e))) from None
        kept = list(dl.items)
        if len(kept) < len(files):
            keep = set(map(str, kept))
            actual = [a for f, a in zip(files, actual) if str(f) in keep]
        probs, _ = learn.get_preds(dl=dl)
        probs = probs.float().cpu().numpy()
        out = pd.DataFrame({"file": [str(f) for f in kept]})
        if dls.multi_label:
            out["prediction"] = [";".join(dls.vocab[j] for j in np.flatnonzero(p > 0.5)) for p in probs]
        else:
            out["prediction"] = [dls.vocab[int(j)] for j in probs.argmax(1)]
        for j, c in enumerate(dls.vocab):
            out[f"prob_{c}"] = probs[:, j]
        if any(a is not None for a in actual):
            out.insert(1, "actual", actual)
            known = out["actual"].notna()
            if not dls.multi_label and known.any():
                acc = float((out.loc[known, "actual"] == out.loc[known, "prediction"]).mean())
                console.result(f"accuracy on the {int(known.sum())} labelled image(s): {acc:.4f}")
        return out

    def _labels_from_folders(self, folder: Path, files: list[Path], vocab: list[str],
                             args: argparse.Namespace) -> list[str | None]:
        """The class of each file from the name of its sub-folder of `folder`, when those sub-folders are
        named after the model's classes; an error when they look like class folders of other classes."""
        if args.no_labels:
            return [None] * len(files)
        parents = [f.parent.name if f.parent != folder else None for f in files]
        subs = sorted({p for p in parents if p is not None})
        if not subs:
            return [None] * len(files)
        known = [s for s in subs if s in vocab]
        unknown = [s for s in subs if s not in vocab]
        all_in_subfolders = all(p is not None for p in parents)
        if unknown and (known or (all_in_subfolders and len(subs) >= 2)):
            shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
            classes = ", ".join(vocab[:12]) + (" ..." if len(vocab) > 12 else "")
            raise CLIError(f"{folder} has class folder(s) {shown} that the model does not know: it was trained on the "
                           f"classes {classes}. Is this the right model for these images? Pass --no-labels to "
                           "predict them anyway without reading the folder names as classes")
        return [p if p in vocab else None for p in parents]

    def describe_state(self, state: dict[str, Any]) -> dict[str, Any]:
        vocab = state.get("vocab", [])
        shown = ", ".join(map(str, vocab[:10])) + (f", ... ({len(vocab)} in all)" if len(vocab) > 10 else "")
        out = {"classes": shown, "size": "x".join(map(str, state.get("size", []))), "resize": state.get("resize"),
               "channels": state.get("channels"), "multi_label": state.get("multi_label")}
        if state.get("mean") is not None:
            out["mean"], out["std"] = state["mean"], state["std"]
        return out


def _col(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def default_predictions_name(inputs: list[Path]) -> Path:
    """Where `deepfit predict` writes image predictions by default: FOLDER.predictions.csv for one
    folder, else predictions.csv, in the current directory."""
    if len(inputs) == 1 and inputs[0].is_dir():
        return Path(f"{inputs[0].resolve().name}.predictions.csv")
    return Path("predictions.csv")


def check_image_inputs(inputs: list[Path]) -> None:
    """Fail clearly for an input that does not exist or cannot be read."""
    for p in inputs:
        if not p.exists():
            raise CLIError(f"image file or folder not found: {p}")
        if not os.access(p, os.R_OK):
            raise CLIError(f"cannot read {p}: permission denied")
