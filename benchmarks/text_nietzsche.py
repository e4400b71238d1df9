"""Character language models on Nietzsche: the course lesson's sequence, a better LM, and speed.

Three parts (`--part`), each printing a table and appending JSON lines to `--out`:

* `lesson`: every model of the lesson (fast.ai DL1 2017, lesson 6) in the lesson's setting: the same
  sizes (n_fac 42, n_hidden 256 / 512), batch sizes (512 for windows, 64 x bptt 8 for the stateful
  models), optimizer (Adam, the lesson's learning rates and epochs, weight decay 0 except 1e-5 for the
  LSTM) and data: steps 1-5 read the raw text (every character in the vocabulary), windows of 3 or 8
  characters, a random 20% of the windows for validation (seed 42); steps 6-7 read the lower-cased
  text, characters seen at least 3 times (others -> xxunk), its first 80% for training and the last
  20% for validation. `--cap-min` stops a model after the epoch that passes that many minutes (the
  table says how many of the lesson's epochs ran).
* `best`: the best deepfit LM within `--budget-min` minutes on the lesson's split and vocabulary
  (2-layer LSTM `--n-hid` 512, random bptt `--bptt` 16, AWD-LSTM regularisation at `--drop-mult` 0.2,
  fit_one_cycle(`--epochs`, `--lr` 1e-2)); validation loss after every epoch against wall and CPU minutes.
* `speed`: training tokens per second of deepfit's Learner (`language_model_learner`), a hand-written
  PyTorch loop on the same model (`RNNLanguageModel`), the same batches, optimizer, AR/TAR and gradient
  clipping (one epoch with validation each), and (when importable) fastai 2.8.12's
  `language_model_learner` with `AWD_LSTM` of the same sizes (tied embeddings, so that the layers have
  the same shapes) on the same character stream. The runs are interleaved, `--repeats` each; medians
  of wall and process CPU time.

Run (1 torch thread by default; fastai lives in its own virtualenv):
    PYTHONPATH=$PWD .venv/bin/python benchmarks/text_nietzsche.py --part lesson [--cap-min 3]
    PYTHONPATH=$PWD .venv/bin/python benchmarks/text_nietzsche.py --part best --budget-min 25
    PYTHONPATH=$PWD benchmarks/.fastai-venv/bin/python benchmarks/text_nietzsche.py --part speed
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from deepfit import DataLoaders, Learner, set_seed
from deepfit.callbacks import Callback, CancelFit, MixedPrecision
from deepfit.data.core import split_indices
from deepfit.losses import CrossEntropyLoss
from deepfit.optim import Adam
from deepfit.text import (CharLM3, CharLoopRNN, CharRNN, CharSeqRNN, LMLearner, RNNLanguageModel, StatefulRNN,
                          TextLMDataLoaders, Vocab, char_windows, language_model_learner)
from deepfit.text.metrics import accuracy as tok_accuracy
from deepfit.text.models import AWD_DEFAULTS

SEED = 42


def log(out: Path, row: dict[str, Any]) -> None:
    row = {"time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), **row}
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


class TimeCap(Callback):
    """Stop the fit after the epoch during which `minutes` have passed (complete epochs only)."""

    order = 60  # after the Recorder has logged the epoch

    def __init__(self, t0: float, minutes: float | None) -> None:
        self.t0, self.minutes = t0, minutes

    def after_epoch(self) -> None:
        if self.minutes is not None and time.perf_counter() - self.t0 > self.minutes * 60:
            raise CancelFit()


# ---- lesson ---------------------------------------------------------------------------------------------
def lesson(text: str, out: Path, cap_min: float | None, only: list[str] | None) -> None:
    vocab = Vocab.build([list(text)], specials=("xxunk",))
    ids = vocab.numericalize(list(text))
    V = len(vocab)

    def window_dls(n: int, stride: int, seq: bool) -> DataLoaders:
        x, y = char_windows(ids, n, stride=stride, seq_targets=seq)
        tr, va = split_indices(len(x), 0.2, seed=SEED)
        tr, va = torch.from_numpy(tr), torch.from_numpy(va)
        return DataLoaders.from_tensors(x[tr], y[tr], x[va], y[va], bs=512, device="cpu", seed=SEED)

    lm = TextLMDataLoaders.from_text(text, tokenizer="char", lower=True, min_freq=3, valid_pct=0.2, bs=64, bptt=8,
                                     device="cpu", seed=SEED)
    steps: list[tuple[str, str, Callable[[], Any], Any, list[tuple[int, float]], float, float]] = [
        # name, what, data, model, [(epochs, lr)...], wd, lesson's loss (nan: not given in the issue)
        ("1 CharLM3", "3 chars -> 4th, shared weights", lambda: window_dls(3, 3, False),
         lambda: CharLM3(V, 42, 256), [(1, 1e-2), (1, 1e-3)], 0.0, math.nan),
        ("2a CharLoopRNN add", "loop over 8 chars, input added", lambda: window_dls(8, 1, False),
         lambda: CharLoopRNN(V, 42, 256), [(1, 1e-2), (1, 1e-3)], 0.0, math.nan),
        ("2b CharLoopRNN concat", "loop over 8 chars, input concatenated", lambda: window_dls(8, 1, False),
         lambda: CharLoopRNN(V, 42, 256, concat=True), [(1, 1e-3), (1, 1e-4)], 0.0, math.nan),
        ("3 CharRNN", "nn.RNN on 8-char windows -> next char", lambda: window_dls(8, 1, False),
         lambda: CharRNN(V, 42, 256), [(4, 1e-3), (2, 1e-4)], 0.0, 1.504),
        ("4 CharSeqRNN", "predict at every position", lambda: window_dls(8, 8, True),
         lambda: CharSeqRNN(V, 42, 256), [(4, 1e-3), (1, 1e-4)], 0.0, math.nan),
        ("5 CharSeqRNN identity", "identity init of hidden weights", lambda: window_dls(8, 8, True),
         lambda: CharSeqRNN(V, 42, 256, identity_init=True), [(4, 1e-2), (4, 1e-3)], 0.0, math.nan),
        ("6 StatefulRNN", "stateful RNN, lower, min_freq 3, bptt 8", lambda: lm,
         lambda: StatefulRNN(len(lm.vocab), 42, 256), [(4, 1e-3)], 0.0, 1.486),
        ("7a stateful GRU", "RNNLanguageModel(arch=gru), 1 layer 256", lambda: lm,
         lambda: RNNLanguageModel(len(lm.vocab), 42, 256, 1, arch="gru", tie_weights=False),
         [(6, 1e-2), (3, 1e-3)], 0.0, 1.370),
        ("7b stateful LSTM 2x512", "2 layers, dropout 0.5; 2 epochs then SGDR 1+2+4+8", lambda: lm,
         lambda: RNNLanguageModel(len(lm.vocab), 42, 512, 2, arch="lstm", tie_weights=False, hidden_drop=0.5,
                                  output_drop=0.5), [(2, 1e-2), (-4, 1e-2)], 1e-5, 1.315),
    ]
    for name, what, data, make, plan, wd, ref in steps:
        if only and not any(name.startswith(o) for o in only):
            continue
        set_seed(SEED)
        dls = data()
        stateful = isinstance(dls, TextLMDataLoaders)
        model = make()
        cls = LMLearner if stateful else Learner
        learn = cls(dls, model, loss_func=CrossEntropyLoss(), opt_func=Adam, wd=wd,
                    metrics=[tok_accuracy], progress=False)
        lesson_epochs = sum(e if e > 0 else 2 ** (-e) - 1 for e, _ in plan)
        t0, c0 = time.perf_counter(), time.process_time()
        cap = TimeCap(t0, cap_min)
        done, rows = 0, []
        for e, lr in plan:
            if e > 0:
                learn.fit(e, lr, cbs=[cap])
            else:  # SGDR: -e cycles of 1, 2, 4... epochs
                learn.fit_sgdr(-e, lr, cycle_len=1, cycle_mult=2, cbs=[cap])
            rows += learn.recorder.log
            done += len(learn.recorder.log)
            if time.perf_counter() - t0 > (cap_min or math.inf) * 60:
                break
        last = rows[-1]
        log(out, {"part": "lesson", "model": name, "what": what, "epochs_run": done, "lesson_epochs": lesson_epochs,
                  "valid_loss": last["valid_loss"], "accuracy": last.get("accuracy"), "lesson_loss": ref,
                  "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                  "curve": [round(r["valid_loss"], 4) for r in rows], "threads": torch.get_num_threads()})


# ---- best LM ---------------------------------------------------------------------------------------------
class EpochClock(Callback):
    order = 60

    def __init__(self, out: Path, t0: float, budget_min: float) -> None:
        self.out, self.t0, self.budget, self.c0 = out, t0, budget_min, time.process_time()

    def after_epoch(self) -> None:
        r = self.learner.recorder.log[-1]
        log(self.out, {"part": "best", "epoch": r["epoch"], "minutes": (time.perf_counter() - self.t0) / 60,
                       "cpu_minutes": (time.process_time() - self.c0) / 60,
                       "train_loss": r["train_loss"], "valid_loss": r["valid_loss"], "accuracy": r.get("accuracy")})


def best(text: str, out: Path, budget_min: float, n_epoch: int, n_hid: int, bptt: int, lr: float,
         drop_mult: float, bf16: bool = False) -> None:
    set_seed(SEED)
    dls = TextLMDataLoaders.from_text(text, tokenizer="char", lower=True, min_freq=3, valid_pct=0.2, bs=64, bptt=bptt,
                                      random_bptt=True, device="cpu", seed=SEED)
    learn = language_model_learner(dls, arch="lstm", emb_size=64, n_hid=n_hid, n_layers=2, drop_mult=drop_mult,
                                   tie_weights=False, progress=False)
    t0 = time.perf_counter()
    log(out, {"part": "best", "setup": f"2-layer LSTM {n_hid}, emb 64, bptt {bptt} random, bs 64, "
              f"drop_mult {drop_mult}, "
              f"AR/TAR 2/1, clip 0.25, fit_one_cycle({n_epoch}, {lr}), wd 0.01"
              + (", bf16 autocast (MixedPrecision)" if bf16 else ""), "vocab": len(dls.vocab),
              "train_tokens": dls.train.n, "valid_tokens": dls.valid.n, "threads": torch.get_num_threads(),
              "steps_per_epoch": len(dls.train)})
    cbs = [EpochClock(out, t0, budget_min), TimeCap(t0, budget_min)] + ([MixedPrecision()] if bf16 else [])
    learn.fit_one_cycle(n_epoch, lr, cbs=cbs)
    log(out, {"part": "best", "done": True, "minutes": (time.perf_counter() - t0) / 60,
              "sample": learn.generate("the ", 300, temperature=0.6, seed=0)})


# ---- speed -----------------------------------------------------------------------------------------------
SPEED = dict(emb_size=64, n_hid=256, n_layers=2, bs=64, bptt=70, lr=2e-3)


def _regularized_loss(model: RNNLanguageModel, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))
    raw, dropped = model.last_raw_output, model.last_output
    return loss + 2.0 * dropped.pow(2).mean() + 1.0 * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()


def speed(text: str, out: Path, repeats: int, n_tokens: int, bf16: bool = False) -> None:
    dls = TextLMDataLoaders.from_text(text[: int(n_tokens * 1.25) + 1000], tokenizer="char", lower=True, min_freq=3,
                                      valid_pct=0.2, bs=SPEED["bs"], bptt=SPEED["bptt"], device="cpu", seed=SEED)
    V, tokens = len(dls.vocab), dls.train.n

    def deepfit_run() -> int:
        set_seed(SEED)
        learn = language_model_learner(dls, arch="lstm", emb_size=SPEED["emb_size"], n_hid=SPEED["n_hid"],
                                       n_layers=SPEED["n_layers"], tie_weights=True, progress=False, metrics=[])
        learn.fit(1, SPEED["lr"])
        return tokens

    def deepfit_bf16_run() -> int:  # the same, forward passes under bf16 autocast (deepfit's MixedPrecision on CPU)
        set_seed(SEED)
        learn = language_model_learner(dls, arch="lstm", emb_size=SPEED["emb_size"], n_hid=SPEED["n_hid"],
                                       n_layers=SPEED["n_layers"], tie_weights=True, progress=False, metrics=[])
        learn.fit(1, SPEED["lr"], cbs=[MixedPrecision()])
        return tokens

    def hand_run() -> int:
        set_seed(SEED)
        m = RNNLanguageModel(V, SPEED["emb_size"], SPEED["n_hid"], SPEED["n_layers"], tie_weights=True,
                             pad_idx=dls.vocab.pad_idx, **AWD_DEFAULTS)
        opt = Adam(m.parameters(), lr=SPEED["lr"], wd=1e-2)
        m.train()
        m.reset()
        data = dls.train.tensors[0]
        for a in range(0, data.shape[1] - 1, SPEED["bptt"]):
            x, y = data[:, a:a + SPEED["bptt"]], data[:, a + 1:a + 1 + SPEED["bptt"]]
            if x.shape[1] > y.shape[1]:
                x = x[:, : y.shape[1]]
            loss = _regularized_loss(m, m(x), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 0.25)
            opt.step()
            opt.zero_grad(set_to_none=True)
        m.eval()  # validation, as the libraries do after an epoch
        m.reset()
        vd, tot, n = dls.valid.tensors[0], 0.0, 0
        with torch.no_grad():
            for a in range(0, vd.shape[1] - 1, SPEED["bptt"]):
                y = vd[:, a + 1:a + 1 + SPEED["bptt"]]
                out = m(vd[:, a:a + y.shape[1]])
                tot += float(F.cross_entropy(out.reshape(-1, V), y.reshape(-1), reduction="sum"))
                n += y.numel()
        return tokens

    runs: dict[str, Callable[[], int]] = {"deepfit": deepfit_run, "hand": hand_run}
    if bf16:
        runs["deepfit-bf16"] = deepfit_bf16_run
    try:
        runs["fastai"] = _fastai_run(dls)
        if bf16:
            runs["fastai-bf16"] = _fastai_run(dls, bf16=True)
    except ImportError as e:
        print(f"fastai not importable here ({e}); comparing deepfit with the hand loop only", file=sys.stderr)
    res: dict[str, list[tuple[float, float]]] = {k: [] for k in runs}
    trained: dict[str, int] = {}
    for r in range(repeats + 1):  # round 0 is a warm-up (lazy imports, allocator), not counted
        for k, f in runs.items():
            w0, c0 = time.perf_counter(), time.process_time()
            trained[k] = f()
            t = (time.perf_counter() - w0, time.process_time() - c0)
            print(k, r, t, flush=True)
            if r > 0:
                res[k].append(t)
    for k, v in res.items():
        wall, cpu = statistics.median(w for w, _ in v), statistics.median(c for _, c in v)
        log(out, {"part": "speed", "method": k, "tokens": trained[k], "wall_s": wall, "cpu_s": cpu,
                  "tokens_per_s": trained[k] / wall, "tokens_per_cpu_s": trained[k] / cpu, "runs": v,
                  "threads": torch.get_num_threads(), **SPEED})


def _fastai_run(dls: TextLMDataLoaders, bf16: bool = False) -> Callable[[], int]:
    import fastai  # noqa: F401  (ImportError when not in fastai's environment)
    from fastai.data.core import DataLoaders as FaDataLoaders
    from fastai.text.data import LMDataLoader as FaLMDataLoader
    from fastai.text.learner import language_model_learner as fa_lm_learner
    from fastai.text.models.awdlstm import AWD_LSTM, awd_lstm_lm_config
    # the same character stream (deepfit's ids), one document
    train_ids = dls.train.tensors[0].reshape(-1)
    valid_ids = dls.valid.tensors[0].reshape(-1)

    from fastai.callback.core import Callback as FaCallback

    class CountTokens(FaCallback):
        def before_fit(self) -> None:
            self.n = 0

        def after_batch(self) -> None:
            if self.training:
                self.n += self.learn.xb[0].numel()

    def run() -> int:
        set_seed(SEED)
        trn = FaLMDataLoader([train_ids], bs=SPEED["bs"], seq_len=SPEED["bptt"], shuffle=False, num_workers=0)
        val = FaLMDataLoader([valid_ids], bs=SPEED["bs"], seq_len=SPEED["bptt"], num_workers=0)
        fdls = FaDataLoaders(trn, val, device=torch.device("cpu"))
        fdls.vocab = list(dls.vocab.itos)
        # fastai's last layer always outputs emb_sz features; tied weights give deepfit the same shapes
        cfg = dict(awd_lstm_lm_config, emb_sz=SPEED["emb_size"], n_hid=SPEED["n_hid"], n_layers=SPEED["n_layers"],
                   tie_weights=True)
        learn = fa_lm_learner(fdls, AWD_LSTM, config=cfg, pretrained=False, metrics=[])
        if bf16:  # fastai's own switch (its MixedPrecision autocasts on 'cuda' only)
            import fastai.callback.fp16  # noqa: F401  (adds Learner.to_bf16)
            learn = learn.to_bf16()
        count = CountTokens()
        with learn.no_bar(), learn.no_logging():
            learn.fit(1, SPEED["lr"], wd=1e-2, cbs=[count])
        return count.n  # fastai drops the last, shorter batch: count what it trained on
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get(
        "DEEPFIT_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")))
    ap.add_argument("--part", choices=["lesson", "best", "speed"], required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("runs/text_nietzsche.jsonl"))
    ap.add_argument("--cap-min", type=float, default=None, help="lesson: stop a model after this many minutes")
    ap.add_argument("--only", nargs="*", help="lesson: run only the steps whose names start with these")
    ap.add_argument("--budget-min", type=float, default=25.0, help="best: minutes of training")
    ap.add_argument("--epochs", type=int, default=2, help="best: epochs of the 1cycle schedule")
    ap.add_argument("--n-hid", type=int, default=512, help="best: hidden size of the 2 LSTM layers")
    ap.add_argument("--lr", type=float, default=1e-2, help="best: maximum learning rate of the 1cycle schedule")
    ap.add_argument("--drop-mult", type=float, default=0.2, help="best: AWD-LSTM dropout multiplier")
    ap.add_argument("--repeats", type=int, default=3, help="speed: interleaved runs of each method")
    ap.add_argument("--tokens", type=int, default=60000, help="speed: training tokens per run")
    ap.add_argument("--bptt", type=int, default=None, help="best / speed: tokens per row of a batch (16 / 70)")
    ap.add_argument("--speed-hid", type=int, default=SPEED["n_hid"], help="speed: hidden size of the 2 LSTM layers")
    ap.add_argument("--bf16", action="store_true",
                    help="best: train under bf16 autocast; speed: add deepfit and fastai runs with bf16 switched on")
    ap.add_argument("--chars", type=int, default=None, help="use only the first N characters (quick checks)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = args.data / "nietzsche" / "nietzsche.txt"
    if not path.is_file():
        sys.exit(f"{path} not found: pass --data (the folder holding nietzsche/nietzsche.txt)")
    text = path.read_text(encoding="utf-8")
    if args.chars:
        text = text[: args.chars]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.part == "lesson":
        lesson(text, args.out, args.cap_min, args.only)
    elif args.part == "best":
        best(text, args.out, args.budget_min, args.epochs, args.n_hid, args.bptt or 16, args.lr, args.drop_mult,
             args.bf16)
    else:
        SPEED["bptt"] = args.bptt or SPEED["bptt"]
        SPEED["n_hid"] = args.speed_hid
        speed(text, args.out, args.repeats, args.tokens, args.bf16)


if __name__ == "__main__":
    main()
