"""The training loop: events, cancellation, schedules wired to the optimizer, layer groups, freezing,
prediction, saving, reproducibility."""
from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from deepfit import SGD, Adam, DataLoaders, Learner, MSELoss, CrossEntropyLoss, BCEWithLogitsLoss, set_seed
from deepfit.callbacks import (EVENTS, Callback, CancelBatch, CancelEpoch, CancelFit, CancelTrain, GradientClip,
                               MixedPrecision, NonFiniteLossError, ParamScheduler)
from deepfit.metrics import accuracy
from deepfit.schedule import sched_lin


class EventLog(Callback):
    def __init__(self):
        self.events = []

    def __getattribute__(self, name):
        if name in EVENTS:
            self_events = object.__getattribute__(self, "events")
            return lambda: self_events.append(name)
        return object.__getattribute__(self, name)


# __getattribute__ tricks don't override class attributes for handler discovery: use explicit methods.
def _recording_cb():
    ns = {}
    for e in EVENTS:
        ns[e] = (lambda name: lambda self: self.events.append(name))(e)
    ns["__init__"] = lambda self: setattr(self, "events", [])
    return type("Rec", (Callback,), ns)()


def test_event_order_one_epoch(synth_learner):
    learn = synth_learner(n=64, bs=32)  # 2 train batches, 1 valid batch (valid bs = 2 * bs)
    cb = _recording_cb()
    learn.fit(1, 1e-2, cbs=[cb])
    batch = ["before_batch", "after_pred", "after_loss", "before_backward", "after_backward", "before_step",
             "after_step", "after_batch"]
    vbatch = ["before_batch", "after_pred", "after_loss", "after_batch"]
    expected = (["before_fit", "before_epoch", "before_train"] + batch * 2 + ["after_train", "before_validate"]
                + vbatch * 1 + ["after_validate", "after_epoch", "after_fit"])
    assert cb.events == expected
    assert cb not in learn.cbs  # fit-only callbacks are removed afterwards


def test_misspelt_event_fails_loudly():
    with pytest.raises(TypeError, match="after_epcoh"):
        class Bad(Callback):
            def after_epcoh(self):
                pass


def test_cancel_batch_skips_step(synth_learner):
    learn = synth_learner()
    w0 = learn.model.lin.weight.detach().clone()

    class SkipAll(Callback):
        def before_step(self):
            raise CancelBatch()

        def after_cancel_batch(self):
            self.n = getattr(self, "n", 0) + 1
    cb = SkipAll()
    learn.fit(1, 1e-1, cbs=[cb])
    assert torch.equal(learn.model.lin.weight, w0)
    assert cb.n == len(learn.dls.train) + 0  # only training batches reach before_step


def test_cancel_fit_and_epoch(synth_learner):
    learn = synth_learner()

    class StopAt(Callback):
        def after_batch(self):
            if self.learner.training and self.learner.train_iter == 2:
                raise CancelFit()
    learn.fit(5, 1e-2, cbs=[StopAt()])
    assert len(learn.recorder.log) == 0 and learn.epoch == 0

    class SkipTrain(Callback):
        def before_train(self):
            raise CancelTrain()
    w0 = learn.model.lin.weight.detach().clone()
    learn.fit(2, 1e-2, cbs=[SkipTrain()])
    assert torch.equal(learn.model.lin.weight, w0) and len(learn.recorder.log) == 2

    class EndEpoch(Callback):
        def before_validate(self):
            raise CancelEpoch()
    learn.fit(2, 1e-2, cbs=[EndEpoch()])
    assert "valid_loss" not in learn.recorder.log[-1]


def test_fit_learns_linear_function(synth_learner):
    learn = synth_learner(opt_func=SGD, lr=0.1, wd=0.0)
    learn.fit(5)
    w, b = learn.model.lin.weight.item(), learn.model.lin.bias.item()
    assert abs(w - 2) < 0.05 and abs(b - 1) < 0.05
    assert learn.recorder.log[-1]["valid_loss"] < 0.01


