"""Training on several processes (and machines) with DistributedDataParallel, launched by `torchrun`.

The same `Learner` code runs in every process. Wrap its training calls in `distrib_ctx`:

    >>> from deepfit.distributed import distrib_ctx
    >>> with distrib_ctx(learn):           # a no-op when not launched by torchrun
    ...     learn.fit_one_cycle(5, 1e-3)

and launch with ``torchrun --nproc_per_node=N script.py`` (add ``--nnodes``/``--rdzv-endpoint`` for
several machines). Backend: ``nccl`` when CUDA is available (one GPU per process, chosen by
``LOCAL_RANK``), ``gloo`` on the CPU. During `fit`, `DistributedTrainer`:

* wraps the model in `torch.nn.parallel.DistributedDataParallel` for the training phase only
  (`learn.model` is the plain module again in validation and after training, so saving, export and
  `summary` see the model itself);
* shards the training loader: every process draws the same shuffled order (rank 0's generator
  state is broadcast when the fit starts) and takes every `world_size`-th row of it, padded by
  wrap-around so that every process runs the same number of batches;
* shards the validation loader into contiguous, non-overlapping chunks (no padding, so no row is
  counted twice) and sums the loss and the metric states over processes (`Metric.sync`): the
  reported validation loss and metrics equal those of a single process;
* replaces each training batch's loss by its mean over processes, so the recorded losses, the
  progress display and every loss-driven decision (NaN guard, LR finder) agree on every process;
* lets only rank 0 print progress, write CSV logs, and save or export models (`is_main_process`).

Batch size and learning rate: `bs` is per process, so one optimizer step averages the gradients
of `world_size * bs` rows. A run with `bs=B/world_size` on `world_size` processes takes the same
steps (up to float rounding) as one process with `bs=B` and the same learning rate; keeping `bs`
and using more processes means a larger effective batch, for which the learning rate usually needs
raising (roughly in proportion to `world_size`, with a warm-up such as `fit_one_cycle`'s).
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import math
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from .callbacks.core import Callback
from .data.core import DataLoader
from .metrics import Metric

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["rank_distrib", "num_distrib", "is_main_process", "is_distributed", "setup_distrib",
           "teardown_distrib", "distrib_barrier", "unwrap_model", "shard_bounds", "ProcessGroupComm",
           "DistributedTrainer", "distrib_ctx"]

_ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


# ---- where am I ----------------------------------------------------------------------------------
def is_distributed() -> bool:
    """True when a torch.distributed process group is initialised in this process."""
    return dist.is_available() and dist.is_initialized()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise ValueError(f"The environment variable {name}={os.environ[name]!r} is not an integer; "
                         "torchrun sets it, do not set it by hand.") from None


def rank_distrib() -> int:
    """This process's rank: from the process group when initialised, else from the `RANK`
    environment variable that `torchrun` sets (0 when there is none)."""
    if is_distributed():
        return dist.get_rank()
    return _env_int("RANK", 0)


def num_distrib() -> int:
    """Number of processes: from the process group when initialised, else from `WORLD_SIZE`
    (1 when unset)."""
    if is_distributed():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1)


def is_main_process() -> bool:
    """True on rank 0 (and in any non-distributed run): the process that prints and writes files."""
    return rank_distrib() == 0


def distrib_barrier() -> None:
    """Wait until every process reaches this point (a no-op without a process group)."""
    if is_distributed() and dist.get_world_size() > 1:
        dist.barrier()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel / DataParallel wrapper (the model itself otherwise)."""
    while isinstance(model, (DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows `[lo, hi)` of a contiguous, non-overlapping split of `n` rows into `world_size` chunks
    whose sizes differ by at most one (the first `n % world_size` chunks get the extra row)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"Need 0 <= rank < world_size; received rank={rank}, world_size={world_size}.")
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


# ---- process group ---------------------------------------------------------------------------------
def setup_distrib(backend: str | None = None, timeout_s: float = 1800.0) -> torch.device:
    """Join the process group described by torchrun's environment variables and return this
    process's device.

    Does nothing (and returns the default device) when `WORLD_SIZE` is unset or 1, so a script that
    calls it also runs as a plain single process. With CUDA, process `LOCAL_RANK` uses GPU
    `LOCAL_RANK` (made the current device); call this before building the DataLoaders so the data
    lands on that GPU. A process joins once: the group stays for the rest of the process (several
    `distrib_ctx` blocks share it) and is left at exit.

    Args:
        backend: "nccl" (default when CUDA is available) or "gloo" (default on the CPU).
        timeout_s: how long collective operations wait for the other processes.

    Raises:
        ValueError: torchrun's variables are incomplete, or the backend is unknown/unavailable.
    """
    use_cuda = torch.cuda.is_available()
    if is_distributed():
        return _process_device()
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        from .utils import default_device
        return default_device()
    missing = [v for v in _ENV_VARS if v not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={world} but {', '.join(missing)} is not set: launch the script with "
                         "`torchrun --nproc_per_node=N script.py` (it sets RANK, WORLD_SIZE, MASTER_ADDR, "
                         "MASTER_PORT and LOCAL_RANK).")
    backend = backend or ("nccl" if use_cuda else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"`backend` must be 'nccl' or 'gloo'; received backend={backend!r}.")
    if backend == "nccl" and not (use_cuda and dist.is_nccl_available()):
        raise ValueError("backend='nccl' needs CUDA GPUs and a torch built with NCCL; use backend='gloo' on the CPU.")
    if use_cuda and backend == "nccl":
        local = _env_int("LOCAL_RANK", 0)
        if local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local} but this machine has {torch.cuda.device_count()} GPU(s): "
                             "use at most one process per GPU (--nproc_per_node).")
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
    atexit.register(teardown_distrib)
    return _process_device()


