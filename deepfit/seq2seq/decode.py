"""Decoding a batch of sources: greedy search and beam search (beam size, length penalty, maximum length).

Both work on any model with the interface of `Seq2SeqRNN` / `Seq2SeqTransformer`: `encode(src, src_len)
-> state` (a dict of tensors whose first dimension is the batch), `decode_step(ys, state) -> (logits,
state, attention or None)`, and the ids `bos_idx`, `eos_idx`, `tgt_pad`, `max_len`.

A hypothesis's score is the sum of its tokens' log-probabilities, xxeos included when it ended. Beam search
keeps the `beam_size` highest-scoring prefixes of every source at each step (a finished one stays in the
beam with its score), and at the end picks the best finished one (an unfinished one only when none finished
before `max_len`) by score / lp(length) with the length penalty of Wu et
al. 2016 (GNMT): lp(L) = ((5 + L) / 6) ** alpha, L the number of tokens produced (xxeos included). alpha = 0
is no penalty (plain log-probability, which favours short outputs); alpha around 0.6-1 favours longer ones.

Example:
    >>> out = beam_search(model, src, src_len, beam_size=5, length_penalty=0.6)         # doctest: +SKIP
    >>> out.tokens[0], out.scores[0]                                                      # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Hypotheses", "greedy_decode", "beam_search", "length_penalty", "sequence_log_probs",
           "default_max_len"]


@dataclass
class Hypotheses:
    """The decoded output of a batch of sources, in the batch's order.

    Attributes:
        tokens: the ids produced for each source, without xxbos and xxeos.
        scores: (B,) sum of the log-probabilities of the produced tokens (xxeos included when produced).
        norm_scores: (B,) scores / lp(length) (equal to `scores` without a length penalty).
        finished: whether each output ended with xxeos (False: stopped at the maximum length).
        attention: per source, (tokens produced incl. xxeos, source length) attention weights, for models
            that return them (`Seq2SeqRNN`); None otherwise.
    """

    tokens: list[list[int]]
    scores: torch.Tensor
    norm_scores: torch.Tensor
    finished: list[bool]
    attention: list[torch.Tensor] | None = None


def length_penalty(length: torch.Tensor | float, alpha: float) -> torch.Tensor:
    """GNMT's lp(L) = ((5 + L) / 6) ** alpha (1 for alpha = 0)."""
    length = torch.as_tensor(length, dtype=torch.float32)
    return ((5.0 + length) / 6.0) ** alpha


def default_max_len(model: nn.Module, src_len: torch.Tensor) -> int:
    """Tokens to produce at most: twice the longest source plus 10, within the model's `max_len`."""
    return max(1, min(int(getattr(model, "max_len", 256)), 2 * int(src_len.max()) + 10))


def _check(model: nn.Module, src: torch.Tensor, src_len: torch.Tensor, max_len: int | None) -> int:
    if src.ndim != 2 or src_len.ndim != 1 or len(src_len) != len(src):
        raise ValueError(f"src must be (batch, length) with src_len (batch,); received {tuple(src.shape)} and "
                         f"{tuple(src_len.shape)}")
    limit = int(getattr(model, "max_len", 10**9))
    if src.shape[1] > limit:
        raise ValueError(f"a source of {src.shape[1]} tokens is longer than the model's maximum ({limit})")
    if max_len is None:
        return default_max_len(model, src_len)
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"`max_len` must be a positive whole number; received max_len={max_len!r}")
    return min(max_len, limit)


def _reorder(state: dict[str, torch.Tensor], idx: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v.index_select(0, idx) for k, v in state.items()}


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, src_len: torch.Tensor, max_len: int | None = None
                  ) -> Hypotheses:
    """The most likely token at every step, for a whole batch at once (stops when every output has ended).

    Args:
        model: an encoder-decoder (put in eval mode by the caller for deterministic output).
        src: (B, S) right-padded source ids; src_len: (B,) their lengths.
        max_len: tokens to produce at most (default `default_max_len`).
    """
    max_len = _check(model, src, src_len, max_len)
    state = model.encode(src, src_len)
    b, dev = src.shape[0], src.device
    ys = torch.full((b, 1), model.bos_idx, dtype=torch.long, device=dev)
    done = torch.zeros(b, dtype=torch.bool, device=dev)
    scores = torch.zeros(b, device=dev)
    lengths = torch.zeros(b, dtype=torch.long, device=dev)
    atts: list[torch.Tensor] = []
    for _ in range(max_len):
        logits, state, w = model.decode_step(ys, state)
        lp = F.log_softmax(logits.float(), dim=-1)
        nxt = lp.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, model.tgt_pad), nxt)
        scores += torch.where(done, torch.zeros_like(scores), lp.gather(1, nxt[:, None]).squeeze(1))
        lengths += (~done).long()
        if w is not None:
            atts.append(w.float())
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == model.eos_idx
        if bool(done.all()):
            break
    return _collect(ys, scores, scores, lengths, done, atts, model.eos_idx, src_len)


def _collect(ys: torch.Tensor, scores: torch.Tensor, norm: torch.Tensor, lengths: torch.Tensor, done: torch.Tensor,
             atts: list[torch.Tensor] | torch.Tensor | None, eos: int, src_len: torch.Tensor) -> Hypotheses:
    toks, attention = [], []
    lens = lengths.tolist()
    att = torch.stack(atts, dim=1) if isinstance(atts, list) and atts else atts if isinstance(atts, torch.Tensor) \
        else None
    for i, row in enumerate(ys[:, 1:].tolist()):
        n = lens[i]
        seq = row[:n]
        toks.append(seq[:-1] if seq and seq[-1] == eos and bool(done[i]) else seq)
        if att is not None:
            attention.append(att[i, :n, : int(src_len[i])].cpu())
    return Hypotheses(toks, scores.cpu(), norm.cpu(), [bool(d) for d in done.tolist()],
                      attention if att is not None else None)


