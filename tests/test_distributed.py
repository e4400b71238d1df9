"""Distributed training: metric states merged across processes, rank-0-only writes, and a real
2-process CPU run (torchrun, gloo, loopback) that ends with the same metrics as one process.

Run as a script (`python -m torch.distributed.run ... tests/test_distributed.py OUT`), this file is
the worker of that 2-process test.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from deepfit import (Callback, CSVLogger, CrossEntropyLoss, DataLoaders, Learner, MSELoss, SaveBestModel, default_device,
                     set_seed)
from deepfit.distributed import (DistributedTrainer, ProcessGroupComm, distrib_ctx, is_main_process, num_distrib,
                                 rank_distrib, setup_distrib, shard_bounds, unwrap_model)
from deepfit.layers import MLP
from deepfit.metrics import (AccumMetric, AvgMetric, F1Score, Metric, R2Score, RocAucBinary, accuracy, error_rate,
                             exp_rmspe, mae, mse, r2_score, rmse, to_metric)

N_TRAIN, N_VALID = 256, 101  # 256 = 8 global batches of 32; 101 valid rows split 51 / 50


# ---- Metric.sync without processes: threads stand for the ranks --------------------------------------
class _ThreadGroup:
    """Collectives between `world_size` threads: each call deposits its tensor, waits for all, reads
    everyone's, and waits again before the slots are reused (as torch.distributed would behave)."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.slots: list = [None] * world_size
        self.barrier = threading.Barrier(world_size, timeout=10)

    def exchange(self, rank: int, t):
        self.slots[rank] = t
        self.barrier.wait()
        parts = list(self.slots)
        self.barrier.wait()
        return parts


class _ThreadComm:
    def __init__(self, group: _ThreadGroup, rank: int) -> None:
        self.group, self.rank = group, rank

    def sum(self, t):
        parts = self.group.exchange(self.rank, t.clone())
        out = parts[0].clone()  # rank order, as a ring all-reduce would give the same on every rank
        for p in parts[1:]:
            out = out + p
        return out.to(t.device, t.dtype)

    def cat(self, t):
        parts = [p for p in self.group.exchange(self.rank, t) if p is not None]
        return torch.cat(parts) if parts else None


def _synced_values(proto: Metric, shards: list[tuple[torch.Tensor, torch.Tensor]], bs: int = 4) -> list[float]:
    """The value of `proto` on every simulated rank after sync, rank r holding shards[r]."""
    group = _ThreadGroup(len(shards))
    values: list = [None] * len(shards)

    def rank_main(r: int) -> None:
        pred, targ = shards[r]
        m = to_metric(proto)
        for i in range(0, len(targ), bs):
            m.accumulate(pred[i:i + bs], targ[i:i + bs])
        try:
            m.sync(_ThreadComm(group, r))
            values[r] = m.value
        except Exception as e:  # reported by the main thread
            values[r] = e
            group.barrier.abort()
    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(len(shards))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for v in values:
        if isinstance(v, Exception):
            raise v
    return values


def _order_sensitive(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # weights each row by its position: only right if the rows come back in their original order
    return (torch.arange(len(t), dtype=torch.float64) * (p[:, 1] - p[:, 0] - t)).sum()


def _split(pred, targ, sizes):
    out, lo = [], 0
    for s in sizes:
        out.append((pred[lo:lo + s], targ[lo:lo + s]))
        lo += s
    assert lo == len(targ)
    return out


@pytest.mark.parametrize("sizes", [(17,), (9, 8), (7, 0, 10), (1, 1, 15)])
def test_metric_sync_equals_metric_on_all_rows(sizes):
    g = torch.Generator().manual_seed(0)
    n = sum(sizes)
    logits = torch.randn(n, 2, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (n,), generator=g)
    labels[:2] = torch.tensor([0, 1])
    reg_p = torch.randn(n, 1, generator=g, dtype=torch.float64)
    reg_t = reg_p[:, 0] * 0.7 + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    multi = torch.randn(n, 3, generator=g, dtype=torch.float64)
    multi_t = torch.randint(0, 3, (n,), generator=g)
    cases = [
        (AvgMetric(accuracy), logits, labels), (AvgMetric(error_rate), logits, labels),
        (AvgMetric(mse), reg_p, reg_t), (AvgMetric(mae), reg_p, reg_t),
        (rmse, reg_p, reg_t), (exp_rmspe, reg_p, reg_t), (r2_score, reg_p, reg_t),
        (F1Score(), logits, labels), (F1Score(average="macro"), multi, multi_t),
        (F1Score(average="weighted"), multi, multi_t), (F1Score(average="micro"), multi, multi_t),
        (RocAucBinary(), logits, labels), (AccumMetric(_order_sensitive), logits, labels.double()),
    ]
    for proto, pred, targ in cases:
        full = to_metric(proto)
        full.accumulate(pred, targ)
        expected = full.value
        got = _synced_values(proto, _split(pred, targ, sizes))
        assert got == pytest.approx([expected] * len(sizes), rel=1e-12, abs=1e-12), proto


def test_metric_sync_r2_hand_computed():
    # ranks hold targets [1, 2] and [3, 6] with predictions off by [0, 1] and [1, -1]:
    # mean 3, SS_tot = 4 + 1 + 0 + 9 = 14, SS_res = 0 + 1 + 1 + 1 = 3 -> R2 = 1 - 3/14
    t = torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64)
    p = t + torch.tensor([0.0, 1.0, 1.0, -1.0], dtype=torch.float64)
    got = _synced_values(R2Score(), [(p[:2], t[:2]), (p[2:], t[2:])], bs=1)
    assert got == pytest.approx([1 - 3 / 14] * 2, abs=1e-15)


