"""Weight initialisation as in the pix2pix/CycleGAN reference (`init_weights('normal', 0.02)`)."""

from __future__ import annotations

from torch import nn

__all__ = ["init_normal", "init_kaiming"]


def init_normal(module: nn.Module, gain: float = 0.02, batchnorm: bool = True) -> nn.Module:
    """Conv/Linear weights ~ N(0, gain), biases 0; BatchNorm weights ~ N(1, gain), biases 0 (junyanz
    `init_weights('normal')`). `batchnorm=False` leaves BatchNorm alone (MUNIT's `weights_init('gaussian')`)."""

    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif batchnorm and isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    module.apply(_init)
    return module


def init_kaiming(module: nn.Module) -> nn.Module:
    """MUNIT's `weights_init('kaiming')`: Conv/Linear weights ~ kaiming_normal (fan_in, a=0), biases 0;
    other parameters (e.g. its LayerNorm's U(0, 1) gamma) keep their initialisation."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
