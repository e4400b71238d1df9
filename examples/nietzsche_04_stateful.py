"""Nietzsche lesson, steps 6-7: stateful recurrent language models over the whole text (truncated
backpropagation through time, the hidden state carried from batch to batch): an RNN, a GRU and a 2-layer
LSTM with dropout, each generating text at the end (fast.ai DL1 2017, lesson 6).

The lesson's data: the text lower-cased, characters seen at least 3 times (the others read as xxunk),
the first 80% for training and the last 20% for validation, bs 64, bptt 8.

Run: python examples/nietzsche_04_stateful.py   (reads $DEEPFIT_DATA/nietzsche/nietzsche.txt; CHARS=N uses
the first N characters; EPOCHS=N multiplies the lesson's epochs; the LSTM's 17 epochs take hours on a CPU,
so it runs only with LSTM=1)
"""
import os
import time
from pathlib import Path

import torch

from deepfit import set_seed
from deepfit.text import LMLearner, RNNLanguageModel, StatefulRNN, TextLMDataLoaders
from deepfit.text.metrics import accuracy, bits_per_char

set_seed(42)
torch.set_num_threads(1)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
text = (DATA / "nietzsche" / "nietzsche.txt").read_text(encoding="utf-8")
text = text[: int(os.environ.get("CHARS", len(text)))]
EPOCHS = int(os.environ.get("EPOCHS", "1"))

dls = TextLMDataLoaders.from_text(text, tokenizer="char", lower=True, min_freq=3, valid_pct=0.2, bs=64, bptt=8,
                                  device="cpu", seed=42)
V = len(dls.vocab)
print(dls.vocab, f"\n{len(dls.train)} batches per epoch of", tuple(dls.train.one_batch()[0].shape))
dls.show_batch(2)

runs = [("stateful RNN", StatefulRNN(V, 42, 256), [(4, 1e-3)], 0.0),
        ("stateful GRU", RNNLanguageModel(V, 42, 256, 1, arch="gru", tie_weights=False), [(6, 1e-2), (3, 1e-3)], 0.0)]
if os.environ.get("LSTM"):
    runs.append(("2-layer LSTM 512, dropout 0.5",
                 RNNLanguageModel(V, 42, 512, 2, arch="lstm", tie_weights=False, hidden_drop=0.5, output_drop=0.5),
                 [(2, 1e-2), (-4, 1e-2)], 1e-5))  # -4: SGDR, cycles of 1, 2, 4, 8 epochs
for name, model, plan, wd in runs:
    print(f"\n== {name}")
    learn = LMLearner(dls, model, wd=wd, metrics=[accuracy, bits_per_char])
    t0 = time.perf_counter()
    for n, lr in plan:
        if n > 0:
            learn.fit(n * EPOCHS, lr)
        else:
            learn.fit_sgdr(-n, lr, cycle_len=EPOCHS, cycle_mult=2)
    print(f"{time.perf_counter() - t0:.0f} s")
    print(repr(learn.generate("for thos", 400, temperature=0.5, seed=0)))
