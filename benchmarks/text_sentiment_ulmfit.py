"""ULMFiT-style RNN rows of the sentence-sentiment benchmark (the bag-of-words rows are text_sentiment.py's;
this file uses its data reader and its folds, so every method is scored on the same splits).

Parts (`--part`, default all, in this order), each logging JSON lines to `--out`:

* `lm`: stage 1, an AWD-LSTM language model pre-trained on general English, the text of WikiText-2's
  validation and test files (about 460k words; by default only the first 200k, `--wiki-words`, for the
  time budget; `<unk>` read as deepfit's `xxunk`), then stage 2, that
  model fine-tuned on the text of all 3,000 sentences (no labels; the vocabulary is the sentences' own,
  the WikiText embeddings are copied for shared words: `load_encoder(..., remap_vocab=True)`). The
  encoder of each stage is saved under `--work`.
* `clas`: stage 3, 10-fold cross-validation of the classifier started from the stage-2 encoder, with
  gradual unfreezing and discriminative rates (`fit_gradual`), on each source and on the pooled set,
  on the same folds as text_sentiment.py. Also the same classifier from a random start (no LM), as
  the ablation the ULMFiT paper makes.
* `speed`: tokens per second of one training epoch of the classifier through `Learner.fit` against a
  hand-written loop (same model, same loader, same optimizer, constant lr), alternating, median of 3.

Small by design, for a shared 2-core machine (about 30 minutes of wall time in all, 1 torch thread):
a 2-layer LSTM (embeddings 100, hidden 300, vocabulary of at most 8,000 words) trained for one epoch
of WikiText, where ULMFiT uses a 3-layer 400/1150 AWD-LSTM trained on Wikitext-103 (100M words).
Stage 2 sees the text of every sentence, including those later in test folds (their labels never),
as ULMFiT's own IMDB recipe does with the unlabelled test reviews.

Run: `PYTHONPATH=$PWD .venv/bin/python benchmarks/text_sentiment_ulmfit.py --data /work/shared/data`
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_sentiment import SOURCES, folds, load_sources, log  # noqa: E402  (the same data and folds)

LM_SIZES = {"emb_size": 100, "n_hid": 300, "n_layers": 2}
#: `--bf16`: every learner trains under bf16 autocast (deepfit's MixedPrecision on the CPU)
BF16 = False


def _precision(learn: Any) -> Any:
    if BF16:
        from deepfit.callbacks import MixedPrecision
        learn.add_cb(MixedPrecision())
    return learn


def _now() -> float:
    return time.perf_counter()


def part_lm(data: Path, work: Path, out: Path, lm_epochs: int, ft_epochs: int, bs: int, bptt: int,
            wiki_words: int | None = None, lm_lr: float = 1e-2) -> None:
    from deepfit import set_seed
    from deepfit.text import TextLMDataLoaders, language_model_learner
    set_seed(0)
    text = "\n".join((data / "wikitext-2" / f).read_text(encoding="utf-8").replace("<unk>", "xxunk")
                     for f in ("valid.txt", "test.txt"))
    if wiki_words:
        text = " ".join(text.split(" ")[:wiki_words])
    t0 = _now()
    dls = TextLMDataLoaders.from_text(text, tokenizer="word", valid_pct=0.02, bs=bs, bptt=bptt, max_vocab=8000,
                                      min_freq=2, device="cpu", seed=0)
    t_tok = _now() - t0
    learn = _precision(language_model_learner(dls, drop_mult=0.3, progress=False, **LM_SIZES))
    t0 = _now()
    learn.fit_one_cycle(lm_epochs, lm_lr, moms=(0.8, 0.7, 0.8))
    secs = _now() - t0
    res = learn.recorder.last_valid
    learn.save_encoder(work / "wiki_encoder")
    row = {"part": "lm", "stage": 1, "train_tokens": dls.train.n, "vocab": len(dls.vocab), "epochs": lm_epochs,
           "tokenize_s": t_tok, "train_s": secs, "tokens_per_s": dls.train.n * lm_epochs / secs, **res}
    log(out, row)
    print(f"stage 1: {row}", flush=True)

    texts, _ = load_sources(data)["pooled"]
    set_seed(0)
    tdls = TextLMDataLoaders.from_texts(texts, tokenizer="word", valid_pct=0.1, bs=bs, bptt=bptt, min_freq=2,
                                        device="cpu", seed=0)
    task = _precision(language_model_learner(tdls, drop_mult=0.3, progress=False, **LM_SIZES))
    before = task.validate()
    task.load_encoder(work / "wiki_encoder", remap_vocab=True)
    start = task.validate()
    t0 = _now()
    task.fit_one_cycle(ft_epochs, lm_lr, moms=(0.8, 0.7, 0.8))
    secs = _now() - t0
    task.save_encoder(work / "task_encoder")
    import json
    (work / "task_vocab.json").write_text(json.dumps({"vocab": tdls.vocab.get_state(),
                                                      "tokenizer": tdls.tokenizer.get_state()}))
    row = {"part": "lm", "stage": 2, "train_tokens": tdls.train.n, "vocab": len(tdls.vocab), "epochs": ft_epochs,
           "train_s": secs, "valid_random_init": before, "valid_from_wiki": start, **task.recorder.last_valid}
    log(out, row)
    print(f"stage 2: {row}", flush=True)


def _task_text_parts(work: Path) -> tuple[Any, Any]:
    import json
    from deepfit.text import Vocab, tokenizer_from_state
    st = json.loads((work / "task_vocab.json").read_text())
    return tokenizer_from_state(st["tokenizer"]), Vocab.from_state(st["vocab"])


def _cv(texts: list[str], y: np.ndarray, work: Path, pretrained: bool | str, epochs: tuple[int, ...],
        lr_mults: tuple[float, ...], lr: float, bs: int, n_folds: int) -> tuple[list[float], float]:
    from deepfit import set_seed
    from deepfit.text import TextClassifierDataLoaders, text_classifier_learner
    tok, vocab = _task_text_parts(work)
    accs = []
    t0 = _now()
    for k, (tr, te) in enumerate(folds(len(y), 10)[:n_folds]):
        set_seed(k)
        dls = TextClassifierDataLoaders.from_texts(texts, y.tolist(), valid_idx=te, seed=k, bs=bs, tokenizer=tok,
                                                   vocab=vocab, device="cpu")
        if pretrained == "onecycle":  # the LM's encoder as the starting point, trained as the scratch row is
            learn = _precision(text_classifier_learner(dls, encoder=work / "task_encoder.safetensors",
                                                       drop_mult=0.5, progress=False))
            learn.unfreeze()
            learn.fit_one_cycle(sum(epochs), lr / 4, moms=(0.8, 0.7, 0.8))
        elif pretrained:
            learn = _precision(text_classifier_learner(dls, encoder=work / "task_encoder.safetensors",
                                                       drop_mult=0.5, progress=False))
            learn.fit_gradual(lr, epochs=epochs, lr_mults=lr_mults)
        else:
            learn = _precision(text_classifier_learner(dls, drop_mult=0.5, progress=False, **LM_SIZES))
            learn.fit_one_cycle(sum(epochs), lr / 4, moms=(0.8, 0.7, 0.8))
        probs, targs = learn.get_preds()
        accs.append(float((probs.argmax(1) == targs).float().mean()) * 100)
        print(f"  fold {k}: {accs[-1]:.1f}  ({_now() - t0:.0f} s so far)", flush=True)
    return accs, _now() - t0


def part_clas(data: Path, work: Path, out: Path, bs: int, lr: float, epochs: tuple[int, ...],
              lr_mults: tuple[float, ...], sources: list[str], scratch: bool | str, n_folds: int) -> None:
    all_sources = load_sources(data)
    table = []
    kinds: list[tuple[str, bool | str]] = [("ULMFiT-lstm", True)] + ([("LSTM-no-LM", False)] if scratch else [])
    if scratch == "only":
        kinds = [("LSTM-no-LM", False)]
    if scratch == "lm-init":
        kinds = [("LSTM-LM-init", "onecycle")]
    for name in sources:
        texts, y = all_sources[name]
        for method, pretrained in kinds:
            accs, secs = _cv(texts, y, work, pretrained, epochs, lr_mults, lr, bs, n_folds)
            row = {"part": "rnn", "method": method, "source": name, "acc": float(np.mean(accs)),
                   "std": float(np.std(accs)), "seconds": secs, "folds": accs, "epochs": list(epochs)}
            log(out, row)
            table.append(row)
            print(f"{method:<12} {name:<7} {row['acc']:.1f} ± {row['std']:.1f}  ({secs:.0f} s)", flush=True)


def part_speed(data: Path, work: Path, out: Path, bs: int, repeats: int, n_sentences: int = 3000) -> None:
    """Tokens/s of one epoch through Learner.fit against a hand loop on the same model, loader and optimizer."""
    from deepfit import set_seed
    from deepfit.optim import Adam
    from deepfit.text import TextClassifierDataLoaders, text_classifier_learner
    texts, y = load_sources(data)["pooled"]
    texts, y = texts[:n_sentences], y[:n_sentences]
    dls = TextClassifierDataLoaders.from_texts(texts, y.tolist(), valid_pct=0, seed=0, bs=bs, device="cpu")
    n_tokens = int(dls.train.lengths.sum())
    set_seed(0)
    learn = text_classifier_learner(dls, drop_mult=0.5, progress=False, **LM_SIZES)
    model, loss_func = learn.model, learn.loss_func
    init = {k: v.clone() for k, v in model.state_dict().items()}

    def run_learner() -> tuple[float, float]:
        model.load_state_dict(init)
        learn.opt = None
        t0, c0 = _now(), time.process_time()
        learn.fit(1, 1e-3)
        return _now() - t0, time.process_time() - c0

    def run_hand() -> tuple[float, float]:
        model.load_state_dict(init)
        opt = Adam([{"params": g} for g in learn.layer_groups()], lr=1e-3)
        for g in opt.param_groups:
            g["wd"] = learn.wd
        t0, c0 = _now(), time.process_time()
        model.train()
        for x, lens, yb in dls.train:
            loss = loss_func(model(x, lens), yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return _now() - t0, time.process_time() - c0

    def run_loader() -> tuple[float, float]:
        t0, c0 = _now(), time.process_time()
        for _ in dls.train:
            pass
        return _now() - t0, time.process_time() - c0

    # wall and CPU seconds; on a shared machine the CPU time is the fair measure (1 torch thread)
    times: dict[str, list[tuple[float, float]]] = {"learner": [], "hand": [], "loader": []}
    for _ in range(repeats):
        times["learner"].append(run_learner())
        times["hand"].append(run_hand())
        times["loader"].append(run_loader())
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    row = {"part": "rnn_speed", "sentences": len(texts), "tokens": n_tokens, "batches": len(dls.train), "bs": bs,
           "times_wall_cpu": times, "learner_tok_per_cpu_s": n_tokens / cpu["learner"],
           "hand_tok_per_cpu_s": n_tokens / cpu["hand"], "ratio_cpu": cpu["learner"] / cpu["hand"],
           "ratio_wall": wall["learner"] / wall["hand"], "loader_share_cpu": cpu["loader"] / cpu["hand"]}
    log(out, row)
    print(f"speed: {row}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["all", "lm", "clas", "speed"], default="all")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("DEEPFIT_DATA", "../shared/data")))
    ap.add_argument("--out", type=Path, default=Path("/tmp/deepfit_ulmfit/results.jsonl"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/deepfit_ulmfit"),
                    help="where the encoders are kept")
    ap.add_argument("--lm-epochs", type=int, default=1)
    ap.add_argument("--ft-epochs", type=int, default=3)
    ap.add_argument("--lm-lr", type=float, default=1e-2, help="1cycle lr of stages 1 and 2")
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=50)
    ap.add_argument("--lr", type=float, default=2e-2)
    ap.add_argument("--epochs", type=int, nargs="+", default=[1, 1, 1, 2], help="fit_gradual epochs per stage")
    ap.add_argument("--lr-mults", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.05],
                    help="fit_gradual learning-rate multiplier per stage")
    ap.add_argument("--folds", type=int, default=10, help="run only the first k of the 10 folds (smoke tests)")
    ap.add_argument("--wiki-words", type=int, default=200_000,
                    help="use only the first n words of WikiText (0: all of it)")
    ap.add_argument("--sources", nargs="+", default=list(SOURCES) + ["pooled"])
    ap.add_argument("--scratch", action="store_true", help="also the classifier without a language model")
    ap.add_argument("--only-scratch", action="store_true", help="only the classifier without a language model")
    ap.add_argument("--only-lm-init", action="store_true",
                    help="only the classifier started from the LM's encoder and trained as the no-LM row (all "
                         "layers, one cycle of sum(--epochs) epochs at --lr / 4)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speed-sentences", type=int, default=3000, help="sentences of the speed part")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16", action="store_true", help="train every model under bf16 autocast (MixedPrecision)")
    args = ap.parse_args()
    global BF16
    BF16 = args.bf16
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part in ("all", "lm"):
        part_lm(args.data, args.work, args.out, args.lm_epochs, args.ft_epochs, args.bs, args.bptt, args.wiki_words,
                args.lm_lr)
    if args.part in ("all", "clas"):
        part_clas(args.data, args.work, args.out, args.bs, args.lr, tuple(args.epochs), tuple(args.lr_mults),
                  args.sources, "lm-init" if args.only_lm_init else "only" if args.only_scratch else args.scratch, args.folds)
    if args.part in ("all", "speed"):
        part_speed(args.data, args.work, args.out, args.bs, args.repeats, args.speed_sentences)


if __name__ == "__main__":
    main()
