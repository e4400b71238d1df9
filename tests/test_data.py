"""DataLoader / DataLoaders (batches by indexing), Normalize, and the download cache."""
from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepfit import DataLoader, DataLoaders, Learner, MSELoss, Normalize
from deepfit.data import as_tensor, download_url, split_indices, untar_data
from deepfit.data import external


def rows(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """x[i] = (i, 10 i), y[i] = i: every batch tells which rows it holds."""
    i = torch.arange(n)
    return torch.stack([i, 10 * i], 1).float(), i


def epoch_ids(dl: DataLoader) -> list[list[int]]:
    return [yb.tolist() for _, yb in dl]


# ---- DataLoader: batching ------------------------------------------------------------------------------
def test_unshuffled_batches_in_order_with_partial_last():
    x, y = rows(10)
    dl = DataLoader(x, y, bs=4)
    assert len(dl) == 3
    assert epoch_ids(dl) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    for xb, yb in dl:  # inputs stay aligned with targets
        assert torch.equal(xb[:, 0].long(), yb) and torch.equal(xb[:, 1].long(), 10 * yb)


def test_drop_last():
    x, y = rows(10)
    dl = DataLoader(x, y, bs=4, drop_last=True)
    assert len(dl) == 2 and epoch_ids(dl) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    sh = DataLoader(x, y, bs=4, drop_last=True, shuffle=True, seed=0)
    dropped = set()
    for _ in range(60):
        ids = epoch_ids(sh)
        assert [len(b) for b in ids] == [4, 4]
        dropped |= set(range(10)) - {i for b in ids for i in b}
    assert dropped == set(range(10))  # with shuffling, every row is sometimes dropped, none always
    assert len(DataLoader(x, y, bs=16, drop_last=True)) == 0
    assert len(DataLoader(x, y, bs=10, drop_last=True)) == 1


def test_shuffle_is_a_new_permutation_each_epoch():
    x, y = rows(50)
    dl = DataLoader(x, y, bs=8, shuffle=True, seed=1)
    epochs = [torch.cat([yb for _, yb in dl]).tolist() for _ in range(4)]
    for e in epochs:
        assert sorted(e) == list(range(50)) and e != list(range(50))
    assert len({tuple(e) for e in epochs}) == 4
    # batches are gathered with one index per tensor: x rows follow y
    for xb, yb in dl:
        assert torch.equal(xb[:, 0].long(), yb)
    # the same seed replays the same sequence of epochs, another seed does not
    again = DataLoader(x, y, bs=8, shuffle=True, seed=1)
    assert [torch.cat([yb for _, yb in again]).tolist() for _ in range(4)] == epochs
    other = DataLoader(x, y, bs=8, shuffle=True, seed=2)
    assert torch.cat([yb for _, yb in other]).tolist() != epochs[0]


def test_unseeded_shuffle_follows_torch_manual_seed():
    x, y = rows(30)
    torch.manual_seed(5)
    a = [epoch_ids(DataLoader(x, y, bs=7, shuffle=True)) for _ in range(2)]
    torch.manual_seed(5)
    b = [epoch_ids(DataLoader(x, y, bs=7, shuffle=True)) for _ in range(2)]
    assert a == b and a[0] != a[1]


def test_one_batch_does_not_disturb_the_shuffle_sequence():
    x, y = rows(40)
    ref = DataLoader(x, y, bs=8, shuffle=True, seed=3)
    dl = DataLoader(x, y, bs=8, shuffle=True, seed=3)
    expected = [epoch_ids(ref) for _ in range(3)]
    got = []
    for _ in range(3):
        xb, yb = dl.one_batch()
        assert xb.shape == (8, 2) and torch.equal(xb[:, 0].long(), yb)
        got.append(epoch_ids(dl))
        dl.one_batch()
    assert got == expected
    # one_batch is repeatable, and doesn't consume torch's global generator either
    state = torch.get_rng_state()
    assert torch.equal(dl.one_batch()[1], dl.one_batch()[1])
    assert torch.equal(torch.get_rng_state(), state)


def test_unshuffled_loader_leaves_global_rng_alone():
    x, y = rows(10)
    dl = DataLoader(x, y, bs=3)
    state = torch.get_rng_state()
    list(dl)
    assert dl.one_batch()[1].tolist() == [0, 1, 2]
    assert torch.equal(torch.get_rng_state(), state)


def test_one_batch_mid_epoch_keeps_position():
    x, y = rows(20)
    ref = DataLoader(x, y, bs=4, shuffle=True, seed=0)
    dl = DataLoader(x, y, bs=4, shuffle=True, seed=0)
    expected = epoch_ids(ref)
    it = iter(dl)
    first = next(it)[1].tolist()
    dl.one_batch()
    rest = [yb.tolist() for _, yb in it]
    assert [first] + rest == expected


def test_resume_mid_epoch_from_state_dict():
    x, y = rows(30)
    dl = DataLoader(x, y, bs=4, shuffle=True, seed=7)
    it = iter(dl)
    done = [next(it)[1].tolist() for _ in range(3)]
    state = dl.state_dict()
    rest = [yb.tolist() for _, yb in it]
    following = epoch_ids(dl)
    dl2 = DataLoader(x, y, bs=4, shuffle=True, seed=99)
    dl2.load_state_dict(state)
    assert epoch_ids(dl2) == rest
    assert epoch_ids(dl2) == following
    assert sorted(sum(done + rest, [])) == list(range(30))


def test_device_placement():
    x, y = rows(10)
    dl = DataLoader(x, y, bs=4, shuffle=True, device="meta", seed=0)
    assert all(t.device.type == "meta" for t in dl.tensors)  # moved once, up-front
    shapes = [(xb.shape, yb.shape, xb.device.type, yb.device.type) for xb, yb in dl]
    assert shapes == [((4, 2), (4,), "meta", "meta")] * 2 + [((2, 2), (2,), "meta", "meta")]
    lazy = DataLoader(x, y, bs=4, device="meta", preload=False)
    assert lazy.tensors[0].device.type == "cpu"
    assert all(xb.device.type == "meta" for xb, _ in lazy)  # moved batch by batch
    cpu = DataLoader(x, y, bs=4)
    assert cpu.device == torch.device("cpu") and next(iter(cpu))[0].device.type == "cpu"
    dls = DataLoaders(DataLoader(x, y, bs=4), DataLoader(x, y, bs=4)).to("meta")
    assert dls.device.type == "meta" and dls.valid.tensors[1].device.type == "meta"


def test_after_batch_is_applied():
    x, y = rows(6)
    dl = DataLoader(x, y, bs=4, after_batch=lambda b: (b[0] * 2, b[1]))
    xb, yb = next(iter(dl))
    assert torch.equal(xb, 2 * x[:4]) and torch.equal(yb, y[:4])


def test_n_inp_splits_inputs_from_targets():
    a, b = torch.randn(12, 3), torch.randn(12, 3)
    y = (a * b).sum(1)
    assert DataLoader(a, b, y).n_inp == 2
    assert DataLoader(a).n_inp == 1
    assert DataLoader(a, b, y, n_inp=1).n_inp == 1

    class Dot(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1))

        def forward(self, p, q):
            return self.w * (p * q).sum(1)

    dl = DataLoader(a, b, y, bs=4)
    learn = Learner(DataLoaders(dl, DataLoader(a, b, y, bs=6)), Dot(), loss_func=MSELoss(), progress=False)
    assert learn.validate()["valid_loss"] == pytest.approx(0.0, abs=1e-10)  # model(a, b) == y exactly
    with pytest.raises(ValueError, match="n_inp"):
        DataLoader(a, y, n_inp=3)
    with pytest.raises(ValueError, match="n_inp"):
        DataLoader(a, y, n_inp=0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="tensor 0 has 10 rows, tensor 1 has 9"):
        DataLoader(torch.zeros(10, 2), torch.zeros(9))
    with pytest.raises(ValueError, match="bs"):
        DataLoader(torch.zeros(10, 2), bs=0)
    with pytest.raises(ValueError, match="at least one tensor"):
        DataLoader()
    with pytest.raises(TypeError, match="dtype=object"):
        DataLoader(np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="y_valid"):
        DataLoaders.from_tensors(torch.zeros(4, 1), torch.zeros(4), torch.zeros(2, 1))


