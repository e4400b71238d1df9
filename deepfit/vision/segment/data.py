"""Segmentation data: images and their masks (PNG label maps, one class code per pixel) -> batches.

Images are decoded as `ImageDataLoaders` decodes them (`deepfit.vision.decode`, one uint8 tensor
(N, C, H, W)); masks are decoded into one uint8 tensor (N, H, W), resized by nearest neighbour with the
same geometry as their image (``crop``, ``squash``, ``pad``), and checked: a mask must exist for every
image, have the image's size, be a label map (not a colour picture) and hold only codes of the codes file
(or the void code). A batch is `(images, masks)`: normalised floats and long class codes, augmented
together on the device (`deepfit.vision.segment.augment`).

Example:
    >>> from deepfit.vision import aug_transforms
    >>> from deepfit.vision.segment import SegmentationDataLoaders
    >>> dls = SegmentationDataLoaders.from_folders("camvid/train", "camvid/trainannot",
    ...     valid_images="camvid/val", valid_masks="camvid/valannot", codes="camvid/codes.txt",
    ...     void="Unlabelled", size=(180, 240), bs=8, batch_tfms=aug_transforms())
    >>> dls.codes[:3], dls.void      # (['Sky', 'Building', 'Pole'], 11)
"""
from __future__ import annotations

import concurrent.futures as cf
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...data.core import DataLoader, split_indices
from ...data.transforms import Normalize
from ...errors import HintedError
from ...losses import CrossEntropyLoss
from ...utils import check_positive, default_device
from ..augment import BatchTransform
from ..data import ImageDataLoaders
from ..decode import RESIZE_MODES, ImageDecodeError, decode_images, default_workers, \
    failure_message
from ..pipeline import ImageBatchTransform, ImageDataLoader, cache_fits_device, make_normalize, normalize_from_state
from ..sources import ImageDataError, NormalizeArg, check_hw, get_image_files
from .augment import apply_tfms_seg, check_seg_tfms

__all__ = ["SegmentationDataLoaders", "SegmentationBatchTransform", "SegmentationDataError", "read_codes",
           "decode_mask", "resolve_void"]


class SegmentationDataError(HintedError, ImageDataError):
    """Segmentation data that cannot be used as given (a missing or mis-sized mask, codes outside the codes
    file...); the message names the file and what to do."""


# ---- codes ---------------------------------------------------------------------------------------------
def read_codes(codes: str | os.PathLike | Sequence[str]) -> list[str]:
    """The class names, index order: a list, or a text file with one name per line (blank lines skipped).

    Raises:
        SegmentationDataError: no such file, no names, repeated names, or more than 255 classes.
    """
    if isinstance(codes, (str, os.PathLike)):
        f = Path(codes)
        if not f.is_file():
            raise SegmentationDataError(f"No codes file at {f}.", "Pass codes= a text file with one class name per "
                                        "line (line 0 is code 0), or a list of names.",
                                        cli_hint="Give --codes a text file with one class name per line.")
        try:
            text = f.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise SegmentationDataError(f"The codes file {f} is not UTF-8 text.",
                                        "It must list one class name per line.") from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        where = f"The codes file {f}"
    else:
        names = [str(c) for c in codes]
        where = "`codes`"
    if not names:
        raise SegmentationDataError(f"{where} names no classes.", "List one class name per line (line 0 is code 0).")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SegmentationDataError(f"{where} names {', '.join(map(repr, dup[:5]))} more than once.",
                                    "Each class needs its own name.")
    if len(names) > 255:
        raise SegmentationDataError(f"{where} names {len(names)} classes; masks are stored as 8-bit codes, so at "
                                    "most 255 classes (plus a void code) are supported.")
    return names


def resolve_void(void: int | str | None, codes: Sequence[str]) -> int | None:
    """The void code: an int (0..255), a class name of `codes`, or None (every pixel is labelled)."""
    if void is None:
        return None
    if isinstance(void, str):
        if void in codes:
            return list(codes).index(void)
        if void.isdigit():
            void = int(void)
        else:
            raise SegmentationDataError(f"void={void!r} is neither a code number nor one of the class names "
                                        f"({', '.join(list(codes)[:12])}{', ...' if len(codes) > 12 else ''}).",
                                        "Pass the code of the pixels to ignore (an int) or its name.",
                                        cli_hint="Give --void the code of the pixels to ignore or its name.")
    if isinstance(void, bool) or not isinstance(void, (int, np.integer)) or not 0 <= int(void) <= 255:
        raise SegmentationDataError(f"void={void!r} must be a code from 0 to 255, a class name, or None.")
    return int(void)


