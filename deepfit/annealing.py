"""Annealing functions: the saveable ``Schedule`` base class and the primitive schedules.

A *schedule* is a callable ``f(pos) -> float | np.ndarray`` where ``pos`` in ``[0, 1]`` is the
fraction of training done (see :mod:`deepfit.schedule` for how a fit samples it, and for the
training policies built from these pieces: one_cycle, sgdr, flat_cos, clr).
``start``/``end`` values may be floats or 1-D arrays holding one value per parameter group; the
result then is an array of the same length (values broadcast as in numpy).

Each primitive is a small class with a readable ``repr`` and a ``to_dict`` config (rebuilt by
:func:`deepfit.schedule.schedule_from_dict`), and a lowercase factory:

* :func:`sched_const`, :func:`sched_lin`, :func:`sched_cos`, :func:`sched_exp`, :func:`sched_poly`
* :func:`combine_scheds` glues schedules piecewise over consecutive fractions of training.

Everything here is re-exported by :mod:`deepfit.schedule`.

Example:
    >>> s = combine_scheds([0.3, 0.7], [sched_lin(0.0, 1.0), sched_cos(1.0, 0.0)])
    >>> s(0.15), s(1.0)
    (0.5, 0.0)
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
    "ValueLike",
    "Schedule",
    "SchedConst",
    "SchedLin",
    "SchedCos",
    "SchedExp",
    "SchedPoly",
    "SchedCombined",
    "sched_const",
    "sched_lin",
    "sched_cos",
    "sched_exp",
    "sched_poly",
    "combine_scheds",
]

ScheduleValue = Union[float, np.ndarray]
"""What a schedule returns: a float, or an array with one value per parameter group."""

ScheduleFunc = Callable[[float], ScheduleValue]
"""Any callable usable as a schedule (``Schedule`` instances are the saveable kind)."""

ValueLike = Union[float, int, Sequence[float], np.ndarray]
"""What schedule constructors accept: a number, or one number per parameter group."""

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
