"""Checkpoints for exact resume: weights, optimizer, schedule position, RNG states and data position.

`Checkpoint` writes, every `every_n_steps` training batches and/or every `every_n_epochs` epochs, one
file holding everything a run needs to continue as if it had never stopped. Re-run the same training
call with `resume_from=` pointing at that file and training continues from the exact batch: on the
CPU the final weights are bit-identical to those of an uninterrupted run.

Files are written atomically (a temporary file, flushed to disk, then renamed over the final name), so
a run killed at any moment leaves either the previous checkpoint or the new one, never half of one.
They contain only tensors and plain containers, and are read with `torch.load(weights_only=True)`:
loading a checkpoint never runs code stored in it.

Example:
    >>> learn.fit_one_cycle(10, 1e-3, cbs=[Checkpoint(every_n_steps=500)])
    >>> # ... the process dies; later, the same call with resume_from:
    >>> learn.fit_one_cycle(10, 1e-3, cbs=[Checkpoint(every_n_steps=500)],
    ...                     resume_from="models/checkpoint.pth")
"""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..distributed import is_main_process, unwrap_model
from ..optim import get_hyper, has_hyper
from .core import Callback

if TYPE_CHECKING:  # pragma: no cover
    from ..learner import Learner

__all__ = ["Checkpoint", "CheckpointError", "CHECKPOINT_VERSION", "load_checkpoint", "save_checkpoint",
           "fit_signature"]

