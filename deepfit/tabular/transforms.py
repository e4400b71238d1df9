"""Tabular preprocessing fitted on the training rows only and applied identically everywhere else.

Three processors, always applied in this order whatever order they are listed in:

* `FillMissing`: fills missing continuous values (training median by default) and, for each column
  that had missing values in the training rows, adds a boolean `<col>_na` categorical column.
* `Categorify`: maps each categorical column to integer codes shared by every split. Code 0 is
  missing (`#na#`), code 1 is reserved for categories never seen in training (`#unk#`), codes 2...
  are the training categories in sorted order (or the order of a pandas Categorical dtype).
* `Normalize`: subtracts the training mean and divides by the training standard deviation.

Every processor stores its fitted state as plain JSON-able values (`state()` / `from_state()`), so an
exported model preprocesses new rows exactly as in training without the training data.

Also here: `add_datepart` (expand a date column) and `cont_cat_split` (guess which columns are
continuous), plus the input checks that turn messy tables into clear `TabularDataError`s.
"""
from __future__ import annotations

import difflib
import math
import warnings
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import HintedError

__all__ = ["TabularDataError", "TabularProc", "Categorify", "FillMissing", "Normalize", "add_datepart",
           "cont_cat_split", "NA_TOKEN", "UNK_TOKEN", "check_frame", "check_columns", "numeric_column",
           "unusable_values", "bad_values_message", "FLOAT32_MAX"]

NA_TOKEN = "#na#"
UNK_TOKEN = "#unk#"
N_RESERVED = 2  # codes 0 (missing) and 1 (unseen category)


class TabularDataError(HintedError, ValueError):
    """A table cannot be used as given; the message names the column (or row) and the fix."""


# ---- input checks --------------------------------------------------------------------------------------
def check_frame(df: Any, what: str = "df") -> pd.DataFrame:
    """Check that `df` is a non-empty DataFrame with unique column names."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"`{what}` must be a pandas DataFrame; received {type(df).__name__}.")
    dup = df.columns[df.columns.duplicated()].unique().tolist()
    if dup:
        raise TabularDataError(f"`{what}` has duplicate column names {dup}: every column needs a unique name. "
                               "Rename or drop the duplicates (e.g. `df.loc[:, ~df.columns.duplicated()]`).")
    if len(df) == 0:
        raise TabularDataError(f"`{what}` is empty (0 rows): there is nothing to train on or predict.")
    return df


def check_columns(df: pd.DataFrame, names: Sequence[str], role: str, what: str = "df") -> None:
    """Raise a `TabularDataError` naming the first column of `names` that `df` lacks."""
    cols = [str(c) for c in df.columns]
    for n in names:
        if n not in df.columns:
            close = difflib.get_close_matches(str(n), cols, n=3)
            hint = f" Did you mean {close}?" if close else f" Available columns: {cols[:30]}."
            raise TabularDataError(f"Column {n!r} (in {role}) is not in `{what}`.{hint}")


def numeric_column(s: pd.Series, name: str, role: str = "Continuous column") -> np.ndarray:
    """The values of a continuous column as float64 (missing -> NaN), or a clear error (naming the
    column, as `role`, and the rows) for text, dates, infinities and values too large for float32."""
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt):
        out = s.to_numpy(dtype="float64", na_value=np.nan)
    elif pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt):
        raise TabularDataError(f"{role} {name!r} holds dates/times.",
                               f"Expand it into numbers with `df = add_datepart(df, {name!r})` or list it in "
                               "cat_names.",
                               cli_hint="List it with --cat instead of --cont, or leave it out.")
    elif pd.api.types.is_numeric_dtype(dt) and not isinstance(dt, pd.CategoricalDtype):
        out = s.to_numpy(dtype="float64", na_value=np.nan)
    else:
        conv = pd.to_numeric(s.astype(object) if isinstance(dt, pd.CategoricalDtype) else s, errors="coerce")
        bad = conv.isna().to_numpy() & s.notna().to_numpy()
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise TabularDataError(
                f"{role} {name!r} holds text that is not a number: {s.iloc[pos]!r} at row "
                f"{_py(s.index[pos])!r} ({int(bad.sum())} such row(s)).",
                f"Clean it (e.g. `df[{name!r}] = pd.to_numeric(df[{name!r}], errors='coerce')` turns it into missing "
                "values) or list the column in cat_names.",
                cli_hint=f"Fix those cells in the file, or read such values as missing with --na-values (e.g. "
                         f"--na-values {_cli_value(s.iloc[pos])}); when training, --cat makes it a categorical "
                         "column instead.")
        out = conv.to_numpy(dtype="float64", na_value=np.nan)
    bad = unusable_values(out)
    if bad.any():
        raise TabularDataError(bad_values_message(name, out, s.index, bad, role=role))
    return out


FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Largest finite float32 (about 3.4e38): the models compute in float32, so larger numbers are unusable."""


