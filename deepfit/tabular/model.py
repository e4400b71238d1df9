"""Entity embeddings for tabular data (Guo & Berkhahn 2016; the Rossmann approach).

Each categorical column gets its own embedding; their outputs (after embedding dropout) are
concatenated with the batch-normalised continuous columns and fed to a stack of
Linear -> ReLU -> BatchNorm -> Dropout blocks, then a final Linear (optionally squashed into
`y_range` with a scaled sigmoid).

Speed: when gradients are recorded on the CPU, the lookups of all columns run as one autograd
node (`_ConcatEmbedding`) whose backward accumulates each column's gradient with `index_add_`;
torch's generic embedding backward costs about 4x more per column on one core, which was the
largest cost after the matrix products at batch size 1024. Values and gradients are the same
as with the `nn.Embedding` modules (which hold the weights and are used as such elsewhere).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..export import register_model
from ..layers import sigmoid_range

__all__ = ["TabularModel", "emb_sz_rule", "get_emb_sz", "EMB_RULES"]


class _ConcatEmbedding(torch.autograd.Function):
    """`cat([weights[i][x_cat[:, i]] for i], 1)` as one autograd node; the backward scatters each
    column's slice of the output gradient into a zero table with `index_add_` (sequential on the
    CPU, so deterministic)."""

    @staticmethod
    def forward(ctx: Any, x_cat: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x_cat)
        ctx.shapes = [tuple(w.shape) for w in weights]
        return torch.cat([w.index_select(0, x_cat[:, i]) for i, w in enumerate(weights)], 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x_cat,) = ctx.saved_tensors
        grads: list[torch.Tensor | None] = [None]
        start = 0
        for i, (n, d) in enumerate(ctx.shapes):
            if ctx.needs_input_grad[i + 1]:
                grads.append(grad.new_zeros(n, d).index_add_(0, x_cat[:, i], grad[:, start:start + d]))
            else:
                grads.append(None)
            start += d
        return tuple(grads)

EMB_RULES = ("default", "2018")


def emb_sz_rule(n_cat: int, rule: str = "default") -> int:
    """Embedding width for a column with `n_cat` codes.

    Rules: "default" = `min(600, round(1.6 * n_cat ** 0.56))`; "2018" = `min(50, (n_cat + 1) // 2)`.
    """
    if rule == "default":
        return int(min(600, round(1.6 * n_cat ** 0.56)))
    if rule == "2018":
        return int(min(50, (n_cat + 1) // 2))
    raise ValueError(f"`emb_rule` must be one of {EMB_RULES}; received {rule!r}.")


def get_emb_sz(cat_names: Sequence[str], cardinalities: Sequence[int], rule: str = "default",
               overrides: dict[str, int] | None = None) -> list[tuple[int, int]]:
    """`(n_codes, width)` per categorical column, from `rule` unless `overrides[col]` gives the width."""
    overrides = dict(overrides or {})
    unknown = [k for k in overrides if k not in cat_names]
    if unknown:
        raise ValueError(f"`emb_szs` names {unknown}, which are not categorical columns {list(cat_names)}.")
    out = []
    for name, n in zip(cat_names, cardinalities):
        d = overrides.get(name, emb_sz_rule(n, rule))
        if not isinstance(d, int) or d < 1:
            raise ValueError(f"Embedding width for {name!r} must be a positive integer; received {d!r}.")
        out.append((int(n), int(d)))
    return out


@register_model
class TabularModel(nn.Module):
    """Entity-embedding network for tables; `forward(x_cat, x_cont)`.

    Args:
        emb_szs: `(n_codes, width)` for each categorical column (empty for none).
        n_cont: number of continuous columns (0 for none).
        out_sz: outputs (classes, or regression targets).
        layers: hidden sizes, e.g. [200, 100].
        ps: dropout after each hidden layer: one float for all, or one per layer (default none).
        embed_p: dropout on the concatenated embeddings.
        y_range: `(low, high)`: squash outputs into this range with a scaled sigmoid.
        use_bn: batch-norm after each hidden layer's ReLU.
        bn_final: batch-norm on the final outputs too (before y_range).
        bn_cont: batch-norm on the continuous inputs.

    Example:
        >>> model = TabularModel([(10, 6), (4, 3)], n_cont=5, out_sz=2, layers=[200, 100], ps=[0.001, 0.01])
        >>> model(x_cat, x_cont).shape     # (N, 2)
    """

    def __init__(self, emb_szs: Sequence[Sequence[int]], n_cont: int, out_sz: int,
                 layers: Sequence[int] = (200, 100), ps: float | Sequence[float] | None = None,
                 embed_p: float = 0.0, y_range: Sequence[float] | None = None, use_bn: bool = True,
                 bn_final: bool = False, bn_cont: bool = True) -> None:
        super().__init__()
        self.emb_szs = [(int(n), int(d)) for n, d in emb_szs]
        self.n_cont, self.out_sz, self.layers_sz = int(n_cont), int(out_sz), [int(h) for h in layers]
        if not self.emb_szs and self.n_cont == 0:
            raise ValueError("TabularModel needs at least one categorical or continuous input.")
        if ps is None:
            ps = [0.0] * len(self.layers_sz)
        elif isinstance(ps, (int, float)):
            ps = [float(ps)] * len(self.layers_sz)
        if len(ps) != len(self.layers_sz):
            raise ValueError(f"`ps` needs one dropout per hidden layer ({len(self.layers_sz)}); received {list(ps)}.")
        self.ps = [float(p) for p in ps]
        self.embed_p, self.use_bn, self.bn_final, self.bn_cont_on = float(embed_p), use_bn, bn_final, bn_cont
        self.y_range = None if y_range is None else [float(y_range[0]), float(y_range[1])]
        self.embeds = nn.ModuleList([nn.Embedding(n, d) for n, d in self.emb_szs])
        self.emb_drop = nn.Dropout(self.embed_p)
        self.bn_cont = nn.BatchNorm1d(self.n_cont) if (bn_cont and self.n_cont) else None
        n_emb = sum(d for _, d in self.emb_szs)
        blocks: list[nn.Module] = []
        n_in = n_emb + self.n_cont
        for h, p in zip(self.layers_sz, self.ps):
            block: list[nn.Module] = [nn.Linear(n_in, h), nn.ReLU(inplace=True)]
            if use_bn:
                block.append(nn.BatchNorm1d(h))
            if p:
                block.append(nn.Dropout(p))
            blocks.append(nn.Sequential(*block))
            n_in = h
        head: list[nn.Module] = [nn.Linear(n_in, self.out_sz)]
        if bn_final:
            head.append(nn.BatchNorm1d(self.out_sz))
        blocks.append(nn.Sequential(*head))
        self.layers = nn.Sequential(*blocks)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal linear weights (ReLU gain in hidden layers, linear gain at the output),
        zero biases, and embeddings from a truncated normal with std 0.01."""
        for e in self.embeds:
            nn.init.trunc_normal_(e.weight, std=0.01, a=-0.02, b=0.02)
        lins = [m for m in self.layers.modules() if isinstance(m, nn.Linear)]
        for i, lin in enumerate(lins):
            nn.init.kaiming_normal_(lin.weight, nonlinearity="relu" if i < len(lins) - 1 else "linear")
            nn.init.zeros_(lin.bias)

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor) -> torch.Tensor:
        if self.embeds and x_cat.device.type == "cpu" and torch.is_grad_enabled():
            parts = [_ConcatEmbedding.apply(x_cat, *[e.weight for e in self.embeds])]
        else:  # no gradients (inference, `summary`'s hooks), or an accelerator: the modules themselves
            parts = [e(x_cat[:, i]) for i, e in enumerate(self.embeds)]
        if parts and self.embed_p > 0:  # dropout on the embeddings only: concatenate them first
            parts = [self.emb_drop(torch.cat(parts, 1) if len(parts) > 1 else parts[0])]
        if self.n_cont:
            parts.append(self.bn_cont(x_cont) if self.bn_cont is not None else x_cont)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)  # one concatenation per step when embed_p=0
        x = self.layers(x)
        if self.y_range is not None:
            x = sigmoid_range(x, self.y_range[0], self.y_range[1])
        return x

    def get_config(self) -> dict[str, Any]:
        return {"emb_szs": [list(t) for t in self.emb_szs], "n_cont": self.n_cont, "out_sz": self.out_sz,
                "layers": self.layers_sz, "ps": self.ps, "embed_p": self.embed_p, "y_range": self.y_range,
                "use_bn": self.use_bn, "bn_final": self.bn_final, "bn_cont": self.bn_cont_on}
