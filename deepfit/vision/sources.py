"""Where images and labels come from: finding image files and class folders, labels from tables and
arrays, the decoded-image cache (in memory or a memory-mapped ``.npy`` file reused while the files are
unchanged), and resizing uint8 image tensors as the decoder does."""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..utils import atomic_path
from .decode import IMAGE_EXTENSIONS, RESIZE_MODES, DecodeFailure, ImageDecodeError, decode_images, failure_message

__all__ = ["ImageDataError", "get_image_files", "resize_images", "OnError", "IGNORED_FILES"]

OnError = Literal["raise", "skip"]
NormalizeArg = Literal["data", "imagenet"] | None | tuple
IGNORED_FILES = {"thumbs.db", "desktop.ini", ".ds_store"}


class ImageDataError(ValueError):
    """Image data that cannot be used as given (empty class folder, one class, non-image files, a label
    file naming missing images...); the message names the folder or file and what to do."""


# ---- finding files -------------------------------------------------------------------------------------
def get_image_files(folder: str | os.PathLike, recurse: bool = True,
                    on_other: Literal["raise", "skip", "ignore"] = "ignore") -> list[Path]:
    """The image files under `folder` (by extension, sorted). Hidden files and system files
    (Thumbs.db, desktop.ini) are always left out; other non-image files are left out silently
    (``"ignore"``), with a warning (``"skip"``), or raise an `ImageDataError` naming them (``"raise"``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageDataError(f"{folder} is not a folder.")
    images, others = [], []
    # os.walk and plain strings: several times faster than pathlib on folders of 100,000 files
    for top, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recurse else []
        for name in files:
            if name.startswith(".") or name.lower() in IGNORED_FILES:
                continue
            full = os.path.join(top, name)
            (images if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS else others).append(full)
    images = [Path(f) for f in sorted(images)]
    others = [Path(f) for f in sorted(others)]
    if others and on_other != "ignore":
        shown = ", ".join(str(o) for o in others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        msg = (f"{len(others)} file(s) in {folder} are not images (by their extension): {shown}")
        if on_other == "raise":
            raise ImageDataError(msg + ". Move them out of the image folders, or skip them (on_error='skip').")
        warnings.warn(msg + "; they are left out.", stacklevel=3)
    return images


def class_folders(root: Path, what: str) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))



# ---- resizing tensors ----------------------------------------------------------------------------------
def check_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool) and size > 0:
        return int(size), int(size)
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, (int, np.integer)) and s > 0
                                                                   for s in size):
        return int(size[0]), int(size[1])
    raise ValueError(f"`size` must be a positive int or a (height, width) pair; received size={size!r}.")


def resize_images(x: torch.Tensor, size: int | Sequence[int], resize: str = "crop", chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 images (N, C, H, W) to `size` as the decoder does (``crop``, ``squash``, ``pad``),
    with antialiased bilinear interpolation, in chunks; returns uint8."""
    h, w = check_hw(size)
    if resize not in RESIZE_MODES:
        raise ValueError(f"`resize` must be one of {RESIZE_MODES}; received resize={resize!r}.")
    H, W = x.shape[-2:]
    if (H, W) == (h, w):
        return x
    if resize == "squash":
        th, tw = h, w
    elif resize == "crop":
        s = max(h / H, w / W)
        th, tw = max(h, round(H * s)), max(w, round(W * s))
    else:
        s = min(h / H, w / W)
        th, tw = max(1, round(H * s)), max(1, round(W * s))
    out = torch.zeros(len(x), x.shape[1], h, w, dtype=torch.uint8)
    for lo in range(0, len(x), chunk):
        xb = torch.as_tensor(x[lo:lo + chunk]).float()
        r = F.interpolate(xb, size=(th, tw), mode="bilinear", align_corners=False, antialias=(th < H or tw < W))
        r = r.round_().clamp_(0, 255).to(torch.uint8)
        if resize == "pad":
            top, left = (h - th) // 2, (w - tw) // 2
            out[lo:lo + chunk, :, top:top + th, left:left + tw] = r
        else:
            top, left = (th - h) // 2, (tw - w) // 2
            out[lo:lo + chunk] = r[:, :, top:top + h, left:left + w]
    return out


# ---- helpers -------------------------------------------------------------------------------------------
def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"`on_error` must be 'raise' or 'skip'; received on_error={on_error!r}.")


def column_of(df: Any, col: int | str, arg: str) -> str:
    cols = list(df.columns)
    if isinstance(col, (int, np.integer)) and not isinstance(col, bool) and col not in cols:
        if not 0 <= col < len(cols):
            raise ImageDataError(f"`{arg}`={col} is not a column position of the table (it has {len(cols)} columns).")
        return cols[col]
    if col not in cols:
        raise ImageDataError(f"`{arg}`={col!r} is not a column of the table; columns are {cols}.")
    return col


def split_labels(v: Any, delim: str) -> list[str]:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    return [t for t in str(v).split(delim) if t.strip()]


