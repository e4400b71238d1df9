"""Small shared helpers."""
from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from deepfit.utils import atomic_path, current_umask


def test_atomic_path_renames_on_success_and_cleans_up_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.csv"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target  # the parent folder was created
        tmp.write_text("new")
        assert not target.exists()  # nothing under the final name until the block ends
    assert target.read_text() == "new" and not tmp.exists()
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert target.read_text() == "new"  # the complete old file is kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]  # and no temporary left
    with atomic_path(tmp_path / "plot.png", suffix=".png") as tmp:
        assert tmp.name.endswith(".png")
        tmp.write_bytes(b"png")
    assert (tmp_path / "plot.png").read_bytes() == b"png"


# ---- devices -----------------------------------------------------------------------------------------------
@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend this machine has two CUDA GPUs (only the checks are exercised, nothing is put on them)."""
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def no_gpu(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_parse_device_accepts_what_the_machine_has(two_gpus):
    import torch
    from deepfit.utils import available_devices, parse_device
    assert parse_device("cpu") == torch.device("cpu")
    assert parse_device(" cuda:1 ") == torch.device("cuda", 1)
    assert parse_device(torch.device("cuda")) == torch.device("cuda")
    assert available_devices()[:3] == ["cpu", "cuda:0", "cuda:1"]
    with pytest.raises(ValueError, match=r"'cuda:2' asks for GPU 2, but this machine has 2 CUDA GPU\(s\); "
                                         r"available here: cpu, cuda:0, cuda:1"):
        parse_device("cuda:2")


@pytest.mark.parametrize("device, match", [
    ("gpu7", r"'gpu7' is not a device name \(such as cpu, cuda, cuda:1 or mps\); available here: cpu\."),
    ("cuda", r"'cuda' asks for CUDA, but this machine has no usable CUDA GPU.*available here: cpu\."),
    ("cuda:0", r"asks for CUDA.*available here: cpu\."),
    ("mps", r"'mps' asks for Apple's MPS, which is not available on this machine; available here: cpu\."),
    ("", r"is not a device name"),
])
def test_parse_device_names_what_is_available(no_gpu, device, match):
    from deepfit.utils import parse_device
    with pytest.raises(ValueError, match=match):
        parse_device(device)


def test_python_api_rejects_a_missing_device(no_gpu, tmp_path):
    import torch
    from deepfit.data.core import DataLoader, DataLoaders
    x, y = torch.randn(8, 2), torch.randn(8)
    with pytest.raises(ValueError, match="available here: cpu"):
        DataLoader(x, y, device="cuda")
    with pytest.raises(ValueError, match="'gpu7' is not a device name"):
        DataLoaders.from_tensors(x, y, x, y, device="gpu7")
    dls = DataLoaders(DataLoader(x, y, bs=4))
    with pytest.raises(ValueError, match="available here: cpu"):
        dls.to("cuda:1")
    assert dls.device == torch.device("cpu")  # unchanged
    from deepfit import Learner
    from deepfit.losses import MSELoss
    from deepfit.layers import MLP
    learn = Learner(dls, MLP(2, [4], 1), loss_func=MSELoss())
    learn.export(tmp_path / "m.safetensors")
    from deepfit.export import load_learner
    with pytest.raises(ValueError, match="asks for CUDA.*available here: cpu"):
        load_learner(tmp_path / "m.safetensors", device="cuda")


@pytest.fixture
def umask():
    """Set the process umask for one test (`umask(0o027)`), restoring the old one afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_path_gives_the_usual_mode_whatever_the_writer_used(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    want = 0o666 & ~mask  # what open() gives a new file: 0644 under umask 022
    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp))  # safetensors creates its file owner-only (0600)
    with atomic_path(tmp_path / "m.pth") as tmp:
        torch.save({"a": torch.zeros(2)}, tmp)
    with atomic_path(tmp_path / "t.txt") as tmp:
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)  # as tempfile.mkstemp does
        os.close(fd)
    for name in ("w.safetensors", "m.pth", "t.txt"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == want, name
