"""Text classifiers, ULMFiT style: a language model's encoder and a head over concat pooling.

`TextClassifier` = `RNNEncoder` (the embedding and recurrent layers of an `RNNLanguageModel`) + a head
that pools the last layer's output over time, ignoring padding:

    [ output at the last real token | max over real tokens | mean over real tokens ]   (bs, 3 * out_size)

then batch-norm / dropout / linear blocks (`lin_ftrs` hidden sizes) down to one score per class.

`text_classifier_learner` builds a `TextClassifierLearner` (with `predict("a text")`, `save_encoder` /
`load_encoder`, `fit_gradual` and `interpret`); for `method` in nb / nbsvm / logreg / nb_learner it
hands over to the bag-of-words models of `bow.py`.

The three stages (Howard & Ruder 2018):

    >>> lm = language_model_learner(TextLMDataLoaders.from_texts(wiki_docs), ...)         # doctest: +SKIP
    >>> lm.fit_one_cycle(1, 2e-3); lm.save_encoder("wiki")                               # (1) general English
    >>> task_lm = language_model_learner(TextLMDataLoaders.from_texts(task_texts), ...)  # doctest: +SKIP
    >>> task_lm.load_encoder("wiki", remap_vocab=True); task_lm.fit_one_cycle(2, 2e-3)    # (2) the task's text
    >>> task_lm.save_encoder("task")                                                     # doctest: +SKIP
    >>> dls = TextClassifierDataLoaders.from_df(df, "text", "label", tokenizer=task_lm.dls.tokenizer,
    ...                                         vocab=task_lm.dls.vocab)                 # doctest: +SKIP
    >>> learn = text_classifier_learner(dls, encoder="models/task.safetensors")          # doctest: +SKIP
    >>> learn.fit_gradual(2e-2)                                                          # (3) the classifier
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..callbacks.core import Callback
from ..callbacks.training import GradientClip
from ..data.core import DataLoader
from ..export import register_model
from ..layers import LinBnDrop
from ..learner import Learner
from ..metrics import accuracy
from ..optim import Adam
from ..utils import listify
from .encoder import RNNEncoder, load_encoder, read_encoder_header, save_encoder

__all__ = ["TextClassifier", "TextClassifierLearner", "text_classifier_learner", "masked_concat_pool",
           "classifier_splitter", "CLAS_DEFAULTS", "BOW_METHODS"]

#: The classifier's dropout probabilities at drop_mult=1 (ULMFiT's classifier settings; times `drop_mult`).
CLAS_DEFAULTS = {"emb_drop": 0.05, "weight_drop": 0.5, "input_drop": 0.4, "hidden_drop": 0.3, "output_drop": 0.4}
#: Methods `text_classifier_learner` hands over to the bag-of-words module.
BOW_METHODS = ("nb", "nbsvm", "logreg", "nb_learner")


def masked_concat_pool(out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concat pooling of a right-padded batch: `[out at the last real step, max, mean over real steps]`.

    Args:
        out: (bs, L, n) outputs; positions at and after `lengths[i]` are padding and are ignored.
        lengths: (bs,) number of real steps of each row (>= 1).

    Returns:
        (bs, 3n).
    """
    bs, width = out.shape[0], out.shape[1]
    lengths = lengths.to(out.device)
    mask = torch.arange(width, device=out.device)[None, :] < lengths[:, None]  # (bs, L) True at real steps
    last = out[torch.arange(bs, device=out.device), lengths - 1]
    mx = out.masked_fill(~mask[..., None], float("-inf")).max(dim=1).values
    mean = (out * mask[..., None]).sum(dim=1) / lengths[:, None].to(out.dtype)
    return torch.cat([last, mx, mean], dim=1)


