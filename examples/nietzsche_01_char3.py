"""Nietzsche lesson, step 1: predict the 4th character from the 3 before it, with one input weight and
one hidden weight shared by the three steps (fast.ai DL1 2017, lesson 6).

Run: python examples/nietzsche_01_char3.py   (reads $DEEPFIT_DATA/nietzsche/nietzsche.txt, default
../shared/data; CHARS=N uses the first N characters, EPOCHS=N the epochs at each learning rate)
"""
import os
from pathlib import Path

import torch

from deepfit import DataLoaders, Learner, set_seed
from deepfit.data.core import split_indices
from deepfit.losses import CrossEntropyLoss
from deepfit.text import CharLM3, Vocab, char_windows
from deepfit.text.metrics import accuracy

set_seed(42)
torch.set_num_threads(1)
DATA = Path(os.environ.get("DEEPFIT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
text = (DATA / "nietzsche" / "nietzsche.txt").read_text(encoding="utf-8")
text = text[: int(os.environ.get("CHARS", len(text)))]
EPOCHS = int(os.environ.get("EPOCHS", "1"))

# 1. Every character of the text is a token (no lower-casing), plus xxunk for characters never seen.
vocab = Vocab.build([list(text)], specials=("xxunk",))
ids = vocab.numericalize(list(text))
print("corpus length:", len(text), " total chars:", len(vocab))
print(repr(text[:400]))
print("first ids:", ids[:10].tolist())

# 2. Non-overlapping windows of 3 characters; the target is the character after each window.
x, y = char_windows(ids, 3, stride=3)
print("x:", x[:4].tolist(), "\ny:", y[:4].tolist(), "\nshapes:", tuple(x.shape), tuple(y.shape))
trn, val = split_indices(len(x), 0.2, seed=42)
dls = DataLoaders.from_tensors(x[trn], y[trn], x[val], y[val], bs=512, device="cpu", seed=42)

# 3. h = tanh(W_h (h + relu(W_in e(c)))) three times, then the output layer: n_fac 42, n_hidden 256.
model = CharLM3(len(vocab), n_fac=42, n_hidden=256)
learn = Learner(dls, model, loss_func=CrossEntropyLoss(), wd=0.0, metrics=[accuracy])
learn.fit(EPOCHS, 1e-2)
learn.fit(EPOCHS, 1e-3)


def get_next(inp: str) -> str:
    """The most likely character after the 3 characters `inp`."""
    xb = vocab.numericalize(list(inp))[None]
    model.eval()
    with torch.no_grad():
        return vocab.itos[int(model(xb).argmax(-1))]


for s in ("y. ", "ppl", " th", "and"):
    print(f"get_next({s!r}) = {get_next(s)!r}")
