"""The `deepfit` command: parsing and help, train/predict/info/lr-find round trips for tabular and collab,
the demo, the run directory, exit codes, progress output, and the installed entry point."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepfit.cli import APPLICATIONS, main
from deepfit.cli.base import (COMPLETE_MARKER, INCOMPLETE_SUFFIX, STATUS_FILE, Application, CLIError, Console,
                              RunDir, check_columns, closest, is_complete, parse_lr, read_table)
from helpers import run_cli

REPO = Path(__file__).resolve().parents[1]
DEEPFIT_BIN = REPO / ".venv" / "bin" / "deepfit"


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- small data ------------------------------------------------------------------------------------------
def make_tabular_csv(path: Path, n: int = 300, seed: int = 0) -> Path:
    """label = 'big' when size + 2*(color == 'red') > 1, with a little noise; a regression target too."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue", "black"], n)
    size = rng.normal(0, 1, n).round(3)
    weight = rng.uniform(0, 10, n).round(2)
    score = size + 2.0 * (color == "red")
    label = np.where(score + rng.normal(0, 0.1, n) > 1, "big", "small")
    price = (3 * size + weight + rng.normal(0, 0.1, n)).round(3)
    pd.DataFrame({"color": color, "size": size, "weight": weight, "label": label, "price": price}).to_csv(
        path, index=False)
    return path


def make_ratings_csv(path: Path, n_users: int = 30, n_items: int = 20, n: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n_users, n)
    i = rng.integers(0, n_items, n)
    taste = rng.normal(0, 1, (n_users, 2)) @ rng.normal(0, 1, (2, n_items))
    r = np.clip(np.round(3 + taste[u, i]), 1, 5).astype(int)
    pd.DataFrame({"userId": [f"u{x}" for x in u], "movieId": i + 100, "rating": r}).to_csv(path, index=False)
    return path


FAST = ("--epochs", "1", "--lr-find-iters", "0", "--bs", "32", "-q")


@pytest.fixture
def tab_csv(tmp_path: Path) -> Path:
    return make_tabular_csv(tmp_path / "table.csv")


@pytest.fixture
def ratings_csv(tmp_path: Path) -> Path:
    return make_ratings_csv(tmp_path / "ratings.csv")


# ---- parsing and help ------------------------------------------------------------------------------------
def test_help_lists_every_command_and_application(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for word in ("demo", "train", "lr-find", "predict", "info", "examples:", "Exit status"):
        assert word in out
    code, out, _ = run_cli(capsys, "train", "--help")
    assert code == 0
    for app in APPLICATIONS:
        assert app.name in out
    code, out, _ = run_cli(capsys, "train", "tabular", "--help")
    assert code == 0
    for opt in ("--target", "--cat", "--cont", "--epochs", "--lr", "--bs", "--seed", "--out", "--valid-pct",
                "--delimiter", "--encoding", "--checkpoint-every", "--resume", "deepfit train tabular"):
        assert opt in out, opt
    code, out, _ = run_cli(capsys, "train", "collab", "--help")
    assert code == 0 and "--user" in out and "--item" in out and "--n-factors" in out


def test_no_command_is_a_usage_error(capsys):
    code, _, err = run_cli(capsys)
    assert code == 2 and "deepfit: error: choose a command" in err
    code, _, err = run_cli(capsys, "train")
    assert code == 2 and "choose an application: tabular, collab" in err


def test_version(capsys):
    from deepfit import __version__
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and __version__ in out


def test_parse_lr_and_closest():
    assert parse_lr("auto") == "auto" and parse_lr("AUTO") == "auto"
    assert parse_lr("3e-3") == pytest.approx(3e-3)
    for bad in ("0", "-1", "fast", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_lr(bad)
    assert closest("salry", ["age", "salary", "sex"]) == "salary"
    assert closest("AGE", ["age", "salary"]) == "age"
    assert closest("zzzz", ["age", "salary"]) is None
    with pytest.raises(CLIError, match=r"did you mean 'hours-per-week'"):
        check_columns(["age", "hours-per-week"], ["hours_per_week"], "--cont", "adult.csv")


def test_plugin_protocol_one_module_per_application(capsys):
    """A new application is one Application subclass in the list: train/lr-find get its sub-command."""
    from deepfit.cli import build_parser

    class Echo(Application):
        name = "echo"
        help = "a test application"

        def add_arguments(self, p):
            p.add_argument("file", type=Path)
            p.add_argument("--target", required=True)

    parser = build_parser(list(APPLICATIONS) + [Echo()])
    args = parser.parse_args(["train", "echo", "x.csv", "--target", "y", "--epochs", "2"])
    assert isinstance(args.app, Echo) and args.epochs == 2 and args.lr == Echo.default_lr
    args = parser.parse_args(["lr-find", "echo", "x.csv", "--target", "y"])
    assert isinstance(args.app, Echo) and args.num_it == 100
    # the existing applications are untouched
    args = parser.parse_args(["train", "tabular", "x.csv", "--target", "y"])
    assert args.app.name == "tabular" and args.layers == [200, 100]


# ---- reading files ---------------------------------------------------------------------------------------
def test_read_table_detects_delimiters(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]})
    for sep in (",", ";", "\t", "|"):
        p = tmp_path / f"f{ord(sep)}.txt"
        df.to_csv(p, sep=sep, index=False)
        got = read_table(p)
        pd.testing.assert_frame_equal(got, df)


