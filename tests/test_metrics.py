"""Tests for deepfit.metrics: agreement with scikit-learn, exact accumulation over batches."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import Tensor

from deepfit.metrics import (
    AccumMetric,
    AvgMetric,
    F1Score,
    Metric,
    R2Score,
    RMSE,
    RocAucBinary,
    accuracy,
    error_rate,
    exp_rmspe,
    mae,
    mse,
    r2_score,
    rmse,
    to_metric,
)

SIZES = [1, 7, 64, 3, 50, 2, 33]  # uneven batches, N = 160
N = sum(SIZES)


def batches(*tensors: Tensor, sizes: list[int] = SIZES) -> Iterator[tuple[Tensor, ...]]:
    i = 0
    for s in sizes:
        yield tuple(t[i : i + s] for t in tensors)
        i += s
    assert i == tensors[0].shape[0]


def run(metric: object, pred: Tensor, targ: Tensor, sizes: list[int] = SIZES) -> float:
    m = to_metric(metric)
    m.reset()
    for p, t in batches(pred, targ, sizes=sizes):
        m.accumulate(p, t)
    return m.value


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def regression_data(
    gen: torch.Generator, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    targ = torch.randn(N, generator=gen, dtype=dtype) * 3 + 10
    pred = (targ + torch.randn(N, generator=gen, dtype=dtype)).unsqueeze(1)  # (N, 1) output
    return pred, targ


# ----------------------------------------------------------------------------------------------
# Classification
# ----------------------------------------------------------------------------------------------
def test_accuracy_and_error_rate_multiclass(gen: torch.Generator) -> None:
    logits = torch.randn(N, 5, generator=gen)
    targ = torch.randint(0, 5, (N,), generator=gen)
    expected = skm.accuracy_score(targ.numpy(), logits.argmax(1).numpy())
    assert 0.1 < expected < 0.5
    assert math.isclose(run(accuracy, logits, targ), expected, rel_tol=1e-12)
    assert math.isclose(run(error_rate, logits, targ), 1 - expected, rel_tol=1e-12)
    assert math.isclose(float(accuracy(logits, targ)), expected, rel_tol=1e-6)


def test_accuracy_single_logit_binary(gen: torch.Generator) -> None:
    logits = torch.randn(N, 1, generator=gen)
    targ = torch.randint(0, 2, (N,), generator=gen)
    expected = skm.accuracy_score(targ.numpy(), (logits[:, 0] > 0).long().numpy())
    assert math.isclose(run(accuracy, logits, targ), expected, rel_tol=1e-12)
    # (N,) logits with float 0./1. targets (BCE style) give the same
    assert math.isclose(run(accuracy, logits[:, 0], targ.float()), expected, rel_tol=1e-12)
    # integer predictions are labels
    labels = (logits[:, 0] > 0).long()
    assert math.isclose(run(accuracy, labels, targ), expected, rel_tol=1e-12)


def test_accuracy_sequence_outputs(gen: torch.Generator) -> None:
    logits = torch.randn(N, 4, 3, generator=gen)  # (N, T, C)
    targ = torch.randint(0, 3, (N, 4), generator=gen)
    expected = skm.accuracy_score(targ.reshape(-1).numpy(), logits.argmax(-1).reshape(-1).numpy())
    assert math.isclose(run(accuracy, logits, targ), expected, rel_tol=1e-12)


def test_accuracy_shape_mismatch_message() -> None:
    with pytest.raises(ValueError, match=r"accuracy.*\(4, 3\).*\(5,\)"):
        accuracy(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("average", ["binary", "macro", "micro", "weighted"])
def test_f1_binary_data(gen: torch.Generator, average: str) -> None:
    logits = torch.randn(N, 2, generator=gen)
    targ = torch.randint(0, 2, (N,), generator=gen)
    expected = skm.f1_score(targ.numpy(), logits.argmax(1).numpy(), average=average)
    assert math.isclose(run(F1Score(average=average), logits, targ), expected, rel_tol=1e-12)


def test_f1_single_logit_and_threshold(gen: torch.Generator) -> None:
    logits = torch.randn(N, 1, generator=gen)
    targ = torch.randint(0, 2, (N,), generator=gen)
    expected = skm.f1_score(targ.numpy(), (logits[:, 0] > 0).numpy().astype(int))
    assert math.isclose(run(F1Score(), logits, targ), expected, rel_tol=1e-12)
    probs = torch.sigmoid(logits)
    expected = skm.f1_score(targ.numpy(), (probs[:, 0] > 0.7).numpy().astype(int))
    assert math.isclose(run(F1Score(thresh=0.7), probs, targ), expected, rel_tol=1e-12)


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_f1_multiclass_with_absent_class(gen: torch.Generator, average: str) -> None:
    # 6 output columns, but class 5 never occurs in targets nor predictions and class 4 only in
    # the targets: sklearn averages over labels present in either.
    logits = torch.randn(N, 6, generator=gen)
    logits[:, 4:] -= 100.0
    targ = torch.randint(0, 5, (N,), generator=gen)
    pc = logits.argmax(1).numpy()
    assert 5 not in pc and 4 not in pc and 4 in targ.numpy()
    expected = skm.f1_score(targ.numpy(), pc, average=average, zero_division=0)
    assert math.isclose(run(F1Score(average=average), logits, targ), expected, rel_tol=1e-12)


def test_f1_integer_labels_need_num_classes(gen: torch.Generator) -> None:
    targ = torch.randint(0, 4, (N,), generator=gen)
    pred = torch.randint(0, 4, (N,), generator=gen)
    expected = skm.f1_score(targ.numpy(), pred.numpy(), average="macro")
    m = F1Score(average="macro", num_classes=4)
    assert math.isclose(run(m, pred, targ), expected, rel_tol=1e-12)
    cm = to_metric(m)
    cm.accumulate(pred, targ)
    assert isinstance(cm, F1Score)
    np.testing.assert_array_equal(
        cm.confusion_matrix.numpy(), skm.confusion_matrix(targ.numpy(), pred.numpy())
    )


def test_f1_errors() -> None:
    with pytest.raises(ValueError, match=r"average must be one of .*'binary'.*got 'samples'"):
        F1Score(average="samples")
    with pytest.raises(ValueError, match=r"average='binary' needs 2 classes.*3"):
        F1Score().accumulate(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    m = F1Score(average="macro")
    m.accumulate(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="number of classes changed"):
        m.accumulate(torch.zeros(4, 4), torch.zeros(4, dtype=torch.long))


def test_roc_auc_with_ties(gen: torch.Generator) -> None:
    # scores rounded to one decimal: many ties, inside and across classes and batches
    targ = torch.randint(0, 2, (N,), generator=gen)
    score = torch.round((torch.rand(N, generator=gen) + 0.3 * targ) * 10) / 10
    assert len(torch.unique(score)) < 20
    expected = skm.roc_auc_score(targ.numpy(), score.numpy())
    assert math.isclose(run(RocAucBinary(), score, targ), expected, rel_tol=1e-12)
    assert math.isclose(run(RocAucBinary(), score.unsqueeze(1), targ), expected, rel_tol=1e-12)
    # all-tied scores give 0.5
    assert run(RocAucBinary(), torch.zeros(N), targ) == 0.5


def test_roc_auc_two_logits_and_float_targets(gen: torch.Generator) -> None:
    logits = torch.randn(N, 2, generator=gen, dtype=torch.float64)
    targ = torch.randint(0, 2, (N,), generator=gen)
    prob1 = torch.softmax(logits, 1)[:, 1].numpy()
    expected = skm.roc_auc_score(targ.numpy(), prob1)
    assert math.isclose(run(RocAucBinary(), logits, targ), expected, rel_tol=1e-12)
    assert math.isclose(run(RocAucBinary(), logits, targ.double()), expected, rel_tol=1e-12)


def test_roc_auc_single_class_is_nan_with_warning() -> None:
    m = RocAucBinary()
    m.accumulate(torch.randn(5), torch.ones(5, dtype=torch.long))
    with pytest.warns(RuntimeWarning, match="only one class"):
        assert math.isnan(m.value)


# ----------------------------------------------------------------------------------------------
# Regression
# ----------------------------------------------------------------------------------------------
def test_mse_mae_rmse_r2_against_sklearn(gen: torch.Generator) -> None:
    pred, targ = regression_data(gen)
    y, p = targ.numpy(), pred[:, 0].numpy()
    assert math.isclose(run(mse, pred, targ), skm.mean_squared_error(y, p), rel_tol=1e-12)
    assert math.isclose(run(mae, pred, targ), skm.mean_absolute_error(y, p), rel_tol=1e-12)
    expected_rmse = math.sqrt(skm.mean_squared_error(y, p))
    assert math.isclose(run(rmse, pred, targ), expected_rmse, rel_tol=1e-12)
    assert math.isclose(run(r2_score, pred, targ), skm.r2_score(y, p), rel_tol=1e-10)


def test_rmse_is_not_mean_of_batch_rmses(gen: torch.Generator) -> None:
    pred, targ = regression_data(gen)
    pred[:10] += 5.0  # make batches differ a lot
    exact = math.sqrt(skm.mean_squared_error(targ.numpy(), pred[:, 0].numpy()))
    batch_rmses = [math.sqrt(float(mse(p, t))) for p, t in batches(pred, targ)]
    naive = float(np.average(batch_rmses, weights=SIZES))
    assert abs(naive - exact) > 0.1
    assert math.isclose(run(rmse, pred, targ), exact, rel_tol=1e-12)
    # same for r2: exact over batches although per-batch r2s average to something else
    exact_r2 = skm.r2_score(targ.numpy(), pred[:, 0].numpy())
    naive_r2 = np.average(
        [skm.r2_score(t.numpy(), p[:, 0].numpy()) for p, t in batches(pred, targ, sizes=[40] * 4)]
    )
    assert abs(naive_r2 - exact_r2) > 1e-3
    assert math.isclose(run(r2_score, pred, targ, sizes=[40] * 4), exact_r2, rel_tol=1e-10)


def test_results_do_not_depend_on_batching(gen: torch.Generator) -> None:
    pred, targ = regression_data(gen)
    for m in (mse, mae, rmse, r2_score, exp_rmspe):
        one = run(m, pred, targ, sizes=[N])
        many = run(m, pred, targ)
        singles = run(m, pred, targ, sizes=[1] * N)
        assert math.isclose(one, many, rel_tol=1e-11) and math.isclose(one, singles, rel_tol=1e-11)


def test_r2_large_offset_is_stable(gen: torch.Generator) -> None:
    # targets with a big mean and small spread: the naive sum-of-squares formula would lose
    # everything to cancellation.
    targ = 1e8 + torch.randn(N, generator=gen, dtype=torch.float64)
    pred = targ + 0.5 * torch.randn(N, generator=gen, dtype=torch.float64)
    expected = skm.r2_score(targ.numpy(), pred.numpy())
    assert math.isclose(run(R2Score(), pred, targ), expected, rel_tol=1e-7)


def test_r2_degenerate_cases() -> None:
    m = to_metric(r2_score)
    m.accumulate(torch.tensor([1.0]), torch.tensor([2.0]))
    assert math.isnan(m.value)
    assert run(r2_score, torch.full((N,), 3.0), torch.full((N,), 3.0)) == 1.0
    assert run(r2_score, torch.full((N,), 2.0), torch.full((N,), 3.0)) == 0.0


def test_exp_rmspe(gen: torch.Generator) -> None:
    targ = torch.rand(N, generator=gen, dtype=torch.float64) * 3 + 2  # log targets
    pred = (targ + 0.1 * torch.randn(N, generator=gen, dtype=torch.float64)).unsqueeze(1)
    t, p = np.exp(targ.numpy()), np.exp(pred[:, 0].numpy())
    expected = math.sqrt(np.mean(((t - p) / t) ** 2))
    assert math.isclose(run(exp_rmspe, pred, targ), expected, rel_tol=1e-10)
    assert exp_rmspe.name == "exp_rmspe"


def test_float32_inputs(gen: torch.Generator) -> None:
    pred, targ = regression_data(gen, dtype=torch.float32)
    y, p = targ.double().numpy(), pred[:, 0].double().numpy()
    expected_rmse = math.sqrt(skm.mean_squared_error(y, p))
    assert math.isclose(run(rmse, pred, targ), expected_rmse, rel_tol=1e-9)
    assert math.isclose(run(r2_score, pred, targ), skm.r2_score(y, p), rel_tol=1e-9)


def test_regression_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"rmse.*\(4, 2\).*\(4,\)"):
        rmse.__call__(torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match=r"mse"):
        mse(torch.zeros(2, 2), torch.zeros(4))
    # (N, k) vs (N, k) multi-output is flattened
    a, b = torch.arange(6.0).reshape(3, 2), torch.zeros(3, 2)
    assert math.isclose(float(mse(a, b)), 55 / 6, rel_tol=1e-12)


# ----------------------------------------------------------------------------------------------
# Metric plumbing
# ----------------------------------------------------------------------------------------------
def test_to_metric_and_names() -> None:
    ms = [to_metric(m) for m in [accuracy, error_rate, mse, mae, rmse, r2_score, exp_rmspe]]
    assert [m.name for m in ms] == [
        "accuracy", "error_rate", "mse", "mae", "rmse", "r2_score", "exp_rmspe"
    ]
    assert all(isinstance(m, AvgMetric) for m in ms[:4])
    ms = [to_metric(m) for m in [F1Score(), RocAucBinary(), F1Score, RMSE]]
    assert [m.name for m in ms] == ["f1score", "rocaucbinary", "f1score", "rmse"]
    assert to_metric(F1Score(average="macro", name="f1_macro")).name == "f1_macro"
    assert to_metric(functools.partial(accuracy)).name == "accuracy"
    assert AvgMetric(lambda p, t: (p - t).abs().mean(), name="my_mae").name == "my_mae"

    def MyScore(pred: Tensor, targ: Tensor) -> Tensor:  # noqa: N802
        return pred.mean()

    assert to_metric(MyScore).name == "myscore"


def test_to_metric_returns_fresh_copies() -> None:
    shared = RMSE()
    shared.accumulate(torch.tensor([1.0]), torch.tensor([0.0]))
    a, b = to_metric(shared), to_metric(shared)
    assert a is not shared and a is not b
    assert math.isnan(a.value)
    a.accumulate(torch.tensor([3.0]), torch.tensor([0.0]))
    assert math.isnan(b.value) and a.value == 3.0 and shared.value == 1.0
    # one-shot call leaves the module-level instance untouched
    assert rmse(torch.tensor([[3.0], [4.0]]), torch.tensor([0.0, 0.0])) == math.sqrt(12.5)
    assert math.isnan(rmse.value)


def test_to_metric_type_errors() -> None:
    with pytest.raises(TypeError, match=r"metric must be .*got int 3"):
        to_metric(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="subclass deepfit.metrics.Metric"):
        to_metric(dict)


def test_reset_and_empty_value(gen: torch.Generator) -> None:
    for obj in (accuracy, rmse, r2_score, F1Score(), RocAucBinary(), AccumMetric(lambda p, t: 0.0)):
        m = to_metric(obj)
        assert math.isnan(m.value)
    m = to_metric(accuracy)
    m.accumulate(torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    assert m.value == 0.0
    m.reset()
    m.accumulate(torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    assert m.value == 1.0


def test_avg_metric_is_batch_size_weighted() -> None:
    m = AvgMetric(lambda p, t: (p == t).float().mean(), name="eq")
    m.accumulate(torch.tensor([1, 1, 1]), torch.tensor([1, 1, 1]))  # 3 of 3
    m.accumulate(torch.tensor([1]), torch.tensor([0]))  # 0 of 1
    assert m.value == 0.75


def test_accum_metric(gen: torch.Generator) -> None:
    pred, targ = regression_data(gen)

    def median_ae(p: Tensor, t: Tensor) -> Tensor:
        return (p[:, 0] - t).abs().median()

    m = AccumMetric(median_ae)
    assert m.name == "median_ae"
    expected = skm.median_absolute_error(targ.numpy(), pred[:, 0].numpy())
    # torch.median returns the lower of the two middle values for even N
    lower = float(np.sort(np.abs(targ.numpy() - pred[:, 0].numpy()))[N // 2 - 1])
    got = run(m, pred, targ)
    assert got == lower and abs(got - expected) < 0.05


def test_accumulate_does_not_track_gradients(gen: torch.Generator) -> None:
    pred = torch.randn(8, 1, requires_grad=True)
    targ = torch.randn(8)
    for obj in (mse, rmse, r2_score, RocAucBinary()):
        m = to_metric(obj)
        m.accumulate(pred, targ if not isinstance(m, RocAucBinary) else (targ > 0).long())
        assert isinstance(m.value, float)


def test_custom_metric_subclass() -> None:
    class MaxErr(Metric):
        def reset(self) -> None:
            self.m = torch.tensor(0.0)

        def accumulate(self, pred: Tensor, targ: Tensor) -> None:
            self.m = torch.maximum(self.m, (pred - targ).abs().max())

        @property
        def value(self) -> float:
            return float(self.m)

    m = to_metric(MaxErr)
    assert m.name == "maxerr"
    m.accumulate(torch.tensor([1.0, 5.0]), torch.tensor([0.0, 0.0]))
    assert m.value == 5.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_accumulate_does_not_sync_on_cuda() -> None:
    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    logits = torch.randn(64, 3, device=dev, generator=g)
    ctarg = torch.randint(0, 3, (64,), device=dev, generator=g)
    blogits = torch.randn(64, 1, device=dev, generator=g)
    btarg = torch.randint(0, 2, (64,), device=dev, generator=g)
    rpred = torch.randn(64, 1, device=dev, generator=g)
    rtarg = torch.randn(64, device=dev, generator=g)
    cases: list[tuple[object, Tensor, Tensor]] = [
        (accuracy, logits, ctarg),
        (error_rate, blogits, btarg),
        (F1Score(average="macro"), logits, ctarg),
        (F1Score(), blogits, btarg),
        (RocAucBinary(), blogits, btarg),
        (mse, rpred, rtarg),
        (mae, rpred, rtarg),
        (rmse, rpred, rtarg),
        (r2_score, rpred, rtarg),
        (exp_rmspe, rpred, rtarg),
    ]
    ms = [to_metric(c[0]) for c in cases]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            for m, (_, p, t) in zip(ms, cases):
                m.accumulate(p, t)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for m, (_, p, t) in zip(ms, cases):
        ref = to_metric(m)
        for _ in range(3):
            ref.accumulate(p.cpu(), t.cpu())
        assert math.isclose(m.value, ref.value, rel_tol=1e-5, abs_tol=1e-7), m.name
