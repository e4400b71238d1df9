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

__all__ = ["set_seed", "default_device", "available_devices", "parse_device", "to_device", "listify",
           "check_positive", "check_wd", "atomic_path", "current_umask"]


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


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """The devices this machine can train on: `cpu`, then `cuda:0` ... `cuda:N-1`, then `mps` when present."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        out.append("mps")
    return out


def parse_device(device: torch.device | str) -> torch.device:
    """`device` as a `torch.device`, checked against the devices this machine has.

    Accepts what `torch.device` accepts (`"cpu"`, `"cuda"`, `"cuda:1"`, `"mps"`, a `torch.device`).

    Raises:
        ValueError: `device` is not a device name, or names a device this machine does not have; the
            message lists the available ones.

    Example:
        >>> parse_device("cpu")
        device(type='cpu')
    """
    have = ", ".join(available_devices())
    try:
        dev = device if isinstance(device, torch.device) else torch.device(str(device).strip())
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"`device` {str(device)!r} is not a device name (such as cpu, cuda, cuda:1 or mps); "
                         f"available here: {have}.") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"`device` {str(device)!r} asks for CUDA, but this machine has no usable CUDA GPU "
                             f"(or this torch build has no CUDA support); available here: {have}.")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"`device` {str(device)!r} asks for GPU {dev.index}, but this machine has {n} CUDA "
                             f"GPU(s); available here: {have}.")
    elif dev.type == "mps" and not _mps_available():
        raise ValueError(f"`device` {str(device)!r} asks for Apple's MPS, which is not available on this machine; "
                         f"available here: {have}.")
    elif dev.type not in ("cpu", "meta"):
        backend = getattr(torch, dev.type, None)
        is_available = getattr(backend, "is_available", None)
        if callable(is_available) and not is_available():
            raise ValueError(f"`device` {str(device)!r} is not available on this machine; available here: {have}.")
    return dev


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
