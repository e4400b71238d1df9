"""Points coloured by cluster with the cluster centres: the data's own axes for 2-D points, the first
two principal components for more (and the value against 0 for 1-D points)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import finish_figure, pyplot
from .checks import ClusterInputError, check_points

__all__ = ["plot_clusters", "pca_2d"]


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first two principal axes of `X` (n, d), d >= 2: (mean (d,), axes (d, 2), share of the
    variance explained by each (2,)). From the eigenvectors of the d x d covariance, so cheap for
    millions of rows."""
    mean = X.mean(0)
    Xc = X - mean
    cov = Xc.T @ Xc / max(len(X) - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    top = np.argsort(vals)[::-1][:2]
    total = vals.clip(min=0).sum()
    share = vals[top].clip(min=0) / total if total > 0 else np.zeros(2)
    return mean, vecs[:, top], share


def plot_clusters(X: Any, labels: Any, centers: Any = None, fname: str | Path | None = None, ax: Any = None,
                  title: str | None = None, max_points: int | None = 50_000, seed: int = 0,
                  point_size: float | None = None) -> Any:
    """Scatter the points coloured by cluster, with the centres as large crosses.

    Args:
        X: points (n_samples, n_features). 2 features: plotted as they are; more: projected on their
            first two principal components (axes labelled with the variance they explain); 1: the
            value on the x axis.
        labels: (n_samples,) cluster of each point; -1 (no cluster) is drawn in grey.
        centers: (n_clusters, n_features) centres, projected like the points; None: not drawn.
        fname: save the figure there (PNG, ...) and close it.
        ax: draw into this matplotlib Axes instead of a new figure.
        title: the axes' title (default: "<k> clusters, <n> points").
        max_points: draw at most this many points, drawn at random with `seed` (None: all).
        seed: seed of that sample.
        point_size: marker size (default: smaller for more points).

    Returns:
        The matplotlib Figure.

    Example:
        >>> ms = MeanShift(bandwidth=2.5).fit(X)
        >>> plot_clusters(X, ms.labels_, ms.cluster_centers_, fname="clusters.png")
    """
    X = check_points(X)
    labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
    if len(labels) != len(X):
        raise ClusterInputError(f"`labels` has {len(labels)} entries but X has {len(X)} rows; "
                                f"give one label per point.")
    C = None if centers is None else check_points(centers, name="centers", n_features=X.shape[1])
    d = X.shape[1]
    if d == 2:
        P, PC, xlabel, ylabel = X, C, "x0", "x1"
    elif d == 1:
        P = np.column_stack([X[:, 0], np.zeros(len(X))])
        PC = None if C is None else np.column_stack([C[:, 0], np.zeros(len(C))])
        xlabel, ylabel = "x0", ""
    else:
        mean, axes, share = pca_2d(X)
        P = (X - mean) @ axes
        PC = None if C is None else (C - mean) @ axes
        xlabel, ylabel = f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%} of variance)"
    if max_points is not None and len(P) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(len(P), max_points, replace=False))
        P, labels = P[pick], labels[pick]
    plt = pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 6))
    else:
        fig = ax.figure
    size = point_size if point_size is not None else float(np.clip(3000 / max(len(P), 1), 0.5, 20))
    cmap = plt.get_cmap("tab10" if labels.max(initial=-1) < 10 else "tab20")
    noise = labels < 0
    if noise.any():
        ax.scatter(P[noise, 0], P[noise, 1], s=size, c="lightgrey", label="no cluster")
    ok = ~noise
    ax.scatter(P[ok, 0], P[ok, 1], s=size, c=cmap(labels[ok] % cmap.N), alpha=0.7, linewidths=0)
    if PC is not None:
        ax.scatter(PC[:, 0], PC[:, 1], marker="x", s=120, c="black", linewidths=2.5, label="centres")
        ax.scatter(PC[:, 0], PC[:, 1], marker="x", s=80, c="white", linewidths=1.0)
    n_clusters = len(C) if C is not None else len(np.unique(labels[ok]))
    ax.set_title(title if title is not None else f"{n_clusters} clusters, {len(X):,} points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if noise.any() or PC is not None:
        ax.legend(loc="best")
    return finish_figure(fig, fname)
