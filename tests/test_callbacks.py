"""Callbacks: EarlyStopping, SaveBestModel, CSVLogger, ProgressCallback, Recorder plots, ParamScheduler
with one value per param group, TerminateOnNaN, GradientClip."""
from __future__ import annotations

import copy
import csv
import math
import operator

import numpy as np
import pytest
import torch
from torch import nn

from deepfit import DataLoaders, Learner, MSELoss, SGD
from deepfit.callbacks import (Callback, CSVLogger, EarlyStopping, GradientClip, NonFiniteLossError, ParamScheduler,
                               ProgressCallback, SaveBestModel, TerminateOnNaN)
from conftest import LinReg, make_regression_dls

PNG = b"\x89PNG\r\n\x1a\n"


class Scripted(Callback):
    """Puts a crafted value under `name` in each epoch's validation results (so trackers see it)."""

    order = 55  # after the Recorder builds `last_valid` (50), before it writes the epoch row

    def __init__(self, values, name="score"):
        self.values, self.key = list(values), name

    def after_validate(self):
        self.learner.recorder.last_valid[self.key] = self.values[self.learner.epoch]


class Snapshots(Callback):
    """The model's weights at the end of every epoch (after the trackers, order 70)."""

    order = 90

    def __init__(self):
        self.states = []

    def after_epoch(self):
        self.states.append(copy.deepcopy(self.learner.model.state_dict()))


def epochs_run(learn):
    return [r["epoch"] for r in learn.recorder.log]


# ---- EarlyStopping -------------------------------------------------------------------------------------
def test_early_stopping_higher_is_better_with_patience(synth_learner, capsys):
    learn = synth_learner()
    es = EarlyStopping(monitor="score", patience=2)
    # improves at 0 and 1, ties at 2 (not an improvement), worse at 3 -> two epochs without improvement
    learn.fit(8, 1e-2, cbs=[Scripted([0.5, 0.6, 0.6, 0.55, 0.9, 0.9, 0.9, 0.9]), es])
    assert epochs_run(learn) == [0, 1, 2, 3]
    assert es.stopped_epoch == 3 and es.best_epoch == 1 and es.best == 0.6
    assert "No improvement in score since epoch 1" in capsys.readouterr().out


def test_early_stopping_lower_is_better_and_min_delta(synth_learner):
    learn = synth_learner()
    es = EarlyStopping(monitor="my_error", patience=1, min_delta=0.05)
    # 0.9 -> 0.8 improves by 0.1; 0.8 -> 0.77 only by 0.03 < min_delta: stop at epoch 2
    learn.fit(6, 1e-2, cbs=[Scripted([0.9, 0.8, 0.77, 0.1, 0.1, 0.1], "my_error"), es])
    assert es.comp is operator.lt  # "error" in the name means lower is better
    assert epochs_run(learn) == [0, 1, 2] and es.best == 0.8
    # without min_delta the small improvement counts
    learn2 = synth_learner()
    es2 = EarlyStopping(monitor="my_error", patience=1)
    learn2.fit(4, 1e-2, cbs=[Scripted([0.9, 0.8, 0.77, 0.78], "my_error"), es2])
    assert epochs_run(learn2) == [0, 1, 2, 3] and es2.best == 0.77 and es2.stopped_epoch == 3


def test_early_stopping_patience_counts_from_last_improvement(synth_learner):
    learn = synth_learner()
    es = EarlyStopping(monitor="score", patience=3)
    vals = [1, 0, 0, 2, 0, 0, 0, 5]
    learn.fit(8, 1e-2, cbs=[Scripted(vals), es])
    assert epochs_run(learn) == [0, 1, 2, 3, 4, 5, 6] and es.best_epoch == 3


def test_early_stopping_on_valid_loss_and_custom_comparator(synth_learner):
    learn = synth_learner()
    # the real valid_loss of a learning model keeps falling: never stops
    learn.fit(3, 0.1, cbs=[EarlyStopping(patience=1)])
    assert epochs_run(learn) == [0, 1, 2]
    # any comparison function works, e.g. numpy's (lower is better here)
    es = EarlyStopping(monitor="score", comp=np.less, patience=1)
    learn.fit(5, 1e-2, cbs=[Scripted([3.0, 2.0, 2.5, 1.0, 0.0]), es])
    assert epochs_run(learn) == [0, 1, 2] and es.best == 2.0


