"""Image classification models. Every model lists its children in forward order (the body, then
pooling / flatten / linear), so `deepfit.vision.learner.create_body` can cut off the head, and has
`get_config()` and is registered for export.

Functions by name (`ARCHS`) for `vision_learner(dls, "resnet34")` and the command line."""
from __future__ import annotations

from typing import Callable

from torch import nn

from .airbench import AirbenchNet, airbench
from .darknet import Darknet, darknet
from .densenet import DenseNet, densenet_bc
from .fastnet import FastNet, fastnet
from .resnet import CifarResNet, ResNet, resnet18, resnet20, resnet34, resnet50, resnet56
from .simple import SimpleCNN, simple_cnn
from .vgg import VGG, load_vgg, vgg11, vgg13, vgg16, vgg19
from .wrn import WideResNet, wrn

__all__ = ["ARCHS", "AirbenchNet", "airbench", "Darknet", "darknet", "DenseNet", "densenet_bc", "FastNet", "fastnet", "CifarResNet", "ResNet",
           "resnet18", "resnet20", "resnet34", "resnet50", "resnet56", "SimpleCNN", "simple_cnn", "WideResNet", "wrn"]
__all__ += ["VGG", "load_vgg", "vgg11", "vgg13", "vgg16", "vgg19"]

#: Architectures by name: each is called as `arch(n_out=..., n_in=...)`.
ARCHS: dict[str, Callable[..., nn.Module]] = {
    "simple_cnn": simple_cnn, "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
    "resnet20": resnet20, "resnet56": resnet56, "wrn": wrn, "densenet_bc": densenet_bc, "darknet": darknet,
    "fastnet": fastnet,
}
# AirbenchNet is not in ARCHS: its whitening layer is fitted to the data, which `speedrun_learner` does.
