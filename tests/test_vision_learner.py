"""vision_learner: body + head, layer groups, pretrained weights from local files, fine_tune's frozen
phase and discriminative rates, MixUp and label smoothing by hand, TTA, channels-last, bf16 mixed
precision, progressive resizing, export."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepfit import Callback, DataLoaders, MixedPrecision
from deepfit.losses import CrossEntropyLoss
from deepfit.vision.callbacks import ChannelsLast, MixUp, progressive_resize
from deepfit.vision.learner import (AdaptiveConcatPool2d, ImageClassifier, VisionLearner, cnn_learner, create_body,
                                    create_head, hflip, load_pretrained, vision_learner)
from deepfit.vision.models import SimpleCNN, resnet18, resnet20

SMALL = dict(lin_ftrs=[16], ps=0.0)


def stripes(n: int = 96, size: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable images: class 1 has vertical stripes, class 0 horizontal ones, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    base = (torch.arange(size) % 2).float()
    vert, horiz = base.expand(size, size), base[:, None].expand(size, size)
    x = torch.where(y[:, None, None].bool(), vert, horiz)[:, None].expand(n, 3, size, size).clone()
    return x + 0.3 * torch.randn(x.shape, generator=g), y


def dls_of(n: int = 96, size: int = 12, bs: int = 16) -> DataLoaders:
    x, y = stripes(n, size)
    k = int(n * 0.75)
    return DataLoaders.from_tensors(x[:k], y[:k], x[k:], y[k:], bs=bs, device="cpu", seed=0)


def small_arch(n_in: int = 3) -> nn.Module:
    return SimpleCNN(n_out=1000, n_in=n_in, channels=(8, 16))


class Rec(Callback):
    """Records each group's lr at every batch, and whether each parameter required grad."""
    order = 100

    def before_fit(self):
        self.lrs, self.grad_flags = [], []

    def before_batch(self):
        if self.learner.training:
            self.lrs.append([g["lr"] for g in self.learner.opt.param_groups])


def test_body_head_and_three_groups():
    dls = dls_of()
    learn = vision_learner(dls, "resnet18", progress=False)
    body, head = learn.model
    assert [type(m).__name__ for m in body][-2:] == ["Sequential", "Sequential"]  # layer3, layer4 (no pool, no fc)
    assert len(body) == 8
    assert isinstance(head[0], AdaptiveConcatPool2d)
    # BatchNorm/Dropout/Linear/ReLU then BatchNorm/Dropout/Linear, sized by the classes
    assert [type(m).__name__ for m in head[2:]] == ["BatchNorm1d", "Dropout", "Linear", "ReLU", "BatchNorm1d",
                                                     "Dropout", "Linear"]
    assert head[2].num_features == 1024 and head[4].out_features == 512 and head[-1].out_features == 2
    assert head[3].p == 0.25 and head[-2].p == 0.5
    groups = learn.layer_groups()
    assert len(groups) == 3
    ids = [id(p) for g in groups for p in g]
    assert sorted(ids) == sorted(id(p) for p in learn.model.parameters())
    assert {id(p) for p in groups[1]} == {id(p) for p in list(body[6].parameters()) + list(body[7].parameters())}
    assert learn.model(torch.randn(2, 3, 12, 12)).shape == (2, 2)
    assert cnn_learner is vision_learner


def test_concat_pool_and_create_head_by_hand():
    x = torch.randn(2, 3, 4, 4)
    out = AdaptiveConcatPool2d()(x)
    assert torch.allclose(out[:, :3, 0, 0], x.amax((2, 3))) and torch.allclose(out[:, 3:, 0, 0], x.mean((2, 3)))
    head = create_head(3, 5, lin_ftrs=[7, 6], ps=0.4, concat_pool=False, bn_final=True)
    lin = [m for m in head if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin] == [(3, 7), (7, 6), (6, 5)]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.2, 0.2, 0.4]
    assert isinstance(head[-1], nn.BatchNorm1d)
    with pytest.raises(ValueError, match="ps"):
        create_head(3, 5, lin_ftrs=[7], ps=[0.1])
    with pytest.raises(ValueError, match="cut"):
        create_body(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))