def test_recorder_matches_hand_computation(synth_learner):
    learn = synth_learner()
    learn.fit(2, 1e-2)
    rec = learn.recorder
    n = len(learn.dls.train)
    assert len(rec.losses) == 2 * n == len(rec.lrs) == len(rec.smooth_losses)
    avg, smooth = 0.0, []
    for i, l in enumerate(rec.losses):
        avg = 0.98 * avg + 0.02 * l
        smooth.append(avg / (1 - 0.98 ** (i + 1)))
    np.testing.assert_allclose(rec.smooth_losses, smooth, rtol=1e-12)
    assert rec.log[0]["train_loss"] == pytest.approx(np.mean(rec.losses[:n]))
    # validation loss is the size-weighted mean over the validation set
    with torch.no_grad():
        x, y = learn.dls.valid.tensors
        expected = torch.mean((learn.model(x) - y) ** 2).item()
    assert rec.log[-1]["valid_loss"] == pytest.approx(expected, rel=1e-5)
    assert learn.validate()["valid_loss"] == pytest.approx(expected, rel=1e-5)


def test_one_cycle_drives_optimizer(synth_learner):
    learn = synth_learner()
    learn.fit_one_cycle(4, 1e-2, pct_start=0.25)
    lrs, moms = np.array(learn.recorder.lrs), np.array(learn.recorder.moms)
    n = len(lrs)
    assert lrs[0] == pytest.approx(1e-2 / 25)
    peak = int(np.argmax(lrs))
    assert abs(peak - 0.25 * n) <= 1 and lrs.max() == pytest.approx(1e-2, rel=1e-3)
    assert lrs[-1] == pytest.approx(1e-2 / 1e5, rel=1e-9)  # the last step reaches lr_max / div_final
    assert moms[0] == pytest.approx(0.95) and moms[peak] == pytest.approx(0.85, abs=1e-3)
    # momentum moves opposite to the learning rate
    assert np.all(np.sign(np.diff(lrs[:peak])) == -np.sign(np.diff(moms[:peak])))
    # the optimizer's Adam beta1 is what the recorder saw
    assert learn.opt.param_groups[0]["mom"] == pytest.approx(moms[-1])


def _one_cycle_reference(n: int, lr_max: float, div: float, div_final: float, pct: float,
                         moms=(0.95, 0.85, 0.95)) -> tuple[np.ndarray, np.ndarray]:
    """Learning rates and momenta of the n steps of a one-cycle fit, by hand in float64: step i at
    pos = i / (n - 1); cosine warm-up over [0, pct], cosine annealing over [pct, 1]."""
    lrs, ms = [], []
    for i in range(n):
        pos = i / (n - 1)
        if pos < pct:
            w = (1 - math.cos(math.pi * pos / pct)) / 2
            lrs.append(lr_max / div + (lr_max - lr_max / div) * w)
            ms.append(moms[0] + (moms[1] - moms[0]) * w)
        else:
            w = (1 - math.cos(math.pi * (pos - pct) / (1 - pct))) / 2
            lrs.append(lr_max + (lr_max / div_final - lr_max) * w)
            ms.append(moms[1] + (moms[2] - moms[1]) * w)
    return np.array(lrs, dtype=np.float64), np.array(ms, dtype=np.float64)


def test_one_cycle_reaches_the_final_lr_at_the_last_step(synth_learner):
    learn = synth_learner(n=256, bs=32)  # 8 batches per epoch: 3 epochs are 24 steps
    learn.fit_one_cycle(3, 1e-2, div=25.0, div_final=1e5)
    lrs, moms = np.array(learn.recorder.lrs), np.array(learn.recorder.moms)
    assert len(lrs) == 24
    assert lrs[0] == pytest.approx(1e-2 / 25, rel=1e-12)  # first step: lr_max / div
    assert lrs[-1] == pytest.approx(1e-2 / 1e5, rel=1e-12)  # last step: lr_max / div_final (was lr_max/131)
    assert moms[0] == pytest.approx(0.95, rel=1e-12) and moms[-1] == pytest.approx(0.95, rel=1e-12)
    ref_lr, ref_mom = _one_cycle_reference(24, 1e-2, 25.0, 1e5, 0.25)
    np.testing.assert_allclose(lrs, ref_lr, rtol=1e-12, atol=1e-12 * 1e-2)  # cancellation in the reference at w=1
    np.testing.assert_allclose(moms, ref_mom, rtol=1e-12, atol=0)
    # flat_cos ends at lr / div_final too; a fit of one step stays at the start value
    learn.fit_flat_cos(3, 1e-2, div_final=1e4)
    lrs = np.array(learn.recorder.lrs)
    assert lrs[0] == lrs[17] == 1e-2 and lrs[-1] == pytest.approx(1e-2 / 1e4, rel=1e-12)
    one = synth_learner(n=32, bs=32)
    one.fit_one_cycle(1, 1e-2)
    assert one.recorder.lrs == [pytest.approx(1e-2 / 25, rel=1e-12)]


