"""Normalisation layers chosen by name, with the reference repos' exact settings."""

from __future__ import annotations

import functools
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.nn.thumbnail_norm import norm_statistics

__all__ = ["norm_layer", "uses_bias", "NORMS", "MunitLayerNorm", "AdaptiveInstanceNorm2d"]

NORMS = ("batch", "instance", "none")


def norm_layer(kind: str) -> Callable[[int], nn.Module]:
    """`batch`: BatchNorm2d(affine, running stats); `instance`: InstanceNorm2d without affine or running
    stats (CycleGAN); `none`: Identity. Same as the junyanz `get_norm_layer`."""
    if kind == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if kind == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if kind == "none":
        return lambda channels: nn.Identity()
    from zoo.errors import ZooError

    raise ZooError(f"unknown norm {kind!r}: choose one of {', '.join(NORMS)}")


def uses_bias(kind: str) -> bool:
    """The reference gives convs before a norm a bias only with InstanceNorm (`use_bias = norm is
    InstanceNorm2d`): BatchNorm has its own shift, and with `none` the reference also leaves bias off."""
    return kind == "instance"


class MunitLayerNorm(nn.Module):
    """MUNIT's LayerNorm (decoder upsampling blocks; NVlabs/MUNIT `networks.LayerNorm`), not nn.LayerNorm:
    per sample, the mean and the *unbiased* standard deviation over C·H·W, eps added to the std (outside
    the square root), then a per-channel affine map with gamma initialised U(0, 1) and beta 0."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.affine = num_features, eps, affine
        if affine:
            self.gamma = nn.Parameter(torch.empty(num_features).uniform_())
            self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        shape = (-1,) + (1,) * (x.ndim - 1)
        mean, std = norm_statistics(lambda: (flat.mean(1).view(shape), flat.std(1).view(shape)))
        x = (x - mean) / (std + self.eps)
        if self.affine:
            channel = (1, -1) + (1,) * (x.ndim - 2)
            x = x * self.gamma.view(channel) + self.beta.view(channel)
        return x


class AdaptiveInstanceNorm2d(nn.Module):
    """Instance normalisation whose affine parameters come from outside (MUNIT §3.2, eq. 7: AdaIN(z, γ, β)
    = γ (z - μ(z)) / σ(z) + β, with γ, β produced from the style code by an MLP).

    Set `weight` (γ) and `bias` (β), each of shape (B·C,), before calling the module (MUNIT's
    `assign_adain_params` does). μ and σ are per sample and channel over H·W, σ = sqrt(biased variance
    + eps), as the reference's `F.batch_norm` on a (1, B·C, H, W) view. `running_mean`/`running_var` are
    never used or updated; they exist because the released checkpoints hold them."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None or self.bias is None:
            raise RuntimeError("AdaIN parameters are not assigned: decode through the generator, which sets them "
                               "from a style code")
        b, c = x.shape[:2]
        out = F.batch_norm(x.reshape(1, b * c, *x.shape[2:]), None, None, self.weight, self.bias, True, 0.0, self.eps)
        return out.view_as(x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"