class Scores(Callback):
    """Puts crafted values under several names in each epoch's validation results."""

    order = 55

    def __init__(self, **values):
        self.values = values

    def after_validate(self):
        for k, v in self.values.items():
            self.learner.recorder.last_valid[k] = v[self.learner.epoch]


def test_two_early_stoppings_on_different_metrics_both_act(synth_learner, capsys):
    seen = []

    class Names(Callback):
        def before_fit(self):
            seen.append((self.learner.early_stopping, self.learner.early_stopping_1))

    # "score" stalls after epoch 1 (stops at 3 with patience 2); "my_error" after 2 (stops at 4 with patience 2)
    scores = Scores(score=[0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6], my_error=[5, 4, 3, 3, 3, 3, 3])
    for first_stops in (True, False):
        learn = synth_learner()
        a, b = EarlyStopping(monitor="score", patience=2), EarlyStopping(monitor="my_error", patience=2)
        learn.fit(7, 1e-2, cbs=[scores, a, b, Names()] if first_stops else [scores, b, a, Names()])
        assert epochs_run(learn) == [0, 1, 2, 3]  # the first to lose patience ends the fit, either order
        assert a.stopped_epoch == 3 and a.best == 0.6 and a.best_epoch == 1
        assert b.stopped_epoch is None and b.best == 3 and b.best_epoch == 2  # it tracked its own metric
        # first of a name keeps `learn.early_stopping`, the next is `learn.early_stopping_1`
        assert seen[-1] == ((a, b) if first_stops else (b, a))
        assert not hasattr(learn, "early_stopping") and not hasattr(learn, "early_stopping_1")  # fit only
    assert "No improvement in score since epoch 1" in capsys.readouterr().out
    learn = synth_learner()
    a, b = EarlyStopping(monitor="score", patience=5), EarlyStopping(monitor="my_error", patience=2)
    learn.fit(7, 1e-2, cbs=[scores, a, b])
    assert epochs_run(learn) == [0, 1, 2, 3, 4] and b.stopped_epoch == 4 and a.stopped_epoch is None


def test_callbacks_of_one_class_are_kept_unless_unique(synth_learner, tmp_path):
    from deepfit.callbacks import Recorder
    es1, es2 = EarlyStopping(patience=3), EarlyStopping(monitor="train_loss", patience=3)
    learn = synth_learner(path=tmp_path, cbs=[es1, CSVLogger("a.csv")])
    learn.add_cb(es2)
    assert learn.cbs.count(es1) == 1 and es2 in learn.cbs
    assert learn.early_stopping is es1 and learn.early_stopping_1 is es2
    learn.add_cb(es2)  # already there: nothing changes
    assert [type(c).__name__ for c in learn.cbs].count("EarlyStopping") == 2
    learn.remove_cb(es1)
    assert not hasattr(learn, "early_stopping") and learn.early_stopping_1 is es2
    es3 = EarlyStopping()
    learn.add_cb(es3)
    assert learn.early_stopping is es3  # the lowest free name
    # unique classes (the learner's own kind) replace: one Recorder, one CSVLogger
    rec = Recorder()
    learn.add_cb(rec)
    assert learn.recorder is rec and [type(c) for c in learn.cbs].count(Recorder) == 1
    learn.add_cb(CSVLogger("b.csv"))
    assert [type(c) for c in learn.cbs].count(CSVLogger) == 1 and learn.csv_logger.fname.name == "b.csv"
    learn.remove_cb(EarlyStopping)
    assert not any(isinstance(c, EarlyStopping) for c in learn.cbs) and not hasattr(learn, "early_stopping_1")


def test_two_save_best_models_write_their_own_files(synth_learner, tmp_path):
    learn = synth_learner(path=tmp_path)
    snaps = Snapshots()
    by_score = SaveBestModel(monitor="score", fname="best_score", load_best=False)
    by_error = SaveBestModel(monitor="my_error", fname="best_error", load_best=False)
    learn.fit(3, 0.05, cbs=[Scores(score=[0.1, 0.9, 0.2], my_error=[0.5, 0.9, 0.1]), by_score, by_error, snaps])
    assert (by_score.best_epoch, by_error.best_epoch) == (1, 2)
    for fname, epoch in (("best_score", 1), ("best_error", 2)):
        state = torch.load(tmp_path / "models" / f"{fname}.pth", weights_only=True)["model"]
        assert torch.equal(state["lin.weight"], snaps.states[epoch]["lin.weight"])


