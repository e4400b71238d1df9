"""`TabularLearner` (a Learner that predicts on raw DataFrames and explains itself) and
`tabular_learner`, which builds the entity-embedding model from the data."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from ..callbacks.core import Callback
from ..data.core import DataLoader
from ..learner import Learner
from ..metrics import ExpRMSPE, Metric, StateComm, accuracy, exp_rmspe, rmse
from ..optim import Adam
from . import interpret
from .data import TabularDataLoaders
from .model import TabularModel, get_emb_sz

__all__ = ["TabularLearner", "tabular_learner", "TargetUnitsMetric"]


class TargetUnitsMetric(Metric):
    """A metric computed in the target's own units when the model learns encoded targets
    (standardised, log1p): predictions and targets of each batch are decoded before `metric` sees
    them. `ExpRMSPE`, which is defined on log targets, gets them in log space (standardisation undone).

    Args:
        metric: the metric to compute.
        decode: `decode(tensor, log) -> tensor`, e.g. `TabularDataLoaders.decode_y`.
    """

    def __init__(self, metric: Metric, decode: Callable[[torch.Tensor, bool], torch.Tensor]) -> None:
        self.metric, self.decode = metric, decode
        self.log = not isinstance(metric, ExpRMSPE)
        super().__init__(metric.name)

    def reset(self) -> None:
        self.metric.reset()

    def accumulate(self, pred: torch.Tensor, targ: torch.Tensor) -> None:
        self.metric.accumulate(self.decode(pred, self.log), self.decode(targ, self.log))

    @property
    def value(self) -> float:
        return self.metric.value

    def sync(self, comm: StateComm) -> None:
        self.metric.sync(comm)

    def __repr__(self) -> str:
        return f"TargetUnitsMetric({self.metric!r})"


class TabularLearner(Learner):
    """A `Learner` for `TabularDataLoaders`: `get_preds` and `predict` take raw rows, plus
    interpretation (permutation importance, learned embeddings).

    When the regression targets are encoded for the model (standardised by default, log1p with
    `log_y`), the metrics are computed in the target's own units (each wrapped in a
    `TargetUnitsMetric`), and `get_preds` returns predictions and targets in those units; only the
    loss stays in the model's units."""

    def prepare_metric(self, metric: Metric) -> Metric:
        """`metric` wrapped so that it sees values in the target's units (unchanged when the targets
        are not encoded, or already wrapped)."""
        if getattr(self.dls, "y_scaled", False) and not isinstance(metric, TargetUnitsMetric):
            return TargetUnitsMetric(metric, self.dls.decode_y)
        return metric

    def get_preds(self, dl: DataLoader | pd.DataFrame | None = None, with_loss: bool = False,
                  with_input: bool = False, activation: bool = True, decode: bool = True) -> tuple[torch.Tensor, ...]:
        """Predictions and targets (None when unlabelled) for a DataLoader, or for a raw DataFrame
        preprocessed like the training rows (`learn.get_preds(test_df)`); default the validation set.
        Regression predictions and targets are in the target's own units (`decode=False`: the model's
        standardised / log units; the per-row losses are always in the model's units).
        Use `learn.dls.decode_preds(preds, test_df)` for a readable table."""
        if isinstance(dl, pd.DataFrame):
            dl = self.dls.test_dl(dl)
        res = list(super().get_preds(dl, with_loss=with_loss, with_input=with_input, activation=activation))
        if decode and getattr(self.dls, "y_scaled", False):
            i = 1 if with_input else 0
            res[i] = self.dls.decode_y(res[i]).float()
            if res[i + 1] is not None:
                res[i + 1] = self.dls.decode_y(res[i + 1]).float()
        return tuple(res)

    def predict_df(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of `df` with prediction columns (see `TabularDataLoaders.decode_preds`)."""
        preds = self.get_preds(df)[0]
        return self.dls.decode_preds(preds, df)

    # ---- interpretation --------------------------------------------------------------------------------
    def feature_importance(self, df: pd.DataFrame | None = None, metric: Any = None, greater_is_better: bool = True,
                           n_repeats: int = 1, seed: int = 0, bs: int = 4096) -> pd.DataFrame:
        """Permutation importance of each input column (see `deepfit.tabular.interpret.feature_importance`).

        Returns:
            DataFrame `feature, importance, importance_std, baseline, score`, most important first.
        """
        return interpret.feature_importance(self, df, metric=metric, greater_is_better=greater_is_better,
                                            n_repeats=n_repeats, seed=seed, bs=bs)

    def plot_feature_importance(self, fi: pd.DataFrame | None = None, top: int | None = 20, ax: Any = None,
                                fname: str | Path | None = None) -> Any:
        """Bar chart of `fi` (computed with `feature_importance()` on the validation set when None)."""
        fi = self.feature_importance() if fi is None else fi
        return interpret.plot_feature_importance(fi, top=top, ax=ax, fname=fname)

    def embeddings(self, col: str) -> pd.DataFrame:
        """Learned vectors of categorical column `col` as a DataFrame indexed by category."""
        return interpret.embeddings(self, col)

    def embed_features(self, df: pd.DataFrame, cols: list[str] | None = None) -> pd.DataFrame:
        """`df` with categorical columns replaced by their learned embedding columns."""
        return interpret.embed_features(self, df, cols)

    def plot_embedding(self, col: str, max_labels: int = 60, ax: Any = None, fname: str | Path | None = None) -> Any:
        """2-D PCA projection of the embeddings of `col`, labelled by category."""
        return interpret.plot_embedding(self, col, max_labels=max_labels, ax=ax, fname=fname)


def tabular_learner(dls: TabularDataLoaders, layers: Sequence[int] | None = None,
                    emb_szs: dict[str, int] | None = None, emb_rule: str = "default",
                    ps: float | Sequence[float] | None = None, embed_p: float = 0.0,
                    y_range: tuple[float, float] | str | None = "auto", use_bn: bool = True, bn_final: bool = False,
                    bn_cont: bool = True, n_out: int | None = None, loss_func: Callable | None = None,
                    opt_func: Callable[..., torch.optim.Optimizer] = Adam, lr: float = 1e-3, wd: float | None = 1e-2,
                    metrics: Sequence[Any] | Any | None = None, cbs: Sequence[Callback] | Callback = (),
                    path: str | Path | None = None, model_dir: str | Path = "models", train_bn: bool = True,
                    moms: tuple[float, float, float] = (0.95, 0.85, 0.95), progress: bool = True) -> TabularLearner:
    """A `TabularLearner` with a `TabularModel` sized from the data.

    Args:
        dls: from `TabularDataLoaders.from_df` / `from_csv`.
        layers: hidden sizes (default [200, 100]).
        emb_szs: per-column embedding widths overriding the rule.
        emb_rule: "default" (`min(600, round(1.6 * n ** 0.56))`) or "2018" (`min(50, (n + 1) // 2)`).
        ps, embed_p, use_bn, bn_final, bn_cont: see `TabularModel`.
        y_range: `(low, high)` in the target's units: regression outputs are squashed into it (it is
            converted into the model's standardised / log units). "auto" (default): for regression,
            the range of the training targets widened by 20% of its width on each side; None: no
            squashing. Ignored for classification.
        n_out: outputs (default: number of classes, or of regression targets).
        loss_func: default cross entropy (classification) or MSE (regression).
        metrics: default `accuracy` for classification, `rmse` for regression, `exp_rmspe` for log
            targets; pass [] for none. Regression metrics are computed in the target's units.
        opt_func, lr, wd, cbs, model_dir, train_bn, moms, progress: see `Learner`.
        path: working folder (default the data's `path`).

    Example:
        >>> learn = tabular_learner(dls, layers=[200, 100])
        >>> learn.fit_one_cycle(5, 1e-2)
        >>> learn.predict(df.iloc[0])
    """
    if not isinstance(dls, TabularDataLoaders):
        raise TypeError(f"tabular_learner needs TabularDataLoaders; received {type(dls).__name__}.")
    sizes = get_emb_sz(dls.cat_names, dls.cardinalities, emb_rule, emb_szs)
    model = TabularModel(sizes, len(dls.cont_names), n_out or dls.n_out,
                         layers=[200, 100] if layers is None else layers, ps=ps, embed_p=embed_p,
                         y_range=_model_y_range(dls, y_range),
                         use_bn=use_bn, bn_final=bn_final, bn_cont=bn_cont)
    if metrics is None:
        metrics = [accuracy] if dls.is_classification else [exp_rmspe if dls.log_y else rmse]
    return TabularLearner(dls, model, loss_func=loss_func if loss_func is not None else dls.default_loss,
                          opt_func=opt_func, lr=lr, wd=wd, metrics=metrics, cbs=cbs,
                          path=dls.path if path is None else path, model_dir=model_dir, train_bn=train_bn, moms=moms,
                          progress=progress)


def _model_y_range(dls: TabularDataLoaders, y_range: tuple[float, float] | str | None) -> list[float] | None:
    """`y_range` (in the target's units, or "auto") as the model's output range (its units)."""
    if dls.is_classification or y_range is None:
        return None
    if isinstance(y_range, str):
        if y_range != "auto":
            raise ValueError(f"`y_range` must be (low, high), 'auto' or None; received {y_range!r}.")
        auto = dls.proc.target.default_range()
        return None if auto is None else [auto[0], auto[1]]
    try:
        lo, hi = (float(v) for v in y_range)
    except (TypeError, ValueError):
        raise ValueError(f"`y_range` must be (low, high), 'auto' or None; received {y_range!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"`y_range` must be two finite numbers low < high; received {y_range!r}.")
    ends = [dls.proc.target.encode_value(v, j) for j in range(len(dls.y_names)) for v in (lo, hi)]
    if not all(math.isfinite(e) for e in ends):
        raise ValueError(f"`y_range` {y_range!r} reaches outside what the target encoding can represent "
                         f"({dls.proc.target.log}: low must be > {0 if dls.proc.target.log == 'log' else -1}).")
    return [min(ends), max(ends)]  # one range for every output: the widest over the targets
