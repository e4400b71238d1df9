"""RNN text classifier (ULMFiT style): sort-ish padded batches, concat pooling that ignores padding (by hand and
padded == unpadded), predictions in row order, learning a generated corpus, encoder save/load and mismatches,
gradual unfreezing with discriminative rates, interpretation, export / load_learner, bad input."""
from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from deepfit import load_learner
from deepfit.callbacks import Callback
from deepfit.text import (EncoderMismatchError, TextClassDataLoader, TextClassifier, TextClassifierDataLoaders,
                          TextClassificationInterpretation, TextDataError, TextLMDataLoaders, confusion_matrix,
                          language_model_learner, masked_concat_pool, most_confident_mistakes, pad_batch,
                          text_classifier_learner)
from deepfit.text.encoder import encoder_text_parts, read_encoder_header

pytestmark = pytest.mark.usefixtures("one_thread")

POS, NEG = ["great", "good", "lovely", "excellent"], ["bad", "awful", "poor", "terrible"]
FILLER = "the a movie was it and plot acting story film really quite".split()


def corpus(n=300, seed=0, max_words=15):
    """Sentences of filler words with one sentiment word that decides the label."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        lab = i % 2
        words = [rng.choice(FILLER) for _ in range(rng.randint(1, max_words))]
        words.insert(rng.randint(0, len(words)), rng.choice(POS if lab else NEG))
        texts.append(" ".join(words))
        labels.append("pos" if lab else "neg")
    return texts, labels


def _dls(n=300, **kw):
    texts, labels = corpus(n)
    args = dict(valid_pct=0.2, seed=0, bs=16, device="cpu", min_freq=1)
    args.update(kw)
    return TextClassifierDataLoaders.from_texts(texts, labels, **args)


def _learner(dls=None, **kw):
    args = dict(emb_size=8, n_hid=12, n_layers=2, drop_mult=0.0, progress=False)
    args.update(kw)
    return text_classifier_learner(dls or _dls(), **args)


# ---- data -------------------------------------------------------------------------------------------------
def test_batches_are_the_documents_right_padded_and_cover_every_row_once():
    docs = [torch.arange(1, n + 1) + 10 * i for i, n in enumerate([3, 7, 1, 5, 2, 6, 4, 8, 3, 2])]
    y = torch.arange(10) % 3
    dl = TextClassDataLoader(docs, y, bs=3, pad_idx=0, shuffle=True, chunk_mult=2, seed=1)
    seen = []
    for x, lens, yb in dl:
        assert x.shape[1] == int(lens.max())  # padded to the longest of its batch only
        for row, n, t in zip(x, lens, yb):
            i = next(j for j, d in enumerate(docs) if len(d) == n and torch.equal(row[:n], d))
            assert torch.all(row[n:] == 0) and int(t) == int(y[i])
            seen.append(i)
    assert sorted(seen) == list(range(10))


def test_sortish_order_sorts_within_chunks_changes_every_epoch_and_pads_less_than_random():
    rng = np.random.default_rng(0)
    docs = [torch.ones(int(n), dtype=torch.long) for n in rng.integers(1, 200, 2000)]
    dl = TextClassDataLoader(docs, torch.zeros(2000, dtype=torch.long), bs=20, shuffle=True, chunk_mult=10, seed=0)
    b1, b2 = dl.batch_indices(1), dl.batch_indices(2)
    assert not all(torch.equal(a, b) for a, b in zip(b1, b2))
    lens = dl.lengths
    for b in b1:  # inside a batch: decreasing lengths (sorted inside its chunk)
        assert torch.all(lens[b][:-1] >= lens[b][1:])
    padded = sum(int(lens[b].max()) * len(b) for b in b1)
    perm = torch.randperm(2000, generator=torch.Generator().manual_seed(0))
    random_padded = sum(int(lens[b].max()) * len(b) for b in torch.split(perm, 20))
    assert padded < 0.6 * random_padded
    valid = TextClassDataLoader(docs, None, bs=20)
    order = torch.cat(valid.batch_indices())
    assert torch.equal(order, valid.row_order()) and torch.all(lens[order][:-1] >= lens[order][1:])


def test_distributed_shards_take_disjoint_batches_of_the_same_plan():
    docs = [torch.ones(n, dtype=torch.long) for n in range(1, 24)]
    shards = []
    for rank in (0, 1):
        dl = TextClassDataLoader(docs, torch.arange(23), bs=4, shuffle=True, seed=3)
        dl.rank, dl.world_size = rank, 2
        assert len(dl) == 3
        shards.append([int(i) for b in dl.batch_indices(7) for i in b])
    assert not set(shards[0]) & set(shards[1])  # 6 batches: 3 each, none repeated
    assert set(shards[0]) | set(shards[1]) == set(range(23))


def test_loader_resumes_an_interrupted_epoch_exactly():
    dls = _dls()
    dl = dls.train
    it = iter(dl)
    for _ in range(3):
        next(it)
    state = dl.state_dict()
    rest = [b[0].clone() for b in it]
    dl.load_state_dict(state)
    again = [b[0] for b in dl]
    assert len(again) == len(rest) and all(torch.equal(a, b) for a, b in zip(again, rest))


def test_from_df_reuses_a_vocab_and_keeps_texts_and_classes():
    texts, labels = corpus(100)
    lm = TextLMDataLoaders.from_texts(texts, tokenizer="word", bs=4, bptt=5, device="cpu")
    df = pd.DataFrame({"review": texts, "stars": [5 if l == "pos" else 1 for l in labels]})
    dls = TextClassifierDataLoaders.from_df(df, "review", "stars", tokenizer=lm.tokenizer, vocab=lm.vocab, seed=0,
                                            device="cpu")
    assert dls.vocab is lm.vocab and dls.classes == [1, 5] and (dls.text_col, dls.label_col) == ("review", "stars")
    x, lens, y = dls.valid.one_batch()
    i = int(dls.valid.row_order()[0])
    t = dls.valid.texts[i]
    assert torch.equal(x[0, :lens[0]], lm.vocab.numericalize(lm.tokenizer(t)))
    assert dls.classes[int(y[0])] == df.stars[texts.index(t)]


# ---- pooling and the model ---------------------------------------------------------------------------------
def test_masked_concat_pool_matches_a_hand_computation_on_a_padded_batch():
    out = torch.tensor([[[1., -2.], [3., 5.], [-4., 0.], [9., 9.]],      # 3 real steps, 1 padding (9s)
                        [[2., 1.], [-7., -8.], [99., 99.], [99., 99.]]], dtype=torch.float64)  # 2 real steps
    pooled = masked_concat_pool(out, torch.tensor([3, 2]))
    expected = torch.tensor([[-4., 0., 3., 5., 0., 1.],                   # last real, max, mean of rows 0..2
                             [-7., -8., 2., 1., -2.5, -3.5]], dtype=torch.float64)
    assert torch.equal(pooled, expected)


def test_a_padded_and_an_unpadded_copy_of_a_text_give_the_same_output():
    torch.manual_seed(0)
    model = TextClassifier(30, 3, emb_size=6, n_hid=10, n_layers=2, pad_idx=1).eval()
    short, long_ = torch.tensor([5, 9, 2, 7]), torch.arange(2, 13)
    alone = model(short[None], torch.tensor([4]))
    x, lens = pad_batch([long_, short], pad_idx=1)
    together = model(x, lens)
    assert torch.allclose(together[1], alone[0], atol=1e-6)
    x2 = x.clone()
    x2[1, 4:] = torch.tensor([3, 4, 5, 6, 7, 8, 9])  # whatever sits after the end must not matter
    assert torch.allclose(model(x2, lens)[1], alone[0], atol=1e-6)


def test_get_preds_comes_back_in_row_order():
    learn = _learner()
    probs, targs = learn.get_preds()
    dl = learn.dls.valid
    assert torch.equal(targs, dl.tensors[3])
    model = learn.model.eval()
    with torch.no_grad():
        for i in (0, 5, len(targs) - 1):
            ids = learn.dls.numericalize([dl.texts[i]])[0]
            p = torch.softmax(model(ids[None], torch.tensor([len(ids)])), -1)[0]
            assert torch.allclose(probs[i], p, atol=1e-5)
    (x, lens), p2, _ = learn.get_preds(with_input=True)
    assert x.shape == (len(targs), int(dl.lengths.max())) and torch.equal(lens, dl.lengths)


def test_classifier_learns_a_corpus_whose_labels_depend_on_known_words():
    torch.manual_seed(0)
    learn = _learner(emb_size=16, n_hid=32, n_layers=1)
    learn.fit_one_cycle(5, 3e-2)
    assert learn.recorder.last_valid["accuracy"] >= 0.95
    label, idx, probs = learn.predict("the plot was really excellent")
    assert label == "pos" and int(idx) == 1 and probs.shape == (2,) and abs(float(probs.sum()) - 1) < 1e-5
    assert learn.predict("awful acting")[0] == "neg"


# ---- the encoder on its own ----------------------------------------------------------------------------------
def _lm(texts, **kw):
    dls = TextLMDataLoaders.from_texts(texts, tokenizer="word", bs=4, bptt=6, device="cpu", seed=0)
    args = dict(arch="lstm", emb_size=8, n_hid=12, n_layers=2, drop_mult=0.0, progress=False)
    args.update(kw)
    return language_model_learner(dls, **args)


def test_encoder_round_trip_lm_to_classifier_to_classifier(tmp_path):
    texts, labels = corpus(120)
    lm = _lm(texts)
    f = lm.save_encoder(tmp_path / "enc")
    assert f.suffix == ".safetensors"
    cfg, itos = read_encoder_header(f)
    assert cfg == {"vocab_sz": len(lm.dls.vocab), "emb_size": 8, "n_hid": 12, "n_layers": 2, "arch": "lstm",
                   "out_size": 8} and itos == lm.dls.vocab.itos
    tok, vocab = encoder_text_parts(f)  # the classifier reads text exactly as the language model did
    assert vocab == lm.dls.vocab and tok.get_state() == lm.dls.tokenizer.get_state()
    dls = TextClassifierDataLoaders.from_texts(texts, labels, tokenizer=lm.dls.tokenizer, vocab=lm.dls.vocab, seed=0,
                                               bs=8, device="cpu")
    clf = text_classifier_learner(dls, encoder=f, drop_mult=0.0, progress=False)  # sizes read from the file
    lm_state = lm.model.state_dict()
    for k, v in clf.model.body.state_dict().items():
        assert torch.equal(v, lm_state[k]), k
    # frozen but for the head (and batch-norm)
    trainable = {n.split(".")[0] for n, p in clf.model.named_parameters() if p.requires_grad}
    assert trainable == {"head"}
    # a classifier's encoder back into another classifier
    with torch.no_grad():
        clf.model.body.encoder.weight.add_(1.0)
    g = clf.save_encoder(tmp_path / "clas_enc.safetensors")
    other = text_classifier_learner(dls, emb_size=8, n_hid=12, n_layers=2, drop_mult=0.0, progress=False)
    other.load_encoder(g)
    assert torch.equal(other.model.body.encoder.weight, clf.model.body.encoder.weight)
    # and into a language model (the decoder is kept)
    lm2 = _lm(texts)
    dec = lm2.model.decoder_bias.clone()
    lm2.load_encoder(g)
    assert torch.equal(lm2.model.encoder.weight, clf.model.body.encoder.weight)
    assert torch.equal(lm2.model.decoder_bias, dec)


def test_the_classifier_reads_a_text_as_the_language_model_does(tmp_path):
    # the encoder loaded from a language model computes the LM's own features: its decoder on them gives the
    # LM's next-token logits for the text read from a fresh state (eval mode: no dropout)
    texts, labels = corpus(120)
    lm = _lm(texts, tie_weights=True)
    f = lm.save_encoder(tmp_path / "enc")
    dls = TextClassifierDataLoaders.from_texts(texts, labels, tokenizer=lm.dls.tokenizer, vocab=lm.dls.vocab, seed=0,
                                               device="cpu")
    clf = text_classifier_learner(dls, encoder=f, drop_mult=0.5, progress=False)
    ids = dls.numericalize(["the plot was great"])[0][None]
    lm.model.eval().reset()
    clf.model.eval()
    with torch.no_grad():
        expected = lm.model(ids)
        feats = clf.model.body(ids)
        got = torch.nn.functional.linear(feats, lm.model.encoder.weight, lm.model.decoder_bias)
    assert torch.allclose(got, expected, atol=1e-5)


def test_loading_an_encoder_of_another_vocabulary_or_size_is_a_clear_error(tmp_path):
    texts, labels = corpus(120)
    lm = _lm(texts)
    f = lm.save_encoder(tmp_path / "enc")
    own = TextClassifierDataLoaders.from_texts(texts + ["zebra unicorn"], labels + ["pos"], seed=0, device="cpu",
                                               min_freq=1)
    assert len(own.vocab) != len(lm.dls.vocab)
    with pytest.raises(EncoderMismatchError, match=rf"vocabulary of {len(lm.dls.vocab)} tokens.*reads "
                                                   rf"{len(own.vocab)}.*vocab=lm_dls.vocab"):
        text_classifier_learner(own, encoder=f, progress=False)
    # same size, other tokens: refused too (the ids would silently mean other words)
    itos = list(lm.dls.vocab.itos)
    itos[-1], itos[-2] = itos[-2], itos[-1]
    from deepfit.text import Vocab
    swapped = Vocab(itos, lm.dls.vocab.specials)
    dls = TextClassifierDataLoaders.from_texts(texts, labels, tokenizer=lm.dls.tokenizer, vocab=swapped, seed=0,
                                               device="cpu")
    with pytest.raises(EncoderMismatchError, match="another vocabulary of the same size"):
        text_classifier_learner(dls, encoder=f, progress=False)
    # other sizes, given explicitly or in the model
    good = TextClassifierDataLoaders.from_texts(texts, labels, tokenizer=lm.dls.tokenizer, vocab=lm.dls.vocab,
                                                seed=0, device="cpu")
    with pytest.raises(EncoderMismatchError, match="n_hid=16 was given but the encoder file has n_hid=12"):
        text_classifier_learner(good, encoder=f, n_hid=16, progress=False)
    wide = text_classifier_learner(good, emb_size=8, n_hid=16, n_layers=2, progress=False)
    with pytest.raises(EncoderMismatchError, match="n_hid=12 in the file but 16 in this model"):
        wide.load_encoder(f)
    with pytest.raises(FileNotFoundError):
        wide.load_encoder(tmp_path / "nothing")


def test_remap_vocab_copies_shared_tokens_and_gives_new_ones_the_mean(tmp_path):
    texts, _ = corpus(120)
    general = _lm(texts)
    f = general.save_encoder(tmp_path / "general")
    task = _lm(["a zebra was great", "the unicorn film was bad"] * 20)
    task.load_encoder(f, remap_vocab=True)
    old, new = general.dls.vocab, task.dls.vocab
    w_old, w_new = general.model.encoder.weight, task.model.encoder.weight
    for t in ("great", "film", "the"):
        assert torch.equal(w_new[new.stoi[t]], w_old[old.stoi[t]])
    assert "zebra" not in old.stoi
    assert torch.allclose(w_new[new.stoi["zebra"]], w_old.mean(0))
    with pytest.raises(EncoderMismatchError, match="remap_vocab=True"):
        task.load_encoder(f)


# ---- gradual unfreezing ----------------------------------------------------------------------------------------
class _Spy(Callback):
    def __init__(self):
        self.trainable, self.lrs = [], []

    def before_fit(self):
        groups = self.learner.layer_groups()
        self.trainable.append([all(p.requires_grad for p in g if p.ndim > 1) for g in groups])

    def before_step(self):
        if self.learner.iter == 0 and self.learner.training and len(self.lrs) < len(self.trainable):
            self.lrs.append([g["lr"] for g in self.learner.opt.param_groups])


def test_gradual_unfreezing_last_group_then_two_then_all_with_discriminative_rates():
    spy = _Spy()
    learn = _learner(cbs=[spy])
    assert len(learn.layer_groups()) == 4  # embedding, 2 recurrent layers, head
    learn.fit_gradual(1e-2, epochs=(1, 1, 1), lr_mults=(1.0, 0.5, 0.1))
    assert spy.trainable == [[False, False, False, True], [False, False, True, True], [True, True, True, True]]
    # the first batch of each one-cycle stage runs at lr_max / 25; the groups' rates are slice(top / 2.6**4, top)
    for lrs, top, ratio in zip(spy.lrs, (1e-2, 5e-3, 1e-3), (1.0, 2.6 ** (4 / 3), 2.6 ** (4 / 3))):
        assert lrs[-1] == pytest.approx(top / 25)
        if top != 1e-2:
            assert np.allclose(np.array(lrs[1:]) / np.array(lrs[:-1]), ratio)
        else:
            assert np.allclose(lrs, top / 25)


# ---- interpretation, export, bad input -----------------------------------------------------------------------
def test_interpretation_confusion_matrix_and_most_confident_mistakes_by_hand():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.05, 0.95]])
    targs = [1, 1, 0, 0, 0]
    assert confusion_matrix(targs, probs, 2).tolist() == [[1, 2], [1, 1]]
    m = most_confident_mistakes(probs, targs, list("abcde"), ["neg", "pos"], k=2)
    assert m.text.tolist() == ["e", "a"] and m.actual.tolist() == ["neg", "pos"]
    assert m.confidence.tolist() == [0.95, 0.9] and m.loss.tolist() == pytest.approx([-np.log(0.05), -np.log(0.1)])
    interp = TextClassificationInterpretation(probs, targs, list("abcde"), ["neg", "pos"])
    assert interp.most_confused() == [("neg", "pos", 2), ("pos", "neg", 1)] and interp.accuracy == pytest.approx(0.4)
    learn = _learner()
    it = learn.interpret()
    assert it.confusion_matrix().sum() == learn.dls.valid.n and it.texts == learn.dls.valid.texts


def test_export_and_load_learner_predict_the_same(tmp_path):
    torch.manual_seed(0)
    learn = _learner()
    learn.fit_one_cycle(1, 1e-2)
    f = learn.export(tmp_path / "clas.safetensors")
    loaded = load_learner(f)
    assert type(loaded).__name__ == "TextClassifierLearner"
    assert loaded.dls.classes == ["neg", "pos"] and loaded.dls.vocab == learn.dls.vocab
    a, b = learn.predict("a great film"), loaded.predict("a great film")
    assert a[0] == b[0] and torch.allclose(a[2], b[2], atol=1e-6)
    dl = loaded.dls.test_dl(["good", "bad plot", "the movie"], ["pos", "neg", "neg"])
    probs, targs = loaded.get_preds(dl=dl)
    assert probs.shape == (3, 2) and targs.tolist() == [1, 0, 0]
    with pytest.raises(TextDataError, match="labels the model was not trained on: 'meh'"):
        loaded.dls.test_dl(["good"], ["meh"])


def test_bad_input_is_a_clear_error():
    texts, labels = corpus(20)
    with pytest.raises(TextDataError, match="every label of .* is 'pos'.*at least two classes"):
        TextClassifierDataLoaders.from_texts(texts, ["pos"] * 20, device="cpu")
    bad = list(texts)
    bad[3], bad[7] = "", "   "
    with pytest.raises(TextDataError, match=r"2 of the 20 texts .* empty .*rows 3, 7"):
        TextClassifierDataLoaders.from_texts(bad, labels, device="cpu")
    lab = list(labels)
    lab[2], lab[5], lab[9] = None, float("nan"), None
    with pytest.raises(TextDataError, match=r"3 of the 20 labels .* missing \(rows 2, 5, 9\)"):
        TextClassifierDataLoaders.from_texts(texts, lab, device="cpu")
    df = pd.DataFrame({"n": np.arange(20), "label": labels})
    with pytest.raises(TextDataError, match="text column 'n' .* holds numbers"):
        TextClassifierDataLoaders.from_df(df, "n", "label", device="cpu")
    with pytest.raises(ValueError, match="`method` must be 'rnn' or one of nb, nbsvm"):
        text_classifier_learner(_dls(), method="svm")
    with pytest.raises(TextDataError, match="empty"):
        _learner().predict("  ")


def test_bag_of_words_methods_are_handed_over_to_bow():
    from deepfit.text.bow import BowDataLoaders, BowLearner
    texts, labels = corpus(200)
    dls = BowDataLoaders.from_texts(texts, labels, seed=0, device="cpu")
    learn = text_classifier_learner(dls, method="nbsvm", C=1.0)
    assert isinstance(learn, BowLearner) and learn.validate()["accuracy"] == 1.0  # the sentiment word decides
    with pytest.raises(TypeError, match="unexpected options \\['C'\\]"):
        text_classifier_learner(_dls(), method="rnn", C=1.0)
