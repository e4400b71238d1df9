"""Tokenizers: text -> list of string tokens, and back (best effort) for display.

Three kinds, one interface (`__call__`, `decode`, `get_state`, `tokenizer_from_state`):

- `CharTokenizer`: one token per character (the course's Nietzsche lessons).
- `WordTokenizer`: words and punctuation with readable rules, in this order:
    1. light HTML clean-up (`<br />` -> newline, other tags dropped, `&amp;` -> `&`), `\\r\\n` -> `\\n`;
    2. split into words, numbers, runs of one punctuation character, and newlines (each newline is a
       token `"\\n"`); `n't` and `'s` (also `'re 'll 've 'm 'd`) are split off their word: "don't" ->
       "do", "n't"; spaCy's tokenizer does this step instead when it is used (`spacy=True` or `'auto'`);
    3. a character repeated 4+ times -> `xxrep N c` ("sooooo" -> "s", "xxrep", "5", "o"; "!!!!" -> "xxrep",
       "4", "!"); a word made of one repeated letter or digit ("zzzz") is kept;
    4. a word repeated 3+ times in a row -> `xxwrep N word`;
    5. with `lower=True`: an all-caps word (2+ letters) -> `xxup word`, a capitalised word ->
       `xxmaj word`, everything lower-cased (so "The" and "the" share one token);
    6. `xxbos` in front of the text (`add_bos=True`).
- `BPETokenizer`: subword units by byte-pair encoding, learned with SentencePiece (`BPETokenizer.train`);
  pieces never cross a space or a line end; the learned model is kept in `get_state()` (base64), so an
  exported model tokenizes exactly as it did in training, with no separate file.

Example:
    >>> tok = WordTokenizer()
    >>> tok("The cat didn't SEE it!!!!")
    ['xxbos', 'xxmaj', 'the', 'cat', 'did', "n't", 'xxup', 'see', 'it', 'xxrep', '4', '!']
    >>> tok.decode(tok("The cat didn't SEE it!!!!"))
    "The cat didn't SEE it!!!!"
"""
from __future__ import annotations

import base64
import html
import io
import re
from typing import Any, Iterable, Sequence

from .io import TextDataError

__all__ = ["Tokenizer", "CharTokenizer", "WordTokenizer", "BPETokenizer", "TokenizerError", "get_tokenizer",
           "tokenizer_from_state", "TOKENIZERS", "UNK", "PAD", "BOS", "EOS", "TK_MAJ", "TK_UP", "TK_REP",
           "TK_WREP", "SPECIAL_TOKENS"]

UNK, PAD, BOS, EOS = "xxunk", "xxpad", "xxbos", "xxeos"
TK_MAJ, TK_UP, TK_REP, TK_WREP = "xxmaj", "xxup", "xxrep", "xxwrep"
#: Every marker token deepfit's tokenizers and vocabularies use.
SPECIAL_TOKENS = (UNK, PAD, BOS, EOS, TK_MAJ, TK_UP, TK_REP, TK_WREP)
#: The names `get_tokenizer` knows.
TOKENIZERS = ("char", "word", "bpe")

_STATE_VERSION = 1


class TokenizerError(TextDataError):
    """A tokenizer cannot be used as asked (untrained BPE, a missing optional library, a bad saved state)."""


class Tokenizer:
    """Base class: `tok(text) -> list[str]`, `tok.decode(tokens) -> str`, `tok.get_state() -> dict`.

    Subclasses set `kind` (the name in `get_tokenizer` and in the saved state)."""

    kind: str = ""

    def __call__(self, text: str) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, tokens: Sequence[str]) -> str:  # pragma: no cover - interface
        """Best-effort text from `tokens`, for display (generated samples)."""
        raise NotImplementedError

    def get_state(self) -> dict[str, Any]:  # pragma: no cover - interface
        """Everything needed to rebuild this tokenizer (JSON-able); see `tokenizer_from_state`."""
        raise NotImplementedError

    @property
    def is_trained(self) -> bool:
        """Whether the tokenizer can be used (only a BPE tokenizer needs training first)."""
        return True

    def fit(self, texts: Iterable[str]) -> "Tokenizer":
        """Learn what the tokenizer needs from training texts (nothing, except for BPE); returns self."""
        return self

    def tokenize_texts(self, texts: Iterable[str]) -> list[list[str]]:
        """Tokenize several documents."""
        return [self(t) for t in texts]

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.get_state().items()
                         if k not in ("kind", "version", "model"))
        return f"{type(self).__name__}({opts})"


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise TypeError(f"a tokenizer takes one str; received {type(text).__name__}")
    return text


