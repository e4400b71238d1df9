"""Small shared helpers."""
from __future__ import annotations

import pytest

from deepfit.utils import atomic_path


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