def unusable_values(x: np.ndarray) -> np.ndarray:
    """Mask of the values a model cannot use: infinite, or too large in magnitude for float32 (they
    would become infinite, and make the normalisation statistics overflow). NaN is a missing value,
    not flagged here."""
    with np.errstate(invalid="ignore"):
        return np.isinf(x) | (np.abs(x) > FLOAT32_MAX)


def bad_values_message(name: str, values: np.ndarray, rows: Sequence[Any], bad: np.ndarray, why: str = "",
                       role: str = "Continuous column", row_word: str = "row") -> str:
    """The error for `bad` (a mask) values of column `name`: the column, the first few `rows` labels
    (index labels of the frame, or file lines), an example value and what to do."""
    pos = np.flatnonzero(bad)
    labels = ", ".join(str(_py(rows[p])) for p in pos[:5]) + (", ..." if len(pos) > 5 else "")
    example = values[pos[0]] if len(values) > pos[0] else float("nan")
    what = "infinite or too large for 32-bit floats (|x| > 3.4e38)" if not why else f"not finite {why}"
    return (f"{role} {name!r} holds {len(pos)} value(s) that are {what}, e.g. {example:g} at "
            f"{row_word}{'s' if len(pos) > 1 else ''} {labels}; remove or clip those rows, or log-transform "
            "the column, before training or predicting.")


def _cli_value(v: Any) -> str:
    """A cell value as one might type it after a command-line option (quoted when it holds spaces or commas)."""
    text = str(v).strip()
    return repr(text) if (not text or any(c in text for c in " ,;'\"")) else text


def _py(v: Any) -> Any:
    """A numpy/pandas scalar as the plain Python value (JSON-able for str/int/float/bool)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _sorted_values(values: Iterable[Any]) -> list[Any]:
    vals = [_py(v) for v in values]
    try:
        return sorted(vals)
    except TypeError:  # mixed types: order by type name, then text
        return sorted(vals, key=lambda v: (type(v).__name__, str(v)))


def _as_text(values: pd.Series, na: np.ndarray) -> pd.Series:
    """Values as text for matching text categories (vectorised; whole floats lose their '.0', so
    10.0 matches '10'). Missing entries are handled by the caller's `na` mask."""
    if pd.api.types.is_float_dtype(values.dtype):
        x = values.to_numpy(dtype="float64", na_value=0.0)
        whole = (np.mod(x, 1) == 0) & (np.abs(x) < 2**53)
        as_int = np.where(whole, x, 0).astype(np.int64).astype(str)
        return pd.Series(np.where(whole, as_int, x.astype(str)), index=values.index)
    return values.astype(str)


def _is_text(v: Any) -> bool:
    return isinstance(v, str)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---- processors ----------------------------------------------------------------------------------------
