"""Annealing schedules: pure functions of training progress.

A *schedule* is a callable ``f(pos) -> float | np.ndarray`` where ``pos`` in ``[0, 1]`` is the
fraction of training done. A fit of ``N`` optimizer steps (counted from 0) evaluates it at
``pos = i / (N - 1)``, so the first step gets the value at 0 and the last the value at 1, except for
schedules whose ``endpoint`` attribute is False (SGDR and CLR, defined per iteration with restarts
on epoch or iteration boundaries, as torch's schedulers): those get ``pos = i / N``.
``start``/``end`` values may be floats or 1-D arrays holding one value per parameter group; the
result then is an array of the same length (values broadcast as in numpy).

Primitive schedules (small classes with a readable ``repr`` and a ``to_dict`` config that
:func:`schedule_from_dict` turns back into an equal schedule) are defined in
:mod:`deepfit.annealing` and re-exported here:

* :func:`sched_const`, :func:`sched_lin`, :func:`sched_cos`, :func:`sched_exp`, :func:`sched_poly`
* :func:`combine_scheds` glues schedules piecewise over consecutive fractions of training.

This module adds the periodic schedules :class:`SchedSGDR` and :class:`SchedCLR`,
:func:`schedule_from_dict`, and the builders used by the ``Learner`` fit methods:

* :func:`one_cycle` -> ``{'lr': ..., 'mom': ...}``
* :func:`sgdr` -> ``(schedule, total_epochs)``
* :func:`flat_cos` -> ``{'lr': ...}``
* :func:`clr` -> ``{'lr': ...}``

Example:
    >>> scheds = one_cycle(1e-2)
    >>> scheds['lr'](0.0), scheds['lr'](0.25)
    (0.0004, 0.01)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .annealing import (
    SchedCombined,
    SchedConst,
    SchedCos,
    SchedExp,
    SchedLin,
    SchedPoly,
    Schedule,
    ScheduleFunc,
    ScheduleValue,
    ValueLike,
    _check_number,
    _check_positive,
    _fmt,
    _jsonable,
    _out,
    _to_value,
    combine_scheds,
    sched_const,
    sched_cos,
    sched_exp,
    sched_lin,
    sched_poly,
)

__all__ = [
    "ScheduleValue",
    "ScheduleFunc",
    "Schedule",
    "SchedConst",
    "SchedLin",
    "SchedCos",
    "SchedExp",
    "SchedPoly",
    "SchedCombined",
    "SchedSGDR",
    "SchedCLR",
    "CLR_MODES",
    "sched_const",
    "sched_lin",
    "sched_cos",
    "sched_exp",
    "sched_poly",
    "combine_scheds",
    "one_cycle",
    "sgdr",
    "flat_cos",
    "clr",
    "schedule_from_dict",
]

CLR_MODES: tuple[str, ...] = ("triangular", "triangular2", "exp_range")
"""Modes accepted by :func:`clr`."""


# ----------------------------------------------------------------------------------------------
# Argument helpers (the shared ones live in deepfit.annealing)
# ----------------------------------------------------------------------------------------------
def _check_int(x: Any, name: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(x).__name__} {x!r}")
    if int(x) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {x!r}")
    return int(x)


def _check_open_unit(x: Any, name: str) -> float:
    xf = _check_number(x, name)
    if not 0.0 < xf < 1.0:
        raise ValueError(f"{name} must be in the open interval (0, 1), got {x!r}")
    return xf


def _check_lr_range(lr_min: ScheduleValue, lr_max: ScheduleValue, order: str) -> None:
    """Checks ``0 <= lr_min <= lr_max`` element-wise; ``order`` words the message when
    ``lr_min > lr_max`` (e.g. ``'lr_min must be <= lr_max'``)."""
    if not np.all(np.asarray(lr_min) >= 0):
        raise ValueError(f"lr_min must be >= 0, got {_fmt(lr_min)}")
    try:
        ok = bool(np.all(np.asarray(lr_min) <= np.asarray(lr_max)))
    except ValueError as e:
        raise ValueError(
            f"lr_min and lr_max must broadcast together, got lr_min={_fmt(lr_min)} and "
            f"lr_max={_fmt(lr_max)}"
        ) from e
    if not ok:
        raise ValueError(f"{order}, got lr_min={_fmt(lr_min)} and lr_max={_fmt(lr_max)}")


# ----------------------------------------------------------------------------------------------
# Periodic schedules (counted in epochs or iterations)
# ----------------------------------------------------------------------------------------------
class SchedSGDR(Schedule):
    """Cosine annealing with warm restarts (SGDR), as a function of progress over all training.

    Cycle ``i`` lasts ``cycle_len * cycle_mult ** i`` epochs; within each cycle the value goes
    from ``lr_max`` down to ``lr_min`` along a half cosine, then restarts at ``lr_max``.

    Args:
        lr_max: Value at the start of each cycle (float or one per parameter group), > 0.
        n_cycles: Number of cycles, >= 1.
        cycle_len: Length of the first cycle in epochs, integer >= 1.
        cycle_mult: Factor by which each cycle is longer than the previous one, integer >= 1.
        lr_min: Value at the end of each cycle, >= 0 and <= ``lr_max``.

    Sampled at ``pos = i / N`` (``endpoint = False``): restarts fall exactly on epoch boundaries and
    each cycle's last step is one step short of ``lr_min``, as in torch's CosineAnnealingWarmRestarts.
    """

    endpoint = False

    def __init__(
        self,
        lr_max: ValueLike,
        n_cycles: int,
        cycle_len: int = 1,
        cycle_mult: int = 1,
        lr_min: ValueLike = 0.0,
    ) -> None:
        self.lr_max = _to_value(lr_max, "lr_max")
        _check_positive(self.lr_max, "lr_max")
        self.n_cycles = _check_int(n_cycles, "n_cycles", 1)
        self.cycle_len = _check_int(cycle_len, "cycle_len", 1)
        self.cycle_mult = _check_int(cycle_mult, "cycle_mult", 1)
        self.lr_min = _to_value(lr_min, "lr_min")
        _check_lr_range(self.lr_min, self.lr_max, "lr_min must be <= lr_max")
        self.cycle_epochs = [
            self.cycle_len * self.cycle_mult**i for i in range(self.n_cycles)
        ]
        self.total_epochs = sum(self.cycle_epochs)
        cyc = SchedCos(self.lr_max, self.lr_min)
        self._inner = SchedCombined(
            [e / self.total_epochs for e in self.cycle_epochs], [cyc] * self.n_cycles
        )

    def __call__(self, pos: float) -> ScheduleValue:
        return self._inner(pos)

    def params(self) -> dict[str, Any]:
        return {
            "lr_max": _jsonable(self.lr_max),
            "n_cycles": self.n_cycles,
            "cycle_len": self.cycle_len,
            "cycle_mult": self.cycle_mult,
            "lr_min": _jsonable(self.lr_min),
        }


class SchedCLR(Schedule):
    """Smith's cyclical learning rate, as a function of progress ``pos``.

    With ``it = pos * total_steps``, ``cycle = floor(1 + it / (2 * step_size))`` and
    ``x = |it / step_size - 2 * cycle + 1|``, the value is
    ``lr_min + (lr_max - lr_min) * max(0, 1 - x) * scale`` where ``scale`` is 1
    (``'triangular'``), ``1 / 2 ** (cycle - 1)`` (``'triangular2'``) or ``gamma ** it``
    (``'exp_range'``).

    Args:
        lr_min: Lower bound (float or one per parameter group), >= 0.
        lr_max: Upper bound, >= ``lr_min``.
        step_size: Half a cycle, in iterations, > 0.
        total_steps: Total number of training iterations (maps ``pos`` to iterations), >= 1.
        mode: One of ``'triangular'``, ``'triangular2'``, ``'exp_range'``.
        gamma: Per-iteration decay of the amplitude for ``'exp_range'``, > 0.

    Sampled at ``pos = i / N`` (``endpoint = False``), so that ``pos * total_steps`` is the iteration.
    """

    endpoint = False

    def __init__(
        self,
        lr_min: ValueLike,
        lr_max: ValueLike,
        step_size: float,
        total_steps: int,
        mode: str = "triangular",
        gamma: float = 1.0,
    ) -> None:
        if mode not in CLR_MODES:
            raise ValueError(f"mode must be one of {list(CLR_MODES)}, got {mode!r}")
        self.lr_min = _to_value(lr_min, "lr_min")
        self.lr_max = _to_value(lr_max, "lr_max")
        _check_lr_range(self.lr_min, self.lr_max, "lr_max must be >= lr_min")
        self.step_size = _check_number(step_size, "step_size")
        if self.step_size <= 0:
            raise ValueError(
                f"step_size must be > 0 (iterations per half cycle), got {step_size!r}"
            )
        self.total_steps = _check_int(total_steps, "total_steps", 1)
        self.mode = mode
        self.gamma = _check_number(gamma, "gamma")
        if self.gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")

    def __call__(self, pos: float) -> ScheduleValue:
        it = float(pos) * self.total_steps
        r = round(it)
        if abs(it - r) < 1e-9 * max(1.0, abs(it)):
            it = float(r)
        cycle = math.floor(1.0 + it / (2.0 * self.step_size))
        x = abs(it / self.step_size - 2.0 * cycle + 1.0)
        height = max(0.0, 1.0 - x)
        if self.mode == "triangular":
            scale = 1.0
        elif self.mode == "triangular2":
            scale = 1.0 / 2.0 ** (cycle - 1)
        else:
            scale = self.gamma**it
        return _out(self.lr_min + (self.lr_max - self.lr_min) * (height * scale))

    def params(self) -> dict[str, Any]:
        return {
            "lr_min": _jsonable(self.lr_min),
            "lr_max": _jsonable(self.lr_max),
            "step_size": self.step_size,
            "total_steps": self.total_steps,
            "mode": self.mode,
            "gamma": self.gamma,
        }


_SCHEDULE_TYPES: dict[str, type[Schedule]] = {
    cls.__name__: cls
    for cls in (SchedConst, SchedLin, SchedCos, SchedExp, SchedPoly, SchedCombined, SchedSGDR,
                SchedCLR)
}


def schedule_from_dict(config: dict[str, Any]) -> Schedule:
    """Rebuilds a schedule from :meth:`Schedule.to_dict` output.

    Args:
        config: A dict with a ``'type'`` key naming a schedule class and its constructor args.

    Returns:
        The schedule.

    Raises:
        KeyError: If ``'type'`` is missing or names an unknown schedule class.
    """
    if "type" not in config:
        raise KeyError(f"schedule config needs a 'type' key, got keys {sorted(config)}")
    name = config["type"]
    if name not in _SCHEDULE_TYPES:
        raise KeyError(
            f"unknown schedule type {name!r}; known types: {sorted(_SCHEDULE_TYPES)}"
        )
    kwargs = {k: v for k, v in config.items() if k != "type"}
    if name == "SchedCombined":
        kwargs["scheds"] = [schedule_from_dict(s) for s in kwargs["scheds"]]
    return _SCHEDULE_TYPES[name](**kwargs)


# ----------------------------------------------------------------------------------------------
# Builders used by the Learner fit methods
# ----------------------------------------------------------------------------------------------
def one_cycle(
    lr_max: ValueLike,
    div: float = 25.0,
    div_final: float = 1e5,
    pct_start: float = 0.25,
    moms: Sequence[float] | None = (0.95, 0.85, 0.95),
) -> dict[str, Schedule]:
    """1cycle policy: learning-rate warm-up then annealing, with momentum moving opposite.

    ``lr`` goes along a half cosine from ``lr_max / div`` up to ``lr_max`` over the first
    ``pct_start`` of training, then along a half cosine down to ``lr_max / div_final``.
    ``mom`` goes ``moms[0] -> moms[1]`` over the first phase and ``moms[1] -> moms[2]`` over the
    second, also along half cosines.

    Args:
        lr_max: Peak learning rate (float or one per parameter group), > 0.
        div: Initial lr is ``lr_max / div``; > 0.
        div_final: Final lr is ``lr_max / div_final``; > 0.
        pct_start: Fraction of training spent warming up, in ``(0, 1)``.
        moms: Three momentum values (start, middle, end), each in ``[0, 1)``; ``None`` leaves
            momentum alone (no ``'mom'`` key).

    Returns:
        ``{'lr': schedule, 'mom': schedule}`` (``'mom'`` only when ``moms`` is not None).

    Raises:
        ValueError: On an out-of-range argument.
    """
    lr = _to_value(lr_max, "lr_max")
    _check_positive(lr, "lr_max")
    div = _check_number(div, "div")
    if div <= 0:
        raise ValueError(f"div must be > 0, got {div!r}")
    div_final = _check_number(div_final, "div_final")
    if div_final <= 0:
        raise ValueError(f"div_final must be > 0, got {div_final!r}")
    pct = _check_open_unit(pct_start, "pct_start")
    pcts = [pct, 1.0 - pct]
    scheds: dict[str, Schedule] = {
        "lr": SchedCombined(pcts, [SchedCos(lr / div, lr), SchedCos(lr, lr / div_final)])
    }
    if moms is not None:
        m = _check_moms(moms)
        scheds["mom"] = SchedCombined(pcts, [SchedCos(m[0], m[1]), SchedCos(m[1], m[2])])
    return scheds


def _check_moms(moms: Sequence[float]) -> list[float]:
    try:
        m = list(moms)
    except TypeError as e:
        raise TypeError(
            f"moms must be a sequence of 3 momentums (start, middle, end) or None, got {moms!r}"
        ) from e
    if len(m) != 3:
        raise ValueError(
            f"moms must hold 3 momentums (start, middle, end), got {len(m)}: {moms!r}"
        )
    out = [_check_number(v, f"moms[{i}]") for i, v in enumerate(m)]
    for i, v in enumerate(out):
        if not 0.0 <= v < 1.0:  # a momentum of 1 never forgets (and divides by zero in Adam's debiasing)
            raise ValueError(f"moms values must be in [0, 1), got moms[{i}]={v!r}")
    return out


def sgdr(
    lr_max: ValueLike,
    n_cycles: int,
    cycle_len: int = 1,
    cycle_mult: int = 1,
    lr_min: ValueLike = 0.0,
) -> tuple[SchedSGDR, int]:
    """Cosine annealing with warm restarts (SGDR).

    Cycle ``i`` lasts ``cycle_len * cycle_mult ** i`` epochs and anneals from ``lr_max`` to
    ``lr_min`` along a half cosine.

    Args:
        lr_max: Learning rate at the start of each cycle, > 0.
        n_cycles: Number of cycles, >= 1.
        cycle_len: Epochs in the first cycle, integer >= 1.
        cycle_mult: Growth factor of cycle length, integer >= 1.
        lr_min: Learning rate at the end of each cycle, in ``[0, lr_max]``.

    Returns:
        ``(schedule, total_epochs)``: the lr schedule as a function of progress over all of
        training, and the number of epochs to train for (the sum of the cycle lengths).

    Example:
        >>> sched, n_epochs = sgdr(0.1, n_cycles=3, cycle_len=1, cycle_mult=2)
        >>> n_epochs
        7
    """
    s = SchedSGDR(lr_max, n_cycles, cycle_len, cycle_mult, lr_min)
    return s, s.total_epochs


def flat_cos(
    lr: ValueLike, pct_start: float = 0.75, div_final: float = 1e5
) -> dict[str, Schedule]:
    """Flat learning rate then half-cosine annealing down to ``lr / div_final``.

    Args:
        lr: Learning rate of the flat part (float or one per parameter group), > 0.
        pct_start: Fraction of training at constant ``lr``, in ``[0, 1)`` (0 means pure cosine).
        div_final: Final lr is ``lr / div_final``; > 0.

    Returns:
        ``{'lr': schedule}``.
    """
    v = _to_value(lr, "lr")
    _check_positive(v, "lr")
    pct = _check_number(pct_start, "pct_start")
    if not 0.0 <= pct < 1.0:
        raise ValueError(f"pct_start must be in [0, 1), got {pct_start!r}")
    div_final = _check_number(div_final, "div_final")
    if div_final <= 0:
        raise ValueError(f"div_final must be > 0, got {div_final!r}")
    return {
        "lr": SchedCombined([pct, 1.0 - pct], [SchedConst(v), SchedCos(v, v / div_final)])
    }


def clr(
    lr_min: ValueLike,
    lr_max: ValueLike,
    step_size: float,
    total_steps: int,
    mode: str = "triangular",
    gamma: float = 1.0,
) -> dict[str, Schedule]:
    """Smith's cyclical learning rates (CLR) as a function of progress.

    The iteration is recovered as ``pos * total_steps``, so ``total_steps`` must be the number of
    training iterations the schedule is used over.

    Args:
        lr_min: Lower bound (float or one per parameter group), >= 0.
        lr_max: Upper bound, >= ``lr_min``.
        step_size: Half a cycle, in iterations, > 0.
        total_steps: Total training iterations, >= 1.
        mode: ``'triangular'`` (constant amplitude), ``'triangular2'`` (amplitude halved each
            cycle) or ``'exp_range'`` (amplitude scaled by ``gamma ** iteration``).
        gamma: Decay for ``'exp_range'``, > 0.

    Returns:
        ``{'lr': schedule}``.

    Raises:
        ValueError: If ``mode`` is not one of :data:`CLR_MODES` or an argument is out of range.
    """
    return {"lr": SchedCLR(lr_min, lr_max, step_size, total_steps, mode, gamma)}
