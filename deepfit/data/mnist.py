"""MNIST-style digit data: an IDX (gzip) reader, DataLoaders of 28x28 images and the `deepfit demo` data.

The real data this module expects is the MNIST test set (10,000 digits), as the two files
`t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz` in one folder. When they are not there,
`demo_dls` falls back to the generated digits of `deepfit.data.synthetic`.

Example:
    >>> x, y = load_mnist("../shared/data/mnist10k")       # uint8 (10000, 28, 28), int64 (10000,)
    >>> dls = mnist_dls("../shared/data/mnist10k", bs=64)  # 8000 train / 2000 valid, normalised
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..plotting import finish_figure, pyplot
from .core import DataLoader, DataLoaders
from .transforms import Normalize

__all__ = ["read_idx", "load_mnist", "find_mnist", "mnist_dls", "DigitDataLoaders", "digits_dls", "load_digits",
           "demo_dls", "IDXFormatError", "MNIST_FILES"]

#: The file names of the images and labels, for each split prefix ("t10k" or "train").
MNIST_FILES = {"images": "{prefix}-images-idx3-ubyte", "labels": "{prefix}-labels-idx1-ubyte"}

# IDX type codes (third byte of the magic number) -> numpy big-endian dtypes
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IDXFormatError(ValueError):
    """A file is not a valid IDX file (wrong magic number, truncated, or not what was expected)."""


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip-compressed when its name ends in `.gz`) into a numpy array.

    The format: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
    each dimension as a big-endian 32-bit integer, then the data in row-major order.

    Args:
        path: the file.
        expected_ndim: raise unless the file has this many dimensions (3 for images, 1 for labels).

    Raises:
        FileNotFoundError: the file does not exist.
        IDXFormatError: the file is not an IDX file, is truncated, or has the wrong number of dimensions.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise IDXFormatError(f"{path} could not be decompressed ({e}); the download may be truncated or "
                             "corrupted: fetch the file again.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IDXFormatError(f"{path} is not an IDX file: its magic number is {raw[:4].hex() or 'missing'} "
                             "(expected 0000 then a type code such as 08, then the number of dimensions).")
    code, ndim = raw[2], raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise IDXFormatError(f"{path} holds {ndim}-dimensional data; expected {expected_ndim} dimensions "
                             f"(magic number {raw[:4].hex()}). Are the images and labels files swapped?")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{path} is truncated: its header is incomplete.")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != n_bytes:
        raise IDXFormatError(f"{path} should hold {n_bytes} bytes of data for shape {shape} but holds "
                             f"{len(raw) - header}: the file is truncated or corrupted.")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def find_mnist(folder: str | os.PathLike | None, prefix: str = "t10k") -> Path | None:
    """The folder holding the MNIST IDX files: `folder` itself or its `mnist10k` / `mnist`
    sub-folder; None when none of them has both files."""
    if folder is None:
        return None
    folder = Path(folder)
    for cand in (folder, folder / "mnist10k", folder / "mnist"):
        if all(_idx_file(cand, s.format(prefix=prefix)) is not None for s in MNIST_FILES.values()):
            return cand
    return None


def load_mnist(folder: str | os.PathLike, prefix: str = "t10k") -> tuple[torch.Tensor, torch.Tensor]:
    """Read MNIST images and labels from the IDX files in `folder`.

    Args:
        folder: the folder with `{prefix}-images-idx3-ubyte.gz` and `{prefix}-labels-idx1-ubyte.gz`
            (uncompressed files without `.gz` work too).
        prefix: `"t10k"` (the 10k test set) or `"train"`.

    Returns:
        `(x, y)`: x uint8 of shape (N, 28, 28) with ink = 255, y int64 of shape (N,) in 0..9.

    Raises:
        FileNotFoundError: a file is missing (the message names it).
        IDXFormatError: a file is not a valid IDX file, or images and labels do not match.
    """
    folder = Path(folder)
    paths = {}
    for kind, stem in MNIST_FILES.items():
        stem = stem.format(prefix=prefix)
        p = _idx_file(folder, stem)
        if p is None:
            raise FileNotFoundError(f"MNIST {kind} file not found: expected {folder / (stem + '.gz')} "
                                    f"(or {stem} uncompressed). Point DEEPFIT_DATA to the data folder.")
        paths[kind] = p
    x = read_idx(paths["images"], expected_ndim=3)
    y = read_idx(paths["labels"], expected_ndim=1)
    if len(x) != len(y):
        raise IDXFormatError(f"{paths['images']} has {len(x)} images but {paths['labels']} has {len(y)} labels.")
    if x.dtype != np.uint8 or y.dtype != np.uint8:
        raise IDXFormatError(f"MNIST files must hold unsigned bytes; got images {x.dtype}, labels {y.dtype}.")
    if len(y) and y.max() > 9:
        raise IDXFormatError(f"{paths['labels']} holds label {int(y.max())}; MNIST labels are 0..9.")
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))


class DigitDataLoaders(DataLoaders):
    """DataLoaders of 28x28 grey-scale digit images: inputs are float (N, 28, 28) tensors scaled to
    [0, 1] and then normalised with `normalize` (statistics of the training split), targets int64.

    Besides the loaders it keeps what inference needs: `normalize` and the class names `vocab`.
    `encode_item` turns a raw image (uint8 0..255 array, tensor or PIL image, 28x28) into a model
    input, so `learn.predict(image)` works on raw digits.
    """

    default_loss: Any = None

    def __init__(self, train: DataLoader, valid: DataLoader | None = None, test: DataLoader | None = None,
                 normalize: Normalize | None = None, vocab: list[str] | None = None) -> None:
        super().__init__(train, valid, test)
        self.normalize = normalize
        self.vocab = vocab if vocab is not None else [str(i) for i in range(10)]
        from ..losses import CrossEntropyLoss
        self.default_loss = CrossEntropyLoss()

    @property
    def c(self) -> int:
        """Number of classes."""
        return len(self.vocab)

    def encode_item(self, item: Any) -> tuple[torch.Tensor]:
        """A raw 28x28 image (pixel values 0..255) as a batch of one model input."""
        x = torch.as_tensor(np.asarray(item))
        if x.shape[-2:] != (28, 28) or x.dim() not in (2, 3) or (x.dim() == 3 and x.shape[0] != 1):
            raise ValueError(f"A digit image must have shape (28, 28); received shape {tuple(x.shape)}.")
        x = x.reshape(1, 28, 28).float() / 255.0
        return (self.normalize(x) if self.normalize is not None else x,)

    def decode_pred(self, idx: torch.Tensor) -> str:
        return self.vocab[int(idx)]

    def decode_images(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs back to pixel values in [0, 1]."""
        x = self.normalize.decode(x) if self.normalize is not None else x
        return x.clamp(0, 1)

    def show_batch(self, n: int = 9, fname: str | os.PathLike | None = None) -> Any:
        """Plot `n` images of a training batch with their labels; returns the matplotlib figure
        (saved to `fname` when given)."""
        plt = pyplot()
        xb, yb = self.one_batch()[:2]
        n = min(n, len(xb))
        cols = int(np.ceil(np.sqrt(n)))
        rows = int(np.ceil(n / cols))
        fig, axs = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows), squeeze=False)
        imgs = self.decode_images(xb[:n].detach().float().cpu())
        for i, ax in enumerate(axs.flat):
            ax.axis("off")
            if i < n:
                ax.imshow(imgs[i].numpy(), cmap="gray_r", vmin=0, vmax=1)
                ax.set_title(self.vocab[int(yb[i])], fontsize=10)
        return finish_figure(fig, fname)

    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        tensors = {}
        if self.normalize is not None:
            tensors = {"mean": self.normalize.mean, "std": self.normalize.std}
        return {"vocab": self.vocab, "eps": self.normalize.eps if self.normalize else None}, tensors


