"""Weight initialisation as in the pix2pix/CycleGAN reference (`init_weights('normal', 0.02)`)."""

from __future__ import annotations

from torch import nn

__all__ = ["init_normal"]


def init_normal(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """Conv/Linear weights ~ N(0, gain), biases 0; BatchNorm weights ~ N(1, gain), biases 0."""

    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    module.apply(_init)
    return module