def test_early_stopping_unknown_monitor(synth_learner):
    learn = synth_learner()
    with pytest.raises(KeyError, match=r"'valid_acc'.*available: \['train_loss', 'valid_loss'\]"):
        learn.fit(2, 1e-2, cbs=[EarlyStopping(monitor="valid_acc")])


# ---- SaveBestModel -------------------------------------------------------------------------------------
def test_save_best_model_saves_improvements_and_loads_the_best(synth_learner, tmp_path):
    learn = synth_learner(path=tmp_path)
    scores = [0.3, 0.5, 0.4, 0.6, 0.55]  # improvements at epochs 0, 1 and 3
    saved = []

    class WhatIsOnDisk(Callback):
        order = 75  # after SaveBestModel (70)

        def after_epoch(self):
            state = torch.load(tmp_path / "models" / "best.pth", weights_only=True)["model"]
            saved.append(state)

    snaps = Snapshots()
    sbm = SaveBestModel(monitor="score")
    learn.fit(5, 0.05, cbs=[Scripted(scores), sbm, WhatIsOnDisk(), snaps])
    best_at = [0, 1, 1, 3, 3]  # the epoch whose weights are in the file after each epoch
    for e, b in enumerate(best_at):
        assert torch.equal(saved[e]["lin.weight"], snaps.states[b]["lin.weight"])
    assert not torch.equal(snaps.states[3]["lin.weight"], snaps.states[4]["lin.weight"])
    assert sbm.best_epoch == 3 and sbm.best == 0.6
    # at the end the model holds epoch 3's weights, not the last epoch's
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, snaps.states[3][k])


def test_save_best_model_every_epoch_and_no_load(synth_learner, tmp_path):
    learn = synth_learner(path=tmp_path)
    snaps = Snapshots()
    learn.fit(3, 0.05, cbs=[SaveBestModel(fname="ep", every_epoch=True), snaps])
    for e in range(3):
        state = torch.load(tmp_path / "models" / f"ep_{e}.pth", weights_only=True)["model"]
        assert torch.equal(state["lin.weight"], snaps.states[e]["lin.weight"])
    assert torch.equal(learn.model.lin.weight, snaps.states[-1]["lin.weight"])  # nothing loaded back
    learn2 = synth_learner(path=tmp_path)
    snaps2 = Snapshots()
    learn2.fit(3, 0.05, cbs=[Scripted([1, 2, 0]), SaveBestModel(monitor="score", load_best=False), snaps2])
    assert torch.equal(learn2.model.lin.weight, snaps2.states[-1]["lin.weight"])


# ---- CSVLogger -----------------------------------------------------------------------------------------
def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_logger_rows_equal_the_log(synth_learner, tmp_path):
    learn = synth_learner(path=tmp_path, metrics=[lambda p, t: (p.squeeze() - t).abs().mean()])
    learn.fit(3, 1e-2, cbs=[CSVLogger("hist.csv")])
    table = read_csv(tmp_path / "hist.csv")
    names = learn.recorder.metric_names
    assert table[0] == names == ["epoch", "train_loss", "valid_loss", names[3], "time"]
    assert len(table) == 4
    for row, rec in zip(table[1:], learn.recorder.log):
        assert int(row[0]) == rec["epoch"]
        assert [float(v) for v in row[1:]] == [rec[n] for n in names[1:]]  # exact: floats written as repr


def test_csv_logger_append_and_overwrite(synth_learner, tmp_path):
    learn = synth_learner(path=tmp_path)
    learn.fit(2, 1e-2, cbs=[CSVLogger("h.csv")])
    first = learn.recorder.log
    learn.fit(1, 1e-2, cbs=[CSVLogger("h.csv", append=True)])
    table = read_csv(tmp_path / "h.csv")
    assert table[0][0] == "epoch" and [r[0] for r in table] == ["epoch", "0", "1", "0"]  # one header
    assert float(table[1][1]) == first[0]["train_loss"] and float(table[3][1]) == learn.recorder.log[0]["train_loss"]
    learn.fit(1, 1e-2, cbs=[CSVLogger("h.csv")])  # append=False starts the file again
    assert [r[0] for r in read_csv(tmp_path / "h.csv")] == ["epoch", "0"]
    # absolute paths are used as they are, missing folders created; read_log gives a DataFrame
    log = CSVLogger(tmp_path / "deep" / "x.csv")
    learn.fit(2, 1e-2, cbs=[log])
    df = log.read_log()
    assert list(df.columns) == learn.recorder.metric_names and len(df) == 2


