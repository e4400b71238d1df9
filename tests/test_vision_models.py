"""Vision models: parameter counts against the papers / torchvision, torchvision's state-dict names,
shapes, and the defining operations (option-A shortcut, dense concatenation, residual layers)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from deepfit.vision.models import (ARCHS, CifarResNet, DenseNet, FastNet, SimpleCNN, WideResNet, darknet, densenet_bc,
                                   resnet18, resnet20, resnet34, resnet50, resnet56, wrn)
from deepfit.vision.models.densenet import DenseLayer
from deepfit.vision.models.darknet import ResLayer
from deepfit.vision.models.resnet import PadShortcut


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("fn,expected", [(resnet18, 11_689_512), (resnet34, 21_797_672), (resnet50, 25_557_032)])
def test_imagenet_resnet_counts_match_torchvision(fn, expected):
    assert n_params(fn(n_out=1000)) == expected


def test_paper_counts():
    # He et al. 2016 table 6: ResNet20 0.27M, ResNet56 0.85M (option A shortcuts)
    assert round(n_params(resnet20()) / 1e6, 2) == 0.27
    assert round(n_params(resnet56()) / 1e6, 2) == 0.85
    # Huang et al. 2017 table 2: DenseNet-BC (L=100, k=12) 0.8M; DenseNet (L=40, k=12) 1.0M
    assert round(n_params(densenet_bc(100, 12)) / 1e6, 1) == 0.8
    assert round(n_params(DenseNet(40, 12, bottleneck=False, compression=1.0)) / 1e6, 1) == 1.0
    # Zagoruyko & Komodakis 2016 table 3: WRN-40-4 8.9M, WRN-16-8 11.0M
    assert round(n_params(wrn(40, 4)) / 1e6, 1) == 8.9
    assert round(n_params(wrn(16, 8)) / 1e6, 1) == 11.0


_BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def torchvision_keys(blocks: list[int], bottleneck: bool) -> list[str]:
    """torchvision's ResNet state-dict names, written out from its documented layout."""
    keys = ["conv1.weight"] + [f"bn1.{s}" for s in _BN]
    for stage, n in enumerate(blocks, 1):
        for b in range(n):
            p = f"layer{stage}.{b}."
            for c in range(1, (3 if bottleneck else 2) + 1):
                keys += [f"{p}conv{c}.weight"] + [f"{p}bn{c}.{s}" for s in _BN]
            if b == 0 and (stage > 1 or bottleneck):
                keys += [f"{p}downsample.0.weight"] + [f"{p}downsample.1.{s}" for s in _BN]
    return keys + ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("fn,blocks,bottleneck", [(resnet18, [2, 2, 2, 2], False), (resnet34, [3, 4, 6, 3], False),
                                                  (resnet50, [3, 4, 6, 3], True)])
def test_resnet_state_dict_names_are_torchvision(fn, blocks, bottleneck):
    sd = fn().state_dict()
    assert sorted(sd) == sorted(torchvision_keys(blocks, bottleneck))
    # a few shapes of torchvision's files
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["fc.weight"].shape == (1000, 2048 if bottleneck else 512)
    if bottleneck:
        assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
        assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    else:
        assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
        assert "layer1.0.downsample.0.weight" not in sd


SMALL = {"simple_cnn": lambda: SimpleCNN(5, 1), "resnet18": lambda: resnet18(5, 1), "resnet20": lambda: resnet20(5, 1),
         "wrn": lambda: wrn(10, 1, 5, 1), "densenet_bc": lambda: densenet_bc(16, 4, 5, 1),
         "darknet": lambda: darknet((1, 1), 5, nf=8, n_in=1), "fastnet": lambda: FastNet((8, 8, 16, 16), 5, 1)}


def test_every_arch_gives_class_scores_and_has_body_first():
    assert set(SMALL) | {"resnet34", "resnet50", "resnet56"} == set(ARCHS)
    for name, make in SMALL.items():
        m = make().eval()
        with torch.no_grad():
            out = m(torch.randn(2, 1, 32, 32))
        assert out.shape == (2, 5), name
        # children in forward order: running them one after another gives the same output
        x = torch.randn(2, 1, 32, 32)
        with torch.no_grad():
            seq = x
            for c in m.children():
                seq = c(seq)
            assert torch.allclose(seq, m(x), atol=1e-5), name
        # config round trip (export rebuilds models from it)
        clone = type(m)(**m.get_config())
        assert n_params(clone) == n_params(m), name


def test_option_a_shortcut_subsamples_and_zero_pads():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 2, 4, 4)
    out = PadShortcut(2, 5, 2)(x)
    assert out.shape == (2, 5, 2, 2)
    assert torch.equal(out[:, :2], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 2:]) == 0
    assert sum(isinstance(m, PadShortcut) for m in resnet20().modules()) == 2
    assert sum(isinstance(m, PadShortcut) for m in CifarResNet(20, shortcut="B").modules()) == 0


def test_dense_layer_concatenates_its_input():
    layer = DenseLayer(8, growth=4).eval()
    x = torch.randn(2, 8, 5, 5)
    out = layer(x)
    assert out.shape == (2, 12, 5, 5)
    assert torch.equal(out[:, :8], x)  # the input is kept as it is; 4 new channels are appended
    # DenseNet-BC (L=100, k=12): 16 layers per block, transitions halve the channels
    m = densenet_bc(100, 12)
    assert sum(isinstance(mod, DenseLayer) for mod in m.modules()) == 48
    assert m[-1].in_features == 342  # 24 -> 216 -> 108 -> 300 -> 150 -> 342


def test_darknet_res_layer_adds_its_input():
    layer = ResLayer(8)
    for p in layer.conv2[1].parameters():
        nn.init.zeros_(p)  # zero the last BN: the branch gives 0 and the layer is the identity
    x = torch.randn(2, 8, 4, 4)
    assert torch.allclose(layer.eval()(x), x)


def test_bad_configs_name_the_argument():
    with pytest.raises(ValueError, match="depth"):
        CifarResNet(21)
    with pytest.raises(ValueError, match="depth"):
        WideResNet(17)
    with pytest.raises(ValueError, match="depth"):
        DenseNet(99)
    with pytest.raises(ValueError, match="widths"):
        FastNet((8, 16))
    with pytest.raises(ValueError, match="channels"):
        SimpleCNN(channels=())


def test_small_models_learn_a_synthetic_task():
    torch.manual_seed(0)
    x = torch.randn(32, 1, 16, 16)
    y = (x[:, :, :, :8].mean((1, 2, 3)) > x[:, :, :, 8:].mean((1, 2, 3))).long()  # brighter on the left?
    for m in (SimpleCNN(2, 1, (8, 16)), CifarResNet(8, 2, 1, width=8), darknet((1,), 2, nf=8, n_in=1),
              FastNet((8, 8, 16, 16), 2, 1), densenet_bc(10, 4, 2, 1)):
        opt = torch.optim.Adam(m.parameters(), 1e-2)
        losses = []
        for _ in range(8):
            loss = nn.functional.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0], type(m).__name__