def teardown_distrib(timeout_s: float = 10.0) -> None:
    """Leave the process group cleanly (a no-op without one). Done at exit for a group that
    `setup_distrib` joined; joining again afterwards in the same torchrun job is not supported by
    torch's rendezvous.

    Every process first waits for the others (a barrier: no collective of another process is still
    using the connections), then destroys the group itself. Under gloo the wait is bounded by
    `timeout_s` (`monitored_barrier`), so a process whose peer failed or exited early still leaves
    promptly; under nccl there is no bounded barrier and the group is destroyed at once.
    """
    if not is_distributed():
        return
    try:
        if dist.get_world_size() > 1 and dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=timeout_s))
    except Exception:  # noqa: BLE001 - a peer that died or left already: leave anyway
        pass
    finally:
        dist.destroy_process_group()


def _process_device() -> torch.device:
    """The device this process computes on: its GPU under nccl, else the CPU."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---- collective operations for metric states -------------------------------------------------------
class ProcessGroupComm:
    """Sums and gathers tensors over the processes of the default process group (the
    `deepfit.metrics.StateComm` that `Metric.sync` uses). Tensors travel on the backend's device
    (the GPU for nccl, the CPU for gloo) and come back on the caller's device and dtype."""

    def __init__(self) -> None:
        if not is_distributed():
            raise RuntimeError("No torch.distributed process group: call deepfit.distributed.setup_distrib() "
                               "(or use distrib_ctx) in a script launched by torchrun.")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.device = _process_device()

    def sum(self, t: Tensor) -> Tensor:
        """Element-wise sum over processes."""
        x = t.detach().to(self.device, copy=True)
        if x.dtype == torch.bool:
            x = x.long()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x.to(t.device, t.dtype)

    def mean(self, t: Tensor) -> Tensor:
        """Element-wise mean over processes (floating tensors)."""
        return self.sum(t) / self.world_size

    def cat(self, t: Tensor | None) -> Tensor | None:
        """Every process's `t` concatenated along dim 0 in rank order; None contributes nothing.
        The result is on `t`'s device (the CPU when this process passed None)."""
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, None if t is None else t.detach().cpu())
        parts = [p for p in parts if p is not None]
        if not parts:
            return None
        return torch.cat(parts).to(t.device if t is not None else torch.device("cpu"))

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """`obj` of process `src` (picklable), on every process."""
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]


