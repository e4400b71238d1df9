"""Feature losses and style transfer: Gram matrix and losses against hand computations, FeatureExtractor
against running the module by hand, VGG's torchvision layout, RandomFeatures, L-BFGS lowering both
losses, FeatureLoss training a tiny Learner, and `deepfit style` (tiny images, a few steps)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from deepfit import Learner
from deepfit.cli import main
from deepfit.data.core import DataLoaders
from deepfit.vision import (FeatureExtractor, FeatureLoss, RandomFeatures, StyleTransferError, get_extractor,
                            gram_matrix, style_transfer)
from deepfit.vision.decode import ImageDecodeError
from deepfit.vision.models.vgg import VGG, VGGWeightsNotFound, load_vgg, vgg16, vgg19, vgg_from_file
from deepfit.vision.style_transfer import image_size, load_image

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- Gram matrix and losses --------------------------------------------------------------------------
def test_gram_matrix_by_hand():
    # two channels over 2x2 positions: F = [[1, 2, 3, 4], [0, 1, 0, -1]]
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, -1.0]]]], dtype=torch.float64)
    # F F^T = [[1+4+9+16, 0+2+0-4], [-2, 0+1+0+1]] = [[30, -2], [-2, 2]], divided by P = 4 positions
    expected = torch.tensor([[7.5, -0.5], [-0.5, 0.5]], dtype=torch.float64)
    g = gram_matrix(x)
    assert g.shape == (1, 2, 2) and g.dtype == torch.float64
    torch.testing.assert_close(g[0], expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(gram_matrix(x[0]), expected, rtol=0, atol=1e-15)  # (C, H, W) -> (C, C)
    # a batch: each image its own Gram matrix
    y = torch.randn(3, 4, 5, 6, dtype=torch.float64)
    ref = torch.stack([yi.reshape(4, -1) @ yi.reshape(4, -1).T / 30 for yi in y])
    torch.testing.assert_close(gram_matrix(y), ref)
    with pytest.raises(ValueError, match="feature maps"):
        gram_matrix(torch.ones(3))


class _OneByOne(nn.Module):
    """A fixed 1x1 convolution W = [[1, 0], [1, 1]] (float64), so features are easy to compute by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1, bias=False).double()
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]).view(2, 2, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_content_style_and_pixel_losses_by_hand():
    # pred: channel 0 = [1, 2], channel 1 = [0, 1]; target: [0, 1] and [1, 1] (1x2 images)
    pred = torch.tensor([[[[1.0, 2.0]], [[0.0, 1.0]]]], dtype=torch.float64)
    targ = torch.tensor([[[[0.0, 1.0]], [[1.0, 1.0]]]], dtype=torch.float64)
    # features W x: pred -> [1, 2], [1, 3]; target -> [0, 1], [1, 2]
    # content MSE: differences [1, 1], [0, 1] -> (1 + 1 + 0 + 1) / 4 = 0.75
    # Gram (P = 2): pred [[2.5, 3.5], [3.5, 5]], target [[0.5, 1], [1, 2.5]]; differences 2, 2.5, 2.5, 2.5
    #   -> (4 + 3 * 6.25) / 4 = 5.6875
    # pixel MSE: differences [1, 1], [-1, 0] -> 3 / 4 = 0.75
    loss = FeatureLoss(_OneByOne(), content_layers={"conv": 2.0}, style_layers=["conv"], content_weight=1.0,
                       style_weight=0.5, pixel_weight=3.0, normalize=None)
    total = loss(pred, targ)
    assert total.item() == pytest.approx(2.0 * 0.75 + 0.5 * 5.6875 + 3.0 * 0.75, abs=1e-12)
    assert loss.last["content"].item() == pytest.approx(1.5, abs=1e-12)  # layer weight 2 * 0.75
    assert loss.last["style"].item() == pytest.approx(5.6875, abs=1e-12)
    assert loss.last["pixel"].item() == pytest.approx(0.75, abs=1e-12)
    # Gatys et al.'s E_l = sum((G - A)^2) / (4 N^2 M^2) with unnormalised G = F F^T: N = 2 channels, M = 2
    # positions: G - A = 2 * [[2, 2.5], [2.5, 2.5]] -> 4 * 22.75 / 64; our Gram MSE is 4 E_l
    assert 4 * (4 * 22.75 / 64) == pytest.approx(5.6875)
    # the gradient reaches the prediction, never the frozen network
    pred.requires_grad_(True)
    loss(pred, targ).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.extractor.parameters())


