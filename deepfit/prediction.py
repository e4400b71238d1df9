"""Evaluation and prediction, the part of the `Learner` that runs a trained model: `validate` (loss and
metrics on a loader), `get_preds` (activated predictions, targets, per-row losses, inputs of every row, in
order) and `predict` (one raw item, encoded and decoded by the application's `DataLoaders`).

`Learner` inherits these methods from `Prediction`; they read `self.model`, `self.dls`, `self.loss_func`
and (`validate`) the training loop's `_do_validate` and recorder.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator

import torch

from .data.core import DataLoader
from .losses import activation_for, decode_for
from .utils import to_device

__all__ = ["Prediction"]


class Prediction:
    """The evaluation and prediction methods of `Learner` (a mixin: it has no state of its own)."""

    def validate(self, dl: DataLoader | None = None) -> dict[str, float]:
        """Loss and metrics on `dl` (default the validation loader), as a dict. The model's train/eval
        mode is left as it was."""
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("No validation data: pass `dl=`.")
        if len(dl) == 0:
            raise ValueError(f"The loader to validate on yields no batch ({getattr(dl, 'n', '?')} rows).")
        was_training = self.model.training
        try:
            self._do_validate(dl)
        finally:
            self.model.train(was_training)
        return self.recorder.last_valid

    def get_preds(self, dl: DataLoader | None = None, with_loss: bool = False, with_input: bool = False,
                  activation: bool = True) -> tuple[torch.Tensor, ...]:
        """Predictions (after the loss's final activation) and targets for every row of `dl`, in row
        order: a shuffled or `drop_last` loader (e.g. `dls.train`) is read unshuffled and whole. Batches of
        a loader on another device are moved to the learner's (`dls.device`).

        Returns:
            `(preds, targets)`, plus the per-row losses with `with_loss` and the inputs with
            `with_input` (inputs first). Targets are None for an unlabelled loader. The model's
            train/eval mode is left as it was.
        """
        dl = dl if dl is not None else self.dls.valid
        if dl is None:
            raise ValueError("No loader to predict on: pass `dl=` (e.g. `learn.dls.test`).")
        if isinstance(dl, DataLoader) and (dl.shuffle or dl.drop_last):
            dl = copy.copy(dl)  # leaves the original's generator and position alone
            dl.shuffle, dl.drop_last, dl._resume = False, False, None
        self._check_device()
        act = activation_for(self.loss_func) if activation else (lambda x: x)
        preds, targs, losses, inputs = [], [], [], []
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad(), self._restore_mode(was_training):
            for batch in dl:
                # a loader built for another device (e.g. DataLoader(x_test) on the CPU) is fed to the model's
                batch = to_device(tuple(batch), self.dls.device)
                xb, yb = batch[: dl.n_inp], batch[dl.n_inp:]
                out = self.model(*xb)
                preds.append(act(out.float() if out.is_floating_point() else out))
                if yb:
                    targs.append(yb[0])
                    if with_loss:
                        losses.append(self._per_item_loss(out, *yb))
                if with_input:
                    inputs.append(xb)
        res: list[Any] = []
        if with_input:
            res.append(tuple(torch.cat(x) for x in zip(*inputs)))
        res += [torch.cat(preds), torch.cat(targs) if targs else None]
        if with_loss:
            res.append(torch.cat(losses) if losses else None)
        return tuple(res)

    def _check_device(self) -> None:
        # one look per call (not per batch): a model left behind by `dls.to(...)` fails deep inside torch
        p = next(self.model.parameters(), None)
        dev = self.dls.device
        if p is not None and (p.device.type != dev.type or (dev.index is not None and p.device.index != dev.index)):
            raise ValueError(f"The model is on {p.device} but the data is on {dev}: move the model with "
                             f"`learn.model.to(learn.dls.device)` (and rebuild the optimizer with "
                             f"`learn.create_opt()` if it has state).")

    @contextlib.contextmanager
    def _restore_mode(self, training: bool) -> Iterator[None]:
        try:
            yield
        finally:
            self.model.train(training)

    def _per_item_loss(self, out: torch.Tensor, *yb: torch.Tensor) -> torch.Tensor:
        # Compute each row's loss by calling the loss on single rows in one vectorised pass when the
        # loss supports `reduction`, else row by row.
        lf = self.loss_func
        if hasattr(lf, "reduction"):
            old = lf.reduction
            lf.reduction = "none"
            try:
                l = lf(out, *yb)
            finally:
                lf.reduction = old
            return l.reshape(len(out), -1).mean(1)
        return torch.stack([lf(out[i:i + 1], *(y[i:i + 1] for y in yb)) for i in range(len(out))])

    def predict(self, item: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """Predict one item. Applications encode the raw item through `dls.encode_item` and decode
        the answer through `dls.decode_pred`; otherwise `item` is a tensor (or tuple of tensors)
        for one sample.

        Returns:
            `(decoded, decoded_tensor, activated_output)`.
        """
        enc = getattr(self.dls, "encode_item", None)
        xb = enc(item) if enc is not None else tuple(t.unsqueeze(0) for t in (item if isinstance(item, tuple) else (item,)))
        xb = to_device(tuple(xb), self.dls.device)
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad(), self._restore_mode(was_training):
            out = self.model(*xb)
        probs = activation_for(self.loss_func)(out.float())[0]
        dec_t = decode_for(self.loss_func)(probs)
        dec_fn = getattr(self.dls, "decode_pred", None)
        decoded = dec_fn(dec_t) if dec_fn is not None else dec_t
        return decoded, dec_t, probs