def test_as_tensor_dtypes():
    assert as_tensor(np.zeros(3, dtype=np.float64)).dtype == torch.float32
    assert as_tensor(np.zeros(3, dtype=np.int32), name="y").dtype == torch.int64
    assert as_tensor(np.zeros(3, dtype=np.uint8), name="x").dtype == torch.uint8
    t = torch.zeros(2, dtype=torch.float64)
    assert as_tensor(t) is t  # tensors are used as they are
    arr = np.arange(6.0).reshape(2, 3)
    out = as_tensor(arr)
    out += 1
    assert arr[0, 0] == 0.0  # the caller's array is never modified (float64 -> float32 copies)


def test_from_tensors_and_from_arrays():
    x, y = rows(100)
    dls = DataLoaders.from_tensors(x[:80].numpy().astype(np.float64), y[:80].numpy().astype(np.int32),
                                   x[80:], y[80:], bs=16, device="cpu", seed=0)
    assert dls.train.shuffle and not dls.valid.shuffle
    assert dls.train.bs == 16 and dls.valid.bs == 32 and len(dls.train) == 5 and len(dls.valid) == 1
    assert dls.train.tensors[0].dtype == torch.float32 and dls.train.tensors[1].dtype == torch.int64
    assert dls.n_inp == 1 and dls.device.type == "cpu"
    dls = DataLoaders.from_arrays(x.numpy(), y.numpy(), valid_pct=0.25, seed=3, bs=8, device="cpu")
    tr, va = dls.train.tensors[1].tolist(), dls.valid.tensors[1].tolist()
    assert len(tr) == 75 and len(va) == 25 and sorted(tr + va) == list(range(100))
    assert torch.equal(dls.valid.tensors[0][:, 0].long(), dls.valid.tensors[1])


