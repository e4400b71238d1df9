"""The Learner: a model, its data, a loss and an optimizer, trained by one short loop with events.

Read top to bottom: construction, the loop (`fit` -> epoch -> train/validate -> batch), the `fit_*`
schedules, layer groups and freezing, and saving. Evaluation and prediction (`validate`, `get_preds`,
`predict`) are inherited from `deepfit.prediction.Prediction`.

Example:
    >>> learn = Learner(dls, model, loss_func=CrossEntropyLoss(), metrics=[accuracy])
    >>> learn.fit_one_cycle(3, 1e-2)
"""
from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .callbacks.core import (EVENTS, Callback, CancelBackward, CancelBatch, CancelEpoch, CancelFit, CancelStep,
                             CancelTrain, CancelValidate)
from .callbacks.schedule import SuggestedLRs
from .data.core import DataLoader, DataLoaders
from .metrics import Metric, to_metric
from .optim import Adam, has_hyper, set_hyper
from .prediction import Prediction
from . import schedule as sched
from .saving import read_weights, save_weights, weights_path
from .utils import check_positive, check_wd, listify

__all__ = ["Learner", "params_of", "trainable_params"]

LrArg = float | slice | Sequence[float] | np.ndarray


def params_of(m: nn.Module | Iterable) -> list[nn.Parameter]:
    """All parameters of a module (or of each module in an iterable)."""
    if isinstance(m, nn.Module):
        return list(m.parameters())
    return [p for mod in m for p in (mod.parameters() if isinstance(mod, nn.Module) else [mod])]


def trainable_params(m: nn.Module) -> list[nn.Parameter]:
    """The parameters of `m` that require gradients (those not frozen)."""
    return [p for p in m.parameters() if p.requires_grad]


#: Events outside the train / validate phases, which every callback receives whatever its run_train/run_valid.
_FIT_LEVEL_EVENTS = frozenset({"before_fit", "after_fit", "before_epoch", "after_epoch", "after_cancel_fit"})

_BN_TYPES = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


