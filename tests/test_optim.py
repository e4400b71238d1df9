"""Tests for deepfit.optim: each optimizer against torch's twin, hand-computed steps, per-group
hyper-parameters, set_hyper/get_hyper/has_hyper on deepfit and torch optimizers, state_dict."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from deepfit.optim import SGD, Adam, RMSProp, get_hyper, has_hyper, set_hyper

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]
N_STEPS = 6

# fixed starting params and per-step gradients (float64 so comparisons can be tight)
_gen = torch.Generator().manual_seed(0)
P0 = [torch.randn(3, 4, dtype=torch.float64, generator=_gen), torch.randn(5, dtype=torch.float64, generator=_gen)]
GRADS = [[torch.randn(p.shape, dtype=p.dtype, generator=_gen) for p in P0] for _ in range(N_STEPS)]


def fresh_params() -> list[torch.Tensor]:
    return [p.clone().requires_grad_() for p in P0]


def run(opt: torch.optim.Optimizer, params: list[torch.Tensor], grads: list[list[torch.Tensor]]) -> None:
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()


def train(make_opt: Factory, n_steps: int = N_STEPS) -> list[torch.Tensor]:
    params = fresh_params()
    run(make_opt(params), params, GRADS[:n_steps])
    return [p.detach() for p in params]


def assert_same_training(ours: Factory, theirs: Factory) -> None:
    for a, b in zip(train(ours), train(theirs)):
        assert_close(a, b, rtol=1e-10, atol=1e-12)


def scalar_step(opt_cls: type, grads: list[float], p0: float = 1.0, **hypers: float | bool) -> float:
    """Run ``opt_cls`` on a single-element param with the given gradient sequence."""
    p = torch.tensor([p0], dtype=torch.float64, requires_grad=True)
    opt = opt_cls([p], **hypers)
    for g in grads:
        p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    return p.item()


# ----------------------------------------------------------------------------------------------
# against torch's own optimizers


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_l2_matches_torch(nesterov: bool) -> None:
    assert_same_training(
        lambda ps: SGD(ps, lr=0.1, mom=0.9, wd=0.05, decouple_wd=False, nesterov=nesterov),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.05, dampening=0, nesterov=nesterov),
    )


def test_sgd_decoupled_matches_reference() -> None:
    lr, mom, wd = 0.1, 0.9, 0.05
    expected, bufs = [p.clone() for p in P0], [torch.zeros_like(p) for p in P0]
    for step_grads in GRADS:
        for p, buf, g in zip(expected, bufs, step_grads):
            p.mul_(1 - lr * wd)  # true weight decay first, gradient untouched
            buf.mul_(mom).add_(g)
            p.sub_(lr * buf)
    for a, b in zip(train(lambda ps: SGD(ps, lr=lr, mom=mom, wd=wd)), expected):
        assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_adam_decoupled_matches_torch_adamw() -> None:
    assert_same_training(
        lambda ps: Adam(ps, lr=0.01, mom=0.8, sqr_mom=0.95, eps=1e-6, wd=0.1, decouple_wd=True),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    )


def test_adam_l2_matches_torch_adam() -> None:
    assert_same_training(
        lambda ps: Adam(ps, lr=0.01, mom=0.8, sqr_mom=0.95, eps=1e-6, wd=0.1, decouple_wd=False),
        lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    )


@pytest.mark.parametrize("mom", [0.0, 0.7])
def test_rmsprop_l2_matches_torch(mom: float) -> None:
    # eps is added outside the square root in both implementations, so they match exactly
    assert_same_training(
        lambda ps: RMSProp(ps, lr=0.01, sqr_mom=0.9, mom=mom, eps=1e-3, wd=0.1, decouple_wd=False),
        lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, momentum=mom, eps=1e-3, weight_decay=0.1),
    )


# ----------------------------------------------------------------------------------------------
# hand-computed values


def test_sgd_hand_computed() -> None:
    # step 1: decay 1 -> 0.99, then buffer = g = 0.5, so p = 0.99 - 0.1 * 0.5
    assert scalar_step(SGD, [0.5], lr=0.1, mom=0.9, wd=0.1) == pytest.approx(0.94)
    # step 2: decay 0.94 -> 0.9306, buffer = 0.9 * 0.5 + 0.5 = 0.95
    assert scalar_step(SGD, [0.5, 0.5], lr=0.1, mom=0.9, wd=0.1) == pytest.approx(0.9306 - 0.095)
    # L2: grad = 0.5 + 0.1 * 1 = 0.6; second step grad = 0.5 + 0.1 * 0.94 = 0.594, buffer 0.54 + 0.594
    assert scalar_step(SGD, [0.5, 0.5], lr=0.1, mom=0.9, wd=0.1, decouple_wd=False) == pytest.approx(
        0.94 - 0.1 * (0.9 * 0.6 + 0.594)
    )
    # nesterov step 1: update = g + mom * buffer = 0.5 + 0.45
    assert scalar_step(SGD, [0.5], lr=0.1, mom=0.9, nesterov=True) == pytest.approx(1 - 0.095)


def test_rmsprop_hand_computed() -> None:
    lr, a, eps = 0.01, 0.9, 1e-8
    v1 = (1 - a) * 0.5**2  # 0.025
    s1 = 0.5 / (math.sqrt(v1) + eps)
    assert scalar_step(RMSProp, [0.5], lr=lr, sqr_mom=a, eps=eps) == pytest.approx(1 - lr * s1)
    # with momentum 0.5, second gradient -0.5: buffer = 0.5 * s1 + s2
    v2 = a * v1 + (1 - a) * 0.25
    s2 = -0.5 / (math.sqrt(v2) + eps)
    expected = 1 - lr * s1 - lr * (0.5 * s1 + s2)
    assert scalar_step(RMSProp, [0.5, -0.5], lr=lr, sqr_mom=a, mom=0.5, eps=eps) == pytest.approx(expected)


def test_adam_hand_computed() -> None:
    lr, b1, b2, eps, wd = 0.1, 0.8, 0.9, 1e-3, 0.1
    hypers = dict(lr=lr, mom=b1, sqr_mom=b2, eps=eps, wd=wd)
    # step 1: debiased averages are exactly g and g**2, so the step is lr * g / (|g| + eps)
    p1 = 1 * (1 - lr * wd) - lr * 0.5 / (0.5 + eps)
    assert scalar_step(Adam, [0.5], **hypers) == pytest.approx(p1, rel=1e-12)
    # step 2 with g = -0.25
    m = b1 * (1 - b1) * 0.5 + (1 - b1) * -0.25
    v = b2 * (1 - b2) * 0.25 + (1 - b2) * 0.0625
    m_hat, v_hat = m / (1 - b1**2), v / (1 - b2**2)
    p2 = p1 * (1 - lr * wd) - lr * m_hat / (math.sqrt(v_hat) + eps)
    assert scalar_step(Adam, [0.5, -0.25], **hypers) == pytest.approx(p2, rel=1e-12)
    # L2: the decay goes through the gradient, step 1 grad = 0.5 + 0.1 * 1 = 0.6
    assert scalar_step(Adam, [0.5], **hypers, decouple_wd=False) == pytest.approx(1 - lr * 0.6 / (0.6 + eps))


def test_defaults_are_documented_values() -> None:
    p = [torch.zeros(1, requires_grad=True)]
    assert Adam(p, lr=1e-3).defaults == dict(lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.0, decouple_wd=True)
    assert RMSProp(p, lr=1e-3).defaults == dict(lr=1e-3, sqr_mom=0.99, mom=0.0, eps=1e-8, wd=0.0, decouple_wd=True)
    assert SGD(p, lr=1e-3).defaults == dict(lr=1e-3, mom=0.0, wd=0.0, decouple_wd=True, nesterov=False)


# ----------------------------------------------------------------------------------------------
# weight decay flavours


def test_l2_and_decoupled_coincide_for_plain_sgd() -> None:
    l2 = train(lambda ps: SGD(ps, lr=0.1, wd=0.3, decouple_wd=False))
    true_wd = train(lambda ps: SGD(ps, lr=0.1, wd=0.3, decouple_wd=True))
    no_wd = train(lambda ps: SGD(ps, lr=0.1))
    for a, b, c in zip(l2, true_wd, no_wd):
        assert_close(a, b, rtol=1e-10, atol=1e-12)
        assert not torch.allclose(a, c)  # and wd actually did something


def test_l2_and_decoupled_differ_for_adam() -> None:
    l2 = train(lambda ps: Adam(ps, lr=0.1, wd=0.3, decouple_wd=False))
    true_wd = train(lambda ps: Adam(ps, lr=0.1, wd=0.3, decouple_wd=True))
    assert max((a - b).abs().max().item() for a, b in zip(l2, true_wd)) > 1e-3


@pytest.mark.parametrize("opt_cls", [SGD, RMSProp, Adam])
def test_l2_does_not_modify_grad(opt_cls: type) -> None:
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    p.grad = torch.full((3,), 0.5, dtype=torch.float64)
    opt_cls([p], lr=0.1, wd=0.5, decouple_wd=False).step()
    assert torch.equal(p.grad, torch.full((3,), 0.5, dtype=torch.float64))


@pytest.mark.parametrize("opt_cls", [SGD, RMSProp, Adam])
def test_params_without_grad_are_skipped(opt_cls: type) -> None:
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = opt_cls([a, b], lr=0.1, wd=0.5, mom=0.9)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2))  # not even weight-decayed
    assert len(opt.state[b]) == 0
    assert not torch.equal(a.detach(), torch.ones(2))


# ----------------------------------------------------------------------------------------------
# param groups and set_hyper / get_hyper / has_hyper


def test_per_group_hypers_and_set_hyper() -> None:
    a, b = torch.ones(1, dtype=torch.float64, requires_grad=True), torch.ones(1, dtype=torch.float64, requires_grad=True)
    opt = SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01, "wd": 0.5}], lr=1.0)
    a.grad, b.grad = torch.full_like(a, 0.5), torch.full_like(b, 0.5)
    opt.step()
    assert a.item() == pytest.approx(1 - 0.1 * 0.5)  # 0.95
    assert b.item() == pytest.approx(1 * (1 - 0.01 * 0.5) - 0.01 * 0.5)  # 0.99
    set_hyper(opt, "lr", np.array([0.2, 0.02]))
    set_hyper(opt, "wd", [0.1, 0.0])
    assert get_hyper(opt, "lr") == [0.2, 0.02] and get_hyper(opt, "wd") == [0.1, 0.0]
    assert all(type(g["lr"]) is float for g in opt.param_groups)  # plain floats, no numpy scalars
    opt.step()
    assert a.item() == pytest.approx(0.95 * (1 - 0.2 * 0.1) - 0.2 * 0.5)
    assert b.item() == pytest.approx(0.99 - 0.02 * 0.5)
    set_hyper(opt, "lr", np.float64(0.0))  # a scalar broadcasts to every group: nothing moves any more
    assert all(type(g["lr"]) is float for g in opt.param_groups)
    opt.step()
    assert a.item() == pytest.approx(0.95 * (1 - 0.2 * 0.1) - 0.2 * 0.5)
    assert get_hyper(opt, "lr") == [0.0, 0.0]


def test_set_hyper_length_mismatch() -> None:
    opt = Adam([{"params": [torch.zeros(1, requires_grad=True)]}, {"params": [torch.zeros(1, requires_grad=True)]}], lr=1e-3)
    with pytest.raises(ValueError, match=r"got 3 values but the optimizer has 2 param groups"):
        set_hyper(opt, "lr", [0.1, 0.2, 0.3])
    with pytest.raises(TypeError, match="number or a sequence"):
        set_hyper(opt, "lr", "0.1")
    with pytest.raises(KeyError, match="no hyper-parameter 'momentum_x'"):
        set_hyper(opt, "momentum_x", 0.1)
    assert get_hyper(opt, "lr") == [1e-3, 1e-3]  # failed calls changed nothing


def test_set_hyper_on_deepfit_optimizer_changes_the_step() -> None:
    # mom written by set_hyper is what the next step uses (Adam step 2 depends on beta1)
    opt_p = torch.ones(1, dtype=torch.float64, requires_grad=True)
    opt = Adam([opt_p], lr=0.1, mom=0.9)
    set_hyper(opt, "mom", 0.8)
    set_hyper(opt, "sqr_mom", 0.9)
    set_hyper(opt, "eps", 1e-3)
    for g in (0.5, -0.25):
        opt_p.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
    assert opt_p.item() == pytest.approx(scalar_step(Adam, [0.5, -0.25], lr=0.1, mom=0.8, sqr_mom=0.9, eps=1e-3))


def test_set_hyper_maps_onto_torch_adamw() -> None:
    opt = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)
    set_hyper(opt, "mom", 0.8)
    assert opt.param_groups[0]["betas"] == (0.8, 0.999)
    set_hyper(opt, "sqr_mom", 0.95)
    assert opt.param_groups[0]["betas"] == (0.8, 0.95)
    set_hyper(opt, "wd", 0.1)
    set_hyper(opt, "eps", 1e-6)
    set_hyper(opt, "lr", 0.5)
    g = opt.param_groups[0]
    assert (g["weight_decay"], g["eps"], g["lr"]) == (0.1, 1e-6, 0.5)
    assert [get_hyper(opt, n) for n in ("mom", "sqr_mom", "wd")] == [[0.8], [0.95], [0.1]]
    assert all(has_hyper(opt, n) for n in ("lr", "mom", "sqr_mom", "eps", "wd"))


def test_set_hyper_maps_onto_torch_sgd_and_rmsprop() -> None:
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    set_hyper(sgd, "mom", 0.5)
    set_hyper(sgd, "wd", 0.2)
    assert (sgd.param_groups[0]["momentum"], sgd.param_groups[0]["weight_decay"]) == (0.5, 0.2)
    assert get_hyper(sgd, "mom") == [0.5]
    assert not has_hyper(sgd, "sqr_mom") and not has_hyper(sgd, "eps")
    with pytest.raises(KeyError, match="sqr_mom"):
        set_hyper(sgd, "sqr_mom", 0.99)
    with pytest.raises(KeyError, match="eps"):
        get_hyper(sgd, "eps")

    rms = torch.optim.RMSprop([torch.zeros(1, requires_grad=True)], lr=0.1)
    set_hyper(rms, "sqr_mom", 0.95)
    set_hyper(rms, "mom", 0.3)
    assert (rms.param_groups[0]["alpha"], rms.param_groups[0]["momentum"]) == (0.95, 0.3)
    assert get_hyper(rms, "sqr_mom") == [0.95]


def test_has_hyper_on_deepfit_optimizers() -> None:
    p = [torch.zeros(1, requires_grad=True)]
    assert has_hyper(Adam(p, lr=1e-3), "sqr_mom") and has_hyper(RMSProp(p, lr=1e-3), "eps")
    assert not has_hyper(SGD(p, lr=1e-3), "sqr_mom") and not has_hyper(SGD(p, lr=1e-3), "eps")


def test_learner_style_factory_call() -> None:
    # how the Learner builds optimizers: opt_func(list_of_group_dicts, lr=lr), then wd via set_hyper
    groups = [{"params": [torch.zeros(2, requires_grad=True)]}, {"params": [torch.zeros(3, requires_grad=True)]}]
    for opt_func in (Adam, SGD, RMSProp, torch.optim.AdamW):
        opt = opt_func(groups, lr=3e-3)
        set_hyper(opt, "wd", 0.01)
        assert get_hyper(opt, "lr") == [3e-3, 3e-3] and get_hyper(opt, "wd") == [0.01, 0.01]


# ----------------------------------------------------------------------------------------------
# state_dict, closure, validation

OPT_FACTORIES: dict[str, Factory] = {
    "sgd": lambda ps: SGD(ps, lr=0.1, mom=0.9, wd=0.01, nesterov=True),
    "rmsprop": lambda ps: RMSProp(ps, lr=0.01, mom=0.5, wd=0.01),
    "adam": lambda ps: Adam(ps, lr=0.01, wd=0.01),
}


@pytest.mark.parametrize("name", OPT_FACTORIES)
def test_state_dict_round_trip_resumes_exactly(name: str) -> None:
    make_opt = OPT_FACTORIES[name]
    params = fresh_params()
    opt = make_opt(params)
    run(opt, params, GRADS[:3])
    buf = io.BytesIO()
    torch.save({"params": [p.detach().clone() for p in params], "opt": opt.state_dict()}, buf)
    run(opt, params, GRADS[3:])  # uninterrupted training

    buf.seek(0)
    ckpt = torch.load(buf)
    resumed = [p.clone().requires_grad_() for p in ckpt["params"]]
    opt2 = make_opt(resumed)
    opt2.load_state_dict(ckpt["opt"])
    run(opt2, resumed, GRADS[3:])
    for a, b in zip(params, resumed):
        assert torch.equal(a.detach(), b.detach())

    # control: without the optimizer state (buffers, Adam's step count) the result differs
    restarted = [p.clone().requires_grad_() for p in ckpt["params"]]
    run(make_opt(restarted), restarted, GRADS[3:])
    assert not all(torch.equal(a.detach(), b) for a, b in zip(params, restarted))


def test_adam_step_count_is_in_state_dict() -> None:
    params = fresh_params()
    opt = Adam(params, lr=0.01)
    run(opt, params, GRADS[:4])
    assert [s["step"] for s in opt.state_dict()["state"].values()] == [4, 4]


def test_closure_is_evaluated_with_grad_and_returned() -> None:
    p = torch.tensor([2.0], requires_grad=True)
    opt = SGD([p], lr=0.1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (p**2).sum()  # d/dp = 2p = 4
        loss.backward()
        return loss

    with torch.no_grad():  # step must enable grad for the closure itself
        loss = opt.step(closure)
    assert loss.item() == pytest.approx(4.0)
    assert p.item() == pytest.approx(2.0 - 0.1 * 4.0)


def test_works_with_real_model_and_backward() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    opt = Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(50):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(lr=-0.1), "lr must be >= 0, got -0.1"),
        (dict(lr=0.1, mom=1.0), r"mom must be in \[0, 1\), got 1.0"),
        (dict(lr=0.1, wd=-1.0), "wd must be >= 0"),
        (dict(lr=0.1, nesterov=True), "nesterov=True needs mom > 0"),
    ],
)
def test_invalid_hypers_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SGD([torch.zeros(1, requires_grad=True)], **kwargs)


def test_invalid_group_hyper_raises() -> None:
    with pytest.raises(ValueError, match=r"sqr_mom must be in \[0, 1\)"):
        Adam([{"params": [torch.zeros(1, requires_grad=True)], "sqr_mom": 1.5}], lr=1e-3)
