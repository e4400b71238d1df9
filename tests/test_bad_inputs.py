"""Bad input, end to end: every case ends with a clear `deepfit: error: ...` message and exit status 2 (130
when interrupted), no traceback, the input files untouched (bytes and modification time), the user's
DataFrames unchanged, and no partial output that looks finished."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfit.cli import main
from deepfit.cli.base import COMPLETE_MARKER, INCOMPLETE_SUFFIX, STATUS_FILE, is_complete
from conftest import torch_threads
from helpers import PYTHON_SYNTAX

FAST = ("--epochs", "1", "--lr-find-iters", "0", "--bs", "32", "-q")

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- data and helpers -----------------------------------------------------------------------------------
def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(0, 1, n).round(3)
    return pd.DataFrame({"color": color, "size": size, "weight": rng.uniform(0, 5, n).round(2),
                         "label": np.where(size + (color == "red") > 0.5, "big", "small")})


def _ratings(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user": rng.integers(0, 20, n), "item": rng.integers(0, 15, n) + 100,
                         "rating": rng.integers(1, 6, n)})


@pytest.fixture
def tab_csv(tmp_path: Path) -> Path:
    p = tmp_path / "table.csv"
    _table().to_csv(p, index=False)
    return p


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    p = tmp_path / "ratings.csv"
    _ratings().to_csv(p, index=False)
    return p


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """One trained tabular and one collab model (trained once for the module)."""
    d = tmp_path_factory.mktemp("models")
    _table().to_csv(d / "t.csv", index=False)
    _ratings().to_csv(d / "r.csv", index=False)
    with torch_threads(1):
        assert main(["train", "tabular", str(d / "t.csv"), "--target", "label", "--out", str(d / "tab"), *FAST]) == 0
        assert main(["train", "collab", str(d / "r.csv"), "--out", str(d / "cf"), "--n-factors", "4", *FAST]) == 0
    return {"tabular": d / "tab" / "model.safetensors", "collab": d / "cf" / "model.safetensors"}


def _snapshot(paths) -> dict[Path, tuple[bytes, int]]:
    return {Path(p): (Path(p).read_bytes(), Path(p).stat().st_mtime_ns) for p in paths if Path(p).is_file()}


def expect_error(capsys, argv, inputs=(), match: str = "", code: int = 2, out: Path | None = None) -> str:
    """Run the command; check the exit status, the one-line message, no traceback, untouched inputs and
    that `out` (if given) was not produced."""
    before = _snapshot(inputs)
    got = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    python = PYTHON_SYNTAX.findall(err)
    assert not python, f"Python syntax {python} shown to a command-line user: {err}"
    if code == 2:
        assert "deepfit: error: " in err
        line = next(ln for ln in err.splitlines() if ln.startswith("deepfit: error: "))
        assert match.lower() in line.lower(), line
    else:
        assert match.lower() in err.lower(), err
    assert _snapshot(inputs) == before, "an input file was modified"
    if out is not None:
        assert not Path(out).exists() or not is_complete(out)
    return err


# ---- command line usage (1-8) ------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, match", [
    (["fly"], "invalid choice: 'fly'"),
    (["train", "audio", "x.csv"], "invalid choice: 'audio'"),
    (["train", "tabular", "{csv}"], "the following arguments are required: --target"),
    (["train", "tabular", "{csv}", "--target", "label", "--epochs", "0"], "argument --epochs: must be > 0"),
    (["train", "tabular", "{csv}", "--target", "label", "--epochs", "two"], "expected a whole number, got 'two'"),
    (["train", "tabular", "{csv}", "--target", "label", "--lr", "fast"], "positive number (e.g. 1e-3) or 'auto'"),
    (["train", "tabular", "{csv}", "--target", "label", "--valid-pct", "1.5"], "between 0 and 1"),
    (["train", "tabular", "{csv}", "--target", "label", "--layers", "200,abc"], "comma-separated whole numbers"),
    (["train", "tabular", "{csv}", "--target", "label", "--bs", "-4"], "argument --bs: must be > 0"),
    (["train", "collab", "{csv}", "--y-range", "5,1"], "LOW must be below HIGH"),
    (["train", "tabular", "{csv}", "--target", "label", "--delimiter", "::"], "expected one character"),
    (["train", "tabular", "{csv}", "--target", "label", "--encoding", "klingon"], "unknown --encoding 'klingon'"),
    (["train", "tabular", "{csv}", "--target", "label", "--wd", "nan"], "argument --wd: must be a finite number >= 0"),
    (["train", "tabular", "{csv}", "--target", "label", "--wd", "inf"], "argument --wd: must be a finite number >= 0"),
    (["train", "tabular", "{csv}", "--target", "label", "--wd", "-0.1"], "argument --wd: must be a finite number >= 0"),
    (["train", "collab", "{csv}", "--wd", "NaN"], "argument --wd: must be a finite number >= 0"),
    (["train", "tabular", "{csv}", "--target", "label", "--lr-find-iters", "3"],
     "argument --lr-find-iters: the learning-rate sweep needs at least 10 batches to suggest a rate (or 0"),
    (["lr-find", "tabular", "{csv}", "--target", "label", "--num-it", "1"],
     "argument --num-it: the learning-rate sweep needs at least 10 batches to suggest a rate, got 1"),
])
def test_usage_errors(capsys, tmp_path, tab_csv, argv, match):
    argv = [a.replace("{csv}", str(tab_csv)) for a in argv]
    expect_error(capsys, argv + ["--out", str(tmp_path / "o")], [tab_csv], match, out=tmp_path / "o")
    assert not (tmp_path / "o").exists() and not (tmp_path / ("o" + INCOMPLETE_SUFFIX)).exists()


# ---- the file itself (13-22) ------------------------------------------------------------------------------
def test_missing_file_suggests_a_close_name(capsys, tmp_path, tab_csv):
    expect_error(capsys, ["train", "tabular", tmp_path / "tabel.csv", "--target", "label"], [tab_csv],
                 f"input file not found: {tmp_path / 'tabel.csv'}; did you mean {tab_csv}")


def test_directory_instead_of_file(capsys, tmp_path):
    expect_error(capsys, ["train", "tabular", tmp_path, "--target", "label"], [], "is a directory")


def test_empty_file(capsys, tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    expect_error(capsys, ["train", "tabular", p, "--target", "label"], [p], "is empty (0 bytes)")


def test_blank_lines_only(capsys, tmp_path):
    p = tmp_path / "blank.csv"
    p.write_text("\n\n\n")
    expect_error(capsys, ["train", "tabular", p, "--target", "label"], [p], "holds no data")


def test_header_without_rows(capsys, tmp_path):
    p = tmp_path / "hdr.csv"
    p.write_text("color,size,label\n")
    expect_error(capsys, ["train", "tabular", p, "--target", "label"], [p], "has a header (color, size, label) but no data rows")


def test_wrong_delimiter_is_named(capsys, tmp_path):
    p = tmp_path / "semi.csv"
    _table().to_csv(p, sep=";", index=False)
    expect_error(capsys, ["train", "tabular", p, "--target", "label", "--delimiter", ","], [p],
                 "looks ';'-delimited; pass --delimiter ;")


def test_wrong_encoding_suggests_latin1(capsys, tmp_path):
    p = tmp_path / "latin.csv"
    df = _table()
    df.loc[3, "color"] = "rougeâtre"
    df.to_csv(p, index=False, encoding="latin-1")
    expect_error(capsys, ["train", "tabular", p, "--target", "label"], [p], "is not valid utf-8 text (byte 0xe2")
    # and with the right encoding it trains
    assert main(["train", "tabular", str(p), "--target", "label", "--encoding", "latin-1", "--out",
                 str(tmp_path / "ok"), *FAST]) == 0
    assert is_complete(tmp_path / "ok")


def test_binary_file(capsys, tmp_path):
    p = tmp_path / "model.csv"
    p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    expect_error(capsys, ["train", "tabular", p, "--target", "label"], [p], "looks like a binary file")


def test_ragged_rows_name_the_line(capsys, tmp_path):
    p = tmp_path / "ragged.csv"
    p.write_text("a,b,label\n1,2,x\n3,4,y\n5,6,7,8\n")
    expect_error(capsys, ["train", "tabular", p, "--target", "label", "--delimiter", ","], [p], "line 4")


def test_no_header_without_names(capsys, tmp_path, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--no-header"], [tab_csv],
                 "--no-header needs --names")


def test_names_must_cover_every_field(capsys, tmp_path):
    p = tmp_path / "u.data"
    _ratings().assign(ts=7).to_csv(p, sep="\t", header=False, index=False)
    expect_error(capsys, ["train", "collab", p, "--no-header", "--names", "user,item,rating"], [p],
                 "has 4 fields per line (delimiter tab) but --names gives 3")


def test_headerless_file_read_with_header_gets_a_hint(capsys, tmp_path):
    p = tmp_path / "u.data"
    _ratings().to_csv(p, sep="\t", header=False, index=False)
    expect_error(capsys, ["train", "collab", p, "--user", "user"], [p], "looks like data, not a header")


# ---- columns (23-30) --------------------------------------------------------------------------------------
def test_misspelled_target_suggests_closest(capsys, tmp_path, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "lable", "--out", tmp_path / "o"], [tab_csv],
                 "column 'lable' (--target) not found in table.csv; did you mean 'label'?", out=tmp_path / "o")
    assert not (tmp_path / "o").exists() and not (tmp_path / ("o" + INCOMPLETE_SUFFIX)).exists()


def test_missing_column_lists_the_columns(capsys, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "price"], [tab_csv],
                 "column 'price' (--target) not found in table.csv. Columns: color, size, weight, label")


def test_misspelled_cat_column(capsys, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--cat", "colour"], [tab_csv],
                 "column 'colour' (--cat) not found in table.csv; did you mean 'color'?")


def test_wrong_case_cont_column(capsys, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--cont", "Size"], [tab_csv],
                 "did you mean 'size'?")


def test_target_used_as_input(capsys, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--cat", "label,color"], [tab_csv],
                 "the target 'label' is also listed in --cat")


def test_column_in_cat_and_cont(capsys, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--cat", "color,size", "--cont", "size"],
                 [tab_csv], "size are listed in both --cat and --cont")


def test_nan_target_names_the_lines(capsys, tmp_path):
    p = tmp_path / "nan.csv"
    df = _table()
    df.loc[[4, 9], "label"] = np.nan
    df.to_csv(p, index=False)
    expect_error(capsys, ["train", "tabular", p, "--target", "label"], [p],
                 "the target column 'label' of nan.csv has 2 missing value(s) (file lines 6, 11)")


def test_text_in_continuous_column(capsys, tmp_path):
    p = tmp_path / "text.csv"
    df = _table().astype({"size": object})
    df.loc[7, "size"] = "n/a?"
    df.to_csv(p, index=False)
    expect_error(capsys, ["train", "tabular", p, "--target", "label", "--cat", "color", "--cont", "size"], [p],
                 "holds text that is not a number: 'n/a?'")


@pytest.mark.parametrize("bad", ["1e300", "-1e300", "inf", "5e38"])
def test_values_beyond_float32_name_the_column_and_file_lines(capsys, tmp_path, bad):
    df = _table(60)
    df["size"] = df["size"].astype(object)
    df.loc[[3, 10], "size"] = bad
    p = tmp_path / "huge.csv"
    df.to_csv(p, index=False)
    err = expect_error(capsys, ["train", "tabular", p, "--target", "label", "--out", tmp_path / "o", *FAST], [p],
                       "huge.csv: continuous column 'size' holds 2 value(s) that are infinite or too large for 32-bit "
                       "floats", out=tmp_path / "o")
    assert "file lines 5, 12" in err and "clip" in err
    # a regression target too
    err = expect_error(capsys, ["train", "tabular", p, "--target", "size", "--out", tmp_path / "o", *FAST], [p],
                       "target column 'size'", out=tmp_path / "o")
    assert "file lines 5, 12" in err


def test_predict_refuses_values_beyond_float32(capsys, tmp_path, models):
    df = _table(20, seed=3).drop(columns=["label"])
    df["size"] = df["size"].astype(object)
    df.loc[6, "size"] = "1e300"
    p = tmp_path / "new.csv"
    df.to_csv(p, index=False)
    out = tmp_path / "preds.csv"
    err = expect_error(capsys, ["predict", models["tabular"], p, "--out", out], [p, models["tabular"]],
                       "continuous column 'size'")
    assert "file line 8" in err and not out.exists()


@pytest.mark.parametrize("app", ["tabular", "collab"])
def test_predict_never_writes_nan_predictions(capsys, tmp_path, models, monkeypatch, app):
    import torch
    import deepfit.export
    real = deepfit.export.load_learner

    def poisoned(*a, **kw):  # a model whose outputs are NaN for every row
        learn = real(*a, **kw)
        with torch.no_grad():
            for prm in learn.model.parameters():
                prm.fill_(float("nan"))
        return learn
    monkeypatch.setattr(deepfit.export, "load_learner", poisoned)
    df = (_table(10, seed=4).drop(columns=["label"]) if app == "tabular"
          else _ratings(10).drop(columns=["rating"]))
    p = tmp_path / "new.csv"
    df.to_csv(p, index=False)
    out = tmp_path / "preds.csv"
    err = expect_error(capsys, ["predict", models[app], p, "--out", out], [p, models[app]],
                       "gives no usable prediction")
    assert "10 row(s)" in err and "file lines 2, 3, 4, 5, 6, ..." in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_log_y_with_negative_target_names_column_row_and_flag(capsys, tmp_path):
    df = _table(60)
    p = tmp_path / "neg.csv"
    df.to_csv(p, index=False)
    err = expect_error(capsys, ["train", "tabular", p, "--target", "size", "--log-y", "--out", tmp_path / "o", *FAST],
                       [p], "the target column 'size' of neg.csv has", out=tmp_path / "o")
    first = int(np.flatnonzero(df["size"].to_numpy() < 0)[0])
    assert "negative value(s)" in err and f"file lines {first + 2}, " in err and "--log-y" in err
    assert "log_y" not in err.replace("--log-y", "")


def test_single_class_target(capsys, tmp_path):
    p = tmp_path / "one.csv"
    _table().assign(label="big").to_csv(p, index=False)
    expect_error(capsys, ["train", "tabular", p, "--target", "label"], [p], "single value")


def test_collab_misspelled_user_column(capsys, ratings_csv):
    expect_error(capsys, ["train", "collab", ratings_csv, "--user", "usr"], [ratings_csv],
                 "column 'usr' (--user) not found in ratings.csv; did you mean 'user'?")


def test_collab_nan_rating(capsys, tmp_path):
    p = tmp_path / "r.csv"
    df = _ratings().astype({"rating": float})
    df.loc[2, "rating"] = np.nan
    df.to_csv(p, index=False)
    expect_error(capsys, ["train", "collab", p], [p], "the rating column 'rating' of r.csv has 1 missing value(s) (file lines 4)")


def test_collab_text_rating(capsys, tmp_path):
    p = tmp_path / "r.csv"
    df = _ratings().astype({"rating": object})
    df.loc[5, "rating"] = "five"
    df.to_csv(p, index=False)
    expect_error(capsys, ["train", "collab", p], [p], "must hold numbers; line 7 has 'five'")


def test_collab_too_few_columns(capsys, tmp_path):
    p = tmp_path / "two.csv"
    _ratings()[["user", "item"]].to_csv(p, index=False)
    expect_error(capsys, ["train", "collab", p], [p], "collab needs a user, an item and a rating column")


def test_too_few_rows_for_a_split(capsys, tmp_path):
    p = tmp_path / "tiny.csv"
    _table().head(1).to_csv(p, index=False)
    expect_error(capsys, ["train", "tabular", p, "--target", "label", "--cat", "color"], [p], "tiny.csv has only 1 rows: too few to hold out 20% for validation")


# ---- output locations (38-43) -----------------------------------------------------------------------------
def test_output_is_an_existing_file(capsys, tmp_path, tab_csv):
    f = tmp_path / "taken"
    f.write_text("mine")
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", f], [tab_csv, f],
                 "exists and is a file")


def test_output_under_a_file_is_not_writable(capsys, tmp_path, tab_csv):
    f = tmp_path / "afile"
    f.write_text("x")
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", f / "run"], [tab_csv, f],
                 "is a file, not a directory")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a read-only /proc")
def test_output_on_a_read_only_filesystem(capsys, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", "/proc/deepfit-run", *FAST],
                 [tab_csv], "cannot write output directory /proc/deepfit-run")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_output_in_a_read_only_directory(capsys, tmp_path, tab_csv):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", ro / "run"], [tab_csv],
                     "is not writable")
    finally:
        ro.chmod(0o700)


def test_existing_run_is_not_overwritten(capsys, tmp_path, tab_csv):
    out = tmp_path / "run"
    assert main(["train", "tabular", str(tab_csv), "--target", "label", "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    before = _snapshot(out.iterdir())
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", out, *FAST], [tab_csv],
                 "already exists and is not empty; choose another --out or pass --overwrite")
    assert _snapshot(out.iterdir()) == before


def test_overwrite_refuses_a_directory_that_is_not_a_run(capsys, tmp_path, tab_csv):
    d = tmp_path / "photos"
    d.mkdir()
    (d / "holiday.jpg").write_bytes(b"\xff\xd8")
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", d, "--overwrite", *FAST],
                 [tab_csv, d / "holiday.jpg"], "only replaces finished deepfit runs")


# ---- interrupted and failed runs (44-46) ---------------------------------------------------------------------
def test_interrupted_run_is_marked_incomplete(capsys, tmp_path, tab_csv, monkeypatch):
    from deepfit.callbacks.logger import CSVLogger
    original = CSVLogger.after_epoch

    def interrupt(self):
        original(self)
        raise KeyboardInterrupt  # Ctrl-C right after the first epoch was logged
    monkeypatch.setattr(CSVLogger, "after_epoch", interrupt)
    out = tmp_path / "run"
    err = expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", out, "--epochs", "3",
                                "--lr-find-iters", "0", "-q"], [tab_csv], "deepfit: interrupted: the run did not finish",
                       code=130, out=out)
    work = tmp_path / ("run" + INCOMPLETE_SUFFIX)
    assert str(work) in err
    assert not out.exists() and work.is_dir()
    assert (work / STATUS_FILE).read_text().startswith("interrupted")
    assert not (work / COMPLETE_MARKER).exists() and not (work / "report.html").exists()
    assert len(pd.read_csv(work / "metrics.csv")) == 1  # what was done is kept, clearly unfinished
    # running again (not interrupted) replaces the abandoned attempt with a finished run
    monkeypatch.setattr(CSVLogger, "after_epoch", original)
    assert main(["train", "tabular", str(tab_csv), "--target", "label", "--out", str(out), *FAST]) == 0
    assert is_complete(out) and not work.exists()


def test_diverging_training_is_a_clear_error(capsys, tmp_path, tab_csv, monkeypatch):
    from deepfit import Learner
    from deepfit.callbacks.training import NonFiniteLossError

    def diverge(self, *a, **k):
        raise NonFiniteLossError("The training loss became nan at epoch 0, batch 3. Lower the learning rate")
    monkeypatch.setattr(Learner, "fit_one_cycle", diverge)
    out = tmp_path / "run"
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", out, *FAST], [tab_csv],
                 "the training loss became nan", out=out)
    work = tmp_path / ("run" + INCOMPLETE_SUFFIX)
    assert (work / STATUS_FILE).read_text().startswith("failed") and not out.exists()


def test_resume_without_an_interrupted_run(capsys, tmp_path, tab_csv):
    expect_error(capsys, ["train", "tabular", tab_csv, "--target", "label", "--out", tmp_path / "run", "--resume"],
                 [tab_csv], "--resume: there is no interrupted run")


# ---- predict and info (47-58) -------------------------------------------------------------------------------
def test_predict_missing_model(capsys, tmp_path, tab_csv):
    expect_error(capsys, ["predict", tmp_path / "model.safetensors", tab_csv], [tab_csv],
                 "model file not found")


def test_predict_with_a_csv_as_model(capsys, tmp_path, tab_csv):
    expect_error(capsys, ["predict", tab_csv, tab_csv, "--out", tmp_path / "p.csv"], [tab_csv],
                 "not a safetensors file", out=None)
    assert not (tmp_path / "p.csv").exists()


def test_predict_with_a_truncated_model(capsys, tmp_path, tab_csv, models):
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(models["tabular"].read_bytes()[:500])
    expect_error(capsys, ["predict", bad, tab_csv, "--out", tmp_path / "p.csv"], [tab_csv, bad], "truncated")
    assert not (tmp_path / "p.csv").exists()


def test_info_on_a_non_model(capsys, tab_csv):
    expect_error(capsys, ["info", tab_csv], [tab_csv], "not a safetensors file")


def test_predict_tabular_model_on_the_wrong_table(capsys, tmp_path, ratings_csv, models):
    expect_error(capsys, ["predict", models["tabular"], ratings_csv, "--out", tmp_path / "p.csv"],
                 [ratings_csv, models["tabular"]], "is this the right model for this file?")
    assert not (tmp_path / "p.csv").exists()


def test_predict_collab_model_on_a_table(capsys, tmp_path, tab_csv, models):
    expect_error(capsys, ["predict", models["collab"], tab_csv, "--out", tmp_path / "p.csv"],
                 [tab_csv, models["collab"]], "column 'user' (needed by the model) not found")


def test_predict_misspelled_column_suggests(capsys, tmp_path, models):
    p = tmp_path / "new.csv"
    _table().rename(columns={"weight": "wieght"}).to_csv(p, index=False)
    expect_error(capsys, ["predict", models["tabular"], p, "--out", tmp_path / "o.csv"], [p],
                 "column 'weight' (needed by the model) not found in new.csv; did you mean 'wieght'?")


def test_predict_unseen_collab_ids(capsys, tmp_path, models):
    p = tmp_path / "pairs.csv"
    pd.DataFrame({"user": [0, 999], "item": [100, 100]}).to_csv(p, index=False)
    expect_error(capsys, ["predict", models["collab"], p, "--out", tmp_path / "o.csv"], [p],
                 "'user' has 1 id(s) not seen in training: 999")
    assert not (tmp_path / "o.csv").exists()
    # with --unknown fallback they get a prediction
    assert main(["predict", str(models["collab"]), str(p), "--out", str(tmp_path / "o.csv"), "--unknown",
                 "fallback"]) == 0
    assert pd.read_csv(tmp_path / "o.csv")["prediction"].notna().all()


def test_predict_unseen_categories_warns_and_predicts(capsys, tmp_path, models):
    p = tmp_path / "new.csv"
    df = _table().head(10).drop(columns=["label"])
    df.loc[0, "color"] = "ultraviolet"
    df.to_csv(p, index=False)
    before = _snapshot([p])
    assert main(["predict", str(models["tabular"]), str(p), "--out", str(tmp_path / "o.csv")]) == 0
    err = capsys.readouterr().err
    assert "deepfit: warning: column 'color': 1 row(s) hold values the model never saw" in err and "'ultraviolet'" in err
    assert _snapshot([p]) == before and len(pd.read_csv(tmp_path / "o.csv")) == 10


def test_predict_refuses_to_overwrite_its_input(capsys, tmp_path, models):
    p = tmp_path / "new.csv"
    _table().head(10).to_csv(p, index=False)
    expect_error(capsys, ["predict", models["tabular"], p, "--out", p], [p], "is the input file")


def test_predict_output_directory_missing(capsys, tmp_path, tab_csv, models):
    expect_error(capsys, ["predict", models["tabular"], tab_csv, "--out", tmp_path / "nowhere" / "p.csv"], [tab_csv],
                 "does not exist")


def test_predict_output_is_a_directory(capsys, tmp_path, tab_csv, models):
    expect_error(capsys, ["predict", models["tabular"], tab_csv, "--out", tmp_path], [tab_csv], "is a directory")


def test_predict_with_a_model_that_has_no_csv_pipeline(capsys, tmp_path, tab_csv):
    import torch
    from deepfit import CrossEntropyLoss, DataLoaders, Learner
    from deepfit.layers import MLP
    dls = DataLoaders.from_tensors(torch.randn(20, 3), torch.randint(0, 2, (20,)), bs=4, device="cpu")
    m = Learner(dls, MLP(3, [4], 2), loss_func=CrossEntropyLoss(), progress=False).export(tmp_path / "m.safetensors")
    expect_error(capsys, ["predict", m, tab_csv, "--out", tmp_path / "p.csv"], [tab_csv, m],
                 "cannot predict from a CSV file: it carries no data pipeline")


# ---- the applications never modify the DataFrames they are given (59-60) -------------------------------------
def test_tabular_predict_leaves_the_dataframe_unchanged(models):
    from deepfit import load_learner
    from deepfit.cli.tabular import TabularApp
    learn = load_learner(models["tabular"])
    df = _table().head(30)
    df.loc[0, "color"] = "ultraviolet"
    df.loc[1, "size"] = np.nan
    copy = df.copy(deep=True)
    out = TabularApp().predict(learn, df, argparse.Namespace(file="x.csv"))
    pd.testing.assert_frame_equal(df, copy)
    assert out is not df and len(out) == 30 and "prediction" in out.columns


def test_collab_predict_leaves_the_dataframe_unchanged(models):
    from deepfit import load_learner
    from deepfit.cli.collab import CollabApp
    learn = load_learner(models["collab"])
    df = pd.DataFrame({"user": [0, 1, 12345], "item": [100, 101, 102]})
    copy = df.copy(deep=True)
    out = CollabApp().predict(learn, df, argparse.Namespace(file="x.csv", unknown="fallback"))
    pd.testing.assert_frame_equal(df, copy)
    assert out["prediction"].notna().all() and "prediction" not in df.columns
