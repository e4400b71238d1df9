"""The CIFAR-10 speed-run recipe: AirbenchNet and its parts, Lookahead, AlternatingFlip, the schedule,
the optimiser groups and the test-time augmentation, each against a hand computation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepfit import DataLoader, DataLoaders, Learner, Lookahead, SGD, load_learner
from deepfit.callbacks import Callback
from deepfit.vision import (AlternatingFlip, ImageDataLoaders, RandomCrop, fit_speedrun, speedrun_learner,
                            speedrun_tta, speedrun_tta_tfms, translate)
from deepfit.vision.models import AirbenchNet
from deepfit.vision.models.airbench import PatchWhitening, ShiftBatchNorm, patch_whitening_filters
from deepfit.vision.speedrun import BASE_LR, BASE_WD, bias_splitter, speedrun_schedule


def correlated_images(n: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 1, 9, 9, generator=g)
    x = torch.cat([base, 0.5 * base + 0.3 * torch.randn(n, 1, 9, 9, generator=g),
                   torch.randn(n, 1, 9, 9, generator=g)], 1)
    return F.avg_pool2d(x, 2, 1)  # neighbouring pixels correlated too


def test_patch_whitening_makes_identity_covariance() -> None:
    x = correlated_images()
    w = patch_whitening_filters(x, eps=0.0)
    assert w.shape == (24, 3, 2, 2)
    assert torch.allclose(w[12:], -w[:12])
    z = F.conv2d(x.double(), w[:12].double()).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = z.T @ z / len(z)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=1e-4)
    layer = PatchWhitening(3)
    layer.init_whitening(x, eps=0.0)
    assert torch.equal(layer.weight, w)
    assert "weight" in dict(layer.named_buffers()) and [n for n, _ in layer.named_parameters()] == ["bias"]
    with pytest.raises(ValueError, match="3 channels"):
        layer.init_whitening(x[:, :1])


def test_shift_batchnorm_is_batchnorm_with_unit_scale() -> None:
    torch.manual_seed(0)
    ours, ref = ShiftBatchNorm(5, momentum=0.4, eps=1e-5), nn.BatchNorm2d(5, momentum=0.4, eps=1e-5)
    with torch.no_grad():
        ours.bias.normal_()
        ref.bias.copy_(ours.bias)
    for _ in range(3):
        x = torch.randn(8, 5, 4, 4) * 3 + 1
        assert torch.allclose(ours(x), ref(x), atol=1e-5)
    assert torch.allclose(ours.running_mean, ref.running_mean) and torch.allclose(ours.running_var, ref.running_var)
    ours.eval(), ref.eval()
    x = torch.randn(2, 5, 4, 4)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)
    assert [n for n, _ in ours.named_parameters()] == ["bias"]


def test_airbench_net_shape_params_and_identity_init() -> None:
    net = AirbenchNet((64, 256, 256))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = 24 * 64 * 9 + 64 * 64 * 9 + 64 * 256 * 9 + 3 * 256 * 256 * 9
    assert sum(p.numel() for p in net.parameters()) == convs + 256 * 10 + 24 + 2 * 64 + 4 * 256
    first = net[2][0].weight  # 24 -> 64
    ident = torch.zeros(24, 24, 3, 3)
    ident[torch.arange(24), torch.arange(24), 1, 1] = 1
    assert torch.equal(first[:24], ident) and first[24:].abs().sum() > 0
    with pytest.raises(ValueError, match="3 positive"):
        AirbenchNet((64, 256))


def test_batch_indices_name_the_rows_of_the_batch() -> None:
    x = torch.arange(20.0)[:, None]
    dl = DataLoader(x, torch.arange(20), bs=6, shuffle=True, seed=3)
    with pytest.raises(RuntimeError, match="No batch"):
        dl.batch_indices
    for xb, yb in dl:
        assert torch.equal(yb, dl.batch_indices)
    plain = DataLoader(x, torch.arange(20), bs=6)
    for xb, yb in plain:
        assert torch.equal(yb, plain.batch_indices)


def test_translate_shifts_by_whole_pixels_with_reflection() -> None:
    x = torch.arange(2 * 3 * 5 * 5.0).reshape(2, 3, 5, 5)
    t = translate(x, 1, 2)  # one down, two right
    assert torch.equal(t[..., 1:, 2:], x[..., :-1, :-2])
    assert torch.equal(t[..., 0, 2:], x[..., 1, :-2])  # row -1 reflects to row 1
    assert torch.equal(translate(x, -1, -1)[..., :-1, :-1], x[..., 1:, 1:])
    assert torch.equal(translate(x, 0, 0), x)


class _Const(nn.Module):
    """One weight; the loss's gradient with respect to it is always 1."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x


