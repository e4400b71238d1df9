"""ClassificationInterpretation: confusion matrix, most confused pairs and top losses by hand; the
plots are written as PNG files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepfit import DataLoaders
from deepfit.vision import ImageDataLoaders
from deepfit.vision.interpret import ClassificationInterpretation
from deepfit.vision.learner import vision_learner
from deepfit.vision.models import SimpleCNN


def make_interp() -> ClassificationInterpretation:
    # actual:    0  0  1  1  1  2  2  2
    # predicted: 0  1  1  2  2  0  2  1
    probs = torch.tensor([[.8, .1, .1], [.2, .7, .1], [.1, .8, .1], [.1, .3, .6], [.2, .2, .6], [.5, .3, .2],
                          [.1, .1, .8], [.3, .4, .3]])
    targs = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])
    losses = -torch.log(probs[torch.arange(8), targs])
    x = torch.arange(8, dtype=torch.uint8)[:, None, None, None].expand(8, 3, 4, 4).contiguous() * 30
    dls = DataLoaders.from_tensors(x.float(), targs, x, targs, bs=4, device="cpu")

    class L:  # the parts of a learner interpretation uses
        pass
    learn = L()
    learn.dls = dls
    return ClassificationInterpretation(learn, dls.valid, probs, targs, losses, vocab=["cat", "dog", "fox"])


def test_confusion_matrix_and_most_confused_by_hand():
    interp = make_interp()
    cm = interp.confusion_matrix()
    assert cm.tolist() == [[1, 1, 0], [0, 1, 2], [1, 1, 1]]
    assert interp.most_confused() == [("dog", "fox", 2), ("cat", "dog", 1), ("fox", "cat", 1), ("fox", "dog", 1)]
    assert interp.most_confused(min_val=2) == [("dog", "fox", 2)]


def test_top_losses_by_hand(tmp_path):
    interp = make_interp()
    losses, idx = interp.top_losses(3)
    # the probabilities of the true class: .8 .2 .8 .3 .2 .2 .8 .3 -> the lowest are rows 1, 4, 5 (0.2 each)
    assert sorted(idx.tolist()) == [1, 4, 5]
    assert torch.allclose(losses, torch.full((3,), -np.log(0.2), dtype=torch.float32))
    imgs = interp.images(idx)  # from the loader's uint8 images, scaled to [0, 1]
    assert torch.allclose(imgs[:, 0, 0, 0], idx.float() * 30 / 255)
    fig = interp.plot_top_losses(3, fname=tmp_path / "top.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any(t.startswith("dog/cat\n1.61/0.70") for t in titles)  # prediction/actual, loss/probability
    assert (tmp_path / "top.png").stat().st_size > 1000
    interp.plot_confusion_matrix(fname=tmp_path / "cm.png", normalize=True)
    assert (tmp_path / "cm.png").stat().st_size > 1000


def test_from_learner_on_image_data(tmp_path):
    torch.manual_seed(0)
    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    y = np.array(["a", "b"] * 20)
    dls = ImageDataLoaders.from_arrays(x, y, valid_pct=0.25, seed=0, bs=8)
    learn = vision_learner(dls, lambda n_in: SimpleCNN(10, n_in, (8,)), progress=False, lin_ftrs=[8])
    interp = learn.interpret()
    assert interp.vocab == ["a", "b"]
    assert interp.confusion_matrix().sum() == 10
    probs, targs = learn.get_preds()
    assert torch.equal(interp.preds, probs.argmax(1)) and torch.equal(interp.targs, targs)
    imgs = interp.images(torch.tensor([0, 1]))
    assert torch.allclose(imgs, dls.valid.tensors[0][:2].float() / 255)  # the images as they were, not normalised
    interp.plot_top_losses(4, fname=tmp_path / "t.png")
    assert (tmp_path / "t.png").exists()
    with pytest.raises(ValueError, match="class names"):
        ClassificationInterpretation(learn, dls.valid, probs, targs, targs.float(), vocab=["a"])
