"""VGG networks (Simonyan & Zisserman 2015) with torchvision's layout and parameter names, for feature
losses and style transfer.

The state dict keys are torchvision's (`features.N.weight`, `features.N.bias`, with
`features.N.running_mean`... for the batch-norm variants, and `classifier.0/3/6.weight|bias`), so its
weight files (`vgg16-397923af.pth`, `vgg19-dcbb9e9d.pth`, `vgg16_bn-6c64b313.pth`,
`vgg19_bn-c79401a0.pth`) load unchanged with `load_vgg`. Nothing is ever downloaded: `load_vgg` reads
torch's hub cache (`$TORCH_HOME/hub/checkpoints`, default `~/.cache/torch/hub/checkpoints`) or a file
you give.

The layers of `features` also have the names of the papers (`VGG.layer_names`): `conv1_1`, `relu1_1`,
`conv1_2`, `relu1_2`, `pool1`, `conv2_1`, ... `pool5` (and `bn1_1`... with batch norm), which
`deepfit.vision.style.FeatureExtractor` accepts. `convB_I` is the convolution's output (before its
ReLU), `reluB_I` the same map after the ReLU. The ReLUs are not in-place, so a hooked convolution
output keeps its values (the parameters, and so the weight files, are the same either way).

Inputs are RGB images in [0, 1] normalised with ImageNet's mean and standard deviation
(`deepfit.vision.IMAGENET_STATS`), as torchvision's weights were trained.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import HintedError
from ...export import register_model

__all__ = ["VGGWeightsError", "VGGWeightsNotFound", "VGG", "VGG_CONFIGS", "vgg11", "vgg13", "vgg16", "vgg19",
           "load_vgg", "vgg_from_file"]

#: Channels of each convolution per block (torchvision's configurations "A", "B", "D", "E").
VGG_CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),
}


class VGGWeightsNotFound(HintedError, FileNotFoundError):
    """torchvision's VGG weights are not in the local torch hub cache (deepfit never downloads them)."""


class VGGWeightsError(HintedError, ValueError):
    """A weight file that cannot be read, or whose tensors do not fit the VGG asked for (naming them)."""


def _read(path: Path) -> dict[str, torch.Tensor]:
    from ..learner import _read_weights  # not at the top: vision.learner imports the models
    try:
        return _read_weights(path)
    except ValueError as e:
        raise VGGWeightsError(f"{path} is not a readable weight file: truncated, not a PyTorch or safetensors "
                              "file, or holding pickled Python objects (which deepfit never loads).",
                              f"({e})", cli_hint="Give torchvision's VGG weight file.") from None


