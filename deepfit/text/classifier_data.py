"""Data for text classifiers: labelled documents in batches of similar lengths, padded per batch.

Every document is tokenised and numericalised once, when the loaders are built. A loader keeps all the
token ids in one flat tensor with each document's start and length; a batch is made by indexing (no
per-token Python work):

    pos  = starts[idx, None] + arange(L)          (bs, L), L = the longest document of the batch
    mask = arange(L) < lengths[idx, None]
    x    = flat[pos].masked_fill(~mask, pad_idx)   padding on the right

and the batch is `(x, lengths, y)`: the model gets `x` and `lengths` (so it knows which positions are
padding), the loss gets `y`. Padding on the right means a recurrent model reads every document from
its first token with a zero state, exactly as it would read it alone.

Order ("sort-ish", as ULMFiT): while training, the rows are shuffled, cut into chunks of
`bs * chunk_mult`, each chunk sorted by length and cut into batches, and the batches shuffled, so a
batch holds documents of similar lengths (little padding) but the order still changes every epoch.
Without shuffling (validation, prediction) all rows are sorted by length, longest first;
`TextClassifierLearner.get_preds` puts the predictions back in row order.

Example:
    >>> dls = TextClassifierDataLoaders.from_csv("reviews.csv", text_col="text", label_col="label",
    ...                                          valid_pct=0.1, seed=42, bs=64)            # doctest: +SKIP
    >>> x, lengths, y = dls.one_batch()                                                    # doctest: +SKIP
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import torch

from ..data.core import DataLoader, DataLoaders, split_indices
from ..losses import CrossEntropyLoss
from ..utils import default_device
from .io import TextDataError, texts_from_csv, texts_from_df, texts_from_folder
from .tokenize import BOS, EOS, PAD, UNK, Tokenizer, get_tokenizer, tokenizer_from_state
from .vocab import Vocab

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["TextClassDataLoader", "TextClassifierDataLoaders", "pad_batch"]

_SPECIALS = (UNK, PAD, BOS, EOS)


def pad_batch(docs: Sequence[torch.Tensor], pad_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad a list of 1-d id tensors into `(x (n, L), lengths (n,))` (a reference for tests and a
    helper for a few documents; the loaders build batches by indexing instead)."""
    lens = torch.tensor([len(d) for d in docs], dtype=torch.long)
    x = torch.full((len(docs), int(lens.max()) if len(docs) else 0), pad_idx, dtype=torch.long)
    for i, d in enumerate(docs):
        x[i, :len(d)] = d
    return x, lens


def _describe_rows(rows: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f", ... ({len(rows)} in all)" if len(rows) > limit else "")


