"""Frozen VGG feature extractor for perceptual losses, built from torchvision's VGG definition and the
ImageNet weights torchvision publishes (found offline through `zoo.metrics.backbones`: the file, an
environment variable, the torch hub cache or the zoo cache; nothing is downloaded)."""

from __future__ import annotations

import os

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from zoo.metrics.backbones import BACKBONES, find_backbone_weights, load_backbone_state_dict, load_strict

__all__ = ["VGGFeatures", "vgg_layer_names"]

_CONFIGS = {"vgg16": "D", "vgg19": "E"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


class VGGFeatures(nn.Module):
    """`forward(x)` with x in [0, 1] (ImageNet-normalised inside) returns {layer name: activation} for the
    requested `layers` (`conv4_2`, `relu1_1`, `pool3`, ...); only the layers up to the deepest requested one
    are built. `arch`: vgg16 or vgg19. `weights`: "default" (the published torchvision file, looked up
    offline), a path, or None (random weights, for tests). `pool="avg"` replaces max pooling by average
    pooling (Gatys et al. §2)."""

    def __init__(self, arch: str = "vgg16", layers: tuple[str, ...] = ("relu5_3",),
                 weights: str | os.PathLike | None = "default", pool: str = "max") -> None:
        super().__init__()
        if arch not in _CONFIGS or arch not in BACKBONES:
            known = sorted(set(_CONFIGS) & set(BACKBONES))
            raise ValueError(f"unknown VGG {arch!r}: zoo knows {', '.join(known)}")
        names = vgg_layer_names(arch)
        missing = [name for name in layers if name not in names]
        if missing:
            raise ValueError(f"{arch} has no layer {missing[0]!r}; its layers are {', '.join(names)}")
        self.layers = tuple(layers)
        depth = max(names.index(name) for name in layers) + 1
        features = tv_vgg.make_layers(tv_vgg.cfgs[_CONFIGS[arch]], batch_norm=False)
        path = find_backbone_weights(arch, weights)
        if path is not None:
            state = load_backbone_state_dict(path)
            load_strict(features, {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")},
                        path, arch)
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg' (Gatys et al. recommend average pooling), got {pool!r}")
        if pool == "avg":  # same windows, no weights involved: the loaded convolutions are unchanged
            features = nn.Sequential(*(nn.AvgPool2d(2, 2) if isinstance(m, nn.MaxPool2d) else m for m in features))
        self.features = features[:depth]
        self._names = names[:depth]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        for layer in self.features:
            if isinstance(layer, nn.ReLU):
                layer.inplace = False  # an activation we return must not be overwritten by the next layer
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        return super().train(False)  # always a fixed feature extractor

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        x = (x - self.mean) / self.std
        for name, layer in zip(self._names, self.features):
            x = layer(x)
            if name in self.layers:
                out[name] = x
        return out
