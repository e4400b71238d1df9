"""Interpretation of a text classifier: the confusion matrix and the most confident mistakes, with their text.

Plain functions of predicted probabilities, targets and texts, so every text classifier (the RNN of
`classifier.py`, the bag-of-words models of `bow.py`) and the command line's report use the same code.
`TextClassificationInterpretation.from_learner` gathers them for a learner whose DataLoaders keep their
texts (`TextClassifierDataLoaders`).

Example:
    >>> interp = TextClassificationInterpretation.from_learner(learn)          # doctest: +SKIP
    >>> interp.confusion_matrix(), interp.most_confident_mistakes(5)            # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

__all__ = ["confusion_matrix", "most_confident_mistakes", "most_confused", "TextClassificationInterpretation"]


def _np(x: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def confusion_matrix(targets: Any, preds: Any, n_classes: int) -> np.ndarray:
    """Counts `cm[i, j]` of the rows of actual class i predicted as class j (an int64 array).

    Args:
        targets: class indices, (N,).
        preds: predicted class indices (N,), or probabilities (N, n_classes) (their argmax is taken).
        n_classes: number of classes.

    Raises:
        ValueError: different lengths, or a class index outside 0..n_classes-1.
    """
    t = _np(targets).reshape(-1).astype(np.int64)
    p = _np(preds)
    p = (p.argmax(-1) if p.ndim == 2 else p.reshape(-1)).astype(np.int64)
    if len(t) != len(p):
        raise ValueError(f"confusion_matrix got {len(t)} targets but {len(p)} predictions.")
    for name, v in (("targets", t), ("preds", p)):
        if len(v) and (v.min() < 0 or v.max() >= n_classes):
            raise ValueError(f"`{name}` holds class index {int(v.min() if v.min() < 0 else v.max())}, outside "
                             f"0..{n_classes - 1} for n_classes={n_classes}.")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def most_confused(cm: np.ndarray, classes: Sequence[Any], min_count: int = 1) -> list[tuple[Any, Any, int]]:
    """The off-diagonal cells of a confusion matrix as `(actual, predicted, count)`, most frequent first."""
    cm = _np(cm)
    out = [(classes[i], classes[j], int(cm[i, j])) for i in range(len(cm)) for j in range(len(cm))
           if i != j and cm[i, j] >= min_count]
    return sorted(out, key=lambda r: -r[2])


def most_confident_mistakes(probs: Any, targets: Any, texts: Sequence[str], classes: Sequence[Any],
                            k: int | None = 10) -> pd.DataFrame:
    """The wrongly classified texts the model was surest about.

    Args:
        probs: class probabilities, (N, n_classes).
        targets: actual class indices, (N,).
        texts: the N texts, in the same order.
        classes: the class labels (index -> label).
        k: how many to return (None: every mistake).

    Returns:
        A DataFrame sorted by `confidence` (the probability given to the predicted class, highest
        first) with columns `row` (position in `texts`), `text`, `actual`, `predicted`, `confidence`,
        `prob_actual` and `loss` (-log prob_actual).
    """
    p = _np(probs, np.float64)
    t = _np(targets).reshape(-1).astype(np.int64)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"`probs` must have shape (N, {len(classes)}) for {len(classes)} classes; received "
                         f"{p.shape}.")
    if not len(p) == len(t) == len(texts):
        raise ValueError(f"{len(p)} probability rows, {len(t)} targets and {len(texts)} texts: they must match.")
    pred = p.argmax(1)
    wrong = np.nonzero(pred != t)[0]
    conf = p[wrong, pred[wrong]]
    order = wrong[np.argsort(-conf, kind="stable")]
    if k is not None:
        order = order[:k]
    pa = p[order, t[order]]
    return pd.DataFrame({
        "row": order.astype(np.int64),
        "text": [texts[i] for i in order],
        "actual": [classes[i] for i in t[order]],
        "predicted": [classes[i] for i in pred[order]],
        "confidence": p[order, pred[order]],
        "prob_actual": pa,
        "loss": -np.log(np.clip(pa, 1e-300, None)),
    })


class TextClassificationInterpretation:
    """Predictions of a classifier on labelled texts, for the confusion matrix and the worst mistakes.

    Args:
        probs: class probabilities (N, n_classes).
        targets: actual class indices (N,).
        texts: the N texts.
        classes: the labels.
    """

    def __init__(self, probs: Any, targets: Any, texts: Sequence[str], classes: Sequence[Any]) -> None:
        self.probs = _np(probs, np.float64)
        self.targets = _np(targets).reshape(-1).astype(np.int64)
        self.texts, self.classes = list(texts), list(classes)
        if self.probs.ndim != 2 or self.probs.shape[1] != len(self.classes):
            raise ValueError(f"`probs` must have shape (N, {len(self.classes)}); received {self.probs.shape}.")
        if not len(self.probs) == len(self.targets) == len(self.texts):
            raise ValueError(f"{len(self.probs)} probability rows, {len(self.targets)} targets and "
                             f"{len(self.texts)} texts: they must match.")

    @classmethod
    def from_learner(cls, learn: Any, dl: Any = None) -> "TextClassificationInterpretation":
        """Predict on `dl` (default the validation loader) of a learner whose loader keeps its texts
        (`dl.texts`) and whose DataLoaders know the `classes`; rows come back in the loader's row order."""
        dl = dl if dl is not None else learn.dls.valid
        if dl is None:
            raise ValueError("No validation data to interpret: pass `dl=` (e.g. dls.test_dl(texts, labels)).")
        texts = getattr(dl, "texts", None)
        if texts is None:
            raise TypeError(f"{type(dl).__name__} does not keep its texts; build the interpretation with "
                            "TextClassificationInterpretation(probs, targets, texts, classes).")
        probs, targets = learn.get_preds(dl=dl)[:2]
        if targets is None:
            raise ValueError("The loader has no labels: interpretation needs labelled texts.")
        return cls(probs, targets, texts, learn.dls.classes)

    @property
    def preds(self) -> np.ndarray:
        """Predicted class indices."""
        return self.probs.argmax(1)

    @property
    def accuracy(self) -> float:
        """Share of rows predicted right."""
        return float((self.preds == self.targets).mean()) if len(self.targets) else float("nan")

    def confusion_matrix(self) -> np.ndarray:
        """`cm[i, j]`: rows of class i predicted as class j."""
        return confusion_matrix(self.targets, self.preds, len(self.classes))

    def confusion_table(self) -> pd.DataFrame:
        """The confusion matrix labelled by class (rows: actual, columns: predicted)."""
        idx = pd.Index([str(c) for c in self.classes], name="actual")
        cols = pd.Index([str(c) for c in self.classes], name="predicted")
        return pd.DataFrame(self.confusion_matrix(), index=idx, columns=cols)

    def most_confused(self, min_count: int = 1) -> list[tuple[Any, Any, int]]:
        """`(actual, predicted, count)` of the most frequent confusions."""
        return most_confused(self.confusion_matrix(), self.classes, min_count)

    def most_confident_mistakes(self, k: int | None = 10) -> pd.DataFrame:
        """See `most_confident_mistakes`."""
        return most_confident_mistakes(self.probs, self.targets, self.texts, self.classes, k)