def test_feature_loss_bad_input():
    loss = FeatureLoss("random", content_layers=["conv1_1"])
    with pytest.raises(ValueError, match=r"shape \(1, 3, 8, 8\).*\(1, 3, 8, 9\)"):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(ValueError, match="style_weight"):
        FeatureLoss("random", style_weight=-1.0)
    with pytest.raises(ValueError, match="no layer 'conv9_9'"):
        FeatureLoss(_OneByOne(), content_layers=["conv9_9"])
    with pytest.raises(ValueError, match="Unknown extractor 'alexnet'"):
        FeatureLoss("alexnet")


# ---- FeatureExtractor ----------------------------------------------------------------------------------
class _Exploding(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise AssertionError("the forward pass should have stopped before this layer")


def test_feature_extractor_matches_running_the_module_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 5, 3, stride=2),
                        nn.BatchNorm2d(5), nn.ReLU(), _Exploding())
    net[3].running_mean.normal_()  # eval-mode batch norm uses these, training mode would not
    x = torch.rand(2, 3, 9, 9)
    ext = FeatureExtractor(net, ["0", "3", "2"])
    feats = ext(x)
    assert list(feats) == ["0", "3", "2"]
    with torch.no_grad():
        h0 = net[0](x)  # before the in-place ReLU: the hook keeps a copy
        h2 = net[2](torch.relu(h0))
        h3 = (h2 - net[3].running_mean.view(1, -1, 1, 1)) / torch.sqrt(net[3].running_var.view(1, -1, 1, 1) + 1e-5)
        h3 = h3 * net[3].weight.view(1, -1, 1, 1) + net[3].bias.view(1, -1, 1, 1)
    torch.testing.assert_close(feats["0"], h0)
    torch.testing.assert_close(feats["2"], h2)
    torch.testing.assert_close(feats["3"], h3)
    # frozen and kept in eval mode; gradients flow to the input
    ext.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    xg = x.clone().requires_grad_(True)
    ext(xg)["3"].sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    # the module used on its own is not affected by the hooks (the last layer raises when it runs)
    with pytest.raises(AssertionError, match="should have stopped"):
        net(x)
    # a deep copy records its own copy of the module
    import copy
    twin = copy.deepcopy(ext)
    torch.testing.assert_close(twin(x)["3"], feats["3"])
    with pytest.raises(ValueError, match=r"no layer 'conv1_1'.*0, 1, 2"):
        FeatureExtractor(net, ["conv1_1"])


def test_feature_extractor_normalizes_with_imagenet_stats():
    ext = FeatureExtractor(nn.Sequential(nn.Identity()), ["0"], normalize="imagenet")
    x = torch.rand(1, 3, 4, 4)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(ext(x)["0"], (x - mean) / std)


# ---- VGG ------------------------------------------------------------------------------------------------
def _vgg16_expected_shapes() -> dict[str, tuple[int, ...]]:
    # torchvision's vgg16: convolutions at these indices of `features`, then classifier.0 / .3 / .6
    convs = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
             (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]
    shapes: dict[str, tuple[int, ...]] = {}
    for i, ni, nf in convs:
        shapes[f"features.{i}.weight"] = (nf, ni, 3, 3)
        shapes[f"features.{i}.bias"] = (nf,)
    for i, ni, nf in ((0, 25088, 4096), (3, 4096, 4096), (6, 4096, 1000)):
        shapes[f"classifier.{i}.weight"] = (nf, ni)
        shapes[f"classifier.{i}.bias"] = (nf,)
    return shapes


def test_vgg16_has_torchvisions_state_dict_layout():
    shapes = _vgg16_expected_shapes()
    with torch.device("meta"):
        model = vgg16()
        state = {k: torch.empty(s) for k, s in shapes.items()}
    assert list(model.state_dict()) == list(shapes)
    model.load_state_dict(state, strict=True, assign=True)  # every key, every shape
    assert sum(p.numel() for p in model.parameters()) == 138_357_544
    # the papers' layer names point at the right modules
    assert model.layer_names["conv1_1"] == "features.0" and model.layer_names["conv4_2"] == "features.19"
    assert model.layer_names["conv5_1"] == "features.24" and model.layer_names["pool5"] == "features.30"
    with torch.device("meta"):
        m19 = vgg19()
    assert m19.layer_names["conv4_2"] == "features.21" and m19.layer_names["conv5_1"] == "features.28"
    assert sum(p.numel() for p in m19.parameters()) == 143_667_240