def test_split_indices():
    tr, va = split_indices(10, 0.3, seed=0)
    assert len(va) == 3 and sorted(np.concatenate([tr, va]).tolist()) == list(range(10))
    assert list(tr) == sorted(tr) and list(va) == sorted(va)
    assert np.array_equal(split_indices(10, 0.3, seed=0)[1], va)
    assert not np.array_equal(split_indices(1000, 0.3, seed=1)[1], split_indices(1000, 0.3, seed=2)[1])
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError, match="valid_pct"):
            split_indices(10, bad)


def test_distributed_shards_cover_every_row():
    x, y = rows(10)
    shards = [DataLoader(x, y, bs=2, shuffle=True, seed=4, rank=r, world_size=3) for r in range(3)]
    ids = [torch.cat([yb for _, yb in dl]).tolist() for dl in shards]
    assert [len(i) for i in ids] == [4, 4, 4]  # ceil(10 / 3), padded by wrapping around
    assert set(sum(ids, [])) == set(range(10))


# ---- Normalize -----------------------------------------------------------------------------------------
def test_normalize_uses_training_statistics_only():
    g = torch.Generator().manual_seed(0)
    x_train = 3 + 2 * torch.randn(200, 4, generator=g)
    x_valid = -5 + 10 * torch.randn(50, 4, generator=g)
    norm = Normalize.from_stats(x_train)
    ref = x_train.double()
    assert float(norm.mean) == pytest.approx(float(ref.mean()), rel=1e-6)
    assert float(norm.std) == pytest.approx(float(ref.std()), rel=1e-6)
    out = norm(x_train)
    assert float(out.mean()) == pytest.approx(0, abs=1e-5) and float(out.std()) == pytest.approx(1, abs=1e-5)
    # the validation set is transformed with the training stats, not its own
    expected = (x_valid.double() - ref.mean()) / (ref.std() + 1e-7)
    assert torch.allclose(norm(x_valid).double(), expected, atol=1e-5)
    assert abs(float(norm(x_valid).mean())) > 1
    assert torch.allclose(norm.decode(norm(x_valid)), x_valid, atol=1e-4)


def test_normalize_per_feature_and_state():
    x = torch.tensor([[0.0, 10.0], [2.0, 30.0], [4.0, 50.0]])
    norm = Normalize.from_stats(x, dim=0)
    assert norm.mean.shape == (1, 2)
    assert norm.mean.flatten().tolist() == [2.0, 30.0] and norm.std.flatten().tolist() == [2.0, 20.0]
    assert torch.allclose(norm(x), torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]), atol=1e-6)
    assert torch.allclose(norm.decode(norm(x)), x, atol=1e-5)
    back = Normalize.from_state_dict(norm.state_dict())
    assert torch.equal(back(x), norm(x))
    u8 = torch.tensor([[0, 255]], dtype=torch.uint8)
    assert Normalize(torch.tensor(0.0), torch.tensor(255.0), eps=0)(u8).tolist() == [[0.0, 1.0]]


# ---- downloads -----------------------------------------------------------------------------------------
def test_download_url_caches(tmp_path):
    src = tmp_path / "src" / "data.csv"
    src.parent.mkdir()
    src.write_text("a,b\n1,2\n")
    cache = tmp_path / "cache"
    p = download_url(src.as_uri(), cache)
    assert p == cache / "data.csv" and p.read_text() == "a,b\n1,2\n"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    os.utime(p, (1_000_000, 1_000_000))
    src.write_text("changed")
    assert download_url(src.as_uri(), cache) == p
    assert p.stat().st_mtime == 1_000_000 and p.read_text() == "a,b\n1,2\n"  # not downloaded again
    src.unlink()
    assert download_url(src.as_uri(), cache).read_text() == "a,b\n1,2\n"  # works offline once cached
    src.write_text("new")
    assert download_url(src.as_uri(), cache, force=True).read_text() == "new"
    assert download_url(src.as_uri(), cache, fname="other.txt") == cache / "other.txt"
    assert sorted(f.name for f in cache.iterdir()) == ["data.csv", "other.txt"]  # no temporary files left


