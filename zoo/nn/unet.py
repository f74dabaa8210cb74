"""U-Net generator of pix2pix (Isola et al. 2017, §3.2.1), layer for layer as the junyanz reference
(`UnetGenerator` / `UnetSkipConnectionBlock`), so its state_dict keys (`model.model.1.model.3...`) and
parameter count (54,413,955 for `unet_256`, 3->3 channels) match the released weights."""

from __future__ import annotations

import torch
from torch import nn

from zoo.nn.norm import norm_layer, uses_bias

__all__ = ["UnetGenerator", "UnetSkipBlock"]


class UnetSkipBlock(nn.Module):
    """One U-Net level: down (LeakyReLU, Conv4x4/2, norm) -> inner level -> up (ReLU, ConvT4x4/2, norm),
    with the level's input concatenated to its output (except the outermost level)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        *,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        bias = uses_bias(norm)
        make_norm = norm_layer(norm)
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        # In-place, as in the reference: the skip branch therefore carries LeakyReLU(x), not x.
        # Released weights were trained that way, so output parity depends on it.
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, make_norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, make_norm(inner_nc), submodule, uprelu, upconv, make_norm(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """`num_downs` stride-2 levels: 8 for `unet_256` (a 256x256 input reaches a 1x1 bottleneck), 7 for
    `unet_128`. Inputs must be multiples of 2**num_downs. The ngf*8 levels next to the bottleneck carry
    Dropout(0.5) when `use_dropout` (the paper's noise source, §3.1)."""

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5 (got {num_downs})")
        self.size_multiple = 2**num_downs
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