def _small_vgg_file(path: Path, arch: str = "vgg11", features_only: bool = True) -> dict[str, torch.Tensor]:
    # a VGG11 weight file with only `features.*` (9.2M parameters; enough for feature losses)
    torch.manual_seed(1)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in VGG(arch).state_dict().items()}
    state = {k: torch.randn(s) * 0.05 for k, s in shapes.items() if k.startswith("features.") or not features_only}
    torch.save(state, path)
    return state


def test_load_vgg_from_a_file_and_from_the_hub_cache(tmp_path, monkeypatch):
    f = tmp_path / "mine.pth"
    state = _small_vgg_file(f)
    net = vgg_from_file(f)  # VGG11 recognised from its 8 convolutions
    assert net.config["config"] == "vgg11"
    for k, v in state.items():
        torch.testing.assert_close(net.state_dict()[k], v)
    assert not any(p.is_meta for p in net.parameters())  # the classifier was initialised, not left on meta
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(VGGWeightsNotFound, match=r"vgg11-\*\.pth.*never downloads"):
        load_vgg("vgg11")
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    f.rename(tmp_path / "torch" / "hub" / "checkpoints" / "vgg11-8a719046.pth")
    net2 = load_vgg("vgg11", features_only=True)
    torch.testing.assert_close(net2.features[0].weight, state["features.0.weight"])
    assert isinstance(net2.classifier, nn.Identity)
    with pytest.raises(ValueError, match="missing features.1.weight"):
        load_vgg("vgg11", tmp_path / "torch" / "hub" / "checkpoints" / "vgg11-8a719046.pth", batch_norm=True)
    # an extractor on the file: the papers' names, ImageNet normalisation
    ext = get_extractor(tmp_path / "torch" / "hub" / "checkpoints" / "vgg11-8a719046.pth", ["conv1_1", "conv4_2"])
    x = torch.rand(1, 3, 32, 32)
    feats = ext(x)
    xn = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    torch.testing.assert_close(feats["conv1_1"], net2.features[0](xn))
    assert feats["conv4_2"].shape == (1, 512, 4, 4)
    # the same tensors in a safetensors file
    from safetensors.torch import save_file
    save_file(state, str(tmp_path / "vgg11.safetensors"))
    net3 = load_vgg("vgg11", tmp_path / "vgg11.safetensors", features_only=True)
    torch.testing.assert_close(net3.features[-3].weight, state["features.18.weight"])
    bad = tmp_path / "other.pth"
    torch.save({"weight": torch.ones(2)}, bad)
    with pytest.raises(ValueError, match="does not hold VGG weights"):
        vgg_from_file(bad)


