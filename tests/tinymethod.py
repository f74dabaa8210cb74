"""A tiny registered method for registry/hub tests: a conv `G` (with BatchNorm buffers) and a conv `D`.

Import it as ``tinymethod`` (the tests put this folder on sys.path) so it registers once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.module import ZooModule
from zoo.registry import register

__all__ = ["TinyNet", "batches"]


@register(key="tinynet")
class TinyNet(ZooModule):
    task = "translation"
    default_io = {"range": [-1.0, 1.0], "channels": 3, "size_multiple": 4, "directions": ["a2b"], "eval_mode": True}
    inference_modules = ("G",)

    def __init__(self, width: int = 4, channels: int = 3, lr: float = 1e-2, tied: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.G = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, channels, 3, padding=1),
            nn.Tanh(),
        )
        self.D = nn.Sequential(nn.Conv2d(2 * channels, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(width, 1, 1))
        if tied:  # a second name for G: its state_dict entries share storage with G's
            self.H = self.G
        self.io["channels"] = channels

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return self.G(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        a, b = batch
        fake = self(a)
        return F.l1_loss(fake, b) + 0.0 * self.D(torch.cat([a, fake], 1)).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def batches(n: int = 4, channels: int = 3, size: int = 8, seed: int = 0) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, channels, size, size, generator=g) * 2 - 1
    b = torch.rand(n, channels, size, size, generator=g) * 2 - 1
    return torch.utils.data.TensorDataset(a, b)