def test_read_table_encoding_option(tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes("name,city\nJosé,Zürich\nAnaïs,Orléans\n".encode("latin-1"))
    with pytest.raises(CLIError, match="not valid utf-8.*--encoding latin-1"):
        read_table(p)
    df = read_table(p, encoding="latin-1")
    assert df["city"].tolist() == ["Zürich", "Orléans"]


def test_read_table_strips_a_byte_order_mark(tmp_path):
    p = tmp_path / "excel.csv"
    p.write_bytes("\ufeffage;city\n30;Lyon\n".encode("utf-8"))
    df = read_table(p)
    assert df.columns.tolist() == ["age", "city"] and df["age"].tolist() == [30]


def test_read_table_no_header_names(tmp_path):
    p = tmp_path / "u.data"
    p.write_text("1\t10\t5\n2\t11\t3\n")
    df = read_table(p, header=False, names=["user", "item", "rating"])
    assert df.columns.tolist() == ["user", "item", "rating"] and df["rating"].tolist() == [5, 3]


# ---- tabular round trip ----------------------------------------------------------------------------------
def _check_run_dir(run: Path, extra_pngs: tuple[str, ...]) -> None:
    assert run.is_dir() and is_complete(run)
    assert not run.with_name(run.name + INCOMPLETE_SUFFIX).exists()
    assert not (run / STATUS_FILE).exists()
    for f in ("model.safetensors", "metrics.csv", "loss.png", "schedule.png", "report.html", "run.json") + extra_pngs:
        assert (run / f).is_file() and (run / f).stat().st_size > 0, f
    listed = (run / COMPLETE_MARKER).read_text().splitlines()[1:]
    # COMPLETE lists every other file: it was written after all of them
    assert sorted(listed) == sorted(p.name for p in run.iterdir() if p.name != COMPLETE_MARKER)
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_tabular_train_predict_info_round_trip(capsys, tmp_path, tab_csv):
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--ignore", "price", "--out", out,
                                "--epochs", "4", "--lr", "1e-2", "--bs", "32", "--lr-find-iters", "20", "-q")
    assert code == 0, err
    assert "final:" in stdout and "accuracy" in stdout
    _check_run_dir(out, ("lr_find.png", "confusion_matrix.png", "feature_importance.png"))
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [0, 1, 2, 3]
    assert {"train_loss", "valid_loss", "accuracy"} <= set(metrics.columns)
    info = json.loads((out / "run.json").read_text())
    assert info["summary"]["final_metrics"]["accuracy"] == pytest.approx(metrics["accuracy"].iloc[-1])
    assert info["summary"]["task"] == "classification" and info["config"]["target"] == "label"
    # the model learnt the (easy) rule
    assert metrics["accuracy"].iloc[-1] > 0.8
    fi = pd.read_csv(out / "feature_importance.csv")
    assert set(fi["feature"]) == {"color", "size", "weight"}
    assert fi["feature"].iloc[-1] == "weight"  # the column that does not matter is the least important

    new = tmp_path / "new.csv"
    pd.read_csv(tab_csv).drop(columns=["label"]).head(40).to_csv(new, index=False)
    before = new.read_bytes()
    pred_out = tmp_path / "preds.csv"
    code, stdout, err = run_cli(capsys, "predict", out / "model.safetensors", new, "--out", pred_out)
    assert code == 0, err
    assert new.read_bytes() == before
    preds = pd.read_csv(pred_out)
    assert len(preds) == 40 and {"prediction", "prob_big", "prob_small"} <= set(preds.columns)
    np.testing.assert_allclose(preds["prob_big"] + preds["prob_small"], 1.0, atol=1e-5)
    assert set(preds["prediction"]) <= {"big", "small"}
    # same numbers as loading the model in Python
    from deepfit import load_learner
    learn = load_learner(out / "model.safetensors")
    df = pd.read_csv(new)
    p, _ = learn.get_preds(dl=learn.dls.test_dl(df))
    np.testing.assert_allclose(preds["prob_big"].to_numpy(), p[:, learn.dls.classes.index("big")].numpy(), atol=1e-5)
    # --only-predictions drops the input columns
    code, _, _ = run_cli(capsys, "predict", out / "model.safetensors", new, "--out", pred_out, "--only-predictions")
    assert code == 0 and pd.read_csv(pred_out).columns.tolist() == ["prediction", "prob_big", "prob_small"]

    code, stdout, _ = run_cli(capsys, "info", out / "model.safetensors")
    assert code == 0
    assert "application:" in stdout and "tabular" in stdout and "TabularModel" in stdout and "label" in stdout
    code, stdout, _ = run_cli(capsys, "info", out / "model.safetensors", "--json")
    d = json.loads(stdout)
    assert d["application"] == "tabular" and d["data"]["y_names"] == ["label"]
    assert d["training"]["final_metrics"]["accuracy"] == pytest.approx(metrics["accuracy"].iloc[-1])