def test_periodic_schedules_keep_steps_at_i_over_n(synth_learner):
    # SGDR and CLR are counted in iterations (restarts on epoch boundaries, like torch's schedulers):
    # step i of N is at pos = i / N for them
    from deepfit.schedule import clr, sgdr
    learn = synth_learner(n=256, bs=32)
    learn.fit_sgdr(2, 1e-2, cycle_len=1, cycle_mult=2)  # 3 epochs, 24 steps
    s, _ = sgdr(1e-2, 2, cycle_len=1, cycle_mult=2)
    np.testing.assert_allclose(learn.recorder.lrs, [float(s(i / 24)) for i in range(24)], rtol=1e-12)
    learn.fit_clr(3, 1e-3, 1e-2, step_size=4)
    c = clr(1e-3, 1e-2, step_size=4, total_steps=24)["lr"]
    np.testing.assert_allclose(learn.recorder.lrs, [float(c(i / 24)) for i in range(24)], rtol=1e-12)
    assert learn.recorder.lrs[4] == pytest.approx(1e-2) and learn.recorder.lrs[8] == pytest.approx(1e-3)


def test_sgdr_restarts(synth_learner):
    learn = synth_learner(n=256, bs=32)  # 8 batches per epoch
    learn.fit_sgdr(3, 1e-2, cycle_len=1, cycle_mult=2)  # 1 + 2 + 4 epochs
    lrs = np.array(learn.recorder.lrs)
    assert len(lrs) == 7 * 8 and len(learn.recorder.log) == 7
    restarts = [i for i in range(1, len(lrs)) if lrs[i] > lrs[i - 1]]
    assert restarts == [8, 24]
    assert lrs[0] == pytest.approx(1e-2) and lrs[8] == pytest.approx(1e-2) and lrs[24] == pytest.approx(1e-2)


def test_discriminative_lrs_and_freeze():
    set_seed(0)
    x, y = torch.randn(64, 4), torch.randn(64)
    dls = DataLoaders.from_tensors(x, y, x, y, bs=16, device="cpu")
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 8), nn.Linear(8, 1), nn.Flatten(0))
    learn = Learner(dls, model, loss_func=MSELoss(), progress=False,
                    splitter=lambda m: [m[0:2], m[2], m[3]])
    assert learn.lr_per_group(1e-3) == [1e-3] * 3
    assert learn.lr_per_group(slice(3e-3)) == pytest.approx([1e-3, 1e-3, 3e-3])
    assert learn.lr_per_group(slice(1e-5, 1e-3)) == pytest.approx([1e-5, 1e-4, 1e-3])
    learn.freeze()
    frozen_w = model[0].weight.detach().clone()
    bn_w = model[1].weight.detach().clone()
    mid = model[2].weight.detach().clone()
    learn.fit(1, slice(1e-5, 1e-1))
    assert learn.opt.param_groups[2]["lr"] == pytest.approx(1e-1)
    assert torch.equal(model[0].weight, frozen_w) and torch.equal(model[2].weight, mid)
    assert not torch.equal(model[1].weight, bn_w)  # batch-norm stays trainable
    assert learn.summary(print_it=False).count("False") >= 2
    learn.freeze_to(1)
    assert model[2].weight.requires_grad and not model[0].weight.requires_grad
    learn.unfreeze()
    assert all(p.requires_grad for p in model.parameters())
    learn.train_bn = False
    learn.freeze()
    assert not model[1].weight.requires_grad


