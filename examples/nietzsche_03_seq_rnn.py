"""Nietzsche lesson, steps 4-5: predict the next character at every position of an 8-character window
(one loss over all positions, flattened correctly), then identity initialisation of the hidden-to-hidden
weights (fast.ai DL1 2017, lesson 6).

Run: python examples/nietzsche_03_seq_rnn.py   (reads $DEEPFIT_DATA/nietzsche/nietzsche.txt; CHARS=N uses
the first N characters, EPOCHS=N multiplies the lesson's epochs)
"""
import os
import time
from pathlib import Path

import torch

from deepfit import DataLoaders, Learner, set_seed
from deepfit.data.core import split_indices
from deepfit.losses import CrossEntropyLoss
from deepfit.text import CharSeqRNN, Vocab, char_windows
from deepfit.text.metrics import accuracy

set_seed(42)
torch.set_num_threads(1)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
text = (DATA / "nietzsche" / "nietzsche.txt").read_text(encoding="utf-8")
text = text[: int(os.environ.get("CHARS", len(text)))]
EPOCHS = int(os.environ.get("EPOCHS", "1"))

vocab = Vocab.build([list(text)], specials=("xxunk",))
ids = vocab.numericalize(list(text))
# non-overlapping windows; the targets are the windows shifted by one: a target at every position
x, y = char_windows(ids, 8, stride=8, seq_targets=True)
print("x[0]:", repr(vocab.textify(x[0])), " y[0]:", repr(vocab.textify(y[0])))
print("shapes:", tuple(x.shape), tuple(y.shape))
trn, val = split_indices(len(x), 0.2, seed=42)
dls = DataLoaders.from_tensors(x[trn], y[trn], x[val], y[val], bs=512, device="cpu", seed=42)
# the model outputs (bs, 8, vocab) and the targets are (bs, 8): CrossEntropyLoss flattens both the same
# way (row-major), so the loss is the mean over every position of every window

runs = [("sequence RNN", CharSeqRNN(len(vocab), 42, 256), [(4, 1e-3), (1, 1e-4)]),
        ("identity init", CharSeqRNN(len(vocab), 42, 256, identity_init=True), [(4, 1e-2), (4, 1e-3)])]
for name, model, plan in runs:
    print(f"\n== {name}")
    learn = Learner(dls, model, loss_func=CrossEntropyLoss(), wd=0.0, metrics=[accuracy])
    t0 = time.perf_counter()
    for n, lr in plan:
        learn.fit(n * EPOCHS, lr)
    print(f"{time.perf_counter() - t0:.0f} s")
    model.eval()
    with torch.no_grad():
        for s in ("for thos", "part of ", "queens a"):
            out = model(vocab.numericalize(list(s))[None])[0].argmax(-1)
            print(f"{s!r} -> next at each position: {vocab.textify(out)!r}")
