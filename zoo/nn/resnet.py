"""ResNet generator of CycleGAN (Zhu et al. 2017, appendix 7.2; Johnson et al. 2016's layout), layer for
layer as the junyanz reference (`ResnetGenerator` / `ResnetBlock`): c7s1-64, d128, d256, n x R256,
u128, u64, c7s1-3, tanh. Its state_dict keys (`model.1.weight`, `model.10.conv_block.1.weight`, ...)
and parameter counts (11,378,179 with 9 blocks, 7,837,699 with 6, InstanceNorm) match the released
weights, so they load without renaming."""

from __future__ import annotations

import torch
from torch import nn

from zoo.nn.norm import norm_layer, uses_bias

__all__ = ["ResnetBlock", "ResnetGenerator", "RESNET_BLOCKS"]

#: The reference's `--netG` names and their residual block counts (paper: 6 for 128 px, 9 for >= 256 px).
RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}


class ResnetBlock(nn.Module):
    """x + [pad, conv3x3, norm, ReLU, (Dropout 0.5), pad, conv3x3, norm](x)."""

    def __init__(self, dim: int, norm: str = "instance", use_dropout: bool = False, padding_type: str = "reflect") -> None:
        super().__init__()
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)

        def pad() -> list[nn.Module]:
            if padding_type == "reflect":
                return [nn.ReflectionPad2d(1)]
            if padding_type == "replicate":
                return [nn.ReplicationPad2d(1)]
            return []  # "zero": the convolution pads

        conv_pad = 1 if padding_type == "zero" else 0
        layers: list[nn.Module] = [
            *pad(), nn.Conv2d(dim, dim, kernel_size=3, padding=conv_pad, bias=bias), make_norm(dim), nn.ReLU(True)
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*pad(), nn.Conv2d(dim, dim, kernel_size=3, padding=conv_pad, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Two stride-2 downsamplings, `n_blocks` residual blocks at 1/4 resolution, two transposed-conv
    upsamplings (kept although they cause checkerboards: the released weights use them). Inputs must be
    multiples of 4 (`size_multiple`); `translate()` pads and crops back."""

    size_multiple = 4

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        norm: str = "instance",
        use_dropout: bool = False,
        n_blocks: int = 9,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):  # downsampling
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                make_norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout, padding_type) for _ in range(n_blocks)]
        for i in range(2):  # upsampling
            mult = 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                make_norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