def test_splitter_must_cover_model():
    x, y = torch.randn(8, 4), torch.randn(8)
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1))
    learn = Learner(DataLoaders.from_tensors(x, y, bs=4, device="cpu"), model, loss_func=MSELoss(),
                    splitter=lambda m: [m[0]], progress=False)
    with pytest.raises(ValueError, match="left 2 parameter"):
        learn.fit(1)


def test_param_scheduler_model_attribute(synth_learner):
    model = nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.5), nn.Linear(4, 1), nn.Flatten(0))
    learn = synth_learner(model=model)
    ps = ParamScheduler({"model.1.p": sched_lin(0.5, 0.0)})
    learn.fit(1, 1e-3, cbs=[ps])
    n = len(learn.dls.train)
    assert ps.hps["model.1.p"][0] == pytest.approx(0.5)
    assert ps.hps["model.1.p"][1] == pytest.approx(0.5 * (1 - 1 / (n - 1)))
    assert ps.hps["model.1.p"][-1] == 0.0 and model[1].p == 0.0  # the last step is at pos 1
    with pytest.raises(AttributeError, match="nothere"):
        learn.fit(1, cbs=[ParamScheduler({"model.nothere": sched_lin(0, 1)})])


def test_lr_find_restores_weights_and_suggests(synth_learner):
    learn = synth_learner(n=4096, bs=16, opt_func=functools.partial(SGD, mom=0.5))
    learn.fit(1, 1e-4)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt_state = copy.deepcopy(learn.opt.state_dict()["state"])
    assert opt_state
    hist = list(learn.recorder.losses)
    res = learn.lr_find(num_it=100)
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, before[k])
    after = learn.opt.state_dict()["state"]
    for i, st in opt_state.items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(after[i][k]), torch.as_tensor(v))
    assert learn.recorder.losses == hist
    assert 1e-7 <= res.lrs[0] < res.lrs[-1] and len(res.lrs) <= 100
    # the sweep is exponential
    np.testing.assert_allclose(np.diff(np.log(res.lrs)), np.log(1e8) / 99, rtol=1e-6)
    for v in (res.valley, res.steep, res.minimum):
        assert 1e-7 <= v <= 10
    # plain SGD on a 1-d linear regression: a good lr is between 1e-3 and 1, and it diverges beyond ~2
    assert 1e-3 < res.valley < 1 and 1e-3 < res.steep < 1
    fig = learn.recorder.plot_lr_find()
    assert len(fig.axes[0].lines) == 4


def test_lr_find_stops_on_divergence(synth_learner):
    learn = synth_learner(n=2048, bs=16, opt_func=SGD)
    res = learn.lr_find(start_lr=1e-4, end_lr=1e4, num_it=100)
    assert len(res.lrs) < 100  # stopped early, well before 1e4


@pytest.mark.parametrize("num_it", [1, 2, 3, 6])
def test_lr_find_too_short_never_suggests_nan(synth_learner, num_it):
    learn = synth_learner(n=512, bs=16, opt_func=SGD)
    with pytest.warns(UserWarning, match=f"only {num_it} usable batch"):
        res = learn.lr_find(num_it=num_it)
    assert res.fallback and len(res.lrs) == num_it
    # a tenth of the rate with the lowest loss seen
    best = res.lrs[int(np.argmin([float(v) for v in np.asarray(res.losses)]))] if num_it == 1 else None
    for v in (res.valley, res.steep, res.minimum):
        assert math.isfinite(v) and 1e-8 <= v <= 1
    if best is not None:
        assert res.valley == pytest.approx(best / 10)
    with pytest.raises(ValueError, match="num_it"):
        learn.lr_find(num_it=0)