# ---- the callback -------------------------------------------------------------------------------------
def _shardable_valid(dl: Any) -> bool:
    # A plain deepfit DataLoader iterates rows of `tensors` only: slicing them shards it. Loaders that
    # iterate differently (or drop rows) are validated whole on every process instead.
    return isinstance(dl, DataLoader) and type(dl).__iter__ is DataLoader.__iter__ and not dl.drop_last


class DistributedTrainer(Callback):
    """Run a fit on every process of a torch.distributed group (see the module docs).

    Usually added by `distrib_ctx`; add it yourself (`cbs=[DistributedTrainer()]`) after
    `setup_distrib()` if you prefer.

    Args:
        find_unused_parameters: passed to DistributedDataParallel (needed when some trainable
            parameters get no gradient in a step).
        broadcast_buffers: passed to DistributedDataParallel (rank 0's buffers, e.g. batch-norm
            statistics, are copied to the others at each forward).
        sync_loss: replace each training batch's loss by its mean over processes (one small
            all-reduce per batch); keep it on so that loss-driven decisions agree everywhere.
        shard_valid: split validation over processes (else each validates everything).
    """

    order = -30  # before every other callback: the loaders and the model are set up first
    unique = True

    def __init__(self, find_unused_parameters: bool = False, broadcast_buffers: bool = True,
                 sync_loss: bool = True, shard_valid: bool = True) -> None:
        self.find_unused_parameters, self.broadcast_buffers = find_unused_parameters, broadcast_buffers
        self.sync_loss, self.shard_valid = sync_loss, shard_valid
        self.comm: ProcessGroupComm | None = None
        self._ddp: DistributedDataParallel | None = None
        self._raw: nn.Module | None = None
        self._train_saved: tuple[Any, ...] | None = None
        self._synced_valid = False

    # -- setup
    def before_fit(self) -> None:
        learn = self.learner
        self.comm = comm = ProcessGroupComm()
        no_sync = [m.name for m in learn.metrics if type(m).sync is Metric.sync]
        if no_sync:
            raise TypeError(f"Metric(s) {no_sync} cannot be combined across processes: give them a "
                            "`sync(comm)` method (see deepfit.metrics.Metric.sync).")
        self._raw = unwrap_model(learn.model)
        if comm.device.type == "cuda" and learn.dls.device != comm.device:
            # data and model built before setup_distrib() sit on the default GPU: move them to ours
            learn.dls.to(comm.device)
            self._raw.to(comm.device)
        self._shard_train()
        learn.train_iter = learn.start_epoch * len(learn.dls.train)
        ids = [comm.device.index] if comm.device.type == "cuda" else None
        options: dict[str, Any] = {"find_unused_parameters": self.find_unused_parameters}
        if not self.broadcast_buffers:  # the default is True; recent torch deprecates passing the argument
            options["broadcast_buffers"] = False
        self._ddp = DistributedDataParallel(self._raw, device_ids=ids, output_device=ids[0] if ids else None,
                                            **options)

    def _shard_train(self) -> None:
        dl, comm = self.learner.dls.train, self.comm
        if not isinstance(dl, DataLoader):
            raise TypeError(f"DistributedTrainer shards deepfit DataLoaders; the training loader is a "
                            f"{type(dl).__name__}.")
        self._train_saved = (dl, dl.rank, dl.world_size, dl.seed)
        # Every process must shuffle identically: use rank 0's generator (seeding it first from rank 0's
        # global RNG when the loader has no seed of its own).
        own = int(torch.randint(0, 2**62, (1,)))  # drawn everywhere, so RNG use is the same on all ranks
        seed, gen_state = comm.broadcast_object((own if dl.seed is None else dl.seed, dl.state_dict()["gen"]))
        if dl.seed is None:
            dl.seed = seed
            gen_state = torch.Generator().manual_seed(seed).get_state()
        dl.load_state_dict({"gen": gen_state, "epoch_seed": None, "pos": 0})
        dl.rank, dl.world_size = comm.rank, comm.world_size
        if len(dl) == 0:
            n_all = len(dl.tensors[0])
            self._restore_train()
            raise ValueError(f"With {comm.world_size} processes each gets {math.ceil(n_all / comm.world_size)} "
                             f"of the {n_all} training rows: fewer than bs={dl.bs} with drop_last; use a smaller bs.")

    def _restore_train(self) -> None:
        if self._train_saved is not None:
            dl, dl.rank, dl.world_size, dl.seed = self._train_saved
            self._train_saved = None

    # -- training phase: the DDP wrapper does the gradient all-reduce
    def before_train(self) -> None:
        if self._ddp is not None:
            self.learner.model = self._ddp

    def after_loss(self) -> None:
        learn = self.learner
        if learn.training and self.sync_loss and learn.loss is not None:
            learn.loss = self.comm.mean(learn.loss)

    def after_train(self) -> None:
        if self._raw is not None:
            self.learner.model = self._raw

    # -- validation: contiguous shards, then sum the loss and the metric states
    def before_validate(self) -> None:
        learn = self.learner
        if self._raw is not None:
            learn.model = self._raw
        if self.comm is None and is_distributed():  # `learn.validate()` outside a fit
            self.comm = ProcessGroupComm()
        dl, comm = learn.dl, self.comm
        self._synced_valid = False
        if comm is None or not self.shard_valid or not _shardable_valid(dl) or len(dl.tensors[0]) < comm.world_size:
            return
        lo, hi = shard_bounds(len(dl.tensors[0]), comm.rank, comm.world_size)
        shard = copy.copy(dl)
        shard.tensors = tuple(t[lo:hi] for t in dl.tensors)
        shard.rank, shard.world_size = 0, 1
        learn.dl = shard
        self._synced_valid = True

    def after_validate(self) -> None:
        if self._synced_valid:
            self.learner.recorder.sync_valid(self.comm)
            self.learner.dl = self.learner.dls.valid
            self._synced_valid = False

    # -- teardown
    def after_fit(self) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the learner back as it was before the fit: the plain model, the unsharded training
        loader (called at the end of every fit, and by `distrib_ctx` on errors)."""
        learn = getattr(self, "learner", None)
        if learn is not None:
            learn.model = unwrap_model(learn.model)
        self._restore_train()
        self._ddp, self._raw = None, None


@contextlib.contextmanager
def distrib_ctx(learn: "Learner", find_unused_parameters: bool = False, sync_loss: bool = True,
                shard_valid: bool = True, backend: str | None = None) -> Iterator["Learner"]:
    """Train `learn` on every process of a torchrun launch inside this block.

    Joins the process group (`setup_distrib`) when torchrun's variables are set and none exists yet
    (it stays joined for later blocks and is left at exit), adds a `DistributedTrainer` for the block,
    and afterwards removes it and puts the learner back (plain model, unsharded loaders). A block that
    ends normally ends with a barrier: every process leaves it together, after rank 0 has written
    what the block saves or exports (so no process runs ahead to exit while another still works).
    Outside torchrun (no `WORLD_SIZE`) it does nothing, so the same script also trains in one process.

    Example:
        >>> with distrib_ctx(learn):
        ...     learn.fit_one_cycle(3, 1e-3)
    """
    if not is_distributed() and _env_int("WORLD_SIZE", 1) > 1:
        setup_distrib(backend=backend)
    if not is_distributed() or dist.get_world_size() == 1:
        yield learn
        return
    cb = DistributedTrainer(find_unused_parameters=find_unused_parameters, sync_loss=sync_loss,
                            shard_valid=shard_valid)
    learn.add_cb(cb)
    try:
        yield learn
    finally:
        learn.remove_cb(cb)
        cb.restore()
    distrib_barrier()  # only after a block that ended normally: after an error a peer may never come