def test_mixed_precision_flag_trains_under_bf16_autocast(capsys, tmp_path, tab_csv, monkeypatch):
    import torch

    import deepfit.callbacks.precision as precision
    seen: list[torch.dtype] = []
    real = torch.autocast

    def spy(device_type: str, dtype: torch.dtype | None = None, **kw):  # records every autocast the callback opens
        seen.append(dtype)
        return real(device_type, dtype=dtype, **kw)

    monkeypatch.setattr(precision.torch, "autocast", spy)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--ignore", "price", "--out", out,
                           "--epochs", "2", "--lr", "1e-2", "--bs", "32", "--lr-find-iters", "0", "-q",
                           "--mixed-precision")
    assert code == 0, err
    assert seen and set(seen) == {torch.bfloat16}  # every training batch of the run (CPU: bf16)
    info = json.loads((out / "run.json").read_text())
    assert info["summary"]["precision"].startswith("mixed (bfloat16")
    assert pd.read_csv(out / "metrics.csv")["accuracy"].iloc[-1] > 0.8  # it still learns the easy rule
    from deepfit import load_learner
    learn = load_learner(out / "model.safetensors")
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())  # weights stay float32
    n = len(seen)
    code, _, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--ignore", "price", "--out",
                           tmp_path / "run2", *FAST)
    assert code == 0, err
    assert len(seen) == n  # without the flag: no autocast


def test_tabular_regression_and_explicit_columns(capsys, tmp_path, tab_csv):
    out = tmp_path / "reg"
    code, stdout, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "price", "--cat", "color",
                                "--cont", "size", "--cont", "weight", "--task", "regression", "--out", out, *FAST)
    assert code == 0, err
    info = json.loads((out / "run.json").read_text())["summary"]
    assert info["task"] == "regression" and info["categorical"] == ["color"] and info["continuous"] == ["size", "weight"]
    assert (out / "pred_vs_actual.png").is_file() and "rmse" in pd.read_csv(out / "metrics.csv").columns


def test_lr_auto_uses_the_valley(capsys, tmp_path, tab_csv):
    from deepfit.cli.tabular import TabularApp
    from deepfit.cli.training import AUTO_LR_RANGE
    out = tmp_path / "auto"
    code, _, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--out", out, "--epochs", "1",
                           "--lr", "auto", "--lr-find-iters", "60", "--bs", "16", "-q")
    assert code == 0, err
    s = json.loads((out / "run.json").read_text())["summary"]
    lo, hi = (TabularApp.default_lr * f for f in AUTO_LR_RANGE)
    valley = s["lr_find"]["valley"]
    assert s["lr"] == pytest.approx(min(max(valley, lo), hi)) and (out / "lr_find.png").is_file()
    assert ("implausibly" in err) == (not lo <= valley <= hi)


