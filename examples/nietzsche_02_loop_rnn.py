"""Nietzsche lesson, steps 2-3: the same model as a loop over 8 characters (adding or concatenating the
input), then PyTorch's nn.RNN doing the loop (fast.ai DL1 2017, lesson 6).

Run: python examples/nietzsche_02_loop_rnn.py   (reads $DEEPFIT_DATA/nietzsche/nietzsche.txt; CHARS=N uses
the first N characters, EPOCHS=N multiplies the lesson's epochs at each learning rate)
"""
import os
import time
from pathlib import Path

import torch

from deepfit import DataLoaders, Learner, set_seed
from deepfit.data.core import split_indices
from deepfit.losses import CrossEntropyLoss
from deepfit.text import CharLoopRNN, CharRNN, Vocab, char_windows
from deepfit.text.metrics import accuracy

set_seed(42)
torch.set_num_threads(1)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
text = (DATA / "nietzsche" / "nietzsche.txt").read_text(encoding="utf-8")
text = text[: int(os.environ.get("CHARS", len(text)))]
EPOCHS = int(os.environ.get("EPOCHS", "1"))
CS = 8  # characters of context

vocab = Vocab.build([list(text)], specials=("xxunk",))
ids = vocab.numericalize(list(text))
# every window of 8 consecutive characters (stride 1) -> the next character; a random 20% for validation
x, y = char_windows(ids, CS, stride=1)
print("windows:", tuple(x.shape), " first:", repr(vocab.textify(x[0])), "->", repr(vocab.itos[int(y[0])]))
trn, val = split_indices(len(x), 0.2, seed=42)
dls = DataLoaders.from_tensors(x[trn], y[trn], x[val], y[val], bs=512, device="cpu", seed=42)


def get_next(model: torch.nn.Module, inp: str) -> str:
    model.eval()
    with torch.no_grad():
        return vocab.itos[int(model(vocab.numericalize(list(inp))[None]).argmax(-1))]


# the lesson's schedules: (epochs, lr) pairs
runs = [("loop, input added", CharLoopRNN(len(vocab), 42, 256), [(1, 1e-2), (1, 1e-3)]),
        ("loop, input concatenated", CharLoopRNN(len(vocab), 42, 256, concat=True), [(1, 1e-3), (1, 1e-4)]),
        ("nn.RNN", CharRNN(len(vocab), 42, 256), [(4, 1e-3), (2, 1e-4)])]
for name, model, plan in runs:
    print(f"\n== {name}: {sum(p.numel() for p in model.parameters())} parameters")
    learn = Learner(dls, model, loss_func=CrossEntropyLoss(), wd=0.0, metrics=[accuracy])
    t0 = time.perf_counter()
    for n, lr in plan:
        learn.fit(n * EPOCHS, lr)
    print(f"{time.perf_counter() - t0:.0f} s")
    for s in ("for thos", "part of ", "queens a"):
        print(f"get_next({s!r}) = {get_next(model, s)!r}")
