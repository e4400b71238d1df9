"""Vocab: order, min_freq, max_size, specials, unknown tokens, numericalize/textify, JSON state."""
from __future__ import annotations

import json

import pytest
import torch

from deepfit.text import BOS, EOS, PAD, UNK, CharTokenizer, TextDataError, UnknownTokenError, Vocab

DOCS = [["b", "a", "c", "a"], ["a", "b", "d", "b"], ["e"]]  # a:3 b:3 c:1 d:1 e:1


def test_build_orders_specials_then_frequency_then_alphabet():
    v = Vocab.build(DOCS)
    assert v.itos == [UNK, PAD, BOS, EOS, "a", "b", "c", "d", "e"]
    assert (v.unk_idx, v.pad_idx, v.bos_idx, v.eos_idx) == (0, 1, 2, 3)
    assert v.stoi == {t: i for i, t in enumerate(v.itos)} and len(v) == 9
    assert "a" in v and "z" not in v
    # the same counts in another order give the same vocabulary
    assert Vocab.build([list(reversed(d)) for d in reversed(DOCS)]) == v


def test_min_freq_and_max_size():
    assert Vocab.build(DOCS, min_freq=2).itos == [UNK, PAD, BOS, EOS, "a", "b"]
    assert Vocab.build(DOCS, max_size=6).itos == [UNK, PAD, BOS, EOS, "a", "b"]  # max_size counts the specials
    assert Vocab.build(DOCS, max_size=7, specials=(UNK,)).itos == [UNK, "a", "b", "c", "d", "e"]
    with pytest.raises(ValueError, match="min_freq must be"):
        Vocab.build(DOCS, min_freq=0)
    with pytest.raises(ValueError, match="max_size must be a whole number above the 4 special tokens"):
        Vocab.build(DOCS, max_size=4)
    with pytest.raises(TextDataError, match="no token appears at least min_freq=9 times"):
        Vocab.build(DOCS, min_freq=9)
    with pytest.raises(TextDataError, match="there are no tokens"):
        Vocab.build([[], []])


def test_specials_in_the_text_are_not_repeated():
    v = Vocab.build([[BOS, "x", BOS, "x"]])
    assert v.itos == [UNK, PAD, BOS, EOS, "x"]
    with pytest.raises(ValueError, match="repeated tokens"):
        Vocab.build(DOCS, specials=(UNK, UNK))


def test_numericalize_maps_unknown_tokens_to_unk():
    v = Vocab.build(DOCS, min_freq=2)
    ids = v.numericalize(["a", "zzz", "b", "c"])
    assert ids.dtype == torch.long and ids.tolist() == [4, 0, 5, 0]
    assert v.numericalize([]).tolist() == []
    assert v.unknown(["a", "zzz", "c", "a"]) == ["zzz", "c"]
    with pytest.raises(TypeError, match="not a str"):
        v.numericalize("ab")


def test_textify_and_lookup():
    v = Vocab.build(DOCS)
    assert v.textify([4, 5, 0]) == "abxxunk"
    assert v.textify(torch.tensor([[4], [6]]), sep=" ") == "a c"
    assert v.lookup([8, 2]) == ["e", BOS]
    with pytest.raises(IndexError, match="id 9 is outside the vocabulary"):
        v.textify([9])
    with pytest.raises(IndexError, match="id -1"):
        v.lookup([-1])


def test_char_vocabulary_without_specials():
    text = "hello world"
    v = Vocab.build([CharTokenizer()(text)], specials=())
    # l:3 o:2, then the rest alphabetically (space first)
    assert v.itos == ["l", "o", " ", "d", "e", "h", "r", "w"]
    assert v.unk_idx is None and v.pad_idx is None
    assert v.textify(v.numericalize(list(text))) == text
    with pytest.raises(UnknownTokenError, match=r"token 'z' \(position 2\) is not in the vocabulary.*specials=\('xxunk',\)"):
        v.numericalize(list("hez"))
    # with specials=(UNK,) an unknown character is read as xxunk instead
    v2 = Vocab.build([list(text)], specials=(UNK,))
    assert v2.numericalize(list("hez")).tolist() == [v2.stoi["h"], v2.stoi["e"], 0]


def test_state_round_trips_through_json():
    v = Vocab.build(DOCS, min_freq=1, max_size=8)
    state = json.loads(json.dumps(v.get_state()))
    back = Vocab.from_state(state)
    assert back == v and back.itos == v.itos and back.unk_idx == v.unk_idx and back.max_size == 8
    assert back.numericalize(["a", "?"]).tolist() == v.numericalize(["a", "?"]).tolist()
    v0 = Vocab.build([list("abc")], specials=())
    assert Vocab.from_state(json.loads(json.dumps(v0.get_state()))) == v0


def test_bad_states_and_constructors():
    with pytest.raises(TextDataError, match="not a saved vocabulary"):
        Vocab.from_state({"tokens": []})
    with pytest.raises(TextDataError, match="newer than this deepfit"):
        Vocab.from_state({"itos": ["a"], "version": 5})
    with pytest.raises(TextDataError, match=r"token 'a' appears twice in the vocabulary \(ids 0 and 2\)"):
        Vocab(["a", "b", "a"])
    with pytest.raises(TextDataError, match="special tokens \\['xxunk'\\] are not in the vocabulary"):
        Vocab(["a"], specials=[UNK])
    with pytest.raises(TypeError, match="must be str"):
        Vocab(["a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a str"):
        Vocab.build("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wrap one document"):
        Vocab.build(["abc"])  # type: ignore[list-item]
