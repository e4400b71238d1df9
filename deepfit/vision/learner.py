"""Image classifiers from a model body and a new head: `vision_learner` (alias `cnn_learner`) for
transfer learning, `VisionLearner` with `fine_tune` and test-time augmentation.

The course's recipe: take a network trained on another task, cut off its classifier (`create_body`),
put a new head sized for these classes (`create_head`: concat pooling, then BatchNorm / Dropout /
Linear twice), train the head alone with the body frozen, then everything with discriminative rates
(small for the early layers, larger for the late ones and the head).

Example:
    >>> learn = vision_learner(dls, "resnet34", pretrained="resnet34.pth")
    >>> learn.fine_tune(3, 2e-3)
    >>> preds, targs = learn.tta()
"""
from __future__ import annotations

import copy
import glob
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..callbacks.core import Callback
from ..data.core import DataLoader
from ..learner import Learner
from ..losses import BCEWithLogitsLoss, CrossEntropyLoss
from ..metrics import accuracy
from ..optim import Adam
from ..export import register_model
from .models import ARCHS
from .models._common import init_cnn
from .models.fastnet import Scale

__all__ = ["AdaptiveConcatPool2d", "create_body", "create_head", "ImageClassifier", "VisionLearner",
           "vision_learner", "cnn_learner", "load_pretrained", "accuracy_multi", "hflip", "num_features"]

_HEAD_TYPES = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten, nn.Linear, nn.Dropout, Scale)
#: Where the body of these architectures is split into layer groups 1 and 2 (index into the body).
_BODY_SPLIT = {"resnet18": 6, "resnet34": 6, "resnet50": 6}


class AdaptiveConcatPool2d(nn.Module):
    """Average and max pooling to `size`, concatenated along the channels (twice the channels)."""

    def __init__(self, size: int = 1) -> None:
        super().__init__()
        self.ap, self.mp = nn.AdaptiveAvgPool2d(size), nn.AdaptiveMaxPool2d(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mp(x), self.ap(x)], dim=1)


def create_body(model: nn.Module, cut: int | Callable[[nn.Module], nn.Module] | None = None) -> nn.Sequential:
    """The feature extractor of `model`: its children up to `cut`.

    Args:
        model: a network whose children are in forward order (all of deepfit's models are).
        cut: an index into the children (negative counts from the end), a function `cut(model) ->
            body`, or None: drop the trailing pooling / flatten / linear / dropout children.
    """
    if callable(cut) and not isinstance(cut, int):
        body = cut(model)
        return body if isinstance(body, nn.Sequential) else nn.Sequential(body)
    children = list(model.children())
    if cut is None:
        cut = len(children)
        while cut > 0 and isinstance(children[cut - 1], _HEAD_TYPES):
            cut -= 1
        if cut == 0:
            raise ValueError(f"create_body found no body in {type(model).__name__}: every child is pooling/linear. "
                             "Pass `cut=` (an index into its children).")
    if not isinstance(cut, int):
        raise TypeError(f"`cut` must be an int, a function or None; received {type(cut).__name__}.")
    return nn.Sequential(*children[:cut])


def num_features(body: nn.Module, n_in: int, size: int = 64) -> int:
    """Channels of `body`'s output, from one forward pass of a small dummy batch (the body's
    train/eval mode is left as it was)."""
    was = body.training
    body.eval()
    try:
        p = next(body.parameters(), None)
        x = torch.zeros(2, n_in, size, size, device=p.device if p is not None else "cpu")
        with torch.no_grad():
            out = body(x)
    finally:
        body.train(was)
    if out.ndim != 4:
        raise ValueError(f"The body's output has shape {tuple(out.shape)}; a CNN body must give (N, C, H, W). "
                         "Pass `cut=` to cut the model before its pooling/flatten layers.")
    return int(out.shape[1])


