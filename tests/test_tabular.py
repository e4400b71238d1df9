"""Tabular application: DataLoaders from DataFrames, the entity-embedding model, the learner,
prediction on raw rows, export, interpretation and clear errors on bad tables."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import deepfit
from deepfit import CrossEntropyLoss, MSELoss, load_learner, set_seed
from deepfit.metrics import accuracy, exp_rmspe, mae, rmse
from deepfit.tabular import (Categorify, FillMissing, Normalize, TabularDataError, TabularDataLoaders,
                             TabularLearner, TabularModel, add_datepart, cont_cat_split, tabular_learner)
from deepfit.tabular.model import emb_sz_rule, get_emb_sz


pytestmark = pytest.mark.usefixtures("one_thread_module")


def make_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """label = 'yes' when color is red or x > 0.5; `noise` and `size` are unrelated; gaps in x and color."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "green", "blue"], n)
    x = rng.normal(0, 1, n)
    label = np.where((color == "red") | (x > 0.5), "yes", "no")
    df = pd.DataFrame({"color": color, "size": rng.choice(["S", "M", "L"], n), "x": x,
                       "noise": rng.normal(5, 2, n), "label": label})
    df.loc[df.index[::17], "x"] = np.nan
    df.loc[df.index[::23], "color"] = None
    return df


def fit_table(n: int = 800, epochs: int = 4, seed: int = 0, **dls_kw) -> TabularLearner:
    df = make_table(n, seed)
    kw = dict(cat_names=["color", "size"], cont_names=["x", "noise"], y_names="label", valid_pct=0.25, seed=seed,
              bs=64, device="cpu")
    kw.update(dls_kw)
    dls = TabularDataLoaders.from_df(df, **kw)
    set_seed(seed)
    learn = tabular_learner(dls, layers=[32, 16], progress=False)
    learn.fit_one_cycle(epochs, 3e-2)
    return learn


@pytest.fixture(scope="module")
def trained():
    return fit_table()


# ---- DataLoaders ---------------------------------------------------------------------------------------------
def test_from_df_tensors_roles_and_split():
    df = make_table(200)
    before = df.copy()
    dls = TabularDataLoaders.from_df(df, cat_names=["color", "size"], cont_names=["x", "noise"], y_names="label",
                                     valid_pct=0.25, seed=1, bs=16, device="cpu")
    pd.testing.assert_frame_equal(df, before)  # the user's frame is untouched
    assert dls.cat_names == ["color", "size", "x_na"] and dls.cont_names == ["x", "noise"]
    assert dls.y_names == ["label"] and dls.is_classification and dls.classes == ["no", "yes"]
    assert len(dls.train_idx) == 150 and len(dls.valid_idx) == 50
    assert set(dls.train_idx).isdisjoint(dls.valid_idx)
    x_cat, x_cont, y = dls.one_batch()
    assert x_cat.dtype == torch.int64 and x_cat.shape == (16, 3)
    assert x_cont.dtype == torch.float32 and x_cont.shape == (16, 2)
    assert y.dtype == torch.int64 and y.shape == (16,)
    assert isinstance(dls.default_loss, CrossEntropyLoss)
    assert dls.cardinalities == [5, 5, 4]  # 3 colours/sizes + #na# + #unk#; x_na: False/True + 2
    # every row encoded in one go, train rows in order
    xc, xn, yy = dls.train.tensors
    tr = dls.train_idx
    codes = {"blue": 2, "green": 3, "red": 4}
    exp_color = [0 if c is None or (isinstance(c, float) and math.isnan(c)) else codes[c] for c in df["color"].iloc[tr]]
    assert xc[:, 0].tolist() == exp_color
    assert yy.tolist() == (df["label"].iloc[tr] == "yes").astype(int).tolist()


def test_preprocessing_is_fitted_on_training_rows_only():
    # the validation rows hold an extreme value, a new category and are the only ones with a gap in z
    df = pd.DataFrame({"c": ["a", "b"] * 4 + ["new", "a"], "x": [1.0, 2, 3, 4, 5, 6, 7, 8, 1000, 2000],
                       "z": [1.0] * 8 + [np.nan, 3.0], "y": np.arange(10) * 1.5})
    dls = TabularDataLoaders.from_df(df, cat_names=["c"], cont_names=["x", "z"], y_names="y",
                                     valid_idx=[8, 9], bs=4, device="cpu")
    proc = dls.proc
    assert proc.normalize.means["x"] == pytest.approx(4.5)  # mean of 1..8, not of the 1000s
    assert proc.fill_missing.fill_values["z"] == 1.0
    assert proc.fill_missing.na_cols == []  # z had no gaps in the training rows: no z_na flag
    assert dls.vocab("c") == ["#na#", "#unk#", "a", "b"]
    xc, xn, y = dls.valid.tensors
    assert xc[:, 0].tolist() == [1, 2]  # 'new' -> the reserved unseen code
    std = np.std(np.arange(1, 9))
    assert xn[:, 0].tolist() == pytest.approx([(1000 - 4.5) / std, (2000 - 4.5) / std])
    assert not dls.is_classification and isinstance(dls.default_loss, MSELoss)
    # regression targets are standardised with the training rows' statistics (0, 1.5, ..., 10.5)
    ty = np.arange(8) * 1.5
    assert proc.target.mean == [pytest.approx(ty.mean())] and proc.target.std == [pytest.approx(ty.std())]
    assert y.dtype == torch.float32
    assert y.tolist() == pytest.approx(((np.array([12.0, 13.5]) - ty.mean()) / ty.std()).tolist())
    assert dls.decode_y(y).tolist() == pytest.approx([12.0, 13.5])