class Median(Metric):
    """A metric with no `sync`: its state cannot be combined across processes."""

    def reset(self):
        self.v = []

    def accumulate(self, pred, targ):
        self.v.append(pred)

    @property
    def value(self):
        return float(torch.cat(self.v).median())


def test_metric_without_sync_fails_clearly():
    with pytest.raises(NotImplementedError, match="'median'.*sync"):
        Median().sync(_ThreadComm(_ThreadGroup(1), 0))


def test_shard_bounds_cover_every_row_once():
    for n in (0, 1, 5, 101, 1000):
        for ws in (1, 2, 3, 8):
            bounds = [shard_bounds(n, r, ws) for r in range(ws)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1
    assert shard_bounds(101, 0, 2) == (0, 51) and shard_bounds(101, 1, 2) == (51, 101)
    with pytest.raises(ValueError, match="rank=2, world_size=2"):
        shard_bounds(10, 2, 2)


# ---- rank helpers and rank-0-only writes (no process group: torchrun's env vars) ------------------
def _small_learner(path: Path, bs: int = 32, progress: bool = True, cbs=()) -> Learner:
    set_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N_TRAIN + N_VALID, 4, generator=g)
    w = torch.tensor([1.5, -2.0, 0.5, 1.0])
    y = ((x @ w + 0.5 * torch.randn(len(x), generator=g)) > 0).long()
    dls = DataLoaders.from_tensors(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:], bs=bs, device="cpu", seed=3)
    return Learner(dls, MLP(4, [16], 2), loss_func=CrossEntropyLoss(), metrics=[accuracy], path=path,
                   progress=progress, cbs=list(cbs))


