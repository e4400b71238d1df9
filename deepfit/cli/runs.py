"""Guarding a run directory (`RunDir`): one live run per directory, an interrupted run's checkpoints kept
until the user asks to discard them, and `--resume` refused unless it repeats the interrupted run.

- **Lock.** A run holds an exclusive `flock` on `<out>.incomplete/.lock` for as long as it works. The
  operating system drops the lock when the process ends, however it ends (finished, Ctrl-C, crash,
  SIGKILL), so a lock is never left behind by a dead run; a second run aimed at the same `--out`
  stops at once with the first one's pid.
- **Settings.** A run records the options that decide what it computes (`settings.json`: data file and a
  hash of its contents, columns, model, epochs, lr, wd, batch size, seed, ...). `--resume` compares the
  options it is given with those and refuses any difference, naming each option with both values:
  resuming with other options would silently train something else than either run asked for.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..utils import atomic_path
from .base import CLIError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "SETTINGS_FILE", "CHECKPOINT", "RunLock", "lock_holder", "busy_message",
           "has_checkpoint", "kept_checkpoints_message", "run_settings", "record_settings", "check_resume", "FREE_OPTIONS"]

LOCK_FILE = ".lock"
SETTINGS_FILE = "settings.json"
#: where `--checkpoint-every N` writes, inside the run's working directory
CHECKPOINT = "checkpoints/checkpoint.pth"
#: options that do not change what a run computes, so a resumed run may give them other values
FREE_OPTIONS = frozenset({"quiet", "debug", "func", "app", "resume", "restart", "overwrite", "out",
                          "checkpoint_every", "lr_find_iters"})
# options shown under another name than --<dest>; `True` when the flag stores the opposite of its dest
_SHOWN_AS = {"file": ("FILE", False), "header": ("--no-header", True), "command": ("the command", False),
             "app_name": ("the application", False)}
_ACQUIRE_WAIT_S = 1.0  # how long `RunLock.acquire` retries (another process may be probing the lock)


# ---- the lock ------------------------------------------------------------------------------------------
def busy_message(work: Path, pid: int | None) -> str:
    who = f"another deepfit run (pid {pid})" if pid else "another deepfit run"
    return (f"{who} is writing to {work}; wait until it ends, or choose another --out (two runs in one "
            "directory would overwrite each other's files)")


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


class RunLock:
    """An exclusive lock on `<work>/.lock`, held from `acquire` until `release` or the end of the process."""

    def __init__(self, fd: int | None, path: Path) -> None:
        self.fd, self.path = fd, path

    @classmethod
    def acquire(cls, work: Path) -> "RunLock":
        """Take the lock of the run directory `work` (which must exist) and write our pid into it.

        Raises:
            CLIError: a live process holds it (the message names its pid).
        """
        path = Path(work) / LOCK_FILE
        if fcntl is None:  # pragma: no cover
            return cls(None, path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CLIError(f"cannot write output directory {work}: {e.strerror or e}") from None
        deadline = time.monotonic() + _ACQUIRE_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:  # a `lock_holder` probe holds it for a moment
                    time.sleep(0.05)
                    continue
                pid = _read_pid(fd)
                os.close(fd)
                raise CLIError(busy_message(work, pid)) from None
        try:  # the holder we waited for may have finished and moved the directory (and its lock file) away
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        if not same:
            os.close(fd)
            raise CLIError(busy_message(work, None))
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(fd, path)

    def release(self) -> None:
        """Give the lock up (idempotent); the lock file itself stays."""
        if self.fd is not None:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = None


def lock_holder(work: Path) -> int | None:
    """The pid of the live run holding `<work>/.lock` (0 when its pid is not yet written), or None when
    no live run holds it."""
    path = Path(work) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # compatible with other probes, not with a run
        except BlockingIOError:
            return _read_pid(fd) or 0
        return None
    finally:
        os.close(fd)  # also drops our shared lock


# ---- what an interrupted run left ----------------------------------------------------------------------
def has_checkpoint(work: Path) -> bool:
    """True when the run directory `work` holds an exact-resume checkpoint."""
    return (Path(work) / CHECKPOINT).is_file()


def _status_line(work: Path) -> str:
    try:
        lines = (Path(work) / "STATUS").read_text().splitlines()
    except OSError:
        return ""
    return " ".join(x for x in (lines[0] if lines else "", lines[2] if len(lines) > 2 else "") if x).strip()


def kept_checkpoints_message(work: Path) -> str:
    status = _status_line(work)
    return (f"{work} holds an unfinished run{f' ({status})' if status else ''} with a checkpoint in "
            f"{work / CHECKPOINT}; it is kept until you say what to do with it: add --resume to continue that "
            "run, or --restart to discard its checkpoints and start over (or choose another --out)")


# ---- settings --------------------------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v.expanduser().resolve())
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The options of `args` that decide what a run computes (all but `FREE_OPTIONS`), JSON-ready, with
    paths made absolute."""
    out = {k: _plain(v) for k, v in sorted(vars(args).items()) if k not in FREE_OPTIONS}
    return json.loads(json.dumps(out, default=str))  # as read back from settings.json


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _data_file(args: argparse.Namespace) -> Path | None:
    f = getattr(args, "file", None)
    return Path(f) if f is not None and Path(f).is_file() else None


