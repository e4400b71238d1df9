"""Export a trained Learner for inference as one safetensors file, and load it back.

The file holds the model's weights as tensors and, in the safetensors JSON header, everything else:
a format version, the model's class name and constructor config, the loss, and the data's
preprocessing state (vocabularies, normalisation statistics). Loading never unpickles or runs code
from the file: it reads tensors and JSON, then builds the model from a registry of known classes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from . import __version__
from .errors import HintedError
from .losses import loss_from_name
from .utils import atomic_path, parse_device

if TYPE_CHECKING:  # pragma: no cover
    from .learner import Learner

__all__ = ["register_model", "register_dls", "export_learner", "load_learner", "check_export", "CheckedExport",
           "ExportError", "FORMAT_VERSION", "read_header", "state_dict_mismatches", "check_state_fields"]

FORMAT_VERSION = 1
_MODELS: dict[str, type[nn.Module]] = {}
_DLS: dict[str, Callable[[dict[str, Any], dict[str, torch.Tensor]], Any]] = {}
_DLS_FIELDS: dict[str, dict[str, Any]] = {}


class ExportError(HintedError, ValueError):
    """An exported model file cannot be written or read (with the reason and what to do)."""


def check_state_fields(value: Any, spec: Any, where: str = "") -> list[str]:
    """Where the JSON `value` does not have the shape `spec` describes, one line per bad field (empty: fine).

    `spec` is a type (`str`, `int`, `float`, `bool`, `list`, `dict`; `float` also accepts integers, `int`
    refuses booleans), a one-element list `[spec]` (a list of such values), or a dict `{key: spec}` (a JSON
    object with at least these keys; a key ending in `?` may be absent, and null is allowed for it).
    Used to check the data state of an exported file before anything is built from it.
    """
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{where or 'the state'} should be a JSON object, found {_json_type(value)}"]
        out: list[str] = []
        for key, sub in spec.items():
            optional = key.endswith("?")
            key = key.rstrip("?")
            name = f"{where}.{key}" if where else key
            if key not in value:
                if not optional:
                    out.append(f"{name} is missing")
            elif not (optional and value[key] is None):
                out.extend(check_state_fields(value[key], sub, name))
        return out
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{where} should be a list, found {_json_type(value)}"]
        return [p for i, v in enumerate(value) for p in check_state_fields(v, spec[0], f"{where}[{i}]")][:8]
    ok = {int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          bool: isinstance(value, bool)}.get(spec, isinstance(value, spec))
    return [] if ok else [f"{where} should be {_json_name(spec)}, found {_json_type(value)} {_short(value)}"]


def _json_name(t: type) -> str:
    return {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list",
            dict: "a JSON object"}.get(t, t.__name__)


def _json_type(v: Any) -> str:
    return {str: "text", int: "a number", float: "a number", bool: "a boolean", list: "a list", dict: "an object",
            type(None): "null"}.get(type(v), type(v).__name__)


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(e: BaseException) -> str:
    """An exception's message without the C++ frames torch appends to some errors."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


_CLI_SAFETENSORS = ("deepfit predict and info read the model.safetensors that deepfit train writes, and never "
                    "unpickle a file (that could run code from it).")


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


def register_dls(name: str, builder: Callable[[dict[str, Any], dict[str, torch.Tensor]], Any],
                 fields: dict[str, Any] | None = None) -> None:
    """Register how to rebuild an inference-only DataLoaders from its exported (json, tensors) state.

    Args:
        name: the DataLoaders class name written in the file.
        builder: `(state, tensors) -> DataLoaders`.
        fields: the expected shape of `state` (see `check_state_fields`), checked before `builder` runs so
            that a damaged file is reported by field name. The built loaders may also have a method
            `model_mismatches(model) -> list[str]` comparing their vocabularies with the model's sizes.
    """
    _DLS[name] = builder
    if fields is not None:
        _DLS_FIELDS[name] = fields


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
        raise ExportError(f"{path} is a PyTorch pickle file (zip), not an exported deepfit model (safetensors).",
                          "load_learner never unpickles files (that could run code from them); weights saved "
                          "with learn.save are loaded with learn.load.", cli_hint=_CLI_SAFETENSORS)
    if len(raw) < 8:
        raise ExportError(f"{path} is empty or truncated: it is not an exported deepfit model.")
    n = int.from_bytes(raw, "little")
    size = path.stat().st_size
    if (n < 2 or n + 8 > size) and raw[:1] == b"\x80" and 2 <= raw[1] <= 5:  # a pickle's PROTO opcode
        raise ExportError(f"{path} looks like a pickle file, not an exported deepfit model (safetensors).",
                          "load_learner never unpickles files (that could run code from them).",
                          cli_hint=_CLI_SAFETENSORS)
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
    bad = sorted(k for k, v in meta.items() if not isinstance(v, str))
    if bad:
        raise ExportError(f"{path} has a corrupted header: the field(s) {', '.join(bad)} should be text. "
                          "Export the model again.")
    return meta


