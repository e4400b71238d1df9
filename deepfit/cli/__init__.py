"""The `deepfit` command: train, find a learning rate, predict and inspect models from the shell.

    deepfit demo --out runs/demo
    deepfit train tabular adult.csv --target salary --out runs/adult
    deepfit lr-find tabular adult.csv --target salary
    deepfit predict runs/adult/model.safetensors new_rows.csv --out predictions.csv
    deepfit info runs/adult/model.safetensors
    deepfit train lm nietzsche.txt --out runs/nietzsche
    deepfit generate runs/nietzsche/model.safetensors --prefix "the " -n 200
    deepfit style photo.jpg painting.jpg --out result.png

Applications plug in through `APPLICATIONS` (see `deepfit.cli.base.Application`): each is one object
with its own options, data preparation, report plots and prediction; the sub-commands are generic.
Exit status: 0 success, 1 internal error, 2 bad usage or bad input, 130 interrupted.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..errors import cli_message
from ..utils import atomic_path
from .base import (COMPLETE_MARKER, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Application, CLIError,
                   Console, RunDir, RunInterrupted, add_common_train_arguments, add_csv_arguments,
                   MIN_LR_FIND_ITERS, add_loader_arguments, check_input_file, read_table,
                   sweep_iters)
from .collab import CollabApp
from .tabular import TabularApp
from .text import TextLMApp, add_generate_arguments
from .textclass import TextClassApp
from .translate import TranslateApp, add_translate_arguments
from .segment import SegmentApp
from .vision import VisionApp

__all__ = ["main", "build_parser", "APPLICATIONS", "Application", "CLIError"]

#: The applications of `deepfit train/lr-find/predict`. A new one is one module and one entry here.
APPLICATIONS: list[Application] = [TabularApp(), CollabApp(), TextLMApp(), TextClassApp(), VisionApp(),
                                   TranslateApp(), SegmentApp()]

_EPILOG = """\
examples:
  deepfit demo --out runs/demo                       MLP on MNIST (or generated digits), with report
  deepfit train tabular adult.csv --target salary    train a tabular model; writes runs/tabular-<time>/
  deepfit train collab u.data --no-header --names user,item,rating,ts --user user --item item --target rating
  deepfit train lm nietzsche.txt --tokenizer char --epochs 5 --out runs/nietzsche
  deepfit generate runs/nietzsche/model.safetensors --prefix "the meaning of " -n 200
  deepfit style photo.jpg painting.jpg --out result.png   paint a photo in the style of another image
  deepfit train text reviews.csv --text-col review --label-col sentiment --method nbsvm
  deepfit train vision pets --size 128 --arch resnet34    images in one folder per class
  deepfit train translate train.de train.en --valid-src val.de --valid-tgt val.en --out runs/de-en
  deepfit translate runs/de-en/model.safetensors --text "Ein Hund läuft im Schnee." --beam 5
  deepfit lr-find tabular adult.csv --target salary --plot lr.png
  deepfit predict runs/adult/model.safetensors new.csv --out predictions.csv
  deepfit info runs/adult/model.safetensors

Every training run writes model.safetensors, metrics.csv, PNG plots and a self-contained
report.html into its directory; an unfinished run stays in DIR.incomplete/ (see its STATUS file),
a finished one has a COMPLETE marker. Exit status: 0 ok, 2 bad usage or input, 1 internal error,
130 interrupted. Add --debug to see the traceback of an internal error.
"""


class _UsageError(Exception):
    """argparse found bad usage; `parser` prints the usage line."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    # Report usage errors as "deepfit: error: ..." with exit status 2, without leaving `main` by SystemExit.
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise _UsageError(self, message)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    # Descriptions are wrapped here (see `_wrap`); epilogs keep their example layout.
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=100)


def _wrap(text: str) -> str:
    import textwrap
    return "\n\n".join(textwrap.fill(p, 100) for p in text.split("\n\n"))