def test_target_kind_inference_and_override():
    base = pd.DataFrame({"a": ["u", "v"] * 20, "f": np.linspace(0, 1, 40)})
    kw = dict(cat_names=["a"], cont_names=[], valid_pct=0.25, seed=0, device="cpu")
    assert not TabularDataLoaders.from_df(base.assign(t=np.linspace(0, 9, 40)), y_names="t", **kw).is_classification
    assert TabularDataLoaders.from_df(base.assign(t=np.arange(40) % 3), y_names="t", **kw).classes == [0, 1, 2]
    assert not TabularDataLoaders.from_df(base.assign(t=np.arange(40)), y_names="t", **kw).is_classification
    assert TabularDataLoaders.from_df(base.assign(t=[True, False] * 20), y_names="t", **kw).classes == [False, True]
    dls = TabularDataLoaders.from_df(base.assign(t=np.arange(40) % 3), y_names="t", y_block="regression", **kw)
    assert not dls.is_classification and dls.n_out == 1
    dls = TabularDataLoaders.from_df(base.assign(t=np.arange(40) * 1.0, u=np.ones(40)), y_names=["t", "u"], **kw)
    assert dls.n_out == 2 and dls.train.tensors[2].shape[1] == 2


def test_guessed_columns_and_from_csv(tmp_path):
    df = make_table(100).drop(columns=["color"])
    p = tmp_path / "t.csv"
    df.to_csv(p, index=False)
    dls = TabularDataLoaders.from_csv(p, y_names="label", seed=0, bs=8, device="cpu")
    assert dls.cat_names == ["size", "x_na"] and dls.cont_names == ["x", "noise"]
    assert dls.path == tmp_path
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        TabularDataLoaders.from_csv(tmp_path / "nope.csv", y_names="label")


# ---- bad input ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, kw, pattern", [
    (lambda d: d, dict(cont_names=["x", "weight"]), r"'weight' \(in cont_names\)"),
    (lambda d: d.assign(label=d["label"].where(d.index != 3)), {}, r"Target column 'label'.*1 missing.*dropna"),
    (lambda d: d.assign(noise=np.nan), {}, r"'noise'.*no values"),
    (lambda d: d.assign(color=None), {}, r"'color'.*no values"),
    (lambda d: d.assign(noise=d["noise"].astype(str).where(d.index != 5, "n/a")), {}, r"'noise'.*text.*'n/a'"),
    (lambda d: d.iloc[:0], {}, r"empty"),
    (lambda d: d.rename(columns={"size": "x"}), dict(cat_names=["color"]), r"duplicate column names \['x'\]"),
    (lambda d: d, dict(cat_names=["color", "x"]), r"'x' is listed in both cat_names and cont_names"),
    (lambda d: d, dict(y_names="labl"), r"'labl'.*Did you mean \['label'\]"),
])
def test_bad_tables_give_clear_errors(change, kw, pattern):
    df = change(make_table(60))
    args = dict(cat_names=["color", "size"], cont_names=["x", "noise"], y_names="label", seed=0, device="cpu")
    args.update(kw)
    with pytest.raises(TabularDataError, match=pattern):
        TabularDataLoaders.from_df(df, **args)


def test_bad_split_arguments():
    df = make_table(20)
    kw = dict(cat_names=["color"], cont_names=["x"], y_names="label", device="cpu")
    with pytest.raises(TabularDataError, match="valid_idx"):
        TabularDataLoaders.from_df(df, valid_idx=[3, 25], **kw)
    with pytest.raises(TabularDataError, match="no training rows"):
        TabularDataLoaders.from_df(df, valid_idx=list(range(20)), **kw)
    with pytest.raises(TabularDataError, match="y_names"):
        TabularDataLoaders.from_df(df, cat_names=["color"], cont_names=["x"], device="cpu")
    with pytest.raises(TabularDataError, match="log_y"):
        TabularDataLoaders.from_df(df.assign(v=np.linspace(-1, 1, 20)), cat_names=["color"], y_names="v",
                                   log_y=True, device="cpu")
    dls = TabularDataLoaders.from_df(df, valid_idx=[], **kw)
    assert dls.valid is None and len(dls.train_idx) == 20


