"""Batch augmentation (deepfit.vision.augment) against hand computations and torch's own operations."""
from __future__ import annotations

import math

import pytest
import torch

from deepfit.vision.augment import (Affine, Brightness, Contrast, Cutout, Flip, Perspective, RandomCrop,
                                    RandomResizedCrop, Rotate, Zoom, _Rot90, apply_tfms, aug_transforms, homography)

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_flip_is_torch_flip_with_p1_and_identity_with_p0():
    x = torch.rand(4, 3, 5, 7)
    assert torch.equal(Flip(p=1.0)(x, gen()), x.flip(-1))
    assert torch.equal(Flip(p=1.0, vertical=True)(x, gen()), x.flip(-2))
    assert torch.equal(Flip(p=0.0)(x, gen()), x)


def test_flip_decides_per_image():
    x = torch.rand(1, 3, 4, 4).expand(64, 3, 4, 4).contiguous()
    y = Flip(p=0.5)(x, gen(1))
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(-1)) for i in range(64)])
    assert 10 < int(flipped.sum()) < 54  # about half, drawn per image


def test_rotate_90_degrees_is_rot90_and_180_is_a_double_flip():
    x = torch.rand(3, 2, 6, 6)
    y = apply_tfms(x, [Rotate(min_deg=90, max_deg=90, p=1.0)], gen())
    torch.testing.assert_close(y, torch.rot90(x, 1, (-2, -1)), atol=1e-5, rtol=0)
    # a non-square image turned half-way round: aspect ratio handled (no shear)
    x = torch.rand(2, 3, 4, 6)
    y = apply_tfms(x, [Rotate(min_deg=180, max_deg=180, p=1.0)], gen())
    torch.testing.assert_close(y, x.flip(-1).flip(-2), atol=1e-5, rtol=0)


def test_two_geometric_transforms_are_fused_in_order():
    x = torch.rand(2, 3, 6, 6)
    r90 = Rotate(min_deg=90, max_deg=90, p=1.0)
    torch.testing.assert_close(apply_tfms(x, [r90, r90], gen()), torch.rot90(x, 2, (-2, -1)), atol=1e-5, rtol=0)
    # fused (one resampling) equals one after the other when the first is exact, with the same random draws
    zoom = Zoom(min_zoom=2.0, max_zoom=2.0, p=1.0)
    fused = apply_tfms(x, [r90, zoom], gen(3))
    g = gen(3)
    seq = apply_tfms(apply_tfms(x, [r90], g), [zoom], g)
    torch.testing.assert_close(fused, seq, atol=1e-5, rtol=0)


@pytest.mark.parametrize("tfm", [Rotate(max_deg=0, p=1.0), Zoom(max_zoom=1.0, p=1.0), Affine(0.0, 0.0, p=1.0),
                                 Perspective(0.0, p=1.0), RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0)),
                                 Brightness(0.0, p=1.0), Contrast(0.0, p=1.0), Rotate(max_deg=30, p=0.0)])
def test_identity_parameters_give_the_identity(tfm):
    x = torch.rand(3, 3, 8, 8)
    torch.testing.assert_close(apply_tfms(x, [tfm], gen()), x, atol=1e-5, rtol=0)


def test_zoom_by_two_halves_the_slope_of_a_ramp():
    # x[..., j] = j: a zoom by 2 shows half the image over the same width, so neighbours differ by 0.5
    x = torch.arange(16.0).expand(2, 1, 16, 16).contiguous()
    y = apply_tfms(x, [Zoom(min_zoom=2.0, max_zoom=2.0, p=1.0)], gen())
    d = y[..., 2:-2].diff(dim=-1)
    torch.testing.assert_close(d, torch.full_like(d, 0.5), atol=1e-4, rtol=0)
    assert float(y.min()) >= 0 and float(y.max()) <= 15


def test_random_resized_crop_output_size_and_crop_contents():
    x = torch.arange(32.0).expand(4, 3, 32, 32).contiguous()
    y = apply_tfms(x, [RandomResizedCrop(size=16, scale=(0.25, 0.25), ratio=(1.0, 1.0))], gen())
    assert y.shape == (4, 3, 16, 16)
    # a quarter of the area, square: a 16x16 window shown at 16x16 -> neighbours differ by exactly 1
    d = y[..., 1:-1].diff(dim=-1)
    torch.testing.assert_close(d, torch.ones_like(d), atol=1e-4, rtol=0)


