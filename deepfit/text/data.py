"""Language-model data: `LMDataLoader` (a token stream in batches) and `TextLMDataLoaders` (from text).

`LMDataLoader`: a token stream read as `bs` contiguous rows, `bptt` tokens at a time.

The stream (one LongTensor, or the documents concatenated in this epoch's order) is cut once into a
(bs, n) matrix; batch k is the slice `x = data[:, a:b]`, `y = data[:, a+1:b+1]` (targets shifted by
one). Row r of batch k+1 continues row r of batch k, so a stateful model carries its hidden state on.
No per-token Python work: an epoch is one `torch.cat` (only when documents are shuffled) and slices.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ..data.core import DataLoader, DataLoaders
from ..losses import CrossEntropyLoss
from ..utils import default_device
from .io import TextDataError, read_text
from .tokenize import BOS, EOS, PAD, UNK, Tokenizer, get_tokenizer, tokenizer_from_state
from .vocab import Vocab

__all__ = ["LMDataLoader", "TextLMDataLoaders", "char_windows"]

Batch = tuple[torch.Tensor, torch.Tensor]


def _as_ids(t: Any, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(t)
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{what} must hold integer token ids; received dtype {t.dtype}.")
    return t.reshape(-1).long()


class LMDataLoader(DataLoader):
    """Batches of a language model: inputs (bs, seq) and the same tokens shifted by one as targets.

    Args:
        ids: the token ids, one 1-D tensor (a stream) or a list of them (documents, concatenated in
            order, or in a new random order every epoch with `shuffle`).
        bs: number of parallel streams (rows of every batch).
        bptt: tokens per batch and row (the last batch of an epoch may be shorter).
        shuffle: shuffle the documents every epoch (a single stream is never cut and reordered).
        random_bptt: draw each batch's length as AWD-LSTM does (bptt with probability 0.95, else bptt/2,
            plus normal noise of standard deviation 5, at least min(5, bptt)); the lengths are then
            scaled so an epoch still covers the stream exactly in `len(self)` batches.
        device: where batches are delivered (the stream is moved there once).
        seed: seed of this loader's own generator (default: drawn from torch's global generator, so
            `set_seed` makes runs repeat).

    The order of documents and the batch lengths of an epoch derive from one epoch seed, saved with the
    position by `state_dict()`, so `Checkpoint` resumes an interrupted epoch exactly. Under
    `DistributedTrainer` (`rank`, `world_size` set), as for other loaders `bs` is per process: the stream
    is cut into `bs * world_size` rows and process r reads rows r, r + world_size, ... of each batch, so
    that the processes together train as one process with `bs * world_size` rows.

    Example:
        >>> dl = LMDataLoader(torch.arange(1000), bs=4, bptt=10)
        >>> x, y = next(iter(dl))   # x[0] = 0..9, y[0] = 1..10, x[1] = 249..258
    """

    def __init__(self, ids: torch.Tensor | Sequence[torch.Tensor], bs: int = 64, bptt: int = 70,
                 shuffle: bool = False, random_bptt: bool = False, device: torch.device | str | None = None,
                 seed: int | None = None) -> None:
        for name, v in (("bs", bs), ("bptt", bptt)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"`{name}` must be a positive integer; received {name}={v!r}.")
        if isinstance(ids, torch.Tensor):
            docs = [_as_ids(ids, "ids")]
        else:
            docs = [_as_ids(d, f"document {i}") for i, d in enumerate(ids)]
        if not docs:
            raise ValueError("LMDataLoader needs at least one document of token ids.")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.docs = [d.to(self.device) for d in docs]
        total = self.n_tokens = sum(len(d) for d in docs)
        if total // bs < 2:
            raise ValueError(f"{total} tokens are too few for bs={bs}: every one of the bs rows needs at least 2 "
                             f"tokens (an input and its target); pass a smaller bs or more text.")
        self.bs, self.bptt, self.random_bptt = int(bs), int(bptt), bool(random_bptt)
        self.shuffle = bool(shuffle) and len(docs) > 1
        self.drop_last, self.n_inp, self.after_batch = False, 1, None
        self.seed, self.rank, self.world_size = seed, 0, 1
        self._gen = torch.Generator()
        if seed is not None:
            self._gen.manual_seed(seed)
        self._epoch_seed: int | None = None
        self._pos = 0
        self._resume: tuple[int, int] | None = None
        # the unshuffled stream as a (bs, n_cols) matrix, built once; `tensors` is what DataLoaders.to moves
        self.tensors = (self._matrix(self.docs),)

    def _matrix(self, docs: Sequence[torch.Tensor]) -> torch.Tensor:
        rows = self.bs * self.world_size
        stream = docs[0] if len(docs) == 1 else torch.cat(list(docs))
        return stream[: rows * self.n_cols].view(rows, self.n_cols)

    # ---- sizes -------------------------------------------------------------------------------------
    @property
    def n_cols(self) -> int:
        """Tokens per row: the stream is cut into `bs` rows (`bs * world_size` under distributed training)."""
        return self.n_tokens // (self.bs * self.world_size)

    @property
    def n(self) -> int:
        """Tokens read per epoch as inputs by this process (targets are the same count, shifted by one)."""
        return self.bs * (self.n_cols - 1)

    def __len__(self) -> int:
        return math.ceil((self.n_cols - 1) / self.bptt)

    # ---- the plan of an epoch -----------------------------------------------------------------------
    def seq_lens(self, epoch_seed: int) -> list[int]:
        """The length of every batch of the epoch drawn from `epoch_seed` (they sum to n_cols - 1)."""
        total, k = self.n_cols - 1, len(self)
        fixed = [self.bptt] * (k - 1) + [total - self.bptt * (k - 1)]
        if not self.random_bptt or k == 1:
            return fixed
        g = torch.Generator().manual_seed(epoch_seed + 1)
        base = torch.where(torch.rand(k, generator=g, dtype=torch.float64) < 0.95,
                           torch.tensor(float(self.bptt), dtype=torch.float64),
                           torch.tensor(self.bptt / 2, dtype=torch.float64))
        raw = (base + 5 * torch.randn(k, generator=g, dtype=torch.float64)).clamp(min=min(5.0, float(self.bptt)))
        bounds = torch.round(raw.cumsum(0) / raw.sum() * total).long()
        lens = torch.diff(bounds, prepend=bounds.new_zeros(1))
        if int(lens.min()) < 1 or int(bounds[-1]) != total:  # a degenerate draw (tiny streams): fixed lengths
            return fixed
        return lens.tolist()

    def _epoch_data(self, epoch_seed: int) -> torch.Tensor:
        if not self.shuffle and self.world_size == 1:
            return self.tensors[0]
        if self.docs[0].device != self.device:  # after DataLoaders.to(device): move the documents once
            self.docs = [d.to(self.device) for d in self.docs]
        if not self.shuffle:
            return self._matrix(self.docs)
        g = torch.Generator().manual_seed(epoch_seed)
        order = torch.randperm(len(self.docs), generator=g).tolist()
        return self._matrix([self.docs[i] for i in order])

    def __iter__(self) -> Iterator[Batch]:
        epoch_seed, start = self._epoch_start(random=self.shuffle or self.random_bptt)
        data = self._epoch_data(epoch_seed)
        if data.device != self.device:
            data = data.to(self.device)
        lens = self.seq_lens(epoch_seed)
        if self.world_size > 1:
            # distributed training: the stream is cut into bs * world_size rows and each process reads its
            # own bs of them, with the same lengths everywhere (the epoch seed is shared): the averaged
            # gradients are those of one process reading all the rows
            data = data[self.rank::self.world_size]
        a = sum(lens[:start])
        for b in range(start, len(lens)):
            self._pos = b + 1
            sl = lens[b]
            yield data[:, a:a + sl], data[:, a + 1:a + 1 + sl]
            a += sl
        self._pos = 0

    def one_batch(self) -> Batch:
        """The first batch, without disturbing the order of later epochs."""
        with self.preserved_order():
            self._resume = (0, 0)
            return next(iter(self))

    def new(self, *tensors: torch.Tensor, shuffle: bool | None = None, drop_last: bool | None = None,
            bs: int | None = None) -> "LMDataLoader":
        """A loader with the same settings over another stream of ids (not shuffled by default)."""
        if len(tensors) != 1:
            raise TypeError("LMDataLoader.new takes one tensor of token ids.")
        return LMDataLoader(tensors[0], bs=bs or self.bs, bptt=self.bptt, shuffle=bool(shuffle), device=self.device)

    def __repr__(self) -> str:
        return (f"LMDataLoader({len(self.docs)} document(s), {self.bs * self.n_cols} tokens, bs={self.bs}, "
                f"bptt={self.bptt}, shuffle={self.shuffle}, random_bptt={self.random_bptt}, device={self.device})")


# ---- windows for the lesson's stateless models ----------------------------------------------------------
def char_windows(ids: torch.Tensor, n: int, stride: int = 1,
                 seq_targets: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed windows of `n` token ids and their targets, as the lesson's first models read the text.

    Window k is `ids[k*stride : k*stride + n]`; its target is the token after it, or with
    `seq_targets` the window shifted by one (a target per position). Built with `unfold` (a view).

    Returns:
        `(x, y)`: x (n_windows, n); y (n_windows,) or (n_windows, n).

    Example:
        >>> x, y = char_windows(torch.arange(10), 3, stride=3)   # x = [[0,1,2],[3,4,5],[6,7,8]], y = [3,6,9]
    """
    ids = _as_ids(ids, "ids")
    if n < 1 or stride < 1:
        raise ValueError(f"`n` and `stride` must be positive; received n={n!r}, stride={stride!r}.")
    if len(ids) < n + 1:
        raise ValueError(f"{len(ids)} tokens are too few for windows of {n} plus a target.")
    src = ids[:-1]
    x = src.unfold(0, n, stride)
    if seq_targets:
        y = ids[1:].unfold(0, n, stride)[: len(x)]
    else:
        y = ids[n::stride][: len(x)]
    return x, y


