"""`LMLearner` (a Learner that generates text) and `language_model_learner`.

Example:
    >>> dls = TextLMDataLoaders.from_file("nietzsche.txt", tokenizer="char", bs=64, bptt=70)  # doctest: +SKIP
    >>> learn = language_model_learner(dls, arch="lstm", emb_size=400, n_hid=1150, n_layers=3)  # doctest: +SKIP
    >>> learn.fit_one_cycle(10, 2e-3)                                                         # doctest: +SKIP
    >>> learn.generate("the meaning of ", 200, temperature=0.8)                                # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..callbacks.core import Callback
from ..callbacks.recorder import Recorder
from ..callbacks.training import GradientClip
from ..data.core import DataLoader
from ..learner import Learner
from ..losses import activation_for
from ..optim import Adam
from ..utils import listify
from .callbacks import LMRecorder, ResetHidden, RNNRegularizer
from .io import TextDataError
from .metrics import accuracy, perplexity
from .models import AWD_DEFAULTS, RNNLanguageModel, lm_splitter
from .tokenize import SPECIAL_TOKENS

__all__ = ["LMLearner", "language_model_learner"]


class LMLearner(Learner):
    """A `Learner` for language models: stateful models are reset at the start of every epoch and
    validation (`ResetHidden`), the validation loss is the mean cross entropy per token (`LMRecorder`),
    and `generate` continues a text. The arguments are `Learner`'s; `dls` must have `vocab` and
    `tokenizer` (e.g. `TextLMDataLoaders`) for `generate` and `predict`."""

    def default_callbacks(self, progress: bool) -> list[Callback]:
        """`Learner`'s, with `LMRecorder` for `Recorder` and `ResetHidden` added."""
        cbs = [LMRecorder() if type(c) is Recorder else c for c in super().default_callbacks(progress)]
        return cbs + [ResetHidden()]

    # ---- helpers ------------------------------------------------------------------------------------
    def _reset_model(self) -> None:
        reset = getattr(getattr(self.model, "module", self.model), "reset", None)
        if callable(reset):
            reset()

    @contextlib.contextmanager
    def _inference(self) -> Iterator[None]:
        # eval mode, no gradients, a fresh hidden state before and after; the mode is put back
        was_training = self.model.training
        self.model.eval()
        self._reset_model()
        try:
            with torch.no_grad():
                yield
        finally:
            self._reset_model()
            self.model.train(was_training)

    def _text_parts(self, what: str) -> tuple[Any, Any]:
        vocab, tok = getattr(self.dls, "vocab", None), getattr(self.dls, "tokenizer", None)
        if vocab is None or tok is None:
            raise TypeError(f"{what} needs DataLoaders with a vocabulary and a tokenizer (TextLMDataLoaders); "
                            f"these are {type(self.dls).__name__}.")
        return vocab, tok

    def _prefix_ids(self, prefix: str) -> tuple[list[str], list[int]]:
        if not isinstance(prefix, str):
            raise TypeError(f"`prefix` must be a str; received {type(prefix).__name__}.")
        vocab, tok = self._text_parts("generate")
        toks = tok(prefix) if prefix else []
        content = [t for t in toks if t not in SPECIAL_TOKENS]
        unknown = [t for t in content if t not in vocab.stoi]
        if content and len(unknown) == len(content):
            shown = ", ".join(repr(t) for t in list(dict.fromkeys(unknown))[:10])
            raise TextDataError(f"The prefix {prefix[:60]!r} is made only of tokens the model never saw in training "
                                f"({shown}): give a prefix with known words or characters.")
        ids = vocab.numericalize(toks).tolist() if toks else []
        if not ids:
            if vocab.bos_idx is None:
                raise TextDataError("The prefix is empty and this vocabulary has no beginning-of-text token to "
                                    "start from: give a prefix of at least one known token.")
            toks, ids = [], [vocab.bos_idx]
        return toks, ids

    def _next_logits(self, ids: list[int], first: bool) -> torch.Tensor:
        model, dev = self.model, self.dls.device
        stateful = callable(getattr(getattr(model, "module", model), "reset", None))
        n_ctx = getattr(model, "n_context", None)
        if stateful:  # feed the whole prefix once, then one token at a time
            inp = ids if first else ids[-1:]
        elif n_ctx is not None:
            if len(ids) < n_ctx:
                raise TextDataError(f"This {type(model).__name__} reads windows of {n_ctx} tokens: give a prefix of "
                                    f"at least {n_ctx} tokens (this one has {len(ids)}).")
            inp = ids[-n_ctx:]
        else:
            inp = ids
        out = model(torch.tensor([inp], dtype=torch.long, device=dev))
        return (out[0, -1] if out.ndim == 3 else out[0]).float()

    # ---- generation -----------------------------------------------------------------------------------
    def generate(self, prefix: str, n: int, temperature: float = 1.0, top_k: int | None = None,
                 greedy: bool = False, seed: int | None = None) -> str:
        """Continue `prefix` with `n` tokens and return the prefix and continuation as text.

        Each token is the most likely one (`greedy`) or drawn from the softmax of logits / `temperature`
        (lower: safer and more repetitive; higher: more surprising), restricted to the `top_k` most likely
        tokens when given. The unknown and padding tokens are never produced.

        Args:
            prefix: the start of the text (tokenized as in training; may be empty when the vocabulary
                has a beginning-of-text token).
            n: number of tokens to generate (characters with a character tokenizer).
            temperature: > 0.
            top_k: sample only among the k most likely tokens.
            greedy: always take the most likely token (temperature and top_k are ignored).
            seed: seed of the sampling, so the same call gives the same text.

        Raises:
            TextDataError: the prefix is made only of unknown tokens (or is empty with no `xxbos`).
            ValueError: bad `n`, `temperature` or `top_k`.

        Example:
            >>> learn.generate("the ", 100, temperature=0.7, seed=0)   # doctest: +SKIP
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"`n` must be a whole number of tokens >= 0; received n={n!r}.")
        if not temperature > 0:
            raise ValueError(f"`temperature` must be > 0; received temperature={temperature!r}.")
        if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
            raise ValueError(f"`top_k` must be a positive whole number or None; received top_k={top_k!r}.")
        vocab, tok = self._text_parts("generate")
        toks, ids = self._prefix_ids(prefix)
        banned = [i for i in (vocab.unk_idx, vocab.pad_idx) if i is not None]
        gen = torch.Generator(device=self.dls.device).manual_seed(seed) if seed is not None else None
        new: list[int] = []
        with self._inference():
            for step in range(n):
                logits = self._next_logits(ids + new, first=step == 0)
                if banned and len(banned) < logits.numel():
                    logits[banned] = float("-inf")
                if greedy:
                    nxt = int(logits.argmax())
                else:
                    logits = logits / temperature
                    if top_k is not None and top_k < logits.numel():
                        kth = torch.topk(logits, top_k).values[-1]
                        logits = logits.masked_fill(logits < kth, float("-inf"))
                    probs = F.softmax(logits, dim=-1)
                    nxt = int(torch.multinomial(probs, 1, generator=gen))
                new.append(nxt)
        return tok.decode(toks + vocab.lookup(new))

    def predict(self, item: Any) -> tuple[str, torch.Tensor, torch.Tensor]:
        """The most likely next token after the text `item`: `(token, its id, probabilities of every token)`."""
        vocab, _ = self._text_parts("predict")
        _, ids = self._prefix_ids(item)
        with self._inference():
            probs = F.softmax(self._next_logits(ids, first=True), dim=-1)
        idx = probs.argmax()
        return vocab.itos[int(idx)], idx, probs

    # ---- the encoder on its own (ULMFiT: start a classifier or another language model from it) ----------
    def _encoder_file(self, name: str | Path) -> Path:
        p = Path(name)
        if p.suffix == "":
            p = p.with_suffix(".safetensors")
        return p if p.is_absolute() or p.parent != Path(".") else self.path / self.model_dir / p

    def save_encoder(self, name: str | Path) -> Path:
        """Write the embedding and recurrent layers (not the decoder) of an `RNNLanguageModel`, with its
        sizes and vocabulary, to `path/model_dir/name.safetensors` (or the path given), for
        `text_classifier_learner(..., encoder=...)` or another language model's `load_encoder`."""
        from .encoder import save_encoder
        vocab = getattr(self.dls, "vocab", None)
        return save_encoder(self.model, self._encoder_file(name), vocab=vocab,
                            tokenizer=getattr(self.dls, "tokenizer", None))

    def load_encoder(self, name: str | Path, remap_vocab: bool = False) -> "LMLearner":
        """Load an encoder written by `save_encoder` into this language model (the decoder is kept).
        With `remap_vocab` the file may have another vocabulary (ULMFiT's stage 2: a model pre-trained on
        general text, fine-tuned on a task's text): tokens in both get their trained embedding, the
        others the mean one.

        Raises:
            EncoderMismatchError: other sizes, or another vocabulary without `remap_vocab`.
        """
        from .encoder import load_encoder
        vocab = getattr(self.dls, "vocab", None)
        load_encoder(self.model, self._encoder_file(name), itos=vocab.itos if vocab is not None else None,
                     remap_vocab=remap_vocab)
        self.opt = None  # no stale optimizer state for the new weights
        self._reset_model()
        return self

    def get_preds(self, dl: DataLoader | None = None, with_loss: bool = False, with_input: bool = False,
                  activation: bool = True) -> tuple[torch.Tensor, ...]:
        """As `Learner.get_preds`, from a fresh hidden state (and leaving a fresh one behind). For an
        `LMDataLoader` (default the validation stream) the batches are joined along the sequence: the
        predictions are (bs, n, vocab) and the targets (bs, n) for the loader's (bs, n + 1) token matrix, and
        the losses (`with_loss`) are per token, (bs, n)."""
        from .data import LMDataLoader
        dl = dl if dl is not None else self.dls.valid
        if not isinstance(dl, LMDataLoader):
            self._reset_model()
            try:
                return super().get_preds(dl, with_loss=with_loss, with_input=with_input, activation=activation)
            finally:
                self._reset_model()
        self._check_device()
        act = activation_for(self.loss_func) if activation else (lambda t: t)
        preds, targs, losses, inputs = [], [], [], []
        with self._inference():
            for xb, yb in dl:
                out = self.model(xb).float()
                preds.append(act(out))
                targs.append(yb)
                if with_loss:
                    losses.append(F.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1),
                                                  reduction="none").view(yb.shape))
                if with_input:
                    inputs.append(xb)
        res: list[Any] = [torch.cat(inputs, 1)] if with_input else []
        res += [torch.cat(preds, 1), torch.cat(targs, 1)]
        if with_loss:
            res.append(torch.cat(losses, 1))
        return tuple(res)


