"""In-memory data loading: batches are made by indexing whole tensors, never item by item.

A `DataLoader` holds a tuple of tensors that share their first dimension (inputs first, then targets)
and yields tuples of slices of them. `DataLoaders` groups the train / valid / optional test loaders.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..utils import check_positive, default_device, parse_device

__all__ = ["DataLoader", "DataLoaders", "split_indices", "as_tensor"]

Batch = tuple[torch.Tensor, ...]


def as_tensor(data: Any, name: str = "data") -> torch.Tensor:
    """Convert an array-like to a tensor (float64 arrays become float32; ints stay int64)."""
    if isinstance(data, torch.Tensor):
        return data
    try:
        arr = np.asarray(data)
    except Exception as e:  # pragma: no cover - numpy gives good reasons
        raise TypeError(f"`{name}` could not be converted to an array: {e}") from None
    if arr.dtype == object:
        raise TypeError(f"`{name}` holds Python objects (dtype=object); convert it to numbers first.")
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype == torch.float64:
        t = t.float()
    elif t.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8) and name.startswith("y"):
        t = t.long()
    return t


def split_indices(n: int, valid_pct: float = 0.2, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Random train / valid split of `range(n)`; returns (train_idx, valid_idx), each sorted."""
    if not 0 < valid_pct < 1:
        raise ValueError(f"`valid_pct` must be between 0 and 1 (exclusive); received valid_pct={valid_pct!r}.")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_valid = int(round(n * valid_pct))
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])


