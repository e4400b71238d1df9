"""The recurrent encoder of a language model on its own: `RNNEncoder`, and saving / loading its weights.

ULMFiT's stage 3 starts a classifier from the encoder (embedding and recurrent layers, no decoder) of
a language model fine-tuned on the task's text. `save_encoder` writes those weights to a safetensors
file whose JSON header holds the sizes and the vocabulary; `load_encoder` checks that they fit the
model they are loaded into (sizes and vocabulary, with a message saying what to change) and loads them.
`LMLearner.save_encoder` / `TextClassifierLearner.load_encoder` call these functions.

The encoder's parameter names are the language model's (`encoder.weight`, `rnns.0.rnn.weight_hh_l0`,
...), so an `RNNLanguageModel` and an `RNNEncoder` load each other's encoder weights directly.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..utils import atomic_path
from .io import TextDataError
from .models import LockedDropout, WeightDropRNN, _check_prob, _check_size, embedding_dropout

__all__ = ["RNNEncoder", "EncoderMismatchError", "save_encoder", "load_encoder", "encoder_config",
           "read_encoder_header", "encoder_text_parts", "ENCODER_FORMAT_VERSION"]

ENCODER_FORMAT_VERSION = 1
_SIZE_KEYS = ("vocab_sz", "emb_size", "n_hid", "n_layers", "arch", "out_size")
_ENCODER_PREFIXES = ("encoder.", "rnns.")


class EncoderMismatchError(ValueError):
    """A saved encoder that does not fit the model it is loaded into (other vocabulary or sizes)."""


class RNNEncoder(nn.Module):
    """The embedding and stacked recurrent layers of an `RNNLanguageModel`, reading each document from a
    zero state (no state carried between batches), with AWD-LSTM's dropouts.

    Input `x` (bs, L) token ids (right-padded); output the last layer's output (bs, L, out_size), where
    `out_size` is `emb_size` for an encoder of a language model with tied weights, else `n_hid`.
    Positions after a document's end hold values computed from padding: ignore them (the classifier's
    pooling does). Dropout of the last layer's output is the head's business.
    """

    def __init__(self, vocab_sz: int, emb_size: int = 400, n_hid: int = 1150, n_layers: int = 3, arch: str = "lstm",
                 out_size: int | None = None, pad_idx: int | None = None, emb_drop: float = 0.0,
                 weight_drop: float = 0.0, input_drop: float = 0.0, hidden_drop: float = 0.0) -> None:
        super().__init__()
        if arch not in ("lstm", "gru", "rnn"):
            raise ValueError(f"`arch` must be 'lstm', 'gru' or 'rnn'; received arch={arch!r}.")
        self.vocab_sz, self.emb_size = _check_size("vocab_sz", vocab_sz), _check_size("emb_size", emb_size)
        self.n_hid, self.n_layers, self.arch = _check_size("n_hid", n_hid), _check_size("n_layers", n_layers), arch
        self.out_size = _check_size("out_size", out_size) if out_size is not None else emb_size
        self.pad_idx = pad_idx
        self.emb_drop, self.weight_drop = _check_prob("emb_drop", emb_drop), _check_prob("weight_drop", weight_drop)
        self.input_drop = _check_prob("input_drop", input_drop)
        self.hidden_drop = _check_prob("hidden_drop", hidden_drop)
        self.encoder = nn.Embedding(vocab_sz, emb_size, padding_idx=pad_idx)
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[arch]
        sizes = [emb_size] + [n_hid] * (n_layers - 1) + [self.out_size]
        self.rnns = nn.ModuleList([WeightDropRNN(rnn_cls(sizes[i], sizes[i + 1], batch_first=True), weight_drop)
                                   for i in range(n_layers)])
        self.input_dp = LockedDropout(input_drop)
        self.hidden_dps = nn.ModuleList([LockedDropout(hidden_drop) for _ in range(n_layers - 1)])
        with torch.no_grad():
            self.encoder.weight.uniform_(-0.1, 0.1)
            if pad_idx is not None:
                self.encoder.weight[pad_idx].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"RNNEncoder takes (bs, L) token ids; received shape {tuple(x.shape)}.")
        out = self.input_dp(embedding_dropout(self.encoder, x, self.emb_drop, self.training))
        for i, rnn in enumerate(self.rnns):
            out, _ = rnn(out)  # zero initial state: every document is read on its own
            if i < self.n_layers - 1:
                out = self.hidden_dps[i](out)
        return out

    def sizes(self) -> dict[str, Any]:
        """The sizes a saved encoder must share with a model to load into it."""
        return {"vocab_sz": self.vocab_sz, "emb_size": self.emb_size, "n_hid": self.n_hid, "n_layers": self.n_layers,
                "arch": self.arch, "out_size": self.out_size}


def encoder_config(model: nn.Module) -> dict[str, Any]:
    """The sizes of the encoder of an `RNNLanguageModel`, an `RNNEncoder` or a model with one as `body`."""
    from .models import RNNLanguageModel
    body = getattr(model, "body", model)
    if isinstance(body, RNNEncoder):
        return body.sizes()
    if isinstance(body, RNNLanguageModel):
        return {"vocab_sz": body.vocab_sz, "emb_size": body.emb_size, "n_hid": body.n_hid, "n_layers": body.n_layers,
                "arch": body.arch, "out_size": body.emb_size if body.tie_weights else body.n_hid}
    raise TypeError(f"{type(model).__name__} has no recurrent encoder (expected an RNNLanguageModel, an RNNEncoder "
                    "or a text classifier).")


def _encoder_state(model: nn.Module) -> dict[str, torch.Tensor]:
    body = getattr(model, "body", model)
    return {k: v for k, v in body.state_dict().items() if k.startswith(_ENCODER_PREFIXES)}


def save_encoder(model: nn.Module, path: str | Path, itos: Sequence[str] | None = None, vocab: Any = None,
                 tokenizer: Any = None) -> Path:
    """Write the encoder weights of `model` (see `encoder_config`), its sizes, and the vocabulary (`vocab`,
    a `Vocab`, or only its tokens `itos`) and `tokenizer` it reads, to the safetensors file `path`
    (atomically), so a classifier can read text exactly as the language model did. Returns the path."""
    from safetensors.torch import save_file
    cfg = encoder_config(model)
    if vocab is not None:
        itos = vocab.itos
    tensors = {k: v.detach().cpu().contiguous() for k, v in _encoder_state(model).items()}
    meta = {"format": "deepfit-encoder", "format_version": str(ENCODER_FORMAT_VERSION), "config": json.dumps(cfg),
            "itos": json.dumps(list(itos)) if itos is not None else "",
            "vocab": json.dumps(vocab.get_state()) if vocab is not None else "",
            "tokenizer": json.dumps(tokenizer.get_state()) if tokenizer is not None else ""}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_encoder_header(path: str | Path) -> tuple[dict[str, Any], list[str] | None]:
    """The sizes and vocabulary stored in an encoder file (errors for a missing or foreign file)."""
    from ..export import ExportError
    path = Path(path)
    try:
        if not path.exists():
            raise FileNotFoundError(f"No saved encoder at {path}.")
        with open(path, "rb") as f:
            raw = f.read(8)
        n = int.from_bytes(raw, "little") if len(raw) == 8 else 0
        if not 2 <= n <= path.stat().st_size - 8:
            raise ExportError(f"{path} is not a saved encoder (not a safetensors file, or truncated).")
        with open(path, "rb") as f:
            f.seek(8)
            meta = json.loads(f.read(n)).get("__metadata__") or {}
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, ExportError):
            raise
        raise ExportError(f"{path} is not a readable encoder file ({e}).") from None
    if meta.get("format") != "deepfit-encoder":
        hint = (" It is an exported model: save its encoder with learn.save_encoder(...)."
                if meta.get("format") == "deepfit" else "")
        raise ExportError(f"{path} is not a saved deepfit encoder (written by save_encoder).{hint}")
    if int(meta.get("format_version", "0")) > ENCODER_FORMAT_VERSION:
        raise ExportError(f"{path} is an encoder of format {meta.get('format_version')}, newer than this deepfit "
                          f"reads ({ENCODER_FORMAT_VERSION}); upgrade deepfit.")
    itos = json.loads(meta["itos"]) if meta.get("itos") else None
    return json.loads(meta["config"]), itos


def encoder_text_parts(path: str | Path) -> tuple[Any, Any]:
    """`(tokenizer, vocab)` stored with an encoder (None for a part it was saved without), to build a
    classifier's data that reads text as the language model did:
    `TextClassifierDataLoaders.from_df(df, ..., tokenizer=tok, vocab=vocab)`."""
    from .tokenize import tokenizer_from_state
    from .vocab import Vocab
    _, itos = read_encoder_header(path)
    meta = _metadata(Path(path))
    vocab = Vocab.from_state(json.loads(meta["vocab"])) if meta.get("vocab") else (
        Vocab(itos, [t for t in ("xxunk", "xxpad", "xxbos", "xxeos") if t in itos]) if itos is not None else None)
    tok = tokenizer_from_state(json.loads(meta["tokenizer"])) if meta.get("tokenizer") else None
    return tok, vocab


def _metadata(path: Path) -> dict[str, str]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)).get("__metadata__") or {}


def load_encoder(model: nn.Module, path: str | Path, itos: Sequence[str] | None = None,
                 remap_vocab: bool = False) -> nn.Module:
    """Load the encoder weights saved by `save_encoder` into `model` (an `RNNLanguageModel`, an
    `RNNEncoder`, or a classifier with one as `body`).

    Args:
        model: the model to load into.
        path: the encoder file.
        itos: the vocabulary `model` reads (its data's `vocab.itos`); checked against the file's.
        remap_vocab: the model has another vocabulary (e.g. a language model pre-trained on general text
            being fine-tuned on a task's text): copy the embedding of every token both vocabularies
            share, give the other tokens the mean embedding. Needs `itos` and a file with a vocabulary.

    Raises:
        EncoderMismatchError: other sizes, or another vocabulary (without `remap_vocab`); the message says
            what to change.
    """
    cfg, saved_itos = read_encoder_header(path)
    mine = encoder_config(model)
    diffs = [f"{k}={cfg.get(k)!r} in the file but {mine[k]!r} in this model" for k in _SIZE_KEYS
             if k != "vocab_sz" and cfg.get(k) != mine[k]]
    if diffs:
        raise EncoderMismatchError(f"The encoder in {path} does not fit this model: {'; '.join(diffs)}. Build the "
                                   "model with the language model's sizes (text_classifier_learner(..., encoder=path) "
                                   "reads them from the file).")
    from safetensors.torch import load_file
    state = load_file(str(path), device="cpu")
    if remap_vocab:
        if itos is None or saved_itos is None:
            raise EncoderMismatchError("remap_vocab needs the vocabulary of the model (`itos`) and an encoder file "
                                       "saved with its vocabulary.")
        state["encoder.weight"] = _remap_rows(state["encoder.weight"], saved_itos, itos)
    else:
        if cfg["vocab_sz"] != mine["vocab_sz"]:
            raise EncoderMismatchError(
                f"The encoder in {path} was trained with a vocabulary of {cfg['vocab_sz']} tokens; this model reads "
                f"{mine['vocab_sz']}. Build the classifier's data with the language model's tokenizer and vocabulary "
                "(TextClassifierDataLoaders.from_...(..., tokenizer=lm_dls.tokenizer, vocab=lm_dls.vocab)), or "
                "load with remap_vocab=True to fine-tune a language model on a new vocabulary.")
        if itos is not None and saved_itos is not None and list(itos) != list(saved_itos):
            k = next(i for i, (a, b) in enumerate(zip(itos, saved_itos)) if a != b)
            raise EncoderMismatchError(
                f"The encoder in {path} was trained with another vocabulary of the same size (token {k} is "
                f"{saved_itos[k]!r} there but {itos[k]!r} here). Build the data with the language model's "
                "vocabulary (vocab=lm_dls.vocab).")
    body = getattr(model, "body", model)
    from ..export import state_dict_mismatches
    target = {k: v for k, v in body.state_dict().items() if k.startswith(_ENCODER_PREFIXES)}
    problems = state_dict_mismatches(_Flat(target), state)  # compare only the encoder's tensors
    if problems:
        raise EncoderMismatchError(f"The weights in {path} do not fit this model's encoder: {'; '.join(problems)}.")
    missing = body.load_state_dict(state, strict=False)
    if missing.unexpected_keys:  # pragma: no cover - ruled out by the check above
        raise EncoderMismatchError(f"unexpected tensors in {path}: {missing.unexpected_keys}")
    return model


class _Flat(nn.Module):
    # a module whose state_dict is a given dict (for state_dict_mismatches)
    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._t = tensors

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return self._t


def _remap_rows(w: torch.Tensor, old_itos: Sequence[str], new_itos: Sequence[str]) -> torch.Tensor:
    old = {t: i for i, t in enumerate(old_itos)}
    if len(old_itos) != len(w):
        raise TextDataError(f"the encoder file's vocabulary has {len(old_itos)} tokens but its embedding "
                            f"{len(w)} rows (corrupted file?)")
    out = w.mean(0, keepdim=True).repeat(len(new_itos), 1)
    pairs = [(j, old[t]) for j, t in enumerate(new_itos) if t in old]
    if pairs:
        dst, src = zip(*pairs)
        out[list(dst)] = w[list(src)]
    return out
