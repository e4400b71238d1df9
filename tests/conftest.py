"""Shared fixtures: the real-data folder (skipped cleanly when absent) and small synthetic problems."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("DEEPFIT_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def data_path() -> Path:
    """The folder with the real data sets; the test is skipped when it is not there."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set DEEPFIT_DATA)")
    return root


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run the block with `n` torch threads, restoring the previous count afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models train fastest on one thread, and do not fight other
    processes for the cores. Modules use it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def one_thread_module():
    """`one_thread` for a whole module (so module-scoped fixtures that train run on one thread too)."""
    with torch_threads(1):
        yield


def make_regression_dls(n: int = 256, bs: int = 32, seed: int = 0, n_valid: int = 64):
    """y = 2x + 1 (+ a little noise), as DataLoaders of (x, y) with x of shape (n, 1)."""
    from deepfit import DataLoaders
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + n_valid, 1, generator=g)
    y = 2 * x[:, 0] + 1 + 0.05 * torch.randn(n + n_valid, generator=g)
    return DataLoaders.from_tensors(x[:n], y[:n], x[n:], y[n:], bs=bs, device="cpu", seed=seed)


class LinReg(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)

    def forward(self, x):
        return self.lin(x)[:, 0]


@pytest.fixture
def synth_learner():
    """A factory of tiny regression learners: synth_learner(**learner_kwargs)."""
    from deepfit import Learner, MSELoss

    def make(n: int = 256, bs: int = 32, seed: int = 0, model=None, **kw):
        torch.manual_seed(seed)
        kw.setdefault("progress", False)
        return Learner(make_regression_dls(n, bs, seed), model or LinReg(), loss_func=MSELoss(), **kw)
    return make