# ---- from text to loaders ----------------------------------------------------------------------------------
_CHAR_SPECIALS = (UNK,)
_WORD_SPECIALS = (UNK, PAD, BOS, EOS)


def _check_text_arg(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str; received {type(text).__name__}.")
    if not text.strip():
        raise TextDataError(f"{what} is empty (or only whitespace): there is nothing to learn from.")
    return text


class TextLMDataLoaders(DataLoaders):
    """Training and validation `LMDataLoader`s of one text, with its tokenizer and vocabulary.

    Build it with `from_text`, `from_file` or `from_texts`. `vocab` (a `Vocab`) and `tokenizer` are
    exported with a model (`learn.export`), so a loaded model reads text exactly as in training.

    Example:
        >>> dls = TextLMDataLoaders.from_file("nietzsche.txt", tokenizer="char", lower=True, min_freq=3,
        ...                                   valid_pct=0.2, bs=64, bptt=8)      # doctest: +SKIP
        >>> dls.vocab, dls.train.one_batch()[0].shape                              # doctest: +SKIP
    """

    def __init__(self, train: LMDataLoader, valid: LMDataLoader | None, vocab: Vocab, tokenizer: Tokenizer,
                 bptt: int | None = None) -> None:
        super().__init__(train, valid)
        self.vocab, self.tokenizer = vocab, tokenizer
        self.bptt = bptt if bptt is not None else train.bptt

    @property
    def default_loss(self) -> CrossEntropyLoss:
        """Cross entropy over the vocabulary, at every position."""
        return CrossEntropyLoss()

    @property
    def learner_class(self) -> type:
        """`load_learner` builds an `LMLearner` (with `generate`) for these loaders."""
        from .learner import LMLearner
        return LMLearner

    # ---- encoding ------------------------------------------------------------------------------------
    def encode(self, text: str) -> torch.Tensor:
        """The token ids of `text` (tokenized as in training; unknown tokens -> `xxunk`)."""
        return self.vocab.numericalize(self.tokenizer(text))

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Readable text from token ids (the tokenizer's best-effort detokenisation)."""
        return self.tokenizer.decode(self.vocab.lookup(ids))

    def show_batch(self, n: int = 4) -> list[tuple[str, str]]:
        """The first `n` rows of the first training batch as (input text, target text), also printed."""
        x, y = self.train.one_batch()
        rows = [(self.decode(x[i]), self.decode(y[i])) for i in range(min(n, len(x)))]
        for a, b in rows:
            print(f"{a!r} -> {b!r}")
        return rows

    # ---- export ------------------------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-able state (vocabulary, tokenizer, batch settings) and no tensors, for `learn.export`."""
        return {"vocab": self.vocab.get_state(), "tokenizer": self.tokenizer.get_state(),
                "bs": self.train.bs, "bptt": self.bptt}, {}

    @classmethod
    def from_state(cls, state: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> "TextLMDataLoaders":
        """Inference-only loaders (tokenizer and vocabulary, no text) from `export_state`."""
        vocab = Vocab.from_state(state["vocab"])
        tok = tokenizer_from_state(state["tokenizer"])
        train = LMDataLoader(torch.zeros(2, dtype=torch.long), bs=1, bptt=1)
        return cls(train, None, vocab, tok, bptt=int(state.get("bptt", 70)))

    # ---- builders ----------------------------------------------------------------------------------
    @classmethod
    def from_text(cls, text: str, tokenizer: str | Tokenizer = "char", valid_pct: float = 0.1, bs: int = 64,
                  bptt: int = 70, min_freq: int = 1, max_vocab: int | None = None, lower: bool | None = None,
                  seed: int | None = None, random_bptt: bool = False, device: torch.device | str | None = None,
                  vocab: Vocab | None = None) -> "TextLMDataLoaders":
        """Loaders of one text: its last `valid_pct` (a contiguous tail, so the split is the same every
        time) for validation, the rest for training.

        Args:
            text: the whole text.
            tokenizer: "char", "word", "bpe" (learned on the training part; `max_vocab` pieces, default
                1000 merges) or a `Tokenizer`.
            valid_pct: share of the text at its end for validation (0: no validation).
            bs, bptt: rows per batch and tokens per row (see `LMDataLoader`).
            min_freq, max_vocab: vocabulary from the training part: tokens seen at least `min_freq`
                times, at most `max_vocab` entries; the rest read as `xxunk`.
            lower: lower-case the text first (named tokenizers); default (None) the tokenizer's own: char
                and bpe keep the case, word lower-cases with `xxmaj` / `xxup` markers.
            seed: seed of the training loader (random `bptt`).
            random_bptt: AWD-LSTM's random batch lengths while training.
            device: where the batches go (default: the GPU when there is one).
            vocab: use this vocabulary instead of building one (e.g. to fine-tune a trained model).

        Raises:
            TextDataError: empty text, or too little text for one batch (the message says what to change).
        """
        text = _check_text_arg(text, "The text")
        if not 0 <= valid_pct < 1:
            raise ValueError(f"`valid_pct` must be in [0, 1); received valid_pct={valid_pct!r}.")
        cut = len(text) - int(round(len(text) * valid_pct))
        tok = get_tokenizer(tokenizer, lower=lower) if isinstance(tokenizer, str) else tokenizer
        if not isinstance(tok, Tokenizer):
            raise TypeError(f"`tokenizer` must be 'char', 'word', 'bpe' or a Tokenizer; received {tokenizer!r}.")
        if tok.kind != "char" and 0 < cut < len(text):  # do not cut a word in two
            nxt = text.find(" ", cut)
            cut = nxt if nxt > 0 else cut
        train_text, valid_text = text[:cut], text[cut:]
        return cls._build([train_text], [valid_text] if valid_pct > 0 else [], tok, bs, bptt, min_freq, max_vocab,
                          seed, random_bptt, device, vocab, shuffle=False)

    @classmethod
    def from_file(cls, path: str | Path, encoding: str = "utf-8", tokenizer: str | Tokenizer = "char",
                  valid_pct: float = 0.1, bs: int = 64, bptt: int = 70, min_freq: int = 1,
                  max_vocab: int | None = None, lower: bool | None = None, seed: int | None = None,
                  random_bptt: bool = False, device: torch.device | str | None = None) -> "TextLMDataLoaders":
        """`from_text` on a text file read with `read_text` (clear errors for a missing, binary, wrongly
        encoded or empty file)."""
        text = read_text(path, encoding=encoding)
        try:
            return cls.from_text(text, tokenizer=tokenizer, valid_pct=valid_pct, bs=bs, bptt=bptt, min_freq=min_freq,
                                 max_vocab=max_vocab, lower=lower, seed=seed, random_bptt=random_bptt, device=device)
        except TextDataError as e:
            raise TextDataError(f"{path}: {e}") from None

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer: str | Tokenizer = "word", valid_pct: float = 0.1,
                   bs: int = 64, bptt: int = 70, min_freq: int = 1, max_vocab: int | None = None,
                   lower: bool | None = None, seed: int | None = None, random_bptt: bool = False,
                   device: torch.device | str | None = None, shuffle: bool = True) -> "TextLMDataLoaders":
        """Loaders of several documents: the last `valid_pct` of them (at least one) for validation, the
        training documents concatenated in a new random order every epoch (`shuffle`)."""
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError("`texts` must be a list of documents (str); for one text use from_text.")
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"`texts` must hold str documents; document {bad[0]} is {type(texts[bad[0]]).__name__}.")
        texts = [t for t in texts if t.strip()]  # empty documents add nothing
        if not texts:
            raise TextDataError("Every document is empty (or only whitespace): there is nothing to learn from.")
        if not 0 <= valid_pct < 1:
            raise ValueError(f"`valid_pct` must be in [0, 1); received valid_pct={valid_pct!r}.")
        n_valid = max(1, int(round(len(texts) * valid_pct))) if valid_pct > 0 and len(texts) > 1 else 0
        tok = get_tokenizer(tokenizer, lower=lower) if isinstance(tokenizer, str) else tokenizer
        train, valid = texts[: len(texts) - n_valid], texts[len(texts) - n_valid:]
        return cls._build(train, valid, tok, bs, bptt, min_freq, max_vocab, seed, random_bptt, device, None,
                          shuffle=shuffle)

    @classmethod
    def _build(cls, train_texts: list[str], valid_texts: list[str], tok: Tokenizer, bs: int, bptt: int,
               min_freq: int, max_vocab: int | None, seed: int | None, random_bptt: bool,
               device: torch.device | str | None, vocab: Vocab | None, shuffle: bool) -> "TextLMDataLoaders":
        for name, v in (("bs", bs), ("bptt", bptt)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"`{name}` must be a positive integer; received {name}={v!r}.")
        if not tok.is_trained:  # BPE: learn the merges from the training text only
            if max_vocab is not None:
                tok.fit(train_texts, vocab_size=max_vocab)
            else:
                tok.fit(train_texts)
        train_toks = tok.tokenize_texts(train_texts)
        if vocab is None:
            specials = _CHAR_SPECIALS if tok.kind == "char" else _WORD_SPECIALS
            vocab = Vocab.build(train_toks, min_freq=min_freq, max_size=max_vocab, specials=specials)
        train_ids = [vocab.numericalize(t) for t in train_toks]
        n_train = sum(len(t) for t in train_ids)
        if n_train < bs * bptt + 1:
            raise TextDataError(f"The training text has {n_train} tokens, fewer than one batch (bs * bptt + 1 = "
                                f"{bs} * {bptt} + 1 = {bs * bptt + 1}): pass a smaller bs or bptt, or more text.")
        device = default_device() if device is None else device
        train = LMDataLoader(train_ids if len(train_ids) > 1 else train_ids[0], bs=bs, bptt=bptt, shuffle=shuffle,
                             random_bptt=random_bptt, device=device, seed=seed)
        valid = None
        if valid_texts:
            valid_ids = torch.cat([vocab.numericalize(t) for t in tok.tokenize_texts(valid_texts)])
            vbs = min(bs, len(valid_ids) // 2)
            if vbs < 1:
                raise TextDataError(f"The validation text has {len(valid_ids)} token(s), too few to validate on: "
                                    "pass a larger valid_pct (or 0 for no validation).")
            valid = LMDataLoader(valid_ids, bs=vbs, bptt=bptt, device=device)
        return cls(train, valid, vocab, tok, bptt=bptt)
