"""Bag-of-words text classifiers: naive Bayes, logistic regression and NBSVM (the machine-learning course,
lesson 9, after Wang & Manning 2012), and the "dot-product NB learner" trained with `fit_one_cycle`.

The arithmetic (matrices, r, the fits) is in `bow_features.py`, re-exported here; this module holds the
torch models, the DataLoaders and the learner. The term-document matrix comes from deepfit's tokenizer
through scikit-learn's `CountVectorizer` (sparse, n-grams 1..n, `max_features`); every method sees
binarised counts (`x_hat = 1{x > 0}`) unless told `binary=False`. With `f` the rows of one class and
`alpha` the smoothing (1: add-one),

    p = alpha + sum_{i: y_i = 1} f_i,   q = alpha + sum_{i: y_i = 0} f_i,   r = log((p / |p|_1) / (q / |q|_1))

is the naive Bayes log-count ratio. Naive Bayes predicts `r . x_hat + log(N1 / N0)`; NBSVM fits a linear
classifier (logistic regression, or Wang & Manning's L2-loss SVM) on `r * x_hat` and interpolates its
weights with their mean magnitude, `w' = (1 - beta) * mean(|w|) + beta * w` (beta = 0.25). More than two
classes: naive Bayes is multinomial (one log-probability row per class), NBSVM and the NB learner are
one-vs-rest (class c against the others).

Every fitted model is one linear layer over n-gram ids (`NgramLinear`: an `EmbeddingBag` holding the
weights as tensors), so `learn.export(...)` / `deepfit.load_learner(...)` and
`learn.predict("a new sentence") -> (label, label index, probabilities)` work as for any deepfit model;
the tokenizer and n-gram vocabulary travel as JSON in the exported file.

Example:
    >>> dls = BowDataLoaders.from_df(df, text_col="text", label_col="label", ngrams=2)   # doctest: +SKIP
    >>> learn = bow_learner(dls, method="nbsvm")          # fits at once (no epochs)     # doctest: +SKIP
    >>> learn.validate(), learn.predict("a wonderful film")                               # doctest: +SKIP
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..data.core import DataLoader, DataLoaders, split_indices
from ..export import register_dls, register_model
from ..learner import Learner
from ..losses import CrossEntropyLoss
from ..metrics import accuracy
from .bow_features import (NgramVectorizer, binarize, fit_linear_weights, fold_matrices, interpolate, linear_scores,
                           nb_log_count_ratio, nb_log_probs, softmax_np)
from .io import TextDataError, texts_from_folder
from .tokenize import Tokenizer

__all__ = ["BOW_METHODS", "NgramLinear", "NBDotProduct", "BowDataLoaders", "BowLearner", "bow_learner", "check_labels",
           "n_gram_loader", "PadNgrams",
           # re-exported from bow_features.py (the arithmetic)
           "NgramVectorizer", "fold_matrices", "binarize", "nb_log_count_ratio", "nb_log_probs", "interpolate",
           "fit_linear_weights", "linear_scores", "softmax_np"]

#: the methods of `bow_learner`: fitted at once (nb, logreg, nbsvm) or trained by SGD (nb_learner)
BOW_METHODS = ("nb", "logreg", "nbsvm", "nb_learner")


# ---- torch models ---------------------------------------------------------------------------------------
@register_model
class NgramLinear(nn.Module):
    """A linear classifier over n-gram ids: `logits = sum_j x_j W[id_j] + bias`.

    Inputs are padded n-gram ids `(bs, L)` (padding id = `n_features`) and their counts `(bs, L)`;
    with `binary` every present n-gram counts once. The weights are an `EmbeddingBag` (n_features + 1,
    n_classes), the padding row fixed at zero.
    """

    def __init__(self, n_features: int, n_classes: int, binary: bool = True) -> None:
        super().__init__()
        self.n_features, self.n_classes, self.binary = int(n_features), int(n_classes), bool(binary)
        self.weight = nn.EmbeddingBag(self.n_features + 1, self.n_classes, mode="sum", padding_idx=self.n_features)
        nn.init.zeros_(self.weight.weight)
        self.bias = nn.Parameter(torch.zeros(self.n_classes))

    def forward(self, ids: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        w = (counts > 0).to(self.weight.weight.dtype) if self.binary else counts.to(self.weight.weight.dtype)
        return self.weight(ids, per_sample_weights=w) + self.bias

    def set_weights(self, W: np.ndarray, b: np.ndarray) -> None:
        """Copy fitted weights `W (n_classes, n_features)` and `b (n_classes,)` in."""
        with torch.no_grad():
            self.weight.weight[: self.n_features] = torch.as_tensor(np.asarray(W).T, dtype=torch.float32)
            self.weight.weight[self.n_features] = 0
            self.bias.copy_(torch.as_tensor(np.asarray(b), dtype=torch.float32))

    def get_config(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "n_classes": self.n_classes, "binary": self.binary}


@register_model
class NBDotProduct(nn.Module):
    """The course's "dot-product NB learner": fixed naive Bayes ratios `r`, a learned weight per n-gram.

    An `EmbeddingBag` sum over n-gram ids whose rows are the fixed `r` and whose per-n-gram weights are learned:

    `logits[c] = sum_{j in doc} (w_j + w_adj) * r[j, c] / r_adj + bias[c]` over the distinct n-grams of a
    document, with `r[:, c]` the log-count ratio of class c against the others (a buffer, never trained)
    and `w` an embedding of one learned weight per n-gram (initialised uniformly in +-0.1). With w = 0 the
    model is naive Bayes scaled by `w_adj / r_adj`; training lets each n-gram's weight move away from it.
    """

    def __init__(self, n_features: int, n_classes: int, w_adj: float = 0.4, r_adj: float = 10.0) -> None:
        super().__init__()
        self.n_features, self.n_classes = int(n_features), int(n_classes)
        self.w_adj, self.r_adj = float(w_adj), float(r_adj)
        self.w = nn.Embedding(self.n_features + 1, 1, padding_idx=self.n_features)
        with torch.no_grad():
            self.w.weight.uniform_(-0.1, 0.1)
            self.w.weight[self.n_features] = 0
        self.register_buffer("r", torch.zeros(self.n_features + 1, self.n_classes))
        self.bias = nn.Parameter(torch.zeros(self.n_classes))

    def set_r(self, r: np.ndarray) -> None:
        """Set the fixed ratios, `r (n_features, n_classes)`."""
        with torch.no_grad():
            self.r[: self.n_features] = torch.as_tensor(np.asarray(r), dtype=torch.float32)
            self.r[self.n_features] = 0

    def forward(self, ids: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        # an EmbeddingBag sum over the fixed rows r[id] (bs, L) -> (bs, n_classes), each weighted by its learned
        # (w + w_adj) / r_adj; padding and absent n-grams have weight 0
        present = (counts > 0).to(self.r.dtype)                                    # (bs, L)
        psw = (self.w(ids).squeeze(-1) + self.w_adj) * present / self.r_adj        # (bs, L)
        return F.embedding_bag(ids, self.r, mode="sum", per_sample_weights=psw) + self.bias

    def get_config(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "n_classes": self.n_classes, "w_adj": self.w_adj,
                "r_adj": self.r_adj}


# ---- data ---------------------------------------------------------------------------------------------
def _check_missing_labels(labels: Sequence[Any], source: str, column: str | None) -> None:
    col = f" {column!r}" if column else ""
    miss = [i for i, v in enumerate(labels) if v is None or (isinstance(v, float) and math.isnan(v))
            or (isinstance(v, str) and not v.strip())]
    if miss:
        rows = ", ".join(str(i) for i in miss[:10]) + (", ..." if len(miss) > 10 else "")
        raise TextDataError(f"the label column{col} of {source} is missing on {len(miss)} of {len(labels)} rows "
                            f"(rows {rows}, counting from 0); drop those rows or fill in their labels")


def check_labels(labels: Sequence[Any], source: str = "the data", column: str | None = None) -> None:
    """Fail clearly for labels with missing values (how many, which rows) or a single class."""
    col = f" {column!r}" if column else ""
    _check_missing_labels(labels, source, column)
    distinct = set(map(_label_key, labels))
    if len(distinct) < 2:
        only = next(iter(labels)) if len(labels) else None
        raise TextDataError(f"the label column{col} of {source} has a single class ({only!r} on all {len(labels)} "
                            "rows): a classifier needs at least two; is it the right column?")


def _label_key(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _check_texts(texts: Sequence[Any], source: str, column: str | None = None) -> list[str]:
    col = f" {column!r}" if column else ""
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        t = texts[bad[0]]
        raise TextDataError(f"the text column{col} of {source} holds {type(t).__name__} values, not text (row "
                            f"{bad[0]}: {t!r}); is it the right column?")
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        rows = ", ".join(str(i) for i in empty[:10]) + (", ..." if len(empty) > 10 else "")
        raise TextDataError(f"the text column{col} of {source} has {len(empty)} empty text(s) (rows {rows}, "
                            "counting from 0); drop those rows or fill them in")
    return list(texts)


def _csr_to_ids(x: sp.csr_matrix, pad: int, min_len: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded n-gram ids and counts `(n, L)` from the CSR rows of `x` (L = the most n-grams in a row)."""
    x = sp.csr_matrix(x)
    x.sort_indices()
    lens = np.diff(x.indptr)
    L = max(int(lens.max()) if len(lens) else 0, min_len)
    ids = np.full((x.shape[0], L), pad, dtype=np.int64)
    counts = np.zeros((x.shape[0], L), dtype=np.float32)
    rows = np.repeat(np.arange(x.shape[0]), lens)
    cols = np.arange(len(x.indices)) - np.repeat(x.indptr[:-1], lens)
    ids[rows, cols] = x.indices
    counts[rows, cols] = x.data
    return torch.from_numpy(ids), torch.from_numpy(counts)


