"""`deepfit train text FILE`: classify texts (sentiment, topics) from a CSV/TSV file or a folder per class.

    deepfit train text reviews.csv --text-col review --label-col stars --method nbsvm --ngrams 2
    deepfit train text sentences.tsv --no-header --names text,label --method nb
    deepfit train text imdb/train --method rnn --epochs 4          # a folder with one sub-folder per class
    deepfit predict runs/text/model.safetensors new.csv --out predictions.csv

Methods: `nb`, `logreg`, `nbsvm` (fitted at once, no epochs), `nb-learner` (the dot-product NB learner)
and `rnn` (an AWD-LSTM classifier, `deepfit.text.classifier`), both trained with the one-cycle policy.
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import (Application, CLIError, Console, Prepared, RunDir, check_columns, check_input_file, positive_float,
                   positive_int, read_table)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from ..learner import Learner

__all__ = ["TextClassApp", "LINEAR_METHODS", "METHODS", "per_class_metrics"]

LINEAR_METHODS = ("nb", "logreg", "nbsvm")
METHODS = LINEAR_METHODS + ("nb-learner", "rnn")
_TEXT_DLS = ("BowDataLoaders", "TextClassifierDataLoaders")


def _beta(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1 or 'none', got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return v


def _lines(index: Any, header: bool, limit: int = 10) -> str:
    off = 2 if header else 1
    rows = [str(int(i) + off) for i in list(index)[:limit]]
    return ", ".join(rows) + (", ..." if len(index) > limit else "")


def _unquoted_tsv(df: "pd.DataFrame", args: argparse.Namespace) -> "pd.DataFrame":
    """`df` read again without quote handling when FILE is tab-separated: in TSV text, quotes belong to the
    sentences (pandas' default would join lines between two quotes). `df` (already checked by read_table)
    is kept when the file does not parse that way."""
    import pandas as pd
    path = Path(args.file)
    if not _is_tab_file(path, args.delimiter, args.encoding):
        return df
    enc = "utf-8-sig" if args.encoding.lower().replace("-", "") == "utf8" else args.encoding
    try:
        df2 = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, header=0 if args.header else None,
                          names=list(args.names) if args.names else None, encoding=enc)
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError):
        return df
    df2.columns = [str(c).strip() for c in df2.columns]
    return df2


def _is_tab_file(path: Path, delimiter: str, encoding: str) -> bool:
    if delimiter != "auto":
        return delimiter == "\t"
    try:
        with open(path, encoding=encoding, errors="replace") as f:
            first = f.readline()
    except OSError:
        return False
    return "\t" in first


class TextClassApp(Application):
    """Labelled texts: naive Bayes, logistic regression, NBSVM, the dot-product NB learner, or an RNN."""

    name = "text"
    help = "labelled texts: classify sentiment or topics (naive Bayes, NBSVM, logreg, RNN)"
    description = ("Train a text classifier on a CSV/TSV file with a text column and a label column, or on a folder "
                   "with one sub-folder of .txt files per class. --method nb, logreg and nbsvm are bag-of-words "
                   "models (binarised n-gram counts of deepfit's word tokens) fitted at once; nb-learner and rnn "
                   "train for --epochs with the one-cycle policy. A random --valid-pct of the rows is held out; the "
                   "report shows the validation metrics, the confusion matrix and the most confident mistakes. "
                   "Default columns: 'text' and 'label' when the file has them, else the first text column and the "
                   "last other column whose values repeat.")
    examples = """examples:
  deepfit train text reviews.csv --text-col review --label-col sentiment --method nbsvm --ngrams 2
  deepfit train text yelp_labelled.txt --no-header --names text,label --method nb
  deepfit train text imdb/train --method rnn --epochs 4 --out runs/imdb
  deepfit train text reviews.csv --method rnn --encoder models/finetuned_enc.safetensors --epochs 4
  deepfit predict runs/imdb/model.safetensors new.csv --out predictions.csv
"""
    dls_classes = _TEXT_DLS
    default_lr = 1e-2
    default_epochs = 4
    default_bs = 64

    def load_user_errors(self) -> tuple[type[BaseException], ...]:
        from ..text import TextDataError
        return (TextDataError,)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("file", type=Path, metavar="FILE",
                       help="a CSV/TSV file with a text and a label column, or a folder with one sub-folder per class")
        g = p.add_argument_group("columns")
        g.add_argument("--text-col", default=None, metavar="COL", help="the column with the texts")
        g.add_argument("--label-col", "--target", dest="label_col", default=None, metavar="COL",
                       help="the column with the labels")
        m = p.add_argument_group("model")
        m.add_argument("--method", choices=METHODS, default="nbsvm",
                       help="nb: naive Bayes; logreg: logistic regression; nbsvm: logistic regression on naive-Bayes-"
                            "scaled features (Wang & Manning); nb-learner: the dot-product NB learner; rnn: an "
                            "AWD-LSTM classifier (2 layers of 256, embeddings 128, or the sizes of --encoder) "
                            "(default: %(default)s)")
        m.add_argument("--ngrams", type=positive_int, default=2, metavar="N",
                       help="bag-of-words methods: n-grams of 1..N words (default: %(default)s)")
        m.add_argument("--max-features", type=positive_int, default=None, metavar="N",
                       help="bag-of-words methods: keep the N most frequent n-grams (default: all)")
        m.add_argument("--C", dest="C", type=positive_float, default=1.0, metavar="C",
                       help="logreg and nbsvm: inverse regularisation strength (default: %(default)s)")
        m.add_argument("--beta", type=_beta, default=0.25, metavar="B",
                       help="nbsvm: interpolation w' = (1-B) mean|w| + B w of Wang & Manning, or 'none' "
                            "(default: %(default)s)")
        m.add_argument("--raw-counts", dest="binary", action="store_false",
                       help="nb, logreg, nbsvm: use how often each n-gram occurs rather than whether it occurs "
                            "(binarised, the default, is Wang & Manning's choice)")
        m.add_argument("--encoder", type=Path, default=None, metavar="FILE",
                       help="rnn: start from an encoder saved with save_encoder (e.g. a fine-tuned language model; its "
                            "tokenizer and vocabulary are used) and train with gradual unfreezing: the head, then "
                            "one more layer group per epoch, then all, at discriminative rates (ULMFiT)")
        m.add_argument("--drop-mult", type=float, default=0.5, metavar="X",
                       help="rnn: multiplies every dropout (default: %(default)s)")

    def add_predict_arguments(self, p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("text classifiers")
        g.add_argument("--text-col", default=None, metavar="COL",
                       help="the column with the texts (default: the training column name, else 'text' or the first "
                            "text column)")

    # ---- reading ----------------------------------------------------------------------------------------
    def _read(self, args: argparse.Namespace, console: Console) -> "pd.DataFrame":
        import pandas as pd
        path = Path(args.file)
        if path.is_dir():
            from ..text import texts_from_folder
            texts, labels = texts_from_folder(path, encoding=args.encoding)
            args.text_col, args.label_col = args.text_col or "text", args.label_col or "label"
            return pd.DataFrame({args.text_col: texts, args.label_col: labels})
        df = read_table(path, args.delimiter, args.encoding, args.header, args.names, console, na_values=[])
        return _unquoted_tsv(df, args)

    def _columns(self, df: "pd.DataFrame", args: argparse.Namespace) -> tuple[str, str]:
        import pandas as pd
        source = Path(args.file).name
        cols = [str(c) for c in df.columns]
        if len(cols) < 2:
            raise CLIError(f"{source} has {len(cols)} column ({', '.join(cols)}); a text classifier needs a text and a "
                           "label column (is --delimiter right? without a header line pass --no-header --names "
                           "text,label)")
        text = args.text_col
        if text is None:
            text = "text" if "text" in cols else next(
                (c for c in cols if not pd.api.types.is_numeric_dtype(df[c]) and c != args.label_col), cols[0])
        label = args.label_col
        if label is None:
            if "label" in cols and text != "label":
                label = "label"
            else:  # the last other column that looks like classes (repeated values), else the last other column
                others = [c for c in cols if c != text]
                label = next((c for c in reversed(others) if df[c].nunique() <= len(df) / 2), others[-1])
        check_columns(cols, [text], "--text-col", source)
        check_columns(cols, [label], "--label-col", source)
        if text == label:
            raise CLIError(f"--text-col and --label-col are the same column {text!r}; pick two different columns")
        return text, label

    def _check_data(self, df: "pd.DataFrame", text: str, label: str, args: argparse.Namespace) -> None:
        import pandas as pd
        source = Path(args.file).name
        header = args.header and not Path(args.file).is_dir()
        where = "file lines" if not Path(args.file).is_dir() else "documents"
        col = df[text]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            raise CLIError(f"the text column {text!r} of {source} holds numbers ({col.dtype}), not text; choose the "
                           f"column with the texts with --text-col (columns: {', '.join(map(str, df.columns))})")
        empty = col.isna() | col.astype(str).str.strip().eq("")
        if empty.any():
            raise CLIError(f"the text column {text!r} of {source} is empty on {int(empty.sum())} of {len(df)} rows "
                           f"({where} {_lines(df.index[empty.to_numpy()], header)}); drop those rows or fill them in")
        lab = df[label]
        miss = lab.isna() | lab.astype(str).str.strip().eq("")
        if miss.any():
            rows = _lines(df.index[miss.to_numpy()], header)
            raise CLIError(f"the label column {label!r} (--label-col) of {source} is missing on {int(miss.sum())} of "
                           f"{len(df)} rows ({where} {rows}); drop those rows or fill in their labels")
        classes = lab.unique()
        if len(classes) > max(len(df) / 2, 2):
            raise CLIError(f"the label column {label!r} of {source} has {len(classes)} different values in {len(df)} "
                           "rows: labels must be classes that repeat (e.g. pos/neg); choose the label column with "
                           "--label-col")
        if len(classes) < 2:
            raise CLIError(f"the label column {label!r} of {source} has a single class ({classes[0]!r} on all "
                           f"{len(df)} rows): a classifier needs at least two; choose the label column with "
                           "--label-col")

    # ---- data and learner -------------------------------------------------------------------------------
    def prepare(self, args: argparse.Namespace, console: Console) -> Prepared:
        from ..text import TextDataError
        path = Path(args.file)
        if not path.is_dir():
            check_input_file(path, "input file")
        elif not path.exists():
            raise CLIError(f"input folder not found: {path}")
        if args.encoder is not None and args.method != "rnn":
            raise CLIError(f"--encoder is for --method rnn (got --method {args.method})")
        if args.method in LINEAR_METHODS and (getattr(args, "checkpoint_every", 0) or getattr(args, "resume", False)):
            raise CLIError(f"--checkpoint-every and --resume are for methods trained for epochs (nb-learner, rnn); "
                           f"--method {args.method} is fitted at once")
        if args.encoder is not None and (getattr(args, "checkpoint_every", 0) or getattr(args, "resume", False)):
            raise CLIError("--checkpoint-every and --resume are not available with --encoder (its gradual unfreezing "
                           "runs several fits); train without them")
        if args.method in LINEAR_METHODS and hasattr(args, "num_it"):  # `deepfit lr-find text`
            raise CLIError(f"--method {args.method} is fitted at once, without a learning rate; the learning-rate "
                           "finder is for --method nb-learner or rnn")
        try:
            df = self._read(args, console)
        except TextDataError as e:
            raise CLIError(str(e)) from None
        text, label = self._columns(df, args)
        self._check_data(df, text, label, args)
        source = path.name
        n_valid = int(round(len(df) * args.valid_pct))
        if n_valid < 1 or len(df) - n_valid < 2:
            raise CLIError(f"{source} has only {len(df)} rows: too few to hold out {args.valid_pct:.0%} for validation "
                           "and still train; use more data (or a different --valid-pct)")
        try:
            with console.step("tokenizing"):
                if args.method == "rnn":
                    learn, desc, facts = self._rnn(df, text, label, args)
                else:
                    learn, desc, facts = self._bow(df, text, label, args)
        except TextDataError as e:
            raise CLIError(f"{source}: {e}") from None
        facts.update({"text column": text, "label column": label, "method": args.method})
        return Prepared(learn, f"{source}: {desc}", facts, "classification",
                        extra={"text_col": text, "label_col": label})

    def _bow(self, df: "pd.DataFrame", text: str, label: str, args: argparse.Namespace) -> tuple[Any, str, dict]:
        from ..text.bow import BowDataLoaders, bow_learner
        dls = BowDataLoaders.from_df(df, text, label, valid_pct=args.valid_pct, seed=args.seed, ngrams=args.ngrams,
                                     max_features=args.max_features, bs=args.bs, device=args.device,
                                     source=Path(args.file).name)
        method = "nb_learner" if args.method == "nb-learner" else args.method
        learn = bow_learner(dls, method=method, C=args.C, beta=args.beta, binary=args.binary, fit=False,
                            seed=args.seed)
        n_va = dls.valid.n if dls.valid is not None else 0
        desc = (f"{len(df):,} texts ({dls.train.n:,} train / {n_va:,} valid), {dls.c} classes "
                f"({', '.join(map(str, dls.classes[:8]))}), {dls.n_features:,} n-grams of 1..{args.ngrams} words")
        facts = {"classes": [str(c) for c in dls.classes], "n-grams": dls.n_features}
        if method in ("logreg", "nbsvm"):
            facts["C"] = args.C
        if method == "nbsvm":
            facts["beta"] = args.beta
        if method in LINEAR_METHODS:
            facts["features"] = "binarised n-gram counts" if args.binary else "raw n-gram counts"
        return learn, desc, facts

    def _rnn(self, df: "pd.DataFrame", text: str, label: str, args: argparse.Namespace) -> tuple[Any, str, dict]:
        try:
            from ..text.classifier import text_classifier_learner
            from ..text.classifier_data import TextClassifierDataLoaders
        except ImportError:  # pragma: no cover - depends on the RNN classifier being present
            raise CLIError("--method rnn needs deepfit.text.classifier, which this deepfit lacks; use nbsvm") from None
        vocab, tok = None, None
        if args.encoder is not None:  # read the text as the language model did: its tokenizer and vocabulary
            from ..text.encoder import encoder_text_parts
            check_input_file(args.encoder, "encoder file")
            tok, vocab = encoder_text_parts(args.encoder)
            if vocab is None:
                raise CLIError(f"--encoder {args.encoder} carries no vocabulary; save it with the language model's "
                               "save_encoder")
        dls = TextClassifierDataLoaders.from_df(df, text, label, valid_pct=args.valid_pct, seed=args.seed, bs=args.bs,
                                                tokenizer=tok if tok is not None else "word", vocab=vocab,
                                                device=args.device, source=Path(args.file).name)
        learn = text_classifier_learner(dls, method="rnn", encoder=args.encoder, drop_mult=args.drop_mult,
                                        **({} if args.encoder is not None else
                                           {"emb_size": 128, "n_hid": 256, "n_layers": 2}))
        n_va = dls.valid.n if dls.valid is not None else 0
        desc = (f"{len(df):,} texts ({dls.train.n:,} train / {n_va:,} valid), {dls.n_classes} classes, vocabulary of "
                f"{len(dls.vocab):,}")
        return learn, desc, {"classes": [str(c) for c in dls.classes], "vocabulary": len(dls.vocab)}

    # ---- training ---------------------------------------------------------------------------------------
    def train(self, args: argparse.Namespace, run: RunDir, prepared: Prepared, console: Console) -> dict[str, Any]:
        if args.method == "rnn" and args.encoder is not None:
            return self._train_gradual(args, run, prepared, console)
        if args.method not in LINEAR_METHODS:
            from .training import standard_train
            return standard_train(self, args, run, prepared, console)
        from ..utils import atomic_path
        learn = prepared.learn
        with console.step(f"fitting {args.method}"):
            t0 = time.perf_counter()
            learn.fit_linear()
            secs = time.perf_counter() - t0
        console.info(f"fitted {args.method} in {secs:.2f} s (no epochs: --epochs and --lr are not used)")
        res = learn.validate() if learn.dls.valid is not None else {}
        final = {k: float(v) for k, v in res.items()}
        final["fit_seconds"] = round(secs, 3)
        with atomic_path(run.file("metrics.csv")) as tmp:
            tmp.write_text(",".join(final) + "\n" + ",".join(f"{v:.6g}" for v in final.values()) + "\n")
        with console.step("exporting the model"):
            learn.export(run.file("model.safetensors"))
        run.summary["final_metrics"] = final
        with console.step("report"):
            self.report(prepared, run, console)
        return final

    def _train_gradual(self, args: argparse.Namespace, run: RunDir, prepared: Prepared,
                       console: Console) -> dict[str, Any]:
        """ULMFiT's stage 3 from a language model's encoder: gradual unfreezing (the head, then one more
        layer group per stage, then everything) with discriminative rates, `fit_gradual` of the classifier.
        --epochs E makes min(E, layer groups) stages of one epoch, the last taking the remaining epochs;
        stage k uses `slice(lr * 0.5**k / 2.6**4, lr * 0.5**k)`."""
        from ..callbacks.logger import CSVLogger
        from .training import quiet_learner, run_lr_find

        class StagesLogger(CSVLogger):
            """One metrics.csv over the stages (several fits): the first fit starts the file, the others append."""

            def after_fit(self) -> None:
                super().after_fit()
                self.append = True
        learn = prepared.learn
        quiet_learner(learn, console)
        lr: Any = args.lr
        if lr == "auto" or args.lr_find_iters > 0:
            res = run_lr_find(learn, args.lr_find_iters or 100, console)
            run.add_figure("lr_find.png", "Learning-rate finder", lambda p: learn.recorder.plot_lr_find(fname=p),
                           caption="Smoothed loss against learning rate, with only the head trainable.",
                           console=console)
            run.summary["lr_find"] = res.suggestions()
            if lr == "auto":
                if not (isinstance(res.valley, float) and math.isfinite(res.valley) and res.valley > 0):
                    raise CLIError("--lr auto: the learning-rate finder found no valley; pass a number, e.g. --lr 1e-2")
                lr = res.valley
        n_stages = max(1, min(args.epochs, len(learn.layer_groups())))
        epochs = [1] * (n_stages - 1) + [args.epochs - (n_stages - 1)]
        mults = [0.5 ** k for k in range(n_stages)]
        logger = StagesLogger(run.file("metrics.csv"))
        learn.add_cb(logger)
        try:
            learn.fit_gradual(lr, epochs=epochs, lr_mults=mults)
        finally:
            learn.remove_cb(logger)
        run.summary.update({"lr": lr, "epochs": args.epochs, "gradual unfreezing": {
            "epochs per stage": epochs, "top lr per stage": [lr * m for m in mults], "lr ratio last/first group":
            round(2.6 ** 4, 2)}})
        with console.step("exporting the model"):
            learn.export(run.file("model.safetensors"))
        final = dict(learn.recorder.log[-1]) if learn.recorder.log else {}
        run.summary["final_metrics"] = {k: v for k, v in final.items() if k != "time"}
        with console.step("plotting"):
            run.add_figure("loss.png", "Loss (last stage)", lambda p: learn.recorder.plot_loss(fname=p),
                           caption="Training loss per batch and validation loss per epoch of the last stage (every "
                                   "layer trainable); metrics.csv has every epoch of every stage.", console=console)
            self.report(prepared, run, console)
        return final

    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        import pandas as pd
        from ..text.interpret import TextClassificationInterpretation
        learn = prepared.learn
        if learn.dls.valid is None or learn.dls.valid.n == 0:
            return
        interp = TextClassificationInterpretation.from_learner(learn)
        run.add_table("Metrics per class", per_class_metrics(interp.confusion_matrix(), learn.dls.classes),
                      caption="Validation texts: precision (of the texts predicted as the class, the share that "
                              "are), recall (of the texts of the class, the share found), F1 and the number of "
                              "texts of the class.", csv_name="class_metrics.csv")
        run.add_table("Confusion matrix", interp.confusion_table().reset_index(),
                      caption="Validation texts: rows are the actual classes, columns the predicted ones.",
                      csv_name="confusion_matrix.csv")
        mistakes = interp.most_confident_mistakes(15)
        run.add_table("Most confident mistakes", mistakes[["text", "actual", "predicted", "confidence"]],
                      caption="The validation texts the model got wrong while being surest of its answer.",
                      csv_name="most_confident_mistakes.csv")
        model = learn.model
        if type(model).__name__ == "NgramLinear" and learn.dls.c == 2:
            import numpy as np
            w = (model.weight.weight[:-1, 1] - model.weight.weight[:-1, 0]).detach().cpu().numpy()
            feats = learn.dls.vectorizer.features
            order = np.argsort(w)
            k = min(15, len(w) // 2)
            classes = learn.dls.classes
            table = pd.DataFrame({f"n-gram for {classes[0]}": [feats[i] for i in order[:k]],
                                  "weight": w[order[:k]],
                                  f"n-gram for {classes[1]}": [feats[i] for i in order[::-1][:k]],
                                  "weight ": w[order[::-1][:k]]})
            run.add_table("Most telling n-grams", table,
                          caption=f"The n-grams whose presence moves the score most towards {classes[0]!r} (left) "
                                  f"and {classes[1]!r} (right).")

    # ---- prediction -------------------------------------------------------------------------------------
    def predict(self, learn: "Learner", df: "pd.DataFrame", args: argparse.Namespace) -> "pd.DataFrame":
        import pandas as pd
        dls = learn.dls
        source = Path(getattr(args, "file", "the data")).name
        if getattr(args, "file", None) is not None and hasattr(args, "delimiter"):
            df = _unquoted_tsv(df, args)
        cols = [str(c) for c in df.columns]
        text = getattr(args, "text_col", None) or getattr(dls, "text_col", None)
        if text is None or text not in cols:
            if getattr(args, "text_col", None) is not None:
                check_columns(cols, [text], "--text-col", source)
            text = "text" if "text" in cols else next(
                (c for c in cols if not pd.api.types.is_numeric_dtype(df[c])), None)
            if text is None:
                raise CLIError(f"{source} has no text column (columns: {', '.join(cols)}); name it with --text-col")
        col = df[text]
        if pd.api.types.is_numeric_dtype(col):
            raise CLIError(f"the text column {text!r} of {source} holds numbers, not text; name the text column with "
                           "--text-col")
        empty = col.isna() | col.astype(str).str.strip().eq("")
        if empty.any():
            raise CLIError(f"the text column {text!r} of {source} is empty on {int(empty.sum())} row(s) (file lines "
                           f"{_lines(df.index[empty.to_numpy()], getattr(args, 'header', True))}); drop or fill them")
        label = getattr(dls, "label_col", None)
        if label is not None and label in cols and not df[label].isna().all():
            known = {str(c) for c in dls.classes}
            seen = [v for v in pd.unique(df[label].dropna()) if str(v) not in known]
            if seen:
                shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in seen[:5])
                raise CLIError(f"the label column {label!r} of {source} has label(s) {shown} this model was not "
                               f"trained on (it knows {', '.join(map(str, dls.classes))}): is it the right model for "
                               "this file?")
        texts = col.astype(str).tolist()
        probs = learn.get_preds(dl=dls.test_dl(texts))[0].float().cpu().numpy()
        out = df.copy()
        out["prediction"] = [dls.classes[i] for i in probs.argmax(1)]
        for j, c in enumerate(dls.classes):
            out[f"prob_{c}"] = probs[:, j]
        return out

    def describe_state(self, state: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "classes" in state:
            out["classes"] = ", ".join(map(str, state["classes"]))
        vec = state.get("vectorizer")
        tok = vec.get("tokenizer") if isinstance(vec, dict) else state.get("tokenizer")
        if isinstance(tok, dict):
            out["tokenizer"] = tok.get("kind", "?")
        if isinstance(vec, dict):
            out["n-grams"] = f"{len(vec.get('features', []))} of 1..{vec.get('ngrams')} tokens"
        vocab = state.get("vocab")
        if isinstance(vocab, dict) and "itos" in vocab:
            out["vocabulary"] = len(vocab["itos"])
        for k in ("text_col", "label_col"):
            if state.get(k):
                out[k] = state[k]
        return out or state


def per_class_metrics(cm: Any, classes: Any) -> "pd.DataFrame":
    """Precision, recall, F1 and support of each class from a confusion matrix (rows actual, columns
    predicted); a class never predicted (or absent) gets precision (recall) 0."""
    import numpy as np
    import pandas as pd
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(0), cm.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return pd.DataFrame({"class": [str(c) for c in classes], "precision": precision, "recall": recall, "f1": f1,
                         "support": actual.astype(np.int64)})
