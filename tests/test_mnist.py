"""MNIST IDX reading, digit DataLoaders, the synthetic digits and the accuracy of the course models."""
from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepfit import Learner, load_learner, set_seed
from deepfit.data.mnist import (IDXFormatError, DigitDataLoaders, demo_dls, digits_dls, find_mnist, load_digits,
                                load_mnist, mnist_dls, read_idx)
from deepfit.data.synthetic import make_digits, synthetic_digits_dls
from deepfit.layers import MLP, LogisticRegression
from deepfit.losses import CrossEntropyLoss
from deepfit.metrics import accuracy


def idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    """An IDX file written by hand: 0, 0, type code, ndim, big-endian dims, then the data."""
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_mnist(folder: Path, x: np.ndarray, y: np.ndarray, gz: bool = True, prefix: str = "t10k") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, arr in ((f"{prefix}-images-idx3-ubyte", x), (f"{prefix}-labels-idx1-ubyte", y)):
        data = idx_bytes(arr)
        if gz:
            with gzip.open(folder / (stem + ".gz"), "wb") as f:
                f.write(data)
        else:
            (folder / stem).write_bytes(data)
    return folder


def tiny_mnist(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)


# ---- the IDX reader ------------------------------------------------------------------------------------
def test_read_idx_known_bytes(tmp_path):
    # 2 x 3 unsigned bytes: magic 00 00 08 02, dims 2 and 3, then 1..6
    raw = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    (tmp_path / "a.idx").write_bytes(raw)
    arr = read_idx(tmp_path / "a.idx")
    assert arr.dtype == np.uint8 and arr.tolist() == [[1, 2, 3], [4, 5, 6]]
    arr[0, 0] = 9  # a writable copy, not a view of the file's bytes


def test_read_idx_big_endian_ints_and_gzip(tmp_path):
    a = np.array([1, -2, 70000], dtype=np.int32)
    with gzip.open(tmp_path / "i.idx.gz", "wb") as f:
        f.write(bytes([0, 0, 0x0C, 1, 0, 0, 0, 3]) + a.astype(">i4").tobytes())
    out = read_idx(tmp_path / "i.idx.gz", expected_ndim=1)
    assert out.tolist() == [1, -2, 70000] and out.dtype == np.int32


@pytest.mark.parametrize("raw, match", [
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "magic number"),           # unknown type code
    (b"\x12\x34\x08\x01\x00\x00\x00\x01\x05", "magic number"),           # not starting with two zeros
    (b"\x00\x00", "magic number"),                                       # too short
    (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated"),          # 5 bytes announced, 2 present
    (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated"),                  # header cut
])
def test_read_idx_rejects_bad_files(tmp_path, raw, match):
    p = tmp_path / "bad.idx"
    p.write_bytes(raw)
    with pytest.raises(IDXFormatError, match=match) as e:
        read_idx(p)
    assert "bad.idx" in str(e.value)


def test_read_idx_wrong_ndim_and_corrupt_gzip(tmp_path):
    (tmp_path / "lab.idx").write_bytes(idx_bytes(np.arange(4, dtype=np.uint8)))
    with pytest.raises(IDXFormatError, match="expected 3 dimensions"):
        read_idx(tmp_path / "lab.idx", expected_ndim=3)
    (tmp_path / "x.gz").write_bytes(b"this is not gzip")
    with pytest.raises(IDXFormatError, match="decompressed"):
        read_idx(tmp_path / "x.gz")
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        read_idx(tmp_path / "nope.idx")


# ---- load_mnist / find_mnist -----------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_round_trip(tmp_path, gz):
    x, y = tiny_mnist()
    write_mnist(tmp_path, x, y, gz=gz)
    xt, yt = load_mnist(tmp_path)
    assert xt.dtype == torch.uint8 and xt.shape == (12, 28, 28) and yt.dtype == torch.int64
    assert np.array_equal(xt.numpy(), x) and yt.tolist() == y.tolist()


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)
    x, y = tiny_mnist()
    write_mnist(tmp_path / "a", x, y[:-1])
    with pytest.raises(IDXFormatError, match="12 images but .* 11 labels"):
        load_mnist(tmp_path / "a")
    write_mnist(tmp_path / "b", x, np.full(12, 11, dtype=np.uint8))
    with pytest.raises(IDXFormatError, match="label 11"):
        load_mnist(tmp_path / "b")
    # swapped files: the images name holds labels
    write_mnist(tmp_path / "c", x, y)
    (tmp_path / "c" / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y)))
    with pytest.raises(IDXFormatError, match="swapped"):
        load_mnist(tmp_path / "c")


