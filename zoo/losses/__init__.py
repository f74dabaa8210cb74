"""Shared losses: adversarial (vanilla, lsgan, hinge); content, Gram/style and TV losses join later."""

from zoo.losses.adversarial import GAN_MODES, GANLoss

__all__ = ["GAN_MODES", "GANLoss"]
