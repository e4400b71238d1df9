"""Weight averaging during training: `Lookahead` (Zhang et al. 2019, with the growing pull of the
CIFAR-10 speed records, Jordan 2024)."""
from __future__ import annotations

from typing import Any

import torch

from .core import Callback

__all__ = ["Lookahead"]


class Lookahead(Callback):
    """Keep a slow copy of the model's floating-point state (parameters and buffers, e.g. batch-norm
    statistics). Every `k` optimizer steps the slow copy moves towards the trained ("fast") weights,
    `slow = decay * slow + (1 - decay) * fast`, and training continues from it (`fast = slow`). The
    decay grows with training, `decay = alpha * (step / total_steps) ** power`: early on the slow copy
    follows the weights, at the end it averages them over many steps. When the last epoch's training
    ends the model takes the slow weights (before that epoch's validation), so the model that is
    validated, saved and exported is the averaged one.

    Args:
        k: steps between updates.
        alpha: the decay at the end of training (0.95**5: an average over about 100 steps at k=5).
        power: how the decay grows with the fraction of training done (0: constant `alpha`, classic
            Lookahead with slow step 1 - alpha).

    Example:
        >>> learn.fit_one_cycle(10, 1e-2, cbs=Lookahead())
    """

    order = 20  # after the optimizer step of every other callback

    def __init__(self, k: int = 5, alpha: float = 0.95 ** 5, power: float = 3.0) -> None:
        if int(k) != k or k < 1:
            raise ValueError(f"`k` (steps between updates) must be a positive integer; received k={k!r}.")
        if not 0 <= alpha <= 1:
            raise ValueError(f"`alpha` must be in [0, 1]; received alpha={alpha!r}.")
        if power < 0:
            raise ValueError(f"`power` must be >= 0; received power={power!r}.")
        self.k, self.alpha, self.power = int(k), float(alpha), float(power)
        self.slow: list[torch.Tensor] = []

    def _state(self) -> list[torch.Tensor]:
        return [t for t in self.learner.model.state_dict(keep_vars=True).values()
                if isinstance(t, torch.Tensor) and t.dtype.is_floating_point]

    def before_fit(self) -> None:
        learn = self.learner
        self.total = learn.n_epoch * len(learn.dls.train)
        with torch.no_grad():
            self.slow = [t.detach().clone() for t in self._state()]

    def decay(self, step: int) -> float:
        """The decay used at optimizer step `step` (counted from 1) of this fit."""
        return self.alpha * (step / max(self.total, 1)) ** self.power

    def after_step(self) -> None:
        step = self.learner.train_iter + 1  # train_iter counts the steps done before this one
        if step % self.k:
            return
        d = self.decay(step)
        with torch.no_grad():
            for s, t in zip(self.slow, self._state()):
                s.lerp_(t.detach(), 1 - d)
                t.copy_(s)

    def after_train(self) -> None:
        learn = self.learner
        if learn.epoch == learn.n_epoch - 1:
            with torch.no_grad():
                for s, t in zip(self.slow, self._state()):
                    t.copy_(s)

    def state_dict(self) -> dict[str, Any]:
        return {"slow": [s.detach().cpu() for s in self.slow]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the slow weights (a resumed fit calls this after `before_fit`)."""
        with torch.no_grad():
            for s, v in zip(self.slow, state.get("slow") or []):
                s.copy_(v)

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha:.4g}, power={self.power:g})"
