"""deepfit.seq2seq learner: models learn a small generated "language", translate, export and load back."""
from __future__ import annotations

import random

import pytest
import torch

from deepfit.callbacks import ParamScheduler
from deepfit.export import check_export, load_learner
from deepfit.seq2seq import (CorpusBLEU, SentenceTooLongError, Seq2SeqDataLoaders, Seq2SeqLearner, load_vectors,
                             translation_learner)

WORDS = "ab cd ef gh ij kl mn op qr st uv wx".split()
SUB = {w: w[::-1] + "z" for w in WORDS}  # "ab" -> "baz"


def make_pairs(n: int, seed: int, reverse: bool = True) -> tuple[list[str], list[str]]:
    """Source: 2-7 random words; target: each word substituted, in reverse order (or in order)."""
    rng = random.Random(seed)
    src, tgt = [], []
    for _ in range(n):
        s = [rng.choice(WORDS) for _ in range(rng.randint(2, 7))]
        src.append(" ".join(s))
        tgt.append(" ".join(SUB[w] for w in (reversed(s) if reverse else s)))
    return src, tgt


@pytest.fixture(scope="module")
def gru_learner():
    torch.set_num_threads(1)
    s, t = make_pairs(1200, 0)
    vs, vt = make_pairs(60, 1)
    dls = Seq2SeqDataLoaders.from_texts(s, t, vs, vt, bs=32, seed=0, min_freq=1, device="cpu")
    learn = translation_learner(dls, arch="gru", emb_sz=32, n_hid=64, seed=0, progress=False)
    learn.fit_one_cycle(6, 1e-2)
    return learn, vs, vt


def test_gru_learns_reversal_with_substitution(gru_learner):
    learn, vs, vt = gru_learner
    hyps = learn.translate_many(vs)
    exact = sum(h == r for h, r in zip(hyps, vt))
    assert exact >= 0.8 * len(vs)
    assert learn.translate(vs[0]) == hyps[0]
    beam = learn.translate_many(vs, beam=4)
    assert sum(h == r for h, r in zip(beam, vt)) >= 0.8 * len(vs)
    text, ids, score = learn.predict(vs[0])
    assert text == hyps[0] and learn.dls.decode_tgt(ids) == text and score.item() <= 0
    # the validation BLEU metric was logged every epoch and ends high
    log = learn.recorder.log
    assert len(log) == 6 and log[-1]["bleu"] > 80
    res = learn.bleu(vs, vt, beam=3)
    assert res["bleu_tok"] > 80 and res["sacrebleu"] > 80 and len(res["hyps"]) == len(vs)


def teacher_forcing_values(learn: Seq2SeqLearner) -> list[float]:
    ps = next(c for c in learn.cbs if isinstance(c, ParamScheduler) and "model.teacher_forcing" in c.scheds)
    return ps.hps["model.teacher_forcing"]