class DataLoader:
    """Iterate over batches of in-memory tensors.

    Args:
        *tensors: tensors with the same first dimension, inputs first, then targets.
        bs: batch size.
        shuffle: draw a new random order every epoch.
        drop_last: drop the last incomplete batch.
        device: where batches are delivered. The data is moved there once, up-front, when
            `preload` is true (the default) so that each batch is one indexing operation on the device.
        n_inp: how many of the tensors are inputs to the model (default: all but the last).
        seed: seed of this loader's own random generator (default: drawn from torch's global RNG,
            so `set_seed` before training makes runs repeat).
        after_batch: optional function applied to every batch tuple (e.g. augmentation on the device).
        rank, world_size: shard the (shuffled) indices across processes for distributed training.

    Example:
        >>> dl = DataLoader(torch.randn(100, 3), torch.randn(100), bs=32, shuffle=True)
        >>> xb, yb = next(iter(dl))
    """

    def __init__(self, *tensors: torch.Tensor, bs: int = 64, shuffle: bool = False, drop_last: bool = False,
                 device: torch.device | str | None = None, n_inp: int | None = None, seed: int | None = None,
                 after_batch: Callable[[Batch], Batch] | None = None, preload: bool = True,
                 rank: int = 0, world_size: int = 1) -> None:
        if not tensors:
            raise ValueError("DataLoader needs at least one tensor.")
        tensors = tuple(as_tensor(t, name=f"tensor {i}") for i, t in enumerate(tensors))
        n = len(tensors[0])
        for i, t in enumerate(tensors):
            if len(t) != n:
                raise ValueError(f"All tensors must have the same length; tensor 0 has {n} rows, "
                                 f"tensor {i} has {len(t)}.")
        check_positive("bs", bs)
        self.device = parse_device(device) if device is not None else torch.device("cpu")
        if preload:
            tensors = tuple(t.to(self.device) for t in tensors)
        elif self.device.type == "cuda":
            tensors = tuple(t.pin_memory() for t in tensors)
        self.tensors = tensors
        self.bs, self.shuffle, self.drop_last = int(bs), shuffle, drop_last
        self.n_inp = len(tensors) - 1 if n_inp is None else n_inp
        if len(tensors) == 1 and n_inp is None:
            self.n_inp = 1
        if not 1 <= self.n_inp <= len(tensors):
            raise ValueError(f"`n_inp` must be between 1 and the number of tensors ({len(tensors)}); "
                             f"received n_inp={n_inp!r}.")
        self.seed, self.after_batch = seed, after_batch
        self.rank, self.world_size = rank, world_size
        self._gen = torch.Generator()
        if seed is not None:
            self._gen.manual_seed(seed)
        self._epoch_seed: int | None = None
        self._pos = 0  # batches delivered in the current epoch (for exact resume)
        self._resume: tuple[int, int] | None = None
        self._rows: tuple[torch.Tensor | None, int, int] | None = None  # the last batch's rows

    # ---- sizes -------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of rows this process iterates over (its shard under distributed training)."""
        n = len(self.tensors[0])
        return math.ceil(n / self.world_size) if self.world_size > 1 else n

    def __len__(self) -> int:
        return self.n // self.bs if self.drop_last else math.ceil(self.n / self.bs)

    # ---- iteration ---------------------------------------------------------------------------------
    def _order(self, epoch_seed: int) -> torch.Tensor | None:
        n = len(self.tensors[0])
        if not self.shuffle and self.world_size == 1:
            return None
        if self.shuffle:
            g = torch.Generator().manual_seed(epoch_seed)
            idx = torch.randperm(n, generator=g)
        else:
            idx = torch.arange(n)
        if self.world_size > 1:  # pad by wrapping so every rank sees the same number of rows
            total = math.ceil(n / self.world_size) * self.world_size
            idx = torch.cat([idx, idx[: total - n]])[self.rank::self.world_size]
        return idx.to(self.tensors[0].device)

    def _epoch_start(self, random: bool | None = None) -> tuple[int, int]:
        """The seed of the epoch about to start and the batch it starts at: where a checkpoint left off
        (`load_state_dict`), else a fresh seed when the epoch is random (`random`, default `shuffle`),
        else (0, 0) — a loader with nothing random leaves torch's global generator alone. Recorded in
        `_epoch_seed` for `state_dict`; every loader subclass's `__iter__` starts with it."""
        if self._resume is not None:
            epoch_seed, start = self._resume
            self._resume = None
        elif self.shuffle if random is None else random:
            gen = self._gen if self.seed is not None else None
            epoch_seed, start = int(torch.randint(0, 2**62, (1,), generator=gen)), 0
        else:
            epoch_seed, start = 0, 0
        self._epoch_seed = epoch_seed
        return epoch_seed, start

    def __iter__(self) -> Iterator[Batch]:
        epoch_seed, start = self._epoch_start()
        order = self._order(epoch_seed)
        for b in range(start, len(self)):
            self._pos = b + 1
            lo, hi = b * self.bs, min((b + 1) * self.bs, self.n)
            self._rows = (order, lo, hi)
            if order is None:
                batch = tuple(t[lo:hi] for t in self.tensors)
            else:
                idx = order[lo:hi]
                batch = tuple(t[idx] for t in self.tensors)
            if batch[0].device != self.device:
                batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
            if self.after_batch is not None:
                batch = self.after_batch(batch)
            yield batch
        self._pos = 0

    @property
    def batch_indices(self) -> torch.Tensor:
        """Row numbers (into `tensors`) of the batch last delivered, e.g. for augmentation that depends on
        which image it is (`deepfit.vision.AlternatingFlip`)."""
        if self._rows is None:
            raise RuntimeError("No batch has been delivered yet: `batch_indices` is set while iterating.")
        order, lo, hi = self._rows
        return order[lo:hi] if order is not None else torch.arange(lo, hi, device=self.tensors[0].device)

    # ---- exact resume ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Position in the current epoch and the seed of its order, plus the generator state."""
        return {"epoch_seed": self._epoch_seed, "pos": self._pos, "gen": self._gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Make the next iteration continue an interrupted epoch exactly where it stopped."""
        self._gen.set_state(state["gen"])
        if state.get("epoch_seed") is not None and state.get("pos", 0) > 0:
            self._resume = (int(state["epoch_seed"]), int(state["pos"]))

    # ---- conveniences ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def preserved_order(self) -> Iterator["DataLoader"]:
        """Iterate inside this block without changing the order of later epochs: the generator, the
        current epoch's seed and position, and a pending resume are put back afterwards."""
        saved = (self._gen.get_state(), self._epoch_seed, self._pos, self._resume)
        try:
            yield self
        finally:
            self._gen.set_state(saved[0])
            self._epoch_seed, self._pos, self._resume = saved[1], saved[2], saved[3]

    def one_batch(self) -> Batch:
        """The first batch, without disturbing the shuffling of later epochs."""
        with self.preserved_order():
            self._resume = (0, 0) if self.shuffle else None
            return next(iter(self))

    def new(self, *tensors: torch.Tensor, shuffle: bool | None = None, drop_last: bool | None = None,
            bs: int | None = None) -> "DataLoader":
        """A loader with the same settings over other tensors (default: not shuffled, keep all rows)."""
        return DataLoader(*tensors, bs=bs or self.bs, shuffle=bool(shuffle), drop_last=bool(drop_last),
                          device=self.device, n_inp=self.n_inp, after_batch=self.after_batch)

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(t.shape)) for t in self.tensors)
        return f"DataLoader({shapes}, bs={self.bs}, shuffle={self.shuffle}, device={self.device})"


