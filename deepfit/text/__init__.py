"""Text: tokenizers, vocabularies, reading text files, language-model data, recurrent language models,
text classifiers (bag of words; an RNN over a language model's encoder, ULMFiT style) and their interpretation.

    from deepfit.text import read_text, CharTokenizer, Vocab
"""
from __future__ import annotations

from .io import TextDataError, decode_text, read_text, texts_from_csv, texts_from_df, texts_from_folder
from .tokenize import (BOS, EOS, PAD, TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK, BPETokenizer, CharTokenizer, Tokenizer,
                       TokenizerError, WordTokenizer, get_tokenizer, tokenizer_from_state)
from .vocab import UnknownTokenError, Vocab
# language models (data.py, models.py, learner.py, callbacks.py, metrics.py)
from ..export import register_dls
from .callbacks import LMRecorder, ResetHidden, RNNRegularizer, ScaleLRByLength
from .data import LMDataLoader, TextLMDataLoaders, char_windows
from .learner import LMLearner, language_model_learner
from .metrics import BitsPerChar, Perplexity, TokenAccuracy, bits_per_char, perplexity
from .models import (AWDLSTM, CharLM3, CharLoopRNN, CharRNN, CharSeqRNN, RNNLanguageModel, StatefulRNN)

register_dls("TextLMDataLoaders", TextLMDataLoaders.from_state)
# RNN text classifiers, ULMFiT style (classifier_data.py, encoder.py, classifier.py, interpret.py)
from .classifier import (CLAS_DEFAULTS, TextClassifier, TextClassifierLearner, classifier_splitter,
                         masked_concat_pool, text_classifier_learner)
from .classifier_data import TextClassDataLoader, TextClassifierDataLoaders, pad_batch
from .encoder import EncoderMismatchError, RNNEncoder, load_encoder, save_encoder
from .interpret import TextClassificationInterpretation, confusion_matrix, most_confident_mistakes, most_confused

register_dls("TextClassifierDataLoaders", TextClassifierDataLoaders.from_state)
# bag-of-words classifiers: naive Bayes, logreg, NBSVM, the dot-product NB learner (bow.py; registers BowDataLoaders)
from .bow import (BowDataLoaders, BowLearner, NBDotProduct, NgramLinear, NgramVectorizer, bow_learner,
                  fit_linear_weights, nb_log_count_ratio, nb_log_probs)

__all__ = [
    # tokens, vocabularies, reading text (tokenize.py, vocab.py, io.py)
    "Tokenizer", "CharTokenizer", "WordTokenizer", "BPETokenizer", "TokenizerError", "get_tokenizer",
    "tokenizer_from_state", "UNK", "PAD", "BOS", "EOS", "TK_MAJ", "TK_UP", "TK_REP", "TK_WREP",
    "Vocab", "UnknownTokenError",
    "TextDataError", "read_text", "decode_text", "texts_from_folder", "texts_from_df", "texts_from_csv",
    # language models
    "LMDataLoader", "TextLMDataLoaders", "char_windows", "LMLearner", "language_model_learner", "ResetHidden",
    "RNNRegularizer", "LMRecorder", "ScaleLRByLength", "TokenAccuracy", "Perplexity", "BitsPerChar", "perplexity", "bits_per_char",
    "CharLM3", "CharLoopRNN", "CharRNN", "CharSeqRNN", "StatefulRNN", "RNNLanguageModel", "AWDLSTM",
    # RNN text classifiers and interpretation
    "TextClassDataLoader", "TextClassifierDataLoaders", "pad_batch", "RNNEncoder", "EncoderMismatchError",
    "save_encoder", "load_encoder", "TextClassifier", "TextClassifierLearner", "text_classifier_learner",
    "masked_concat_pool", "classifier_splitter", "CLAS_DEFAULTS", "TextClassificationInterpretation",
    "confusion_matrix", "most_confident_mistakes", "most_confused",
    # bag-of-words classifiers
    "NgramVectorizer", "BowDataLoaders", "BowLearner", "bow_learner", "NgramLinear", "NBDotProduct",
    "nb_log_count_ratio", "nb_log_probs", "fit_linear_weights",
]