# ---- masks ---------------------------------------------------------------------------------------------
def _upright_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file as the decoder sees it (after its EXIF rotation)."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            w, h = img.size
            orient = img.getexif().get(0x0112, 1) if "exif" in img.info or img.format == "JPEG" else 1
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: no such file", str(path), "no such file") from None
    except Exception as e:  # noqa: BLE001 - any Pillow failure is reported by path
        raise ImageDecodeError(f"{path}: not a readable image ({e})", str(path), str(e)) from None
    return (h, w) if orient in (5, 6, 7, 8) else (w, h)


def _mask_array(img: Any, path: Path) -> np.ndarray:
    """A label map (H, W) of integer codes from a PIL image (modes L, P, 1, I, I;16, or grey RGB)."""
    mode = img.mode
    if mode in ("L", "P", "1", "I", "I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img).astype(np.int64)
    if mode in ("RGB", "RGBA", "LA"):
        arr = np.asarray(img.convert("RGB")).astype(np.int64)
        if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 0] == arr[..., 2]).all():
            return arr[..., 0]
        raise SegmentationDataError(f"The mask {path} is a colour picture ({mode} with different channels), not a "
                                    "label map.", "Masks must hold one class code per pixel (a grey or palette "
                                    "PNG whose values are the codes of the codes file); convert colour-coded masks "
                                    "to codes first.")
    raise SegmentationDataError(f"The mask {path} has image mode {mode}, which holds no class codes.",
                                "Masks must be grey or palette PNGs whose values are the codes of the codes file.")


def decode_mask(path: str | os.PathLike, size: tuple[int, int] | None = None, resize: str = "squash",
                image_size: tuple[int, int] | None = None, n_codes: int | None = None, void: int | None = None,
                codes_file: str = "the codes file") -> np.ndarray:
    """Decode one mask file into a uint8 array (height, width) of class codes, checked and resized.

    Args:
        path: a PNG (or other lossless) label map.
        size: (height, width) to resize to by nearest neighbour (None keeps its size), with the same
            geometry `resize` as the images (``crop``, ``squash``, ``pad``; the padding is void, or 0 without).
        image_size: (width, height) of its image: the mask must have the same.
        n_codes, void: codes 0..n_codes-1 and `void` are allowed; any other value is an error.

    Raises:
        SegmentationDataError: not a label map, a size differing from the image's, codes outside the codes.
        ImageDecodeError: the file is missing or not an image.
    """
    from PIL import Image
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            arr = _mask_array(img, path)
    except SegmentationDataError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: no such file", str(path), "no such file") from None
    except Exception as e:  # noqa: BLE001 - any Pillow failure is reported by path
        reason = str(e) or type(e).__name__
        if "cannot identify image file" in reason:
            reason = "not an image file (Pillow cannot identify it)"
        raise ImageDecodeError(f"{path}: {reason}", str(path), reason) from None
    H, W = arr.shape
    if image_size is not None and (W, H) != tuple(image_size):
        iw, ih = image_size
        raise SegmentationDataError(f"The mask {path} is {W}x{H} pixels but its image is {iw}x{ih}.",
                                    "A mask must label every pixel of its image: give each image the mask made for "
                                    "it, at the same size.")
    if n_codes is not None:
        ok = arr < n_codes
        if void is not None:
            ok |= arr == void
        if not ok.all():
            bad = np.unique(arr[~ok])
            shown = ", ".join(str(int(v)) for v in bad[:8]) + (" ..." if len(bad) > 8 else "")
            allowed = f"0..{n_codes - 1}" + (f" and void {void}" if void is not None and void >= n_codes else "")
            raise SegmentationDataError(
                f"The mask {path} holds code(s) {shown} ({int((~ok).sum())} pixels), outside the {n_codes} classes "
                f"of {codes_file} (codes {allowed}).",
                "Add the missing classes to the codes, or pass void= the code of pixels to ignore.",
                cli_hint="Add the missing classes to the --codes file, or give --void the code of pixels to ignore.")
    out = arr.astype(np.uint8)
    if size is None or (H, W) == tuple(size):
        return out
    return _resize_mask(out, size, resize, 0 if void is None else void)


