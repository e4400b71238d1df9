"""Tabular data: fit the preprocessing on the training rows, encode the whole table once into tensors.

`TabularProcessor` holds the column roles, the fitted processors and the target's encoding, and turns
any raw DataFrame into `(x_cat int64 (N, n_cat), x_cont float32 (N, n_cont)[, y])` with vectorised
pandas/numpy code. `TabularDataLoaders` builds the train/valid loaders from it and does the decoding
used by `predict`, `get_preds(test_df)` and exported models.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..data.core import DataLoader, DataLoaders, split_indices
from ..losses import CrossEntropyLoss, MSELoss
from ..utils import check_positive, default_device
from .target import TargetEncoding
from .export_checks import STATE_FIELDS, model_mismatches
from .transforms import (PROCS, Categorify, FillMissing, Normalize, TabularDataError, TabularProc, _is_number,
                         _is_text, _py, _sorted_values, bad_values_message, check_columns, check_frame, cont_cat_split,
                         numeric_column)

__all__ = ["TabularProcessor", "TabularDataLoaders", "MAX_CLASSIFICATION_INTS"]

MAX_CLASSIFICATION_INTS = 20
"""An integer target with at most this many distinct values is treated as classification."""

_Y_BLOCKS = {"classification": True, "category": True, "regression": False}


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


def _make_procs(procs: Sequence[Any] | None) -> list[TabularProc]:
    procs = [Categorify, FillMissing, Normalize] if procs is None else list(procs)
    out: list[TabularProc] = []
    for p in procs:
        if isinstance(p, type) and issubclass(p, TabularProc):
            out.append(p())
        elif isinstance(p, TabularProc):
            out.append(copy.deepcopy(p))
        else:
            raise TypeError(f"`procs` entries must be Categorify, FillMissing or Normalize (class or instance); "
                            f"received {p!r}.")
    kinds = [type(p) for p in out]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"`procs` lists a processor twice: {[k.__name__ for k in kinds]}.")
    return sorted(out, key=lambda p: p.order)


def _is_classification_target(s: pd.Series) -> bool:
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt) or isinstance(dt, pd.CategoricalDtype):
        return True
    if pd.api.types.is_float_dtype(dt):
        return False
    if pd.api.types.is_integer_dtype(dt):
        return s.nunique() <= MAX_CLASSIFICATION_INTS
    return True  # text / objects


class TabularProcessor:
    """Column roles + fitted preprocessing + target encoding, reusable on any raw DataFrame.

    Args:
        cat_names: categorical input columns.
        cont_names: continuous input columns.
        y_names: target column(s) (several only for regression).
        procs: preprocessing steps (default `[Categorify, FillMissing, Normalize]`; they always run
            in the order FillMissing, Categorify, Normalize). Categorify is added when there are
            categorical columns and it is missing.
        y_block: "classification" (or "category") / "regression"; default inferred from the target.
        log_y: train on `log1p(y)` (sales- or price-like targets >= 0); predictions are decoded with `expm1`.
        scale_y: standardise regression targets (after `log1p` with `log_y`) with the mean and standard
            deviation of the training rows, so that the model learns values near 0 whatever the units
            (house prices in dollars); predictions are decoded back into the target's units.
    """

    def __init__(self, cat_names: Sequence[str], cont_names: Sequence[str], y_names: Sequence[str],
                 procs: Sequence[Any] | None = None, y_block: str | None = None, log_y: bool = False,
                 scale_y: bool = True) -> None:
        self.raw_cat_names, self.raw_cont_names = list(cat_names), list(cont_names)
        self.y_names = list(y_names)
        self.procs = _make_procs(procs)
        if self.raw_cat_names and not any(isinstance(p, Categorify) for p in self.procs):
            self.procs = sorted(self.procs + [Categorify()], key=lambda p: p.order)
        if y_block is not None and y_block not in _Y_BLOCKS:
            raise ValueError(f"`y_block` must be one of {sorted(_Y_BLOCKS)} or None; received {y_block!r}.")
        self.y_block, self.log_y, self.scale_y = y_block, bool(log_y), bool(scale_y)
        # regression targets: log1p and/or standardisation, fitted in `setup` (unused for classification)
        self.target = TargetEncoding(self.y_names, log="log1p" if self.log_y else None, scale=self.scale_y)
        self.is_classification = False
        self.classes: list[Any] = []
        self.cat_names: list[str] = list(cat_names)
        self.cont_names: list[str] = list(cont_names)
        self.fitted = False

    # ---- processors by kind -------------------------------------------------------------------------
    def _proc(self, kind: type) -> Any:
        return next((p for p in self.procs if isinstance(p, kind)), None)

    @property
    def categorify(self) -> Categorify | None:
        return self._proc(Categorify)

    @property
    def fill_missing(self) -> FillMissing | None:
        return self._proc(FillMissing)

    @property
    def normalize(self) -> Normalize | None:
        return self._proc(Normalize)

    # ---- checks ---------------------------------------------------------------------------------------
    def check_roles(self, df: pd.DataFrame) -> None:
        """Check that the named columns exist and that no column plays two roles."""
        check_columns(df, self.raw_cat_names, "cat_names")
        check_columns(df, self.raw_cont_names, "cont_names")
        check_columns(df, self.y_names, "y_names")
        seen: dict[str, str] = {}
        for role, names in (("cat_names", self.raw_cat_names), ("cont_names", self.raw_cont_names),
                            ("y_names", self.y_names)):
            for n in names:
                if n in seen:
                    raise TabularDataError(f"Column {n!r} is listed in both {seen[n]} and {role}; give each "
                                           "column one role.")
                seen[n] = role
        if not self.raw_cat_names and not self.raw_cont_names:
            raise TabularDataError("No input columns: pass cat_names and/or cont_names.")
        if not self.y_names:
            raise TabularDataError("No target: pass `y_names` (the column to predict).")

    def _check_target(self, df: pd.DataFrame) -> None:
        for n in self.y_names:
            na = df[n].isna().to_numpy()
            if na.any():
                rows = [_py(r) for r in df.index[na][:5]]
                raise TabularDataError(f"Target column {n!r} has {int(na.sum())} missing value(s) (rows {rows}...); "
                                       f"drop those rows first, e.g. `df = df.dropna(subset=[{n!r}])`.")

    # ---- fitting ----------------------------------------------------------------------------------------
    def setup(self, df: pd.DataFrame, train_idx: np.ndarray, labelled_idx: np.ndarray | None = None
              ) -> "TabularProcessor":
        """Fit every processor on the rows `train_idx` (positions) of `df`, and the target's encoding
        (class list from the rows `labelled_idx`, default all)."""
        self.check_roles(df)
        self._check_target(df)
        train = df.iloc[train_idx]
        # checked on every row (so an error names all the bad rows, not only the training ones)
        cont = {n: numeric_column(df[n], n)[train_idx] for n in self.raw_cont_names}
        fm, cat, norm = self.fill_missing, self.categorify, self.normalize
        if fm is not None:
            fm.setup_arrays(cont)
            cont, flags = fm.apply_arrays(cont)
        else:
            flags = {}
            for n, x in cont.items():
                if np.isnan(x).all():
                    raise TabularDataError(f"Continuous column {n!r} has no values in the training rows (all "
                                           "missing); drop it from cont_names.")
                if np.isnan(x).any():
                    raise TabularDataError(f"Continuous column {n!r} has missing values; add FillMissing to "
                                           "`procs` or fill them yourself.")
        if flags and cat is None:
            self.procs = sorted(self.procs + [Categorify()], key=lambda p: p.order)
            cat = self.categorify
        self.cat_names = self.raw_cat_names + list(flags)
        self.cont_names = list(self.raw_cont_names)
        if cat is not None:
            cat.setup(train, self.raw_cat_names)
            for n, f in flags.items():
                cat.setup_column(n, pd.Series([False, True]))
        if norm is not None:
            norm.setup_arrays(cont)
        self._setup_target(df if labelled_idx is None else df.iloc[labelled_idx])
        if not self.is_classification:
            self.target.setup(train)
        self.fitted = True
        return self

    def _setup_target(self, df: pd.DataFrame) -> None:
        if self.y_block is not None:
            self.is_classification = _Y_BLOCKS[self.y_block]
        else:
            self.is_classification = _is_classification_target(df[self.y_names[0]])
        if self.is_classification:
            if len(self.y_names) != 1:
                raise TabularDataError(f"Classification takes one target column; received y_names={self.y_names}. "
                                       "Pass y_block='regression' for several numeric targets.")
            if self.log_y:
                raise TabularDataError("`log_y` is for regression targets; this target is classified.")
            n = self.y_names[0]
            self.classes = _sorted_values(df[n].dropna().unique())
            if len(self.classes) < 2:
                raise TabularDataError(f"Target column {n!r} has a single value ({self.classes}); there is nothing "
                                       "to classify.")
        else:
            self.classes = []
            self.target.values(df)  # fails clearly on text, infinities, values too large, negatives with log_y

    # ---- encoding ---------------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError("The tabular preprocessing is not fitted yet (call setup on training rows).")

    def encode_x(self, df: pd.DataFrame, what: str = "df") -> tuple[torch.Tensor, torch.Tensor]:
        """`(x_cat int64 (N, n_cat), x_cont float32 (N, n_cont))` of a raw DataFrame."""
        self._require_fitted()
        check_frame(df, what)
        check_columns(df, self.raw_cat_names, "cat_names", what)
        check_columns(df, self.raw_cont_names, "cont_names", what)
        n_rows = len(df)
        cont = {n: numeric_column(df[n], n) for n in self.raw_cont_names}
        fm = self.fill_missing
        if fm is not None:
            cont, flags = fm.apply_arrays(cont)
        else:
            flags = {}
            for n, x in cont.items():
                if np.isnan(x).any():
                    raise TabularDataError(f"Continuous column {n!r} has missing values and no FillMissing was "
                                           "fitted; fill them before predicting.")
        x_cat = np.empty((n_rows, len(self.cat_names)), dtype=np.int64)
        cat = self.categorify
        for j, n in enumerate(self.cat_names):
            x_cat[:, j] = cat.encode_column(n, df[n] if n in self.raw_cat_names else flags[n])
        x_cont = np.empty((n_rows, len(self.cont_names)), dtype=np.float64)
        for j, n in enumerate(self.cont_names):
            x_cont[:, j] = cont[n]
        if self.normalize is not None:
            x_cont = self.normalize.apply_matrix(x_cont, self.cont_names)
        with np.errstate(over="ignore"):
            x32 = x_cont.astype(np.float32)
        bad = ~np.isfinite(x32)
        if bad.any():  # e.g. a value far outside the training range that overflows once normalised
            j = int(np.flatnonzero(bad.any(0))[0])
            raise TabularDataError(bad_values_message(self.cont_names[j], cont[self.cont_names[j]],
                                                      df.index, bad[:, j], "once normalised"))
        return torch.from_numpy(x_cat), torch.from_numpy(x32)

    def has_target(self, df: pd.DataFrame) -> bool:
        return all(n in df.columns for n in self.y_names)

    def encode_y(self, df: pd.DataFrame) -> torch.Tensor:
        """The target tensor: class indices (int64, (N,)) or values (float32, (N,) or (N, k))."""
        self._require_fitted()
        check_columns(df, self.y_names, "y_names")
        self._check_target(df)
        if self.is_classification:
            n = self.y_names[0]
            s = df[n]
            values: Any = s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s
            if all(_is_text(c) for c in self.classes) and not pd.api.types.is_string_dtype(values.dtype):
                values = values.astype(str)
            elif all(_is_number(c) for c in self.classes) and not pd.api.types.is_numeric_dtype(values.dtype):
                values = pd.to_numeric(values, errors="coerce")
            codes = pd.Index(self.classes, dtype=object).get_indexer(values)
            if (codes < 0).any():
                bad = s[codes < 0].unique()[:5].tolist()
                raise TabularDataError(f"Target column {n!r} holds label(s) {bad} that the model does not know "
                                       f"(known: {self.classes[:20]}).")
            return torch.from_numpy(codes.astype(np.int64))
        y = self.target.encode(self.target.values(df))
        y = y if len(self.y_names) > 1 else y[:, 0]
        return torch.from_numpy(y.astype(np.float32))

    def decode_y(self, y: np.ndarray) -> np.ndarray:
        """Regression outputs (N, n_targets), or one row (n_targets,), in the target's units
        (standardisation and log1p undone; see `TargetEncoding`)."""
        return self.target.decode(y)

    @property
    def y_scaled(self) -> bool:
        """Whether regression targets are encoded (log and/or standardised) for the model."""
        return not self.is_classification and self.target.active

    def describe_target(self) -> str:
        """What is done to the target before training, in words (for reports)."""
        if self.is_classification:
            return f"classes {self.classes[:10]}{'...' if len(self.classes) > 10 else ''}"
        return self.target.describe()

    @property
    def n_out(self) -> int:
        return len(self.classes) if self.is_classification else len(self.y_names)

    # ---- state ------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able state: roles, processors and target encoding."""
        self._require_fitted()
        return {"raw_cat_names": self.raw_cat_names, "raw_cont_names": self.raw_cont_names,
                "cat_names": self.cat_names, "cont_names": self.cont_names, "y_names": self.y_names,
                "y_block": self.y_block, "log_y": self.log_y, "is_classification": self.is_classification,
                **self.target.state(),
                "classes": [_py(c) for c in self.classes],
                "procs": [{"name": type(p).__name__, "state": p.state()} for p in self.procs]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TabularProcessor":
        procs = [PROCS[p["name"]].from_state(p["state"]) for p in state["procs"]]
        self = cls(state["raw_cat_names"], state["raw_cont_names"], state["y_names"], procs=[],
                   y_block=state.get("y_block"), log_y=state.get("log_y", False),
                   scale_y=bool(state.get("scale_y", False)))
        self.target = TargetEncoding.from_state(self.y_names, state)
        self.procs = sorted(procs, key=lambda p: p.order)
        self.cat_names, self.cont_names = list(state["cat_names"]), list(state["cont_names"])
        self.is_classification, self.classes = bool(state["is_classification"]), list(state["classes"])
        self.fitted = True
        return self

    def __repr__(self) -> str:
        kind = f"classification {self.classes[:5]}" if self.is_classification else "regression"
        return (f"TabularProcessor(cat={self.cat_names}, cont={self.cont_names}, y={self.y_names} ({kind}), "
                f"procs={[type(p).__name__ for p in self.procs]})")


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
