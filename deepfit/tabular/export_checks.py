"""Checks of a tabular model file's data state, run by `load_learner` (`deepfit.export.check_export`)
before anything is predicted with it: the JSON shape of the state (`STATE_FIELDS`), its statistics
against its columns, and its vocabularies and classes against the sizes of the model in the file."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .data import TabularDataLoaders

__all__ = ["STATE_FIELDS", "model_mismatches"]

#: The JSON shape of `TabularDataLoaders.export_state` (see `deepfit.export.check_state_fields`).
STATE_FIELDS: dict[str, Any] = {
    "proc": {"raw_cat_names": [str], "raw_cont_names": [str], "cat_names": [str], "cont_names": [str],
             "y_names": [str], "y_block?": str, "log_y?": bool, "is_classification": bool, "classes": list,
             "procs": [{"name": str, "state": dict}],
             # the regression target's encoding (deepfit.tabular.target), absent in older files
             "y_log?": str, "scale_y?": bool, "y_mean?": [float], "y_std?": [float], "y_lo?": float,
             "y_hi?": float},
    "bs?": int}


def model_mismatches(dls: "TabularDataLoaders", model: Any) -> list[str]:
    """Where the preprocessing of `dls` disagrees with itself (columns without statistics, statistics that
    are not finite numbers) or with the sizes of `model` (a `TabularModel`, possibly on the meta device):
    its embeddings, inputs and outputs. One line per problem; empty when they fit."""
    out = _state_problems(dls)
    emb_szs, n_cont, out_sz = (getattr(model, a, None) for a in ("emb_szs", "n_cont", "out_sz"))
    if emb_szs is None or n_cont is None or out_sz is None:  # another model class: only its own checks
        return out
    cat = dls.proc.categorify
    if len(emb_szs) != len(dls.cat_names):
        out.append(f"{len(dls.cat_names)} categorical columns but {len(emb_szs)} embeddings")
    else:
        for name, (rows, _) in zip(dls.cat_names, emb_szs):
            if cat is None or name not in cat.classes:
                out.append(f"no vocabulary for the categorical column {name!r}")
            elif cat.cardinality(name) != rows:
                out.append(f"column {name!r} has {cat.cardinality(name)} codes but its embedding has {rows} rows")
    if n_cont != len(dls.cont_names):
        out.append(f"{len(dls.cont_names)} continuous columns but the model takes {n_cont}")
    if out_sz != dls.n_out:
        out.append(f"{dls.n_out} {'classes' if dls.is_classification else 'targets'} but the model has "
                   f"{out_sz} outputs")
    return out


def _state_problems(dls: "TabularDataLoaders") -> list[str]:
    proc, out = dls.proc, []
    cont = set(dls.cont_names)
    stats: list[tuple[str, dict[str, float]]] = []
    if proc.categorify is not None and set(proc.categorify.classes) != set(dls.cat_names):
        out.append(f"the vocabularies are for columns {sorted(proc.categorify.classes)} but the categorical "
                   f"columns are {dls.cat_names}")
    if proc.normalize is not None:
        stats += [("mean", proc.normalize.means), ("standard deviation", proc.normalize.stds)]
        if proc.normalize.means.keys() != cont or proc.normalize.stds.keys() != cont:
            out.append(f"the normalisation statistics are for columns {sorted(proc.normalize.means)} but the "
                       f"continuous columns are {dls.cont_names}")
        out += [f"column {k!r} has the standard deviation {v}" for k, v in proc.normalize.stds.items() if v <= 0]
    if proc.fill_missing is not None:
        stats.append(("fill value", proc.fill_missing.fill_values))
        if not set(proc.fill_missing.fill_values) <= cont:
            out.append(f"fill values for columns {sorted(set(proc.fill_missing.fill_values) - cont)}, which are not "
                       "continuous columns")
    out += [f"column {k!r} has the {what} {v}" for what, d in stats for k, v in d.items() if not np.isfinite(v)]
    return out