def test_teacher_forcing_was_scheduled_always_then_half(gru_learner):
    learn, _, _ = gru_learner
    vals = teacher_forcing_values(learn)  # one value per training batch of the fit
    n = len(vals)
    assert vals[: n // 2] == [1.0] * (n // 2) and vals[n // 2 + 1:] == [0.5] * (n - n // 2 - 1)
    assert learn.model.teacher_forcing == 0.5


def test_lesson_teacher_forcing_goes_always_half_never():
    s, t = make_pairs(64, 0)
    dls = Seq2SeqDataLoaders.from_texts(s, t, s[:8], t[:8], bs=16, seed=0, min_freq=1, device="cpu")
    learn = translation_learner(dls, arch="gru", emb_sz=8, n_hid=8, seed=0, progress=False, metrics=(),
                                teacher_forcing="lesson")
    learn.fit(3, 1e-3)  # 4 batches an epoch: 12 values, in thirds
    assert teacher_forcing_values(learn) == [1.0] * 4 + [0.5] * 4 + [0.0] * 4
    assert learn.model.teacher_forcing == 0.0
    always = translation_learner(dls, arch="gru", emb_sz=8, n_hid=8, progress=False, teacher_forcing=None)
    assert not any(isinstance(c, ParamScheduler) for c in always.cbs)
    with pytest.raises(ValueError, match="'lesson'"):
        translation_learner(dls, arch="gru", emb_sz=8, n_hid=8, progress=False, teacher_forcing="never")


def test_attention_of_a_reversal_looks_at_the_mirror_position(gru_learner, tmp_path):
    learn, _, _ = gru_learner
    src_toks, out_toks, w = learn.attention("ab cd ef gh")
    assert src_toks == ["ab", "cd", "ef", "gh", "xxeos"] and out_toks[:4] == ["hgz", "fez", "dcz", "baz"]
    assert w.shape == (len(out_toks), 5)
    assert torch.allclose(w.sum(1), torch.ones(len(out_toks)), atol=1e-5)
    learn.plot_attention("ab cd ef gh", fname=tmp_path / "att.png")
    assert (tmp_path / "att.png").stat().st_size > 1000


def test_export_round_trip_gives_identical_translations(gru_learner, tmp_path):
    learn, vs, _ = gru_learner
    path = learn.export(tmp_path / "mt.safetensors")
    checked = check_export(path)
    assert checked.dls_state["src_vocab"]["itos"] == learn.dls.src_vocab.itos
    loaded = load_learner(path)
    assert isinstance(loaded, Seq2SeqLearner)
    assert loaded.dls.tgt_vocab == learn.dls.tgt_vocab
    assert loaded.translate_many(vs[:20]) == learn.translate_many(vs[:20])
    assert loaded.translate_many(vs[:5], beam=3) == learn.translate_many(vs[:5], beam=3)


def test_damaged_export_is_refused_naming_the_field(gru_learner, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    from deepfit.export import ExportError, read_header
    learn, _, _ = gru_learner
    path = learn.export(tmp_path / "mt.safetensors")
    meta, tensors = read_header(path), load_file(str(path))
    state = json.loads(meta["dls_state"])
    del state["tgt_vocab"]
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, "dls_state": json.dumps(state)})
    with pytest.raises(ExportError, match="tgt_vocab is missing"):
        load_learner(tmp_path / "bad.safetensors")
    state = json.loads(meta["dls_state"])
    state["tgt_vocab"]["itos"] = state["tgt_vocab"]["itos"][:-1]  # one token short of the model's output layer
    save_file(tensors, str(tmp_path / "bad2.safetensors"), metadata={**meta, "dls_state": json.dumps(state)})
    with pytest.raises(ExportError, match="the tgt vocabulary has .* tokens but the model reads"):
        load_learner(tmp_path / "bad2.safetensors")


def test_sentence_too_long_and_empty(gru_learner):
    learn, _, _ = gru_learner
    limit = learn.model.max_len
    with pytest.raises(SentenceTooLongError, match=rf"sentence 1 .* has {limit} tokens; this model reads at most "
                                                   rf"{limit - 1}"):
        learn.translate_many(["ab", " ".join(WORDS[i % len(WORDS)] for i in range(limit))])
    with pytest.raises(ValueError, match="sentence 0 is empty"):
        learn.translate("  ")


def test_transformer_learns_substitution():
    torch.set_num_threads(1)
    s, t = make_pairs(1200, 2, reverse=False)
    vs, vt = make_pairs(40, 3, reverse=False)
    dls = Seq2SeqDataLoaders.from_texts(s, t, vs, vt, bs=32, seed=0, min_freq=1, device="cpu")
    learn = translation_learner(dls, arch="transformer", emb_sz=64, n_layers=1, n_heads=4, d_ff=128, seed=0,
                                progress=False, metrics=())
    learn.fit_one_cycle(5, 3e-3)
    hyps = learn.translate_many(vs)
    assert sum(h == r for h, r in zip(hyps, vt)) >= 0.8 * len(vs)
    assert learn.translate_many(vs[:8], beam=3) == hyps[:8]


def test_pretrained_vectors_are_copied_into_the_embeddings(tmp_path):
    s, t = make_pairs(50, 4)
    dls = Seq2SeqDataLoaders.from_texts(s, t, valid_pct=0.2, seed=0, min_freq=1, device="cpu")
    path = tmp_path / "v.txt"
    path.write_text("".join(f"{w} " + " ".join(str(i + j / 10) for j in range(6)) + "\n" for i, w in enumerate(WORDS)))
    vec, cov = load_vectors(path, dls.src_vocab)
    assert cov.n_found == cov.n_vocab == len(WORDS)
    learn = translation_learner(dls, arch="lstm", src_vectors=vec, n_hid=16, progress=False)
    assert torch.equal(learn.model.src_emb.weight.detach(), vec) and learn.model.src_emb.weight.shape[1] == 6
    with pytest.raises(ValueError, match="emb_sz=8 but the word vectors have 6 dimensions"):
        translation_learner(dls, arch="gru", src_vectors=vec, emb_sz=8)


def test_corpus_bleu_metric_needs_its_learner():
    m = CorpusBLEU()
    with pytest.raises(RuntimeError, match="needs its Seq2SeqLearner"):
        m.accumulate(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long))
