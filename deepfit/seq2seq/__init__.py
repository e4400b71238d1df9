"""Translation (sequence to sequence): parallel text, a bidirectional RNN encoder with a Bahdanau-attention
decoder (the course's lesson) and a Transformer, greedy and beam search, BLEU, pretrained word vectors.

    from deepfit.seq2seq import Seq2SeqDataLoaders, translation_learner
    dls = Seq2SeqDataLoaders.from_files("train.de", "train.en", "val.de", "val.en", bs=64)
    learn = translation_learner(dls, arch="gru")
    learn.fit_one_cycle(8, 3e-3)
    learn.translate("Ein Hund läuft im Schnee.", beam=5)
"""
from __future__ import annotations

from ..export import register_dls
from .bleu import BLEUStats, CorpusBLEU, corpus_bleu, sacrebleu_score, tokenized_bleu, words
from .data import (ParallelDataError, Seq2SeqDataLoader, Seq2SeqDataLoaders, check_pairs, default_tokenizer,
                   read_parallel)
from .decode import Hypotheses, beam_search, default_max_len, greedy_decode, length_penalty, sequence_log_probs
from .learner import ARCHS, SentenceTooLongError, Seq2SeqLearner, teacher_forcing_schedule, translation_learner
from .models import AdditiveAttention, Seq2SeqRNN, length_mask
from .transformer import Seq2SeqTransformer, sinusoidal_positions
from .vectors import VectorCoverage, VectorsFileError, load_vectors

register_dls("Seq2SeqDataLoaders", Seq2SeqDataLoaders.from_state, fields=Seq2SeqDataLoaders.STATE_FIELDS)

__all__ = [
    "Seq2SeqDataLoader", "Seq2SeqDataLoaders", "read_parallel", "check_pairs", "default_tokenizer",
    "ParallelDataError", "load_vectors", "VectorCoverage", "VectorsFileError",
    "Seq2SeqRNN", "AdditiveAttention", "length_mask", "Seq2SeqTransformer", "sinusoidal_positions",
    "Hypotheses", "greedy_decode", "beam_search", "length_penalty", "sequence_log_probs", "default_max_len",
    "Seq2SeqLearner", "translation_learner", "teacher_forcing_schedule", "ARCHS", "SentenceTooLongError",
    "BLEUStats", "corpus_bleu", "tokenized_bleu", "sacrebleu_score", "CorpusBLEU", "words",
]