def test_lr_auto_with_a_short_sweep_on_collab_falls_back_and_warns(capsys, tmp_path):
    # a small ratings table; the issue: a short sweep picked 6e-6 and trained a useless model silently
    csv = make_ratings_csv(tmp_path / "r.csv", n_users=40, n_items=30, n=2000, seed=1)
    out = tmp_path / "cf"
    code, stdout, err = run_cli(capsys, "train", "collab", csv, "--user", "userId", "--item", "movieId", "--target",
                                "rating", "--lr", "auto", "--lr-find-iters", "12", "--epochs", "4", "--out", out)
    assert code == 0, err
    from deepfit.cli.collab import CollabApp
    assert "deepfit: warning: --lr auto: the learning-rate sweep recorded only 12 batches" in err
    s = json.loads((out / "run.json").read_text())["summary"]
    assert s["lr"] == CollabApp.default_lr and "--lr auto" in s["warnings"][0]
    assert "--lr auto" in (out / "report.html").read_text()
    # the model beats predicting the training mean on the validation rows
    from deepfit.data.core import split_indices
    r = pd.read_csv(csv)["rating"].to_numpy(dtype=float)
    tr, va = split_indices(len(r), 0.2, 42)
    base = float(np.sqrt(((r[va] - r[tr].mean()) ** 2).mean()))
    assert s["final_metrics"]["rmse"] < 0.9 * base


def test_choose_auto_lr_clamps_an_implausible_valley(capsys):
    from types import SimpleNamespace
    from deepfit.cli.training import MIN_AUTO_SWEEP, choose_auto_lr
    con = Console(quiet=True)
    n = MIN_AUTO_SWEEP
    res = SimpleNamespace(lrs=np.geomspace(1e-7, 10, n), losses=np.linspace(2.0, 1.0, n), valley=6e-6, fallback=False)
    assert choose_auto_lr(res, 5e-3, None, con) == pytest.approx(5e-3 / 3)
    assert "implausibly low" in capsys.readouterr().err
    res.valley = 2e-3
    assert choose_auto_lr(res, 5e-3, None, con) == 2e-3 and "warning" not in capsys.readouterr().err
    res.losses = np.full(n, 1.0)  # flat: nothing learned during the sweep
    assert choose_auto_lr(res, 5e-3, None, con) == 5e-3 and "flat" in capsys.readouterr().err
    res.losses, res.valley = np.linspace(2.0, 1.0, n), float("nan")
    assert choose_auto_lr(res, 5e-3, None, con) == 5e-3 and "no valley" in capsys.readouterr().err


# ---- targets with large values ------------------------------------------------------------------------
def make_houses_csv(path: Path, n: int = 600, seed: int = 0) -> Path:
    """price = 50,000 + 300 * sqft + noise (1e5..1e6 dollars), plus a neighbourhood premium."""
    rng = np.random.default_rng(seed)
    sqft = rng.uniform(500, 3000, n).round(0)
    rooms = rng.integers(1, 6, n)
    hood = rng.choice(["north", "south", "east", "west"], n)
    price = 50_000 + 300 * sqft + 20_000 * (hood == "north") + rng.normal(0, 40_000, n)
    pd.DataFrame({"sqft": sqft, "rooms": rooms, "hood": hood, "price": price.round(0)}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("lr", [None, "auto"])
def test_house_prices_with_defaults_beat_the_mean(capsys, tmp_path, lr):
    csv = make_houses_csv(tmp_path / "houses.csv")
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "tabular", csv, "--target", "price", "--out", out,
                           *(["--lr", lr] if lr else []))
    assert code == 0, err
    df = pd.read_csv(csv)
    from deepfit.data.core import split_indices
    tr, va = split_indices(len(df), 0.2, 42)
    y = df["price"].to_numpy(dtype=float)
    s = json.loads((out / "run.json").read_text())["summary"]
    # what was done to the target is said in the run's summary and report
    assert s["target_encoding"].startswith("standardised") and f"{y[tr].mean():.6g}" in s["target_encoding"]
    assert "standardised" in (out / "report.html").read_text()
    # predictions are in dollars, and the reported rmse is numpy's on them
    rows = tmp_path / "valid.csv"
    df.iloc[va].drop(columns=["price"]).to_csv(rows, index=False)
    code, _, err = run_cli(capsys, "predict", out / "model.safetensors", rows, "--out", tmp_path / "p.csv")
    assert code == 0, err
    p = pd.read_csv(tmp_path / "p.csv")["prediction"].to_numpy()
    rmse = float(np.sqrt(((p - y[va]) ** 2).mean()))
    assert s["final_metrics"]["rmse"] == pytest.approx(rmse, rel=1e-4)
    r2 = 1 - ((p - y[va]) ** 2).sum() / ((y[va] - y[tr].mean()) ** 2).sum()
    assert r2 > 0.5, (r2, s)