class TabularProc:
    """Base class of the preprocessing steps: `setup` on training rows, then apply anywhere.

    `order` fixes where a step runs (FillMissing 10, Categorify 20, Normalize 30): filling first
    creates the `<col>_na` flags that Categorify then encodes.
    """

    order: int = 0

    @property
    def fitted(self) -> bool:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """JSON-able fitted state."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "TabularProc":
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call setup() on the training rows first.")


class Categorify(TabularProc):
    """Integer codes for categorical columns, fitted on training rows.

    Codes: 0 = missing (`#na#`), 1 = a category never seen in training (`#unk#`), 2.. = the training
    categories, sorted (or in the order of a pandas Categorical dtype's categories).

    Example:
        >>> cat = Categorify()
        >>> cat.setup(train_df, ["workclass", "sex"])
        >>> codes = cat.encode_column("sex", test_df["sex"])   # int64 array
        >>> cat.vocab("sex")                                   # ['#na#', '#unk#', 'Female', 'Male']
    """

    order = 20

    def __init__(self) -> None:
        self.classes: dict[str, list[Any]] = {}
        self._index: dict[str, pd.Index] = {}
        self._setup_done = False

    @property
    def fitted(self) -> bool:
        return self._setup_done

    def setup(self, df: pd.DataFrame, names: Sequence[str]) -> "Categorify":
        """Learn the categories of each column in `names` from the (training) rows of `df`."""
        self.classes, self._index = {}, {}
        for n in names:
            self.setup_column(n, df[n])
        self._setup_done = True
        return self

    def setup_column(self, name: str, s: pd.Series | np.ndarray) -> None:
        s = pd.Series(s) if not isinstance(s, pd.Series) else s
        if isinstance(s.dtype, pd.CategoricalDtype):
            classes = [_py(v) for v in s.dtype.categories]
        else:
            present = s.dropna()
            if len(present) == 0:
                raise TabularDataError(f"Categorical column {name!r} has no values in the training rows (all "
                                       "missing); drop it from cat_names.")
            classes = _sorted_values(present.unique())
        self.classes[name] = classes
        self._index[name] = pd.Index(classes, dtype=object)

    def vocab(self, name: str) -> list[Any]:
        """Every code's meaning for column `name`: `['#na#', '#unk#', *training categories]`."""
        self._check_fitted()
        if name not in self.classes:
            raise KeyError(f"Categorify knows no column {name!r}; it was fitted on {list(self.classes)}.")
        return [NA_TOKEN, UNK_TOKEN] + list(self.classes[name])

    def cardinality(self, name: str) -> int:
        """Number of codes of column `name` (training categories + the 2 reserved codes)."""
        return len(self.classes[name]) + N_RESERVED

    def encode_column(self, name: str, s: pd.Series | np.ndarray) -> np.ndarray:
        """Codes (int64) of the values of column `name`; missing -> 0, unseen -> 1."""
        self._check_fitted()
        s = pd.Series(s) if not isinstance(s, pd.Series) else s
        classes, index = self.classes[name], self._index.get(name)
        if index is None:
            index = self._index[name] = pd.Index(classes, dtype=object)
        na = s.isna().to_numpy()
        values: Any = s.astype(object) if isinstance(s.dtype, pd.CategoricalDtype) else s
        if classes and all(_is_text(c) for c in classes) and not pd.api.types.is_string_dtype(values.dtype):
            values = _as_text(values, na)
        elif classes and all(_is_number(c) for c in classes) and not pd.api.types.is_numeric_dtype(values.dtype):
            values = pd.to_numeric(values, errors="coerce")
        codes = index.get_indexer(values)
        out = codes.astype(np.int64) + N_RESERVED
        out[codes < 0] = 1
        out[na] = 0
        return out

    def decode_column(self, name: str, codes: np.ndarray) -> np.ndarray:
        """Category values (object array) of integer codes; reserved codes give `#na#` / `#unk#`."""
        voc = np.array(self.vocab(name), dtype=object)
        return voc[np.asarray(codes, dtype=np.int64)]

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of `df` with every fitted column replaced by its codes."""
        out = df.copy()
        for n in self.classes:
            out[n] = self.encode_column(n, df[n])
        return out

    def state(self) -> dict[str, Any]:
        return {"classes": {k: [_py(v) for v in c] for k, c in self.classes.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Categorify":
        c = cls()
        c.classes = {k: list(v) for k, v in state["classes"].items()}
        c._index = {k: pd.Index(v, dtype=object) for k, v in c.classes.items()}
        c._setup_done = True
        return c

    def __repr__(self) -> str:
        return f"Categorify({ {k: len(v) for k, v in self.classes.items()} })"


_FILL_STRATEGIES = ("median", "mean", "mode", "constant")


class FillMissing(TabularProc):
    """Fill missing continuous values with a statistic of the training rows.

    Args:
        fill_strategy: "median" (default), "mean", "mode" (most frequent) or "constant".
        fill_vals: per-column constants for "constant" (default 0), or overrides for any strategy.
        add_col: add a boolean `<col>_na` categorical column for each column that had missing values
            in the training rows (so the model can learn that "missing" itself means something).

    Example:
        >>> fm = FillMissing()
        >>> fm.setup(train_df, ["age"])
        >>> fm.fill_values["age"], fm.na_cols          # (37.0, ['age']) if age had gaps
    """

    order = 10

    def __init__(self, fill_strategy: str = "median", fill_vals: dict[str, float] | None = None,
                 add_col: bool = True) -> None:
        if fill_strategy not in _FILL_STRATEGIES:
            raise ValueError(f"`fill_strategy` must be one of {_FILL_STRATEGIES}; received {fill_strategy!r}.")
        self.fill_strategy, self.fill_vals, self.add_col = fill_strategy, dict(fill_vals or {}), add_col
        self.fill_values: dict[str, float] = {}
        self.na_cols: list[str] = []
        self._setup_done = False

    @property
    def fitted(self) -> bool:
        return self._setup_done

    def setup(self, df: pd.DataFrame, names: Sequence[str]) -> "FillMissing":
        """Compute the fill value of each column in `names` on the (training) rows of `df`."""
        return self.setup_arrays({n: numeric_column(df[n], n) for n in names})

    def setup_arrays(self, cols: dict[str, np.ndarray]) -> "FillMissing":
        self.fill_values, self.na_cols = {}, []
        for n, x in cols.items():
            nan = np.isnan(x)
            if nan.all():
                raise TabularDataError(f"Continuous column {n!r} has no values in the training rows (all "
                                       "missing); drop it from cont_names.")
            present = x[~nan]
            if n in self.fill_vals:
                v = float(self.fill_vals[n])
            elif self.fill_strategy == "median":
                v = float(np.median(present))
            elif self.fill_strategy == "mean":
                v = float(present.mean())
            elif self.fill_strategy == "mode":
                vals, counts = np.unique(present, return_counts=True)
                v = float(vals[np.argmax(counts)])  # ties: the smallest value
            else:
                v = 0.0
            self.fill_values[n] = v
            if self.add_col and nan.any():
                self.na_cols.append(n)
        self._setup_done = True
        return self

    @staticmethod
    def na_name(name: str) -> str:
        return f"{name}_na"

    def apply_arrays(self, cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Filled copies of the columns, and the `<col>_na` flag arrays (bool) of the fitted na columns."""
        self._check_fitted()
        flags = {self.na_name(n): np.isnan(cols[n]) for n in self.na_cols if n in cols}
        out = {}
        for n, x in cols.items():
            nan = np.isnan(x)
            out[n] = np.where(nan, self.fill_values[n], x) if nan.any() else x
        return out, flags

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of `df` with missing values filled and the `<col>_na` columns added."""
        filled, flags = self.apply_arrays({n: numeric_column(df[n], n) for n in self.fill_values})
        out = df.copy()
        for n, x in filled.items():
            out[n] = x
        for n, f in flags.items():
            out[n] = f
        return out

    def state(self) -> dict[str, Any]:
        return {"fill_strategy": self.fill_strategy, "add_col": self.add_col, "fill_values": dict(self.fill_values),
                "na_cols": list(self.na_cols)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "FillMissing":
        f = cls(state.get("fill_strategy", "median"), add_col=state.get("add_col", True))
        f.fill_values = {k: float(v) for k, v in state["fill_values"].items()}
        f.na_cols = list(state["na_cols"])
        f._setup_done = True
        return f

    def __repr__(self) -> str:
        return f"FillMissing({self.fill_strategy!r}, na_cols={self.na_cols})"


class Normalize(TabularProc):
    """Standardise continuous columns with the training mean and standard deviation (population
    std; a constant column keeps std 1 so it maps to 0 instead of dividing by zero).

    Example:
        >>> norm = Normalize().setup(train_df, ["age"])
        >>> norm.means["age"], norm.stds["age"]
    """

    order = 30

    def __init__(self) -> None:
        self.means: dict[str, float] = {}
        self.stds: dict[str, float] = {}
        self._setup_done = False

    @property
    def fitted(self) -> bool:
        return self._setup_done

    def setup(self, df: pd.DataFrame, names: Sequence[str]) -> "Normalize":
        """Compute the statistics of each column in `names` on the (training) rows of `df`."""
        return self.setup_arrays({n: numeric_column(df[n], n) for n in names})

    def setup_arrays(self, cols: dict[str, np.ndarray]) -> "Normalize":
        self.means, self.stds = {}, {}
        for n, x in cols.items():
            x = x[~np.isnan(x)]
            if len(x) == 0:
                raise TabularDataError(f"Continuous column {n!r} has no values in the training rows (all "
                                       "missing); drop it from cont_names.")
            m, s = float(x.mean()), float(x.std())
            self.means[n], self.stds[n] = m, (s if s > 0 and math.isfinite(s) else 1.0)
        self._setup_done = True
        return self

    def apply_matrix(self, x: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Normalise the columns of a float64 matrix (one column per name) in float64."""
        self._check_fitted()
        if not len(names):
            return x
        m = np.array([self.means[n] for n in names])
        s = np.array([self.stds[n] for n in names])
        return (x - m) / s

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of `df` with the fitted columns normalised."""
        out = df.copy()
        for n in self.means:
            out[n] = (numeric_column(df[n], n) - self.means[n]) / self.stds[n]
        return out

    def decode(self, name: str, x: np.ndarray) -> np.ndarray:
        """Undo the normalisation of column `name`."""
        return np.asarray(x) * self.stds[name] + self.means[name]

    def state(self) -> dict[str, Any]:
        return {"means": dict(self.means), "stds": dict(self.stds)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Normalize":
        n = cls()
        n.means = {k: float(v) for k, v in state["means"].items()}
        n.stds = {k: float(v) for k, v in state["stds"].items()}
        n._setup_done = True
        return n

    def __repr__(self) -> str:
        return f"Normalize({list(self.means)})"


PROCS: dict[str, type[TabularProc]] = {"Categorify": Categorify, "FillMissing": FillMissing, "Normalize": Normalize}


# ---- helpers on raw frames -----------------------------------------------------------------------------
_DATE_PARTS = ("Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Is_month_end", "Is_month_start",
               "Is_quarter_end", "Is_quarter_start", "Is_year_end", "Is_year_start")


def add_datepart(df: pd.DataFrame, col: str, prefix: str | None = None, drop: bool = True,
                 time: bool = False) -> pd.DataFrame:
    """Expand a date column into calendar features, returning a new DataFrame (`df` is unchanged).

    Adds `<prefix>Year, Month, Week (ISO), Day, Dayofweek (Monday=0), Dayofyear, Is_month_end,
    Is_month_start, Is_quarter_end, Is_quarter_start, Is_year_end, Is_year_start` and `Elapsed`
    (seconds since 1970-01-01), plus `Hour, Minute, Second` with `time=True`. Missing dates give NaN
    numbers (and False flags), which FillMissing then handles.

    Args:
        df: the table.
        col: the date column (datetime, or text that `pd.to_datetime` parses).
        prefix: name prefix; default `col` without a trailing "Date"/"date" (`saledate` -> `sale`).
        drop: drop the original column.
        time: add hour / minute / second too.

    Example:
        >>> df = add_datepart(df, "Date")   # Year, Month, ..., Elapsed
    """
    df = check_frame(df)
    check_columns(df, [col], "add_datepart's col")
    s = df[col]
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format": parsed per element
                s = pd.to_datetime(s)
        except (ValueError, TypeError) as e:
            raise TabularDataError(f"Column {col!r} cannot be read as dates ({e}); fix its values or pass "
                                   "`pd.to_datetime(df[col], format=...)` yourself first.") from None
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    if prefix is None:
        prefix = col[:-4] if col.endswith(("Date", "date")) else col
    na = s.isna().to_numpy()
    parts: dict[str, np.ndarray] = {}

    def num(v: Any) -> np.ndarray:
        arr = pd.Series(v).to_numpy(dtype="float64", na_value=np.nan)
        return arr if na.any() else arr.astype(np.int64)

    parts["Year"], parts["Month"] = num(s.dt.year), num(s.dt.month)
    parts["Week"] = num(s.dt.isocalendar().week)
    parts["Day"], parts["Dayofweek"], parts["Dayofyear"] = num(s.dt.day), num(s.dt.day_of_week), num(s.dt.day_of_year)
    for flag in ("is_month_end", "is_month_start", "is_quarter_end", "is_quarter_start", "is_year_end",
                 "is_year_start"):
        parts["Is_" + flag[3:]] = getattr(s.dt, flag).fillna(False).to_numpy(dtype=bool)
    if time:
        parts["Hour"], parts["Minute"], parts["Second"] = num(s.dt.hour), num(s.dt.minute), num(s.dt.second)
    parts["Elapsed"] = ((s - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)).to_numpy(
        dtype="float64", na_value=np.nan)
    if not na.any():
        parts["Elapsed"] = parts["Elapsed"].astype(np.int64)
    new = pd.DataFrame({prefix + k: v for k, v in parts.items()}, index=df.index)
    out = df.drop(columns=[col]) if drop else df.copy()
    clash = [c for c in new.columns if c in out.columns]
    if clash:
        raise TabularDataError(f"add_datepart would overwrite existing column(s) {clash}; pass another `prefix`.")
    return pd.concat([out, new], axis=1)


def cont_cat_split(df: pd.DataFrame, max_card: int = 20, dep_var: str | Sequence[str] | None = None
                   ) -> tuple[list[str], list[str]]:
    """Guess which columns are continuous and which categorical.

    Float columns are continuous; integer columns are continuous when they have more than
    `max_card` distinct values; everything else (text, booleans, pandas categoricals, small integer
    codes) is categorical. Date columns are skipped with a warning (expand them with `add_datepart`).
    The target column(s) `dep_var` are left out.

    Returns:
        `(cont_names, cat_names)`.

    Example:
        >>> cont, cat = cont_cat_split(df, max_card=20, dep_var="salary")
    """
    df = check_frame(df)
    skip = set([dep_var] if isinstance(dep_var, str) else (dep_var or []))
    cont, cat = [], []
    for c in df.columns:
        if c in skip:
            continue
        dt = df[c].dtype
        if pd.api.types.is_datetime64_any_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt):
            warnings.warn(f"cont_cat_split skips date column {c!r}; expand it with add_datepart(df, {c!r}).",
                          stacklevel=2)
        elif pd.api.types.is_float_dtype(dt):
            cont.append(c)
        elif pd.api.types.is_integer_dtype(dt) and not pd.api.types.is_bool_dtype(dt) and df[c].nunique() > max_card:
            cont.append(c)
        else:
            cat.append(c)
    return cont, cat