class TextClassDataLoader(DataLoader):
    """Batches `(x, lengths, y)` of documents of similar lengths, right-padded with `pad_idx`.

    Args:
        ids: one 1-d tensor of token ids per document (at least one token each).
        labels: class indices (N,), or None for unlabelled documents (batches are then `(x, lengths)`).
        bs: documents per batch.
        pad_idx: the padding id.
        shuffle: sort-ish random order every epoch (see the module docstring); False: longest first.
        chunk_mult: with `shuffle`, rows are sorted by length inside chunks of `bs * chunk_mult`.
        device: where the batches are delivered (the ids are moved there once).
        seed: seed of this loader's generator (default: drawn from torch's global generator).
        texts: the documents' texts, kept for interpretation (`texts[i]` is row i).
    """

    def __init__(self, ids: Sequence[torch.Tensor], labels: torch.Tensor | None, bs: int = 64, pad_idx: int = 1,
                 shuffle: bool = False, chunk_mult: int = 50, device: torch.device | str | None = None,
                 seed: int | None = None, texts: Sequence[str] | None = None) -> None:
        if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
            raise ValueError(f"`bs` must be a positive integer; received bs={bs!r}.")
        if not isinstance(chunk_mult, int) or chunk_mult < 1:
            raise ValueError(f"`chunk_mult` must be a positive integer; received chunk_mult={chunk_mult!r}.")
        lens = torch.tensor([len(d) for d in ids], dtype=torch.long)
        if len(lens) and int(lens.min()) < 1:
            raise TextDataError(f"documents {_describe_rows(torch.nonzero(lens < 1).reshape(-1).tolist())} have no "
                                "token: every document needs at least one.")
        if labels is not None and len(labels) != len(lens):
            raise ValueError(f"{len(lens)} documents but {len(labels)} labels.")
        if texts is not None and len(texts) != len(lens):
            raise ValueError(f"{len(lens)} documents but {len(texts)} texts.")
        flat = torch.cat([d.reshape(-1).long() for d in ids]) if len(ids) else torch.zeros(0, dtype=torch.long)
        starts = torch.cumsum(lens, 0) - lens
        tensors = [flat, starts, lens] + ([labels.long()] if labels is not None else [])
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.tensors = tuple(t.to(self.device) for t in tensors)
        self.bs, self.shuffle, self.drop_last, self.pad_idx = int(bs), bool(shuffle), False, int(pad_idx)
        self.chunk_mult = chunk_mult
        self.n_inp, self.after_batch = 2, None
        self.seed, self.rank, self.world_size = seed, 0, 1
        self._gen = torch.Generator()
        if seed is not None:
            self._gen.manual_seed(seed)
        self._epoch_seed: int | None = None
        self._pos = 0
        self._resume: tuple[int, int] | None = None
        self.texts = list(texts) if texts is not None else None
        self._lens_cpu = lens  # for planning the order without a device round trip

    # ---- sizes -------------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of documents."""
        return len(self._lens_cpu)

    @property
    def lengths(self) -> torch.Tensor:
        """Token count of every document (CPU)."""
        return self._lens_cpu

    @property
    def has_labels(self) -> bool:
        """Whether batches carry targets."""
        return len(self.tensors) == 4

    def __len__(self) -> int:
        return math.ceil(math.ceil(self.n / self.bs) / self.world_size)

    # ---- the order of an epoch -------------------------------------------------------------------------
    def batch_indices(self, epoch_seed: int = 0) -> list[torch.Tensor]:
        """The row indices of every batch of the epoch drawn from `epoch_seed` (any seed without
        `shuffle`: all rows by decreasing length)."""
        lens = self._lens_cpu
        if not self.shuffle:
            order = torch.sort(lens, descending=True, stable=True).indices
            return self._shard(list(torch.split(order, self.bs)))
        g = torch.Generator().manual_seed(epoch_seed)
        perm = torch.randperm(self.n, generator=g)
        chunk = self.bs * self.chunk_mult
        batches: list[torch.Tensor] = []
        for c in torch.split(perm, chunk):
            c = c[torch.sort(lens[c], descending=True, stable=True).indices]
            batches.extend(torch.split(c, self.bs))
        order = torch.randperm(len(batches), generator=g).tolist()
        return self._shard([batches[i] for i in order])

    def _shard(self, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        # distributed training: every process plans the same epoch and takes every world_size-th batch
        # (wrapping round so that all get as many)
        ws = self.world_size
        if ws <= 1:
            return batches
        total = math.ceil(len(batches) / ws) * ws
        return (batches + batches[: total - len(batches)])[self.rank::ws]

    def row_order(self) -> torch.Tensor:
        """The rows in the order an unshuffled pass delivers them (to put predictions back in row order)."""
        return torch.sort(self._lens_cpu, descending=True, stable=True).indices

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flat, starts, lens = self.tensors[:3]
        idx = idx.to(flat.device)
        bl = lens[idx]
        width = int(self._lens_cpu[idx.cpu()].max())
        ar = torch.arange(width, device=flat.device)
        mask = ar[None, :] < bl[:, None]
        pos = (starts[idx][:, None] + ar[None, :]).clamp_(max=max(len(flat) - 1, 0))
        x = flat[pos].masked_fill_(~mask, self.pad_idx)
        return (x, bl, self.tensors[3][idx]) if self.has_labels else (x, bl)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        epoch_seed, start = self._epoch_start()
        batches = self.batch_indices(epoch_seed)
        for b in range(start, len(batches)):
            self._pos = b + 1
            yield self._batch(batches[b])
        self._pos = 0

    def one_batch(self) -> tuple[torch.Tensor, ...]:
        """The first batch, without disturbing the order of later epochs."""
        with self.preserved_order():
            self._resume = (0, 0) if self.shuffle else None
            return next(iter(self))

    def padded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All documents in row order as one right-padded matrix and their lengths."""
        return self._batch(torch.arange(self.n))[:2] if self.n else (torch.zeros(0, 0, dtype=torch.long),
                                                                      torch.zeros(0, dtype=torch.long))

    def new(self, *tensors: torch.Tensor, shuffle: bool | None = None, drop_last: bool | None = None,
            bs: int | None = None) -> "TextClassDataLoader":
        """Not supported: build a loader of other texts with `TextClassifierDataLoaders.test_dl`."""
        raise TypeError("TextClassDataLoader.new is not supported; use dls.test_dl(texts, labels).")

    def __repr__(self) -> str:
        return (f"TextClassDataLoader({self.n} documents, {int(self._lens_cpu.sum())} tokens, bs={self.bs}, "
                f"shuffle={self.shuffle}, device={self.device})")


def _check_labels(labels: Sequence[Any], source: str) -> list[Any]:
    labels = [v.item() if isinstance(v, np.generic) else v for v in labels]
    missing = [i for i, v in enumerate(labels) if v is None or (isinstance(v, float) and math.isnan(v))
               or (isinstance(v, str) and not v.strip())]
    if missing:
        raise TextDataError(f"{len(missing)} of the {len(labels)} labels of {source} are missing (rows "
                            f"{_describe_rows(missing)}); drop or fill them")
    return labels


def _sorted_classes(labels: Sequence[Any]) -> list[Any]:
    uniq = list(dict.fromkeys(labels))
    try:
        return sorted(uniq)
    except TypeError:  # mixed types: order by their text
        return sorted(uniq, key=str)


class TextClassifierDataLoaders(DataLoaders):
    """Training and validation `TextClassDataLoader`s of labelled texts, with the tokenizer, the
    vocabulary and the classes (all exported with a model, so a loaded model reads text as in training).

    Build it with `from_texts`, `from_df`, `from_csv` or `from_folder`. `dls.train.texts` and
    `dls.valid.texts` keep the texts (row i of the loader is `texts[i]`).
    """

    def __init__(self, train: TextClassDataLoader, valid: TextClassDataLoader | None, vocab: Vocab,
                 tokenizer: Tokenizer, classes: Sequence[Any], max_len: int | None = None,
                 text_col: str | None = None, label_col: str | None = None) -> None:
        super().__init__(train, valid)
        self.vocab, self.tokenizer, self.classes, self.max_len = vocab, tokenizer, list(classes), max_len
        self.text_col, self.label_col = text_col, label_col  # the columns read (from_df / from_csv), for predict
        self._class_idx = {c: i for i, c in enumerate(self.classes)}

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def pad_idx(self) -> int:
        """The padding id of the vocabulary."""
        return int(self.vocab.pad_idx)

    @property
    def default_loss(self) -> CrossEntropyLoss:
        """Cross entropy over the classes."""
        return CrossEntropyLoss()

    @property
    def learner_class(self) -> type:
        """`load_learner` builds a `TextClassifierLearner` for these loaders."""
        from .classifier import TextClassifierLearner
        return TextClassifierLearner

    # ---- encoding ------------------------------------------------------------------------------------
    def numericalize(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Token ids of each text (tokenised as in training, cut to `max_len` tokens)."""
        ids = [self.vocab.numericalize(t) for t in self.tokenizer.tokenize_texts(texts)]
        return [d[: self.max_len] for d in ids] if self.max_len is not None else ids

    def encode_labels(self, labels: Sequence[Any], source: str = "the labels") -> torch.Tensor:
        """Class indices of `labels`; a label the model was not trained on is an error naming it."""
        labels = _check_labels(labels, source)
        unknown = [v for v in dict.fromkeys(labels) if v not in self._class_idx]
        if unknown:
            # labels read from a file may be the text of numbers the model was trained on as numbers
            as_str = {str(c): i for i, c in enumerate(self.classes)}
            if all(str(v) in as_str for v in unknown):
                return torch.tensor([self._class_idx[v] if v in self._class_idx else as_str[str(v)]
                                     for v in labels], dtype=torch.long)
            shown = ", ".join(repr(v) for v in unknown[:10])
            raise TextDataError(f"{source} holds labels the model was not trained on: {shown}; it knows "
                                f"{', '.join(repr(c) for c in self.classes)}")
        return torch.tensor([self._class_idx[v] for v in labels], dtype=torch.long)

    def encode_item(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """`(x (1, L), lengths (1,))` of one text, for `predict`."""
        if not isinstance(text, str):
            raise TypeError(f"predict takes one text (a str); received {type(text).__name__} (use "
                            "learn.get_preds(dl=dls.test_dl(texts)) for many).")
        if not text.strip():
            raise TextDataError("The text to classify is empty (or only whitespace).")
        ids = self.numericalize([text])[0]
        return ids[None].to(self.device), torch.tensor([len(ids)], device=self.device)

    def decode_pred(self, pred: torch.Tensor) -> Any:
        """The label of a predicted class index."""
        return self.classes[int(pred)]

    def test_dl(self, texts: Sequence[str], labels: Sequence[Any] | None = None, bs: int | None = None
                ) -> TextClassDataLoader:
        """A loader over new texts (and labels), read exactly like the training texts."""
        texts = _check_texts(texts, "the texts")
        y = self.encode_labels(labels) if labels is not None else None
        if y is not None and len(y) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(y)} labels.")
        bs = bs or (self.valid.bs if self.valid is not None else self.train.bs)
        return TextClassDataLoader(self.numericalize(texts), y, bs=bs, pad_idx=self.pad_idx, device=self.device,
                                   texts=texts)

    def decode(self, ids: torch.Tensor, length: int | None = None) -> str:
        """Readable text of one row of token ids (padding dropped)."""
        ids = ids.reshape(-1)[: length if length is not None else None]
        return self.tokenizer.decode(self.vocab.lookup(ids[ids != self.pad_idx]))

    def show_batch(self, n: int = 4) -> list[tuple[str, Any]]:
        """The first `n` documents of a training batch as (text, label), also printed."""
        x, lens, *y = self.train.one_batch()
        rows = [(self.decode(x[i], int(lens[i])), self.classes[int(y[0][i])] if y else None)
                for i in range(min(n, len(x)))]
        for t, c in rows:
            print(f"{c!r}: {t[:200]!r}")
        return rows

    # ---- export ------------------------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-able state (vocabulary, tokenizer, classes, max_len, bs) for `learn.export`."""
        return {"vocab": self.vocab.get_state(), "tokenizer": self.tokenizer.get_state(), "classes": self.classes,
                "max_len": self.max_len, "bs": self.train.bs, "text_col": self.text_col,
                "label_col": self.label_col}, {}

    @classmethod
    def from_state(cls, state: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
                   ) -> "TextClassifierDataLoaders":
        """Inference-only loaders (no texts) from `export_state`."""
        vocab = Vocab.from_state(state["vocab"])
        tok = tokenizer_from_state(state["tokenizer"])
        empty = TextClassDataLoader([], torch.zeros(0, dtype=torch.long), bs=int(state.get("bs", 64)),
                                    pad_idx=int(vocab.pad_idx if vocab.pad_idx is not None else 0))
        return cls(empty, None, vocab, tok, state["classes"], state.get("max_len"), state.get("text_col"),
                   state.get("label_col"))

    # ---- builders ----------------------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: Sequence[str], labels: Sequence[Any], valid_pct: float = 0.2,
                   seed: int | None = None, bs: int = 64, tokenizer: str | Tokenizer = "word",
                   vocab: Vocab | None = None, max_len: int | None = None, min_freq: int = 2,
                   max_vocab: int | None = 60000, valid_idx: Sequence[int] | None = None,
                   device: torch.device | str | None = None, source: str = "the texts"
                   ) -> "TextClassifierDataLoaders":
        """Loaders of labelled texts: a random `valid_pct` of them (or the rows `valid_idx`) for validation.

        Args:
            texts, labels: the documents and their labels (any hashable values; the classes are the
                sorted distinct labels).
            valid_pct: share of rows for validation (0: none); ignored when `valid_idx` is given.
            seed: seed of the split and of the training order.
            bs: documents per batch.
            tokenizer: "word", "char", "bpe" (learned on the training texts) or a Tokenizer (to reuse a
                language model's, pass `lm_dls.tokenizer`).
            vocab: reuse this vocabulary (a language model's `lm_dls.vocab`, so its encoder fits);
                default: built from the training texts with `min_freq` and `max_vocab`.
            max_len: keep only the first `max_len` tokens of each document (None: all).
            valid_idx: the validation rows (e.g. one fold of a cross-validation).
            device: where the batches go (default: the GPU when there is one).
            source: what to call the data in messages.

        Raises:
            TextDataError: empty texts (naming the rows), missing labels (how many and which rows),
                a single class, a vocabulary without a padding token.
        """
        texts = _check_texts(texts, source)
        labels = _check_labels(list(labels), source)
        if len(labels) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels.")
        classes = _sorted_classes(labels)
        if len(classes) < 2:
            raise TextDataError(f"every label of {source} is {classes[0]!r}: a classifier needs at least two "
                                "classes")
        if max_len is not None and (not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1):
            raise ValueError(f"`max_len` must be a positive integer or None; received max_len={max_len!r}.")
        n = len(texts)
        if valid_idx is not None:
            va = np.unique(np.asarray(valid_idx, dtype=np.int64))
            if len(va) and (va.min() < 0 or va.max() >= n):
                raise ValueError(f"`valid_idx` must hold row numbers in 0..{n - 1}.")
            tr = np.setdiff1d(np.arange(n), va)
        elif valid_pct > 0:
            tr, va = split_indices(n, valid_pct, seed)
        else:
            tr, va = np.arange(n), np.zeros(0, dtype=np.int64)
        if len(tr) == 0:
            raise TextDataError(f"no training rows are left in {source} after the validation split")
        tok = get_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
        if not isinstance(tok, Tokenizer):
            raise TypeError(f"`tokenizer` must be 'word', 'char', 'bpe' or a Tokenizer; received {tokenizer!r}.")
        train_texts = [texts[i] for i in tr]
        if not tok.is_trained:
            tok.fit(train_texts)
        toks = tok.tokenize_texts(texts)
        if vocab is None:
            specials = _SPECIALS
            vocab = Vocab.build([toks[i] for i in tr], min_freq=min_freq, max_size=max_vocab, specials=specials)
        if vocab.pad_idx is None:
            raise TextDataError(f"the vocabulary has no padding token {PAD!r}; a classifier pads documents to the "
                                "length of the longest one in each batch (build it with the default specials)")
        ids = [vocab.numericalize(t) for t in toks]
        if max_len is not None:
            ids = [d[:max_len] for d in ids]
        y = torch.tensor(_indices(labels, classes), dtype=torch.long)
        device = default_device() if device is None else device
        train = TextClassDataLoader([ids[i] for i in tr], y[torch.from_numpy(tr)], bs=bs, pad_idx=vocab.pad_idx,
                                    shuffle=True, device=device, seed=seed, texts=train_texts)
        valid = None
        if len(va):
            valid = TextClassDataLoader([ids[i] for i in va], y[torch.from_numpy(va)], bs=2 * bs,
                                        pad_idx=vocab.pad_idx, device=device, texts=[texts[i] for i in va])
        return cls(train, valid, vocab, tok, classes, max_len)

    @classmethod
    def from_df(cls, df: "pd.DataFrame", text_col: str, label_col: str, valid_pct: float = 0.2,
                seed: int | None = None, bs: int = 64, tokenizer: str | Tokenizer = "word",
                vocab: Vocab | None = None, max_len: int | None = None, min_freq: int = 2,
                max_vocab: int | None = 60000, valid_idx: Sequence[int] | None = None,
                device: torch.device | str | None = None, source: str = "the DataFrame"
                ) -> "TextClassifierDataLoaders":
        """`from_texts` on two columns of a DataFrame (not modified); a numeric text column is an error."""
        texts, labels = texts_from_df(df, text_col, label_col, source=source)
        col = df[text_col]
        if col.dtype.kind in "iufb":
            raise TextDataError(f"the text column {text_col!r} of {source} holds numbers ({col.dtype}), not text; "
                                "is it the right column?")
        dls = cls.from_texts(texts, labels, valid_pct=valid_pct, seed=seed, bs=bs, tokenizer=tokenizer, vocab=vocab,
                             max_len=max_len, min_freq=min_freq, max_vocab=max_vocab, valid_idx=valid_idx,
                             device=device, source=f"{source} (column {text_col!r}, labels {label_col!r})")
        dls.text_col, dls.label_col = text_col, label_col
        return dls

    @classmethod
    def from_csv(cls, path: str | Path, text_col: str, label_col: str, delimiter: str = ",",
                 encoding: str = "utf-8", valid_pct: float = 0.2, seed: int | None = None, bs: int = 64,
                 tokenizer: str | Tokenizer = "word", vocab: Vocab | None = None, max_len: int | None = None,
                 min_freq: int = 2, max_vocab: int | None = 60000, valid_idx: Sequence[int] | None = None,
                 device: torch.device | str | None = None) -> "TextClassifierDataLoaders":
        """`from_texts` on two columns of a CSV (or, with delimiter="\\t", TSV) file."""
        texts, labels = texts_from_csv(path, text_col, label_col, encoding=encoding, delimiter=delimiter)
        numeric = [t for t in texts if t.strip()]
        if numeric and all(_is_number(t) for t in numeric):
            raise TextDataError(f"the text column {text_col!r} of {path} holds only numbers, not text; is it the "
                                "right column?")
        dls = cls.from_texts(texts, labels or [], valid_pct=valid_pct, seed=seed, bs=bs, tokenizer=tokenizer,
                             vocab=vocab, max_len=max_len, min_freq=min_freq, max_vocab=max_vocab,
                             valid_idx=valid_idx, device=device, source=str(path))
        dls.text_col, dls.label_col = text_col, label_col
        return dls

    @classmethod
    def from_folder(cls, path: str | Path, classes: Sequence[str] | None = None, encoding: str = "utf-8",
                    valid_pct: float = 0.2, seed: int | None = None, bs: int = 64,
                    tokenizer: str | Tokenizer = "word", vocab: Vocab | None = None, max_len: int | None = None,
                    min_freq: int = 2, max_vocab: int | None = 60000,
                    device: torch.device | str | None = None) -> "TextClassifierDataLoaders":
        """`from_texts` on a folder with one sub-folder of text files per class (see `texts_from_folder`)."""
        texts, labels = texts_from_folder(path, classes=classes, encoding=encoding)
        return cls.from_texts(texts, labels, valid_pct=valid_pct, seed=seed, bs=bs, tokenizer=tokenizer, vocab=vocab,
                              max_len=max_len, min_freq=min_freq, max_vocab=max_vocab, device=device,
                              source=str(path))

    def __repr__(self) -> str:
        n_va = self.valid.n if self.valid is not None else 0
        return (f"TextClassifierDataLoaders({self.train.n} train / {n_va} valid documents, {len(self.classes)} "
                f"classes, vocab {len(self.vocab)})")


def _indices(labels: Sequence[Any], classes: Sequence[Any]) -> list[int]:
    idx = {c: i for i, c in enumerate(classes)}
    return [idx[v] for v in labels]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _check_texts(texts: Sequence[str], source: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"`texts` must be a list of documents (str); received {type(texts).__name__}.")
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{source}: texts must be str; row {bad[0]} is {type(texts[bad[0]]).__name__}.")
    if not texts:
        raise TextDataError(f"{source} has no texts")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise TextDataError(f"{len(empty)} of the {len(texts)} texts of {source} are empty or whitespace only "
                            f"(rows {_describe_rows(empty)}); drop them or put text in them")
    return texts
