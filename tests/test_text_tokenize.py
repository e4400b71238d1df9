"""Tokenizers: the word rules one by one (hand-written expectations), decode, char, BPE (SentencePiece) and
saved states."""
from __future__ import annotations

import json
import sys
import types

import pytest

from deepfit.text import (BOS, TK_MAJ, TK_REP, TK_UP, TK_WREP, BPETokenizer, CharTokenizer, TextDataError,
                          TokenizerError, WordTokenizer, get_tokenizer, tokenizer_from_state)


# ---- characters ----------------------------------------------------------------------------------------
def test_char_tokenizer_keeps_every_character():
    tok = CharTokenizer()
    assert tok("Hi, you\n") == ["H", "i", ",", " ", "y", "o", "u", "\n"]
    assert tok.decode(tok("Hi, you\n")) == "Hi, you\n"
    assert CharTokenizer(lower=True)("AbC") == ["a", "b", "c"]
    assert tok("") == []
    with pytest.raises(TypeError, match="one str"):
        tok(["a"])


# ---- words: each rule ----------------------------------------------------------------------------------
def words(text: str, **kw) -> list[str]:
    kw.setdefault("add_bos", False)
    return WordTokenizer(**kw)(text)


def test_punctuation_and_numbers_are_split_from_words():
    assert words("hello, world!", lower=False) == ["hello", ",", "world", "!"]
    assert words("it costs 3.50 or 1,000 at 10:30.", lower=False) == ["it", "costs", "3.50", "or", "1,000", "at",
                                                                     "10:30", "."]
    assert words("wait... (really)?", lower=False) == ["wait", "...", "(", "really", ")", "?"]
    assert words("snake_case", lower=False) == ["snake", "_", "case"]


def test_contractions_are_split():
    assert words("don't can't it's we're I'll they've I'm he'd", lower=False) == [
        "do", "n't", "ca", "n't", "it", "'s", "we", "'re", "I", "'ll", "they", "'ve", "I", "'m", "he", "'d"]
    assert words("Tom’s", lower=False) == ["Tom", "’s"]  # the typographic apostrophe too
    assert words("rock'n'roll O'Brien", lower=False) == ["rock'n'roll", "O'Brien"]  # not contractions


def test_case_markers_and_lower_casing():
    assert words("The NASA rocket is OK, I think") == [TK_MAJ, "the", TK_UP, "nasa", "rocket", "is", TK_UP, "ok",
                                                      ",", TK_MAJ, "i", "think"]
    # without lower=True the words are kept as they are, with no markers
    assert words("The NASA rocket", lower=False) == ["The", "NASA", "rocket"]


def test_character_repetition():
    assert words("wow!!!! sooooo") == ["wow", TK_REP, "4", "!", "s", TK_REP, "5", "o"]
    assert words("ok!!! zzzz") == ["ok", "!!!", "zzzz"]  # 3 in a row is kept; a word of one letter too


def test_word_repetition():
    assert words("very very very good") == [TK_WREP, "3", "very", "good"]
    assert words("very very good") == ["very", "very", "good"]
    assert words("Go go go GO") == [TK_MAJ, "go", "go", "go", TK_UP, "go"]  # repeats are counted before casing
    assert words("NO NO NO") == [TK_UP, TK_WREP, "3", "no"]


def test_newlines_are_tokens_and_bos_comes_first():
    assert WordTokenizer()("Hi\n\nyou") == [BOS, TK_MAJ, "hi", "\n", "\n", "you"]
    assert words("a\r\nb") == ["a", "\n", "b"]


def test_html_cleanup():
    assert words("good<br /><br />movie &amp; <i>great</i> &quot;fun&quot; &#39;ok&#39;", lower=False) == [
        "good", "\n", "\n", "movie", "&", "great", '"', "fun", '"', "'", "ok", "'"]
    assert words("a<br>b", html=False, lower=False) == ["a", "<", "br", ">", "b"]


