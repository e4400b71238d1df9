"""Image data (deepfit.vision.data / decode): small generated images written with Pillow into tmp_path."""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfit.vision import (Cutout, ImageDataError, ImageDataLoaders, ImageDecodeError, aug_transforms,
                            decode_image, decode_images, get_image_files)
from deepfit.vision.data import resize_images

pytestmark = pytest.mark.usefixtures("one_thread")

COLOURS = {"blue": (30, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}


def shape_image(colour: tuple[int, int, int], rng: np.random.Generator, h: int = 40, w: int = 48) -> np.ndarray:
    """Dark noise with a coloured rectangle at a random place: the colour is the class."""
    a = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
    a[top:top + h // 2, left:left + w // 2] = colour
    return a


def write_folder(root: Path, n_train: int = 8, n_valid: int = 3, seed: int = 0, valid_name: str = "valid") -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), (valid_name, n_valid)):
        for cls, col in COLOURS.items():
            d = root / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = Image.fromarray(shape_image(col, rng))
                img.save(d / f"{i}.jpg", quality=95) if i % 2 else img.save(d / f"{i}.png")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "shapes")


# ---- decoding ------------------------------------------------------------------------------------------
def test_modes_are_converted(tmp_path: Path):
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.full((6, 8), 100, np.uint8)).save(tmp_path / "grey.png")
    rgba = np.zeros((6, 8, 4), np.uint8)  # fully transparent: shown on white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    Image.fromarray(np.full((6, 8), 65535, np.uint16)).save(tmp_path / "deep.png")  # 16-bit grey
    frames = [Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE), Image.new("P", (8, 6))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])  # multi-frame: the first
    out = {p.stem: decode_image(p) for p in tmp_path.iterdir()}
    for k, a in out.items():
        assert a.shape == (3, 6, 8) and a.dtype == np.uint8, k
    assert (out["rgb"][0] == 200).all() and (out["rgb"][1:] == 0).all()
    assert (out["grey"] == 100).all()  # grey -> the same value in R, G and B
    assert (out["rgba"] == 255).all()
    assert (out["palette"][0] == 200).all()
    assert abs(int(out["cmyk"][0].mean()) - 200) <= 3 and out["cmyk"][1:].max() <= 5
    assert (out["deep"] == 255).all()
    assert (out["anim"][0] == 200).all() and (out["anim"][1:] == 0).all()
    assert decode_image(tmp_path / "rgb.png", channels=1).shape == (1, 6, 8)


def test_resize_modes_by_hand(tmp_path: Path):
    a = np.zeros((20, 40), np.uint8)
    a[:, 20:] = 255  # left half black, right half white
    Image.fromarray(a).save(tmp_path / "wide.png")
    crop = decode_image(tmp_path / "wide.png", 20, "crop", channels=1)[0]
    assert crop.shape == (20, 20) and (crop[:, :9] == 0).all() and (crop[:, 11:] == 255).all()
    squash = decode_image(tmp_path / "wide.png", 20, "squash", channels=1)[0]
    assert (squash[:, :9] == 0).all() and (squash[:, 11:] == 255).all()
    pad = decode_image(tmp_path / "wide.png", 20, "pad", channels=1)[0]  # 10x20 content, 5 black rows each side
    assert (pad[:5] == 0).all() and (pad[15:] == 0).all() and (pad[5:15, 11:] == 255).all()
    # the tensor resizer does the same
    t = torch.from_numpy(a)[None, None]
    assert torch.equal(resize_images(t, 20, "pad")[0, 0, :5], torch.zeros(5, 20, dtype=torch.uint8))
    r = resize_images(t, 20, "crop")[0, 0]
    assert (r[:, :9] == 0).all() and (r[:, 11:] == 255).all()


