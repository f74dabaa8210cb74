"""Thumbnail instance normalisation: tiles of a large image normalised with the whole image's statistics.

Instance norm, AdaIN, MUNIT's LayerNorm and batch statistics in train mode normalise by statistics of the
whole input. Run tile by tile, each tile would be normalised by its own statistics, and a tile of sky and a
tile of face come out in different colours. Chen et al., "Towards Ultra-Resolution Neural Style Transfer
via Thumbnail Instance Normalization" (AAAI 2022, §3.2) instead take every normalisation layer's
statistics from one pass over a downscaled copy of the whole image (the thumbnail) and use them for every
tile. `thumbnail_normalized(network_fn, thumbnail)` does that for any network:

- calls of `torch.nn.functional.instance_norm` (nn.InstanceNorm*, ConditionalInstanceNorm2d) and of
  `torch.nn.functional.batch_norm` with batch statistics (MUNIT's AdaptiveInstanceNorm2d, BatchNorm in
  train mode) are intercepted with a `TorchFunctionMode`;
- zoo's own normalisations written with tensor ops (`MunitLayerNorm`, AdaIN's `mean_std`) ask
  `norm_statistics` for their statistics.

On the thumbnail each call's statistics are recorded in call order; on each tile the k-th normalisation
uses the k-th recorded statistics, so the network must normalise the same number of times per call (a
network that does not is refused). Statistics reduce over the spatial dimensions (keepdim), so their
shapes do not depend on the image size.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from zoo.errors import ZooError

__all__ = ["norm_statistics", "thumbnail_normalized", "thumbnail_of"]

Stats = tuple[Tensor, Tensor]


class _Recorder:
    """Statistics in call order: recorded on the thumbnail, then replayed once per tile."""

    def __init__(self) -> None:
        self.stats: list[Stats] = []
        self.replaying = False
        self.index = 0

    def __call__(self, compute: Callable[[], Stats]) -> Stats:
        if not self.replaying:
            stats = compute()
            self.stats.append(stats)
            return stats
        if self.index >= len(self.stats):
            raise ZooError(f"the network normalised more than the {len(self.stats)} times it did on the thumbnail: "
                           f"its tiles cannot share the thumbnail's statistics; pass tile=0 or a smaller image")
        stats = self.stats[self.index]
        self.index += 1
        return stats


_active: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar("zoo_thumbnail_norm", default=None)


def norm_statistics(compute: Callable[[], Stats]) -> Stats:
    """`compute()` (a normalisation's (location, scale) statistics), or, while a thumbnail's statistics are
    recorded or replayed (`thumbnail_normalized`), the recorded ones. Normalisations written with tensor
    ops call this so that tiled inference can share statistics across tiles."""
    recorder = _active.get()
    return compute() if recorder is None else recorder(compute)


_INSTANCE_NORM = inspect.signature(F.instance_norm)
_BATCH_NORM = inspect.signature(F.batch_norm)


def _affine(x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if weight is not None:
        x = x * weight.view(shape)
    if bias is not None:
        x = x + bias.view(shape)
    return x


class _SharedNormMode(TorchFunctionMode):
    """Instance norm and batch-statistics batch norm computed with the recorder's statistics."""

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is F.instance_norm:
            a = _INSTANCE_NORM.bind(*args, **kwargs)
            a.apply_defaults()
            if a.arguments["use_input_stats"]:
                return self._normalize(a.arguments, dims=tuple(range(2, a.arguments["input"].ndim)))
        elif func is F.batch_norm:
            a = _BATCH_NORM.bind(*args, **kwargs)
            a.apply_defaults()
            if a.arguments["training"]:  # batch statistics; running statistics are left as they are
                return self._normalize(a.arguments, dims=(0,) + tuple(range(2, a.arguments["input"].ndim)))
        return func(*args, **kwargs)

    def _normalize(self, arguments: dict[str, Any], dims: tuple[int, ...]) -> Tensor:
        x = arguments["input"]
        wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x  # as autocast runs the norms

        def moments() -> Stats:
            return wide.mean(dims, keepdim=True), wide.var(dims, keepdim=True, correction=0)

        mean, var = self.recorder(moments)
        out = (wide - mean) * torch.rsqrt(var + arguments["eps"])
        return _affine(out, arguments["weight"], arguments["bias"]).to(x.dtype)


@contextlib.contextmanager
def _recording(recorder: _Recorder) -> Iterator[None]:
    token = _active.set(recorder)
    try:
        with _SharedNormMode(recorder):
            yield
    finally:
        _active.reset(token)


def thumbnail_of(x: Tensor, side: int, multiple: int = 1) -> Tensor:
    """`x` (BCHW) downscaled by area averaging so that its longer side is at most `side`, both sides
    multiples of `multiple` (at least one multiple); `x` itself when it is already that small."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if max(h, w) <= side:
        return x
    factor = side / max(h, w)
    size = [max(multiple, int(n * factor) // multiple * multiple) for n in (h, w)]
    return F.interpolate(x, size=size, mode="area")


def thumbnail_normalized(network_fn: Callable[[Tensor], Tensor],
                         thumbnail: Tensor) -> Callable[[Tensor], Tensor]:
    """`network_fn` with every normalisation using the statistics it had on `thumbnail` (thumbnail instance
    normalisation, see the module's doc). Runs `network_fn` once on `thumbnail`; returns `network_fn`
    itself when it normalised nothing (a purely convolutional network)."""
    recorder = _Recorder()
    with _recording(recorder):
        network_fn(thumbnail)
    if not recorder.stats:
        return network_fn
    recorder.replaying = True

    def shared(x: Tensor) -> Tensor:
        recorder.index = 0
        with _recording(recorder):
            y = network_fn(x)
        if recorder.index != len(recorder.stats):
            raise ZooError(f"the network normalised {recorder.index} times on a tile but {len(recorder.stats)} on "
                           f"the thumbnail: its tiles cannot share the thumbnail's statistics; pass tile=0 or a "
                           f"smaller image")
        return y

    return shared
