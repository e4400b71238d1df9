"""The training step shared by every application: learning-rate finder, one-cycle training with a
metrics CSV, export in safetensors format, and the standard plots (loss, schedule, lr_find)."""
from __future__ import annotations

import argparse
import json
import math
import warnings
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..callbacks.recorder import VALID_LOSS_RISE, ValidLossWarning, valid_loss_rise
from ..utils import atomic_path
from .base import CLIError, Console, Prepared, ReportItem, RunDir

if TYPE_CHECKING:  # pragma: no cover
    from ..learner import Learner
    from .base import Application

__all__ = ["standard_train", "run_lr_find", "checkpoint_callbacks", "quiet_learner", "add_warning",
           "warn_valid_loss_rise", "choose_auto_lr"]


def quiet_learner(learn: "Learner", console: Console) -> None:
    """Remove the per-epoch table/bars when the console is quiet."""
    if console.quiet:
        from ..callbacks.progress import ProgressCallback
        learn.remove_cb(ProgressCallback)


def run_lr_find(learn: "Learner", num_it: int, console: Console) -> Any:
    """Run the learning-rate sweep (weights are restored afterwards) and return its suggestions."""
    with console.step("lr_find"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a fallback is said below, as a console warning
        res = learn.lr_find(num_it=num_it)
    if getattr(res, "fallback", False):
        console.warn(f"lr_find: the sweep recorded only {len(res.lrs)} usable batch(es) (the loss diverged), too "
                     "few to find a valley; its suggestions are a tenth of the rate of the lowest loss")
    console.info(f"lr_find: valley {res.valley:.3g}, steep {res.steep:.3g}, minimum {res.minimum:.3g}")
    return res


CHECKPOINT = "checkpoints/checkpoint.pth"
RESUME_STATE = "resume.json"


def checkpoint_callbacks(args: argparse.Namespace, run: RunDir, console: Console) -> tuple[list[Any], dict[str, Any]]:
    """Callbacks for `--checkpoint-every N` and keyword arguments of `fit_one_cycle` for `--resume`.

    Checkpoints go to `<run>/checkpoints/checkpoint.pth` (written atomically by deepfit's `Checkpoint`
    callback); `--resume` repeats the training call with `resume_from=` that file, which continues from
    the exact batch after it."""
    every = getattr(args, "checkpoint_every", 0) or 0
    resume = getattr(args, "resume", False)
    if not every and not resume:
        return [], {}
    try:
        from ..callbacks import Checkpoint
    except ImportError:  # pragma: no cover - older deepfit
        raise CLIError("--checkpoint-every/--resume need exact-resume checkpoints, which this deepfit build "
                       "does not have") from None
    path = run.file(CHECKPOINT).resolve()
    cbs: list[Any] = [Checkpoint(every_n_epochs=every or 1, fname=path)]
    kw: dict[str, Any] = {}
    if resume:
        if not path.is_file():
            raise CLIError(f"--resume: no checkpoint at {path} (the interrupted run was started without "
                           "--checkpoint-every N, or stopped before its first checkpoint); train without --resume")
        kw["resume_from"] = path
    return cbs, kw


def _saved_lr(run: RunDir) -> dict[str, Any] | None:
    p = run.file(RESUME_STATE)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None


def _rewrite_metrics(learn: "Learner", path: Any) -> None:
    """metrics.csv from the recorder's full history (after a resume it also holds the epochs done before
    the interruption, restored from the checkpoint)."""
    import csv
    names = learn.recorder.metric_names
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names, extrasaction="ignore")
        w.writeheader()
        for row in learn.recorder.log:
            w.writerow(row)


def add_warning(run: RunDir, console: Console, msg: str) -> None:
    """A warning on the console, in run.json (`summary.warnings`) and at the top of the report."""
    console.warn(msg)
    run.summary.setdefault("warnings", []).append(msg)
    run.items.insert(0, ReportItem("text", "Warning", msg))


def warn_valid_loss_rise(learn: "Learner", run: RunDir, console: Console) -> None:
    """Warn when the last epoch's validation loss ended far above the best epoch's."""
    rise = valid_loss_rise(learn.recorder.log)
    if rise is not None:
        e, best, last = rise
        add_warning(run, console, f"the validation loss ended at {last:.4g}, more than {VALID_LOSS_RISE}x its best "
                                  f"({best:.4g} at epoch {e}): the model got worse late in training; try a lower "
                                  "--lr or fewer --epochs")


MIN_AUTO_SWEEP = 50
"""`--lr auto` trusts a sweep of at least this many batches; a shorter one falls back to the default lr."""
AUTO_LR_RANGE = (1 / 3, 10.0)
"""`--lr auto` keeps the valley within these multiples of the application's default lr."""


