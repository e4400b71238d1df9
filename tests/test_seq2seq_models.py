"""deepfit.seq2seq models and decoding: masks, padding invariance, teacher forcing, greedy and beam search."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from deepfit.seq2seq import (AdditiveAttention, Seq2SeqRNN, Seq2SeqTransformer, beam_search, greedy_decode,
                             length_penalty, sequence_log_probs, sinusoidal_positions, teacher_forcing_schedule)

MODELS = [
    (Seq2SeqRNN, dict(emb_sz=16, n_hid=24, dropout=0.0)),
    (Seq2SeqRNN, dict(emb_sz=16, n_hid=24, rnn="lstm", n_layers=2, dropout=0.0)),
    (Seq2SeqTransformer, dict(d_model=16, n_heads=2, d_ff=32, n_enc_layers=2, n_dec_layers=2, dropout=0.0)),
    (Seq2SeqTransformer, dict(d_model=16, n_heads=2, d_ff=32, positions="learned", norm_first=True)),
]


def _batch():
    a, b = torch.randint(4, 30, (1, 5)), torch.randint(4, 30, (1, 8))
    src = torch.full((2, 8), 1)
    src[0, :5], src[1] = a, b
    tgt = torch.randint(4, 40, (2, 6))
    tgt[:, 0] = 2
    return a, src, torch.tensor([5, 8]), tgt


@pytest.mark.parametrize("cls,kw", MODELS)
def test_output_is_invariant_to_padding(cls, kw):
    m = cls(30, 40, **kw).eval()
    a, src, src_len, tgt = _batch()
    with torch.no_grad():
        padded = m(src, src_len, tgt)[0]
        alone = m(a, torch.tensor([5]), tgt[:1])[0]
        # and padding with other ids changes nothing either: the padded positions are never read
        src2 = src.clone()
        src2[0, 5:] = 7
        assert torch.allclose(m(src2, src_len, tgt)[0], padded, atol=1e-5)
    assert torch.allclose(padded, alone, atol=1e-5)


def test_attention_gives_padding_zero_weight():
    m = Seq2SeqRNN(30, 40, emb_sz=16, n_hid=24).eval()
    _, src, src_len, tgt = _batch()
    _, att = m(src, src_len, tgt, return_attention=True)
    assert att.shape == (2, 6, 8)
    assert (att[0, :, 5:] == 0).all()
    assert torch.allclose(att.sum(-1), torch.ones(2, 6))
    # the module by itself: scores by hand for one query
    attn = AdditiveAttention(3, 4, 5)
    q, keys = torch.randn(1, 3), torch.randn(1, 3, 4)
    mask = torch.tensor([[True, True, False]])
    ctx, w = attn(q, keys, attn.project_keys(keys), mask)
    scores = torch.stack([attn.v(torch.tanh(attn.w_q(q) + attn.w_k(keys[:, i]))).squeeze() for i in range(2)])
    expect = torch.softmax(scores, 0)
    assert torch.allclose(w[0, :2], expect, atol=1e-6) and w[0, 2] == 0
    assert torch.allclose(ctx[0], expect[0] * keys[0, 0] + expect[1] * keys[0, 1], atol=1e-6)


def test_teacher_forcing_zero_feeds_the_models_own_predictions():
    m = Seq2SeqRNN(30, 40, emb_sz=16, n_hid=24, dropout=0.0, teacher_forcing=0.0).train()
    _, src, src_len, tgt = _batch()
    free = m(src, src_len, tgt)
    # the same as teacher forcing on the model's own argmax tokens
    own = torch.cat([tgt[:, :1], free.argmax(-1)[:, :-1]], dim=1)
    m.teacher_forcing = 1.0
    assert torch.allclose(m(src, src_len, own), free, atol=1e-6)
    assert not torch.allclose(m(src, src_len, tgt), free)
    forced = m(src, src_len, tgt)
    m.eval()  # eval mode always reads the true tokens (the validation loss)
    m.teacher_forcing = 0.0
    assert torch.allclose(m(src, src_len, tgt), forced, atol=1e-6)


def test_teacher_forcing_schedule_always_half_never():
    s = teacher_forcing_schedule()
    assert [s(p) for p in (0.0, 0.3, 0.34, 0.6, 0.67, 1.0)] == [1.0, 1.0, 0.5, 0.5, 0.0, 0.0]
    s2 = teacher_forcing_schedule(0.5, 0.5)
    assert s2(0.49) == 1.0 and s2(0.99) == 0.5


def test_sinusoidal_positions_by_hand():
    pe = sinusoidal_positions(7, 6)
    for p in range(7):
        for i in range(3):
            angle = p / 10000 ** (2 * i / 6)
            assert pe[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


@pytest.mark.parametrize("cls,kw", MODELS[:3])
def test_beam_one_is_greedy_and_scores_are_the_models_log_probs(cls, kw):
    m = cls(30, 40, **kw).eval()
    _, src, src_len, _ = _batch()
    g = greedy_decode(m, src, src_len, max_len=7)
    b1 = beam_search(m, src, src_len, beam_size=1, max_len=7)
    assert g.tokens == b1.tokens and torch.allclose(g.scores, b1.scores)
    assert torch.allclose(g.scores, sequence_log_probs(m, src, src_len, g.tokens, g.finished), atol=1e-4)
    b4 = beam_search(m, src, src_len, beam_size=4, max_len=7)
    assert torch.allclose(b4.scores, sequence_log_probs(m, src, src_len, b4.tokens, b4.finished), atol=1e-4)
    assert (b4.scores >= g.scores - 1e-5).all()  # same length limit, no penalty: beam never scores lower
    # batched decoding gives each sentence what it gets alone
    alone = beam_search(m, src[1:], src_len[1:], beam_size=4, max_len=7)
    assert alone.tokens[0] == b4.tokens[1]


class TableModel(nn.Module):
    """A decoder whose next-token distribution depends only on the previous token (a fixed table)."""

    bos_idx, eos_idx, tgt_pad, max_len = 2, 3, 1, 10

    def __init__(self, probs: dict[int, dict[int, float]], vocab: int = 6) -> None:
        super().__init__()
        table = torch.full((vocab, vocab), 1e-12)
        for prev, row in probs.items():
            for tok, p in row.items():
                table[prev, tok] = p
        self.register_buffer("logp", torch.log(table / table.sum(1, keepdim=True)))

    def encode(self, src, src_len):
        return {"dummy": torch.zeros(len(src), 1)}

    def decode_step(self, ys, state):
        return self.logp[ys[:, -1]], state, None

    def forward(self, src, src_len, tgt_in):
        return self.logp[tgt_in]


A, B, EOS = 4, 5, 3
# greedy takes A (0.6) and then keeps taking A (0.4 > eos 0.3); the sentence "B" (0.4 * 1.0) is far likelier
TABLE = {2: {A: 0.6, B: 0.4}, A: {A: 0.4, B: 0.3, EOS: 0.3}, B: {EOS: 1.0}}


def test_beam_finds_a_higher_scoring_sequence_than_greedy():
    m = TableModel(TABLE)
    src, src_len = torch.zeros(1, 3, dtype=torch.long), torch.tensor([3])
    g = greedy_decode(m, src, src_len, max_len=4)
    assert g.tokens == [[A, A, A, A]] and g.finished == [False]
    assert g.scores.item() == pytest.approx(math.log(0.6) + 3 * math.log(0.4), abs=1e-5)
    b = beam_search(m, src, src_len, beam_size=2, max_len=4)
    assert b.tokens == [[B]] and b.finished == [True]
    hand = math.log(0.4) + math.log(1.0)
    assert b.scores.item() == pytest.approx(hand, abs=1e-5) and b.scores.item() > g.scores.item()
    assert b.scores.item() == pytest.approx(sequence_log_probs(m, src, src_len, b.tokens).item(), abs=1e-5)


def test_length_penalty_math_and_effect():
    assert length_penalty(3, 0.0).item() == 1.0
    assert length_penalty(3, 1.0).item() == pytest.approx(8 / 6)
    assert length_penalty(10, 0.6).item() == pytest.approx((15 / 6) ** 0.6)
    # "B eos" is the likeliest output (.4 * .5); longer ones ("B B eos", "A A eos"...) have lower log p
    table = {2: {A: 0.6, B: 0.4}, A: {A: 0.4, EOS: 0.3, B: 0.3}, B: {B: 0.5, EOS: 0.5}}
    m = TableModel(table)
    src, src_len = torch.zeros(1, 2, dtype=torch.long), torch.tensor([2])
    plain = beam_search(m, src, src_len, beam_size=6, max_len=4)
    short = math.log(0.4) + math.log(0.5)
    assert plain.tokens == [[B]] and plain.scores.item() == pytest.approx(short, abs=1e-5)
    # a strong penalty prefers a longer output; its normalised score is score / lp(length incl. eos)
    long_ = beam_search(m, src, src_len, beam_size=6, max_len=4, length_penalty=5.0)
    n = len(long_.tokens[0]) + 1
    assert n > 2 and long_.finished == [True]
    assert long_.norm_scores.item() == pytest.approx(long_.scores.item() / ((5 + n) / 6) ** 5.0, rel=1e-5)
    assert long_.norm_scores.item() > short / ((5 + 2) / 6) ** 5.0


def test_decode_argument_errors():
    m = Seq2SeqRNN(30, 40, emb_sz=8, n_hid=8, max_len=6).eval()
    src = torch.randint(4, 30, (1, 7))
    with pytest.raises(ValueError, match="longer than the model's maximum"):
        greedy_decode(m, src, torch.tensor([7]))
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(m, src[:, :3], torch.tensor([3]), beam_size=0)


def test_model_config_round_trip_and_bad_arguments():
    for cls, kw in MODELS:
        m = cls(30, 40, **kw)
        m2 = cls(**m.get_config())
        assert [p.shape for p in m.parameters()] == [p.shape for p in m2.parameters()]
    with pytest.raises(ValueError, match="rnn must be one of"):
        Seq2SeqRNN(10, 10, rnn="rnn")
    with pytest.raises(ValueError, match="must divide d_model"):
        Seq2SeqTransformer(10, 10, d_model=10, n_heads=3)


@pytest.mark.parametrize("cls,kw", MODELS[2:])
def test_transformer_incremental_steps_equal_the_full_forward(cls, kw):
    m = cls(30, 40, **kw).eval()
    _, src, src_len, tgt = _batch()
    with torch.no_grad():
        full = m(src, src_len, tgt)
        state = m.encode(src, src_len)
        for t in range(1, tgt.shape[1] + 1):
            logits, state, _ = m.decode_step(tgt[:, :t], state)
            assert torch.allclose(logits, full[:, t - 1], atol=1e-5), t
    assert state["cache0"].shape == (2, tgt.shape[1], kw["d_model"])
