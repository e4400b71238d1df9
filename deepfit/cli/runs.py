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
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ..plotting import finish_figure, pyplot
from ..utils import atomic_path
from .base import COMPLETE_MARKER, INCOMPLETE_SUFFIX, STATUS_FILE, CLIError, Console, ReportItem

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunDir", "is_complete", "LOCK_FILE", "SETTINGS_FILE", "CHECKPOINT", "RunLock", "lock_holder", "busy_message",
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


class RunDir:
    """The output directory of one training run, written so that an unfinished run is never mistaken for
    a finished one.

    While the run works, everything goes into `<out>.incomplete/`, whose `STATUS` file says `running`
    (then `interrupted` or `failed: ...`). `finish()` writes the report, then `COMPLETE` as the very last
    file, and renames the directory to `<out>`. A directory named `<out>` therefore always holds a
    finished run.

    The run holds a lock on `<out>.incomplete/.lock` until `release()` (or until its process ends), so a
    second run aimed at the same `--out` is refused; an interrupted run's checkpoints are never thrown
    away unless `restart` is given (see `deepfit.cli.runs`).
    """

    def __init__(self, final: Path, work: Path) -> None:
        self.final, self.path = final, work
        self.items: list[ReportItem] = []
        self.summary: dict[str, Any] = {}
        self.t0 = time.time()
        self.lock: "RunLock | None" = None

    @staticmethod
    def check(out: Path, overwrite: bool = False, resume: bool = False, restart: bool = False) -> Path:
        """Fail early (before any data is read) when `out` cannot be used; returns `<out>.incomplete`.

        Refused besides unusable paths: a directory a live run is writing to, and (unless `resume` or
        `restart`) an unfinished run that holds a checkpoint."""
        out = Path(out)
        if resume and restart:
            raise CLIError("--resume continues an interrupted run and --restart discards it; give only one")
        if out.name in ("", ".", ".."):
            raise CLIError(f"--out {out} must name a new directory, e.g. runs/my-run")
        work = out.with_name(out.name + INCOMPLETE_SUFFIX)
        if out.exists() and not out.is_dir():
            raise CLIError(f"output {out} exists and is a file, not a directory; choose another --out")
        if out.exists() and any(out.iterdir()) and not overwrite:
            raise CLIError(f"output directory {out} already exists and is not empty; choose another --out or pass "
                           "--overwrite to replace it")
        if overwrite and out.is_dir() and any(out.iterdir()) and not (out / COMPLETE_MARKER).exists():
            raise CLIError(f"--overwrite only replaces finished deepfit runs, and {out} has no {COMPLETE_MARKER} "
                           "marker; remove it yourself or choose another --out")
        parent = out.parent
        probe = parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise CLIError(f"cannot create output directory {out}: {probe} is a file, not a directory")
        if work.is_dir():
            holder = lock_holder(work)
            if holder is not None:
                raise CLIError(busy_message(work, holder))
        if work.exists() and not (work / STATUS_FILE).exists() and (
                not work.is_dir() or any(p.name != LOCK_FILE for p in work.iterdir())):
            raise CLIError(f"{work} exists but is not a deepfit run directory; move it away or choose another --out")
        if resume and not work.is_dir():
            raise CLIError(f"--resume: there is no interrupted run at {work}")
        if work.is_dir() and not resume and not restart and has_checkpoint(work):
            raise CLIError(kept_checkpoints_message(work))
        if os.name == "posix" and os.geteuid() != 0 and not os.access(probe, os.W_OK):
            raise CLIError(f"cannot create output directory {out}: {probe} is not writable")
        return work

    @classmethod
    def create(cls, out: Path, overwrite: bool = False, resume: bool = False, restart: bool = False) -> "RunDir":
        """Check that `out` can be written, create `<out>.incomplete` (reused with `resume`; an earlier
        unfinished run there is replaced, but one with checkpoints only with `restart`) and take its lock.
        Call `release()` when the run ends."""
        out = Path(out)
        work = cls.check(out, overwrite, resume, restart)
        try:
            work.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CLIError(f"cannot write output directory {out}: {e.strerror or e}") from None
        lock = RunLock.acquire(work)  # from here on no other run writes into `work`
        try:
            if not resume:  # decided again under the lock: another run may have left files since `check`
                if has_checkpoint(work) and not restart:
                    raise CLIError(kept_checkpoints_message(work))
                for p in work.iterdir():  # an abandoned incomplete run of ours: start again
                    if p.name == LOCK_FILE:
                        continue
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                    else:
                        p.unlink()
            probe_file = work / ".write-test"
            probe_file.write_bytes(b"")
            probe_file.unlink()
        except OSError as e:
            lock.release()
            raise CLIError(f"cannot write output directory {out}: {e.strerror or e}") from None
        except BaseException:
            lock.release()
            raise
        run = cls(out, work)
        run.lock = lock
        run.set_status("running", f"pid {os.getpid()}")
        return run

    def release(self) -> None:
        """Give up the run directory's lock (at the end of the run; idempotent)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def file(self, name: str) -> Path:
        """Path of a file in the (working) run directory."""
        return self.path / name

    def set_status(self, state: str, detail: str = "") -> None:
        """Record the run's state (`running`, `interrupted`, `failed`) in the STATUS file."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        text = f"{state}\n{stamp}\n{detail}\n"
        with atomic_path(self.file(STATUS_FILE)) as tmp:
            tmp.write_text(text)

    def add_figure(self, name: str, title: str, draw: Callable[[Path], Any], caption: str = "",
                   console: Console | None = None) -> bool:
        """Draw a figure into `name` (PNG) with `draw(path)`; keep it for the report. A plot that fails
        is reported as a warning, never the end of a run whose model is already trained."""
        plt = pyplot()
        p = self.file(name)
        try:
            res = draw(p)
            # a returned figure (or axes) that `draw` did not save itself is saved here; closed either way
            fig = res if hasattr(res, "savefig") else res.get_figure() if hasattr(res, "get_figure") else None
            if fig is not None:
                if not p.exists():
                    finish_figure(fig, p, close=False)
                plt.close(fig)
        except Exception as e:  # noqa: BLE001 - a plot must not lose a trained model
            (console or Console()).warn(f"could not draw {title.lower()}: {type(e).__name__}: {e}")
            plt.close("all")
            return False
        if not p.exists():
            (console or Console()).warn(f"{title} produced no image")
            return False
        self.items.append(ReportItem("figure", title, name, caption))
        return True

    def add_table(self, title: str, df: Any, caption: str = "", csv_name: str | None = None) -> None:
        """A table for the report (also written as CSV when `csv_name` is given)."""
        if csv_name:
            df.to_csv(self.file(csv_name), index=False)
        self.items.append(ReportItem("table", title, df, caption))

    def add_text(self, title: str, text: str) -> None:
        self.items.append(ReportItem("text", title, text))

    def finish(self, title: str, config: dict[str, Any]) -> Path:
        """Write run.json and report.html, then COMPLETE last, and rename to the final name."""
        from .report import write_report
        self.summary["seconds"] = round(time.time() - self.t0, 2)
        info = {"config": config, "summary": self.summary}
        (self.file("run.json")).write_text(json.dumps(info, indent=2, default=str))
        write_report(self, title, config)
        files = sorted(p.name for p in self.path.iterdir() if p.name not in (STATUS_FILE, LOCK_FILE))
        self.file(STATUS_FILE).unlink(missing_ok=True)
        with atomic_path(self.file(COMPLETE_MARKER)) as marker:
            marker.write_text(f"finished {time.strftime('%Y-%m-%d %H:%M:%S')}\n" + "\n".join(files) + "\n")
        if self.final.exists():
            old = self.final.with_name(self.final.name + ".old")
            if old.exists():
                shutil.rmtree(old)
            self.final.rename(old)
            self.path.rename(self.final)
            shutil.rmtree(old)
        else:
            self.path.rename(self.final)
        self.path = self.final
        # the lock file moved with the directory (the lock is on the file, so it is held until here)
        (self.final / LOCK_FILE).unlink(missing_ok=True)
        self.release()
        return self.final


def is_complete(run_dir: str | Path) -> bool:
    """True when `run_dir` holds a finished run (the COMPLETE marker, written last, is there)."""
    return (Path(run_dir) / COMPLETE_MARKER).is_file()