def test_log_y_option(capsys, tmp_path):
    csv = make_houses_csv(tmp_path / "houses.csv", n=300)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "tabular", csv, "--target", "price", "--log-y", "--out", out, *FAST)
    assert code == 0, err
    s = json.loads((out / "run.json").read_text())["summary"]
    assert s["target_encoding"].startswith("log1p(y); standardised")
    from deepfit import load_learner
    learn = load_learner(out / "model.safetensors")
    assert learn.dls.proc.target.log == "log1p" and learn.dls.log_y
    code, stdout, _ = run_cli(capsys, "info", out / "model.safetensors", "--json")
    d = json.loads(stdout)["data"]
    assert d["log_y"] is True and d["target_mean"] == [pytest.approx(learn.dls.proc.target.mean[0])]


def test_validation_loss_rise_is_a_warning_in_console_run_json_and_report(capsys, tmp_path):
    from types import SimpleNamespace
    from deepfit.cli.training import warn_valid_loss_rise
    run = RunDir.create(tmp_path / "run")
    log = [{"epoch": 0, "valid_loss": 0.5}, {"epoch": 1, "valid_loss": 0.2}, {"epoch": 2, "valid_loss": 0.9}]
    warn_valid_loss_rise(SimpleNamespace(recorder=SimpleNamespace(log=log)), run, Console(quiet=True))
    err = capsys.readouterr().err
    assert "deepfit: warning: the validation loss ended at 0.9, more than 1.5x its best (0.2 at epoch 1)" in err
    path = run.finish("t", {})
    assert "more than 1.5x its best" in json.loads((path / "run.json").read_text())["summary"]["warnings"][0]
    assert "more than 1.5x its best" in (path / "report.html").read_text()
    run2 = RunDir.create(tmp_path / "run2")
    warn_valid_loss_rise(SimpleNamespace(recorder=SimpleNamespace(log=log[:2])), run2, Console(quiet=True))
    assert "warning" not in capsys.readouterr().err and "warnings" not in run2.summary


def test_lr_find_command(capsys, tmp_path, tab_csv):
    png = tmp_path / "lr.png"
    code, out, err = run_cli(capsys, "lr-find", "tabular", tab_csv, "--target", "label", "--num-it", "30",
                             "--plot", png, "-q")
    assert code == 0, err
    assert "valley" in out and "steep" in out and "minimum" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- collab round trip -----------------------------------------------------------------------------------
