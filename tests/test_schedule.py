"""Tests for deepfit.schedule: hand-computed values and agreement with torch's lr schedulers."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, CyclicLR, LRScheduler, OneCycleLR

from deepfit.schedule import (
    CLR_MODES,
    Schedule,
    SchedCombined,
    SchedConst,
    SchedCos,
    SchedLin,
    clr,
    combine_scheds,
    flat_cos,
    one_cycle,
    sched_const,
    sched_cos,
    sched_exp,
    sched_lin,
    sched_poly,
    schedule_from_dict,
    sgdr,
)

REL = 1e-12  # "exact" up to float rounding


def close(a: float, b: float, rel: float = REL) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)


def hand_cos(start: float, end: float, p: float) -> float:
    return start + (end - start) * (1 - math.cos(math.pi * p)) / 2


# ----------------------------------------------------------------------------------------------
# torch drivers
# ----------------------------------------------------------------------------------------------
def run_torch(
    make: Callable[[torch.optim.Optimizer], LRScheduler],
    n_steps: int,
    n_groups: int = 1,
    lr: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps a torch scheduler on a dummy SGD optimizer; returns lrs and momentums per step."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(n_groups)]
    opt = torch.optim.SGD([{"params": [p]} for p in params], lr=lr, momentum=0.9)
    sched = make(opt)
    lrs, moms = [], []
    for i in range(n_steps):
        lrs.append([g["lr"] for g in opt.param_groups])
        moms.append([g["momentum"] for g in opt.param_groups])
        opt.step()
        if i < n_steps - 1:
            sched.step()
    return np.array(lrs), np.array(moms)


def run_ours(
    sched: Callable[[float], object], n_steps: int, denom: int | None = None
) -> np.ndarray:
    """Evaluates a schedule at pos = i / denom (default i / n_steps, as the Learner samples SGDR and CLR;
    other schedules it samples at i / (n_steps - 1), so that the last step reaches pos 1)."""
    denom = n_steps if denom is None else denom
    return np.array([np.atleast_1d(sched(i / denom)) for i in range(n_steps)], dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# Primitive schedules
# ----------------------------------------------------------------------------------------------
def test_primitives_hand_values() -> None:
    assert sched_const(0.3)(0.0) == 0.3 and sched_const(0.3)(0.77) == 0.3
    assert close(sched_lin(1.0, 3.0)(0.25), 1.5)
    assert close(sched_cos(1.0, 3.0)(0.5), 2.0)
    assert close(sched_cos(1.0, 3.0)(1 / 3), hand_cos(1.0, 3.0, 1 / 3))
    assert close(sched_cos(1.0, 3.0)(1 / 3), 1.0 + 2.0 * 0.25)  # cos(pi/3) = 1/2
    assert close(sched_exp(1e-4, 1e-2)(0.5), 1e-3)
    assert close(sched_exp(2.0, 8.0)(1 / 3), 2.0 * 4.0 ** (1 / 3))
    assert close(sched_poly(1.0, 0.0, 2.0)(0.5), 0.75)
    assert close(sched_poly(2.0, 4.0, 0.5)(0.25), 3.0)


@pytest.mark.parametrize(
    "s", [sched_lin(0.1, 0.7), sched_cos(0.1, 0.7), sched_exp(0.1, 0.7), sched_poly(0.1, 0.7, 3.0)]
)
def test_primitives_exact_at_endpoints(s: Schedule) -> None:
    assert s(0.0) == 0.1
    assert s(1.0) == 0.7
    assert isinstance(s(0.5), float)


def test_array_values_broadcast() -> None:
    start = np.array([1.0, 2.0, 4.0])
    s = sched_cos(start, 0.0)
    out = s(0.5)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(out, start / 2, rtol=REL)
    np.testing.assert_array_equal(sched_lin([1.0, 2.0], [3.0, 6.0])(1.0), [3.0, 6.0])
    np.testing.assert_allclose(sched_exp([1.0, 4.0], 16.0)(0.5), [4.0, 8.0], rtol=REL)
    c = sched_const([0.1, 0.2])
    v = c(0.3)
    v[0] = 99.0  # the returned array is a copy
    np.testing.assert_array_equal(c(0.3), [0.1, 0.2])


def test_combine_scheds_local_positions() -> None:
    s = combine_scheds([0.3, 0.7], [sched_lin(0.0, 1.0), sched_cos(1.0, 0.0)])
    assert close(s(0.15), 0.5)
    assert s(0.3) == 1.0  # boundary belongs to the second segment, local pos 0
    assert close(s(0.3 + 0.7 / 2), 0.5)
    assert s(1.0) == 0.0
    assert s(0.0) == 0.0
    # three segments, one empty
    s3 = combine_scheds(
        [0.5, 0.0, 0.5], [sched_const(1.0), sched_const(99.0), sched_lin(2.0, 4.0)]
    )
    assert s3(0.25) == 1.0 and close(s3(0.75), 3.0) and s3(0.5) == 2.0
    # pos outside [0, 1] is clamped
    assert s(-0.1) == 0.0 and s(1.5) == 0.0


def test_combine_boundary_with_float_rounding() -> None:
    # pcts like 1/7 do not add up exactly in floats; i/n on a boundary must still land in the
    # later segment.
    n_seg, per = 7, 13
    s = combine_scheds([1 / n_seg] * n_seg, [sched_lin(1.0, 0.0)] * n_seg)
    total = n_seg * per
    for k in range(n_seg):
        assert s(k * per / total) == 1.0


def test_repr_and_to_dict_round_trip() -> None:
    scheds: list[Schedule] = [
        sched_const([0.1, 0.2]),
        sched_lin(0.0, 1.0),
        sched_cos(np.array([1e-3, 1e-2]), 0.0),
        sched_exp(1e-5, 1.0),
        sched_poly(1.0, 0.0, 2.0),
        one_cycle(1e-2)["lr"],
        one_cycle(np.array([1e-3, 1e-2]))["mom"],
        sgdr(0.1, 3, 2, 2, 1e-4)[0],
        clr(1e-3, 1e-2, 4, 50, "exp_range", 0.99)["lr"],
        flat_cos(1e-2)["lr"],
    ]
    for s in scheds:
        d = s.to_dict()
        d2 = json.loads(json.dumps(d))
        s2 = schedule_from_dict(d2)
        assert type(s2) is type(s) and s2 == s
        for pos in (0.0, 0.1, 0.37, 0.5, 0.99, 1.0):
            np.testing.assert_array_equal(s(pos), s2(pos))
        assert repr(s) == repr(s2)
    assert repr(sched_cos(1.0, 0.5)) == "SchedCos(start=1.0, end=0.5)"
    assert "SchedCos(start=0.0004, end=0.01)" in repr(one_cycle(0.01)["lr"])


def test_schedule_from_dict_errors() -> None:
    with pytest.raises(KeyError, match="type"):
        schedule_from_dict({"start": 1})
    with pytest.raises(KeyError, match="SchedNope"):
        schedule_from_dict({"type": "SchedNope"})


def test_combined_with_plain_callable_cannot_be_saved() -> None:
    s = combine_scheds([0.5, 0.5], [lambda p: 1.0, sched_const(2.0)])
    assert s(0.2) == 1.0 and s(0.7) == 2.0
    with pytest.raises(TypeError, match=r"scheds\[0\]"):
        s.to_dict()


# ----------------------------------------------------------------------------------------------
# one_cycle
# ----------------------------------------------------------------------------------------------
def test_one_cycle_hand_values() -> None:
    lr_max, div, div_final, pct = 1e-2, 25.0, 1e5, 0.3
    s = one_cycle(lr_max, div=div, div_final=div_final, pct_start=pct)
    lr, mom = s["lr"], s["mom"]
    lr0, lr_end = lr_max / div, lr_max / div_final
    assert lr(0.0) == lr0
    assert lr(pct) == lr_max
    assert lr(1.0) == lr_end
    # phase 1 midpoint: cos(pi/2) = 0
    assert close(lr(pct / 2), (lr0 + lr_max) / 2)
    # phase 2 at local 1/3 and 0.9
    for local in (1 / 3, 0.9):
        pos = pct + (1 - pct) * local
        expected = lr_max + (lr_end - lr_max) * (1 - math.cos(math.pi * local)) / 2
        assert close(lr(pos), expected)
    # momentum: 0.95 -> 0.85 -> 0.95
    assert mom(0.0) == 0.95 and mom(pct) == 0.85 and mom(1.0) == 0.95
    assert close(mom(pct / 2), 0.9)
    local = 0.25
    expected = 0.85 + (0.95 - 0.85) * (1 - math.cos(math.pi * local)) / 2
    assert close(mom(pct + (1 - pct) * local), expected)


def test_one_cycle_momentum_moves_opposite_to_lr() -> None:
    s = one_cycle(0.1)
    pos = np.linspace(0, 1, 401)
    lrs = np.array([s["lr"](p) for p in pos])
    moms = np.array([s["mom"](p) for p in pos])
    dl, dm = np.diff(lrs), np.diff(moms)
    assert np.all(dl * dm <= 0)
    assert np.all(np.sign(dl[np.abs(dl) > 1e-12]) == -np.sign(dm[np.abs(dl) > 1e-12]))
    assert np.argmax(lrs) == np.argmin(moms) == 100


def test_one_cycle_without_moms_and_with_array_lr() -> None:
    s = one_cycle(1e-2, moms=None)
    assert set(s) == {"lr"}
    s = one_cycle(np.array([1e-3, 1e-2]))
    np.testing.assert_allclose(s["lr"](0.0), [1e-3 / 25, 1e-2 / 25], rtol=REL)
    np.testing.assert_array_equal(s["lr"](0.25), [1e-3, 1e-2])
    assert isinstance(s["mom"](0.1), float)


@pytest.mark.parametrize("pct_start", [0.25, 0.3])
def test_one_cycle_vs_torch_onecyclelr_within_step_tolerance(pct_start: float) -> None:
    lr_max, div, div_final, total = 1e-2, 25.0, 1e5, 100
    ours = one_cycle(lr_max, div=div, div_final=div_final, pct_start=pct_start)
    t_lr, t_mom = run_torch(
        lambda o: OneCycleLR(
            o,
            max_lr=lr_max,
            total_steps=total,
            pct_start=pct_start,
            anneal_strategy="cos",
            div_factor=div,
            final_div_factor=div_final / div,
            three_phase=False,
            cycle_momentum=True,
            base_momentum=0.85,
            max_momentum=0.95,
        ),
        total,
    )
    o_lr, o_mom = run_ours(ours["lr"], total), run_ours(ours["mom"], total)
    # Torch puts phase 1 over steps [0, pct*T - 1] and phase 2 over [pct*T - 1, T - 1]; we put
    # them over pos [0, pct] and [pct, 1] with pos = i/T. The local positions then differ by at
    # most one step of either phase, 1/(pct*T) or 1/((1-pct)*T), and a half cosine from a to b
    # has slope at most pi/2 * |b - a| in local position.
    step = max(1 / (pct_start * total), 1 / ((1 - pct_start) * total))
    tol_lr = math.pi / 2 * lr_max * step * (1 + 1e-9)
    tol_mom = math.pi / 2 * (0.95 - 0.85) * step * (1 + 1e-9)
    assert np.max(np.abs(o_lr - t_lr)) <= tol_lr
    assert np.max(np.abs(o_mom - t_mom)) <= tol_mom
    # and the difference is really of that order, not a coincidence of a loose bound
    assert np.max(np.abs(o_lr - t_lr)) > tol_lr / 20
    # same start, same peak region, same final value
    assert close(o_lr[0, 0], t_lr[0, 0])
    assert close(ours["lr"](1.0), t_lr[-1, 0])


def test_one_cycle_equals_torch_when_definitions_coincide() -> None:
    # With pos = i / (T - 1) and pct_start' = (pct*T - 1) / (T - 1), our phase boundaries are
    # exactly torch's, so the values agree to float rounding at every step, for every group.
    lr_max = np.array([1e-3, 3e-2])
    div, div_final, pct, total = 10.0, 1e4, 0.25, 80
    pct_ours = (pct * total - 1) / (total - 1)
    ours = one_cycle(lr_max, div=div, div_final=div_final, pct_start=pct_ours)
    t_lr, t_mom = run_torch(
        lambda o: OneCycleLR(
            o,
            max_lr=list(lr_max),
            total_steps=total,
            pct_start=pct,
            anneal_strategy="cos",
            div_factor=div,
            final_div_factor=div_final / div,
            cycle_momentum=True,
            base_momentum=0.85,
            max_momentum=0.95,
        ),
        total,
        n_groups=2,
    )
    o_lr = run_ours(ours["lr"], total, denom=total - 1)
    o_mom = run_ours(ours["mom"], total, denom=total - 1)
    assert o_lr.shape == t_lr.shape == (total, 2)
    np.testing.assert_allclose(o_lr, t_lr, rtol=REL, atol=0)
    np.testing.assert_allclose(np.broadcast_to(o_mom, t_mom.shape), t_mom, rtol=REL, atol=0)


# ----------------------------------------------------------------------------------------------
# SGDR
# ----------------------------------------------------------------------------------------------
def test_sgdr_total_epochs_and_hand_values() -> None:
    s, n = sgdr(0.1, n_cycles=3, cycle_len=2, cycle_mult=3, lr_min=0.01)
    assert n == 2 + 6 + 18
    # restarts at epoch 0, 2 and 8 (as fractions of 26 epochs) go back to lr_max
    for e in (0, 2, 8):
        assert s(e / n) == 0.1
    # middle of cycle 2 (epochs 2..8 -> epoch 5)
    assert close(s(5 / n), (0.1 + 0.01) / 2)
    # a quarter into cycle 3 (epochs 8..26)
    expected = 0.1 + (0.01 - 0.1) * (1 - math.cos(math.pi * 0.25)) / 2
    assert close(s((8 + 18 / 4) / n), expected)
    assert s(1.0) == 0.01
    assert sgdr(0.1, 4)[1] == 4


@pytest.mark.parametrize(
    ("n_cycles", "cycle_len", "cycle_mult", "spe"), [(3, 1, 2, 7), (4, 2, 1, 5), (2, 1, 3, 9)]
)
def test_sgdr_equals_torch_cosine_warm_restarts(
    n_cycles: int, cycle_len: int, cycle_mult: int, spe: int
) -> None:
    lr_max, lr_min = 0.1, 1e-4
    s, n_epochs = sgdr(lr_max, n_cycles, cycle_len, cycle_mult, lr_min)
    total = n_epochs * spe
    t_lr, _ = run_torch(
        lambda o: CosineAnnealingWarmRestarts(
            o, T_0=cycle_len * spe, T_mult=cycle_mult, eta_min=lr_min
        ),
        total,
        lr=lr_max,
    )
    np.testing.assert_allclose(run_ours(s, total), t_lr, rtol=REL, atol=0)


def test_sgdr_array_lr() -> None:
    s, _ = sgdr(np.array([0.01, 0.1]), 2)
    np.testing.assert_array_equal(s(0.5), [0.01, 0.1])
    np.testing.assert_allclose(s(0.25), [0.005, 0.05], rtol=REL)


# ----------------------------------------------------------------------------------------------
# flat_cos
# ----------------------------------------------------------------------------------------------
def test_flat_cos_hand_values() -> None:
    s = flat_cos(0.01, pct_start=0.6, div_final=1e3)
    assert set(s) == {"lr"}
    lr = s["lr"]
    assert lr(0.0) == lr(0.3) == lr(0.6) == 0.01
    assert close(lr(0.8), (0.01 + 1e-5) / 2)
    assert close(lr(0.7), hand_cos(0.01, 1e-5, 0.25))
    assert lr(1.0) == 1e-5
    assert close(flat_cos(1.0, pct_start=0.0)["lr"](0.5), (1.0 + 1e-5) / 2)


# ----------------------------------------------------------------------------------------------
# CLR
# ----------------------------------------------------------------------------------------------
def test_clr_hand_values() -> None:
    lo, hi, step, total = 1e-3, 1e-2, 4, 40
    tri = clr(lo, hi, step, total)["lr"]
    assert tri(0.0) == lo
    assert close(tri(2 / total), (lo + hi) / 2)
    assert close(tri(4 / total), hi)
    assert close(tri(8 / total), lo)
    assert close(tri(12 / total), hi)
    tri2 = clr(lo, hi, step, total, mode="triangular2")["lr"]
    assert close(tri2(4 / total), hi)
    assert close(tri2(12 / total), lo + (hi - lo) / 2)  # peak of cycle 2
    assert close(tri2(20 / total), lo + (hi - lo) / 4)  # peak of cycle 3
    g = 0.95
    ex = clr(lo, hi, step, total, mode="exp_range", gamma=g)["lr"]
    assert close(ex(4 / total), lo + (hi - lo) * g**4)
    assert close(ex(14 / total), lo + (hi - lo) * 0.5 * g**14)


@pytest.mark.parametrize("mode", CLR_MODES)
def test_clr_equals_torch_cycliclr(mode: str) -> None:
    lo, hi, step, total, gamma = 1e-3, 1e-2, 5, 47, 0.97
    ours = clr(lo, hi, step, total, mode=mode, gamma=gamma)["lr"]
    t_lr, _ = run_torch(
        lambda o: CyclicLR(
            o,
            base_lr=lo,
            max_lr=hi,
            step_size_up=step,
            mode=mode,
            gamma=gamma,
            cycle_momentum=False,
        ),
        total,
    )
    np.testing.assert_allclose(run_ours(ours, total), t_lr, rtol=1e-10, atol=1e-17)


def test_clr_array_bounds() -> None:
    s = clr(np.array([1e-4, 1e-3]), np.array([1e-3, 1e-2]), 2, 10)["lr"]
    np.testing.assert_allclose(s(0.2), [1e-3, 1e-2], rtol=REL)


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: one_cycle(1e-2, pct_start=1.0), r"pct_start.*\(0, 1\).*1\.0"),
        (lambda: one_cycle(1e-2, pct_start=0.0), r"pct_start.*\(0, 1\).*0\.0"),
        (lambda: one_cycle(1e-2, div=0.0), r"div must be > 0, got 0\.0"),
        (lambda: one_cycle(1e-2, div_final=-1.0), r"div_final must be > 0, got -1\.0"),
        (lambda: one_cycle(-1e-2), r"lr_max must be > 0, got -0\.01"),
        (lambda: one_cycle(np.array([1e-2, 0.0])), r"lr_max must be > 0"),
        (lambda: one_cycle(1e-2, moms=(0.9, 0.8)), r"moms must hold 3"),
        (lambda: one_cycle(1e-2, moms=(0.9, 0.8, 1.5)), r"moms.*\[0, 1\).*1\.5"),
        # a momentum of 1 made Adam divide by zero at the end of the cycle
        (lambda: one_cycle(1e-2, moms=(0.95, 0.85, 1.0)), r"moms.*\[0, 1\).*moms\[2\]=1\.0"),
        (lambda: sgdr(0.1, 0), r"n_cycles must be an integer >= 1, got 0"),
        (lambda: sgdr(0.1, 2, cycle_len=0), r"cycle_len"),
        (lambda: sgdr(0.1, 2, cycle_mult=0), r"cycle_mult"),
        (lambda: sgdr(0.1, 2, lr_min=0.5), r"lr_min must be <= lr_max"),
        (lambda: sgdr(0.1, 2, lr_min=-0.5), r"lr_min must be >= 0"),
        (lambda: flat_cos(0.1, pct_start=1.0), r"pct_start must be in \[0, 1\), got 1\.0"),
        (lambda: flat_cos(0.1, div_final=0), r"div_final"),
        (
            lambda: clr(1e-3, 1e-2, 4, 10, mode="cosine"),
            r"triangular.*triangular2.*exp_range.*cosine",
        ),
        (lambda: clr(1e-3, 1e-2, 0, 10), r"step_size must be > 0"),
        (lambda: clr(1e-2, 1e-3, 4, 10), r"lr_max must be >= lr_min"),
        (lambda: clr(1e-3, 1e-2, 4, 0), r"total_steps"),
        (lambda: clr(1e-3, 1e-2, 4, 10, "exp_range", gamma=0.0), r"gamma must be > 0"),
        (lambda: combine_scheds([0.5, 0.6], [sched_const(1), sched_const(2)]), r"sum to 1"),
        (lambda: combine_scheds([0.5], [sched_const(1), sched_const(2)]), r"same length"),
        (lambda: combine_scheds([1.5, -0.5], [sched_const(1), sched_const(2)]), r"pcts\[1\]"),
        (lambda: sched_exp(0.0, 1.0), r"start must be > 0"),
        (lambda: sched_poly(0.0, 1.0, 0.0), r"power must be > 0"),
        (lambda: sched_lin([1.0, 2.0], [1.0, 2.0, 3.0]), r"broadcast"),
        (lambda: sched_lin(float("nan"), 1.0), r"start must be finite"),
        (lambda: sched_lin([[1.0]], 1.0), r"1-D"),
    ],
)
def test_validation_errors(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors() -> None:
    with pytest.raises(TypeError, match="n_cycles"):
        sgdr(0.1, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="start"):
        sched_lin("a", 1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"scheds\[1\]"):
        combine_scheds([0.5, 0.5], [sched_const(1.0), 3.0])  # type: ignore[list-item]


def test_schedule_classes_are_exported_types() -> None:
    assert isinstance(one_cycle(0.1)["lr"], SchedCombined)
    assert isinstance(sched_const(1.0), SchedConst)
    assert isinstance(sched_lin(0, 1), SchedLin)
    assert isinstance(sched_cos(0, 1), SchedCos)
