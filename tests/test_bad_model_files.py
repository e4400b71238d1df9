"""Crafted and damaged model files through `deepfit info` and `deepfit predict`: both run the same checks
(`deepfit.export.check_export`) and end with the same clear message and exit status 2, never a normal
description, an "internal error" or an attempt to allocate what a damaged header asks for."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepfit import load_learner
from deepfit.cli import main
from deepfit.export import FORMAT_VERSION, ExportError
from helpers import PYTHON_SYNTAX, rewrite_header, small_table

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """An (untrained) exported tabular and collab model, and a table to predict."""
    from deepfit.collab import CollabDataLoaders, collab_learner
    from deepfit.tabular import TabularDataLoaders, tabular_learner
    d = tmp_path_factory.mktemp("models")
    df = small_table(64)
    df.to_csv(d / "t.csv", index=False)
    dls = TabularDataLoaders.from_df(df, cat_names=["color"], cont_names=["size"], y_names="label", seed=0, bs=16,
                                     device="cpu")
    tabular_learner(dls, layers=[8, 4], path=d).export(d / "tab.safetensors")
    rng = np.random.default_rng(0)
    ratings = pd.DataFrame({"user": rng.integers(0, 10, 80), "item": rng.integers(0, 8, 80),
                            "rating": rng.integers(1, 6, 80)})
    cdls = CollabDataLoaders.from_df(ratings, seed=0, bs=16, device="cpu")
    collab_learner(cdls, n_factors=3, y_range=(0, 5.5), path=d).export(d / "cf.safetensors")
    return {"tabular": d / "tab.safetensors", "collab": d / "cf.safetensors", "csv": d / "t.csv"}


def _edit_json(key: str, edit):
    def change(meta):
        value = json.loads(meta[key])
        edit(value)
        meta[key] = json.dumps(value)
    return change


def _replace_tensor(src: Path, dst: Path, name: str, value: torch.Tensor) -> Path:
    """A copy of `src` with the tensor `name` replaced (the header's metadata kept)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(src), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    tensors[name] = value
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _truncate(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes()[:-20])
    return dst


# (which model, how to damage it, what the message must say)
DAMAGE = {
    "truncated": ("tabular", lambda s, d: _truncate(s, d), r"truncated"),
    "newer format": ("tabular", lambda s, d: rewrite_header(s, d, lambda m: m.update(
        format_version=str(FORMAT_VERSION + 1), deepfit_version="9.9.9")), r"deepfit 9\.9\.9.*Upgrade deepfit"),
    "wrong shapes": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "model_config", lambda c: c.update(layers=[16, 4]))), r"layers\.0\.0\.weight is \(8, \d+\) in the file but "
                                                               r"\(16, \d+\) in the model"),
    "absurd layers": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "model_config", lambda c: c.update(layers=[10**9, 10**9]))), r"do not fit the TabularModel.*shape mismatch"),
    "absurd embedding": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "model_config", lambda c: c["emb_szs"][0].__setitem__(0, 10**10))), r"embeds\.0\.weight is \(5, \d+\) in the "
                                                                            r"file but \(10000000000, \d+\)"),
    "absurd collab ids": ("collab", lambda s, d: rewrite_header(s, d, _edit_json(
        "model_config", lambda c: c.update(n_users=10**12))), r"user_emb is \(\d+, 4\) in the file but "
                                                               r"\(1000000000000, 4\)"),
    "negative size": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "model_config", lambda c: c.update(layers=[-8, 4]))), r"config this deepfit cannot build"),
    "config not JSON": ("tabular", lambda s, d: rewrite_header(s, d, lambda m: m.update(model_config="{layers: [")),
                        r"model_config is not valid JSON"),
    "dls_state not JSON": ("tabular", lambda s, d: rewrite_header(s, d, lambda m: m.update(dls_state="{\"proc\": ")),
                           r"dls_state is not valid JSON"),
    "dls_state a list": ("collab", lambda s, d: rewrite_header(s, d, lambda m: m.update(dls_state="[1, 2]")),
                         r"dls_state should be a JSON object, found a list"),
    "cat_names a number": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: st["proc"].update(cat_names=5))), r"proc\.cat_names should be a list, found a number"),
    "y_names of numbers": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: st["proc"].update(y_names=[1]))), r"proc\.y_names\[0\] should be text"),
    "missing classes": ("collab", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: st.pop("classes"))), r"dls_state of its CollabDataLoaders\): classes is missing"),
    "unknown proc": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: st["proc"]["procs"][0].update(name="Shuffle"))), r"'Shuffle' is missing or unknown"),
    "vocabulary too short": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: [p["state"]["classes"].update(color=["red"]) for p in st["proc"]["procs"]
                                 if p["name"] == "Categorify"])), r"column 'color' has 3 codes but its embedding has "
                                                                  r"5 rows"),
    "NaN statistics": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: [p["state"]["stds"].update(size=float("nan")) for p in st["proc"]["procs"]
                                 if p["name"] == "Normalize"])), r"column 'size' has the standard deviation nan"),
    "statistics for another column": ("tabular", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: [p["state"]["means"].update(weight=1.0) for p in st["proc"]["procs"]
                                 if p["name"] == "Normalize"])), r"statistics are for columns \['size', 'weight'\]"),
    "collab vocabulary": ("collab", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: st["classes"].update(user=[1, 2]))), r"2 'user' ids but the model's n_users is 10"),
    "collab NaN mean": ("collab", lambda s, d: rewrite_header(s, d, _edit_json(
        "dls_state", lambda st: st.update(rating_mean=float("nan")))), r"the mean rating is nan"),
    "collab counts": ("collab", lambda s, d: _replace_tensor(s, d, "dls.user_counts", torch.zeros(3).int()),
                      r"10 'user' ids but \(3,\) rating counts"),
    "collab seen pairs": ("collab", lambda s, d: _replace_tensor(s, d, "dls.seen", torch.full((4, 2), 99).int()),
                          r"rated \(user, item\) pairs \(a \(4, 2\) tensor\) are not index pairs"),
    "header value not text": ("tabular", lambda s, d: rewrite_header(s, d, lambda m: m.update(model_class=["x"])),
                              r"model_class should be text"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_info_and_predict_refuse_a_damaged_file_with_the_same_message(capsys, tmp_path, files, case):
    which, damage, match = DAMAGE[case]
    bad = damage(files[which], tmp_path / "model.safetensors")
    before = bad.read_bytes()
    messages = []
    for argv in (["info", bad], ["info", bad, "--json"], ["predict", bad, files["csv"], "--out", tmp_path / "p.csv"]):
        code = main([str(a) for a in argv])
        cap = capsys.readouterr()
        assert code == 2, cap.err
        assert cap.out == "" and "Traceback" not in cap.err and "internal error" not in cap.err
        line = next(ln for ln in cap.err.splitlines() if ln.startswith("deepfit: error: "))
        assert str(bad) in line
        messages.append(line)
    assert messages[0] == messages[1] == messages[2]
    assert re.search(match, messages[0]), messages[0]
    assert not PYTHON_SYNTAX.findall(messages[0]), messages[0]
    assert not (tmp_path / "p.csv").exists()
    assert bad.read_bytes() == before
    with pytest.raises(ExportError, match=match):  # Python users get the same ExportError
        load_learner(bad)


def test_info_still_describes_a_good_file(capsys, files):
    assert main(["info", str(files["tabular"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "TabularModel" and info["data"]["cat_names"] == ["color"]
    assert info["model_config"]["layers"] == [8, 4]


def test_a_good_file_loads_the_same_weights(files):
    learn = load_learner(files["collab"])
    from safetensors.torch import load_file
    stored = load_file(str(files["collab"]))
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, stored[f"model.{k}"]), k
