"""Frozen VGG feature extractors for perceptual and style losses, in the three weight variants the
references use, each with its own layout and preprocessing (`../shared/reference/METHODS.md` §0, §1, §5):

- `"torchvision"`: torchvision's VGG-16/19 with its ImageNet weights (RGB in [0, 1], ImageNet mean/std).
- `"gatys"`: the normalised VGG-19 of Gatys et al. (`vgg_conv.pth`, keys `conv1_1.weight ... conv5_4.bias`):
  BGR, 0-255, mean-subtracted (Caffe), same layer layout as torchvision's.
- `"adain"`: AdaIN's `vgg_normalised.pth` (a 53-module Sequential up to relu5_4, keys `0.weight`,
  `2.weight`, ..., `51.bias`, 20,024,396 parameters): a 1x1
  conv that does the preprocessing itself (input RGB in [0, 1]), reflection padding before every 3x3 conv,
  max pooling with ceil_mode.

Weights are found offline, never downloaded: a path argument, else `$ZOO_VGG_WEIGHTS` (a file, or a folder
holding the variant's file), else the variant's own environment variable, the torch hub cache and the zoo
cache (`zoo.metrics.backbones`). When none is there, `WeightsNotFoundError` names the file, its URL and
where to put it. `weights=None` builds random weights (He-normal, seed 0), only when asked; `weights=DEFAULT_OR_RANDOM` (the
built-in demos of the style methods only) looks the file up and falls back to random weights with a loud
warning. `VGGFeatures.random_weights` tells which happened.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from zoo.metrics.backbones import find_backbone_weights, load_backbone_state_dict, load_strict

__all__ = ["VGGFeatures", "vgg_layer_names", "VGG_VARIANTS", "DEFAULT_OR_RANDOM", "random_weights_warning"]

log = logging.getLogger("zoo.nn.vgg")

#: `weights=` value of the built-in demos: the published weights when found, else random ones (warned).
DEFAULT_OR_RANDOM = "default-or-random"

_CONFIGS = {"vgg16": "D", "vgg19": "E"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (0.40760392, 0.45795686, 0.48501961)  # × 255 after subtraction (the Gatys notebook)

#: variant -> (architectures it exists for, backbone file name in zoo.metrics.backbones per architecture)
VGG_VARIANTS: dict[str, dict[str, str]] = {
    "torchvision": {"vgg16": "vgg16", "vgg19": "vgg19"},
    "gatys": {"vgg19": "vgg19-gatys"},
    "adain": {"vgg19": "vgg19-adain"},
}


def vgg_layer_names(arch: str = "vgg16") -> list[str]:
    """Names of torchvision's `features` layers in order: conv1_1, relu1_1, conv1_2, ..., pool5."""
    names, block, index = [], 1, 1
    for v in tv_vgg.cfgs[_CONFIGS[arch]]:
        if v == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 1
        else:
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
            index += 1
    return names


def _adain_layers() -> tuple[nn.Sequential, list[str]]:
    """`vgg_normalised` as the AdaIN reference's Sequential, and a name per module."""
    modules: list[nn.Module] = [nn.Conv2d(3, 3, 1)]
    names = ["preprocess"]
    channels = 3
    for name in vgg_layer_names("vgg19"):
        if name.startswith("conv"):
            width = next(v for v, n in zip(_widths(), _conv_names()) if n == name)
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(channels, width, 3)]
            names += [f"pad{name[4:]}", name]
            channels = width
        elif name.startswith("relu"):
            modules.append(nn.ReLU())
            names.append(name)
        elif name != "pool5":  # the reference's Sequential ends at relu5_4 (53 modules)
            modules.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
            names.append(name)
    return nn.Sequential(*modules), names


def _conv_names() -> list[str]:
    return [n for n in vgg_layer_names("vgg19") if n.startswith("conv")]


def _widths() -> list[int]:
    return [v for v in tv_vgg.cfgs["E"] if v != "M"]


def random_weights_warning(variant: str, arch: str, cause: str = "") -> str:
    """The loud message every output made with random VGG weights carries (logs, checkpoints, cards)."""
    from zoo.metrics.backbones import BACKBONES

    spec = BACKBONES[VGG_VARIANTS[variant][arch]]
    return (
        f"RANDOM VGG WEIGHTS: the {variant} {arch} feature network has random weights{f' ({cause})' if cause else ''}, "
        f"so its losses and outputs are NOT those of the method. For real results download {spec.url} "
        f"({spec.file}) into $TORCH_HOME/hub/checkpoints or the zoo cache's weights/ folder, or point "
        f"${spec.env or 'ZOO_VGG_WEIGHTS'} or $ZOO_VGG_WEIGHTS at it"
    )


@torch.no_grad()
def _init_random(features: nn.Sequential) -> None:
    """Random weights drawn He-normal with zero biases from seed 0, whatever the caller's RNG state (the
    same random VGG in every process and run). PyTorch's default init shrinks the activations about 6x in
    variance per conv, so relu5_1 of a default-random VGG is ~1e-10 of its input and every loss on it
    vanishes; constant-scale random features keep objectives, recipes' loss weights and tests meaningful."""
    generator = torch.Generator().manual_seed(0)
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            layer.bias.zero_()


