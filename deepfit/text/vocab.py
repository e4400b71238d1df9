"""`Vocab`: the mapping between tokens and integer ids, built from training text only.

Ids 0.. go to the special tokens first (by default `xxunk, xxpad, xxbos, xxeos`), then to the tokens
of the training text from the most to the least frequent (ties in alphabetical order, so the same text
gives the same vocabulary everywhere). Tokens rarer than `min_freq`, or past `max_size`, are left out
and read as `xxunk`. The vocabulary is saved as JSON (`get_state`) inside an exported model.

Example:
    >>> v = Vocab.build([["a", "b", "a"]], specials=("xxunk",))
    >>> v.itos
    ['xxunk', 'a', 'b']
    >>> v.numericalize(["a", "z"]).tolist()
    [1, 0]
    >>> v.textify([1, 2, 0], sep=" ")
    'a b xxunk'
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence

import torch

from .io import TextDataError
from .tokenize import BOS, EOS, PAD, UNK

__all__ = ["Vocab", "UnknownTokenError"]

_STATE_VERSION = 1


class UnknownTokenError(TextDataError):
    """A token is not in a vocabulary that has no unknown token (`specials` without `xxunk`)."""


class Vocab:
    """Tokens <-> ids. Build it with `Vocab.build` (from training tokens) or `Vocab.from_state`.

    Args:
        itos: the tokens, index = id (no repeats).
        specials: which of them are special tokens (they come first when built).

    Attributes:
        itos: list of tokens (id -> token). stoi: dict token -> id.
        unk_idx, pad_idx, bos_idx, eos_idx: ids of the special tokens, None for one that is absent.
    """

    def __init__(self, itos: Sequence[str], specials: Sequence[str] = ()) -> None:
        itos = list(itos)
        for i, t in enumerate(itos):
            if not isinstance(t, str):
                raise TypeError(f"vocabulary tokens must be str; entry {i} is {type(t).__name__} ({t!r})")
        if not itos:
            raise TextDataError("a vocabulary needs at least one token")
        stoi: dict[str, int] = {}
        for i, t in enumerate(itos):
            if t in stoi:
                raise TextDataError(f"token {t!r} appears twice in the vocabulary (ids {stoi[t]} and {i})")
            stoi[t] = i
        missing = [s for s in specials if s not in stoi]
        if missing:
            raise TextDataError(f"special tokens {missing} are not in the vocabulary")
        self.itos, self.stoi = itos, stoi
        self.specials = tuple(specials)
        self.unk_idx = stoi.get(UNK)
        self.pad_idx = stoi.get(PAD)
        self.bos_idx = stoi.get(BOS)
        self.eos_idx = stoi.get(EOS)

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None,
              specials: Sequence[str] = (UNK, PAD, BOS, EOS)) -> "Vocab":
        """Count the tokens of the training documents and keep the frequent ones.

        Args:
            token_lists: one list of tokens per training document (never the validation text).
            min_freq: keep tokens seen at least this many times.
            max_size: at most this many entries in all, specials included (the most frequent tokens win).
            specials: tokens that always come first, in this order; may be empty (`()`), e.g. for the
                raw characters of the lesson's char models, but then an unknown token is an error in
                `numericalize` (pass `specials=(UNK,)` to map unknown characters to `xxunk` instead).

        Raises:
            ValueError: bad `min_freq` / `max_size` / repeated specials; TextDataError: no token kept.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be a whole number >= 1; received {min_freq!r}")
        specials = tuple(specials)
        if len(set(specials)) != len(specials):
            raise ValueError(f"specials has repeated tokens: {list(specials)}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size <= len(specials)):
            raise ValueError(f"max_size must be a whole number above the {len(specials)} special tokens; "
                             f"received {max_size!r}")
        if isinstance(token_lists, (str, bytes)):
            raise TypeError("token_lists must be an iterable of token lists (one per document), not a str")
        counts: Counter[str] = Counter()
        n_docs = 0
        for toks in token_lists:
            if isinstance(toks, str):
                raise TypeError("token_lists must hold lists of tokens; received a str (wrap one document's "
                                "tokens in a list: [tokens])")
            counts.update(toks)
            n_docs += 1
        keep = sorted(((t, c) for t, c in counts.items() if c >= min_freq and t not in specials),
                      key=lambda tc: (-tc[1], tc[0]))
        if max_size is not None:
            keep = keep[:max_size - len(specials)]
        if not keep:
            why = "there are no tokens" if not counts else f"no token appears at least min_freq={min_freq} times"
            raise TextDataError(f"cannot build a vocabulary: {why} (in {n_docs} document(s))")
        vocab = cls(list(specials) + [t for t, _ in keep], specials)
        vocab.counts = counts
        vocab.min_freq, vocab.max_size = min_freq, max_size
        return vocab

    counts: Counter[str] | None = None
    min_freq: int = 1
    max_size: int | None = None

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos and self.specials == other.specials

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.itos[:10])
        return f"Vocab({len(self)} tokens: {head}{', ...' if len(self) > 10 else ''})"

    def unknown(self, tokens: Iterable[str]) -> list[str]:
        """The tokens of `tokens` that are not in the vocabulary (in order, with repeats)."""
        return [t for t in tokens if t not in self.stoi]

    def numericalize(self, tokens: Iterable[str]) -> torch.Tensor:
        """Token ids as a 1-d LongTensor; a token not in the vocabulary gets `unk_idx`.

        Raises:
            UnknownTokenError: an unknown token when the vocabulary has no `xxunk` (names it and its position).
        """
        if isinstance(tokens, str) and len(tokens) != 1 and tokens not in self.stoi:
            raise TypeError("numericalize takes a list of tokens, not a str; tokenize the text first "
                            "(for characters: list(text))")
        stoi, unk = self.stoi, self.unk_idx
        if unk is not None:
            ids = [stoi.get(t, unk) for t in tokens]
        else:
            try:
                ids = [stoi[t] for t in tokens]
            except KeyError as e:
                toks = list(tokens)
                bad = e.args[0]
                raise UnknownTokenError(f"token {bad!r} (position {toks.index(bad)}) is not in the vocabulary, "
                                        f"which has no {UNK!r} to stand for unknown tokens; build it with "
                                        f"specials=({UNK!r},) or from text that contains it") from None
        return torch.tensor(ids, dtype=torch.long)

    def textify(self, ids: Iterable[int] | torch.Tensor, sep: str = "") -> str:
        """The tokens of `ids` joined by `sep` (use the tokenizer's `decode` for readable words).

        Raises:
            IndexError: an id outside the vocabulary.
        """
        return sep.join(self.lookup(ids))

    def lookup(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """The tokens of `ids` as a list."""
        if isinstance(ids, torch.Tensor):
            ids = ids.reshape(-1).tolist()
        n = len(self.itos)
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < n:
                raise IndexError(f"id {i} is outside the vocabulary (ids 0 to {n - 1})")
            out.append(self.itos[i])
        return out

    def get_state(self) -> dict[str, Any]:
        """JSON-able state for export; `Vocab.from_state` rebuilds an equal vocabulary."""
        return {"version": _STATE_VERSION, "itos": list(self.itos), "specials": list(self.specials),
                "min_freq": self.min_freq, "max_size": self.max_size}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Vocab":
        """Rebuild a vocabulary saved with `get_state` (checked: a bad state raises TextDataError)."""
        if not isinstance(state, dict) or not isinstance(state.get("itos"), list):
            raise TextDataError("not a saved vocabulary (expected a dict with an 'itos' list)")
        version = state.get("version", 1)
        if not isinstance(version, int) or version > _STATE_VERSION:
            raise TextDataError(f"the saved vocabulary has state version {version!r}, newer than this deepfit reads "
                                f"({_STATE_VERSION}); upgrade deepfit")
        v = cls(state["itos"], state.get("specials", []))
        v.min_freq = int(state.get("min_freq", 1))
        v.max_size = state.get("max_size")
        return v
