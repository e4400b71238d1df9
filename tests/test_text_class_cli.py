"""`deepfit train text` and `deepfit predict` on text classifiers: every method on generated corpora (the label
depends on words the test knows), CSV/TSV/folder input, the report (metrics, confusion matrix, most confident
mistakes), and bad input as a clear message with exit status 2."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from deepfit.cli import main
from deepfit.cli.base import COMPLETE_MARKER
from helpers import assert_usage_error, run_cli

from test_text_bow import sentiment_corpus, topic_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus_csv(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("tc") / "reviews.csv"
    sentiment_corpus(200).rename(columns={"text": "review", "label": "sentiment"}).assign(
        stars=range(200)).to_csv(p, index=False)
    return p


@pytest.fixture(scope="module")
def nbsvm_run(corpus_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "nbsvm"
    code = main(["train", "text", str(corpus_csv), "--text-col", "review", "--label-col", "sentiment",
                 "--method", "nbsvm", "--out", str(out), "-q"])
    assert code == 0
    return out


def test_train_nbsvm_writes_a_complete_run(nbsvm_run):
    files = {p.name for p in nbsvm_run.iterdir()}
    assert {COMPLETE_MARKER, "model.safetensors", "report.html", "metrics.csv", "confusion_matrix.csv",
            "most_confident_mistakes.csv"} <= files
    summary = json.loads((nbsvm_run / "run.json").read_text())["summary"]
    assert summary["final_metrics"]["accuracy"] == 1.0
    assert summary["method"] == "nbsvm" and summary["text column"] == "review"
    html = (nbsvm_run / "report.html").read_text()
    for part in ("Confusion matrix", "Most confident mistakes", "Most telling n-grams", "accuracy",
                 "Metrics per class"):
        assert part in html
    cm = pd.read_csv(nbsvm_run / "confusion_matrix.csv")
    assert cm.drop(columns="actual").to_numpy().sum() == 40  # 20% of 200 validation rows


def test_per_class_metrics_by_hand():
    from deepfit.cli.textclass import per_class_metrics
    # actual a: 3 right, 1 predicted b; actual b: 2 predicted a, 4 right; class c never seen nor predicted
    t = per_class_metrics([[3, 1, 0], [2, 4, 0], [0, 0, 0]], ["a", "b", "c"])
    assert t["precision"].tolist() == pytest.approx([3 / 5, 4 / 5, 0])
    assert t["recall"].tolist() == pytest.approx([3 / 4, 4 / 6, 0])
    assert t["f1"][0] == pytest.approx(2 * (3 / 5) * (3 / 4) / (3 / 5 + 3 / 4))
    assert t["support"].tolist() == [4, 6, 0]


def test_lr_find_refuses_linear_methods(corpus_csv, capsys):
    code, _, err = run_cli(capsys, "lr-find", "text", corpus_csv, "--method", "nbsvm")
    assert_usage_error(code, err, "fitted at once", "--method nb-learner or rnn")
    code, out, err = run_cli(capsys, "lr-find", "text", corpus_csv, "--method", "nb-learner", "--num-it", "20",
                             "-q")  # the columns are found: text 'review', labels 'sentiment' (not the unique 'stars')
    assert code == 0, err
    assert "valley" in out


def test_predict_writes_labels_and_probabilities(nbsvm_run, tmp_path, capsys):
    new = tmp_path / "new.csv"
    pd.DataFrame({"review": ["I love this wonderful film.", "Boring and terrible."]}).to_csv(new, index=False)
    out = tmp_path / "preds.csv"
    code, _, err = run_cli(capsys, "predict", nbsvm_run / "model.safetensors", new, "--out", out)
    assert code == 0, err
    p = pd.read_csv(out)
    assert p["prediction"].tolist() == ["pos", "neg"]
    assert (p["prob_pos"] + p["prob_neg"]).round(5).eq(1).all()
    assert p.loc[0, "prob_pos"] > 0.5 > p.loc[1, "prob_pos"]


def test_predict_model_trained_on_other_labels(nbsvm_run, tmp_path, capsys):
    new = tmp_path / "other.csv"
    pd.DataFrame({"review": ["good", "bad"], "sentiment": ["positive", "negative"]}).to_csv(new, index=False)
    code, _, err = run_cli(capsys, "predict", nbsvm_run / "model.safetensors", new, "--out", tmp_path / "p.csv")
    assert_usage_error(code, err, "'positive'", "not trained on", "neg, pos")


@pytest.mark.parametrize("method", ["nb", "logreg", "nb-learner"])
def test_other_methods_on_topics(method, tmp_path, capsys):
    f = tmp_path / "topics.csv"
    topic_corpus().to_csv(f, index=False)
    code, out, err = run_cli(capsys, "train", "text", f, "--method", method, "--epochs", "3", "--lr", "0.05",
                             "--lr-find-iters", "0", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "run.json").read_text())["summary"]
    assert summary["text column"] == "text" and summary["label column"] == "topic"  # found by themselves
    assert summary["final_metrics"]["accuracy"] == 1.0


def test_raw_counts_flag(corpus_csv, tmp_path, capsys):
    from deepfit import load_learner
    code, _, err = run_cli(capsys, "train", "text", corpus_csv, "--text-col", "review", "--label-col", "sentiment",
                           "--method", "nb", "--raw-counts", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    learn = load_learner(tmp_path / "run" / "model.safetensors")
    assert learn.model.binary is False
    assert json.loads((tmp_path / "run" / "run.json").read_text())["summary"]["features"] == "raw n-gram counts"


def test_tsv_without_header_keeps_quotes(tmp_path, capsys):
    df = sentiment_corpus(60)
    df.loc[0, "text"] = '"Great" he said, and i love it.'
    df.loc[1, "text"] = 'An "awful" film.'
    f = tmp_path / "s.txt"
    f.write_text("".join(f"{t}\t{l}\n" for t, l in zip(df.text, df.label)), encoding="utf-8")
    code, _, err = run_cli(capsys, "train", "text", f, "--no-header", "--names", "text,label", "--method", "nb",
                           "--out", tmp_path / "run", "-q")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "run.json").read_text())["summary"]
    assert summary["data"].startswith("s.txt: 60 texts")  # no rows merged by the quotes
    new = tmp_path / "new.tsv"
    new.write_text('text\n"Great" film, i love it.\nAn "awful" one.\nBoring.\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "predict", tmp_path / "run" / "model.safetensors", new, "--out", tmp_path / "p.csv",
                           "--delimiter", "tab")
    assert code == 0, err
    p = pd.read_csv(tmp_path / "p.csv")
    assert p["text"].tolist() == ['"Great" film, i love it.', 'An "awful" one.', "Boring."]
    assert p["prediction"].tolist() == ["pos", "neg", "neg"]


def test_folder_per_class(tmp_path, capsys):
    df = sentiment_corpus(40)
    for i, (t, l) in enumerate(zip(df.text, df.label)):
        (tmp_path / "data" / l).mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / l / f"{i}.txt").write_text(t)
    code, _, err = run_cli(capsys, "train", "text", tmp_path / "data", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    assert (tmp_path / "run" / COMPLETE_MARKER).is_file()


def test_rnn_method_runs(tmp_path, capsys):
    pytest.importorskip("deepfit.text.classifier")
    f = tmp_path / "s.csv"
    sentiment_corpus(40).to_csv(f, index=False)
    code, _, err = run_cli(capsys, "train", "text", f, "--method", "rnn", "--epochs", "1", "--lr-find-iters", "0",
                           "--bs", "16", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Confusion matrix" in html and "Most confident mistakes" in html
    new = tmp_path / "new.csv"
    pd.DataFrame({"text": ["I love it.", "Awful."], "label": ["pos", "neutral"]}).to_csv(new, index=False)
    code, _, err = run_cli(capsys, "predict", tmp_path / "run" / "model.safetensors", new, "--out", tmp_path / "p.csv")
    assert_usage_error(code, err, "'neutral'", "not trained on")
    pd.DataFrame({"text": ["I love it.", "Awful."]}).to_csv(new, index=False)
    code, _, err = run_cli(capsys, "predict", tmp_path / "run" / "model.safetensors", new, "--out", tmp_path / "p.csv")
    assert code == 0, err
    p = pd.read_csv(tmp_path / "p.csv")
    assert set(p["prediction"]) <= {"pos", "neg"} and (p["prob_neg"] + p["prob_pos"]).round(5).eq(1).all()


# ---- bad input --------------------------------------------------------------------------------------------
def _train(capsys, f, *extra):
    return run_cli(capsys, "train", "text", f, "--out", Path(f).parent / "run", "-q", *extra)


def test_one_class(tmp_path, capsys):
    f = tmp_path / "one.csv"
    sentiment_corpus(20).assign(label="pos").to_csv(f, index=False)
    assert_usage_error(*_train(capsys, f)[::2], "single class", "'pos'", "--label-col")


def test_missing_labels_say_how_many_and_which(tmp_path, capsys):
    f = tmp_path / "miss.csv"
    df = sentiment_corpus(20)
    df.loc[[2, 9], "label"] = None
    df.to_csv(f, index=False)
    assert_usage_error(*_train(capsys, f)[::2], "missing on 2 of 20 rows", "file lines 4, 11")


def test_empty_texts(tmp_path, capsys):
    f = tmp_path / "empty.csv"
    df = sentiment_corpus(20)
    df.loc[4, "text"] = ""
    df.to_csv(f, index=False)
    assert_usage_error(*_train(capsys, f)[::2], "text column 'text'", "empty on 1 of 20 rows", "file lines 6")


def test_numeric_text_column(tmp_path, capsys):
    f = tmp_path / "num.csv"
    sentiment_corpus(20).assign(stars=range(20)).to_csv(f, index=False)
    assert_usage_error(*_train(capsys, f, "--text-col", "stars")[::2], "'stars'", "holds numbers", "--text-col")


def test_label_column_that_is_not_classes(corpus_csv, capsys):
    code, _, err = run_cli(capsys, "train", "text", corpus_csv, "--text-col", "review", "--label-col", "stars",
                           "--out", corpus_csv.parent / "run-stars", "-q")
    assert_usage_error(code, err, "'stars'", "200 different values in 200 rows", "--label-col")


def test_unknown_column_suggests(tmp_path, capsys):
    f = tmp_path / "c.csv"
    sentiment_corpus(20).to_csv(f, index=False)
    assert_usage_error(*_train(capsys, f, "--label-col", "lable")[::2], "'lable'", "did you mean 'label'")


def test_bad_flags(tmp_path, capsys):
    f = tmp_path / "c.csv"
    sentiment_corpus(20).to_csv(f, index=False)
    assert_usage_error(*_train(capsys, f, "--beta", "2")[::2], "--beta")
    assert_usage_error(*_train(capsys, f, "--C", "0")[::2], "--C")
    assert_usage_error(*_train(capsys, f, "--encoder", f)[::2], "--encoder is for --method rnn")
    assert_usage_error(*_train(capsys, f, "--checkpoint-every", "1")[::2], "--checkpoint-every", "fitted at once")


def test_rnn_method_from_a_language_model_encoder(tmp_path, capsys):
    pytest.importorskip("deepfit.text.classifier")
    import torch

    from deepfit import load_learner
    from deepfit.text import TextLMDataLoaders, language_model_learner
    df = sentiment_corpus(40)
    from deepfit.text import WordTokenizer
    lm_dls = TextLMDataLoaders.from_texts(df.text.tolist(), tokenizer=WordTokenizer(lower=False), bs=4, bptt=8, seed=0)
    lm = language_model_learner(lm_dls, emb_size=8, n_hid=16, n_layers=1, progress=False)
    enc = lm.save_encoder(tmp_path / "enc")
    f = tmp_path / "s.csv"
    df.to_csv(f, index=False)
    code, _, err = run_cli(capsys, "train", "text", f, "--method", "rnn", "--encoder", enc, "--epochs", "3",
                           "--lr", "0.01", "--lr-find-iters", "0", "--bs", "16", "--out", tmp_path / "run", "-q")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "run.json").read_text())["summary"]
    # ULMFiT's stage 3: the head, then one more layer group, then all (one epoch each), halving the top lr
    stages = summary["gradual unfreezing"]
    assert stages["epochs per stage"] == [1, 1, 1]
    assert stages["top lr per stage"] == pytest.approx([0.01, 0.005, 0.0025])
    assert len(pd.read_csv(tmp_path / "run" / "metrics.csv")) == 3  # every epoch of every stage
    from safetensors.torch import load_file
    saved = load_file(str(enc))
    trained = load_learner(tmp_path / "run" / "model.safetensors").model.body.state_dict()
    assert set(saved) <= set(trained)
    rnn_keys = [k for k in saved if k.startswith("rnns.")]
    assert rnn_keys and all(not torch.equal(saved[k], trained[k]) for k in rnn_keys)  # unfrozen at the end
    assert summary["vocabulary"] == len(lm_dls.vocab)  # the classifier reads text with the LM's vocabulary
    tok = load_learner(tmp_path / "run" / "model.safetensors").dls.tokenizer
    assert tok.kind == "word" and tok.lower is False  # and its tokenizer (the default one lower-cases)