@register_model
class VGG(nn.Module):
    """A VGG network: `features` (3x3 convolutions, optional batch norm, ReLU, 2x2 max pooling after each
    of the 5 blocks), `avgpool` (adaptive, to 7x7), `flatten` and `classifier` (Linear 25088 -> 4096 ->
    4096 -> n_out with ReLU and dropout), with torchvision's parameter names.

    Args:
        config: "vgg11", "vgg13", "vgg16" or "vgg19".
        batch_norm: a batch norm after every convolution (torchvision's `vgg16_bn`...).
        n_out: outputs of the classifier (1000 for ImageNet weights).
        n_in: input channels.
        dropout: dropout probability in the classifier.

    Attributes:
        layer_names: the papers' names of the layers of `features` (`"conv4_2"`) -> their module path
            (`"features.19"` in VGG16), in forward order.
    """

    def __init__(self, config: str = "vgg16", batch_norm: bool = False, n_out: int = 1000, n_in: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        if config not in VGG_CONFIGS:
            raise ValueError(f"`config` must be one of {sorted(VGG_CONFIGS)}; received config={config!r}.")
        self.config = {"config": config, "batch_norm": bool(batch_norm), "n_out": int(n_out), "n_in": int(n_in),
                       "dropout": float(dropout)}
        layers: list[nn.Module] = []
        self.layer_names: dict[str, str] = {}
        ni = n_in
        for b, block in enumerate(VGG_CONFIGS[config], start=1):
            for i, nf in enumerate(block, start=1):
                self.layer_names[f"conv{b}_{i}"] = f"features.{len(layers)}"
                layers.append(nn.Conv2d(ni, nf, 3, padding=1))
                if batch_norm:
                    self.layer_names[f"bn{b}_{i}"] = f"features.{len(layers)}"
                    layers.append(nn.BatchNorm2d(nf))
                self.layer_names[f"relu{b}_{i}"] = f"features.{len(layers)}"
                layers.append(nn.ReLU())  # not in place: a hooked convolution output keeps its values
                ni = nf
            self.layer_names[f"pool{b}"] = f"features.{len(layers)}"
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()  # no parameters: the state dict keeps torchvision's names
        self.classifier = _classifier(n_out, dropout)
        _init(self)

    @property
    def layer_aliases(self) -> dict[str, str]:
        """The names `FeatureExtractor` accepts besides module paths (same as `layer_names`)."""
        return self.layer_names

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (for export)."""
        return dict(self.config)


def _classifier(n_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4096, 4096),
                         nn.ReLU(), nn.Dropout(dropout), nn.Linear(4096, n_out))


def _init(model: nn.Module) -> None:
    for m in model.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def vgg11(n_out: int = 1000, n_in: int = 3, batch_norm: bool = False) -> VGG:
    """VGG11 (configuration A; 132,863,336 parameters with 1000 classes)."""
    return VGG("vgg11", batch_norm, n_out=n_out, n_in=n_in)


def vgg13(n_out: int = 1000, n_in: int = 3, batch_norm: bool = False) -> VGG:
    """VGG13 (configuration B; 133,047,848 parameters with 1000 classes)."""
    return VGG("vgg13", batch_norm, n_out=n_out, n_in=n_in)


def vgg16(n_out: int = 1000, n_in: int = 3, batch_norm: bool = False) -> VGG:
    """VGG16 (configuration D; 138,357,544 parameters with 1000 classes)."""
    return VGG("vgg16", batch_norm, n_out=n_out, n_in=n_in)


def vgg19(n_out: int = 1000, n_in: int = 3, batch_norm: bool = False) -> VGG:
    """VGG19 (configuration E; 143,667,240 parameters with 1000 classes)."""
    return VGG("vgg19", batch_norm, n_out=n_out, n_in=n_in)


def load_vgg(arch: str = "vgg16", weights: str | Path | bool = True, batch_norm: bool = False,
             features_only: bool = False) -> VGG:
    """A VGG network with pretrained weights from a local file; never downloads.

    Every tensor of `features` must be in the file with its shape; the classifier's tensors are loaded
    when the file has them all with ImageNet's shapes (a file with only `features.*`, enough for feature
    losses, is accepted: the classifier is then freshly initialised). The weights are loaded in
    float32 on the CPU, without initialising the network first.

    Args:
        arch: "vgg11", "vgg13", "vgg16" or "vgg19".
        weights: True for torchvision's file in torch's hub cache (`<arch>-*.pth`, or `<arch>_bn-*.pth`
            with `batch_norm`), or the path of a .pth/.pt file (read with `torch.load(weights_only=True)`)
            or a .safetensors file.
        batch_norm: the batch-norm variant (`vgg16_bn`...).
        features_only: replace the classifier by `nn.Identity` (feature losses never use it; saves its
            120M parameters and its initialisation).

    Raises:
        FileNotFoundError: no such file, or none in the hub cache (`VGGWeightsNotFound`, saying where it
            looked).
        ValueError: the file is unreadable or its tensors do not fit (naming them).

    Example:
        >>> net = load_vgg("vgg19")                   # ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth
        >>> net = load_vgg("vgg16", "weights/vgg16.safetensors")
    """
    from ..learner import _hub_file  # not at the top: vision.learner imports the models
    if arch not in VGG_CONFIGS:
        raise ValueError(f"`arch` must be one of {sorted(VGG_CONFIGS)}; received arch={arch!r}.")
    name = f"{arch}_bn" if batch_norm else arch
    if weights is True:
        found = _hub_file(name)
        if found is None:
            import os
            home = os.environ.get("TORCH_HOME", "~/.cache/torch")
            raise VGGWeightsNotFound(f"No weights for {name} in the torch hub cache ({home}/hub/checkpoints/"
                                     f"{name}-*.pth); deepfit never downloads them.",
                                     "Put torchvision's file there, or give its path (weights='path/to/file.pth').",
                                     cli_hint=f"Put torchvision's file there, or give its path (--extractor "
                                              f"path/to/{name}.pth), or use --extractor random (no download needed).")
        weights = found
    if weights is False or weights is None:
        raise ValueError("`weights` must be True (the hub cache) or a file path; for random weights call "
                         f"{arch}() instead.")
    path = Path(weights)
    state = _read(path)
    with torch.device("meta"):  # no memory, no initialisation: the file's tensors are assigned below
        model = VGG(arch, batch_norm)
    expected = model.state_dict()
    missing = [k for k in expected if k.startswith("features.") and k not in state]
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise VGGWeightsError(f"The weights in {path} do not fit {name}: missing {', '.join(missing[:8])}{more}.",
                              "Is it a file for another architecture (or the variant "
                              f"{'without batch norm: batch_norm=False' if batch_norm else 'with: batch_norm=True'})?",
                              cli_hint="Is it a file for another architecture?")
    bad = [f"{k} is {tuple(state[k].shape)} in the file but {tuple(v.shape)} in the model"
           for k, v in expected.items() if k.startswith("features.") and state[k].shape != v.shape]
    if bad:
        raise VGGWeightsError(f"The weights in {path} do not fit {name}: " + "; ".join(bad[:8]) + ".")
    head = [k for k in expected if not k.startswith("features.")]
    if features_only:
        model.classifier = nn.Identity()
        expected = {k: v for k, v in expected.items() if k.startswith("features.")}
    elif not all(k in state and state[k].shape == expected[k].shape for k in head):
        # a features-only file (or one fine-tuned for other classes): a freshly initialised classifier
        model.classifier = _classifier(1000, model.config["dropout"])
        _init(model.classifier)
        expected = {k: v for k, v in expected.items() if k.startswith("features.")}
    model.load_state_dict({k: state[k].to(v.dtype).contiguous() for k, v in expected.items()}, strict=False,
                          assign=True)
    return model

def vgg_from_file(path: str | Path, features_only: bool = False) -> VGG:
    """A VGG network with the weights of a torchvision-layout file, its depth and batch norm read from the
    tensors (the number of convolutions in `features`: 8, 10, 13 or 16).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable, or not the weights of a VGG (saying what it holds).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No VGG weight file at {path}.")
    state = _read(path)
    convs = [k for k, v in state.items() if k.startswith("features.") and k.endswith(".weight") and v.ndim == 4]
    by_count = {sum(len(b) for b in blocks): name for name, blocks in VGG_CONFIGS.items()}
    if len(convs) not in by_count:
        keys = ", ".join(list(state)[:6]) + (", ..." if len(state) > 6 else "")
        raise VGGWeightsError(f"{path} does not hold VGG weights in torchvision's layout (features.N.weight with 8, "
                              f"10, 13 or 16 convolutions); it has {len(convs)} such convolutions (keys: {keys}).")
    batch_norm = any(k.startswith("features.") and k.endswith(".running_mean") for k in state)
    return load_vgg(by_count[len(convs)], path, batch_norm=batch_norm, features_only=features_only)