def create_head(nf: int, n_out: int, lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                concat_pool: bool = True, bn_final: bool = False) -> nn.Sequential:
    """A classifier head for a body giving `nf` channels: (concat) pooling, flatten, then per layer
    BatchNorm1d -> Dropout -> Linear, with ReLU between layers.

    Args:
        nf: the body's output channels.
        n_out: classes.
        lin_ftrs: hidden sizes (default [512]: two linear layers).
        ps: dropout of the last layer (the others get half), or one value per layer.
        concat_pool: average and max pooling concatenated (else average only).
        bn_final: a BatchNorm1d after the last linear layer.
    """
    pool_nf = nf * 2 if concat_pool else nf
    sizes = [pool_nf] + list([512] if lin_ftrs is None else lin_ftrs) + [n_out]
    n_lin = len(sizes) - 1
    if isinstance(ps, (int, float)):
        drops = [ps / 2] * (n_lin - 1) + [ps]
    else:
        drops = list(ps)
        if len(drops) != n_lin:
            raise ValueError(f"`ps` gives {len(drops)} dropout values for {n_lin} linear layers.")
    layers: list[nn.Module] = [AdaptiveConcatPool2d() if concat_pool else nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    for i in range(n_lin):
        last = i == n_lin - 1
        layers += [nn.BatchNorm1d(sizes[i]), nn.Dropout(drops[i]), nn.Linear(sizes[i], sizes[i + 1], bias=last)]
        if i < n_lin - 1:
            layers.append(nn.ReLU(inplace=True))
    if bn_final:
        layers.append(nn.BatchNorm1d(sizes[-1]))
    head = nn.Sequential(*layers)
    init_cnn(head)
    return head


def _arch_fn(arch: str | Callable[..., nn.Module]) -> tuple[str | None, Callable[..., nn.Module]]:
    if isinstance(arch, str):
        if arch not in ARCHS:
            raise ValueError(f"Unknown architecture {arch!r}; known: {', '.join(sorted(ARCHS))} (or pass a "
                             "function returning a model).")
        return arch, ARCHS[arch]
    if not callable(arch):
        raise TypeError(f"`arch` must be a name or a function returning a model; received {type(arch).__name__}.")
    name = getattr(arch, "__name__", None)
    return (name if name in ARCHS and ARCHS[name] is arch else None), arch


@register_model
class ImageClassifier(nn.Sequential):
    """A body cut from `arch` (child 0) and a `create_head` head (child 1). Rebuilt from its config
    for export, so `arch` must be one of `deepfit.vision.models.ARCHS` for `learn.export()`.

    Args:
        arch: architecture name (or function); it is built with n_out=1000 (a weight file's classes are
            irrelevant: the head is cut off).
        n_out, n_in: classes and input channels.
        cut, lin_ftrs, ps, concat_pool, bn_final: see `create_body` / `create_head`.
        split: index into the body where layer group 2 starts (default: per architecture, else half).
        full_model: an already built `arch` model (e.g. with pretrained weights) to cut.
    """

    def __init__(self, arch: str | Callable[..., nn.Module] = "resnet34", n_out: int = 10, n_in: int = 3,
                 cut: int | None = None, lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                 concat_pool: bool = True, bn_final: bool = False, split: int | None = None,
                 full_model: nn.Module | None = None) -> None:
        name, fn = _arch_fn(arch)
        model = full_model if full_model is not None else fn(n_in=n_in)
        body = create_body(model, cut)
        nf = num_features(body, n_in)
        super().__init__(body, create_head(nf, n_out, lin_ftrs, ps, concat_pool, bn_final))
        self.arch_name = name
        self.split = split if split is not None else _BODY_SPLIT.get(name or "", max(1, len(body) // 2))
        self.config = {"arch": name, "n_out": int(n_out), "n_in": int(n_in), "cut": cut,
                       "lin_ftrs": None if lin_ftrs is None else [int(v) for v in lin_ftrs],
                       "ps": ps if isinstance(ps, (int, float)) else [float(v) for v in ps],
                       "concat_pool": bool(concat_pool), "bn_final": bool(bn_final), "split": int(self.split)}

    def layer_groups(self) -> list[nn.Module]:
        """Three groups: early body, late body, head."""
        body = self[0]
        return [body[:self.split], body[self.split:], self[1]]

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export). Raises ValueError for an architecture given as a function
        that is not in `ARCHS` (it could not be rebuilt when loading)."""
        if self.config["arch"] is None:
            raise ValueError("This classifier's architecture is a function outside deepfit.vision.models.ARCHS, so "
                             "an exported file could not rebuild it: add it to ARCHS under its name, or save the "
                             "weights with learn.save().")
        return dict(self.config)


def _split_groups(model: nn.Module) -> list[Any]:
    return model.layer_groups()


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror a batch of images (N, C, H, W) left-right (the default test-time augmentation)."""
    return x.flip(-1)


def accuracy_multi(pred: torch.Tensor, targ: torch.Tensor, thresh: float = 0.5) -> torch.Tensor:
    """Multi-label accuracy: the fraction of (image, class) pairs where sigmoid(pred) > thresh agrees
    with the 0/1 target."""
    if pred.shape != targ.shape:
        raise ValueError(f"accuracy_multi needs predictions and 0/1 targets of the same shape; received "
                         f"{tuple(pred.shape)} and {tuple(targ.shape)}.")
    return ((torch.sigmoid(pred) > thresh) == targ.bool()).float().mean()


class VisionLearner(Learner):
    """A `Learner` for image classifiers: `fine_tune` (transfer learning), `tta` (test-time
    augmentation) and `interpret` (confusion matrix, top losses). Any model works; the layer groups
    come from the model's `layer_groups()` when it has one (`ImageClassifier`)."""

    def fine_tune(self, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100.0,
                  pct_start: float = 0.3, div: float = 5.0, wd: float | None = None,
                  cbs: Sequence[Callback] | Callback = ()) -> None:
        """Transfer learning in two phases (as in the fastai course):

        1. `freeze_epochs` of 1cycle with the body frozen (only the head and, with `train_bn`, the
           batch norms train), peak rate `base_lr` for the head (`pct_start` 0.99);
        2. unfreeze and `epochs` of 1cycle with discriminative rates: the peak rate of the layer groups
           spread geometrically from `base_lr / 2 / lr_mult` (first group) to `base_lr / 2` (head).

        Args:
            epochs: epochs of the unfrozen phase.
            base_lr: peak learning rate of the head in the frozen phase.
            freeze_epochs: epochs of the frozen phase (0 skips it).
            lr_mult: ratio of the head's rate to the first group's in phase 2.
            pct_start, div: 1cycle warm-up fraction and initial division of phase 2.
            wd, cbs: see `fit`.
        """
        if freeze_epochs < 0 or epochs < 0:
            raise ValueError(f"`epochs` and `freeze_epochs` must be >= 0; received {epochs}, {freeze_epochs}.")
        if freeze_epochs:
            self.freeze()
            self.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, wd=wd, cbs=cbs)
        base_lr /= 2
        self.unfreeze()
        self.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div, wd=wd, cbs=cbs)

    def tta(self, dl: DataLoader | None = None, tfms: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None = None,
            n: int = 1, beta: float = 0.5, weights: Sequence[float] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Test-time augmentation: predictions on `dl` (default validation) averaged with predictions
        on augmented copies of its images.

        Args:
            dl: the loader (its own decoding/normalisation runs first; each transform is applied to
                the normalised input batch).
            tfms: functions on a float batch (N, C, H, W); default `[hflip]`. Random transforms (from
                `deepfit.vision.augment`) are applied `n` times each.
            n: passes per transform.
            beta: weight of the plain predictions: `beta * plain + (1 - beta) * mean(augmented)`.
                0.5 with the default flip is the classic average of an image and its mirror.
            weights: relative weight of each transform in the augmented mean (default: equal), e.g.
                `[2, 1, 1]` counts the first transform's predictions twice without computing them twice.

        Returns:
            `(probabilities, targets)`.
        """
        if not 0 <= beta <= 1:
            raise ValueError(f"`beta` must be in [0, 1]; received beta={beta}.")
        if n < 1:
            raise ValueError(f"`n` must be at least 1; received n={n}.")
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("No validation data to run test-time augmentation on: pass `dl=`.")
        plain, targs = self.get_preds(dl)[:2]
        tfms = [hflip] if tfms is None else list(tfms)
        if not tfms:
            return plain, targs
        w = [1.0] * len(tfms) if weights is None else [float(v) for v in weights]
        if len(w) != len(tfms) or any(not v >= 0 for v in w) or sum(w) <= 0:
            raise ValueError(f"`weights` must give one non-negative weight per transform ({len(tfms)}), not all "
                             f"zero; received weights={weights!r}.")
        aug = torch.zeros_like(plain)
        for tfm, wt in zip(tfms, w):
            for _ in range(n):
                aug += wt * self.get_preds(_with_input_tfm(dl, tfm))[0]
        aug /= sum(w) * n
        return beta * plain + (1 - beta) * aug, targs

    def interpret(self, dl: DataLoader | None = None) -> Any:
        """A `ClassificationInterpretation` of the predictions on `dl` (default validation)."""
        from .interpret import ClassificationInterpretation
        return ClassificationInterpretation.from_learner(self, dl)


def _with_input_tfm(dl: DataLoader, tfm: Callable[[torch.Tensor], torch.Tensor]) -> DataLoader:
    """A shallow copy of `dl` whose batches have `tfm` applied to the first input (after the loader's
    own `after_batch`)."""
    new = copy.copy(dl)
    inner = dl.after_batch

    def after(batch: tuple) -> tuple:
        batch = inner(batch) if inner is not None else batch
        return (tfm(batch[0]),) + tuple(batch[1:])
    new.after_batch = after
    return new


# ---- pretrained weights -----------------------------------------------------------------------------
def _hub_file(name: str) -> Path | None:
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    home = os.environ.get("TORCH_HOME") or os.path.join(cache, "torch")
    found = sorted(glob.glob(os.path.join(home, "hub", "checkpoints", f"{name}-*.pth")))
    return Path(found[0]) if found else None


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise FileNotFoundError(f"No pretrained weight file at {path}.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{path} is not a readable safetensors file (truncated or corrupted?): {e}") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable weight file, or it holds pickled Python objects that deepfit "
                         f"refuses to run (it loads with weights_only=True): {e}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # written by learn.save
        state = state["model"]
    elif isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of named tensors.")
    return state


def load_pretrained(model: nn.Module, weights: str | Path | bool, arch_name: str | None = None,
                    body_cut: int | None = None) -> Path:
    """Load weights into `model` (a whole `arch` network, before it is cut) from a local file, never
    downloading: `weights` is a path (.safetensors, or a .pth/.pt read with
    `torch.load(weights_only=True)`, e.g. torchvision's files), or True for torch's hub cache
    (`$TORCH_HOME/hub/checkpoints/<arch>-*.pth`). Tensors of the head (the children a body cut
    drops, e.g. `fc`) may be missing or of other shapes; every body tensor must be present with its
    shape, except the first convolution's input channels, which are adapted (summed for 1 channel,
    cycled and rescaled otherwise). Returns the file used.

    Raises:
        FileNotFoundError: no file (with where it was looked for).
        ValueError: the file is unreadable or does not fit the body (naming the tensors).
    """
    if weights is True:
        if arch_name is None:
            raise ValueError("pretrained=True needs an architecture given by name; pass the weight file's path.")
        found = _hub_file(arch_name)
        if found is None:
            home = os.environ.get("TORCH_HOME", "~/.cache/torch")
            raise FileNotFoundError(f"No pretrained weights for {arch_name} in the torch hub cache "
                                    f"({home}/hub/checkpoints/{arch_name}-*.pth); deepfit never downloads them. Put "
                                    "the file there, or pass its path: pretrained='path/to/weights.pth'.")
        weights = found
    path = Path(weights)
    state = _read_weights(path)
    children = list(model.named_children())
    cut = len(create_body(model, body_cut))
    head_prefixes = tuple(f"{n}." for n, _ in children[cut:])
    expected = {k: v for k, v in model.state_dict().items() if not k.startswith(head_prefixes)}
    missing = [k for k in expected if k not in state]
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise ValueError(f"The weights in {path} do not fit {arch_name or type(model).__name__}: missing "
                         f"{', '.join(missing[:8])}{more}. Is it a file for another architecture?")
    first_conv = next((k for k, v in expected.items() if v.ndim == 4), None)
    load = {}
    bad = []
    for k, v in expected.items():
        w = state[k]
        other_in = w.ndim == 4 and w.shape[0] == v.shape[0] and w.shape[2:] == v.shape[2:]
        if w.shape != v.shape and k == first_conv and other_in:
            w = _adapt_in_channels(w, v.shape[1])
        if w.shape != v.shape:
            bad.append(f"{k} is {tuple(w.shape)} in the file but {tuple(v.shape)} in the model")
        load[k] = w.to(v.dtype)
    if bad:
        raise ValueError(f"The weights in {path} do not fit {arch_name or type(model).__name__}: "
                         + "; ".join(bad[:8]) + ". Is it a file for another architecture?")
    model.load_state_dict(load, strict=False)
    return path


def _adapt_in_channels(w: torch.Tensor, n_in: int) -> torch.Tensor:
    """First-conv weights (out, c, kh, kw) for `n_in` input channels: summed over c for 1 channel (a grey
    image is R = G = B), else the channels cycled and rescaled by c / n_in."""
    if n_in == 1:
        return w.sum(1, keepdim=True)
    idx = torch.arange(n_in) % w.shape[1]
    return w[:, idx] * (w.shape[1] / n_in)


# ---- the learner factory ----------------------------------------------------------------------------
def _n_in_of(dls: Any) -> int:
    x = dls.train.tensors[0] if hasattr(dls.train, "tensors") else None
    return int(x.shape[1]) if x is not None and x.ndim == 4 else 3


def _n_out_of(dls: Any) -> int:
    c = getattr(dls, "c", None)
    if c is not None:
        return int(c)
    y = dls.train.tensors[-1] if hasattr(dls.train, "tensors") else None
    if y is None or y.is_floating_point():
        raise ValueError("Cannot tell the number of classes from these DataLoaders: pass `n_out=`.")
    return int(y.max()) + 1


def vision_learner(dls: Any, arch: str | Callable[..., nn.Module] = "resnet34",
                   pretrained: bool | str | Path = False, *, n_out: int | None = None, n_in: int | None = None,
                   cut: int | None = None, lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                   concat_pool: bool = True, bn_final: bool = False, loss_func: Callable | None = None,
                   label_smoothing: float = 0.0, metrics: Sequence[Any] | Any | None = None,
                   opt_func: Callable[..., torch.optim.Optimizer] = Adam, lr: float = 1e-3, wd: float | None = 1e-2,
                   cbs: Sequence[Callback] | Callback = (), path: str | Path | None = None,
                   model_dir: str | Path = "models", train_bn: bool = True,
                   moms: tuple[float, float, float] = (0.95, 0.85, 0.95), progress: bool = True) -> VisionLearner:
    """A `VisionLearner` with an `ImageClassifier`: `arch`'s body (pretrained or not) and a new head
    sized by `dls.c`, in three layer groups (early body, late body, head). With pretrained weights the
    body is frozen (train the head first: `fine_tune` does both phases).

    Args:
        dls: image DataLoaders (`ImageDataLoaders`, or any with (N, C, H, W) inputs and class targets).
        arch: a name from `deepfit.vision.models.ARCHS` ("resnet34", "resnet20", "densenet_bc", ...) or a
            function `arch(n_in=...) -> model` whose children are in forward order.
        pretrained: False; a local weight file (.pth read with `torch.load(weights_only=True)`, or
            .safetensors); or True to take `<arch>-*.pth` from torch's hub cache. Never downloads.
            Pretrained ImageNet bodies expect ImageNet normalisation (`normalize="imagenet"` on the data).
        n_out: classes (default `dls.c`); n_in: input channels (default: the data's).
        cut, lin_ftrs, ps, concat_pool, bn_final: see `create_body` / `create_head`.
        loss_func: default cross entropy (with `label_smoothing`), or BCE-with-logits for multi-label data.
        label_smoothing: epsilon of label smoothing for the default cross entropy.
        metrics: default accuracy (`accuracy_multi` for multi-label).
        opt_func, lr, wd, cbs, path, model_dir, train_bn, moms, progress: see `Learner`.

    Example:
        >>> learn = vision_learner(dls, "resnet34", pretrained=True)   # from ~/.cache/torch/hub/checkpoints
        >>> learn.fine_tune(2)
    """
    multi = bool(getattr(dls, "multi_label", False))
    n_out = _n_out_of(dls) if n_out is None else int(n_out)
    n_in = _n_in_of(dls) if n_in is None else int(n_in)
    if n_out < 1:
        raise ValueError(f"`n_out` must be at least 1; received n_out={n_out}.")
    name, fn = _arch_fn(arch)
    full = fn(n_in=n_in)
    if pretrained is not False and pretrained is not None:
        load_pretrained(full, pretrained, name, cut)
    model = ImageClassifier(name if name is not None else fn, n_out=n_out, n_in=n_in, cut=cut, lin_ftrs=lin_ftrs,
                            ps=ps, concat_pool=concat_pool, bn_final=bn_final, full_model=full)
    if loss_func is None:
        loss_func = BCEWithLogitsLoss() if multi else CrossEntropyLoss(label_smoothing=label_smoothing)
    elif label_smoothing:
        warnings.warn("`label_smoothing` is ignored when `loss_func` is given.", stacklevel=2)
    if metrics is None:
        metrics = [accuracy_multi] if multi else [accuracy]
    learn = VisionLearner(dls, model, loss_func=loss_func, opt_func=opt_func, lr=lr, wd=wd, metrics=metrics, cbs=cbs,
                          splitter=_split_groups, path=getattr(dls, "path", ".") if path is None else path,
                          model_dir=model_dir, train_bn=train_bn, moms=moms, progress=progress)
    if pretrained:
        learn.freeze()
    return learn


#: The 2018 course's name for `vision_learner`.
cnn_learner = vision_learner