def _resize_mask(arr: np.ndarray, size: tuple[int, int], resize: str, fill: int) -> np.ndarray:
    """Resize a uint8 label map by nearest neighbour with the decoder's geometry (see decode._resize)."""
    from PIL import Image
    h, w = size
    H, W = arr.shape
    img = Image.fromarray(arr, mode="L")
    near = Image.Resampling.NEAREST
    if resize == "squash":
        return np.asarray(img.resize((w, h), near))
    if resize == "crop":
        scale = max(h / H, w / W)
        cw, ch = w / scale, h / scale
        left, top = (W - cw) / 2, (H - ch) / 2
        return np.asarray(img.resize((w, h), near, box=(left, top, left + cw, top + ch)))
    scale = min(h / H, w / W)
    nw, nh = max(1, round(W * scale)), max(1, round(H * scale))
    canvas = Image.new("L", (w, h), color=fill)
    canvas.paste(img.resize((nw, nh), near), ((w - nw) // 2, (h - nh) // 2))
    return np.asarray(canvas)


def decode_masks(masks: Sequence[Path], images: Sequence[Path], size: tuple[int, int], resize: str, n_codes: int,
                 void: int | None, codes_file: str, num_workers: int | None = None) -> np.ndarray:
    """Decode and check every mask (in threads) into a uint8 array (N, H, W); the first problems found are
    raised together, each naming its file."""
    out = np.zeros((len(masks), *size), dtype=np.uint8)
    problems: list[tuple[int, Exception]] = []

    def work(i: int) -> None:
        try:
            out[i] = decode_mask(masks[i], size, resize, _upright_size(images[i]), n_codes, void, codes_file)
        except (SegmentationDataError, ImageDecodeError) as e:
            problems.append((i, e))

    workers = default_workers() if num_workers is None else max(1, int(num_workers))
    if workers <= 1 or len(masks) < 16:
        for i in range(len(masks)):
            work(i)
    else:
        with cf.ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, range(len(masks))))
    if problems:
        problems.sort(key=lambda p: p[0])
        first = problems[0][1]
        if len(problems) == 1:
            raise first
        others = "; ".join((e.problem if isinstance(e, HintedError) else str(e)) for _, e in problems[1:4])
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        problem = first.problem if isinstance(first, HintedError) else str(first)
        raise SegmentationDataError(f"{len(problems)} of {len(masks)} masks cannot be used. {problem} Also: "
                                    f"{others}{more}.", getattr(first, "fix", ""),
                                    cli_hint=getattr(first, "cli_hint", ""))
    return out


# ---- pairing images with masks -------------------------------------------------------------------------
def _mask_index(folder: Path) -> dict[str, Path]:
    """Mask files of `folder` by stem (recursive; relative sub-folders kept in the key)."""
    out: dict[str, Path] = {}
    for p in get_image_files(folder):
        rel = p.relative_to(folder)
        out[str(rel.with_suffix(""))] = p
    return out