@dataclass
class CheckedExport:
    """An exported file that passed every check of `check_export` (nothing built at full size yet).

    Attributes:
        path: the file.
        meta: its header (text fields).
        model_class: the registered model class it names.
        config: the model's constructor arguments.
        state: the model's tensors (names without the `model.` prefix).
        dls: the inference DataLoaders rebuilt from its data state (None: the file has no data pipeline).
        dls_state: that data state as JSON (empty without a pipeline).
        loss_func: the loss, with its stored settings.
        shell: the model as built for the checks: on the `meta` device (no weights), or, for a class that
            cannot be built there, a real model with its initial weights.
    """

    path: Path
    meta: dict[str, str]
    model_class: type[nn.Module]
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    dls: Any
    dls_state: dict[str, Any]
    loss_func: Any
    shell: nn.Module


def _json_field(path: Path, meta: dict[str, str], key: str, default: str, kind: type) -> Any:
    try:
        value = json.loads(meta.get(key) or default)
    except (ValueError, RecursionError) as e:
        raise ExportError(f"{path} has a corrupted header: its {key} is not valid JSON ({_first_line(e)}). "
                          "Export the model again.") from None
    if not isinstance(value, kind):
        raise ExportError(f"{path} has a corrupted header: its {key} should be a JSON "
                          f"{'object' if kind is dict else kind.__name__}, found {_json_type(value)}. "
                          "Export the model again.")
    return value


def check_export(path: str | Path) -> CheckedExport:
    """Every check `load_learner` makes, without building the model at full size: the header (format, version,
    fields), the JSON of the model config and data state, the tensors, and that the config describes exactly
    the tensors stored (the model is first built on the `meta` device, which allocates nothing, so a config
    asking for absurd sizes is refused before any memory is used), and the data state against the model.

    Raises:
        FileNotFoundError: there is no file at `path`.
        ExportError: anything else wrong with the file, naming the file and the field.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    _register_builtin()
    path = Path(path)
    meta = read_header(path)
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise ExportError(f"{path} has an unreadable format_version {meta.get('format_version')!r} in its "
                          "header (corrupted file?). Export the model again.") from None
    if version > FORMAT_VERSION:
        raise ExportError(f"{path} was written by deepfit {meta.get('deepfit_version')} (format {version}); this is "
                          f"deepfit {__version__} (format {FORMAT_VERSION}). Upgrade deepfit to load it.")
    missing = [k for k in ("model_class", "model_config", "loss") if k not in meta]
    if missing:
        raise ExportError(f"{path} has an incomplete deepfit header (missing {missing}). Export the model again.")
    cls_name = meta["model_class"]
    if cls_name not in _MODELS:
        _import_applications()
    if cls_name not in _MODELS:
        raise ExportError(f"{path} holds a {cls_name} model, which this deepfit does not know. Known models: "
                          f"{sorted(_MODELS)}.", f"Import the module that defines {cls_name} (and registers it with "
                          "deepfit.export.register_model) before calling load_learner.",
                          cli_hint="The deepfit command reads the models its own commands write; was the file written "
                                   "by a newer deepfit, or from Python with a model class of your own?")
    config = _json_field(path, meta, "model_config", "{}", dict)
    dls_state = _json_field(path, meta, "dls_state", "{}", dict)
    loss_config = _json_field(path, meta, "loss_config", "{}", dict)
    try:
        loss_from_name(meta["loss"])
    except ValueError as e:
        raise ExportError(f"{path} uses the loss {meta['loss']!r}, which this deepfit does not know: {e}") from None
    try:  # the loss's settings (e.g. the decoding threshold); files from before they were stored have none
        loss_func = loss_from_name(meta["loss"], loss_config)
    except (ValueError, TypeError) as e:
        raise ExportError(f"{path} has loss settings this deepfit cannot use ({meta.get('loss_config')!r}): "
                          f"{e}. Export the model again.") from None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ExportError(f"{path} is truncated or corrupted ({e}). Export the model again.") from None
    shell = _build_model(path, meta, config)
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    problems = state_dict_mismatches(shell, state)
    if problems:
        raise ExportError(f"The weights in {path} do not fit the {cls_name} described in its header "
                          f"({meta['model_config'][:200]}): " + "; ".join(problems)
                          + ". The file was probably edited or written by another version.")
    dls = _check_dls(path, meta, dls_state, {k[len("dls."):]: v for k, v in tensors.items() if k.startswith("dls.")},
                     shell)
    return CheckedExport(path, meta, _MODELS[cls_name], config, state, dls, dls_state, loss_func, shell)


_BUILD_ERRORS = (ValueError, TypeError, RuntimeError, OverflowError, NotImplementedError, RecursionError)


def _build_model(path: Path, meta: dict[str, str], config: dict[str, Any]) -> nn.Module:
    """The file's model, built on the `meta` device (shapes only: no memory, however large the config's sizes).
    A registered class whose constructor computes with tensor values cannot run there; it is built for real."""
    cls_name = meta["model_class"]
    cls = _MODELS[cls_name]

    def refuse(e: BaseException) -> ExportError:
        return ExportError(f"{path} describes a {cls_name} with a config this deepfit cannot build "
                           f"({meta['model_config'][:200]}): {_first_line(e)}. Was it written by another deepfit "
                           "version?")
    try:
        with torch.device("meta"):
            return cls(**config)
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise refuse(e) from None
    except (RuntimeError, NotImplementedError):
        pass  # e.g. `.item()` on a meta tensor, or a negative size: the real build says which
    try:
        return cls(**config)
    except _BUILD_ERRORS + (MemoryError,) as e:
        raise refuse(e) from None


def _on_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))


def _check_dls(path: Path, meta: dict[str, str], state: dict[str, Any], tensors: dict[str, torch.Tensor],
               model: nn.Module) -> Any:
    """The inference DataLoaders of the file's data state, checked field by field and against `model`."""
    name = meta.get("dls_class", "")
    if not name:
        return None
    if name not in _DLS:
        _import_applications()
    if name not in _DLS:
        raise ExportError(f"{path} needs the {name} data pipeline, which this deepfit does not know.")
    bad = check_state_fields(state, _DLS_FIELDS.get(name, {}))
    if bad:
        raise ExportError(f"{path} has a damaged data state (dls_state of its {name}): " + "; ".join(bad[:8])
                          + ". Export the model again.")
    try:
        dls = _DLS[name](state, tensors)
    except (KeyError, IndexError) as e:
        raise ExportError(f"{path} has a damaged data state (dls_state of its {name}): the field or tensor "
                          f"{_first_line(e)} is missing or unknown. Export the model again.") from None
    except (ValueError, TypeError, AttributeError, OverflowError, RuntimeError) as e:
        raise ExportError(f"{path} has a damaged data state (dls_state of its {name}): {_first_line(e)}. "
                          "Export the model again.") from None
    check = getattr(dls, "model_mismatches", None)
    problems = check(model) if callable(check) else []
    if problems:
        raise ExportError(f"{path}: its data state (dls_state of its {name}) does not fit its "
                          f"{meta['model_class']}: " + "; ".join(problems) + ". The file was probably edited.")
    return dls