def multi_hot(lists: Sequence[Sequence[str]], vocab: Sequence[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(vocab)}
    out = np.zeros((len(lists), len(vocab)), dtype=np.float32)
    for r, ls in enumerate(lists):
        for t in ls:
            if t not in index:
                raise ValueError(f"Label {t!r} is not one of the classes ({', '.join(list(vocab)[:10])}).")
            out[r, index[t]] = 1.0
    return out


def to_grey(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
    return (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def labels_from_array(y: Any, classes: Sequence[Any] | None, name: str) -> tuple[torch.Tensor, list[str], bool]:
    """(targets, vocab, multi_label) from labels given as indices, names, or multi-hot rows."""
    arr = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
    if arr.ndim == 2:  # multi-hot
        vocab = [str(c) for c in classes] if classes is not None else [str(i) for i in range(arr.shape[1])]
        if arr.shape[1] != len(vocab):
            raise ValueError(f"`{name}` has {arr.shape[1]} columns (multi-hot) but there are {len(vocab)} classes.")
        return torch.from_numpy(arr.astype(np.float32)), vocab, True
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be one label per image (N,) or multi-hot (N, classes); received shape "
                         f"{arr.shape}.")
    if classes is not None:
        vocab = [str(c) for c in classes]
        if np.issubdtype(arr.dtype, np.integer):
            if len(arr) and (arr.min() < 0 or arr.max() >= len(vocab)):
                raise ValueError(f"`{name}` holds class indices from {arr.min()} to {arr.max()}, but there are "
                                 f"{len(vocab)} classes.")
            return torch.from_numpy(arr.astype(np.int64)), vocab, False
        index = {v: i for i, v in enumerate(vocab)}
        bad = sorted({str(v) for v in arr if str(v) not in index})
        if bad:
            raise ValueError(f"`{name}` holds label(s) {bad[:5]} that are not among the classes {vocab[:10]}.")
        return torch.tensor([index[str(v)] for v in arr], dtype=torch.long), vocab, False
    if np.issubdtype(arr.dtype, np.floating):
        if len(arr) and not np.all(arr == np.round(arr)):
            raise ValueError(f"`{name}` holds fractional numbers; class labels must be whole numbers or names.")
        arr = arr.astype(np.int64)
    uniq = sorted(set(arr.tolist()))
    vocab = [str(u) for u in uniq]
    index = {u: i for i, u in enumerate(uniq)}
    return torch.tensor([index[v] for v in arr.tolist()], dtype=torch.long), vocab, False


def scan_classes(folder: Path, on_error: str, allow_empty: bool = False,
                  min_classes: int = 2) -> tuple[list[Path], list[str], list[str]]:
    """(files, their class names, sorted class names) of a folder holding one folder per class."""
    dirs = class_folders(folder, "class")
    loose = [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
             and f.name.lower() not in IGNORED_FILES]
    if loose:
        shown = ", ".join(str(f) for f in loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
        msg = f"{folder} holds file(s) outside the class folders ({shown})"
        if on_error == "raise":
            raise ImageDataError(f"{msg}; every image must be in the folder of its class. Move them, or skip them "
                                 "(on_error='skip').")
        warnings.warn(f"{msg}; they are left out.", stacklevel=4)
    if not dirs and min_classes == 1:
        raise ImageDataError(f"The validation folder {folder} has no class folders: put its images in one folder per "
                             "class, named as in the training folder.")
    if len(dirs) < min_classes:
        what = "no class folder" if not dirs else f"only one class folder ({dirs[0].name})"
        raise ImageDataError(f"{folder} has {what}: a classifier needs one folder of images per class, and at least "
                             "two classes.")
    items: list[Path] = []
    labels: list[str] = []
    on_other = "raise" if on_error == "raise" else "skip"
    for d in dirs:
        files = get_image_files(d, on_other=on_other)
        if not files and not allow_empty:
            raise ImageDataError(f"The class folder {d} holds no images; add images or remove the folder.")
        items += files
        labels += [d.name] * len(files)
    return items, labels, [d.name for d in dirs]


def report_failures(bad: list[DecodeFailure], total: int, on_error: str) -> list[int]:
    """Raise for `on_error='raise'`; else warn and return the indices kept."""
    if on_error == "raise":
        raise ImageDecodeError(failure_message(bad, total, "Remove or replace them, or skip them (on_error='skip')."))
    warnings.warn(failure_message(bad, total, "They are left out."), stacklevel=3)
    dropped = {f.index for f in bad}
    return [i for i in range(total) if i not in dropped]


def fingerprint(items: Sequence[Path], size: tuple[int, int], resize: str, channels: int) -> str:
    h = hashlib.sha1(f"{size}|{resize}|{channels}|{len(items)}".encode())
    for p in items:
        try:
            st = os.stat(p)
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}|missing\n".encode())
    return h.hexdigest()


def decode_cached(items: Sequence[Path], size: tuple[int, int], resize: str, channels: int,
                   cache: Path | None, num_workers: int | None) -> tuple[np.ndarray, list[DecodeFailure]]:
    """Decode `items` into memory, or into the memory-mapped `cache` (.npy) reused when its fingerprint
    (files, sizes, times, settings) matches."""
    if cache is None:
        return decode_images(items, size, resize, channels, num_workers=num_workers)
    cache = Path(cache)
    meta_file = cache.with_name(cache.name + ".json")
    fp = fingerprint(items, size, resize, channels)
    if cache.is_file() and meta_file.is_file():
        try:
            meta = json.loads(meta_file.read_text())
            if meta.get("fingerprint") == fp:
                arr = np.load(cache, mmap_mode="c")
                if arr.shape == (len(items), channels, *size):
                    return arr, [DecodeFailure(**f) for f in meta.get("failures", [])]
        except (ValueError, OSError, TypeError):
            pass  # an unreadable cache is rebuilt
    with atomic_path(cache, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(items), channels, *size))
        _, bad = decode_images(items, size, resize, channels, out=out, num_workers=num_workers)
        out.flush()
        del out
    with atomic_path(meta_file) as tmp:
        tmp.write_text(json.dumps({"fingerprint": fp, "failures": [vars(f) for f in bad]}))
    return np.load(cache, mmap_mode="c"), bad
