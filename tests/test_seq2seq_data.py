"""deepfit.seq2seq.data: reading parallel files, checks, length limits, batches and the exported state."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from deepfit.seq2seq import ParallelDataError, Seq2SeqDataLoaders, check_pairs, read_parallel
from deepfit.text import TextDataError

SRC = ["ein hund", "zwei katzen schlafen", "ein mann läuft", "eine frau singt laut heute", "kinder spielen"] * 4
TGT = ["a dog", "two cats sleep", "a man runs", "a woman sings loudly today", "children play"] * 4


def _write(path, lines, end="\n"):
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def test_read_parallel_ignores_final_newlines(tmp_path):
    s = _write(tmp_path / "a.de", ["eins", "zwei"], end="\n\n")
    t = _write(tmp_path / "a.en", ["one", "two"])
    assert read_parallel(s, t) == (["eins", "zwei"], ["one", "two"])


def test_line_count_mismatch_names_the_first_line_where_they_part(tmp_path):
    s = _write(tmp_path / "a.de", ["eins", "zwei", "drei"])
    t = _write(tmp_path / "a.en", ["one", "two"])
    with pytest.raises(ParallelDataError) as e:
        read_parallel(s, t)
    msg = str(e.value)
    assert "a.de has 3 lines but" in msg and "a.en has 2" in msg and "line 3" in msg and "'drei'" in msg


def test_empty_line_on_one_side_is_named(tmp_path):
    s = _write(tmp_path / "a.de", ["eins", "", "drei"])
    t = _write(tmp_path / "a.en", ["one", "two", "three"])
    with pytest.raises(ParallelDataError, match=r"line 2 of .*a\.de is empty but line 2 of .*a\.en is 'two'"):
        read_parallel(s, t)


def test_pairs_blank_on_both_sides_are_dropped_and_counted():
    s, t, n = check_pairs(["a", " ", "c"], ["x", "", "z"])
    assert (s, t, n) == (["a", "c"], ["x", "z"], 1)


def test_missing_file_and_empty_file(tmp_path):
    t = _write(tmp_path / "a.en", ["one"])
    with pytest.raises(FileNotFoundError, match="nope.de"):
        read_parallel(tmp_path / "nope.de", t)
    (tmp_path / "e.de").write_text("\n\n")
    with pytest.raises(TextDataError, match="e.de is empty"):
        read_parallel(tmp_path / "e.de", t)


def test_max_lengths_drop_training_pairs_and_count_them():
    dls = Seq2SeqDataLoaders.from_texts(SRC, TGT, SRC[:5], TGT[:5], bs=4, min_freq=1, max_src_len=3,
                                        max_tgt_len=4, device="cpu")
    # "eine frau singt laut heute" (5 source tokens) is dropped 4 times; every other pair fits
    assert dls.n_dropped == 4 and dls.train.n == 16
    assert dls.valid.n == 5  # validation pairs are all kept
    assert all(len(x) <= 4 for x in dls.encode_src(dls.train.texts))
    with pytest.raises(TextDataError, match="raise the limits"):
        Seq2SeqDataLoaders.from_texts(SRC, TGT, bs=4, max_src_len=1, device="cpu")


def test_batches_padding_shift_and_lengths():
    dls = Seq2SeqDataLoaders.from_texts(SRC, TGT, SRC[:5], TGT[:5], bs=8, min_freq=1, device="cpu", seed=0)
    sv, tv = dls.src_vocab, dls.tgt_vocab
    for src, src_len, tgt_in, tgt_out in dls.valid:
        for i in range(len(src)):
            n = int(src_len[i])
            assert int(src[i, n - 1]) == sv.eos_idx
            assert (src[i, n:] == sv.pad_idx).all() and (src[i, :n] != sv.pad_idx).all()
            assert int(tgt_in[i, 0]) == tv.bos_idx
            assert torch.equal(tgt_in[i, 1:], tgt_out[i, :-1])  # labels are the inputs shifted by one
            real = tgt_out[i][tgt_out[i] != tv.pad_idx]
            assert int(real[-1]) == tv.eos_idx
    # row order of an unshuffled loader: longest source first, texts kept
    src, src_len, _, tgt_out = next(iter(dls.valid))
    assert src_len.tolist() == sorted(src_len.tolist(), reverse=True)
    assert dls.decode_tgt(tgt_out[0]) == "a woman sings loudly today"


def test_training_batches_hold_similar_lengths():
    import random
    rng = random.Random(0)
    src = [" ".join("w%d" % rng.randint(0, 9) for _ in range(rng.randint(1, 40))) for _ in range(800)]
    dls = Seq2SeqDataLoaders.from_texts(src, src, valid_pct=0, bs=16, min_freq=1, device="cpu", seed=0)
    spread = []
    for src_b, src_len, _, _ in dls.train:
        spread.append(int(src_len.max() - src_len.min()))
    # random batches of 16 lengths from 2..41 spread ~30 tokens; sort-ish ones only a few
    assert sum(spread) / len(spread) < 5
    assert sum(len(b) for b in dls.train.batch_indices(1)) == 800


def test_from_df_and_its_errors():
    df = pd.DataFrame({"de": SRC, "en": TGT})
    dls = Seq2SeqDataLoaders.from_df(df, "de", "en", valid_pct=0.2, seed=0, min_freq=1, device="cpu")
    assert dls.train.n + dls.valid.n == len(SRC)
    bad = df.copy()
    bad.loc[3, "en"] = ""
    with pytest.raises(ParallelDataError, match="row 3 of column 'en' is empty"):
        Seq2SeqDataLoaders.from_df(bad, "de", "en", device="cpu")
    with pytest.raises(TextDataError, match="did you mean 'en'"):
        Seq2SeqDataLoaders.from_df(df, "de", "eng", device="cpu")


def test_state_round_trip():
    dls = Seq2SeqDataLoaders.from_texts(SRC, TGT, bs=4, min_freq=1, max_src_len=9, device="cpu")
    state, tensors = dls.export_state()
    back = Seq2SeqDataLoaders.from_state(state, tensors)
    assert back.src_vocab == dls.src_vocab and back.tgt_vocab == dls.tgt_vocab and back.max_src_len == 9
    assert [x.tolist() for x in back.encode_src(["ein hund läuft"])] == \
        [x.tolist() for x in dls.encode_src(["ein hund läuft"])]
    assert back.decode_tgt(dls.encode_tgt(["a dog runs"])[0][1:]) == "a dog runs"


def test_bpe_tokenizers_are_learned_per_side():
    from deepfit.text import BPETokenizer
    dls = Seq2SeqDataLoaders.from_texts(SRC * 5, TGT * 5, bs=8, src_tokenizer="bpe", tgt_tokenizer="bpe",
                                        min_freq=1, device="cpu", seed=0)
    assert isinstance(dls.src_tok, BPETokenizer) and dls.src_tok is not dls.tgt_tok
    assert dls.src_tok.is_trained and dls.tgt_tok.is_trained
    ids = dls.encode_tgt(["a dog runs"])[0]
    assert dls.decode_tgt(ids[1:]) == "a dog runs"
    back = Seq2SeqDataLoaders.from_state(dls.export_state()[0])
    assert back.src_tokens(["ein hund"]) == dls.src_tokens(["ein hund"])
