"""Interpretation of a trained tabular model: permutation importance and learned embeddings.

Functions of a `TabularLearner` (also available as its methods):

* `feature_importance`: how much worse the model gets when one input column is shuffled (the
  column's link with the target is broken, its distribution kept). Works on the encoded tensors, so
  each repeat costs one vectorised pass over the rows.
* `embeddings` / `embed_features`: the learned vectors of a categorical column as a DataFrame keyed
  by category, and a table with every categorical column replaced by its vectors (input for a random
  forest or gradient boosting).
* `plot_feature_importance` / `plot_embedding`: bar chart, and a 2-D PCA projection of one column's
  embeddings.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd
import torch

from ..metrics import Metric, to_metric
from ..plotting import finish_figure, pyplot
from .transforms import N_RESERVED, TabularDataError

if TYPE_CHECKING:  # pragma: no cover
    from .learner import TabularLearner

__all__ = ["feature_importance", "plot_feature_importance", "embeddings", "embed_features", "plot_embedding"]


def _score(learn: "TabularLearner", x_cat: torch.Tensor, x_cont: torch.Tensor, y: torch.Tensor,
           metric: Metric | None, bs: int) -> float:
    """Mean loss (metric None) or the metric's value over all rows, in chunks of `bs`."""
    total, n = 0.0, 0
    if metric is not None:
        metric.reset()
    for i in range(0, len(y), bs):
        out = learn.model(x_cat[i:i + bs], x_cont[i:i + bs])
        yb = y[i:i + bs]
        if metric is None:
            total += float(learn.loss_func(out, yb)) * len(yb)
            n += len(yb)
        else:
            metric.accumulate(out, yb)
    return total / max(n, 1) if metric is None else metric.value


def feature_importance(learn: "TabularLearner", df: pd.DataFrame | None = None,
                       metric: Metric | Callable[..., Any] | None = None, greater_is_better: bool = True,
                       n_repeats: int = 1, seed: int = 0, bs: int = 4096) -> pd.DataFrame:
    """Permutation importance of every input column.

    Each original column is shuffled across the rows (a continuous column together with its
    `<col>_na` flag) and the model re-scored; importance is how much worse the score gets.

    Args:
        learn: a trained TabularLearner.
        df: labelled rows to score on (default: the validation set).
        metric: score to use (a deepfit Metric or `f(pred, targ)`); default the loss.
        greater_is_better: direction of `metric` (ignored for the loss, where lower is better).
        n_repeats: shuffles per column (the mean and std over repeats are reported).
        seed: seed of the shuffles.
        bs: rows per forward pass.

    Returns:
        DataFrame with columns `feature, importance, importance_std, baseline, score`, sorted by
        importance (most important first).
    """
    dls = learn.dls
    if df is not None:
        dl = dls.test_dl(df, with_labels=True)
    else:
        dl = dls.valid
        if dl is None:
            raise TabularDataError("No validation rows to compute importance on: pass a labelled `df`.")
    x_cat, x_cont, y = dl.tensors[0], dl.tensors[1], dl.tensors[2]
    m = learn.prepare_metric(to_metric(metric)) if metric is not None else None  # in the target's units
    sign = (1.0 if greater_is_better else -1.0) if m is not None else -1.0
    gen = np.random.default_rng(seed)
    cats, conts = dls.cat_names, dls.cont_names
    na_of = {c: f"{c}_na" for c in conts if f"{c}_na" in cats}
    groups: list[tuple[str, list[int], list[int]]] = []
    for j, c in enumerate(conts):
        groups.append((c, [cats.index(na_of[c])] if c in na_of else [], [j]))
    for j, c in enumerate(cats):
        if c not in na_of.values():
            groups.append((c, [j], []))
    learn.model.eval()
    rows = []
    with torch.no_grad():
        base = _score(learn, x_cat, x_cont, y, m, bs)
        for name, jc, jn in groups:
            scores = []
            for _ in range(n_repeats):
                perm = torch.from_numpy(gen.permutation(len(y))).to(y.device)
                xc, xn = x_cat, x_cont
                if jc:
                    xc = x_cat.clone()
                    xc[:, jc] = x_cat[perm][:, jc]
                if jn:
                    xn = x_cont.clone()
                    xn[:, jn] = x_cont[perm][:, jn]
                scores.append(_score(learn, xc, xn, y, m, bs))
            s = np.array(scores)
            imp = sign * (base - s)
            rows.append({"feature": name, "importance": float(imp.mean()), "importance_std": float(imp.std()),
                         "baseline": base, "score": float(s.mean())})
    res = pd.DataFrame(rows).sort_values("importance", ascending=False, kind="stable")
    return res.reset_index(drop=True)


