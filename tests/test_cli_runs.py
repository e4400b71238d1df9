"""Run directories under pressure (deepfit.cli.runs): `--resume` with other options or a bad checkpoint,
rerunning over an interrupted run, two runs in one directory at once, and `--device` names that this
machine does not have. Every refusal is exit status 2 with a message naming what to do."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from deepfit.cli import main
from deepfit.cli.base import COMPLETE_MARKER, INCOMPLETE_SUFFIX, STATUS_FILE, CLIError, RunDir, is_complete
from helpers import usage_error_line
from test_cli import DEEPFIT_BIN, REPO, make_tabular_csv, needs_bin

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = ("--target", "label", "--ignore", "price", "--epochs", "3", "--lr", "1e-2", "--lr-find-iters", "0",
        "--bs", "32", "-q", "--checkpoint-every", "1")


def _interrupt_after_epoch(monkeypatch, epoch: int = 1) -> None:
    """Ctrl-C right after `epoch` was logged (and checkpointed)."""
    from deepfit.callbacks.logger import CSVLogger
    original = CSVLogger.after_epoch

    def interrupt(self):
        original(self)
        if self.learner.epoch == epoch:
            raise KeyboardInterrupt
    monkeypatch.setattr(CSVLogger, "after_epoch", interrupt)


@pytest.fixture
def interrupted(tmp_path, monkeypatch, capsys):
    """An interrupted tabular run with a checkpoint: returns (csv, out, work)."""
    csv = make_tabular_csv(tmp_path / "t.csv", n=200)
    out, work = tmp_path / "run", tmp_path / ("run" + INCOMPLETE_SUFFIX)
    with monkeypatch.context() as m:
        _interrupt_after_epoch(m)
        assert main(["train", "tabular", str(csv), *BASE, "--out", str(out)]) == 130
    capsys.readouterr()
    assert (work / "checkpoints" / "checkpoint.pth").is_file()
    return csv, out, work


def _snapshot(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file()}


# ---- --resume with other options ----------------------------------------------------------------------------
@pytest.mark.parametrize("change, named", [
    (["--lr", "0.1"], ["--lr: 0.01 in the interrupted run, 0.1 now"]),
    (["--epochs", "5"], ["--epochs: 3 in the interrupted run, 5 now"]),
    (["--bs", "16"], ["--bs: 32 in the interrupted run, 16 now"]),
    (["--layers", "20,10"], ["--layers: 200,100 in the interrupted run, 20,10 now"]),
    (["--wd", "0.5", "--seed", "7"], ["--wd: not given in the interrupted run, 0.5 now",
                                      "--seed: 42 in the interrupted run, 7 now", "these options differ"]),
    (["--cat", "color"], ["--cat: not given in the interrupted run, color now"]),
])
def test_resume_with_other_options_is_refused(capsys, interrupted, change, named):
    csv, out, work = interrupted
    before = _snapshot(work)
    line = usage_error_line(capsys, ["train", "tabular", csv, *BASE, "--out", out, "--resume", *change],
                            named + ["Drop the changed options", "--restart"])
    assert str(work) in line
    assert _snapshot(work) == before and not out.exists()  # the interrupted run is untouched
    if change[0] != "--lr":
        return
    # the same command resumes; options that do not change the result (quiet, checkpoint frequency) may differ
    assert main(["train", "tabular", str(csv), *BASE, "--out", str(out), "--resume", "--checkpoint-every", "2"]) == 0
    assert is_complete(out) and pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [0, 1, 2]


def test_resume_with_other_data_is_refused(capsys, interrupted, tmp_path):
    csv, out, work = interrupted
    other = make_tabular_csv(tmp_path / "other.csv", n=300, seed=1)
    usage_error_line(capsys, ["train", "tabular", other, *BASE, "--out", out, "--resume"],
                     [f"FILE: {csv} in the interrupted run, {other} now"])
    # the same file name with other contents (same number of rows): refused too, before any training
    make_tabular_csv(csv, n=200, seed=5)
    usage_error_line(capsys, ["train", "tabular", csv, *BASE, "--out", out, "--resume"],
                     [f"the data file {csv} has changed since the interrupted run started"])
    assert (work / "checkpoints" / "checkpoint.pth").is_file() and not out.exists()


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.mark.parametrize("content, match", [
    ("pickled", ["contains pickled Python objects", "(Trying to load unsupported GLOBAL posix.getcwd",
                 "It is not a deepfit checkpoint"]),
    ("function", ["contains pickled Python objects", "unsupported GLOBAL posix.getcwd"]),
    ("truncated", ["is truncated or corrupted"]),
    ("garbage", ["is truncated or corrupted"]),
    ("foreign", ["is not a deepfit checkpoint"]),
])
def test_resume_from_a_bad_checkpoint_names_the_file(capsys, interrupted, content, match):
    csv, out, work = interrupted
    ckpt = work / "checkpoints" / "checkpoint.pth"
    if content == "pickled":
        torch.save({"format": "deepfit-checkpoint", "version": 1, "model": _Evil()}, ckpt)
    elif content == "function":
        torch.save({"format": "deepfit-checkpoint", "version": 1, "hook": os.getcwd}, ckpt)
    elif content == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    elif content == "garbage":
        ckpt.write_bytes(b"\x00not a checkpoint" * 10)
    else:
        torch.save({"weight": torch.zeros(3)}, ckpt)
    line = usage_error_line(capsys, ["train", "tabular", csv, *BASE, "--out", out, "--resume"],
                            [f"--resume: {ckpt} "] + match + ["--restart"])
    assert "weights_only" not in line  # never torch's advice to load it unsafely
    assert ckpt.is_file()  # kept: the user decides


def test_a_mismatching_checkpoint_inside_training_is_a_usage_error(capsys, interrupted):
    """A run recorded by a deepfit without settings.json: the checkpoint's own checks stop it, exit 2."""
    csv, out, work = interrupted
    (work / "settings.json").unlink()
    usage_error_line(capsys, ["train", "tabular", csv, *BASE, "--out", out, "--resume", "--epochs", "4"],
                     ["--resume: ", "n_epoch=3", "--restart"])


