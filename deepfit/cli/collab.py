"""`deepfit train collab`: collaborative filtering, predicting the rating a user gives an item."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import (Application, CLIError, Console, Prepared, RunDir, check_columns, check_not_repeated, check_split,
                   int_list, positive_int, read_table)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ..learner import Learner

__all__ = ["CollabApp", "parse_y_range"]


def parse_y_range(text: str) -> tuple[float, float] | str | None:
    """argparse type for `--y-range`: `auto` (from the ratings), `none` (linear output) or `LOW,HIGH`."""
    t = text.strip().lower()
    if t in ("auto", "none"):
        return t if t == "auto" else None
    parts = t.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, none or LOW,HIGH such as 0,5.5; got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise argparse.ArgumentTypeError(f"LOW must be below HIGH (both finite); got {text!r}")
    return (lo, hi)


class CollabApp(Application):
    """Ratings of items by users: a dot product of learned factors plus biases, or a small network."""

    name = "collab"
    help = "ratings: predict how a user rates an item (recommendations)"
    description = ("Collaborative filtering on a table of ratings with one row per (user, item, rating). Learns a "
                   "vector and a bias per user and per item (or, with --use-nn, a small network on their "
                   "embeddings). By default the user, item and rating are the first three columns.")
    examples = """examples:
  deepfit train collab ratings.csv --user userId --item movieId --target rating
  deepfit train collab u.data --no-header --names user,item,rating,ts --target rating --epochs 5