def _common_flags(defaults: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("general")
    d: Any = False if defaults else argparse.SUPPRESS
    g.add_argument("-q", "--quiet", action="store_true", default=d, help="no progress messages or bars")
    g.add_argument("--debug", action="store_true", default=d, help="show the full traceback of an internal error")
    return p


def build_parser(apps: Sequence[Application] | None = None) -> argparse.ArgumentParser:
    """The argument parser of the `deepfit` command (one sub-parser per application under train/lr-find)."""
    from .. import __version__
    from .demo import add_demo_arguments
    apps = APPLICATIONS if apps is None else apps
    flags = _common_flags(defaults=False)
    parser = _Parser(prog="deepfit", formatter_class=_Formatter, parents=[_common_flags(defaults=True)],
                     description="Train accurate models on your own data: tables, ratings and text (images next).",
                     epilog=_EPILOG)
    parser.add_argument("--version", action="version", version=f"deepfit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p_demo = sub.add_parser("demo", help="the main job: train an MLP on MNIST and write a full run report",
                            formatter_class=_Formatter, parents=[flags],
                            description=_wrap("Train an MLP on MNIST (real data from --data, $DEEPFIT_DATA or "
                                              "../shared/data when present, else generated MNIST-like digits) and "
                                              "write the run directory: model, metrics CSV, plots, report.html."),
                            epilog="example:\n  deepfit demo --out runs/demo --epochs 3")
    add_demo_arguments(p_demo)
    p_demo.set_defaults(func=_cmd_demo)

    p_train = sub.add_parser("train", help="train a model on a data file and write a run directory",
                             formatter_class=_Formatter,
                             description="Train a model on a data file (a table, ratings, a text). Pick the application:",
                             epilog="\n".join(f"  deepfit train {a.name} --help" for a in apps))
    tsub = p_train.add_subparsers(dest="app_name", metavar="APPLICATION", parser_class=_Parser)
    p_find = sub.add_parser("lr-find", help="sweep learning rates and suggest one (no training)",
                            formatter_class=_Formatter,
                            description="Run the learning-rate finder on a data file and print its suggestions.")
    fsub = p_find.add_subparsers(dest="app_name", metavar="APPLICATION", parser_class=_Parser)
    for app in apps:
        pt = tsub.add_parser(app.name, help=app.help, description=_wrap(app.description), epilog=app.examples,
                             formatter_class=_Formatter, parents=[flags])
        app.add_arguments(pt)
        if getattr(app, "reads_table", True):
            add_csv_arguments(pt)
        add_common_train_arguments(pt, app.default_lr, app.default_epochs, app.default_bs)
        _finish_arguments(app, pt)
        pt.set_defaults(func=_cmd_train, app=app)
        pf = fsub.add_parser(app.name, help=app.help,
                             description=_wrap(f"lr_find for {app.name}: " + app.description),
                             formatter_class=_Formatter, parents=[flags])
        app.add_arguments(pf)
        if getattr(app, "reads_table", True):
            add_csv_arguments(pf)
        add_loader_arguments(pf, app.default_bs)
        _finish_arguments(app, pf)
        g = pf.add_argument_group("learning-rate finder")
        g.add_argument("--num-it", type=sweep_iters, default=100,
                       help=f"batches in the sweep (at least {MIN_LR_FIND_ITERS}; default: %(default)s)")
        g.add_argument("--plot", type=Path, default=None, metavar="PNG", help="also save the loss/lr plot here")
        pf.set_defaults(func=_cmd_lr_find, app=app)

    p_pred = sub.add_parser("predict", help="predict the rows of a CSV file with an exported model",
                            formatter_class=_Formatter, parents=[flags],
                            description=_wrap("Load MODEL (model.safetensors of a run) and write one prediction per "
                                              "row of FILE to a CSV file (the input columns first, then the "
                                              "predictions). An image model takes image files or folders instead "
                                              "and writes one row per image (file, prediction, probabilities)."),
                            epilog="examples:\n  deepfit predict runs/adult/model.safetensors new.csv --out preds.csv\n"
                                   "  deepfit predict runs/pets/model.safetensors photos/ --out photos.csv   (images)")
    p_pred.add_argument("model", type=Path, metavar="MODEL", help="an exported model (model.safetensors)")
    p_pred.add_argument("file", type=Path, nargs="+", metavar="FILE",
                        help="the rows to predict (delimited text); for an image model: image files or a folder")
    p_pred.add_argument("--out", type=Path, default=None, metavar="CSV",
                        help="where to write the predictions (default: FILE-stem.predictions.csv in the current "
                             "directory)")
    p_pred.add_argument("--only-predictions", action="store_true", help="do not repeat the input columns")
    add_csv_arguments(p_pred)
    for app in apps:
        app.add_predict_arguments(p_pred)
    p_pred.set_defaults(func=_cmd_predict)

    p_gen = sub.add_parser("generate", help="continue a text with a language model", formatter_class=_Formatter,
                           parents=[flags],
                           description=_wrap("Load MODEL (the model.safetensors of `deepfit train lm`) and print the "
                                             "continuation of --prefix: -n tokens, sampled at --temperature (or "
                                             "--greedy)."),
                           epilog='example:\n  deepfit generate runs/nietzsche/model.safetensors --prefix "the '
                                  'meaning of " -n 200 --temperature 0.8')
    add_generate_arguments(p_gen)
    p_gen.set_defaults(func=_cmd_generate)

    from .style import add_style_arguments
    p_style = sub.add_parser("style", help="paint an image in the style of another (neural style transfer)",
                             formatter_class=_Formatter, parents=[flags],
                             description=_wrap("Optimise an image with L-BFGS so that its deep features match "
                                               "CONTENT's and their Gram matrices match STYLE's (Gatys et al. "
                                               "2016), and write it as a PNG. The default feature network, random "
                                               "multi-scale filters, needs no download; --extractor vgg16/vgg19 "
                                               "uses torchvision's weights from the local torch hub cache."),
                             epilog="examples:\n  deepfit style photo.jpg painting.jpg --out result.png --size 256\n"
                                    "  deepfit style photo.jpg painting.jpg --extractor vgg19 --style-weight 1e4")
    add_style_arguments(p_style)
    p_style.set_defaults(func=_cmd_style)

    p_tr = sub.add_parser("translate", help="translate sentences with a translation model", formatter_class=_Formatter,
                          parents=[flags],
                          description=_wrap("Load MODEL (the model.safetensors of `deepfit train translate`) and "
                                            "translate the --text sentences or every line of --file (greedy, or "
                                            "beam search with --beam)."),
                          epilog='examples:\n  deepfit translate runs/de-en/model.safetensors --text "Ein Hund läuft '
                                 'im Schnee." --beam 5\n  deepfit translate runs/de-en/model.safetensors --file '
                                 'test.de --out test.en')
    add_translate_arguments(p_tr)
    p_tr.set_defaults(func=_cmd_translate)

    p_info = sub.add_parser("info", help="describe an exported model", formatter_class=_Formatter, parents=[flags],
                            description=_wrap("Print what an exported model is: application, architecture, data "
                                              "preprocessing, and the metrics of the run that made it (when its "
                                              "run.json is beside it). The file is checked as predict loads it: "
                                              "a damaged file is an error (exit status 2)."))
    p_info.add_argument("model", type=Path, metavar="MODEL")
    p_info.add_argument("--json", action="store_true", help="print the description as JSON")
    p_info.set_defaults(func=_cmd_info)
    return parser


def _finish_arguments(app: Application, parser: argparse.ArgumentParser) -> None:
    # an application may adjust the shared options after they are added (e.g. the help of --valid-pct)
    finish = getattr(app, "finish_arguments", None)
    if finish is not None:
        finish(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `deepfit` command with `argv` (default `sys.argv[1:]`) and return its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        e.parser.print_usage(sys.stderr)
        print(f"deepfit: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help / --version
        return int(e.code or 0) if isinstance(e.code, int) or e.code is None else EXIT_USAGE
    if getattr(args, "func", None) is None:
        target = parser
        if getattr(args, "command", None) in ("train", "lr-find"):
            target = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
            target.print_help(sys.stderr)
            print(f"\ndeepfit: error: choose an application: {', '.join(a.name for a in APPLICATIONS)}",
                  file=sys.stderr)
            return EXIT_USAGE
        target.print_help(sys.stderr)
        print("\ndeepfit: error: choose a command", file=sys.stderr)
        return EXIT_USAGE
    console = Console(quiet=getattr(args, "quiet", False))
    import matplotlib
    matplotlib.use("Agg")  # the command line only ever writes image files
    try:
        with _terminate_as_interrupt():
            return int(args.func(args, console) or 0)
    except CLIError as e:
        print(f"deepfit: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunInterrupted as e:
        print(f"deepfit: interrupted: {e}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("deepfit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the last line of defence
        if isinstance(e, _user_error_types()):
            print(f"deepfit: error: {cli_message(e)}", file=sys.stderr)
            return EXIT_USAGE
        if debug:
            traceback.print_exc()
        print(f"deepfit: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        if not debug:
            print("(this is a bug in deepfit or an unexpected situation; rerun with --debug to see the traceback)",
                  file=sys.stderr)
        return EXIT_INTERNAL


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (e.g. `kill`, a job scheduler's time limit) like Ctrl-C while a command runs, so the
    run directory is marked interrupted instead of being left as if still running."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from ..callbacks.training import NonFiniteLossError
    from ..export import ExportError
    types: list[type[BaseException]] = [ExportError, NonFiniteLossError, FileNotFoundError, PermissionError]
    for app in APPLICATIONS:
        types.extend(app.load_user_errors())
    return tuple(types)


# ---- commands ------------------------------------------------------------------------------------------
def _config(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"func", "app", "debug", "quiet"}
    out: dict[str, Any] = {}
    for k, v in vars(args).items():
        if k in skip:
            continue
        out[k] = str(v) if isinstance(v, Path) else v
    return out


def _default_out(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _prepare(app: Application, args: argparse.Namespace, console: Console) -> Any:
    # Reading and checking the data: a ValueError here is about the user's data or options.
    from ..utils import set_seed
    set_seed(args.seed)
    try:
        return app.prepare(args, console)
    except (CLIError, KeyboardInterrupt):
        raise
    except ValueError as e:
        raise CLIError(cli_message(e)) from None


def train_in_run(app: Application, args: argparse.Namespace, prepared: Any, console: Console, title: str,
                 overwrite: bool) -> tuple[Path, dict[str, Any]]:
    """Create the run directory, train, and finish it; interruptions and failures are recorded in
    `<out>.incomplete/STATUS` and never produce a directory that looks finished. The run directory is
    locked against other runs until this returns."""
    from .runs import record_settings
    resume = getattr(args, "resume", False)
    run = RunDir.create(args.out, overwrite=overwrite, resume=resume, restart=getattr(args, "restart", False))
    try:
        if not resume:
            record_settings(run.path, args)
        return _train_and_finish(app, args, run, prepared, console, title)
    finally:
        run.release()


def _train_and_finish(app: Application, args: argparse.Namespace, run: RunDir, prepared: Any, console: Console,
                      title: str) -> tuple[Path, dict[str, Any]]:
    run.summary["data"] = prepared.description
    run.summary.update(prepared.facts)
    if getattr(args, "mixed_precision", False) and hasattr(prepared.learn, "add_cb"):
        from ..callbacks import MixedPrecision
        prepared.learn.add_cb(MixedPrecision())
        run.summary["precision"] = "mixed (bfloat16 autocast)" if prepared.learn.dls.device.type != "cuda" else \
            "mixed (float16 autocast, loss scaling)"
    try:
        final = app.train(args, run, prepared, console)
        path = run.finish(title, _config(args))
    except KeyboardInterrupt:
        epoch = getattr(prepared.learn, "epoch", 0)
        run.set_status("interrupted", f"during epoch {epoch} of {getattr(args, 'epochs', '?')}")
        hint = (" Run the same command with --resume to continue from the last checkpoint."
                if getattr(args, "checkpoint_every", 0) else "")
        raise RunInterrupted(f"the run did not finish; its partial output is in {run.path} (STATUS says "
                             f"'interrupted', and there is no {COMPLETE_MARKER} marker).{hint}") from None
    except BaseException as e:
        run.set_status("failed", f"{type(e).__name__}: {cli_message(e)}")
        raise
    return path, final



def _print_final(console: Console, final: dict[str, Any], path: Path) -> None:
    metrics = "  ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in final.items()
                        if k not in ("time",))
    console.result(f"final: {metrics}")
    files = sorted(p.name for p in path.iterdir())
    console.result(f"wrote {path}/ ({', '.join(files)})")
    console.result(f"report: {path / 'report.html'}")


def _cmd_train(args: argparse.Namespace, console: Console) -> int:
    app: Application = args.app
    if args.out is None:
        if args.resume:
            raise CLIError("--resume needs --out DIR: the output directory of the interrupted run")
        args.out = _default_out(app.name)
    work = RunDir.check(args.out, args.overwrite, args.resume, args.restart)  # before reading anything
    if args.resume:
        from .runs import check_resume
        check_resume(work, args)
    prepared = _prepare(app, args, console)
    console.info(prepared.description)
    path, final = train_in_run(app, args, prepared, console, f"deepfit {app.name}: {Path(args.file).name}",
                               args.overwrite)
    _print_final(console, final, path)
    return EXIT_OK


def _cmd_lr_find(args: argparse.Namespace, console: Console) -> int:
    from .training import quiet_learner, run_lr_find
    app: Application = args.app
    if args.plot is not None:
        _check_output_file(args.plot, [Path(args.file)])
    prepared = _prepare(app, args, console)
    console.info(prepared.description)
    quiet_learner(prepared.learn, console)
    res = run_lr_find(prepared.learn, args.num_it, console)
    console.result(f"valley  {res.valley:.3g}   (suggested: --lr {res.valley:.2g})")
    console.result(f"steep   {res.steep:.3g}")
    console.result(f"minimum {res.minimum:.3g}")
    if args.plot is not None:
        with atomic_path(args.plot, suffix=".png") as tmp:
            prepared.learn.recorder.plot_lr_find(fname=tmp)
        console.result(f"plot: {args.plot}")
    return EXIT_OK


def _check_output_file(out: Path, inputs: Sequence[Path]) -> None:
    out = Path(out)
    for p in inputs:
        if p.exists() and out.exists() and out.resolve() == p.resolve():
            raise CLIError(f"the output {out} is the input file {p}; choose another --out (deepfit never "
                           "overwrites its inputs)")
    if out.is_dir():
        raise CLIError(f"--out {out} is a directory; give a file name such as {out / 'predictions.csv'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise CLIError(f"cannot write {out}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise CLIError(f"cannot write {out}: {parent} is not a directory")
    if os.name == "posix" and os.geteuid() != 0 and not os.access(parent, os.W_OK):
        raise CLIError(f"cannot write {out}: the directory {parent} is not writable")


def app_for_model(meta: dict[str, str], model: Path) -> Application:
    """The application whose exported DataLoaders class this model carries."""
    dls = meta.get("dls_class", "")
    for app in APPLICATIONS:
        if dls in app.dls_classes:
            return app
    known = ", ".join(a.name for a in APPLICATIONS)
    what = f"its data pipeline is {dls}" if dls else "it carries no data pipeline"
    raise CLIError(f"{model} cannot predict from a CSV file: {what}, which is none of the command-line "
                   f"applications ({known}). deepfit info {model} describes it; predicting with it needs Python")


def _cmd_predict(args: argparse.Namespace, console: Console) -> int:
    from ..export import load_learner, read_header
    model = check_input_file(args.model, "model file")
    own_command = getattr(app_for_file(model), "predict_command", None)
    if own_command is not None:  # an application that writes something other than a CSV (segment: mask PNGs)
        return int(own_command(args, console, model))
    if getattr(app_for_file(model), "predict_files", None) is not None:
        return _cmd_predict_files(args, console, model)  # images: files and folders, not rows of a table
    if len(args.file) != 1:
        raise CLIError(f"give one FILE of rows to predict; received {len(args.file)} ({', '.join(map(str, args.file[:3]))}"
                       f"{' ...' if len(args.file) > 3 else ''})")
    args.file = args.file[0]
    check_input_file(args.file, "input file")
    out = args.out if args.out is not None else Path(f"{Path(args.file).stem}.predictions.csv")
    _check_output_file(out, [Path(args.file), model])
    meta = read_header(model)
    app = app_for_model(meta, model)
    instead = getattr(app, "predict_instead", None)
    if instead:
        raise CLIError(f"{model} {instead}")
    with console.step("loading the model"):
        learn = load_learner(model, device=getattr(args, "device", None))
    df = read_table(args.file, args.delimiter, args.encoding, args.header, args.names, console,
                    na_values=args.na_values)
    try:
        preds = app.predict(learn, df, args)
    except (CLIError, KeyboardInterrupt):
        raise
    except ValueError as e:
        raise CLIError(f"cannot predict {args.file} with {model}: {cli_message(e)}") from None
    _check_finite_predictions(preds, df, args, model)
    if args.only_predictions:
        new_cols = [c for c in preds.columns if c not in df.columns]
        preds = preds[new_cols]
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        preds.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CLIError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    console.result(f"wrote {len(preds):,} predictions to {out}")
    return EXIT_OK


def app_for_file(model: Path) -> Application | None:
    """The application of an exported model file, or None when none of them made it."""
    from ..export import read_header
    dls = read_header(model).get("dls_class", "")
    return next((a for a in APPLICATIONS if dls in a.dls_classes), None)


def _cmd_predict_files(args: argparse.Namespace, console: Console, model: Path) -> int:
    # `deepfit predict MODEL IMAGES...|FOLDER` for applications whose inputs are files (images)
    from ..export import load_learner
    from .vision import check_image_inputs, default_predictions_name
    app = app_for_file(model)
    inputs = [Path(p) for p in args.file]
    check_image_inputs(inputs)
    out = args.out if args.out is not None else default_predictions_name(inputs)
    _check_output_file(out, [p for p in inputs if p.is_file()] + [model])
    with console.step("loading the model"):
        learn = load_learner(model, device=getattr(args, "device", None))
    try:
        preds = app.predict_files(learn, inputs, args, console)  # type: ignore[union-attr]
    except (CLIError, KeyboardInterrupt):
        raise
    except ValueError as e:
        raise CLIError(f"cannot predict {', '.join(map(str, inputs[:3]))} with {model}: {e}") from None
    with atomic_path(out) as tmp:
        preds.to_csv(tmp, index=False)
    console.result(f"wrote {len(preds):,} predictions to {out}")
    return EXIT_OK


def _check_finite_predictions(preds: Any, df: Any, args: argparse.Namespace, model: Path) -> None:
    """Refuse to write predictions that are not numbers (NaN, infinite): they would read as answers."""
    import numpy as np
    import pandas as pd
    bad = np.zeros(len(preds), dtype=bool)
    cols = []
    for c in preds.columns:
        if c in df.columns or not pd.api.types.is_numeric_dtype(preds[c].dtype):
            continue
        nf = ~np.isfinite(preds[c].to_numpy(dtype="float64", na_value=np.nan))
        if nf.any():
            bad |= nf
            cols.append(str(c))
    if bad.any():
        lines = np.flatnonzero(bad) + (2 if args.header else 1)
        shown = ", ".join(map(str, lines[:5])) + (", ..." if len(lines) > 5 else "")
        raise CLIError(f"{model} gives no usable prediction ({', '.join(cols)} not a number) for {int(bad.sum())} "
                       f"row(s) "
                       f"of {args.file} (file line{'s' if len(lines) > 1 else ''} {shown}); nothing was written. Check "
                       "those rows for extreme values, and that the model was trained without errors")


def describe_model(model: Path) -> dict[str, Any]:
    """What `deepfit info` shows, as a dict. The file is checked exactly as `predict` loads it
    (`deepfit.export.check_export`, the checks of `load_learner`): a damaged file is an error, not a description."""
    from ..export import check_export
    model = check_input_file(model, "model file")
    checked = check_export(model)
    meta, config, state = checked.meta, checked.config, checked.dls_state
    dls = meta.get("dls_class", "")
    app = next((a for a in APPLICATIONS if dls in a.dls_classes), None)
    from .demo import DEMO_DLS
    app_name = app.name if app is not None else ("demo (digits)" if dls in DEMO_DLS else "-")
    info: dict[str, Any] = {
        "file": str(model), "size_bytes": model.stat().st_size, "application": app_name,
        "model": meta.get("model_class", "?"), "model_config": config, "loss": meta.get("loss", "?"),
        "data_pipeline": dls or "-", "deepfit_version": meta.get("deepfit_version", "?"),
        "format_version": meta.get("format_version", "?"),
    }
    info["data"] = app.describe_state(state) if app is not None else _summarise_state(state)
    run_json = model.parent / "run.json"
    if run_json.is_file():
        try:
            summary = json.loads(run_json.read_text()).get("summary", {})
            info["training"] = {k: summary[k] for k in ("data", "epochs", "lr", "final_metrics") if k in summary}
        except (ValueError, OSError):
            pass
    return info


def _summarise_state(state: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in state.items():
        if isinstance(v, list) and len(v) > 8:
            out[k] = f"{len(v)} items: " + ", ".join(map(str, v[:6])) + ", ..."
        elif isinstance(v, dict) and len(v) > 8:
            out[k] = f"{len(v)} entries: " + ", ".join(map(str, list(v)[:6])) + ", ..."
        else:
            out[k] = v
    return out


def _cmd_info(args: argparse.Namespace, console: Console) -> int:
    info = describe_model(args.model)
    if args.json:
        console.result(json.dumps(info, indent=2, default=str))
        return EXIT_OK
    width = max(len(k) for k in info) + 1
    for k, v in info.items():
        if isinstance(v, dict):
            console.result(f"{k + ':':<{width}}")
            for kk, vv in v.items():
                console.result(f"  {kk}: {json.dumps(vv, default=str) if not isinstance(vv, str) else vv}")
        else:
            console.result(f"{k + ':':<{width}} {v}")
    return EXIT_OK


def _cmd_generate(args: argparse.Namespace, console: Console) -> int:
    from .text import cmd_generate
    return cmd_generate(args, console)


def _cmd_style(args: argparse.Namespace, console: Console) -> int:
    from .style import cmd_style
    return cmd_style(args, console)


def _cmd_translate(args: argparse.Namespace, console: Console) -> int:
    from .translate import cmd_translate
    return cmd_translate(args, console)


def _cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from .demo import run_demo
    return run_demo(args, console)
