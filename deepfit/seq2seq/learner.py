"""`Seq2SeqLearner` (a Learner that translates) and `translation_learner`.

Example:
    >>> dls = Seq2SeqDataLoaders.from_files("train.de", "train.en", "val.de", "val.en", bs=64)  # doctest: +SKIP
    >>> learn = translation_learner(dls, arch="gru")                                             # doctest: +SKIP
    >>> learn.fit_one_cycle(8, 3e-3)                                                             # doctest: +SKIP
    >>> learn.translate("Ein Mann fährt Fahrrad.", beam=5)                                       # doctest: +SKIP
    'A man is riding a bike.'
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..callbacks.core import Callback
from ..callbacks.schedule import ParamScheduler
from ..callbacks.training import GradientClip
from ..learner import Learner
from ..metrics import Metric
from ..optim import Adam
from ..schedule import combine_scheds, sched_const
from ..text.io import TextDataError
from ..utils import listify
from .bleu import CorpusBLEU, sacrebleu_score, tokenized_bleu
from .data import Seq2SeqDataLoaders
from .decode import Hypotheses, beam_search, greedy_decode
from .models import Seq2SeqRNN
from .transformer import Seq2SeqTransformer

__all__ = ["Seq2SeqLearner", "translation_learner", "teacher_forcing_schedule", "TEACHER_FORCING", "ARCHS",
           "SentenceTooLongError"]

#: Architectures of `translation_learner`.
ARCHS = ("gru", "lstm", "transformer")


class SentenceTooLongError(TextDataError):
    """A sentence to translate has more tokens than the model reads."""


def teacher_forcing_schedule(always: float = 1 / 3, half: float = 1 / 3) -> Callable[[float], float]:
    """The lesson's teacher-forcing ratio over a fit: 1 (always) for the first `always` of the batches, 0.5 for
    the next `half`, then 0 (never: the decoder reads its own predictions). Use it in
    `ParamScheduler({"model.teacher_forcing": teacher_forcing_schedule()})`."""
    if not (0 <= always and 0 <= half and always + half <= 1):
        raise ValueError(f"always and half must be fractions with always + half <= 1; received {always}, {half}")
    parts = [(p, v) for p, v in ((always, 1.0), (half, 0.5), (1 - always - half, 0.0)) if p > 0]
    return combine_scheds([p for p, _ in parts], [sched_const(v) for _, v in parts])


#: The named teacher-forcing schedules of `translation_learner`: "default" keeps the ratio at 0.5 or more (always
#: for the first half of the fit, then half); "lesson" is the course's always -> half -> never in thirds.
TEACHER_FORCING: dict[str, Callable[[], Callable[[float], float]]] = {
    "default": lambda: teacher_forcing_schedule(0.5, 0.5),
    "lesson": teacher_forcing_schedule,
}


class Seq2SeqLearner(Learner):
    """A `Learner` for translation models (`Seq2SeqRNN`, `Seq2SeqTransformer`) on `Seq2SeqDataLoaders`:
    `translate`, `translate_many`, `attention` and `bleu`. The arguments are `Learner`'s; a `CorpusBLEU`
    metric is attached to this learner."""

    def prepare_metric(self, metric: Metric) -> Metric:
        if isinstance(metric, CorpusBLEU):
            metric.learner = self
        return metric

    # ---- helpers ------------------------------------------------------------------------------------
    @property
    def _net(self) -> nn.Module:
        return getattr(self.model, "module", self.model)

    def _check_dls(self) -> Seq2SeqDataLoaders:
        if not isinstance(self.dls, Seq2SeqDataLoaders):
            raise TypeError(f"translating needs Seq2SeqDataLoaders; these are {type(self.dls).__name__}")
        return self.dls

    def encode_sources(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """`(src (n, S), src_len (n,))` of source sentences, checked against the model's maximum length."""
        dls = self._check_dls()
        if isinstance(texts, str):
            raise TypeError("encode_sources takes a list of sentences; for one, use learn.translate(text)")
        limit = int(getattr(self._net, "max_len", 10**9))
        ids = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"sentence {i} is {type(t).__name__}, not a str")
            if not t.strip():
                raise TextDataError(f"sentence {i} is empty: there is nothing to translate")
            d = dls.encode_src([t])[0]
            if len(d) > limit:
                raise SentenceTooLongError(
                    f"sentence {i} ({t[:50]!r}{'...' if len(t) > 50 else ''}) has {len(d) - 1} tokens; this model "
                    f"reads at most {limit - 1} (its max_len {limit} counts the end marker): split it into "
                    "shorter sentences")
            ids.append(d)
        src = torch.full((len(ids), max(len(d) for d in ids)), dls.src_pad, dtype=torch.long)
        for i, d in enumerate(ids):
            src[i, : len(d)] = d
        return src.to(dls.device), torch.tensor([len(d) for d in ids], device=dls.device)

    def _search(self, src: torch.Tensor, src_len: torch.Tensor, beam: int, max_len: int | None,
                length_penalty: float) -> Hypotheses:
        model = self._net
        was = model.training
        model.eval()
        try:
            if beam == 1 and length_penalty == 0:
                return greedy_decode(model, src, src_len, max_len=max_len)
            return beam_search(model, src, src_len, beam_size=beam, max_len=max_len, length_penalty=length_penalty)
        finally:
            model.train(was)

    # ---- translation --------------------------------------------------------------------------------
    def translate_many(self, texts: Sequence[str], beam: int = 1, max_len: int | None = None,
                       length_penalty: float = 0.0, bs: int = 128) -> list[str]:
        """Translations of many sentences, decoded in batches of `bs` sentences of similar lengths.

        Args:
            texts: source sentences.
            beam: beam size (1: greedy search).
            max_len: tokens to produce at most per sentence (default: twice the source plus 10).
            length_penalty: GNMT alpha for ranking beam hypotheses (0: none).
            bs: sentences decoded at once.

        Raises:
            SentenceTooLongError: a sentence longer than the model reads (naming it).
            TextDataError: an empty sentence.
        """
        texts = list(texts)
        dls = self._check_dls()
        src, src_len = self.encode_sources(texts)  # checks every sentence first
        order = torch.argsort(src_len.cpu(), descending=True, stable=True).tolist()
        out: list[str] = [""] * len(texts)
        for lo in range(0, len(order), bs):
            idx = order[lo:lo + bs]
            width = int(src_len[idx].max())
            hyp = self._search(src[idx, :width], src_len[idx], beam, max_len, length_penalty)
            for j, toks in zip(idx, hyp.tokens):
                out[j] = dls.decode_tgt(toks)
        return out

    def translate(self, text: str, beam: int = 1, max_len: int | None = None, length_penalty: float = 0.0) -> str:
        """The translation of one sentence (greedy, or beam search with `beam` > 1).

        Example:
            >>> learn.translate("Ein Hund läuft im Schnee.")                                  # doctest: +SKIP
            'A dog runs in the snow.'
        """
        if not isinstance(text, str):
            raise TypeError(f"translate takes one sentence (a str); received {type(text).__name__} (use "
                            "learn.translate_many(texts) for many)")
        return self.translate_many([text], beam=beam, max_len=max_len, length_penalty=length_penalty)[0]

    def predict(self, item: Any, beam: int = 1) -> tuple[str, torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """`Learner.predict` for one sentence: `(translation, output token ids, sum of their log-probabilities)`."""
        if not isinstance(item, str):
            raise TypeError(f"predict takes one sentence (a str); received {type(item).__name__}")
        dls = self._check_dls()
        src, src_len = self.encode_sources([item])
        hyp = self._search(src, src_len, beam, None, 0.0)
        return dls.decode_tgt(hyp.tokens[0]), torch.tensor(hyp.tokens[0], dtype=torch.long), hyp.scores[0]

    def attention(self, text: str, max_len: int | None = None) -> tuple[list[str], list[str], torch.Tensor]:
        """Greedy translation of one sentence with its attention: (source tokens, output tokens, weights
        (len(output tokens), len(source tokens))). Only for models with attention weights (`Seq2SeqRNN`)."""
        dls = self._check_dls()
        src, src_len = self.encode_sources([text])
        hyp = self._search(src, src_len, 1, max_len, 0.0)
        if hyp.attention is None:
            raise TypeError(f"{type(self._net).__name__} returns no attention weights; attention maps are drawn "
                            "for Seq2SeqRNN models")
        src_toks = dls.src_vocab.lookup(src[0, : int(src_len[0])])
        out_toks = dls.tgt_vocab.lookup(hyp.tokens[0]) + (["xxeos"] if hyp.finished[0] else [])
        return src_toks, out_toks, hyp.attention[0][: len(out_toks)]

    def plot_attention(self, text: str, ax: Any = None, fname: str | Path | None = None) -> Any:
        """Heat map of the attention of the greedy translation of `text` (rows: output tokens, columns:
        source tokens); saved to `fname` when given. Returns the axes."""
        from ..plotting import pyplot
        plt = pyplot()
        src, out, w = self.attention(text)
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4, 0.45 * len(src) + 2), max(3, 0.4 * len(out) + 1.5)))
        ax.imshow(w.numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(src)), src, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(out)), out, fontsize=8)
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        if fname is not None:
            ax.get_figure().savefig(fname, dpi=100, bbox_inches="tight")
        return ax

    def bleu(self, src_texts: Sequence[str], refs: Sequence[str], beam: int = 1, length_penalty: float = 0.0
             ) -> dict[str, Any]:
        """Translate `src_texts` and score against `refs`: `{"bleu_tok": tokenised lower-cased BLEU, "sacrebleu":
        detokenised sacreBLEU, "hyps": the translations}`."""
        src_texts, refs = list(src_texts), list(refs)
        if len(src_texts) != len(refs):
            raise ValueError(f"{len(src_texts)} sources but {len(refs)} references")
        hyps = self.translate_many(src_texts, beam=beam, length_penalty=length_penalty)
        return {"bleu_tok": tokenized_bleu(hyps, refs), "sacrebleu": sacrebleu_score(hyps, refs), "hyps": hyps}


