"""Safe model files: export / load_learner round trip, and loaders that never run code from a file and
explain every bad file (pickles, newer versions, other shapes or architectures, truncation, corruption)."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from deepfit import DataLoaders, Learner, MSELoss, CrossEntropyLoss, load_learner
from deepfit.export import FORMAT_VERSION, ExportError, read_header, state_dict_mismatches
from deepfit.layers import MLP
from helpers import rewrite_header


class _Evil:
    """Unpickling this object writes a marker file: proof that a loader executed code from the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "code ran"))


def _mlp_learner(tmp_path: Path, hidden=(32,), seed: int = 0) -> Learner:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 6, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    dls = DataLoaders.from_tensors(x[:64], y[:64], x[64:], y[64:], bs=16, device="cpu", seed=seed)
    return Learner(dls, MLP(6, list(hidden), 2, p=0.1), loss_func=CrossEntropyLoss(), path=tmp_path, progress=False)


@pytest.fixture
def exported(tmp_path):
    learn = _mlp_learner(tmp_path)
    learn.fit(1, 1e-2)
    return learn, learn.export("model.safetensors")


# ---- round trip --------------------------------------------------------------------------------------
def test_exported_file_has_the_usual_mode(tmp_path):
    # safetensors writes owner-only files; an exported model is an ordinary output, like metrics.csv
    import os
    import stat
    learn = _mlp_learner(tmp_path)
    old = os.umask(0o022)
    try:
        f = learn.export("model.safetensors")
        w = learn.save("weights")
        os.umask(0o027)
        g = learn.export("model2.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o644 and stat.S_IMODE(os.stat(w).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(g).st_mode) == 0o640


def test_export_load_round_trip_predicts_the_same(exported):
    learn, f = exported
    assert f.name == "model.safetensors" and f.parent == learn.path
    assert not f.with_name(f.name + ".tmp").exists()
    meta = read_header(f)
    assert meta["model_class"] == "MLP" and json.loads(meta["model_config"])["hidden"] == [32]
    assert meta["format_version"] == str(FORMAT_VERSION)
    loaded = load_learner(f)
    assert not loaded.model.training  # ready for inference: dropout off
    x = learn.dls.valid.tensors[0]
    learn.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), learn.model(x), rtol=0, atol=0)
    for name, t in learn.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], t), name
    dec, _, probs = loaded.predict(x[3])
    dec0, _, probs0 = learn.predict(x[3])
    assert torch.equal(probs, probs0) and int(dec) == int(dec0)
    assert isinstance(loaded.loss_func, CrossEntropyLoss)


def test_load_learner_maps_to_the_requested_device(exported):
    _, f = exported
    loaded = load_learner(f, device="cpu")
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())


def test_learn_load_maps_a_gpu_file_to_the_learners_device(tmp_path, monkeypatch):
    learn = _mlp_learner(tmp_path)
    learn.fit(1, 1e-2)
    # write the file as a GPU machine would: torch.save records each storage's device ("cuda:0"), which a
    # plain torch.load cannot restore on a CPU-only machine
    import torch.serialization as ts
    monkeypatch.setattr(ts, "location_tag", lambda storage: "cuda:0")
    f = learn.save("w")
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(f, weights_only=True)
    learn2 = _mlp_learner(tmp_path, seed=3)
    learn2.load("w")
    for k, v in learn.model.state_dict().items():
        got = learn2.model.state_dict()[k]
        assert torch.equal(got, v) and got.device == learn2.dls.device, k
    assert all(t.device == learn2.dls.device for st in learn2.opt.state.values() for t in st.values()
               if isinstance(t, torch.Tensor))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to write a GPU file")
def test_gpu_file_loads_on_cpu(tmp_path):  # pragma: no cover - runs on GPU machines
    learn = _mlp_learner(tmp_path)
    learn.model.cuda()
    torch.save({"model": learn.model.state_dict()}, tmp_path / "models" / "g.pth")
    learn2 = _mlp_learner(tmp_path, seed=1)
    learn2.load("g", with_opt=False)
    assert all(p.device.type == "cpu" for p in learn2.model.parameters())


# ---- never executes code ------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch_zip", "torch_legacy", "plain_pickle"])
def test_pickle_with_code_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    f = tmp_path / "models" / "evil.pth"
    f.parent.mkdir(parents=True)
    payload = {"model": _Evil(marker)}
    if writer == "torch_zip":
        torch.save(payload, f)
    elif writer == "torch_legacy":
        torch.save(payload, f, _use_new_zipfile_serialization=False)
    else:
        f.write_bytes(pickle.dumps(payload))
    learn = _mlp_learner(tmp_path)
    w0 = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(ValueError) as e:
        learn.load("evil")
    assert "arbitrary code" in str(e.value) or "not a readable" in str(e.value)
    with pytest.raises(ExportError, match="pickle"):
        load_learner(f)
    assert not marker.exists()
    assert all(torch.equal(v, learn.model.state_dict()[k]) for k, v in w0.items())


