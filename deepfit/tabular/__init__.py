"""Tabular models with entity embeddings (the Rossmann approach), robust on real messy tables.

Example:
    >>> from deepfit.tabular import TabularDataLoaders, tabular_learner
    >>> dls = TabularDataLoaders.from_df(df, cat_names=["workclass", "sex"], cont_names=["age", "fnlwgt"],
    ...                                  y_names="class", valid_pct=0.2, seed=42, bs=64)
    >>> learn = tabular_learner(dls, layers=[200, 100])
    >>> learn.fit_one_cycle(5, 1e-2)
    >>> preds, _ = learn.get_preds(test_df)
    >>> learn.feature_importance()
"""
from ..export import register_dls
from .data import TabularDataLoaders, TabularProcessor
from .learner import TabularLearner, TargetUnitsMetric, tabular_learner
from .model import TabularModel, emb_sz_rule, get_emb_sz
from .target import TargetEncoding
from .transforms import (Categorify, FillMissing, Normalize, TabularDataError, TabularProc, add_datepart,
                         cont_cat_split)

register_dls("TabularDataLoaders", TabularDataLoaders.from_state, fields=TabularDataLoaders.STATE_FIELDS)

__all__ = ["TabularDataLoaders", "TabularProcessor", "TabularLearner", "tabular_learner", "TabularModel",
           "emb_sz_rule", "get_emb_sz", "Categorify", "FillMissing", "Normalize", "TabularDataError", "TabularProc",
           "add_datepart", "cont_cat_split", "TargetEncoding", "TargetUnitsMetric"]
