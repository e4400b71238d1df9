"""The comparison benchmarks compare like with like: every method validates with the same batch size and
takes the same number of training steps, and fastai's two training loaders are what RESULTS.md says
they are. The fastai tests run only where fastai is installed (the benchmarks' own environment)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.usefixtures("one_thread")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def write_ratings(root: Path, n: int = 4000, seed: int = 0) -> Path:
    """A MovieLens-100k-shaped folder (u.data, u.item) of `n` random ratings."""
    g = np.random.default_rng(seed)
    root.mkdir()
    users, movies = g.integers(1, 60, n), g.integers(1, 90, n)
    ratings = np.clip(np.round(3 + (users % 5 - 2) * 0.5 + (movies % 3 - 1) + g.normal(0, 0.5, n)), 1, 5)
    pd.DataFrame({"u": users, "m": movies, "r": ratings.astype(int), "t": 0}).to_csv(
        root / "u.data", sep="\t", header=False, index=False)
    pd.DataFrame({"m": range(1, 90), "title": [f"movie {i}" for i in range(1, 90)]}).to_csv(
        root / "u.item", sep="|", header=False, index=False)
    return root


def run_main(mod: ModuleType, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", [f"{mod.__name__}.py", *argv])
    mod.main()


def table_rows(out: str) -> dict[tuple[str, int], list[str]]:
    """The final markdown table: (method, bs) -> cells."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[1].isdigit():
            rows[(cells[0], int(cells[1]))] = cells
    return rows


def test_collab_benchmark_uses_one_validation_batch_size_and_equal_steps(tmp_path, monkeypatch, capsys):
    mod = load_script("collab_ml100k")
    data = write_ratings(tmp_path / "ml")
    # 3,200 training rows at bs 300: 11 batches (the last one of 200 rows) for both
    run_main(mod, monkeypatch, ["--data", str(data), "--skip-fastai", "--bs", "300", "--val-bs", "500",
                                "--repeats", "3"])
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert set(rows) == {("deepfit", 300), ("hand", 300)}
    for cells in rows.values():
        assert cells[2:4] == ["500", "11"]  # validation batch size and training batches per epoch, as measured
    seeds = [line for line in out.splitlines() if line.strip().startswith("bs=300") and " seed " in line]
    assert len(seeds) == 6  # 3 runs of each method, interleaved
    assert [line.split()[2] for line in seeds] == ["deepfit", "hand"] * 3
    mses = [float(x) for x in out.split("valid MSE per seed:")[1].split()[2:5]]
    assert len(mses) == 3 and all(0.0 < m < 2.0 for m in mses)


def test_collab_benchmark_refuses_methods_that_do_different_work(tmp_path, monkeypatch):
    mod = load_script("collab_ml100k")
    data = write_ratings(tmp_path / "ml")
    make_hand = mod.METHODS["hand"]

    def hand_with_double_val_bs(df, valid_idx, bs, val_bs, seed):
        return make_hand(df, valid_idx, bs, 2 * val_bs, seed)
    monkeypatch.setitem(mod.METHODS, "hand", hand_with_double_val_bs)
    with pytest.raises(SystemExit, match="not like for like at bs=300"):
        run_main(mod, monkeypatch, ["--data", str(data), "--skip-fastai", "--bs", "300", "--repeats", "1"])


def test_fastai_default_loader_draws_with_replacement_and_shuffle_loader_does_not(tmp_path):
    pytest.importorskip("fastai")
    mod = load_script("collab_ml100k")
    df = mod.load_ratings(write_ratings(tmp_path / "ml", n=5000))
    valid_idx = np.arange(4000, 5000)
    default = mod.distinct_fraction(df, valid_idx, 300, "default", epochs=3)
    shuffle = mod.distinct_fraction(df, valid_idx, 300, "shuffle", epochs=3)
    assert default.startswith("TabWeightedDL, 4000 training rows, 14 batches/epoch")
    assert shuffle.startswith("TabDataLoader, 4000 training rows, 14 batches/epoch")
    fr_default = [float(x) for x in default.split("per epoch ")[1].split()]
    fr_shuffle = [float(x) for x in shuffle.split("per epoch ")[1].split()]
    assert fr_shuffle == [1.0] * 3
    assert all(abs(f - (1 - (1 - 1 / 4000) ** 4000)) < 0.02 for f in fr_default)  # about 1 - 1/e = 0.632
    # fastai, like deepfit and the hand loop, keeps the last incomplete batch (4000 = 13 x 300 + 100)
    for make in (mod.make_deepfit, mod.make_fastai, mod.make_fastai_shuffle, mod.make_hand):
        case = make(df, valid_idx, 300, 700, 42)
        assert (case.train_batches, case.val_bs) == (14, 700), make.__name__


def test_tabular_benchmark_runs_both_fastai_loaders_on_equal_work(tmp_path, monkeypatch, capsys):
    pytest.importorskip("fastai")
    mod = load_script("tabular_adult")
    g = np.random.default_rng(0)
    n = 2600
    table = {c: g.choice([f"{c}{k}" for k in range(4)], n) for c in mod.CAT}
    table.update({c: g.normal(40, 10, n).round() for c in mod.CONT})
    table[mod.Y] = np.where(table["age"] + g.normal(0, 5, n) > 40, ">50K", "<=50K")
    csv = tmp_path / "adult.csv"
    pd.DataFrame(table).to_csv(csv, index=False)
    # 2,080 training rows at bs 300: 6 full batches for both (both drop the last incomplete one)
    run_main(mod, monkeypatch, ["--csv", str(csv), "--bs", "300", "--epochs", "1", "--seeds", "42"])
    out = capsys.readouterr().out
    assert "fastai training loader at bs 300: TabWeightedDL, 2080 training rows, 6 batches/epoch" in out
    assert "fastai-shuffle training loader at bs 300: TabDataLoader, 2080 training rows, 6 batches/epoch" in out
    assert "bs=300 seed=42 (train batches/epoch, val bs) (6, 300): deepfit acc" in out
    assert " | fastai acc " in out and " | fastai-shuffle acc " in out
