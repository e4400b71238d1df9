"""Parallel text for translation: sentence pairs in batches of similar lengths, padded, with both vocabularies.

A pair is a source sentence and its translation, one per line of two aligned files (`read_parallel`) or
two columns of a DataFrame. Each side has its own tokenizer and vocabulary, built from the training pairs
only. Every sentence is tokenised and numericalised once; a loader keeps each side's ids in one flat
tensor with starts and lengths, and makes a batch by indexing (as `TextClassDataLoader` does):

    source  x_1 .. x_n xxeos                  (the encoder reads it; `src_len` = n + 1)
    target  xxbos y_1 .. y_m xxeos            decoder input = all but the last, labels = all but the first

A batch is `(src (bs, S), src_len (bs,), tgt_in (bs, T), tgt_out (bs, T))`, right-padded with each
vocabulary's `xxpad`: the model gets the first three, the loss the labels (padding is ignored by the loss,
`ignore_index = pad`). Training batches are "sort-ish": rows shuffled, sorted by source length within
chunks, batches shuffled, so a batch holds sentences of similar lengths; without shuffling the rows come
longest first (`row_order()` gives the order).

Example:
    >>> dls = Seq2SeqDataLoaders.from_files("train.de", "train.en", valid_src="val.de", valid_tgt="val.en",
    ...                                     bs=64, max_src_len=50, max_tgt_len=50)      # doctest: +SKIP
    >>> src, src_len, tgt_in, tgt_out = dls.one_batch()                                  # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..data.core import DataLoaders, split_indices
from ..losses import CrossEntropyLoss
from ..text.classifier_data import TextClassDataLoader
from ..text.io import TextDataError, decode_text
from ..text.tokenize import BOS, EOS, PAD, UNK, Tokenizer, WordTokenizer, get_tokenizer, tokenizer_from_state
from ..text.vocab import Vocab
from ..utils import default_device

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from torch import nn

__all__ = ["Seq2SeqDataLoader", "Seq2SeqDataLoaders", "read_parallel", "check_pairs", "default_tokenizer",
           "ParallelDataError"]

_SPECIALS = (UNK, PAD, BOS, EOS)


class ParallelDataError(TextDataError):
    """Two sides of parallel text do not match (line counts, an empty line on one side)."""


def default_tokenizer() -> WordTokenizer:
    """Words and punctuation, lower-cased with case markers (so decoding restores the case), no `xxbos`."""
    return WordTokenizer(lower=True, add_bos=False)


def _short(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def _lines(path: Path, encoding: str) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"parallel text file not found: {path}")
    if path.is_dir():
        raise TextDataError(f"{path} is a directory; give a text file with one sentence a line")
    text = decode_text(path.read_bytes(), str(path), encoding)
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while lines and not lines[-1].strip():  # the final newline (and blank lines at the end)
        lines.pop()
    return lines


def read_parallel(src_path: str | Path, tgt_path: str | Path, encoding: str = "utf-8"
                  ) -> tuple[list[str], list[str]]:
    """The aligned sentences of two files (one sentence a line, line i of one the translation of line i of
    the other), checked by `check_pairs`. Blank lines at the end of a file are ignored.

    Raises:
        FileNotFoundError: a file is missing.
        ParallelDataError: different line counts (naming the first line where the files part), an empty
            line on one side only (naming the file and line).
        TextDataError: a binary or wrongly encoded file, an empty file.
    """
    sp, tp = Path(src_path), Path(tgt_path)
    src, tgt = _lines(sp, encoding), _lines(tp, encoding)
    for p, lines in ((sp, src), (tp, tgt)):
        if not lines:
            raise TextDataError(f"{p} is empty: there are no sentences to learn from")
    src, tgt, _ = check_pairs(src, tgt, str(sp), str(tp), first_line=1)
    return src, tgt


def check_pairs(src: Sequence[str], tgt: Sequence[str], src_name: str = "the source",
                tgt_name: str = "the target", first_line: int = 0) -> tuple[list[str], list[str], int]:
    """Check that two lists of sentences are aligned; drop pairs that are blank on both sides.

    Args:
        src, tgt: the sentences.
        src_name, tgt_name: what to call each side in messages (file names, columns).
        first_line: the number of the first sentence in messages (1 for file lines, 0 for rows).

    Returns:
        (source, target, number of pairs blank on both sides that were dropped).

    Raises:
        ParallelDataError: a different number of sentences (naming the first line where they part) or a
            sentence empty on one side only.
        TypeError: a sentence that is not a str.
    """
    src, tgt = list(src), list(tgt)
    unit = "line" if first_line == 1 else "row"
    for name, side in ((src_name, src), (tgt_name, tgt)):
        bad = next((i for i, s in enumerate(side) if not isinstance(s, str)), None)
        if bad is not None:
            raise TypeError(f"{name}: sentences must be str; {unit} {bad + first_line} is {type(side[bad]).__name__}")
    if len(src) != len(tgt):
        k = min(len(src), len(tgt))
        longer, lines = (src_name, src) if len(src) > len(tgt) else (tgt_name, tgt)
        shorter = tgt_name if longer == src_name else src_name
        raise ParallelDataError(
            f"{src_name} has {len(src)} {unit}s but {tgt_name} has {len(tgt)}: they part at {unit} {k + first_line}, "
            f"where {longer} has {_short(lines[k])} and {shorter} has nothing. Each {unit} must be the translation "
            f"of the same {unit} of the other side: check how the files were made (a sentence with a line break "
            "inside, a missing or extra line).")
    keep_s, keep_t, blank = [], [], 0
    for i, (s, t) in enumerate(zip(src, tgt)):
        es, et = not s.strip(), not t.strip()
        if es and et:
            blank += 1
            continue
        if es or et:
            empty, full, text = (src_name, tgt_name, t) if es else (tgt_name, src_name, s)
            raise ParallelDataError(
                f"{unit} {i + first_line} of {empty} is empty but {unit} {i + first_line} of {full} is "
                f"{_short(text)}: every sentence needs its translation. Remove the pair or fill in the missing "
                "side (a missing line shifts every later pair: check the lines before it too).")
        keep_s.append(s)
        keep_t.append(t)
    if not keep_s:
        raise ParallelDataError(f"{src_name} and {tgt_name} hold no sentences (every {unit} is blank)")
    return keep_s, keep_t, blank


def _tokens(tok: Tokenizer, texts: Sequence[str]) -> list[list[str]]:
    out = tok.tokenize_texts(texts)
    return [t[1:] if t[:1] == [BOS] else t for t in out]  # the loaders add their own markers


class Seq2SeqDataLoader(TextClassDataLoader):
    """Batches `(src, src_len, tgt_in, tgt_out)` of sentence pairs of similar source lengths (see the module
    docstring); without targets (`tgt_ids=None`) batches are `(src, src_len)`.

    Args:
        src_ids: one 1-d id tensor per source sentence (ending with `xxeos`).
        tgt_ids: one per target sentence (`xxbos ... xxeos`), or None.
        bs: pairs per batch.
        src_pad, tgt_pad: the padding id of each vocabulary.
        shuffle: sort-ish random order every epoch; False: longest source first.
        device: where batches are delivered. seed: this loader's generator seed.
        texts: the source sentences (row i is `texts[i]`). targets: the target sentences.
    """

    def __init__(self, src_ids: Sequence[torch.Tensor], tgt_ids: Sequence[torch.Tensor] | None, bs: int = 64,
                 src_pad: int = 1, tgt_pad: int = 1, shuffle: bool = False, chunk_mult: int = 50,
                 device: torch.device | str | None = None, seed: int | None = None,
                 texts: Sequence[str] | None = None, targets: Sequence[str] | None = None) -> None:
        super().__init__(src_ids, None, bs=bs, pad_idx=src_pad, shuffle=shuffle, chunk_mult=chunk_mult,
                         device=device, seed=seed, texts=texts)
        self.tgt_pad = int(tgt_pad)
        self.targets = list(targets) if targets is not None else None
        self._tgt_lens_cpu: torch.Tensor | None = None
        if tgt_ids is not None:
            if len(tgt_ids) != len(src_ids):
                raise ValueError(f"{len(src_ids)} source sentences but {len(tgt_ids)} targets")
            tl = torch.tensor([len(d) for d in tgt_ids], dtype=torch.long)
            if len(tl) and int(tl.min()) < 2:
                raise TextDataError("every target needs at least its xxbos and xxeos tokens")
            flat = torch.cat([d.reshape(-1).long() for d in tgt_ids]) if len(tgt_ids) else torch.zeros(0, dtype=torch.long)
            starts = torch.cumsum(tl, 0) - tl
            self.tensors = self.tensors + tuple(t.to(self.device) for t in (flat, starts, tl))
            self._tgt_lens_cpu = tl
        self.n_inp = 3 if tgt_ids is not None else 2

    @property
    def has_labels(self) -> bool:
        """Whether batches carry targets."""
        return self._tgt_lens_cpu is not None

    @property
    def tgt_lengths(self) -> torch.Tensor | None:
        """Token count of every target (with xxbos and xxeos; CPU), None without targets."""
        return self._tgt_lens_cpu

    @staticmethod
    def _pad(flat: torch.Tensor, starts: torch.Tensor, lens: torch.Tensor, idx: torch.Tensor, width: int,
             pad: int) -> torch.Tensor:
        ar = torch.arange(width, device=flat.device)
        mask = ar[None, :] < lens[idx][:, None]
        pos = (starts[idx][:, None] + ar[None, :]).clamp_(max=max(len(flat) - 1, 0))
        return flat[pos].masked_fill_(~mask, pad)

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flat, starts, lens = self.tensors[:3]
        idx_cpu = idx.cpu()
        idx = idx.to(flat.device)
        src = self._pad(flat, starts, lens, idx, int(self._lens_cpu[idx_cpu].max()), self.pad_idx)
        if not self.has_labels:
            return src, lens[idx]
        tflat, tstarts, tlens = self.tensors[3:6]
        width = int(self._tgt_lens_cpu[idx_cpu].max())  # type: ignore[index]
        tgt = self._pad(tflat, tstarts, tlens, idx, width, self.tgt_pad)
        return src, lens[idx], tgt[:, :-1], tgt[:, 1:]

    def __repr__(self) -> str:
        return (f"Seq2SeqDataLoader({self.n} pairs, {int(self._lens_cpu.sum())} source tokens, bs={self.bs}, "
                f"shuffle={self.shuffle}, device={self.device})")


def _check_len(name: str, v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"`{name}` must be a positive whole number of tokens or None; received {name}={v!r}")
    return v


class Seq2SeqDataLoaders(DataLoaders):
    """Training and validation `Seq2SeqDataLoader`s with both tokenizers and vocabularies (all exported with a
    model, so a loaded translator reads and writes text as in training).

    Build it with `from_texts`, `from_files` or `from_df`.

    Attributes:
        src_vocab, tgt_vocab, src_tok, tgt_tok: each side's vocabulary and tokenizer.
        max_src_len, max_tgt_len: the longest sentences (in tokens, without markers) kept for training.
        n_dropped: training pairs left out for being longer than those limits.
        n_blank: pairs blank on both sides that were skipped.
    """

    def __init__(self, train: Seq2SeqDataLoader, valid: Seq2SeqDataLoader | None, src_vocab: Vocab,
                 tgt_vocab: Vocab, src_tok: Tokenizer, tgt_tok: Tokenizer, max_src_len: int | None = None,
                 max_tgt_len: int | None = None, n_dropped: int = 0, n_blank: int = 0) -> None:
        super().__init__(train, valid)
        self.src_vocab, self.tgt_vocab, self.src_tok, self.tgt_tok = src_vocab, tgt_vocab, src_tok, tgt_tok
        self.max_src_len, self.max_tgt_len = max_src_len, max_tgt_len
        self.n_dropped, self.n_blank = n_dropped, n_blank

    # ---- sizes and defaults -------------------------------------------------------------------------
    @property
    def src_pad(self) -> int:
        """Padding id of the source vocabulary."""
        return int(self.src_vocab.pad_idx)

    @property
    def tgt_pad(self) -> int:
        """Padding id of the target vocabulary."""
        return int(self.tgt_vocab.pad_idx)

    @property
    def default_loss(self) -> CrossEntropyLoss:
        """Cross entropy over the target vocabulary, padding ignored."""
        return CrossEntropyLoss(ignore_index=self.tgt_pad)

    @property
    def learner_class(self) -> type:
        """`load_learner` builds a `Seq2SeqLearner` for these loaders."""
        from .learner import Seq2SeqLearner
        return Seq2SeqLearner

    def longest(self) -> tuple[int, int]:
        """The longest source and target sequences of the loaders (with their markers)."""
        s = t = 0
        for dl in (self.train, self.valid):
            if dl is not None and dl.n:
                s = max(s, int(dl.lengths.max()))
                if dl.tgt_lengths is not None:
                    t = max(t, int(dl.tgt_lengths.max()))
        return s, t

    # ---- encoding -----------------------------------------------------------------------------------
    def src_tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """The source tokens of each text as the encoder reads them (ending with xxeos)."""
        return [t + [EOS] for t in _tokens(self.src_tok, texts)]

    def encode_src(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Source ids of each text (tokenised as in training, ending with xxeos)."""
        return [self.src_vocab.numericalize(t) for t in self.src_tokens(texts)]

    def encode_tgt(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Target ids of each text (`xxbos ... xxeos`)."""
        return [self.tgt_vocab.numericalize([BOS] + t + [EOS]) for t in _tokens(self.tgt_tok, texts)]

    def decode_tgt(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Readable target text of ids (up to the first xxeos; markers and padding dropped)."""
        toks = self.tgt_ids_to_tokens(ids)
        return self.tgt_tok.decode(toks)

    def tgt_ids_to_tokens(self, ids: torch.Tensor | Sequence[int]) -> list[str]:
        """The target tokens of ids, stopping at the first xxeos, without xxbos and padding."""
        toks = self.tgt_vocab.lookup(ids)
        if EOS in toks:
            toks = toks[: toks.index(EOS)]
        return [t for t in toks if t not in (BOS, PAD)]

    def test_dl(self, src_texts: Sequence[str], tgt_texts: Sequence[str] | None = None, bs: int | None = None
                ) -> Seq2SeqDataLoader:
        """A loader over new pairs (or source sentences alone), read exactly like the training pairs."""
        src_texts = list(src_texts)
        if tgt_texts is not None:
            src_texts, tgt_texts, _ = check_pairs(src_texts, list(tgt_texts), "the source texts", "the target texts")
        else:
            empty = [i for i, s in enumerate(src_texts) if not isinstance(s, str) or not s.strip()]
            if empty:
                raise TextDataError(f"source text {empty[0]} is empty (or not a str): give one sentence per item")
        bs = bs or (self.valid.bs if self.valid is not None else self.train.bs)
        return Seq2SeqDataLoader(self.encode_src(src_texts), self.encode_tgt(tgt_texts) if tgt_texts is not None
                                 else None, bs=bs, src_pad=self.src_pad, tgt_pad=self.tgt_pad, device=self.device,
                                 texts=src_texts, targets=tgt_texts)

    def show_batch(self, n: int = 4) -> list[tuple[str, str]]:
        """The first `n` pairs of a training batch as (source, target) text, also printed."""
        src, src_len, tgt_in, _ = self.train.one_batch()
        rows = []
        for i in range(min(n, len(src))):
            s = self.src_tok.decode([t for t in self.src_vocab.lookup(src[i, : int(src_len[i])]) if t != EOS])
            rows.append((s, self.decode_tgt(tgt_in[i])))
        for s, t in rows:
            print(f"{s}  ->  {t}")
        return rows

    def model_mismatches(self, model: "nn.Module") -> list[str]:
        """How the vocabularies disagree with a model's sizes (empty: they fit); used on exported files."""
        out = []
        for side, vocab in (("src", self.src_vocab), ("tgt", self.tgt_vocab)):
            n = getattr(model, f"{side}_vocab_sz", None)
            if n is not None and n != len(vocab):
                out.append(f"the {side} vocabulary has {len(vocab)} tokens but the model reads {n}")
        return out

    # ---- export ---------------------------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-able state (both vocabularies and tokenizers, length limits, bs) for `learn.export`."""
        return {"src_vocab": self.src_vocab.get_state(), "tgt_vocab": self.tgt_vocab.get_state(),
                "src_tokenizer": self.src_tok.get_state(), "tgt_tokenizer": self.tgt_tok.get_state(),
                "max_src_len": self.max_src_len, "max_tgt_len": self.max_tgt_len, "bs": self.train.bs}, {}

    #: the shape of `export_state`, checked before `from_state` runs on a loaded file
    STATE_FIELDS = {"src_vocab": {"itos": [str]}, "tgt_vocab": {"itos": [str]}, "src_tokenizer": {"kind": str},
                    "tgt_tokenizer": {"kind": str}, "max_src_len?": int, "max_tgt_len?": int, "bs?": int}

    @classmethod
    def from_state(cls, state: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None
                   ) -> "Seq2SeqDataLoaders":
        """Inference-only loaders (no sentences) from `export_state`."""
        sv, tv = Vocab.from_state(state["src_vocab"]), Vocab.from_state(state["tgt_vocab"])
        for name, v in (("source", sv), ("target", tv)):
            missing = [t for t in _SPECIALS if t not in v.stoi]
            if missing:
                raise TextDataError(f"the {name} vocabulary lacks the special tokens {missing}")
        empty = Seq2SeqDataLoader([], None, bs=int(state.get("bs") or 64), src_pad=int(sv.pad_idx),
                                  tgt_pad=int(tv.pad_idx))
        return cls(empty, None, sv, tv, tokenizer_from_state(state["src_tokenizer"]),
                   tokenizer_from_state(state["tgt_tokenizer"]), state.get("max_src_len"), state.get("max_tgt_len"))

    # ---- builders -----------------------------------------------------------------------------------
    @classmethod
    def from_texts(cls, src: Sequence[str], tgt: Sequence[str], valid_src: Sequence[str] | None = None,
                   valid_tgt: Sequence[str] | None = None, valid_pct: float = 0.1, seed: int | None = None,
                   bs: int = 64, src_tokenizer: str | Tokenizer | None = None,
                   tgt_tokenizer: str | Tokenizer | None = None, min_freq: int = 2, max_vocab: int | None = None,
                   max_src_len: int | None = None, max_tgt_len: int | None = None,
                   device: torch.device | str | None = None, src_name: str = "the source",
                   tgt_name: str = "the target", valid_names: tuple[str, str] = ("the validation source",
                                                                                  "the validation target"),
                   from_lines: bool = False) -> "Seq2SeqDataLoaders":
        """Loaders of sentence pairs.

        Args:
            src, tgt: the aligned training sentences (checked by `check_pairs`).
            valid_src, valid_tgt: validation pairs; without them a random `valid_pct` of the pairs is held out.
            valid_pct: share of pairs held out when no validation pairs are given (0: none).
            seed: seed of the split and of the training order.
            bs: pairs per training batch (validation: 2 * bs).
            src_tokenizer, tgt_tokenizer: "word", "bpe" (learned on the training side), "char" or a Tokenizer;
                default `default_tokenizer()` (words, lower-cased with case markers).
            min_freq: tokens seen fewer times in the training side become xxunk.
            max_vocab: at most this many tokens per vocabulary.
            max_src_len, max_tgt_len: training pairs with more tokens (markers not counted) on a side are
                dropped, and counted in `n_dropped` (validation pairs are all kept).
            device: where batches go (default: the GPU when there is one).
            src_name, tgt_name, valid_names: what to call each side (and the validation sides) in messages.
            from_lines: the sentences are lines of files: messages number them from 1 ("line 3"), else
                from 0 ("row 3").

        Raises:
            ParallelDataError: misaligned sides; TextDataError: nothing left to train on.
        """
        max_src_len, max_tgt_len = _check_len("max_src_len", max_src_len), _check_len("max_tgt_len", max_tgt_len)
        first = 1 if from_lines else 0
        src, tgt, n_blank = check_pairs(src, tgt, src_name, tgt_name, first_line=first)
        if (valid_src is None) != (valid_tgt is None):
            raise ValueError("give both valid_src and valid_tgt, or neither (then valid_pct of the pairs is held out)")
        if valid_src is not None:
            va_s, va_t, nb = check_pairs(valid_src, valid_tgt, valid_names[0], valid_names[1],  # type: ignore[arg-type]
                                         first_line=first)
            n_blank += nb
            tr_s, tr_t = src, tgt
        else:
            if not 0 <= valid_pct < 1:
                raise ValueError(f"`valid_pct` must be in [0, 1); received valid_pct={valid_pct!r}")
            if valid_pct > 0 and len(src) >= 2:
                tr, va = split_indices(len(src), valid_pct, seed)
            else:
                tr, va = np.arange(len(src)), np.zeros(0, dtype=np.int64)
            tr_s, tr_t = [src[i] for i in tr], [tgt[i] for i in tr]
            va_s, va_t = [src[i] for i in va], [tgt[i] for i in va]
        stok = default_tokenizer() if src_tokenizer is None else get_tokenizer(src_tokenizer)
        ttok = default_tokenizer() if tgt_tokenizer is None else get_tokenizer(tgt_tokenizer)
        if not stok.is_trained:
            stok.fit(tr_s)
        if not ttok.is_trained:
            ttok.fit(tr_t)
        s_toks, t_toks = _tokens(stok, tr_s), _tokens(ttok, tr_t)
        keep = [i for i in range(len(s_toks))
                if (max_src_len is None or len(s_toks[i]) <= max_src_len)
                and (max_tgt_len is None or len(t_toks[i]) <= max_tgt_len)]
        n_dropped = len(s_toks) - len(keep)
        if not keep:
            raise TextDataError(f"every training pair is longer than max_src_len={max_src_len} / max_tgt_len="
                                f"{max_tgt_len} tokens: raise the limits")
        s_toks, t_toks = [s_toks[i] for i in keep], [t_toks[i] for i in keep]
        tr_s, tr_t = [tr_s[i] for i in keep], [tr_t[i] for i in keep]
        sv = Vocab.build(s_toks, min_freq=min_freq, max_size=max_vocab, specials=_SPECIALS)
        tv = Vocab.build(t_toks, min_freq=min_freq, max_size=max_vocab, specials=_SPECIALS)
        device = default_device() if device is None else device
        s_ids = [sv.numericalize(t + [EOS]) for t in s_toks]
        t_ids = [tv.numericalize([BOS] + t + [EOS]) for t in t_toks]
        train = Seq2SeqDataLoader(s_ids, t_ids, bs=bs, src_pad=sv.pad_idx, tgt_pad=tv.pad_idx, shuffle=True,
                                  device=device, seed=seed, texts=tr_s, targets=tr_t)
        dls = cls(train, None, sv, tv, stok, ttok, max_src_len, max_tgt_len, n_dropped, n_blank)
        if va_s:
            dls.valid = Seq2SeqDataLoader(dls.encode_src(va_s), dls.encode_tgt(va_t), bs=2 * bs, src_pad=sv.pad_idx,
                                          tgt_pad=tv.pad_idx, device=device, texts=va_s, targets=va_t)
        return dls

    @classmethod
    def from_files(cls, src_path: str | Path, tgt_path: str | Path, valid_src: str | Path | None = None,
                   valid_tgt: str | Path | None = None, encoding: str = "utf-8", **kwargs: Any
                   ) -> "Seq2SeqDataLoaders":
        """`from_texts` on aligned files (one sentence a line; see `read_parallel`), with validation files or
        a random `valid_pct` of the pairs. Other keyword arguments are `from_texts`'s."""
        bad = set(kwargs) - {"valid_pct", "seed", "bs", "src_tokenizer", "tgt_tokenizer", "min_freq", "max_vocab",
                             "max_src_len", "max_tgt_len", "device"}
        if bad:
            raise TypeError(f"from_files got unknown arguments {sorted(bad)}")
        src, tgt = read_parallel(src_path, tgt_path, encoding)
        vs = vt = None
        if (valid_src is None) != (valid_tgt is None):
            raise ValueError("give both valid_src and valid_tgt files, or neither")
        if valid_src is not None:
            vs, vt = read_parallel(valid_src, valid_tgt, encoding)  # type: ignore[arg-type]
        return cls.from_texts(src, tgt, vs, vt, src_name=str(src_path), tgt_name=str(tgt_path),
                              valid_names=(str(valid_src), str(valid_tgt)), from_lines=True, **kwargs)

    @classmethod
    def from_df(cls, df: "pd.DataFrame", src_col: str, tgt_col: str, valid_pct: float = 0.1, **kwargs: Any
                ) -> "Seq2SeqDataLoaders":
        """`from_texts` on two text columns of a DataFrame (not modified); missing values name their rows."""
        from ..text.io import texts_from_df
        src, _ = texts_from_df(df, src_col, source="the DataFrame")
        tgt, _ = texts_from_df(df, tgt_col, source="the DataFrame")
        return cls.from_texts(src, tgt, valid_pct=valid_pct, src_name=f"column {src_col!r}",
                              tgt_name=f"column {tgt_col!r}", **kwargs)

    def __repr__(self) -> str:
        n_va = self.valid.n if self.valid is not None else 0
        return (f"Seq2SeqDataLoaders({self.train.n} train / {n_va} valid pairs, vocabularies {len(self.src_vocab)} "
                f"-> {len(self.tgt_vocab)}, {self.n_dropped} dropped for length)")
