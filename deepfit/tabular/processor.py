"""Tabular preprocessing: column roles, processors fitted on the training rows, and the target's encoding.

`TabularProcessor` checks the column roles against a table, fits the processors (FillMissing,
Categorify, Normalize) and the target encoding (classes, or log1p / standardisation of regression
targets) on the training rows, and turns any raw DataFrame into `(x_cat int64 (N, n_cat), x_cont
float32 (N, n_cont)[, y])` with vectorised pandas/numpy code. Its JSON `state` is what exported models
store. `TabularDataLoaders` (in `data.py`) builds the loaders from it.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .target import TargetEncoding
from .transforms import (PROCS, Categorify, FillMissing, Normalize, TabularDataError, TabularProc, _is_number,
                         _is_text, _py, _sorted_values, bad_values_message, check_columns, check_frame,
                         numeric_column)

__all__ = ["TabularProcessor", "MAX_CLASSIFICATION_INTS"]

MAX_CLASSIFICATION_INTS = 20
"""An integer target with at most this many distinct values is treated as classification."""

_Y_BLOCKS = {"classification": True, "category": True, "regression": False}


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
