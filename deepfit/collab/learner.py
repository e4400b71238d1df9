"""`collab_learner` and `CollabLearner`: a Learner with the interpretation tools of recommenders.

Every method takes and returns raw ids (ints, strings, titles) and returns pandas DataFrames, so
results read directly: biases, factors, PCA of item factors and its plot, recommendations, similar items.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..callbacks.core import Callback
from ..data.core import DataLoader
from ..learner import Learner
from ..losses import MSELoss
from ..optim import Adam
from ..plotting import finish_figure, pyplot
from .data import CollabDataLoaders
from .models import EmbeddingDotBias, EmbeddingNN

__all__ = ["CollabLearner", "collab_learner"]


class CollabLearner(Learner):
    """A `Learner` on `CollabDataLoaders` whose model is an `EmbeddingDotBias` or `EmbeddingNN`, with
    interpretation methods that speak in raw ids. Build it with `collab_learner`."""

    dls: CollabDataLoaders

    def get_preds(self, dl: DataLoader | pd.DataFrame | None = None, with_loss: bool = False,
                  with_input: bool = False, activation: bool = True) -> tuple[torch.Tensor, ...]:
        """Predictions and targets (None without a rating column) for a DataLoader, or for a raw
        DataFrame of (user, item) rows encoded like the training ids (`learn.get_preds(test_df)`);
        default the validation set. Use `learn.dls.decode_preds(preds, test_df)` for a table."""
        if isinstance(dl, pd.DataFrame):
            dl = self.dls.test_dl(dl)
        return super().get_preds(dl, with_loss=with_loss, with_input=with_input, activation=activation)

    # ---- helpers ------------------------------------------------------------------------------------
    def _name(self, is_item: bool) -> str:
        return self.dls.item_name if is_item else self.dls.user_name

    def _indices(self, ids: Any, is_item: bool) -> torch.Tensor:
        idx = self.dls.encode_ids(ids, self._name(is_item), unknown="error")
        return torch.from_numpy(idx).to(self.dls.device)

    def _among(self, among: int | None, is_item: bool) -> np.ndarray:
        """Indices of the `among` most-rated ids (all ids, in index order, when None)."""
        counts = self.dls.counts[self._name(is_item)].cpu()
        n = len(counts)
        if among is None or among >= n:
            return np.arange(n)
        if among < 1:
            raise ValueError(f"`among` must be a positive number of ids; received among={among!r}.")
        order = torch.argsort(counts, descending=True, stable=True)[:among]
        return np.sort(order.numpy())

    def _dot_model(self, what: str) -> EmbeddingDotBias:
        if not isinstance(self.model, EmbeddingDotBias):
            raise TypeError(f"{what} needs an EmbeddingDotBias model (biases); this learner has a "
                            f"{type(self.model).__name__}. Use collab_learner(..., use_nn=False).")
        return self.model

    def _all_weights(self, is_item: bool) -> torch.Tensor:
        m = self.model
        if isinstance(m, EmbeddingDotBias):
            return (m.item_factors if is_item else m.user_factors).detach()
        if isinstance(m, EmbeddingNN):
            return (m.item_emb.weight if is_item else m.user_emb.weight).detach()
        raise TypeError(f"Factors need an EmbeddingDotBias or EmbeddingNN model; this is {type(m).__name__}.")

    def _ids(self, idx: np.ndarray | torch.Tensor, is_item: bool) -> list[Any]:
        vocab = self.dls.classes[self._name(is_item)]
        return [vocab[int(k)] for k in np.asarray(idx.cpu() if isinstance(idx, torch.Tensor) else idx)]

    # ---- biases and factors -------------------------------------------------------------------------
    def bias(self, ids: Any, is_item: bool = True) -> torch.Tensor:
        """The learned biases of raw `ids` (items, or users with ``is_item=False``), shape (n,)."""
        m = self._dot_model("bias()")
        b = m.item_bias if is_item else m.user_bias
        return b.detach()[self._indices(ids, is_item)]

    def weight(self, ids: Any, is_item: bool = True) -> torch.Tensor:
        """The latent factors (or embeddings, for EmbeddingNN) of raw `ids`, shape (n, n_factors)."""
        return self._all_weights(is_item)[self._indices(ids, is_item)]

    def _biased(self, n: int, is_item: bool, among: int | None, highest: bool) -> pd.DataFrame:
        m = self._dot_model("most_biased()/least_biased()")
        cand = self._among(among, is_item)
        b = (m.item_bias if is_item else m.user_bias).detach().cpu()[torch.from_numpy(cand)]
        order = torch.argsort(b, descending=highest, stable=True)[:n].numpy()
        return pd.DataFrame({self._name(is_item): self._ids(cand[order], is_item), "bias": b[order].numpy()})

    def most_biased(self, n: int = 10, is_item: bool = True, among: int | None = None) -> pd.DataFrame:
        """The `n` ids with the highest bias (liked beyond what their factors explain), highest first;
        `among` restricts the ranking to the that many most-rated ids."""
        return self._biased(n, is_item, among, highest=True)

    def least_biased(self, n: int = 10, is_item: bool = True, among: int | None = None) -> pd.DataFrame:
        """The `n` ids with the lowest bias, lowest first (see `most_biased`)."""
        return self._biased(n, is_item, among, highest=False)

    # ---- PCA ----------------------------------------------------------------------------------------
    def pca(self, k: int = 3, is_item: bool = True, among: int | None = None) -> pd.DataFrame:
        """Principal components of the (centred) factors: a DataFrame with the id column and ``pc1 ..
        pck`` (scores, largest variance first). Each component's sign is fixed so that its largest
        loading is positive, so results repeat. `among` keeps the that many most-rated ids."""
        cand = self._among(among, is_item)
        w = self._all_weights(is_item).cpu().double()[torch.from_numpy(cand)]
        if not 1 <= k <= min(w.shape):
            raise ValueError(f"`k` must be between 1 and {min(w.shape)} here; received k={k!r}.")
        wc = w - w.mean(0)
        _, s, vh = torch.linalg.svd(wc, full_matrices=False)
        vh = vh[:k]
        signs = torch.sign(vh.gather(1, vh.abs().argmax(1, keepdim=True)))
        scores = wc @ (vh * signs).T
        out = pd.DataFrame({self._name(is_item): self._ids(cand, is_item)})
        for j in range(k):
            out[f"pc{j + 1}"] = scores[:, j].numpy()
        return out

    def plot_pca(self, x: int = 1, y: int = 2, n: int = 50, among: int | None = 1000, is_item: bool = True,
                 fname: str | Path | None = None) -> Any:
        """Scatter `n` ids (spread along the components) on principal components `x` and `y` (1-based),
        each labelled with its id or title. Saved to `fname` when given; returns the figure."""
        k = max(x, y)
        comp = self.pca(k, is_item=is_item, among=among)
        cx, cy = comp[f"pc{x}"].to_numpy(), comp[f"pc{y}"].to_numpy()
        # show the ids at the extremes of both axes, then fill with the most rated
        pick: list[int] = []
        per = max(1, n // 4)
        for v in (cx, cy):
            order = np.argsort(v)
            pick += order[:per].tolist() + order[-per:].tolist()
        pick = list(dict.fromkeys(pick))[:n]
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(10, 10))
        ax.scatter(cx[pick], cy[pick], s=8)
        names = comp.iloc[:, 0].to_numpy()
        for j in pick:
            ax.annotate(str(names[j]), (cx[j], cy[j]), fontsize=8, alpha=0.8)
        ax.set_xlabel(f"PC{x}")
        ax.set_ylabel(f"PC{y}")
        ax.set_title(f"{'Item' if is_item else 'User'} factors: PC{y} against PC{x} "
                     f"({len(pick)} of {len(comp)} {self._name(is_item)!r} values)")
        return finish_figure(fig, fname)

    # ---- recommendations ----------------------------------------------------------------------------
    def recommend(self, user: Any, n: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """The `n` items with the highest predicted rating for raw id `user`, skipping the items that
        user rated in the training data (train and valid rows) unless ``exclude_seen=False``."""
        u = int(self._indices([user], is_item=False)[0])
        n_items = self.dls.n_items
        dev = self.dls.device
        x = torch.stack([torch.full((n_items,), u, dtype=torch.long, device=dev),
                         torch.arange(n_items, device=dev)], dim=1)
        self.model.eval()
        with torch.no_grad():
            scores = self.model(x).float().cpu()
        if exclude_seen and len(self.dls.seen):
            seen = self.dls.seen.cpu()
            scores[seen[seen[:, 0] == u, 1]] = -float("inf")
        n_ok = int(torch.isfinite(scores).sum())
        top = torch.argsort(scores, descending=True, stable=True)[:min(n, n_ok)]
        return pd.DataFrame({self.dls.item_name: self._ids(top, True), "prediction": scores[top].numpy()})

    def similar_items(self, item: Any, n: int = 10) -> pd.DataFrame:
        """The `n` items whose factors have the highest cosine similarity with raw id `item`'s."""
        i = int(self._indices([item], is_item=True)[0])
        w = self._all_weights(True).float()
        sim = torch.nn.functional.cosine_similarity(w, w[i:i + 1], dim=1).cpu()
        sim[i] = -float("inf")
        top = torch.argsort(sim, descending=True, stable=True)[:min(n, len(sim) - 1)]
        return pd.DataFrame({self.dls.item_name: self._ids(top, True), "similarity": sim[top].numpy()})


