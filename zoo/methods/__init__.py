"""One file per method: networks -> losses -> LightningModule -> `@register`.

Importing this package registers every method with `zoo.registry`.
"""

from zoo.methods.adain import AdaIN
from zoo.methods.baselines import Bicubic, Identity
from zoo.methods.cin import CIN
from zoo.methods.colorization import Colorization
from zoo.methods.cyclegan import CycleGAN
from zoo.methods.gatys import Gatys
from zoo.methods.inversion import Inversion
from zoo.methods.johnson import Johnson
from zoo.methods.munit import MUNIT
from zoo.methods.pix2pix import Pix2Pix
from zoo.methods.srgan import SRGAN, SRResNetModel

__all__ = ["AdaIN", "Bicubic", "CIN", "Colorization", "CycleGAN", "Gatys", "Identity", "Inversion", "Johnson", "MUNIT", "Pix2Pix", "SRGAN", "SRResNetModel"]