class DataLoaders:
    """The train / valid / optional test loaders of one problem, with the application's decoding.

    Applications subclass it to add `show_batch`, item encoding for `predict` and export state.

    Args:
        train: loader used for training (shuffled).
        valid: loader used for validation (not shuffled), or None.
        test: optional loader of unlabelled or held-out rows.
    """

    def __init__(self, train: DataLoader, valid: DataLoader | None = None, test: DataLoader | None = None) -> None:
        self.train, self.valid, self.test = train, valid, test

    @property
    def device(self) -> torch.device:
        """Where the batches are delivered (the training loader's device)."""
        return self.train.device

    @property
    def n_inp(self) -> int:
        """How many tensors of a batch are model inputs (the rest are targets)."""
        return self.train.n_inp

    def to(self, device: torch.device | str) -> "DataLoaders":
        """Move every loader (and its data) to `device`."""
        device = parse_device(device)
        for dl in (self.train, self.valid, self.test):
            if dl is not None:
                dl.device = device
                dl.tensors = tuple(t.to(dl.device) for t in dl.tensors)
        return self

    def one_batch(self) -> Batch:
        """The first training batch."""
        return self.train.one_batch()

    def show_batch(self, n: int = 9) -> Any:
        """Show `n` decoded samples of a batch; each application provides its own way."""
        xb = self.one_batch()
        return tuple(t[:n] for t in xb)

    @classmethod
    def from_tensors(cls, x_train: Any, y_train: Any, x_valid: Any = None, y_valid: Any = None, *,
                     bs: int = 64, valid_bs: int | None = None, shuffle: bool = True, drop_last: bool = False,
                     device: torch.device | str | None = None, seed: int | None = None) -> "DataLoaders":
        """Build loaders from training and validation arrays/tensors.

        Example:
            >>> dls = DataLoaders.from_tensors(x[:800], y[:800], x[800:], y[800:], bs=64)
        """
        device = default_device() if device is None else device
        train = DataLoader(as_tensor(x_train, "x_train"), as_tensor(y_train, "y_train"), bs=bs, shuffle=shuffle,
                           drop_last=drop_last, device=device, seed=seed)
        valid = None
        if x_valid is not None:
            if y_valid is None:
                raise ValueError("`y_valid` is required when `x_valid` is given.")
            valid = DataLoader(as_tensor(x_valid, "x_valid"), as_tensor(y_valid, "y_valid"),
                               bs=valid_bs or 2 * bs, device=device)
        return cls(train, valid)

    @classmethod
    def from_arrays(cls, x: Any, y: Any, *, valid_pct: float = 0.2, seed: int | None = None, bs: int = 64,
                    device: torch.device | str | None = None) -> "DataLoaders":
        """Split one (x, y) pair randomly into train and valid loaders."""
        x, y = as_tensor(x, "x"), as_tensor(y, "y")
        tr, va = split_indices(len(x), valid_pct, seed)
        tr, va = torch.from_numpy(tr), torch.from_numpy(va)
        return cls.from_tensors(x[tr], y[tr], x[va], y[va], bs=bs, device=device, seed=seed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(train={self.train!r}, valid={self.valid!r})"
