"""Annealing schedules: pure functions of training progress.

A *schedule* is a callable ``f(pos) -> float | np.ndarray`` where ``pos`` in ``[0, 1]`` is the
fraction of training done. A fit of ``N`` optimizer steps (counted from 0) evaluates it at
``pos = i / (N - 1)``, so the first step gets the value at 0 and the last the value at 1, except for
schedules whose ``endpoint`` attribute is False (SGDR and CLR, defined per iteration with restarts
on epoch or iteration boundaries, as torch's schedulers): those get ``pos = i / N``.
``start``/``end`` values may be floats or 1-D arrays holding one value per parameter group; the
result then is an array of the same length (values broadcast as in numpy).

Primitive schedules (small classes with a readable ``repr`` and a ``to_dict`` config that
:func:`schedule_from_dict` turns back into an equal schedule):

* :func:`sched_const`, :func:`sched_lin`, :func:`sched_cos`, :func:`sched_exp`, :func:`sched_poly`
* :func:`combine_scheds` glues schedules piecewise over consecutive fractions of training.

Builders used by the ``Learner`` fit methods:

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

import bisect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

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

ScheduleValue = Union[float, np.ndarray]
"""What a schedule returns: a float, or an array with one value per parameter group."""

ScheduleFunc = Callable[[float], ScheduleValue]
"""Any callable usable as a schedule (``Schedule`` instances are the saveable kind)."""

ValueLike = Union[float, int, Sequence[float], np.ndarray]

CLR_MODES: tuple[str, ...] = ("triangular", "triangular2", "exp_range")
"""Modes accepted by :func:`clr`."""

# Positions closer than this to a segment boundary are treated as lying on it, so that
# ``i / n`` lands in the right segment despite float rounding in the boundaries.
_BOUNDARY_EPS = 1e-10


# ----------------------------------------------------------------------------------------------
# Argument helpers
# ----------------------------------------------------------------------------------------------
def _to_value(x: Any, name: str) -> ScheduleValue:
    """Converts a float-or-array argument into a float or a 1-D float64 array."""
    if isinstance(x, bool):
        raise TypeError(f"{name} must be a number or a 1-D array of numbers, got bool {x!r}")
    if isinstance(x, numbers.Real):
        v: ScheduleValue = float(x)
    else:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"{name} must be a number or a 1-D array of numbers, got {type(x).__name__} {x!r}"
            ) from e
        if arr.ndim == 0:
            v = float(arr)
        elif arr.ndim == 1 and arr.size > 0:
            v = arr.copy()
        else:
            raise ValueError(
                f"{name} must be a number or a non-empty 1-D array (one value per parameter "
                f"group), got an array of shape {arr.shape}"
            )
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {_fmt(v)}")
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return repr(v.tolist())
    return repr(v)


def _jsonable(v: ScheduleValue) -> float | list[float]:
    return v.tolist() if isinstance(v, np.ndarray) else float(v)


def _out(v: Any) -> ScheduleValue:
    """Returns a python float for scalars and a float64 array otherwise."""
    if isinstance(v, np.ndarray):
        return float(v) if v.ndim == 0 else v
    return float(v)


def _check_positive(v: ScheduleValue, name: str) -> None:
    if not np.all(np.asarray(v) > 0):
        raise ValueError(f"{name} must be > 0, got {_fmt(v)}")


def _check_number(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__} {x!r}")
    xf = float(x)
    if not math.isfinite(xf):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return xf


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


# ----------------------------------------------------------------------------------------------
# Schedule classes
# ----------------------------------------------------------------------------------------------
class Schedule:
    """Base class of saveable schedules.

    Subclasses implement :meth:`__call__` and :meth:`params`; ``repr`` and :meth:`to_dict` are
    derived from :meth:`params`.

    Attributes:
        endpoint: how a fit of ``N`` steps samples the schedule (as ``np.linspace``'s argument):
            True (the default, also for plain callables) at ``pos = i / (N - 1)``, so the last step
            gets exactly the end value; False at ``pos = i / N`` (periodic schedules counted in
            iterations, whose cycles must start on step boundaries).
    """

    endpoint: bool = True

    def __call__(self, pos: float) -> ScheduleValue:
        """Evaluates the schedule.

        Args:
            pos: Training progress in ``[0, 1]``.

        Returns:
            The value at ``pos``: a float, or an array with one value per parameter group.
        """
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The constructor arguments of this schedule (used by ``repr`` and ``to_dict``)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly config: ``{'type': <class name>, <constructor args>...}``.

        Arrays become lists and nested schedules become nested dicts. Rebuild with
        :func:`schedule_from_dict`.
        """
        d: dict[str, Any] = {"type": type(self).__name__}
        for k, v in self.params().items():
            if isinstance(v, Schedule):
                d[k] = v.to_dict()
            elif isinstance(v, (list, tuple)) and any(isinstance(s, Schedule) for s in v):
                d[k] = [s.to_dict() for s in v]
            elif isinstance(v, np.ndarray):
                d[k] = v.tolist()
            elif isinstance(v, tuple):
                d[k] = list(v)
            else:
                d[k] = v
        return d

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Schedule)
        try:
            return self.to_dict() == other.to_dict()
        except TypeError:  # holds plain callables, which have no config
            return self is other

    def __hash__(self) -> int:
        return hash(repr(self))