def test_find_mnist(tmp_path):
    assert find_mnist(None) is None and find_mnist(tmp_path) is None
    x, y = tiny_mnist()
    write_mnist(tmp_path / "mnist10k", x, y)
    assert find_mnist(tmp_path) == tmp_path / "mnist10k"
    assert find_mnist(tmp_path / "mnist10k") == tmp_path / "mnist10k"


# ---- digit DataLoaders ---------------------------------------------------------------------------------
def test_digits_dls_split_and_training_stats():
    x, y = make_digits(500, seed=1)
    dls = digits_dls(x, y, valid_n=100, bs=32, seed=3)
    assert isinstance(dls, DigitDataLoaders)
    assert dls.train.n == 400 and dls.valid.n == 100 and dls.train.shuffle and not dls.valid.shuffle
    assert dls.train.bs == 32 and dls.valid.bs == 64 and dls.c == 10
    # the split is a partition: recover each row's source index through its pixels
    xf = x.reshape(500, -1).float() / 255
    norm = dls.normalize
    tr = norm.decode(dls.train.tensors[0]).reshape(400, -1)
    va = norm.decode(dls.valid.tensors[0]).reshape(100, -1)
    both = torch.cat([tr, va])
    dist = torch.cdist(both.double(), xf.double())
    src = dist.argmin(1)
    assert torch.allclose(dist.min(1).values, torch.zeros(500, dtype=torch.float64), atol=1e-4)
    assert sorted(src.tolist()) == list(range(500))
    assert torch.equal(dls.train.tensors[1], y[src[:400]]) and torch.equal(dls.valid.tensors[1], y[src[400:]])
    # statistics come from the training rows only (float64 reference)
    ref = xf[src[:400]].double()
    assert float(norm.mean) == pytest.approx(float(ref.mean()), rel=1e-6)
    assert float(norm.std) == pytest.approx(float(ref.std()), rel=1e-6)
    assert float(xf[src[400:]].double().mean()) != pytest.approx(float(norm.mean), rel=1e-3)
    assert float(dls.train.tensors[0].mean()) == pytest.approx(0.0, abs=1e-5)
    # the same seed gives the same split; another seed another one
    again = digits_dls(x, y, valid_n=100, seed=3)
    assert torch.equal(again.valid.tensors[0], dls.valid.tensors[0])
    assert not torch.equal(digits_dls(x, y, valid_n=100, seed=4).valid.tensors[0], dls.valid.tensors[0])


def test_digits_dls_without_normalize_and_errors():
    x, y = make_digits(50, seed=0)
    dls = digits_dls(x, y, valid_n=10, normalize=False)
    assert dls.normalize is None
    assert float(dls.train.tensors[0].min()) >= 0 and float(dls.train.tensors[0].max()) <= 1
    with pytest.raises(ValueError, match="valid_n"):
        digits_dls(x, y, valid_n=50)
    with pytest.raises(ValueError, match="50 images but `y` has 49"):
        digits_dls(x, y[:-1])