# ---- characters ----------------------------------------------------------------------------------------
class CharTokenizer(Tokenizer):
    """One token per character, newlines and spaces included.

    Args:
        lower: lower-case the text first (the lesson's stateful RNN does).

    Example:
        >>> CharTokenizer()("Hi!")
        ['H', 'i', '!']
    """

    kind = "char"

    def __init__(self, lower: bool = False) -> None:
        self.lower = bool(lower)

    def __call__(self, text: str) -> list[str]:
        text = _check_text(text)
        return list(text.lower() if self.lower else text)

    def decode(self, tokens: Sequence[str]) -> str:
        return "".join(tokens)

    def get_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": _STATE_VERSION, "lower": self.lower}


# ---- words ---------------------------------------------------------------------------------------------
_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
# A newline; a number (3.14, 1,000, 10:30); a word, apostrophes inside allowed (split below); a run of
# one punctuation character ("...", "!!"). Underscores count as punctuation.
_WORD_RE = re.compile(r"\n|\d+(?:[.,:]\d+)+|[^\W_]+(?:['’][^\W_]+)*|([^\w\s]|_)\1*")
_CONTRACTION = re.compile(r"^(.+?)(n['’]t|['’](?:s|re|ll|ve|m|d))$", re.IGNORECASE)
_REP = re.compile(r"(.)\1{3,}")  # a character 4+ times in a row
_MIN_REP, _MIN_WREP = 4, 3
_NO_SPACE_BEFORE = re.compile(r"^(?:[.,;:!?%)\]}]+|n['’]t|['’](?:s|re|ll|ve|m|d))$", re.IGNORECASE)
_NO_SPACE_AFTER = {"(", "[", "{", "$", "#", "\n"}


