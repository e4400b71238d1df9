"""LMDataLoader (stream layout, random bptt, document shuffling, exact resume) and TextLMDataLoaders."""
from __future__ import annotations

import pytest
import torch

from deepfit.text import LMDataLoader, TextDataError, TextLMDataLoaders, char_windows


def _batches(dl):
    return [(x.clone(), y.clone()) for x, y in dl]


# ---- LMDataLoader ---------------------------------------------------------------------------------------
def test_stream_cut_into_bs_rows_read_bptt_at_a_time_by_hand():
    # 21 tokens, bs=2 -> rows [0..9] and [10..19] (token 20 dropped); 9 input positions per row: 4 + 4 + 1
    dl = LMDataLoader(torch.arange(21), bs=2, bptt=4)
    b = _batches(dl)
    assert len(dl) == len(b) == 3
    assert b[0][0].tolist() == [[0, 1, 2, 3], [10, 11, 12, 13]]
    assert b[0][1].tolist() == [[1, 2, 3, 4], [11, 12, 13, 14]]
    assert b[1][0].tolist() == [[4, 5, 6, 7], [14, 15, 16, 17]]
    assert b[2][0].tolist() == [[8], [18]] and b[2][1].tolist() == [[9], [19]]
    assert dl.n == 18  # input tokens per epoch


def test_every_row_continues_across_batches_and_targets_are_shifted():
    ids = torch.randint(0, 50, (1003,))
    dl = LMDataLoader(ids, bs=4, bptt=7)
    b = _batches(dl)
    x = torch.cat([xb for xb, _ in b], dim=1)
    y = torch.cat([yb for _, yb in b], dim=1)
    rows = ids[: 4 * 250].view(4, 250)
    assert torch.equal(x, rows[:, :-1]) and torch.equal(y, rows[:, 1:])
    assert all(xb.shape == yb.shape for xb, yb in b)


def test_batches_are_views_of_one_matrix_no_copy():
    dl = LMDataLoader(torch.arange(100), bs=2, bptt=5)
    x, _ = next(iter(dl))
    assert x.untyped_storage().data_ptr() == dl.tensors[0].untyped_storage().data_ptr()


def test_random_bptt_is_deterministic_under_a_seed_and_covers_the_stream_exactly():
    ids = torch.arange(20_001)
    a = LMDataLoader(ids, bs=4, bptt=20, random_bptt=True, seed=3)
    b = LMDataLoader(ids, bs=4, bptt=20, random_bptt=True, seed=3)
    ea, eb = [x.shape[1] for x, _ in a], [x.shape[1] for x, _ in b]
    assert ea == eb and len(ea) == len(a)  # same lengths, as many batches as len() says
    assert sum(ea) == a.n_cols - 1
    assert len(set(ea)) > 5 and 15 < sum(ea) / len(ea) < 25 and min(ea) >= 1
    assert [x.shape[1] for x, _ in a] != ea  # a new draw the next epoch
    x = torch.cat([xb for xb, _ in a], dim=1)
    assert torch.equal(x, a.tensors[0][:, :-1])


def test_documents_are_shuffled_each_epoch_deterministically():
    docs = [torch.full((10,), i) for i in range(8)]  # document i is ten times the token i
    a = LMDataLoader(docs, bs=2, bptt=5, shuffle=True, seed=0)
    b = LMDataLoader(docs, bs=2, bptt=5, shuffle=True, seed=0)
    orders = []

    def stream_of(dl):
        b = _batches(dl)
        return torch.cat([xb for xb, _ in b] + [b[-1][1][:, -1:]], dim=1).reshape(-1)

    for _ in range(3):
        sa, sb = stream_of(a), stream_of(b)
        assert torch.equal(sa, sb)
        stream = sa.tolist()
        order = [stream[i] for i in range(0, 80, 10)]
        assert sorted(order) == list(range(8)) and all(stream[i:i + 10] == [stream[i]] * 10 for i in range(0, 80, 10))
        orders.append(order)
    assert orders[0] != orders[1] or orders[1] != orders[2]
    # without shuffle the documents stay in order
    plain = LMDataLoader(docs, bs=1, bptt=100)
    assert next(iter(plain))[0][0, ::10].tolist() == list(range(8))


