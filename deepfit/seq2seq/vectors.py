"""Pretrained word vectors from a text file (GloVe, word2vec or fastText text format) for a vocabulary.

The formats: one word a line followed by its numbers, separated by spaces (`word 0.1 -0.2 ...`); word2vec and
fastText `.vec` files start with a header line `<number of words> <dimension>`, GloVe files do not (the
header is recognised as a first line of exactly two whole numbers). Only the rows of the vocabulary's tokens
are kept (a large file is streamed, never loaded whole). A token is looked up as it is, then lower-cased.
Tokens without a vector (and the special tokens) get random rows with the mean and standard deviation of the
vectors found, so they start on the same scale; the padding row is zero.

Example:
    >>> weights, cov = load_vectors("wiki.de.vec", dls.src_vocab)                       # doctest: +SKIP
    >>> print(cov)                                                                      # doctest: +SKIP
    9,120 of 7,853 ... tokens have a vector (...)
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import torch

from ..text.io import TextDataError
from ..text.tokenize import SPECIAL_TOKENS
from ..text.vocab import Vocab

__all__ = ["load_vectors", "VectorCoverage", "VectorsFileError"]


class VectorsFileError(TextDataError):
    """A word-vectors file that cannot be read (wrong format or dimension), naming the file and line."""


@dataclass
class VectorCoverage:
    """How much of a vocabulary a vectors file covers.

    Attributes:
        path: the file. dim: the vectors' dimension. n_file: vectors read (lines after any header).
        n_vocab: tokens in the vocabulary, specials excluded. n_found: of those, tokens with a vector.
        token_coverage: share of the training tokens (counted with repeats) whose token has a vector, when
            the vocabulary kept its counts (None otherwise).
        missing: up to 20 of the most frequent tokens without a vector.
    """

    path: str
    dim: int
    n_file: int
    n_vocab: int
    n_found: int
    token_coverage: float | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Share of the vocabulary's (non-special) tokens with a vector."""
        return self.n_found / self.n_vocab if self.n_vocab else 0.0

    def __str__(self) -> str:
        tok = f", {100 * self.token_coverage:.1f}% of the training tokens" if self.token_coverage is not None else ""
        miss = f"; no vector for e.g. {', '.join(repr(t) for t in self.missing[:8])}" if self.missing else ""
        return (f"{self.n_found:,} of the {self.n_vocab:,} vocabulary tokens have a {self.dim}-d vector in {self.path} "
                f"({100 * self.coverage:.1f}%{tok}); the others start random{miss}")


def _open(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="strict")
    return open(path, encoding="utf-8", errors="strict")


def load_vectors(path: str | Path, vocab: Vocab, dim: int | None = None, seed: int | None = 0
                 ) -> tuple[torch.Tensor, VectorCoverage]:
    """Rows of pretrained vectors for `vocab` and a coverage report.

    Args:
        path: a GloVe / word2vec / fastText text file (optionally gzip-compressed, `.gz`).
        vocab: the vocabulary to cover (row i is token i).
        dim: the dimension expected (default: from the header or the first line); a file with another is an error.
        seed: seed of the random rows (None: torch's global generator).

    Returns:
        (weights (len(vocab), dim) float32, VectorCoverage).

    Raises:
        FileNotFoundError: no file. VectorsFileError: a binary file, a line with the wrong number of values
            or a value that is not a number (naming the file and line), a header that disagrees with the
            lines, no vector at all.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"word-vectors file not found: {path}")
    if path.is_dir():
        raise VectorsFileError(f"{path} is a directory; give a word-vectors text file (GloVe, word2vec or fastText .vec)")
    wanted: dict[str, list[int]] = {}
    for i, t in enumerate(vocab.itos):
        if t in SPECIAL_TOKENS:
            continue
        wanted.setdefault(t, []).append(i)
    exact: dict[int, torch.Tensor] = {}
    lowered: dict[int, torch.Tensor] = {}
    lower_index: dict[str, list[int]] = {}
    for t, rows in wanted.items():
        if t.lower() != t:
            lower_index.setdefault(t.lower(), []).extend(rows)
    n_file, header_dim = 0, None
    try:
        with _open(path) as f:
            for lineno, line in enumerate(f, 1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if lineno == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                    header_dim = int(parts[1])
                    if dim is not None and header_dim != dim:
                        raise VectorsFileError(f"{path} line 1: the header says {header_dim}-d vectors but {dim} "
                                               "were asked for")
                    dim = header_dim
                    continue
                if not line.strip():
                    continue
                word, values = parts[0], parts[1:]
                if dim is None:
                    dim = len(values)
                    if dim == 0:
                        raise VectorsFileError(f"{path} line {lineno}: {word[:40]!r} has no numbers after it; a vectors "
                                               "file has one word a line followed by its values")
                if len(values) != dim:
                    src = "its header" if header_dim is not None else ("the first vector" if lineno > 1 else "asked")
                    raise VectorsFileError(
                        f"{path} line {lineno}: {word[:40]!r} has {len(values)} values but {src} gives {dim} "
                        "dimensions; is the file complete and in text format (GloVe / word2vec / fastText .vec)? "
                        "(a word containing a space breaks the format too)")
                n_file += 1
                rows = wanted.get(word)
                lrows = lower_index.get(word)
                if rows is None and lrows is None:
                    continue
                try:
                    vec = torch.tensor([float(v) for v in values], dtype=torch.float32)
                except ValueError:
                    bad = next(v for v in values if not _is_float(v))
                    raise VectorsFileError(f"{path} line {lineno}: the value {bad[:20]!r} of {word[:40]!r} is not a "
                                           "number; is this a word-vectors text file?") from None
                for r in rows or []:
                    exact[r] = vec
                for r in lrows or []:
                    lowered.setdefault(r, vec)
    except UnicodeDecodeError:
        raise VectorsFileError(f"{path} is not UTF-8 text: give the text format of the vectors (GloVe .txt, "
                               "word2vec text, fastText .vec), not a binary .bin file") from None
    except (OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise VectorsFileError(f"cannot read {path}: {e}") from None
    if dim is None or n_file == 0:
        raise VectorsFileError(f"{path} holds no vectors")
    found = {**lowered, **exact}
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    if found:
        stack = torch.stack(list(found.values()))
        mean, std = stack.mean(0), stack.std(0) if len(stack) > 1 else torch.full((dim,), 0.1)
    else:
        mean, std = torch.zeros(dim), torch.full((dim,), 0.1)
    w = mean + std * torch.randn(len(vocab), dim, generator=gen)
    for r, v in found.items():
        w[r] = v
    if vocab.pad_idx is not None:
        w[vocab.pad_idx] = 0.0
    n_vocab = sum(len(r) for r in wanted.values())
    counts = getattr(vocab, "counts", None)
    token_cov, missing = None, []
    miss_toks = [t for t, rows in wanted.items() if not any(r in found for r in rows)]
    if counts:
        total = sum(c for t, c in counts.items() if t in wanted)
        token_cov = sum(counts[t] for t, rows in wanted.items() if any(r in found for r in rows)) / total \
            if total else None
        miss_toks.sort(key=lambda t: -counts.get(t, 0))
    missing = miss_toks[:20]
    return w, VectorCoverage(str(path), dim, n_file, n_vocab, len(found), token_cov, missing)


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False