class SchedConst(Schedule):
    """Constant schedule: returns ``value`` for every ``pos``.

    Args:
        value: The constant (float or one value per parameter group).
    """

    def __init__(self, value: ValueLike) -> None:
        self.value = _to_value(value, "value")

    def __call__(self, pos: float) -> ScheduleValue:
        return _out(np.copy(self.value)) if isinstance(self.value, np.ndarray) else self.value

    def params(self) -> dict[str, Any]:
        return {"value": _jsonable(self.value)}


class _StartEnd(Schedule):
    """Schedules going from ``start`` (pos=0) to ``end`` (pos=1) with a weight ``w(pos)``."""

    def __init__(self, start: ValueLike, end: ValueLike) -> None:
        self.start = _to_value(start, "start")
        self.end = _to_value(end, "end")
        try:
            np.broadcast(np.asarray(self.start), np.asarray(self.end))
        except ValueError as e:
            raise ValueError(
                f"start and end must broadcast together, got start={_fmt(self.start)} and "
                f"end={_fmt(self.end)}"
            ) from e

    def _weight(self, pos: float) -> float:
        raise NotImplementedError

    def __call__(self, pos: float) -> ScheduleValue:
        w = self._weight(float(pos))
        # start*(1-w) + end*w is exact at both ends (w=0 and w=1).
        return _out(self.start * (1.0 - w) + self.end * w)

    def params(self) -> dict[str, Any]:
        return {"start": _jsonable(self.start), "end": _jsonable(self.end)}


class SchedLin(_StartEnd):
    """Linear schedule: ``start + (end - start) * pos``.

    Args:
        start: Value at ``pos = 0``.
        end: Value at ``pos = 1``.
    """

    def _weight(self, pos: float) -> float:
        return pos


class SchedCos(_StartEnd):
    """Half-cosine schedule: ``start + (end - start) * (1 - cos(pi * pos)) / 2``.

    Flat at both ends, steepest in the middle.

    Args:
        start: Value at ``pos = 0``.
        end: Value at ``pos = 1``.
    """

    def _weight(self, pos: float) -> float:
        return (1.0 - math.cos(math.pi * pos)) / 2.0


class SchedExp(_StartEnd):
    """Geometric (exponential) schedule: ``start * (end / start) ** pos``.

    Args:
        start: Value at ``pos = 0``; must be > 0.
        end: Value at ``pos = 1``; must be > 0.

    Raises:
        ValueError: If ``start`` or ``end`` has a value <= 0.
    """

    def __init__(self, start: ValueLike, end: ValueLike) -> None:
        super().__init__(start, end)
        _check_positive(self.start, "start")
        _check_positive(self.end, "end")

    def __call__(self, pos: float) -> ScheduleValue:
        p = float(pos)
        # start**(1-p) * end**p is exact at both ends.
        return _out(np.power(self.start, 1.0 - p) * np.power(self.end, p))


class SchedPoly(_StartEnd):
    """Polynomial schedule: ``start + (end - start) * pos ** power``.

    ``power = 1`` is linear; ``power > 1`` stays near ``start`` longer, ``power < 1`` moves away
    from it faster.

    Args:
        start: Value at ``pos = 0``.
        end: Value at ``pos = 1``.
        power: Exponent, must be > 0.
    """

    def __init__(self, start: ValueLike, end: ValueLike, power: float) -> None:
        super().__init__(start, end)
        self.power = _check_number(power, "power")
        if self.power <= 0:
            raise ValueError(f"power must be > 0, got {power!r}")

    def _weight(self, pos: float) -> float:
        return max(pos, 0.0) ** self.power

    def params(self) -> dict[str, Any]:
        return {**super().params(), "power": self.power}