def test_test_dl_errors_name_the_column(trained):
    df = make_table(10, seed=5)
    with pytest.raises(TabularDataError, match=r"'noise' \(in cont_names\)"):
        trained.dls.test_dl(df.drop(columns=["noise"]))
    with pytest.raises(TabularDataError, match="'x'.*text"):
        trained.dls.test_dl(df.assign(x="abc"))
    with pytest.raises(TabularDataError, match="'label'.*'maybe'"):
        trained.dls.test_dl(df.assign(label="maybe"), with_labels=True)


# ---- model -------------------------------------------------------------------------------------------------
def test_embedding_size_rules():
    assert emb_sz_rule(10) == round(1.6 * 10 ** 0.56) == 6
    assert emb_sz_rule(100000) == 600
    assert emb_sz_rule(10, "2018") == 5 and emb_sz_rule(1000, "2018") == 50
    assert get_emb_sz(["a", "b"], [10, 4], overrides={"b": 7}) == [(10, 6), (4, 7)]
    with pytest.raises(ValueError, match="emb_rule"):
        emb_sz_rule(5, "2019")
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        get_emb_sz(["a"], [3], overrides={"zz": 2})


def test_model_forward_matches_hand_computation():
    torch.manual_seed(0)
    m = TabularModel([(5, 3), (4, 2)], n_cont=2, out_sz=3, layers=[8], ps=[0.5], embed_p=0.1).eval()
    x_cat, x_cont = torch.tensor([[1, 3], [4, 0]]), torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    e = torch.cat([m.embeds[0].weight[x_cat[:, 0]], m.embeds[1].weight[x_cat[:, 1]]], 1)
    c = F.batch_norm(x_cont, m.bn_cont.running_mean, m.bn_cont.running_var, m.bn_cont.weight, m.bn_cont.bias,
                     eps=m.bn_cont.eps)
    lin1, bn1, lin2 = m.layers[0][0], m.layers[0][2], m.layers[1][0]
    h = F.relu(F.linear(torch.cat([e, c], 1), lin1.weight, lin1.bias))
    h = F.batch_norm(h, bn1.running_mean, bn1.running_var, bn1.weight, bn1.bias, eps=bn1.eps)
    expected = F.linear(h, lin2.weight, lin2.bias)
    torch.testing.assert_close(m(x_cat, x_cont), expected)


def test_model_training_embedding_path_matches_modules_in_float64():
    """The one-node embedding lookup used while training on the CPU gives the same output and the same
    gradients (repeated codes accumulate) as looking up each `nn.Embedding`; frozen columns get none."""
    torch.manual_seed(0)
    m = TabularModel([(4, 3), (6, 2), (3, 1)], n_cont=2, out_sz=2, layers=[5]).double().train()
    x_cat = torch.tensor([[0, 5, 2], [3, 5, 2], [0, 1, 0], [0, 0, 2], [2, 5, 1]])  # many repeated codes
    x_cont = torch.randn(5, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1])
    m.embeds[1].weight.requires_grad_(False)

    def reference() -> torch.Tensor:  # the per-module lookups, written out
        e = torch.cat([m.embeds[i](x_cat[:, i]) for i in range(3)], 1)
        return m.layers(torch.cat([e, m.bn_cont(x_cont)], 1))

    results = []
    for forward in (reference, lambda: m(x_cat, x_cont)):
        torch.manual_seed(1)
        m.zero_grad(set_to_none=True)
        out = forward()
        F.cross_entropy(out, y).backward()
        results.append((out.detach(), [None if p.grad is None else p.grad.clone() for p in m.parameters()]))
    (ref_out, ref_grads), (out, grads) = results
    torch.testing.assert_close(out, ref_out, rtol=0, atol=1e-12)
    assert m.embeds[1].weight.grad is None and grads[1] is None and ref_grads[1] is None
    for g, r in zip(grads, ref_grads):
        if r is not None:
            torch.testing.assert_close(g, r, rtol=0, atol=1e-12)
    # code 0 of column 0 appears 3 times: its gradient is the sum of those rows' output gradients
    assert ref_grads[0][0].abs().sum() > 0 and (ref_grads[0][1] == 0).all()  # code 1 never appears


def test_model_init_y_range_and_only_one_kind_of_input():
    torch.manual_seed(0)
    m = TabularModel([(50, 10)], n_cont=0, out_sz=1, layers=[400, 300], y_range=(2.0, 5.0))
    w = m.layers[1][0].weight  # Kaiming normal with ReLU gain: std sqrt(2 / fan_in)
    assert w.std().item() == pytest.approx(math.sqrt(2 / 400), rel=0.05)
    assert m.embeds[0].weight.abs().max().item() <= 0.02 + 1e-6
    assert (m.layers[0][0].bias == 0).all()
    out = m(torch.randint(0, 50, (64, 1)) * 0 + torch.arange(64)[:, None] % 50, torch.zeros(64, 0))
    assert out.shape == (64, 1) and (out > 2).all() and (out < 5).all()
    m2 = TabularModel([], n_cont=3, out_sz=2, layers=[4])
    assert m2(torch.zeros(5, 0, dtype=torch.long), torch.randn(5, 3)).shape == (5, 2)
    assert len(m2.embeds) == 0
    with pytest.raises(ValueError, match="at least one"):
        TabularModel([], 0, 1)
    with pytest.raises(ValueError, match="ps"):
        TabularModel([(3, 2)], 0, 1, layers=[4, 4], ps=[0.1])


