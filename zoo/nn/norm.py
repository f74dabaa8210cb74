"""Normalisation layers chosen by name, with the reference repos' exact settings."""

from __future__ import annotations

import functools
from typing import Callable

from torch import nn

__all__ = ["norm_layer", "uses_bias", "NORMS"]

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