def test_word_decode_restores_readable_text():
    tok = WordTokenizer()
    for text in ["The cat didn't SEE it!!!!", "It's 3.5 stars (out of 10).", "Hi\n\nNew paragraph: ok?",
                 "very very very Good", "SOOOOO loud", 'He said "no way" and "yes."']:
        assert tok.decode(tok(text)) == text
    assert tok.decode([BOS, TK_MAJ, "hello", TK_UP, "nasa", "."]) == "Hello NASA."
    assert tok.decode([TK_REP, "x"]) == "xxrep x"  # a broken marker comes out as it is


def test_spacy_is_used_when_asked_and_never_required(monkeypatch):
    # a stand-in for spaCy's tokenizer: splits on spaces and keeps "can't" whole, to see whose split is used
    class FakeTok:
        def __init__(self, text, ws):
            self.text, self.whitespace_ = text, ws

    def fake_tokenizer(text):
        parts = text.split(" ")
        return [FakeTok(p, " " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]

    fake = types.ModuleType("spacy")
    fake.blank = lambda lang: types.SimpleNamespace(tokenizer=fake_tokenizer)
    monkeypatch.setitem(sys.modules, "spacy", fake)
    monkeypatch.setattr("deepfit.text.tokenize._spacy_available", lambda: True)
    tok = WordTokenizer(spacy=True, add_bos=False)
    assert tok("I can't") == [TK_MAJ, "i", "can't"]
    assert tok.get_state()["spacy"] is True
    assert WordTokenizer(spacy="auto").spacy is True
    # without spaCy: 'auto' falls back to the rules, True is a clear error
    monkeypatch.setattr("deepfit.text.tokenize._spacy_available", lambda: False)
    monkeypatch.setitem(sys.modules, "spacy", None)
    assert WordTokenizer(spacy="auto").spacy is False
    with pytest.raises(TokenizerError, match="pip install spacy"):
        WordTokenizer(spacy=True)
    with pytest.raises(TokenizerError, match="trained with spaCy"):
        tokenizer_from_state({"kind": "word", "spacy": True})
    with pytest.raises(ValueError, match="spacy must be"):
        WordTokenizer(spacy="yes")


# ---- states and names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tok", [CharTokenizer(), CharTokenizer(lower=True), WordTokenizer(),
                                 WordTokenizer(lower=False, add_bos=False, html=False)])
def test_state_round_trips_through_json(tok):
    state = json.loads(json.dumps(tok.get_state()))
    back = tokenizer_from_state(state)
    assert type(back) is type(tok) and back.get_state() == tok.get_state()
    text = "The <b>cat</b> didn't!!!! go go go\nEnd"
    assert back(text) == tok(text)


def test_get_tokenizer_and_bad_states():
    assert isinstance(get_tokenizer("char"), CharTokenizer)
    assert isinstance(get_tokenizer("Word"), WordTokenizer) and get_tokenizer("word").lower is True
    assert get_tokenizer("char", lower=True).lower is True
    tok = CharTokenizer()
    assert get_tokenizer(tok) is tok
    with pytest.raises(ValueError, match="unknown tokenizer 'sentencepiece'; expected one of char, word, bpe"):
        get_tokenizer("sentencepiece")
    with pytest.raises(TokenizerError, match="unknown tokenizer kind 'morse'"):
        tokenizer_from_state({"kind": "morse"})
    with pytest.raises(TokenizerError, match="not a saved tokenizer state"):
        tokenizer_from_state(["char"])  # type: ignore[arg-type]
    with pytest.raises(TokenizerError, match="newer than this deepfit"):
        tokenizer_from_state({"kind": "char", "version": 99})
    assert issubclass(TokenizerError, TextDataError) and issubclass(TextDataError, ValueError)


# ---- byte-pair encoding --------------------------------------------------------------------------------
CORPUS = ["the cat sat on the mat", "the dog sat on the log", "then the cat ate the hat",
          "a cat and a dog", "the theory of the thing"] * 4


def test_bpe_needs_training_and_sentencepiece(monkeypatch):
    tok = get_tokenizer("bpe")
    assert not tok.is_trained
    with pytest.raises(TokenizerError, match=r"not trained yet.*BPETokenizer.train"):
        tok("hello")
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(TokenizerError, match="pip install sentencepiece"):
        BPETokenizer.train(CORPUS, n_merges=5)


