"""PatchGAN discriminator (pix2pix §3.2.2; junyanz `NLayerDiscriminator`): with n_layers=3 every output
logit sees a 70x70 patch, and a 256x256 input gives a 30x30 logit map. Keys `model.{0,2,5,8,11}`
and parameter counts (2,768,705 for 6-channel BatchNorm, 2,764,737 for 3-channel InstanceNorm) match
the reference."""

from __future__ import annotations

import torch
from torch import nn

from zoo.nn.norm import norm_layer, uses_bias

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """Outputs raw logits (no sigmoid): the vanilla GAN loss is BCE-with-logits."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=2, padding=1, bias=bias),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1, bias=bias),
            make_norm(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
