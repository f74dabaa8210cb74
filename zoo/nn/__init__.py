"""Shared network blocks: norms, generators, discriminators, initialisation."""

from zoo.nn.init import init_normal
from zoo.nn.norm import NORMS, norm_layer, uses_bias
from zoo.nn.patchgan import PatchDiscriminator
from zoo.nn.unet import UnetGenerator, UnetSkipBlock

__all__ = ["init_normal", "NORMS", "norm_layer", "uses_bias", "PatchDiscriminator", "UnetGenerator", "UnetSkipBlock"]