def _env_override(file_name: str) -> Path | None:
    value = os.environ.get("ZOO_VGG_WEIGHTS")
    if not value:
        return None
    path = Path(value).expanduser()
    return path / file_name if path.is_dir() else path


class VGGFeatures(nn.Module):
    """`forward(x)` with x RGB in [0, 1] returns {layer name: activation} for the requested `layers`
    (`conv4_2`, `relu1_1`, `pool3`, ...); only the layers up to the deepest requested one are kept.
    `arch`: vgg16 or vgg19; `variant`: torchvision | gatys | adain (see the module doc); `weights`:
    "default" (looked up offline), a path, or None (random); `pool="avg"` replaces max pooling by average
    pooling (Gatys et al. §2). `random_weights` says whether the features come from random weights."""

    def __init__(self, arch: str = "vgg16", layers: tuple[str, ...] = ("relu5_3",),
                 weights: str | os.PathLike | None = "default", pool: str = "max", variant: str = "torchvision") -> None:
        super().__init__()
        if variant not in VGG_VARIANTS:
            raise ValueError(f"unknown VGG variant {variant!r}: choose one of {', '.join(VGG_VARIANTS)}")
        if arch not in VGG_VARIANTS[variant]:
            raise ValueError(f"the {variant!r} VGG exists as {', '.join(VGG_VARIANTS[variant])} only, not {arch!r}")
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg' (Gatys et al. recommend average pooling), got {pool!r}")
        if variant == "adain":
            features, names = _adain_layers()
        else:
            features, names = tv_vgg.make_layers(tv_vgg.cfgs[_CONFIGS[arch]], batch_norm=False), vgg_layer_names(arch)
        missing = [name for name in layers if name not in names]
        if missing:
            raise ValueError(f"{arch} has no layer {missing[0]!r}; its layers are {', '.join(names)}")
        self.arch, self.variant, self.layers = arch, variant, tuple(layers)

        backbone = VGG_VARIANTS[variant][arch]
        cause = "weights=None"
        if isinstance(weights, str) and weights == DEFAULT_OR_RANDOM:
            from zoo.errors import WeightsNotFoundError

            try:
                weights = self._default_weights(backbone)
                find_backbone_weights(backbone, weights)
            except WeightsNotFoundError:
                cause = "no weight file was found"
                log.warning("%s", random_weights_warning(variant, arch, cause))
                weights = None
        else:
            weights = self._default_weights(backbone) if isinstance(weights, str) and weights == "default" else weights
        path = find_backbone_weights(backbone, weights)
        if path is not None:
            load_strict(features, self._convert(load_backbone_state_dict(path), names), path, f"{variant} {arch}")
        self.random_weights = path is None
        #: the warning that outputs made with these features must carry (None for published weights)
        self.random_weights_note = random_weights_warning(variant, arch, cause) if self.random_weights else None
        if pool == "avg":  # same windows, no weights involved: the loaded convolutions are unchanged
            features = nn.Sequential(*(
                nn.AvgPool2d(2, 2, ceil_mode=m.ceil_mode) if isinstance(m, nn.MaxPool2d) else m for m in features))
        depth = max(names.index(name) for name in layers) + 1
        self.features = features[:depth]
        if self.random_weights:
            _init_random(self.features)
        self._names = names[:depth]
        mean, std = {"torchvision": (IMAGENET_MEAN, IMAGENET_STD), "gatys": (CAFFE_MEAN_BGR, (1 / 255,) * 3),
                     "adain": ((0.0,) * 3, (1.0,) * 3)}[variant]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        for layer in self.features:
            if isinstance(layer, nn.ReLU):
                layer.inplace = False  # an activation we return must not be overwritten by the next layer
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _default_weights(backbone: str) -> str | Path:
        """`"default"`, or the file `$ZOO_VGG_WEIGHTS` names for this backbone (which must exist)."""
        from zoo.metrics.backbones import BACKBONES

        spec = BACKBONES[backbone]
        override = _env_override(spec.file)
        if override is not None and not override.is_file():
            from zoo.errors import WeightsNotFoundError

            raise WeightsNotFoundError(
                f"$ZOO_VGG_WEIGHTS={os.environ['ZOO_VGG_WEIGHTS']!r} holds no {spec.file} ({spec.description}); "
                f"download {spec.url} and put it there, or unset $ZOO_VGG_WEIGHTS"
            )
        return override if override is not None else "default"

    def _convert(self, state: dict[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
        """The file's keys as `features.<index>` keys of this module's Sequential."""
        if self.variant == "gatys":  # conv1_1.weight -> <index of conv1_1>.weight
            index = {name: i for i, name in enumerate(names)}
            return {f"{index.get(k.rsplit('.', 1)[0], k.rsplit('.', 1)[0])}.{k.rsplit('.', 1)[1]}": v
                    for k, v in state.items()}
        if self.variant == "torchvision":
            return {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        return state  # adain: the file is this Sequential's state dict

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always a fixed feature extractor

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> the variant's input (ImageNet-normalised; Caffe BGR 0-255 minus mean; unchanged)."""
        if self.variant == "gatys":
            x = x.flip(1)  # RGB -> BGR
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        x = self.preprocess(x)
        for name, layer in zip(self._names, self.features):
            x = layer(x)
            if name in self.layers:
                out[name] = x
        return out
