"""Messages shown on the command line suggest flags and commands, never Python calls: errors that name a
Python fix (`pd.to_numeric`, `learn.lr_find()`, `test_dl(unknown=...)`, `load_learner`) carry a command-line
version (`deepfit.errors.HintedError`), which every CLI error path prints; Python users keep the Python one."""
from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from deepfit.cli import main
from deepfit.errors import HintedError, cli_message
from helpers import PYTHON_SYNTAX, rewrite_header, small_table

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ("--epochs", "1", "--lr-find-iters", "0", "--bs", "16", "-q")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from deepfit.collab import CollabDataLoaders, collab_learner
    from deepfit.tabular import TabularDataLoaders, tabular_learner
    d = tmp_path_factory.mktemp("msg")
    df = small_table(60)
    df.to_csv(d / "t.csv", index=False)
    text = df.astype({"size": object})
    text.loc[4, "size"] = "n/a?"
    text.to_csv(d / "text.csv", index=False)
    dls = TabularDataLoaders.from_df(df, cat_names=["color"], cont_names=["size"], y_names="label", seed=0, bs=16,
                                     device="cpu")
    tabular_learner(dls, layers=[8], path=d).export(d / "tab.safetensors")
    ratings = pd.DataFrame({"user": np.arange(40) % 7, "item": np.arange(40) % 5, "rating": 1 + np.arange(40) % 5})
    ratings.to_csv(d / "r.csv", index=False)
    cdls = CollabDataLoaders.from_df(ratings, seed=0, bs=16, device="cpu")
    collab_learner(cdls, n_factors=3, path=d).export(d / "cf.safetensors")
    pd.DataFrame({"user": [0, 999], "item": [1, 1]}).to_csv(d / "pairs.csv", index=False)
    with open(d / "pickled.pkl", "wb") as f:
        pickle.dump({"weights": [1, 2, 3]}, f)
    import torch
    torch.save({"weights": torch.zeros(2)}, d / "saved.pth")
    rewrite_header(d / "tab.safetensors", d / "holo.safetensors", lambda meta: meta.update(model_class="HoloNet"))
    (d / "wide.csv").write_bytes("a,b,label\n1,2,x\n3,4,y\n".encode("utf-16-le"))
    (d / "dup.csv").write_text("size,color,size,label\n" + "".join(f"{i % 3},{'rg'[i % 2]},{i},{'xy'[i % 2]}\n"
                                                                   for i in range(30)))
    return {p.name: p for p in d.iterdir()}


def _diverge(self, *a, **k):
    from deepfit.callbacks.training import TerminateOnNaN
    cb = TerminateOnNaN()
    cb.learner = SimpleNamespace(epoch=0, iter=3)  # the callback's own message, as training would raise it
    cb._stop(float("nan"))


# (argv with {file} placeholders, a part of the expected message, patch Learner.fit_one_cycle to diverge?)
CASES = {
    "text in a continuous column": (["train", "tabular", "{text.csv}", "--target", "label", "--cat", "color",
                                     "--cont", "size"], "--cat", False),
    "text in a continuous column (predict)": (["predict", "{tab.safetensors}", "{text.csv}", "--out", "{out}"],
                                              "--na-values n/a?", False),
    "unseen collab ids": (["predict", "{cf.safetensors}", "{pairs.csv}", "--out", "{out}"], "--unknown fallback",
                          False),
    "diverging training": (["train", "tabular", "{t.csv}", "--target", "label"], "deepfit lr-find", True),
    "pickle as model (predict)": (["predict", "{pickled.pkl}", "{t.csv}", "--out", "{out}"], "never unpickle", False),
    "pickle as model (info)": (["info", "{pickled.pkl}"], "never unpickle", False),
    "torch.save file as model": (["info", "{saved.pth}"], "is a PyTorch pickle file (zip)", False),
    "unknown model class": (["info", "{holo.safetensors}"], "HoloNet", False),
    "utf-16 without a mark": (["train", "tabular", "{wide.csv}", "--target", "label"], "--encoding utf-16le", False),
    "repeated column": (["train", "tabular", "{dup.csv}", "--target", "label"], "--ignore", False),
    "misspelled column": (["train", "collab", "{r.csv}", "--user", "usr"], "did you mean 'user'?", False),
    "model for another table": (["predict", "{tab.safetensors}", "{r.csv}", "--out", "{out}"],
                                "is this the right model", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cli_errors_suggest_flags_not_python(capsys, tmp_path, files, monkeypatch, case):
    argv, expected, diverge = CASES[case]
    if diverge:
        from deepfit import Learner
        monkeypatch.setattr(Learner, "fit_one_cycle", _diverge)

    def fill(a: str) -> str:
        return str(tmp_path / "out.csv") if a == "{out}" else str(files[a[1:-1]]) if a.startswith("{") else a
    argv = [fill(a) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "run"), *FAST]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err
    assert expected in err, err
    found = PYTHON_SYNTAX.findall(err)
    assert not found, f"Python syntax {found} shown to a command-line user:\n{err}"
    status = tmp_path / "run.incomplete" / "STATUS"
    if status.exists():  # the STATUS file of a failed run is read by the same users
        assert not PYTHON_SYNTAX.findall(status.read_text()), status.read_text()


def test_python_users_keep_the_python_fix(files):
    from deepfit.collab import UnknownIdError
    from deepfit.tabular import TabularDataLoaders, TabularDataError
    df = pd.read_csv(files["text.csv"])
    with pytest.raises(TabularDataError) as info:
        TabularDataLoaders.from_df(df, cat_names=["color"], cont_names=["size"], y_names="label", device="cpu")
    e = info.value
    assert "pd.to_numeric" in str(e) and "cat_names" in str(e)
    assert "pd.to_numeric" not in cli_message(e) and "--cat" in cli_message(e)
    assert cli_message(e).startswith("Continuous column 'size' holds text that is not a number: 'n/a?'")
    from deepfit import load_learner
    learn = load_learner(files["cf.safetensors"])
    with pytest.raises(UnknownIdError, match=r"test_dl\(df, unknown='fallback'\)") as info:
        learn.dls.test_dl(pd.DataFrame({"user": [999], "item": [1]}))
    assert "--unknown fallback" in cli_message(info.value)


def test_hinted_error_texts_and_plain_errors():
    e = HintedError("Bad value.", "Call fix().", cli_hint="Pass --fix.")
    assert str(e) == "Bad value. Call fix()." and cli_message(e) == "Bad value. Pass --fix."
    assert cli_message(HintedError("Only a problem.")) == "Only a problem." == str(HintedError("Only a problem."))
    assert cli_message(ValueError("plain")) == "plain"
    e2 = pickle.loads(pickle.dumps(e))  # e.g. raised in another process: the full text survives
    assert str(e2) == str(e)
