"""The training step shared by every application: learning-rate finder, one-cycle training with a
metrics CSV, export in safetensors format, and the standard plots (loss, schedule, lr_find)."""
from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

from .base import CLIError, Console, Prepared, RunDir

if TYPE_CHECKING:  # pragma: no cover
    from ..learner import Learner
    from .base import Application

__all__ = ["standard_train", "run_lr_find", "checkpoint_callbacks", "quiet_learner"]


def quiet_learner(learn: "Learner", console: Console) -> None:
    """Remove the per-epoch table/bars when the console is quiet."""
    if console.quiet:
        from ..callbacks.progress import ProgressCallback
        learn.remove_cb(ProgressCallback)


def run_lr_find(learn: "Learner", num_it: int, console: Console) -> Any:
    """Run the learning-rate sweep (weights are restored afterwards) and return its suggestions."""
    with console.step("lr_find"):
        res = learn.lr_find(num_it=num_it)
    console.info(f"lr_find: valley {res.valley:.3g}, steep {res.steep:.3g}, minimum {res.minimum:.3g}")
    return res


def checkpoint_callbacks(args: argparse.Namespace, run: RunDir, console: Console) -> tuple[list[Any], dict[str, Any]]:
    """Callbacks for `--checkpoint-every N` and keyword arguments of `fit_one_cycle` for `--resume`.

    Uses `deepfit.callbacks.Checkpoint` when this deepfit has it; otherwise the options are refused
    with a clear message."""
    every = getattr(args, "checkpoint_every", 0) or 0
    resume = getattr(args, "resume", False)
    if not every and not resume:
        return [], {}
    try:
        from ..callbacks import Checkpoint  # type: ignore[attr-defined]
    except ImportError:
        raise CLIError("--checkpoint-every/--resume need exact-resume checkpoints, which this deepfit build "
                       "does not have yet") from None
    ckpt_dir = run.file("checkpoints")
    cbs = [Checkpoint(ckpt_dir, every=every or 1)]
    kw: dict[str, Any] = {}
    if resume:
        last = sorted(ckpt_dir.glob("*")) if ckpt_dir.is_dir() else []
        if not last:
            raise CLIError(f"--resume: no checkpoint in {ckpt_dir}; train without --resume (and with "
                           "--checkpoint-every N) first")
        kw["resume_from"] = last[-1]
    return cbs, kw


def standard_train(app: "Application", args: argparse.Namespace, run: RunDir, prepared: Prepared,
                   console: Console) -> dict[str, Any]:
    """lr_find (plot, and the lr with `--lr auto`), `fit_one_cycle` logging every epoch to metrics.csv,
    export to model.safetensors, then loss / schedule plots and the application's own report items.

    Returns:
        The metrics of the last epoch.
    """
    from ..callbacks.logger import CSVLogger
    learn = prepared.learn
    quiet_learner(learn, console)
    lr: Any = args.lr
    n_find = args.lr_find_iters
    if lr == "auto" and n_find == 0:
        n_find = 100
    if n_find > 0:
        res = run_lr_find(learn, n_find, console)
        sugg = ", ".join(f"{k} {v:.2e}" for k, v in res.suggestions().items())
        run.add_figure("lr_find.png", "Learning-rate finder", lambda p: learn.recorder.plot_lr_find(fname=p),
                       caption=f"Smoothed loss against learning rate before training; suggestions: {sugg}.",
                       console=console)
        run.summary["lr_find"] = res.suggestions()
        if lr == "auto":
            if not (isinstance(res.valley, float) and math.isfinite(res.valley) and res.valley > 0):
                raise CLIError("--lr auto: the learning-rate finder found no valley (too few batches or a flat "
                               "loss); pass a number, e.g. --lr 1e-3")
            lr = res.valley
            console.info(f"--lr auto: using the valley suggestion {lr:.3g}")
    run.summary["lr"] = lr
    extra_cbs, fit_kw = checkpoint_callbacks(args, run, console)
    logger = CSVLogger(run.file("metrics.csv"), append=bool(fit_kw))
    learn.fit_one_cycle(args.epochs, lr, wd=args.wd, cbs=[logger] + extra_cbs, **fit_kw)
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
                       caption="Learning rate and momentum of the one-cycle policy, per training batch.",
                       console=console)
        app.report(prepared, run, console)
    return final
