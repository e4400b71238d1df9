"""Optimizers with fastai-style hyper-parameter names, plus helpers to read/write them.

Every deepfit optimizer is a plain ``torch.optim.Optimizer`` subclass, so ``state_dict``,
``load_state_dict``, ``zero_grad`` and ``torch.amp.GradScaler`` work unchanged. Hyper-parameters
live in each param group under the same names for every optimizer:

    lr       learning rate
    mom      momentum (SGD/RMSProp momentum, Adam beta1)
    sqr_mom  decay of the squared-gradient average (Adam beta2, RMSProp alpha)
    eps      added to the denominator (RMSProp, Adam)
    wd       weight decay; ``decouple_wd=True`` is true weight decay (p -= lr*wd*p, the AdamW
             idea, applied before the step), False is classic L2 (grad += wd*p)

so a schedule callback can write ``set_hyper(opt, 'mom', 0.9)`` without knowing which optimizer
it drives. ``set_hyper``/``get_hyper``/``has_hyper`` also understand torch's own optimizers
(``momentum``, ``betas``, ``alpha``, ``weight_decay``).

The updates use ``torch._foreach_*`` ops: one kernel launch per op for all params of a group
instead of a Python loop, and no ``.item()`` calls, so nothing forces a GPU sync. Hyper-parameters
and Adam's step counts are plain Python numbers for the same reason.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Params",
    "OptimizerFactory",
    "SGD",
    "RMSProp",
    "Adam",
    "set_hyper",
    "get_hyper",
    "has_hyper",
]

Params = Union[Iterable[Tensor], Iterable[dict[str, Any]]]
"""What an optimizer accepts: tensors, or param-group dicts ``{'params': [...], 'lr': ...}``."""


class OptimizerFactory(Protocol):
    """The type of ``opt_func``: any callable ``(params_or_groups, lr) -> torch.optim.Optimizer``.

    The Learner calls ``opt_func(param_groups, lr=lr)`` where ``param_groups`` is a list of dicts
    ``{'params': [...]}``, one per layer group, then sets weight decay itself with
    ``set_hyper(opt, 'wd', wd)`` (and later lr/mom through schedules). deepfit's ``SGD``,
    ``RMSProp`` and ``Adam`` satisfy it, as do ``torch.optim.AdamW`` or a ``functools.partial``
    of either with extra keyword arguments.

    Example:
        >>> import functools
        >>> opt_func: OptimizerFactory = functools.partial(Adam, sqr_mom=0.999)
        >>> opt = opt_func([{'params': [torch.zeros(2, requires_grad=True)]}], lr=1e-3)
    """

    def __call__(self, params: Params, /, lr: float) -> torch.optim.Optimizer: ...


# ----------------------------------------------------------------------------------------------
# shared plumbing


def _check_group(group: dict[str, Any]) -> None:
    """Validate the hyper-parameters of one param group (called for every group, incl. defaults)."""
    for name in ("lr", "mom", "sqr_mom", "eps", "wd"):
        if name not in group:
            continue
        value = group[name]
        # momentum-like terms must stay below 1 or the averages (and Adam's debiasing) blow up
        is_decay = name in ("mom", "sqr_mom")
        ok = value >= 0 and (not is_decay or value < 1)  # also rejects NaN
        if not ok:
            allowed = "in [0, 1)" if is_decay else ">= 0"
            raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if group.get("nesterov") and group["mom"] == 0:
        raise ValueError("nesterov=True needs mom > 0, got mom=0")


class _DeepfitOptimizer(torch.optim.Optimizer):
    """Base class: closure handling, grad gathering and weight decay; subclasses do ``_update``."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)  # fills in the defaults
        _check_group(self.param_groups[-1])

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step for every param group.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss; it runs
                with gradients enabled, before the update.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            # params without a grad (frozen, or unused this step) are skipped entirely: no
            # weight decay and no state update, exactly like torch.optim
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse for g in grads):
                raise TypeError(f"{type(self).__name__} does not support sparse gradients")
            grads = self._weight_decay(group, params, grads)
            self._update(group, params, grads)
        return loss

    @staticmethod
    def _weight_decay(group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        wd = group["wd"]
        if wd == 0:
            return grads
        if group["decouple_wd"]:
            # true weight decay: shrink the weights directly, independent of the gradient
            # statistics (for Adam this is what makes it AdamW)
            torch._foreach_mul_(params, 1 - group["lr"] * wd)
            return grads
        # L2: out-of-place so p.grad is left untouched for callbacks / grad accumulation
        return list(torch._foreach_add(grads, params, alpha=wd))

    def _buffers(self, params: list[Tensor], key: str) -> list[Tensor]:
        """The state tensor ``key`` of each param, created as zeros on first use."""
        bufs = []
        for p in params:
            state = self.state[p]
            if key not in state:
                state[key] = torch.zeros_like(p, memory_format=torch.preserve_format)
            bufs.append(state[key])
        return bufs

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------
# the optimizers


class SGD(_DeepfitOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum.

    ``grad_avg = mom * grad_avg + grad``; ``p -= lr * grad_avg`` (or, with Nesterov,
    ``p -= lr * (grad + mom * grad_avg)``). This is torch.optim.SGD with ``dampening=0``; the
    only difference in defaults is ``decouple_wd=True`` (torch's ``weight_decay`` is L2). When
    ``mom`` is 0 no momentum buffer is kept.

    Args:
        params: tensors or param-group dicts.
        lr: learning rate (required).
        mom: momentum, in [0, 1). Default 0.0.
        wd: weight decay. Default 0.0.
        decouple_wd: True for true weight decay, False for L2 added to the gradient. Default True.
        nesterov: use Nesterov momentum (needs ``mom > 0``). Default False.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = SGD(model.parameters(), lr=0.1, mom=0.9, wd=1e-4)
        >>> model(torch.randn(4, 3)).sum().backward()
        >>> opt.step(); opt.zero_grad()
    """

    def __init__(
        self,
        params: Params,
        lr: float,
        mom: float = 0.0,
        wd: float = 0.0,
        decouple_wd: bool = True,
        nesterov: bool = False,
    ) -> None:
        defaults = dict(lr=lr, mom=mom, wd=wd, decouple_wd=decouple_wd, nesterov=nesterov)
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        lr, mom = group["lr"], group["mom"]
        if mom == 0:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        # buffer starts at zero, so the first step gives grad_avg = grad, same as torch's clone
        grad_avg = self._buffers(params, "grad_avg")
        torch._foreach_mul_(grad_avg, mom)
        torch._foreach_add_(grad_avg, grads)
        update = torch._foreach_add(grads, grad_avg, alpha=mom) if group["nesterov"] else grad_avg
        torch._foreach_add_(params, update, alpha=-lr)


class RMSProp(_DeepfitOptimizer):
    """RMSProp: divide the gradient by a running root-mean-square of recent gradients.

    ``sqr_avg = sqr_mom * sqr_avg + (1 - sqr_mom) * grad**2``; ``step = grad / (sqrt(sqr_avg) + eps)``
    (eps *outside* the square root, as in torch.optim.RMSprop); with momentum
    ``grad_avg = mom * grad_avg + step`` and ``p -= lr * grad_avg``, else ``p -= lr * step``.
    This matches torch.optim.RMSprop (non-centered) with ``alpha=sqr_mom``; defaults are the same
    as torch's (alpha 0.99, eps 1e-8, momentum 0) except ``decouple_wd=True``. No bias
    correction, so the first steps are large (``sqr_avg`` starts at zero), again like torch.

    Args:
        params: tensors or param-group dicts.
        lr: learning rate (required).
        sqr_mom: decay of the squared-gradient average, in [0, 1). Default 0.99.
        mom: momentum, in [0, 1). Default 0.0.
        eps: added to the root-mean-square. Default 1e-8.
        wd: weight decay. Default 0.0.
        decouple_wd: True for true weight decay, False for L2 added to the gradient. Default True.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = RMSProp(model.parameters(), lr=1e-3, mom=0.9)
        >>> model(torch.randn(4, 3)).sum().backward()
        >>> opt.step(); opt.zero_grad()
    """

    def __init__(
        self,
        params: Params,
        lr: float,
        sqr_mom: float = 0.99,
        mom: float = 0.0,
        eps: float = 1e-8,
        wd: float = 0.0,
        decouple_wd: bool = True,
    ) -> None:
        defaults = dict(lr=lr, sqr_mom=sqr_mom, mom=mom, eps=eps, wd=wd, decouple_wd=decouple_wd)
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        lr, mom, sqr_mom = group["lr"], group["mom"], group["sqr_mom"]
        sqr_avg = self._buffers(params, "sqr_avg")
        torch._foreach_mul_(sqr_avg, sqr_mom)
        torch._foreach_addcmul_(sqr_avg, grads, grads, value=1 - sqr_mom)
        denom = torch._foreach_sqrt(sqr_avg)
        torch._foreach_add_(denom, group["eps"])
        if mom == 0:
            torch._foreach_addcdiv_(params, grads, denom, value=-lr)
            return
        grad_avg = self._buffers(params, "grad_avg")
        torch._foreach_mul_(grad_avg, mom)
        torch._foreach_addcdiv_(grad_avg, grads, denom)
        torch._foreach_add_(params, grad_avg, alpha=-lr)


class Adam(_DeepfitOptimizer):
    """Adam with bias correction; ``decouple_wd=True`` (the default) makes it AdamW.

    ``grad_avg = mom * grad_avg + (1 - mom) * grad``,
    ``sqr_avg = sqr_mom * sqr_avg + (1 - sqr_mom) * grad**2``,
    ``p -= lr / (1 - mom**t) * grad_avg / (sqrt(sqr_avg / (1 - sqr_mom**t)) + eps)``
    where ``t`` is the per-param step count kept in ``state['step']`` (a Python int, so a
    ``state_dict`` round trip resumes the bias correction exactly). Same formula, eps placement
    included, as torch.optim.Adam/AdamW.

    Defaults follow fastai rather than torch: ``sqr_mom=0.99`` (torch beta2 is 0.999) adapts the
    second moment faster, which suits the high learning rates of one-cycle training;
    ``eps=1e-5`` (torch 1e-8) keeps steps bounded for params with tiny gradients. ``wd=0.0``
    because the Learner sets weight decay itself via ``set_hyper``.

    Args:
        params: tensors or param-group dicts.
        lr: learning rate (required).
        mom: decay of the gradient average (beta1), in [0, 1). Default 0.9.
        sqr_mom: decay of the squared-gradient average (beta2), in [0, 1). Default 0.99.
        eps: added to the denominator. Default 1e-5.
        wd: weight decay. Default 0.0.
        decouple_wd: True for true weight decay (AdamW), False for L2 (Adam). Default True.

    Example:
        >>> model = torch.nn.Linear(3, 1)
        >>> opt = Adam(model.parameters(), lr=1e-3, wd=0.01)
        >>> model(torch.randn(4, 3)).sum().backward()
        >>> opt.step(); opt.zero_grad()
    """

    def __init__(
        self,
        params: Params,
        lr: float,
        mom: float = 0.9,
        sqr_mom: float = 0.99,
        eps: float = 1e-5,
        wd: float = 0.0,
        decouple_wd: bool = True,
    ) -> None:
        defaults = dict(lr=lr, mom=mom, sqr_mom=sqr_mom, eps=eps, wd=wd, decouple_wd=decouple_wd)
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        lr, mom, sqr_mom = group["lr"], group["mom"], group["sqr_mom"]
        grad_avg = self._buffers(params, "grad_avg")
        sqr_avg = self._buffers(params, "sqr_avg")
        # per-param step counts (a param may have skipped steps while its grad was None);
        # bias corrections are computed in Python from ints, so no device sync
        steps = []
        for p in params:
            state = self.state[p]
            state["step"] = state.get("step", 0) + 1
            steps.append(state["step"])
        torch._foreach_mul_(grad_avg, mom)
        torch._foreach_add_(grad_avg, grads, alpha=1 - mom)
        torch._foreach_mul_(sqr_avg, sqr_mom)
        torch._foreach_addcmul_(sqr_avg, grads, grads, value=1 - sqr_mom)
        # denom = sqrt(sqr_avg / debias2) + eps, step size = -lr / debias1
        denom = torch._foreach_sqrt(sqr_avg)
        torch._foreach_div_(denom, [(1 - sqr_mom**t) ** 0.5 for t in steps])
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_addcdiv_(params, grad_avg, denom, [-lr / (1 - mom**t) for t in steps])


# ----------------------------------------------------------------------------------------------
# hyper-parameter access that works for deepfit and torch optimizers

# deepfit name -> candidate (key, index into a tuple or None) in a torch param group, in order
_TORCH_NAMES: dict[str, tuple[tuple[str, int | None], ...]] = {
    "mom": (("momentum", None), ("betas", 0)),
    "sqr_mom": (("betas", 1), ("alpha", None)),
    "wd": (("weight_decay", None),),
}


def _resolve(group: dict[str, Any], name: str) -> tuple[str, int | None] | None:
    if name in group:
        return name, None
    for key, index in _TORCH_NAMES.get(name, ()):
        if key in group:
            return key, index
    return None


def _resolve_or_raise(opt: torch.optim.Optimizer, group: dict[str, Any], name: str) -> tuple[str, int | None]:
    found = _resolve(group, name)
    if found is None:
        known = sorted(k for k in group if k != "params")
        raise KeyError(
            f"{type(opt).__name__} has no hyper-parameter {name!r} (param group keys: {known}; "
            f"mapped names: lr, mom, sqr_mom, eps, wd)"
        )
    return found


def _per_group(name: str, values: float | Sequence[float] | np.ndarray, n_groups: int) -> list[float]:
    """One float per param group from a scalar or a sequence of exactly ``n_groups`` values."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"set_hyper({name!r}): values must be a number or a sequence of numbers, got {values!r}")
    if isinstance(values, numbers.Real) or (isinstance(values, (np.ndarray, Tensor)) and values.ndim == 0):
        return [float(values)] * n_groups
    if isinstance(values, (np.ndarray, Tensor)) and values.ndim != 1:
        raise ValueError(f"set_hyper({name!r}): values must be 1-d, got shape {tuple(values.shape)}")
    try:
        out = [float(v) for v in values]  # type: ignore[union-attr]
    except TypeError:
        raise TypeError(
            f"set_hyper({name!r}): values must be a number or a sequence of numbers, got {type(values).__name__}"
        ) from None
    if len(out) != n_groups:
        raise ValueError(
            f"set_hyper({name!r}): got {len(out)} values but the optimizer has {n_groups} param groups; "
            f"pass a single number or exactly one value per param group"
        )
    return out


def set_hyper(opt: torch.optim.Optimizer, name: str, values: float | Sequence[float] | np.ndarray) -> None:
    """Write hyper-parameter ``name`` into every param group of ``opt``.

    On torch's own optimizers the deepfit names are mapped: ``mom`` -> ``momentum`` (SGD, RMSprop)
    or ``betas[0]`` (Adam, AdamW), ``sqr_mom`` -> ``betas[1]`` or ``alpha`` (RMSprop), ``wd`` ->
    ``weight_decay``; ``lr``/``eps`` (and any other key present in the groups) are used as is.

    Args:
        opt: any ``torch.optim.Optimizer``.
        name: hyper-parameter name, e.g. ``'lr'``, ``'mom'``, ``'sqr_mom'``, ``'eps'``, ``'wd'``.
        values: one number for all groups, or a sequence / 1-d array with one value per group.

    Raises:
        ValueError: if the number of values differs from the number of param groups.
        KeyError: if the optimizer has no such hyper-parameter.

    Example:
        >>> opt = torch.optim.AdamW([torch.zeros(2, requires_grad=True)], lr=1e-3)
        >>> set_hyper(opt, 'mom', 0.85)
        >>> opt.param_groups[0]['betas'][0]
        0.85
    """
    per_group = _per_group(name, values, len(opt.param_groups))
    for group, value in zip(opt.param_groups, per_group):
        key, index = _resolve_or_raise(opt, group, name)
        if index is None:
            group[key] = value
        else:  # betas is a tuple: rebuild it, keeping the other element
            items = list(group[key])
            items[index] = value
            group[key] = tuple(items)


def get_hyper(opt: torch.optim.Optimizer, name: str) -> list[float]:
    """Read hyper-parameter ``name`` from every param group (same name mapping as ``set_hyper``).

    Args:
        opt: any ``torch.optim.Optimizer``.
        name: hyper-parameter name, e.g. ``'lr'`` or ``'mom'``.

    Returns:
        One float per param group.

    Raises:
        KeyError: if the optimizer has no such hyper-parameter.

    Example:
        >>> opt = SGD([torch.zeros(2, requires_grad=True)], lr=0.1, mom=0.9)
        >>> get_hyper(opt, 'mom')
        [0.9]
    """
    out = []
    for group in opt.param_groups:
        key, index = _resolve_or_raise(opt, group, name)
        value = group[key] if index is None else group[key][index]
        out.append(float(value))
    return out


def has_hyper(opt: torch.optim.Optimizer, name: str) -> bool:
    """Whether every param group of ``opt`` has hyper-parameter ``name`` (after name mapping).

    Args:
        opt: any ``torch.optim.Optimizer``.
        name: hyper-parameter name, e.g. ``'sqr_mom'``.

    Example:
        >>> has_hyper(torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1), 'sqr_mom')
        False
    """
    return bool(opt.param_groups) and all(_resolve(g, name) is not None for g in opt.param_groups)
