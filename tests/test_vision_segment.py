"""Segmentation (deepfit.vision.segment): data and mask checks, joint augmentation, loss and metrics against
hand computations and torch, U-Net hooks and ICNR, FC-DenseNet sizes, a tiny U-Net that learns, export."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from deepfit.vision import Brightness, Contrast, Flip, Perspective, RandomCrop, Rotate, Zoom, aug_transforms
from deepfit.vision.learner import create_body
from deepfit.vision.models import resnet18, resnet34, resnet50
from deepfit.vision.segment import (TIRAMISU_CONFIGS, DynamicUnet, FCDenseNet, MeanIoU, PixelAccuracy,
                                    PixelShuffleICNR, SegmentationDataError, SegmentationDataLoaders, apply_tfms_seg,
                                    child_sizes, confusion_matrix, icnr_, iou_from_confusion,
                                    median_frequency_weights, plot_class_iou, read_codes, segmentation_loss,
                                    skip_indices, unet_learner)

pytestmark = pytest.mark.usefixtures("one_thread")

CODES = ["background", "box", "disc", "void"]
VOID = 3


def shapes_pair(rng: np.random.Generator, h: int = 32, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A noisy dark background with a red box and a blue disc; the mask codes them 1 and 2, the disc's rim
    is void (3)."""
    img = rng.integers(0, 70, (h, w, 3)).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    t, l_ = rng.integers(0, h - 12), rng.integers(0, w // 2 - 10)
    img[t:t + 12, l_:l_ + 10] = (220, 40, 40)
    mask[t:t + 12, l_:l_ + 10] = 1
    cy, cx, r = rng.integers(8, h - 8), rng.integers(w // 2 + 7, w - 7), 6
    yy, xx = np.mgrid[:h, :w]
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    img[d <= r] = (40, 60, 230)
    mask[d <= r - 1] = 2
    mask[(d > r - 1) & (d <= r + 0.5)] = VOID
    return img, mask


def write_pairs(root: Path, n: int, seed: int = 0, h: int = 32, w: int = 48) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, mask = shapes_pair(rng, h, w)
        Image.fromarray(img).save(root / "images" / f"im{i:03d}.png")
        Image.fromarray(mask, mode="L").save(root / "labels" / f"im{i:03d}.png")
    return root / "images", root / "labels"


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    write_pairs(tmp_path / "train", 40, seed=0)
    write_pairs(tmp_path / "valid", 12, seed=1)
    (tmp_path / "codes.txt").write_text("\n".join(CODES) + "\n")
    return tmp_path


def load(root: Path, **kw) -> SegmentationDataLoaders:
    args = dict(codes=root / "codes.txt", void="void", valid_images=root / "valid" / "images",
                valid_masks=root / "valid" / "labels", bs=8, seed=0, device="cpu")
    args.update(kw)
    return SegmentationDataLoaders.from_folders(root / "train" / "images", root / "train" / "labels", **args)


# ---- data ----------------------------------------------------------------------------------------------
def test_from_folders_pairs_images_and_masks(shapes: Path):
    dls = load(shapes)
    assert dls.codes == CODES and dls.void == VOID and dls.c == 4 and dls.class_codes == [0, 1, 2]
    assert dls.size == (32, 48) and dls.train.n == 40 and dls.valid.n == 12
    xb, yb = dls.valid.one_batch()
    assert xb.shape == (12, 3, 32, 48) and xb.dtype == torch.float32
    assert yb.shape == (12, 32, 48) and yb.dtype == torch.long
    # the first validation mask is exactly the file's codes
    want = np.asarray(Image.open(shapes / "valid" / "labels" / "im000.png"))
    assert torch.equal(yb[0], torch.from_numpy(want.astype(np.int64)))
    assert dls.valid_masks[0].name == "im000.png" and dls.valid_items[0].name == "im000.png"


def test_masks_are_resized_by_nearest_neighbour(shapes: Path):
    dls = load(shapes, size=(16, 24))
    yb = dls.valid.one_batch()[1]
    assert set(yb.unique().tolist()) <= {0, 1, 2, 3}  # no blended codes
    want = np.asarray(Image.open(shapes / "valid" / "labels" / "im000.png"))[1::2, 1::2]
    assert (yb[0].numpy() == want).mean() > 0.97


def test_from_label_func_and_valid_pct(shapes: Path):
    labels = shapes / "train" / "labels"
    dls = SegmentationDataLoaders.from_label_func(shapes / "train" / "images", lambda p: labels / p.name, CODES,
                                                  void=VOID, valid_pct=0.25, seed=1, bs=8, device="cpu")
    assert dls.train.n == 30 and dls.valid.n == 10
    for img, mask in zip(dls.train_items, dls.train_masks):
        assert img.name == mask.name


def test_read_codes(tmp_path: Path):
    f = tmp_path / "c.txt"
    f.write_text("Sky\n\nRoad\r\nCar\n")
    assert read_codes(f) == ["Sky", "Road", "Car"]
    f.write_text("Sky\nSky\n")
    with pytest.raises(SegmentationDataError, match="'Sky' more than once"):
        read_codes(f)
    with pytest.raises(SegmentationDataError, match="No codes file"):
        read_codes(tmp_path / "nope.txt")


# ---- bad input: each a clear error naming the file -----------------------------------------------------
def test_mask_of_another_size_is_named(shapes: Path):
    bad = shapes / "train" / "labels" / "im005.png"
    Image.fromarray(np.zeros((30, 48), np.uint8), mode="L").save(bad)
    with pytest.raises(SegmentationDataError) as e:
        load(shapes)
    assert str(bad) in str(e.value) and "48x30" in str(e.value) and "48x32" in str(e.value)


def test_mask_code_outside_the_codes_is_named(shapes: Path):
    bad = shapes / "valid" / "labels" / "im002.png"
    m = np.asarray(Image.open(bad)).copy()
    m[0, :5] = 7
    Image.fromarray(m, mode="L").save(bad)
    with pytest.raises(SegmentationDataError) as e:
        load(shapes)
    msg = str(e.value)
    assert str(bad) in msg and "code(s) 7" in msg and "5 pixels" in msg and "codes.txt" in msg
    assert "--codes" in e.value.cli_message() and "void=" not in e.value.cli_message()


def test_missing_mask_names_the_image(shapes: Path):
    (shapes / "train" / "labels" / "im007.png").unlink()
    with pytest.raises(SegmentationDataError) as e:
        load(shapes)
    msg = str(e.value)
    assert "1 of 40 images have no mask" in msg and str(shapes / "train" / "images" / "im007.png") in msg


def test_image_and_mask_folders_that_do_not_match(shapes: Path):
    for p in (shapes / "train" / "labels").iterdir():
        p.rename(p.with_name(p.stem + "_P.png"))
    with pytest.raises(SegmentationDataError) as e:
        load(shapes)
    assert "No image of" in str(e.value) and "im000_P.png" in str(e.value) and "mask_suffix='_P'" in str(e.value)
    assert "--mask-suffix" in e.value.cli_message()
    dls = load(shapes, mask_suffix="_P", valid_images=None, valid_masks=None)  # the suffix pairs them
    assert dls.train.n + dls.valid.n == 40


def test_colour_mask_and_unknown_void(shapes: Path):
    bad = shapes / "train" / "labels" / "im001.png"
    Image.fromarray(np.full((32, 48, 3), (10, 20, 30), np.uint8)).save(bad)
    with pytest.raises(SegmentationDataError, match="colour picture"):
        load(shapes)
    with pytest.raises(SegmentationDataError, match="neither a code number nor one of the class names"):
        load(shapes, void="Unlabelled")


def test_unknown_transform_is_refused(shapes: Path):
    class Blur:
        def __call__(self, x, generator=None):
            return x
    with pytest.raises(TypeError, match="cannot tell whether Blur moves pixels"):
        load(shapes, batch_tfms=[Blur()])


# ---- augmentation: the same geometry for image and mask ------------------------------------------------
def _blocks(n: int = 6, h: int = 40, w: int = 56) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose grey level encodes the code of big blocks (code k -> value k / 10)."""
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 5, (n, h // 8, w // 8), generator=g)
    y = codes.repeat_interleave(8, 1).repeat_interleave(8, 2)
    x = (y.float() / 10)[:, None].expand(n, 3, h, w).contiguous()
    return x, y


@pytest.mark.parametrize("tfms", [
    [Flip(p=0.5), Rotate(30, p=1.0), Zoom(1.4, p=1.0)],
    [Perspective(0.3, p=1.0), Flip(p=0.5, vertical=True)],
    [RandomCrop(size=(24, 32), padding=6, pad_mode="zeros"), Rotate(20, p=1.0, pad_mode="zeros")],
    aug_transforms(max_rotate=25, max_zoom=1.3, max_warp=0.2, max_lighting=0.0, flip_vert=True),
])
def test_image_and_mask_move_together(tfms):
    x, y = _blocks()
    g = torch.Generator().manual_seed(3)
    xa, ya = apply_tfms_seg(x, y, tfms, g, void=9)
    assert xa.shape[0] == ya.shape[0] and xa.shape[-2:] == ya.shape[-2:] and ya.dtype == torch.long
    assert set(ya.unique().tolist()) <= {0, 1, 2, 3, 4, 9}  # nearest neighbour: only real codes (and void)
    assert not torch.equal(ya, y[:, :ya.shape[1], :ya.shape[2]])  # something moved
    labelled = ya != 9
    # inside the blocks (a 3x3 neighbourhood of one code: bilinear sampling blurs only the edges), the image's
    # grey level says the mask's code
    yf = ya[:, None].float()
    inner = labelled & (F.max_pool2d(yf, 3, 1, 1) == -F.max_pool2d(-yf, 3, 1, 1))[:, 0]
    code_of_image = (xa[:, 0] * 10).round().long()
    assert inner.float().mean() > 0.4 and (code_of_image == ya)[inner].float().mean() > 0.995
    # a mask transformed with other random draws does not fit the image
    _, other = apply_tfms_seg(x, y, tfms, torch.Generator().manual_seed(4), void=9)
    assert (code_of_image == other)[inner & (other != 9)].float().mean() < 0.8
    if any(isinstance(t, RandomCrop) for t in tfms):  # zero padding came in: it is void, and black in the image
        assert (~labelled).any() and (xa[:, 0][~labelled] < 0.05).float().mean() > 0.9


def test_void_fill_and_lighting_only_on_the_image():
    x, y = _blocks()
    xa, ya = apply_tfms_seg(x, y, [Rotate(45, p=1.0, min_deg=45)], torch.Generator().manual_seed(0), void=9)
    # the corners of a 45-degree turn come from outside the image: void (reflection only fills the image)
    assert (ya[:, 0, 0] == 9).all() and (ya[:, -1, -1] == 9).all()
    _, yn = apply_tfms_seg(x, y, [Rotate(45, p=1.0, min_deg=45)], torch.Generator().manual_seed(0), void=None)
    assert (yn != 9).all()
    xb, yb = apply_tfms_seg(x, y, [Brightness(0.4, p=1.0), Contrast(0.4, p=1.0)], torch.Generator().manual_seed(0), 9)
    assert torch.equal(yb, y) and not torch.allclose(xb, x)


def test_training_batches_are_augmented_together(shapes: Path):
    dls = load(shapes, batch_tfms=[Flip(p=1.0)], normalize=None)
    plain = load(shapes, normalize=None)
    xb, yb = dls.train.one_batch()
    xp, yp = plain.train.one_batch()
    assert torch.equal(yb, yp.flip(-1)) and torch.allclose(xb, xp.flip(-1))


# ---- loss and metrics ----------------------------------------------------------------------------------
def test_loss_ignores_void_like_torch():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(2, 4, 5, 6, generator=g)
    targ = torch.randint(0, 4, (2, 5, 6), generator=g)
    loss = segmentation_loss(4, void=3)
    assert torch.allclose(loss(pred, targ), F.cross_entropy(pred, targ, ignore_index=3))
    # the void pixels' scores do not matter
    changed = pred.clone()
    changed.permute(0, 2, 3, 1)[targ == 3] = torch.randn(int((targ == 3).sum()), 4)
    assert torch.allclose(loss(changed, targ), loss(pred, targ))
    w = torch.tensor([1.0, 2.0, 0.5, 0.0])
    wl = segmentation_loss(4, void=3, weight=w)
    assert torch.allclose(wl(pred, targ), F.cross_entropy(pred, targ, weight=w, ignore_index=3))
    # hand computation: the weighted mean over the non-void pixels
    logp = F.log_softmax(pred, 1)
    keep = targ != 3
    nll = -logp.gather(1, targ.clamp(max=2)[:, None])[:, 0]
    ww = w[targ]
    assert torch.allclose(wl(pred, targ), (nll * ww)[keep].sum() / ww[keep].sum())
    with pytest.raises(ValueError, match="one value per code"):
        segmentation_loss(4, 3, weight=[1.0, 2.0])


def test_median_frequency_weights_by_hand(shapes: Path):
    # image 0: class 0 x3, class 1 x1; image 1: class 0 x1, void (2) x3; class 3 never appears
    masks = torch.tensor([[[0, 0], [0, 1]], [[0, 2], [2, 2]]])
    # frequency = pixels / pixels of the images where the class appears: 4/8 and 1/4; median of the two 0.375
    w = median_frequency_weights(masks, c=4, void=2)
    assert w == pytest.approx([0.375 / 0.5, 0.375 / 0.25, 0.0, 0.0])
    assert median_frequency_weights(masks, c=4, void=2, power=0.5) == pytest.approx([0.75 ** 0.5, 1.5 ** 0.5, 0, 0])
    # three classes: the median is the middle frequency, and that class gets weight 1
    m3 = torch.tensor([[[0, 0], [1, 2]], [[0, 0], [0, 0]]])  # 6/8, 1/4, 1/4 -> median 1/4
    assert median_frequency_weights(m3, c=3) == pytest.approx([1 / 3, 1.0, 1.0])
    with pytest.raises(ValueError, match="label maps"):
        median_frequency_weights(masks[0], c=4)
    # the learner computes them from the training masks
    dls = load(shapes)
    learn = unet_learner(dls, "simple_cnn", class_weights="sqrt_median", progress=False)
    expect = median_frequency_weights(dls.train.tensors[1], dls.c, dls.void, power=0.5)
    assert learn.loss_func.weight.tolist() == pytest.approx(expect) and expect[VOID] == 0.0
    with pytest.raises(ValueError, match="'median', 'sqrt_median'"):
        unet_learner(dls, "simple_cnn", class_weights="inverse", progress=False)


def test_confusion_iou_and_accuracy_by_hand():
    # 3 classes + void 3; truth and predicted codes of 10 pixels
    targ = torch.tensor([[0, 0, 0, 1, 1, 2, 2, 2, 3, 3]])
    pred = torch.tensor([[0, 0, 1, 1, 2, 2, 2, 0, 1, 2]])
    cm = confusion_matrix(pred, targ, 4, void=3)
    want = torch.zeros(4, 4, dtype=torch.long)
    for t, p in [(0, 0), (0, 0), (0, 1), (1, 1), (1, 2), (2, 2), (2, 2), (2, 0)]:
        want[t, p] += 1
    assert torch.equal(cm, want)
    # IoU: class 0: TP 2, FP 1 (a 2 predicted 0), FN 1 -> 2/4; class 1: TP 1, FP 1, FN 1 -> 1/3;
    # class 2: TP 2, FP 1, FN 1 -> 2/4
    iou = iou_from_confusion(cm, [0, 1, 2])
    assert torch.allclose(iou, torch.tensor([0.5, 1 / 3, 0.5], dtype=torch.float64))
    acc, miou = PixelAccuracy(4, void=3), MeanIoU(4, void=3)
    # the metrics take scores too: one-hot scores of the predicted codes, split over two batches
    scores = F.one_hot(pred, 4).permute(0, 2, 1).float()[..., None]  # (1, 4, 10, 1)
    for m in (acc, miou):
        m.accumulate(scores[:, :, :5], targ[:, :5, None])
        m.accumulate(scores[:, :, 5:], targ[:, 5:, None])
    assert acc.value == pytest.approx(5 / 8)
    assert miou.value == pytest.approx((0.5 + 1 / 3 + 0.5) / 3)
    assert miou.per_class == pytest.approx([0.5, 1 / 3, 0.5])


def test_void_is_never_predicted_and_absent_classes_are_left_out():
    scores = torch.zeros(1, 4, 1, 2)
    scores[0, 3] = 5.0  # void has the highest score everywhere
    scores[0, 1, 0, 0] = 1.0
    cm = confusion_matrix(scores, torch.tensor([[[1, 0]]]), 4, void=3)
    assert cm[1, 1] == 1 and cm[0, 0] == 1 and cm[:, 3].sum() == 0
    m = MeanIoU(4, void=3)
    m.accumulate(scores, torch.tensor([[[1, 0]]]))
    assert math.isnan(m.per_class[2]) and m.value == pytest.approx(1.0)  # class 2: in neither truth nor prediction
    assert segmentation_loss(4, 3).decode(scores).tolist() == [[[1, 0]]]


# ---- models --------------------------------------------------------------------------------------------
def test_icnr_sub_pixel_kernels_are_equal():
    w = torch.empty(8 * 4, 5, 3, 3)
    icnr_(w, 2)
    groups = w.reshape(8, 4, 5, 3, 3)
    assert torch.equal(groups, groups[:, :1].expand_as(groups))
    assert not torch.equal(groups[0], groups[1])
    up = PixelShuffleICNR(6, 3)
    x = torch.randn(2, 6, 5, 7)
    out = up(x)
    assert out.shape == (2, 3, 10, 14)
    # the shuffle starts as a nearest-neighbour upsampling: every 2x2 block is constant
    assert torch.allclose(out, F.interpolate(out[..., ::2, ::2], scale_factor=2, mode="nearest"))


@pytest.mark.parametrize("arch, channels", [(resnet18, [64, 64, 128, 256, 512]), (resnet34, [64, 64, 128, 256, 512]),
                                            (resnet50, [64, 256, 512, 1024, 2048])])
def test_hooks_find_where_resnet_bodies_change_resolution(arch, channels):
    body = create_body(arch())
    shapes = child_sizes(body, 3, (64, 96))
    # conv1, bn1, relu at 1/2; maxpool, layer1 at 1/4; layer2..4 at 1/8, 1/16, 1/32
    assert skip_indices(shapes) == [2, 4, 5, 6]
    assert [shapes[i] for i in (2, 4, 5, 6, 7)] == [(channels[0], 32, 48), (channels[1], 16, 24),
                                                    (channels[2], 8, 12), (channels[3], 4, 6), (channels[4], 2, 3)]


def test_unet_output_size_for_any_input():
    model = DynamicUnet("resnet18", n_out=5, img_size=(64, 64)).eval()
    assert model.skips == [2, 4, 5, 6] and len(model.blocks) == 4
    with torch.no_grad():
        for h, w in [(64, 64), (45, 61), (33, 40)]:
            assert model(torch.zeros(1, 3, h, w)).shape == (1, 5, h, w)
    assert len(model.layer_groups()) == 3


@pytest.mark.parametrize("name, paper, tol", [("fc_densenet56", 1.5e6, 0.10), ("fc_densenet67", 3.5e6, 0.03),
                                              ("fc_densenet103", 9.4e6, 0.03)])
def test_fc_densenet_parameter_counts(name, paper, tol):
    # the paper's rounded counts; a faithful FC-DenseNet56 has 1.38M (re-implementations report 1.4M)
    n = sum(p.numel() for p in FCDenseNet(n_out=11, **TIRAMISU_CONFIGS[name]).parameters())
    assert abs(n - paper) / paper < tol


def test_fc_densenet_shapes_and_skips():
    m = FCDenseNet(n_out=4, growth=4, down_layers=[2, 2], bottleneck_layers=2, first_filters=8).eval()
    assert m.down_blocks[0].n_out == 16 and m.down_blocks[1].n_out == 24 and m.bottleneck.n_out == 8
    assert m.up_blocks[0].n_out == 8 and m.up_blocks[1].n_out == 8 + 16 + 8  # the last block keeps its input
    with torch.no_grad():
        assert m(torch.zeros(1, 3, 13, 22)).shape == (1, 4, 13, 22)


# ---- training, results, export -------------------------------------------------------------------------
def test_tiny_unet_learns_the_shapes(shapes: Path, tmp_path: Path):
    torch.manual_seed(0)
    dls = load(shapes, batch_tfms=[Flip(p=0.5)])
    learn = unet_learner(dls, "simple_cnn", progress=False, path=tmp_path)
    learn.fit_one_cycle(12, 2e-2)
    iou = learn.per_class_iou()
    assert list(iou) == ["background", "box", "disc"]
    miou = sum(iou.values()) / 3
    # chance (everything background) would give about (0.8 + 0 + 0) / 3
    assert miou > 0.9 and min(iou.values()) > 0.8, iou
    assert learn.recorder.log[-1]["mean_iou"] == pytest.approx(miou, abs=1e-6)
    fig = learn.show_results(n=3, fname=tmp_path / "results.png")
    assert (tmp_path / "results.png").stat().st_size > 1000 and fig is not None
    plot_class_iou(iou, fname=tmp_path / "iou.png")
    assert (tmp_path / "iou.png").is_file()
    # export and load: the same predictions
    from deepfit import load_learner
    learn.export(tmp_path / "seg.safetensors")
    back = load_learner(tmp_path / "seg.safetensors", device="cpu")
    assert type(back.dls).__name__ == "SegmentationDataLoaders" and back.dls.void == VOID
    img = shapes / "valid" / "images" / "im003.png"
    mask, dec, probs = back.predict(img)
    mask0 = learn.predict(img)[0]
    assert mask.shape == (32, 48) and mask.dtype == np.uint8 and np.array_equal(mask, mask0)
    assert probs.shape == (4, 32, 48)
    truth = np.asarray(Image.open(shapes / "valid" / "labels" / "im003.png"))
    assert (mask == truth)[truth != VOID].mean() > 0.9


def test_tiramisu_learner_trains_exports_and_tta(shapes: Path, tmp_path: Path):
    from deepfit import load_learner
    from deepfit.vision.segment import SegmentationLearner, tiramisu_learner
    dls = load(shapes)
    learn = tiramisu_learner(dls, "fc_densenet56", progress=False, path=tmp_path)
    assert isinstance(learn, SegmentationLearner) and learn.model.config["growth"] == 12
    learn.fit_one_cycle(1, 1e-3)
    assert math.isfinite(learn.recorder.log[-1]["mean_iou"])
    probs, targs = learn.tta()
    assert probs.shape == (12, 4, 32, 48) and targs.shape == (12, 32, 48)
    assert torch.allclose(probs.sum(1), torch.ones(12, 32, 48), atol=1e-5)
    # the predictions on the mirrored images are mirrored back before they are averaged
    learn.model.eval()
    xb = dls.valid.one_batch()[0]
    with torch.no_grad():
        p, pm = torch.softmax(learn.model(xb), 1), torch.softmax(learn.model(xb.flip(-1)), 1).flip(-1)
    assert torch.allclose(probs[:len(xb)], 0.5 * p + 0.5 * pm, atol=1e-5)
    learn.export(tmp_path / "t.safetensors")
    back = load_learner(tmp_path / "t.safetensors", device="cpu")
    assert type(back.model).__name__ == "FCDenseNet"
    with pytest.raises(NotImplementedError, match="per_class_iou"):
        learn.interpret()