def load_learner(path: str | Path, device: str | torch.device | None = None) -> "Learner":
    """Load a file written by `Learner.export` for inference (`predict`, `get_preds`).

    Every check of `check_export` runs first, so no memory is allocated for a file whose header asks for
    sizes that its tensors do not have.

    Raises:
        FileNotFoundError: there is no file at `path`.
        ExportError: the file is truncated/corrupted, from a newer format, its header or data state is damaged,
            or its weights do not fit the model described in it (the message names the file and the field).
        ValueError: `device` is not a device of this machine (the message lists the available ones).
    """
    from .learner import Learner
    if device is not None:
        device = parse_device(device)  # a ValueError listing the available devices, before reading anything
    checked = check_export(path)
    # the same sizes as the stored tensors (checked on `meta`), so this allocates no more than the file holds
    model = checked.model_class(**checked.config) if _on_meta(checked.shell) else checked.shell
    model.load_state_dict(checked.state, strict=True)
    model.eval()  # an exported model is for inference
    from .data.core import DataLoader, DataLoaders
    dls = checked.dls if checked.dls is not None else DataLoaders(DataLoader(torch.zeros(1, 1), torch.zeros(1), bs=1))
    if device is not None:
        dls.to(device)
    loss_func = checked.loss_func
    # an application's DataLoaders may name its Learner subclass (e.g. TabularLearner: get_preds(df))
    learner_cls = getattr(dls, "learner_class", None)
    if not (isinstance(learner_cls, type) and issubclass(learner_cls, Learner)):
        learner_cls = Learner
    learn = learner_cls(dls, model, loss_func=loss_func, progress=False)
    return learn


def _import_applications() -> None:
    # Importing an application registers its models and data pipelines.
    import importlib
    for mod in ("deepfit.collab", "deepfit.tabular", "deepfit.data.mnist", "deepfit.text", "deepfit.vision",
                "deepfit.vision.segment", "deepfit.seq2seq"):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
