"""Adversarial objectives, as the reference `GANLoss`: targets are constant real (1) / fake (0) maps
the size of the discriminator's output, and the discriminator outputs raw logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GANLoss", "GAN_MODES"]

GAN_MODES = ("vanilla", "lsgan", "hinge")


class GANLoss(nn.Module):
    """`vanilla`: BCE-with-logits (Goodfellow et al.; pix2pix default); `lsgan`: least squares (Mao et al.;
    CycleGAN, MUNIT); `hinge`: hinge loss (the generator side is -E[D(G(x))])."""

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            from zoo.errors import ZooError

            raise ZooError(f"unknown gan_mode {mode!r}: choose one of {', '.join(GAN_MODES)}")
        self.mode = mode
        self.real_label = real_label
        self.fake_label = fake_label

    def forward(self, prediction: torch.Tensor, target_is_real: bool, *, for_discriminator: bool = True) -> torch.Tensor:
        if self.mode == "hinge":
            if not for_discriminator:
                return -prediction.mean()
            return F.relu(1.0 - prediction).mean() if target_is_real else F.relu(1.0 + prediction).mean()
        target = torch.full_like(prediction, self.real_label if target_is_real else self.fake_label)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(prediction, target)
        return F.mse_loss(prediction, target)
