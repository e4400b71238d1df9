"""Recurrent language models: the course lesson's sequence (Nietzsche, DL1 2017 lesson 6), then AWD-LSTM.

Every model takes a batch of token ids, batch first, and returns logits (the loss applies the softmax):

1. `CharLM3`: three characters -> the fourth, one shared input and one shared hidden weight.
2. `CharLoopRNN`: the same as a loop over n characters; `concat=True` concatenates the input to the hidden
   state instead of adding it.
3. `CharRNN`: `nn.RNN` over a window, predicting the character after it.
4. `CharSeqRNN`: a prediction at every position, (bs, seq) -> (bs, seq, vocab); 5. `identity_init=True`
   starts the hidden-to-hidden weights at the identity.
6. `StatefulRNN`: the same over the whole stream, the hidden state kept from batch to batch (truncated BPTT).
7. `RNNLanguageModel` (`AWDLSTM` for arch="lstm"): stateful GRU / multi-layer LSTM with AWD-LSTM's
   regularisation: embedding dropout, weight-drop on the hidden-to-hidden matrices, locked (variational)
   input / hidden / output dropout, tied input and output embeddings; AR/TAR is the `RNNRegularizer`
   callback, which reads `last_raw_output` / `last_output`.

Stateful models keep `hidden` (detached after every batch) and have `reset()`; the `ResetHidden` callback
calls it at the start of every epoch and of validation.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..export import register_model

__all__ = ["CharLM3", "CharLoopRNN", "CharRNN", "CharSeqRNN", "StatefulRNN", "RNNLanguageModel", "AWDLSTM",
           "embedding_dropout", "LockedDropout", "WeightDropRNN", "is_stateful", "AWD_DEFAULTS", "lm_splitter"]

#: AWD-LSTM dropout probabilities at drop_mult=1 (all are multiplied by `drop_mult`).
AWD_DEFAULTS = {"emb_drop": 0.02, "weight_drop": 0.2, "input_drop": 0.25, "hidden_drop": 0.15, "output_drop": 0.1}

_ARCHS = ("lstm", "gru", "rnn")


def _check_prob(name: str, p: float) -> float:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"`{name}` is a dropout probability in [0, 1); received {name}={p!r}.")
    return float(p)


def _check_size(name: str, v: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={v!r}.")
    return v


def is_stateful(model: nn.Module) -> bool:
    """True for a model that keeps a hidden state across batches (it has a `reset()` method)."""
    return callable(getattr(model, "reset", None))


# ---- 1-5: the lesson's stateless models ----------------------------------------------------------------
@register_model
class CharLM3(nn.Module):
    """Lesson step 1: predict the 4th character from 3, with one input weight and one hidden weight shared
    by the three steps: h = tanh(W_h (h + relu(W_in e(c_t)))) for t = 1..3, output W_out h.

    Input (bs, 3) token ids; output (bs, vocab_sz) logits.
    """

    n_context = 3

    def __init__(self, vocab_sz: int, n_fac: int = 42, n_hidden: int = 256) -> None:
        super().__init__()
        self.vocab_sz, self.n_fac, self.n_hidden = _check_size("vocab_sz", vocab_sz), n_fac, n_hidden
        self.e = nn.Embedding(vocab_sz, n_fac)
        self.l_in = nn.Linear(n_fac, n_hidden)
        self.l_hidden = nn.Linear(n_hidden, n_hidden)
        self.l_out = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"CharLM3 takes (bs, 3) character ids; received shape {tuple(x.shape)}.")
        h = x.new_zeros(x.shape[0], self.n_hidden, dtype=torch.float32)
        for t in range(3):
            h = torch.tanh(self.l_hidden(h + F.relu(self.l_in(self.e(x[:, t])))))
        return self.l_out(h)

    def get_config(self) -> dict[str, Any]:
        return {"vocab_sz": self.vocab_sz, "n_fac": self.n_fac, "n_hidden": self.n_hidden}


@register_model
class CharLoopRNN(nn.Module):
    """Lesson step 2: `CharLM3` as a loop over any number of characters. With `concat=False` the input is
    added to the hidden state (h = tanh(W_h (h + relu(W_in e)))); with `concat=True` it is concatenated
    (h = tanh(W_h relu(W_in [h, e]))).

    Input (bs, n) ids; output (bs, vocab_sz) logits for the character after the n.
    """

    def __init__(self, vocab_sz: int, n_fac: int = 42, n_hidden: int = 256, concat: bool = False,
                 n_context: int = 8) -> None:
        super().__init__()
        self.vocab_sz, self.n_fac, self.n_hidden = _check_size("vocab_sz", vocab_sz), n_fac, n_hidden
        self.concat = concat
        self.n_context = n_context  # the window length it was trained on (used by `generate`)
        self.e = nn.Embedding(vocab_sz, n_fac)
        self.l_in = nn.Linear(n_fac + n_hidden if concat else n_fac, n_hidden)
        self.l_hidden = nn.Linear(n_hidden, n_hidden)
        self.l_out = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.e(x)  # (bs, n, n_fac)
        h = emb.new_zeros(x.shape[0], self.n_hidden)
        for t in range(x.shape[1]):
            if self.concat:
                h = torch.tanh(self.l_hidden(F.relu(self.l_in(torch.cat([h, emb[:, t]], dim=1)))))
            else:
                h = torch.tanh(self.l_hidden(h + F.relu(self.l_in(emb[:, t]))))
        return self.l_out(h)

    def get_config(self) -> dict[str, Any]:
        return {"vocab_sz": self.vocab_sz, "n_fac": self.n_fac, "n_hidden": self.n_hidden, "concat": self.concat,
                "n_context": self.n_context}


def _identity_hh(rnn: nn.RNNBase) -> None:
    # lesson step 5 (Le, Jaitly & Hinton 2015): start the recurrence as "keep the state"
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("weight_hh"):
                p.copy_(torch.eye(p.shape[1]).repeat(p.shape[0] // p.shape[1], 1))


@register_model
class CharRNN(nn.Module):
    """Lesson step 3: `nn.RNN` (tanh) over a window of characters, predicting the one after it.

    Input (bs, n) ids; output (bs, vocab_sz) logits.
    """

    def __init__(self, vocab_sz: int, n_fac: int = 42, n_hidden: int = 256, n_context: int = 8) -> None:
        super().__init__()
        self.vocab_sz, self.n_fac, self.n_hidden = _check_size("vocab_sz", vocab_sz), n_fac, n_hidden
        self.n_context = n_context
        self.e = nn.Embedding(vocab_sz, n_fac)
        self.rnn = nn.RNN(n_fac, n_hidden, batch_first=True)
        self.l_out = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.e(x))  # zero initial state for every window
        return self.l_out(out[:, -1])

    def get_config(self) -> dict[str, Any]:
        return {"vocab_sz": self.vocab_sz, "n_fac": self.n_fac, "n_hidden": self.n_hidden, "n_context": self.n_context}


@register_model
class CharSeqRNN(nn.Module):
    """Lesson steps 4-5: `nn.RNN` predicting the next character at every position of a window.

    Input (bs, seq) ids; output (bs, seq, vocab_sz) logits; targets are the input shifted by one, (bs, seq).
    deepfit's `CrossEntropyLoss` flattens both the same way (row-major over batch then sequence).
    `identity_init` starts the hidden-to-hidden weights at the identity matrix.
    """

    def __init__(self, vocab_sz: int, n_fac: int = 42, n_hidden: int = 256, identity_init: bool = False,
                 n_context: int = 8) -> None:
        super().__init__()
        self.vocab_sz, self.n_fac, self.n_hidden = _check_size("vocab_sz", vocab_sz), n_fac, n_hidden
        self.identity_init, self.n_context = identity_init, n_context
        self.e = nn.Embedding(vocab_sz, n_fac)
        self.rnn = nn.RNN(n_fac, n_hidden, batch_first=True)
        self.l_out = nn.Linear(n_hidden, vocab_sz)
        if identity_init:
            _identity_hh(self.rnn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.e(x))
        return self.l_out(out)

    def get_config(self) -> dict[str, Any]:
        return {"vocab_sz": self.vocab_sz, "n_fac": self.n_fac, "n_hidden": self.n_hidden,
                "identity_init": self.identity_init, "n_context": self.n_context}


# ---- 6: stateful ------------------------------------------------------------------------------------
@register_model
class StatefulRNN(nn.Module):
    """Lesson step 6: `CharSeqRNN` whose hidden state runs on from one batch to the next, through the
    whole stream (read with `LMDataLoader`); it is detached after every batch (truncated
    backpropagation through time) and `reset()` at the start of each epoch and of validation.

    Input (bs, seq) ids; output (bs, seq, vocab_sz) logits.
    """

    def __init__(self, vocab_sz: int, n_fac: int = 42, n_hidden: int = 256, identity_init: bool = False) -> None:
        super().__init__()
        self.vocab_sz, self.n_fac, self.n_hidden = _check_size("vocab_sz", vocab_sz), n_fac, n_hidden
        self.identity_init = identity_init
        self.e = nn.Embedding(vocab_sz, n_fac)
        self.rnn = nn.RNN(n_fac, n_hidden, batch_first=True)
        self.l_out = nn.Linear(n_hidden, vocab_sz)
        if identity_init:
            _identity_hh(self.rnn)
        self.hidden: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the hidden state (the next batch starts from zeros)."""
        self.hidden = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden if self.hidden is not None and self.hidden.shape[1] == x.shape[0] else None
        out, h = self.rnn(self.e(x), h)
        self.hidden = h.detach()
        return self.l_out(out)

    def get_config(self) -> dict[str, Any]:
        return {"vocab_sz": self.vocab_sz, "n_fac": self.n_fac, "n_hidden": self.n_hidden,
                "identity_init": self.identity_init}