def test_lookahead_matches_a_hand_computation() -> None:
    x = torch.ones(12, 1)
    dls = DataLoaders(DataLoader(x, torch.zeros(12, 1), bs=2), None)
    learn = Learner(dls, _Const(), loss_func=lambda p, y: p.mean(), opt_func=SGD, lr=0.1, wd=None, progress=False)
    la = Lookahead(k=2, alpha=0.9, power=2.0)
    learn.fit(2, cbs=la)  # 12 steps
    fast = slow = 0.0
    for step in range(1, 13):
        fast -= 0.1
        if step % 2 == 0:
            d = 0.9 * (step / 12) ** 2
            slow = d * slow + (1 - d) * fast
            fast = slow
    assert learn.model.w.item() == pytest.approx(slow, abs=1e-6)
    assert la.decay(6) == pytest.approx(0.9 * 0.25)
    with pytest.raises(ValueError, match="positive integer"):
        Lookahead(k=0)


def test_lookahead_ends_on_the_slow_weights_before_the_last_validation() -> None:
    x = torch.ones(6, 1)
    dls = DataLoaders(DataLoader(x, torch.zeros(6, 1), bs=2), DataLoader(x, torch.zeros(6, 1), bs=6))
    learn = Learner(dls, _Const(), loss_func=lambda p, y: p.mean(), opt_func=SGD, lr=0.1, wd=None, progress=False)
    learn.fit(1, cbs=Lookahead(k=2, alpha=1.0, power=0.0))  # slow never moves: decay 1
    assert learn.model.w.item() == 0.0
    assert learn.recorder.log[-1]["valid_loss"] == pytest.approx(0.0)


class _Spy(Callback):
    order = 50

    def __init__(self) -> None:
        self.seen: list[tuple[int, bool, torch.Tensor, torch.Tensor]] = []

    def before_batch(self) -> None:
        self.seen.append((self.learner.epoch, self.learner.training, self.learner.xb[0].clone(), self.learner.yb[0].clone()))


def test_alternating_flip_mirrors_each_image_in_every_other_epoch() -> None:
    n = 10
    x = torch.randn(n, 1, 2, 3)
    dls = DataLoaders(DataLoader(x, torch.arange(n), bs=4, shuffle=True, seed=1), DataLoader(x, torch.arange(n), bs=5))
    spy = _Spy()
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(6, n)), loss_func=nn.CrossEntropyLoss(), opt_func=SGD,
                    lr=1e-3, progress=False)
    learn.fit(3, cbs=[AlternatingFlip(seed=0), spy])
    flipped = {}
    for epoch, training, xb, yb in spy.seen:
        for img, i in zip(xb, yb.tolist()):
            if not training:
                assert torch.equal(img, x[i])
                continue
            assert torch.equal(img, x[i]) or torch.equal(img, x[i].flip(-1))
            flipped[(epoch, i)] = torch.equal(img, x[i].flip(-1)) and not torch.equal(x[i], x[i].flip(-1))
    for i in range(n):
        assert flipped[(0, i)] != flipped[(1, i)]
        assert flipped[(0, i)] == flipped[(2, i)]
    assert 0 < sum(flipped[(0, i)] for i in range(n)) < n


def test_speedrun_schedule_is_triangular() -> None:
    s = speedrun_schedule([1.0, 64.0])
    assert np.allclose(s(0.0), [0.2, 12.8])
    assert np.allclose(s(0.23), [1.0, 64.0])
    assert np.allclose(s(1.0), [0.07, 0.07 * 64])
    assert np.allclose(s(0.23 + 0.77 / 2), [(1 + 0.07) / 2, 64 * (1 + 0.07) / 2])


