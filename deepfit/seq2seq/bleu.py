"""BLEU: the comparable detokenised number (sacreBLEU) and the tokenised, lower-cased one that the published
PyTorch translation tutorials report, plus a BLEU metric computed on the validation set during training.

Corpus BLEU (Papineni et al. 2002) with one reference per sentence: for n = 1..4, p_n = (n-grams of the
outputs found in the references, each counted at most as often as in its reference) / (n-grams of the
outputs); BLEU = 100 * BP * exp(mean_n log p_n), BP = exp(1 - r / c) when the outputs' total length c is
below the references' r, else 1. A p_n of 0 is smoothed as sacreBLEU's default "exp" method does
(the k-th zero precision becomes 1 / (2^k * total_n)), unless no n-gram matches at all (then 0);
`smooth="none"` gives 0 for any zero precision.

- `sacrebleu_score(hyps, refs)`: detokenised text through sacreBLEU itself (13a tokenisation, case-sensitive):
  the number to compare across papers and tokenisations.
- `tokenized_bleu(hyps, refs)`: both sides split into words and punctuation and lower-cased, then BLEU on those
  tokens (what the tutorials compute on spaCy tokens with torchtext's `bleu_score`).
- `CorpusBLEU`: a `Metric` for `Seq2SeqLearner`: greedy translations of each validation batch against its
  references, on the target vocabulary's tokens with the case markers dropped (unknown words stay xxunk,
  so it is a little below `tokenized_bleu` of the real text).
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Sequence

import torch

from ..metrics import Metric

__all__ = ["BLEUStats", "corpus_bleu", "tokenized_bleu", "sacrebleu_score", "CorpusBLEU", "words"]


class BLEUStats:
    """Running n-gram statistics of a corpus: `add(hyp_tokens, ref_tokens)` per sentence, then `score()`.

    Attributes:
        matches, totals: clipped n-gram matches and n-gram counts of the outputs, n = 1..max_n.
        hyp_len, ref_len: total tokens of the outputs and of the references.
    """

    def __init__(self, max_n: int = 4) -> None:
        self.max_n = max_n
        self.matches = [0] * max_n
        self.totals = [0] * max_n
        self.hyp_len = self.ref_len = 0

    def add(self, hyp: Sequence[str], ref: Sequence[str]) -> None:
        """Count one output against its reference."""
        self.hyp_len += len(hyp)
        self.ref_len += len(ref)
        for n in range(1, self.max_n + 1):
            h = Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
            r = Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            self.matches[n - 1] += sum(min(c, r[g]) for g, c in h.items())
            self.totals[n - 1] += max(len(hyp) - n + 1, 0)

    def merge(self, other: "BLEUStats") -> None:
        """Add another corpus's statistics."""
        self.matches = [a + b for a, b in zip(self.matches, other.matches)]
        self.totals = [a + b for a, b in zip(self.totals, other.totals)]
        self.hyp_len += other.hyp_len
        self.ref_len += other.ref_len

    def precisions(self, smooth: str = "exp") -> list[float]:
        """The n-gram precisions p_1..p_max_n in percent (smoothed as `score` does)."""
        out, k = [], 1
        for m, t in zip(self.matches, self.totals):
            if t == 0:
                out.append(0.0)
            elif m == 0 and smooth == "exp":
                k *= 2
                out.append(100.0 / (k * t))
            else:
                out.append(100.0 * m / t)
        return out

    def brevity_penalty(self) -> float:
        """exp(1 - r / c) when the outputs are shorter than the references (c < r), else 1; 0 for no output."""
        if self.hyp_len == 0:
            return 0.0
        return 1.0 if self.hyp_len >= self.ref_len else math.exp(1 - self.ref_len / self.hyp_len)

    def score(self, smooth: str = "exp") -> float:
        """BLEU in percent (0 to 100)."""
        if smooth not in ("exp", "none"):
            raise ValueError(f"smooth must be 'exp' or 'none'; received {smooth!r}")
        if self.hyp_len == 0 or not any(self.matches):  # no n-gram in common at all: 0, as sacreBLEU
            return 0.0
        p = self.precisions(smooth)
        if min(p) <= 0:
            return 0.0
        return self.brevity_penalty() * math.exp(sum(math.log(x / 100.0) for x in p) / self.max_n) * 100.0


def corpus_bleu(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]], max_n: int = 4,
                smooth: str = "exp") -> float:
    """Corpus BLEU (percent) of tokenised outputs against one tokenised reference each."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} outputs but {len(refs)} references")
    stats = BLEUStats(max_n)
    for h, r in zip(hyps, refs):
        stats.add(list(h), list(r))
    return stats.score(smooth)


_SPLITTER: Any = None


def words(text: str) -> list[str]:
    """The lower-cased words and punctuation of a text (deepfit's word rules, no markers): the tokens of
    `tokenized_bleu`."""
    global _SPLITTER
    if _SPLITTER is None:
        from ..text.tokenize import WordTokenizer
        _SPLITTER = WordTokenizer(lower=False, add_bos=False, html=False)
    return [w.lower() for w in _SPLITTER.split(text) if not w.isspace()]


def tokenized_bleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """BLEU (percent) on lower-cased word tokens of detokenised outputs and references (the tutorials' number)."""
    return corpus_bleu([words(h) for h in hyps], [words(r) for r in refs])


def sacrebleu_score(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """sacreBLEU (percent) of detokenised outputs against detokenised references (13a, case-sensitive)."""
    import sacrebleu
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} outputs but {len(refs)} references")
    return float(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score)


class CorpusBLEU(Metric):
    """BLEU of greedy translations of the validation set (see the module docstring).

    `Seq2SeqLearner` attaches itself (`metric.learner`) when the metric is given to it: each validation batch
    is decoded greedily from the batch's sources and compared with its targets.
    """

    def __init__(self, name: str = "bleu", max_len: int | None = None) -> None:
        self.learner: Any = None
        self.max_len = max_len
        super().__init__(name)

    def reset(self) -> None:
        self.stats = BLEUStats()

    def accumulate(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        from .decode import greedy_decode
        learn = self.learner
        if learn is None:
            raise RuntimeError("CorpusBLEU needs its Seq2SeqLearner: give it in metrics=[CorpusBLEU()]")
        src, src_len = learn.xb[0], learn.xb[1]
        model = getattr(learn.model, "module", learn.model)
        hyp = greedy_decode(model, src, src_len, max_len=self.max_len)
        dls = learn.dls
        markers = _markers()
        for ids, ref in zip(hyp.tokens, targ.tolist()):
            h = [t for t in dls.tgt_vocab.lookup(ids) if t not in markers]
            r = [t for t in dls.tgt_ids_to_tokens(ref) if t not in markers]
            self.stats.add(h, r)

    @property
    def value(self) -> float:
        return self.stats.score() if self.stats.ref_len else float("nan")

    def sync(self, comm: Any) -> None:
        t = torch.tensor(self.stats.matches + self.stats.totals + [self.stats.hyp_len, self.stats.ref_len],
                         dtype=torch.float64)
        t = comm.sum(t)
        n = self.stats.max_n
        vals = [int(x) for x in t.tolist()]
        self.stats.matches, self.stats.totals = vals[:n], vals[n:2 * n]
        self.stats.hyp_len, self.stats.ref_len = vals[2 * n], vals[2 * n + 1]


def _markers() -> frozenset[str]:
    from ..text.tokenize import SPECIAL_TOKENS
    return frozenset(t for t in SPECIAL_TOKENS if t != "xxunk")