def clean_html(text: str) -> str:
    """Light HTML clean-up: `<br />` -> newline, other tags removed, entities (`&amp;`, `&#39;`) decoded,
    non-breaking spaces -> spaces, Windows line ends -> `\\n`."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _BR.sub("\n", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    return text.replace("\xa0", " ")


def _split_rule_based(text: str) -> list[str]:
    out: list[str] = []
    for m in _WORD_RE.finditer(text):
        t = m.group(0)
        c = _CONTRACTION.match(t) if ("'" in t or "’" in t) else None
        if c is not None:
            out.extend((c.group(1), c.group(2)))
        else:
            out.append(t)
    return out


def _replace_char_reps(tokens: list[str]) -> list[str]:
    if not any(len(t) >= _MIN_REP for t in tokens):
        return tokens
    out: list[str] = []
    for t in tokens:
        if len(t) < _MIN_REP or _REP.search(t) is None:
            out.append(t)
            continue
        if t.isalnum() and len(set(t)) == 1:
            out.append(t)  # a whole word of one letter or digit ("zzzz", "0000") is kept as it is
            continue
        pos = 0
        for m in _REP.finditer(t):
            if m.start() > pos:
                out.append(t[pos:m.start()])
            out.extend((TK_REP, str(m.end() - m.start()), m.group(1)))
            pos = m.end()
        if pos < len(t):
            out.append(t[pos:])
    return out


def _replace_word_reps(tokens: list[str]) -> list[str]:
    if all(a != b for a, b in zip(tokens, tokens[1:])):  # no word twice in a row: nothing to do (fast path)
        return tokens
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        j = i + 1
        while j < n and tokens[j] == tokens[i]:
            j += 1
        if j - i >= _MIN_WREP and tokens[i] != "\n":
            out.extend((TK_WREP, str(j - i), tokens[i]))
        else:
            out.extend(tokens[i:j])
        i = j
    return out


def _case_of(t: str) -> str | None:
    if t.isupper() and sum(ch.isalpha() for ch in t) > 1:
        return TK_UP
    if t[:1].isupper():
        return TK_MAJ
    return None


def _mark_case(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i, n = 0, len(tokens)
    while i < n:
        t = tokens[i]
        if t in (TK_REP, TK_WREP) and i + 2 < n:  # the marker goes before the whole repetition
            w = tokens[i + 2]
            case = _case_of(w)
            if case is not None:
                out.append(case)
            out.extend((t, tokens[i + 1], w.lower()))
            i += 3
            continue
        low = t.lower()
        if low == t or t in SPECIAL_TOKENS:  # nothing to mark (most tokens)
            out.append(t)
        else:
            case = _case_of(t)
            if case is not None:
                out.append(case)
            out.append(low)
        i += 1
    return out


class WordTokenizer(Tokenizer):
    """Words and punctuation by readable rules (see the module docstring), with marker tokens.

    Args:
        lower: lower-case every word, marking capitalised (`xxmaj`) and all-caps (`xxup`) ones, so
            `decode` restores the case.
        add_bos: put `xxbos` at the start of every text.
        spacy: use spaCy's English tokenizer (no model download) for the splitting step: `True` (an error
            if spaCy is not installed), `False` (deepfit's rules), or `'auto'` (spaCy when installed). The
            choice made is saved, so a loaded model splits text the same way.
        html: apply the light HTML clean-up first.

    Example:
        >>> WordTokenizer(add_bos=False)("It's 3.5 stars.")
        ['xxmaj', 'it', "'s", '3.5', 'stars', '.']
    """

    kind = "word"

    def __init__(self, lower: bool = True, add_bos: bool = True, spacy: bool | str = False, html: bool = True) -> None:
        if spacy not in (True, False, "auto"):
            raise ValueError(f"spacy must be True, False or 'auto'; received {spacy!r}")
        self.lower, self.add_bos, self.html = bool(lower), bool(add_bos), bool(html)
        self._nlp: Any = None
        if spacy == "auto":
            spacy = _spacy_available()
        self.spacy = bool(spacy)
        if self.spacy:
            self._nlp = _spacy_tokenizer()

    def split(self, text: str) -> list[str]:
        """Step 2 alone: the raw words, numbers, punctuation and newlines of `text` (no markers)."""
        if self._nlp is None:
            return _split_rule_based(text)
        out: list[str] = []
        for tok in self._nlp(text):
            t = tok.text
            if t.isspace():  # spaCy keeps runs of extra whitespace as tokens: keep only the newlines
                out.extend("\n" for ch in t if ch == "\n")
                continue
            out.append(t)
            out.extend("\n" for ch in tok.whitespace_ if ch == "\n")
        return out

    def __call__(self, text: str) -> list[str]:
        text = _check_text(text)
        if self.html:
            text = clean_html(text)
        else:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        toks = _replace_word_reps(_replace_char_reps(self.split(text)))
        if self.lower:
            toks = _mark_case(toks)
        return [BOS] + toks if self.add_bos else toks

    def decode(self, tokens: Sequence[str]) -> str:
        """Undo the markers and join with spaces, none before punctuation and contractions, none around
        newlines. A repeated letter joins the word before it ("s" xxrep 5 "o" -> "sooooo"); what came after
        it inside the same word is not rejoined ("sooooon" comes back as "sooooo n").
        Example: `['xxmaj', 'it', "'s", 'xxup', 'ok', '.']` -> `"It's OK."`"""
        words: list[str] = []
        i, n = 0, len(tokens)
        case = ""
        while i < n:
            t = tokens[i]
            if t in (BOS, EOS, PAD):
                i += 1
                continue
            if t in (TK_MAJ, TK_UP):
                case = t
                i += 1
                continue
            if t in (TK_REP, TK_WREP) and i + 2 < n and tokens[i + 1].isdigit():
                k, w = int(tokens[i + 1]), tokens[i + 2]
                w = _apply_case(w, case)
                if t == TK_REP:
                    if words and _joins(words[-1], w):
                        words[-1] += w * k
                    else:
                        words.append(w * k)
                else:
                    words.extend([w] * k)
                case = ""
                i += 3
                continue
            words.append(_apply_case(t, case))
            case = ""
            i += 1
        out: list[str] = []
        quote_open = False  # straight double quotes alternate: no space inside "a pair"
        prev_opens = False
        for j, w in enumerate(words):
            closes = w == '"' and quote_open
            if (j > 0 and w != "\n" and not closes and not _NO_SPACE_BEFORE.match(w)
                    and words[j - 1] not in _NO_SPACE_AFTER and not prev_opens):
                out.append(" ")
            out.append(w)
            prev_opens = w == '"' and not quote_open
            if w == '"':
                quote_open = not quote_open
        return "".join(out)

    def get_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": _STATE_VERSION, "lower": self.lower, "add_bos": self.add_bos,
                "spacy": self.spacy, "html": self.html}


def _apply_case(w: str, case: str) -> str:
    if case == TK_UP:
        return w.upper()
    if case == TK_MAJ:
        return w[:1].upper() + w[1:]
    return w


def _joins(a: str, b: str) -> bool:
    """Whether `b` continues the word `a` (both word characters), as after a repeated letter."""
    return bool(a) and bool(b) and a[-1].isalnum() and b[0].isalnum()


def _spacy_available() -> bool:
    import importlib.util
    return importlib.util.find_spec("spacy") is not None


def _spacy_tokenizer() -> Any:
    try:
        import spacy
    except ImportError:
        raise TokenizerError("spacy=True needs spaCy, which is not installed: `pip install spacy`, or use "
                             "spacy=False for deepfit's own rules") from None
    return spacy.blank("en").tokenizer


# ---- byte-pair encoding --------------------------------------------------------------------------------
_SP_SPACE = "\u2581"  # SentencePiece's word-start mark


def _sentencepiece() -> Any:
    try:
        import sentencepiece
    except ImportError:
        raise TokenizerError("the BPE tokenizer needs the sentencepiece package: `pip install sentencepiece`, "
                             "or use the char or word tokenizer") from None
    return sentencepiece


class BPETokenizer(Tokenizer):
    """Subword tokens by byte-pair encoding, with SentencePiece as the engine.

    Build one with `BPETokenizer.train(texts, n_merges=...)` (or `vocab_size=`). Text is encoded one
    line at a time, so pieces never cross a line end (each newline is a token `"\\n"`), and SentencePiece
    keeps them inside words: a piece may start with `▁` (a word start) but never spans a space.
    Characters never seen in training come out as single-character tokens (the vocabulary maps them to
    `xxunk`). Training is deterministic (one thread, no sampling).

    Args:
        model: a trained SentencePiece model (serialized bytes); None makes an untrained tokenizer.
        lower: lower-case the text first.

    Example:
        >>> tok = BPETokenizer.train(["the cat sat on the mat"] * 10, n_merges=20)
        >>> tok.decode(tok("the cat")) == "the cat"
        True
    """

    kind = "bpe"

    def __init__(self, model: bytes | None = None, lower: bool = False) -> None:
        self.lower = bool(lower)
        self._proto: bytes | None = None
        self._sp: Any = None
        if model is not None:
            self._load(model)

    def _load(self, model: bytes) -> None:
        spm = _sentencepiece()
        sp = spm.SentencePieceProcessor()
        try:
            sp.LoadFromSerializedProto(model)
        except (RuntimeError, OSError, TypeError) as e:
            raise TokenizerError(f"not a valid SentencePiece model: {e}") from None
        self._proto, self._sp = bytes(model), sp

    @property
    def is_trained(self) -> bool:
        return self._sp is not None

    @property
    def n_merges(self) -> int:
        """Merges learned: the pieces of two or more characters."""
        sp = self._require()
        return sum(1 for i in range(sp.get_piece_size())
                   if not (sp.is_unknown(i) or sp.is_control(i))
                   and len(sp.id_to_piece(i)) > 1)

    @property
    def pieces(self) -> list[str]:
        """The learned pieces (characters and merges), without SentencePiece's unknown piece."""
        sp = self._require()
        return [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_unknown(i) or sp.is_control(i))]

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int | None = None, n_merges: int | None = None,
              lower: bool = False) -> "BPETokenizer":
        """Learn BPE merges from `texts` (training text only) and return the tokenizer.

        Args:
            texts: the training documents.
            vocab_size: pieces to learn in all (characters + merges); or give
            n_merges: the number of merges to learn (the characters of the texts come on top).
                Exactly one of the two. Fewer are learned when the texts have no more pairs to merge.
            lower: lower-case the text first.

        Raises:
            TextDataError: no text; ValueError: bad sizes; TokenizerError: sentencepiece is missing.
        """
        tok = cls(lower=lower)
        tok.fit(texts, vocab_size=vocab_size, n_merges=n_merges)
        return tok

    def fit(self, texts: Iterable[str], vocab_size: int | None = None,  # type: ignore[override]
            n_merges: int | None = None) -> "BPETokenizer":
        """Train this tokenizer in place (see `train`; default `n_merges=1000`); returns self."""
        if vocab_size is not None and n_merges is not None:
            raise ValueError("give vocab_size or n_merges, not both")
        if vocab_size is None and n_merges is None:
            n_merges = 1000
        for name, v in (("vocab_size", vocab_size), ("n_merges", n_merges)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ValueError(f"{name} must be a whole number >= 0; received {v!r}")
        spm = _sentencepiece()
        lines: list[str] = []
        chars: set[str] = set()
        for t in texts:
            t = _check_text(t)
            if self.lower:
                t = t.lower()
            for ln in t.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
                if ln.strip():
                    lines.append(ln)
                    chars.update(ln)
        if not lines:
            raise TextDataError("cannot train a BPE tokenizer: the training texts are empty or whitespace only")
        chars.discard(" ")
        chars.add(_SP_SPACE)  # a space is SentencePiece's word-start mark
        n_chars = len(chars)
        if vocab_size is None:
            vocab_size = n_chars + int(n_merges or 0) + 1  # + its unknown piece
        elif vocab_size < n_chars + 1:
            raise ValueError(f"vocab_size={vocab_size} is smaller than the {n_chars} distinct characters of the "
                             f"training text (+1 for unknown); use at least {n_chars + 1}, or n_merges=")
        buf = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines), model_writer=buf, model_type="bpe", vocab_size=vocab_size,
                character_coverage=1.0, normalization_rule_name="identity", remove_extra_whitespaces=False,
                split_by_whitespace=True, split_digits=False, byte_fallback=False, hard_vocab_limit=False,
                num_threads=1, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, unk_piece=UNK,
                max_sentence_length=max(4192, max(len(ln.encode("utf-8")) for ln in lines) + 1),
                input_sentence_size=0, shuffle_input_sentence=False, minloglevel=2)
        except RuntimeError as e:
            raise TokenizerError(f"SentencePiece could not learn a BPE model: {e}") from None
        self._load(buf.getvalue())
        return self

    def _require(self) -> Any:
        if self._sp is None:
            raise TokenizerError("this BPE tokenizer is not trained yet: build it with "
                                 "BPETokenizer.train(training_texts, n_merges=...) (or call .fit(texts))")
        return self._sp

    def __call__(self, text: str) -> list[str]:
        sp = self._require()
        text = _check_text(text)
        if self.lower:
            text = text.lower()
        out: list[str] = []
        for k, ln in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
            if k:
                out.append("\n")
            if ln:
                out.extend(sp.encode(ln, out_type=str))
        return out

    def decode(self, tokens: Sequence[str]) -> str:
        """The text of `tokens` (exact for the tokens of a text: `decode(tok(s)) == s` up to line ends)."""
        lines: list[str] = []
        cur: list[str] = []
        for t in tokens:
            if t == "\n":
                lines.append(self._decode_line(cur))
                cur = []
            elif t not in (BOS, EOS, PAD):
                cur.append(t)
        lines.append(self._decode_line(cur))
        return "\n".join(lines)

    @staticmethod
    def _decode_line(pieces: list[str]) -> str:
        text = "".join(pieces).replace(_SP_SPACE, " ")
        return text[1:] if text.startswith(" ") else text  # the word-start mark SentencePiece adds in front

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"kind": self.kind, "version": _STATE_VERSION, "lower": self.lower}
        if self._proto is not None:
            state["n_merges"] = self.n_merges
            state["model"] = base64.b64encode(self._proto).decode("ascii")
        return state

    def __repr__(self) -> str:
        return f"BPETokenizer(lower={self.lower}, " + (f"n_merges={self.n_merges})" if self.is_trained
                                                        else "untrained)")