# ---- ProgressCallback ----------------------------------------------------------------------------------
def test_progress_without_tty_prints_only_the_table(synth_learner, capsys):
    learn = synth_learner(progress=True)
    assert not learn.progress_callback.interactive  # pytest's captured streams are not terminals
    learn.fit(2, 1e-2)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "time"]
    assert len(lines) == 3 and [l.split()[0] for l in lines[1:]] == ["0", "1"]
    assert float(lines[1].split()[1]) == pytest.approx(learn.recorder.log[0]["train_loss"], abs=1e-6)
    assert err == ""  # no progress bars
    learn.lr_find(num_it=10)
    assert capsys.readouterr() == ("", "")  # the sweep is silent
    learn.remove_cb(ProgressCallback).add_cb(ProgressCallback(show_table=False))
    learn.fit(1, 1e-2)
    assert capsys.readouterr() == ("", "")


def test_epoch_table_formats_wide_values_and_keeps_columns_apart():
    from deepfit.callbacks.progress import format_header, format_row, format_value
    # ordinary values: 6 decimals, right-aligned in 11 characters after one space (12 per column)
    assert format_value(0.123456789) == "0.123457" and format_value(1234.5) == "1234.500000"
    assert format_value(0.0) == "0.000000" and format_value(3) == "3" and format_value(float("nan")) == "nan"
    # fewer decimals up to 7 integer digits (never more than 11 characters), then scientific notation
    assert format_value(12345.678901) == "12345.67890" and format_value(1234567.891) == "1234567.891"
    assert format_value(123456789.0) == "1.2346e+08" and format_value(-123456789.0) == "-1.2346e+08"
    assert format_value(1.5e-7) == "1.5000e-07" and format_value(np.float32(2.5)) == "2.500000"
    names = ["epoch", "train_loss", "valid_loss", "accuracy_multi", "time"]
    row = {"epoch": 3, "train_loss": 123456789.0, "valid_loss": 98765432.1, "accuracy_multi": 1e-9,
           "time": 65.5}
    assert format_header(names) == ("       epoch  train_loss  valid_loss accuracy_multi        time")
    line = format_row(row, names)
    assert line == ("           3  1.2346e+08  9.8765e+07     1.0000e-09    01:05.50")
    assert len(line) == len(format_header(names))  # the columns line up with the header
    assert line.split() == ["3", "1.2346e+08", "9.8765e+07", "1.0000e-09", "01:05.50"]
    # a value wider than its column still gets its own space
    assert format_row({"a": -1.2345e-300, "b": 1.0}, ["a", "b"]).split() == ["-1.2345e-300", "1.000000"]


def test_progress_bars_only_on_a_terminal(synth_learner, capsys, monkeypatch):
    monkeypatch.setattr(ProgressCallback, "interactive", property(lambda self: True))
    learn = synth_learner(progress=True)
    learn.fit(1, 1e-2)
    out, err = capsys.readouterr()
    assert "train" in err and "valid" in err and "epochs" in err  # tqdm bars on stderr
    assert "train_loss" in out


# ---- Recorder plots ------------------------------------------------------------------------------------
def test_recorder_plots_save_pngs(synth_learner, tmp_path):
    learn = synth_learner()
    learn.fit_one_cycle(2, 1e-2)
    fig = learn.recorder.plot_loss(fname=tmp_path / "loss.png", skip_start=0)
    assert (tmp_path / "loss.png").read_bytes()[:8] == PNG
    lines = fig.axes[0].get_lines()
    assert len(lines) == 3  # raw, smoothed, valid
    np.testing.assert_allclose(lines[0].get_ydata(), learn.recorder.losses)
    np.testing.assert_allclose(lines[2].get_ydata(), [r["valid_loss"] for r in learn.recorder.log])
    fig = learn.recorder.plot_sched(fname=tmp_path / "sub" / "sched.png")
    assert (tmp_path / "sub" / "sched.png").read_bytes()[:8] == PNG
    assert len(fig.axes) == 2  # learning rate and momentum
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), learn.recorder.lrs)
    with pytest.raises(RuntimeError, match="lr_find"):
        learn.recorder.plot_lr_find()
    learn.lr_find(num_it=20)
    learn.recorder.plot_lr_find(fname=tmp_path / "lrf.png")
    assert (tmp_path / "lrf.png").read_bytes()[:8] == PNG


