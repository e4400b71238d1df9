"""Collaborative-filtering data: (user, item, rating) rows as one int64 id tensor and one float tensor.

Ids of any type (ints, strings, titles joined from another table) are mapped to contiguous indices
``0 .. n-1`` in sorted order (order of first appearance when the ids cannot be sorted). Index 0 is *not*
reserved for an unknown id: ``classes[name][k]`` is the id of index ``k`` and there are exactly
``len(classes[name])`` embedding rows. Ids never seen in training are handled by ``test_dl`` / ``predict``:
a ``ValueError`` naming the column and the offending ids by default, or, with ``unknown='fallback'``, the
index ``-1`` which the collab models turn into a fallback prediction (see `EmbeddingDotBias`).

A batch is ``(x, y)`` with ``x`` of shape ``(bs, 2)`` holding ``[user_index, item_index]`` and ``y`` the
float ratings, so each batch is one indexing operation per tensor.
"""
from __future__ import annotations

import math

from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.core import DataLoader, DataLoaders, split_indices
from ..errors import HintedError
from ..utils import check_positive, default_device

__all__ = ["CollabDataLoaders", "UnknownIdError", "build_vocab"]

Unknown = Literal["error", "fallback"]
_UNKNOWN_CHOICES = ("error", "fallback")


class UnknownIdError(HintedError, ValueError):
    """Ids that were not in the training data (a `ValueError` naming the column and the ids)."""


def _py(v: Any) -> Any:
    """A numpy scalar as the equivalent Python scalar (JSON-able), other values unchanged."""
    return v.item() if isinstance(v, np.generic) else v


def build_vocab(values: pd.Series, name: str) -> list[Any]:
    """The sorted distinct ids of a column (order of first appearance if they cannot be sorted).

    Raises:
        ValueError: the column holds missing values.
    """
    if values.isna().any():
        rows = values.index[values.isna()][:5].tolist()
        raise ValueError(f"Column {name!r} has {int(values.isna().sum())} missing id(s) (first rows: {rows}); "
                         "drop or fill them before building the DataLoaders.")
    uniq = pd.unique(values)
    try:
        uniq = sorted(uniq)
    except TypeError:  # mixed types: keep the order of appearance
        uniq = list(uniq)
    return [_py(v) for v in uniq]


def _check_unknown(unknown: str) -> None:
    if unknown not in _UNKNOWN_CHOICES:
        raise ValueError(f"`unknown` must be one of {_UNKNOWN_CHOICES}; received unknown={unknown!r}.")


