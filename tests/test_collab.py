"""Collaborative filtering: data encoding, the two models' math, interpretation, unknown ids, export,
and learning a generated low-rank ratings matrix."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from deepfit import load_learner
from deepfit.collab import (CollabDataLoaders, CollabLearner, EmbeddingDotBias, EmbeddingNN, UnknownIdError,
                            collab_learner)
from deepfit.data import DataLoaders


def low_rank_ratings(n_users: int = 60, n_items: int = 40, k: int = 3, frac: float = 0.6, seed: int = 0,
                     str_ids: bool = False, scale: float = 0.6) -> pd.DataFrame:
    """Ratings r = u . v + b_u + b_i + 3 (no noise) on a random subset of the (user, item) grid."""
    g = np.random.default_rng(seed)
    u, v = g.normal(0, scale, (n_users, k)), g.normal(0, scale, (n_items, k))
    bu, bi = g.normal(0, 0.3, n_users), g.normal(0, 0.3, n_items)
    full = u @ v.T + bu[:, None] + bi[None, :] + 3.0
    mask = g.random((n_users, n_items)) < frac
    uu, ii = np.nonzero(mask)
    users = [f"u{x:03d}" for x in uu] if str_ids else uu + 100
    items = [f"item {x}" for x in ii] if str_ids else ii * 7
    return pd.DataFrame({"user": users, "item": items, "rating": full[uu, ii]})


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def small_df() -> pd.DataFrame:
    return pd.DataFrame({"user": [10, 10, 20, 20, 30, 30, 30, 40],
                         "movie": ["b", "a", "a", "c", "b", "c", "d", "a"],
                         "rating": [4.0, 3.0, 5.0, 2.0, 1.0, 3.5, 4.5, 2.0]})


# ---- data ---------------------------------------------------------------------------------------------
def test_id_mapping_round_trip(small_df):
    before = small_df.copy()
    dls = CollabDataLoaders.from_df(small_df, item_name="movie", valid_pct=0.25, seed=0, bs=4, device="cpu")
    assert small_df.equals(before)  # the user's frame is never modified
    assert dls.classes == {"user": [10, 20, 30, 40], "movie": ["a", "b", "c", "d"]}  # sorted, no reserved index
    assert (dls.user_name, dls.item_name, dls.rating_name) == ("user", "movie", "rating")
    assert dls.n_users == 4 and dls.n_items == 4
    x = torch.cat([dls.train.tensors[0], dls.valid.tensors[0]])
    y = torch.cat([dls.train.tensors[1], dls.valid.tensors[1]])
    assert x.dtype == torch.int64 and x.shape == (8, 2) and y.dtype == torch.float32
    decoded = dls.decode_x(x)
    decoded["rating"] = y.numpy()
    got = sorted(map(tuple, decoded.to_numpy().tolist()))
    assert got == sorted(map(tuple, small_df.to_numpy().tolist()))
    # encoding raw ids gives the index order of classes
    assert dls.encode_ids(["d", "a"], "movie").tolist() == [3, 0]
    assert dls.encode_ids(np.array([40, 10]), "user").tolist() == [3, 0]
    assert dls.encode_ids(["40", " 20"], "user").tolist() == [3, 1]  # ids typed as text (command line)
    with pytest.raises(UnknownIdError, match="'4x'"):
        dls.encode_ids(["4x"], "user")
    assert isinstance(dls, DataLoaders)


def test_split_sizes_and_repeatability(small_df):
    a = CollabDataLoaders.from_df(small_df, valid_pct=0.25, seed=3, bs=2, device="cpu")
    b = CollabDataLoaders.from_df(small_df, valid_pct=0.25, seed=3, bs=2, device="cpu")
    assert a.train.n == 6 and a.valid.n == 2
    assert torch.equal(a.valid.tensors[0], b.valid.tensors[0])
    c = CollabDataLoaders.from_df(small_df, valid_idx=[0, 7], bs=2, device="cpu")
    assert c.decode_x(c.valid.tensors[0]).values.tolist() == [[10, "b"], [40, "a"]]


def test_show_batch_decodes(small_df):
    dls = CollabDataLoaders.from_df(small_df, valid_pct=0.25, seed=0, bs=8, device="cpu")
    out = dls.show_batch(n=3, print_it=False)
    assert list(out.columns) == ["user", "movie", "rating"] and len(out) == 3
    rows = set(map(tuple, small_df.to_numpy().tolist()))
    assert all(tuple(r) in rows for r in out.to_numpy().tolist())


def test_from_csv_passes_read_options(tmp_path):
    f = tmp_path / "u.data"
    f.write_text("1\t10\t3\t100\n2\t10\t4\t101\n1\t20\t5\t102\n2\t30\t1\t103\n3\t20\t2\t104\n", encoding="latin-1")
    dls = CollabDataLoaders.from_csv(f, delimiter="\t", header=None, names=["user", "item", "rating", "ts"],
                                     encoding="latin-1", valid_pct=0.2, seed=0, bs=2, device="cpu")
    assert dls.classes == {"user": [1, 2, 3], "item": [10, 20, 30]}
    assert dls.rating_name == "rating"
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        CollabDataLoaders.from_csv(tmp_path / "nope.csv")


def test_bad_columns_are_named(small_df):
    with pytest.raises(KeyError, match="'title'"):
        CollabDataLoaders.from_df(small_df, item_name="title")
    bad = small_df.assign(rating=["x"] * len(small_df))
    with pytest.raises(ValueError, match="'rating' must be numeric"):
        CollabDataLoaders.from_df(bad, item_name="movie")
    missing = small_df.astype({"user": float}).copy()
    missing.loc[2, "user"] = np.nan
    with pytest.raises(ValueError, match="'user' has 1 missing"):
        CollabDataLoaders.from_df(missing)


def test_y_range_suggestion():
    df = pd.DataFrame({"u": [1, 2, 3, 1, 2], "i": [1, 1, 2, 2, 3], "r": [1.0, 5.0, 3.0, 2.0, 4.0]})
    dls = CollabDataLoaders.from_df(df, valid_idx=[4], device="cpu")
    assert dls.y_range == pytest.approx((0.0, 5.5))


# ---- models -------------------------------------------------------------------------------------------
def test_dot_bias_matches_hand_computation():
    m = EmbeddingDotBias(3, 4, n_factors=2)
    with torch.no_grad():
        m.user_emb.copy_(torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 0.1], [3.0, 1.0, -0.2]]))
        m.item_emb.copy_(torch.tensor([[1.0, 1.0, 0.3], [2.0, 0.0, 0.0], [-1.0, 4.0, 1.0], [0.5, 0.5, -1.0]]))
    x = torch.tensor([[0, 0], [1, 2], [2, 3], [0, 1]])
    # u.i + b_u + b_i by hand
    expected = torch.tensor([1 + 2 + 0.5 + 0.3, -4 + 0.1 + 1.0, 1.5 + 0.5 - 0.2 - 1.0, 2 + 0 + 0.5 + 0.0])
    torch.testing.assert_close(m(x), expected)
    m2 = EmbeddingDotBias(3, 4, n_factors=2, y_range=(0.0, 5.5))
    m2.load_state_dict(m.state_dict())
    torch.testing.assert_close(m2(x), torch.sigmoid(expected) * 5.5)
    assert torch.equal(m.user_bias, torch.tensor([0.5, 0.1, -0.2])) and m.item_factors.shape == (4, 2)


def test_init_small_factors_zero_bias():
    torch.manual_seed(0)
    m = EmbeddingDotBias(500, 400, n_factors=20)
    assert torch.all(m.user_bias == 0) and torch.all(m.item_bias == 0)
    f = m.user_factors
    assert f.abs().max() <= 0.02 + 1e-7 and 0.005 < f.std() < 0.01  # truncated at 2 std of 0.01


def test_y_range_bounds_never_exceeded():
    m = EmbeddingDotBias(5, 5, n_factors=3, y_range=(1.0, 5.0))
    with torch.no_grad():
        m.user_emb.mul_(0).add_(50.0)  # huge raw scores, both signs
        m.item_emb[:3].fill_(50.0)
        m.item_emb[3:].fill_(-50.0)
    x = torch.cartesian_prod(torch.arange(5), torch.arange(5))
    out = m(x)
    assert out.min() >= 1.0 and out.max() <= 5.0
    nn_model = EmbeddingNN(5, 5, layers=[8], y_range=(1.0, 5.0))
    with torch.no_grad():
        nn_model.mlp[-1].bias.fill_(1e4)
    nn_model.eval()
    assert nn_model(x).max() <= 5.0 and nn_model(x).min() >= 1.0


def test_embedding_nn_shapes_and_dropout():
    m = EmbeddingNN(7, 9, user_sz=4, item_sz=5, layers=[16, 8], ps=[0.1, 0.2], embed_p=0.05, y_range=(0, 5))
    x = torch.tensor([[0, 0], [6, 8], [3, 4]])
    assert m(x).shape == (3,)
    assert m.mlp[0].in_features == 9
    assert sum(isinstance(l, torch.nn.Dropout) for l in m.mlp) == 2
    with pytest.raises(ValueError, match="ps"):
        EmbeddingNN(7, 9, layers=[16, 8], ps=[0.1])


# ---- training -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_learns_low_rank_ratings_to_tight_rmse():
    df = low_rank_ratings(n_users=80, n_items=60, k=3, frac=0.7, seed=1)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.1, seed=0, bs=64, device="cpu")
    torch.manual_seed(0)
    learn = collab_learner(dls, n_factors=8, y_range=None, progress=False, wd=0.0)
    learn.fit_one_cycle(30, 3e-2)
    preds, targs = learn.get_preds()
    rmse = float(((preds - targs) ** 2).mean().sqrt())
    std = float(targs.std())
    assert rmse < 0.1 < std  # noise-free low-rank data is recovered almost exactly (std of ratings ~1)


def test_embedding_nn_learner_trains():
    df = low_rank_ratings(n_users=50, n_items=40, k=1, frac=0.8, seed=2, str_ids=True, scale=1.0)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=0, bs=32, device="cpu")
    torch.manual_seed(0)
    learn = collab_learner(dls, use_nn=True, layers=[64], y_range=None, progress=False)
    assert isinstance(learn.model, EmbeddingNN) and learn.wd == 0.01
    base = float(((dls.valid.tensors[1] - dls.rating_mean) ** 2).mean())
    learn.fit_one_cycle(10, 1e-2)
    assert learn.recorder.log[-1]["valid_loss"] < 0.3 * base  # far better than predicting the mean
    with pytest.raises(TypeError, match="EmbeddingDotBias"):
        learn.bias(["item 1"])
    assert learn.weight(["item 1"]).shape == (1, learn.model.item_sz)


@pytest.fixture(scope="module")
def trained() -> CollabLearner:
    df = low_rank_ratings(n_users=40, n_items=30, k=2, frac=0.6, seed=3, str_ids=True)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=0, bs=32, device="cpu")
    torch.manual_seed(0)
    learn = collab_learner(dls, n_factors=4, y_range=(0, 6.5), progress=False)
    learn.fit_one_cycle(6, 3e-2)
    return learn


# ---- interpretation -----------------------------------------------------------------------------------
def test_bias_weight_lookup(trained):
    learn = trained
    m = learn.model
    idx = learn.dls.encode_ids(["item 3", "item 0"], "movie" if False else "item")
    torch.testing.assert_close(learn.bias(["item 3", "item 0"]), m.item_bias.detach()[torch.from_numpy(idx)])
    torch.testing.assert_close(learn.weight("item 3"), m.item_factors.detach()[idx[:1]])
    u = learn.dls.classes["user"][5]
    torch.testing.assert_close(learn.bias([u], is_item=False), m.user_bias.detach()[5:6])
    with pytest.raises(UnknownIdError, match="'item'.*'nope'"):
        learn.bias(["nope"])


def test_most_and_least_biased(trained):
    learn = trained
    most, least = learn.most_biased(5), learn.least_biased(5)
    b = learn.model.item_bias.detach()
    order = torch.argsort(b, descending=True)
    assert most["item"].tolist() == [learn.dls.classes["item"][int(k)] for k in order[:5]]
    assert least["item"].tolist()[0] == learn.dls.classes["item"][int(order[-1])]
    assert np.all(np.diff(most["bias"].to_numpy()) <= 0)
    among = learn.most_biased(3, among=10)
    counts = learn.dls.counts["item"]
    top10 = set(torch.argsort(counts, descending=True, stable=True)[:10].tolist())
    assert all(learn.dls.classes["item"].index(i) in top10 for i in among["item"])


def test_pca_matches_svd_reference(trained):
    learn = trained
    pca = learn.pca(2)
    w = learn.model.item_factors.detach().double().numpy()
    wc = w - w.mean(0)
    _, s, vt = np.linalg.svd(wc, full_matrices=False)
    ref = wc @ vt[:2].T
    got = pca[["pc1", "pc2"]].to_numpy()
    np.testing.assert_allclose(np.abs(got), np.abs(ref), atol=1e-8)  # equal up to each component's sign
    np.testing.assert_allclose(got.var(0, ddof=1), s[:2] ** 2 / (len(w) - 1), rtol=1e-8)
    assert pca["item"].tolist() == learn.dls.classes["item"]
    fig = learn.plot_pca(1, 2, n=10, among=None)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert 1 <= len(labels) <= 10 and set(labels) <= set(learn.dls.classes["item"])


def test_recommend_excludes_seen_items(trained):
    learn = trained
    dls = learn.dls
    user = dls.classes["user"][0]
    rec = learn.recommend(user, n=100)
    seen_items = {dls.classes["item"][int(i)] for i in dls.seen[dls.seen[:, 0] == 0, 1]}
    assert seen_items and not (set(rec["item"]) & seen_items)
    assert len(rec) == dls.n_items - len(seen_items)  # all the unseen ones, best first
    assert np.all(np.diff(rec["prediction"].to_numpy()) <= 0)
    # the scores are the model's predictions for (user, item)
    df = pd.DataFrame({"user": [user] * 3, "item": rec["item"][:3].tolist()})
    preds, _ = learn.get_preds(dl=dls.test_dl(df))
    np.testing.assert_allclose(preds.numpy(), rec["prediction"][:3].to_numpy(), rtol=1e-6)
    with_seen = learn.recommend(user, n=dls.n_items, exclude_seen=False)
    assert len(with_seen) == dls.n_items


def test_similar_items_cosine(trained):
    learn = trained
    item = learn.dls.classes["item"][4]
    sim = learn.similar_items(item, n=3)
    w = learn.model.item_factors.detach()
    cos = torch.nn.functional.cosine_similarity(w, w[4:5], dim=1)
    cos[4] = -2
    best = torch.argsort(cos, descending=True)[:3]
    assert sim["item"].tolist() == [learn.dls.classes["item"][int(k)] for k in best]
    np.testing.assert_allclose(sim["similarity"].to_numpy(), cos[best].numpy(), rtol=1e-5)
    assert item not in sim["item"].tolist()


# ---- inference, unknown ids, export -------------------------------------------------------------------
def test_test_dl_and_decode_preds(trained):
    learn = trained
    dls = learn.dls
    df = pd.DataFrame({"item": [dls.classes["item"][2], dls.classes["item"][0]],
                       "user": [dls.classes["user"][1], dls.classes["user"][3]], "extra": [1, 2]})
    before = df.copy()
    dl = dls.test_dl(df)
    assert dl.n_inp == 1 and len(dl.tensors) == 1  # no rating column: inputs only
    assert dl.tensors[0].tolist() == [[1, 2], [3, 0]]
    preds, targs = learn.get_preds(dl=dl)
    assert targs is None
    out = dls.decode_preds(preds, df)
    assert df.equals(before) and list(out.columns) == ["item", "user", "extra", "prediction"]
    dec, _, _ = learn.predict({"user": df.user[0], "item": df.item[0]})
    assert isinstance(dec, float) and dec == pytest.approx(float(out.prediction[0]), rel=1e-6)
    labelled = dls.test_dl(df.assign(rating=[3.0, 4.0]))
    assert len(labelled.tensors) == 2
    assert len(dls.test_dl(df.assign(rating=[np.nan, np.nan])).tensors) == 1  # an empty column is no target
    with pytest.raises(ValueError, match="'rating' has missing values"):
        dls.test_dl(df.assign(rating=[3.0, np.nan]))


def test_unknown_ids_error_by_default(trained):
    dls = trained.dls
    df = pd.DataFrame({"user": [dls.classes["user"][0], "ghost", "ghost2"], "item": [dls.classes["item"][0]] * 3})
    with pytest.raises(UnknownIdError, match=r"Column 'user' has 2 id\(s\) not seen in training: 'ghost', 'ghost2'"):
        dls.test_dl(df)
    with pytest.raises(ValueError, match="'item'"):
        trained.predict({"user": dls.classes["user"][0], "item": "never rated"})
    many = pd.DataFrame({"user": [f"x{i}" for i in range(9)], "item": [dls.classes["item"][0]] * 9})
    with pytest.raises(UnknownIdError, match=r"9 id\(s\).*'x4' \.\.\."):
        dls.test_dl(many)


def test_unknown_ids_fallback(trained):
    learn = trained
    dls, m = learn.dls, learn.model
    known_u, known_i = dls.classes["user"][2], dls.classes["item"][5]
    df = pd.DataFrame({"user": [known_u, "ghost", "ghost", known_u], "item": ["new", known_i, "new", known_i]})
    dl = dls.test_dl(df, unknown="fallback")
    assert dl.tensors[0].tolist() == [[2, -1], [-1, 5], [-1, -1], [2, 5]]
    preds, _ = learn.get_preds(dl=dl)
    lo, hi = m.y_range
    p = (dls.rating_mean - lo) / (hi - lo)
    base = math.log(p / (1 - p))  # the global mean in the model's raw (pre-sigmoid) space
    ub = float(m.user_bias[2].detach() - m.user_bias.detach().mean())
    ib = float(m.item_bias[5].detach() - m.item_bias.detach().mean())
    sq = lambda r: 1 / (1 + math.exp(-r)) * (hi - lo) + lo  # noqa: E731
    with torch.no_grad():
        full = float(m(torch.tensor([[2, 5]]))[0])
    expected = [sq(base + ub), sq(base + ib), dls.rating_mean, full]
    np.testing.assert_allclose(preds.numpy(), expected, rtol=1e-5)
    # configured on the loaders, predict falls back too
    dls.unknown = "fallback"
    try:
        dec, _, _ = learn.predict({"user": "ghost", "item": "new"})
        assert dec == pytest.approx(dls.rating_mean, rel=1e-5)
    finally:
        dls.unknown = "error"


def test_embedding_nn_fallback_uses_mean_embedding():
    torch.manual_seed(0)
    m = EmbeddingNN(4, 3, user_sz=2, item_sz=2, layers=[5], y_range=(0, 5)).eval()
    x = torch.tensor([[1, -1], [-1, 2]])
    u_mean, i_mean = m.user_emb.weight.mean(0), m.item_emb.weight.mean(0)
    with torch.no_grad():
        h = torch.stack([torch.cat([m.user_emb.weight[1], i_mean]), torch.cat([u_mean, m.item_emb.weight[2]])])
        expected = torch.sigmoid(m.mlp(h)[:, 0]) * 5
        torch.testing.assert_close(m(x), expected)


def test_export_and_load_learner(trained, tmp_path):
    learn = trained
    dls = learn.dls
    df = pd.DataFrame({"user": dls.classes["user"][:4], "item": dls.classes["item"][3:7]})
    ref, _ = learn.get_preds(dl=dls.test_dl(df))
    path = learn.export(tmp_path / "collab.safetensors")
    loaded = load_learner(path)
    ldls = loaded.dls
    assert isinstance(ldls, CollabDataLoaders) and ldls.classes == dls.classes
    assert (ldls.user_name, ldls.item_name, ldls.rating_name) == ("user", "item", "rating")
    got, _ = loaded.get_preds(dl=ldls.test_dl(df))
    torch.testing.assert_close(got, ref)
    dec, _, _ = loaded.predict({"user": df.user[1], "item": df.item[1]})
    assert dec == pytest.approx(float(ref[1]), rel=1e-6)
    with pytest.raises(UnknownIdError):
        ldls.test_dl(pd.DataFrame({"user": ["ghost"], "item": [df.item[0]]}))
    # the interpretation tools work on a loaded learner too (without the training data)
    assert isinstance(loaded, CollabLearner)
    pd.testing.assert_frame_equal(loaded.recommend(df.user[0], n=5), learn.recommend(df.user[0], n=5))
    pd.testing.assert_frame_equal(loaded.most_biased(4, among=10), learn.most_biased(4, among=10))


def test_export_embedding_nn(tmp_path):
    df = low_rank_ratings(n_users=12, n_items=10, k=2, frac=0.9, seed=4)
    dls = CollabDataLoaders.from_df(df, valid_pct=0.2, seed=0, bs=16, device="cpu")
    learn = collab_learner(dls, use_nn=True, layers=[8], ps=0.1, y_range=(0, 6), progress=False)
    learn.fit(1, 1e-3)
    ref, _ = learn.get_preds()
    loaded = load_learner(learn.export(tmp_path / "nn.safetensors"))
    got, _ = loaded.get_preds(dl=loaded.dls.test_dl(dls.decode_x(dls.valid.tensors[0])))
    torch.testing.assert_close(got, ref)


def test_collab_learner_checks_arguments(small_df):
    dls = CollabDataLoaders.from_df(small_df, item_name="movie", valid_pct=0.25, seed=0, device="cpu")
    with pytest.raises(TypeError, match="CollabDataLoaders"):
        collab_learner(DataLoaders(dls.train, dls.valid))
    with pytest.raises(ValueError, match="y_range"):
        collab_learner(dls, y_range=(5, 1))
    with pytest.raises(KeyError, match="emb_szs"):
        collab_learner(dls, use_nn=True, emb_szs={"film": 3})
    with pytest.raises(ValueError, match="unknown"):
        CollabDataLoaders.from_df(small_df, unknown="ignore")


# ---- real data ----------------------------------------------------------------------------------------
@pytest.mark.data
@pytest.mark.slow
def test_movielens_titles_one_epoch(data_path):
    root = data_path / "ml-100k"
    if not (root / "u.data").exists():
        pytest.skip("ml-100k not found")
    ratings = pd.read_csv(root / "u.data", sep="\t", header=None, names=["user", "movie", "rating", "timestamp"])
    movies = pd.read_csv(root / "u.item", sep="|", header=None, encoding="latin-1", usecols=[0, 1],
                         names=["movie", "title"])
    df = ratings.merge(movies, on="movie")
    dls = CollabDataLoaders.from_df(df, item_name="title", rating_name="rating", bs=1024, seed=42, device="cpu")
    assert dls.n_users == 943 and dls.n_items == 1664  # a few titles are shared by two movie ids
    torch.manual_seed(0)
    learn = collab_learner(dls, n_factors=50, y_range=(0, 5.5), progress=False)
    learn.fit_one_cycle(2, 5e-3, wd=0.1)
    assert learn.recorder.log[-1]["valid_loss"] < 0.95  # the global mean alone gives ~1.27
    assert "Star Wars (1977)" in learn.most_biased(20, among=1000)["title"].tolist()
    assert learn.recommend(1, 5)["title"].nunique() == 5


def test_get_preds_takes_a_raw_dataframe(trained):
    """`learn.get_preds(df)` encodes the raw rows like `test_dl` (as the tabular learner does), and
    a DataFrame without the rating column gives no targets."""
    learn = trained
    dls = learn.dls
    df = pd.DataFrame({"user": dls.classes["user"][:4], "item": dls.classes["item"][:4]})
    before = df.copy()
    ref, _ = learn.get_preds(dl=dls.test_dl(df))
    got, targs = learn.get_preds(df)
    np.testing.assert_array_equal(got.numpy(), ref.numpy())
    assert targs is None
    pd.testing.assert_frame_equal(df, before)


def test_plot_pca_has_a_title_naming_what_is_plotted(trained):
    """The PCA scatter said nothing about what its points are (items or users, how many)."""
    learn = trained
    fig = learn.plot_pca(1, 2, n=10, among=None)
    shown = len(fig.axes[0].texts)
    assert fig.axes[0].get_title() == f"Item factors: PC2 against PC1 ({shown} of 30 'item' values)"
    fig = learn.plot_pca(1, 3, n=6, among=None, is_item=False)
    shown = len(fig.axes[0].texts)
    assert fig.axes[0].get_title() == f"User factors: PC3 against PC1 ({shown} of 40 'user' values)"