"""
    dls_classes = ("CollabDataLoaders",)
    default_lr = 5e-3
    default_epochs = 5
    default_bs = 64

    def load_user_errors(self) -> tuple[type[BaseException], ...]:
        from ..collab.data import UnknownIdError
        return (UnknownIdError,)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("file", type=Path, metavar="FILE", help="the ratings (CSV or other delimited text)")
        g = p.add_argument_group("columns")
        g.add_argument("--user", default=None, metavar="COL", help="the user id column (default: the first)")
        g.add_argument("--item", default=None, metavar="COL", help="the item id column (default: the second)")
        g.add_argument("--target", "-y", "--rating", dest="target", default=None, metavar="COL",
                       help="the rating column (default: the third)")
        m = p.add_argument_group("model")
        m.add_argument("--n-factors", type=positive_int, default=50, help="latent factors (default: %(default)s)")
        m.add_argument("--y-range", type=parse_y_range, default="auto", metavar="LOW,HIGH",
                       help="range of the predictions: auto (from the training ratings), none, or e.g. 0,5.5 "
                            "(default: auto)")
        m.add_argument("--use-nn", action="store_true",
                       help="a neural network on the embeddings instead of a dot product")
        m.add_argument("--layers", type=int_list, default=[100], metavar="N,N",
                       help="hidden layers of --use-nn (default: 100)")

    def add_predict_arguments(self, p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("collab models")
        g.add_argument("--unknown", choices=["error", "fallback"], default="error",
                       help="users/items not seen in training: stop with an error, or predict them from the "
                            "mean rating and the known side's bias (default: %(default)s)")

    def _columns(self, df: "pd.DataFrame", args: argparse.Namespace) -> tuple[str, str, str]:
        source = Path(args.file).name
        cols = [str(c) for c in df.columns]
        if df.shape[1] < 3 and None in (args.user, args.item, args.target):
            raise CLIError(f"{source} has {df.shape[1]} column(s) ({', '.join(cols)}); collab needs a user, an item "
                           "and a rating column (is --delimiter right?)")
        user = args.user if args.user is not None else cols[0]
        item = args.item if args.item is not None else cols[1]
        rating = args.target if args.target is not None else cols[2]
        check_columns(cols, [user], "--user", source)
        check_columns(cols, [item], "--item", source)
        check_columns(cols, [rating], "--target", source)
        for col, opt in ((user, "--user"), (item, "--item"), (rating, "--target")):
            check_not_repeated(df, [col], opt, source)
        if len({user, item, rating}) < 3:
            raise CLIError(f"the user, item and rating columns must differ; got {user!r}, {item!r}, {rating!r}")
        return user, item, rating

    def prepare(self, args: argparse.Namespace, console: Console) -> Prepared:
        import pandas as pd
        from .. import mae, rmse
        from ..collab import CollabDataLoaders, collab_learner
        df = read_table(args.file, args.delimiter, args.encoding, args.header, args.names, console,
                        na_values=args.na_values)
        user, item, rating = self._columns(df, args)
        source = Path(args.file).name
        check_split(len(df), args.valid_pct, source, "ratings")
        r = df[rating]
        off = 2 if args.header else 1
        if r.isna().any():
            rows = (r.index[r.isna()] + off).tolist()[:5]
            raise CLIError(f"the rating column {rating!r} of {source} has {int(r.isna().sum())} missing value(s) "
                           f"(file lines {', '.join(map(str, rows))}); drop or fill those rows")
        num = pd.to_numeric(r, errors="coerce")
        if num.isna().any():
            pos = int(num.isna().to_numpy().argmax())
            raise CLIError(f"the rating column {rating!r} of {source} must hold numbers; line {pos + off} has "
                           f"{r.iloc[pos]!r}")
        for c in (user, item):
            if df[c].isna().any():
                rows = (df.index[df[c].isna()] + off).tolist()[:5]
                raise CLIError(f"the id column {c!r} of {source} has {int(df[c].isna().sum())} missing value(s) "
                               f"(file lines {', '.join(map(str, rows))}); drop those rows")
        with console.step("preprocessing"):
            dls = CollabDataLoaders.from_df(df, user_name=user, item_name=item, rating_name=rating,
                                            valid_pct=args.valid_pct, seed=args.seed, bs=args.bs, device=args.device)
        if len(dls.train) == 0:
            raise CLIError(f"{source} has too few training rows ({dls.train.n}) for --bs {args.bs}")
        y_range = dls.y_range if args.y_range == "auto" else args.y_range
        learn = collab_learner(dls, n_factors=args.n_factors, y_range=y_range, use_nn=args.use_nn,
                               layers=args.layers, metrics=[rmse, mae])
        n_va = dls.valid.n if dls.valid is not None else 0
        desc = (f"{source}: {len(df):,} ratings ({dls.train.n:,} train / {n_va:,} valid) of {dls.n_items:,} "
                f"{item!r} by {dls.n_users:,} {user!r}; rating column {rating!r}")
        facts = {"user": user, "item": item, "rating": rating, "users": dls.n_users, "items": dls.n_items,
                 "y_range": y_range,
                 "model": "EmbeddingNN" if args.use_nn else f"dot product, {args.n_factors} factors"}
        return Prepared(learn, desc, facts, "regression", extra={"df": df})

    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        import numpy as np
        from .plots import plot_pred_vs_actual
        learn, df = prepared.learn, prepared.extra["df"]
        dls = learn.dls
        if dls.valid is not None and dls.valid.n > 0:
            preds, targs, losses = learn.get_preds(with_loss=True)
            p, t = preds.reshape(-1).cpu().numpy(), targs.reshape(-1).cpu().numpy()
            run.add_figure("pred_vs_actual.png", "Predicted against actual rating",
                           lambda f: plot_pred_vs_actual(t, p, f, "rating"),
                           caption="Validation ratings; the line is a perfect prediction.", console=console)
            x = dls.valid.tensors[0].cpu()
            order = np.argsort(-losses.cpu().numpy(), kind="stable")[:15]
            users = [dls.classes[dls.user_name][int(i)] for i in x[order, 0]]
            items = [dls.classes[dls.item_name][int(i)] for i in x[order, 1]]
            import pandas as pd
            top = pd.DataFrame({"loss": losses.cpu().numpy()[order], dls.user_name: users, dls.item_name: items,
                                dls.rating_name: t[order], "prediction": p[order]})
            run.add_table("Top losses", top, caption="The validation ratings the model got most wrong.",
                          csv_name="top_losses.csv")
        if type(learn.model).__name__ != "EmbeddingNN":
            try:
                run.add_table("Most liked items (largest bias)", learn.most_biased(10, among=min(1000, dls.n_items)),
                              caption="Items rated above what their users' tastes predict.")
            except (ValueError, TypeError, AttributeError):
                pass
        if hasattr(learn, "plot_pca") and dls.n_items >= 3:
            run.add_figure("embedding_pca.png", f"Embeddings of {dls.item_name} (PCA)",
                           lambda f: learn.plot_pca(n=40, among=min(1000, dls.n_items), fname=f),
                           caption="Item factors projected on their first two principal components; items at the "
                                   "ends of an axis differ most along it.", console=console)

    def predict(self, learn: "Learner", df: "pd.DataFrame", args: argparse.Namespace) -> "pd.DataFrame":
        """Predicted ratings for the (user, item) rows of `df` (not modified): its columns plus `prediction`."""
        dls = learn.dls
        source = Path(getattr(args, "file", "the data")).name
        try:
            check_columns(df.columns, [dls.user_name, dls.item_name], "needed by the model", source)
        except CLIError as e:
            raise CLIError(f"{e}. The model predicts ratings from columns {dls.user_name!r} and {dls.item_name!r}: "
                           "is this the right model for this file?") from None
        check_not_repeated(df, [dls.user_name, dls.item_name], "needed by the model", source)
        dl = dls.test_dl(df, unknown=getattr(args, "unknown", "error"))
        preds, _ = learn.get_preds(dl=dl)
        return dls.decode_preds(preds, df)

    def describe_state(self, state: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in ("user_name", "item_name", "rating_name", "y_range", "rating_mean"):
            if k in state:
                out[k] = state[k]
        classes = state.get("classes", {})
        if isinstance(classes, dict):
            for k, v in classes.items():
                out[f"{k} ids"] = len(v)
        return out or state