def _dls_from_export(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> DigitDataLoaders:
    norm = Normalize(tensors["mean"], tensors["std"], meta["eps"]) if "mean" in tensors else None
    empty = DataLoader(torch.zeros(0, 28, 28), torch.zeros(0, dtype=torch.long), bs=1)
    return DigitDataLoaders(empty, None, normalize=norm, vocab=list(meta["vocab"]))


def _register() -> None:
    from ..export import register_dls
    register_dls("DigitDataLoaders", _dls_from_export, fields={"vocab": list, "eps?": float})


_register()


def digits_dls(x: torch.Tensor, y: torch.Tensor, valid_n: int = 2000, bs: int = 64, seed: int | None = 42,
               normalize: bool = True, device: torch.device | str | None = None) -> DigitDataLoaders:
    """Split uint8 images (N, 28, 28) and labels at random into train / valid loaders.

    Pixels are scaled to [0, 1]; with `normalize` the mean and standard deviation of the *training*
    split are subtracted / divided (kept in `dls.normalize` for inference).

    Args:
        x: images, uint8 0..255 (or float 0..1) of shape (N, 28, 28).
        y: labels (N,), 0..9.
        valid_n: number of images held out for validation.
        bs: training batch size (validation uses 2 * bs).
        seed: seed of the split and of the training shuffle.
        normalize: standardise inputs with training statistics.
        device: where batches live (default: CPU, where this small data is fastest to index).
    """
    x, y = torch.as_tensor(x), torch.as_tensor(y).long()
    if len(x) != len(y):
        raise ValueError(f"`x` has {len(x)} images but `y` has {len(y)} labels.")
    if not 0 < valid_n < len(x):
        raise ValueError(f"`valid_n` must be between 1 and {len(x) - 1} (the data has {len(x)} images); "
                         f"received valid_n={valid_n!r}.")
    xf = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0 if seed is None else seed))
    tr, va = perm[valid_n:], perm[:valid_n]
    x_tr, x_va = xf[tr], xf[va]
    norm = None
    if normalize:
        norm = Normalize.from_stats(x_tr)
        x_tr, x_va = norm(x_tr), norm(x_va)
    device = torch.device("cpu") if device is None else device
    train = DataLoader(x_tr, y[tr], bs=bs, shuffle=True, device=device, seed=seed)
    valid = DataLoader(x_va, y[va], bs=2 * bs, device=device)
    return DigitDataLoaders(train, valid, normalize=norm)


