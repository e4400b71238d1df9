"""Image classification data: folders, CSV/DataFrames or arrays of images -> one uint8 cache -> batches.

Images are decoded once (Pillow, in worker threads; see `deepfit.vision.decode`) to one fixed size into
a uint8 tensor (N, C, H, W), kept in memory (on the training device) or in a memory-mapped ``.npy`` file
(`cache=`, for sets larger than memory). A batch is then one index into that tensor, as everywhere in
deepfit; the loader's `after_batch` (`ImageBatchTransform`) turns it into floats in [0, 1], augments
the training batches on the device (`deepfit.vision.augment`) and normalises.

Example:
    >>> from deepfit.vision import ImageDataLoaders, aug_transforms
    >>> dls = ImageDataLoaders.from_folder("cifar10", valid="test", size=32, bs=256,
    ...                                    batch_tfms=aug_transforms(), normalize="data")
    >>> dls.vocab, dls.c            # (['airplane', ...], 10)
    >>> dls.show_batch(fname="batch.png")
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..data.core import DataLoader, DataLoaders, split_indices
from ..data.transforms import Normalize
from ..utils import check_positive, default_device
from .augment import BatchTransform
from .decode import RESIZE_MODES, ImageDecodeError, decode_image, decode_images, failure_message, to_uint8_array
from .sources import (ImageDataError, OnError, check_hw, check_on_error, class_folders, column_of, decode_cached,
                      NormalizeArg, get_image_files, labels_from_array, multi_hot, report_failures, resize_images,
                      scan_classes, split_labels, to_grey)
from .pipeline import ImageBatchTransform, ImageDataLoader, cache_fits_device, make_normalize, normalize_from_state

__all__ = ["ImageDataLoaders", "ImageDataLoader", "ImageBatchTransform", "ImageDataError", "get_image_files",
           "resize_images"]


# ---- the DataLoaders -----------------------------------------------------------------------------------
class ImageDataLoaders(DataLoaders):
    """Train / valid loaders of images and their classes, with what inference needs.

    Build with `from_folder`, `from_csv`, `from_df` or `from_arrays`. Attributes:
        vocab: the class names (index order); `c` their number.
        size: (height, width) of every image; resize: how files were fitted to it.
        channels: 3 (RGB) or 1 (grey).
        normalize: the `Normalize` applied after augmentation (None: inputs stay in [0, 1]);
            `mean` / `std` its statistics as lists.
        multi_label: targets are multi-hot float vectors (several labels per image) instead of indices.
        train_items / valid_items: the image files of each loader (None when built from arrays).
        batch_tfms: the training augmentation.
    """

    def __init__(self, train: DataLoader, valid: DataLoader | None, vocab: Sequence[str], size: tuple[int, int],
                 resize: str = "crop", channels: int = 3, normalize: Normalize | None = None,
                 multi_label: bool = False, batch_tfms: Sequence[BatchTransform] | None = None,
                 train_items: list[Path] | None = None, valid_items: list[Path] | None = None,
                 source: dict[str, Any] | None = None) -> None:
        super().__init__(train, valid)
        self.vocab = [str(v) for v in vocab]
        self.size, self.resize, self.channels = (int(size[0]), int(size[1])), resize, int(channels)
        self.normalize, self.multi_label = normalize, bool(multi_label)
        self.batch_tfms = list(batch_tfms or [])
        self.train_items, self.valid_items = train_items, valid_items
        self._source = source or {}
        from ..losses import BCEWithLogitsLoss, CrossEntropyLoss
        self.default_loss = BCEWithLogitsLoss() if self.multi_label else CrossEntropyLoss()

    # ---- facts ---------------------------------------------------------------------------------------
    @property
    def learner_class(self) -> type:
        """`load_learner` builds a `VisionLearner` (with `tta` and `interpret`) for these loaders."""
        from .learner import VisionLearner
        return VisionLearner

    @property
    def c(self) -> int:
        """Number of classes."""
        return len(self.vocab)

    @property
    def mean(self) -> list[float] | None:
        """Per-channel mean subtracted after scaling to [0, 1] (None without normalisation)."""
        return None if self.normalize is None else self.normalize.mean.flatten().tolist()

    @property
    def std(self) -> list[float] | None:
        """Per-channel standard deviation divided by (None without normalisation)."""
        return None if self.normalize is None else self.normalize.std.flatten().tolist()

    @property
    def valid_tfm(self) -> ImageBatchTransform:
        """The validation pipeline (scaling and normalisation, no augmentation)."""
        return ImageBatchTransform(None, self.normalize)

    # ---- decoding for people -------------------------------------------------------------------------
    def decode_images(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs (normalised floats) or uint8 images back to floats in [0, 1] (N, C, H, W)."""
        if x.dtype == torch.uint8:
            return x.float() / 255.0
        x = self.normalize.decode(x) if self.normalize is not None else x
        return x.clamp(0, 1)

    def label_text(self, y: torch.Tensor) -> str:
        """The class name of one target (index, or multi-hot vector joined with ';')."""
        if self.multi_label:
            return ";".join(self.vocab[i] for i in torch.nonzero(y.reshape(-1) > 0.5).flatten().tolist())
        return self.vocab[int(y)]

    def show_batch(self, n: int = 9, fname: str | os.PathLike | None = None, valid: bool = False,
                   ncols: int | None = None) -> Any:
        """A grid of `n` images of a training batch (augmented, as the model sees them; `valid=True`: a
        validation batch) titled with their labels; returns the matplotlib figure (saved as PNG to `fname`)."""
        from .show import show_images
        dl = self.valid if valid and self.valid is not None else self.train
        xb, yb = dl.one_batch()[:2]
        n = min(n, len(xb))
        imgs = self.decode_images(xb[:n].detach().cpu())
        return show_images(imgs, [self.label_text(y) for y in yb[:n].cpu()], fname=fname, ncols=ncols)

    # ---- inference -----------------------------------------------------------------------------------
    def _encode_images(self, items: Any, on_error: OnError = "raise",
                       num_workers: int | None = None) -> tuple[torch.Tensor, list[Path] | None]:
        """Files / a folder / PIL images / arrays as uint8 (N, C, H, W) of this data's size and channels."""
        from PIL import Image
        if isinstance(items, (str, os.PathLike)):
            p = Path(items)
            items = get_image_files(p, on_other="raise" if on_error == "raise" else "skip") if p.is_dir() else [p]
            if not items:
                raise ImageDataError(f"{p} holds no image files.")
        if isinstance(items, (list, tuple)) and items and all(isinstance(i, (str, os.PathLike)) for i in items):
            paths = [Path(i) for i in items]
            x, bad = decode_images(paths, self.size, self.resize, self.channels, num_workers=num_workers)
            if bad:
                keep = report_failures(bad, len(paths), on_error)
                x, paths = x[keep], [paths[i] for i in keep]
            return torch.from_numpy(x), paths
        if isinstance(items, Image.Image):
            return torch.from_numpy(decode_image(items, self.size, self.resize, self.channels)[None]), None
        if isinstance(items, (list, tuple)) and items and all(isinstance(i, Image.Image) for i in items):
            return torch.from_numpy(np.stack([decode_image(i, self.size, self.resize, self.channels)
                                              for i in items])), None
        x = torch.from_numpy(to_uint8_array(items, "images"))
        if x.shape[1] != self.channels:
            x = x.expand(-1, 3, -1, -1).contiguous() if self.channels == 3 else to_grey(x)
        return resize_images(x, self.size, self.resize), None

    def test_dl(self, items: Any, labels: Any = None, bs: int | None = None, on_error: OnError = "raise",
                num_workers: int | None = None) -> DataLoader:
        """A loader over new images, decoded and normalised as the training images were (no augmentation).

        Args:
            items: image files, a folder (all images in it), PIL images, or an array/tensor of images
                (uint8 0..255 or float 0..1; (N, H, W), (N, C, H, W) or (N, H, W, C)). Images of another
                size or mode are converted and resized (`self.resize`) to this data's.
            labels: optional class names or indices (then batches are (x, y), else (x,)).
            on_error: ``"raise"`` (default) stops at unreadable files naming them; ``"skip"`` leaves them
                out with a warning. The loader's `items` lists the files kept, in order.
        """
        x, paths = self._encode_images(items, on_error, num_workers)
        tensors: list[torch.Tensor] = [x]
        if labels is not None:
            tensors.append(self._encode_labels(labels, len(x)))
        bs = bs or (self.valid.bs if self.valid is not None else 2 * self.train.bs)
        dl = DataLoader(*tensors, bs=bs, device=self.device, n_inp=1, after_batch=self.valid_tfm)
        dl.items = paths  # type: ignore[attr-defined]
        return dl

    def _encode_labels(self, labels: Any, n: int) -> torch.Tensor:
        labels = list(labels)
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} images.")
        if self.multi_label:
            return torch.from_numpy(multi_hot([split_labels(lb, ";") for lb in labels], self.vocab))
        index = {v: i for i, v in enumerate(self.vocab)}
        out = []
        for lb in labels:
            if isinstance(lb, (int, np.integer)) and not isinstance(lb, bool) and 0 <= lb < self.c:
                out.append(int(lb))
            elif str(lb) in index:
                out.append(index[str(lb)])
            else:
                raise ValueError(f"Label {lb!r} is not one of the {self.c} classes ({', '.join(self.vocab[:10])}"
                                 f"{', ...' if self.c > 10 else ''}).")
        return torch.tensor(out, dtype=torch.long)

    def encode_item(self, item: Any) -> tuple[torch.Tensor]:
        """One image (file, PIL image, or array/tensor (H, W), (C, H, W), (H, W, C)) as a normalised model
        input of shape (1, C, H, W), for `Learner.predict`."""
        if not isinstance(item, (str, os.PathLike)) and not hasattr(item, "convert"):
            a = item.detach().cpu().numpy() if hasattr(item, "detach") else np.asarray(item)
            item = a[None]
        elif isinstance(item, (str, os.PathLike)):
            item = [item]
        x, _ = self._encode_images(item)
        return (self.valid_tfm((x.to(self.device),))[0],)

    def decode_pred(self, dec: torch.Tensor) -> Any:
        """The class name (or, multi-label, the list of class names) of a decoded prediction."""
        if self.multi_label:
            return [self.vocab[i] for i in torch.nonzero(dec.reshape(-1) > 0.5).flatten().tolist()]
        return self.vocab[int(dec)]

    # ---- progressive resizing ------------------------------------------------------------------------
    def new_size(self, size: int | Sequence[int]) -> "ImageDataLoaders":
        """The same data at another image size (same split, classes, statistics, augmentation and batch
        size): files are decoded again at the new size, arrays are resized. For progressive resizing:
        ``learn.dls = dls.new_size(64)`` between fits (a model with adaptive pooling accepts any size)."""
        src = self._source
        if not src:
            raise ValueError("These loaders were rebuilt from an export and hold no data to resize.")
        h, w = check_hw(size)
        kind = src["kind"]
        if kind == "files":
            cache = src.get("cache")
            if cache is not None:
                cache = Path(cache)
                cache = cache.with_name(f"{cache.stem}-{h}x{w}{cache.suffix}")
            x, bad = decode_cached(src["items"], (h, w), self.resize, self.channels, cache, src.get("num_workers"))
            if bad:  # the files changed since: say so
                raise ImageDecodeError(failure_message(bad, len(src["items"])))
            x_all = torch.from_numpy(x)
        else:
            x_all = resize_images(src["x"], (h, w), self.resize)
        n_tr = src["n_train"]
        return _assemble(x_all[:n_tr], src["y"][:n_tr], x_all[n_tr:], src["y"][n_tr:], self.vocab, (h, w),
                         self.resize, self.channels, self.multi_label, self.batch_tfms, self.normalize, self.train.bs,
                         self.valid.bs if self.valid is not None else None, self.device, src.get("seed"),
                         self.train_items, self.valid_items, src,
                         memmap=kind == "files" and src.get("cache") is not None)

    resized = new_size

    # ---- export --------------------------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON-able settings, no tensors): classes, size, resize mode, channels, statistics, multi-label."""
        meta = {"vocab": self.vocab, "size": list(self.size), "resize": self.resize, "channels": self.channels,
                "multi_label": self.multi_label, "mean": self.mean, "std": self.std,
                "eps": self.normalize.eps if self.normalize is not None else None, "bs": self.train.bs}
        return meta, {}

    @classmethod
    def from_state(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "ImageDataLoaders":
        """Inference-only loaders (no images) from `export_state`'s output."""
        h, w = (int(s) for s in meta["size"])
        c = int(meta.get("channels", 3))
        norm = normalize_from_state(meta, c)
        multi = bool(meta.get("multi_label", False))
        y = torch.zeros(0, len(meta["vocab"])) if multi else torch.zeros(0, dtype=torch.long)
        empty = DataLoader(torch.zeros(0, c, h, w, dtype=torch.uint8), y, bs=int(meta.get("bs", 64)), device="cpu",
                           after_batch=ImageBatchTransform(None, norm))
        return cls(empty, None, meta["vocab"], (h, w), meta.get("resize", "crop"), c, norm, multi)

    # ---- construction --------------------------------------------------------------------------------
    @classmethod
    def from_folder(cls, path: str | os.PathLike, train: str = "train", valid: str | None = "valid",
                    valid_pct: float | None = None, seed: int | None = None, size: int | Sequence[int] = 224,
                    resize: str = "crop", bs: int = 64, val_bs: int | None = None,
                    batch_tfms: Sequence[BatchTransform] | None = None, normalize: NormalizeArg = "data",
                    cache: str | os.PathLike | None = None, num_workers: int | None = None,
                    on_error: OnError = "raise", channels: int = 3,
                    device: torch.device | str | None = None) -> "ImageDataLoaders":
        """Images in one folder per class: ``path/train/<class>/*.jpg`` and ``path/valid/<class>/...``.

        Args:
            path: the data folder. Without a `train` sub-folder, `path` itself holds the class folders and
                `valid_pct` of them (default 0.2) is held out at random.
            train, valid: the sub-folders of training and validation images. When `valid` ("valid")
                does not exist, "test" is used if present; with `valid_pct`, the validation images are
                drawn from the training folder instead.
            seed: seed of the split, the shuffle and the augmentation.
            size: the size of every image, int or (height, width); `resize` how files are fitted to it:
                ``"crop"`` (centre), ``"squash"`` or ``"pad"``.
            bs / val_bs: batch sizes (validation default 2 * bs).
            batch_tfms: augmentation of training batches (e.g. `aug_transforms()`); none by default.
            normalize: ``"data"`` (per-channel statistics of the training images), ``"imagenet"`` (a
                pretrained model's), a (mean, std) pair of per-channel sequences in [0, 1] units, or None.
            cache: a file for a memory-mapped uint8 cache (``.npy``, reused while the files and settings
                are unchanged), for sets larger than memory; default in memory.
            num_workers: decoding threads (default: the usable cores).
            on_error: ``"raise"``: an unreadable image or a non-image file stops with an `ImageDataError` /
                `ImageDecodeError` naming the files; ``"skip"``: they are left out with a warning.
            channels: 3 (RGB; grey and other modes are converted) or 1 (grey).
            device: where batches are made (default: the best available).
        """
        root = Path(path)
        if not root.is_dir():
            raise ImageDataError(f"No image folder at {root}.")
        check_on_error(on_error)
        tr_dir = root / train
        va_dir: Path | None = None
        if not tr_dir.is_dir():
            classes_here = class_folders(root, "class")
            if not classes_here:
                raise ImageDataError(f"{root} has neither a {train!r} folder nor class folders (one folder of "
                                     "images per class).")
            tr_dir = root
            if valid_pct is None:
                valid_pct = 0.2
        elif valid_pct is None and valid is not None:
            va_dir = root / valid
            if not va_dir.is_dir() and valid == "valid" and (root / "test").is_dir():
                va_dir = root / "test"
            if not va_dir.is_dir():
                raise ImageDataError(f"{root} has no {valid!r} folder for validation images; pass valid='name of "
                                     "the folder', or hold out part of the training images with valid_pct=0.2.")
        tr_items, tr_labels, vocab = scan_classes(tr_dir, on_error)
        if va_dir is not None:
            va_items, va_labels, va_vocab = scan_classes(va_dir, on_error, allow_empty=True, min_classes=1)
            unknown = sorted(set(va_vocab) - set(vocab))
            if unknown:
                raise ImageDataError(f"{va_dir} has class folder(s) {', '.join(unknown)} that are not in {tr_dir} "
                                     f"(classes: {', '.join(vocab[:10])}{', ...' if len(vocab) > 10 else ''}).")
            y_tr = [vocab.index(lb) for lb in tr_labels]
            y_va = [vocab.index(lb) for lb in va_labels]
        else:
            y_all = [vocab.index(lb) for lb in tr_labels]
            tr_idx, va_idx = split_indices(len(tr_items), valid_pct, seed)
            va_items, y_va = [tr_items[i] for i in va_idx], [y_all[i] for i in va_idx]
            tr_items, y_tr = [tr_items[i] for i in tr_idx], [y_all[i] for i in tr_idx]
        y = torch.tensor(y_tr + y_va, dtype=torch.long)
        return _from_files(tr_items, va_items, y, vocab, False, size, resize, channels, bs, val_bs, batch_tfms,
                           normalize, cache, num_workers, on_error, seed, device)

    @classmethod
    def from_df(cls, df: Any, path: str | os.PathLike = ".", fn_col: int | str = 0, label_col: int | str = 1,
                label_delim: str | None = None, valid_col: str | None = None, valid_pct: float = 0.2,
                seed: int | None = None, folder: str | None = None, suff: str = "", size: int | Sequence[int] = 224,
                resize: str = "crop", bs: int = 64, val_bs: int | None = None,
                batch_tfms: Sequence[BatchTransform] | None = None, normalize: NormalizeArg = "data",
                cache: str | os.PathLike | None = None, num_workers: int | None = None, on_error: OnError = "raise",
                channels: int = 3, device: torch.device | str | None = None) -> "ImageDataLoaders":
        """Images named in a DataFrame (not modified): file names in `fn_col` (relative to
        `path/folder`, plus `suff`), labels in `label_col`.

        Args:
            label_delim: labels are several per image, separated by this (e.g. " "): a multi-label problem
                (multi-hot targets, `BCEWithLogitsLoss`); an empty label means none of the classes.
            valid_col: a boolean column marking the validation rows (else `valid_pct` at random, `seed`).
            Other arguments: as `from_folder`.
        """
        import pandas as pd
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_df expects a pandas DataFrame; received {type(df).__name__}.")
        check_on_error(on_error)
        cols = list(df.columns)
        fn = column_of(df, fn_col, "fn_col")
        lb = column_of(df, label_col, "label_col")
        base = Path(path) / folder if folder else Path(path)
        names = df[fn]
        if names.isna().any():
            rows = df.index[names.isna()][:5].tolist()
            raise ImageDataError(f"Column {fn!r} has empty file names (rows {rows}).")
        items = [base / f"{n}{suff}" for n in names.astype(str)]
        missing = [(r, p) for r, p in zip(df.index, items) if not p.is_file()]
        if missing:
            shown = ", ".join(f"row {r}: {p}" for r, p in missing[:5])
            raise ImageDataError(f"{len(missing)} image file(s) named in column {fn!r} do not exist ({shown}"
                                 f"{' ...' if len(missing) > 5 else ''}). Check `path`/`folder`/`suff`; columns: "
                                 f"{cols}.")
        labels = df[lb]
        multi = label_delim is not None
        if multi:
            lists = [split_labels(v, label_delim) for v in labels]
            vocab = sorted({t for ls in lists for t in ls})
            if not vocab:
                raise ImageDataError(f"Column {lb!r} has no labels at all.")
            y = torch.from_numpy(multi_hot(lists, vocab))
        else:
            if labels.isna().any():
                rows = df.index[labels.isna()][:5].tolist()
                raise ImageDataError(f"Column {lb!r} has missing labels (rows {rows}); fill or drop them.")
            text = labels.astype(str)
            vocab = sorted(text.unique())
            if len(vocab) < 2:
                raise ImageDataError(f"Column {lb!r} holds a single class ({vocab[0]!r}); a classifier needs at "
                                     "least two.")
            y = torch.from_numpy(pd.Index(vocab).get_indexer(text).astype(np.int64))
        if valid_col is not None:
            vc = column_of(df, valid_col, "valid_col")
            is_valid = df[vc].astype(bool).to_numpy()
            va_idx, tr_idx = np.nonzero(is_valid)[0], np.nonzero(~is_valid)[0]
        else:
            tr_idx, va_idx = split_indices(len(df), valid_pct, seed)
        if len(tr_idx) == 0:
            raise ImageDataError("The split left no training images; lower `valid_pct` or check `valid_col`.")
        order = torch.from_numpy(np.concatenate([tr_idx, va_idx]).astype(np.int64))
        return _from_files([items[i] for i in tr_idx], [items[i] for i in va_idx], y[order], vocab, multi, size,
                           resize, channels, bs, val_bs, batch_tfms, normalize, cache, num_workers, on_error, seed,
                           device)

    @classmethod
    def from_csv(cls, path: str | os.PathLike, csv_file: str | os.PathLike = "labels.csv", fn_col: int | str = 0,
                 label_col: int | str = 1, label_delim: str | None = None, valid_col: str | None = None,
                 valid_pct: float = 0.2, seed: int | None = None, folder: str | None = None, suff: str = "",
                 delimiter: str = ",", size: int | Sequence[int] = 224, resize: str = "crop", bs: int = 64,
                 val_bs: int | None = None, batch_tfms: Sequence[BatchTransform] | None = None,
                 normalize: NormalizeArg = "data", cache: str | os.PathLike | None = None,
                 num_workers: int | None = None, on_error: OnError = "raise", channels: int = 3,
                 device: torch.device | str | None = None) -> "ImageDataLoaders":
        """Read `path/csv_file` (file name and label columns) and build loaders as `from_df` does.

        Example:
            >>> dls = ImageDataLoaders.from_csv("planet", "labels.csv", folder="train", suff=".jpg",
            ...                                 label_delim=" ", size=128)
        """
        import pandas as pd
        f = Path(csv_file) if Path(csv_file).is_absolute() else Path(path) / csv_file
        if not f.is_file():
            raise ImageDataError(f"No label file at {f}.")
        df = pd.read_csv(f, sep=delimiter, dtype=str, keep_default_na=False, na_values=[""])
        return cls.from_df(df, path, fn_col, label_col, label_delim, valid_col, valid_pct, seed, folder, suff, size,
                           resize, bs, val_bs, batch_tfms, normalize, cache, num_workers, on_error, channels, device)

    @classmethod
    def from_arrays(cls, x: Any, y: Any, valid_x: Any = None, valid_y: Any = None,
                    classes: Sequence[Any] | None = None, valid_pct: float = 0.2, seed: int | None = None,
                    size: int | Sequence[int] | None = None, resize: str = "crop", bs: int = 64,
                    val_bs: int | None = None, batch_tfms: Sequence[BatchTransform] | None = None,
                    normalize: NormalizeArg = "data", device: torch.device | str | None = None) -> "ImageDataLoaders":
        """Images already in memory (e.g. MNIST): `x` uint8 0..255 or float 0..1, shaped (N, H, W),
        (N, C, H, W) or (N, H, W, C) with C = 1 or 3; `y` class indices or names (N,), or multi-hot (N, c).

        Args:
            valid_x, valid_y: the validation images; default `valid_pct` of `x` at random (`seed`).
            classes: the class names (index order); default the sorted distinct labels.
            size: resize to this size (default: the arrays' own).
            Other arguments: as `from_folder`.

        Example:
            >>> dls = ImageDataLoaders.from_arrays(x_uint8, y, valid_pct=0.2, seed=42, bs=128)
        """
        xt = torch.from_numpy(to_uint8_array(x, "x"))
        yt, vocab, multi = labels_from_array(y, classes, "y")
        if len(xt) != len(yt):
            raise ValueError(f"`x` has {len(xt)} images but `y` has {len(yt)} labels.")
        if valid_x is not None:
            if valid_y is None:
                raise ValueError("`valid_y` is required when `valid_x` is given.")
            xv = torch.from_numpy(to_uint8_array(valid_x, "valid_x"))
            if xv.shape[1:] != xt.shape[1:]:
                raise ValueError(f"`valid_x` images are {tuple(xv.shape[1:])}, `x` images {tuple(xt.shape[1:])}; "
                                 "they must have the same channels and size.")
            yv, _, _ = labels_from_array(valid_y, vocab, "valid_y")
            if len(xv) != len(yv):
                raise ValueError(f"`valid_x` has {len(xv)} images but `valid_y` has {len(yv)} labels.")
        else:
            tr, va = split_indices(len(xt), valid_pct, seed)
            tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)
            xt, xv, yt, yv = xt[tr_t], xt[va_t], yt[tr_t], yt[va_t]
        if len(xt) == 0:
            raise ValueError("No training images.")
        channels = xt.shape[1]
        hw = check_hw(size) if size is not None else (xt.shape[2], xt.shape[3])
        x_all = torch.cat([xt, xv])
        y_all = torch.cat([yt, yv])
        source = {"kind": "arrays", "x": x_all, "y": y_all, "n_train": len(xt), "seed": seed}
        x_all = resize_images(x_all, hw, resize)
        return _assemble(x_all[:len(xt)], yt, x_all[len(xt):], yv, vocab, hw, resize, channels, multi, batch_tfms,
                         normalize, bs, val_bs, device, seed, None, None, source)

    def __repr__(self) -> str:
        nv = self.valid.n if self.valid is not None else 0
        return (f"ImageDataLoaders({self.c} classes, {self.train.n} train / {nv} valid images of "
                f"{self.channels}x{self.size[0]}x{self.size[1]}, device={self.device})")


