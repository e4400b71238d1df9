"""deepfit: train accurate PyTorch models on your own data in a few lines.

Example:
    >>> from deepfit import Learner, DataLoaders, accuracy
    >>> from deepfit.losses import CrossEntropyLoss
    >>> learn = Learner(dls, model, loss_func=CrossEntropyLoss(), metrics=[accuracy])
    >>> learn.fit_one_cycle(3, 1e-2)
"""
__version__ = "0.1.0"

from .callbacks import (Callback, CancelBatch, CancelEpoch, CancelFit, Checkpoint, CSVLogger, EarlyStopping,
                        GradientClip, Lookahead, MixedPrecision, ParamScheduler, SaveBestModel)
from .data import DataLoader, DataLoaders, Normalize, download_url
from .export import load_learner, register_model
from .learner import Learner
from .losses import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss
from .metrics import F1Score, RocAucBinary, accuracy, error_rate, exp_rmspe, mae, mse, r2_score, rmse
from .optim import RMSProp, SGD, Adam
from .utils import default_device, set_seed

__all__ = ["__version__", "Callback", "CancelBatch", "CancelEpoch", "CancelFit", "Checkpoint", "CSVLogger",
           "EarlyStopping", "GradientClip", "Lookahead", "MixedPrecision", "ParamScheduler", "SaveBestModel", "DataLoader", "DataLoaders",
           "Normalize", "download_url", "load_learner", "register_model", "Learner", "BCEWithLogitsLoss",
           "CrossEntropyLoss", "L1Loss", "MSELoss", "accuracy", "error_rate", "exp_rmspe", "mae", "mse", "r2_score",
           "rmse", "F1Score", "RocAucBinary", "RMSProp", "SGD", "Adam", "default_device", "set_seed"]
