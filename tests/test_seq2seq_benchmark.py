"""benchmarks/translate_multi30k.py: the clock-driven schedule stops at the budget, and the speed comparison
runs the Learner and the hand loop on the same batches."""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

from deepfit.optim import set_hyper  # noqa: F401  (the script's import)
from deepfit.seq2seq import Seq2SeqDataLoaders

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "translate_multi30k.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_translate_multi30k", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _dls():
    src = ["ab cd ef", "cd ef", "ef ab cd ab", "ab"] * 20
    return Seq2SeqDataLoaders.from_texts(src, [s.upper() for s in src], valid_pct=0.1, bs=8, min_freq=1,
                                         device="cpu", seed=0)


def _args(**kw):
    base = dict(arch="gru", emb_sz=8, n_hid=8, n_layers=1, d_ff=None, no_valid_bleu=True, bs=8, speed_batches=3,
                repeats=1)
    base.update(kw)
    return argparse.Namespace(**base)


def test_timed_one_cycle_follows_the_clock_and_stops_at_the_budget(bench):
    dls = _dls()
    learn = bench.learner(dls, _args(), None)
    timed = bench.TimedOneCycle(0.0, 1e-2, bench.teacher_forcing_schedule(0.5, 0.3))
    learn.fit(5, 1e-2, cbs=[timed])
    assert timed.steps == 1 and timed.stopped_at == (0, 0)
    # at pos 1 the schedule's last values: lr_max / 1e5, teacher forcing "never"
    assert learn.opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 1e5)
    assert learn.model.teacher_forcing == 0.0
    slow = bench.TimedOneCycle(1e6, 1e-2)
    learn.fit(1, 1e-2, cbs=[slow])
    assert slow.steps == len(dls.train) and slow.stopped_at is None
    assert learn.opt.param_groups[0]["lr"] == pytest.approx(1e-2 / 25, rel=1e-3)  # still at the start


def test_speed_runs_both_sides_on_the_same_batches(bench):
    res = bench.speed(_dls(), _args())
    assert res["speed_batches"] == 3 and res["target_tokens"] > 0
    assert len(res["learner_cpu_s"]) == len(res["hand_cpu_s"]) == 1
    assert res["learner_tok_s"] > 0 and res["hand_tok_s"] > 0
