"""`deepfit train lm`, `deepfit generate`, and `info` / `predict` on language models; bad input gives a clear
message and exit status 2, never a traceback."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from deepfit.cli import APPLICATIONS, main
from deepfit.cli.base import COMPLETE_MARKER
from deepfit.cli.text import SAMPLE_TEMPERATURES, _default_prefix, _flagged
from helpers import assert_usage_error, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ("--epochs", "1", "--lr-find-iters", "0", "--bs", "8", "--bptt", "10", "--emb-size", "8", "--n-hid", "16",
        "--n-layers", "1", "--sample-len", "20", "-q")


def make_corpus(path: Path, n: int = 120) -> Path:
    """A small generated text with regular structure (a few sentences in a repeating pattern)."""
    subjects = ["The cat", "A dog", "The old man", "My friend"]
    verbs = ["sat on", "looked at", "walked to", "thought about"]
    objects = ["the mat.", "the sea.", "a red house.", "the river."]
    lines = [f"{subjects[i % 4]} {verbs[(i // 4) % 4]} {objects[(i // 16) % 4]}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """One tiny character model, trained once for the tests of this module."""
    tmp = tmp_path_factory.mktemp("lm")
    corpus = make_corpus(tmp / "corpus.txt")
    out = tmp / "run"
    code = main(["train", "lm", str(corpus), "--out", str(out), *TINY])
    assert code == 0
    return out, corpus


def test_train_lm_writes_a_complete_run(lm_run):
    out, _ = lm_run
    for name in ("model.safetensors", "metrics.csv", "loss.png", "schedule.png", "report.html", "samples.txt",
                 COMPLETE_MARKER):
        assert (out / name).is_file(), name
    metrics = pd.read_csv(out / "metrics.csv")
    assert {"train_loss", "valid_loss", "accuracy", "perplexity", "bits_per_char"} <= set(metrics.columns)
    row = metrics.iloc[-1]
    # perplexity is exp(valid loss), bits per character valid loss / ln 2 (both per token, nats)
    assert row["perplexity"] == pytest.approx(2.718281828459045 ** row["valid_loss"], rel=1e-4)
    assert row["bits_per_char"] == pytest.approx(row["valid_loss"] / 0.6931471805599453, rel=1e-4)
    samples = (out / "samples.txt").read_text(encoding="utf-8")
    assert samples.count("==== temperature") == 1 + len(SAMPLE_TEMPERATURES)
    assert "==== temperature greedy ====" in samples and "==== temperature 0.8 ====" in samples
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Generated samples" in report and "data:image/png;base64," in report
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert summary["tokenizer"] == "char" and summary["vocabulary"] > 10


def test_generate_is_repeatable_with_a_seed(capsys, lm_run):
    out, _ = lm_run
    model = out / "model.safetensors"
    code, a, err = run_cli(capsys, "generate", model, "--prefix", "The cat ", "-n", "30", "--seed", "3", "-q")
    assert code == 0, err
    assert a.startswith("The cat ") and len(a.rstrip("\n")) >= len("The cat ")
    code, b, _ = run_cli(capsys, "generate", model, "--prefix", "The cat ", "-n", "30", "--seed", "3", "-q")
    assert a == b
    code, g1, _ = run_cli(capsys, "generate", model, "--prefix", "The ", "-n", "15", "--greedy", "-q")
    code, g2, _ = run_cli(capsys, "generate", model, "--prefix", "The ", "-n", "15", "--greedy", "--seed", "9", "-q")
    assert code == 0 and g1 == g2  # greedy does not depend on the seed
    code, two, _ = run_cli(capsys, "generate", model, "--prefix", "A ", "-n", "10", "--samples", "2", "--seed", "1",
                           "--top-k", "3", "--temperature", "0.7", "-q")
    assert code == 0 and two.count("---- sample ") == 2


def test_info_and_predict_on_a_language_model(capsys, lm_run):
    out, corpus = lm_run
    model = out / "model.safetensors"
    code, text, err = run_cli(capsys, "info", model, "--json")
    assert code == 0, err
    info = json.loads(text)
    assert info["application"] == "lm" and info["data_pipeline"] == "TextLMDataLoaders"
    assert info["data"]["tokenizer"] == "char (lower=False)"
    assert info["data"]["vocabulary"].startswith(f"{info['model_config']['vocab_sz']} tokens: 'xxunk'")
    code, _, err = run_cli(capsys, "predict", model, corpus)
    assert_usage_error(code, err, "is a language model", "deepfit generate MODEL")


def test_generate_bad_inputs(capsys, lm_run, tmp_path):
    out, corpus = lm_run
    model = out / "model.safetensors"
    code, _, err = run_cli(capsys, "generate", model, "--prefix", "ЖЖЖ", "-n", "5")
    assert_usage_error(code, err, "--prefix", "only of tokens the model never saw")
    code, _, err = run_cli(capsys, "generate", tmp_path / "nope.safetensors")
    assert_usage_error(code, err, "model file not found")
    code, _, err = run_cli(capsys, "generate", corpus)
    assert_usage_error(code, err, "not a safetensors file")
    code, _, err = run_cli(capsys, "generate", model, "--temperature", "0")
    assert code == 2 and "--temperature" in err
    # a model of another application
    tab = tmp_path / "t.csv"
    pd.DataFrame({"x": [float(i % 7) for i in range(80)], "y": ["a" if i % 2 else "b" for i in range(80)]}).to_csv(
        tab, index=False)
    code, _, err = run_cli(capsys, "train", "tabular", tab, "--target", "y", "--out", tmp_path / "tab", "--epochs",
                           "1", "--lr-find-iters", "0", "-q")
    assert code == 0, err
    code, _, err = run_cli(capsys, "generate", tmp_path / "tab" / "model.safetensors")
    assert_usage_error(code, err, "is a tabular model, not a language model", "deepfit train lm")


def test_train_lm_bad_inputs(capsys, tmp_path):
    def train(path: Path, *extra: str) -> tuple[int, str]:
        code, _, err = run_cli(capsys, "train", "lm", path, "--out", tmp_path / f"run-{path.name}", *TINY, *extra)
        return code, err

    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert_usage_error(*train(empty), "empty.txt is empty (0 bytes)")
    blank = tmp_path / "blank.txt"
    blank.write_text("   \n\n\t \n")
    assert_usage_error(*train(blank), "blank.txt holds only whitespace")
    small = tmp_path / "small.txt"
    small.write_text("just a few words here, far too few for one batch")
    assert_usage_error(*train(small), "small.txt", "fewer than one batch", "--bs or --bptt")
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    assert_usage_error(*train(binary), "model.bin is not a text file", "NUL byte at byte offset 8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes(("caf\xe9 " * 400).encode("latin-1"))
    code, err = train(latin)
    assert_usage_error(code, err, "byte 0xe9 at byte offset 3 (line 1)", "--encoding latin-1")
    assert "encoding='" not in err  # the flag, not the Python argument
    assert_usage_error(*train(latin, "--encoding", "klingon"), "unknown --encoding 'klingon'")
    code, err = train(latin, "--encoding", "latin-1")
    assert code == 0, err
    assert_usage_error(*train(tmp_path / "missing.txt"), "text file not found")
    corpus = make_corpus(tmp_path / "corpus.txt")
    assert_usage_error(*train(corpus, "--tokenizer", "word", "--max-vocab", "4"),
                       "--max-vocab must be a whole number above the 4 special")
    if importlib.util.find_spec("sentencepiece") is not None:
        assert_usage_error(*train(corpus, "--tokenizer", "bpe", "--max-vocab", "5"), "--max-vocab 5 is smaller than")
    # nothing the user gave was modified, and failed runs left no finished directory behind
    assert latin.read_bytes() == ("caf\xe9 " * 400).encode("latin-1")
    assert not (tmp_path / "run-empty.txt").exists()


@pytest.mark.parametrize("tokenizer", ["word", "bpe"])
def test_train_lm_with_word_and_bpe_tokens(capsys, tmp_path, tokenizer):
    if tokenizer == "bpe":
        pytest.importorskip("sentencepiece")
    corpus = make_corpus(tmp_path / "c.txt", n=200)
    extra = ("--max-vocab", "60") if tokenizer == "bpe" else ()
    code, out, err = run_cli(capsys, "train", "lm", corpus, "--tokenizer", tokenizer, "--out", tmp_path / "r", *TINY,
                             *extra)
    assert code == 0, err
    metrics = pd.read_csv(tmp_path / "r" / "metrics.csv")
    assert "bits_per_char" not in metrics.columns  # only for characters
    code, text, err = run_cli(capsys, "generate", tmp_path / "r" / "model.safetensors", "--prefix", "The cat", "-n",
                              "5", "--seed", "0", "-q")
    assert code == 0, err
    assert text.startswith("The cat")
    code, info, _ = run_cli(capsys, "info", tmp_path / "r" / "model.safetensors", "--json")
    desc = json.loads(info)["data"]
    assert desc["tokenizer"].startswith(tokenizer)
    if tokenizer == "word":  # lower-cased with case markers
        assert "lower=True" in desc["tokenizer"] and "'xxmaj'" in desc["vocabulary"]
        assert "'the'" in desc["vocabulary"] and "'The'" not in desc["vocabulary"]
    else:
        assert "n_merges=" in desc["tokenizer"]


def test_lr_find_lm(capsys, tmp_path):
    corpus = make_corpus(tmp_path / "c.txt")
    code, out, err = run_cli(capsys, "lr-find", "lm", corpus, "--bs", "8", "--bptt", "10", "--emb-size", "8",
                             "--n-hid", "16", "--n-layers", "1", "--num-it", "10", "-q")
    assert code == 0, err
    assert "valley" in out


def test_help_and_registration(capsys):
    assert any(a.name == "lm" for a in APPLICATIONS)
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "generate" in out and "train lm" in out
    code, out, _ = run_cli(capsys, "train", "lm", "--help")
    assert code == 0 and "--tokenizer {char,word,bpe}" in out and "--delimiter" not in out
    assert "held out for validation (default: 0.1)" in " ".join(out.split())


def test_helpers():
    assert _default_prefix("rt of it. The next line\nand more") == "of it. The next "
    assert _default_prefix(" Whole words only") == "Whole words only "
    assert _default_prefix("x") == ""
    assert _flagged("pass its encoding, e.g. encoding='cp1252' (on the command line --encoding cp1252)") == \
        "pass its encoding, e.g. --encoding cp1252"
    assert _flagged("pass a smaller bs or bptt, or a larger valid_pct") == \
        "pass a smaller --bs or --bptt, or a larger --valid-pct"