def mnist_dls(folder: str | os.PathLike, valid_n: int = 2000, bs: int = 64, seed: int | None = 42,
              normalize: bool = True, device: torch.device | str | None = None) -> DigitDataLoaders:
    """DataLoaders of the MNIST files in `folder` (see `load_mnist`): a random split of
    `len - valid_n` training and `valid_n` validation images (8000 / 2000 for the 10k set).

    Example:
        >>> dls = mnist_dls(Path(os.environ.get("DEEPFIT_DATA", "../shared/data")) / "mnist10k")
        >>> xb, yb = dls.one_batch()   # (64, 28, 28) float, (64,) int64
    """
    x, y = load_mnist(folder)
    return digits_dls(x, y, valid_n=valid_n, bs=bs, seed=seed, normalize=normalize, device=device)


def load_digits(data_folder: str | os.PathLike | None, n_synthetic: int = 10_000,
                seed: int = 42) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Digit images as raw tensors: MNIST when `data_folder` (or its `mnist10k` sub-folder) has the
    IDX files, else `n_synthetic` generated digits.

    Returns:
        `(x, y, description)`: x uint8 (N, 28, 28), y int64 (N,), and which data it is.
    """
    folder = find_mnist(data_folder)
    if folder is not None:
        x, y = load_mnist(folder)
        return x, y, f"MNIST test set from {folder} ({len(x)} images)"
    from .synthetic import make_digits
    x, y = make_digits(n_synthetic, seed=seed)
    where = f" (no MNIST files in {data_folder})" if data_folder is not None else ""
    return x, y, f"{len(x)} synthetic digits{where}"


def demo_dls(data_folder: str | os.PathLike | None, bs: int = 64, seed: int = 42,
             device: torch.device | str | None = None) -> tuple[DigitDataLoaders, str]:
    """The data of `deepfit demo`: real MNIST when `data_folder` (or its `mnist10k` sub-folder) has
    the IDX files, else 10,000 generated digits (`deepfit.data.synthetic.make_digits`).

    Returns:
        `(dls, description)`, the description saying which data was used and where from.
    """
    folder = find_mnist(data_folder)
    if folder is not None:
        dls = mnist_dls(folder, valid_n=2000, bs=bs, seed=seed, device=device)
        return dls, (f"MNIST test set from {folder} ({dls.train.n} training / {dls.valid.n} validation "
                     "images of 28x28 handwritten digits)")
    from .synthetic import synthetic_digits_dls
    dls = synthetic_digits_dls(n=10_000, valid_n=2000, bs=bs, seed=seed, device=device)
    where = f" (no MNIST files in {data_folder})" if data_folder is not None else ""
    return dls, (f"synthetic digits{where}: {dls.train.n} training / {dls.valid.n} validation generated 28x28 "
                 "images of the digits 0-9 with random size, position, slant, rotation and stroke")