def test_collab_train_predict_info_round_trip(capsys, tmp_path, ratings_csv):
    out = tmp_path / "cf"
    code, stdout, err = run_cli(capsys, "train", "collab", ratings_csv, "--user", "userId", "--item", "movieId",
                                "--target", "rating", "--n-factors", "8", "--out", out, "--epochs", "2",
                                "--lr-find-iters", "20", "--bs", "32", "-q")
    assert code == 0, err
    assert "rmse" in stdout
    _check_run_dir(out, ("lr_find.png", "embedding_pca.png", "pred_vs_actual.png"))
    s = json.loads((out / "run.json").read_text())["summary"]
    assert s["users"] == 30 and s["items"] == 20
    df = pd.read_csv(ratings_csv).head(25)
    new = tmp_path / "pairs.csv"
    df.drop(columns=["rating"]).to_csv(new, index=False)
    code, _, err = run_cli(capsys, "predict", out / "model.safetensors", new, "--out", tmp_path / "p.csv")
    assert code == 0, err
    preds = pd.read_csv(tmp_path / "p.csv")
    assert preds.columns.tolist() == ["userId", "movieId", "prediction"] and len(preds) == 25
    from deepfit import load_learner
    learn = load_learner(out / "model.safetensors")
    p, _ = learn.get_preds(dl=learn.dls.test_dl(df.drop(columns=["rating"])))
    np.testing.assert_allclose(preds["prediction"].to_numpy(), p.reshape(-1).numpy(), atol=1e-5)
    lo, hi = s["y_range"]
    assert preds["prediction"].between(lo, hi).all()
    code, stdout, _ = run_cli(capsys, "info", out / "model.safetensors", "--json")
    d = json.loads(stdout)
    assert d["application"] == "collab" and d["data"]["userId ids"] == 30 and d["data"]["movieId ids"] == 20


def test_collab_defaults_to_first_three_columns_without_header(capsys, tmp_path):
    p = tmp_path / "u.data"
    df = pd.read_csv(make_ratings_csv(tmp_path / "r.csv"))
    df.assign(ts=1).to_csv(p, sep="\t", header=False, index=False)
    out = tmp_path / "cf"
    code, _, err = run_cli(capsys, "train", "collab", p, "--no-header", "--names", "user,item,rating,ts",
                           "--out", out, *FAST)
    assert code == 0, err
    s = json.loads((out / "run.json").read_text())["summary"]
    assert (s["user"], s["item"], s["rating"]) == ("user", "item", "rating")


# ---- demo ------------------------------------------------------------------------------------------------
@pytest.fixture
def small_digits(monkeypatch):
    """demo_dls replaced by 600 generated digits so the test takes about a second."""
    import deepfit.data.mnist as mnist
    from deepfit.data.synthetic import make_digits

    def fake(folder, bs=64, seed=42, device=None):
        x, y = make_digits(600, seed=seed)
        return mnist.digits_dls(x, y, valid_n=200, bs=bs, seed=seed, device="cpu"), "600 generated digits"
    monkeypatch.setattr(mnist, "demo_dls", fake)


def test_demo_writes_a_full_run(capsys, tmp_path, small_digits):
    out = tmp_path / "demo"
    code, stdout, err = run_cli(capsys, "demo", "--out", out, "--epochs", "2", "--lr-find-iters", "20", "-q",
                                "--layers", "32")
    assert code == 0, err
    assert "accuracy" in stdout and "report:" in stdout
    _check_run_dir(out, ("lr_find.png", "confusion_matrix.png", "top_losses.png"))
    m = pd.read_csv(out / "metrics.csv")
    assert len(m) == 2 and m["accuracy"].iloc[-1] > 0.3  # 10 classes: far above chance after 2 epochs
    # the README command is rerun: a finished demo in --out is replaced
    code, _, err = run_cli(capsys, "demo", "--out", out, "--epochs", "1", "--lr-find-iters", "0", "-q",
                           "--layers", "32")
    assert code == 0, err
    assert len(pd.read_csv(out / "metrics.csv")) == 1 and is_complete(out)
    code, stdout, _ = run_cli(capsys, "info", out / "model.safetensors")
    assert code == 0 and "demo (digits)" in stdout and "MLP" in stdout


@pytest.mark.slow
@pytest.mark.data
def test_demo_on_real_mnist(capsys, tmp_path, data_path):
    out = tmp_path / "demo"
    code, stdout, err = run_cli(capsys, "demo", "--out", out, "--epochs", "1", "--lr-find-iters", "0", "-q",
                                "--data", data_path)
    assert code == 0, err
    s = json.loads((out / "run.json").read_text())["summary"]
    assert "MNIST" in s["data"]
    assert s["final_metrics"]["accuracy"] > 0.85