def _from_files(tr_items: list[Path], va_items: list[Path], y: torch.Tensor, vocab: list[str], multi: bool,
                size: int | Sequence[int], resize: str, channels: int, bs: int, val_bs: int | None,
                batch_tfms: Sequence[BatchTransform] | None, normalize: NormalizeArg, cache: Any,
                num_workers: int | None, on_error: str, seed: int | None,
                device: torch.device | str | None) -> ImageDataLoaders:
    hw = check_hw(size)
    if resize not in RESIZE_MODES:
        raise ValueError(f"`resize` must be one of {RESIZE_MODES}; received resize={resize!r}.")
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grey) or 3 (RGB); received channels={channels!r}.")
    check_positive("bs", bs)
    items = list(tr_items) + list(va_items)
    x, bad = decode_cached(items, hw, resize, channels, Path(cache) if cache is not None else None, num_workers)
    n_tr = len(tr_items)
    if bad:
        keep = report_failures(bad, len(items), on_error)
        keep_t = torch.tensor(keep, dtype=torch.long)
        n_tr = sum(1 for i in keep if i < len(tr_items))
        x = np.ascontiguousarray(x[keep]) if cache is None else x[keep]  # a copy: the cache keeps every file
        y, items = y[keep_t], [items[i] for i in keep]
    xt = torch.from_numpy(x)
    source = {"kind": "files", "items": items, "y": y, "n_train": n_tr, "seed": seed,
              "cache": str(cache) if cache is not None else None, "num_workers": num_workers}
    return _assemble(xt[:n_tr], y[:n_tr], xt[n_tr:], y[n_tr:], vocab, hw, resize, channels, multi, batch_tfms,
                     normalize, bs, val_bs, device, seed, items[:n_tr], items[n_tr:], source,
                     memmap=cache is not None and not bad)