def test_zip_pickle_is_named_as_such(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "models" / "evil.pth"
    f.parent.mkdir(parents=True)
    torch.save({"model": _Evil(marker)}, f)
    learn = _mlp_learner(tmp_path)
    with pytest.raises(ValueError, match=r"pickled Python objects.*arbitrary code"):
        learn.load("evil")
    with pytest.raises(ExportError, match=r"PyTorch pickle file \(zip\), not an exported deepfit model"):
        load_learner(f)
    assert not marker.exists()


# ---- versions, shapes, architectures -------------------------------------------------------------------
def test_newer_format_asks_to_upgrade(exported):
    _, f = exported
    rewrite_header(f, f, lambda m: m.update(format_version=str(FORMAT_VERSION + 1), deepfit_version="9.9.9",
                                            model_class="HoloNet"))
    with pytest.raises(ExportError, match=r"deepfit 9\.9\.9 \(format 2\).*Upgrade deepfit"):
        load_learner(f)


def test_weights_not_matching_the_described_model_name_the_tensor(exported):
    _, f = exported
    rewrite_header(f, f, lambda m: m.update(model_config=json.dumps({"n_in": 6, "hidden": [16], "n_out": 2,
                                                                     "p": 0.1, "bn": False})))
    with pytest.raises(ExportError, match=r"layers\.0\.weight is \(32, 6\) in the file but \(16, 6\) in the model"):
        load_learner(f)


def test_unknown_model_class_and_loss(exported):
    _, f = exported
    rewrite_header(f, f, lambda m: m.update(model_class="NoSuchNet"))
    with pytest.raises(ExportError, match=r"NoSuchNet.*does not know.*register_model"):
        load_learner(f)
    rewrite_header(f, f, lambda m: m.update(model_class="MLP", loss="NoSuchLoss"))
    with pytest.raises(ExportError, match="NoSuchLoss"):
        load_learner(f)


def test_bad_model_config_is_an_export_error(exported):
    _, f = exported
    rewrite_header(f, f, lambda m: m.update(model_config=json.dumps({"n_in": 6, "layers": 3})))
    with pytest.raises(ExportError, match="config this deepfit cannot build"):
        load_learner(f)


def test_learn_load_from_another_architecture_names_the_keys(tmp_path):
    small = _mlp_learner(tmp_path, hidden=(32,))
    small.save("small")
    deeper = _mlp_learner(tmp_path, hidden=(32, 32))
    with pytest.raises(ValueError, match=r"small\.pth do not fit this MLP: missing tensors the model needs: "
                                         r"layers\.6\.weight, layers\.6\.bias; shape mismatch: layers\.3\.weight is "
                                         r"\(2, 32\) in the file but \(32, 32\) in the model; layers\.3\.bias"):
        deeper.load("small")
    wider = _mlp_learner(tmp_path, hidden=(64,))
    with pytest.raises(ValueError, match=r"layers\.0\.weight is \(32, 6\) in the file but \(64, 6\) in the model"):
        wider.load("small")


def test_state_dict_mismatches_lists_every_kind():
    m = MLP(3, [4], 2)
    good = m.state_dict()
    assert state_dict_mismatches(m, good) == []
    bad = dict(good)
    bad.pop("layers.0.bias")
    bad["extra"] = torch.zeros(1)
    bad["layers.2.weight"] = torch.zeros(5, 4)
    out = state_dict_mismatches(m, bad)
    assert out == ["missing tensors the model needs: layers.0.bias", "unexpected tensors the model does not have: extra",
                   "shape mismatch: layers.2.weight is (5, 4) in the file but (2, 4) in the model"]
    assert state_dict_mismatches(m, bad, strict=False) == [out[2]]
    assert state_dict_mismatches(m, [1, 2]) == ["expected a dict of named tensors, found list"]


# ---- truncated and corrupted files ---------------------------------------------------------------------
def test_truncated_export_is_a_clear_error(exported):
    _, f = exported
    data = f.read_bytes()
    n = int.from_bytes(data[:8], "little")
    for cut in (0, 3, 8, 8 + n // 2, 8 + n, 8 + n + 10, len(data) - 1):
        f.write_bytes(data[:cut])
        with pytest.raises(ExportError, match="truncated|empty"):
            load_learner(f)


def test_corrupted_header_is_a_clear_error(exported):
    _, f = exported
    data = bytearray(f.read_bytes())
    n = int.from_bytes(data[:8], "little")
    bad = bytearray(data)
    bad[8 + n // 2: 8 + n // 2 + 6] = b"\xff\x00{]\x01\x02"
    f.write_bytes(bytes(bad))
    with pytest.raises(ExportError, match="corrupted header"):
        load_learner(f)
    bad = bytearray(data)
    bad[0:8] = (2**40).to_bytes(8, "little")  # a length field that points far beyond the file
    f.write_bytes(bytes(bad))
    with pytest.raises(ExportError, match="truncated or not a safetensors file"):
        load_learner(f)
    f.write_bytes(b"")
    with pytest.raises(ExportError, match="empty"):
        load_learner(f)


def test_corrupted_format_version_and_foreign_safetensors(exported, tmp_path):
    _, f = exported
    rewrite_header(f, f, lambda m: m.update(format_version="one"))
    with pytest.raises(ExportError, match="format_version"):
        load_learner(f)
    from safetensors.torch import save_file
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ExportError, match="not a deepfit export"):
        load_learner(other)
    with pytest.raises(FileNotFoundError):
        load_learner(tmp_path / "missing.safetensors")


def test_learn_load_truncated_and_newer_checkpoint(tmp_path):
    learn = _mlp_learner(tmp_path)
    f = learn.save("w")
    data = f.read_bytes()
    for cut in (0, 20, len(data) // 2, len(data) - 3):
        f.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated or corrupted"):
            learn.load("w")
    torch.save({"format": "deepfit-checkpoint", "version": 99, "deepfit_version": "9.0", "model": {}}, f)
    with pytest.raises(ValueError, match="Upgrade deepfit"):
        learn.load("w")


def test_export_of_unregistered_model_is_refused(tmp_path):
    dls = DataLoaders.from_tensors(torch.randn(8, 2), torch.randn(8), bs=4, device="cpu")
    learn = Learner(dls, torch.nn.Linear(2, 1), loss_func=MSELoss(), path=tmp_path, progress=False)
    with pytest.raises(ExportError, match="register it with deepfit.export.register_model"):
        learn.export()
    assert not (tmp_path / "export.safetensors").exists()


def test_loss_settings_survive_export_so_predict_decodes_the_same(tmp_path):
    from deepfit import BCEWithLogitsLoss
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    y = (x[:, 0] > 0).float()
    dls = DataLoaders.from_tensors(x[:48], y[:48], x[48:], y[48:], bs=16, device="cpu")
    learn = Learner(dls, MLP(6, [8], 1), loss_func=BCEWithLogitsLoss(thresh=0.8), path=tmp_path, progress=False)
    loaded = load_learner(learn.export("bce.safetensors"))
    assert loaded.loss_func.thresh == 0.8
    for i in range(16):  # the decoded class uses the trained threshold, not the default 0.5
        assert torch.equal(loaded.predict(x[48 + i])[1], learn.predict(x[48 + i])[1])
    ce = Learner(dls, MLP(6, [8], 2), loss_func=CrossEntropyLoss(label_smoothing=0.1, ignore_index=3),
                 path=tmp_path, progress=False)
    lf = load_learner(ce.export("ce.safetensors")).loss_func
    assert (lf.label_smoothing, lf.ignore_index) == (0.1, 3)


class _ValueDependentNet(torch.nn.Module):
    """A registered model whose constructor reads a tensor value (which the `meta` device cannot give)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        width = int(torch.tensor(n).item())
        self.lin = torch.nn.Linear(width, 2)
        self.n = n

    def forward(self, x):
        return self.lin(x)

    def get_config(self):
        return {"n": self.n}


def test_a_model_that_cannot_be_built_on_meta_still_loads_and_is_checked(tmp_path):
    from deepfit.export import register_model
    register_model(_ValueDependentNet)
    dls = DataLoaders.from_tensors(torch.randn(8, 3), torch.randint(0, 2, (8,)), bs=4, device="cpu")
    learn = Learner(dls, _ValueDependentNet(3), loss_func=CrossEntropyLoss(), path=tmp_path, progress=False)
    f = learn.export("v.safetensors")
    loaded = load_learner(f)
    assert torch.equal(loaded.model.lin.weight, learn.model.lin.weight)
    rewrite_header(f, f, lambda m: m.update(model_config=json.dumps({"n": 5})))
    with pytest.raises(ExportError, match=r"lin\.weight is \(2, 3\) in the file but \(2, 5\) in the model"):
        load_learner(f)
    rewrite_header(f, f, lambda m: m.update(model_config=json.dumps({"n": -4})))
    with pytest.raises(ExportError, match="config this deepfit cannot build"):
        load_learner(f)