def language_model_learner(dls: Any, arch: str = "lstm", emb_size: int = 400, n_hid: int = 1150, n_layers: int = 3,
                           drop_mult: float = 1.0, tie_weights: bool = True, metrics: Sequence[Any] | None = None,
                           alpha: float = 2.0, beta: float = 1.0, clip: float | None = 0.25,
                           opt_func: Callable[..., torch.optim.Optimizer] = Adam, lr: float = 2e-3,
                           wd: float | None = 1e-2, cbs: Sequence[Callback] | Callback = (),
                           path: str | Path = ".", progress: bool = True) -> LMLearner:
    """An `LMLearner` with an `RNNLanguageModel` (AWD-LSTM for arch="lstm") sized for `dls.vocab`.

    Args:
        dls: `TextLMDataLoaders` (or DataLoaders with a `vocab`).
        arch: "lstm", "gru" or "rnn".
        emb_size, n_hid, n_layers: embedding size, hidden size, number of layers.
        drop_mult: multiplies every AWD-LSTM dropout probability (`AWD_DEFAULTS`); 0 disables dropout.
        tie_weights: share the embedding matrix with the decoder.
        metrics: default token accuracy and perplexity.
        alpha, beta: AR and TAR weights (`RNNRegularizer`; 0 and 0 to disable).
        clip: clip the gradient norm to this (None: no clipping).
        opt_func, lr, wd, cbs, path, progress: as for `Learner`. The layer groups (`lm_splitter`) are one
            per recurrent layer, then the embedding with the decoder.

    Example:
        >>> learn = language_model_learner(dls, arch="gru", emb_size=42, n_hid=256, n_layers=1,
        ...                                drop_mult=0, tie_weights=False)     # doctest: +SKIP
    """
    vocab = getattr(dls, "vocab", None)
    if vocab is None:
        raise TypeError(f"language_model_learner needs DataLoaders with a vocabulary (TextLMDataLoaders); "
                        f"received {type(dls).__name__}.")
    if not drop_mult >= 0:
        raise ValueError(f"`drop_mult` must be >= 0; received drop_mult={drop_mult!r}.")
    drops = {k: v * drop_mult for k, v in AWD_DEFAULTS.items()}
    model = RNNLanguageModel(len(vocab), emb_size=emb_size, n_hid=n_hid, n_layers=n_layers, arch=arch,
                             tie_weights=tie_weights, pad_idx=vocab.pad_idx, **drops)
    extra: list[Callback] = []
    if alpha or beta:
        extra.append(RNNRegularizer(alpha=alpha, beta=beta))
    if clip is not None:
        extra.append(GradientClip(clip))
    return LMLearner(dls, model, opt_func=opt_func, lr=lr, wd=wd, splitter=lm_splitter,
                     metrics=[accuracy, perplexity] if metrics is None else metrics,
                     cbs=extra + listify(cbs), path=path, progress=progress)