def test_unreadable_files_are_named_and_never_crash_a_worker(tmp_path: Path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(good, quality=90)
    data = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.png").write_text("not an image")
    paths = [good, tmp_path / "truncated.jpg", tmp_path / "text.png", tmp_path / "missing.jpg"] * 20
    arr, bad = decode_images(paths, 16, num_workers=2)
    assert arr.shape == (80, 3, 16, 16)
    assert [f.index for f in bad][:3] == [1, 2, 3] and len(bad) == 60
    assert "truncated" in bad[0].reason and "not an image" in bad[1].reason and "no such file" in bad[2].reason
    with pytest.raises(ImageDecodeError, match="truncated.jpg"):
        decode_image(tmp_path / "truncated.jpg", 16)


def test_threads_and_processes_give_the_same_array_as_one_thread(folder: Path, tmp_path: Path):
    paths = get_image_files(folder)
    one, _ = decode_images(paths, (24, 20), "squash", num_workers=1)
    many, _ = decode_images(paths * 3, (24, 20), "squash", num_workers=3, processes=False)
    assert np.array_equal(many[: len(paths)], one) and np.array_equal(many[len(paths):2 * len(paths)], one)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff junk")
    mixed = (paths + [tmp_path / "bad.jpg"]) * 10  # 340 files: two chunks of 256 for the process pool
    procs, bad = decode_images(mixed, (24, 20), "squash", num_workers=2, processes=True)
    assert np.array_equal(procs[: len(paths)], one) and np.array_equal(procs[-len(paths) - 1:-1], one)
    assert [f.index for f in bad] == [len(paths) + k * (len(paths) + 1) for k in range(10)]
    assert all(f.path.endswith("bad.jpg") and "not an image" in f.reason for f in bad)


# ---- from_folder ---------------------------------------------------------------------------------------
def test_from_folder_builds_a_uint8_cache_and_normalised_batches(folder: Path):
    dls = ImageDataLoaders.from_folder(folder, size=32, bs=4, val_bs=16, seed=0, device="cpu")
    assert dls.vocab == ["blue", "green", "red"] and dls.c == 3 and dls.size == (32, 32)
    assert dls.train.n == 24 and dls.valid.n == 9
    x_cache = dls.train.tensors[0]
    assert x_cache.dtype == torch.uint8 and x_cache.shape == (24, 3, 32, 32)
    # the cache row of an item is that file decoded alone
    i = 5
    assert np.array_equal(x_cache[i].numpy(), decode_image(dls.train_items[i], 32))
    assert dls.train.tensors[1][i] == dls.vocab.index(dls.train_items[i].parent.name)
    # statistics of the training images, per channel
    xf = x_cache.double() / 255
    torch.testing.assert_close(torch.tensor(dls.mean, dtype=torch.float64), xf.mean(dim=(0, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(dls.std, dtype=torch.float64), xf.std(dim=(0, 2, 3)), atol=1e-3, rtol=0)
    xb, yb = next(iter(dls.valid))
    assert xb.dtype == torch.float32 and xb.shape == (9, 3, 32, 32)
    expect = (dls.valid.tensors[0].float() / 255 - torch.tensor(dls.mean).reshape(1, 3, 1, 1)) / \
        torch.tensor(dls.std).reshape(1, 3, 1, 1)
    torch.testing.assert_close(xb, expect, atol=1e-5, rtol=0)
    assert dls.default_loss.__class__.__name__ == "CrossEntropyLoss"


def test_imagenet_and_custom_and_no_normalisation(folder: Path):
    d = ImageDataLoaders.from_folder(folder, size=16, normalize="imagenet", device="cpu")
    assert d.mean == pytest.approx([0.485, 0.456, 0.406]) and d.std == pytest.approx([0.229, 0.224, 0.225])
    d = ImageDataLoaders.from_folder(folder, size=16, normalize=None, device="cpu")
    xb, _ = next(iter(d.valid))
    assert d.mean is None and float(xb.min()) >= 0 and float(xb.max()) <= 1
    d = ImageDataLoaders.from_folder(folder, size=16, normalize=([0.5] * 3, [0.25] * 3), device="cpu")
    assert d.std == [0.25] * 3
    with pytest.raises(ValueError, match="normalize"):
        ImageDataLoaders.from_folder(folder, size=16, normalize="imagenett", device="cpu")


def test_valid_pct_split_and_test_folder_fallback(tmp_path: Path):
    root = write_folder(tmp_path / "a", valid_name="test")
    d = ImageDataLoaders.from_folder(root, size=16, device="cpu")
    assert d.valid.n == 9 and all("test" in str(p) for p in d.valid_items)
    d1 = ImageDataLoaders.from_folder(root, size=16, valid_pct=0.25, seed=3, device="cpu")
    d2 = ImageDataLoaders.from_folder(root, size=16, valid_pct=0.25, seed=3, device="cpu")
    assert d1.valid_items == d2.valid_items and d1.valid.n == 6 and d1.train.n == 18
    # a folder of class folders without train/: 20% held out at random
    d3 = ImageDataLoaders.from_folder(root / "train", size=16, seed=0, device="cpu")
    assert d3.vocab == ["blue", "green", "red"] and d3.train.n + d3.valid.n == 24 and d3.valid.n == 5


def test_bad_folders_are_clear_errors(tmp_path: Path):
    root = write_folder(tmp_path / "b")
    (root / "train" / "purple").mkdir()
    with pytest.raises(ImageDataError, match="purple holds no images"):
        ImageDataLoaders.from_folder(root, size=16, device="cpu")
    (root / "train" / "purple").rmdir()
    one = tmp_path / "one" / "train" / "cat"
    one.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(one / "a.png")
    with pytest.raises(ImageDataError, match="only one class folder"):
        ImageDataLoaders.from_folder(tmp_path / "one", valid_pct=0.5, size=16, device="cpu")
    with pytest.raises(ImageDataError, match="no 'valid' folder"):
        ImageDataLoaders.from_folder(tmp_path / "one", size=16, device="cpu")
    import shutil
    shutil.move(str(root / "valid"), str(tmp_path / "valid_away"))
    (root / "valid").mkdir()
    with pytest.raises(ImageDataError, match="validation folder .* has no class folders"):
        ImageDataLoaders.from_folder(root, size=16, device="cpu")
    (root / "valid").rmdir()
    shutil.move(str(tmp_path / "valid_away"), str(root / "valid"))
    (root / "valid" / "zebra").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "valid" / "zebra" / "z.png")
    with pytest.raises(ImageDataError, match="zebra"):
        ImageDataLoaders.from_folder(root, size=16, device="cpu")


def test_non_image_and_corrupt_files_raise_or_are_skipped(folder: Path):
    (folder / "train" / "red" / "notes.txt").write_text("hello")
    with pytest.raises(ImageDataError, match="notes.txt"):
        ImageDataLoaders.from_folder(folder, size=16, device="cpu")
    with pytest.warns(UserWarning, match="notes.txt"):
        d = ImageDataLoaders.from_folder(folder, size=16, device="cpu", on_error="skip")
    assert d.train.n == 24
    (folder / "train" / "red" / "notes.txt").unlink()
    bad = folder / "train" / "red" / "broken.jpg"
    bad.write_bytes((folder / "train" / "red" / "1.jpg").read_bytes()[:100])
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        ImageDataLoaders.from_folder(folder, size=16, device="cpu")
    with pytest.warns(UserWarning, match="broken.jpg"):
        d = ImageDataLoaders.from_folder(folder, size=16, device="cpu", on_error="skip")
    assert d.train.n == 24 and bad not in d.train_items and len(d.train_items) == 24
    # hidden and system files are ignored silently
    (folder / "train" / "red" / "broken.jpg").unlink()
    (folder / "train" / "red" / ".DS_Store").write_text("x")
    (folder / "train" / "red" / "Thumbs.db").write_text("x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ImageDataLoaders.from_folder(folder, size=16, device="cpu").train.n == 24
    loose = folder / "train" / "stray.png"
    loose.write_bytes((folder / "train" / "red" / "0.png").read_bytes())
    with pytest.raises(ImageDataError, match="stray.png"):
        ImageDataLoaders.from_folder(folder, size=16, device="cpu")
    with pytest.warns(UserWarning, match="outside the class folders"):
        ImageDataLoaders.from_folder(folder, size=16, device="cpu", on_error="skip")
    loose.unlink()


def test_memory_mapped_cache_is_written_once_and_reused(folder: Path, tmp_path: Path, monkeypatch):
    cache = tmp_path / "cache" / "shapes.npy"
    d1 = ImageDataLoaders.from_folder(folder, size=16, cache=cache, device="cpu", seed=0)
    assert cache.is_file() and json.loads((cache.parent / "shapes.npy.json").read_text())["fingerprint"]
    mtime = cache.stat().st_mtime_ns
    import deepfit.vision.sources as vsources

    def boom(*a, **k):
        raise AssertionError("decoded again")
    monkeypatch.setattr(vsources, "decode_images", boom)
    d2 = ImageDataLoaders.from_folder(folder, size=16, cache=cache, device="cpu", seed=0)
    assert cache.stat().st_mtime_ns == mtime
    assert torch.equal(d1.train.tensors[0], d2.train.tensors[0])
    xb, yb = d2.one_batch()
    assert xb.shape == (16, 3, 16, 16) or xb.shape[1:] == (3, 16, 16)
    monkeypatch.undo()
    time.sleep(0.01)
    (folder / "train" / "red" / "0.png").touch()  # a changed file: the cache is rebuilt
    ImageDataLoaders.from_folder(folder, size=16, cache=cache, device="cpu", seed=0)
    assert cache.stat().st_mtime_ns != mtime


def test_augmentation_only_on_training_batches_and_repeatable(folder: Path):
    kw = dict(size=24, bs=8, seed=1, device="cpu", batch_tfms=aug_transforms(max_warp=0.3))
    d1 = ImageDataLoaders.from_folder(folder, **kw)
    d2 = ImageDataLoaders.from_folder(folder, **kw)
    a, b = next(iter(d1.train)), next(iter(d2.train))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    plain = ImageDataLoaders.from_folder(folder, size=24, bs=8, seed=1, device="cpu")
    assert torch.equal(next(iter(d1.valid))[0], next(iter(plain.valid))[0])
    assert not torch.equal(a[0], next(iter(plain.train))[0])


def test_loader_state_resumes_the_augmentation_exactly(folder: Path):
    kw = dict(size=16, bs=4, device="cpu", batch_tfms=aug_transforms(max_warp=0.3))
    torch.manual_seed(1)
    d = ImageDataLoaders.from_folder(folder, **kw)  # seed None: generators drawn from torch's RNG
    it = iter(d.train)
    next(it), next(it)
    state = d.train.state_dict()
    expected = next(it)
    torch.manual_seed(2)  # another run's random numbers...
    d2 = ImageDataLoaders.from_folder(folder, **kw)
    d2.train.load_state_dict(state)  # ...until it loads the checkpointed state
    got = next(iter(d2.train))
    assert torch.equal(got[1], expected[1]) and torch.equal(got[0], expected[0])


def test_checkpoint_resume_of_augmented_training_is_bit_identical(folder: Path, tmp_path: Path):
    from torch import nn
    from deepfit import Callback, Checkpoint, Learner

    class Crash(Callback):
        def after_batch(self) -> None:
            if self.learner.train_iter == 5:
                raise RuntimeError("simulated crash")

    def learner(seed: int) -> Learner:
        torch.manual_seed(seed)  # another process: other random numbers until the checkpoint is loaded
        d = ImageDataLoaders.from_folder(folder, size=16, bs=4, device="cpu",
                                         batch_tfms=aug_transforms(max_warp=0.3) + [Cutout(p=0.5)])
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        return Learner(d, model, progress=False, path=tmp_path)

    ref = learner(0)
    ref.fit_one_cycle(2, 1e-2)
    ck = tmp_path / "ck.pth"
    crashed = learner(0)
    with pytest.raises(RuntimeError, match="simulated"):
        crashed.fit_one_cycle(2, 1e-2, cbs=[Checkpoint(every_n_steps=2, fname=ck), Crash()])
    resumed = learner(1)
    resumed.fit_one_cycle(2, 1e-2, cbs=[Checkpoint(every_n_steps=2, fname=ck)], resume_from=ck)
    for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_cache_goes_to_the_accelerator_only_when_it_fits(monkeypatch):
    from deepfit.vision.data import cache_fits_device
    assert cache_fits_device(10**12, torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4000, 8000))
    assert cache_fits_device(1000, torch.device("cuda")) and not cache_fits_device(1001, torch.device("cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loaders_on_the_gpu(folder: Path, tmp_path: Path):
    d = ImageDataLoaders.from_folder(folder, size=16, bs=4, seed=0, device="cuda", batch_tfms=aug_transforms())
    assert d.train.tensors[0].device.type == "cuda"
    xb, yb = d.one_batch()
    assert xb.device.type == "cuda" and xb.dtype == torch.float32 and yb.device.type == "cuda"
    m = ImageDataLoaders.from_folder(folder, size=16, bs=4, seed=0, device="cuda", cache=tmp_path / "c.npy")
    assert m.train.tensors[0].device.type == "cpu" and m.one_batch()[0].device.type == "cuda"


# ---- from_csv / from_df --------------------------------------------------------------------------------
def test_from_csv_single_and_multi_label(folder: Path):
    files = sorted((folder / "train").rglob("*.*"))
    rows = [f"{f.relative_to(folder / 'train')},{f.parent.name}" for f in files]
    (folder / "labels.csv").write_text("name,label\n" + "\n".join(rows) + "\n")
    d = ImageDataLoaders.from_csv(folder, "labels.csv", folder="train", size=16, seed=0, device="cpu")
    assert d.vocab == ["blue", "green", "red"] and d.train.n + d.valid.n == 24 and not d.multi_label
    tags = [f"{f.relative_to(folder / 'train')},{f.parent.name} {'big' if i % 3 == 0 else ''}".rstrip()
            for i, f in enumerate(files)]
    (folder / "tags.csv").write_text("name,tags\n" + "\n".join(tags) + "\n")
    m = ImageDataLoaders.from_csv(folder, "tags.csv", folder="train", label_delim=" ", size=16, seed=0, device="cpu")
    assert m.multi_label and m.vocab == ["big", "blue", "green", "red"]
    assert m.default_loss.__class__.__name__ == "BCEWithLogitsLoss"
    y = torch.cat([m.train.tensors[1], m.valid.tensors[1]])
    assert y.shape == (24, 4) and y.dtype == torch.float32 and float(y[:, 0].sum()) == 8 and float(y[:, 1:].sum()) == 24
    assert m.decode_pred(torch.tensor([1.0, 0, 0, 1.0])) == ["big", "red"]
    (folder / "bad.csv").write_text("name,label\nnope.png,red\ntrain/red/0.png,red\n")
    with pytest.raises(ImageDataError, match="nope.png"):
        ImageDataLoaders.from_csv(folder, "bad.csv", size=16, device="cpu")


def test_from_df_valid_col(folder: Path):
    import pandas as pd
    files = sorted((folder / "train").rglob("*.*"))
    df = pd.DataFrame({"f": [str(f) for f in files], "y": [f.parent.name for f in files],
                       "is_valid": [i % 4 == 0 for i in range(len(files))]})
    before = df.copy()
    d = ImageDataLoaders.from_df(df, path="/", fn_col="f", label_col="y", valid_col="is_valid", size=16, device="cpu")
    assert d.valid.n == 6 and d.train.n == 18
    pd.testing.assert_frame_equal(df, before)


# ---- from_arrays ---------------------------------------------------------------------------------------
def test_from_arrays_shapes_dtypes_and_labels():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(50, 12, 12, generator=g) * 255).to(torch.uint8)
    d = ImageDataLoaders.from_arrays(x, torch.arange(50) % 2, valid_pct=0.2, seed=0, device="cpu")
    assert d.size == (12, 12) and d.channels == 1 and d.vocab == ["0", "1"] and d.valid.n == 10
    # floats in [0, 1], NHWC, names as labels, explicit validation set, resizing
    xf = torch.rand(30, 10, 14, 3, generator=g)
    names = np.array(["cat", "dog", "emu"])[np.arange(30) % 3]
    d = ImageDataLoaders.from_arrays(xf[:24], names[:24], xf[24:], names[24:], size=8, resize="squash", device="cpu")
    assert d.channels == 3 and d.size == (8, 8) and d.vocab == ["cat", "dog", "emu"] and d.valid.n == 6
    assert d.train.tensors[0].dtype == torch.uint8
    src = (xf[:1].permute(0, 3, 1, 2) * 255).round().to(torch.uint8)
    assert torch.equal(d.train.tensors[0][0], resize_images(src, 8, "squash")[0])
    with pytest.raises(ValueError, match="values must be in 0..1"):
        ImageDataLoaders.from_arrays(xf * 300, names, device="cpu")
    with pytest.raises(ValueError, match="shape"):
        ImageDataLoaders.from_arrays(torch.zeros(5, 2, 8, 8), torch.zeros(5), device="cpu")
    with pytest.raises(ValueError, match="4 classes"):
        ImageDataLoaders.from_arrays(x, torch.arange(50) % 5, classes=["a", "b", "c", "d"], device="cpu")


def test_new_size_redecodes_files_and_resizes_arrays(folder: Path):
    d = ImageDataLoaders.from_folder(folder, size=16, bs=4, seed=0, device="cpu", batch_tfms=aug_transforms())
    d2 = d.new_size(24)
    assert d2.size == (24, 24) and d2.train_items == d.train_items and d2.mean == d.mean
    assert np.array_equal(d2.train.tensors[0][3].numpy(), decode_image(d.train_items[3], 24))
    assert len(d2.batch_tfms) == len(d.batch_tfms) and d2.one_batch()[0].shape == (4, 3, 24, 24)
    x = (torch.rand(20, 3, 16, 16) * 255).to(torch.uint8)
    a = ImageDataLoaders.from_arrays(x, torch.arange(20) % 2, seed=0, device="cpu").resized((8, 12))
    assert a.size == (8, 12) and a.valid.tensors[0].shape[1:] == (3, 8, 12)


# ---- inference -----------------------------------------------------------------------------------------
def test_test_dl_and_encode_item_convert_other_sizes_and_modes(folder: Path, tmp_path: Path):
    d = ImageDataLoaders.from_folder(folder, size=16, seed=0, device="cpu")
    new = tmp_path / "new"
    new.mkdir()
    Image.fromarray(np.full((50, 30), 90, np.uint8)).save(new / "grey.png")  # another size and mode
    Image.fromarray(np.zeros((20, 20, 4), np.uint8), "RGBA").save(new / "rgba.png")
    dl = d.test_dl(new)
    assert [p.name for p in dl.items] == ["grey.png", "rgba.png"]
    (xb,) = next(iter(dl))
    assert xb.shape == (2, 3, 16, 16)
    raw = d.decode_images(xb)
    torch.testing.assert_close(raw[0], torch.full((3, 16, 16), 90 / 255), atol=1e-5, rtol=0)
    (x1,) = d.encode_item(new / "grey.png")
    torch.testing.assert_close(x1[0], xb[0])
    (x2,) = d.encode_item(np.full((50, 30), 90, np.uint8))
    torch.testing.assert_close(x2[0], xb[0], atol=2e-2, rtol=0)
    labelled = d.test_dl([new / "grey.png"], labels=["red"])
    assert next(iter(labelled))[1].tolist() == [2]
    (new / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageDecodeError, match="bad.jpg"):
        d.test_dl(new)
    with pytest.warns(UserWarning, match="bad.jpg"):
        assert len(d.test_dl(new, on_error="skip").items) == 2


def test_export_state_is_json_and_rebuilds_the_pipeline(folder: Path):
    d = ImageDataLoaders.from_folder(folder, size=(16, 20), resize="pad", seed=0, device="cpu")
    meta, tensors = d.export_state()
    assert tensors == {} and json.loads(json.dumps(meta)) == meta
    r = ImageDataLoaders.from_state(meta, tensors)
    assert r.vocab == d.vocab and r.size == (16, 20) and r.resize == "pad" and r.mean == d.mean
    img = d.valid_items[0]
    torch.testing.assert_close(r.encode_item(img)[0], d.encode_item(img)[0])


def test_show_batch_writes_a_png(folder: Path, tmp_path: Path):
    d = ImageDataLoaders.from_folder(folder, size=16, seed=0, device="cpu", batch_tfms=aug_transforms())
    fig = d.show_batch(n=6, fname=tmp_path / "batch.png")
    assert (tmp_path / "batch.png").stat().st_size > 1000
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 6 and set(titles) <= set(d.vocab)


def test_a_cnn_learns_the_colour_of_generated_shapes(tmp_path: Path):
    from torch import nn
    from deepfit import Learner, accuracy
    root = write_folder(tmp_path / "learn", n_train=24, n_valid=8)
    torch.manual_seed(0)
    d = ImageDataLoaders.from_folder(root, size=16, bs=16, seed=0, device="cpu", batch_tfms=aug_transforms())
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 3))
    learn = Learner(d, model, metrics=[accuracy], progress=False)
    learn.fit_one_cycle(8, 2e-2)
    assert learn.recorder.log[-1]["accuracy"] >= 0.9
    pred, _, probs = learn.predict(d.valid_items[0])
    assert pred == d.valid_items[0].parent.name and probs.shape == (3,)


@pytest.mark.data
@pytest.mark.slow
def test_cifar10_test_folder_decodes(data_path: Path):
    root = data_path / "cifar10"
    if not (root / "test").is_dir():
        pytest.skip(f"no CIFAR-10 images at {root}")
    files = get_image_files(root / "test")[::10]  # 1,000 of the 10,000 test images
    arr, bad = decode_images(files, 32)
    assert arr.shape == (len(files), 3, 32, 32) and not bad and 80 < arr.mean() < 180


@pytest.mark.data
def test_mnist_from_arrays(data_path: Path):
    from deepfit.data.mnist import find_mnist, load_mnist
    folder = find_mnist(data_path)
    if folder is None:
        pytest.skip(f"no MNIST files under {data_path}")
    x, y = load_mnist(folder)
    d = ImageDataLoaders.from_arrays(x, y, valid_pct=0.2, seed=42, bs=128, device="cpu")
    assert d.vocab == [str(i) for i in range(10)] and d.channels == 1 and d.size == (28, 28)
    assert d.train.n == 8000 and d.valid.n == 2000
    assert 0.12 < d.mean[0] < 0.14 and 0.29 < d.std[0] < 0.32  # MNIST's well-known statistics