# ---- 7: AWD-LSTM -----------------------------------------------------------------------------------------
def embedding_dropout(emb: nn.Embedding, x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Look `x` up in `emb` with whole rows (tokens) of the matrix dropped with probability `p` while
    training and the rest scaled by 1/(1-p): every occurrence of a dropped token gets a zero vector."""
    w = emb.weight
    if training and p > 0:
        w = w * (w.new_empty(w.shape[0], 1).bernoulli_(1 - p) / (1 - p))
    return F.embedding(x, w, emb.padding_idx)


class LockedDropout(nn.Module):
    """Variational dropout for (bs, seq, features) activations: one mask per sequence and feature, the
    same at every time step."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = _check_prob("dropout", p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - self.p) / (1 - self.p)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class WeightDropRNN(nn.Module):
    """A one-layer recurrent module (`nn.LSTM`, `nn.GRU` or `nn.RNN`, batch first) whose hidden-to-hidden
    matrix gets dropout (DropConnect) while training: one mask per batch, shared by every time step.
    The module keeps its ordinary parameters (and state_dict keys); the dropped matrix is passed in
    through `torch.func.functional_call`, so gradients flow to the kept entries."""

    def __init__(self, rnn: nn.RNNBase, p: float) -> None:
        super().__init__()
        self.rnn, self.p = rnn, _check_prob("weight_drop", p)

    def forward(self, x: torch.Tensor, h: Any = None) -> tuple[torch.Tensor, Any]:
        if self.training and self.p > 0:
            w = F.dropout(self.rnn.weight_hh_l0, self.p, training=True)
            return functional_call(self.rnn, {"weight_hh_l0": w}, (x, h))
        return self.rnn(x, h)


@register_model
class RNNLanguageModel(nn.Module):
    """A stateful multi-layer LSTM / GRU / RNN language model with AWD-LSTM regularisation (Merity et al.
    2017): embedding dropout (`emb_drop`), weight-drop on each hidden-to-hidden matrix (`weight_drop`),
    locked dropout on the embeddings (`input_drop`), between layers (`hidden_drop`) and on the last
    layer's output (`output_drop`), and tied input/output embeddings (`tie_weights`: the last layer then
    outputs `emb_size` features and the decoder reuses the embedding matrix).

    Input (bs, seq) ids; output (bs, seq, vocab_sz) logits. `hidden` (one entry per layer, detached
    after every batch) carries on to the next batch; `reset()` forgets it. While training,
    `last_raw_output` and `last_output` hold the last layer's output before / after `output_drop` for
    the AR/TAR penalties of `RNNRegularizer`.

    Args:
        vocab_sz: number of tokens.
        emb_size: embedding size.
        n_hid: hidden size of every layer but the last (which has `emb_size` with tied weights).
        n_layers: number of stacked recurrent layers.
        arch: "lstm", "gru" or "rnn" (tanh).
        emb_drop, weight_drop, input_drop, hidden_drop, output_drop: dropout probabilities.
        tie_weights: share the embedding matrix with the decoder.
        pad_idx: index of the padding token (its embedding stays zero), or None.

    Example:
        >>> m = RNNLanguageModel(60, emb_size=42, n_hid=256, n_layers=1, arch="gru", tie_weights=False)
        >>> m(torch.zeros(4, 8, dtype=torch.long)).shape
        torch.Size([4, 8, 60])
    """

    def __init__(self, vocab_sz: int, emb_size: int = 400, n_hid: int = 1150, n_layers: int = 3,
                 arch: str = "lstm", emb_drop: float = 0.0, weight_drop: float = 0.0, input_drop: float = 0.0,
                 hidden_drop: float = 0.0, output_drop: float = 0.0, tie_weights: bool = True,
                 pad_idx: int | None = None) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ValueError(f"`arch` must be one of {_ARCHS}; received arch={arch!r}.")
        for name, v in (("vocab_sz", vocab_sz), ("emb_size", emb_size), ("n_hid", n_hid), ("n_layers", n_layers)):
            _check_size(name, v)
        if pad_idx is not None and not 0 <= pad_idx < vocab_sz:
            raise ValueError(f"`pad_idx` must be a token index below vocab_sz={vocab_sz}; received {pad_idx!r}.")
        self.vocab_sz, self.emb_size, self.n_hid, self.n_layers, self.arch = vocab_sz, emb_size, n_hid, n_layers, arch
        self.emb_drop, self.weight_drop = _check_prob("emb_drop", emb_drop), _check_prob("weight_drop", weight_drop)
        self.input_drop = _check_prob("input_drop", input_drop)
        self.hidden_drop = _check_prob("hidden_drop", hidden_drop)
        self.output_drop = _check_prob("output_drop", output_drop)
        self.tie_weights, self.pad_idx = tie_weights, pad_idx
        self.encoder = nn.Embedding(vocab_sz, emb_size, padding_idx=pad_idx)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[arch]
        sizes = [emb_size] + [n_hid] * (n_layers - 1) + [emb_size if tie_weights else n_hid]
        self.rnns = nn.ModuleList([WeightDropRNN(rnn_cls(sizes[i], sizes[i + 1], batch_first=True), weight_drop)
                                   for i in range(n_layers)])
        self.input_dp = LockedDropout(input_drop)
        self.hidden_dps = nn.ModuleList([LockedDropout(hidden_drop) for _ in range(n_layers - 1)])
        self.output_dp = LockedDropout(output_drop)
        if tie_weights:  # the decoder is the embedding matrix itself, plus its own bias
            self.decoder_bias = nn.Parameter(torch.zeros(vocab_sz))
        else:
            self.decoder = nn.Linear(sizes[-1], vocab_sz)
        with torch.no_grad():  # small uniform embeddings, as AWD-LSTM
            self.encoder.weight.uniform_(-0.1, 0.1)
            if pad_idx is not None:
                self.encoder.weight[pad_idx].zero_()
        self.hidden: list[Any] | None = None
        self.last_raw_output: torch.Tensor | None = None
        self.last_output: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the hidden state (the next batch starts from zeros)."""
        self.hidden = None

    def _hidden_for(self, bs: int) -> list[Any]:
        if self.hidden is not None:
            h0 = self.hidden[0][0] if self.arch == "lstm" else self.hidden[0]
            if h0.shape[1] == bs:
                return self.hidden
        return [None] * self.n_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"{type(self).__name__} takes (bs, seq) token ids; received shape {tuple(x.shape)}.")
        hidden = self._hidden_for(x.shape[0])
        out = self.input_dp(embedding_dropout(self.encoder, x, self.emb_drop, self.training))
        new_hidden = []
        for i, rnn in enumerate(self.rnns):
            out, h = rnn(out, hidden[i])
            new_hidden.append(tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach())
            if i < self.n_layers - 1:
                out = self.hidden_dps[i](out)
        self.hidden = new_hidden  # truncated BPTT: the next batch continues from here without gradient
        raw = out
        out = self.output_dp(out)
        if self.training:
            self.last_raw_output, self.last_output = raw, out
        if self.tie_weights:
            return F.linear(out, self.encoder.weight, self.decoder_bias)
        return self.decoder(out)

    def get_config(self) -> dict[str, Any]:
        return {"vocab_sz": self.vocab_sz, "emb_size": self.emb_size, "n_hid": self.n_hid, "n_layers": self.n_layers,
                "arch": self.arch, "emb_drop": self.emb_drop, "weight_drop": self.weight_drop,
                "input_drop": self.input_drop, "hidden_drop": self.hidden_drop, "output_drop": self.output_drop,
                "tie_weights": self.tie_weights, "pad_idx": self.pad_idx}


@register_model
class AWDLSTM(RNNLanguageModel):
    """`RNNLanguageModel` with arch="lstm" and AWD-LSTM's dropouts (`AWD_DEFAULTS` times `drop_mult`)
    by default: 3 layers, 400-wide tied embeddings, 1150 hidden units."""

    def __init__(self, vocab_sz: int, emb_size: int = 400, n_hid: int = 1150, n_layers: int = 3,
                 drop_mult: float = 1.0, tie_weights: bool = True, pad_idx: int | None = None,
                 emb_drop: float | None = None, weight_drop: float | None = None, input_drop: float | None = None,
                 hidden_drop: float | None = None, output_drop: float | None = None) -> None:
        if not drop_mult >= 0:
            raise ValueError(f"`drop_mult` must be >= 0; received drop_mult={drop_mult!r}.")
        given = {"emb_drop": emb_drop, "weight_drop": weight_drop, "input_drop": input_drop,
                 "hidden_drop": hidden_drop, "output_drop": output_drop}
        ps = {k: (v if v is not None else AWD_DEFAULTS[k] * drop_mult) for k, v in given.items()}
        super().__init__(vocab_sz, emb_size=emb_size, n_hid=n_hid, n_layers=n_layers, arch="lstm",
                         tie_weights=tie_weights, pad_idx=pad_idx, **ps)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("arch")
        return cfg


def lm_splitter(model: RNNLanguageModel) -> list[list[nn.Parameter]]:
    """Layer groups of an `RNNLanguageModel` for discriminative learning rates and freezing: one group per
    recurrent layer, then the embedding and the decoder together (last, as they are tied), so that
    `learn.freeze()` trains only the embedding and decoder, and `lr=slice(lo, hi)` gives the first layer
    the lowest rate."""
    m = getattr(model, "module", model)
    if not isinstance(m, RNNLanguageModel):
        raise TypeError(f"lm_splitter needs an RNNLanguageModel; received {type(m).__name__}.")
    head = list(m.encoder.parameters()) + ([m.decoder_bias] if m.tie_weights else list(m.decoder.parameters()))
    return [list(r.parameters()) for r in m.rnns] + [head]