def small_dls(n: int = 128, bs: int = 32) -> ImageDataLoaders:
    """Images whose class is their dominant colour channel."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randint(0, 100, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
    x[torch.arange(n), y] += 150
    return ImageDataLoaders.from_arrays(x, y, valid_pct=0.25, seed=0, bs=bs, batch_tfms=[RandomCrop(padding=2)])


def test_speedrun_learner_optimiser_groups_and_training(tmp_path) -> None:
    dls = small_dls()
    learn = speedrun_learner(dls, widths=(8, 16, 16), fast=False)
    assert learn.model[0].weight.abs().sum() > 0  # whitening fitted
    learn.create_opt()
    g_w, g_b = learn.opt.param_groups
    assert all(p.ndim > 1 for p in g_w["params"][1:]) and all(p.ndim == 1 for p in g_b["params"])
    assert g_w["params"][0] is learn.model[0].bias  # the whitening bias trains at the weights' rate
    assert g_w["wd"] == pytest.approx(BASE_WD) and g_b["wd"] == pytest.approx(BASE_WD / 64)
    assert g_w["nesterov"] and g_w["mom"] == 0.85 and not g_w["decouple_wd"]
    assert learn.speedrun_lrs == pytest.approx([BASE_LR * 32 / 1024, BASE_LR * 32 / 1024 * 64])
    fit_speedrun(learn, 12, lrs=[0.3, 0.3 * 64])
    log = learn.recorder.log
    assert log[-1]["train_loss"] < 0.8 * log[0]["train_loss"]
    assert log[-1]["accuracy"] >= 0.9  # 3 classes
    probs, targs = speedrun_tta(learn)
    assert (probs.argmax(1) == targs).float().mean() >= 0.9
    learn.export(tmp_path / "m.safetensors")
    back = load_learner(tmp_path / "m.safetensors")
    xb = dls.valid.one_batch()[0]
    learn.model.eval()
    with torch.no_grad():
        assert torch.allclose(back.model(xb), learn.model(xb), atol=1e-5)


def test_speedrun_tta_weights_plain_mirror_and_shifts() -> None:
    dls = small_dls()
    learn = speedrun_learner(dls, widths=(8, 16, 16), fast=False, lookahead=False)
    learn.model.eval()
    xb, yb = next(iter(dls.valid))
    probs, _ = speedrun_tta(learn)

    def p(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return learn.model(x).softmax(1)
    flip = xb.flip(-1)
    want = (0.25 * p(xb) + 0.25 * p(flip) + 0.125 * (p(translate(xb, 1, 1)) + p(translate(flip, 1, 1))
            + p(translate(xb, -1, -1)) + p(translate(flip, -1, -1))))
    assert torch.allclose(probs[:len(xb)], want, atol=1e-5)
    assert len(speedrun_tta_tfms()) == 5  # the mirror is weighted twice, not computed twice


def test_bias_splitter_covers_every_parameter() -> None:
    net = AirbenchNet((8, 8, 8))
    w, b = bias_splitter(net)
    assert len(w) + len(b) == len(list(net.parameters()))
    assert {id(p) for p in b} == {id(m.bias) for m in net.modules() if isinstance(m, ShiftBatchNorm)}
    assert net[0].bias in w


def test_whitening_bias_trains_for_three_epochs_only() -> None:
    dls = small_dls()
    learn = speedrun_learner(dls, widths=(8, 8, 8), fast=False, lookahead=False)
    seen = []

    class Watch(Callback):
        def after_epoch(self) -> None:
            seen.append(learn.model[0].bias.detach().clone())
    fit_speedrun(learn, 5, lrs=[0.3, 0.3 * 64], cbs=Watch())
    assert not torch.equal(seen[1], seen[2])  # epoch 2 still trains it
    assert torch.equal(seen[2], seen[3]) and torch.equal(seen[3], seen[4])
    assert learn.model[0].bias.requires_grad  # given back after the fit


def test_whitening_images_are_a_random_normalised_sample() -> None:
    from deepfit.vision.speedrun import whitening_images
    x = torch.zeros(40, 3, 4, 4, dtype=torch.uint8)
    x[20:] = 200  # two classes in order, as from_folder lists them
    y = torch.tensor([0] * 20 + [1] * 20)
    dls = ImageDataLoaders.from_arrays(x, y, valid_x=x[:4], valid_y=y[:4], normalize=None, bs=8)
    w = whitening_images(dls, n=10, seed=0)
    assert w.shape == (10, 3, 4, 4)
    values = sorted(set(w[:, 0, 0, 0].tolist()))
    assert values == [0.0, pytest.approx(200 / 255)]  # both classes drawn (not the first 10), scaled to [0, 1]
    assert torch.equal(w, whitening_images(dls, n=10, seed=0))
