"""Image priors of feature inversion and style transfer (Mahendran & Vedaldi 2015, §3.2): total variation
TV^β and the α-norm, as the deep-goggle reference computes them."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["total_variation", "alpha_norm"]


def total_variation(x: Tensor, beta: float = 2.0, eps: float = 1e-8) -> Tensor:
    """Σ_{b,c,i,j} ((x_{i,j+1} − x_{i,j})² + (x_{i+1,j} − x_{i,j})²)^(β/2), with differences taken to the
    replicated last row/column (so they are 0 there), as deep-goggle's `invert_nn.m`; summed over the
    image and averaged over the batch. β = 2 is the reference default (β = 1 gives spiky images, Fig. 2);
    for β < 2, `eps` keeps the gradient finite where both differences vanish."""
    d_w = torch.cat([x[..., :, 1:], x[..., :, -1:]], dim=-1) - x
    d_h = torch.cat([x[..., 1:, :], x[..., -1:, :]], dim=-2) - x
    squared = d_w.pow(2) + d_h.pow(2)
    terms = squared if beta == 2 else (squared + eps).pow(beta / 2)
    return terms.flatten(1).sum(1).mean()


def alpha_norm(x: Tensor, alpha: float = 6.0) -> Tensor:
    """Σ |x|^α over the image, averaged over the batch (the α-norm prior; α = 6 in the paper)."""
    return x.abs().pow(alpha).flatten(1).sum(1).mean()