#: Version of the checkpoint layout; a file with a higher version needs a newer deepfit.
CHECKPOINT_VERSION = 1
_FORMAT = "deepfit-checkpoint"
# positions at which each schedule is sampled to recognise the training call that wrote a checkpoint
_SIGNATURE_POS = (0.0, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.99)


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not belong to the model / training call resuming from it."""


# ---- plain (weights_only-loadable) state ---------------------------------------------------------------
def _plain(obj: Any) -> Any:
    """Convert numpy values (and tuples/lists/dicts of them) to Python numbers and tensors, so that the
    result loads with `torch.load(weights_only=True)`."""
    if isinstance(obj, torch.Tensor):
        return obj.detach()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def rng_states() -> dict[str, Any]:
    """The states of torch's CPU (and CUDA) generators, numpy's global generator and Python's `random`."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict[str, Any]) -> None:
    """Restore what `rng_states` returned."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def _callback_keys(learn: "Learner") -> list[tuple[str, Callback]]:
    """A stable key per callback: its name, with `_1`, `_2`... for further callbacks of the same name."""
    seen: dict[str, int] = {}
    out = []
    for cb in learn.cbs:
        n = seen.get(cb.name, 0)
        seen[cb.name] = n + 1
        out.append((cb.name if n == 0 else f"{cb.name}_{n}", cb))
    return out


def fit_signature(learn: "Learner") -> dict[str, Any]:
    """What identifies a training call, to check that a resumed call is the one that wrote a checkpoint:
    epochs, batches per epoch, rows, batch size, the starting learning rate / weight decay of each
    param group and the value of every scheduled hyper-parameter at a few points of training."""
    from .schedule import ParamScheduler
    opt = learn.opt
    sig: dict[str, Any] = {
        "n_epoch": int(learn.n_epoch), "batches_per_epoch": len(learn.dls.train),
        "n_rows": int(learn.dls.train.n), "bs": int(learn.dls.train.bs),
        "lr": get_hyper(opt, "lr") if opt is not None else [],
        "wd": get_hyper(opt, "wd") if opt is not None and has_hyper(opt, "wd") else [],
        "scheds": {},
    }
    for i, cb in enumerate(c for c in learn.cbs if isinstance(c, ParamScheduler)):
        for k, s in cb.scheds.items():
            try:
                vals = [np.asarray(s(p), dtype=float).reshape(-1).tolist() for p in _SIGNATURE_POS]
            except Exception:  # a schedule that cannot be sampled here is simply not compared
                continue
            sig["scheds"][f"{k}" if i == 0 else f"{k}#{i}"] = vals
    return sig


def _close(a: Any, b: Any) -> bool:
    try:
        return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9, atol=0.0))
    except ValueError:  # different shapes
        return False


def check_signature(saved: dict[str, Any], now: dict[str, Any], path: Path) -> None:
    """Raise a CheckpointError describing the first difference between two `fit_signature`s."""
    hint = (" Resume with the same training call (same fit method, number of epochs, learning rate, schedule "
            "arguments and data) as the run that wrote the checkpoint.")
    s_ep, s_b = saved.get("n_epoch"), saved.get("batches_per_epoch")
    if (s_ep, s_b) != (now["n_epoch"], now["batches_per_epoch"]):
        raise CheckpointError(
            f"{path} was written by a fit of n_epoch={s_ep} x {s_b} batches per epoch "
            f"({s_ep * s_b} iterations); this call asks for n_epoch={now['n_epoch']} x "
            f"{now['batches_per_epoch']} batches ({now['n_epoch'] * now['batches_per_epoch']} iterations).{hint}")
    for k in ("n_rows", "bs"):
        if saved.get(k) != now[k]:
            raise CheckpointError(f"{path} was written while training on data with {k}={saved.get(k)}; this "
                                  f"call has {k}={now[k]}.{hint}")
    for k in ("lr", "wd"):
        if not _close(saved.get(k, []), now[k]):
            raise CheckpointError(f"{path} was written by a fit with {k}={saved.get(k)} (per param group); this "
                                  f"call has {k}={now[k]}.{hint}")
    s_sch, n_sch = saved.get("scheds", {}), now["scheds"]
    if set(s_sch) != set(n_sch):
        raise CheckpointError(f"{path} was written by a fit scheduling {sorted(s_sch) or 'nothing'}; this call "
                              f"schedules {sorted(n_sch) or 'nothing'}.{hint}")
    for k in s_sch:
        for p, a, b in zip(_SIGNATURE_POS, s_sch[k], n_sch[k]):
            if not _close(a, b):
                raise CheckpointError(
                    f"{path} was written by a fit with a different {k!r} schedule: at {p:.0%} of training it set "
                    f"{k}={a}, this call sets {k}={b}.{hint}")


# ---- reading and writing -------------------------------------------------------------------------------
def refused_object(err: BaseException) -> str | None:
    """When `torch.load(weights_only=True)` refused a file because it references Python code (a class
    or function to call while unpickling), the reason as torch words it; else None (e.g. garbage)."""
    if not isinstance(err, pickle.UnpicklingError):
        return None
    msg = str(err)
    detail = msg.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0].strip()
    if "global" not in detail.lower():
        return None
    # the line naming the refused global (torch puts its general advice about weights_only=False first)
    line = next((ln for ln in detail.splitlines() if "global" in ln.lower()), detail)
    return line.split(" Please use", 1)[0].strip()[:200]


def _load_failure(err: BaseException) -> str:
    """What went wrong reading a file, in one line: torch's unpickler detail without its advice to load
    with `weights_only=False` (which would run code from the file)."""
    msg = str(err)
    if "WeightsUnpickler error:" in msg:
        msg = msg.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    line = " ".join(msg.split())[:200] or "no detail"
    return f"{type(err).__name__}: {line}"


def save_checkpoint(learn: "Learner", path: str | Path, epoch: int, iter: int, train_iter: int,
                    signature: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint of `learn` atomically to `path`.

    Args:
        learn: the learner, in the middle (or at the end of an epoch) of a fit.
        path: destination file.
        epoch: the epoch training continues in.
        iter: training batches of that epoch already done (0 at an epoch boundary).
        train_iter: training batches done since the start of the fit.
        signature: the `fit_signature` of the running fit (default: computed now).
    """
    from .. import __version__
    path = Path(path)
    dls = learn.dls
    state: dict[str, Any] = {
        "format": _FORMAT, "version": CHECKPOINT_VERSION, "deepfit_version": __version__,
        "model": unwrap_model(learn.model).state_dict(),
        "opt": learn.opt.state_dict() if learn.opt is not None else {},
        "position": {"epoch": int(epoch), "iter": int(iter), "train_iter": int(train_iter),
                     "n_epoch": int(learn.n_epoch)},
        "fit": signature if signature is not None else fit_signature(learn),
        "rng": rng_states(),
        "data": {"train": dls.train.state_dict(),
                 **({"valid": dls.valid.state_dict()} if getattr(dls, "valid", None) is not None else {})},
        "callbacks": {k: _plain(cb.state_dict()) for k, cb in _callback_keys(learn)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: readers see the old file or the new one, never a partial one
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `Checkpoint` / `save_checkpoint` onto the CPU, without running any
    code from the file.

    Raises:
        FileNotFoundError: no file at `path`.
        CheckpointError: the file is truncated or corrupted, holds pickled Python objects, is not a
            deepfit checkpoint, or comes from a newer deepfit.
    """
    from .. import __version__
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        refused = refused_object(e)
        if refused is not None:
            raise CheckpointError(f"{path} contains pickled Python objects, not only tensors and plain containers "
                                  f"({refused}); deepfit never unpickles such objects because that can run "
                                  "arbitrary code. It is not a deepfit checkpoint.") from None
        raise CheckpointError(f"{path} is truncated or corrupted ({_load_failure(e)}); use an earlier "
                              "checkpoint.") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        raise CheckpointError(f"{path} is not a deepfit checkpoint (written by the Checkpoint callback); to load "
                              "weights saved with learn.save, use learn.load.")
    version = state.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} is a checkpoint of format version {version} written by deepfit "
                              f"{state.get('deepfit_version')}; this is deepfit {__version__}, which reads format "
                              f"{CHECKPOINT_VERSION}. Upgrade deepfit to resume from it.")
    missing = [k for k in ("model", "opt", "position", "fit", "rng", "data", "callbacks") if k not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete deepfit checkpoint (missing {missing}).")
    return state


class Checkpoint(Callback):
    """Save everything needed to resume training exactly: every `every_n_steps` training batches and/or
    at the end of every `every_n_epochs`-th epoch (after validation).

    The file (`learn.path / learn.model_dir / <fname>.pth`) holds the weights, the optimizer state, the
    position in training (epoch, batch, iteration count that drives the schedules), the RNG states of
    torch, numpy and `random`, the training loader's position and shuffling state, and the state of
    every callback (the Recorder's history, trackers' best values...). Resume by repeating the same
    training call with `resume_from=` that file.

    Args:
        every_n_steps: save after every this many training batches (None: never mid-epoch).
        every_n_epochs: save after every this many epochs (None: never at epoch ends).
        fname: file name (`.pth` is added when it has no suffix); an absolute path is used as is.
        keep: how many recent checkpoints to keep; the newest is always `<fname>.pth`, older ones
            are `<fname>.1.pth` (the one before), `<fname>.2.pth`...

    Attributes:
        last_path: the file written last (None before the first save).
    """

    order = 90  # after the Recorder, trackers and loggers have updated their state
    unique = True
    run_valid = False

    def __init__(self, every_n_steps: int | None = None, every_n_epochs: int | None = 1, fname: str | Path = "checkpoint",
                 keep: int = 1) -> None:
        for name, v in (("every_n_steps", every_n_steps), ("every_n_epochs", every_n_epochs)):
            if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1):
                raise ValueError(f"`{name}` must be a positive integer or None; received {name}={v!r}.")
        if every_n_steps is None and every_n_epochs is None:
            raise ValueError("Checkpoint needs `every_n_steps` or `every_n_epochs` (both are None: it would never "
                             "save).")
        if not isinstance(keep, (int, np.integer)) or isinstance(keep, bool) or keep < 1:
            raise ValueError(f"`keep` must be an integer >= 1; received keep={keep!r}.")
        self.every_n_steps, self.every_n_epochs, self.fname, self.keep = every_n_steps, every_n_epochs, fname, int(keep)
        self.last_path: Path | None = None
        self._sig: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        """Where the newest checkpoint is written."""
        return self.learner._file(self.fname)

    def _rotated(self, i: int) -> Path:
        p = self.path
        return p.with_name(f"{p.stem}.{i}{p.suffix}")

    def before_fit(self) -> None:
        resume = getattr(self.learner, "_resume", None)
        # a resumed fit keeps the signature of the original call (the optimizer now holds mid-run values)
        self._sig = resume.signature if resume is not None else fit_signature(self.learner)

    def _save(self, epoch: int, iter: int, train_iter: int) -> None:
        # lr_find's sweep is not training; in a distributed run only rank 0 writes
        if getattr(self.learner, "_quiet_fit", False) or not is_main_process():
            return
        path = self.path
        if self.keep > 1 and path.exists():
            for i in range(self.keep - 1, 1, -1):
                if self._rotated(i - 1).exists():
                    os.replace(self._rotated(i - 1), self._rotated(i))
            os.replace(path, self._rotated(1))
        self.last_path = save_checkpoint(self.learner, path, epoch, iter, train_iter, self._sig)

    def after_batch(self) -> None:
        learn = self.learner
        done = learn.train_iter + 1  # the learner counts this batch once after_batch has run
        if self.every_n_steps is not None and done % self.every_n_steps == 0:
            self._save(learn.epoch, learn.iter + 1, done)

    def after_epoch(self) -> None:
        learn = self.learner
        if self.every_n_epochs is not None and (learn.epoch + 1) % self.every_n_epochs == 0:
            self._save(learn.epoch + 1, 0, learn.train_iter)

    def __repr__(self) -> str:
        return (f"Checkpoint(every_n_steps={self.every_n_steps}, every_n_epochs={self.every_n_epochs}, "
                f"fname={str(self.fname)!r}, keep={self.keep})")


class Resume:
    """Restores a checkpoint into a learner at the start of a fit (used by `Learner.fit(resume_from=)`).

    The weights, optimizer and counters are restored at once; the RNG states and the loader position
    are restored right before the first batch that the interrupted run had not done (before the
    resumed epoch's events for a checkpoint taken at an epoch end), and callbacks' states after
    `before_fit` / `before_epoch` / `before_train` have run (they reset their state there).
    """

    def __init__(self, learn: "Learner", path: str | Path) -> None:
        from ..export import state_dict_mismatches
        self.learn, self.path = learn, Path(path)
        state = load_checkpoint(self.path)
        self.signature = fit_signature(learn)
        check_signature(state["fit"], self.signature, self.path)
        model = unwrap_model(learn.model)
        problems = state_dict_mismatches(model, state["model"])
        if problems:
            raise CheckpointError(f"The weights in {self.path} do not fit this {type(model).__name__}: "
                                  + "; ".join(problems) + ".")
        model.load_state_dict(state["model"])
        if state["opt"]:
            if learn.opt is None:
                learn.create_opt()
            try:
                learn.opt.load_state_dict(state["opt"])
            except (ValueError, KeyError, RuntimeError) as e:
                raise CheckpointError(f"The optimizer state in {self.path} does not fit this learner's optimizer "
                                      f"({type(learn.opt).__name__}, {len(learn.opt.param_groups)} param groups): "
                                      f"{e}") from None
        pos = state["position"]
        self.epoch, self.iter = int(pos["epoch"]), int(pos["iter"])
        learn.start_epoch, learn.train_iter = self.epoch, int(pos["train_iter"])
        self.state = state
        self._restored = False

    def _restore_rng_and_data(self) -> None:
        if self._restored:
            return
        self._restored = True
        dls, data = self.learn.dls, self.state["data"]
        dls.train.load_state_dict({k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in data["train"].items()})
        if "valid" in data and getattr(dls, "valid", None) is not None:
            dls.valid.load_state_dict({k: (v.cpu() if isinstance(v, torch.Tensor) else v)
                                       for k, v in data["valid"].items()})
        set_rng_states(self.state["rng"])

    def at_epoch_start(self) -> None:
        """Before the first resumed epoch's `before_epoch`: an epoch-end checkpoint restores RNGs here."""
        if self.iter == 0:
            self._restore_rng_and_data()

    def at_train_start(self) -> int:
        """Right before the first resumed training batch; returns the batches of this epoch already done."""
        self._restore_rng_and_data()
        states = self.state["callbacks"]
        for key, cb in _callback_keys(self.learn):
            if key in states and states[key]:
                cb.load_state_dict(states[key])
        return self.iter
