"""Exact resume from checkpoints: a run killed with SIGKILL mid-epoch and resumed ends with weights
bit-identical (CPU) to an uninterrupted run; checkpoint files are safe (weights_only) and atomic."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfit.callbacks import Callback, Checkpoint, CheckpointError, EarlyStopping
from deepfit.callbacks.checkpoint import CHECKPOINT_VERSION, load_checkpoint, save_checkpoint
from deepfit.layers import MLP
from conftest import torch_threads

REPO = Path(__file__).resolve().parents[1]

# The training script shared by the subprocess test and the in-process tests: generated data, shuffled
# by torch's global RNG (loader without its own seed), dropout, Adam with weight decay, 1cycle, and a
# callback that draws from numpy's and Python's RNGs every batch, so every RNG state matters.
SCRIPT = textwrap.dedent('''
    import json, random, sys, time
    from pathlib import Path
    import numpy as np
    import torch
    from deepfit import CrossEntropyLoss, DataLoaders, Learner, set_seed
    from deepfit.callbacks import Callback, Checkpoint
    from deepfit.layers import MLP
    from deepfit.metrics import accuracy
    from deepfit.optim import Adam

    class Noise(Callback):
        """Input noise from numpy, scaled by Python's random: resume must restore both RNGs."""
        def before_batch(self):
            if self.learner.training:
                xb = self.learner.xb[0]
                noise = torch.from_numpy(np.random.randn(*xb.shape).astype("float32"))
                self.learner.xb = (xb + 0.1 * random.random() * noise,)

    class Hang(Callback):
        """After training step `at` (and after Checkpoint, order 90) tell the parent, then wait to be killed."""
        order = 95
        run_valid = False
        def __init__(self, at, marker):
            self.at, self.marker = at, marker
        def after_batch(self):
            if self.learner.train_iter + 1 == self.at:
                Path(self.marker).write_text("ready")
                time.sleep(600)

    def build(out):
        set_seed(0)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(200, 6, generator=g)
        y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()
        dls = DataLoaders.from_tensors(x[:160], y[:160], x[160:], y[160:], bs=16, device="cpu")
        model = MLP(6, [32, 32], 2, p=0.3)
        return Learner(dls, model, loss_func=CrossEntropyLoss(), opt_func=Adam, wd=0.1, metrics=[accuracy],
                       path=out, progress=False)

    def main(out, mode, hang_at):
        out = Path(out)
        learn = build(out)
        cbs = [Checkpoint(every_n_steps=7, every_n_epochs=None), Noise()]
        if mode == "kill":
            cbs.append(Hang(hang_at, out / "marker"))
        resume = out / "models" / "checkpoint.pth" if mode == "resume" else None
        learn.fit_one_cycle(4, 1e-2, cbs=cbs, resume_from=resume)
        torch.save(learn.model.state_dict(), out / "final.pth")
        rec = learn.recorder
        log = [{k: v for k, v in r.items() if k != "time"} for r in rec.log]
        (out / "history.json").write_text(json.dumps({"losses": rec.losses, "lrs": rec.lrs, "log": log}))

    if __name__ == "__main__":
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
''')


def _run(script: Path, out: Path, mode: str, hang_at: int = 0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), str(out), mode, str(hang_at)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(p: subprocess.Popen) -> None:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err.decode()[-3000:]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, script_ns):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    full, crash = tmp_path / "full", tmp_path / "crash"
    # 160 rows / bs 16 = 10 batches per epoch, 4 epochs = 40 steps; checkpoints after steps 7, 14, 21, 28, 35.
    # The child hangs after step 25 (epoch 2, batch 6): the last checkpoint is step 21 (epoch 2, 1 batch done),
    # so the resumed run redoes steps 22-25 and must replay them exactly.
    p_kill = _run(script, crash, "kill", hang_at=25)
    try:
        # meanwhile, the uninterrupted reference run, in this process with one thread like the children
        with torch_threads(1):
            script_ns["main"](full, "full", 0)
        deadline = time.time() + 120
        while not (crash / "marker").exists():
            assert p_kill.poll() is None, p_kill.stderr.read().decode()[-3000:]
            assert time.time() < deadline, "the child never reached the step where it waits to be killed"
            time.sleep(0.05)
        os.kill(p_kill.pid, signal.SIGKILL)
        p_kill.wait(timeout=30)
    finally:
        if p_kill.poll() is None:
            p_kill.kill()
            p_kill.wait(timeout=30)
    assert p_kill.returncode == -signal.SIGKILL
    assert not (crash / "final.pth").exists()
    ckpt = load_checkpoint(crash / "models" / "checkpoint.pth")
    assert ckpt["position"] == {"epoch": 2, "iter": 1, "train_iter": 21, "n_epoch": 4}
    assert ckpt["data"]["train"]["pos"] == 1 and ckpt["callbacks"]["recorder"]["epoch_losses"].shape == (1,)
    _finish(_run(script, crash, "resume"))

    w_full = torch.load(full / "final.pth", weights_only=True)
    w_res = torch.load(crash / "final.pth", weights_only=True)
    assert w_full.keys() == w_res.keys()
    for k in w_full:
        assert torch.equal(w_full[k], w_res[k]), k
    # the history of the resumed run continues the interrupted one exactly, the interrupted epoch included
    h_full, h_res = (json.loads((d / "history.json").read_text()) for d in (full, crash))
    assert len(h_full["losses"]) == 40
    assert h_res["losses"] == h_full["losses"] and h_res["lrs"] == h_full["lrs"]
    assert h_res["log"] == h_full["log"] and [r["epoch"] for r in h_res["log"]] == [0, 1, 2, 3]


# ---- in-process resume tests (same script, interrupted by an exception instead of a kill) -------------
class Crash(Exception):
    pass


class CrashAt(Callback):
    order = 95
    run_valid = False

    def __init__(self, at: int) -> None:
        self.at = at

    def after_batch(self) -> None:
        if self.learner.train_iter + 1 == self.at:
            raise Crash()


@pytest.fixture(scope="module")
def script_ns():
    ns: dict = {"__name__": "resume_script"}
    exec(compile(SCRIPT, "resume_script", "exec"), ns)
    return ns


_REFERENCE: dict = {}


def _reference_one_cycle(ns, path):
    """Weights and epoch log of the uninterrupted fit_one_cycle(3, 1e-2) with the Noise callback (cached)."""
    if "one_cycle" not in _REFERENCE:
        learn = ns["build"](path)
        learn.fit_one_cycle(3, 1e-2, cbs=[ns["Noise"]()])
        _REFERENCE["one_cycle"] = (_weights(learn), learn.recorder.log)
    return _REFERENCE["one_cycle"]


def _weights(learn):
    return {k: v.clone() for k, v in learn.model.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("crash_at, expected", [(20, (1, 0, 10)), (23, (2, 0, 20)), (11, (1, 0, 10))])
def test_resume_from_epoch_end_checkpoint(tmp_path, script_ns, crash_at, expected):
    # every_n_epochs checkpoints are taken after validation: a crash on the last batch of epoch 1 (step 20,
    # before its validation) resumes at the start of epoch 1; one in the middle of epoch 2 at its start.
    ref, ref_log = _reference_one_cycle(script_ns, tmp_path / "a")
    learn = script_ns["build"](tmp_path / "b")
    with pytest.raises(Crash):
        learn.fit_one_cycle(3, 1e-2, cbs=[Checkpoint(every_n_epochs=1), script_ns["Noise"](), CrashAt(crash_at)])
    f = tmp_path / "b" / "models" / "checkpoint.pth"
    st = load_checkpoint(f)
    assert (st["position"]["epoch"], st["position"]["iter"], st["position"]["train_iter"]) == expected
    learn = script_ns["build"](tmp_path / "b")
    learn.fit_one_cycle(3, 1e-2, cbs=[Checkpoint(every_n_epochs=1), script_ns["Noise"]()], resume_from=f)
    _assert_same(ref, _weights(learn))
    strip = lambda log: [{k: v for k, v in r.items() if k != "time"} for r in log]
    assert strip(learn.recorder.log) == strip(ref_log)


def test_resume_after_checkpoint_on_last_batch_of_epoch_runs_its_validation(tmp_path, script_ns):
    # a step checkpoint taken on the last batch of epoch 0 (step 10): the resumed run trains no batch of
    # epoch 0 but must still validate it and log it with the train loss of its 10 batches
    learn = script_ns["build"](tmp_path / "a")
    learn.fit(2, 1e-3)
    ref, ref_log = _weights(learn), learn.recorder.log
    learn = script_ns["build"](tmp_path / "b")
    with pytest.raises(Crash):
        learn.fit(2, 1e-3, cbs=[Checkpoint(every_n_steps=10, every_n_epochs=None), CrashAt(10)])
    f = tmp_path / "b" / "models" / "checkpoint.pth"
    assert load_checkpoint(f)["position"] == {"epoch": 0, "iter": 10, "train_iter": 10, "n_epoch": 2}
    learn = script_ns["build"](tmp_path / "b")
    seen = []

    class Count(Callback):
        def after_batch(self):
            seen.append((self.learner.training, self.learner.epoch, self.learner.iter))
    learn.fit(2, 1e-3, cbs=[Count()], resume_from=f)
    _assert_same(ref, _weights(learn))
    assert [r["epoch"] for r in learn.recorder.log] == [0, 1]
    for a, b in zip(learn.recorder.log, ref_log):
        assert a["train_loss"] == b["train_loss"] and a["valid_loss"] == b["valid_loss"]
    train_seen = [s for s in seen if s[0]]
    assert train_seen == [(True, 1, i) for i in range(10)]  # epoch 0's batches are not re-run
    assert [s[1:] for s in seen if not s[0]] == [(0, 0), (0, 1), (1, 0), (1, 1)]  # 40 valid rows, bs 32


def test_mid_epoch_resume_continues_batch_indices(tmp_path, script_ns):
    learn = script_ns["build"](tmp_path)
    with pytest.raises(Crash):
        learn.fit(2, 1e-3, cbs=[Checkpoint(every_n_steps=4, every_n_epochs=None), CrashAt(6)])
    learn = script_ns["build"](tmp_path)
    seen = []

    class Count(Callback):
        run_valid = False

        def after_batch(self):
            seen.append((self.learner.epoch, self.learner.iter, self.learner.train_iter))
    learn.fit(2, 1e-3, cbs=[Count()], resume_from=tmp_path / "models" / "checkpoint.pth")
    assert seen[0] == (0, 4, 4) and seen[5] == (0, 9, 9) and seen[6] == (1, 0, 10) and len(seen) == 16


def test_tracker_state_is_restored(tmp_path, script_ns):
    learn = script_ns["build"](tmp_path)
    es = EarlyStopping(patience=100)
    with pytest.raises(Crash):
        learn.fit(3, 1e-3, cbs=[es, Checkpoint(), CrashAt(25)])
    best = es.best
    assert np.isfinite(best)
    learn = script_ns["build"](tmp_path)
    es2 = EarlyStopping(patience=100)

    class Peek(Callback):
        def before_validate(self):
            self.best = es2.best
    peek = Peek()
    learn.fit(3, 1e-3, cbs=[es2, Checkpoint(), peek], resume_from=tmp_path / "models" / "checkpoint.pth")
    assert peek.best == best  # before_fit reset it to inf; the checkpoint brought back the best of epochs 0-1


# ---- mismatching calls and file safety ----------------------------------------------------------------
@pytest.fixture
def crashed(tmp_path, script_ns):
    learn = script_ns["build"](tmp_path)
    with pytest.raises(Crash):
        learn.fit_one_cycle(3, 1e-2, cbs=[Checkpoint(every_n_steps=5), CrashAt(12)])
    return tmp_path / "models" / "checkpoint.pth"


@pytest.mark.parametrize("call, match", [
    (lambda l, f: l.fit_one_cycle(4, 1e-2, resume_from=f), r"n_epoch=3 x 10 batches.*\(30 iterations\).*n_epoch=4"),
    (lambda l, f: l.fit_one_cycle(3, 2e-2, resume_from=f), r"lr="),
    (lambda l, f: l.fit_one_cycle(3, 1e-2, pct_start=0.5, resume_from=f), r"different 'lr' schedule"),
    (lambda l, f: l.fit_flat_cos(3, 1e-2, resume_from=f), r"schedul"),
    (lambda l, f: l.fit(3, 1e-2, resume_from=f), r"scheduling \['lr', 'mom'\].*schedules nothing"),
    (lambda l, f: l.fit_one_cycle(3, 1e-2, wd=0.5, resume_from=f), r"wd="),
])
def test_resume_with_a_different_call_is_a_clear_error(tmp_path, script_ns, crashed, call, match):
    learn = script_ns["build"](tmp_path)
    w0 = _weights(learn)
    with pytest.raises(CheckpointError, match=match) as e:
        call(learn, crashed)
    assert "same training call" in str(e.value)
    _assert_same(w0, _weights(learn))  # nothing was loaded


def test_resume_with_other_data_is_a_clear_error(tmp_path, script_ns, crashed):
    learn = script_ns["build"](tmp_path)
    learn.dls.train.bs = 20  # 8 batches per epoch
    with pytest.raises(CheckpointError, match="n_epoch=3 x 8 batches"):
        learn.fit_one_cycle(3, 1e-2, resume_from=crashed)


def test_resume_into_another_architecture_names_the_tensors(tmp_path, script_ns, crashed):
    learn = script_ns["build"](tmp_path)
    learn.model = MLP(6, [32, 16], 2, p=0.3)
    learn.opt = None
    with pytest.raises(CheckpointError, match=r"layers\.3\.weight is \(32, 32\) in the file but \(16, 32\)"):
        learn.fit_one_cycle(3, 1e-2, resume_from=crashed)


def test_checkpoint_loads_with_weights_only_and_holds_plain_state(crashed):
    st = torch.load(crashed, weights_only=True)
    assert st["format"] == "deepfit-checkpoint" and st["version"] == CHECKPOINT_VERSION
    assert st["position"] == {"epoch": 1, "iter": 0, "train_iter": 10, "n_epoch": 3}
    assert set(st["rng"]) >= {"torch", "numpy", "python"}
    assert st["data"]["train"]["pos"] == 0 and isinstance(st["data"]["train"]["epoch_seed"], int)
    assert len(st["callbacks"]["recorder"]["losses"]) == 10 and len(st["callbacks"]["recorder"]["log"]) == 1
    assert "epoch_losses" not in st["callbacks"]["recorder"]  # taken between epochs: no epoch in progress
    assert all(s["step"] == 10 for s in st["opt"]["state"].values()) and len(st["opt"]["state"]) == 6


def test_learn_load_reads_a_checkpoint(tmp_path, script_ns, crashed):
    ckpt = torch.load(crashed, weights_only=True)
    learn = script_ns["build"](tmp_path)
    learn.load(crashed)
    _assert_same(ckpt["model"], _weights(learn))


def test_atomic_write_never_leaves_a_partial_file(tmp_path, script_ns, monkeypatch):
    learn = script_ns["build"](tmp_path)
    learn.fit(1, 1e-3, cbs=[Checkpoint()])
    f = tmp_path / "models" / "checkpoint.pth"
    good = f.read_bytes()

    def dying_save(obj, fh, *a, **k):  # the process "dies" half-way through writing
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt()
    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(learn, f, 1, 0, 10)
    monkeypatch.undo()
    assert f.read_bytes() == good  # the final name still holds the complete previous checkpoint
    assert load_checkpoint(f)["position"]["train_iter"] == 10
    assert sorted(p.name for p in f.parent.iterdir()) == ["checkpoint.pth", "checkpoint.pth.tmp"]
    # the leftover temporary file is replaced by the next save and never read
    save_checkpoint(learn, f, 1, 0, 10)
    assert not (f.parent / "checkpoint.pth.tmp").exists()


def test_keep_rotates_older_checkpoints(tmp_path, script_ns):
    learn = script_ns["build"](tmp_path)
    learn.fit(1, 1e-3, cbs=[Checkpoint(every_n_steps=3, every_n_epochs=None, keep=3)])  # saves at 3, 6, 9
    d = tmp_path / "models"
    assert sorted(p.name for p in d.iterdir()) == ["checkpoint.1.pth", "checkpoint.2.pth", "checkpoint.pth"]
    assert [load_checkpoint(d / n)["position"]["train_iter"] for n in
            ("checkpoint.pth", "checkpoint.1.pth", "checkpoint.2.pth")] == [9, 6, 3]


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pth")
    trunc = tmp_path / "trunc.pth"
    torch.save({"format": "deepfit-checkpoint", "version": 1, "model": {"w": torch.zeros(100)}}, trunc)
    data = trunc.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 5):
        trunc.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="truncated or corrupted"):
            load_checkpoint(trunc)
    newer = tmp_path / "newer.pth"
    torch.save({"format": "deepfit-checkpoint", "version": CHECKPOINT_VERSION + 1, "deepfit_version": "9.0"}, newer)
    with pytest.raises(CheckpointError, match="Upgrade deepfit"):
        load_checkpoint(newer)
    weights = tmp_path / "weights.pth"
    torch.save({"model": {}}, weights)
    with pytest.raises(CheckpointError, match="not a deepfit checkpoint"):
        load_checkpoint(weights)


def test_crafted_pickle_checkpoint_never_runs(tmp_path, script_ns):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"format": "deepfit-checkpoint", "version": 1, "model": _Evil(str(marker))}, evil)
    learn = script_ns["build"](tmp_path)
    with pytest.raises(CheckpointError, match="arbitrary code"):
        learn.fit(1, 1e-3, resume_from=evil)
    assert not marker.exists()


class _Evil:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "code ran"))


def test_checkpoint_argument_checks():
    with pytest.raises(ValueError, match="every_n_steps"):
        Checkpoint(every_n_steps=0)
    with pytest.raises(ValueError, match="both are None"):
        Checkpoint(every_n_steps=None, every_n_epochs=None)
    with pytest.raises(ValueError, match="keep"):
        Checkpoint(keep=0)


def test_start_epoch_and_resume_from_together_is_an_error(tmp_path, script_ns, crashed):
    learn = script_ns["build"](tmp_path)
    with pytest.raises(ValueError, match="either `start_epoch` or `resume_from`"):
        learn.fit_one_cycle(3, 1e-2, start_epoch=1, resume_from=crashed)
