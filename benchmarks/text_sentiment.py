"""Sentence sentiment (Amazon, IMDB, Yelp; 3 x 1,000 labelled sentences): 10-fold cross-validation of
every text classifier, per source and pooled, with the time each takes.

Parts (`--part`), each printing a markdown table and appending JSON lines to `--out`:

* `bow`: the bag-of-words methods of `deepfit.text.bow` on unigrams and on uni+bigrams, binarised
  features, add-one smoothing, as in Wang & Manning 2012 (whose RT-s numbers are MNB-uni 77.9, MNB-bi 79.0,
  SVM-bi 77.7, NBSVM-uni 78.1, NBSVM-bi 79.4; other data, so the table is a check of the methods, not a
  reproduction):
    - `MNB`: multinomial naive Bayes, `r . x_hat + log(N1/N0)`;
    - `SVM`: L2-regularised L2-loss linear SVM (liblinear), C = 1;
    - `NBSVM`: the paper's: that SVM on `r * x_hat`, interpolated with beta = 0.25;
    - `logreg`: logistic regression (liblinear), C = 1;
    - `NBSVM-lr`: the course's: logistic regression on `r * x_hat`, C = 1, with beta = 0.25;
    - `NB-learner`: the dot-product NB learner, fit_one_cycle(3, 0.02), batch 64 (torch, 1 thread).
  The vocabulary and r are fitted on the nine training folds of each split only (`fold_matrices`: the
  n-grams are counted once, then each fold keeps the columns of n-grams its training folds contain, which
  gives the same matrices as a vectorizer fitted on them). Time: the whole 10-fold run (counting n-grams,
  fitting, predicting), tokenisation excluded (done once per source).
* `speed`: NBSVM-bi 10-fold cross-validation of 10,000 sentences (the 3,000 pooled ones repeated, for
  timing only), from raw text to accuracy (tokenisation included).
* the ULMFiT rows are `benchmarks/text_sentiment_ulmfit.py`'s (it uses `load_sources` and `folds` from here,
  so every method is scored on the same splits)

Run: `PYTHONPATH=$PWD .venv/bin/python benchmarks/text_sentiment.py --part bow` (DEEPFIT_DATA or
`--data` pointing at the folder holding `sentiment-sentences/`).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

SOURCES = {"amazon": "amazon_cells_labelled.txt", "imdb": "imdb_labelled.txt", "yelp": "yelp_labelled.txt"}
PAPER = {"MNB-uni": 77.9, "MNB-bi": 79.0, "SVM-bi": 77.7, "NBSVM-uni": 78.1, "NBSVM-bi": 79.4}


def log(out: Path, row: dict[str, Any]) -> None:
    row = {"time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), **row}
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def load_sources(data: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """(texts, labels) of each source and of all three pooled. The files are `sentence<TAB>label` lines,
    read without quote handling (sentences contain quotes)."""
    import pandas as pd
    out: dict[str, tuple[list[str], np.ndarray]] = {}
    for name, fname in SOURCES.items():
        df = pd.read_csv(data / "sentiment-sentences" / fname, sep="\t", header=None, names=["text", "label"],
                         quoting=csv.QUOTE_NONE, dtype={"text": str})
        out[name] = ([t.strip() for t in df["text"]], df["label"].to_numpy(np.int64))
    out["pooled"] = (sum((out[k][0] for k in SOURCES), []), np.concatenate([out[k][1] for k in SOURCES]))
    return out


def folds(n: int, k: int = 10, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) index pairs of a shuffled k-fold split."""
    perm = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(perm, k)
    return [(np.concatenate(parts[:i] + parts[i + 1:]), parts[i]) for i in range(k)]


def _linear(method: str, **kw: Any) -> Callable[..., np.ndarray]:
    from deepfit.text.bow import fit_linear_weights, linear_scores

    def run(x_tr: Any, y_tr: np.ndarray, x_te: Any) -> np.ndarray:
        W, b = fit_linear_weights(x_tr, y_tr, 2, method, **kw)
        return linear_scores(x_te, W, b).argmax(1)
    return run


def _nb_learner(x_tr: Any, y_tr: np.ndarray, x_te: Any, epochs: int = 3, lr: float = 0.02) -> np.ndarray:
    from deepfit import set_seed
    from deepfit.text.bow import BowLearner, NBDotProduct, _csr_to_ids, n_gram_loader, nb_log_count_ratio
    from deepfit.data.core import DataLoaders
    from deepfit.losses import CrossEntropyLoss
    set_seed(0)
    V = x_tr.shape[1]
    train = n_gram_loader(x_tr, torch.as_tensor(y_tr), V, bs=64, shuffle=True, seed=0)
    model = NBDotProduct(V, 2)
    model.set_r(np.stack([nb_log_count_ratio(x_tr, (y_tr == c).astype(np.int64)) for c in (0, 1)], axis=1))
    learn = BowLearner(DataLoaders(train), model, loss_func=CrossEntropyLoss(), progress=False)
    learn.fit_one_cycle(epochs, lr)
    te_ids, te_cnt = _csr_to_ids(x_te, V)
    model.eval()
    with torch.no_grad():
        return model(te_ids, te_cnt).argmax(1).numpy()