# ---- ParamScheduler ------------------------------------------------------------------------------------
class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(1, 4)
        self.b = nn.Linear(4, 1)
        self.scale = 1.0

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))[:, 0] * self.scale


def test_param_scheduler_one_value_per_group():
    torch.manual_seed(0)
    learn = Learner(make_regression_dls(n=64, bs=16), TwoLayers(), loss_func=MSELoss(), opt_func=SGD,
                    splitter=lambda m: [m.a, m.b], progress=False)
    seen = []

    class Spy(Callback):
        def before_step(self):
            seen.append(([g["lr"] for g in self.learner.opt.param_groups], self.learner.model.scale))

    sched = {"lr": lambda pos: np.array([0.01, 0.1]) * (1 - pos), "model.scale": lambda pos: 1 + pos}
    ps = ParamScheduler(sched)
    learn.fit(2, cbs=[ps, Spy()])
    total = 2 * len(learn.dls.train)
    assert len(seen) == total == 8 and len(ps.hps["lr"]) == total
    for i, (lrs, scale) in enumerate(seen):
        pos = i / (total - 1)  # from 0 at the first step to 1 at the last
        assert lrs == pytest.approx([0.01 * (1 - pos), 0.1 * (1 - pos)], rel=1e-12, abs=1e-15)
        assert scale == pytest.approx(1 + pos)
    np.testing.assert_allclose(learn.recorder.lrs, [0.1 * (1 - i / (total - 1)) for i in range(total)], atol=1e-15)
    with pytest.raises(ValueError, match="3 values but the optimizer has 2 param groups"):
        learn.fit(1, cbs=[ParamScheduler({"lr": lambda pos: np.array([0.1, 0.1, 0.1])})])
    with pytest.raises(AttributeError, match="model.nope"):
        learn.fit(1, cbs=[ParamScheduler({"model.nope": lambda pos: 1.0})])
    with pytest.raises(TypeError, match="'lr' must be callable"):
        ParamScheduler({"lr": 0.1})


def test_one_cycle_with_per_group_lrs():
    torch.manual_seed(0)
    learn = Learner(make_regression_dls(n=64, bs=16), TwoLayers(), loss_func=MSELoss(),
                    splitter=lambda m: [m.a, m.b], progress=False)
    per_group = []

    class Spy(Callback):
        def before_step(self):
            per_group.append([g["lr"] for g in self.learner.opt.param_groups])

    learn.fit_one_cycle(2, slice(1e-3, 1e-1), cbs=[Spy()])
    arr = np.array(per_group)
    assert arr[0] == pytest.approx([1e-3 / 25, 1e-1 / 25])
    np.testing.assert_allclose(arr[:, 1] / arr[:, 0], 100.0)  # the ratio between groups holds throughout
    assert arr[:, 1].max() == pytest.approx(1e-1, rel=0.05)


# ---- TerminateOnNaN ------------------------------------------------------------------------------------
class NaNAt(nn.Module):
    """LinReg that outputs NaN from training batch `at` on (counted over the whole fit)."""

    def __init__(self, at: int, value: float = float("nan"), in_eval: bool = False):
        super().__init__()
        self.lin, self.at, self.value, self.in_eval, self.n = nn.Linear(1, 1), at, value, in_eval, 0

    def forward(self, x):
        out = self.lin(x)[:, 0]
        if self.training:
            self.n += 1
            return out * self.value if self.n > self.at else out
        return out * self.value if self.in_eval else out


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_terminate_on_nan_stops_at_the_bad_batch(synth_learner, value):
    model = NaNAt(at=10, value=value)
    learn = synth_learner(model=model)  # 8 training batches per epoch
    seen = []

    class Count(Callback):
        def after_step(self):
            seen.append((self.learner.epoch, self.learner.iter))

    with pytest.raises(NonFiniteLossError, match=r"became (nan|inf) at epoch 1, batch 2.*lr_find"):
        learn.fit(5, 1e-2, cbs=[Count()])
    assert model.n == 11 and len(seen) == 10  # the bad batch took no step
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())
    assert learn.training is False


