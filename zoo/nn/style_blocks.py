"""Blocks of the feed-forward style-transfer networks (Johnson et al. 2016; Dumoulin et al. 2017):
reflection-padded convolutions, nearest-neighbour upsampling convolutions and conditional instance norm.

Both references pad by reflection and then convolve without padding (pytorch/examples `ConvLayer`,
magenta `ops.conv2d`: `tf.pad(..., "REFLECT")` + VALID), and both upsample by nearest-neighbour
resizing followed by a stride-1 convolution instead of a transposed convolution (no checkerboard
artefacts; pytorch/examples `UpsampleConvLayer`, magenta `ops.upsampling`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ReflectConv2d", "ConditionalInstanceNorm2d", "style_weights"]


class ReflectConv2d(nn.Module):
    """Optional nearest-neighbour ×`upsample` resize, `ReflectionPad2d(kernel_size // 2)`, then an unpadded
    `Conv2d`. Its only parameters are `conv2d.weight` (and `conv2d.bias`), the keys of pytorch/examples'
    `ConvLayer` / `UpsampleConvLayer`. A stride-2, 3x3 layer maps H to ceil(H / 2), as TF's VALID conv
    after the same padding does."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 upsample: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.upsample = int(upsample)
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample > 1:
            # Equal to tf.image.resize_nearest_neighbor(align_corners=False) for integer factors.
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(self.reflection_pad(x))


class ConditionalInstanceNorm2d(nn.Module):
    """Conditional instance normalisation (Dumoulin et al. 2017, §2): one (γ_s, β_s) pair per style s,

        CIN(x, s) = γ_s (x − μ(x)) / sqrt(σ²(x) + ε) + β_s,

    with μ, σ² per sample and channel over H, W (biased variance, ε = 1e-5, as `tf.nn.moments` and
    `tf.nn.batch_normalization` in magenta's `ops.conditional_instance_norm`). `gamma` and `beta` are
    [num_styles, C] (init 1 and 0). `forward(x, weights)` takes style weights [B, N] (or [1, N] for the
    whole batch): a one-hot row selects one style; any other row blends them as magenta's
    `weighted_instance_norm`, γ = Σ_i w_i γ_i and β = Σ_i w_i β_i, with the weights used as given
    (not normalised)."""

    def __init__(self, num_features: int, num_styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        if num_styles < 1:
            raise ValueError(f"num_styles must be >= 1, got {num_styles}")
        self.num_features, self.eps = int(num_features), float(eps)
        self.beta = nn.Parameter(torch.zeros(num_styles, num_features))
        self.gamma = nn.Parameter(torch.ones(num_styles, num_features))

    @property
    def num_styles(self) -> int:
        return self.gamma.shape[0]

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        if weights.ndim != 2 or weights.shape[1] != self.num_styles or weights.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"style weights must be [B, {self.num_styles}] or [1, {self.num_styles}], "
                             f"got {list(weights.shape)} for a batch of {x.shape[0]}")
        weights = weights.to(self.gamma.dtype)
        gamma = (weights @ self.gamma)[:, :, None, None]
        beta = (weights @ self.beta)[:, :, None, None]
        return F.instance_norm(x, eps=self.eps) * gamma + beta

    @torch.no_grad()
    def add_styles(self, k: int) -> None:
        """Append `k` new styles with γ = 1, β = 0 (the initial values). The parameters are replaced by
        longer ones: build optimizers after calling this."""
        g, b = self.gamma, self.beta
        self.gamma = nn.Parameter(torch.cat([g, g.new_ones(k, self.num_features)]), requires_grad=g.requires_grad)
        self.beta = nn.Parameter(torch.cat([b, b.new_zeros(k, self.num_features)]), requires_grad=b.requires_grad)

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_styles={self.num_styles}, eps={self.eps}"


def style_weights(index: Tensor | int, num_styles: int, *, device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot style weights [B, num_styles] for a style label (int) or labels (LongTensor [B])."""
    labels = torch.as_tensor(index, device=device).long().reshape(-1)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_styles):
        raise ValueError(f"style index out of range 0..{num_styles - 1}: {labels.tolist()}")
    return F.one_hot(labels, num_styles).to(dtype)
