"""Content and style losses of neural style transfer, with each reference's normalisation selectable
(`../shared/reference/METHODS.md` §1, §3, §5). Features are (B, C, H, W); losses are averaged over the
batch where the reference works on one image.

Gram conventions (`convention=`):

- `"paper"`: Gatys et al. eq. 4, E_l = 1/(4 N_l² M_l²) Σ (G − A)² with raw Gram matrices G = F Fᵀ
  (N_l channels, M_l = H·W positions).
- `"hw"`: G / (H·W), then the mean squared difference (the authors' PyTorch notebook).
- `"chw"`: G / (C·H·W), then the mean squared difference (jcjohnson/neural-style, pytorch/examples
  fast_neural_style).
- `"bchw"`: the whole batch as one (B·C, B·C) Gram over B·C·H·W (the PyTorch tutorial; equal to
  `"chw"` for one image).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.nn.thumbnail_norm import norm_statistics

__all__ = [
    "GRAM_CONVENTIONS", "CONTENT_CONVENTIONS", "gram_matrix", "content_loss", "style_loss", "layered_style_loss",
    "mean_std", "mean_std_style_loss", "symmetric_power",
]

GRAM_CONVENTIONS = ("paper", "hw", "chw", "bchw")
CONTENT_CONVENTIONS = ("paper", "mse")


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        from zoo.errors import ZooError

        raise ZooError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")


def gram_matrix(features: Tensor, normalize: str = "none") -> Tensor:
    """(B, C, C) Gram matrices F Fᵀ of (B, C, H, W) features, divided by nothing (`"none"`), H·W (`"hw"`)
    or C·H·W (`"chw"`); `"bchw"` gives one (B·C, B·C) matrix over the whole batch / (B·C·H·W)."""
    _check("Gram normalisation", normalize, ("none", "hw", "chw", "bchw"))
    b, c, h, w = features.shape
    if normalize == "bchw":
        flat = features.reshape(b * c, h * w)
        return flat @ flat.t() / (b * c * h * w)
    flat = features.reshape(b, c, h * w)
    gram = flat @ flat.transpose(1, 2)
    return gram / {"none": 1, "hw": h * w, "chw": c * h * w}[normalize]


def content_loss(features: Tensor, target: Tensor, convention: str = "paper") -> Tensor:
    """`"paper"`: ½ Σ (F − P)² (Gatys et al. eq. 1), averaged over the batch; `"mse"`: mean (F − P)²."""
    _check("content convention", convention, CONTENT_CONVENTIONS)
    if convention == "mse":
        return F.mse_loss(features, target)
    return 0.5 * (features - target).pow(2).flatten(1).sum(1).mean()


def style_loss(features: Tensor, target: Tensor, convention: str = "paper", *, target_is_gram: bool = False) -> Tensor:
    """One layer's style loss between `features` and the style image's features (or its Gram matrix,
    `target_is_gram=True`, computed with the same convention; a single style Gram is broadcast over the
    batch)."""
    _check("Gram convention", convention, GRAM_CONVENTIONS)
    normalize = "none" if convention == "paper" else convention
    gram = gram_matrix(features, normalize)
    target_gram = target if target_is_gram else gram_matrix(target, normalize)
    if convention != "paper":
        return F.mse_loss(gram, target_gram.expand_as(gram))
    _, c, h, w = features.shape
    return (gram - target_gram).pow(2).flatten(1).sum(1).mean() / (4.0 * c**2 * (h * w) ** 2)


def layered_style_loss(features: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                       weights: Mapping[str, float], convention: str = "paper", *, targets_are_gram: bool = False) -> Tensor:
    """Σ_l w_l E_l over the layers named in `weights` (Gatys et al. eq. 5)."""
    missing = [name for name in weights if name not in features or name not in targets]
    if missing:
        from zoo.errors import ZooError

        raise ZooError(f"no features for style layer(s) {missing}: extract them first")
    return sum(w * style_loss(features[name], targets[name], convention, target_is_gram=targets_are_gram)
               for name, w in weights.items())


def mean_std(features: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per sample and channel: mean and std over H·W, std = sqrt(unbiased variance + eps) (the AdaIN
    reference's `calc_mean_std`), each (B, C, 1, 1)."""
    b, c = features.shape[:2]
    flat = features.reshape(b, c, -1)
    # tiled inference may substitute the whole image's statistics (zoo.nn.thumbnail_norm)
    return norm_statistics(lambda: (flat.mean(2).view(b, c, 1, 1), (flat.var(2) + eps).sqrt().view(b, c, 1, 1)))


def mean_std_style_loss(features: Mapping[str, Tensor] | Tensor, targets: Mapping[str, Tensor] | Tensor,
                        eps: float = 1e-5) -> Tensor:
    """AdaIN's style loss (Huang & Belongie eq. 13): Σ_layers ‖μ(φ(g)) − μ(φ(s))‖² + ‖σ(φ(g)) − σ(φ(s))‖²,
    each term a mean squared error. Takes one tensor each or mappings layer -> tensor."""
    if isinstance(features, Tensor):
        features, targets = {"_": features}, {"_": targets}  # type: ignore[dict-item]
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, f in features.items():
        mu_f, sigma_f = mean_std(f, eps)
        mu_t, sigma_t = mean_std(targets[name], eps)  # type: ignore[index]
        total = total + F.mse_loss(mu_f, mu_t.expand_as(mu_f)) + F.mse_loss(sigma_f, sigma_t.expand_as(sigma_f))
    return total


def symmetric_power(matrix: Tensor, power: float) -> Tensor:
    """M^p of a symmetric positive (semi-)definite matrix through its eigendecomposition, eigenvalues
    floored at 1e-12 (the matrix roots of colour transfer: Gatys et al.'s colour matching, AdaIN's CORAL)."""
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(1e-12).pow(power)) @ vectors.t()