# ---- run directory, exit codes, output ---------------------------------------------------------------------
def test_run_dir_is_renamed_only_when_complete(tmp_path):
    run = RunDir.create(tmp_path / "r")
    assert run.path == tmp_path / ("r" + INCOMPLETE_SUFFIX) and not (tmp_path / "r").exists()
    assert (run.path / STATUS_FILE).read_text().startswith("running")
    (run.file("metrics.csv")).write_text("epoch,train_loss\n0,1.0\n")
    final = run.finish("t", {"a": 1})
    assert final == tmp_path / "r" and is_complete(final) and not (tmp_path / ("r" + INCOMPLETE_SUFFIX)).exists()
    with pytest.raises(CLIError, match="already exists"):
        RunDir.create(tmp_path / "r")
    run2 = RunDir.create(tmp_path / "r", overwrite=True)
    run2.finish("t", {})
    assert is_complete(tmp_path / "r") and not (tmp_path / "r.old").exists()


def test_internal_error_exit_1_with_debug_hint(capsys, tmp_path, tab_csv, monkeypatch):
    from deepfit.cli.tabular import TabularApp

    def boom(self, args, console):
        raise RuntimeError("kaboom")
    monkeypatch.setattr(TabularApp, "prepare", boom)
    code, _, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--out", tmp_path / "o")
    assert code == 1
    assert "deepfit: internal error: RuntimeError: kaboom" in err and "--debug" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--out", tmp_path / "o", "--debug")
    assert code == 1 and "Traceback" in err


def test_failure_during_training_marks_the_run_failed(capsys, tmp_path, tab_csv, monkeypatch):
    from deepfit import Learner

    def broken(self, *a, **k):
        raise RuntimeError("out of memory (simulated)")
    monkeypatch.setattr(Learner, "fit_one_cycle", broken)
    out = tmp_path / "o"
    code, _, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--out", out, *FAST)
    assert code == 1 and "simulated" in err
    work = tmp_path / ("o" + INCOMPLETE_SUFFIX)
    assert not out.exists() and work.is_dir() and not is_complete(work)
    assert (work / STATUS_FILE).read_text().startswith("failed")


def test_progress_is_quiet_when_not_a_terminal(capsys, tmp_path, tab_csv):
    code, _, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--out", tmp_path / "o",
                           "--epochs", "1", "--lr-find-iters", "0")
    assert code == 0
    assert "\r" not in err and "it/s" not in err  # no tqdm bars in captured (non-TTY) output
    assert "read table.csv: 300 rows x 5 columns" in err
    code, out, err = run_cli(capsys, "train", "tabular", tab_csv, "--target", "label", "--out", tmp_path / "o2", *FAST)
    assert code == 0 and err == "" and "final:" in out


def test_console_bars_only_when_interactive(capsys):
    with Console(interactive=False).bar("x", total=3) as b:
        b.update(3)
    assert capsys.readouterr().err == ""
    with Console(interactive=True).bar("reading", total=3) as b:
        b.update(3)
    assert "reading" in capsys.readouterr().err


# ---- the installed entry point -----------------------------------------------------------------------------
needs_bin = pytest.mark.skipif(not DEEPFIT_BIN.exists(), reason="deepfit is not installed in .venv")


