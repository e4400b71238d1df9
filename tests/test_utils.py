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