def test_state_dict_resumes_the_interrupted_epoch_exactly():
    docs = [torch.randint(0, 30, (int(n),)) for n in torch.randint(40, 90, (12,))]
    dl = LMDataLoader(docs, bs=3, bptt=6, shuffle=True, random_bptt=True, seed=1)
    _batches(dl)  # one full epoch first
    it = iter(dl)
    first = [tuple(t.clone() for t in next(it)) for _ in range(4)]
    state = dl.state_dict()
    rest = [tuple(t.clone() for t in b) for b in it]
    next_epoch = _batches(dl)
    other = LMDataLoader(docs, bs=3, bptt=6, shuffle=True, random_bptt=True, seed=99)
    other.load_state_dict(state)
    resumed = _batches(other)
    assert len(resumed) == len(rest) and len(first) + len(rest) == len(dl)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(rest, resumed))
    after = _batches(other)  # and the following epoch is the one the uninterrupted loader drew
    assert all(torch.equal(a[0], b[0]) for a, b in zip(next_epoch, after))


def test_distributed_processes_read_the_rows_of_one_bigger_batch_with_the_same_lengths():
    docs = [torch.randint(0, 40, (int(n),), generator=torch.Generator().manual_seed(int(n))) for n in (90, 130, 75, 210)]
    full = LMDataLoader(docs, bs=4, bptt=6, shuffle=True, random_bptt=True, seed=7)  # one process, bs 2 x 2
    shards = [LMDataLoader(docs, bs=2, bptt=6, shuffle=True, random_bptt=True, seed=7) for _ in range(2)]
    for r, dl in enumerate(shards):
        dl.rank, dl.world_size = r, 2
        assert dl.n_cols == full.n_cols and len(dl) == len(full) and 2 * dl.n == full.n
    for _ in range(2):  # two epochs: new document order and lengths, the same on every process
        ref, parts = _batches(full), [_batches(dl) for dl in shards]
        assert all(len(p) == len(ref) for p in parts)
        for k, (x, y) in enumerate(ref):
            for r in (0, 1):
                assert torch.equal(parts[r][k][0], x[r::2]) and torch.equal(parts[r][k][1], y[r::2])
    plain = [LMDataLoader(torch.arange(103), bs=2, bptt=5) for _ in range(2)]  # one stream, not shuffled
    for r, dl in enumerate(plain):
        dl.rank, dl.world_size = r, 2
    ref = _batches(LMDataLoader(torch.arange(103), bs=4, bptt=5))
    assert [torch.equal(a[0], x[0::2]) and torch.equal(b[0], x[1::2])
            for a, b, (x, _) in zip(_batches(plain[0]), _batches(plain[1]), ref)] == [True] * len(ref)
    # the mean of the processes' gradients is the one-process gradient (what DDP's all-reduce computes)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(40, 5), torch.nn.Linear(5, 40))

    def grad(x, y):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten()).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    x, y = _batches(full)[0]
    mean = (grad(x[0::2], y[0::2]) + grad(x[1::2], y[1::2])) / 2
    torch.testing.assert_close(mean, grad(x, y), rtol=1e-5, atol=1e-7)


def test_one_batch_does_not_change_the_next_epochs():
    docs = [torch.arange(i * 50, i * 50 + 50) for i in range(6)]
    a = LMDataLoader(docs, bs=2, bptt=7, shuffle=True, random_bptt=True, seed=5)
    b = LMDataLoader(docs, bs=2, bptt=7, shuffle=True, random_bptt=True, seed=5)
    a.one_batch()
    assert all(torch.equal(x[0], y[0]) for x, y in zip(_batches(a), _batches(b)))


def test_unshuffled_fixed_loader_leaves_the_global_rng_alone():
    dl = LMDataLoader(torch.arange(100), bs=2, bptt=5)
    s = torch.get_rng_state()
    _batches(dl)
    assert torch.equal(s, torch.get_rng_state())


@pytest.mark.parametrize("kwargs, match", [
    (dict(ids=torch.arange(3), bs=2), "too few"),
    (dict(ids=torch.arange(30), bs=0), "`bs` must be a positive integer"),
    (dict(ids=torch.arange(30), bs=2, bptt=-1), "`bptt` must be a positive integer"),
    (dict(ids=torch.rand(30), bs=2), "integer token ids"),
])
def test_bad_loader_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LMDataLoader(**kwargs)


