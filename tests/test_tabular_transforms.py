"""Tabular preprocessing: Categorify / FillMissing / Normalize fitted on training rows, add_datepart,
cont_cat_split, and the clear errors on messy columns."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepfit.tabular import Categorify, FillMissing, Normalize, TabularDataError, add_datepart, cont_cat_split
from deepfit.tabular.transforms import check_frame, numeric_column


# ---- Categorify --------------------------------------------------------------------------------------------
def test_categorify_codes_missing_and_unseen():
    train = pd.DataFrame({"c": ["b", "a", None, "b", "c"]})
    cat = Categorify().setup(train, ["c"])
    assert cat.vocab("c") == ["#na#", "#unk#", "a", "b", "c"]
    assert cat.cardinality("c") == 5
    np.testing.assert_array_equal(cat.encode_column("c", train["c"]), [3, 2, 0, 3, 4])
    new = pd.Series(["c", "zzz", np.nan, "a"])
    np.testing.assert_array_equal(cat.encode_column("c", new), [4, 1, 0, 2])
    np.testing.assert_array_equal(cat.decode_column("c", [4, 1, 0]), ["c", "#unk#", "#na#"])


def test_categorify_only_uses_training_rows_and_keeps_category_order():
    s = pd.Series(pd.Categorical(["lo", "hi", "mid"], categories=["lo", "mid", "hi"], ordered=True))
    cat = Categorify().setup(pd.DataFrame({"size": s}), ["size"])
    assert cat.vocab("size") == ["#na#", "#unk#", "lo", "mid", "hi"]  # dtype order, not alphabetical
    np.testing.assert_array_equal(cat.encode_column("size", s), [2, 4, 3])


def test_categorify_matches_across_dtypes():
    # integer categories; inference column became float because of a NaN, or text from a JSON request
    cat = Categorify().setup(pd.DataFrame({"store": [3, 1, 2, 3]}), ["store"])
    assert cat.vocab("store")[2:] == [1, 2, 3]
    np.testing.assert_array_equal(cat.encode_column("store", pd.Series([3.0, np.nan, 7.0])), [4, 0, 1])
    np.testing.assert_array_equal(cat.encode_column("store", pd.Series(["2", "x", None])), [3, 1, 0])
    # text categories; inference values are numbers
    cat2 = Categorify().setup(pd.DataFrame({"zip": ["10", "20"]}), ["zip"])
    np.testing.assert_array_equal(cat2.encode_column("zip", pd.Series([20, 30])), [3, 1])
    np.testing.assert_array_equal(cat2.encode_column("zip", pd.Series([10.0, np.nan, 20.5])), [2, 0, 1])


def test_categorify_state_round_trips_through_json():
    train = pd.DataFrame({"c": ["x", "y"], "n": [5, 6], "b": [True, False]})
    cat = Categorify().setup(train, ["c", "n", "b"])
    back = Categorify.from_state(json.loads(json.dumps(cat.state())))
    new = pd.DataFrame({"c": ["y", "q"], "n": [6, 9], "b": [False, None]})
    for col in ("c", "n", "b"):
        np.testing.assert_array_equal(back.encode_column(col, new[col]), cat.encode_column(col, new[col]))
    np.testing.assert_array_equal(back.encode_column("b", new["b"]), [2, 0])


def test_categorify_all_missing_column_is_an_error():
    with pytest.raises(TabularDataError, match="'empty'"):
        Categorify().setup(pd.DataFrame({"empty": [None, None]}), ["empty"])


def test_categorify_transform_leaves_input_alone():
    df = pd.DataFrame({"c": ["a", "b"]})
    before = df.copy()
    out = Categorify().setup(df, ["c"]).transform(df)
    pd.testing.assert_frame_equal(df, before)
    assert out["c"].tolist() == [2, 3]


# ---- FillMissing ---------------------------------------------------------------------------------------------
def test_fillmissing_median_and_flag():
    train = pd.DataFrame({"x": [1.0, np.nan, 3.0, 10.0], "z": [1.0, 2.0, 3.0, 4.0]})
    fm = FillMissing().setup(train, ["x", "z"])
    assert fm.fill_values == {"x": 3.0, "z": 2.5}  # medians of [1, 3, 10] and [1, 2, 3, 4]
    assert fm.na_cols == ["x"]  # z had no gaps in training: no flag column
    out = fm.transform(pd.DataFrame({"x": [np.nan, 5.0], "z": [np.nan, 1.0]}))
    assert out["x"].tolist() == [3.0, 5.0]
    assert out["x_na"].tolist() == [True, False]
    assert out["z"].tolist() == [2.5, 1.0]  # filled, without a flag
    assert "z_na" not in out


@pytest.mark.parametrize("strategy, expected", [("mean", 3.0), ("mode", 2.0), ("constant", 0.0)])
def test_fillmissing_strategies(strategy, expected):
    train = pd.DataFrame({"x": [2.0, 2.0, 5.0, np.nan]})
    assert FillMissing(strategy).setup(train, ["x"]).fill_values["x"] == expected


def test_fillmissing_override_and_no_flag():
    fm = FillMissing(fill_vals={"x": -1.0}, add_col=False).setup(pd.DataFrame({"x": [1.0, np.nan]}), ["x"])
    assert fm.fill_values["x"] == -1.0 and fm.na_cols == []


def test_fillmissing_all_nan_is_an_error():
    with pytest.raises(TabularDataError, match="'gone'.*no values"):
        FillMissing().setup(pd.DataFrame({"gone": [np.nan, np.nan]}), ["gone"])


def test_fillmissing_bad_strategy():
    with pytest.raises(ValueError, match="fill_strategy"):
        FillMissing("median-ish")


# ---- Normalize ------------------------------------------------------------------------------------------------
def test_normalize_uses_training_stats():
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, 6.0], "k": [4.0, 4.0, 4.0, 4.0]})
    norm = Normalize().setup(train, ["x", "k"])
    assert norm.means["x"] == pytest.approx(3.0)
    assert norm.stds["x"] == pytest.approx(np.sqrt((4 + 1 + 0 + 9) / 4))
    assert norm.stds["k"] == 1.0  # constant column: no division by zero
    out = norm.transform(pd.DataFrame({"x": [3.0, 100.0], "k": [4.0, 5.0]}))
    assert out["x"].tolist() == pytest.approx([0.0, 97.0 / np.sqrt(3.5)])
    assert out["k"].tolist() == [0.0, 1.0]
    np.testing.assert_allclose(norm.decode("x", out["x"].to_numpy()), [3.0, 100.0])
    back = Normalize.from_state(json.loads(json.dumps(norm.state())))
    assert back.means == norm.means and back.stds == norm.stds


# ---- column checks -------------------------------------------------------------------------------------------
def test_text_in_numeric_column_names_column_and_value():
    s = pd.Series(["1", "2.5", "abc", None], index=[10, 11, 12, 13])
    with pytest.raises(TabularDataError, match=r"'price'.*'abc'.*row 12"):
        numeric_column(s, "price")
    np.testing.assert_array_equal(numeric_column(pd.Series(["1", " 2.5", None]), "p"), [1.0, 2.5, np.nan])


def test_numeric_column_types():
    np.testing.assert_array_equal(numeric_column(pd.Series([True, False]), "b"), [1.0, 0.0])
    np.testing.assert_array_equal(numeric_column(pd.Series([1, None], dtype="Int64"), "i"), [1.0, np.nan])
    with pytest.raises(TabularDataError, match="'d'.*add_datepart"):
        numeric_column(pd.Series(pd.to_datetime(["2020-01-01"])), "d")
    with pytest.raises(TabularDataError, match="'f'.*infinite"):
        numeric_column(pd.Series([1.0, np.inf]), "f")


def test_check_frame_errors():
    with pytest.raises(TabularDataError, match="empty"):
        check_frame(pd.DataFrame({"a": []}))
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(TabularDataError, match=r"duplicate column names \['a'\]"):
        check_frame(dup)
    with pytest.raises(TypeError, match="DataFrame"):
        check_frame([[1, 2]])


# ---- add_datepart -------------------------------------------------------------------------------------------
def test_add_datepart_known_dates():
    df = pd.DataFrame({"saledate": ["2020-02-29", "2019-12-31", None], "v": [1, 2, 3]})
    before = df.copy()
    out = add_datepart(df, "saledate")
    pd.testing.assert_frame_equal(df, before)  # the input is not modified
    assert "saledate" not in out and out["v"].tolist() == [1, 2, 3]
    r = out.iloc[0]
    assert (r.saleYear, r.saleMonth, r.saleWeek, r.saleDay, r.saleDayofweek, r.saleDayofyear) == \
        (2020, 2, 9, 29, 5, 60)  # a Saturday, ISO week 9, leap day
    assert bool(r.saleIs_month_end) and not r.saleIs_month_start and not r.saleIs_quarter_end
    assert r.saleElapsed == 1582934400  # seconds since 1970-01-01
    r = out.iloc[1]
    assert (r.saleYear, r.saleWeek, r.saleDayofweek, r.saleDayofyear) == (2019, 1, 1, 365)  # ISO week 1 of 2020
    assert r.saleIs_year_end and r.saleIs_quarter_end and r.saleIs_month_end and not r.saleIs_year_start
    r = out.iloc[2]
    assert np.isnan(r.saleYear) and np.isnan(r.saleElapsed) and not r.saleIs_month_end
    expected = ["Year", "Month", "Week", "Day", "Dayofweek", "Dayofyear", "Is_month_end", "Is_month_start",
                "Is_quarter_end", "Is_quarter_start", "Is_year_end", "Is_year_start", "Elapsed"]
    assert list(out.columns) == ["v"] + ["sale" + e for e in expected]


def test_add_datepart_options_and_errors():
    df = pd.DataFrame({"when": pd.to_datetime(["2021-01-01 13:45:10"])})
    out = add_datepart(df, "when", prefix="w_", drop=False, time=True)
    assert out["when"].iloc[0] == pd.Timestamp("2021-01-01 13:45:10")
    assert (out.w_Hour.iloc[0], out.w_Minute.iloc[0], out.w_Second.iloc[0]) == (13, 45, 10)
    assert out.w_Is_year_start.iloc[0] and out.w_Elapsed.iloc[0] == 1609508710
    with pytest.raises(TabularDataError, match="'nope'"):
        add_datepart(df, "nope")
    with pytest.raises(TabularDataError, match="'bad'.*dates"):
        add_datepart(pd.DataFrame({"bad": ["not a date", "x"]}), "bad")


# ---- cont_cat_split -----------------------------------------------------------------------------------------
def test_cont_cat_split():
    n = 30
    df = pd.DataFrame({"f": np.linspace(0, 1, n), "many": np.arange(n), "few": np.arange(n) % 3,
                       "s": ["a", "b", "c"] * 10, "b": [True, False] * 15, "y": np.arange(n) * 1.0})
    cont, cat = cont_cat_split(df, max_card=20, dep_var="y")
    assert cont == ["f", "many"] and cat == ["few", "s", "b"]
    cont, cat = cont_cat_split(df, max_card=40, dep_var=["y"])
    assert cont == ["f"] and "many" in cat
    with pytest.warns(UserWarning, match="add_datepart"):
        cont, cat = cont_cat_split(pd.DataFrame({"d": pd.to_datetime(["2020-01-01"]), "x": [1.5]}))
    assert cont == ["x"] and cat == []
