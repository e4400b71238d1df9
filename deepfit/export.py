"""Export a trained Learner for inference as one safetensors file, and load it back.

The file holds the model's weights as tensors and, in the safetensors JSON header, everything else:
a format version, the model's class name and constructor config, the loss, and the data's
preprocessing state (vocabularies, normalisation statistics). Loading never unpickles or runs code
from the file: it reads tensors and JSON, then builds the model from a registry of known classes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from . import __version__
from .losses import loss_from_name
from .utils import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["register_model", "register_dls", "export_learner", "load_learner", "ExportError", "FORMAT_VERSION",
           "read_header", "state_dict_mismatches"]

FORMAT_VERSION = 1
_MODELS: dict[str, type[nn.Module]] = {}
_DLS: dict[str, Callable[[dict[str, Any], dict[str, torch.Tensor]], Any]] = {}


class ExportError(ValueError):
    """An exported model file cannot be written or read (with the reason and what to do)."""


def _shape(t: Any) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def state_dict_mismatches(model: nn.Module, state: Any, strict: bool = True, max_names: int = 8) -> list[str]:
    """Why `state` cannot be loaded into `model`, one readable line per kind of problem (empty: it fits).

    Names the missing and unexpected tensors (with `strict`) and every tensor whose shape differs,
    with both shapes, so a file from another architecture or configuration is easy to recognise.
    """
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        return [f"expected a dict of named tensors, found {type(state).__name__}"]
    expected = model.state_dict()

    def names(keys: list[str]) -> str:
        more = f" and {len(keys) - max_names} more" if len(keys) > max_names else ""
        return ", ".join(keys[:max_names]) + more

    out = []
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if strict and missing:
        out.append(f"missing tensors the model needs: {names(missing)}")
    if strict and unexpected:
        out.append(f"unexpected tensors the model does not have: {names(unexpected)}")
    shapes = [f"{k} is {_shape(state[k])} in the file but {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in state
              and (not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(v.shape))]
    if shapes:
        out.append("shape mismatch: " + "; ".join(shapes[:max_names])
                   + (f"; and {len(shapes) - max_names} more" if len(shapes) > max_names else ""))
    return out


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Make a model class exportable. It must have `get_config() -> dict` (JSON-able) such that
    `cls(**config)` rebuilds it. Usable as a class decorator."""
    if not hasattr(cls, "get_config"):
        raise TypeError(f"{cls.__name__} needs a get_config() method returning its constructor arguments.")
    _MODELS[cls.__name__] = cls
    return cls


def register_dls(name: str, builder: Callable[[dict[str, Any], dict[str, torch.Tensor]], Any]) -> None:
    """Register how to rebuild an inference-only DataLoaders from its exported (json, tensors) state."""
    _DLS[name] = builder


def _register_builtin() -> None:
    from .layers import MLP, LogisticRegression
    for c in (MLP, LogisticRegression):
        _MODELS.setdefault(c.__name__, c)


def export_learner(learn: "Learner", path: Path) -> Path:
    """Write `learn`'s model, loss and data preprocessing to the safetensors file `path` (atomically);
    `Learner.export` calls it. Raises ExportError for an unregistered model or a non-deepfit loss."""
    from safetensors.torch import save_file
    _register_builtin()
    model = learn.model
    name = type(model).__name__
    if name not in _MODELS or not hasattr(model, "get_config"):
        raise ExportError(f"Cannot export a {name}: register it with deepfit.export.register_model (it needs a "
                          "get_config() method), or save the weights with learn.save().")
    loss_name = type(learn.loss_func).__name__
    try:
        loss_from_name(loss_name)
    except ValueError:
        raise ExportError(f"Cannot export the loss {loss_name}: use one of deepfit.losses' classes.") from None
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    dls_meta: dict[str, Any] = {}
    exp = getattr(learn.dls, "export_state", None)
    if exp is not None:
        dls_meta, dls_tensors = exp()
        tensors.update({f"dls.{k}": v.detach().cpu().contiguous() for k, v in dls_tensors.items()})
    header = {
        "format": "deepfit", "format_version": str(FORMAT_VERSION), "deepfit_version": __version__,
        "model_class": name, "model_config": json.dumps(model.get_config()), "loss": loss_name,
        "loss_config": json.dumps(learn.loss_func.get_config() if hasattr(learn.loss_func, "get_config") else {}),
        "dls_class": type(learn.dls).__name__ if exp is not None else "", "dls_state": json.dumps(dls_meta),
    }
    with atomic_path(path) as tmp:  # never leave a half-written file under the final name
        save_file(tensors, str(tmp), metadata=header)
    return path


