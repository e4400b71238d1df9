"""`deepfit demo`: the main job. An MLP on MNIST (or generated MNIST-like digits when the real files are
absent), written to a run directory with the model, metrics CSV, plots and report.html."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .base import (Application, CLIError, Console, Prepared, RunDir, add_common_train_arguments, int_list)

__all__ = ["add_demo_arguments", "run_demo", "default_data_dir", "DigitsReport", "DEMO_DLS"]

#: DataLoaders classes of demo models (for `deepfit info`).
DEMO_DLS = ("DigitDataLoaders",)


def default_data_dir() -> Path:
    """$DEEPFIT_DATA when set, else ../shared/data next to the current directory's parent."""
    env = os.environ.get("DEEPFIT_DATA")
    return Path(env) if env else Path("..") / "shared" / "data"


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, metavar="DIR",
                   help="folder with the MNIST IDX files (or its parent holding mnist10k/); default $DEEPFIT_DATA "
                        "or ../shared/data; generated digits are used when no files are found")
    p.add_argument("--layers", type=int_list, default=[256, 128], metavar="N,N",
                   help="hidden layer sizes of the MLP (default: 256,128)")
    add_common_train_arguments(p, default_lr=3e-3, default_epochs=5, default_bs=64, valid_pct=False)


class DigitsReport(Application):
    """The demo as an application object, so it trains and reports through the same code as the others
    (it is not listed under `deepfit train`: its data is fixed)."""

    name = "demo"
    dls_classes = DEMO_DLS
    default_lr = 3e-3  # the demo's --lr default (what --lr auto falls back to)

    def report(self, prepared: Prepared, run: RunDir, console: Console) -> None:
        import torch
        from .plots import confusion_matrix, plot_confusion_matrix, plot_top_losses_images
        learn = prepared.learn
        inputs, probs, targs, losses = learn.get_preds(with_input=True, with_loss=True)
        preds = probs.argmax(-1)
        vocab = list(getattr(learn.dls, "vocab", [str(i) for i in range(probs.shape[-1])]))
        cm = confusion_matrix(targs.cpu().numpy(), preds.cpu().numpy(), len(vocab))
        run.add_figure("confusion_matrix.png", "Confusion matrix",
                       lambda p: plot_confusion_matrix(cm, vocab, p),
                       caption="Validation images: rows are the true digit, columns the prediction.", console=console)
        k = min(12, len(losses))
        top = torch.topk(losses.float(), k).indices
        x = inputs[0][top].float().cpu()
        dec = getattr(learn.dls, "decode_images", None)
        imgs = (dec(x) if dec is not None else x).reshape(k, 28, 28).numpy()
        run.add_figure("top_losses.png", "Top losses",
                       lambda p: plot_top_losses_images(imgs, [vocab[int(t)] for t in targs[top]],
                                                        [vocab[int(t)] for t in preds[top]],
                                                        losses[top].tolist(),
                                                        probs[top, preds[top]].tolist(), p),
                       caption="The validation images the model got most wrong.", console=console)
        run.summary["confusions"] = _most_confused(cm, vocab)


def _most_confused(cm: Any, vocab: list[str], n: int = 5) -> str:
    import numpy as np
    off = cm.copy()
    np.fill_diagonal(off, 0)
    idx = np.dstack(np.unravel_index(np.argsort(-off, axis=None)[:n], off.shape))[0]
    return ", ".join(f"{vocab[i]} as {vocab[j]}: {int(off[i, j])}" for i, j in idx if off[i, j] > 0) or "none"


def run_demo(args: argparse.Namespace, console: Console) -> int:
    """Train the demo MLP and write its run directory; prints the metrics."""
    import time
    from .. import CrossEntropyLoss, Learner, accuracy, set_seed
    from ..layers import MLP
    from . import _print_final, train_in_run
    if args.out is None:
        args.out = Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    # the README's command is meant to be rerun: a previous *finished* demo run in --out is replaced
    overwrite = True
    work = RunDir.check(args.out, overwrite, args.resume, args.restart)
    if args.resume:
        from .runs import check_resume
        check_resume(work, args)
    data = args.data if args.data is not None else default_data_dir()
    if args.data is not None and not Path(args.data).exists():
        raise CLIError(f"--data {args.data} does not exist; leave it out to use $DEEPFIT_DATA or generated digits")
    set_seed(args.seed)
    from ..data.mnist import demo_dls
    with console.step("reading digits"):
        dls, desc = demo_dls(data, bs=args.bs, seed=args.seed, device=args.device)
    console.info(desc)
    model = MLP(28 * 28, args.layers, 10)
    learn = Learner(dls, model, loss_func=CrossEntropyLoss(), metrics=[accuracy])
    prepared = Prepared(learn, desc, facts={"model": f"MLP 784-{'-'.join(map(str, args.layers))}-10"},
                        task="classification")
    path, final = train_in_run(DigitsReport(), args, prepared, console, "deepfit demo: MLP on digits", overwrite)
    _print_final(console, final, path)
    return 0
