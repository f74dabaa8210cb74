"""One file per method: networks -> losses -> LightningModule -> `@register`.

Importing this package registers every method with `zoo.registry`.
"""

from zoo.methods.baselines import Bicubic, Identity
from zoo.methods.cyclegan import CycleGAN
from zoo.methods.munit import MUNIT
from zoo.methods.pix2pix import Pix2Pix

__all__ = ["Bicubic", "CycleGAN", "Identity", "MUNIT", "Pix2Pix"]