class CollabDataLoaders(DataLoaders):
    """Train / valid loaders of (user, item) -> rating, with the id vocabularies to encode new rows.

    Build with `from_df` or `from_csv`. Attributes:
        user_name, item_name, rating_name: the column names.
        classes: ``{user_name: [ids in index order], item_name: [...]}`` (no reserved index).
        y_range: a suggested output range for the model: ``(min(0, r_min), r_max + 0.1 * (r_max - low))``,
            (0, 5.5) for ratings 1-5.
        rating_mean: mean training rating (the fallback prediction for unknown users and items).
        unknown: ``'error'`` (default) or ``'fallback'``: what `test_dl` / `predict` do with unseen ids.
        seen: int64 tensor (n, 2) of every (user, item) index pair rated in the data (train and valid),
            used by `CollabLearner.recommend` to skip what a user already rated.
        counts: ``{name: int64 tensor}`` number of training ratings of each user / item.
    """

    def __init__(self, train: DataLoader, valid: DataLoader | None, user_name: str, item_name: str,
                 rating_name: str, classes: dict[str, list[Any]], rating_mean: float,
                 y_range: tuple[float, float] | None = None, unknown: Unknown = "error",
                 seen: torch.Tensor | None = None, counts: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__(train, valid)
        _check_unknown(unknown)
        self.user_name, self.item_name, self.rating_name = user_name, item_name, rating_name
        self.classes = classes
        self.rating_mean, self.y_range, self.unknown = float(rating_mean), y_range, unknown
        self.seen = seen if seen is not None else torch.zeros(0, 2, dtype=torch.long)
        self.counts = counts if counts is not None else {
            user_name: torch.zeros(len(classes[user_name]), dtype=torch.long),
            item_name: torch.zeros(len(classes[item_name]), dtype=torch.long)}
        self._index = {k: pd.Index(v) for k, v in classes.items()}

    @property
    def learner_class(self) -> type:
        """The Learner `load_learner` builds on these loaders: `CollabLearner` (interpretation tools)."""
        from .learner import CollabLearner
        return CollabLearner

    # ---- sizes and vocabularies ----------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.classes[self.user_name])

    @property
    def n_items(self) -> int:
        return len(self.classes[self.item_name])

    def encode_ids(self, values: Any, name: str, unknown: Unknown | None = None) -> np.ndarray:
        """Indices of raw ids of column `name` (a scalar, list, array or Series).

        Unknown ids raise an `UnknownIdError` naming the column and up to 5 of them, unless
        `unknown` (default: the loaders' setting) is ``'fallback'``, which gives index -1.
        """
        if name not in self._index:
            raise KeyError(f"{name!r} is neither the user column {self.user_name!r} nor the item column "
                           f"{self.item_name!r}.")
        unknown = self.unknown if unknown is None else unknown
        _check_unknown(unknown)
        vals = pd.Series(np.atleast_1d(np.asarray(values, dtype=object)) if not isinstance(values, pd.Series)
                         else values)
        idx = self._index[name].get_indexer(vals)
        if (idx < 0).any():  # ids typed as text ("42") for a vocabulary of numbers, or the reverse
            miss = np.nonzero(idx < 0)[0]
            alt = self._index[name].get_indexer(pd.Series([_retype(vals.iloc[k], self.classes[name]) for k in miss],
                                                          dtype=object))
            idx[miss] = alt
        if unknown == "error" and (idx < 0).any():
            bad = pd.unique(vals[idx < 0])
            shown = ", ".join(repr(_py(v)) for v in bad[:5])
            kinds = sorted({type(_py(v)).__name__ for v in self.classes[name][:50]})
            raise UnknownIdError(
                f"Column {name!r} has {len(bad)} id(s) not seen in training: {shown}"
                f"{' ...' if len(bad) > 5 else ''}. Known ids are of type {'/'.join(kinds)} "
                f"({len(self.classes[name])} of them).",
                "Drop those rows, or predict them from the global mean and the known side's bias with "
                "test_dl(df, unknown='fallback') (or dls.unknown = 'fallback').",
                cli_hint="Drop those rows, or pass --unknown fallback to predict them from the global mean and the "
                         "known side's bias.")
        return idx.astype(np.int64)

    def _encode_df(self, df: pd.DataFrame, unknown: Unknown | None) -> torch.Tensor:
        missing = [c for c in (self.user_name, self.item_name) if c not in df.columns]
        if missing:
            raise KeyError(f"The DataFrame lacks column(s) {missing}; it has {list(df.columns)}. Collab rows "
                           f"need {self.user_name!r} and {self.item_name!r}.")
        u = self.encode_ids(df[self.user_name], self.user_name, unknown)
        i = self.encode_ids(df[self.item_name], self.item_name, unknown)
        return torch.from_numpy(np.stack([u, i], axis=1))

    # ---- inference -----------------------------------------------------------------------------------
    def test_dl(self, df: pd.DataFrame, bs: int | None = None, unknown: Unknown | None = None) -> DataLoader:
        """A loader over the rows of a raw DataFrame, encoded with the stored vocabularies.

        Rows may lack the rating column, or have it entirely empty (then batches are ``(x,)``). The
        DataFrame is not modified.

        Raises:
            UnknownIdError: ids not seen in training, unless ``unknown='fallback'`` (here or on the loaders).
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"test_dl expects a pandas DataFrame; received {type(df).__name__}.")
        x = self._encode_df(df, unknown)
        bs = bs or (self.valid.bs if self.valid is not None else 2 * self.train.bs)
        tensors: list[torch.Tensor] = [x]
        # a rating column that is entirely empty (e.g. a template to fill with predictions) counts as absent
        if self.rating_name in df.columns and not df[self.rating_name].isna().all():
            tensors.append(_ratings(df[self.rating_name], self.rating_name))
        return DataLoader(*tensors, bs=bs, device=self.device, n_inp=1)

    def decode_preds(self, preds: torch.Tensor, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of `df` with a ``prediction`` column (the predicted ratings of its rows, in order)."""
        p = preds.detach().float().cpu().reshape(-1).numpy()
        if len(p) != len(df):
            raise ValueError(f"Got {len(p)} predictions for a DataFrame of {len(df)} rows.")
        out = df.copy()
        out["prediction"] = p
        return out

    def encode_item(self, row: Any) -> tuple[torch.Tensor]:
        """Encode one ``{user_name: id, item_name: id}`` (dict or Series; short keys 'user' / 'item'
        accepted too) as the model input of shape (1, 2) used by `Learner.predict`."""
        if isinstance(row, pd.Series):
            row = row.to_dict()
        if not isinstance(row, dict):
            raise TypeError(f"predict expects a dict like {{{self.user_name!r}: ..., {self.item_name!r}: ...}}; "
                            f"received {type(row).__name__}.")
        vals = []
        for name, short in ((self.user_name, "user"), (self.item_name, "item")):
            if name in row:
                vals.append(row[name])
            elif short in row:
                vals.append(row[short])
            else:
                raise KeyError(f"The row passed to predict lacks {name!r} (or {short!r}); it has {list(row)}.")
        u = self.encode_ids([vals[0]], self.user_name)
        i = self.encode_ids([vals[1]], self.item_name)
        return (torch.tensor([[u[0], i[0]]], dtype=torch.long),)

    def decode_pred(self, pred: torch.Tensor) -> float:
        """The predicted rating of one row as a float."""
        return float(pred.reshape(-1)[0])

    def decode_x(self, x: torch.Tensor) -> pd.DataFrame:
        """Index pairs (n, 2) back to a DataFrame of raw user and item ids."""
        x = x.detach().cpu().numpy()
        users, items = self.classes[self.user_name], self.classes[self.item_name]
        return pd.DataFrame({self.user_name: [users[k] for k in x[:, 0]],
                             self.item_name: [items[k] for k in x[:, 1]]})

    def show_batch(self, n: int = 10, print_it: bool = True) -> pd.DataFrame:
        """The first `n` rows of a training batch, decoded to raw user, item and rating."""
        x, y = self.one_batch()[:2]
        out = self.decode_x(x[:n])
        out[self.rating_name] = y[:n].detach().cpu().numpy()
        if print_it:
            print(out.to_string(index=False))
        return out

    # ---- export --------------------------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """(JSON-able settings and vocabularies, tensors) to rebuild inference loaders without the data."""
        meta = {"user_name": self.user_name, "item_name": self.item_name, "rating_name": self.rating_name,
                "classes": self.classes, "rating_mean": self.rating_mean,
                "y_range": list(self.y_range) if self.y_range is not None else None, "unknown": self.unknown,
                "bs": self.train.bs}
        tensors = {"seen": self.seen.to(torch.int32), "user_counts": self.counts[self.user_name].to(torch.int32),
                   "item_counts": self.counts[self.item_name].to(torch.int32)}
        return meta, tensors

    @classmethod
    def from_state(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "CollabDataLoaders":
        """Rebuild inference-only loaders (an empty training set) from `export_state`'s output."""
        empty = DataLoader(torch.zeros(0, 2, dtype=torch.long), torch.zeros(0), bs=int(meta.get("bs", 64)),
                           device="cpu")
        un, itn = meta["user_name"], meta["item_name"]
        counts = {un: tensors["user_counts"].long(), itn: tensors["item_counts"].long()}
        yr = meta.get("y_range")
        return cls(empty, None, un, itn, meta["rating_name"], meta["classes"], meta["rating_mean"],
                   y_range=tuple(yr) if yr is not None else None, unknown=meta.get("unknown", "error"),
                   seen=tensors["seen"].long(), counts=counts)

    #: The JSON shape of `export_state` (checked by `load_learner` before `from_state` runs).
    STATE_FIELDS = {"user_name": str, "item_name": str, "rating_name": str, "classes": {}, "rating_mean": float,
                    "y_range?": [float], "unknown?": str, "bs?": int}

    def model_mismatches(self, model: Any) -> list[str]:
        """Where the sizes of `model` (possibly on the meta device) disagree with these loaders' vocabularies
        (empty: they fit). Used by `load_learner`."""
        out = []
        for side, name in (("n_users", self.user_name), ("n_items", self.item_name)):
            n = getattr(model, side, None)
            if n is not None and n != len(self.classes[name]):
                out.append(f"{len(self.classes[name])} {name!r} ids but the model's {side} is {n}")
            if tuple(self.counts[name].shape) != (len(self.classes[name]),):
                out.append(f"{len(self.classes[name])} {name!r} ids but {tuple(self.counts[name].shape)} rating counts")
        if not math.isfinite(self.rating_mean):
            out.append(f"the mean rating is {self.rating_mean}")
        if self.y_range is not None and not (len(self.y_range) == 2 and self.y_range[0] < self.y_range[1]):
            out.append(f"the rating range {list(self.y_range)} is not (low, high)")
        sizes = torch.tensor([len(self.classes[self.user_name]), len(self.classes[self.item_name])])
        if self.seen.ndim != 2 or self.seen.shape[1] != 2 or (len(self.seen) and bool(
                ((self.seen < 0) | (self.seen >= sizes)).any())):
            out.append(f"the rated (user, item) pairs (a {tuple(self.seen.shape)} tensor) are not index pairs of "
                       "the vocabularies")
        return out

    # ---- construction --------------------------------------------------------------------------------
    @classmethod
    def from_df(cls, df: pd.DataFrame, user_name: str | None = None, item_name: str | None = None,
                rating_name: str | None = None, valid_pct: float = 0.2, seed: int | None = None, bs: int = 64,
                valid_bs: int | None = None, valid_idx: Sequence[int] | np.ndarray | None = None,
                device: torch.device | str | None = None, unknown: Unknown = "error") -> "CollabDataLoaders":
        """Build loaders from a ratings DataFrame (not modified).

        Args:
            df: one row per rating.
            user_name, item_name, rating_name: columns (default: the first, second and third).
            valid_pct: fraction of rows drawn at random for validation (`seed` makes it repeat);
                the split is `deepfit.data.split_indices(len(df), valid_pct, seed)`.
            seed: seed of the split and of the training shuffle.
            bs: training batch size; `valid_bs` defaults to 2 * bs.
            valid_idx: explicit row positions for validation (overrides `valid_pct`).
            device: where batches live (default: the best available).
            unknown: ``'error'`` or ``'fallback'`` for unseen ids at inference (see the module doc).

        Example:
            >>> dls = CollabDataLoaders.from_df(ratings, item_name="title", bs=64, seed=42)
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"from_df expects a pandas DataFrame; received {type(df).__name__}.")
        if df.shape[1] < 3 and None in (user_name, item_name, rating_name):
            raise ValueError(f"The DataFrame has {df.shape[1]} column(s); name the user, item and rating columns.")
        cols = list(df.columns)
        user_name = cols[0] if user_name is None else user_name
        item_name = cols[1] if item_name is None else item_name
        rating_name = cols[2] if rating_name is None else rating_name
        for arg, c in (("user_name", user_name), ("item_name", item_name), ("rating_name", rating_name)):
            if c not in df.columns:
                raise KeyError(f"`{arg}`={c!r} is not a column of the DataFrame; columns are {cols}.")
        if len({user_name, item_name, rating_name}) < 3:
            raise ValueError(f"user, item and rating must be three different columns; received "
                             f"{user_name!r}, {item_name!r}, {rating_name!r}.")
        check_positive("bs", bs)
        _check_unknown(unknown)
        if len(df) < 2:
            raise ValueError(f"Need at least 2 ratings to split into train and valid; the DataFrame has {len(df)}.")
        classes = {user_name: build_vocab(df[user_name], user_name), item_name: build_vocab(df[item_name], item_name)}
        u = pd.Index(classes[user_name]).get_indexer(df[user_name])
        i = pd.Index(classes[item_name]).get_indexer(df[item_name])
        x = torch.from_numpy(np.stack([u, i], axis=1).astype(np.int64))
        y = _ratings(df[rating_name], rating_name)
        if valid_idx is None:
            tr, va = split_indices(len(df), valid_pct, seed)
        else:
            va = np.unique(np.asarray(valid_idx, dtype=np.int64))
            if len(va) and (va.min() < 0 or va.max() >= len(df)):
                raise ValueError(f"`valid_idx` must hold row positions in [0, {len(df)}); "
                                 f"received values from {va.min()} to {va.max()}.")
            mask = np.ones(len(df), dtype=bool)
            mask[va] = False
            tr = np.nonzero(mask)[0]
        tr_t, va_t = torch.from_numpy(tr), torch.from_numpy(va)
        if len(tr_t) == 0:
            raise ValueError("The split left no training rows; lower `valid_pct`.")
        device = default_device() if device is None else device
        # a final training batch of a single row breaks batch-norm (EmbeddingNN): drop only that case
        drop_last = len(tr_t) % bs == 1 and len(tr_t) > bs
        train = DataLoader(x[tr_t], y[tr_t], bs=bs, shuffle=True, drop_last=drop_last, device=device, seed=seed,
                           n_inp=1)
        valid = DataLoader(x[va_t], y[va_t], bs=valid_bs or 2 * bs, device=device, n_inp=1) if len(va_t) else None
        yt = y[tr_t]
        lo, hi = min(0.0, float(yt.min())), float(yt.max())
        y_range = (lo, hi + 0.1 * (hi - lo)) if hi > lo else None
        xt = x[tr_t]
        counts = {user_name: torch.bincount(xt[:, 0], minlength=len(classes[user_name])),
                  item_name: torch.bincount(xt[:, 1], minlength=len(classes[item_name]))}
        return cls(train, valid, user_name, item_name, rating_name, classes, float(yt.double().mean()),
                   y_range=y_range, unknown=unknown, seen=x, counts=counts)

    @classmethod
    def from_csv(cls, csv: str | Path, user_name: str | None = None, item_name: str | None = None,
                 rating_name: str | None = None, delimiter: str = ",", header: int | Literal["infer"] | None = "infer",
                 names: Sequence[str] | None = None, encoding: str | None = None, valid_pct: float = 0.2,
                 seed: int | None = None, bs: int = 64, valid_bs: int | None = None,
                 device: torch.device | str | None = None, unknown: Unknown = "error") -> "CollabDataLoaders":
        """Read a ratings file with pandas (`delimiter`, `header`, `names`, `encoding` are passed to
        `pandas.read_csv`) and build loaders as `from_df` does.

        Example:
            >>> dls = CollabDataLoaders.from_csv("ml-100k/u.data", delimiter="\\t", header=None,
            ...                                  names=["user", "item", "rating", "timestamp"])
        """
        path = Path(csv)
        if not path.is_file():
            raise FileNotFoundError(f"No ratings file at {path}.")
        try:
            df = pd.read_csv(path, sep=delimiter, header=header, names=list(names) if names is not None else None,
                             encoding=encoding)
        except (UnicodeDecodeError, pd.errors.ParserError) as e:
            raise ValueError(f"Could not read {path} as a delimited file (delimiter={delimiter!r}, "
                             f"encoding={encoding!r}): {e}") from None
        return cls.from_df(df, user_name=user_name, item_name=item_name, rating_name=rating_name,
                           valid_pct=valid_pct, seed=seed, bs=bs, valid_bs=valid_bs, device=device, unknown=unknown)

    def __repr__(self) -> str:
        return (f"CollabDataLoaders({self.n_users} {self.user_name}s, {self.n_items} {self.item_name}s, "
                f"train={self.train.n}, valid={self.valid.n if self.valid is not None else 0})")


def _retype(v: Any, vocab: list[Any]) -> Any:
    """`v` converted to the type of the vocabulary's ids when it is the same id written differently
    (the text "42" for the int 42, or the int 42 for the text "42"); else `v` unchanged."""
    if not vocab:
        return v
    kind = vocab[0]
    try:
        if isinstance(kind, (int, np.integer)) and not isinstance(kind, bool) and isinstance(v, str):
            return int(v.strip())
        if isinstance(kind, str) and isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return str(v)
    except ValueError:
        pass
    return v


def _ratings(col: pd.Series, name: str) -> torch.Tensor:
    try:
        vals = pd.to_numeric(col, errors="raise").to_numpy(dtype=np.float32)
    except (ValueError, TypeError):
        raise ValueError(f"Rating column {name!r} must be numeric; it holds e.g. {col.iloc[0]!r}.") from None
    if np.isnan(vals).any():
        rows = col.index[np.isnan(vals)][:5].tolist()
        raise ValueError(f"Rating column {name!r} has missing values (first rows: {rows}).")
    return torch.from_numpy(vals)