def test_learns_a_synthetic_task():
    torch.manual_seed(0)
    learn = vision_learner(dls_of(128), small_arch, progress=False, **SMALL)
    before = learn.validate()
    learn.fit_one_cycle(4, 1e-2)
    after = learn.recorder.log[-1]
    assert after["valid_loss"] < 0.6 * before["valid_loss"]
    assert after["accuracy"] >= 0.9 > before["accuracy"]


def test_pretrained_from_a_torchvision_layout_file(tmp_path, monkeypatch):
    src = resnet18()
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    f = tmp_path / "resnet18-f37072fd.pth"
    torch.save(src.state_dict(), f)  # what torchvision's file holds: the plain state dict, fc of 1000 classes
    learn = vision_learner(dls_of(), "resnet18", pretrained=f, progress=False)
    body = learn.model[0]
    assert torch.equal(body[0].weight, src.conv1.weight)
    assert torch.equal(body[7][1].conv2.weight, src.layer4[1].conv2.weight)
    assert torch.equal(body[1].running_var, src.bn1.running_var)
    # the body is frozen except batch norms; the head trains
    assert not body[0].weight.requires_grad and body[1].weight.requires_grad
    assert all(p.requires_grad for p in learn.model[1].parameters())
    # pretrained=True: torch's hub cache, never a download
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        vision_learner(dls_of(), "resnet18", pretrained=True, progress=False)
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    f.rename(tmp_path / "torch" / "hub" / "checkpoints" / f.name)
    learn = vision_learner(dls_of(), "resnet18", pretrained=True, progress=False)
    assert torch.equal(learn.model[0][0].weight, src.conv1.weight)