class Learner(Prediction):
    """Train a PyTorch model on `DataLoaders`.

    Args:
        dls: the training / validation data.
        model: any `nn.Module` taking the inputs of a batch (`model(*xb)`).
        loss_func: `loss_func(pred, *yb)`; deepfit's losses also define the final activation.
        opt_func: builds the optimizer: `opt_func(param_groups, lr=lr)`. Default deepfit's `Adam`.
        lr: default (maximum) learning rate for `fit*` when none is passed.
        wd: weight decay; decoupled ("true") or L2 depending on the optimizer's `decouple_wd`.
        metrics: functions or `Metric`s computed on the validation set each epoch.
        cbs: extra callbacks for every fit.
        splitter: `splitter(model) -> list of parameter lists (or modules)`, one per layer group;
            default the class's `default_splitter` (for `Learner`: a single group).
        path / model_dir: where `save` / `load` / `export` write.
        train_bn: keep batch-norm layers trainable in frozen groups.
        moms: default momentum schedule for `fit_one_cycle` (default the class's `default_moms`).
        progress: show progress: bars on a terminal, else a table of the epoch results.

    A subclass changes these defaults with the class attributes `default_splitter` and `default_moms`,
    and the callbacks every learner of its kind starts with by overriding `default_callbacks`.
    """

    #: layer groups when no `splitter` is given (None: one group).
    default_splitter: Callable[[nn.Module], Sequence[Any]] | None = None
    #: momentum schedule of `fit_one_cycle` when no `moms` is given.
    default_moms: tuple[float, float, float] = (0.95, 0.85, 0.95)

    def __init__(self, dls: DataLoaders, model: nn.Module, loss_func: Callable | None = None,
                 opt_func: Callable[..., torch.optim.Optimizer] = Adam, lr: float = 1e-3, wd: float | None = 1e-2,
                 metrics: Sequence[Any] | Any = (), cbs: Sequence[Callback] | Callback = (),
                 splitter: Callable[[nn.Module], Sequence[Any]] | None = None, path: str | Path = ".",
                 model_dir: str | Path = "models", train_bn: bool = True,
                 moms: tuple[float, float, float] | None = None, progress: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module; received {type(model).__name__}.")
        if not (hasattr(dls, "train") and hasattr(dls, "device")):
            raise TypeError(f"`dls` must be a deepfit DataLoaders (training and validation loaders, e.g. "
                            f"DataLoaders(train_dl, valid_dl)); received {type(dls).__name__}.")
        if isinstance(loss_func, type):
            raise TypeError(f"`loss_func` must be a loss, not the class {loss_func.__name__}: pass an instance, "
                            f"e.g. loss_func={loss_func.__name__}().")
        if loss_func is None:
            loss_func = getattr(dls, "default_loss", None)
            if loss_func is None:
                raise ValueError("`loss_func` is required: these DataLoaders do not suggest one.")
        check_positive("lr", lr)
        check_wd(wd)
        self.dls, self.loss_func, self.opt_func, self.lr, self.wd = dls, loss_func, opt_func, lr, wd
        self.model = model.to(dls.device)
        self.splitter = splitter if splitter is not None else type(self).default_splitter
        self.train_bn, self.moms = train_bn, tuple(moms) if moms is not None else self.default_moms
        self.path, self.model_dir = Path(path), Path(model_dir)
        self.metrics: list[Metric] = [self.prepare_metric(to_metric(m)) for m in listify(metrics)]
        self.opt: torch.optim.Optimizer | None = None
        self.cbs: list[Callback] = []
        self._handlers: dict[str, list[Callable[[], None]]] = {}
        # training state, read by callbacks
        self.training, self.epoch, self.n_epoch, self.iter, self.n_iter, self.train_iter = False, 0, 0, 0, 0, 0
        self.start_epoch = 0
        self._quiet_fit = False
        self._resume: Any = None  # a callbacks.checkpoint.Resume while a fit resumes from a checkpoint
        self.pred: Any = None
        self.loss: torch.Tensor | None = None
        self.loss_grad: torch.Tensor | None = None
        self.xb: tuple = ()
        self.yb: tuple = ()
        self.dl: DataLoader | None = None
        self.add_cbs(self.default_callbacks(progress))
        self.add_cbs(listify(cbs))

    def default_callbacks(self, progress: bool) -> list[Callback]:
        """The callbacks every learner of this class starts with (before the `cbs` given): `Recorder`,
        `TerminateOnNaN` and, with `progress`, `ProgressCallback`. Subclasses extend or replace them."""
        from .callbacks.progress import ProgressCallback
        from .callbacks.recorder import Recorder
        from .callbacks.training import TerminateOnNaN
        return [Recorder(), TerminateOnNaN()] + ([ProgressCallback()] if progress else [])

    def prepare_metric(self, metric: Metric) -> Metric:
        """Hook for subclasses: adapt each metric given to the constructor (e.g. compute it in the
        target's own units). The default returns it unchanged."""
        return metric

    # ---- callbacks ------------------------------------------------------------------------------------
    def add_cb(self, cb: Callback) -> "Learner":
        """Add a callback (an instance or a Callback class); it becomes an attribute of the learner too.

        Several callbacks of one class are all kept (two `EarlyStopping`s on different metrics both
        act), except for classes marked `unique` (the learner's own kind: Recorder, ProgressCallback,
        TerminateOnNaN, CSVLogger, MixedPrecision, Checkpoint, LRFinder, DistributedTrainer), where the
        new one replaces the old. Attribute names: the first callback of a name gets `learn.<cb.name>`
        (`learn.early_stopping`), later ones `learn.<cb.name>_1`, `_2`, ... (the lowest free suffix);
        a name the learner already uses for something else is never overwritten. Adding a callback that
        is already there does nothing.
        """
        if isinstance(cb, type):
            cb = cb()
        if not isinstance(cb, Callback):
            raise TypeError(f"Callbacks must derive from deepfit Callback; received {type(cb).__name__}.")
        if any(c is cb for c in self.cbs):
            return self
        if cb.unique:
            for old in [c for c in self.cbs if type(c) is type(cb)]:
                self.remove_cb(old)
        cb.learner = self
        self.cbs.append(cb)
        attr, k = cb.name, 0
        while hasattr(self, attr):
            k += 1
            attr = f"{cb.name}_{k}"
        setattr(self, attr, cb)
        self._build_handlers()
        return self

    def add_cbs(self, cbs: Iterable[Callback]) -> "Learner":
        """Add several callbacks (see `add_cb`)."""
        for cb in cbs:
            self.add_cb(cb)
        return self

    def remove_cb(self, cb: Callback | type) -> "Learner":
        """Remove a callback instance, or every callback of a class."""
        gone = [c for c in self.cbs if c is cb or (isinstance(cb, type) and isinstance(c, cb))]
        for c in gone:
            self.cbs.remove(c)
            for attr in [k for k, v in vars(self).items() if v is c]:
                delattr(self, attr)
        self._build_handlers()
        return self

    @contextlib.contextmanager
    def added_cbs(self, cbs: Iterable[Callback]) -> Iterator["Learner"]:
        """Add callbacks for the duration of a `with` block. A learner callback that one of them replaces
        (same `unique` class, e.g. another CSVLogger or Recorder) is put back, in its place, afterwards."""
        cbs = listify(cbs)
        before = list(self.cbs)
        try:
            self.add_cbs(cbs)
            yield self
        finally:
            for cb in cbs:
                self.remove_cb(cb)
            replaced = [c for c in before if not any(c is x for x in self.cbs)]
            for cb in replaced:
                self.add_cb(cb)
            if replaced:
                rank = {id(c): i for i, c in enumerate(before)}
                self.cbs.sort(key=lambda c: rank.get(id(c), len(before)))
                self._build_handlers()

    def _build_handlers(self) -> None:
        # For each event, the bound methods of the callbacks that override it, sorted by `order`:
        # firing an event is then one short loop, with no getattr or no-op calls per batch.
        ordered = sorted(self.cbs, key=lambda c: c.order)
        self._handlers = {e: [getattr(c, e) for c in ordered if getattr(type(c), e) is not getattr(Callback, e)]
                          for e in EVENTS}

    def __call__(self, event: str) -> None:
        if event in _FIT_LEVEL_EVENTS:  # not inside a training or validation phase: everyone runs
            for handler in self._handlers[event]:
                handler()
            return
        flag = "run_train" if self.training else "run_valid"
        for handler in self._handlers[event]:
            if getattr(handler.__self__, flag):
                handler()

    def show_training_loop(self) -> str:
        """Which callbacks run at each event, as text (also printed)."""
        lines = []
        for e in EVENTS:
            names = [h.__self__.__class__.__name__ for h in self._handlers[e]]
            if names:
                lines.append(f"{e:<22} {', '.join(names)}")
        text = "\n".join(lines)
        print(text)
        return text

    # ---- the loop -------------------------------------------------------------------------------------
    def _with_events(self, f: Callable[[], None], name: str, cancel: type[Exception]) -> None:
        try:
            self(f"before_{name}")
            f()
        except cancel:
            self(f"after_cancel_{name}")
        except BaseException:
            if name == "fit":  # after_fit runs also after an error: callbacks close files and bars there
                self._after_fit(suppress=True)  # never hide the original error
            raise
        if name == "fit":
            self._after_fit(suppress=False)
        else:
            self(f"after_{name}")

    def _after_fit(self, suppress: bool) -> None:
        # every callback's after_fit runs, even when an earlier one fails; the first error is raised at the end
        error: Exception | None = None
        for handler in self._handlers["after_fit"]:
            try:
                handler()
            except Exception as e:
                error = error or e
        if error is not None and not suppress:
            raise error

    def fit(self, n_epoch: int, lr: LrArg | None = None, wd: float | None = None,
            cbs: Sequence[Callback] | Callback = (), reset_opt: bool = False, start_epoch: int = 0,
            resume_from: str | Path | None = None) -> None:
        """Train for `n_epoch` epochs at a constant learning rate (plus whatever `cbs` schedule).

        Args:
            n_epoch: number of epochs.
            lr: a float, a `slice` for discriminative rates, or one value per layer group.
            wd: weight decay (default: the Learner's `wd`).
            cbs: callbacks for this fit only.
            reset_opt: build a fresh optimizer (forgetting momentum buffers).
            start_epoch: first epoch to run (the schedules start as if the earlier epochs had run).
            resume_from: a file written by the `Checkpoint` callback: repeat the interrupted training
                call with this argument to continue it from the exact batch where the checkpoint was
                taken (weights, optimizer, schedule position, RNG states, data order and callbacks'
                state are restored). A ValueError (`CheckpointError`) explains a call that does not
                match the one that wrote the checkpoint.
        """
        if not isinstance(n_epoch, (int, np.integer)) or n_epoch < 0:
            raise ValueError(f"`n_epoch` must be a non-negative integer; received n_epoch={n_epoch!r}.")
        check_wd(wd)
        if len(self.dls.train) == 0:
            raise ValueError(f"The training loader yields no batch ({self.dls.train.n} rows, bs={self.dls.train.bs}, "
                             f"drop_last={self.dls.train.drop_last}); use a smaller batch size.")
        self._check_device()
        if reset_opt or self.opt is None:
            self.create_opt()
        self.set_lr(self.lr if lr is None else lr)
        if wd is not None or self.wd is not None:
            set_hyper(self.opt, "wd", self.wd if wd is None else wd)
        self.n_epoch, self.start_epoch = int(n_epoch), int(start_epoch)
        self.train_iter = self.start_epoch * len(self.dls.train)
        if resume_from is not None and self.start_epoch != 0:
            raise ValueError("Pass either `start_epoch` or `resume_from`: a checkpoint knows where to resume.")
        with self.added_cbs(listify(cbs)):
            try:
                if resume_from is not None:
                    from .callbacks.checkpoint import Resume
                    self._resume = Resume(self, resume_from)
                self._with_events(self._do_fit, "fit", CancelFit)
            finally:
                self.training = False
                self._resume = None

    def _do_fit(self) -> None:
        for epoch in range(self.start_epoch, self.n_epoch):
            self.epoch = epoch
            if self._resume is not None:
                self._resume.at_epoch_start()
            self._with_events(self._do_epoch, "epoch", CancelEpoch)

    def _do_epoch(self) -> None:
        self._do_train()
        self._do_validate()

    def _do_train(self) -> None:
        self.training, self.dl = True, self.dls.train
        self.model.train()
        self._with_events(self._all_batches, "train", CancelTrain)

    def _do_validate(self, dl: DataLoader | None = None) -> None:
        dl = dl if dl is not None else self.dls.valid
        if dl is None or len(dl) == 0:
            return
        self.training, self.dl = False, dl
        self.model.eval()
        with torch.no_grad():
            self._with_events(self._all_batches, "validate", CancelValidate)

    def _all_batches(self) -> None:
        self.n_iter = len(self.dl)
        start = 0
        if self.training and self._resume is not None:  # continue an interrupted epoch after its last done batch
            start = self._resume.at_train_start()
            self._resume = None
        for i, batch in enumerate(self.dl, start):
            self.iter = i
            self._one_batch(batch)

    def _one_batch(self, batch: tuple) -> None:
        n_inp = self.dl.n_inp
        self.xb, self.yb = tuple(batch[:n_inp]), tuple(batch[n_inp:])
        # a batch cancelled before its loss must not leave the previous batch's output for callbacks
        self.pred = self.loss = self.loss_grad = None
        self._with_events(self._do_one_batch, "batch", CancelBatch)
        if self.training:
            self.train_iter += 1

    def _do_one_batch(self) -> None:
        self.pred = self.model(*self.xb)
        self("after_pred")
        if not self.yb:
            return
        self.loss_grad = self.loss_func(self.pred, *self.yb)
        if not isinstance(self.loss_grad, torch.Tensor) or self.loss_grad.numel() != 1:
            shape = tuple(self.loss_grad.shape) if isinstance(self.loss_grad, torch.Tensor) else type(self.loss_grad).__name__
            raise ValueError(f"The loss must return one number per batch; {type(self.loss_func).__name__} returned "
                             f"shape {shape}. Use a loss that averages over the batch (e.g. reduction='mean').")
        self.loss = self.loss_grad.detach()
        self("after_loss")
        if not self.training:
            return
        try:
            self("before_backward")
            self.loss_grad.backward()
            self("after_backward")
        except CancelBackward:
            pass
        try:
            self("before_step")
            self.opt.step()
            self("after_step")
        except CancelStep:
            pass
        self.opt.zero_grad(set_to_none=True)

    # ---- schedules ------------------------------------------------------------------------------------
    def _lr_array(self, lr: LrArg) -> np.ndarray:
        return np.asarray(self.lr_per_group(lr), dtype=float)

    def _sched_fit(self, n_epoch: int, scheds: dict[str, Callable], lr: LrArg, wd: float | None,
                   cbs: Sequence[Callback] | Callback, reset_opt: bool, start_epoch: int = 0,
                   resume_from: str | Path | None = None) -> None:
        from .callbacks.schedule import ParamScheduler
        if self.opt is None or reset_opt:
            self.create_opt()
        scheds = {k: v for k, v in scheds.items() if k == "lr" or has_hyper(self.opt, k)}
        self.fit(n_epoch, lr=lr, wd=wd, cbs=[ParamScheduler(scheds)] + listify(cbs), start_epoch=start_epoch,
                 resume_from=resume_from)

    def fit_one_cycle(self, n_epoch: int, lr_max: LrArg | None = None, div: float = 25.0, div_final: float = 1e5,
                      pct_start: float = 0.25, wd: float | None = None,
                      moms: tuple[float, float, float] | None = None, cbs: Sequence[Callback] | Callback = (),
                      reset_opt: bool = False, start_epoch: int = 0, resume_from: str | Path | None = None) -> None:
        """Leslie Smith's 1cycle policy: the learning rate warms up from `lr_max/div` to `lr_max` over
        `pct_start` of training and anneals to `lr_max/div_final` (both halves cosine), while momentum
        moves the opposite way through `moms`. `resume_from`: see `fit`."""
        lr_max = self.lr if lr_max is None else lr_max
        scheds = sched.one_cycle(self._lr_array(lr_max), div=div, div_final=div_final, pct_start=pct_start,
                                 moms=moms if moms is not None else self.moms)
        self._sched_fit(n_epoch, scheds, lr_max, wd, cbs, reset_opt, start_epoch, resume_from)

    def fit_sgdr(self, n_cycles: int, lr_max: LrArg | None = None, cycle_len: int = 1, cycle_mult: int = 1,
                 wd: float | None = None, cbs: Sequence[Callback] | Callback = (), reset_opt: bool = False,
                 resume_from: str | Path | None = None) -> None:
        """Stochastic gradient descent with warm restarts (Loshchilov & Hutter): `n_cycles` cosine
        annealings from `lr_max` to 0, the i-th lasting `cycle_len * cycle_mult**i` epochs.
        `resume_from`: see `fit`."""
        lr_max = self.lr if lr_max is None else lr_max
        s, n_epoch = sched.sgdr(self._lr_array(lr_max), n_cycles, cycle_len=cycle_len, cycle_mult=cycle_mult)
        self._sched_fit(n_epoch, {"lr": s}, lr_max, wd, cbs, reset_opt, resume_from=resume_from)

    def fit_flat_cos(self, n_epoch: int, lr: LrArg | None = None, pct_start: float = 0.75, div_final: float = 1e5,
                     wd: float | None = None, cbs: Sequence[Callback] | Callback = (), reset_opt: bool = False,
                     resume_from: str | Path | None = None) -> None:
        """Train at a flat `lr` for `pct_start` of the run, then anneal with a cosine to `lr/div_final`.
        `resume_from`: see `fit`."""
        lr = self.lr if lr is None else lr
        scheds = sched.flat_cos(self._lr_array(lr), pct_start=pct_start, div_final=div_final)
        self._sched_fit(n_epoch, scheds, lr, wd, cbs, reset_opt, resume_from=resume_from)

    def fit_clr(self, n_epoch: int, lr_min: float, lr_max: float, step_size: int | None = None,
                mode: str = "triangular", gamma: float = 1.0, wd: float | None = None,
                cbs: Sequence[Callback] | Callback = (), reset_opt: bool = False,
                resume_from: str | Path | None = None) -> None:
        """Smith's cyclical learning rates between `lr_min` and `lr_max` (`mode` triangular,
        triangular2 or exp_range); `step_size` is half a cycle in iterations (default
        `2 * len(dls.train)`, i.e. two epochs: the paper suggests 2-10 epochs per half cycle)."""
        total = n_epoch * len(self.dls.train)
        step_size = 2 * len(self.dls.train) if step_size is None else step_size
        scheds = sched.clr(lr_min, lr_max, step_size=step_size, total_steps=total, mode=mode, gamma=gamma)
        self._sched_fit(n_epoch, scheds, lr_max, wd, cbs, reset_opt, resume_from=resume_from)

    # ---- learning-rate finder -------------------------------------------------------------------------
    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10.0, num_it: int = 100, stop_div: bool = True,
                show_plot: bool = False) -> "SuggestedLRs":
        """Sweep the learning rate exponentially from `start_lr` to `end_lr` over `num_it` batches,
        recording the loss; stop when the smoothed loss diverges; then restore the weights, the
        optimizer, the model's train/eval mode, the random number generators (torch's and the training
        loader's own, so later shuffling is as without the sweep) and the recorder. Returns suggestions
        (`valley`, `steep`, `minimum`); `learn.recorder.plot_lr_find()` plots loss against lr on a log
        axis with them marked. A sweep too short for a curve (`num_it` < 7, or one that diverged at
        once) suggests a tenth of the rate of its lowest loss, with a warning: never NaN."""
        from .callbacks.schedule import MIN_LR_FIND_ITERS, LRFinder
        if not 0 < start_lr < end_lr:
            raise ValueError(f"lr_find needs 0 < start_lr < end_lr; received start_lr={start_lr}, end_lr={end_lr}.")
        if not isinstance(num_it, (int, np.integer)) or num_it < 1:
            raise ValueError(f"`num_it` must be a positive integer (batches of the sweep; at least "
                             f"{MIN_LR_FIND_ITERS} for a real suggestion); received num_it={num_it!r}.")
        saved_model = copy.deepcopy(self.model.state_dict())
        had_opt = self.opt is not None
        saved_opt = copy.deepcopy(self.opt.state_dict()) if had_opt else None
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        was_training = self.model.training
        dl = self.dls.train
        keep_order = dl.preserved_order() if isinstance(dl, DataLoader) else contextlib.nullcontext()
        finder = LRFinder(start_lr, end_lr, num_it, stop_div)
        n_epoch = math.ceil(num_it / len(self.dls.train))
        # the sweep must not replace the history of real training in the recorder
        history = {k: getattr(self.recorder, k) for k in ("losses", "smooth_losses", "lrs", "moms", "log", "last_valid")}
        self._quiet_fit = True
        try:
            with keep_order:
                self.fit(n_epoch, lr=start_lr, cbs=[finder])
        finally:
            self._quiet_fit = False
            for k, v in history.items():
                setattr(self.recorder, k, v)
            self.model.load_state_dict(saved_model)
            if had_opt:
                self.opt.load_state_dict(saved_opt)
            else:
                self.opt = None
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)
            self.model.train(was_training)
        self.recorder.lr_find_result = finder.result
        if show_plot:
            self.recorder.plot_lr_find()
        return finder.result

    # ---- optimizer and layer groups -------------------------------------------------------------------
    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The parameters of each layer group, from the `splitter` (default: one group)."""
        if self.splitter is None:
            return [list(self.model.parameters())]
        groups = [params_of(g) if not isinstance(g, nn.Parameter) else [g] for g in self.splitter(self.model)]
        seen, out = set(), []
        for g in groups:
            out.append([p for p in g if id(p) not in seen])
            seen.update(id(p) for p in g)
        missing = [p for p in self.model.parameters() if id(p) not in seen]
        if missing:
            raise ValueError(f"The splitter left {len(missing)} parameter tensor(s) out of every layer group; "
                             "make it cover the whole model.")
        return out

    def create_opt(self) -> None:
        """Build the optimizer with one parameter group per layer group."""
        groups = [{"params": g} for g in self.layer_groups() if g]
        self.opt = self.opt_func(groups, lr=self.lr)
        if not isinstance(self.opt, torch.optim.Optimizer):
            raise TypeError(f"`opt_func` must return a torch.optim.Optimizer; got {type(self.opt).__name__}.")
        if self.wd is not None:
            set_hyper(self.opt, "wd", self.wd)

    def lr_per_group(self, lr: LrArg) -> list[float]:
        """Expand `lr` to one rate per layer group: a float for all; `slice(hi)` gives the last group
        `hi` and the others `hi/3`; `slice(lo, hi)` spreads them geometrically from lo to hi."""
        n = len(self.opt.param_groups) if self.opt is not None else len(self.layer_groups())
        if isinstance(lr, slice):
            if lr.stop is None:
                raise ValueError("A learning-rate slice needs an upper bound: slice(hi) or slice(lo, hi).")
            if lr.start is not None and not lr.start > 0:
                raise ValueError(f"Every learning rate must be a positive number; received lr={lr!r}.")
            out = [lr.stop / 3] * (n - 1) + [lr.stop] if lr.start is None else \
                (list(np.geomspace(lr.start, lr.stop, n)) if n > 1 else [lr.stop])
        elif isinstance(lr, (list, tuple, np.ndarray)):
            if len(lr) != n:
                raise ValueError(f"Got {len(lr)} learning rates for {n} layer groups.")
            out = [float(x) for x in lr]
        else:
            out = [float(lr)] * n
        if not all(math.isfinite(x) and x > 0 for x in out):
            raise ValueError(f"Every learning rate must be a positive number; received lr={lr!r}.")
        return [float(x) for x in out]

    def set_lr(self, lr: LrArg) -> None:
        """Write `lr` (expanded by `lr_per_group`) into the optimizer, building it first if needed."""
        if self.opt is None:
            self.create_opt()
        set_hyper(self.opt, "lr", self.lr_per_group(lr))

    def freeze_to(self, n: int) -> None:
        """Freeze the first `n` layer groups (negative counts from the end); batch-norm and other norm
        layers stay trainable when `train_bn` is set."""
        groups = self.layer_groups()
        n = n if n >= 0 else len(groups) + n
        bn_params = set()
        if self.train_bn:
            bn_params = {id(p) for m in self.model.modules() if isinstance(m, _BN_TYPES) for p in m.parameters(recurse=False)}
        for i, g in enumerate(groups):
            for p in g:
                p.requires_grad_(i >= n or id(p) in bn_params)
        if self.opt is None:
            self.create_opt()

    def freeze(self) -> None:
        """Train only the last layer group (plus norm layers with `train_bn`)."""
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        """Train every layer group."""
        self.freeze_to(0)

    # ---- evaluation and prediction --------------------------------------------------------------------
    def summary(self, print_it: bool = True) -> str:
        """A table of the model's layers: output shape, parameter count, trainable or frozen and the
        layer group of each, from one forward pass on a training batch."""
        from .summary import model_summary
        text = model_summary(self)
        if print_it:
            print(text)
        return text

    # ---- saving -----------------------------------------------------------------------------------------
    def _file(self, name: str | Path) -> Path:
        return weights_path(name, self.path / self.model_dir)

    def save(self, name: str | Path, with_opt: bool = True) -> Path:
        """Save weights (and optimizer state) to `path/model_dir/name.pth` in a format loaded with
        `torch.load(weights_only=True)`: no pickled code runs on load. In a distributed run only rank 0
        writes (the others return the same path)."""
        from .distributed import is_main_process, unwrap_model
        f = self._file(name)
        if not is_main_process():
            return f
        opt_state = self.opt.state_dict() if with_opt and self.opt is not None else None
        save_weights(f, unwrap_model(self.model).state_dict(), opt_state)
        return f

    def load(self, name: str | Path, with_opt: bool = True, strict: bool = True) -> "Learner":
        """Load what `save` (or the `Checkpoint` callback) wrote, onto this learner's device (a GPU file
        loads on a CPU-only machine). Reads with `torch.load(weights_only=True)`: a file holding pickled
        Python objects is refused, never executed.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is truncated/corrupted, holds pickled objects, comes from a newer
                deepfit, or its weights do not fit this model (the message names the tensors).

        In a distributed run every process must call it: it first waits for all of them (so that
        what rank 0 just saved is on disk before anyone reads it).
        """
        from .distributed import distrib_barrier, unwrap_model
        from .export import state_dict_mismatches
        distrib_barrier()
        f = self._file(name)
        state = read_weights(f, self.dls.device)
        model_state = state.get("model", state) if isinstance(state, dict) else state
        model = unwrap_model(self.model)
        problems = state_dict_mismatches(model, model_state, strict=strict)
        if problems:
            raise ValueError(f"The weights in {f} do not fit this {type(self.model).__name__}: " + "; ".join(problems)
                             + ". Was the file saved from another architecture or configuration?")
        model.load_state_dict(model_state, strict=strict)
        if with_opt and isinstance(state, dict) and state.get("opt"):
            if self.opt is None:
                self.create_opt()
            try:
                self.opt.load_state_dict(state["opt"])
            except (ValueError, KeyError, RuntimeError) as e:
                raise ValueError(f"The optimizer state in {f} does not fit this learner's optimizer "
                                 f"({type(self.opt).__name__}): {e}. Load with with_opt=False to load only the "
                                 "weights.") from None
        return self

    def export(self, path: str | Path = "export.safetensors") -> Path:
        """Write everything needed for inference into one safetensors file (weights plus a JSON
        header with the model's config and the data's preprocessing). Load with `load_learner`.
        In a distributed run only rank 0 writes (the others return the same path)."""
        from .distributed import is_main_process
        from .export import export_learner
        p = Path(path)
        p = p if p.is_absolute() or p.parent != Path(".") else self.path / p
        return export_learner(self, p) if is_main_process() else p