# ---- names and saved states ----------------------------------------------------------------------------
def get_tokenizer(name: str | Tokenizer, *, lower: bool | None = None) -> Tokenizer:
    """A tokenizer by name: "char", "word" or "bpe" (untrained: call `.fit(training_texts)` before use).

    Args:
        name: the kind, or a Tokenizer (returned as it is).
        lower: lower-case option (default: False for char and bpe, True for word, whose markers keep
            the case).
    """
    if isinstance(name, Tokenizer):
        return name
    if not isinstance(name, str) or name.lower() not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {name!r}; expected one of {', '.join(TOKENIZERS)}")
    kind = name.lower()
    if kind == "char":
        return CharTokenizer(lower=bool(lower))
    if kind == "word":
        return WordTokenizer(lower=True if lower is None else lower)
    return BPETokenizer(lower=bool(lower))


def tokenizer_from_state(state: dict[str, Any]) -> Tokenizer:
    """Rebuild a tokenizer from `Tokenizer.get_state()` (e.g. read from an exported model's JSON)."""
    if not isinstance(state, dict) or "kind" not in state:
        raise TokenizerError(f"not a saved tokenizer state (expected a dict with 'kind'); received "
                             f"{type(state).__name__}")
    kind, version = state["kind"], state.get("version", 1)
    if kind not in TOKENIZERS:
        raise TokenizerError(f"unknown tokenizer kind {kind!r} in the saved state; this deepfit knows "
                             f"{', '.join(TOKENIZERS)}")
    if not isinstance(version, int) or version > _STATE_VERSION:
        raise TokenizerError(f"the saved {kind} tokenizer has state version {version!r}, newer than this deepfit "
                             f"reads ({_STATE_VERSION}); upgrade deepfit")
    lower = bool(state.get("lower", False))
    if kind == "char":
        return CharTokenizer(lower=lower)
    if kind == "word":
        spacy = bool(state.get("spacy", False))
        if spacy and not _spacy_available():
            raise TokenizerError("this model was trained with spaCy's tokenizer, which is not installed here; "
                                 "`pip install spacy` so it splits text as in training")
        return WordTokenizer(lower=lower, add_bos=bool(state.get("add_bos", True)), spacy=spacy,
                             html=bool(state.get("html", True)))
    model = state.get("model")
    if model is None:
        return BPETokenizer(lower=lower)
    try:
        raw = base64.b64decode(model, validate=True)
    except (ValueError, TypeError):
        raise TokenizerError("the saved BPE tokenizer's model is not valid base64 (corrupted file?)") from None
    return BPETokenizer(raw, lower=lower)
