"""`Learner.summary()`: a table of layers with output shapes, parameter counts and layer groups."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["model_summary"]


def _shape(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return "x".join(str(s) for s in out.shape)
    if isinstance(out, (tuple, list)) and out:
        return _shape(out[0]) + ("..." if len(out) > 1 else "")
    return "-"


def model_summary(learn: "Learner") -> str:
    """The text of `Learner.summary()`, from one forward pass (eval mode, no gradients) on the first
    training batch; the model's train/eval mode is restored."""
    model = learn.model
    groups = learn.layer_groups()
    group_of = {id(p): i for i, g in enumerate(groups) for p in g}
    leaves = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    shapes: dict[int, str] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out: shapes.__setitem__(id(mod), _shape(out)))
             for _, m in leaves]
    xb = learn.dls.one_batch()[: learn.dls.n_inp]
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*xb)
    finally:
        for h in hooks:
            h.remove()
        model.train(training)
    rows = [("Layer (type)", "Output shape", "Param #", "Trainable", "Group")]
    total = trainable = 0
    for name, m in leaves:
        ps = list(m.parameters(recurse=False))
        n = sum(p.numel() for p in ps)
        n_tr = sum(p.numel() for p in ps if p.requires_grad)
        total, trainable = total + n, trainable + n_tr
        train_s = "-" if not ps else ("True" if n_tr == n else ("False" if n_tr == 0 else "partly"))
        grp = ",".join(sorted({str(group_of[id(p)]) for p in ps})) if ps else "-"
        rows.append((f"{name} ({type(m).__name__})", shapes.get(id(m), "-"), f"{n:,}", train_s, grp))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    line = "-" * (sum(widths) + 8)
    out = [f"{type(model).__name__} (input batch of {len(xb[0])})", line]
    for i, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if i == 0:
            out.append(line)
    out += [line, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Frozen params: {total - trainable:,}", f"Layer groups: {len(groups)}",
            f"Optimizer: {type(learn.opt).__name__ if learn.opt is not None else learn.opt_func.__name__ if hasattr(learn.opt_func, '__name__') else learn.opt_func}",
            f"Loss: {type(learn.loss_func).__name__ if isinstance(learn.loss_func, nn.Module) else getattr(learn.loss_func, '__name__', learn.loss_func)}"]
    return "\n".join(out)