@register_model
class TextClassifier(nn.Module):
    """An `RNNEncoder` (`body`) and a concat-pooling head (`head`).

    Input `(x (bs, L) right-padded ids, lengths (bs,))`; output (bs, n_classes) class scores.

    Args:
        vocab_sz, emb_size, n_hid, n_layers, arch, out_size, pad_idx: the encoder (as the language
            model's: `out_size` is `emb_size` for tied weights).
        n_classes: number of classes.
        emb_drop, weight_drop, input_drop, hidden_drop: the encoder's dropouts.
        output_drop: dropout of the pooled features (before the first linear layer).
        lin_ftrs: hidden sizes of the head.
        head_drops: dropout before each further linear layer (one per `lin_ftrs` entry).
    """

    def __init__(self, vocab_sz: int, n_classes: int, emb_size: int = 400, n_hid: int = 1150, n_layers: int = 3,
                 arch: str = "lstm", out_size: int | None = None, pad_idx: int | None = None, emb_drop: float = 0.0,
                 weight_drop: float = 0.0, input_drop: float = 0.0, hidden_drop: float = 0.0,
                 output_drop: float = 0.0, lin_ftrs: Sequence[int] = (50,), head_drops: Sequence[float] | None = None
                 ) -> None:
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"`n_classes` must be an integer >= 2; received n_classes={n_classes!r}.")
        lin_ftrs = [int(v) for v in lin_ftrs]
        head_drops = [0.1] * len(lin_ftrs) if head_drops is None else [float(p) for p in head_drops]
        if len(head_drops) != len(lin_ftrs):
            raise ValueError(f"`head_drops` needs one probability per entry of lin_ftrs ({len(lin_ftrs)}); received "
                             f"{head_drops}.")
        self.body = RNNEncoder(vocab_sz, emb_size=emb_size, n_hid=n_hid, n_layers=n_layers, arch=arch,
                               out_size=out_size, pad_idx=pad_idx, emb_drop=emb_drop, weight_drop=weight_drop,
                               input_drop=input_drop, hidden_drop=hidden_drop)
        self.n_classes, self.output_drop, self.lin_ftrs, self.head_drops = n_classes, output_drop, lin_ftrs, head_drops
        sizes = [3 * self.body.out_size] + lin_ftrs + [n_classes]
        ps = [output_drop] + head_drops
        self.head = nn.Sequential(*[LinBnDrop(sizes[i], sizes[i + 1], bn=True, p=ps[i],
                                              act=nn.ReLU(inplace=True) if i < len(sizes) - 2 else None)
                                    for i in range(len(sizes) - 1)])

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(masked_concat_pool(self.body(x), lengths))

    def get_config(self) -> dict[str, Any]:
        b = self.body
        return {"vocab_sz": b.vocab_sz, "n_classes": self.n_classes, "emb_size": b.emb_size, "n_hid": b.n_hid,
                "n_layers": b.n_layers, "arch": b.arch, "out_size": b.out_size, "pad_idx": b.pad_idx,
                "emb_drop": b.emb_drop, "weight_drop": b.weight_drop, "input_drop": b.input_drop,
                "hidden_drop": b.hidden_drop, "output_drop": self.output_drop, "lin_ftrs": self.lin_ftrs,
                "head_drops": self.head_drops}


def classifier_splitter(model: TextClassifier) -> list[list[nn.Parameter]]:
    """Layer groups of a `TextClassifier`: the embedding, each recurrent layer, the head (n_layers + 2
    groups), so `freeze_to(-2)` trains the head and the last recurrent layer."""
    m = getattr(model, "module", model)
    groups = [list(m.body.encoder.parameters())]
    groups += [list(r.parameters()) for r in m.body.rnns]
    groups.append(list(m.head.parameters()))
    return groups