@needs_bin
@pytest.mark.slow
def test_entry_point_help():
    r = subprocess.run([str(DEEPFIT_BIN), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "usage: deepfit" in r.stdout and "predict" in r.stdout
    r = subprocess.run([str(DEEPFIT_BIN), "train", "tabular", "missing.csv", "--target", "y"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("deepfit: error: input file not found: missing.csv")


@needs_bin
@pytest.mark.slow
def test_entry_point_train_then_predict(tmp_path):
    csv = make_tabular_csv(tmp_path / "t.csv", n=200)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    r = subprocess.run([str(DEEPFIT_BIN), "train", "tabular", str(csv), "--target", "label", "--out",
                        str(tmp_path / "run"), "--epochs", "1", "--lr-find-iters", "0"], capture_output=True,
                       text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "final:" in r.stdout and is_complete(tmp_path / "run")
    r = subprocess.run([str(DEEPFIT_BIN), "predict", str(tmp_path / "run" / "model.safetensors"), str(csv)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    preds = pd.read_csv(tmp_path / "t.predictions.csv")  # default output name, in the current directory
    assert len(preds) == 200 and "prediction" in preds.columns


# ---- checkpoints and exact resume --------------------------------------------------------------------------
def test_interrupted_run_resumes_to_the_same_result(capsys, tmp_path, tab_csv, monkeypatch):
    from deepfit.callbacks.logger import CSVLogger
    base = ["train", "tabular", str(tab_csv), "--target", "label", "--ignore", "price", "--epochs", "3",
            "--lr", "1e-2", "--lr-find-iters", "0", "--bs", "32", "-q", "--checkpoint-every", "1"]
    assert main(base + ["--out", str(tmp_path / "ref")]) == 0
    ref = pd.read_csv(tmp_path / "ref" / "metrics.csv")

    original = CSVLogger.after_epoch

    def interrupt(self):
        original(self)
        if self.learner.epoch == 1:
            raise KeyboardInterrupt
    monkeypatch.setattr(CSVLogger, "after_epoch", interrupt)
    out = tmp_path / "run"
    assert main(base + ["--out", str(out)]) == 130
    assert "--resume" in capsys.readouterr().err
    work = tmp_path / ("run" + INCOMPLETE_SUFFIX)
    assert (work / "checkpoints" / "checkpoint.pth").is_file() and not out.exists()
    monkeypatch.setattr(CSVLogger, "after_epoch", original)
    assert main(base + ["--out", str(out), "--resume"]) == 0, capsys.readouterr().err
    got = pd.read_csv(out / "metrics.csv")
    assert got["epoch"].tolist() == [0, 1, 2]
    cols = ["train_loss", "valid_loss", "accuracy"]
    np.testing.assert_allclose(got[cols].to_numpy(), ref[cols].to_numpy(), rtol=1e-6)
    from deepfit import load_learner
    a, b = load_learner(tmp_path / "ref" / "model.safetensors"), load_learner(out / "model.safetensors")
    for (k, v), (_, w) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(v, w), k


@needs_bin
@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signal_marks_the_run_interrupted(tmp_path, sig):
    """A real Ctrl-C (or kill) of the installed command during training: exit 130, the run directory is
    DIR.incomplete with STATUS 'interrupted', and no DIR appears."""
    import signal
    import time
    csv = make_tabular_csv(tmp_path / "t.csv", n=3000)
    out = tmp_path / "run"
    work = tmp_path / ("run" + INCOMPLETE_SUFFIX)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([str(DEEPFIT_BIN), "train", "tabular", str(csv), "--target", "label", "--out", str(out),
                             "--epochs", "200", "--lr-find-iters", "0", "--bs", "16"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait until the first epoch is logged
            m = work / "metrics.csv"
            if m.is_file() and len(m.read_text().splitlines()) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"deepfit ended early: {proc.communicate()}")
            time.sleep(0.2)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "deepfit: interrupted: the run did not finish" in err and "Traceback" not in err
    assert not out.exists() and (work / STATUS_FILE).read_text().startswith("interrupted")
    assert not (work / COMPLETE_MARKER).exists()


@pytest.mark.parametrize("classes", [["<=50K", ">50K"], ["a", "b", "c"]])
def test_confusion_matrix_title_fits_in_the_figure(tmp_path, classes):
    """The title with the accuracy was wider than the small square figure and got clipped."""
    from deepfit.cli.plots import plot_confusion_matrix
    k = len(classes)
    cm = np.arange(k * k).reshape(k, k) + 1
    fig = plot_confusion_matrix(cm, classes, tmp_path / "cm.png")
    assert (tmp_path / "cm.png").exists()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    box = fig.axes[0].title.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1
    acc = np.trace(cm) / cm.sum()
    assert f"{acc:.4f}" in fig.axes[0].get_title()


def test_question_marks_are_missing_values(tmp_path):
    from deepfit.cli.base import read_table
    f = tmp_path / "t.csv"
    f.write_text("age,job\n30, ?\n40,clerk\n?,nurse\n")
    df = read_table(f)
    assert df["job"].isna().tolist() == [True, False, False]
    assert df["age"].isna().tolist() == [False, False, True] and df["age"].dtype.kind == "f"
    kept = read_table(f, na_values=[])
    assert kept["job"].tolist()[0] == "?"
    from deepfit.cli import build_parser
    args = build_parser().parse_args(["train", "tabular", str(f), "--target", "job"])
    assert args.na_values == ["?"]
    args = build_parser().parse_args(["train", "tabular", str(f), "--target", "job", "--na-values", "n/a,-"])
    assert args.na_values == ["n/a", "-"]
