"""Small helpers shared by every part of deepfit: seeding, devices, argument checks."""
from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

__all__ = ["set_seed", "default_device", "to_device", "listify", "check_positive", "atomic_path", "current_umask"]


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


def as_sequence(obj: Any) -> Sequence:
    return obj if isinstance(obj, (list, tuple)) else (obj,)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Write a file so that no reader ever sees it half-written under its final name.

    Yields a temporary path next to `path` (`<name>.tmp<suffix>`; give `suffix` when the writer picks
    the format from the extension, e.g. ".png"). When the block ends normally the temporary file is
    renamed to `path` (atomic on one filesystem); when it fails the temporary file is removed. The
    parent folder is created if needed. The file gets the usual mode of a new file, `0o666` less the
    process's umask (0644 under the common umask 022), whatever mode the writer created it with (some,
    like safetensors' `save_file`, create owner-only files).

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
    if tmp.is_file():
        os.chmod(tmp, 0o666 & ~current_umask())
    os.replace(tmp, path)


def current_umask() -> int:
    """This process's umask (the permission bits that new files do not get)."""
    try:  # Linux >= 4.7 shows it without changing it
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask
