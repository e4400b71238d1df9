"""The weights files of `Learner.save` / `Learner.load`: `{"model": state_dict, "opt": state_dict}`
written with `torch.save` and read with `torch.load(weights_only=True)`, so no pickled code runs on
load. `Learner.load` also reads the checkpoints of the `Checkpoint` callback (their weights and
optimizer state). Fitting what was read into a model and optimizer stays in `Learner.load`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .utils import atomic_path

__all__ = ["weights_path", "save_weights", "read_weights"]


def weights_path(name: str | Path, folder: Path) -> Path:
    """Where `Learner.save(name)` writes: `name` gets the suffix `.pth` when it has none, and a bare
    file name goes into `folder` (the learner's `path / model_dir`); other paths are kept as given."""
    p = Path(name)
    if p.suffix == "":
        p = p.with_suffix(".pth")
    return p if p.is_absolute() or p.parent != Path(".") else folder / p


def save_weights(f: Path, model_state: dict[str, Any], opt_state: dict[str, Any] | None) -> None:
    """Write the model's (and, unless None, the optimizer's) state dict to `f` atomically."""
    state: dict[str, Any] = {"model": model_state}
    if opt_state is not None:
        state["opt"] = opt_state
    with atomic_path(f) as tmp:
        torch.save(state, tmp)


def read_weights(f: Path, device: torch.device) -> Any:
    """Read what `save_weights` or the `Checkpoint` callback wrote, onto `device`, running no code
    from the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated/corrupted, holds pickled objects, or is a checkpoint of a
            newer format than this deepfit reads.
    """
    from .callbacks.checkpoint import CHECKPOINT_VERSION, refused_object
    if not f.exists():
        raise FileNotFoundError(f"No saved model at {f}.")
    try:
        state = torch.load(f, map_location=device, weights_only=True)
    except Exception as e:
        refused = refused_object(e)
        if refused is not None:
            raise ValueError(f"{f} contains pickled Python objects, not only tensors ({refused}): deepfit refuses "
                             "to load it because unpickling can run arbitrary code. Save weights with "
                             "learn.save.") from None
        raise ValueError(f"{f} is not a readable deepfit/torch checkpoint (truncated or corrupted?): {e}") from None
    if isinstance(state, dict) and state.get("format") == "deepfit-checkpoint":
        if not isinstance(state.get("version"), int) or state["version"] > CHECKPOINT_VERSION:
            raise ValueError(f"{f} is a checkpoint of format version {state.get('version')} (deepfit "
                             f"{state.get('deepfit_version')}); this deepfit reads format {CHECKPOINT_VERSION}. "
                             "Upgrade deepfit to load it.")
    return state