class TextClassifierLearner(Learner):
    """A `Learner` for `TextClassifier`: `predict("a text")` -> (label, class index, probabilities);
    `get_preds` in row order; the encoder saved / loaded on its own; gradual unfreezing; interpretation.
    The arguments are `Learner`'s; the defaults differ: splitter `classifier_splitter`, moms (0.8, 0.7, 0.8)."""

    default_splitter = staticmethod(classifier_splitter)
    default_moms = (0.8, 0.7, 0.8)

    # ---- predictions in row order ----------------------------------------------------------------------
    def get_preds(self, dl: DataLoader | None = None, with_loss: bool = False, with_input: bool = False,
                  activation: bool = True) -> tuple[torch.Tensor, ...]:
        """As `Learner.get_preds`, in the loader's row order (its batches are sorted by length); with
        `with_input` the inputs are `(x, lengths)` with every row right-padded to the longest."""
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("No loader to predict on: pass `dl=` (e.g. `learn.dls.test_dl(texts)`).")
        order = getattr(dl, "row_order", None)
        if order is None:  # another kind of loader: nothing to reorder
            return super().get_preds(dl, with_loss=with_loss, with_input=with_input, activation=activation)
        if dl.shuffle:
            dl = copy.copy(dl)  # leaves the original's generator and position alone
            dl.shuffle, dl._resume = False, None
        res = list(super().get_preds(dl, with_loss=with_loss, with_input=False, activation=activation))
        perm = order().to(res[0].device)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(len(perm), device=perm.device)
        res = [r[inv.to(r.device)] if isinstance(r, torch.Tensor) else r for r in res]
        if with_input:
            res.insert(0, dl.padded())
        return tuple(res)

    # ---- the encoder on its own ------------------------------------------------------------------------
    def _encoder_file(self, name: str | Path) -> Path:
        p = Path(name)
        if p.suffix == "":
            p = p.with_suffix(".safetensors")
        return p if p.is_absolute() or p.parent != Path(".") else self.path / self.model_dir / p

    def save_encoder(self, name: str | Path) -> Path:
        """Write the encoder (embedding and recurrent layers) with its sizes and vocabulary to
        `path/model_dir/name.safetensors` (or the path given)."""
        vocab = getattr(self.dls, "vocab", None)
        return save_encoder(self.model, self._encoder_file(name), vocab=vocab,
                            tokenizer=getattr(self.dls, "tokenizer", None))

    def load_encoder(self, name: str | Path, freeze: bool = True) -> "TextClassifierLearner":
        """Load an encoder saved by `save_encoder` (of a language model or a classifier) and, with
        `freeze`, freeze all but the head (the start of gradual unfreezing).

        Raises:
            EncoderMismatchError: the file's vocabulary or sizes differ from this model's (the message
                says what to change).
        """
        vocab = getattr(self.dls, "vocab", None)
        load_encoder(self.model, self._encoder_file(name), itos=vocab.itos if vocab is not None else None)
        self.opt = None  # stale optimizer state must not be applied to the new weights
        if freeze:
            self.freeze()
        return self

    # ---- ULMFiT's schedule -----------------------------------------------------------------------------
    def fit_gradual(self, lr: float = 2e-2, epochs: Sequence[int] = (1, 1, 1, 2),
                    lr_mults: Sequence[float] = (1.0, 0.5, 0.25, 0.05), div: float = 2.6 ** 4,
                    moms: tuple[float, float, float] | None = None) -> None:
        """Gradual unfreezing with discriminative learning rates: `fit_one_cycle` on the last layer
        group, then the last two, then the last three, ..., then all, stage k with `epochs[k]` epochs
        and `slice(lr * lr_mults[k] / div, lr * lr_mults[k])` (rates spread geometrically from the first
        group to the last; the first stage trains only the head, at `lr`). The last stage unfreezes
        everything.

        Args:
            lr: the head's learning rate in the first stage.
            epochs: epochs per stage.
            lr_mults: multiplier of `lr` per stage (same length as `epochs`).
            div: ratio of the last group's rate to the first's (ULMFiT: 2.6 per group over 4 steps).
            moms: momentum schedule (default the learner's).
        """
        if len(epochs) != len(lr_mults) or not epochs:
            raise ValueError(f"`epochs` and `lr_mults` need one entry per stage; received {list(epochs)} and "
                             f"{list(lr_mults)}.")
        n_stages = len(epochs)
        for k, (n_ep, mult) in enumerate(zip(epochs, lr_mults)):
            last = k == n_stages - 1
            if last:
                self.unfreeze()
            else:
                self.freeze_to(-(k + 1))
            top = lr * mult
            self.fit_one_cycle(n_ep, top if k == 0 and not last else slice(top / div, top), moms=moms)

    # ---- interpretation --------------------------------------------------------------------------------
    def interpret(self, dl: DataLoader | None = None) -> Any:
        """A `TextClassificationInterpretation` of `dl` (default the validation set)."""
        from .interpret import TextClassificationInterpretation
        return TextClassificationInterpretation.from_learner(self, dl)


def _from_file_or_default(name: str, given: Any, cfg: dict[str, Any] | None, default: Any) -> Any:
    if cfg is None:
        return default if given is None else given
    if given is not None and given != cfg[name]:
        from .encoder import EncoderMismatchError
        raise EncoderMismatchError(f"{name}={given!r} was given but the encoder file has {name}={cfg[name]!r}; leave "
                                   f"{name} out (it is read from the encoder).")
    return cfg[name]


