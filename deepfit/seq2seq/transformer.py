"""`Seq2SeqTransformer`: an encoder-decoder on PyTorch's Transformer layers, beyond the lesson.

    src -> Embedding * sqrt(d) + positions -> dropout -> n_enc x TransformerEncoderLayer  (padding masked)
    tgt -> Embedding * sqrt(d) + positions -> dropout -> n_dec x TransformerDecoderLayer  (causal mask, and the
           source padding masked in the cross-attention) -> Linear -> logits

Positions are sinusoidal (Vaswani et al. 2017: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...), a
fixed buffer) or learned (an embedding of `max_len` rows). It shares the decoding interface of `Seq2SeqRNN`
(`encode`, `decode_step`), recomputing the decoder over the whole prefix at each step (sentences are short).
A Transformer always reads the true previous tokens while training (teacher forcing is the whole point of its
parallel training), so `teacher_forcing` is kept only for a common interface.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..export import register_model
from .models import copy_vectors, length_mask

__all__ = ["Seq2SeqTransformer", "sinusoidal_positions"]


def sinusoidal_positions(n: int, d: int) -> torch.Tensor:
    """(n, d) table: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: d // 2])
    return pe


@register_model
class Seq2SeqTransformer(nn.Module):
    """Transformer encoder-decoder (see the module docstring).

    Args:
        src_vocab_sz, tgt_vocab_sz: vocabulary sizes.
        d_model: model width (the embedding size). n_heads: attention heads (must divide d_model).
        n_enc_layers, n_dec_layers: layers of each stack. d_ff: width of the feed-forward blocks.
        dropout: on embeddings, attention and feed-forward blocks.
        positions: "sinusoidal" or "learned".
        max_len: the longest sequence (source with xxeos, or output) the model reads.
        src_pad, tgt_pad, bos_idx, eos_idx: special ids.
        norm_first: layer norm before each block (pre-norm, steadier with few warm-up steps) or after.
    """

    def __init__(self, src_vocab_sz: int, tgt_vocab_sz: int, d_model: int = 256, n_heads: int = 8,
                 n_enc_layers: int = 3, n_dec_layers: int = 3, d_ff: int = 512, dropout: float = 0.1,
                 positions: str = "sinusoidal", max_len: int = 256, src_pad: int = 1, tgt_pad: int = 1,
                 bos_idx: int = 2, eos_idx: int = 3, norm_first: bool = False, teacher_forcing: float = 1.0) -> None:
        super().__init__()
        for name, v in (("src_vocab_sz", src_vocab_sz), ("tgt_vocab_sz", tgt_vocab_sz), ("d_model", d_model),
                        ("n_heads", n_heads), ("n_enc_layers", n_enc_layers), ("n_dec_layers", n_dec_layers),
                        ("d_ff", d_ff), ("max_len", max_len)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"`{name}` must be a positive whole number; received {name}={v!r}")
        if d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned'; received {positions!r}")
        self.config = dict(src_vocab_sz=src_vocab_sz, tgt_vocab_sz=tgt_vocab_sz, d_model=d_model, n_heads=n_heads,
                           n_enc_layers=n_enc_layers, n_dec_layers=n_dec_layers, d_ff=d_ff, dropout=float(dropout),
                           positions=positions, max_len=max_len, src_pad=src_pad, tgt_pad=tgt_pad, bos_idx=bos_idx,
                           eos_idx=eos_idx, norm_first=bool(norm_first))
        self.src_vocab_sz, self.tgt_vocab_sz, self.max_len, self.d_model = src_vocab_sz, tgt_vocab_sz, max_len, d_model
        self.src_pad, self.tgt_pad, self.bos_idx, self.eos_idx = src_pad, tgt_pad, bos_idx, eos_idx
        self.teacher_forcing = float(teacher_forcing)
        self.src_emb = nn.Embedding(src_vocab_sz, d_model, padding_idx=src_pad)
        self.tgt_emb = nn.Embedding(tgt_vocab_sz, d_model, padding_idx=tgt_pad)
        if positions == "learned":
            self.pos_emb = nn.Embedding(max_len, d_model)
        else:
            self.register_buffer("pos_table", sinusoidal_positions(max_len, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)
        enc_layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, batch_first=True, norm_first=norm_first)
        dec_layer = nn.TransformerDecoderLayer(d_model, n_heads, d_ff, dropout, batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(enc_layer, n_enc_layers, enable_nested_tensor=False,
                                             norm=nn.LayerNorm(d_model) if norm_first else None)
        self.decoder = nn.TransformerDecoder(dec_layer, n_dec_layers, norm=nn.LayerNorm(d_model) if norm_first else None)
        self.out = nn.Linear(d_model, tgt_vocab_sz)
        self._init()

    def _init(self) -> None:
        # Glorot for the layers; token embeddings N(0, 1/d), so that after the sqrt(d) scaling they have unit
        # scale like the positions (with torch's N(0, 1) they would drown the positions, and small models
        # then learn word order very slowly)
        for name, p in self.named_parameters():
            if p.dim() > 1 and "emb" not in name:
                nn.init.xavier_uniform_(p)
        for emb in (self.src_emb, self.tgt_emb):
            nn.init.normal_(emb.weight, 0.0, self.d_model ** -0.5)
            with torch.no_grad():
                emb.weight[emb.padding_idx].zero_()
        if hasattr(self, "pos_emb"):
            nn.init.normal_(self.pos_emb.weight, 0.0, 1.0)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)

    def _embed(self, emb: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        n = ids.shape[1]
        if n > self.max_len:
            raise ValueError(f"a sequence of {n} tokens is longer than this model's max_len={self.max_len}")
        if hasattr(self, "pos_emb"):
            pos = self.pos_emb(torch.arange(n, device=ids.device))
        else:
            pos = self.pos_table[:n]
        return self.drop(emb(ids) * math.sqrt(self.d_model) + pos)

    def encode(self, src: torch.Tensor, src_len: torch.Tensor) -> dict[str, torch.Tensor]:
        """Read the source: `{"memory" (bs, S, d), "mask" (bs, S) True at real tokens}`."""
        mask = length_mask(src_len.to(src.device), src.shape[1])
        memory = self.encoder(self._embed(self.src_emb, src), src_key_padding_mask=~mask)
        return {"memory": memory, "mask": mask}

    def _decode(self, tgt_in: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        t = tgt_in.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=tgt_in.device), diagonal=1)  # True: hidden
        tgt_pad_mask = tgt_in == self.tgt_pad
        h = self.decoder(self._embed(self.tgt_emb, tgt_in), state["memory"], tgt_mask=causal,
                         tgt_key_padding_mask=tgt_pad_mask, memory_key_padding_mask=~state["mask"])
        return self.out(h)

    def decode_step(self, ys: torch.Tensor, state: dict[str, torch.Tensor]
                    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], None]:
        """Logits of the next token (N, V) after the tokens `ys` (N, t), and the new state; no attention.

        Incremental: only the last token is run through the decoder. The state keeps each layer's inputs at the
        earlier positions (`"cache<i>"`, (N, t-1, d)), the keys and values of its self-attention, so a step
        costs O(t) instead of recomputing the whole prefix (O(t^2)); the result equals `forward` on `ys`."""
        t = ys.shape[1]
        if t > self.max_len:
            raise ValueError(f"a sequence of {t} tokens is longer than this model's max_len={self.max_len}")
        pos = self.pos_emb.weight[t - 1] if hasattr(self, "pos_emb") else self.pos_table[t - 1]
        x = self.drop(self.tgt_emb(ys[:, -1:]) * math.sqrt(self.d_model) + pos)
        mem, mem_pad = state["memory"], ~state["mask"]
        new = dict(state)
        for i, layer in enumerate(self.decoder.layers):
            key = f"cache{i}"
            hist = torch.cat([state[key], x], dim=1) if key in state else x
            new[key] = hist
            x = _layer_step(layer, x, hist, mem, mem_pad)
        if self.decoder.norm is not None:
            x = self.decoder.norm(x)
        return self.out(x[:, 0]), new, None

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Logits (bs, T, V) of every target position, reading `tgt_in` (xxbos y_1 .. y_{T-1})."""
        return self._decode(tgt_in, self.encode(src, src_len))

    def load_vectors(self, src_weights: torch.Tensor | None = None, tgt_weights: torch.Tensor | None = None) -> None:
        """Copy pretrained word vectors into the embeddings (shape: vocabulary size x d_model), scaled by
        1/sqrt(d_model) as the embeddings are initialised."""
        copy_vectors(((self.src_emb, src_weights, "source"), (self.tgt_emb, tgt_weights, "target")), "d_model",
                     scale=1 / math.sqrt(self.d_model))


def _layer_step(layer: nn.TransformerDecoderLayer, x: torch.Tensor, hist: torch.Tensor, mem: torch.Tensor,
                mem_pad: torch.Tensor) -> torch.Tensor:
    """One decoder layer for the last position only: `x` (N, 1, d) attends to `hist` (N, t, d), this layer's
    inputs at every position so far (no causal mask needed), then to the memory; as `layer.forward` computes
    that position."""
    def sa(q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        return layer.dropout1(layer.self_attn(q, kv, kv, need_weights=False)[0])
    if layer.norm_first:
        h = layer.norm1(hist)
        x = x + sa(h[:, -1:], h)
        x = x + layer._mha_block(layer.norm2(x), mem, None, mem_pad)
        return x + layer._ff_block(layer.norm3(x))
    x = layer.norm1(x + sa(x, hist))
    x = layer.norm2(x + layer._mha_block(x, mem, None, mem_pad))
    return layer.norm3(x + layer._ff_block(x))