def pair_masks(images: Path, masks: Path, mask_suffix: str = "") -> tuple[list[Path], list[Path]]:
    """(image files, their mask files): the mask of ``images/a/b.jpg`` is ``masks/a/b<mask_suffix>.<any image
    extension>``.

    Raises:
        SegmentationDataError: a folder is missing or empty, or masks are missing for some images (named).
    """
    for folder, what in ((images, "image"), (masks, "mask")):
        if not folder.is_dir():
            raise SegmentationDataError(f"No {what} folder at {folder}.")
    items = get_image_files(images)
    if not items:
        raise SegmentationDataError(f"The image folder {images} holds no image files.")
    index = _mask_index(masks)
    if not index:
        raise SegmentationDataError(f"The mask folder {masks} holds no mask files (PNG label maps).")
    found, missing = [], []
    for p in items:
        key = str(p.relative_to(images).with_suffix("")) + mask_suffix
        (found.append(index[key]) if key in index else missing.append(p))
    if missing and len(missing) == len(items):
        ex_img = items[0].relative_to(images)
        ex_masks = ", ".join(str(m.relative_to(masks)) for m in list(index.values())[:3])
        raise SegmentationDataError(
            f"No image of {images} has a mask of the same name in {masks}: e.g. {ex_img} would need "
            f"{ex_img.with_suffix('')}{mask_suffix}.png, but the masks there are named like {ex_masks}. Are these "
            "the matching image and mask folders?",
            "If the mask names add a suffix to the image names (a_P.png for a.png), pass mask_suffix='_P'; for other "
            "names, use SegmentationDataLoaders.from_label_func.",
            cli_hint="If the mask names add a suffix to the image names (a_P.png for a.png), give --mask-suffix _P.")
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise SegmentationDataError(
            f"{len(missing)} of {len(items)} images have no mask in {masks}: {shown} (expected e.g. "
            f"{masks / missing[0].relative_to(images).with_suffix('')}{mask_suffix}.png)."
            + (" Are these the matching image and mask folders?" if 2 * len(missing) > len(items) else ""),
            "Add their masks, or move these images out of the image folder.")
    return items, found


# ---- the per-batch pipeline ----------------------------------------------------------------------------
class SegmentationBatchTransform(ImageBatchTransform):
    """The loaders' `after_batch`: uint8 images -> floats in [0, 1]; images and masks augmented together
    (`apply_tfms_seg`); images normalised; masks as long codes.

    Args:
        tfms: batch transforms; none at validation.
        normalize: a `Normalize`, or None.
        void: the void code (given to pixels a warp brings in from outside the image).
        seed: seed of the augmentation's generator (see `ImageBatchTransform`).
    """

    def __init__(self, tfms: Sequence[BatchTransform] | None = None, normalize: Normalize | None = None,
                 void: int | None = None, seed: int | None = None) -> None:
        super().__init__(check_seg_tfms(tfms or []), normalize, seed)
        self.void = void

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        x = self.encode(batch[0])
        if len(batch) < 2:  # images only (inference)
            return ((self.normalize(x) if self.normalize is not None else x),)
        y = batch[1]
        if self.tfms:
            x, y = apply_tfms_seg(x, y, self.tfms, self.generator(x.device), self.void)
        if self.normalize is not None:
            x = self.normalize(x)
        return (x, y.long(), *batch[2:])