def test_download_url_names_and_cache_dir(tmp_path, monkeypatch):
    src = tmp_path / "my file.txt"
    src.write_text("x")
    assert "%20" in src.as_uri()
    assert download_url(src.as_uri(), tmp_path / "c").name == "my file.txt"  # percent-decoded
    # the query string is not part of the name (served here by a stand-in for urlopen)
    seen = []

    def fake_urlopen(url, timeout):
        seen.append(url)
        return io.BytesIO(b"payload")
    monkeypatch.setattr(external.urllib.request, "urlopen", fake_urlopen)
    p = download_url("https://example.com/files/data.tgz?dl=1&v=2", tmp_path / "c")
    assert p.name == "data.tgz" and p.read_bytes() == b"payload"
    assert seen == ["https://example.com/files/data.tgz?dl=1&v=2"]
    monkeypatch.undo()
    monkeypatch.setenv("DEEPFIT_CACHE", str(tmp_path / "envcache"))
    assert download_url(src.as_uri()) == tmp_path / "envcache" / "my file.txt"
    for bad in ("https://example.com/", "https://example.com"):
        with pytest.raises(ValueError, match="fname"):
            download_url(bad, tmp_path / "c")


def test_failed_download_leaves_no_file(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="missing.bin"):
        download_url((tmp_path / "missing.bin").as_uri(), cache)
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.parametrize("exc, raised", [(ConnectionResetError("reset by peer"), OSError),
                                         (KeyboardInterrupt(), KeyboardInterrupt)])
def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch, exc, raised):
    src = tmp_path / "big.bin"
    src.write_bytes(b"x" * 100_000)
    cache = tmp_path / "cache"

    def copy_half_then_fail(fsrc, fdst, length=0):
        fdst.write(fsrc.read(50_000))
        fdst.flush()
        raise exc
    monkeypatch.setattr(external.shutil, "copyfileobj", copy_half_then_fail)
    with pytest.raises(raised):
        download_url(src.as_uri(), cache)
    assert list(cache.iterdir()) == []  # neither big.bin nor a .part file
    monkeypatch.undo()
    assert download_url(src.as_uri(), cache).stat().st_size == 100_000


def make_tar(path: Path, mode: str, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, mode) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name, mode", [("ds.tgz", "w:gz"), ("ds.tar.gz", "w:gz"), ("ds.tar.bz2", "w:bz2"),
                                        ("ds.tar", "w")])
def test_untar_data_extracts_once(tmp_path, name, mode):
    src = make_tar(tmp_path / name, mode, {"ds/a.txt": b"A", "ds/sub/b.txt": b"B"})
    folder = untar_data(src.as_uri(), tmp_path / "cache")
    assert folder == tmp_path / "cache" / "ds"  # the single top folder is unwrapped
    assert (folder / "a.txt").read_bytes() == b"A" and (folder / "sub" / "b.txt").read_bytes() == b"B"
    (folder / "a.txt").write_bytes(b"edited")
    src.unlink()
    assert untar_data(src.as_uri(), tmp_path / "cache") == folder
    assert (folder / "a.txt").read_bytes() == b"edited"  # not extracted again
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["ds", name]


def test_untar_data_zip_without_top_folder(tmp_path):
    src = tmp_path / "flat.zip"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("x.txt", "X")
        z.writestr("y.txt", "Y")
    folder = untar_data(src.as_uri(), tmp_path / "cache")
    assert folder.name == "flat" and sorted(p.name for p in folder.iterdir()) == ["x.txt", "y.txt"]


def test_untar_data_rejects_non_archives(tmp_path):
    src = tmp_path / "notes.txt"
    src.write_text("not an archive")
    with pytest.raises(ValueError, match="neither a tar nor a zip"):
        untar_data(src.as_uri(), tmp_path / "cache")
    # no half-extracted folder is left, and the downloaded file was not mistaken for the folder
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["notes.txt"]


def test_untar_data_blocks_path_traversal(tmp_path):
    src = make_tar(tmp_path / "evil.tar", "w", {"../outside.txt": b"bad"})
    with pytest.raises(Exception):
        untar_data(src.as_uri(), tmp_path / "cache")
    assert not (tmp_path / "outside.txt").exists()