def read_header(path: str | Path) -> dict[str, str]:
    """The JSON metadata of an exported file, with clear errors for missing/corrupted/foreign files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No exported model at {path}.")
    with open(path, "rb") as f:
        raw = f.read(8)
    if raw[:4] == b"PK\x03\x04":  # the zip container of torch.save
        raise ExportError(f"{path} is a pickle/torch.save file, not an exported deepfit model (safetensors). "
                          "load_learner never unpickles files (that could run code from them); weights saved "
                          "with learn.save are loaded with learn.load.")
    if len(raw) < 8:
        raise ExportError(f"{path} is empty or truncated: it is not an exported deepfit model.")
    n = int.from_bytes(raw, "little")
    size = path.stat().st_size
    if (n < 2 or n + 8 > size) and raw[:1] == b"\x80" and 2 <= raw[1] <= 5:  # a pickle's PROTO opcode
        raise ExportError(f"{path} looks like a pickle file, not an exported deepfit model (safetensors). "
                          "load_learner never unpickles files (that could run code from them).")
    if n < 2 or n + 8 > size:
        raise ExportError(f"{path} is truncated or not a safetensors file (header claims {n} bytes, the file has "
                          f"{size}). Export the model again.")
    try:
        with open(path, "rb") as f:
            f.seek(8)
            header = json.loads(f.read(n))
    except (ValueError, UnicodeDecodeError) as e:
        raise ExportError(f"{path} has a corrupted header ({e}). Export the model again.") from None
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != "deepfit":
        raise ExportError(f"{path} is a safetensors file but not a deepfit export (no deepfit header).")
    return meta


def load_learner(path: str | Path, device: str | torch.device | None = None) -> "Learner":
    """Load a file written by `Learner.export` for inference (`predict`, `get_preds`).

    Raises:
        ExportError: the file is truncated/corrupted, from a newer format, or its weights do not fit
            the model described in it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from .learner import Learner
    _register_builtin()
    path = Path(path)
    meta = read_header(path)
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise ExportError(f"{path} has an unreadable format_version {meta.get('format_version')!r} in its "
                          "header (corrupted file?). Export the model again.") from None
    missing = [k for k in ("model_class", "model_config", "loss") if k not in meta]
    if version <= FORMAT_VERSION and missing:
        raise ExportError(f"{path} has an incomplete deepfit header (missing {missing}). Export the model again.")
    if version > FORMAT_VERSION:
        raise ExportError(f"{path} was written by deepfit {meta.get('deepfit_version')} (format {version}); this is "
                          f"deepfit {__version__} (format {FORMAT_VERSION}). Upgrade deepfit to load it.")
    cls_name = meta["model_class"]
    if cls_name not in _MODELS:
        _import_applications()
    if cls_name not in _MODELS:
        raise ExportError(f"{path} holds a {cls_name} model, which this deepfit does not know. Known models: "
                          f"{sorted(_MODELS)}. Import the module that defines {cls_name} (and registers it with "
                          "deepfit.export.register_model) before calling load_learner.")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ExportError(f"{path} is truncated or corrupted ({e}). Export the model again.") from None
    try:
        config = json.loads(meta["model_config"])
        if not isinstance(config, dict):
            raise ValueError(f"expected a JSON object, found {type(config).__name__}")
        model = _MODELS[cls_name](**config)
    except (ValueError, TypeError) as e:
        raise ExportError(f"{path} describes a {cls_name} with a config this deepfit cannot build "
                          f"({meta['model_config'][:200]}): {e}. Was it written by another deepfit version?") from None
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    problems = state_dict_mismatches(model, state)
    if problems:
        raise ExportError(f"The weights in {path} do not fit the {cls_name} described in its header ({config}): "
                          + "; ".join(problems) + ". The file was probably edited or written by another version.")
    model.load_state_dict(state, strict=True)
    model.eval()  # an exported model is for inference
    dls_tensors = {k[len("dls."):]: v for k, v in tensors.items() if k.startswith("dls.")}
    dls_name = meta.get("dls_class", "")
    from .data.core import DataLoader, DataLoaders
    if dls_name:
        if dls_name not in _DLS:
            _import_applications()
        if dls_name not in _DLS:
            raise ExportError(f"{path} needs the {dls_name} data pipeline, which this deepfit does not know.")
        dls = _DLS[dls_name](json.loads(meta["dls_state"]), dls_tensors)
    else:
        dls = DataLoaders(DataLoader(torch.zeros(1, 1), torch.zeros(1), bs=1))
    if device is not None:
        dls.to(device)
    try:
        loss_func = loss_from_name(meta["loss"])
    except ValueError as e:
        raise ExportError(f"{path} uses the loss {meta['loss']!r}, which this deepfit does not know: {e}") from None
    try:  # the loss's settings (e.g. the decoding threshold); files from before they were stored have none
        loss_func = loss_from_name(meta["loss"], json.loads(meta.get("loss_config") or "{}"))
    except (ValueError, TypeError) as e:
        raise ExportError(f"{path} has loss settings this deepfit cannot use ({meta.get('loss_config')!r}): "
                          f"{e}. Export the model again.") from None
    # an application's DataLoaders may name its Learner subclass (e.g. TabularLearner: get_preds(df))
    learner_cls = getattr(dls, "learner_class", None)
    if not (isinstance(learner_cls, type) and issubclass(learner_cls, Learner)):
        learner_cls = Learner
    learn = learner_cls(dls, model, loss_func=loss_func, progress=False)
    return learn


def _import_applications() -> None:
    # Importing an application registers its models and data pipelines.
    import importlib
    for mod in ("deepfit.collab", "deepfit.tabular", "deepfit.data.mnist", "deepfit.vision"):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