def test_lr_find_suggestions_from_few_or_no_points():
    from deepfit.callbacks.schedule import suggest_lrs
    lrs = np.array([1e-5, 1e-4, 1e-3])
    with pytest.warns(UserWarning, match="only 3 usable"):
        res = suggest_lrs(lrs, np.array([3.0, 2.0, 2.5]), np.array([3.0, 2.0, 2.5]))
    assert res.valley == res.steep == res.minimum == pytest.approx(1e-5)
    with pytest.warns(UserWarning, match="only 0 usable"):  # the first batch already diverged
        res = suggest_lrs(np.array([1e-7]), np.array([np.inf]), np.array([np.inf]), start_lr=1e-7)
    assert res.valley == pytest.approx(1e-7)


@pytest.mark.parametrize("wd", [float("nan"), float("inf"), -0.1, "a lot"])
def test_weight_decay_is_validated(synth_learner, wd):
    learn = synth_learner(opt_func=SGD)
    with pytest.raises(ValueError, match=r"`wd` must be a finite number >= 0"):
        learn.fit(1, 1e-2, wd=wd)
    with pytest.raises(ValueError, match=r"`wd` must be a finite number >= 0"):
        learn.fit_one_cycle(1, 1e-2, wd=wd)
    with pytest.raises(ValueError, match=r"`wd` must be a finite number >= 0"):
        synth_learner(wd=wd)
    learn.fit(1, 1e-2, wd=0.0)  # zero is fine
    assert all(math.isfinite(float(p.detach().abs().sum())) for p in learn.model.parameters())


def test_nan_guard(synth_learner):
    learn = synth_learner(opt_func=SGD)
    with pytest.raises(NonFiniteLossError, match="Lower the learning rate"):
        learn.fit(3, 1e12)


def test_gradient_clip_matches_manual(synth_learner):
    learn = synth_learner(opt_func=SGD, wd=0.0)
    grads = []

    class Peek(Callback):
        order = 5

        def before_step(self):
            grads.append(torch.cat([p.grad.flatten() for p in self.learner.model.parameters()]).norm().item())
    learn.fit(1, 1e-2, cbs=[GradientClip(0.01), Peek()])
    assert max(grads) == pytest.approx(0.01, rel=1e-4)


def test_mixed_precision_cpu_bf16(synth_learner):
    learn = synth_learner()

    class Dtype(Callback):
        order = 20

        def after_pred(self):
            self.dtype = self.learner.pred.dtype
    d = Dtype()
    learn.fit(5, 1e-1, cbs=[MixedPrecision(), d])
    assert d.dtype == torch.bfloat16
    ref = synth_learner()
    ref.fit(5, 1e-1)
    assert learn.recorder.log[-1]["valid_loss"] < 0.05 and ref.recorder.log[-1]["valid_loss"] < 0.05
    assert learn.model.lin.weight.dtype == torch.float32  # master weights stay in fp32


def test_same_seed_same_losses(synth_learner):
    def run():
        set_seed(123)
        learn = synth_learner(n=256, bs=16, seed=1)
        set_seed(123)
        learn.fit_one_cycle(2, 1e-2)
        return learn.recorder.losses
    assert run() == run()


def test_get_preds_activations():
    x = torch.randn(40, 3)
    y = torch.randint(0, 3, (40,))
    dls = DataLoaders.from_tensors(x, y, x, y, bs=16, device="cpu")
    model = nn.Linear(3, 3)
    learn = Learner(dls, model, loss_func=CrossEntropyLoss(), progress=False)
    preds, targs, losses = learn.get_preds(with_loss=True)
    torch.testing.assert_close(preds, torch.softmax(model(x), -1).detach())
    assert torch.equal(targs, y)
    torch.testing.assert_close(losses, nn.functional.cross_entropy(model(x), y, reduction="none").detach())
    learn2 = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), progress=False)
    torch.testing.assert_close(learn2.get_preds()[0], preds)
    yb = (y > 0).float()
    dlb = DataLoaders.from_tensors(x, yb, x, yb, bs=16, device="cpu")
    mb = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    lb = Learner(dlb, mb, loss_func=BCEWithLogitsLoss(), progress=False)
    torch.testing.assert_close(lb.get_preds()[0], torch.sigmoid(mb(x)).detach())
    lm = Learner(dlb, mb, loss_func=MSELoss(), progress=False)
    torch.testing.assert_close(lm.get_preds()[0], mb(x).detach())
    dec, idx, probs = learn.predict(x[5])
    assert int(dec) == int(torch.softmax(model(x[5:6]), -1).argmax()) and probs.shape == (3,)