def bow_methods() -> dict[str, Callable[..., np.ndarray]]:
    return {
        "MNB": _linear("nb"),
        "SVM": _linear("svm", C=1.0),
        "NBSVM": _linear("nbsvm", C=1.0, beta=0.25, clf="svm"),
        "logreg": _linear("logreg", C=1.0),
        "NBSVM-lr": _linear("nbsvm", C=1.0, beta=0.25, clf="logreg"),
        "NB-learner": _nb_learner,
    }


def cross_validate(tokens: list[list[str]], y: np.ndarray, ngrams: int, fit_predict: Callable[..., np.ndarray],
                   k: int = 10) -> tuple[float, float, float]:
    """Mean and standard deviation of the accuracy over k folds (in %), and the seconds it took."""
    from deepfit.text.bow import NgramVectorizer, fold_matrices
    accs = []
    t0 = time.perf_counter()
    x_all = NgramVectorizer(ngrams=ngrams).fit_transform_tokens(tokens)
    for tr, te in folds(len(y), k):
        # only the n-grams of the training folds: the same matrices as a vectorizer fitted on them alone
        x_tr, x_te = fold_matrices(x_all, tr, te)
        pred = fit_predict(x_tr, y[tr], x_te)
        accs.append(float((pred == y[te]).mean()) * 100)
    return float(np.mean(accs)), float(np.std(accs)), time.perf_counter() - t0


def part_bow(data: Path, out: Path, methods: list[str] | None = None) -> None:
    from deepfit.text.bow import NgramVectorizer
    sources = load_sources(data)
    tok = NgramVectorizer().tokenizer
    tokens = {name: [tok(t) for t in texts] for name, (texts, _) in sources.items()}
    table = []
    for mname, fn in bow_methods().items():
        if methods and mname not in methods:
            continue
        for ngrams, suffix in ((1, "uni"), (2, "bi")):
            row: dict[str, Any] = {"method": f"{mname}-{suffix}"}
            for name, (_, y) in sources.items():
                mean, std, secs = cross_validate(tokens[name], y, ngrams, fn)
                row[name] = (mean, std, secs)
                log(out, {"part": "bow", "method": row["method"], "source": name, "acc": mean, "std": std,
                          "seconds": secs})
            table.append(row)
            print(f"{row['method']:<15} " + "  ".join(f"{n} {row[n][0]:.1f}±{row[n][1]:.1f} ({row[n][2]:.1f}s)"
                                                      for n in sources), flush=True)
    print("\n| method | " + " | ".join(sources) + " | W&M RT-s |")
    print("|---|" + "---:|" * (len(sources) + 1))
    for row in table:
        cells = " | ".join(f"{row[n][0]:.1f} ± {row[n][1]:.1f} ({row[n][2]:.1f} s)" for n in sources)
        print(f"| {row['method']} | {cells} | {PAPER.get(row['method'], '')} |")


def part_speed(data: Path, out: Path) -> None:
    from deepfit.text.bow import NgramVectorizer, fit_linear_weights, fold_matrices, linear_scores
    texts, y = load_sources(data)["pooled"]
    reps = -(-10_000 // len(texts))
    texts, y = (texts * reps)[:10_000], np.tile(y, reps)[:10_000]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        tok = NgramVectorizer().tokenizer
        tokens = [tok(t) for t in texts]
        accs = []
        x_all = NgramVectorizer(ngrams=2).fit_transform_tokens(tokens)
        for tr, te in folds(len(y), 10):
            x_tr, x_te = fold_matrices(x_all, tr, te)
            W, b = fit_linear_weights(x_tr, y[tr], 2, "nbsvm", clf="logreg")
            accs.append((linear_scores(x_te, W, b).argmax(1) == y[te]).mean())
        times.append(time.perf_counter() - t0)
    log(out, {"part": "speed", "rows": len(y), "seconds": times})
    print(f"NBSVM-bi, 10-fold CV of {len(y):,} sentences from raw text: {min(times):.1f} s best, "
          f"{np.median(times):.1f} s median of {len(times)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["bow", "speed"], default="bow")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("DEEPFIT_DATA", "../shared/data")))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/text_sentiment.jsonl"))
    ap.add_argument("--methods", nargs="*", default=None, help="only these rows of the bow part (e.g. MNB NBSVM)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.data / "sentiment-sentences").is_dir():
        raise SystemExit(f"no sentiment-sentences folder under {args.data}; pass --data or set DEEPFIT_DATA")
    if args.part == "bow":
        part_bow(args.data, args.out, args.methods)
    else:
        part_speed(args.data, args.out)


if __name__ == "__main__":
    main()
