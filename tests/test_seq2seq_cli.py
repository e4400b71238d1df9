"""`deepfit train translate` and `deepfit translate`: a complete run, translations, and bad input as clear
messages with exit status 2 (never a traceback)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from deepfit.cli import main
from deepfit.cli.base import COMPLETE_MARKER

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = "ab cd ef gh ij kl".split()
TINY = ("--epochs", "2", "--lr", "1e-2", "--lr-find-iters", "0", "--bs", "16", "--emb-size", "16", "--n-hid", "24",
        "--min-freq", "1", "--attention-maps", "1", "--beam", "2", "-q")


def write_pairs(folder: Path, name: str, n: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(n):
        s = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
        src.append(" ".join(s))
        tgt.append(" ".join(w[::-1] for w in reversed(s)))
    a, b = folder / f"{name}.src", folder / f"{name}.tgt"
    a.write_text("\n".join(src) + "\n", encoding="utf-8")
    b.write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return a, b


def run_cli(capsys: pytest.CaptureFixture, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def assert_usage_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert err.startswith("deepfit: error: ")
    for f in fragments:
        assert f in err, (f, err)


@pytest.fixture(scope="module")
def mt_run(tmp_path_factory):
    """One tiny GRU translator, trained once for this module."""
    tmp = tmp_path_factory.mktemp("mt")
    tr = write_pairs(tmp, "train", 200, 0)
    va = write_pairs(tmp, "valid", 12, 1)
    out = tmp / "run"
    code = main(["train", "translate", str(tr[0]), str(tr[1]), "--valid-src", str(va[0]), "--valid-tgt", str(va[1]),
                 "--out", str(out), *TINY])
    assert code == 0
    return out, tmp, va


def test_train_translate_writes_a_complete_run(mt_run):
    out, _, _ = mt_run
    for name in ("model.safetensors", "metrics.csv", "loss.png", "report.html", "bleu.csv", "attention_1.png",
                 COMPLETE_MARKER):
        assert (out / name).is_file(), name
    summary = json.loads((out / "run.json").read_text())
    bleu = summary["summary"]["bleu"] if "summary" in summary else summary["bleu"]
    assert set(bleu) == {"greedy", "beam 2"} and set(bleu["greedy"]) == {"bleu_tok", "sacrebleu"}
    assert "bleu" in (out / "metrics.csv").read_text().splitlines()[0]
    html = (out / "report.html").read_text()
    assert "BLEU on the validation pairs" in html and "Attention: validation sentence 1" in html


def test_translate_text_and_file(mt_run, capsys, tmp_path):
    out, _, _ = mt_run
    from deepfit.export import load_learner
    learn = load_learner(out / "model.safetensors")
    code, stdout, err = run_cli(capsys, "translate", out / "model.safetensors", "--text", "ab cd", "--text", "ef gh ij",
                                "-q")
    assert code == 0, err
    assert stdout.splitlines() == [learn.translate("ab cd"), learn.translate("ef gh ij")]
    f = tmp_path / "in.txt"
    f.write_text("ab cd\n\nef gh ij\n")
    code, stdout, err = run_cli(capsys, "translate", out / "model.safetensors", "--file", f, "--beam", "3",
                                "--out", tmp_path / "o.txt", "-q")
    assert code == 0, err
    lines = (tmp_path / "o.txt").read_text().split("\n")
    assert lines[:3] == [learn.translate("ab cd", beam=3, length_penalty=0.6), "",
                         learn.translate("ef gh ij", beam=3, length_penalty=0.6)]
    assert f.read_text() == "ab cd\n\nef gh ij\n"  # the input is untouched


def test_translate_bad_input(mt_run, capsys, tmp_path):
    out, tmp, _ = mt_run
    model = out / "model.safetensors"
    long_ = tmp_path / "long.txt"
    long_.write_text("ab cd\n" + " ".join(WORDS[i % 6] for i in range(200)) + "\n")
    code, _, err = run_cli(capsys, "translate", model, "--file", long_)
    assert_usage_error(code, err, "line 2 of", "long.txt is too long: it has 200 tokens", "at most")
    code, _, err = run_cli(capsys, "translate", model, "--text", " ")
    assert_usage_error(code, err, "--text is empty")
    code, _, err = run_cli(capsys, "translate", tmp_path / "nope.safetensors", "--text", "ab")
    assert_usage_error(code, err, "model file not found")
    code, _, err = run_cli(capsys, "translate", model)
    assert code == 2 and "one of the arguments --text/-t --file/-f is required" in err
    code, _, err = run_cli(capsys, "predict", model, long_)
    assert_usage_error(code, err, "is a translation model", "deepfit translate MODEL")


def test_train_translate_bad_files(capsys, tmp_path):
    s, t = write_pairs(tmp_path, "x", 20, 0)
    short = tmp_path / "short.tgt"
    short.write_text("\n".join(t.read_text().splitlines()[:15]) + "\n")
    code, _, err = run_cli(capsys, "train", "translate", s, short, "--out", tmp_path / "r1", *TINY)
    assert_usage_error(code, err, "x.src has 20 lines but", "short.tgt has 15", "they part at line 16")
    gap = tmp_path / "gap.tgt"
    lines = t.read_text().splitlines()
    lines[6] = ""
    gap.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, "train", "translate", s, gap, "--out", tmp_path / "r2", *TINY)
    assert_usage_error(code, err, "line 7 of", "gap.tgt is empty but line 7 of", "x.src is")
    code, _, err = run_cli(capsys, "train", "translate", s, t, "--valid-src", s, "--out", tmp_path / "r3", *TINY)
    assert_usage_error(code, err, "--valid-src and --valid-tgt")
    code, _, err = run_cli(capsys, "train", "translate", s, tmp_path / "none.tgt", "--out", tmp_path / "r4", *TINY)
    assert_usage_error(code, err, "target file not found")
    vec = tmp_path / "v.txt"
    vec.write_text("ab 0.1 0.2 0.3\ncd 0.1 0.2\n")
    code, _, err = run_cli(capsys, "train", "translate", s, t, "--src-vectors", vec, "--out", tmp_path / "r5", *TINY)
    assert_usage_error(code, err, "--src-vectors", "v.txt line 2: 'cd' has 2 values")
    code, _, err = run_cli(capsys, "train", "translate", s, t, "--max-src-len", "1", "--out", tmp_path / "r6", *TINY)
    assert_usage_error(code, err, "--max-src-len=1")
    assert not any(p.name.startswith("r") for p in tmp_path.iterdir() if p.is_dir())


@pytest.mark.parametrize("flag, expected", [("lesson", "lesson"), ("always", None)])
def test_teacher_forcing_flag_reaches_the_learner(flag, expected, tmp_path, monkeypatch):
    import deepfit.seq2seq as s2s
    seen = []
    real = s2s.translation_learner

    def spy(*args, **kwargs):
        seen.append(kwargs["teacher_forcing"])
        return real(*args, **kwargs)

    monkeypatch.setattr(s2s, "translation_learner", spy)
    tr = write_pairs(tmp_path, "train", 40, 0)
    tiny = [a if a != "2" else "1" for a in TINY]  # one epoch
    code = main(["train", "translate", str(tr[0]), str(tr[1]), "--valid-pct", "0.2", "--teacher-forcing", flag,
                 "--out", str(tmp_path / "run"), *tiny])
    assert code == 0 and seen == [expected]
