"""deepfit.text.bow: n-gram matrices, the NB log-count ratio against hand computations, naive Bayes / logreg /
NBSVM (with Wang & Manning's interpolation) against scikit-learn and float64 references, the dot-product NB
learner, export/load and bad input. Generated corpora: the label depends on words the test knows, so a
correct classifier gets every held-out sentence right."""
from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from deepfit import load_learner
from deepfit.text import TextDataError
from deepfit.text.bow import (BowDataLoaders, BowLearner, NBDotProduct, NgramLinear, NgramVectorizer, binarize,
                              bow_learner, fit_linear_weights, interpolate, linear_scores, nb_log_count_ratio,
                              nb_log_probs, softmax_np)

pytestmark = pytest.mark.usefixtures("one_thread")

POS = ["great", "good", "love", "wonderful", "excellent"]
NEG = ["bad", "awful", "hate", "boring", "terrible"]
FILLER = ["the", "film", "was", "plot", "acting", "i", "this", "really", "a", "story", "and", "it", "music"]


def sentiment_corpus(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Sentences of filler words plus one or two words of the label's sentiment list."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(FILLER, 5) + rng.sample(POS if label == "pos" else NEG, rng.choice([1, 2]))
        rng.shuffle(words)
        rows.append((" ".join(words).capitalize() + ".", label))
    return pd.DataFrame(rows, columns=["text", "label"])


def topic_corpus(n: int = 240, seed: int = 1) -> pd.DataFrame:
    """Three topics, each with its own words, plus shared filler."""
    topics = {"sport": ["goal", "match", "team", "score"], "food": ["pasta", "bread", "cheese", "soup"],
              "tech": ["laptop", "code", "chip", "screen"]}
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        t = list(topics)[i % 3]
        words = rng.sample(FILLER, 4) + rng.sample(topics[t], 2)
        rng.shuffle(words)
        rows.append((" ".join(words), t))
    return pd.DataFrame(rows, columns=["text", "topic"])


# ---- the log-count ratio and naive Bayes by hand -------------------------------------------------------
X = sp.csr_matrix(np.array([[2, 0, 1], [1, 1, 0], [0, 3, 0], [0, 1, 1]], dtype=np.float32))
Y = np.array([1, 1, 0, 0])


def test_r_binarised_by_hand():
    # x_hat = [[1,0,1],[1,1,0],[0,1,0],[0,1,1]]; p = 1 + [2,1,1] = [3,2,2] (sum 7); q = 1 + [0,2,1] = [1,3,2] (sum 6)
    r = nb_log_count_ratio(X, Y, alpha=1.0, binary=True)
    expected = [math.log((3 / 7) / (1 / 6)), math.log((2 / 7) / (3 / 6)), math.log((2 / 7) / (2 / 6))]
    np.testing.assert_allclose(r, expected, rtol=1e-12)


def test_r_raw_counts_by_hand():
    # p = 1 + [3,1,1] = [4,2,2] (sum 8); q = 1 + [0,4,1] = [1,5,2] (sum 8)
    r = nb_log_count_ratio(X, Y, alpha=1.0, binary=False)
    np.testing.assert_allclose(r, [math.log(4), math.log(2 / 5), 0.0], atol=1e-12)


def test_r_alpha_and_positive_label():
    r = nb_log_count_ratio(X.toarray(), np.array(["a", "a", "b", "b"]), alpha=0.5, binary=True, positive="b")
    p = 0.5 + np.array([0, 2, 1.0])
    q = 0.5 + np.array([2, 1, 1.0])
    np.testing.assert_allclose(r, np.log((p / p.sum()) / (q / q.sum())), rtol=1e-12)


def test_nb_log_probs_match_r_and_priors():
    log_theta, log_prior = nb_log_probs(X, Y, 2, alpha=1.0, binary=True)
    np.testing.assert_allclose(log_theta[1] - log_theta[0], nb_log_count_ratio(X, Y), rtol=1e-12)
    np.testing.assert_allclose(np.exp(log_theta).sum(1), [1, 1], rtol=1e-12)
    np.testing.assert_allclose(log_prior, np.log([0.5, 0.5]))


def test_mnb_score_is_r_dot_xhat_plus_log_prior_ratio():
    y = np.array([1, 1, 1, 0])
    W, b = fit_linear_weights(X, y, 2, "nb")
    s = linear_scores(X, W, b)
    r = nb_log_count_ratio(X, y)
    xh = (X.toarray() > 0).astype(float)
    np.testing.assert_allclose(s[:, 1] - s[:, 0], xh @ r + math.log(3 / 1), rtol=1e-10)


def test_interpolation_formula():
    w = np.array([1.0, -3.0])  # mean |w| = 2
    np.testing.assert_allclose(interpolate(w, 0.25), [0.75 * 2 + 0.25, 0.75 * 2 - 0.75])
    np.testing.assert_allclose(interpolate(w, 1.0), w)
    with pytest.raises(ValueError, match="beta"):
        interpolate(w, 1.5)


@pytest.mark.parametrize("clf", ["logreg", "svm"])
def test_nbsvm_weights_against_sklearn(clf):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC
    df = sentiment_corpus(120)
    vec = NgramVectorizer(ngrams=2)
    x = vec.fit_transform(df.text)
    y = (df.label == "pos").to_numpy().astype(int)
    W, b = fit_linear_weights(x, y, 2, "nbsvm", C=0.5, beta=0.25, clf=clf)
    r = nb_log_count_ratio(x, y)
    xr = binarize(x).multiply(r).tocsr()
    dual = x.shape[1] > x.shape[0]
    ref = (LogisticRegression(C=0.5, solver="liblinear", dual=dual, random_state=0, max_iter=1000) if clf == "logreg"
           else LinearSVC(C=0.5, loss="squared_hinge", dual=dual, random_state=0, max_iter=1000)).fit(xr, y)
    w = ref.coef_.ravel()
    w_int = (1 - 0.25) * np.abs(w).mean() + 0.25 * w
    np.testing.assert_allclose(W[1], w_int * r, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(W[0], 0)
    assert b[1] == pytest.approx(float(ref.intercept_[0]))
    # the score on x_hat equals w' . (r * x_hat) + b
    np.testing.assert_allclose(linear_scores(x, W, b)[:, 1], xr @ w_int + ref.intercept_[0], rtol=1e-6)


# ---- vectorizer -----------------------------------------------------------------------------------------
def test_vectorizer_ngrams_max_features_and_state():
    v = NgramVectorizer(ngrams=2)
    x = v.fit_transform(["a good film", "a bad film"])
    assert {"good", "good film", "a good", "bad film"} <= set(v.features)
    assert "xxbos" not in v.features  # the default word tokenizer adds no beginning-of-text marker
    t = v.transform(["good film , unseen words"])
    assert t.sum() == 3 and t.shape == (1, v.n_features)  # good, film, good film
    v2 = NgramVectorizer.from_state(v.get_state())
    assert v2.features == v.features
    assert (v2.transform(["a good film"]) != v.transform(["a good film"])).nnz == 0
    assert NgramVectorizer(ngrams=3, max_features=4).fit(["a b c d e f", "a b c"]).n_features == 4
    with pytest.raises(ValueError, match="ngrams"):
        NgramVectorizer(ngrams=0)


def test_fold_matrices_equal_a_vectorizer_fitted_on_the_training_rows():
    from deepfit.text.bow import fold_matrices
    texts = sentiment_corpus(60).text.tolist()
    tr, te = np.arange(0, 45), np.arange(45, 60)
    x_tr, x_te = fold_matrices(NgramVectorizer(ngrams=2).fit_transform(texts), tr, te)
    v = NgramVectorizer(ngrams=2)
    ref_tr = v.fit_transform([texts[i] for i in tr])
    ref_te = v.transform([texts[i] for i in te])
    assert x_tr.shape == ref_tr.shape and (x_tr != ref_tr).nnz == 0 and (x_te != ref_te).nnz == 0


# ---- learners ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sent_dls():
    return BowDataLoaders.from_df(sentiment_corpus(200), "text", "label", valid_pct=0.25, seed=0, ngrams=2)


@pytest.mark.parametrize("method", ["nb", "logreg", "nbsvm"])
def test_linear_methods_get_known_words_right(sent_dls, method):
    learn = bow_learner(sent_dls, method=method, progress=False)
    assert learn.validate()["accuracy"] == 1.0
    label, idx, probs = learn.predict("The acting was wonderful and i love it.")
    assert label == "pos" and int(idx) == sent_dls.classes.index("pos")
    assert probs.shape == (2,) and float(probs.sum()) == pytest.approx(1.0, abs=1e-6)
    assert learn.predict("A boring, terrible story.")[0] == "neg"


def test_torch_model_matches_float64_scores(sent_dls):
    learn = bow_learner(sent_dls, method="nbsvm", progress=False)
    W, b = fit_linear_weights(sent_dls.x_train, sent_dls.y_train, 2, "nbsvm")
    ref = softmax_np(linear_scores(sent_dls.x_valid, W, b))
    probs, targs = learn.get_preds()
    np.testing.assert_allclose(probs.numpy(), ref, atol=1e-5)
    assert targs.tolist() == sent_dls.y_valid.tolist()


def test_raw_counts_option():
    dls = BowDataLoaders.from_texts(["good good film", "bad film", "good", "bad bad"], ["p", "n", "p", "n"],
                                    valid_texts=["good film good"], valid_labels=["p"])
    learn = bow_learner(dls, method="nb", binary=False, alpha=1.0, progress=False)
    W, b = fit_linear_weights(dls.x_train, dls.y_train, 2, "nb", binary=False)
    out = learn.get_preds(activation=False)[0].numpy()
    np.testing.assert_allclose(out, linear_scores(dls.x_valid, W, b, binary=False), rtol=1e-5)
    # the raw count 2 of "good" enters the score, not just its presence (repeats in a row would become xxwrep)
    g, f = dls.vectorizer.features.index("good"), dls.vectorizer.features.index("film")
    hand = 2 * (W[1, g] - W[0, g]) + (W[1, f] - W[0, f]) + b[1] - b[0]
    assert out[0, 1] - out[0, 0] == pytest.approx(hand, rel=1e-5)


@pytest.mark.parametrize("method", ["nb", "logreg", "nbsvm"])
def test_three_topics(method):
    dls = BowDataLoaders.from_df(topic_corpus(), "text", "topic", seed=0)
    learn = bow_learner(dls, method=method, progress=False)
    assert dls.classes == ["food", "sport", "tech"]
    assert learn.validate()["accuracy"] == 1.0
    assert learn.predict("the team and the goal")[0] == "sport"


def test_nb_learner_trains_with_fixed_r(sent_dls):
    torch.manual_seed(0)
    learn = bow_learner(sent_dls, method="nb_learner", progress=False)
    assert isinstance(learn.model, NBDotProduct)
    r0 = learn.model.r.clone()
    np.testing.assert_allclose(r0[:-1, 1].numpy(), nb_log_count_ratio(sent_dls.x_train, sent_dls.y_train == 1),
                               rtol=1e-5, atol=1e-6)
    w0 = learn.model.w.weight.detach().clone()
    learn.fit_one_cycle(3, 0.05)
    assert torch.equal(learn.model.r, r0)  # r is a buffer: never trained
    assert not torch.equal(learn.model.w.weight, w0)
    assert learn.validate()["accuracy"] == 1.0
    # forward by hand for one document: sum over its distinct n-grams of (w + 0.4) * r / 10 + bias
    ids, cnt = sent_dls.encode_texts(["i love this film"])
    m = learn.model
    present = ids[0][cnt[0] > 0]
    hand = ((m.w.weight[present] + 0.4) * m.r[present]).sum(0) / 10 + m.bias
    torch.testing.assert_close(m(ids, cnt)[0], hand)


def test_export_and_load_learner(sent_dls, tmp_path):
    for method in ("nbsvm", "nb_learner"):
        learn = bow_learner(sent_dls, method=method, progress=False)
        f = learn.export(tmp_path / f"{method}.safetensors")
        new = load_learner(f)
        assert isinstance(new, BowLearner) and type(new.model) is type(learn.model)
        a, b = learn.predict("really good story"), new.predict("really good story")
        assert a[0] == b[0] and torch.allclose(a[2], b[2])
        dl = new.dls.test_dl(["a bad film", "good film"], ["neg", "pos"])
        assert new.get_preds(dl=dl)[0].argmax(1).tolist() == [0, 1]


def test_from_dls_of_the_rnn_classifier_data():
    cd = pytest.importorskip("deepfit.text.classifier_data")
    df = sentiment_corpus(120)
    rdls = cd.TextClassifierDataLoaders.from_df(df, "text", "label", valid_pct=0.25, seed=0, min_freq=1)
    learn = bow_learner(rdls, method="nbsvm", ngrams=2, progress=False)
    assert isinstance(learn.dls, BowDataLoaders)
    assert learn.dls.valid.texts == rdls.valid.texts and learn.dls.classes == rdls.classes
    assert learn.validate()["accuracy"] == 1.0
    # RNN's text_classifier_learner hands the bag-of-words methods over to bow_learner
    from deepfit.text.classifier import text_classifier_learner
    learn2 = text_classifier_learner(rdls, method="nb", ngrams=2, progress=False)
    assert isinstance(learn2, BowLearner) and learn2.method == "nb"
    assert learn2.predict("what a wonderful story")[0] == "pos"


# ---- bad input --------------------------------------------------------------------------------------------
def test_bad_input_messages():
    df = sentiment_corpus(20)
    with pytest.raises(TextDataError, match="single class"):
        BowDataLoaders.from_df(df.assign(label="pos"), "text", "label")
    miss = df.copy()
    miss.loc[[3, 7], "label"] = None
    with pytest.raises(TextDataError, match=r"missing on 2 of 20 rows \(rows 3, 7\)"):
        BowDataLoaders.from_df(miss, "text", "label")
    empty = df.copy()
    empty.loc[5, "text"] = "   "
    with pytest.raises(TextDataError, match=r"1 empty text\(s\) \(rows 5"):
        BowDataLoaders.from_df(empty, "text", "label")
    with pytest.raises(TextDataError, match="holds numbers"):
        BowDataLoaders.from_df(df.assign(text=range(20)), "text", "label")
    with pytest.raises(TextDataError, match="did you mean 'label'"):
        BowDataLoaders.from_df(df, "text", "labels")
    dls = BowDataLoaders.from_df(df, "text", "label", seed=0)
    with pytest.raises(TextDataError, match="not trained on"):
        dls.test_dl(["good"], ["positive"])
    with pytest.raises(ValueError, match="method"):
        bow_learner(dls, method="svm-ish")
    learn = bow_learner(dls, method="nb", progress=False)
    with pytest.raises(TextDataError, match="empty"):
        learn.predict("  ")
    with pytest.raises(TypeError, match="one text"):
        learn.predict(["good", "bad"])
    with pytest.raises(TypeError, match="BowDataLoaders"):
        bow_learner(object())  # type: ignore[arg-type]


def test_show_batch(sent_dls, capsys):
    rows = sent_dls.show_batch(2)
    text, label, grams = rows[0]
    assert text == sent_dls.train.texts[0] and label in ("pos", "neg")
    v = NgramVectorizer.from_state(sent_dls.vectorizer.get_state())
    row = v.transform([text])
    assert grams == [v.features[j] for j in sorted(row.indices)][:12]  # in vocabulary order, at most 12
    assert "n-grams:" in capsys.readouterr().out


def test_batches_are_padded_to_their_own_longest_row():
    from deepfit.text.bow import n_gram_loader
    x = sp.csr_matrix(np.array([[0, 2, 0, 1], [1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 3, 0]], dtype=np.float32))
    dl = n_gram_loader(x, torch.arange(4), pad=4, bs=2)
    (ids1, cnt1, y1), (ids2, cnt2, y2) = list(dl)
    assert ids1.tolist() == [[1, 3], [0, 4]] and cnt1.tolist() == [[2, 1], [1, 0]] and y1.tolist() == [0, 1]
    assert ids2.tolist() == [[0, 1, 2, 3], [2, 4, 4, 4]] and cnt2.tolist() == [[1, 1, 1, 1], [3, 0, 0, 0]]
    # shuffled: every row comes back once, with its own n-grams
    dl = n_gram_loader(x, torch.arange(4), pad=4, bs=3, shuffle=True, seed=0)
    seen = {}
    for ids, cnt, y in dl:
        for i in range(len(y)):
            row = x[int(y[i])]
            seen[int(y[i])] = (ids[i][cnt[i] > 0].tolist(), cnt[i][cnt[i] > 0].tolist())
            assert seen[int(y[i])] == (row.indices.tolist(), row.data.tolist())
    assert sorted(seen) == [0, 1, 2, 3]
    empty = n_gram_loader(sp.csr_matrix((0, 4), dtype=np.float32), None, pad=4)
    assert list(empty) == []


def test_ngram_linear_padding_row_stays_zero():
    m = NgramLinear(3, 2)
    m.set_weights(np.ones((2, 3)), np.zeros(2))
    ids = torch.tensor([[0, 3, 3]])
    assert m(ids, torch.tensor([[1.0, 0, 0]])).tolist() == [[1.0, 1.0]]


# ---- real data ----------------------------------------------------------------------------------------------
@pytest.mark.data
def test_yelp_nbsvm_bigrams_ten_fold(data_path):
    import csv
    f = data_path / "sentiment-sentences" / "yelp_labelled.txt"
    if not f.is_file():
        pytest.skip("sentiment-sentences not found")
    df = pd.read_csv(f, sep="\t", header=None, names=["text", "label"], quoting=csv.QUOTE_NONE)
    assert len(df) == 1000
    tok = NgramVectorizer().tokenizer
    tokens = [tok(t) for t in df.text]
    y = df.label.to_numpy()
    perm = np.random.default_rng(0).permutation(len(y))
    accs = []
    for part in np.array_split(perm, 10):
        tr = np.setdiff1d(perm, part)
        v = NgramVectorizer(ngrams=2)
        x = v.fit_transform_tokens([tokens[i] for i in tr])
        W, b = fit_linear_weights(x, y[tr], 2, "nbsvm")
        accs.append((linear_scores(v.transform_tokens([tokens[i] for i in part]), W, b).argmax(1) == y[part]).mean())
    assert np.mean(accs) > 0.78  # 82.5 measured (benchmarks/RESULTS.md); chance is 0.5