def test_pretrained_safetensors_grey_input_and_wrong_file(tmp_path):
    from safetensors.torch import save_file
    src = resnet20()
    f = tmp_path / "r20.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(f))
    x, y = stripes(32)
    dls = DataLoaders.from_tensors(x[:24, :1], y[:24], x[24:, :1], y[24:], bs=8, device="cpu")
    learn = vision_learner(dls, "resnet20", pretrained=f, progress=False)
    # one input channel: the first conv's weights summed over RGB (a grey image is R = G = B)
    assert torch.allclose(learn.model[0][0].weight, src.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(learn.model[0][3][0].conv1.weight, src.layer1[0].conv1.weight)
    with pytest.raises(ValueError, match="missing layer"):
        load_pretrained(resnet18(), f, "resnet18")
    torch.save({"model": {"w": torch.zeros(1)}, "opt": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="missing conv1.weight"):
        vision_learner(dls_of(), "resnet20", pretrained=tmp_path / "other.pth", progress=False)
    with pytest.raises(FileNotFoundError):
        vision_learner(dls_of(), "resnet20", pretrained=tmp_path / "nope.pth", progress=False)
    with pytest.raises(ValueError, match="Unknown architecture"):
        vision_learner(dls_of(), "resnet19", progress=False)


def test_fine_tune_freezes_then_uses_discriminative_rates(tmp_path):
    torch.manual_seed(0)
    f = tmp_path / "w.pth"
    torch.save(small_arch().state_dict(), f)
    learn = vision_learner(dls_of(), small_arch, pretrained=f, progress=False, **SMALL)
    conv0 = learn.model[0][0][0].weight
    bn0 = learn.model[0][0][1].weight
    start_conv, start_bn = conv0.detach().clone(), bn0.detach().clone()
    seen = {}

    class Phase(Callback):
        order = 100

        def before_fit(self):
            seen.setdefault("frozen", []).append(not conv0.requires_grad)
            seen.setdefault("lrs", []).append([])

        def before_batch(self):
            seen["lrs"][-1].append([g["lr"] for g in self.learner.opt.param_groups])

        def after_fit(self):
            seen.setdefault("conv_same", []).append(torch.equal(conv0, start_conv))

    learn.fine_tune(1, base_lr=1e-2, freeze_epochs=1, cbs=[Phase()])
    assert seen["frozen"] == [True, False]
    assert seen["conv_same"] == [True, False]  # the body's conv trains only after unfreezing
    assert not torch.equal(bn0, start_bn)  # batch norms train in the frozen phase (train_bn)
    peak1 = np.max(seen["lrs"][0], axis=0)
    peak2 = np.max(seen["lrs"][1], axis=0)
    # slice(base_lr) in the frozen phase: head base_lr, the body groups a third of it (the 1cycle warm-up
    # of a 5-batch fit stops short of the peak, so compare the ratios and bound the peak)
    assert np.allclose(peak1 / peak1[-1], [1 / 3, 1 / 3, 1]) and 0.5e-2 < peak1[-1] <= 1e-2
    # unfrozen: slice(base/2/100, base/2), geometric over the three groups
    assert np.allclose(peak2 / peak2[-1], [1e-2, 1e-1, 1]) and 2.5e-3 < peak2[-1] <= 5e-3 * (1 + 1e-9)


def test_mixup_mixes_batch_and_loss_like_the_hand_computation():
    torch.manual_seed(0)
    dls = dls_of(32, bs=32)
    learn = vision_learner(dls, small_arch, progress=False, **SMALL)
    got = {}

    class Spy(Callback):
        def before_batch(self):  # runs before MixUp (order 0 < 5)
            if self.learner.training:
                got["x"], got["y"] = self.learner.xb[0].clone(), self.learner.yb[0].clone()

        def after_loss(self):
            if self.learner.training:
                got["xm"], got["pred"], got["loss"] = self.learner.xb[0], self.learner.pred.detach(), self.learner.loss

    mix = MixUp(alpha=0.4, seed=3)
    learn.fit(1, 1e-3, cbs=[Spy(), mix])
    lam, perm = mix.lam, mix.perm
    assert (lam >= 0.5).all() and (lam <= 1).all() and sorted(perm.tolist()) == list(range(24))
    x, y = got["x"], got["y"]
    assert torch.allclose(got["xm"], lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[perm], atol=1e-6)
    logp = torch.log_softmax(got["pred"].double(), 1)
    rows = torch.arange(24)
    hand = (lam.double() * -logp[rows, y] + (1 - lam.double()) * -logp[rows, y[perm]]).mean()
    assert math.isclose(float(got["loss"]), float(hand), rel_tol=1e-5)
    # the learner's own loss is back after the fit, and validation used it unmixed
    assert isinstance(learn.loss_func, CrossEntropyLoss)
    with pytest.raises(ValueError, match="alpha"):
        MixUp(alpha=0)


def test_label_smoothing_by_hand():
    learn = vision_learner(dls_of(), small_arch, label_smoothing=0.1, progress=False, **SMALL)
    pred = torch.randn(5, 2, dtype=torch.float64)
    targ = torch.tensor([0, 1, 1, 0, 1])
    logp = torch.log_softmax(pred, 1)
    hand = (0.9 * -logp[torch.arange(5), targ] + 0.1 * -logp.mean(1)).mean()
    assert math.isclose(float(learn.loss_func(pred, targ)), float(hand), rel_tol=1e-9)


def test_tta_averages_plain_and_flipped_predictions():
    torch.manual_seed(0)
    dls = dls_of()
    learn = vision_learner(dls, small_arch, progress=False, **SMALL)
    learn.fit(1, 1e-3)
    x, y = dls.valid.tensors
    learn.model.eval()
    with torch.no_grad():
        plain = torch.softmax(learn.model(x), 1)
        flipped = torch.softmax(learn.model(x.flip(-1)), 1)
    preds, targs = learn.tta()
    assert torch.equal(targs, y)
    assert torch.allclose(preds, (plain + flipped) / 2, atol=1e-5)
    assert not torch.allclose(plain, flipped, atol=1e-3)  # the flip did change something
    preds3, _ = learn.tta(tfms=[hflip, lambda t: t.flip(-2)], beta=0.25)
    with torch.no_grad():
        vflip = torch.softmax(learn.model(x.flip(-2)), 1)
    assert torch.allclose(preds3, 0.25 * plain + 0.75 * (flipped + vflip) / 2, atol=1e-5)
    preds_w, _ = learn.tta(tfms=[hflip, lambda t: t.flip(-2)], beta=0.25, weights=[3, 1])
    assert torch.allclose(preds_w, 0.25 * plain + 0.75 * (3 * flipped + vflip) / 4, atol=1e-5)
    with pytest.raises(ValueError, match="beta"):
        learn.tta(beta=2)
    with pytest.raises(ValueError, match="one non-negative weight per transform"):
        learn.tta(weights=[1, 1])


def test_channels_last_and_bf16_mixed_precision_train():
    torch.manual_seed(0)
    learn = vision_learner(dls_of(), small_arch, progress=False, **SMALL)
    x = dls_of().valid.tensors[0]
    learn.model.eval()
    with torch.no_grad():
        ref = learn.model(x)
        out = learn.model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, out, atol=1e-4)
    seen = {}

    class Spy(Callback):
        order = 50

        def after_pred(self):
            seen["cl"] = self.learner.xb[0].is_contiguous(memory_format=torch.channels_last)
            seen["dtype"] = self.learner.pred.dtype

    learn.fit(1, 1e-3, cbs=[ChannelsLast(), MixedPrecision(), Spy()])
    assert seen["cl"] and seen["dtype"] == torch.bfloat16
    assert learn.model[0][0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert all(math.isfinite(r["train_loss"]) for r in learn.recorder.log)


def test_progressive_resizing_and_export(tmp_path):
    from deepfit import load_learner
    from deepfit.vision import ImageDataLoaders
    x, y = stripes(64, size=16)
    u8 = ((x.clamp(-1, 2) + 1) / 3 * 255).round().to(torch.uint8)
    dls = ImageDataLoaders.from_arrays(u8, y.numpy(), valid_pct=0.25, seed=0, bs=16, size=8)
    learn = vision_learner(dls, "simple_cnn", progress=False, path=tmp_path, **SMALL)
    sizes = []

    class Spy(Callback):
        def before_batch(self):
            sizes.append(tuple(self.learner.xb[0].shape[-2:]))

    progressive_resize(learn, sizes=(8, 16), epochs=(1, 1), lr=1e-3, cbs=[Spy()])
    assert learn.dls.size == (16, 16)
    assert (8, 8) in sizes and sizes[-1] == (16, 16)
    with pytest.raises(ValueError, match="epochs"):
        progressive_resize(learn, sizes=(8, 16), epochs=(1,))
    path = learn.export(tmp_path / "m.safetensors")
    loaded = load_learner(path)
    assert isinstance(loaded.model, ImageClassifier)
    assert isinstance(loaded, VisionLearner)  # so tta() and interpret() work after loading
    p1 = learn.get_preds()[0]
    p2 = loaded.get_preds(learn.dls.valid)[0]
    assert torch.allclose(p1, p2, atol=1e-5)


def test_plain_model_in_a_vision_learner_and_bad_arch():
    dls = dls_of()
    learn = VisionLearner(dls, resnet20(n_out=2), loss_func=CrossEntropyLoss(), progress=False)
    assert learn.tta()[0].shape == (24, 2)
    learn = vision_learner(dls, lambda n_in: small_arch(n_in), progress=False, **SMALL)
    with pytest.raises(ValueError, match="ARCHS"):
        learn.model.get_config()


@pytest.mark.slow
def test_folder_example_runs_end_to_end(tmp_path):
    import os
    import subprocess
    import sys
    from conftest import REPO
    env = dict(os.environ, DEEPFIT_OUT=str(tmp_path), MPLBACKEND="Agg", OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, str(REPO / "examples" / "vision_folder.py"), "--n", "8", "--epochs", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "with test-time augmentation" in res.stdout and "predicted" in res.stdout
    assert {"batch.png", "confusion.png", "top_losses.png", "shapes.safetensors"} <= {p.name for p in tmp_path.iterdir()}