def test_only_categorical_or_only_continuous_tables_train():
    df = make_table(300)
    for cats, conts in ((["color", "size"], []), ([], ["noise"])):
        dls = TabularDataLoaders.from_df(df.drop(columns=["x"]), cat_names=cats, cont_names=conts, y_names="label",
                                         seed=0, bs=32, device="cpu")
        xc, xn, _ = dls.one_batch()
        assert xc.shape[1] == len(cats) and xn.shape[1] == len(conts)
        learn = tabular_learner(dls, layers=[8], progress=False)
        learn.fit(1, 1e-2)
        assert math.isfinite(learn.recorder.log[-1]["valid_loss"])


# ---- learner, prediction -------------------------------------------------------------------------------------
def test_classifier_learns(trained):
    assert isinstance(trained, TabularLearner)
    assert trained.recorder.log[-1]["accuracy"] > 0.9


def test_predict_row_matches_get_preds_and_handles_messy_values(trained):
    df = make_table(8, seed=3)
    df.loc[df.index[0], "color"] = "purple"  # never seen in training
    df.loc[df.index[1], "x"] = np.nan
    preds, targs = trained.get_preds(df.drop(columns=["label"]))
    assert targs is None and preds.shape == (8, 2)
    torch.testing.assert_close(preds.sum(1), torch.ones(8))
    for i in range(3):
        label, idx, probs = trained.predict(df.iloc[i])
        assert label in ("no", "yes") and label == trained.dls.classes[int(idx)]
        torch.testing.assert_close(probs, preds[i])
    label, _, probs = trained.predict({"color": "red", "size": "M", "x": -3.0, "noise": 5.0})
    assert label == "yes"  # red -> yes
    assert trained.predict(df.iloc[[0]])[0] == trained.predict(df.iloc[0])[0]  # a one-row DataFrame
    with pytest.raises(TabularDataError, match=r"'noise' \(in cont_names\) is not in `row`"):
        trained.predict({"color": "red", "size": "M", "x": 1.0})
    with pytest.raises(TypeError, match="one row"):
        trained.predict(["red", "M", 1.0, 2.0])
    _, targs = trained.get_preds(df)
    assert targs.tolist() == (df["label"] == "yes").astype(int).tolist()


def test_decode_preds_table(trained):
    df = make_table(6, seed=4)
    before = df.copy()
    preds, _ = trained.get_preds(df)
    out = trained.dls.decode_preds(preds, df)
    pd.testing.assert_frame_equal(df, before)
    assert list(out.columns) == list(df.columns) + ["prediction", "prob_no", "prob_yes"]
    np.testing.assert_allclose(out["prob_yes"], preds[:, 1].numpy(), rtol=1e-6)
    assert out["prediction"].tolist() == np.where(preds[:, 1] > preds[:, 0], "yes", "no").tolist()
    pd.testing.assert_frame_equal(trained.predict_df(df), out)


def test_log_target_regression_with_exp_rmspe():
    rng = np.random.default_rng(0)
    n = 1200
    store = rng.choice(["s1", "s2", "s3", "s4"], n)
    promo = rng.integers(0, 2, n)
    base = pd.Series(store).map({"s1": 1000.0, "s2": 3000.0, "s3": 6000.0, "s4": 10000.0}).to_numpy()
    sales = base * (1 + 0.5 * promo) * np.exp(rng.normal(0, 0.02, n))
    df = pd.DataFrame({"store": store, "promo": promo, "sales": sales})
    dls = TabularDataLoaders.from_df(df, cat_names=["store", "promo"], cont_names=[], y_names="sales", log_y=True,
                                     seed=0, bs=64, device="cpu")
    # log1p, then standardised with the training rows' statistics
    ly = np.log1p(sales[dls.train_idx])
    assert dls.proc.target.mean == [pytest.approx(ly.mean())] and dls.proc.target.std == [pytest.approx(ly.std())]
    assert dls.train.tensors[2][:3].tolist() == pytest.approx(((ly[:3] - ly.mean()) / ly.std()).tolist(), rel=1e-5)
    assert "log1p" in dls.proc.describe_target() and "standardised" in dls.proc.describe_target()
    set_seed(0)
    learn = tabular_learner(dls, layers=[32, 16], metrics=[exp_rmspe, rmse, mae], progress=False)
    learn.fit_one_cycle(8, 3e-2)
    assert learn.recorder.log[-1]["exp_rmspe"] < 0.1
    preds, targs = learn.get_preds()  # in the target's units (sales)
    np.testing.assert_allclose(targs.double().numpy(), sales[dls.valid_idx], rtol=1e-5)
    p, t = preds[:, 0].double().numpy(), targs.double().numpy()
    # exp_rmspe: RMS of exp(log1p p - log1p t) - 1, i.e. of the relative error of (1 + pred) against (1 + sales)
    rel = 1 - (1 + p) / (1 + t)
    assert learn.recorder.log[-1]["exp_rmspe"] == pytest.approx(float(np.sqrt((rel ** 2).mean())), rel=1e-3)
    # rmse and mae are in sales, not in the standardised log units
    assert learn.recorder.log[-1]["rmse"] == pytest.approx(float(np.sqrt(((p - t) ** 2).mean())), rel=1e-3)
    assert learn.recorder.log[-1]["mae"] == pytest.approx(float(np.abs(p - t).mean()), rel=1e-3)
    test = df.iloc[:5]
    out = dls.decode_preds(learn.get_preds(test)[0], test)
    raw = learn.get_preds(test, decode=False)[0][:, 0].double().numpy()
    np.testing.assert_allclose(out["prediction"], np.expm1(raw * dls.proc.target.std[0] + dls.proc.target.mean[0]), rtol=1e-5)
    value, _, _ = learn.predict(test.iloc[0])
    assert value == pytest.approx(out["prediction"].iloc[0], rel=1e-5)
    assert abs(value - sales[0]) / sales[0] < 0.15