class PadNgrams:
    """The `after_batch` of the n-gram loaders: rows stored as (start, length) into one flat array of ids
    and counts (the CSR matrix) become `(ids, counts)` padded to the longest row of the batch only, so a
    few long documents cost memory for their own batches, not for the whole data set.

    Args:
        x: the CSR counts of the loader's rows (indices sorted by `n_gram_loader`).
        pad: the padding id (the number of n-grams).
    """

    def __init__(self, x: sp.csr_matrix, pad: int) -> None:
        self.ids = torch.from_numpy(x.indices.astype(np.int64))
        self.counts = torch.from_numpy(x.data.astype(np.float32))
        self.pad = int(pad)

    def __call__(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        starts, lens, *rest = batch                                   # (bs,), (bs,), targets
        dev = starts.device
        if self.ids.device != dev:  # the loaders were moved (dls.to): follow them once
            self.ids, self.counts = self.ids.to(dev), self.counts.to(dev)
        L = max(int(lens.max()) if len(lens) else 0, 1)
        ar = torch.arange(L, device=dev)
        mask = ar[None] < lens[:, None]                               # (bs, L)
        if len(self.ids) == 0:
            return (torch.full(mask.shape, self.pad, device=dev), torch.zeros(mask.shape, device=dev), *rest)
        pos = (starts[:, None] + ar[None]).clamp_(max=len(self.ids) - 1)
        ids = torch.where(mask, self.ids[pos], torch.full_like(pos, self.pad))
        counts = torch.where(mask, self.counts[pos], torch.zeros((), device=dev))
        return (ids, counts, *rest)


def n_gram_loader(x: sp.spmatrix, y: torch.Tensor | None, pad: int, *, bs: int = 64, shuffle: bool = False,
                  device: torch.device | str | None = None, seed: int | None = None,
                  texts: Sequence[str] | None = None) -> DataLoader:
    """A deepfit `DataLoader` over the rows of the counts `x` (and class indices `y`), whose batches are
    `(ids, counts[, y])` padded per batch (see `PadNgrams`); `dl.texts` keeps the texts when given."""
    x = sp.csr_matrix(x)
    x.sort_indices()
    starts = torch.from_numpy(x.indptr[:-1].astype(np.int64))
    lens = torch.from_numpy(np.diff(x.indptr).astype(np.int64))
    tensors = [starts, lens] + ([y] if y is not None else [])
    dl = DataLoader(*tensors, bs=bs, shuffle=shuffle, device=device, seed=seed, n_inp=2, after_batch=PadNgrams(x, pad))
    dl.texts = list(texts) if texts is not None else None  # type: ignore[attr-defined]
    return dl


class BowDataLoaders(DataLoaders):
    """Labelled texts as n-gram counts: sparse matrices for scikit-learn and padded id tensors for torch.

    Build with `from_texts`, `from_df`, `from_csv` or `from_folder`. Attributes: `vectorizer` (the fitted
    `NgramVectorizer`), `classes` (label of each class index), `x_train` / `x_valid` (CSR counts),
    `y_train` / `y_valid` (class indices) and the texts of each loader (`dls.valid.texts`). Batches are
    `(ids, counts, y)`.
    """

    def __init__(self, train: DataLoader, valid: DataLoader | None, vectorizer: NgramVectorizer,
                 classes: Sequence[Any], x_train: sp.csr_matrix | None = None, x_valid: sp.csr_matrix | None = None,
                 text_col: str | None = None, label_col: str | None = None) -> None:
        super().__init__(train, valid)
        self.vectorizer, self.classes = vectorizer, [_label_key(c) for c in classes]
        self.x_train, self.x_valid = x_train, x_valid
        self.text_col, self.label_col = text_col, label_col

    @property
    def learner_class(self) -> type:
        return BowLearner

    @property
    def default_loss(self) -> CrossEntropyLoss:
        return CrossEntropyLoss()

    @property
    def n_features(self) -> int:
        return self.vectorizer.n_features

    @property
    def c(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def y_train(self) -> np.ndarray:
        return self.train.tensors[-1].cpu().numpy()

    @property
    def y_valid(self) -> np.ndarray | None:
        return self.valid.tensors[-1].cpu().numpy() if self.valid is not None else None

    # ---- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_texts(cls, texts: Sequence[str], labels: Sequence[Any], *, valid_texts: Sequence[str] | None = None,
                   valid_labels: Sequence[Any] | None = None, valid_pct: float = 0.2, seed: int | None = None,
                   tokenizer: Tokenizer | str = "word", ngrams: int = 1, max_features: int | None = None,
                   min_df: int = 1, bs: int = 64, device: torch.device | str | None = None,
                   source: str = "the data", text_col: str | None = None,
                   label_col: str | None = None) -> "BowDataLoaders":
        """Split (unless `valid_texts` are given), fit the n-gram vocabulary on the training texts only,
        and build the loaders.

        Args:
            texts, labels: the documents and their labels (any hashable values; classes are sorted).
            valid_texts, valid_labels: an explicit validation set (then `valid_pct` is not used).
            valid_pct: share of rows held out at random (0: no validation set).
            tokenizer, ngrams, max_features, min_df: see `NgramVectorizer`.

        Raises:
            TextDataError: empty or non-text texts, missing labels, a single class, too few rows.
        """
        texts = _check_texts(list(texts), source, text_col)
        labels = [_label_key(v) for v in labels]
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels: they must match.")
        check_labels(labels, source, label_col)
        if valid_texts is not None:
            if valid_labels is None:
                raise ValueError("`valid_labels` are required with `valid_texts`.")
            vt = _check_texts(list(valid_texts), f"the validation part of {source}", text_col)
            vl = [_label_key(v) for v in valid_labels]
            if len(vt) != len(vl):
                raise ValueError(f"{len(vt)} validation texts but {len(vl)} validation labels: they must match.")
            _check_missing_labels(vl, f"the validation part of {source}", label_col)
            tr_t, tr_l = texts, labels
        else:
            if not 0 <= valid_pct < 1:
                raise ValueError(f"`valid_pct` must be in [0, 1); received {valid_pct}.")
            if valid_pct > 0:
                n_valid = int(round(len(texts) * valid_pct))
                if n_valid < 1 or len(texts) - n_valid < 2:
                    raise TextDataError(f"{source} has only {len(texts)} rows: too few to hold out {valid_pct:.0%} "
                                        "for validation and still train")
                tr, va = split_indices(len(texts), valid_pct, seed)
            else:
                tr, va = np.arange(len(texts)), np.arange(0)
            tr_t, tr_l = [texts[i] for i in tr], [labels[i] for i in tr]
            vt, vl = [texts[i] for i in va], [labels[i] for i in va]
        try:
            classes = sorted(set(tr_l))
        except TypeError:  # mixed types: order by their text
            classes = sorted(set(tr_l), key=str)
        if len(classes) < 2:
            raise TextDataError(f"the training part of {source} holds a single class ({classes[0]!r}); use more "
                                "data or another split")
        index = {c: i for i, c in enumerate(classes)}
        unseen = sorted({str(v) for v in vl if v not in index})
        if unseen:
            raise TextDataError(f"the validation part of {source} has label(s) {', '.join(unseen[:5])} that no "
                                "training row has; use a larger training part or another seed")
        vec = NgramVectorizer(tokenizer, ngrams=ngrams, max_features=max_features, min_df=min_df)
        x_tr = vec.fit_transform(tr_t)
        y_tr = torch.tensor([index[v] for v in tr_l], dtype=torch.long)
        pad = vec.n_features
        train = n_gram_loader(x_tr, y_tr, pad, bs=bs, shuffle=True, device=device, seed=seed, texts=tr_t)
        valid, x_va = None, None
        if len(vt):
            x_va = vec.transform(vt)
            y_va = torch.tensor([index[v] for v in vl], dtype=torch.long)
            valid = n_gram_loader(x_va, y_va, pad, bs=2 * bs, device=device, texts=vt)
        return cls(train, valid, vec, classes, x_tr, x_va, text_col=text_col, label_col=label_col)

    @classmethod
    def from_dls(cls, dls: Any, *, tokenizer: Tokenizer | str = "word", ngrams: int = 1,
                 max_features: int | None = None, min_df: int = 1) -> "BowDataLoaders":
        """The same training and validation texts and labels as another text DataLoaders (e.g. RNN's
        `TextClassifierDataLoaders`, which keep `dl.texts` and `classes`), as n-gram counts."""
        classes = getattr(dls, "classes", None)
        train = getattr(dls, "train", None)
        if classes is None or getattr(train, "texts", None) is None:
            raise TypeError(f"{type(dls).__name__} keeps no texts and classes; build BowDataLoaders.from_df / "
                            "from_csv / from_folder / from_texts instead.")

        def labels_of(dl: Any) -> list[Any]:
            if len(dl.tensors) <= dl.n_inp:
                raise ValueError("the loaders have no labels: a classifier needs labelled texts.")
            return [classes[int(i)] for i in dl.tensors[-1].cpu().tolist()]
        valid = dls.valid
        has_valid = valid is not None and getattr(valid, "texts", None)
        return cls.from_texts(train.texts, labels_of(train), valid_texts=valid.texts if has_valid else [],
                              valid_labels=labels_of(valid) if has_valid else [], seed=getattr(train, "seed", None),
                              tokenizer=tokenizer, ngrams=ngrams, max_features=max_features, min_df=min_df,
                              bs=train.bs, device=dls.device)

    @classmethod
    def from_df(cls, df: Any, text_col: str, label_col: str, *, valid_pct: float = 0.2, seed: int | None = None,
                tokenizer: Tokenizer | str = "word", ngrams: int = 1, max_features: int | None = None,
                min_df: int = 1, bs: int = 64, device: torch.device | str | None = None,
                source: str = "the DataFrame") -> "BowDataLoaders":
        """From the text and label columns of a DataFrame (not modified); see `from_texts`.

        Raises:
            TextDataError: a missing column (with the closest name), a numeric text column, missing labels
                (how many, which rows), empty texts, a single class.
        """
        import pandas as pd

        from .io import _check_column
        _check_column(df, text_col, "text", source)
        _check_column(df, label_col, "label", source)
        col = df[text_col]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise TextDataError(f"the text column {text_col!r} of {source} holds numbers ({col.dtype}), not text; "
                                "is it the right column?")
        miss = col.isna().to_numpy()
        if miss.any():
            rows = ", ".join(str(r) for r in df.index[miss][:10])
            raise TextDataError(f"the text column {text_col!r} of {source} is missing on {int(miss.sum())} row(s) "
                                f"({rows}); drop or fill them")
        lab = df[label_col]
        lmiss = lab.isna().to_numpy()
        if lmiss.any():
            rows = ", ".join(str(r) for r in df.index[lmiss][:10]) + (", ..." if lmiss.sum() > 10 else "")
            raise TextDataError(f"the label column {label_col!r} of {source} is missing on {int(lmiss.sum())} of "
                                f"{len(df)} rows (rows {rows}); drop those rows or fill in their labels")
        return cls.from_texts(col.tolist(), lab.tolist(), valid_pct=valid_pct, seed=seed, tokenizer=tokenizer,
                              ngrams=ngrams, max_features=max_features, min_df=min_df, bs=bs, device=device,
                              source=source, text_col=text_col, label_col=label_col)

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], text_col: str, label_col: str, *, delimiter: str = ",",
                 encoding: str = "utf-8", **kwargs: Any) -> "BowDataLoaders":
        """From the columns of a CSV/TSV file (tab-separated files are read without quote handling)."""
        import csv
        import io as _io

        import pandas as pd

        from .io import decode_text
        p = os.fspath(path)
        if not os.path.isfile(p):
            raise FileNotFoundError(f"CSV file not found: {p}")
        text = decode_text(open(p, "rb").read(), p, encoding)
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        try:
            df = pd.read_csv(_io.StringIO(text), sep=delimiter, quoting=quoting, dtype={text_col: str})
        except (pd.errors.ParserError, ValueError) as e:
            raise TextDataError(f"cannot parse {p} with delimiter {delimiter!r}: "
                                f"{str(e).strip().splitlines()[-1]}") from None
        return cls.from_df(df, text_col, label_col, source=p, **kwargs)

    @classmethod
    def from_folder(cls, path: str | os.PathLike[str], *, classes: Sequence[str] | None = None,
                    encoding: str = "utf-8", **kwargs: Any) -> "BowDataLoaders":
        """From a folder with one sub-folder of text files per class (see `texts_from_folder`)."""
        texts, labels = texts_from_folder(path, classes=classes, encoding=encoding)
        return cls.from_texts(texts, labels, source=os.fspath(path), **kwargs)

    # ---- inference -------------------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded n-gram ids and counts of `texts`, for the model."""
        return _csr_to_ids(self.vectorizer.transform(list(texts)), self.n_features)

    def label_index(self, labels: Sequence[Any], source: str = "the labels") -> torch.Tensor:
        """Class indices of `labels`; a label the model was not trained on is an error naming it."""
        index = {c: i for i, c in enumerate(self.classes)}
        index.update({str(c): i for i, c in enumerate(self.classes)})  # "1" read as text for a class 1
        vals = [_label_key(v) for v in labels]
        unknown = sorted({str(v) for v in vals if v not in index and str(v) not in index})
        if unknown:
            raise TextDataError(f"{source} has label(s) {', '.join(unknown[:5])} the model was not trained on; it "
                                f"knows {', '.join(map(str, self.classes[:10]))}. Is this the right model?")
        return torch.tensor([index[v] if v in index else index[str(v)] for v in vals], dtype=torch.long)

    def test_dl(self, texts: Sequence[str], labels: Sequence[Any] | None = None, bs: int | None = None,
                source: str = "the texts") -> DataLoader:
        """A loader over new texts (and optional labels), in order; `dl.texts` keeps them."""
        texts = _check_texts(list(texts), source)
        y = self.label_index(labels, source) if labels is not None else None
        if y is not None and len(y) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(y)} labels: they must match.")
        return n_gram_loader(self.vectorizer.transform(texts), y, self.n_features, bs=bs or 2 * self.train.bs,
                             device=self.device, texts=texts)

    def encode_item(self, text: str) -> tuple[torch.Tensor, torch.Tensor]:
        """One text as the model input of `Learner.predict`."""
        if not isinstance(text, str):
            raise TypeError(f"predict expects one text (a str); received {type(text).__name__} (for many texts: "
                            "learn.get_preds(dl=dls.test_dl(texts))).")
        if not text.strip():
            raise TextDataError("The text to classify is empty (or only whitespace).")
        return self.encode_texts([text])

    def decode_pred(self, pred: torch.Tensor) -> Any:
        """The label of a predicted class index."""
        return self.classes[int(pred.reshape(-1)[0])]

    def decode_preds(self, probs: torch.Tensor) -> list[Any]:
        """The labels of the most probable class of each row of `probs`."""
        return [self.classes[int(i)] for i in probs.argmax(-1).tolist()]

    # ---- export ----------------------------------------------------------------------------------------
    def export_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON (tokenizer, n-grams, classes, column names) to rebuild inference loaders; no tensors."""
        meta = {"vectorizer": self.vectorizer.get_state(), "classes": self.classes, "text_col": self.text_col,
                "label_col": self.label_col, "bs": self.train.bs}
        return meta, {}

    @classmethod
    def from_state(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> "BowDataLoaders":
        """Inference-only loaders (no training rows) from `export_state`."""
        vec = NgramVectorizer.from_state(meta["vectorizer"])
        pad = vec.n_features
        empty = n_gram_loader(sp.csr_matrix((0, pad), dtype=np.float32), torch.zeros(0, dtype=torch.long), pad,
                              bs=int(meta.get("bs", 64)), device="cpu", texts=[])
        return cls(empty, None, vec, meta["classes"], text_col=meta.get("text_col"), label_col=meta.get("label_col"))

    def show_batch(self, n: int = 4, max_ngrams: int = 12) -> list[tuple[str, Any, list[str]]]:
        """The first `n` training texts as (text, label, their first n-grams in the vocabulary), also printed."""
        dl = self.train
        ids, counts, y = dl.after_batch(tuple(t[:n] for t in dl.tensors))
        rows = []
        for i in range(len(y)):
            grams = [self.vectorizer.features[int(j)] for j, c in zip(ids[i].tolist(), counts[i].tolist()) if c > 0]
            rows.append((dl.texts[i], self.classes[int(y[i])], grams[:max_ngrams]))
        for text, label, grams in rows:
            more = " ..." if len(grams) == max_ngrams else ""
            print(f"{label!r}: {text[:120]!r}\n    n-grams: {', '.join(grams)}{more}")
        return rows

    def __repr__(self) -> str:
        n_va = self.valid.n if self.valid is not None else 0
        return (f"BowDataLoaders({self.train.n} train / {n_va} valid texts, {self.n_features} n-grams, "
                f"classes {self.classes[:10]})")


register_dls("BowDataLoaders", BowDataLoaders.from_state)


# ---- learner --------------------------------------------------------------------------------------------
class BowLearner(Learner):
    """A Learner for bag-of-words models; `fit_linear` fits nb / logreg / nbsvm on the training rows at once.

    `method` and its settings are kept on the learner (`learn.method`, `learn.fit_kwargs`); the fitted
    weights live in the model (`NgramLinear`), so export, `predict` and `get_preds` need nothing else.
    """

    method: str = "nbsvm"
    fit_kwargs: dict[str, Any] = {}

    def fit_linear(self) -> "BowLearner":
        """Fit the linear method on `dls.x_train` / `dls.y_train` and copy the weights into the model."""
        dls = self.dls
        if not isinstance(dls, BowDataLoaders) or dls.x_train is None:
            raise ValueError("fit_linear needs BowDataLoaders with training rows (built by BowDataLoaders.from_*).")
        if not isinstance(self.model, NgramLinear):
            raise TypeError(f"fit_linear fits an NgramLinear model, not a {type(self.model).__name__}; the "
                            "nb_learner method trains with fit_one_cycle.")
        W, b = fit_linear_weights(dls.x_train, dls.y_train, dls.c, self.method, binary=self.model.binary,
                                  **self.fit_kwargs)
        self.model.set_weights(W, b)
        return self

    def nb_ratios(self, alpha: float = 1.0, binary: bool = True) -> np.ndarray:
        """One-vs-rest log-count ratios of the training rows, (n_features, n_classes)."""
        dls = self.dls
        return np.stack([nb_log_count_ratio(dls.x_train, (dls.y_train == c).astype(np.int64), alpha, binary)
                         for c in range(dls.c)], axis=1)


def bow_learner(dls: BowDataLoaders, method: str = "nbsvm", *, C: float = 1.0, beta: float | None = 0.25,
                alpha: float = 1.0, binary: bool = True, clf: str = "logreg", w_adj: float = 0.4,
                r_adj: float = 10.0, metrics: Sequence[Any] | Any = (accuracy,), fit: bool = True, seed: int = 0,
                ngrams: int = 1, max_features: int | None = None, tokenizer: Tokenizer | str = "word",
                **learner_kwargs: Any) -> BowLearner:
    """A bag-of-words classifier on `dls`.

    Args:
        dls: `BowDataLoaders`; other text DataLoaders that keep their texts and classes (e.g.
            `TextClassifierDataLoaders`) are turned into BowDataLoaders with `tokenizer`, `ngrams` and
            `max_features` (the learner's `dls` is then the new BowDataLoaders).
        method: `"nb"` (naive Bayes), `"logreg"`, `"nbsvm"` (fitted at once when `fit`), or `"nb_learner"`
            (the dot-product NB learner: train it with `learn.fit_one_cycle(...)`).
        C: inverse regularisation of logreg and of NBSVM's classifier.
        beta: NBSVM interpolation (0.25, Wang & Manning; None: plain NBSVM).
        alpha: NB smoothing (1: add-one). binary: binarised features (the paper's choice).
        clf: NBSVM's classifier, `"logreg"` (the course) or `"svm"` (the paper's L2-loss SVM; its
            probabilities are the softmax of uncalibrated margins).
        w_adj, r_adj: the NB learner's weight offset and ratio scale (the course's 0.4 and 10).
        metrics: validation metrics (default accuracy).
        fit: fit nb/logreg/nbsvm now (`learn.fit_linear()`).
        learner_kwargs: passed to `Learner` (e.g. `lr`, `wd`, `cbs`, `progress`).
    """
    if not isinstance(dls, BowDataLoaders):
        if getattr(dls, "classes", None) is None or getattr(getattr(dls, "train", None), "texts", None) is None:
            raise TypeError(f"bow_learner needs BowDataLoaders (BowDataLoaders.from_df / from_csv / from_folder / "
                            f"from_texts); received {type(dls).__name__}.")
        dls = BowDataLoaders.from_dls(dls, tokenizer=tokenizer, ngrams=ngrams, max_features=max_features)
    if method not in BOW_METHODS:
        raise ValueError(f"`method` must be one of {', '.join(BOW_METHODS)}; received {method!r}.")
    if method == "nb_learner":
        if dls.x_train is None:
            raise ValueError("the nb_learner method needs BowDataLoaders with training rows.")
        model: nn.Module = NBDotProduct(dls.n_features, dls.c, w_adj=w_adj, r_adj=r_adj)
        learn = BowLearner(dls, model, loss_func=CrossEntropyLoss(), metrics=metrics, **learner_kwargs)
        learn.method = method
        model.set_r(learn.nb_ratios(alpha=alpha, binary=True))
        return learn
    model = NgramLinear(dls.n_features, dls.c, binary=binary)
    learn = BowLearner(dls, model, loss_func=CrossEntropyLoss(), metrics=metrics, **learner_kwargs)
    learn.method = method
    learn.fit_kwargs = {"C": C, "beta": beta if method == "nbsvm" else None, "alpha": alpha, "clf": clf,
                        "seed": seed}
    if fit:
        learn.fit_linear()
    return learn
