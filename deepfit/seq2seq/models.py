"""`Seq2SeqRNN`: a bidirectional recurrent encoder and a decoder with additive (Bahdanau) attention.

The lesson's translator, step by step:

    encoder   e = Embedding(src) -> dropout -> bidirectional GRU/LSTM (packed: padding is never read)
              outputs H (bs, S, 2h); the decoder's first state s_0 = tanh(W [last forward; last backward])
    decoder   for each target step t, from the previous token y_{t-1} and state s_{t-1}:
                scores  a_ti = v . tanh(W_s s_{t-1} + W_h H_i)      (-inf at padded positions i)
                weights alpha_t = softmax(a_t)                      (0 on padding)
                context c_t = sum_i alpha_ti H_i
                s_t = RNNCell([emb(y_{t-1}); c_t], s_{t-1})
                logits_t = W_o tanh(W_d [s_t; c_t; emb(y_{t-1})])    (a "deep output" of emb_sz units, as
                                                                   Bahdanau et al.'s maxout layer: 4x cheaper
                                                                   than W_o on the concatenation)

Teacher forcing: while training, the token fed at step t is the true y_{t-1} with probability
`teacher_forcing` (drawn once per step for the whole batch, as the lesson does) and otherwise the model's
own previous prediction; a `ParamScheduler` on `"model.teacher_forcing"` anneals it (see
`teacher_forcing_schedule`). In eval mode the forward pass always reads the true tokens (the validation
loss); translation uses `deepfit.seq2seq.decode`.

The decoding interface shared with `Seq2SeqTransformer` (used by greedy and beam search):
`encode(src, src_len) -> state` (a dict of batch-first tensors, reordered by indexing dim 0),
`decode_step(ys, state) -> (logits (N, V), state, attention (N, S) or None)` with `ys` (N, t) the tokens
so far (starting with xxbos).
"""
from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..export import register_model

__all__ = ["Seq2SeqRNN", "AdditiveAttention", "length_mask"]

_RNNS = {"gru": (nn.GRU, nn.GRUCell), "lstm": (nn.LSTM, nn.LSTMCell)}


def copy_vectors(pairs: Any, size_arg: str, scale: float = 1.0) -> None:
    """Copy word vectors into embeddings: `pairs` of (nn.Embedding, weights or None, "source"/"target"), each
    weights tensor (vocabulary size, width) times `scale`; a shape that differs names `size_arg` to change."""
    for emb, w, name in pairs:
        if w is None:
            continue
        if tuple(w.shape) != tuple(emb.weight.shape):
            raise ValueError(f"the {name} vectors are {tuple(w.shape)} but the {name} embedding is "
                             f"{tuple(emb.weight.shape)} (vocabulary size x {size_arg}): build the model with "
                             f"{size_arg}={w.shape[1]}")
        with torch.no_grad():
            emb.weight.copy_(w * scale)


def length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(bs, width) bool mask, True at real positions (i < length)."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


