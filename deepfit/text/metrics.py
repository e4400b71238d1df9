"""Language-model metrics, averaged over tokens (not over batches or sequences).

A language model's batches can have different sequence lengths (the last batch of a stream, random
`bptt`), so every metric here keeps a running sum and a token count: the value over an epoch is exactly
the mean over its tokens. `pred` is (..., vocab) logits and `targ` (...) token ids, e.g. (bs, seq, vocab)
and (bs, seq), or (bs, vocab) and (bs,) for the lesson's one-prediction-per-window models.

* `accuracy`: share of tokens whose most likely prediction is right.
* `perplexity`: exp of the mean cross entropy (nats).
* `bits_per_char`: mean cross entropy in bits per token, i.e. bits per character with a character
  tokenizer.

Example:
    >>> learn = language_model_learner(dls, metrics=[accuracy, perplexity, bits_per_char])
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..metrics import Metric, StateComm

__all__ = ["TokenAccuracy", "Perplexity", "BitsPerChar", "accuracy", "perplexity", "bits_per_char"]


def _flat(pred: Tensor, targ: Tensor, who: str) -> tuple[Tensor, Tensor]:
    if pred.ndim != targ.ndim + 1 or pred.shape[:-1] != targ.shape:
        raise ValueError(f"{who}: expected logits of shape targets.shape + (vocab,); received pred "
                         f"{tuple(pred.shape)} and targets {tuple(targ.shape)}.")
    return pred.detach().reshape(-1, pred.shape[-1]), targ.detach().reshape(-1).long()


class _TokenMean(Metric):
    """Running sum of a per-token quantity and the number of tokens."""

    def reset(self) -> None:
        self._total: Tensor | None = None
        self._count = 0

    def _per_token_sum(self, pred: Tensor, targ: Tensor) -> Tensor:
        raise NotImplementedError

    def accumulate(self, pred: Tensor, targ: Tensor) -> None:
        p, t = _flat(pred, targ, type(self).__name__)
        s = self._per_token_sum(p, t).to(torch.float64 if p.device.type != "mps" else torch.float32)
        self._total = s if self._total is None else self._total + s
        self._count += t.numel()

    def sync(self, comm: StateComm) -> None:
        pair = torch.zeros(2, dtype=torch.float64)
        if self._total is not None:
            pair = torch.stack([self._total.double().cpu(), torch.tensor(float(self._count), dtype=torch.float64)])
        pair = comm.sum(pair)
        self._count = int(round(float(pair[1])))
        self._total = pair[0] if self._count else None

    def _mean(self) -> float:
        if self._total is None or self._count == 0:
            return math.nan
        return float(self._total) / self._count


class TokenAccuracy(_TokenMean):
    """Share of tokens whose arg-max prediction equals the target (named "accuracy")."""

    def __init__(self, name: str | None = "accuracy") -> None:
        super().__init__(name)

    def _per_token_sum(self, pred: Tensor, targ: Tensor) -> Tensor:
        return (pred.argmax(-1) == targ).sum()

    @property
    def value(self) -> float:
        return self._mean()


class Perplexity(_TokenMean):
    """exp(mean cross entropy per token), the effective number of equally likely next tokens."""

    def __init__(self, name: str | None = "perplexity") -> None:
        super().__init__(name)

    def _per_token_sum(self, pred: Tensor, targ: Tensor) -> Tensor:
        return F.cross_entropy(pred.float(), targ, reduction="sum")

    @property
    def value(self) -> float:
        m = self._mean()
        return math.exp(m) if not math.isnan(m) else math.nan


class BitsPerChar(Perplexity):
    """Mean cross entropy per token in bits (cross entropy in nats / ln 2): bits per character with a
    character tokenizer, bits per token otherwise."""

    def __init__(self, name: str | None = "bits_per_char") -> None:
        super().__init__(name)

    @property
    def value(self) -> float:
        return self._mean() / math.log(2)


#: Token accuracy, perplexity and bits per character, ready to pass as `metrics=[...]` (each fit gets a copy).
accuracy = TokenAccuracy()
perplexity = Perplexity()
bits_per_char = BitsPerChar()
