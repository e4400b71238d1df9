"""Callbacks: events, recorder, progress, schedules, tracking, logging, precision."""
from .averaging import Lookahead
from .checkpoint import Checkpoint, CheckpointError
from .core import (EVENTS, Callback, CancelBackward, CancelBatch, CancelEpoch, CancelFit, CancelStep, CancelTrain,
                   CancelValidate)
from .logger import CSVLogger
from .precision import MixedPrecision
from .progress import ProgressCallback
from .recorder import Recorder
from .schedule import LRFinder, ParamScheduler, SuggestedLRs
from .tracker import EarlyStopping, SaveBestModel, TrackerCallback
from .training import GradientClip, NonFiniteLossError, TerminateOnNaN

__all__ = ["Lookahead", "Checkpoint", "CheckpointError", "EVENTS", "Callback", "CancelBackward", "CancelBatch", "CancelEpoch",
           "CancelFit", "CancelStep", "CancelTrain", "CancelValidate", "CSVLogger", "MixedPrecision",
           "ProgressCallback", "Recorder", "LRFinder", "ParamScheduler", "SuggestedLRs", "EarlyStopping",
           "SaveBestModel", "TrackerCallback", "GradientClip", "NonFiniteLossError", "TerminateOnNaN"]
