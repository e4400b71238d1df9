"""Tabular data loaders: a table encoded once into tensors, batched, and decoded back for predictions.

`TabularDataLoaders.from_df` / `from_csv` split the rows, fit a `TabularProcessor` (in `processor.py`)
on the training rows, encode the whole table once and build the train/valid loaders; the loaders also
encode new rows and do the decoding used by `predict`, `get_preds(test_df)` and exported models.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.core import DataLoader, DataLoaders, split_indices
from ..losses import CrossEntropyLoss, MSELoss
from ..utils import check_positive, default_device
from .export_checks import STATE_FIELDS, model_mismatches
from .processor import MAX_CLASSIFICATION_INTS, TabularProcessor
from .transforms import TabularDataError, check_columns, check_frame, cont_cat_split

__all__ = ["TabularProcessor", "TabularDataLoaders", "MAX_CLASSIFICATION_INTS"]


def _names(x: str | Sequence[str] | None, what: str) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    out = list(x)
    for n in out:
        if not isinstance(n, str):
            raise TypeError(f"`{what}` must hold column names (str); received {n!r}.")
    return out


class TabularDataLoaders(DataLoaders):
    """Train/valid loaders of `(x_cat, x_cont, y)` batches made from a DataFrame, with the fitted
    preprocessing for new rows.

    Build with `from_df` / `from_csv`. Attributes: `cat_names` (with the `<col>_na` flags),
    `cont_names`, `y_names`, `is_classification`, `classes`, `proc` (the `TabularProcessor`),
    `train_idx` / `valid_idx` (row positions of the split).

    Example:
        >>> dls = TabularDataLoaders.from_df(df, cat_names=["workclass", "sex"], cont_names=["age"],
        ...                                  y_names="class", valid_pct=0.2, seed=42, bs=64)
        >>> x_cat, x_cont, y = dls.one_batch()
    """

    def __init__(self, train: DataLoader, valid: DataLoader | None, proc: TabularProcessor,
                 test: DataLoader | None = None, path: str | Path = ".") -> None:
        super().__init__(train, valid, test)
        self.proc, self.path = proc, Path(path)
        self.train_idx: np.ndarray | None = None
        self.valid_idx: np.ndarray | None = None

    # ---- roles --------------------------------------------------------------------------------------------
    @property
    def cat_names(self) -> list[str]:
        return list(self.proc.cat_names)

    @property
    def cont_names(self) -> list[str]:
        return list(self.proc.cont_names)

    @property
    def y_names(self) -> list[str]:
        return list(self.proc.y_names)

    @property
    def is_classification(self) -> bool:
        return self.proc.is_classification

    @property
    def classes(self) -> list[Any]:
        return list(self.proc.classes)

    @property
    def log_y(self) -> bool:
        return self.proc.log_y

    @property
    def y_scaled(self) -> bool:
        """Whether the model sees regression targets encoded (log1p and/or standardised)."""
        return self.proc.y_scaled

    def decode_y(self, y: torch.Tensor, log: bool = True) -> torch.Tensor:
        """Regression outputs or targets of the model's space back in the target's units (see
        `TargetEncoding.decode_tensor`)."""
        return self.proc.target.decode_tensor(y, log=log)

    @property
    def n_out(self) -> int:
        """Model outputs: number of classes, or of regression targets."""
        return self.proc.n_out

    @property
    def learner_class(self) -> type:
        """The Learner subclass `load_learner` builds for these loaders (`TabularLearner`)."""
        from .learner import TabularLearner
        return TabularLearner

    @property
    def default_loss(self) -> Any:
        """Cross entropy for classification, mean squared error for regression."""
        return CrossEntropyLoss() if self.is_classification else MSELoss()

    def vocab(self, col: str) -> list[Any]:
        """Meaning of each code of categorical column `col` (`['#na#', '#unk#', *categories]`)."""
        if col not in self.cat_names:
            raise KeyError(f"{col!r} is not a categorical column; categorical columns: {self.cat_names}.")
        return self.proc.categorify.vocab(col)

    @property
    def cardinalities(self) -> list[int]:
        """Number of codes of each categorical column, in `cat_names` order."""
        return [self.proc.categorify.cardinality(n) for n in self.cat_names]

    # ---- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_df(cls, df: pd.DataFrame, cat_names: str | Sequence[str] | None = None,
                cont_names: str | Sequence[str] | None = None, y_names: str | Sequence[str] | None = None,
                y_block: str | None = None, valid_idx: Sequence[int] | np.ndarray | None = None,
                valid_pct: float = 0.2, seed: int | None = None, bs: int = 64, val_bs: int | None = None,
                procs: Sequence[Any] | None = None, log_y: bool = False, scale_y: bool = True, shuffle: bool = True,
                device: torch.device | str | None = None, path: str | Path = ".") -> "TabularDataLoaders":
        """Preprocess a DataFrame (fitted on its training rows) and build train/valid loaders.

        Args:
            df: the table (not modified).
            cat_names, cont_names: input columns. When both are None they are guessed with
                `cont_cat_split(df, 20, y_names)`.
            y_names: the target column (or several numeric targets for regression).
            y_block: "classification" or "regression"; default inferred: text/bool/categorical and
                integer targets with <= 20 values are classes, other numbers are regression.
            valid_idx: row positions (0-based, as `df.iloc`) of the validation rows; default a random
                `valid_pct` of the rows drawn with `seed`. An empty list means no validation set.
            valid_pct, seed: random split when `valid_idx` is None (seed also seeds the shuffling).
            bs, val_bs: batch sizes (validation default `2 * bs`).
            procs: preprocessing (default Categorify, FillMissing, Normalize).
            log_y: train on log1p(target) for sales- or price-like targets (>= 0; a negative value is an
                error naming the column and rows). Predictions are decoded with expm1.
            scale_y: standardise regression targets with the training rows' mean and std (default);
                `get_preds`, `predict`, the metrics and exported models give values in the target's
                own units. `proc.describe_target()` says what was done.
            shuffle: shuffle training rows each epoch.
            device: where the tensors live (default: the best available).
            path: working folder for the learner (saving, export).

        Raises:
            TabularDataError: a named column is missing, the target has missing values, a column is
                all missing in the training rows, a continuous column holds text, the frame is empty
                or has duplicate column names.
        """
        df = check_frame(df)
        ys = _names(y_names, "y_names")
        if cat_names is None and cont_names is None:
            check_columns(df, ys, "y_names")
            conts, cats = cont_cat_split(df, 20, ys)
        else:
            cats, conts = _names(cat_names, "cat_names"), _names(cont_names, "cont_names")
        check_positive("bs", bs)
        n = len(df)
        if valid_idx is None:
            if n < 2:
                raise TabularDataError(f"`df` has {n} row(s): too few to split off a validation set; pass "
                                       "valid_idx=[] to train without one.")
            train_idx, v_idx = split_indices(n, valid_pct, seed)
        else:
            v_idx = np.asarray(valid_idx, dtype=np.int64).reshape(-1)
            if len(v_idx) and (v_idx.min() < 0 or v_idx.max() >= n):
                raise TabularDataError(f"`valid_idx` holds positions outside 0..{n - 1} (min {v_idx.min()}, max "
                                       f"{v_idx.max()}); pass row positions, as used by df.iloc.")
            if len(np.unique(v_idx)) != len(v_idx):
                raise TabularDataError("`valid_idx` lists some rows twice.")
            mask = np.ones(n, dtype=bool)
            mask[v_idx] = False
            train_idx = np.flatnonzero(mask)
            v_idx = np.sort(v_idx)
        if len(train_idx) == 0:
            raise TabularDataError("Every row is in the validation set: no training rows remain.")
        proc = TabularProcessor(cats, conts, ys, procs=procs, y_block=y_block, log_y=log_y, scale_y=scale_y)
        proc.setup(df, train_idx)
        x_cat, x_cont = proc.encode_x(df)
        y = proc.encode_y(df)
        device = default_device() if device is None else device
        tr = torch.from_numpy(train_idx)
        train = DataLoader(x_cat[tr], x_cont[tr], y[tr], bs=bs, shuffle=shuffle, drop_last=shuffle and len(tr) > bs,
                           device=device, n_inp=2, seed=seed)
        valid = None
        if len(v_idx):
            va = torch.from_numpy(v_idx)
            valid = DataLoader(x_cat[va], x_cont[va], y[va], bs=val_bs or 2 * bs, device=device, n_inp=2)
        dls = cls(train, valid, proc, path=path)
        dls.train_idx, dls.valid_idx = train_idx, v_idx
        return dls

    @classmethod
    def from_csv(cls, csv: str | Path, cat_names: str | Sequence[str] | None = None,
                 cont_names: str | Sequence[str] | None = None, y_names: str | Sequence[str] | None = None,
                 y_block: str | None = None, valid_idx: Sequence[int] | np.ndarray | None = None,
                 valid_pct: float = 0.2, seed: int | None = None, bs: int = 64, val_bs: int | None = None,
                 procs: Sequence[Any] | None = None, log_y: bool = False, scale_y: bool = True,
                 shuffle: bool = True, device: torch.device | str | None = None, path: str | Path | None = None,
                 read_csv_kwargs: dict[str, Any] | None = None) -> "TabularDataLoaders":
        """`from_df` on `pd.read_csv(csv, **read_csv_kwargs)`; see `from_df` for the arguments."""
        csv = Path(csv)
        if not csv.exists():
            raise FileNotFoundError(f"No CSV file at {csv}.")
        try:
            df = pd.read_csv(csv, **(read_csv_kwargs or {}))
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
            raise TabularDataError(f"{csv} could not be read as CSV: {e}") from None
        return cls.from_df(df, cat_names=cat_names, cont_names=cont_names, y_names=y_names, y_block=y_block,
                           valid_idx=valid_idx, valid_pct=valid_pct, seed=seed, bs=bs, val_bs=val_bs, procs=procs,
                           log_y=log_y, scale_y=scale_y, shuffle=shuffle, device=device,
                           path=csv.parent if path is None else path)

    # ---- new rows ---------------------------------------------------------------------------------------
    def test_dl(self, df: pd.DataFrame, bs: int | None = None, with_labels: bool | None = None) -> DataLoader:
        """A loader over a raw DataFrame preprocessed exactly like the training rows.

        Args:
            df: rows with (at least) the input columns; not modified.
            bs: batch size (default the validation batch size).
            with_labels: include the target. None: only when every target column is present.
        """
        x_cat, x_cont = self.proc.encode_x(df, "df")
        tensors: list[torch.Tensor] = [x_cat, x_cont]
        if with_labels is None:
            with_labels = self.proc.has_target(df)
        if with_labels:
            tensors.append(self.proc.encode_y(df))
        bs = bs or (self.valid.bs if self.valid is not None else 2 * self.train.bs)
        return DataLoader(*tensors, bs=bs, shuffle=False, device=self.device, n_inp=2)

    def encode_item(self, row: dict[str, Any] | pd.Series | pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """`(x_cat, x_cont)` of one raw row (dict, Series or one-row DataFrame), each with a batch
        dimension of 1."""
        if isinstance(row, pd.DataFrame) and len(row) == 1:
            return self.proc.encode_x(row, "row")
        if isinstance(row, pd.Series):
            row = row.to_dict()
        if not isinstance(row, dict):
            raise TypeError("predict takes one row (a dict, a Series or a one-row DataFrame); received "
                            f"{type(row).__name__} "
                            "(use learn.get_preds(df) for a DataFrame).")
        return self.proc.encode_x(pd.DataFrame([row]), "row")

    def decode_pred(self, pred: torch.Tensor) -> Any:
        """The answer for one decoded model output: the class label, or the value in the target's units
        (standardisation and log1p undone; a dict per target when there are several)."""
        if self.is_classification:
            return self.classes[int(pred)]
        vals = self.proc.decode_y(np.asarray(pred.detach().cpu().double()).reshape(-1))
        if len(self.y_names) == 1:
            return float(vals[0])
        return {n: float(v) for n, v in zip(self.y_names, vals)}

    def decode_preds(self, preds: torch.Tensor, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of `df` with the predictions of `learn.get_preds` (regression values already in the
        target's units): `prediction` (the label) and `prob_<class>` columns for classification;
        `prediction` (or `prediction_<target>` for several) for regression."""
        p = preds.detach().float().cpu().numpy()
        if len(p) != len(df):
            raise ValueError(f"decode_preds got {len(p)} predictions for {len(df)} rows of `df`.")
        out = df.copy()
        if self.is_classification:
            if p.ndim != 2 or p.shape[1] != len(self.classes):
                raise ValueError(f"Expected class probabilities of shape (N, {len(self.classes)}); got {p.shape}.")
            labels = np.array(self.classes, dtype=object)[p.argmax(1)]
            out["prediction"] = labels.tolist()
            for j, c in enumerate(self.classes):
                out[f"prob_{c}"] = p[:, j]
            return out
        p = p.reshape(len(p), -1).astype(np.float64)  # get_preds gives values in the target's units
        if len(self.y_names) == 1:
            out["prediction"] = p[:, 0]
        else:
            for j, n in enumerate(self.y_names):
                out[f"prediction_{n}"] = p[:, j]
        return out

    def decode_batch(self, x_cat: torch.Tensor, x_cont: torch.Tensor, y: torch.Tensor | None = None) -> pd.DataFrame:
        """Encoded rows back to readable values (categories, un-normalised numbers, labels)."""
        data: dict[str, Any] = {}
        cat, norm = self.proc.categorify, self.proc.normalize
        xc, xn = x_cat.cpu().numpy(), x_cont.cpu().double().numpy()
        for j, n in enumerate(self.cat_names):
            data[n] = cat.decode_column(n, xc[:, j])
        for j, n in enumerate(self.cont_names):
            data[n] = norm.decode(n, xn[:, j]) if norm is not None else xn[:, j]
        if y is not None:
            yv = y.cpu().numpy()
            if self.is_classification:
                data[self.y_names[0]] = np.array(self.classes, dtype=object)[yv]
            else:
                yv = self.proc.decode_y(yv.reshape(len(yv), -1).astype(np.float64))
                for j, n in enumerate(self.y_names):
                    data[n] = yv[:, j]
        return pd.DataFrame(data)

    def show_batch(self, n: int = 10) -> pd.DataFrame:
        """The first `n` rows of a training batch, decoded (also printed)."""
        b = self.one_batch()
        res = self.decode_batch(b[0][:n], b[1][:n], b[2][:n] if len(b) > 2 else None)
        print(res.to_string())
        return res

    # ---- export -----------------------------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-able preprocessing state (and no tensors) for `learn.export`."""
        return {"proc": self.proc.state(), "bs": self.train.bs}, {}

    @classmethod
    def from_state(cls, state: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
                   ) -> "TabularDataLoaders":
        """Inference-only loaders (no rows) rebuilt from `export_state`."""
        proc = TabularProcessor.from_state(state["proc"])
        empty = (torch.zeros(0, len(proc.cat_names), dtype=torch.long), torch.zeros(0, len(proc.cont_names)))
        y = torch.zeros(0, dtype=torch.long) if proc.is_classification else torch.zeros(0)
        train = DataLoader(*empty, y, bs=int(state.get("bs", 64)), device="cpu", n_inp=2)
        return cls(train, None, proc)

    #: The JSON shape of `export_state` (checked by `load_learner` before `from_state` runs).
    STATE_FIELDS = STATE_FIELDS

    def model_mismatches(self, model: Any) -> list[str]:
        """Where these loaders' preprocessing disagrees with itself or with the sizes of `model` (empty: they
        fit); see `deepfit.tabular.export_checks`. Used by `load_learner`."""
        return model_mismatches(self, model)

    def __repr__(self) -> str:
        n_tr = len(self.train.tensors[0])
        n_va = len(self.valid.tensors[0]) if self.valid is not None else 0
        return (f"TabularDataLoaders({n_tr} train / {n_va} valid rows, cat={self.cat_names}, cont={self.cont_names}, "
                f"y={self.y_names}, {'classes ' + str(self.classes[:5]) if self.is_classification else 'regression'})")
