"""Text: tokenizers, vocabularies, reading text files, language-model data, recurrent language models.

    from deepfit.text import read_text, CharTokenizer, Vocab
"""
from __future__ import annotations

from .io import TextDataError, decode_text, read_text, texts_from_csv, texts_from_df, texts_from_folder
from .tokenize import (BOS, EOS, PAD, TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK, BPETokenizer, CharTokenizer, Tokenizer,
                       TokenizerError, WordTokenizer, get_tokenizer, tokenizer_from_state)
from .vocab import UnknownTokenError, Vocab
# language models (data.py, models.py, learner.py, callbacks.py, metrics.py)
from ..export import register_dls
from .callbacks import LMRecorder, ResetHidden, RNNRegularizer
from .data import LMDataLoader, TextLMDataLoaders, char_windows
from .learner import LMLearner, language_model_learner
from .metrics import BitsPerChar, Perplexity, TokenAccuracy, bits_per_char, perplexity
from .models import (AWDLSTM, CharLM3, CharLoopRNN, CharRNN, CharSeqRNN, RNNLanguageModel, StatefulRNN)

register_dls("TextLMDataLoaders", TextLMDataLoaders.from_state)

__all__ = [
    # tokens, vocabularies, reading text (tokenize.py, vocab.py, io.py)
    "Tokenizer", "CharTokenizer", "WordTokenizer", "BPETokenizer", "TokenizerError", "get_tokenizer",
    "tokenizer_from_state", "UNK", "PAD", "BOS", "EOS", "TK_MAJ", "TK_UP", "TK_REP", "TK_WREP",
    "Vocab", "UnknownTokenError",
    "TextDataError", "read_text", "decode_text", "texts_from_folder", "texts_from_df", "texts_from_csv",
    # language models
    "LMDataLoader", "TextLMDataLoaders", "char_windows", "LMLearner", "language_model_learner", "ResetHidden",
    "RNNRegularizer", "LMRecorder", "TokenAccuracy", "Perplexity", "BitsPerChar", "perplexity", "bits_per_char",
    "CharLM3", "CharLoopRNN", "CharRNN", "CharSeqRNN", "StatefulRNN", "RNNLanguageModel", "AWDLSTM",
]
