"""Shared network blocks: norms, generators, discriminators, initialisation."""

from zoo.nn.blocks import MLP, Conv2dBlock, LinearBlock, ResBlock, ResBlocks
from zoo.nn.image_pool import ImagePool
from zoo.nn.init import init_kaiming, init_normal
from zoo.nn.multiscale import MultiScaleDiscriminator
from zoo.nn.norm import NORMS, AdaptiveInstanceNorm2d, MunitLayerNorm, norm_layer, uses_bias
from zoo.nn.patchgan import PatchDiscriminator
from zoo.nn.resnet import RESNET_BLOCKS, ResnetBlock, ResnetGenerator
from zoo.nn.style_blocks import ConditionalInstanceNorm2d, ReflectConv2d, style_weights
from zoo.nn.thumbnail_norm import norm_statistics, thumbnail_normalized, thumbnail_of
from zoo.nn.unet import UnetGenerator, UnetSkipBlock
from zoo.nn.vgg import VGGFeatures

__all__ = [
    "MLP", "Conv2dBlock", "LinearBlock", "ResBlock", "ResBlocks", "MultiScaleDiscriminator",
    "AdaptiveInstanceNorm2d", "MunitLayerNorm",
    "ImagePool", "init_kaiming", "init_normal", "NORMS", "norm_layer", "uses_bias", "PatchDiscriminator",
    "ConditionalInstanceNorm2d", "ReflectConv2d", "style_weights",
    "norm_statistics", "thumbnail_normalized", "thumbnail_of",
    "RESNET_BLOCKS", "ResnetBlock", "ResnetGenerator", "UnetGenerator", "UnetSkipBlock", "VGGFeatures",
]