# ---- rerunning over an interrupted run ------------------------------------------------------------------------
def test_rerun_keeps_an_interrupted_runs_checkpoints(capsys, interrupted):
    csv, out, work = interrupted
    before = _snapshot(work)
    usage_error_line(capsys, ["train", "tabular", csv, *BASE, "--out", out],
                     [f"{work} holds an unfinished run (interrupted", "add --resume to continue",
                      "--restart to discard"])
    assert _snapshot(work) == before
    usage_error_line(capsys, ["train", "tabular", csv, *BASE, "--out", out, "--overwrite"], ["--restart to discard"])
    usage_error_line(capsys, ["train", "tabular", csv, *BASE, "--out", out, "--resume", "--restart"], ["give only one"])
    assert _snapshot(work) == before
    # asked explicitly: the checkpoints go and a fresh run starts (with other options if wanted)
    assert main(["train", "tabular", str(csv), *BASE, "--out", str(out), "--restart", "--epochs", "1"]) == 0
    assert is_complete(out) and not work.exists()
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [0]


def test_demo_keeps_an_interrupted_runs_checkpoints(capsys, tmp_path, monkeypatch):
    import deepfit.data.mnist as mnist
    from deepfit.data.synthetic import make_digits

    def small(folder, bs=64, seed=42, device=None):
        x, y = make_digits(300, seed=seed)
        return mnist.digits_dls(x, y, valid_n=100, bs=bs, seed=seed, device="cpu"), "300 generated digits"
    monkeypatch.setattr(mnist, "demo_dls", small)
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--epochs", "3", "--lr-find-iters", "0", "--layers", "16", "-q",
            "--checkpoint-every", "1"]
    with monkeypatch.context() as m:
        _interrupt_after_epoch(m, epoch=1)
        assert main(argv) == 130
    capsys.readouterr()
    usage_error_line(capsys, argv, ["holds an unfinished run", "--resume", "--restart"])
    usage_error_line(capsys, argv + ["--resume", "--layers", "8"], ["--layers: 16 in the interrupted run, 8 now"])
    assert main(argv + ["--resume"]) == 0 and is_complete(out)


# ---- one live run per directory --------------------------------------------------------------------------------
def test_a_live_run_holds_its_directory(tmp_path):
    out = tmp_path / "run"
    run = RunDir.create(out)
    try:
        with pytest.raises(CLIError, match=rf"another deepfit run \(pid {os.getpid()}\) is writing to "):
            RunDir.check(out)
        with pytest.raises(CLIError, match="another deepfit run"):
            RunDir.create(out, restart=True)
        assert (run.path / STATUS_FILE).read_text().startswith("running")  # the holder's files are untouched
    finally:
        run.release()
    RunDir.create(out).release()  # free again once released
    assert RunDir.check(out) == run.path


