"""Collaborative filtering: (user, item) -> rating data, dot-product and neural models, and a Learner
with interpretation tools (biases, PCA of factors, recommendations, similar items).

Example:
    >>> from deepfit.collab import CollabDataLoaders, collab_learner
    >>> dls = CollabDataLoaders.from_df(ratings, item_name="title", bs=64, seed=42)
    >>> learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5))
    >>> learn.fit_one_cycle(5, 5e-3, wd=0.1)
    >>> learn.recommend(user=42, n=10)
"""
from ..export import register_dls
from .data import CollabDataLoaders, UnknownIdError
from .learner import CollabLearner, collab_learner
from .models import EmbeddingDotBias, EmbeddingNN, emb_sz_rule

register_dls("CollabDataLoaders", CollabDataLoaders.from_state, fields=CollabDataLoaders.STATE_FIELDS)

__all__ = ["CollabDataLoaders", "UnknownIdError", "CollabLearner", "collab_learner", "EmbeddingDotBias",
           "EmbeddingNN", "emb_sz_rule"]
