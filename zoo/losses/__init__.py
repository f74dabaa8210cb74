"""Shared losses: adversarial (vanilla, lsgan, hinge), content/style (Gram, mean/std), the VGG loss network
of perceptual losses and image priors."""

from zoo.losses.adversarial import GAN_MODES, GANLoss
from zoo.losses.perceptual import LossNetMixin
from zoo.losses.regularizers import alpha_norm, total_variation
from zoo.losses.style import (
    CONTENT_CONVENTIONS, GRAM_CONVENTIONS, content_loss, gram_matrix, layered_style_loss, mean_std,
    mean_std_style_loss, style_loss, symmetric_power,
)

__all__ = [
    "GAN_MODES", "GANLoss", "LossNetMixin", "alpha_norm", "total_variation", "CONTENT_CONVENTIONS", "GRAM_CONVENTIONS",
    "content_loss", "gram_matrix", "layered_style_loss", "mean_std", "mean_std_style_loss", "style_loss", "symmetric_power",
]