class SchedCombined(Schedule):
    """Piecewise schedule: ``scheds[i]`` runs over the ``pcts[i]`` fraction of training.

    Each sub-schedule receives its *local* position in ``[0, 1]``. A position exactly on a
    boundary belongs to the later segment (local position 0). Positions outside ``[0, 1]`` are
    clamped. Segments with a zero fraction are skipped.

    Args:
        pcts: Non-negative fractions of training, summing to 1 (within 1e-6).
        scheds: One schedule (any callable ``pos -> value``) per fraction.

    Raises:
        ValueError: If the lengths differ, a fraction is negative, or they do not sum to 1.
        TypeError: If a schedule is not callable.
    """

    def __init__(self, pcts: Sequence[float], scheds: Sequence[ScheduleFunc]) -> None:
        pcts_l = [_check_number(p, f"pcts[{i}]") for i, p in enumerate(pcts)]
        scheds_l = list(scheds)
        if len(pcts_l) == 0:
            raise ValueError("pcts must contain at least one fraction, got an empty sequence")
        if len(pcts_l) != len(scheds_l):
            raise ValueError(
                f"pcts and scheds must have the same length, got {len(pcts_l)} fractions and "
                f"{len(scheds_l)} schedules"
            )
        for i, p in enumerate(pcts_l):
            if p < 0:
                raise ValueError(f"pcts must all be >= 0, got pcts[{i}]={p!r}")
        total = sum(pcts_l)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"pcts must sum to 1, got {pcts_l} (sum {total!r})")
        for i, s in enumerate(scheds_l):
            if not callable(s):
                raise TypeError(f"scheds[{i}] must be callable pos -> value, got {s!r}")
        self.pcts = [p / total for p in pcts_l]
        self.scheds = scheds_l
        # Active (non-empty) segments: start fraction, width and schedule.
        self._starts: list[float] = []
        self._widths: list[float] = []
        self._active: list[ScheduleFunc] = []
        acc = 0.0
        for p, s in zip(self.pcts, self.scheds):
            if p > 0:
                self._starts.append(acc)
                self._widths.append(p)
                self._active.append(s)
            acc += p
        if not self._active:
            raise ValueError(f"pcts must contain a fraction > 0, got {pcts_l}")
        # The last segment ends at exactly 1.
        self._widths[-1] = 1.0 - self._starts[-1]

    def __call__(self, pos: float) -> ScheduleValue:
        p = min(max(float(pos), 0.0), 1.0)
        i = bisect.bisect_right(self._starts, p + _BOUNDARY_EPS) - 1
        i = min(max(i, 0), len(self._active) - 1)
        local = (p - self._starts[i]) / self._widths[i]
        return self._active[i](min(max(local, 0.0), 1.0))

    def params(self) -> dict[str, Any]:
        return {"pcts": list(self.pcts), "scheds": list(self.scheds)}

    def to_dict(self) -> dict[str, Any]:
        for i, s in enumerate(self.scheds):
            if not isinstance(s, Schedule):
                raise TypeError(
                    f"to_dict needs Schedule instances, but scheds[{i}] is {type(s).__name__} "
                    f"{s!r}"
                )
        return super().to_dict()


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
        if not np.all(np.asarray(self.lr_min) >= 0):
            raise ValueError(f"lr_min must be >= 0, got {_fmt(self.lr_min)}")
        try:
            ok = bool(np.all(np.asarray(self.lr_min) <= np.asarray(self.lr_max)))
        except ValueError as e:
            raise ValueError(
                f"lr_min and lr_max must broadcast together, got lr_min={_fmt(self.lr_min)} and "
                f"lr_max={_fmt(self.lr_max)}"
            ) from e
        if not ok:
            raise ValueError(
                f"lr_min must be <= lr_max, got lr_min={_fmt(self.lr_min)} and "
                f"lr_max={_fmt(self.lr_max)}"
            )
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
        if not np.all(np.asarray(self.lr_min) >= 0):
            raise ValueError(f"lr_min must be >= 0, got {_fmt(self.lr_min)}")
        try:
            ok = bool(np.all(np.asarray(self.lr_min) <= np.asarray(self.lr_max)))
        except ValueError as e:
            raise ValueError(
                f"lr_min and lr_max must broadcast together, got lr_min={_fmt(self.lr_min)} and "
                f"lr_max={_fmt(self.lr_max)}"
            ) from e
        if not ok:
            raise ValueError(
                f"lr_max must be >= lr_min, got lr_min={_fmt(self.lr_min)} and "
                f"lr_max={_fmt(self.lr_max)}"
            )
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
# Lowercase factories
# ----------------------------------------------------------------------------------------------
def sched_const(v: ValueLike) -> SchedConst:
    """Constant schedule returning ``v`` (float or one value per parameter group)."""
    return SchedConst(v)


def sched_lin(start: ValueLike, end: ValueLike) -> SchedLin:
    """Linear schedule from ``start`` (pos=0) to ``end`` (pos=1)."""
    return SchedLin(start, end)


def sched_cos(start: ValueLike, end: ValueLike) -> SchedCos:
    """Half-cosine schedule from ``start`` (pos=0) to ``end`` (pos=1)."""
    return SchedCos(start, end)


def sched_exp(start: ValueLike, end: ValueLike) -> SchedExp:
    """Geometric schedule ``start * (end / start) ** pos``; ``start`` and ``end`` must be > 0."""
    return SchedExp(start, end)


def sched_poly(start: ValueLike, end: ValueLike, power: float) -> SchedPoly:
    """Polynomial schedule ``start + (end - start) * pos ** power`` (``power > 0``)."""
    return SchedPoly(start, end, power)


def combine_scheds(pcts: Sequence[float], scheds: Sequence[ScheduleFunc]) -> SchedCombined:
    """Piecewise schedule: ``scheds[i]`` covers the ``pcts[i]`` fraction of training.

    Args:
        pcts: Non-negative fractions summing to 1.
        scheds: One schedule per fraction; each is called with its local position in ``[0, 1]``.

    Returns:
        The combined schedule.

    Example:
        >>> s = combine_scheds([0.3, 0.7], [sched_lin(0.0, 1.0), sched_cos(1.0, 0.0)])
        >>> s(0.15), s(0.3), s(1.0)
        (0.5, 1.0, 0.0)
    """
    return SchedCombined(pcts, scheds)


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