def choose_auto_lr(res: Any, default_lr: float, run: RunDir | None, console: Console) -> float:
    """The learning rate for `--lr auto`: lr_find's valley when the sweep can be trusted, clamped into
    `AUTO_LR_RANGE` times the application's default lr; the default lr when the sweep was too short
    (fewer than `MIN_AUTO_SWEEP` batches recorded), gave no valley, or was flat. Every fallback and
    clamp is a warning (console, run.json, report)."""
    def fallback(why: str) -> float:
        msg = f"--lr auto: {why}; using the default --lr {default_lr:g} instead"
        add_warning(run, console, msg) if run is not None else console.warn(msg)
        return float(default_lr)

    n = len(getattr(res, "lrs", ()))
    if n < MIN_AUTO_SWEEP:
        return fallback(f"the learning-rate sweep recorded only {n} batches (it needs at least {MIN_AUTO_SWEEP}; "
                        "raise --lr-find-iters, or it stopped early because the loss diverged)")
    valley = res.valley
    if not (isinstance(valley, float) and math.isfinite(valley) and valley > 0) or getattr(res, "fallback", False):
        return fallback("the learning-rate sweep found no valley")
    losses = np.asarray(res.losses, dtype=float)
    ok = losses[np.isfinite(losses)]
    if len(ok) and (ok.max() - ok.min()) <= 0.01 * abs(ok.max()):
        return fallback("the loss hardly changed during the learning-rate sweep (flat), so it suggests nothing")
    lo, hi = default_lr * AUTO_LR_RANGE[0], default_lr * AUTO_LR_RANGE[1]
    if not lo <= valley <= hi:
        lr = min(max(valley, lo), hi)
        msg = (f"--lr auto: the sweep's valley {valley:.3g} is implausibly {'low' if valley < lo else 'high'} "
               f"(outside {lo:.2g}..{hi:.2g} around the default {default_lr:g}); using {lr:.3g}. Look at "
               "lr_find.png and pass --lr yourself if another rate looks better")
        add_warning(run, console, msg) if run is not None else console.warn(msg)
        return float(lr)
    console.info(f"--lr auto: using the valley suggestion {valley:.3g}")
    return float(valley)


def standard_train(app: "Application", args: argparse.Namespace, run: RunDir, prepared: Prepared,
                   console: Console, fit: Callable[..., None] | None = None,
                   schedule_caption: str = "Learning rate and momentum of the one-cycle policy, per training batch.",
                   ) -> dict[str, Any]:
    """lr_find (plot, and the lr with `--lr auto`), `fit_one_cycle` logging every epoch to metrics.csv,
    export to model.safetensors, then loss / schedule plots and the application's own report items.

    `fit(learn, lr, cbs, fit_kw)` replaces `fit_one_cycle` for a training recipe with its own schedule and
    rates: no lr_find then, and `lr` stays "auto" unless `--lr` was given.

    Returns:
        The metrics of the last epoch.
    """
    from ..callbacks.logger import CSVLogger
    learn = prepared.learn
    quiet_learner(learn, console)
    lr: Any = args.lr
    n_find = args.lr_find_iters
    if fit is not None:  # a recipe with its own rates: no sweep
        n_find = 0
    elif lr == "auto" and n_find == 0:
        n_find = 100
    saved = _saved_lr(run) if getattr(args, "resume", False) else None
    if saved is not None:  # resuming: the same lr as the interrupted run, no new sweep
        lr, n_find = saved["lr"], 0
        if saved.get("lr_find"):
            run.summary["lr_find"] = saved["lr_find"]
            if run.file("lr_find.png").is_file():
                run.items.append(ReportItem("figure", "Learning-rate finder", "lr_find.png",
                                            "Smoothed loss against learning rate before training."))
    if n_find > 0:
        res = run_lr_find(learn, n_find, console)
        sugg = ", ".join(f"{k} {v:.2e}" for k, v in res.suggestions().items())
        run.add_figure("lr_find.png", "Learning-rate finder", lambda p: learn.recorder.plot_lr_find(fname=p),
                       caption=f"Smoothed loss against learning rate before training; suggestions: {sugg}.",
                       console=console)
        run.summary["lr_find"] = res.suggestions()
        if lr == "auto":
            lr = choose_auto_lr(res, app.default_lr, run, console)
    run.summary["lr"] = lr
    run.file(RESUME_STATE).write_text(json.dumps({"lr": lr, "lr_find": run.summary.get("lr_find")}))
    extra_cbs, fit_kw = checkpoint_callbacks(args, run, console)
    logger = CSVLogger(run.file("metrics.csv"), append=bool(fit_kw))
    from ..callbacks.checkpoint import CheckpointError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ValidLossWarning)  # said below, as a console warning and in the report
            if fit is None:
                learn.fit_one_cycle(args.epochs, lr, wd=args.wd, cbs=[logger] + extra_cbs, **fit_kw)
            else:
                fit(learn, lr, [logger] + extra_cbs, fit_kw)
    except CheckpointError as e:  # --resume into a run that does not match its checkpoint
        raise CLIError(f"--resume: {e} Resume with the options the interrupted run was started with, or start "
                       "over with --restart") from None
    if fit_kw:
        _rewrite_metrics(learn, run.file("metrics.csv"))
    warn_valid_loss_rise(learn, run, console)
    with console.step("exporting the model"):
        learn.export(run.file("model.safetensors"))
    final = dict(learn.recorder.log[-1]) if learn.recorder.log else {}
    run.summary["final_metrics"] = {k: v for k, v in final.items() if k != "time"}
    run.summary["epochs"] = args.epochs
    with console.step("plotting"):
        run.add_figure("loss.png", "Loss", lambda p: learn.recorder.plot_loss(fname=p),
                       caption="Training loss per batch (raw and smoothed) and validation loss per epoch.",
                       console=console)
        run.add_figure("schedule.png", "Schedule", lambda p: learn.recorder.plot_sched(fname=p),
                       caption=schedule_caption,
                       console=console)
        app.report(prepared, run, console)
    return final
