"""Multi-scale discriminator of MUNIT (NVlabs/MUNIT `MsImageDis`; Wang et al. 2018's pix2pixHD idea):
the same PatchGAN-style net applied to the image and to 2x, 4x, ... average-pooled copies, one logit
map per scale. Keys `cnns.<scale>.<layer>.conv.*` and `cnns.<scale>.<n_layer>.*`, 8,271,171 parameters
with MUNIT's defaults (dim 64, 4 layers, 3 scales), as the reference."""

from __future__ import annotations

import torch
from torch import nn

from zoo.nn.blocks import Conv2dBlock

__all__ = ["MultiScaleDiscriminator"]


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, input_dim: int = 3, dim: int = 64, n_layer: int = 4, norm: str = "none",
                 activ: str = "lrelu", num_scales: int = 3, pad_type: str = "reflect") -> None:
        super().__init__()
        # count_include_pad=False: border pixels are averages of real pixels only.
        self.downsample = nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
        self.cnns = nn.ModuleList(
            self._make_net(input_dim, dim, n_layer, norm, activ, pad_type) for _ in range(num_scales)
        )

    @staticmethod
    def _make_net(input_dim: int, dim: int, n_layer: int, norm: str, activ: str, pad_type: str) -> nn.Sequential:
        layers: list[nn.Module] = [Conv2dBlock(input_dim, dim, 4, 2, 1, norm="none", activation=activ, pad_type=pad_type)]
        for _ in range(n_layer - 1):
            layers.append(Conv2dBlock(dim, dim * 2, 4, 2, 1, norm=norm, activation=activ, pad_type=pad_type))
            dim *= 2
        layers.append(nn.Conv2d(dim, 1, 1, 1, 0))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for net in self.cnns:
            outputs.append(net(x))
            x = self.downsample(x)
        return outputs
