"""The lesson's models against hand computations, hidden-state carrying, AWD-LSTM's regularisation."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from deepfit.losses import CrossEntropyLoss
from deepfit.text import (AWDLSTM, CharLM3, CharLoopRNN, CharRNN, CharSeqRNN, RNNLanguageModel, StatefulRNN)
from deepfit.text.models import LockedDropout, WeightDropRNN, embedding_dropout

V = 11


def _x(bs=4, n=8, seed=0):
    return torch.randint(0, V, (bs, n), generator=torch.Generator().manual_seed(seed))


def test_charlm3_is_three_steps_with_shared_weights_by_hand():
    m = CharLM3(V, n_fac=5, n_hidden=7).double()
    x = _x(3, 3)
    h = torch.zeros(3, 7, dtype=torch.float64)
    for t in range(3):
        inp = torch.relu(m.e.weight[x[:, t]] @ m.l_in.weight.T + m.l_in.bias)
        h = torch.tanh((h + inp) @ m.l_hidden.weight.T + m.l_hidden.bias)
    assert torch.allclose(m(x), h @ m.l_out.weight.T + m.l_out.bias)


def test_loop_rnn_over_three_chars_is_charlm3():
    a = CharLM3(V, 5, 7)
    b = CharLoopRNN(V, 5, 7)
    b.load_state_dict(a.state_dict())
    x = _x(4, 3)
    assert torch.allclose(a(x), b(x), atol=1e-6)


def test_loop_rnn_concat_by_hand():
    m = CharLoopRNN(V, 5, 7, concat=True).double()
    x = _x(2, 4)
    h = torch.zeros(2, 7, dtype=torch.float64)
    for t in range(4):
        inp = torch.relu(torch.cat([h, m.e.weight[x[:, t]]], 1) @ m.l_in.weight.T + m.l_in.bias)
        h = torch.tanh(inp @ m.l_hidden.weight.T + m.l_hidden.bias)
    assert torch.allclose(m(x), m.l_out(h))


def test_char_rnn_matches_a_tanh_loop_over_torch_rnn_weights():
    m = CharRNN(V, 5, 7).double()
    x = _x(3, 8)
    r = m.rnn
    h = torch.zeros(3, 7, dtype=torch.float64)
    for t in range(8):
        h = torch.tanh(m.e.weight[x[:, t]] @ r.weight_ih_l0.T + r.bias_ih_l0 + h @ r.weight_hh_l0.T + r.bias_hh_l0)
    assert torch.allclose(m(x), m.l_out(h))


def test_seq_model_predicts_at_every_position_and_the_flattened_loss_is_the_mean_over_positions():
    m = CharSeqRNN(V, 5, 7).double()
    x, y = _x(3, 6, 0), _x(3, 6, 1)
    out = m(x)
    assert out.shape == (3, 6, V)
    # the last position equals CharRNN's single prediction with the same weights
    c = CharRNN(V, 5, 7).double()
    c.load_state_dict(m.state_dict())
    assert torch.allclose(out[:, -1], c(x))
    loss = CrossEntropyLoss()(out, y)
    by_hand = sum(-torch.log_softmax(out[b, t], 0)[y[b, t]] for b in range(3) for t in range(6)) / 18
    assert torch.allclose(loss, by_hand)
    # the same model time-major: transposing both sides gives the same loss, transposing one side does not
    assert torch.allclose(CrossEntropyLoss()(out.transpose(0, 1), y.T), by_hand)
    assert not torch.allclose(CrossEntropyLoss()(out.transpose(0, 1).contiguous(), y), by_hand)


def test_identity_init():
    m = CharSeqRNN(V, 5, 7, identity_init=True)
    assert torch.equal(m.rnn.weight_hh_l0, torch.eye(7))
    g = RNNLanguageModel(V, 4, 6, 1, arch="gru", tie_weights=False)
    assert g.rnns[0].rnn.weight_hh_l0.shape == (18, 6)


def _stateful_models():
    return [StatefulRNN(V, 5, 7),
            RNNLanguageModel(V, 5, 7, 2, arch="lstm", tie_weights=False),
            RNNLanguageModel(V, 6, 7, 3, arch="gru", tie_weights=True),
            RNNLanguageModel(V, 5, 7, 1, arch="rnn", tie_weights=False),
            AWDLSTM(V, 6, 8, 2)]


@pytest.mark.parametrize("m", _stateful_models(), ids=lambda m: type(m).__name__ + getattr(m, "arch", ""))
def test_hidden_state_carries_across_batches_exactly(m):
    m.eval()
    x1, x2 = _x(2, 5, 0), _x(2, 4, 1)
    m.reset()
    whole = m(torch.cat([x1, x2], 1))
    m.reset()
    a = m(x1)
    b = m(x2)  # continues from x1's final state
    assert torch.allclose(torch.cat([a, b], 1), whole, atol=1e-5)
    m.reset()
    fresh = m(x2)
    assert not torch.allclose(fresh, b, atol=1e-4)  # batch 2's output depends on batch 1


@pytest.mark.parametrize("m", _stateful_models(), ids=lambda m: type(m).__name__ + getattr(m, "arch", ""))
def test_hidden_state_is_detached_truncated_bptt(m):
    m.train()
    m.reset()
    m(_x(2, 5))
    hs = m.hidden if isinstance(m.hidden, list) else [m.hidden]
    flat = [t for h in hs for t in (h if isinstance(h, tuple) else (h,))]
    assert flat and all(not t.requires_grad for t in flat)
    out = m(_x(2, 5, 1))
    out.sum().backward()  # a second backward through the first batch would raise


def test_batch_size_change_starts_from_zeros():
    m = RNNLanguageModel(V, 5, 7, 1, arch="gru", tie_weights=False).eval()
    m(_x(4, 5))
    x = _x(2, 5)
    out = m(x)
    m.reset()
    assert torch.allclose(out, m(x))


def test_tied_weights_share_the_embedding_and_state_dict_has_no_duplicate():
    m = RNNLanguageModel(V, 6, 9, 2, arch="lstm", tie_weights=True)
    assert not hasattr(m, "decoder") and m.rnns[-1].rnn.hidden_size == 6
    x = _x(2, 3)
    m.eval()
    out = m(x)
    m.reset()
    # logits = last layer output @ embedding.T + bias
    emb = m.encoder(x)
    h = emb
    for r in m.rnns:
        h, _ = r.rnn(h)
    assert torch.allclose(out, h @ m.encoder.weight.T + m.decoder_bias, atol=1e-6)
    ptrs = [v.data_ptr() for v in m.state_dict().values()]
    assert len(ptrs) == len(set(ptrs))
    rebuilt = RNNLanguageModel(**m.get_config())
    rebuilt.load_state_dict(m.state_dict())
    rebuilt.eval()
    assert torch.allclose(rebuilt(x), out)


def test_awdlstm_config_round_trip_and_drop_mult():
    m = AWDLSTM(V, 8, 12, 3, drop_mult=0.5)
    assert m.output_drop == pytest.approx(0.05) and m.weight_drop == pytest.approx(0.1)
    assert AWDLSTM(**m.get_config()).get_config() == m.get_config()
    sizes = [(r.rnn.input_size, r.rnn.hidden_size) for r in m.rnns]
    assert sizes == [(8, 12), (12, 12), (12, 8)]


def test_embedding_dropout_drops_whole_tokens():
    torch.manual_seed(0)
    emb = nn.Embedding(50, 4)
    x = torch.arange(50).repeat(2, 1)  # every token twice
    out = embedding_dropout(emb, x, 0.5, training=True)
    zero = (out == 0).all(-1)
    assert torch.equal(zero[0], zero[1]) and 5 < int(zero[0].sum()) < 45
    kept = ~zero[0]
    assert torch.allclose(out[0, kept], emb.weight[kept] * 2)
    assert torch.equal(embedding_dropout(emb, x, 0.5, training=False), emb(x))


def test_locked_dropout_same_mask_at_every_time_step():
    torch.manual_seed(0)
    d = LockedDropout(0.5).train()
    out = d(torch.ones(3, 7, 20))
    assert all(torch.equal(out[:, t], out[:, 0]) for t in range(7))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(d.eval()(torch.ones(3, 7, 20)), torch.ones(3, 7, 20))


def test_weight_drop_masks_the_hidden_matrix_and_keeps_plain_parameters():
    torch.manual_seed(0)
    w = WeightDropRNN(nn.LSTM(4, 6, batch_first=True), 0.5).train()
    x = torch.randn(2, 5, 4)
    out, _ = w(x)
    out.sum().backward()
    g = w.rnn.weight_hh_l0.grad
    assert 0.3 < float((g == 0).float().mean()) < 0.7  # dropped entries get no gradient
    assert w.rnn.weight_ih_l0.grad.ne(0).float().mean() > 0.95
    assert [k for k, _ in w.named_parameters()] == [f"rnn.{k}" for k, _ in w.rnn.named_parameters()]
    w.eval()
    assert torch.allclose(w(x)[0], w.rnn(x)[0])
    # p=0 while training is the plain module
    z = WeightDropRNN(nn.GRU(4, 6, batch_first=True), 0.0).train()
    assert torch.allclose(z(x)[0], z.rnn(x)[0])


def test_training_exposes_raw_and_dropped_last_outputs():
    m = RNNLanguageModel(V, 5, 7, 2, arch="lstm", output_drop=0.5, tie_weights=False).train()
    m(_x(2, 6))
    assert m.last_raw_output.shape == m.last_output.shape == (2, 6, 7)
    assert not torch.equal(m.last_raw_output, m.last_output)


@pytest.mark.parametrize("kwargs, match", [
    (dict(arch="transformer"), "arch"), (dict(n_layers=0), "n_layers"), (dict(output_drop=1.0), "output_drop"),
    (dict(pad_idx=V), "pad_idx"),
])
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RNNLanguageModel(V, **kwargs)


def test_lm_splitter_groups_cover_the_model_once():
    from deepfit.text.models import lm_splitter
    for tie in (True, False):
        m = RNNLanguageModel(V, 6, 9, 3, tie_weights=tie)
        groups = lm_splitter(m)
        assert len(groups) == 4
        ids = [id(p) for g in groups for p in g]
        assert sorted(ids) == sorted(id(p) for p in m.parameters())
        assert any(p is m.encoder.weight for p in groups[-1])
    with pytest.raises(TypeError, match="RNNLanguageModel"):
        lm_splitter(CharRNN(V))