def text_classifier_learner(dls: Any, method: str = "rnn", arch: str | None = None, encoder: str | Path | None = None,
                            drop_mult: float = 0.5, emb_size: int | None = None, n_hid: int | None = None,
                            n_layers: int | None = None, tie_weights: bool = True,
                            lin_ftrs: Sequence[int] = (50,), head_drops: Sequence[float] = (0.1,),
                            metrics: Sequence[Any] | None = None, opt_func: Callable[..., torch.optim.Optimizer] = Adam,
                            lr: float = 2e-2, wd: float | None = 1e-2, clip: float | None = None,
                            cbs: Sequence[Callback] | Callback = (), path: str | Path = ".", progress: bool = True,
                            **bow_options: Any) -> Any:
    """A text classifier for `dls`.

    With method="rnn" (default): a `TextClassifierLearner` with a `TextClassifier` (dropouts
    `CLAS_DEFAULTS` times `drop_mult`). With `encoder` (a file written by `save_encoder`, e.g. of a
    language model fine-tuned on the task's text) the encoder's sizes are read from the file, its weights
    loaded, and everything but the head frozen; `dls` must then use that language model's vocabulary.

    With method in `BOW_METHODS` ("nb", "nbsvm", "logreg", "nb_learner"): the bag-of-words models of
    `deepfit.text.bow`, with `bow_options` passed on to them (the RNN options are not used).

    Args:
        dls: `TextClassifierDataLoaders`.
        method: "rnn" or one of `BOW_METHODS`.
        arch: "lstm", "gru" or "rnn" (default lstm, or the encoder file's).
        encoder: path of a saved encoder to start from.
        drop_mult: multiplies every dropout probability.
        emb_size, n_hid, n_layers: sizes (default 400, 1150, 3, or the encoder file's).
        tie_weights: without an encoder file: the last recurrent layer outputs `emb_size` (as a language
            model with tied weights), else `n_hid`.
        lin_ftrs, head_drops: hidden sizes of the head and the dropout before each of their outputs' layers.
        metrics: default accuracy.
        opt_func, lr, wd, cbs, path, progress: as for `Learner`.
        clip: clip the gradient norm to this (None: no clipping).

    Raises:
        EncoderMismatchError: the encoder file does not fit `dls` (another vocabulary) or the sizes given.
        ValueError: an unknown method, or options of another method.
    """
    if method in BOW_METHODS:
        from . import bow
        make = getattr(bow, "bow_learner", None)
        if make is None:  # pragma: no cover - depends on bow.py
            raise ValueError(f"method={method!r} needs deepfit.text.bow.bow_learner, which this deepfit lacks.")
        return make(dls, method=method, **bow_options)
    if method != "rnn":
        raise ValueError(f"`method` must be 'rnn' or one of {', '.join(BOW_METHODS)}; received method={method!r}.")
    if bow_options:
        raise TypeError(f"text_classifier_learner(method='rnn') got unexpected options {sorted(bow_options)} (they "
                        "are options of the bag-of-words methods).")
    vocab, classes = getattr(dls, "vocab", None), getattr(dls, "classes", None)
    if vocab is None or classes is None:
        raise TypeError(f"text_classifier_learner needs TextClassifierDataLoaders (with a vocabulary and classes); "
                        f"received {type(dls).__name__}.")
    if not drop_mult >= 0:
        raise ValueError(f"`drop_mult` must be >= 0; received drop_mult={drop_mult!r}.")
    cfg = read_encoder_header(encoder)[0] if encoder is not None else None
    emb = _from_file_or_default("emb_size", emb_size, cfg, 400)
    hid = _from_file_or_default("n_hid", n_hid, cfg, 1150)
    nl = _from_file_or_default("n_layers", n_layers, cfg, 3)
    ar = _from_file_or_default("arch", arch, cfg, "lstm")
    out_size = cfg["out_size"] if cfg is not None else (emb if tie_weights else hid)
    ps = {k: v * drop_mult for k, v in CLAS_DEFAULTS.items()}
    model = TextClassifier(len(vocab), len(classes), emb_size=emb, n_hid=hid, n_layers=nl, arch=ar, out_size=out_size,
                           pad_idx=vocab.pad_idx, lin_ftrs=lin_ftrs, head_drops=[p * drop_mult for p in head_drops],
                           **ps)
    extra: list[Callback] = [GradientClip(clip)] if clip is not None else []
    learn = TextClassifierLearner(dls, model, opt_func=opt_func, lr=lr, wd=wd,
                                  metrics=[accuracy] if metrics is None else metrics, cbs=extra + listify(cbs),
                                  path=path, progress=progress)
    if encoder is not None:
        load_encoder(learn.model, encoder, itos=vocab.itos)
        learn.freeze()
    return learn
