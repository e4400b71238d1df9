"""Small helpers shared by every part of deepfit: seeding, devices, argument checks."""
from __future__ import annotations

import contextlib
import math
import os
import random
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

__all__ = ["set_seed", "default_device", "to_device", "listify", "check_positive", "check_wd", "atomic_path"]


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and PyTorch so that a run on the CPU repeats exactly.

    Args:
        seed: any integer.
        deterministic: also ask torch for deterministic kernels (slower on CUDA).

    Example:
        >>> set_seed(42)
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def default_device() -> torch.device:
    """The device deepfit trains on when none is given: CUDA if present, else MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def to_device(obj: Any, device: torch.device | str | None, non_blocking: bool = False) -> Any:
    """Move a tensor, or tensors nested in tuples/lists/dicts, to `device`."""
    if device is None:
        return obj
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(o, device, non_blocking) for o in obj)
    if isinstance(obj, dict):
        return {k: to_device(v, device, non_blocking) for k, v in obj.items()}
    return obj


def listify(obj: Any) -> list:
    """Turn None into [], a single object into [obj] and any other iterable into a list."""
    if obj is None:
        return []
    if isinstance(obj, (str, bytes, dict, torch.Tensor)) or not isinstance(obj, Iterable):
        return [obj]
    return list(obj)


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    """Raise a ValueError naming `name` unless `value` is > 0 (or >= 0 with `allow_zero`)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be {bound}; received {name}={value!r}.")


def check_wd(wd: Any, name: str = "wd") -> None:
    """Raise a ValueError naming `name` unless `wd` is None, a finite number >= 0 (weight decay) or a
    sequence of such numbers (one per param group)."""
    if wd is None:
        return
    values = list(np.ravel(wd)) if isinstance(wd, (list, tuple, np.ndarray, torch.Tensor)) else [wd]
    for x in values:
        try:
            v = float(x)
        except (TypeError, ValueError):
            v = math.nan
        if not (math.isfinite(v) and v >= 0) or isinstance(x, (str, bytes)):
            raise ValueError(f"`{name}` must be a finite number >= 0 (or None, or one such number per param "
                             f"group); received {name}={wd!r}.")


def as_sequence(obj: Any) -> Sequence:
    return obj if isinstance(obj, (list, tuple)) else (obj,)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Write a file so that no reader ever sees it half-written under its final name.

    Yields a temporary path next to `path` (`<name>.tmp<suffix>`; give `suffix` when the writer picks
    the format from the extension, e.g. ".png"). When the block ends normally the temporary file is
    renamed to `path` (atomic on one filesystem); when it fails the temporary file is removed. The
    parent folder is created if needed.

    Example:
        >>> with atomic_path(out / "metrics.csv") as tmp:
        ...     df.to_csv(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp" + suffix)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