def test_save_load_roundtrip(synth_learner, tmp_path):
    learn = synth_learner(path=tmp_path)
    learn.fit(1, 1e-2)
    f = learn.save("m1")
    assert f == tmp_path / "models" / "m1.pth"
    w = learn.model.lin.weight.detach().clone()
    learn2 = synth_learner(path=tmp_path, seed=5)
    learn2.load("m1")
    assert torch.equal(learn2.model.lin.weight, w)
    for k, v in learn.opt.state_dict()["state"][0].items():
        assert torch.equal(torch.as_tensor(learn2.opt.state_dict()["state"][0][k]), torch.as_tensor(v))
    with pytest.raises(FileNotFoundError):
        learn2.load("nope")
    (tmp_path / "models" / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="truncated or corrupted"):
        learn2.load("bad")


def test_wd_decoupled_vs_l2_in_learner(synth_learner):
    # with lr 0 on the gradient path only wd moves weights under decoupled SGD: w <- w (1 - lr wd)
    learn = synth_learner(opt_func=SGD, wd=0.5)
    w0 = learn.model.lin.weight.detach().clone()

    class ZeroGrad(Callback):
        def after_backward(self):
            for p in self.learner.model.parameters():
                p.grad.zero_()
    learn.fit(1, 0.1, cbs=[ZeroGrad()])
    n = len(learn.dls.train)
    torch.testing.assert_close(learn.model.lin.weight, w0 * (1 - 0.1 * 0.5) ** n)


def test_bad_arguments(synth_learner):
    learn = synth_learner()
    with pytest.raises(ValueError, match="n_epoch"):
        learn.fit(-1)
    with pytest.raises(TypeError, match="nn.Module"):
        Learner(learn.dls, "not a model", loss_func=MSELoss())
    with pytest.raises(ValueError, match="lr"):
        Learner(learn.dls, nn.Linear(1, 1), loss_func=MSELoss(), lr=-1)
    with pytest.raises(ValueError, match="3 learning rates for 1"):
        learn.fit(1, [1e-3, 1e-3, 1e-3])


def test_show_training_loop(synth_learner, capsys):
    learn = synth_learner(progress=True)
    text = learn.show_training_loop()
    assert "Recorder" in text and "after_loss" in text and "TerminateOnNaN" in text


def _v_curve(lrs):
    # flat at 2 up to 1e-3, straight down (in log lr) to 0.5 at 1e-1, then back up steeply
    x = np.log10(lrs)
    return np.where(x < -3, 2.0, np.where(x < -1, 2.0 - 0.75 * (x + 3), 0.5 + 3 * (x + 1)))


def test_suggestions_on_a_known_curve():
    from deepfit.callbacks.schedule import suggest_lrs
    lrs = np.logspace(-7, 1, 161)  # 20 points per decade
    raw = _v_curve(lrs)
    res = suggest_lrs(lrs, raw, raw)
    # halfway down (loss 1.25) is exactly at 1e-2; the minimum at 1e-1; the slope is constant on the
    # descent, so steep is somewhere on it
    # The moving average over a tenth of the sweep (16 points) rounds the sharp corner at the
    # minimum, moving it towards the gentler side: by 4 grid steps (10**0.2) for the minimum, and
    # the halfway point by 2 (10**0.1).
    tol = 1 + 1e-9
    assert 1e-2 / 10 ** 0.1 / tol <= res.valley <= 1e-2 * tol
    assert 1e-2 / 10 ** 0.2 / tol <= res.minimum <= 1e-2 * tol
    assert 1e-3 <= res.steep <= 1e-1