def test_random_crop_is_a_whole_pixel_window_of_the_padded_image():
    x = torch.rand(16, 3, 8, 8)
    y = RandomCrop(padding=2)(x, gen())
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(16):  # each output is exactly one of the 5x5 possible windows
        assert any(torch.equal(y[i], padded[i, :, t:t + 8, l:l + 8]) for t in range(5) for l in range(5))
    assert len({y[i].sum().item() - x[i].sum().item() for i in range(16)}) > 1  # offsets drawn per image
    assert torch.equal(RandomCrop(padding=0)(x, gen()), x)
    assert RandomCrop(size=6, padding=0)(x, gen()).shape == (16, 3, 6, 6)
    z = RandomCrop(padding=3, pad_mode="zeros")(torch.ones(32, 1, 4, 4), gen())
    assert float(z.min()) == 0.0 and float(z.max()) == 1.0


def test_homography_maps_the_four_points():
    src = torch.tensor([[[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]])
    dst = src + torch.tensor([[[0.1, -0.2], [0.05, 0.1], [-0.1, 0.0], [0.2, 0.15]]])
    h = homography(src, dst)
    p = torch.cat([src, torch.ones(1, 4, 1)], -1) @ h.transpose(1, 2)
    torch.testing.assert_close(p[..., :2] / p[..., 2:], dst, atol=1e-5, rtol=0)


def test_perspective_changes_images_and_stays_in_range():
    x = torch.rand(4, 3, 16, 16)
    y = apply_tfms(x, [Perspective(0.3, p=1.0)], gen())
    assert y.shape == x.shape and not torch.allclose(y, x)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_brightness_adds_one_offset_per_image_within_range():
    x = torch.full((16, 3, 4, 4), 0.5)
    y = Brightness(0.2, p=1.0)(x, gen())
    off = y - 0.5
    assert torch.allclose(off, off[:, :1, :1, :1].expand_as(off))  # one value per image
    assert float(off.abs().max()) <= 0.2 + 1e-6 and len(torch.unique(off[:, 0, 0, 0])) == 16
    assert float(Brightness(0.2, p=1.0)(torch.ones(8, 3, 2, 2), gen()).max()) <= 1.0  # clamped


def test_contrast_scales_deviations_from_the_mean():
    x = torch.rand(8, 3, 6, 6) * 0.5 + 0.25
    y = Contrast(0.5, p=1.0)(x, gen())
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    d = x - m
    c = ((y - m) * d).sum(dim=(1, 2, 3)) / (d * d).sum(dim=(1, 2, 3))  # least-squares factor per image
    torch.testing.assert_close(y, m + c[:, None, None, None] * d, atol=1e-5, rtol=0)
    assert float(c.min()) >= 1 / 1.5 - 1e-6 and float(c.max()) <= 1.5 + 1e-6


def test_cutout_blanks_one_rectangle_of_the_given_size():
    x = torch.ones(6, 3, 8, 8)
    y = Cutout(n_holes=1, size=(0.5, 0.5), p=1.0)(x, gen())
    for i in range(6):
        hole = y[i, 0] == 0
        assert int(hole.sum()) == 16
        rows, cols = torch.nonzero(hole, as_tuple=True)
        assert int(rows.max() - rows.min()) == 3 and int(cols.max() - cols.min()) == 3
        assert torch.equal(y[i, 1] == 0, hole)  # every channel


def test_rot90_turns_square_images_by_quarter_turns():
    x = torch.rand(32, 1, 5, 5)
    y = _Rot90()(x, gen())
    for i in range(32):
        assert any(torch.equal(y[i], torch.rot90(x[i], k, (-2, -1))) for k in range(4))


def test_same_seed_same_augmentation_and_shapes():
    x = torch.rand(8, 3, 24, 24)
    tfms = aug_transforms() + [Cutout()]
    a, b = apply_tfms(x, tfms, gen(5)), apply_tfms(x, tfms, gen(5))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, apply_tfms(x, tfms, gen(6)))
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_aug_transforms_defaults_and_switches():
    names = [type(t).__name__ for t in aug_transforms()]
    assert names == ["Flip", "Rotate", "Zoom", "Perspective", "Brightness", "Contrast"]
    names = [type(t).__name__ for t in aug_transforms(do_flip=False, max_rotate=0, max_zoom=1.0, max_warp=0,
                                                      max_lighting=0)]
    assert names == []


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`p`"):
        Flip(p=1.5)
    with pytest.raises(ValueError, match="pad_mode"):
        Rotate(pad_mode="wrap")
    with pytest.raises(ValueError, match="min_zoom"):
        Zoom(max_zoom=0.5, min_zoom=1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augmentation_runs_on_the_gpu_with_a_gpu_generator():
    x = torch.rand(16, 3, 32, 32, device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    y = apply_tfms(x, aug_transforms() + [Cutout(), RandomResizedCrop(24)], g)
    assert y.device.type == "cuda" and y.shape == (16, 3, 24, 24)
    r = apply_tfms(x, [Rotate(min_deg=90, max_deg=90, p=1.0)], g)
    torch.testing.assert_close(r, torch.rot90(x, 1, (-2, -1)), atol=1e-5, rtol=0)
    assert math.isfinite(float(y.sum()))
