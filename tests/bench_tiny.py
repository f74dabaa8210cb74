"""Tiny weight-free methods, one per task the benchmark runner drives (import as ``bench_tiny``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.module import ZooModule
from zoo.registry import register

__all__ = ["TinyMultimodal", "TinyUpscale", "TinyColor", "TinyStyle"]

_IO = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 1, "directions": ["a2b"], "eval_mode": True}


class _Tiny(ZooModule):
    weight_free = True
    default_io = _IO

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.G = nn.Conv2d(3, 3, 1)  # a parameter, so Lightning has a device to put it on


@register(key="benchmm")
class TinyMultimodal(_Tiny):
    """sample(): the input blended with noise drawn from `seed` — different seeds, different samples."""

    task = "translation-multimodal"

    def sample(self, x: torch.Tensor, n: int = 8, seed: int | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return (0.5 * x + 0.5 * torch.rand(n, *x.shape[1:], generator=g).to(x)).clamp(0, 1)


@register(key="benchsr")
class TinyUpscale(_Tiny):
    task = "super-resolution"
    default_io = {**_IO, "scale": 4}

    def upscale(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=4, mode="nearest")


@register(key="benchcolor")
class TinyColor(_Tiny):
    task = "colorization"

    def colorize(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register(key="benchstyle")
class TinyStyle(_Tiny):
    task = "style"

    def stylize(self, content: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * content + 0.5 * style