def house_prices(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """price = 50,000 + 300 * sqft (+ a neighbourhood premium and noise): values about 1e5..1e6 dollars."""
    rng = np.random.default_rng(seed)
    sqft = rng.uniform(500, 3000, n).round(0)
    hood = rng.choice(["north", "south", "east"], n)
    price = 50_000 + 300 * sqft + 30_000 * (hood == "north") + rng.normal(0, 30_000, n)
    return pd.DataFrame({"sqft": sqft, "hood": hood, "price": price.round(0)})


def test_large_regression_targets_are_standardised_and_decoded(tmp_path):
    df = house_prices()
    dls = TabularDataLoaders.from_df(df, cat_names=["hood"], cont_names=["sqft"], y_names="price", seed=0, bs=64,
                                     device="cpu")
    ytr = df["price"].to_numpy()[dls.train_idx]
    yva = df["price"].to_numpy()[dls.valid_idx]
    assert dls.proc.target.mean == [pytest.approx(ytr.mean())] and dls.proc.target.std == [pytest.approx(ytr.std())]
    assert "standardised" in dls.proc.describe_target() and f"{ytr.mean():.6g}" in dls.proc.describe_target()
    np.testing.assert_allclose(dls.valid.tensors[2].double().numpy(), (yva - ytr.mean()) / ytr.std(), rtol=1e-5,
                               atol=1e-6)
    set_seed(0)
    learn = tabular_learner(dls, layers=[64, 32], metrics=[rmse, mae, deepfit.metrics.r2_score], progress=False)
    # y_range "auto": the standardised training range widened by 20% of its width on each side
    lo, hi = (ytr.min() - ytr.mean()) / ytr.std(), (ytr.max() - ytr.mean()) / ytr.std()
    assert learn.model.y_range == pytest.approx([lo - 0.2 * (hi - lo), hi + 0.2 * (hi - lo)], rel=1e-5)
    learn.fit_one_cycle(5, 1e-2)
    preds, targs = learn.get_preds()
    p = preds[:, 0].double().numpy()
    np.testing.assert_allclose(targs.double().numpy(), yva, rtol=1e-6)  # targets in dollars
    log = learn.recorder.log[-1]
    # metrics in dollars, equal to numpy's on the decoded predictions
    assert log["rmse"] == pytest.approx(float(np.sqrt(((p - yva) ** 2).mean())), rel=1e-4)
    assert log["mae"] == pytest.approx(float(np.abs(p - yva).mean()), rel=1e-4)
    r2 = 1 - ((p - yva) ** 2).sum() / ((yva - yva.mean()) ** 2).sum()
    assert log["r2_score"] == pytest.approx(float(r2), rel=1e-4)
    assert r2 > 0.5 and log["rmse"] > 1000  # a useful model, scored in dollars (not standardised units)
    # the loss stays in the model's units: the mean squared error of the standardised values
    raw = learn.get_preds(decode=False)[0][:, 0].double().numpy()
    np.testing.assert_allclose(raw * ytr.std() + ytr.mean(), p, rtol=1e-5)
    assert log["valid_loss"] == pytest.approx(float((((yva - ytr.mean()) / ytr.std() - raw) ** 2).mean()), rel=1e-3)
    # permutation importance scored with a metric: in dollars too
    fi = learn.feature_importance(metric=rmse, greater_is_better=False)
    assert fi["baseline"].iloc[0] == pytest.approx(log["rmse"], rel=1e-4)
    # predict, predict_df and an exported model all answer in dollars
    value, _, _ = learn.predict(df.iloc[dls.valid_idx[0]])
    assert value == pytest.approx(p[0], rel=1e-5)
    np.testing.assert_allclose(learn.predict_df(df.iloc[dls.valid_idx])["prediction"], p, rtol=1e-5)
    loaded = load_learner(learn.export(tmp_path / "houses.safetensors"))
    np.testing.assert_allclose(loaded.get_preds(df.iloc[dls.valid_idx])[0][:, 0].double().numpy(), p, rtol=1e-5)
    assert loaded.predict(df.iloc[dls.valid_idx[0]])[0] == pytest.approx(value, rel=1e-5)


def test_scale_y_false_and_explicit_y_range_in_target_units():
    df = house_prices(200)
    dls = TabularDataLoaders.from_df(df, cat_names=["hood"], cont_names=["sqft"], y_names="price", seed=0,
                                     scale_y=False, device="cpu")
    assert not dls.y_scaled and dls.proc.target.mean is None
    np.testing.assert_allclose(dls.train.tensors[2].double().numpy(), df["price"].to_numpy()[dls.train_idx], rtol=1e-6)
    assert tabular_learner(dls, y_range=None, progress=False).model.y_range is None
    dls = TabularDataLoaders.from_df(df, cat_names=["hood"], cont_names=["sqft"], y_names="price", seed=0,
                                     device="cpu")
    m, s = dls.proc.target.mean[0], dls.proc.target.std[0]
    learn = tabular_learner(dls, y_range=(0, 2e6), progress=False)  # given in dollars
    assert learn.model.y_range == pytest.approx([(0 - m) / s, (2e6 - m) / s])
    with pytest.raises(ValueError, match="y_range"):
        tabular_learner(dls, y_range=(5, 1), progress=False)
    cls = TabularDataLoaders.from_df(make_table(100), cat_names=["color"], cont_names=["x"], y_names="label",
                                     device="cpu")
    assert tabular_learner(cls, progress=False).model.y_range is None  # classification: no range


def test_target_encoding_state_round_trip_and_older_states():
    from deepfit.tabular.data import TabularProcessor
    df = house_prices(100)
    dls = TabularDataLoaders.from_df(df, cat_names=["hood"], cont_names=["sqft"], y_names="price", log_y=True,
                                     seed=0, device="cpu")
    state = dls.proc.state()
    back = TabularProcessor.from_state(json.loads(json.dumps(state)))
    assert (back.target.log, back.target.mean, back.target.std) == ("log1p", dls.proc.target.mean, dls.proc.target.std)
    y = np.array([[1.5], [-0.3]])
    np.testing.assert_allclose(back.decode_y(y), np.expm1(y * state["y_std"][0] + state["y_mean"][0]))
    # a model exported before target scaling: log_y meant log (decoded with exp), no standardisation
    old = {k: v for k, v in state.items() if k not in ("y_log", "scale_y", "y_mean", "y_std", "y_lo", "y_hi")}
    old_proc = TabularProcessor.from_state(old)
    assert old_proc.target.log == "log" and old_proc.target.mean is None
    np.testing.assert_allclose(old_proc.decode_y(y), np.exp(y))
    for bad in ({"y_mean": [1.0], "y_std": None}, {"y_mean": ["a"], "y_std": [1.0]}, {"y_std": [0.0]},
                {"y_log": "sqrt"}):
        with pytest.raises(TabularDataError):
            TabularProcessor.from_state({**state, **bad})


def test_log_y_refuses_negative_targets_naming_column_and_row():
    df = house_prices(50)
    df.loc[7, "price"] = -3.0
    with pytest.raises(TabularDataError, match=r"'price'.*negative.*-3.*row\(s\) \[7\].*log_y"):
        TabularDataLoaders.from_df(df, cat_names=["hood"], cont_names=["sqft"], y_names="price", log_y=True,
                                   device="cpu")
    df.loc[7, "price"] = 0.0  # log1p(0) = 0: zero is allowed
    dls = TabularDataLoaders.from_df(df, cat_names=["hood"], cont_names=["sqft"], y_names="price", log_y=True,
                                     valid_idx=[], device="cpu")
    assert dls.proc.target.log == "log1p"
    assert dls.proc.decode_y(dls.train.tensors[2].numpy())[7] == pytest.approx(0, abs=1e-2)


@pytest.mark.parametrize("bad", [1e300, -1e300, np.inf, 5e38])
def test_values_beyond_float32_name_the_column_and_rows(bad):
    df = house_prices(60)
    df["sqft"] = df["sqft"].astype(float)
    df.loc[[4, 9], "sqft"] = bad
    with pytest.raises(TabularDataError, match=r"'sqft'.*2 value\(s\).*too large for 32-bit.*rows 4, 9.*clip"):
        TabularDataLoaders.from_df(df, cat_names=["hood"], cont_names=["sqft"], y_names="price", device="cpu")
    # a regression target too
    with pytest.raises(TabularDataError, match=r"Target column 'sqft'.*rows 4, 9"):
        TabularDataLoaders.from_df(df, cat_names=["hood"], cont_names=["price"], y_names="sqft", device="cpu")
    # the same check on new rows at predict time
    good = house_prices(60)
    dls = TabularDataLoaders.from_df(good, cat_names=["hood"], cont_names=["sqft"], y_names="price", device="cpu")
    with pytest.raises(TabularDataError, match=r"'sqft'.*rows 4, 9"):
        dls.test_dl(df)


def test_value_that_overflows_once_normalised_is_an_error():
    df = pd.DataFrame({"x": np.linspace(0, 1e-3, 40), "y": np.arange(40.0)})
    dls = TabularDataLoaders.from_df(df, cont_names=["x"], cat_names=[], y_names="y", device="cpu")
    new = pd.DataFrame({"x": [0.0, 3e38]}, index=[10, 11])  # representable, but / std ~3e-4 overflows float32
    with pytest.raises(TabularDataError, match=r"'x'.*not finite once normalised.*row 11"):
        dls.test_dl(new)


def test_warns_when_validation_loss_ends_far_above_its_best():
    from deepfit.callbacks import Callback
    from deepfit.callbacks.recorder import ValidLossWarning, valid_loss_rise

    class SpoilLastEpoch(Callback):
        def after_train(self):
            if self.learner.epoch == self.learner.n_epoch - 1:
                with torch.no_grad():
                    self.learner.model.layers[-1][0].weight.mul_(-30.0)  # confidently wrong

    dls = TabularDataLoaders.from_df(make_table(300), cat_names=["color"], cont_names=["x"], y_names="label",
                                     seed=0, device="cpu")
    learn = tabular_learner(dls, layers=[16], progress=False)
    with pytest.warns(ValidLossWarning, match=r"more than 1.5x its best"):
        learn.fit(3, 1e-3, cbs=[SpoilLastEpoch()])
    assert valid_loss_rise([{"epoch": 0, "valid_loss": 1.0}, {"epoch": 1, "valid_loss": 1.4}]) is None
    assert valid_loss_rise([{"epoch": 0, "valid_loss": 1.0}, {"epoch": 1, "valid_loss": 1.6}]) == (0, 1.0, 1.6)
    assert valid_loss_rise([{"epoch": 0, "valid_loss": 1.0}, {"epoch": 1, "valid_loss": float("nan")}])[0] == 0


# ---- export ----------------------------------------------------------------------------------------------
def test_export_and_load_learner_round_trip(trained, tmp_path):
    p = trained.export(tmp_path / "tab.safetensors")
    loaded = load_learner(p)
    df = make_table(20, seed=9)
    df.loc[df.index[0], "size"] = "XXL"
    df.loc[df.index[2], "x"] = np.nan
    df = df.drop(columns=["label"])
    expected, _ = trained.get_preds(df)
    got, targs = loaded.get_preds(dl=loaded.dls.test_dl(df))
    assert targs is None
    torch.testing.assert_close(got, expected)
    out = loaded.dls.decode_preds(got, df)
    assert out["prediction"].tolist() == trained.dls.decode_preds(expected, df)["prediction"].tolist()
    assert loaded.predict(df.iloc[0])[0] == trained.predict(df.iloc[0])[0]
    assert loaded.dls.cat_names == trained.dls.cat_names and loaded.dls.classes == ["no", "yes"]
    assert isinstance(loaded, TabularLearner)  # so get_preds takes a raw DataFrame too
    torch.testing.assert_close(loaded.get_preds(df)[0], expected)
    torch.testing.assert_close(torch.tensor(loaded.embeddings("color").to_numpy()),
                               torch.tensor(trained.embeddings("color").to_numpy()))


# ---- interpretation -------------------------------------------------------------------------------------
def test_feature_importance_ranks_informative_columns(trained):
    fi = trained.feature_importance(n_repeats=2)
    assert list(fi.columns) == ["feature", "importance", "importance_std", "baseline", "score"]
    assert sorted(fi["feature"]) == ["color", "noise", "size", "x"]  # x_na is shuffled with x, not listed
    top = fi["feature"].tolist()[:2]
    assert set(top) == {"color", "x"}
    assert fi["importance"].iloc[0] > 0.2
    imp = dict(zip(fi["feature"], fi["importance"]))
    assert abs(imp["noise"]) < 0.05 and abs(imp["size"]) < 0.05
    # importance = shuffled loss - baseline loss, and the baseline is the validation loss
    assert fi["baseline"].iloc[0] == pytest.approx(trained.validate()["valid_loss"], rel=1e-5)
    np.testing.assert_allclose(fi["importance"], fi["score"] - fi["baseline"], rtol=1e-9)
    acc = trained.feature_importance(metric=accuracy)
    assert acc["baseline"].iloc[0] == pytest.approx(trained.validate()["accuracy"], rel=1e-6)
    np.testing.assert_allclose(acc["importance"], acc["baseline"] - acc["score"], rtol=1e-9)
    ax = trained.plot_feature_importance(fi)
    assert len(ax.patches) == 4


@pytest.mark.parametrize("n_features", [1, 3, 25])
def test_feature_importance_plot_keeps_its_axis_label(tmp_path, n_features):
    import matplotlib.image
    import matplotlib.pyplot as plt
    from deepfit.plotting import SAVE_PAD_INCHES
    from deepfit.tabular.interpret import plot_feature_importance
    fi = pd.DataFrame({"feature": [f"a_rather_long_column_name_{i}" for i in range(n_features)],
                       "importance": np.linspace(0.3, 0.01, n_features), "importance_std": 0.01})
    ax = plot_feature_importance(fi, fname=tmp_path / "fi.png")
    fig = ax.figure
    try:
        renderer = fig.canvas.get_renderer()
        label = ax.xaxis.label.get_window_extent(renderer)
        inside = fig.bbox.padded(0.5)  # in pixels; half a pixel for rounding
        assert inside.x0 <= label.x0 and label.x1 <= inside.x1 and inside.y0 <= label.y0, (label, fig.bbox)
        # the saved image is the figure's tight box (which holds every label) plus the margin
        tight = fig.get_tightbbox(renderer).padded(SAVE_PAD_INCHES)
        img = matplotlib.image.imread(tmp_path / "fi.png")
        assert img.shape[:2] == (round(tight.height * fig.dpi), round(tight.width * fig.dpi))
        t_px = tight.transformed(fig.dpi_scale_trans)
        assert t_px.x0 <= label.x0 and label.x1 <= t_px.x1 and t_px.y0 <= label.y0
    finally:
        plt.close(fig)


def test_embeddings_tables_and_plot(trained, tmp_path):
    emb = trained.embeddings("color")
    w = trained.model.embeds[0].weight.detach()
    assert emb.index.tolist() == ["#na#", "#unk#", "blue", "green", "red"]
    assert list(emb.columns) == [f"color_emb{k}" for k in range(w.shape[1])]
    np.testing.assert_allclose(emb.to_numpy(), w.numpy())
    df = pd.DataFrame({"color": ["red", "pink", None], "size": ["S", "M", "L"], "x": [1.0, 2.0, 3.0],
                       "noise": [0.0, 0.0, 0.0]})
    feats = trained.embed_features(df)
    assert "color" not in feats and "size" not in feats and feats.columns[0] == "color_emb0"
    np.testing.assert_allclose(feats.filter(like="color_emb").to_numpy(),
                               emb.loc[["red", "#unk#", "#na#"]].to_numpy())
    assert feats["x"].tolist() == [1.0, 2.0, 3.0]
    f = tmp_path / "emb.png"
    ax = trained.plot_embedding("color", fname=f)
    assert f.exists() and len(ax.texts) == 3  # the three training colours
    with pytest.raises(KeyError, match="'x' is not a categorical"):
        trained.embeddings("x")


def test_public_names():
    import deepfit.tabular as t
    for name in ["TabularDataLoaders", "tabular_learner", "TabularModel", "TabularLearner", "Categorify", "FillMissing",
                 "Normalize", "add_datepart", "cont_cat_split", "TabularDataError"]:
        assert hasattr(t, name)
    assert issubclass(TabularDataError, ValueError)
    assert issubclass(TabularDataLoaders, deepfit.DataLoaders) and issubclass(TabularLearner, deepfit.Learner)
    assert callable(add_datepart) and callable(cont_cat_split) and Categorify and FillMissing and Normalize


# ---- real data --------------------------------------------------------------------------------------------
CAT = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"]
CONT = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]