def test_bpe_learns_exactly_n_merges_within_words():
    pytest.importorskip("sentencepiece")
    chars = set("".join(CORPUS).replace(" ", "")) | {"\u2581"}
    for n in (0, 1, 7, 20):
        tok = BPETokenizer.train(CORPUS, n_merges=n)
        assert tok.n_merges == n
        merges = [p for p in tok.pieces if len(p) > 1]
        assert len(merges) == n and set(p for p in tok.pieces if len(p) == 1) == chars
        # never across a word boundary: the word-start mark only ever opens a piece
        assert all("\u2581" not in p[1:] for p in tok.pieces)
    # the first merge is the most frequent pair: in "abab abab cd", "a"+"b" occurs 4 times, "b"+"a" and
    # "<word start>"+"a" twice, every other pair once
    first = BPETokenizer.train(["abab abab cd"], n_merges=1)
    assert [p for p in first.pieces if len(p) > 1] == ["ab"]
    assert first("abab") == ["\u2581", "ab", "ab"]
    assert BPETokenizer.train(CORPUS, vocab_size=len(chars) + 1 + 3).n_merges == 3
    assert BPETokenizer.train(CORPUS, n_merges=10_000).n_merges < 10_000  # stops when nothing is left to merge


def test_bpe_encodes_new_text_and_decodes_exactly():
    pytest.importorskip("sentencepiece")
    tok = BPETokenizer.train(CORPUS, n_merges=30)
    toks = tok("the cat sat")
    assert len(toks) < len("the cat sat")  # merges were applied to text outside the corpus' order
    assert all("\u2581" not in t[1:] for t in toks)
    for text in ["the cat sat", "a  zebra  (new) \n\nthe end\n", "", "\n"]:
        assert tok.decode(tok(text)) == text
    assert tok("x\ny").count("\n") == 1
    # characters never seen in training are single tokens (the vocabulary maps them to xxunk)
    assert "z" in tok("zebra") or "\u2581z" in tok("zebra")


def test_bpe_is_deterministic_and_round_trips_through_json():
    pytest.importorskip("sentencepiece")
    a = BPETokenizer.train(CORPUS, n_merges=15, lower=True)
    b = BPETokenizer.train(CORPUS, n_merges=15, lower=True)
    assert a.get_state() == b.get_state()
    state = json.loads(json.dumps(a.get_state()))
    assert state["kind"] == "bpe" and state["n_merges"] == 15 and isinstance(state["model"], str)
    back = tokenizer_from_state(state)
    text = "The Cat sat on THE mat\nthen"
    assert back(text) == a(text) and back.decode(back(text)) == text.lower()
    with pytest.raises(TokenizerError, match="base64"):
        tokenizer_from_state({**state, "model": "not base64!"})
    with pytest.raises(TokenizerError, match="not a valid SentencePiece model"):
        tokenizer_from_state({**state, "model": "aGVsbG8="})


def test_bpe_bad_arguments():
    pytest.importorskip("sentencepiece")
    with pytest.raises(TextDataError, match="empty or whitespace only"):
        BPETokenizer.train(["  ", "\n"], n_merges=5)
    with pytest.raises(ValueError, match="not both"):
        BPETokenizer.train(CORPUS, vocab_size=40, n_merges=5)
    with pytest.raises(ValueError, match="smaller than the"):
        BPETokenizer.train(CORPUS, vocab_size=3)
    with pytest.raises(ValueError, match="n_merges must be a whole number"):
        BPETokenizer.train(CORPUS, n_merges=-1)


@pytest.mark.data
def test_word_tokens_of_nietzsche_decode_to_the_same_words(data_path):
    path = data_path / "nietzsche" / "nietzsche.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    from deepfit.text import read_text
    text = read_text(path)
    tok = WordTokenizer()
    toks = tok(text)
    assert toks[0] == BOS and toks.count("\n") == text.count("\n")
    back = tok.decode(toks)
    # the same lines, and every word comes back with its case, except mixed-case words ("elseThis" is
    # lower-cased: the markers only keep capitalised and all-caps words)
    import re
    words = [w for w in text.split() if w.isalpha() and (w.islower() or w.isupper() or w.istitle())]
    assert len(words) > 90_000
    back_words = set(re.findall(r"[^\W\d_]+", back))
    assert [w for w in words if w not in back_words] == []
