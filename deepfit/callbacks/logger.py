"""CSVLogger: one row per epoch appended to a CSV file as training goes."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .core import Callback

__all__ = ["CSVLogger"]


class CSVLogger(Callback):
    """Write the epoch log (epoch, train_loss, valid_loss, metrics, time) to `fname` (relative paths are
    under `learn.path`). Each row is flushed as soon as the epoch ends. `append=True` keeps earlier rows."""

    order = 80
    unique = True

    def __init__(self, fname: str | Path = "history.csv", append: bool = False) -> None:
        self.fname, self.append = Path(fname), append

    @property
    def path(self) -> Path:
        """The CSV file: `fname`, under `learn.path` when relative."""
        return self.fname if self.fname.is_absolute() else self.learner.path / self.fname

    def before_fit(self) -> None:
        from ..distributed import is_main_process
        # in a distributed run only rank 0 writes the file; lr_find's sweep is not training and must not
        # truncate the log of the last fit
        self._active = is_main_process() and not getattr(self.learner, "_quiet_fit", False)
        if not self._active:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists() and self.path.stat().st_size > 0
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.learner.recorder.metric_names, extrasaction="ignore")
        if not (self.append and exists):
            self._writer.writeheader()

    def after_epoch(self) -> None:
        if not self._active:
            return
        self._writer.writerow(self.learner.recorder.log[-1])
        self._file.flush()

    def after_fit(self) -> None:
        if self._active:
            self._file.close()

    def read_log(self) -> Any:
        """The logged rows as a pandas DataFrame."""
        import pandas as pd
        return pd.read_csv(self.path)
