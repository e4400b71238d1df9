"""`deepfit train vision FOLDER` and `deepfit predict MODEL IMAGES|FOLDER` on small generated images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfit.cli import main
from deepfit.cli.vision import parse_size
from helpers import assert_usage_error, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = {"blue": (30, 40, 220), "red": (220, 30, 30)}


def write_folder(root: Path, n_train: int = 16, n_valid: int = 6, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("valid", n_valid)):
        for cls, col in COLOURS.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 60, (24, 28, 3), dtype=np.uint8)
                top, left = rng.integers(0, 12), rng.integers(0, 14)
                a[top:top + 12, left:left + 14] = col
                Image.fromarray(a).save(d / (f"{i}.png" if i % 2 else f"{i}.jpg"))
    return root


FAST = ("--arch", "simple_cnn", "--size", "16", "--bs", "8", "--lr-find-iters", "0", "-q", "--device", "cpu")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "shapes")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, one_thread_module: None) -> tuple[Path, Path]:
    """One small run shared by the tests of this module (they only read it)."""
    root = write_folder(tmp_path_factory.mktemp("data") / "shapes")
    out = root.parent / "run"
    code = main([str(a) for a in ("train", "vision", root, "--out", out, "--epochs", "6", "--lr", "2e-2", *FAST)])
    assert code == 0
    return root, out


def test_parse_size():
    assert parse_size("64") == 64 and parse_size("48x64") == (48, 64) and parse_size("32x32") == 32
    import argparse
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("big")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_size("2")


def test_train_writes_a_full_run_and_predict_reads_images_and_folders(trained, capsys, tmp_path):
    root, out = trained
    for f in ("model.safetensors", "metrics.csv", "loss.png", "schedule.png", "batch.png", "confusion_matrix.png",
              "top_losses.png", "report.html", "run.json", "COMPLETE"):
        assert (out / f).is_file(), f
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 6 and metrics["accuracy"].iloc[-1] >= 0.9
    info = json.loads((out / "run.json").read_text())
    assert info["summary"]["classes"] == ["blue", "red"] and info["summary"]["size"] == "16x16"
    html = (out / "report.html").read_text()
    assert "Top losses" in html and "A training batch" in html and "Confusion matrix" in html
    # a labelled folder: accuracy is printed and an `actual` column written
    preds_csv = tmp_path / "valid.csv"
    code, stdout, err = run_cli(capsys, "predict", out / "model.safetensors", root / "valid", "--out", preds_csv)
    assert code == 0, err
    preds = pd.read_csv(preds_csv)
    assert len(preds) == 12 and preds.columns.tolist() == ["file", "actual", "prediction", "prob_blue", "prob_red"]
    assert (preds["actual"] == preds["prediction"]).mean() >= 0.9 and "accuracy on the 12 labelled" in stdout
    np.testing.assert_allclose(preds["prob_blue"] + preds["prob_red"], 1.0, atol=1e-5)
    # single files of another size and mode are converted, and said so
    other = tmp_path / "other"
    other.mkdir()
    big = np.zeros((60, 40, 3), np.uint8)
    big[:, :] = COLOURS["red"]
    Image.fromarray(big).convert("RGBA").save(other / "big_red.png")
    Image.fromarray(big).convert("L").save(other / "grey.png")
    code, stdout, err = run_cli(capsys, "predict", out / "model.safetensors", other / "big_red.png", other / "grey.png",
                                "--out", tmp_path / "two.csv")
    assert code == 0, err
    assert "2 image(s) are not 16x16 RGB" in err
    two = pd.read_csv(tmp_path / "two.csv")
    assert two["file"].tolist() == [str(other / "big_red.png"), str(other / "grey.png")]
    assert two["prediction"].iloc[0] == "red"
    # same numbers as the model in Python
    from deepfit import load_learner
    learn = load_learner(out / "model.safetensors")
    p, _ = learn.get_preds(dl=learn.dls.test_dl([other / "big_red.png"]))
    assert float(p[0, 1]) == pytest.approx(float(two["prob_red"].iloc[0]), abs=1e-5)
    code, stdout, _ = run_cli(capsys, "info", out / "model.safetensors")
    assert code == 0 and "vision" in stdout and "blue, red" in stdout


def test_predict_bad_inputs_are_clear_errors(trained, capsys, tmp_path):
    root, out = trained
    model = out / "model.safetensors"
    bad = tmp_path / "bad"
    bad.mkdir()
    good = root / "valid" / "red" / "1.png"
    (bad / "ok.png").write_bytes(good.read_bytes())
    (bad / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, _, err = run_cli(capsys, "predict", model, bad, "--out", tmp_path / "p.csv")
    assert_usage_error(code, err, "broken.jpg", "--skip-bad")
    assert not (tmp_path / "p.csv").exists()
    code, _, err = run_cli(capsys, "predict", model, bad, "--out", tmp_path / "p.csv", "--skip-bad")
    assert code == 0 and "broken.jpg" in err and len(pd.read_csv(tmp_path / "p.csv")) == 1
    (bad / "notes.txt").write_text("hi")
    code, _, err = run_cli(capsys, "predict", model, bad / "notes.txt", "--out", tmp_path / "p.csv")
    assert_usage_error(code, err, "notes.txt", "not an image")
    code, _, err = run_cli(capsys, "predict", model, tmp_path / "nowhere", "--out", tmp_path / "p.csv")
    assert_usage_error(code, err, "nowhere")
    # a folder of class folders the model does not know: a model for other classes
    other = tmp_path / "animals"
    for cls in ("cat", "dog"):
        (other / cls).mkdir(parents=True)
        (other / cls / "a.png").write_bytes(good.read_bytes())
    code, _, err = run_cli(capsys, "predict", model, other, "--out", tmp_path / "p.csv")
    assert_usage_error(code, err, "cat", "right model", "--no-labels")
    code, _, err = run_cli(capsys, "predict", model, other, "--out", tmp_path / "p.csv", "--no-labels")
    assert code == 0, err


def test_train_bad_folders_are_exit_2_naming_the_file(capsys, tmp_path):
    root = write_folder(tmp_path / "a", n_train=4, n_valid=2)
    (root / "train" / "green").mkdir()
    code, _, err = run_cli(capsys, "train", "vision", root, "--out", tmp_path / "r1", *FAST)
    assert_usage_error(code, err, "green", "holds no images")
    (root / "train" / "green").rmdir()
    (root / "train" / "red" / "readme.txt").write_text("x")
    code, _, err = run_cli(capsys, "train", "vision", root, "--out", tmp_path / "r2", *FAST)
    assert_usage_error(code, err, "readme.txt", "--skip-bad")
    assert "on_error" not in err
    (root / "train" / "red" / "readme.txt").unlink()
    (root / "train" / "red" / "corrupt.jpg").write_bytes((root / "train" / "red" / "0.jpg").read_bytes()[:60])
    code, _, err = run_cli(capsys, "train", "vision", root, "--out", tmp_path / "r3", *FAST)
    assert_usage_error(code, err, "corrupt.jpg", "--skip-bad")
    assert not (tmp_path / "r3").exists()
    code, _, err = run_cli(capsys, "train", "vision", root, "--out", tmp_path / "r4", "--skip-bad", "--epochs", "1",
                           *FAST)
    assert code == 0 and "corrupt.jpg" in err
    one = tmp_path / "one" / "train" / "cat"
    one.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(one / "a.png")
    code, _, err = run_cli(capsys, "train", "vision", tmp_path / "one", "--out", tmp_path / "r5", *FAST)
    assert_usage_error(code, err, "only one class folder")
    code, _, err = run_cli(capsys, "train", "vision", tmp_path / "missing", "--out", tmp_path / "r6", *FAST)
    assert_usage_error(code, err, "missing")
    code, _, err = run_cli(capsys, "train", "vision", root, "--out", tmp_path / "r7", "--arch", "resnet35",
                           *FAST[2:])
    assert_usage_error(code, err, "resnet34")
    code, _, err = run_cli(capsys, "train", "vision", root, "--out", tmp_path / "r8", "--valid", "holdout", *FAST)
    assert_usage_error(code, err, "holdout", "--valid none")


def test_valid_none_and_labels_csv_multi_label(capsys, tmp_path):
    root = write_folder(tmp_path / "b", n_train=8, n_valid=2)
    code, stdout, err = run_cli(capsys, "train", "vision", root, "--valid", "none", "--valid-pct", "0.25",
                                "--epochs", "1", "--out", tmp_path / "r1", *FAST)
    assert code == 0, err
    assert json.loads((tmp_path / "r1" / "run.json").read_text())["summary"]["images"] == 16
    files = sorted((root / "train").rglob("*.*"))
    rows = [f"{f.relative_to(root)},{f.parent.name}{' bright' if f.parent.name == 'red' and i % 2 else ''}"
            for i, f in enumerate(files)]
    (root / "labels.csv").write_text("file,tags\n" + "\n".join(rows) + "\n")
    code, stdout, err = run_cli(capsys, "train", "vision", root, "--labels", "labels.csv", "--label-delim", " ",
                                "--epochs", "1", "--out", tmp_path / "r2", *FAST)
    assert code == 0, err
    info = json.loads((tmp_path / "r2" / "run.json").read_text())
    assert info["summary"]["multi_label"] is True and info["summary"]["classes"] == ["blue", "bright", "red"]
    code, _, err = run_cli(capsys, "train", "vision", root, "--labels", "labels.csv", "--label-col", "tagz",
                           "--out", tmp_path / "r3", *FAST)
    assert_usage_error(code, err, "tagz", "'tags'")
    (root / "missing.csv").write_text("file,tags\ntrain/red/nope.png,red\ntrain/red/0.jpg,red\n")
    code, _, err = run_cli(capsys, "train", "vision", root, "--labels", "missing.csv", "--out", tmp_path / "r4", *FAST)
    assert_usage_error(code, err, "nope.png", "--image-folder")
    code, _, err = run_cli(capsys, "predict", tmp_path / "r2" / "model.safetensors", root / "valid" / "red",
                           "--out", tmp_path / "m.csv")
    assert code == 0, err
    assert {"prob_blue", "prob_bright", "prob_red"} <= set(pd.read_csv(tmp_path / "m.csv").columns)


def test_pretrained_file_of_another_architecture_is_a_clear_error(capsys, tmp_path):
    import torch
    root = write_folder(tmp_path / "c", n_train=4, n_valid=2)
    w = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(3, 3, 3, 3)}, w)
    code, _, err = run_cli(capsys, "train", "vision", root, "--pretrained", w, "--out", tmp_path / "r", *FAST)
    assert_usage_error(code, err, "weights.pth")
    code, _, err = run_cli(capsys, "train", "vision", root, "--pretrained", tmp_path / "none.pth", "--out",
                           tmp_path / "r", *FAST)
    assert_usage_error(code, err, "none.pth")


def test_pretrained_body_trains_frozen_then_whole(capsys, tmp_path):
    import torch
    from deepfit.vision.models import simple_cnn
    root = write_folder(tmp_path / "d", n_train=8, n_valid=3)
    w = tmp_path / "simple.pth"
    torch.save(simple_cnn(n_out=1000).state_dict(), w)
    code, stdout, err = run_cli(capsys, "train", "vision", root, "--pretrained", w, "--epochs", "1",
                                "--freeze-epochs", "1", "--out", tmp_path / "r", *FAST)
    assert code == 0, err
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert "frozen_phase" in info["summary"] and info["summary"]["normalisation"] == "ImageNet"
    lr = info["summary"]["lr"]
    assert isinstance(lr, list) and len(lr) == 3 and lr[0] < lr[1] < lr[2]


def test_lr_find_vision(capsys, tmp_path):
    root = write_folder(tmp_path / "e", n_train=8, n_valid=2)
    code, stdout, err = run_cli(capsys, "lr-find", "vision", root, "--arch", "simple_cnn", "--size", "16", "--bs", "4",
                                "--num-it", "10", "--device", "cpu", "--plot", tmp_path / "lr.png", "-q")
    assert code == 0, err
    assert "valley" in stdout and (tmp_path / "lr.png").is_file()


def test_airbench_arch_trains_with_the_speedrun_recipe_and_predicts(capsys, tmp_path):
    root = write_folder(tmp_path / "shapes")
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "vision", root, "--out", out, "--arch", "airbench", "--size", "16",
                           "--bs", "8", "--epochs", "6", "--lr", "0.2", "-q", "--device", "cpu")
    assert code == 0, err
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 6 and metrics["accuracy"].iloc[-1] >= 0.9
    info = json.loads((out / "run.json").read_text())
    assert "airbench94" in info["summary"]["recipe"] and "lr_find" not in info["summary"]
    assert info["summary"]["augmentation"] == "alternating flips, 2-pixel shifts"
    code, stdout, err = run_cli(capsys, "predict", out / "model.safetensors", root / "valid", "--out", tmp_path / "p.csv")
    assert code == 0, err
    preds = pd.read_csv(tmp_path / "p.csv")
    assert (preds["actual"] == preds["prediction"]).mean() >= 0.9
    code, _, err = run_cli(capsys, "train", "vision", root, "--out", tmp_path / "r2", "--arch", "airbench",
                           "--pretrained", root / "train" / "red" / "0.jpg")
    assert_usage_error(code, err, "--arch airbench trains from scratch")