@pytest.mark.slow
def test_adult_one_epoch(data_path):
    csv = data_path / "adult" / "adult.csv"
    if not csv.exists():
        pytest.skip(f"{csv} not found")
    dls = TabularDataLoaders.from_csv(csv, cat_names=CAT, cont_names=CONT, y_names="class", seed=42, bs=256,
                                      device="cpu")
    assert dls.classes == ["<=50K", ">50K"] and len(dls.valid_idx) == 6512
    assert dls.vocab("workclass")[:3] == ["#na#", "#unk#", "?"]
    set_seed(42)
    learn = tabular_learner(dls, layers=[200, 100], progress=False)
    learn.fit_one_cycle(1, 1e-2)
    assert learn.recorder.log[-1]["accuracy"] > 0.83
    fi = learn.feature_importance()
    assert fi["importance"].iloc[0] > 0.01 and len(fi) == 14


@pytest.mark.slow
def test_example_lesson_runs(data_path, tmp_path):
    import os
    import re
    import subprocess
    import sys
    from conftest import REPO
    if not (data_path / "adult" / "adult.csv").exists():
        pytest.skip("adult.csv not found")
    env = dict(os.environ, DEEPFIT_DATA=str(data_path), DEEPFIT_OUT=str(tmp_path), MPLBACKEND="Agg",
               OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(REPO / "examples" / "tabular_adult.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    assert float(re.findall(r"^accuracy (\d\.\d+)", res.stdout, re.M)[-1]) > 0.83
    assert "random forest on learned embeddings: accuracy 0.8" in res.stdout
    assert re.search(r"exported model predicts: (<=50K|>50K)", res.stdout)
    assert {"loss.png", "importance.png", "occupation.png", "adult.safetensors"} <= {p.name for p in tmp_path.iterdir()}
