"""Weight-free reference rows for the leaderboards.

`identity` returns its input (translation: the floor any trained model must beat; it is also what
FID between the two domains measures). `bicubic` upscales with MATLAB-compatible bicubic
interpolation, the "Bicubic" row of every super-resolution table (SRGAN Table 2, EDSR, ...).
Neither has parameters to train; `zoo.bench` scores them from `zoo.create(key)`.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.module import ZooModule
from zoo.registry import register
from zoo.tasks import SuperResolutionMixin, TranslationMixin

__all__ = ["Identity", "Bicubic", "MatlabBicubic"]


class _NoTraining:
    weight_free = True

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201 - Lightning's signature
        raise ZooError(f"{self.method!r} is a weight-free baseline: there is nothing to train. Score it with zoo.bench.")

    def configure_optimizers(self) -> None:
        return None


@register(key="identity")
class Identity(_NoTraining, TranslationMixin, ZooModule):
    """Output = input, in both directions."""

    task = "translation"
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 1, "directions": ["a2b", "b2a"], "eval_mode": True}

    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.G = nn.Identity()

    def generator(self, direction: str) -> nn.Module:
        return self.G

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return x


class MatlabBicubic(nn.Module):
    """MATLAB `imresize(x, scale, 'bicubic')` as a module (input and output in [0, 1], clamped)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = int(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from zoo.metrics.resize import imresize_matlab

        return imresize_matlab(x, self.scale).clamp(0, 1)


@register(key="bicubic")
class Bicubic(_NoTraining, SuperResolutionMixin, ZooModule):
    """Bicubic upscaling by `scale` (MATLAB-compatible kernel, a = -0.5)."""

    task = "super-resolution"
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 1, "directions": ["a2b"], "eval_mode": True, "scale": 4}

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        if int(scale) < 1:
            raise ZooError(f"bicubic: scale must be an integer >= 1, got {scale!r}")
        self.save_hyperparameters()
        self.net = MatlabBicubic(scale)
        self.io["scale"] = int(scale)

    def upscaler(self) -> nn.Module:
        return self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
