"""Progress display: nested epoch / batch bars on a terminal, one plain line per epoch elsewhere."""
from __future__ import annotations

import math
import numbers
import sys
import time
from typing import Any

from .core import Callback

__all__ = ["ProgressCallback", "format_row", "format_header", "format_value"]


#: Width of a table column (at least; a longer metric name widens its column).
COL_WIDTH = 11


def format_value(v: Any) -> str:
    """One number of the epoch table, at most 11 characters for positive values.

    Floats show 6 decimals while that keeps about 7 significant digits in 11 characters (below
    10 000), fewer decimals up to 9 999 999, and scientific notation (`1.2346e+08`) beyond, or for
    non-zero values below 1e-4 that 6 decimals would show as zeros. `nan`/`inf` as such; other values
    (the epoch number) as `str`."""
    if isinstance(v, (bool, numbers.Integral)) or not isinstance(v, numbers.Real):
        return str(v)
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a != 0 and (a >= 1e7 or a < 1e-4):
        return f"{v:.4e}"
    n_int = len(str(int(a)))  # digits before the point
    return f"{v:.{min(6, 10 - n_int)}f}"


def column_widths(names: list[str]) -> list[int]:
    """The width of each column of the epoch table: `COL_WIDTH`, or the name's length when longer."""
    return [max(COL_WIDTH, len(n)) for n in names]


def format_row(row: dict[str, Any], names: list[str]) -> str:
    """One line of the epoch table: the values of `row` under `names` (see `format_value`; `time` as
    mm:ss.ss, missing values blank), each right-aligned in its column (`column_widths`) after one
    space, so that neighbouring values never run together, even when one is wider than its column."""
    cells = []
    for n, w in zip(names, column_widths(names)):
        v = row.get(n, "")
        if n == "time":
            v = f"{int(v // 60):02d}:{v % 60:05.2f}" if v != "" else ""
        else:
            v = format_value(v)
        cells.append(" " + f"{v:>{w}}")
    return "".join(cells)


def format_header(names: list[str]) -> str:
    """The header line of the epoch table, aligned with `format_row`."""
    return "".join(" " + f"{n:>{w}}" for n, w in zip(names, column_widths(names)))


class ProgressCallback(Callback):
    """Show training progress.

    On a terminal: an epoch bar and a batch bar (tqdm) whose postfix shows the smoothed loss a few times
    per second. Not on a terminal (logs, CI, notebooks captured to files): no bars, just the table of
    epoch results. `show_table=False` silences the table as well.
    """

    order = 60
    unique = True

    def __init__(self, show_table: bool = True, refresh_s: float = 0.5) -> None:
        self.show_table, self.refresh_s = show_table, refresh_s
        self._bar: Any = None
        self._ebar: Any = None

    @property
    def interactive(self) -> bool:
        """Whether progress bars are shown: stderr is a terminal."""
        return sys.stderr.isatty()

    def _print(self, text: str) -> None:
        if not self.show_table:
            return
        if self._ebar is not None:
            from tqdm.auto import tqdm
            tqdm.write(text)
        else:
            print(text, flush=True)

    def before_fit(self) -> None:
        learn = self.learner
        from ..distributed import is_main_process
        self._quiet = getattr(learn, "_quiet_fit", False) or not is_main_process()  # only rank 0 shows progress
        if self._quiet:
            return
        names = learn.recorder.metric_names
        self._names = names
        self._ebar = None
        if self.interactive:
            from tqdm.auto import tqdm
            self._ebar = tqdm(total=learn.n_epoch - learn.start_epoch, desc="epochs", position=0, leave=False)
        self._print(format_header(names))

    def before_train(self) -> None:
        self._start_bar(len(self.learner.dls.train), "train")

    def before_validate(self) -> None:
        if self.learner.dl is not None:
            self._start_bar(len(self.learner.dl), "valid")

    def _start_bar(self, total: int, desc: str) -> None:
        if getattr(self, "_quiet", True) or not self.interactive:
            return
        from tqdm.auto import tqdm
        self._close_bar()
        self._bar = tqdm(total=total, desc=desc, position=1, leave=False)
        self._last = time.perf_counter()

    def after_batch(self) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        now = time.perf_counter()
        if self.learner.training and now - self._last > self.refresh_s and self.learner.loss is not None:
            self._bar.set_postfix(loss=f"{float(self.learner.loss):.4f}")
            self._last = now

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def after_train(self) -> None:
        self._close_bar()

    def after_validate(self) -> None:
        self._close_bar()

    def after_epoch(self) -> None:
        if getattr(self, "_quiet", True):
            return
        self._print(format_row(self.learner.recorder.log[-1], self._names))
        if self._ebar is not None:
            self._ebar.update(1)

    def after_fit(self) -> None:
        self._close_bar()
        if self._ebar is not None:
            self._ebar.close()
            self._ebar = None