def test_rank_from_torchrun_env(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (rank_distrib(), num_distrib(), is_main_process()) == (0, 1, True)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert (rank_distrib(), num_distrib(), is_main_process()) == (1, 2, False)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x'"):
        rank_distrib()


def test_setup_distrib_outside_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert setup_distrib() == default_device()
    assert not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR, MASTER_PORT.*torchrun"):
        setup_distrib()
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        with distrib_ctx(_small_learner(Path("."), progress=False)):
            pass


def test_distrib_ctx_is_a_no_op_in_one_process(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    a, b = _small_learner(tmp_path, progress=False), _small_learner(tmp_path, progress=False)
    a.fit(1, 1e-2)
    with distrib_ctx(b):
        assert not any(isinstance(c, DistributedTrainer) for c in b.cbs)
        b.fit(1, 1e-2)
    assert torch.equal(a.model.layers[0].weight, b.model.layers[0].weight)


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_0_writes(tmp_path, monkeypatch, capsys, rank):
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun; no process group is needed for the writes
    learn = _small_learner(tmp_path, progress=True, cbs=[CSVLogger("log.csv")])
    learn.fit(2, 1e-2, cbs=[SaveBestModel(fname="best", load_best=False)])
    saved = learn.save("final")
    exported = learn.export("model.safetensors")
    out = capsys.readouterr().out
    assert saved == tmp_path / "models" / "final.pth" and exported == tmp_path / "model.safetensors"
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    if rank == 0:
        assert written == ["log.csv", "model.safetensors", "models/best.pth", "models/final.pth"]
        assert "valid_loss" in out and (tmp_path / "log.csv").read_text().count("\n") == 1 + 2
    else:
        assert written == [] and out == ""
    assert len(learn.recorder.log) == 2  # every rank still records everything


# ---- a 1-process group in this process: the callback's wiring ----------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_process_group():
    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        if dist.is_initialized():  # a test may have left it already
            dist.destroy_process_group()


def test_trainer_wraps_for_training_only_and_restores(tmp_path, one_process_group):
    ref = _small_learner(tmp_path, progress=False)
    ref.fit(2, 1e-2)
    learn = _small_learner(tmp_path, progress=False)
    seen: set[tuple[bool, str]] = set()

    class Spy(SaveBestModel):
        def after_pred(self):
            seen.add((self.learner.training, type(self.learner.model).__name__))
    spy = Spy(fname="best", load_best=True)
    dl = learn.dls.train
    learn.fit(2, 1e-2, cbs=[DistributedTrainer(), spy])
    assert seen == {(True, "DistributedDataParallel"), (False, "MLP")}
    assert type(learn.model) is MLP and (dl.rank, dl.world_size, dl.seed) == (0, 1, 3)
    # with one process DDP changes nothing: the same weights and log as a plain fit
    for p, q in zip(ref.model.parameters(), learn.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert learn.recorder.log[-1]["valid_loss"] == pytest.approx(ref.recorder.log[-1]["valid_loss"], rel=1e-5)
    saved = torch.load(tmp_path / "models" / "best.pth", weights_only=True)["model"]
    assert set(saved) == set(MLP(4, [16], 2).state_dict())  # no "module." prefix from the wrapper
    assert unwrap_model(torch.nn.parallel.DistributedDataParallel(learn.model)) is learn.model


def test_trainer_refuses_metric_without_sync(tmp_path, one_process_group):
    learn = _small_learner(tmp_path, progress=False)
    learn.metrics.append(Median())
    with pytest.raises(TypeError, match=r"\['median'\].*sync"):
        learn.fit(1, 1e-2, cbs=[DistributedTrainer()])
    assert type(learn.model) is MLP


def test_comm_round_trip_one_process(one_process_group):
    comm = ProcessGroupComm()
    t = torch.tensor([1.5, 2.0], dtype=torch.float64)
    assert torch.equal(comm.sum(t), t) and comm.sum(t).dtype == torch.float64
    assert comm.cat(None) is None
    assert torch.equal(comm.cat(torch.tensor([[1, 2]])), torch.tensor([[1, 2]]))
    assert comm.broadcast_object({"a": 1}) == {"a": 1}


# ---- two real processes -------------------------------------------------------------------------------
def _run(out: Path, bs: int) -> dict:
    """Train a classifier and a regressor (inside distrib_ctx) and report what a test needs."""
    res: dict = {}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        learn = _small_learner(out, bs=bs, progress=True, cbs=[CSVLogger("history.csv")])
        learn.metrics = [to_metric(m) for m in
                         (accuracy, F1Score(average="macro"), RocAucBinary(), AccumMetric(_order_sensitive))]
        learn.dls.valid = learn.dls.valid.new(*learn.dls.valid.tensors, bs=20)  # 6 batches: 5 full + 1 row
        with distrib_ctx(learn):
            learn.fit_one_cycle(3, 1e-2)
            res["validate"] = learn.validate()
            learn.save("final")
            res["n_train_batches"] = len(learn.recorder.losses)
        res["cls_log"] = learn.recorder.log
        res["cls_losses"] = learn.recorder.losses
        res["cls_params"] = torch.cat([p.detach().reshape(-1) for p in learn.model.parameters()]).tolist()

        set_seed(0)
        g = torch.Generator().manual_seed(2)
        x = torch.randn(N_TRAIN + N_VALID, 3, generator=g)
        y = x @ torch.tensor([1.0, -1.0, 2.0]) + 0.1 * torch.randn(len(x), generator=g)
        dls = DataLoaders.from_tensors(x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:], y[N_TRAIN:], bs=bs, device="cpu",
                                       seed=4)
        reg = Learner(dls, MLP(3, [8], 1), loss_func=MSELoss(), metrics=[rmse, r2_score, mae], path=out,
                      progress=False)
        with distrib_ctx(reg):
            reg.fit(2, 3e-3)
        res["reg_log"] = reg.recorder.log

        if num_distrib() > 1:  # an unseeded loader and a different global RNG on each rank
            torch.manual_seed(100 + rank_distrib())
            ids = DataLoaders.from_tensors(torch.arange(64.0)[:, None], torch.zeros(64), bs=4, device="cpu")
            res["seen"] = seen = []

            class Seen(Callback):
                def before_batch(self):
                    seen.append(self.learner.xb[0][:, 0].long().tolist())
            lin = Learner(ids, torch.nn.Linear(1, 1), loss_func=MSELoss(), progress=False)
            with distrib_ctx(lin):
                lin.fit(2, 1e-3, cbs=[Seen()])
    res["stdout"] = buf.getvalue()
    res["rank"], res["world"] = rank_distrib(), num_distrib()
    return res


def _worker(out: Path) -> None:
    rank = int(os.environ["RANK"])
    res = _run(out / f"rank{rank}", bs=16)
    (out / f"result{rank}.json").write_text(json.dumps(res))


def _close_rows(a: list[dict], b: list[dict], tol: float) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert set(ra) == set(rb)
        for k in ra:
            if k != "time":
                assert ra[k] == pytest.approx(rb[k], rel=tol, abs=tol), (k, ra, rb)


@pytest.mark.slow
def test_two_cpu_processes_match_one_process(tmp_path):
    # Two worker processes given the variables torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR/PORT,
    # LOCAL_RANK), without torchrun's agent process (saves seconds); loopback only.
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               WORLD_SIZE="2")
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    procs = [subprocess.Popen([sys.executable, __file__, str(tmp_path)], env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    try:
        single = _run(tmp_path / "single", bs=32)  # meanwhile: one process, same global batch (2 x 16)
        logs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-4000:] for log in logs)
    r0, r1 = (json.loads((tmp_path / f"result{r}.json").read_text()) for r in (0, 1))
    assert (r0["rank"], r0["world"], r1["rank"], r1["world"]) == (0, 2, 1, 2)

    # every rank reports the same (global) numbers
    for key in ("cls_log", "reg_log"):
        _close_rows(r0[key], r1[key], 0.0)
    assert r0["cls_losses"] == r1["cls_losses"] and r0["cls_params"] == r1["cls_params"]
    # ... equal to one process with the same global batch, up to float rounding
    assert r0["n_train_batches"] == single["n_train_batches"] == 3 * N_TRAIN // 32
    _close_rows(r0["cls_log"], single["cls_log"], 1e-5)
    _close_rows(r0["reg_log"], single["reg_log"], 1e-5)
    _close_rows([r0["validate"]], [single["validate"]], 1e-5)
    assert r0["cls_losses"] == pytest.approx(single["cls_losses"], rel=1e-5, abs=1e-6)
    assert r0["cls_params"] == pytest.approx(single["cls_params"], rel=1e-5, abs=1e-6)
    assert r0["cls_log"][-1]["accuracy"] > 0.8  # it did learn something
    # both ranks drew the same shuffled order and took disjoint halves of it: each row once per epoch
    for epoch in (0, 1):
        rows = [i for r in (r0, r1) for b in r["seen"][epoch * 8:(epoch + 1) * 8] for i in b]
        assert sorted(rows) == list(range(64))
    assert r0["seen"][:8] != r0["seen"][8:]  # and a new order each epoch

    # only rank 0 printed and wrote
    assert "valid_loss" in r0["stdout"] and r1["stdout"] == ""
    assert (tmp_path / "rank0" / "history.csv").read_text().count("\n") == 1 + 3
    assert (tmp_path / "rank0" / "models" / "final.pth").exists()
    assert [p for p in (tmp_path / "rank1").rglob("*") if p.is_file()] == []


@pytest.mark.slow
def test_ddp_example_exits_cleanly_on_every_rank(tmp_path):
    # About one torchrun run in 30 once ended with rank 1 aborting ("terminate called without an active
    # exception") after everything was written. A few short runs here (each ~3 s); set
    # DEEPFIT_DDP_REPEAT=60 for the long check.
    example = Path(__file__).resolve().parents[1] / "examples" / "train_ddp.py"
    for i in range(int(os.environ.get("DEEPFIT_DDP_REPEAT", "3"))):
        env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
                   WORLD_SIZE="2", LOCAL_WORLD_SIZE="2")
        if Path("/sys/class/net/lo").exists():
            env["GLOO_SOCKET_IFNAME"] = "lo"
        out = tmp_path / f"run{i}"
        cmd = [sys.executable, str(example), "--epochs", "1", "--rows", "2000", "--out", str(out)]
        procs = [subprocess.Popen(cmd, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for r in (0, 1)]
        try:
            logs = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        for r, (p, (so, se)) in enumerate(zip(procs, logs)):
            assert p.returncode == 0 and "terminate called" not in se, f"run {i}, rank {r}:\n{so}\n{se[-3000:]}"
            assert f"rank {r}: valid_loss" in so
        assert (out / "model.safetensors").exists() and (out / "models" / "final.pth").exists()
        assert (out / "history.csv").read_text().count("\n") == 2  # header + 1 epoch


def test_teardown_leaves_the_group(one_process_group):
    import torch.distributed as dist
    from deepfit.distributed import teardown_distrib
    assert dist.is_initialized()
    teardown_distrib()
    assert not dist.is_initialized()
    teardown_distrib()  # nothing left to leave: a no-op


if __name__ == "__main__":  # the worker of test_two_cpu_processes_match_one_process, under torchrun
    _worker(Path(sys.argv[1]))