def record_settings(work: Path, args: argparse.Namespace) -> None:
    """Write `settings.json` into the new run directory `work`; with `--checkpoint-every`, also the
    SHA-256 of the data file, so that `--resume` can tell when the data changed."""
    info: dict[str, Any] = {"settings": run_settings(args)}
    data = _data_file(args)
    if data is not None and getattr(args, "checkpoint_every", 0):
        info["data_sha256"] = _file_digest(data)
    with atomic_path(Path(work) / SETTINGS_FILE) as tmp:
        tmp.write_text(json.dumps(info, indent=2, default=str))


def _flag(key: str) -> tuple[str, bool]:
    return _SHOWN_AS.get(key, ("--" + key.replace("_", "-"), False))


def _show(v: Any, inverted: bool = False) -> str:
    if isinstance(v, bool):
        return "given" if v != inverted else "not given"
    if v is None:
        return "not given"
    if isinstance(v, list):
        flat = [x for p in v for x in (p if isinstance(p, list) else [p])]
        return ",".join(map(str, flat)) if flat else "none"
    return str(v)


def check_resume(work: Path, args: argparse.Namespace) -> None:
    """Before `--resume` reads any data: the interrupted run in `work` has a readable deepfit checkpoint
    and was started with the same settings as `args` (and, when recorded, the same data file contents).

    Raises:
        CLIError: no checkpoint; a checkpoint that is truncated, corrupted, not a deepfit checkpoint or
            holding pickled objects (named, never unpickled); or settings that differ (each one named
            with its recorded and its new value).
    """
    from ..callbacks.checkpoint import CheckpointError, load_checkpoint
    work = Path(work)
    ckpt = work / CHECKPOINT
    if not ckpt.is_file():
        raise CLIError(f"--resume: no checkpoint at {ckpt} (the interrupted run was started without "
                       "--checkpoint-every N, or stopped before its first checkpoint); train without --resume")
    try:
        load_checkpoint(ckpt)
    except CheckpointError as e:
        raise CLIError(f"--resume: {e} Start over with --restart (discarding it), or choose another --out") from None
    except OSError as e:
        raise CLIError(f"--resume: cannot read the checkpoint {ckpt}: {e.strerror or e}") from None
    try:
        recorded = json.loads((work / SETTINGS_FILE).read_text())
    except FileNotFoundError:
        return  # a run from a deepfit that did not record its settings: the checkpoint's own checks apply
    except (OSError, ValueError) as e:
        raise CLIError(f"--resume: cannot read {work / SETTINGS_FILE} ({e}); it records the interrupted run's "
                       "settings. Start over with --restart, or choose another --out") from None
    old, new = recorded.get("settings", {}), run_settings(args)
    diffs = []
    for k in sorted(set(old) | set(new)):
        if k in FREE_OPTIONS or old.get(k) == new.get(k):
            continue
        name, inverted = _flag(k)
        diffs.append(f"{name}: {_show(old.get(k), inverted)} in the interrupted run, {_show(new.get(k), inverted)} now")
    if diffs:
        raise CLIError(f"--resume continues the interrupted run in {work} exactly as it was started, but "
                       f"{'this option differs' if len(diffs) == 1 else 'these options differ'}: "
                       + "; ".join(diffs) + ". Drop the changed options (or give them the interrupted run's values) "
                       "to resume, or start a new run: another --out, or --restart to discard the checkpoints "
                       f"in {work} and start over")
    data = _data_file(args)
    if data is not None and recorded.get("data_sha256") and _file_digest(data) != recorded["data_sha256"]:
        raise CLIError(f"--resume: the data file {data} has changed since the interrupted run started (its "
                       "contents differ), so the checkpoint does not belong to it. Resume with the original file, "
                       "or start a new run: another --out, or --restart to discard the checkpoints and start over")