def translation_learner(dls: Seq2SeqDataLoaders, arch: str = "gru", emb_sz: int | None = None, n_hid: int = 512,
                        n_layers: int | None = None, dropout: float | None = None, max_len: int | None = None,
                        src_vectors: torch.Tensor | None = None, tgt_vectors: torch.Tensor | None = None,
                        teacher_forcing: Callable[[float], float] | None | str = "default",
                        n_heads: int = 8, d_ff: int | None = None, positions: str = "learned",
                        norm_first: bool = True,
                        clip: float | None = 1.0, metrics: Sequence[Any] | Any = "default",
                        opt_func: Callable[..., torch.optim.Optimizer] = Adam, lr: float = 1e-3,
                        wd: float | None = 0.0, cbs: Sequence[Callback] | Callback = (), path: str | Path = ".",
                        progress: bool = True, seed: int | None = None) -> Seq2SeqLearner:
    """A `Seq2SeqLearner` with a `Seq2SeqRNN` ("gru", "lstm") or `Seq2SeqTransformer` ("transformer").

    Args:
        dls: the pairs.
        arch: "gru", "lstm" (bidirectional encoder, Bahdanau attention) or "transformer".
        emb_sz: embedding size (RNN: default 256 or the vectors' size; Transformer: d_model, default 256).
        n_hid: RNN hidden units per direction and of the decoder.
        n_layers: RNN encoder layers (default 1) or layers of each Transformer stack (default 3).
        dropout: default 0.3 (RNN) / 0.1 (Transformer).
        max_len: the longest source / output the model handles (default: twice the longest sequence of
            the loaders, at least 64).
        src_vectors, tgt_vectors: pretrained embeddings (`load_vectors(path, dls.src_vocab)[0]`).
        teacher_forcing: RNN only: the schedule of the teacher-forcing ratio over a fit. "default": always for
            the first half of the fit, then half (`teacher_forcing_schedule(0.5, 0.5)`); "lesson": the lesson's
            always -> half -> never (`teacher_forcing_schedule()`); a function of the fit's progress; None:
            always teacher-force. On Multi30k (benchmarks/RESULTS.md) ending at "never" cost 9 BLEU: 27.3
            with "lesson" against 36.2 with "default" (beam 5; the same model, "default" with 50 training
            minutes instead of 55).
        n_heads, d_ff, positions, norm_first: Transformer settings (d_ff default 2 * emb_sz; learned positions
            and pre-norm layers by default, which learn faster at the small sizes and few epochs of a CPU).
        clip: gradient clipping by norm (None: off).
        metrics: default `[CorpusBLEU()]` (greedy BLEU of the validation set each epoch).
        opt_func, lr, cbs, path, progress: as `Learner`.
        wd: weight decay (default 0: the dropout regularises these models, as in the lesson).
        seed: seed of the weights' initialisation (None: torch's global generator).
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; received {arch!r}")
    if not isinstance(dls, Seq2SeqDataLoaders):
        raise TypeError(f"translation_learner needs Seq2SeqDataLoaders; received {type(dls).__name__}")
    vec_dim = next((int(v.shape[1]) for v in (src_vectors, tgt_vectors) if v is not None), None)
    if emb_sz is None:
        emb_sz = vec_dim or 256
    elif vec_dim is not None and vec_dim != emb_sz:
        raise ValueError(f"emb_sz={emb_sz} but the word vectors have {vec_dim} dimensions; leave emb_sz out to use "
                         "the vectors' size")
    if max_len is None:
        s, t = dls.longest()
        max_len = max(64, 2 * max(s, t))
    sv, tv = dls.src_vocab, dls.tgt_vocab
    ids = dict(src_pad=int(sv.pad_idx), tgt_pad=int(tv.pad_idx), bos_idx=int(tv.bos_idx), eos_idx=int(tv.eos_idx))
    if seed is not None:
        torch.manual_seed(seed)
    model: nn.Module
    if arch == "transformer":
        model = Seq2SeqTransformer(len(sv), len(tv), d_model=emb_sz, n_heads=n_heads, n_enc_layers=n_layers or 3,
                                   n_dec_layers=n_layers or 3, d_ff=d_ff or 2 * emb_sz,
                                   dropout=0.1 if dropout is None else dropout, positions=positions, max_len=max_len,
                                   norm_first=norm_first, **ids)
    else:
        model = Seq2SeqRNN(len(sv), len(tv), emb_sz=emb_sz, n_hid=n_hid, n_layers=n_layers or 1, rnn=arch,
                           dropout=0.3 if dropout is None else dropout, max_len=max_len, **ids)
    if src_vectors is not None or tgt_vectors is not None:
        model.load_vectors(src_vectors, tgt_vectors)  # type: ignore[operator]
    extra: list[Callback] = []
    if clip is not None:
        extra.append(GradientClip(clip))
    if arch != "transformer":
        if isinstance(teacher_forcing, str):
            if teacher_forcing not in TEACHER_FORCING:
                raise ValueError(f"teacher_forcing must be one of {sorted(TEACHER_FORCING)}, a schedule f(pos) -> "
                                 f"ratio or None; received {teacher_forcing!r}")
            teacher_forcing = TEACHER_FORCING[teacher_forcing]()
        if teacher_forcing is not None:
            if not callable(teacher_forcing):
                raise TypeError("teacher_forcing must be a schedule f(pos) -> ratio, 'default', 'lesson' or None")
            extra.append(ParamScheduler({"model.teacher_forcing": teacher_forcing}))
    mets = [CorpusBLEU()] if isinstance(metrics, str) and metrics == "default" else listify(metrics)
    return Seq2SeqLearner(dls, model, loss_func=dls.default_loss, opt_func=opt_func, lr=lr, wd=wd, metrics=mets,
                          cbs=extra + listify(cbs), path=path, progress=progress)
