"""The arithmetic of the bag-of-words classifiers (see `deepfit.text.bow` for the models and learners):
n-gram term-document matrices from deepfit's tokenizer through scikit-learn's `CountVectorizer`, the naive
Bayes log-count ratio and log-probabilities, Wang & Manning's NBSVM interpolation, and the fit of naive
Bayes / logistic regression / SVM / NBSVM weights, in float64 on sparse matrices.

    r = log((p / |p|_1) / (q / |q|_1)),  p = alpha + sum_{i: y_i = 1} f_i,  q = alpha + sum_{i: y_i = 0} f_i
    w' = (1 - beta) * mean(|w|) + beta * w

Example:
    >>> v = NgramVectorizer(ngrams=2)
    >>> x = v.fit_transform(["a good film", "a bad film"])
    >>> r = nb_log_count_ratio(x, [1, 0])
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from .io import TextDataError
from .tokenize import Tokenizer, WordTokenizer, get_tokenizer, tokenizer_from_state

__all__ = ["NgramVectorizer", "fold_matrices", "binarize", "nb_log_count_ratio", "nb_log_probs", "interpolate",
           "fit_linear_weights", "linear_scores", "softmax_np"]

_STATE_VERSION = 1


# ---- term-document matrices ---------------------------------------------------------------------------
def _identity(x: Any) -> Any:
    return x


class NgramVectorizer:
    """Texts -> sparse term-document counts over n-grams of deepfit tokens (scikit-learn's CountVectorizer).

    Args:
        tokenizer: a deepfit `Tokenizer` or its name (`"word"`: lower-cased words with case markers and no
            `xxbos`; `"char"`; `"bpe"`, trained on the texts given to `fit`).
        ngrams: use n-grams of 1..`ngrams` tokens (1, 2 or 3 in the course; any n >= 1 works).
        max_features: keep the most frequent n-grams only (None: all).
        min_df: drop n-grams found in fewer documents.

    Example:
        >>> v = NgramVectorizer(ngrams=2).fit(["a good film", "a bad film"])
        >>> int(v.transform(["good film"]).sum())  # good, film, "good film"
        3
    """

    def __init__(self, tokenizer: Tokenizer | str = "word", ngrams: int = 1, max_features: int | None = None,
                 min_df: int = 1) -> None:
        if not isinstance(ngrams, int) or ngrams < 1:
            raise ValueError(f"`ngrams` must be a whole number >= 1 (1: words only, 2: words and pairs); "
                             f"received {ngrams!r}.")
        if max_features is not None and (not isinstance(max_features, int) or max_features < 1):
            raise ValueError(f"`max_features` must be a whole number >= 1 or None; received {max_features!r}.")
        if not isinstance(min_df, int) or min_df < 1:
            raise ValueError(f"`min_df` must be a whole number >= 1; received {min_df!r}.")
        if isinstance(tokenizer, str) and tokenizer.lower() == "word":
            tokenizer = WordTokenizer(lower=True, add_bos=False)
        self.tokenizer = get_tokenizer(tokenizer)
        self.ngrams, self.max_features, self.min_df = ngrams, max_features, min_df
        self.features: list[str] = []
        self._cv: Any = None

    def _make_cv(self, vocabulary: dict[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import CountVectorizer
        # documents arrive tokenised by deepfit; sklearn only builds the n-grams, counts and vocabulary
        return CountVectorizer(tokenizer=_identity, preprocessor=_identity, lowercase=False, token_pattern=None,
                               ngram_range=(1, self.ngrams), max_features=self.max_features,
                               min_df=self.min_df if vocabulary is None else 1, vocabulary=vocabulary,
                               dtype=np.float32)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """The deepfit tokens of each text (a BPE tokenizer must have been fitted)."""
        return [self.tokenizer(t) for t in texts]

    def fit_transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Learn the n-gram vocabulary from `texts` and return their counts, (n_texts, n_features)."""
        texts = list(texts)
        if not self.tokenizer.is_trained:
            self.tokenizer.fit(texts)
        return self.fit_transform_tokens(self.tokenize(texts))

    def fit_transform_tokens(self, docs: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """`fit_transform` on documents already tokenised by `self.tokenizer` (e.g. cached across CV folds)."""
        self._cv = self._make_cv()
        try:
            x = self._cv.fit_transform(list(docs))
        except ValueError as e:  # "empty vocabulary" / "max_df < min_df"
            raise TextDataError(f"no n-grams to count in the {len(docs)} training texts ({e}); check the texts "
                                "(and min_df)") from None
        self.features = [str(f) for f in self._cv.get_feature_names_out()]
        return x.tocsr()

    def fit(self, texts: Sequence[str]) -> "NgramVectorizer":
        """Learn the n-gram vocabulary; returns self."""
        self.fit_transform(texts)
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Counts of the known n-grams of `texts` (unknown n-grams are ignored), (n_texts, n_features)."""
        return self.transform_tokens(self.tokenize(list(texts)))

    def transform_tokens(self, docs: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """`transform` on documents already tokenised by `self.tokenizer`."""
        if self._cv is None:
            raise ValueError("This NgramVectorizer is not fitted: call fit(training_texts) first.")
        return self._cv.transform(list(docs)).tocsr()

    @property
    def n_features(self) -> int:
        return len(self.features)

    def get_state(self) -> dict[str, Any]:
        """JSON-able state: the tokenizer's state, the settings and the n-grams in feature order."""
        return {"version": _STATE_VERSION, "tokenizer": self.tokenizer.get_state(), "ngrams": self.ngrams,
                "max_features": self.max_features, "min_df": self.min_df, "features": list(self.features)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "NgramVectorizer":
        """Rebuild a fitted vectorizer from `get_state()`."""
        if not isinstance(state, dict) or "features" not in state or "tokenizer" not in state:
            raise ValueError("not a saved NgramVectorizer state (expected a dict with 'tokenizer' and 'features')")
        if int(state.get("version", 1)) > _STATE_VERSION:
            raise ValueError(f"the saved n-gram vectorizer has version {state.get('version')}, newer than this "
                             f"deepfit reads ({_STATE_VERSION}); upgrade deepfit")
        v = cls(tokenizer_from_state(state["tokenizer"]), ngrams=int(state["ngrams"]),
                max_features=state.get("max_features"), min_df=int(state.get("min_df", 1)))
        v.features = [str(f) for f in state["features"]]
        v._cv = v._make_cv({f: i for i, f in enumerate(v.features)})
        return v

    def __repr__(self) -> str:
        return (f"NgramVectorizer({self.tokenizer!r}, ngrams={self.ngrams}, max_features={self.max_features}, "
                f"{self.n_features} features)")


def fold_matrices(x_all: Any, train_idx: Any, test_idx: Any) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Training and test rows of a matrix vectorised once over every text, keeping only the n-grams that
    occur in the training rows: the same matrices (columns in the same sorted order) as an `NgramVectorizer`
    (min_df 1, no max_features) fitted on the training texts alone, without counting n-grams again for
    each fold of a cross-validation."""
    x_all = sp.csr_matrix(x_all)
    x_tr = x_all[np.asarray(train_idx)]
    keep = np.flatnonzero(np.asarray((x_tr != 0).sum(0)).ravel())
    return x_tr[:, keep].tocsr(), x_all[np.asarray(test_idx)][:, keep].tocsr()


def binarize(x: sp.spmatrix) -> sp.csr_matrix:
    """`1{x > 0}` of a sparse count matrix, as float32 CSR."""
    b = sp.csr_matrix(x, dtype=np.float32, copy=True)
    b.data = (b.data > 0).astype(np.float32)
    b.eliminate_zeros()
    return b


def _check_xy(x: Any, y: Any) -> tuple[sp.csr_matrix, np.ndarray]:
    x = sp.csr_matrix(x)
    y = np.asarray(y).reshape(-1)
    if x.shape[0] != len(y):
        raise ValueError(f"{x.shape[0]} rows of features but {len(y)} labels: they must match.")
    return x, y


def nb_log_count_ratio(x: Any, y: Any, alpha: float = 1.0, binary: bool = True, positive: Any = 1) -> np.ndarray:
    """The naive Bayes log-count ratio `r = log((p / |p|_1) / (q / |q|_1))` (float64, one per feature).

    Args:
        x: term-document counts (n_docs, n_features), sparse or dense.
        y: the labels; rows with `y == positive` give `p`, all others `q`.
        alpha: additive smoothing (1: add-one, as Wang & Manning).
        binary: count documents containing a feature (`1{x > 0}`) rather than occurrences.
        positive: the label of the positive class.
    """
    x, y = _check_xy(x, y)
    if alpha < 0:
        raise ValueError(f"`alpha` must be >= 0; received {alpha}.")
    if binary:
        x = binarize(x)
    pos = y == positive
    if not pos.any() or pos.all():
        raise ValueError(f"the labels need both positive ({positive!r}) and other rows to compute r.")
    p = alpha + np.asarray(x[pos].sum(0), dtype=np.float64).ravel()
    q = alpha + np.asarray(x[~pos].sum(0), dtype=np.float64).ravel()
    return np.log((p / p.sum()) / (q / q.sum()))


def nb_log_probs(x: Any, y: Any, n_classes: int, alpha: float = 1.0,
                 binary: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial naive Bayes: `log theta[c, j] = log((alpha + f_cj) / sum_j (alpha + f_cj))` and the log priors.

    Args:
        x: counts (n_docs, n_features); y: class indices 0..n_classes-1.
        alpha, binary: as `nb_log_count_ratio` (with two classes, `log theta[1] - log theta[0]` is r).

    Returns:
        `(log_theta (n_classes, n_features), log_prior (n_classes,))`, float64.
    """
    x, y = _check_xy(x, y)
    if binary:
        x = binarize(x)
    y = y.astype(np.int64)
    onehot = sp.csr_matrix((np.ones(len(y)), (y, np.arange(len(y)))), shape=(n_classes, len(y)))
    f = alpha + np.asarray((onehot @ x).todense(), dtype=np.float64)
    log_theta = np.log(f / f.sum(1, keepdims=True))
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    with np.errstate(divide="ignore"):
        log_prior = np.log(counts / counts.sum())
    return log_theta, log_prior


def interpolate(w: np.ndarray, beta: float) -> np.ndarray:
    """Wang & Manning's NBSVM interpolation `w' = (1 - beta) * mean(|w|) + beta * w` (beta = 1: unchanged)."""
    if not 0 <= beta <= 1:
        raise ValueError(f"`beta` must be between 0 and 1; received {beta}.")
    w = np.asarray(w, dtype=np.float64)
    return (1 - beta) * np.abs(w).mean() + beta * w


def _binary_clf(x: sp.csr_matrix, y01: np.ndarray, C: float, clf: str, max_iter: int, seed: int
                ) -> tuple[np.ndarray, float]:
    """Weights and bias of one binary linear classifier on `x` (scikit-learn's liblinear)."""
    if clf == "logreg":
        from sklearn.linear_model import LogisticRegression
        m = LogisticRegression(C=C, solver="liblinear", dual=x.shape[1] > x.shape[0], max_iter=max_iter,
                               random_state=seed)
    elif clf == "svm":  # Wang & Manning: L2-regularised L2-loss (squared hinge) SVM
        from sklearn.svm import LinearSVC
        m = LinearSVC(C=C, loss="squared_hinge", penalty="l2", dual=x.shape[1] > x.shape[0], max_iter=max_iter,
                      random_state=seed)
    else:
        raise ValueError(f"`clf` must be 'logreg' or 'svm'; received {clf!r}.")
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(x, y01)
    return np.asarray(m.coef_, dtype=np.float64).ravel(), float(np.asarray(m.intercept_).ravel()[0])


def fit_linear_weights(x: Any, y: Any, n_classes: int, method: str = "nbsvm", *, C: float = 1.0,
                       beta: float | None = 0.25, alpha: float = 1.0, binary: bool = True, clf: str = "logreg",
                       max_iter: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit `method` on counts `x` and class indices `y`; the result scores texts as `x_hat @ W.T + b`.

    Args:
        x: term-document counts (n_docs, n_features).
        y: class indices 0..n_classes-1.
        n_classes: number of classes (>= 2).
        method: `"nb"` (multinomial naive Bayes), `"logreg"` (logistic regression), `"svm"` (L2-loss linear
            SVM, the paper's baseline; scores are margins), `"nbsvm"`.
        C: inverse regularisation strength of logreg / the classifier inside NBSVM.
        beta: NBSVM's interpolation (0.25 as Wang & Manning); None: no interpolation.
        alpha: smoothing of the NB counts.
        binary: features are `1{x > 0}` (as in the paper) rather than counts.
        clf: the classifier inside NBSVM: `"logreg"` (the course) or `"svm"` (the paper's L2-loss SVM).

    Returns:
        `(W (n_classes, n_features), b (n_classes,))`, float64, to apply to the (binarised) features.
        Two classes give logits `(0, s)`, so a softmax is the sigmoid of the binary score `s`.
    """
    if method not in ("nb", "logreg", "svm", "nbsvm"):
        raise ValueError(f"`method` must be one of nb, logreg, svm, nbsvm; received {method!r}.")
    if not (isinstance(C, (int, float)) and C > 0 and math.isfinite(C)):
        raise ValueError(f"`C` must be a positive number; received {C!r}.")
    x, y = _check_xy(x, y)
    y = y.astype(np.int64)
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"the training labels hold a single class ({present.tolist()}); a classifier needs at "
                         "least two.")
    xf = binarize(x) if binary else sp.csr_matrix(x, dtype=np.float32)
    V = x.shape[1]
    if method == "nb":
        log_theta, log_prior = nb_log_probs(x, y, n_classes, alpha=alpha, binary=binary)
        return log_theta, np.where(np.isfinite(log_prior), log_prior, -1e4)
    W, b = np.zeros((n_classes, V)), np.zeros(n_classes)
    if method == "logreg" and n_classes > 2:
        from sklearn.linear_model import LogisticRegression
        m = LogisticRegression(C=C, max_iter=max_iter, random_state=seed).fit(xf, y)
        W[m.classes_], b[m.classes_] = m.coef_, m.intercept_
        b[np.setdiff1d(np.arange(n_classes), m.classes_)] = -1e4
        return W, b
    targets = [1] if n_classes == 2 else list(range(n_classes))
    for c in targets:
        y01 = (y == c).astype(np.int64)
        if not y01.any():  # a class absent from these rows: never predicted
            b[c] = -1e4
            continue
        if method in ("logreg", "svm"):
            w, bc = _binary_clf(xf, y01, C, method, max_iter, seed)
        else:
            r = nb_log_count_ratio(x, y01, alpha=alpha, binary=binary, positive=1)
            w, bc = _binary_clf(sp.csr_matrix(xf.multiply(r)), y01, C, clf, max_iter, seed)
            if beta is not None:
                w = interpolate(w, beta)
            w = w * r  # fold r in: the score on x_hat is (w' * r) . x_hat + b
        W[c], b[c] = w, bc
    return W, b


def linear_scores(x: Any, W: np.ndarray, b: np.ndarray, binary: bool = True) -> np.ndarray:
    """The logits `x_hat @ W.T + b` (n_docs, n_classes) of `fit_linear_weights`' result."""
    xf = binarize(x) if binary else sp.csr_matrix(x, dtype=np.float64)
    return np.asarray(xf @ W.T) + b


def softmax_np(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of a float array."""
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)
