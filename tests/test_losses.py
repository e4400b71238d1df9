"""Losses: values against torch's functional losses, and clear errors for outputs that do not fit the
targets (instead of a deep torch traceback or a silent broadcast)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepfit import BCEWithLogitsLoss, CrossEntropyLoss, DataLoaders, L1Loss, Learner, MSELoss


def test_values_match_torch():
    g = torch.Generator().manual_seed(0)
    pred, y = torch.randn(8, 1, generator=g), torch.randn(8, generator=g)
    torch.testing.assert_close(MSELoss()(pred, y), F.mse_loss(pred[:, 0], y))
    torch.testing.assert_close(L1Loss()(pred, y), F.l1_loss(pred[:, 0], y))
    logits, cls = torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g)
    torch.testing.assert_close(CrossEntropyLoss()(logits, cls), F.cross_entropy(logits, cls))
    # a sequence: (bs, seq, n_classes) against (bs, seq)
    seq, seq_y = torch.randn(2, 4, 3, generator=g), torch.randint(0, 3, (2, 4), generator=g)
    torch.testing.assert_close(CrossEntropyLoss()(seq, seq_y), F.cross_entropy(seq.reshape(8, 3), seq_y.reshape(8)))
    b = (y > 0).long()
    torch.testing.assert_close(BCEWithLogitsLoss()(pred, b), F.binary_cross_entropy_with_logits(pred[:, 0], b.float()))


@pytest.mark.parametrize("loss", [MSELoss(), L1Loss()])
def test_regression_output_that_does_not_fit_the_targets_is_named(loss):
    # (8, 2) against (8, 1) would broadcast silently to a wrong loss; (8, 3) against (8,) is a torch error
    for pred, targ in ((torch.randn(8, 2), torch.randn(8, 1)), (torch.randn(8, 3), torch.randn(8))):
        with pytest.raises(ValueError, match=r"output.*\(8, \d\).*target.*\(8,?( 1)?\)"):
            loss(pred, targ)


def test_cross_entropy_output_that_does_not_fit_the_targets_is_named():
    with pytest.raises(ValueError, match=r"CrossEntropyLoss.*\(8, 3\).*\(8, 3\)"):  # one-hot targets
        CrossEntropyLoss()(torch.randn(8, 3), torch.eye(3)[torch.randint(0, 3, (8,))])
    with pytest.raises(ValueError, match=r"CrossEntropyLoss.*\(8, 3\).*\(16,\)"):
        CrossEntropyLoss()(torch.randn(8, 3), torch.randint(0, 3, (16,)))


def test_bce_with_two_outputs_per_row_is_named():
    with pytest.raises(ValueError, match=r"BCEWithLogitsLoss.*\(8, 2\).*\(8,\).*CrossEntropyLoss"):
        BCEWithLogitsLoss()(torch.randn(8, 2), torch.randint(0, 2, (8,)))


def test_the_message_reaches_the_user_from_fit():
    x, y = torch.randn(32, 4), torch.randn(32)
    dls = DataLoaders.from_tensors(x, y, x, y, bs=8, device="cpu")
    learn = Learner(dls, nn.Linear(4, 3), loss_func=MSELoss(), progress=False)
    with pytest.raises(ValueError, match="MSELoss"):
        learn.fit(1, 1e-2)


def test_activation_and_decoding_of_torch_losses():
    from deepfit.losses import activation_for, decode_for
    x = torch.tensor([[0.1, -2.0, 0.7]])  # not normalised: exp and softmax differ
    torch.testing.assert_close(activation_for(nn.CrossEntropyLoss())(x), torch.softmax(x, -1))
    torch.testing.assert_close(activation_for(F.cross_entropy)(x), torch.softmax(x, -1))
    # NLLLoss: the model outputs log-probabilities, so the probabilities are their exp
    torch.testing.assert_close(activation_for(nn.NLLLoss())(x), torch.exp(x))
    torch.testing.assert_close(activation_for(F.nll_loss)(x), torch.exp(x))
    torch.testing.assert_close(activation_for(nn.BCEWithLogitsLoss())(x), torch.sigmoid(x))
    assert torch.equal(decode_for(nn.NLLLoss())(x), torch.tensor([2]))
    assert torch.equal(decode_for(nn.BCEWithLogitsLoss())(torch.tensor([0.3, 0.6])), torch.tensor([0, 1]))


def test_per_row_losses_in_one_pass():
    # reduction='none' gives each row's loss, which get_preds(with_loss=True) uses in one vectorised call
    from deepfit.losses import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss
    torch.manual_seed(0)
    logits, cls = torch.randn(6, 4), torch.randint(0, 4, (6,))
    torch.testing.assert_close(CrossEntropyLoss(reduction="none")(logits, cls),
                               torch.nn.functional.cross_entropy(logits, cls, reduction="none"))
    z, b = torch.randn(6), (torch.rand(6) > 0.5).float()
    torch.testing.assert_close(BCEWithLogitsLoss(reduction="none")(z, b),
                               torch.nn.functional.binary_cross_entropy_with_logits(z, b, reduction="none"))
    p, t = torch.randn(6, 1), torch.randn(6)
    torch.testing.assert_close(MSELoss(reduction="none")(p, t), (p[:, 0] - t) ** 2)
    torch.testing.assert_close(L1Loss(reduction="sum")(p, t), (p[:, 0] - t).abs().sum())
    with pytest.raises(ValueError, match="reduction"):
        MSELoss(reduction="avg")
