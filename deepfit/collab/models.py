"""Collaborative-filtering models: factor dot product plus biases, and embeddings through an MLP.

Both take one int64 tensor ``x`` of shape (bs, 2) holding ``[user_index, item_index]`` and return
predicted ratings of shape (bs,). In eval mode an index of -1 marks an id unseen in training (see
`CollabDataLoaders` with ``unknown='fallback'``) and gets a fallback prediction.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..export import register_model
from ..layers import trunc_normal_

__all__ = ["EmbeddingDotBias", "EmbeddingNN", "emb_sz_rule"]


def _check_y_range(y_range: Sequence[float] | None) -> tuple[float, float] | None:
    if y_range is None:
        return None
    if len(y_range) != 2 or not float(y_range[0]) < float(y_range[1]):
        raise ValueError(f"`y_range` must be (low, high) with low < high; received y_range={y_range!r}.")
    return float(y_range[0]), float(y_range[1])


def _check_n(name: str, n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"`{name}` must be a positive integer; received {name}={n!r}.")


class _CollabModel(nn.Module):
    """Shared plumbing: the output squashing and the inverse mapping used by the fallback."""

    y_range: tuple[float, float] | None
    mean_rating: torch.Tensor

    def _squash(self, r: torch.Tensor) -> torch.Tensor:
        if self.y_range is None:
            return r
        lo, hi = self.y_range
        return torch.sigmoid(r) * (hi - lo) + lo

    def _raw_mean(self) -> torch.Tensor:
        """The global mean rating in the model's raw (pre-sigmoid) space."""
        m = self.mean_rating
        if self.y_range is None:
            return m
        lo, hi = self.y_range
        p = ((m - lo) / (hi - lo)).clamp(1e-4, 1 - 1e-4)
        return torch.log(p) - torch.log1p(-p)


