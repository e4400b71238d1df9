"""`deepfit train segment IMAGES MASKS --codes FILE` and `deepfit predict MODEL IMAGES|FOLDER --out DIR` (mask
PNGs) on small generated images; every bad input is exit status 2 with a message naming the file."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfit.cli import main
from test_vision_segment import CODES, VOID, write_pairs

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ("--arch", "simple_cnn", "--bs", "8", "--lr-find-iters", "0", "-q", "--device", "cpu")


def make_data(root: Path) -> Path:
    write_pairs(root / "train", 40, seed=0)
    write_pairs(root / "valid", 8, seed=1)
    (root / "codes.txt").write_text("\n".join(CODES) + "\n")
    return root


def train_args(root: Path, out: Path, *extra: object) -> list[str]:
    return [str(a) for a in ("train", "segment", root / "train" / "images", root / "train" / "labels", "--codes",
                             root / "codes.txt", "--void", "void", "--valid-images", root / "valid" / "images",
                             "--valid-masks", root / "valid" / "labels", "--out", out, *FAST, *extra)]


def run_cli(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, one_thread_module: None) -> tuple[Path, Path]:
    """One small run shared by the tests of this module (they only read it)."""
    root = make_data(tmp_path_factory.mktemp("seg"))
    out = root / "run"
    assert main(train_args(root, out, "--epochs", "12", "--lr", "2e-2", "--no-aug")) == 0
    return root, out


def test_train_writes_model_metrics_and_report(trained: tuple[Path, Path]):
    root, out = trained
    for name in ("model.safetensors", "metrics.csv", "report.html", "iou.png", "results.png", "class_iou.csv",
                 "run.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert set(summary["class_iou"]) == {"background", "box", "disc"}
    assert summary["final_metrics"]["mean_iou"] > 0.8
    html = (out / "report.html").read_text()
    assert "iou.png" in html and "results.png" in html


def test_predict_writes_one_mask_png_per_image(trained: tuple[Path, Path], tmp_path: Path, capsys):
    root, out = trained
    imgs = tmp_path / "new"
    shutil.copytree(root / "valid" / "images", imgs)
    # one image of another size: its mask has its size (the model squashes images to 32x48)
    big = np.asarray(Image.open(imgs / "im001.png").resize((96, 64), Image.Resampling.NEAREST))
    Image.fromarray(big).save(imgs / "im001.png")
    before = {p.name: p.read_bytes() for p in imgs.iterdir()}
    code, stdout, err = run_cli(capsys, ["predict", str(out / "model.safetensors"), str(imgs), "--out",
                                         str(tmp_path / "masks"), "-q"])
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert written == sorted(before) and "wrote 8 mask(s)" in stdout
    m = np.asarray(Image.open(tmp_path / "masks" / "im002.png"))
    truth = np.asarray(Image.open(root / "valid" / "labels" / "im002.png"))
    assert m.shape == truth.shape and (m == truth)[truth != VOID].mean() > 0.9 and VOID not in m
    assert np.asarray(Image.open(tmp_path / "masks" / "im001.png")).shape == (64, 96)
    assert {p.name: p.read_bytes() for p in imgs.iterdir()} == before  # the inputs are untouched
    # --out the input folder: refused, nothing written
    code, _, err = run_cli(capsys, ["predict", str(out / "model.safetensors"), str(imgs), "--out", str(imgs)])
    assert code == 2 and "is an input folder" in err
    code, _, err = run_cli(capsys, ["info", str(out / "model.safetensors")])
    assert code == 0


@pytest.mark.parametrize("break_it, expect", [
    ("size", ["im004.png", "is 48x30 pixels but its image is 48x32"]),
    ("code", ["im006.png", "code(s) 9", "--codes", "--void"]),
    ("missing", ["1 of 40 images have no mask", "im011.png"]),
    ("names", ["No image of", "--mask-suffix"]),
    ("codes_file", ["--codes", "no such file"]),
    ("colour", ["im003.png", "colour picture"]),
])
def test_bad_inputs_exit_2_naming_the_file(tmp_path: Path, capsys, break_it: str, expect: list[str]):
    root = make_data(tmp_path)
    labels = root / "train" / "labels"
    argv = train_args(root, tmp_path / "run", "--epochs", "1")
    if break_it == "size":
        Image.fromarray(np.zeros((30, 48), np.uint8), mode="L").save(labels / "im004.png")
    elif break_it == "code":
        m = np.asarray(Image.open(labels / "im006.png")).copy()
        m[3, 3] = 9
        Image.fromarray(m, mode="L").save(labels / "im006.png")
    elif break_it == "missing":
        (labels / "im011.png").unlink()
    elif break_it == "names":
        other = root / "annotations"  # masks named after something else than the images
        other.mkdir()
        for i, m in enumerate(sorted(labels.iterdir())):
            shutil.copy(m, other / f"frame_{i:05d}.png")
        argv[argv.index(str(labels))] = str(other)
    elif break_it == "codes_file":
        argv[argv.index("--codes") + 1] = str(root / "nope.txt")
    elif break_it == "colour":
        Image.fromarray(np.full((32, 48, 3), (1, 2, 3), np.uint8)).save(labels / "im003.png")
    code, _, err = run_cli(capsys, argv)
    assert code == 2, err
    assert err.startswith("deepfit: error:") and "Traceback" not in err and "internal error" not in err
    for text in expect:
        assert text in err, (text, err)
    assert "void=" not in err and "mask_suffix=" not in err and "codes=" not in err  # flags, not Python arguments
    assert not (tmp_path / "run").exists()


def test_bad_options_exit_2(tmp_path: Path, capsys):
    root = make_data(tmp_path)
    code, _, err = run_cli(capsys, train_args(root, tmp_path / "run", "--arch", "resnet35"))
    assert code == 2 and "is not a segmentation architecture; did you mean" in err
    code, _, err = run_cli(capsys, train_args(root, tmp_path / "run", "--class-weights", "1,2"))
    assert code == 2 and "--class-weights gives 2 weights for the 4 codes" in err
    code, _, err = run_cli(capsys, train_args(root, tmp_path / "run", "--class-weights", "inverse"))
    assert code == 2 and "expected median, sqrt_median or comma-separated numbers" in err
    code, _, err = run_cli(capsys, train_args(root, tmp_path / "run", "--void", "Unlabelled"))
    assert code == 2 and "--void" in err and "Unlabelled" in err


def test_class_weights_from_the_masks_reach_the_loss(tmp_path: Path, monkeypatch):
    import deepfit.vision.segment as seg
    from deepfit.cli.segment import _weights
    assert _weights("sqrt_median") == "sqrt_median" and _weights("median") == "median"
    assert _weights("1,0.5") == [1.0, 0.5]
    seen = []
    real = seg.segmentation_learner

    def spy(dls, arch, **kwargs):
        learn = real(dls, arch, **kwargs)
        seen.append((kwargs["class_weights"], learn.loss_func.weight,
                     seg.median_frequency_weights(dls.train.tensors[1], dls.c, dls.void, 0.5)))
        raise SystemExit(0)  # the weights are all this test needs: stop before training

    monkeypatch.setattr(seg, "segmentation_learner", spy)
    root = make_data(tmp_path)
    with pytest.raises(SystemExit):
        main(train_args(root, tmp_path / "run", "--class-weights", "sqrt_median"))
    (arg, weight, expect), = seen
    assert arg == "sqrt_median" and weight.tolist() == pytest.approx(expect)