@torch.no_grad()
def beam_search(model: nn.Module, src: torch.Tensor, src_len: torch.Tensor, beam_size: int = 5,
                max_len: int | None = None, length_penalty: float = 0.0) -> Hypotheses:
    """Beam search for a whole batch (see the module docstring); `beam_size=1` is greedy search.

    Args:
        model: an encoder-decoder in eval mode.
        src: (B, S) right-padded source ids; src_len: (B,) their lengths.
        beam_size: prefixes kept per source.
        max_len: tokens to produce at most (default `default_max_len`).
        length_penalty: alpha of lp(L) = ((5 + L) / 6) ** alpha, used to rank the final hypotheses.
    """
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"`beam_size` must be a positive whole number; received beam_size={beam_size!r}")
    if length_penalty < 0:
        raise ValueError(f"`length_penalty` must be >= 0; received {length_penalty!r}")
    max_len = _check(model, src, src_len, max_len)
    b, dev = src.shape[0], src.device
    k = beam_size
    state = _reorder(model.encode(src, src_len), torch.arange(b, device=dev).repeat_interleave(k))
    ys = torch.full((b * k, 1), model.bos_idx, dtype=torch.long, device=dev)
    scores = torch.full((b, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # the first step expands only one copy of each source
    done = torch.zeros(b * k, dtype=torch.bool, device=dev)
    lengths = torch.zeros(b * k, dtype=torch.long, device=dev)
    att: torch.Tensor | None = None
    base = (torch.arange(b, device=dev) * k)[:, None]
    for _ in range(max_len):
        logits, state, w = model.decode_step(ys, state)
        lp = F.log_softmax(logits.float(), dim=-1)
        v = lp.shape[-1]
        if bool(done.any()):  # a finished hypothesis continues only with padding, at no cost
            lp[done] = float("-inf")
            lp[done, model.tgt_pad] = 0.0
        cand = (scores.reshape(-1, 1) + lp).reshape(b, k * v)
        top_s, top_i = cand.topk(min(k, k * v), dim=1)
        if top_s.shape[1] < k:  # pragma: no cover - a vocabulary smaller than the beam
            top_s = torch.cat([top_s, top_s.new_full((b, k - top_s.shape[1]), float("-inf"))], 1)
            top_i = torch.cat([top_i, top_i[:, :1].expand(b, k - top_i.shape[1])], 1)
        rows = (base + top_i // v).reshape(-1)
        tok = (top_i % v).reshape(-1)
        ys = torch.cat([ys.index_select(0, rows), tok[:, None]], dim=1)
        state = _reorder(state, rows)
        was_done = done.index_select(0, rows)
        lengths = lengths.index_select(0, rows) + (~was_done).long()
        done = was_done | (tok == model.eos_idx)
        scores = top_s
        if w is not None:
            w = w.float().index_select(0, rows)
            att = w[:, None] if att is None else torch.cat([att.index_select(0, rows), w[:, None]], dim=1)
        if bool(done.all()):
            break
    flat = scores.reshape(-1)
    norm = flat / length_penalty_t(lengths, length_penalty)
    # a finished hypothesis beats any cut off at max_len; these count only for sources with none finished
    any_done = done.reshape(b, k).any(1, keepdim=True)
    rank = norm.reshape(b, k).masked_fill(any_done & ~done.reshape(b, k), float("-inf"))
    best = rank.argmax(1) + base.squeeze(1)
    return _collect(ys[best], flat[best], norm[best], lengths[best], done[best],
                    att[best] if att is not None else None, model.eos_idx, src_len)


def length_penalty_t(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    # lp on the device of `lengths`
    return ((5.0 + lengths.float()) / 6.0) ** alpha


@torch.no_grad()
def sequence_log_probs(model: nn.Module, src: torch.Tensor, src_len: torch.Tensor, outputs: list[list[int]],
                       finished: list[bool] | None = None) -> torch.Tensor:
    """The model's own log-probability of given outputs, one forward pass with teacher forcing: the sum over
    the tokens of `outputs[i]` (plus xxeos when `finished[i]`, the default) of log p(token | source, prefix).
    `model` must be in eval mode. Used to check search scores."""
    b, dev = src.shape[0], src.device
    finished = [True] * b if finished is None else finished
    seqs = [list(o) + ([model.eos_idx] if f else []) for o, f in zip(outputs, finished)]
    t = max(1, max(len(s) for s in seqs))
    tgt_in = torch.full((b, t), model.tgt_pad, dtype=torch.long, device=dev)
    tgt_out = torch.full((b, t), model.tgt_pad, dtype=torch.long, device=dev)
    for i, s in enumerate(seqs):
        prefix = [model.bos_idx] + s[:-1]
        tgt_in[i, : len(prefix)] = torch.tensor(prefix, dtype=torch.long)
        tgt_out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    lp = F.log_softmax(model(src, src_len, tgt_in).float(), dim=-1)
    picked = lp.gather(2, tgt_out[:, :, None]).squeeze(2)
    mask = torch.arange(t, device=dev)[None, :] < torch.tensor([len(s) for s in seqs], device=dev)[:, None]
    return torch.where(mask, picked, torch.zeros_like(picked)).sum(1).cpu()