@register_model
class EmbeddingDotBias(_CollabModel):
    """Matrix factorisation: ``rating = sigmoid_range(u . i + b_u + b_i)``.

    Each side is ONE embedding table of width ``n_factors + 1``: the factors, then the bias in the last
    column, so a forward pass is two lookups, a row-wise dot product and two additions. Factors start
    from a truncated normal with std `init_std` (0.01), biases at zero.

    Args:
        n_users, n_items: numbers of distinct users and items.
        n_factors: latent factors per user / item.
        y_range: (low, high) squashes the output with a scaled sigmoid into that open interval; None
            leaves it linear.
        init_std: std of the factors' initialisation.
        mean_rating: the global mean rating, used only for ids unseen in training (fallback); stored
            as a buffer so it travels with the weights.

    Fallback (eval mode, index -1): an unknown item for a known user predicts the global mean plus the
    user's bias measured from the average user bias (in raw space, then squashed); likewise for an
    unknown user; both unknown gives the global mean.

    Example:
        >>> model = EmbeddingDotBias(943, 1682, n_factors=50, y_range=(0, 5.5))
        >>> model(torch.tensor([[0, 10], [5, 3]])).shape
        torch.Size([2])
    """

    def __init__(self, n_users: int, n_items: int, n_factors: int = 50, y_range: Sequence[float] | None = None,
                 init_std: float = 0.01, mean_rating: float | None = None) -> None:
        super().__init__()
        for name, v in (("n_users", n_users), ("n_items", n_items), ("n_factors", n_factors)):
            _check_n(name, v)
        self.n_users, self.n_items, self.n_factors, self.init_std = n_users, n_items, n_factors, float(init_std)
        self.y_range = _check_y_range(y_range)
        self.user_emb = nn.Parameter(torch.empty(n_users, n_factors + 1))
        self.item_emb = nn.Parameter(torch.empty(n_items, n_factors + 1))
        if mean_rating is None:
            mean_rating = sum(self.y_range) / 2 if self.y_range is not None else 0.0
        self.register_buffer("mean_rating", torch.tensor(float(mean_rating)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for w in (self.user_emb, self.item_emb):
                trunc_normal_(w, std=self.init_std)
                w[:, -1] = 0.0

    # views used by the interpretation methods
    @property
    def user_factors(self) -> torch.Tensor:
        return self.user_emb[:, :-1]

    @property
    def item_factors(self) -> torch.Tensor:
        return self.item_emb[:, :-1]

    @property
    def user_bias(self) -> torch.Tensor:
        return self.user_emb[:, -1]

    @property
    def item_bias(self) -> torch.Tensor:
        return self.item_emb[:, -1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and bool((x < 0).any()):
            return self._forward_fallback(x)
        u = F.embedding(x[:, 0], self.user_emb)
        i = F.embedding(x[:, 1], self.item_emb)
        nf = self.n_factors
        r = (u[:, :nf] * i[:, :nf]).sum(1) + u[:, nf] + i[:, nf]
        return self._squash(r)

    def _forward_fallback(self, x: torch.Tensor) -> torch.Tensor:
        uk, ik = x[:, 0] >= 0, x[:, 1] >= 0
        u = F.embedding(x[:, 0].clamp_min(0), self.user_emb)
        i = F.embedding(x[:, 1].clamp_min(0), self.item_emb)
        nf = self.n_factors
        full = (u[:, :nf] * i[:, :nf]).sum(1) + u[:, nf] + i[:, nf]
        base = self._raw_mean()
        ub = u[:, nf] - self.user_bias.mean()
        ib = i[:, nf] - self.item_bias.mean()
        part = base + torch.where(uk, ub, 0.0) + torch.where(ik, ib, 0.0)
        return self._squash(torch.where(uk & ik, full, part))

    def get_config(self) -> dict[str, Any]:
        return {"n_users": self.n_users, "n_items": self.n_items, "n_factors": self.n_factors,
                "y_range": list(self.y_range) if self.y_range is not None else None, "init_std": self.init_std}


def emb_sz_rule(n_cat: int) -> int:
    """A common heuristic for embedding widths: ``min(600, round(1.6 * n_cat ** 0.56))``."""
    return int(min(600, round(1.6 * n_cat ** 0.56)))


@register_model
class EmbeddingNN(_CollabModel):
    """User and item embeddings, concatenated, through an MLP to one rating.

    Layout: ``cat(E_u[u], E_i[i])`` -> dropout(`embed_p`) -> for each hidden size: Linear, ReLU,
    optional BatchNorm, dropout(`ps[k]`) -> Linear to 1 -> optional scaled sigmoid (`y_range`).

    Args:
        n_users, n_items: numbers of distinct users and items.
        user_sz, item_sz: embedding widths (default `emb_sz_rule`).
        layers: hidden sizes of the MLP.
        ps: dropout after each hidden layer (one float for all, or one per layer).
        embed_p: dropout on the concatenated embeddings.
        y_range: (low, high) for a scaled sigmoid on the output, or None.
        use_bn: batch-norm after each hidden activation.
        mean_rating: global mean rating (buffer), see `EmbeddingDotBias`.

    Fallback (eval mode, index -1): an unknown id uses the mean embedding of its side (an "average"
    user or item).
    """

    def __init__(self, n_users: int, n_items: int, user_sz: int | None = None, item_sz: int | None = None,
                 layers: Sequence[int] = (100,), ps: float | Sequence[float] = 0.0, embed_p: float = 0.0,
                 y_range: Sequence[float] | None = None, use_bn: bool = True, init_std: float = 0.01,
                 mean_rating: float | None = None) -> None:
        super().__init__()
        _check_n("n_users", n_users)
        _check_n("n_items", n_items)
        self.n_users, self.n_items = n_users, n_items
        self.user_sz = emb_sz_rule(n_users) if user_sz is None else int(user_sz)
        self.item_sz = emb_sz_rule(n_items) if item_sz is None else int(item_sz)
        self.layers = [int(n) for n in layers]
        ps_list = [float(ps)] * len(self.layers) if isinstance(ps, (int, float)) else [float(p) for p in ps]
        if len(ps_list) != len(self.layers):
            raise ValueError(f"`ps` needs one dropout per layer ({len(self.layers)}); received ps={ps!r}.")
        self.ps, self.embed_p, self.use_bn, self.init_std = ps_list, float(embed_p), bool(use_bn), float(init_std)
        self.y_range = _check_y_range(y_range)
        self.user_emb = nn.Embedding(n_users, self.user_sz)
        self.item_emb = nn.Embedding(n_items, self.item_sz)
        self.emb_drop = nn.Dropout(self.embed_p)
        mods: list[nn.Module] = []
        sizes = [self.user_sz + self.item_sz] + self.layers
        for a, b, p in zip(sizes[:-1], sizes[1:], ps_list):
            mods += [nn.Linear(a, b), nn.ReLU()]
            if use_bn:
                mods.append(nn.BatchNorm1d(b))
            if p:
                mods.append(nn.Dropout(p))
        mods.append(nn.Linear(sizes[-1], 1))
        self.mlp = nn.Sequential(*mods)
        if mean_rating is None:
            mean_rating = sum(self.y_range) / 2 if self.y_range is not None else 0.0
        self.register_buffer("mean_rating", torch.tensor(float(mean_rating)))
        with torch.no_grad():
            trunc_normal_(self.user_emb.weight, std=self.init_std)
            trunc_normal_(self.item_emb.weight, std=self.init_std)

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.training and bool((x < 0).any()):
            u = torch.where((x[:, :1] >= 0), self.user_emb(x[:, 0].clamp_min(0)), self.user_emb.weight.mean(0))
            i = torch.where((x[:, 1:] >= 0), self.item_emb(x[:, 1].clamp_min(0)), self.item_emb.weight.mean(0))
            return u, i
        return self.user_emb(x[:, 0]), self.item_emb(x[:, 1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, i = self._embed(x)
        h = self.emb_drop(torch.cat([u, i], dim=1))
        return self._squash(self.mlp(h)[:, 0])

    def get_config(self) -> dict[str, Any]:
        return {"n_users": self.n_users, "n_items": self.n_items, "user_sz": self.user_sz, "item_sz": self.item_sz,
                "layers": self.layers, "ps": self.ps, "embed_p": self.embed_p,
                "y_range": list(self.y_range) if self.y_range is not None else None, "use_bn": self.use_bn,
                "init_std": self.init_std}
