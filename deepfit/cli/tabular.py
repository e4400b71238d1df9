"""`deepfit train tabular`: a neural network on the columns of a table (classification or regression)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import cli_message
from .base import (Application, CLIError, Console, Prepared, RunDir, check_columns, check_not_repeated, check_split,
                   column_list, flatten, int_list, positive_int, read_table)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ..learner import Learner

__all__ = ["TabularApp"]


class TabularApp(Application):
    """Tabular data: categorical columns through embeddings, continuous ones normalised, into an MLP."""

    name = "tabular"
    help = "a table of rows: predict one column from the others"
    description = ("Predict one column of a table from the others. Categorical columns go through learned "
                   "embeddings, continuous ones are normalised (missing values filled, with a flag column). "
                   "Text, boolean and integer targets with few values are classified; other numbers are "
                   "regressed. Without --cat/--cont, columns are split automatically (integers with more "
                   "than --max-card values and floats are continuous).")
    examples = """examples:
  deepfit train tabular adult.csv --target salary --epochs 3
  deepfit train tabular adult.csv --target salary --cat workclass,education,sex --cont age,hours-per-week
  deepfit train tabular houses.csv --target price --task regression --lr auto --out runs/houses
"""
    dls_classes = ("TabularDataLoaders",)
    default_lr = 1e-2
    default_epochs = 5
    default_bs = 64

    def load_user_errors(self) -> tuple[type[BaseException], ...]:
        from ..tabular.transforms import TabularDataError
        return (TabularDataError,)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("file", type=Path, metavar="FILE", help="the table (CSV or other delimited text)")
        g = p.add_argument_group("columns")
        g.add_argument("--target", "-y", required=True, metavar="COL", help="the column to predict")
        g.add_argument("--cat", type=column_list, action="append", metavar="A,B", help="categorical input columns")
        g.add_argument("--cont", type=column_list, action="append", metavar="A,B", help="continuous input columns")
        g.add_argument("--ignore", type=column_list, action="append", metavar="A,B",
                       help="columns to leave out of the automatic split (ids, leaks)")
        g.add_argument("--max-card", type=positive_int, default=20,
                       help="integer columns with more distinct values than this are continuous (default: %(default)s)")
        g.add_argument("--task", choices=["auto", "classification", "regression"], default="auto",
                       help="what to do with the target (default: %(default)s: decided from its values)")
        g.add_argument("--log-y", action="store_true",
                       help="regression: train on log(1 + target) (prices, sales, counts: values >= 0 spread over "
                            "orders of magnitude); predictions are turned back into the target's units")
        m = p.add_argument_group("model")
        m.add_argument("--layers", type=int_list, default=[200, 100], metavar="N,N",
                       help="hidden layer sizes (default: 200,100)")

    # ---- training ---------------------------------------------------------------------------------------
    def _roles(self, df: "pd.DataFrame", args: argparse.Namespace) -> tuple[list[str], list[str]]:
        from ..tabular.transforms import cont_cat_split
        source = Path(args.file).name
        cats, conts, ignore = flatten(args.cat), flatten(args.cont), flatten(args.ignore)
        check_columns(df.columns, [args.target], "--target", source)
        check_columns(df.columns, cats, "--cat", source)
        check_columns(df.columns, conts, "--cont", source)
        check_columns(df.columns, ignore, "--ignore", source)
        for opt, names in (("--cat", cats), ("--cont", conts)):
            if args.target in names:
                raise CLIError(f"the target {args.target!r} is also listed in {opt}; a model cannot use the "
                               "column it predicts")
        both = sorted(set(cats) & set(conts))
        if both:
            raise CLIError(f"column(s) {', '.join(both)} are listed in both --cat and --cont")
        check_not_repeated(df, [args.target], "--target", source)
        check_not_repeated(df, cats, "--cat", source)
        check_not_repeated(df, conts, "--cont", source)
        if not cats and not conts:
            rest = df.drop(columns=ignore) if ignore else df
            conts, cats = cont_cat_split(rest, args.max_card, args.target)
            check_not_repeated(df, cats + conts, "an input column", source, "; or leave the copies out with --ignore")
        if not cats and not conts:
            raise CLIError(f"{source} has no input column besides the target {args.target!r}")
        return cats, conts

    def prepare(self, args: argparse.Namespace, console: Console) -> Prepared:
        from .. import accuracy, rmse
        from ..tabular import TabularDataLoaders, tabular_learner
        from ..tabular.transforms import TabularDataError
        df = read_table(args.file, args.delimiter, args.encoding, args.header, args.names, console,
                        na_values=args.na_values)
        cats, conts = self._roles(df, args)
        source = Path(args.file).name
        check_split(len(df), args.valid_pct, source)
        y = df[args.target]
        if y.isna().any():
            rows = (y.index[y.isna()] + 2).tolist()[:5] if args.header else (y.index[y.isna()] + 1).tolist()[:5]
            raise CLIError(f"the target column {args.target!r} of {source} has {int(y.isna().sum())} missing "
                           f"value(s) (file lines {', '.join(map(str, rows))}{', ...' if y.isna().sum() > 5 else ''}); "
                           "drop or fill those rows")
        y_block = None if args.task == "auto" else args.task
        check_numbers(df, conts, args, source)
        if args.task != "classification":
            check_numbers(df, [args.target], args, source, role="Target column", only_numeric=True)
        if args.log_y:
            import numpy as np
            import pandas as pd
            yv = pd.to_numeric(y, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            neg = np.flatnonzero(yv < 0)
            if len(neg):
                first = 2 if args.header else 1
                lines = ", ".join(str(i + first) for i in neg[:5]) + (", ..." if len(neg) > 5 else "")
                raise CLIError(f"the target column {args.target!r} of {source} has {len(neg)} negative value(s) "
                               f"(e.g. {yv[neg[0]]:g}; file line{'s' if len(neg) > 1 else ''} {lines}), and --log-y "
                               "takes the logarithm of 1 + target; drop those rows or train without --log-y")
        try:
            with console.step("preprocessing"):
                dls = TabularDataLoaders.from_df(df, cat_names=cats, cont_names=conts, y_names=args.target,
                                                 y_block=y_block, valid_pct=args.valid_pct, seed=args.seed,
                                                 bs=args.bs, device=args.device, log_y=args.log_y)
        except TabularDataError as e:
            raise CLIError(f"{source}: {cli_message(e)}") from None
        if len(dls.train) == 0:
            raise CLIError(f"{source} has too few training rows ({dls.train.n}) for --bs {args.bs}")
        metric = accuracy if dls.is_classification else rmse
        learn = tabular_learner(dls, layers=args.layers, metrics=[metric])
        task = "classification" if dls.is_classification else "regression"
        n_va = dls.valid.n if dls.valid is not None else 0
        desc = (f"{source}: {len(df):,} rows ({dls.train.n:,} train / {n_va:,} valid), target {args.target!r} "
                f"({task}{', ' + str(len(dls.classes)) + ' classes' if dls.is_classification else ''}), "
                f"{len(cats)} categorical and {len(conts)} continuous columns")
        facts: dict[str, Any] = {"target": args.target, "task": task, "categorical": cats, "continuous": conts,
                                 "rows": len(df)}
        if dls.is_classification:
            facts["classes"] = [str(c) for c in dls.classes]
        else:
            facts["target_encoding"] = dls.proc.describe_target()
            console.info(f"target {args.target!r}: {facts['target_encoding']}")
        return Prepared(learn, desc, facts, task, extra={"df": df})

    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        import numpy as np
        from .plots import confusion_matrix, plot_confusion_matrix, plot_pred_vs_actual
        learn, df = prepared.learn, prepared.extra["df"]
        dls = learn.dls
        if dls.valid is None or dls.valid.n == 0:
            return
        probs, targs, losses = learn.get_preds(with_loss=True)
        valid_rows = df.iloc[dls.valid_idx]
        decoded = dls.decode_preds(probs, valid_rows)
        if dls.is_classification:
            classes = [str(c) for c in dls.classes]
            cm = confusion_matrix(targs.cpu().numpy(), probs.argmax(-1).cpu().numpy(), len(classes))
            run.add_figure("confusion_matrix.png", "Confusion matrix", lambda p: plot_confusion_matrix(cm, classes, p),
                           caption="Validation rows: rows are the actual class, columns the prediction.",
                           console=console)
        else:
            run.add_figure("pred_vs_actual.png", "Predicted against actual",
                           lambda p: plot_pred_vs_actual(valid_rows[dls.y_names[0]].to_numpy(dtype=float),
                                                         decoded["prediction"].to_numpy(dtype=float), p,
                                                         dls.y_names[0]),
                           caption="Validation rows; the line is a perfect prediction.", console=console)
        order = np.argsort(-losses.cpu().numpy(), kind="stable")[:15]
        top = decoded.iloc[order].copy()
        top.insert(0, "loss", losses.cpu().numpy()[order])
        keep = ["loss", dls.y_names[0], "prediction"] + [c for c in top.columns if c.startswith("prob_")][:6]
        keep += [c for c in valid_rows.columns if c not in keep][:8]
        run.add_table("Top losses", top[keep], caption="The validation rows the model got most wrong.",
                      csv_name="top_losses.csv")
        with console.step("feature importance"):
            fi = learn.feature_importance()
        run.add_figure("feature_importance.png", "Feature importance",
                       lambda p: learn.plot_feature_importance(fi, fname=p) if _takes_fi(learn) else
                       learn.plot_feature_importance(fname=p),
                       caption="How much the validation loss grows when each column is shuffled.", console=console)
        fi.to_csv(run.file("feature_importance.csv"), index=False)
        real_cats = [c for c in dls.cat_names if not c.endswith("_na")]
        if real_cats:
            col = max(real_cats, key=lambda c: len(dls.vocab(c)))
            if len(dls.vocab(col)) >= 4:
                run.add_figure("embedding_pca.png", f"Embeddings of {col}",
                               lambda p: learn.plot_embedding(col, fname=p),
                               caption=f"The learned embedding of each value of {col!r}, on its first two "
                                       "principal components.", console=console)

    # ---- prediction -------------------------------------------------------------------------------------
    def predict(self, learn: "Learner", df: "pd.DataFrame", args: argparse.Namespace) -> "pd.DataFrame":
        """Predictions for every row of `df` (which is not modified): the input columns, then
        `prediction` (and `prob_<class>` for classification)."""
        dls = learn.dls
        source = Path(getattr(args, "file", "the data")).name
        needed = [c for c in dls.cat_names if not (c.endswith("_na") and c[:-3] in dls.cont_names)] + dls.cont_names
        try:
            check_columns(df.columns, needed, "needed by the model", source)
        except CLIError as e:
            raise CLIError(f"{e}. The model was trained on columns {', '.join(needed)}: is this the right "
                           "model for this file?") from None
        check_not_repeated(df, needed, "needed by the model", source)
        for c in needed:
            if c in dls.cat_names:
                vocab = {str(v) for v in dls.vocab(c)}
                vals = df[c].dropna()
                unseen = vals[~vals.astype(str).isin(vocab)]
                if len(unseen):
                    ex = ", ".join(repr(v) for v in unseen.unique()[:3])
                    Console().warn(f"column {c!r}: {len(unseen)} row(s) hold values the model never saw in training "
                                   f"(e.g. {ex}); they are predicted as an unknown category")
        check_numbers(df, dls.cont_names, args, source)
        dl = dls.test_dl(df, with_labels=False)
        preds, _ = learn.get_preds(dl=dl)
        return dls.decode_preds(preds, df)

    def describe_state(self, state: dict[str, Any]) -> dict[str, Any]:
        proc = state.get("proc", {})
        out: dict[str, Any] = {}
        for k in ("cat_names", "cont_names", "y_names"):
            if k in proc:
                out[k] = proc[k]
        if "classes" in proc and proc["classes"]:
            out["classes"] = proc["classes"]
        for k in ("is_classification", "log_y"):
            if k in proc:
                out[k] = proc[k]
        if proc.get("y_mean") is not None:  # regression targets standardised for the model
            out["target_mean"], out["target_std"] = proc["y_mean"], proc.get("y_std")
        return out or state


def check_numbers(df: "pd.DataFrame", cols: list[str], args: argparse.Namespace, source: str,
                  role: str = "Continuous column", only_numeric: bool = False) -> None:
    """Fail (naming the column and the file lines) when a numeric column holds values a model cannot
    use: infinite, or beyond float32's range (such as 1e300), which would overflow the normalisation.
    Text is left to the later checks; `only_numeric` skips columns that are not mostly numbers."""
    import numpy as np
    import pandas as pd
    from ..tabular.transforms import bad_values_message, unusable_values
    first_line = 2 if getattr(args, "header", True) else 1
    for c in cols:
        if c not in df.columns:
            continue
        col = df[c]
        if pd.api.types.is_bool_dtype(col.dtype) or isinstance(col.dtype, pd.CategoricalDtype):
            continue
        x = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        if only_numeric and np.isnan(x).mean() > 0.5:
            continue
        bad = unusable_values(x)
        if bad.any():
            lines = np.arange(len(df)) + first_line
            msg = bad_values_message(c, x, lines, bad, role=role, row_word="file line")
            raise CLIError(f"{source}: {msg[0].lower() + msg[1:]}")


def _takes_fi(learn: Any) -> bool:
    import inspect
    try:
        params = list(inspect.signature(learn.plot_feature_importance).parameters)
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0] in ("fi", "importance", "df")