class AdditiveAttention(nn.Module):
    """Bahdanau attention: scores v . tanh(W_q q + W_k k_i), softmax over the unmasked positions.

    Args:
        q_dim: size of the query (the decoder state). k_dim: size of the keys (encoder outputs). n_att: hidden size.
    """

    def __init__(self, q_dim: int, k_dim: int, n_att: int) -> None:
        super().__init__()
        self.w_q = nn.Linear(q_dim, n_att, bias=False)
        self.w_k = nn.Linear(k_dim, n_att)
        self.v = nn.Linear(n_att, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """W_k k for every position (bs, S, n_att), computed once per sentence."""
        return self.w_k(keys)

    def forward(self, q: torch.Tensor, keys: torch.Tensor, proj_keys: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (bs, k_dim) and weights (bs, S) for queries q (bs, q_dim); `mask` (bs, S) True at real
        positions (padding gets weight exactly 0)."""
        scores = self.v(torch.tanh(self.w_q(q)[:, None, :] + proj_keys)).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights[:, None, :], keys).squeeze(1), weights


@register_model
class Seq2SeqRNN(nn.Module):
    """Encoder-decoder with Bahdanau attention (see the module docstring).

    Args:
        src_vocab_sz, tgt_vocab_sz: vocabulary sizes.
        emb_sz: embedding size of both sides (the size of pretrained vectors when they are used).
        n_hid: hidden units of each encoder direction and of the decoder.
        n_layers: encoder layers.
        rnn: "gru" or "lstm".
        bidirectional: read the source both ways.
        n_att: hidden size of the attention (default n_hid).
        dropout: on the embeddings, between encoder layers and before the output layer.
        src_pad, tgt_pad, bos_idx, eos_idx: special ids (padding of each vocabulary, xxbos/xxeos of the target).
        max_len: the longest source (tokens with xxeos) and output this model translates.
        teacher_forcing: probability of feeding the true previous token while training (scheduled).

    Example:
        >>> m = Seq2SeqRNN(100, 120, emb_sz=32, n_hid=64)
        >>> m(torch.randint(4, 100, (2, 7)), torch.tensor([7, 5]), torch.randint(4, 120, (2, 6))).shape
        torch.Size([2, 6, 120])
    """

    def __init__(self, src_vocab_sz: int, tgt_vocab_sz: int, emb_sz: int = 256, n_hid: int = 512, n_layers: int = 1,
                 rnn: str = "gru", bidirectional: bool = True, n_att: int | None = None, dropout: float = 0.3,
                 src_pad: int = 1, tgt_pad: int = 1, bos_idx: int = 2, eos_idx: int = 3, max_len: int = 256,
                 teacher_forcing: float = 1.0) -> None:
        super().__init__()
        if rnn not in _RNNS:
            raise ValueError(f"rnn must be one of {', '.join(_RNNS)}; received {rnn!r}")
        for name, v in (("src_vocab_sz", src_vocab_sz), ("tgt_vocab_sz", tgt_vocab_sz), ("emb_sz", emb_sz),
                        ("n_hid", n_hid), ("n_layers", n_layers), ("max_len", max_len)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive whole number; received {name}={v!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1); received dropout={dropout!r}")
        self.config = dict(src_vocab_sz=src_vocab_sz, tgt_vocab_sz=tgt_vocab_sz, emb_sz=emb_sz, n_hid=n_hid,
                           n_layers=n_layers, rnn=rnn, bidirectional=bool(bidirectional), n_att=n_att,
                           dropout=float(dropout), src_pad=src_pad, tgt_pad=tgt_pad, bos_idx=bos_idx,
                           eos_idx=eos_idx, max_len=max_len, teacher_forcing=float(teacher_forcing))
        self.src_vocab_sz, self.tgt_vocab_sz, self.max_len = src_vocab_sz, tgt_vocab_sz, max_len
        self.src_pad, self.tgt_pad, self.bos_idx, self.eos_idx = src_pad, tgt_pad, bos_idx, eos_idx
        self.kind, self.n_hid = rnn, n_hid
        self.teacher_forcing = float(teacher_forcing)
        n_dir = 2 if bidirectional else 1
        enc_cls, cell_cls = _RNNS[rnn]
        self.src_emb = nn.Embedding(src_vocab_sz, emb_sz, padding_idx=src_pad)
        self.tgt_emb = nn.Embedding(tgt_vocab_sz, emb_sz, padding_idx=tgt_pad)
        self.emb_drop = nn.Dropout(dropout)
        self.encoder = enc_cls(emb_sz, n_hid, num_layers=n_layers, batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if n_layers > 1 else 0.0)
        self.bridge = nn.Linear(n_hid * n_dir, n_hid)  # encoder's final states -> decoder's first state
        self.attention = AdditiveAttention(n_hid, n_hid * n_dir, n_att or n_hid)
        self.cell = cell_cls(emb_sz + n_hid * n_dir, n_hid)
        self.out_drop = nn.Dropout(dropout)
        self.deep_out = nn.Linear(n_hid + n_hid * n_dir + emb_sz, emb_sz)
        self.out = nn.Linear(emb_sz, tgt_vocab_sz)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export); `teacher_forcing` is its current value."""
        return {**self.config, "teacher_forcing": float(self.teacher_forcing)}

    # ---- encoder ------------------------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> dict[str, torch.Tensor]:
        """Read the source: `{"keys", "proj_keys", "mask", "h"[, "c"]}`, all batch-first."""
        emb = self.emb_drop(self.src_emb(src))
        packed = pack_padded_sequence(emb, src_len.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = self.encoder(packed)
        keys, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        h_n = hidden[0] if self.kind == "lstm" else hidden
        # the last layer's final state of each direction: (n_layers * n_dir, bs, h) -> (bs, n_dir * h)
        n_dir = 2 if self.config["bidirectional"] else 1
        last = h_n[-n_dir:].transpose(0, 1).reshape(src.shape[0], -1)
        h0 = torch.tanh(self.bridge(last))
        state = {"keys": keys, "proj_keys": self.attention.project_keys(keys),
                 "mask": length_mask(src_len.to(src.device), src.shape[1]), "h": h0}
        if self.kind == "lstm":
            state["c"] = torch.zeros_like(h0)
        return state

    # ---- decoder ------------------------------------------------------------------------------------
    def _step(self, tok: torch.Tensor, state: dict[str, torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        emb = self.emb_drop(self.tgt_emb(tok))
        ctx, weights = self.attention(state["h"], state["keys"], state["proj_keys"], state["mask"])
        inp = torch.cat([emb, ctx], dim=-1)
        new = dict(state)
        if self.kind == "lstm":
            new["h"], new["c"] = self.cell(inp, (state["h"], state["c"]))
        else:
            new["h"] = self.cell(inp, state["h"])
        logits = self.out(self.out_drop(torch.tanh(self.deep_out(torch.cat([new["h"], ctx, emb], dim=-1)))))
        return logits, new, weights

    def decode_step(self, ys: torch.Tensor, state: dict[str, torch.Tensor]
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Logits of the next token (N, V) after the tokens `ys` (N, t) (only the last is read: the state
        holds the rest), the new state, and the attention weights over the source (N, S)."""
        return self._step(ys[:, -1], state)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor,
                return_attention: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (bs, T, V) of every target position, reading `tgt_in` (xxbos y_1 .. y_{T-1}) with teacher
        forcing (`teacher_forcing` while training, always in eval mode). With `return_attention`, also the
        attention weights (bs, T, S)."""
        state = self.encode(src, src_len)
        outs, atts = [], []
        tok = tgt_in[:, 0]
        tf = self.teacher_forcing if self.training else 1.0
        for t in range(tgt_in.shape[1]):
            if t > 0:
                tok = tgt_in[:, t] if tf >= 1 or random.random() < tf else outs[-1].argmax(-1)
            logits, state, w = self._step(tok, state)
            outs.append(logits)
            if return_attention:
                atts.append(w)
        logits = torch.stack(outs, dim=1)
        return (logits, torch.stack(atts, dim=1)) if return_attention else logits

    def load_vectors(self, src_weights: torch.Tensor | None = None, tgt_weights: torch.Tensor | None = None) -> None:
        """Copy pretrained word vectors (one row per vocabulary token, see `load_vectors`) into the embeddings."""
        copy_vectors(((self.src_emb, src_weights, "source"), (self.tgt_emb, tgt_weights, "target")), "emb_sz")


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax in float32 (the scores of beam search and of `sequence_log_prob`)."""
    return F.log_softmax(logits.float(), dim=-1)
