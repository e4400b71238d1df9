"""The course examples run top to bottom as scripts (real MNIST when present, else generated digits)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, data_root

EXAMPLES = sorted((REPO / "examples").glob("mnist_*.py"))


def run_example(path: Path, data: Path, out: Path) -> str:
    # one thread: these small models get many times slower when 2 threads compete with other jobs for 2 cores
    env = dict(os.environ, DEEPFIT_DATA=str(data), DEEPFIT_OUT=str(out), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(path)], cwd=out, env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"{path.name} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def final_accuracy(stdout: str) -> float:
    """The last accuracy the example printed ("accuracy 0.91" lines, or the Learner's table)."""
    found = re.findall(r"accuracy (\d\.\d+)", stdout)
    if found:
        return float(found[-1])
    rows = [l.split() for l in stdout.splitlines() if re.match(r"^\s+\d+\s+\d", l)]
    return float(rows[-1][3])


def test_the_four_lessons_exist():
    assert [p.name for p in EXAMPLES] == ["mnist_01_hand_loop.py", "mnist_02_logistic_module.py",
                                         "mnist_03_sequential.py", "mnist_04_learner.py"]


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_learns(path, tmp_path):
    # the real data when present (as in the course), otherwise the generated digits
    stdout = run_example(path, data_root(), tmp_path)
    assert stdout.startswith("data: ")
    assert final_accuracy(stdout) >= 0.85
    if path.stem == "mnist_04_learner":
        assert {"loss.png", "schedule.png", "batch.png", "mlp.safetensors"} <= {p.name for p in tmp_path.iterdir()}
        assert re.search(r"first validation image: predicted \d \(p=[01]\.\d+\), true \d", stdout)


@pytest.mark.slow
def test_example_falls_back_to_synthetic_digits(tmp_path):
    stdout = run_example(EXAMPLES[0], tmp_path / "no-data-here", tmp_path)
    assert "synthetic digits" in stdout.splitlines()[0]
    assert final_accuracy(stdout) >= 0.85
