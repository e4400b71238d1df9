"""The training step shared by every application: learning-rate finder, one-cycle training with a
metrics CSV, export in safetensors format, and the standard plots (loss, schedule, lr_find)."""
from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING, Any

from ..utils import atomic_path
from .base import CLIError, Console, Prepared, ReportItem, RunDir

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
            if not (isinstance(res.valley, float) and math.isfinite(res.valley) and res.valley > 0):
                raise CLIError("--lr auto: the learning-rate finder found no valley (too few batches or a flat "
                               "loss); pass a number, e.g. --lr 1e-3")
            lr = res.valley
            console.info(f"--lr auto: using the valley suggestion {lr:.3g}")
    run.summary["lr"] = lr
    run.file(RESUME_STATE).write_text(json.dumps({"lr": lr, "lr_find": run.summary.get("lr_find")}))
    extra_cbs, fit_kw = checkpoint_callbacks(args, run, console)
    logger = CSVLogger(run.file("metrics.csv"), append=bool(fit_kw))
    from ..callbacks.checkpoint import CheckpointError
    try:
        learn.fit_one_cycle(args.epochs, lr, wd=args.wd, cbs=[logger] + extra_cbs, **fit_kw)
    except CheckpointError as e:  # --resume into a run that does not match its checkpoint
        raise CLIError(f"--resume: {e} Resume with the options the interrupted run was started with, or start "
                       "over with --restart") from None
    if fit_kw:
        _rewrite_metrics(learn, run.file("metrics.csv"))
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