# ---- RandomFeatures -------------------------------------------------------------------------------------
def test_random_features_are_deterministic_by_seed():
    x = torch.rand(1, 3, 32, 48)
    a, b, c = RandomFeatures(seed=3), RandomFeatures(seed=3), RandomFeatures(seed=4)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not torch.equal(a.level1.conv.weight, c.level1.conv.weight)
    fa, fb = a(x), b(x)
    assert [f.shape for f in fa] == [(1, 128, 32 // 2 ** i, 48 // 2 ** i) for i in range(5)]
    assert all(torch.equal(p, q) for p, q in zip(fa, fb))
    assert all((f >= 0).all() for f in fa)  # ReLU maps
    # VGG's names reach the levels of the same resolution; tiny images still work
    ext = FeatureExtractor(RandomFeatures(levels=5), ["conv1_1", "conv4_2", "conv5_1"])
    out = ext(torch.rand(1, 3, 8, 8))
    assert out["conv4_2"].shape == (1, 128, 1, 1) and out["conv5_1"].shape == (1, 128, 1, 1)
    with pytest.raises(ValueError, match="odd"):
        RandomFeatures(kernel_size=4)


# ---- style transfer -------------------------------------------------------------------------------------
def _content_and_style(h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    content = np.zeros((h, w, 3), np.uint8)
    content[..., 0] = np.clip(xx * 8, 0, 255)
    content[h // 4: 3 * h // 4, w // 4: 3 * w // 4, 2] = 200
    style = ((np.sin(xx / 1.5 + yy / 3.0)[..., None] * np.array([1.0, 0.3, 0.8]) + 1) * 120).astype(np.uint8)
    return content, style


def test_style_transfer_lowers_both_losses():
    content, style = _content_and_style()
    # from white noise (the paper's start), content compared at conv2_1 (level 2 of the random filters: the
    # default conv4_2 is 3x4 pixels on this 24x32 image)
    res = style_transfer(content, style, steps=15, init="noise", content_layers=["conv2_1"], content_weight=3.0,
                         style_weight=1.0, seed=0, device="cpu")
    first, last = res.history[0], res.history[-1]
    assert last["content"] < 0.85 * first["content"]
    assert last["style"] < 0.5 * first["style"]
    assert last["loss"] == pytest.approx(3 * last["content"] + last["style"], rel=1e-5)
    assert res.iterations == 15
    assert res.tensor.shape == (3, 24, 32) and torch.isfinite(res.tensor).all()
    assert res.tensor.min() >= 0 and res.tensor.max() <= 1
    assert res.image.size == (32, 24) and res.image.mode == "RGB"
    # from the content (the default start), the style loss falls and the content loss stays small
    res2 = style_transfer(content, style, steps=5, device="cpu")
    assert res2.history[0]["content"] == 0.0 and res2.history[-1]["style"] < 0.5 * res2.history[0]["style"]


def test_style_transfer_size_and_bad_input(tmp_path):
    content, style = _content_and_style()
    assert image_size((24, 32), 16) == (12, 16) and image_size((24, 32), (10, 20)) == (10, 20)
    assert image_size((24, 32), None) == (24, 32)
    t = load_image(content, size=16)
    assert t.shape == (1, 3, 12, 16) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    Image.fromarray(content).save(tmp_path / "c.png")
    torch.testing.assert_close(load_image(tmp_path / "c.png"), load_image(content))
    (tmp_path / "notes.jpg").write_text("not a picture")
    with pytest.raises(ImageDecodeError, match=r"style image .*notes\.jpg.*not an image"):
        style_transfer(content, tmp_path / "notes.jpg", steps=1)
    with pytest.raises(ImageDecodeError, match=r"no such file"):
        style_transfer(tmp_path / "missing.png", style, steps=1)
    with pytest.raises(ValueError, match="steps"):
        style_transfer(content, style, steps=0)
    with pytest.raises(StyleTransferError, match="style_weight") as e:
        style_transfer(content, style, steps=2, style_weight=1e308, device="cpu")
    assert "--style-weight" in e.value.cli_message()


# ---- FeatureLoss as a Learner loss -----------------------------------------------------------------------
def test_feature_loss_trains_a_tiny_image_to_image_learner():
    # "super-resolution" of smooth images: the input is blurred (2x down, 2x up); a tiny conv net learns
    # to sharpen it under a perceptual loss (content + style from random filters, plus pixels)
    g = torch.Generator().manual_seed(0)
    base = torch.rand(48, 3, 4, 4, generator=g)
    y = torch.nn.functional.interpolate(base, size=16, mode="bicubic", align_corners=False).clamp(0, 1)
    x = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(y, 2), size=16, mode="nearest")
    dls = DataLoaders.from_tensors(x[:40], y[:40], x[40:], y[40:], bs=8, device="cpu", seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding=1))
    loss = FeatureLoss(RandomFeatures(n_filters=16, levels=2), content_layers=["conv1_1", "conv2_1"],
                       style_layers=["conv1_1"], style_weight=10.0, pixel_weight=1.0)
    learn = Learner(dls, model, loss_func=loss, lr=3e-3, progress=False)
    before = learn.validate()["valid_loss"]
    learn.fit(4)
    after = learn.validate()["valid_loss"]
    assert after < 0.5 * before
    assert not any(p.requires_grad for p in loss.extractor.parameters())
    assert all(torch.isfinite(v) for v in loss.last.values())


# ---- deepfit style ---------------------------------------------------------------------------------------
def _write_images(tmp_path: Path) -> tuple[Path, Path]:
    content, style = _content_and_style(30, 40)
    Image.fromarray(content).save(tmp_path / "content.jpg")
    Image.fromarray(style[:20, :20]).save(tmp_path / "style.png")
    return tmp_path / "content.jpg", tmp_path / "style.png"


def _run(capsys, *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_cli_style_writes_a_png_of_the_content_size(tmp_path, capsys):
    content, style = _write_images(tmp_path)
    out = tmp_path / "result.png"
    code, stdout, err = _run(capsys, "style", content, style, "--out", out, "--steps", "3", "--device", "cpu")
    assert code == 0, err
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (40, 30) and img.mode == "RGB"
    assert f"wrote {out}" in stdout and "style loss" in err
    assert not list(tmp_path.glob("*.tmp*"))
    code, _, err = _run(capsys, "style", content, style, "--out", tmp_path / "small.png", "--size", "20",
                        "--steps", "2", "-q", "--device", "cpu")
    assert code == 0, err
    with Image.open(tmp_path / "small.png") as img:
        assert img.size == (20, 15)
    # a photo stored sideways (EXIF orientation 6: rotate 90 degrees): the result is upright
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(content).save(tmp_path / "sideways.jpg", exif=exif)
    code, stdout, err = _run(capsys, "style", tmp_path / "sideways.jpg", style, "--out", tmp_path / "up.png",
                             "--steps", "1", "-q", "--device", "cpu")
    assert code == 0, err
    with Image.open(tmp_path / "up.png") as img:
        assert img.size == (30, 40)
    assert "(30x40)" in stdout


#: Python call syntax that must not reach a command-line user (as in test_cli_messages.py).
PYTHON = re.compile(r"\w\((?!s\))|learn\.|pd\.|df\[|dls\.|np\.|torch\.|`|\w=\w|load_learner|register_model")


def test_cli_style_bad_input_exit_2(tmp_path, capsys):
    content, style = _write_images(tmp_path)
    errors = []

    def run(*argv: object) -> tuple[int, str, str]:  # every message is checked for Python call syntax below
        res = _run(capsys, *argv)
        errors.append(res[2])
        return res

    notes = tmp_path / "notes.jpg"
    notes.write_text("this is text, not an image")
    out = tmp_path / "r.png"
    code, _, err = run("style", content, notes, "--out", out)
    assert code == 2 and f"style image {notes}" in err and "not an image" in err and "STYLE" in err
    assert "Traceback" not in err and not out.exists()
    code, _, err = run("style", notes, style, "--out", out)
    assert code == 2 and f"content image {notes}" in err and "CONTENT" in err
    code, _, err = run("style", content, tmp_path / "nope.png", "--out", out)
    assert code == 2 and "style image not found" in err and "nope.png" in err
    code, _, err = run("style", content, style, "--out", tmp_path / "r.jpg")
    assert code == 2 and "--out" in err and ".png" in err
    code, _, err = run("style", content, style, "--out", out, "--extractor", "alexnet")
    assert code == 2 and "--extractor 'alexnet'" in err and "--extractor random" in err
    code, _, err = run("style", content, style, "--out", out, "--extractor", tmp_path / "no.pth")
    assert code == 2 and "no.pth" in err
    code, _, err = run("style", content, style, "--out", out, "--style-weight", "1e308", "--steps", "2",
                        "--device", "cpu")
    assert code == 2 and "--style-weight" in err and "style_weight" not in err
    code, _, err = run("style", content, style, "--out", out, "--size", "3")
    assert code == 2 and "--size" in err
    torch.save({"weight": torch.ones(2)}, tmp_path / "other.pth")
    code, _, err = run("style", content, style, "--out", out, "--extractor", tmp_path / "other.pth")
    assert code == 2 and "other.pth does not hold VGG weights" in err
    (tmp_path / "junk.pth").write_bytes(b"junk" * 10)
    code, _, err = run("style", content, style, "--out", out, "--extractor", tmp_path / "junk.pth")
    assert code == 2 and "junk.pth is not a readable weight file" in err
    assert not out.exists() and content.read_bytes()[:2] == b"\xff\xd8"  # inputs untouched
    for err in errors:
        assert "deepfit: error:" in err and "Traceback" not in err, err
        assert not PYTHON.search(err.split("deepfit: error:", 1)[1]), err


def test_cli_style_missing_vgg_weights_names_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    content, style = _write_images(tmp_path)
    code, _, err = _run(capsys, "style", content, style, "--out", tmp_path / "r.png", "--extractor", "vgg19")
    assert code == 2 and "vgg19-*.pth" in err and "--extractor path/to/vgg19.pth" in err
    assert "weights=" not in err


def test_example_script_runs(tmp_path):
    import os
    import subprocess
    import sys
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, DEEPFIT_OUT=str(tmp_path), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(repo / "examples" / "style_transfer.py"), "--size", "32", "--steps", "3"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "style loss" in res.stdout
    with Image.open(tmp_path / "style_result.png") as img:
        assert img.size == (32, 24)
    assert (tmp_path / "style_strip.png").is_file()