def test_terminate_on_nan_ignores_validation(synth_learner):
    learn = synth_learner(model=NaNAt(at=10**9, in_eval=True))
    learn.fit(1, 1e-2)
    assert math.isnan(learn.recorder.log[0]["valid_loss"])
    assert any(isinstance(c, TerminateOnNaN) for c in learn.cbs)


# ---- GradientClip --------------------------------------------------------------------------------------
def test_gradient_clip_bounds_the_norm(synth_learner):
    learn = synth_learner()
    norms = []

    class Norm(Callback):
        order = 5  # after GradientClip (0) in before_step

        def before_step(self):
            norms.append(float(torch.cat([p.grad.flatten() for p in self.learner.model.parameters()]).norm()))

    learn.fit(1, 1e-2, cbs=[GradientClip(max_norm=0.01), Norm()])
    assert max(norms) <= 0.01 + 1e-6 and len(norms) == len(learn.dls.train)


def test_after_fit_runs_after_an_error(synth_learner, tmp_path):
    learn = synth_learner(model=NaNAt(at=10), path=tmp_path)
    events = []

    class Watch(Callback):
        def after_fit(self):
            events.append("after_fit")

    log = CSVLogger("h.csv")
    with pytest.raises(NonFiniteLossError):
        learn.fit(3, 1e-2, cbs=[log, Watch()])
    assert events == ["after_fit"]  # once, as documented: "always (also after an error)"
    assert log._file.closed
    assert [r[0] for r in read_csv(tmp_path / "h.csv")] == ["epoch", "0"]  # the finished epoch is kept


def test_mixed_precision_leaves_no_autocast_behind_after_an_error(synth_learner):
    from deepfit.callbacks import MixedPrecision

    class Crash(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 1)

        def forward(self, x):
            raise RuntimeError("bad forward")
    learn = synth_learner(model=Crash())
    with pytest.raises(RuntimeError, match="bad forward"):
        learn.fit(1, 1e-2, cbs=[MixedPrecision()])
    assert not torch.is_autocast_enabled("cpu")
    assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.parametrize("name", ["rmse", "mae", "mse", "exp_rmspe"])
def test_trackers_know_error_metrics_are_lower_is_better(synth_learner, name):
    learn = synth_learner()
    es = EarlyStopping(monitor=name, patience=1)
    learn.fit(4, 1e-2, cbs=[Scripted([0.5, 0.4, 0.3, 0.2], name), es])
    assert epochs_run(learn) == [0, 1, 2, 3] and es.best == 0.2


def test_callback_names_are_snake_case_with_acronyms_kept_together():
    from deepfit.callbacks import LRFinder, MixedPrecision, Recorder
    assert [c.name for c in (CSVLogger(), LRFinder(), Recorder(), SaveBestModel(), MixedPrecision(),
                             TerminateOnNaN())] == ["csv_logger", "lr_finder", "recorder", "save_best_model",
                                                     "mixed_precision", "terminate_on_na_n"]


def test_lr_find_leaves_the_csv_log_of_the_last_fit_alone(synth_learner, tmp_path):
    learn = synth_learner(path=tmp_path, cbs=[CSVLogger("h.csv")])
    learn.fit(2, 1e-2)
    before = (tmp_path / "h.csv").read_text()
    learn.lr_find(num_it=5)
    assert (tmp_path / "h.csv").read_text() == before and before.count("\n") == 3


def test_validation_cancelled_before_the_recorder_starts_logs_nothing(capsys):
    from deepfit.callbacks import CancelValidate

    class SkipOddValidations(Callback):
        order = 10  # before the Recorder (50): its before_validate never runs on a skipped epoch

        def before_validate(self):
            if self.learner.epoch % 2 == 1:
                raise CancelValidate()

    learn = Learner(make_regression_dls(), LinReg(), loss_func=MSELoss(), metrics=[], progress=True)
    learn.fit(3, 1e-2, cbs=[SkipOddValidations()])
    log = learn.recorder.log
    assert "valid_loss" in log[0] and "valid_loss" in log[2]
    assert "valid_loss" not in log[1]  # nothing measured: not the previous epoch's value, and no crash
    assert math.isfinite(log[2]["valid_loss"])
