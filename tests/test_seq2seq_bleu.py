"""deepfit.seq2seq.bleu: corpus BLEU by hand and against sacrebleu itself."""
from __future__ import annotations

import math

import pytest
import sacrebleu

from deepfit.seq2seq import BLEUStats, corpus_bleu, sacrebleu_score, tokenized_bleu, words

CASES = [
    (["the cat sat on the mat", "a dog runs in the park today"],
     ["the cat is on the mat", "a dog runs in a park"]),
    (["the the the the", "x"], ["the cat sat down", "x y z"]),                 # clipping, brevity penalty
    (["a b c d e f", "g h"], ["a b c d e f", "g h i j k"]),
    (["one two three four five six seven eight"], ["one two three four five nine seven eight"]),
    (["no match here at all"], ["completely different words in it"]),       # zero precisions: exp smoothing
]


@pytest.mark.parametrize("hyps,refs", CASES)
def test_corpus_bleu_equals_sacrebleu_on_tokens(hyps, refs):
    mine = corpus_bleu([h.split() for h in hyps], [r.split() for r in refs])
    ref = sacrebleu.corpus_bleu(hyps, [refs], tokenize="none").score
    assert mine == pytest.approx(ref, abs=1e-9)


def test_bleu_by_hand():
    # hyp "a b c d e" vs ref "a b c d f g": p1 4/5, p2 3/4, p3 2/3, p4 1/2; BP exp(1 - 6/5)
    s = BLEUStats()
    s.add("a b c d e".split(), "a b c d f g".split())
    assert s.matches == [4, 3, 2, 1] and s.totals == [5, 4, 3, 2]
    expect = 100 * math.exp(1 - 6 / 5) * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert s.score() == pytest.approx(expect)
    # clipping: "the the the" against "the cat": one "the" counts
    c = BLEUStats()
    c.add(["the"] * 3, ["the", "cat"])
    assert c.matches[0] == 1
    # no smoothing: a zero precision gives 0
    z = BLEUStats()
    z.add("a b c d".split(), "a b c e".split())
    assert z.score(smooth="none") == 0.0 and z.score() > 0


def test_tokenized_bleu_lowercases_and_splits_punctuation():
    hyps, refs = ["A dog runs, fast."], ["a dog runs , fast ."]
    assert words(hyps[0]) == ["a", "dog", "runs", ",", "fast", "."]
    assert tokenized_bleu(hyps, refs) == pytest.approx(100.0)
    assert tokenized_bleu(["A dog runs."], ["A cat runs."]) == pytest.approx(
        sacrebleu.corpus_bleu(["a dog runs ."], [["a cat runs ."]], tokenize="none").score)


def test_sacrebleu_score_is_sacrebleu_detokenised():
    hyps, refs = ["A man rides a bike.", "Two dogs play."], ["A man is riding a bike.", "Two dogs are playing."]
    assert sacrebleu_score(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    with pytest.raises(ValueError, match="2 outputs but 1 references"):
        sacrebleu_score(hyps, refs[:1])