def test_suggestions_ignore_noise_and_a_lucky_start():
    # Batch losses with noise of the size of the whole descent, and a run of low losses at the very
    # start (the case where an exponential average puts its lowest point at the first batches).
    from deepfit.callbacks.schedule import suggest_lrs
    from deepfit.callbacks.recorder import smooth_losses
    rng = np.random.default_rng(0)
    lrs = np.logspace(-7, 1, 100)
    raw = _v_curve(lrs) + rng.normal(0, 0.4, 100)
    raw[:4] = 0.6
    smooth, _ = smooth_losses(raw)
    assert np.argmin(smooth) < 5  # the smoothed curve alone is misleading here
    res = suggest_lrs(lrs, smooth, raw)
    assert 1e-3 < res.valley < 1e-1 and 1e-4 < res.steep < 1e-1 and 1e-3 < res.minimum < 1e-1


# ---- review fixes: state that must not leak between batches, fits and lr_find ------------------------------
def test_batch_cancelled_before_the_loss_records_no_stale_loss(synth_learner):
    learn = synth_learner(n=128, bs=32)  # 4 training batches

    class SkipOdd(Callback):
        def before_batch(self):
            if self.learner.training and self.learner.iter % 2 == 1:
                raise CancelBatch()
    learn.fit(1, 1e-2, cbs=[SkipOdd()])
    # only batches 0 and 2 computed a loss: the cancelled ones must not repeat the previous batch's loss
    assert len(learn.recorder.losses) == 2


def test_after_fit_of_every_callback_runs_after_an_error_even_if_one_fails(synth_learner, tmp_path):
    from deepfit import CSVLogger
    learn = synth_learner(path=tmp_path)

    class Boom(Callback):
        def after_pred(self):
            raise RuntimeError("boom")

    class BadCleanup(Callback):
        order = 0  # runs its after_fit before CSVLogger's (order 80)

        def after_fit(self):
            raise KeyError("cleanup failed")
    log = CSVLogger("h.csv")
    with pytest.raises(RuntimeError, match="boom"):
        learn.fit(1, 1e-2, cbs=[Boom(), BadCleanup(), log])
    assert log._file.closed


def test_lr_find_restores_model_mode_and_data_order(synth_learner):
    def losses(with_lr_find):
        learn = synth_learner(n=256, bs=16, seed=3)  # the training loader has its own seeded generator
        learn.model.eval()
        if with_lr_find:
            learn.lr_find(num_it=20)
            assert not learn.model.training  # the mode the user left it in
        learn.fit(1, 1e-2)
        return learn.recorder.losses
    assert losses(True) == losses(False)


def test_get_preds_on_a_shuffled_drop_last_loader_covers_every_row_in_order():
    x = torch.randn(50, 3)
    y = torch.randint(0, 3, (50,))
    dls = DataLoaders.from_tensors(x, y, x, y, bs=16, device="cpu", drop_last=True, seed=0)
    model = nn.Linear(3, 3)
    learn = Learner(dls, model, loss_func=CrossEntropyLoss(), progress=False)
    preds, targs = learn.get_preds(dl=dls.train)
    assert torch.equal(targs, y)  # all 50 rows (not 48), in the loader's row order
    torch.testing.assert_close(preds, torch.softmax(model(x), -1).detach())


def test_fit_cbs_replace_a_learner_callback_only_for_that_fit(synth_learner, tmp_path):
    from deepfit import CSVLogger
    from deepfit.callbacks import Recorder
    keep = CSVLogger("a.csv")
    learn = synth_learner(path=tmp_path, cbs=[keep])
    rec = learn.recorder
    learn.fit(1, 1e-2, cbs=[CSVLogger("b.csv"), Recorder(beta=0.5)])
    # the learner's own callbacks are back after the fit that replaced them
    assert learn.csv_logger is keep and keep in learn.cbs and learn.recorder is rec and rec in learn.cbs
    assert [type(c).__name__ for c in learn.cbs].count("CSVLogger") == 1
    learn.fit(1, 1e-2)
    assert (tmp_path / "a.csv").read_text().count("\n") == 2  # header + the epoch of the last fit
    learn.lr_find(num_it=5)  # works: the recorder is there