def collab_learner(dls: CollabDataLoaders, n_factors: int = 50, y_range: Sequence[float] | None = None,
                   use_nn: bool = False, layers: Sequence[int] = (100,), ps: float | Sequence[float] = 0.0,
                   embed_p: float = 0.0, emb_szs: dict[str, int] | None = None, init_std: float = 0.01,
                   loss_func: nn.Module | None = None, opt_func: Callable[..., torch.optim.Optimizer] = Adam,
                   lr: float = 5e-3, wd: float | None = None, metrics: Sequence[Any] | Any = (),
                   cbs: Sequence[Callback] | Callback = (), path: str | Path = ".", progress: bool = True
                   ) -> CollabLearner:
    """A `CollabLearner` for `dls` with an `EmbeddingDotBias` (default) or an `EmbeddingNN` (``use_nn``).

    Args:
        dls: `CollabDataLoaders`.
        n_factors: latent factors of the dot-product model.
        y_range: (low, high) of a scaled sigmoid on the output (e.g. (0, 5.5) for ratings 1-5;
            `dls.y_range` is a suggestion); None for a linear output.
        use_nn: use `EmbeddingNN` (embeddings through an MLP with `layers`, dropout `ps`, `embed_p`).
        emb_szs: for `EmbeddingNN`, ``{user_name: width, item_name: width}`` (default: a size rule).
        init_std: std of the truncated-normal initialisation of factors / embeddings (biases start at 0).
        loss_func: default `MSELoss`.
        opt_func, lr, metrics, cbs, path, progress: as for `Learner`.
        wd: weight decay on every parameter (decoupled, AdamW-style, with deepfit's Adam). Default (None):
            0.1 for the dot-product model, which keeps the factors small enough to generalise on
            MovieLens-sized data, and 0.01 for `EmbeddingNN`, whose MLP underfits under 0.1.

    Example:
        >>> learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
        >>> learn.fit_one_cycle(5, 5e-3, wd=0.1)
    """
    if not isinstance(dls, CollabDataLoaders):
        raise TypeError(f"collab_learner needs CollabDataLoaders; received {type(dls).__name__}.")
    if use_nn:
        szs = emb_szs or {}
        unknown_keys = set(szs) - {dls.user_name, dls.item_name}
        if unknown_keys:
            raise KeyError(f"`emb_szs` keys must be {dls.user_name!r} and/or {dls.item_name!r}; "
                           f"received {sorted(unknown_keys)}.")
        model: nn.Module = EmbeddingNN(dls.n_users, dls.n_items, user_sz=szs.get(dls.user_name),
                                       item_sz=szs.get(dls.item_name), layers=layers, ps=ps, embed_p=embed_p,
                                       y_range=y_range, init_std=init_std, mean_rating=dls.rating_mean)
    else:
        model = EmbeddingDotBias(dls.n_users, dls.n_items, n_factors=n_factors, y_range=y_range, init_std=init_std,
                                 mean_rating=dls.rating_mean)
    if wd is None:
        wd = 0.01 if use_nn else 0.1
    return CollabLearner(dls, model, loss_func=loss_func if loss_func is not None else MSELoss(),
                         opt_func=opt_func, lr=lr, wd=wd, metrics=metrics, cbs=cbs, path=path, progress=progress)