def test_encode_item_show_batch_and_default_loss(tmp_path):
    x, y = make_digits(200, seed=0)
    dls = digits_dls(x, y, valid_n=50, bs=16)
    assert isinstance(dls.default_loss, CrossEntropyLoss)
    (enc,) = dls.encode_item(x[0].numpy())
    assert enc.shape == (1, 28, 28)
    assert torch.allclose(enc[0], dls.normalize(x[0].float() / 255))
    assert torch.allclose(dls.decode_images(enc)[0], x[0].float() / 255, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(28, 28\).*\(27, 28\)"):
        dls.encode_item(np.zeros((27, 28)))
    fig = dls.show_batch(n=6, fname=tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [str(int(v)) for v in dls.one_batch()[1][:6]]


def test_export_and_predict_raw_image(one_thread, tmp_path):
    set_seed(0)
    dls = synthetic_digits_dls(n=600, seed=0, bs=32)
    learn = Learner(dls, MLP(784, [32], 10), metrics=[accuracy], progress=False, path=tmp_path)
    learn.fit(1, 1e-2)
    raw = (dls.decode_images(dls.valid.tensors[0][:1])[0] * 255).round().byte()
    label, idx, probs = learn.predict(raw)
    inf = load_learner(learn.export("d.safetensors"))
    assert isinstance(inf.dls, DigitDataLoaders) and inf.dls.vocab == [str(i) for i in range(10)]
    label2, idx2, probs2 = inf.predict(raw)
    assert label2 == label == str(int(idx)) and torch.allclose(probs, probs2, atol=1e-6)
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-5)


# ---- synthetic digits ----------------------------------------------------------------------------------
def test_make_digits_shape_determinism_and_balance():
    x, y = make_digits(1000, seed=5)
    assert x.shape == (1000, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.bincount(y, minlength=10).tolist() == [100] * 10
    x2, y2 = make_digits(1000, seed=5)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, y3 = make_digits(1000, seed=6)
    assert not torch.equal(x, x3) and not torch.equal(y, y3)
    # MNIST-like: black background, white ink in the middle, about a fifth of the pixels inked
    border = (x[:, 0, :] > 0).any(1) | (x[:, -1, :] > 0).any(1) | (x[:, :, 0] > 0).any(1) | (x[:, :, -1] > 0).any(1)
    assert border.float().mean() < 0.08  # few digits touch the border (about 1% in MNIST)
    ink = (x > 0).float().mean().item()
    assert 0.1 < ink < 0.35
    assert int(x.max()) == 255
    centre = x[:, 9:19, 9:19].float().mean()
    assert centre > 3 * x[:, :4].float().mean()
    # each image is different (random size / offset / rotation / stroke)
    same_digit = x[y == 3]
    assert len(torch.unique(same_digit.reshape(len(same_digit), -1), dim=0)) == len(same_digit)
    assert make_digits(0, seed=0)[0].shape == (0, 28, 28)
    assert make_digits(4, seed=0, size=32)[0].shape == (4, 32, 32)
    with pytest.raises(ValueError, match="`n`"):
        make_digits(-1)


def test_make_digits_is_fast():
    make_digits(10, seed=0)  # templates rendered once
    t = time.process_time()  # CPU time of this process: not inflated by other jobs on the machine
    make_digits(10_000, seed=0)
    assert time.process_time() - t < 5.0


def test_mlp_learns_synthetic_digits(one_thread):
    set_seed(0)
    dls = synthetic_digits_dls(n=4000, seed=0, bs=64)
    assert dls.train.n == 3200 and dls.valid.n == 800
    learn = Learner(dls, MLP(784, [100, 100], 10), metrics=[accuracy], progress=False)
    learn.fit_one_cycle(2, 1e-2)
    assert learn.recorder.log[-1]["accuracy"] >= 0.90


def test_demo_dls_falls_back_to_synthetic(tmp_path):
    dls, desc = demo_dls(tmp_path, bs=32, seed=1)
    assert "synthetic" in desc and str(tmp_path) in desc
    assert dls.train.n == 8000 and dls.valid.n == 2000 and dls.train.bs == 32
    x, y, desc2 = load_digits(None, n_synthetic=30)
    assert x.shape == (30, 28, 28) and "synthetic" in desc2
    # a folder with the files is used as MNIST
    xs, ys = tiny_mnist(3000)
    write_mnist(tmp_path / "mnist10k", xs, ys)
    dls, desc = demo_dls(tmp_path, bs=32)
    assert "MNIST" in desc and dls.train.n == 1000 and dls.valid.n == 2000


# ---- the real data -------------------------------------------------------------------------------------
@pytest.mark.data
def test_load_real_mnist(data_path):
    folder = data_path / "mnist10k"
    x, y = load_mnist(folder)
    assert x.shape == (10000, 28, 28) and x.dtype == torch.uint8
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test labels
    assert torch.bincount(y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert int(x.max()) == 255 and int(x.min()) == 0


@pytest.mark.data
def test_logistic_regression_one_epoch(one_thread, data_path):
    set_seed(0)
    dls = mnist_dls(data_path / "mnist10k", valid_n=2000, bs=64, seed=0)
    assert dls.train.n == 8000 and dls.valid.n == 2000
    learn = Learner(dls, LogisticRegression(784, 10), loss_func=nn.NLLLoss(), metrics=[accuracy], progress=False)
    learn.fit_one_cycle(1, 1e-2)
    assert learn.recorder.log[-1]["accuracy"] >= 0.90


@pytest.mark.data
def test_mlp_three_epochs(one_thread, data_path):
    set_seed(0)
    dls = mnist_dls(data_path / "mnist10k", bs=64, seed=0)
    learn = Learner(dls, MLP(784, [100, 100], 10), metrics=[accuracy], progress=False)
    learn.fit_one_cycle(3, 1e-2)
    assert max(r["accuracy"] for r in learn.recorder.log) >= 0.95