def plot_feature_importance(fi: pd.DataFrame, top: int | None = 20, ax: Any = None,
                            fname: str | Path | None = None) -> Any:
    """Horizontal bar chart of a `feature_importance` table (most important on top)."""
    plt = pyplot()
    d = fi.head(top) if top else fi
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.35 * len(d) + 1.3))
    ax.barh(d["feature"][::-1], d["importance"][::-1], xerr=d["importance_std"][::-1])
    # two short lines: one long line is wider than a small figure and was cut off at its edge
    ax.set_xlabel("importance: how much worse the model does\nwhen the column is shuffled")
    ax.set_title("Permutation feature importance")
    if fname is not None:
        finish_figure(ax.figure, fname, dpi=None, close=False)
    return ax


def _emb_index(learn: "TabularLearner", col: str) -> int:
    cats = learn.dls.cat_names
    if col not in cats:
        raise KeyError(f"{col!r} is not a categorical column; categorical columns: {cats}.")
    return cats.index(col)


def embeddings(learn: "TabularLearner", col: str) -> pd.DataFrame:
    """The learned vectors of categorical column `col`: one row per code, indexed by category
    (`#na#` and `#unk#` first), columns `<col>_emb0, <col>_emb1, ...`."""
    j = _emb_index(learn, col)
    w = learn.model.embeds[j].weight.detach().float().cpu().numpy()
    index = pd.Index(learn.dls.vocab(col), dtype=object, name=col)
    return pd.DataFrame(w, index=index, columns=[f"{col}_emb{k}" for k in range(w.shape[1])])


def embed_features(learn: "TabularLearner", df: pd.DataFrame, cols: list[str] | None = None) -> pd.DataFrame:
    """A copy of `df` with each categorical column (default all original ones) replaced by its
    learned embedding columns; missing and unseen categories get the `#na#` / `#unk#` vectors.
    Continuous columns are left as they are (ready for a random forest or gradient boosting)."""
    proc = learn.dls.proc
    cols = list(proc.raw_cat_names) if cols is None else list(cols)
    out = df.copy()
    for c in cols:
        emb = embeddings(learn, c)
        codes = proc.categorify.encode_column(c, df[c])
        vals = pd.DataFrame(emb.to_numpy()[codes], index=df.index, columns=emb.columns)
        pos = out.columns.get_loc(c)
        out = out.drop(columns=[c])
        for k, name in enumerate(vals.columns):
            out.insert(pos + k, name, vals[name])
    return out


def plot_embedding(learn: "TabularLearner", col: str, max_labels: int = 60, ax: Any = None,
                   fname: str | Path | None = None) -> Any:
    """Scatter plot of the training categories of `col` on the first two principal components of
    their embeddings (one axis when the embedding width is 1), labelled by category."""
    plt = pyplot()
    emb = embeddings(learn, col).iloc[N_RESERVED:]
    x = emb.to_numpy(dtype=np.float64)
    x = x - x.mean(0)
    if x.shape[1] >= 2 and len(x) >= 2:
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        xy = x @ vt[:2].T
        var = s ** 2 / max((s ** 2).sum(), 1e-30)
        labels = (f"PC1 ({var[0]:.0%})", f"PC2 ({var[1]:.0%})")
    else:
        xy = np.concatenate([x[:, :1], np.zeros((len(x), 1))], 1)
        labels = ("embedding", "")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(xy[:, 0], xy[:, 1], s=12)
    for (px, py), name in list(zip(xy, emb.index))[:max_labels]:
        ax.annotate(str(name), (px, py), fontsize=8)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(f"Embeddings of {col!r}")
    if fname is not None:
        finish_figure(ax.figure, fname, dpi=None, close=False)
    return ax