# ---- the DataLoaders -----------------------------------------------------------------------------------
class SegmentationDataLoaders(ImageDataLoaders):
    """Train / valid loaders of (image, mask) pairs, with what inference needs.

    Build with `from_folders` or `from_label_func`. Attributes (besides `ImageDataLoaders`'):
        codes: the class names (code order); `vocab` is the same list and `c` its length (the model's
            outputs, void included when it is one of the codes: losses and metrics ignore it).
        void: the code of unlabelled pixels (None: every pixel is labelled).
        train_masks / valid_masks: the mask files of each loader.
    """

    def __init__(self, train: DataLoader, valid: DataLoader | None, codes: Sequence[str], void: int | None,
                 size: tuple[int, int], resize: str = "squash", channels: int = 3,
                 normalize: Normalize | None = None, batch_tfms: Sequence[BatchTransform] | None = None,
                 train_items: list[Path] | None = None, valid_items: list[Path] | None = None,
                 train_masks: list[Path] | None = None, valid_masks: list[Path] | None = None) -> None:
        super().__init__(train, valid, codes, size, resize, channels, normalize, False, batch_tfms, train_items,
                         valid_items)
        self.codes, self.void = list(self.vocab), void
        self.train_masks, self.valid_masks = train_masks, valid_masks
        self.default_loss = CrossEntropyLoss(axis=1, ignore_index=-100 if void is None else void)

    @property
    def learner_class(self) -> type:
        """`load_learner` builds a `SegmentationLearner` for these loaders."""
        from .learner import SegmentationLearner
        return SegmentationLearner

    @property
    def valid_tfm(self) -> SegmentationBatchTransform:
        """The validation pipeline (scaling and normalisation, no augmentation)."""
        return SegmentationBatchTransform(None, self.normalize, self.void)

    @property
    def class_codes(self) -> list[int]:
        """The codes that are classes (every code of `codes` but void)."""
        return [i for i in range(self.c) if i != self.void]

    def test_dl(self, items: Any, labels: Any = None, bs: int | None = None, on_error: str = "raise",
                num_workers: int | None = None) -> DataLoader:
        """A loader over new images (files, a folder, PIL images or arrays), decoded and normalised as the
        training images were; batches are `(x,)`. `labels` is not supported (masks are files: build
        loaders with `from_folders` to evaluate on labelled images)."""
        if labels is not None:
            raise ValueError("SegmentationDataLoaders.test_dl takes no labels; to score labelled images build loaders "
                             "with from_folders(valid_images=..., valid_masks=...).")
        return super().test_dl(items, None, bs, on_error, num_workers)

    def decode_pred(self, dec: torch.Tensor) -> Any:
        """The predicted mask: a uint8 array (H, W) of codes."""
        return dec.to(torch.uint8).cpu().numpy()

    def show_batch(self, n: int = 6, fname: str | os.PathLike | None = None, valid: bool = False,
                   ncols: int | None = None) -> Any:
        """Images of a training batch (augmented, as the model sees them; `valid=True`: a validation batch)
        with their masks overlaid and a colour legend; returns the figure (saved as PNG to `fname`)."""
        from .interpret import show_segmentation
        dl = self.valid if valid and self.valid is not None else self.train
        xb, yb = dl.one_batch()[:2]
        n = min(n, len(xb))
        return show_segmentation(self.decode_images(xb[:n].detach().cpu()), [yb[:n].cpu()], self.codes, self.void,
                                 ["truth"], fname=fname)

    def new_size(self, size: int | Sequence[int]) -> "SegmentationDataLoaders":
        """Not available for segmentation loaders (build them again at the new size)."""
        raise NotImplementedError("SegmentationDataLoaders cannot be resized in place; build them again with "
                                  "size=... (the model is fully convolutional and accepts the new size).")

    resized = new_size

    def model_mismatches(self, model: Any) -> list[str]:
        """Differences between these codes and the model's outputs (empty: they fit)."""
        cfg = model.get_config() if hasattr(model, "get_config") else {}
        n_out = cfg.get("n_out")
        if n_out is not None and int(n_out) != self.c:
            return [f"the model predicts {n_out} classes but the data has {self.c} codes"]
        return []

    # ---- export --------------------------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON-able settings, no tensors): codes, void, size, resize mode, channels, statistics."""
        meta, tensors = super().export_state()
        meta.pop("multi_label", None)
        meta["codes"] = meta.pop("vocab")
        meta["void"] = self.void
        return meta, tensors

    @classmethod
    def from_state(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "SegmentationDataLoaders":
        """Inference-only loaders (no images) from `export_state`'s output."""
        h, w = (int(s) for s in meta["size"])
        c = int(meta.get("channels", 3))
        norm = normalize_from_state(meta, c)
        void = meta.get("void")
        empty = DataLoader(torch.zeros(0, c, h, w, dtype=torch.uint8), torch.zeros(0, h, w, dtype=torch.uint8),
                           bs=int(meta.get("bs", 8)), device="cpu",
                           after_batch=SegmentationBatchTransform(None, norm, void))
        return cls(empty, None, meta["codes"], void, (h, w), meta.get("resize", "squash"), c, norm)

    # ---- construction --------------------------------------------------------------------------------
    @classmethod
    def from_folders(cls, images: str | os.PathLike, masks: str | os.PathLike,
                     codes: str | os.PathLike | Sequence[str], void: int | str | None = None,
                     valid_images: str | os.PathLike | None = None, valid_masks: str | os.PathLike | None = None,
                     valid_pct: float = 0.2, seed: int | None = None, mask_suffix: str = "",
                     size: int | Sequence[int] | None = None, resize: str = "squash", bs: int = 8,
                     val_bs: int | None = None, batch_tfms: Sequence[BatchTransform] | None = None,
                     normalize: NormalizeArg = "data", num_workers: int | None = None, channels: int = 3,
                     device: torch.device | str | None = None) -> "SegmentationDataLoaders":
        """Images in one folder and their masks in another, matched by name: the mask of
        ``images/x/a.jpg`` is ``masks/x/a<mask_suffix>.png`` (any image extension).

        Args:
            images, masks: the folders of training images and of their masks (PNG label maps whose values
                are class codes).
            codes: a text file with one class name per line (line i names code i), or a list of names.
            void: the code of unlabelled pixels, which losses and metrics ignore (an int, or its name in
                `codes`); None: every pixel has a class.
            valid_images, valid_masks: folders of validation images and masks; without them `valid_pct` of the
                training pairs are held out at random (`seed`).
            mask_suffix: added to an image's name to name its mask (e.g. "_P").
            size: (height, width) or int for every image and mask (default: the first image's own size).
            resize: how images are fitted to `size` (``"squash"``, ``"crop"``, ``"pad"``); masks follow by
                nearest neighbour (padding is void).
            bs, val_bs: batch sizes (validation default 2 * bs).
            batch_tfms: augmentation of training batches (e.g. `aug_transforms()`): geometric transforms move
                the masks too, lighting changes the images only.
            normalize: ``"data"``, ``"imagenet"``, a (mean, std) pair or None (see `ImageDataLoaders`).
            num_workers: decoding threads; channels: 3 (RGB) or 1 (grey); device: where batches are made.

        Raises:
            SegmentationDataError: a missing mask (named), image and mask folders that do not match, a mask
                whose size differs from its image's or holding codes outside `codes` (named).
        """
        names = read_codes(codes)
        codes_file = str(codes) if isinstance(codes, (str, os.PathLike)) else "`codes`"
        tr_items, tr_masks = pair_masks(Path(images), Path(masks), mask_suffix)
        if (valid_images is None) != (valid_masks is None):
            raise SegmentationDataError("Only one of valid_images / valid_masks was given.",
                                        "Pass both folders, or neither to hold out valid_pct of the training pairs.",
                                        cli_hint="Give both --valid-images and --valid-masks, or neither.")
        if valid_images is not None:
            va_items, va_masks = pair_masks(Path(valid_images), Path(valid_masks), mask_suffix)
        else:
            tr_idx, va_idx = split_indices(len(tr_items), valid_pct, seed)
            va_items, va_masks = [tr_items[i] for i in va_idx], [tr_masks[i] for i in va_idx]
            tr_items, tr_masks = [tr_items[i] for i in tr_idx], [tr_masks[i] for i in tr_idx]
        return _from_pairs(tr_items, tr_masks, va_items, va_masks, names, void, codes_file, size, resize, bs, val_bs,
                           batch_tfms, normalize, num_workers, channels, seed, device)

    @classmethod
    def from_label_func(cls, images: str | os.PathLike | Sequence[str | os.PathLike],
                        label_func: Callable[[Path], str | os.PathLike], codes: str | os.PathLike | Sequence[str],
                        void: int | str | None = None, valid_func: Callable[[Path], bool] | None = None,
                        valid_pct: float = 0.2, seed: int | None = None, size: int | Sequence[int] | None = None,
                        resize: str = "squash", bs: int = 8, val_bs: int | None = None,
                        batch_tfms: Sequence[BatchTransform] | None = None, normalize: NormalizeArg = "data",
                        num_workers: int | None = None, channels: int = 3,
                        device: torch.device | str | None = None) -> "SegmentationDataLoaders":
        """Image files (a folder, searched recursively, or a list) whose mask files `label_func(image_path)`
        names, as in the fastai course (``label_func=lambda p: masks / f"{p.stem}_P{p.suffix}"``).

        Args:
            valid_func: `valid_func(image_path)` True for validation images (else `valid_pct` at random).
            Other arguments: as `from_folders`.
        """
        names = read_codes(codes)
        codes_file = str(codes) if isinstance(codes, (str, os.PathLike)) else "`codes`"
        if isinstance(images, (str, os.PathLike)):
            folder = Path(images)
            if not folder.is_dir():
                raise SegmentationDataError(f"No image folder at {folder}.")
            items = get_image_files(folder)
            if not items:
                raise SegmentationDataError(f"The image folder {folder} holds no image files.")
        else:
            items = [Path(p) for p in images]
            if not items:
                raise SegmentationDataError("No image files were given.")
        masks, missing = [], []
        for p in items:
            m = Path(label_func(p))
            masks.append(m)
            if not m.is_file():
                missing.append((p, m))
        if missing:
            shown = ", ".join(f"{p} (label_func gave {m})" for p, m in missing[:5])
            raise SegmentationDataError(f"{len(missing)} of {len(items)} images have no mask file: {shown}"
                                        f"{' ...' if len(missing) > 5 else ''}.",
                                        "Check label_func, or add the missing masks.")
        if valid_func is not None:
            is_va = [bool(valid_func(p)) for p in items]
            va_idx = [i for i, v in enumerate(is_va) if v]
            tr_idx = [i for i, v in enumerate(is_va) if not v]
        else:
            tr_idx, va_idx = split_indices(len(items), valid_pct, seed)
        return _from_pairs([items[i] for i in tr_idx], [masks[i] for i in tr_idx], [items[i] for i in va_idx],
                           [masks[i] for i in va_idx], names, void, codes_file, size, resize, bs, val_bs,
                           batch_tfms, normalize, num_workers, channels, seed, device)

    def __repr__(self) -> str:
        nv = self.valid.n if self.valid is not None else 0
        return (f"SegmentationDataLoaders({self.c} codes, void={self.void}, {self.train.n} train / {nv} valid images "
                f"of {self.channels}x{self.size[0]}x{self.size[1]}, device={self.device})")


def _from_pairs(tr_items: list[Path], tr_masks: list[Path], va_items: list[Path], va_masks: list[Path],
                codes: list[str], void: int | str | None, codes_file: str, size: int | Sequence[int] | None,
                resize: str, bs: int, val_bs: int | None, batch_tfms: Sequence[BatchTransform] | None,
                normalize: NormalizeArg, num_workers: int | None, channels: int, seed: int | None,
                device: torch.device | str | None) -> SegmentationDataLoaders:
    check_positive("bs", bs)
    if resize not in RESIZE_MODES:
        raise ValueError(f"`resize` must be one of {RESIZE_MODES}; received resize={resize!r}.")
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grey) or 3 (RGB); received channels={channels!r}.")
    if not tr_items:
        raise SegmentationDataError("The split left no training images; lower valid_pct or check valid_func.")
    void_code = resolve_void(void, codes)
    tfms = check_seg_tfms(batch_tfms or [])
    if size is None:
        w, h = _upright_size(tr_items[0])
        hw = (h, w)
    else:
        hw = check_hw(size)
    items, masks = tr_items + va_items, tr_masks + va_masks
    y = decode_masks(masks, items, hw, resize, len(codes), void_code, codes_file, num_workers)
    x, bad = decode_images(items, hw, resize, channels, num_workers=num_workers)
    if bad:
        raise ImageDecodeError(failure_message(bad, len(items), "Remove or replace them (and their masks)."))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n_tr = len(tr_items)
    device = torch.device(default_device() if device is None else device)
    norm = make_normalize(normalize, xt[:n_tr], channels)
    # copied to the device once when it fits (batches index it there), else kept in pinned host memory
    kw = dict(device=device, n_inp=1, preload=cache_fits_device(xt.numel() + yt.numel(), device))
    drop_last = n_tr % bs == 1 and n_tr > bs  # a last batch of one image breaks batch norm
    train = ImageDataLoader(xt[:n_tr], yt[:n_tr], bs=bs, shuffle=True, drop_last=drop_last, seed=seed,
                            after_batch=SegmentationBatchTransform(tfms, norm, void_code, seed), **kw)
    valid = None
    if len(va_items):
        valid = DataLoader(xt[n_tr:], yt[n_tr:], bs=val_bs or 2 * bs,
                           after_batch=SegmentationBatchTransform(None, norm, void_code), **kw)
    return SegmentationDataLoaders(train, valid, codes, void_code, hw, resize, channels, norm, tfms, tr_items,
                                   va_items, tr_masks, va_masks)

