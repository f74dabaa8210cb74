"""Conv/linear building blocks in the layout of NVlabs/MUNIT (`Conv2dBlock`, `ResBlock(s)`,
`LinearBlock`, `MLP`), so that modules built from them carry the released checkpoints' keys:
a block registers `pad, norm, activation, conv` (only `norm` and `conv`/`fc` hold tensors) and runs
conv(pad(x)) -> norm -> activation."""

from __future__ import annotations

import torch
from torch import nn

from zoo.nn.norm import AdaptiveInstanceNorm2d, MunitLayerNorm

__all__ = ["Conv2dBlock", "ResBlock", "ResBlocks", "LinearBlock", "MLP", "BLOCK_NORMS", "ACTIVATIONS", "PAD_TYPES"]

BLOCK_NORMS = ("bn", "in", "ln", "adain", "none")
ACTIVATIONS = ("relu", "lrelu", "prelu", "selu", "tanh", "none")
PAD_TYPES = ("reflect", "replicate", "zero")


def _norm(kind: str, channels: int, two_d: bool = True) -> nn.Module | None:
    if kind == "bn":
        return nn.BatchNorm2d(channels) if two_d else nn.BatchNorm1d(channels)
    if kind == "in":  # affine=False, no running statistics (PyTorch >= 0.4 defaults)
        return nn.InstanceNorm2d(channels) if two_d else nn.InstanceNorm1d(channels)
    if kind == "ln":
        return MunitLayerNorm(channels)
    if kind == "adain" and two_d:
        return AdaptiveInstanceNorm2d(channels)
    if kind == "none":
        return None
    raise ValueError(f"unsupported norm {kind!r}: choose one of {', '.join(BLOCK_NORMS)}")


def _activation(kind: str) -> nn.Module | None:
    makers = {"relu": lambda: nn.ReLU(inplace=True), "lrelu": lambda: nn.LeakyReLU(0.2, inplace=True),
              "prelu": nn.PReLU, "selu": lambda: nn.SELU(inplace=True), "tanh": nn.Tanh, "none": lambda: None}
    if kind not in makers:
        raise ValueError(f"unsupported activation {kind!r}: choose one of {', '.join(ACTIVATIONS)}")
    return makers[kind]()


def _norm_then_activation(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if block.norm is not None:
        x = block.norm(x)
    if block.activation is not None:
        x = block.activation(x)
    return x


class Conv2dBlock(nn.Module):
    """pad -> conv (with bias) -> norm -> activation."""

    def __init__(self, input_dim: int, output_dim: int, kernel_size: int, stride: int, padding: int = 0,
                 norm: str = "none", activation: str = "relu", pad_type: str = "zero") -> None:
        super().__init__()
        pads = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": nn.ZeroPad2d}
        if pad_type not in pads:
            raise ValueError(f"unsupported pad_type {pad_type!r}: choose one of {', '.join(PAD_TYPES)}")
        self.pad = pads[pad_type](padding)
        self.norm = _norm(norm, output_dim)
        self.activation = _activation(activation)
        self.conv = nn.Conv2d(input_dim, output_dim, kernel_size, stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _norm_then_activation(self, self.conv(self.pad(x)))


class ResBlock(nn.Module):
    """x + [Conv3x3 norm act, Conv3x3 norm](x)."""

    def __init__(self, dim: int, norm: str = "in", activation: str = "relu", pad_type: str = "zero") -> None:
        super().__init__()
        self.model = nn.Sequential(
            Conv2dBlock(dim, dim, 3, 1, 1, norm=norm, activation=activation, pad_type=pad_type),
            Conv2dBlock(dim, dim, 3, 1, 1, norm=norm, activation="none", pad_type=pad_type),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


class ResBlocks(nn.Module):
    def __init__(self, num_blocks: int, dim: int, norm: str = "in", activation: str = "relu",
                 pad_type: str = "zero") -> None:
        super().__init__()
        self.model = nn.Sequential(*(ResBlock(dim, norm, activation, pad_type) for _ in range(num_blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LinearBlock(nn.Module):
    """fc (with bias) -> norm -> activation."""

    def __init__(self, input_dim: int, output_dim: int, norm: str = "none", activation: str = "relu") -> None:
        super().__init__()
        self.fc = nn.Linear(input_dim, output_dim, bias=True)
        self.norm = _norm(norm, output_dim, two_d=False)
        self.activation = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _norm_then_activation(self, self.fc(x))


class MLP(nn.Module):
    """`n_blk` linear layers, input_dim -> dim -> ... -> output_dim; no activation after the last.
    Inputs are flattened per sample first (a (B, 8, 1, 1) style code becomes (B, 8))."""

    def __init__(self, input_dim: int, output_dim: int, dim: int, n_blk: int, norm: str = "none",
                 activ: str = "relu") -> None:
        super().__init__()
        if n_blk < 2:
            raise ValueError(f"an MLP here has at least 2 layers, got n_blk={n_blk}")
        layers = [LinearBlock(input_dim, dim, norm=norm, activation=activ)]
        layers += [LinearBlock(dim, dim, norm=norm, activation=activ) for _ in range(n_blk - 2)]
        layers.append(LinearBlock(dim, output_dim, norm="none", activation="none"))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], -1))