def test_get_preds_and_predict_keep_the_models_mode(synth_learner):
    learn = synth_learner()
    learn.model.train()
    learn.get_preds()
    assert learn.model.training
    learn.predict(torch.tensor([0.5]))
    assert learn.model.training
    learn.validate()
    assert learn.model.training
    learn.model.eval()
    learn.get_preds()
    assert not learn.model.training


def test_validate_on_an_empty_loader_is_an_error_not_the_previous_result(synth_learner):
    learn = synth_learner()
    learn.fit(1, 1e-2)
    empty = learn.dls.valid.new(torch.zeros(0, 1), torch.zeros(0))
    with pytest.raises(ValueError, match="no batch"):
        learn.validate(dl=empty)


def test_get_preds_moves_batches_of_a_loader_on_another_device_to_the_model():
    # a test loader built with DataLoader(x) lives on the CPU while the model trains elsewhere ("meta"
    # stands in for a GPU here: any mix of devices used to fail deep inside the model)
    from deepfit import DataLoader
    x, y = torch.randn(20, 3), torch.randint(0, 3, (20,))
    dls = DataLoaders.from_tensors(x, y, x, y, bs=8, device="meta")
    learn = Learner(dls, nn.Linear(3, 3), loss_func=CrossEntropyLoss(), progress=False)
    preds, targs = learn.get_preds(dl=DataLoader(x, y, bs=8))
    assert preds.device.type == "meta" and preds.shape == (20, 3) and targs.shape == (20,)


def test_model_and_data_on_different_devices_is_a_clear_error(synth_learner):
    learn = synth_learner()
    learn.dls.to("meta")  # e.g. dls.to("cuda") after the Learner was built: the model stayed behind
    with pytest.raises(ValueError, match=r"model.*cpu.*data.*meta"):
        learn.fit(1, 1e-2)
    with pytest.raises(ValueError, match=r"model.*cpu.*data.*meta"):
        learn.get_preds()


def test_a_failing_after_fit_does_not_stop_the_others_from_cleaning_up(synth_learner, tmp_path):
    from deepfit import CSVLogger
    learn = synth_learner(path=tmp_path)

    class BadCleanup(Callback):
        order = 0  # its after_fit runs before CSVLogger's (order 80)

        def after_fit(self):
            raise KeyError("cleanup failed")
    log = CSVLogger("h.csv")
    with pytest.raises(KeyError, match="cleanup failed"):  # the error still reaches the caller
        learn.fit(1, 1e-2, cbs=[BadCleanup(), log])
    assert log._file.closed


def test_the_top_level_package_exposes_what_the_readme_names():
    import deepfit
    for name in ("DataLoaders", "Learner", "CrossEntropyLoss", "accuracy", "load_learner", "Checkpoint", "F1Score",
                 "RocAucBinary", "error_rate", "mse", "rmse", "mae", "r2_score", "exp_rmspe", "EarlyStopping",
                 "SaveBestModel", "CSVLogger", "GradientClip", "MixedPrecision"):
        assert name in deepfit.__all__ and hasattr(deepfit, name), name


def test_plausible_setup_mistakes_are_clear_errors():
    from conftest import LinReg, make_regression_dls
    dls = make_regression_dls()
    with pytest.raises(TypeError, match=r"loss_func=MSELoss\(\)"):  # the class instead of an instance
        Learner(dls, LinReg(), loss_func=MSELoss)
    with pytest.raises(TypeError, match="DataLoaders"):  # one loader (or a torch DataLoader) instead of both
        Learner(dls.train, LinReg(), loss_func=MSELoss())


def test_a_loss_that_does_not_reduce_is_a_clear_error():
    from conftest import LinReg, make_regression_dls
    learn = Learner(make_regression_dls(), LinReg(), loss_func=nn.MSELoss(reduction="none"), progress=False)
    with pytest.raises(ValueError, match=r"one number.*shape \(32,\).*reduction"):
        learn.fit(1, 1e-2)


def test_learning_rates_must_be_positive(synth_learner):
    learn = synth_learner()
    for bad in (-1e-3, 0.0, float("nan"), slice(0.0, 1e-2), [-1e-3]):
        with pytest.raises(ValueError, match="learning rate"):
            learn.fit(1, bad)