def test_char_windows():
    x, y = char_windows(torch.arange(10), 3, stride=3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and y.tolist() == [3, 6, 9]
    x, y = char_windows(torch.arange(10), 8, stride=1)
    assert x.tolist() == [list(range(8)), list(range(1, 9))] and y.tolist() == [8, 9]
    x, y = char_windows(torch.arange(10), 4, stride=4, seq_targets=True)
    assert x.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and y.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


# ---- TextLMDataLoaders ------------------------------------------------------------------------------------
TEXT = "the cat sat on the mat. " * 40 + "Zebras!"


def test_from_text_tail_split_and_vocab_from_training_text_only():
    dls = TextLMDataLoaders.from_text(TEXT, tokenizer="char", valid_pct=0.1, bs=4, bptt=8, device="cpu")
    cut = len(TEXT) - round(len(TEXT) * 0.1)
    assert "Z" not in dls.vocab.stoi and "!" not in dls.vocab.stoi  # only in the validation tail
    train_stream = dls.train.tensors[0].reshape(-1)
    assert dls.decode(train_stream) == TEXT[: len(train_stream)]
    valid_stream = dls.valid.tensors[0].reshape(-1)
    expected = "".join(c if c in dls.vocab.stoi else "xxunk" for c in TEXT[cut: cut + len(valid_stream)])
    assert dls.decode(valid_stream) == expected
    assert dls.vocab.itos[0] == "xxunk"


def test_from_text_lower_and_min_freq():
    text = "AAAA bbbb a b c " * 20 + "q"
    dls = TextLMDataLoaders.from_text(text, tokenizer="char", valid_pct=0.0, bs=2, bptt=5, lower=True, min_freq=2,
                                      device="cpu")
    assert dls.valid is None
    assert "A" not in dls.vocab.stoi and "a" in dls.vocab.stoi and "q" not in dls.vocab.stoi


def test_from_text_word_tokenizer_and_encode_decode():
    dls = TextLMDataLoaders.from_text(TEXT, tokenizer="word", valid_pct=0.2, bs=2, bptt=5, device="cpu")
    ids = dls.encode("the cat sat")
    assert dls.vocab.lookup(ids)[-3:] == ["the", "cat", "sat"]
    assert "xxunk" in dls.vocab.stoi and "xxbos" in dls.vocab.stoi


def test_from_texts_documents_and_tail_documents_for_validation():
    docs = [f"document {i} says hello world. " * 3 for i in range(10)]
    dls = TextLMDataLoaders.from_texts(docs, tokenizer="word", valid_pct=0.2, bs=2, bptt=4, device="cpu", seed=0)
    assert len(dls.train.docs) == 8 and dls.train.shuffle
    assert "8" not in dls.vocab.stoi and "7" in dls.vocab.stoi


def test_from_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text(TEXT, encoding="utf-8")
    dls = TextLMDataLoaders.from_file(p, bs=4, bptt=8, device="cpu")
    assert dls.decode(dls.train.tensors[0][0, :7]) == "the cat"


@pytest.mark.parametrize("text, kwargs, match", [
    ("", {}, "empty"),
    ("  \n\t ", {}, "empty"),
    ("short text here", dict(bs=4, bptt=8), r"fewer than one batch \(bs \* bptt \+ 1 = 4 \* 8 \+ 1 = 33\)"),
])
def test_bad_text_is_a_clear_error(text, kwargs, match):
    with pytest.raises(TextDataError, match=match):
        TextLMDataLoaders.from_text(text, device="cpu", **kwargs)


def test_empty_file_names_the_file(tmp_path):
    p = tmp_path / "empty.txt"
    p.write_text("   ")
    with pytest.raises(TextDataError, match="empty"):
        TextLMDataLoaders.from_file(p, device="cpu")


def test_export_state_round_trip_is_json():
    import json
    dls = TextLMDataLoaders.from_text(TEXT, tokenizer="word", bs=2, bptt=5, device="cpu")
    meta, tensors = dls.export_state()
    back = TextLMDataLoaders.from_state(json.loads(json.dumps(meta)), tensors)
    assert back.vocab == dls.vocab
    assert torch.equal(back.encode("the cat sat on a mat"), dls.encode("the cat sat on a mat"))


def test_word_tokenizer_keeps_its_case_markers_by_default():
    dls = TextLMDataLoaders.from_text("The cat sat. " * 60, tokenizer="word", bs=2, bptt=5, device="cpu")
    assert "xxmaj" in dls.vocab.stoi and "the" in dls.vocab.stoi and "The" not in dls.vocab.stoi
