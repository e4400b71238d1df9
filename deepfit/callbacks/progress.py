"""Progress display: nested epoch / batch bars on a terminal, one plain line per epoch elsewhere."""
from __future__ import annotations

import sys
import time
from typing import Any

from .core import Callback

__all__ = ["ProgressCallback", "format_row"]


def format_row(row: dict[str, Any], names: list[str]) -> str:
    """One line of the epoch table: the values of `row` under `names`, 12 characters each (floats
    with 6 decimals, `time` as mm:ss.ss, missing values blank)."""
    cells = []
    for n in names:
        v = row.get(n, "")
        if n == "time":
            v = f"{int(v // 60):02d}:{v % 60:05.2f}" if v != "" else ""
        elif isinstance(v, float):
            v = f"{v:.6f}"
        cells.append(f"{str(v):>12}")
    return "".join(cells)


class ProgressCallback(Callback):
    """Show training progress.

    On a terminal: an epoch bar and a batch bar (tqdm) whose postfix shows the smoothed loss a few times
    per second. Not on a terminal (logs, CI, notebooks captured to files): no bars, just the table of
    epoch results. `show_table=False` silences the table as well.
    """

    order = 60

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
        self._print("".join(f"{n:>12}" for n in names))

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