def _assemble(x_tr: torch.Tensor, y_tr: torch.Tensor, x_va: torch.Tensor, y_va: torch.Tensor, vocab: Sequence[str],
              size: tuple[int, int], resize: str, channels: int, multi: bool,
              batch_tfms: Sequence[BatchTransform] | None, normalize: NormalizeArg, bs: int, val_bs: int | None,
              device: torch.device | str | None, seed: int | None, tr_items: list[Path] | None,
              va_items: list[Path] | None, source: dict[str, Any], memmap: bool = False) -> ImageDataLoaders:
    """The loaders over uint8 images already decoded to `size`."""
    check_positive("bs", bs)
    if len(vocab) < 2 and not multi:
        raise ImageDataError(f"Only one class ({', '.join(vocab)}): a classifier needs at least two.")
    if len(x_tr) == 0:
        raise ImageDataError("No training images.")
    device = torch.device(default_device() if device is None else device)
    norm = make_normalize(normalize, x_tr, channels)
    tfms = list(batch_tfms or [])
    for t in tfms:
        if not callable(t):
            raise TypeError(f"`batch_tfms` must hold batch transforms (callables); received {t!r}.")
    train_tfm = ImageBatchTransform(tfms, norm, seed)
    valid_tfm = ImageBatchTransform(None, norm)
    # a final training batch of a single image breaks batch-norm: drop only that case
    drop_last = len(x_tr) % bs == 1 and len(x_tr) > bs
    # a memory-mapped cache stays on disk (batches are copied over); a cache too big for the accelerator
    # stays in (pinned) host memory; otherwise it is copied to the device once and batches index it there
    on_device = not memmap and cache_fits_device(x_tr.numel() + x_va.numel(), device)
    where = device if on_device or not memmap else torch.device("cpu")
    kw = dict(n_inp=1, preload=on_device or memmap)
    train = ImageDataLoader(x_tr, y_tr, bs=bs, shuffle=True, drop_last=drop_last, device=where, seed=seed,
                            after_batch=train_tfm, **kw)
    valid = None
    if len(x_va):
        valid = DataLoader(x_va, y_va, bs=val_bs or 2 * bs, device=where, after_batch=valid_tfm, **kw)
    if memmap:
        for dl in (train, valid):
            if dl is not None:
                dl.device = device
    return ImageDataLoaders(train, valid, vocab, size, resize, channels, norm, multi, tfms, tr_items, va_items,
                            source)