_HOLD = """
import sys, time
from pathlib import Path
from deepfit.callbacks.logger import CSVLogger
from deepfit.cli import main
original = CSVLogger.after_epoch
def wait(self):  # after the first epoch: tell the test, then wait until it says go
    original(self)
    if self.learner.epoch == 0:
        Path(sys.argv[1]).write_text("waiting")
        deadline = time.time() + 120
        while not Path(sys.argv[2]).exists() and time.time() < deadline:
            time.sleep(0.05)
CSVLogger.after_epoch = wait
sys.exit(main(sys.argv[3:]))
"""


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=path)


def _start_holder(tmp_path: Path, argv: list[str]) -> tuple[subprocess.Popen, Path, Path]:
    waiting, go = tmp_path / "waiting", tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(waiting), str(go), *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    deadline = time.time() + 240
    while not waiting.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the first run did not start: {proc.communicate()}")
        time.sleep(0.1)
    return proc, waiting, go


@needs_bin
@pytest.mark.slow
def test_a_second_run_into_the_same_directory_is_refused(tmp_path):
    """Two real processes: the second stops at once (exit 2, naming the first's pid) and changes nothing;
    the first then finishes a complete run with its metrics."""
    csv = make_tabular_csv(tmp_path / "t.csv", n=200)
    out = tmp_path / "run"
    argv = ["train", "tabular", str(csv), "--target", "label", "--out", str(out), "--epochs", "2",
            "--lr-find-iters", "0", "--bs", "32", "-q"]
    first, _, go = _start_holder(tmp_path, argv)
    try:
        t0 = time.time()
        second = subprocess.run([str(DEEPFIT_BIN), *argv], capture_output=True, text=True, timeout=240,
                                env=_env(), cwd=tmp_path)
        assert second.returncode == 2, second.stderr
        assert (f"deepfit: error: another deepfit run (pid {first.pid}) is writing to "
                f"{out.with_name('run' + INCOMPLETE_SUFFIX)}") in second.stderr
        assert "Traceback" not in second.stderr and time.time() - t0 < 120
        go.write_text("go")
        _, err = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert is_complete(out) and pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [0, 1]
    assert not (out / ".lock").exists() and ".lock" not in (out / COMPLETE_MARKER).read_text()


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    """A process holding the lock the way a run does, killed with SIGKILL: the lock goes with it."""
    out = tmp_path / "run"
    work = out.with_name("run" + INCOMPLETE_SUFFIX)
    work.mkdir()
    (work / STATUS_FILE).write_text("running\n")
    ready = tmp_path / "ready"
    hold = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, str(os.getpid()).encode())\n"
            "open(sys.argv[2], 'w').close()\n"
            "time.sleep(300)\n")
    proc = subprocess.Popen([sys.executable, "-c", hold, str(work / ".lock"), str(ready)])
    try:
        deadline = time.time() + 60
        while not ready.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        with pytest.raises(CLIError, match=rf"another deepfit run \(pid {proc.pid}\) is writing to {work}"):
            RunDir.check(out)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert (work / ".lock").is_file()  # the file stays; the lock does not
    run = RunDir.create(out)
    try:
        assert (work / STATUS_FILE).read_text().startswith("running") and run.path == work
    finally:
        run.release()


# ---- --device -------------------------------------------------------------------------------------------------
@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.mark.parametrize("command", ["train", "lr-find", "demo"])
@pytest.mark.parametrize("device, match", [
    ("gpu7", "argument --device: 'gpu7' is not a device name (such as cpu, cuda, cuda:1 or mps); "
             "available here: cpu."),
    ("cuda", "argument --device: 'cuda' asks for CUDA, but this machine has no usable CUDA GPU"),
    ("cuda:1", "available here: cpu."),
])
def test_device_that_is_not_there_is_a_usage_error(capsys, tmp_path, no_gpu, command, device, match):
    csv = make_tabular_csv(tmp_path / "t.csv", n=50)
    argv = (["demo", "--out", str(tmp_path / "demo")] if command == "demo"
            else [command, "tabular", str(csv), "--target", "label"])
    usage_error_line(capsys, argv + ["--device", device], [match])
    assert not list(tmp_path.glob("demo*"))
