"""Tiled inference: run an image-to-image network on an image too large for memory, tile by tile.

The image is cut into overlapping square tiles whose starts are multiples of the network's size
multiple (so strided layers sample the same grid as on the whole image). Each tile's output is weighted
by a separable window and the windows are normalised per axis, so they sum to 1 at every pixel and no
full-size weight map is needed. Across an overlap of `o` pixels the window is 0 for the first
`margin` pixels from a tile's inner edge (where its zero/reflection padding corrupts it), ramps
(linear or cosine) over the next `o - 2·margin` pixels and is 1 beyond; image borders are not ramped.
A fully convolutional network whose receptive-field radius is at most `margin` therefore gives the
untiled result exactly (up to float rounding); a larger receptive field makes tiles differ, and the ramp
hides the seams. Normalisations over the whole image (instance norm, AdaIN, MUNIT's LayerNorm, batch
statistics in train mode) take their statistics from a thumbnail of the whole image (as large as the
activation budget allows), shared by every tile (`zoo.nn.thumbnail_norm`, Chen et al. AAAI 2022), so
tiles agree in colour.

When the verbs tile (``tile=None``): only when the whole image's estimated activation memory exceeds
the budget, `set_budget(mb)` or ``$ZOO_TILE_BUDGET_MB`` (default 2048 MB). The estimate comes from one
forward pass on a small probe, recording every module's output size (`bytes_per_pixel`); the
full-size input and output tensors are outside the budget (a 4x upscale of a 4000x3000 photo is
2.3 GB of float32 output whatever the tiling).
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from zoo.errors import ZooError
from zoo.nn.thumbnail_norm import thumbnail_normalized, thumbnail_of

__all__ = [
    "DEFAULT_BUDGET_MB", "DEFAULT_OVERLAP", "tiled", "window", "tile_starts", "set_budget", "get_budget",
    "bytes_per_pixel", "tile_size_for", "plan_tile", "DEFAULT_MAX_PIXELS", "set_max_pixels", "get_max_pixels",
    "check_pixels",
]

#: activation memory a verb may use before it tiles, in MB (overridden by $ZOO_TILE_BUDGET_MB, `set_budget`)
DEFAULT_BUDGET_MB = 2048.0
#: overlap between neighbouring tiles in input pixels (rounded up to the network's size multiple)
DEFAULT_OVERLAP = 32
#: peak memory of a forward pass as a multiple of its largest module output: the output, the input it was
#: computed from, and a residual or skip held alongside (calibrated on SRResNet / ResNet generators on CPU)
PEAK_FACTOR = 3.0
_PROBE = 64
_budget_mb: float | None = None
#: the largest image (height x width, per image) a verb runs in one piece: above it the verbs tile, and refuse
#: where tiling is off or impossible (overridden by $ZOO_MAX_PIXELS, `set_max_pixels`; 0: no limit)
DEFAULT_MAX_PIXELS = 50_000_000
_max_pixels: int | None = None


def set_budget(megabytes: float | None) -> None:
    """Set the activation-memory budget (MB) above which verbs tile; None goes back to
    $ZOO_TILE_BUDGET_MB or `DEFAULT_BUDGET_MB`. 0 means: tile every image the verbs get."""
    global _budget_mb
    if megabytes is not None and not float(megabytes) >= 0:
        raise ZooError(f"the tiling budget is in MB and must be >= 0, got {megabytes!r}")
    _budget_mb = None if megabytes is None else float(megabytes)


def get_budget() -> int:
    """The budget in bytes: `set_budget`'s, else $ZOO_TILE_BUDGET_MB, else `DEFAULT_BUDGET_MB`."""
    if _budget_mb is not None:
        return int(_budget_mb * 2**20)
    env = os.environ.get("ZOO_TILE_BUDGET_MB")
    if env:
        try:
            value = float(env)
        except ValueError:
            raise ZooError(f"$ZOO_TILE_BUDGET_MB={env!r} is not a number of megabytes: set e.g. 4096") from None
        if not value >= 0:
            raise ZooError(f"$ZOO_TILE_BUDGET_MB={env!r} must be >= 0")
        return int(value * 2**20)
    return int(DEFAULT_BUDGET_MB * 2**20)


def set_max_pixels(pixels: int | None) -> None:
    """Set the pixel budget: the largest height x width a verb runs in one piece (0: no limit); None goes
    back to $ZOO_MAX_PIXELS or `DEFAULT_MAX_PIXELS`."""
    global _max_pixels
    if pixels is not None and (isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 0):
        raise ZooError(f"the pixel budget is a number of pixels >= 0 (0: no limit), got {pixels!r}")
    _max_pixels = pixels


def get_max_pixels() -> int:
    """The pixel budget: `set_max_pixels`'s, else $ZOO_MAX_PIXELS, else `DEFAULT_MAX_PIXELS` (0: no limit)."""
    if _max_pixels is not None:
        return _max_pixels
    env = os.environ.get("ZOO_MAX_PIXELS")
    if env:
        try:
            value = int(float(env))
        except ValueError:
            raise ZooError(f"$ZOO_MAX_PIXELS={env!r} is not a number of pixels: set e.g. 100000000 (0: no limit)") from None
        if value < 0:
            raise ZooError(f"$ZOO_MAX_PIXELS={env!r} must be >= 0 (0: no limit)")
        return value
    return DEFAULT_MAX_PIXELS


def _over_budget(h: int, w: int) -> bool:
    limit = get_max_pixels()
    return bool(limit) and h * w > limit


def check_pixels(h: int, w: int, *, what: str, tiling_possible: bool = True) -> None:
    """`ZooError` when an h x w image is above the pixel budget and is about to run in one piece. The message
    gives both ways out: tiling (where `what` can tile) and a larger budget."""
    if not _over_budget(h, w):
        return
    limit = get_max_pixels()
    way = ("turn tiling on (tile=None, the default, or tile=<side in pixels>) or raise the budget"
           if tiling_possible else "this cannot tile, so raise the budget")
    raise ZooError(f"{what}: the image is {h}x{w} = {h * w / 1e6:.1f} megapixels, above the pixel budget of "
                   f"{limit / 1e6:.1f} megapixels for running an image in one piece. To go on, {way}: "
                   "zoo.tiling.set_max_pixels(n) or $ZOO_MAX_PIXELS=n (0: no limit).")


def _ceil_to(value: int, multiple: int) -> int:
    return -(-int(value) // multiple) * multiple


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Starts of tiles of `tile` pixels every `stride` pixels covering [0, length): the last one is
    moved back to end at `length` (its overlap with the one before grows instead of padding)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def window(length: int, ramp_before: int, ramp_after: int, margin: int, shape: str = "linear") -> Tensor:
    """1-D weights of one tile (float64): 0 for `margin` pixels at each ramped end, a ramp over the next
    `ramp - 2·margin` pixels, 1 in between. `ramp_before`/`ramp_after` are the overlaps with the
    neighbouring tiles (0 at an image border: no ramp there)."""
    i = torch.arange(length, dtype=torch.float64)
    w = torch.ones(length, dtype=torch.float64)
    for ramp, d in ((ramp_before, i), (ramp_after, length - 1 - i)):
        if ramp <= 0:
            continue
        span = max(ramp - 2 * margin, 1)
        lin = ((d - margin + 0.5) / span).clamp(0.0, 1.0)
        if shape == "cosine":
            lin = 0.5 - 0.5 * torch.cos(math.pi * lin)
        elif shape != "linear":
            raise ZooError(f"window shape {shape!r} is unknown: use 'linear' or 'cosine'")
        w = w * lin
    return w


def _axis_weights(length: int, tile: int, starts: list[int], margin: int, shape: str) -> list[Tensor]:
    """Each tile's window on one axis, divided by the sum of all windows there (a partition of unity)."""
    windows = []
    for k, s in enumerate(starts):
        before = starts[k - 1] + tile - s if k > 0 else 0
        after = s + tile - starts[k + 1] if k + 1 < len(starts) else 0
        windows.append(window(min(tile, length), before, after, margin, shape))
    total = torch.zeros(length, dtype=torch.float64)
    for s, w in zip(starts, windows):
        total[s:s + len(w)] += w
    if bool((total <= 0).any()):  # cannot happen with overlap > 2·margin; guards a bad margin
        raise ZooError(f"tile windows leave pixels uncovered (overlap too small for margin {margin}): "
                       f"use a larger overlap or a smaller margin")
    return [w / total[s:s + len(w)] for s, w in zip(starts, windows)]


def tiled(network_fn: Callable[[Tensor], Tensor], x: Tensor, *, tile: int, overlap: int = DEFAULT_OVERLAP,
          scale: int = 1, multiple: int = 1, margin: int | None = None, shape: str = "linear",
          shared_stats: bool = True) -> Tensor:
    """`network_fn(x)` computed on overlapping `tile`x`tile` tiles of the BCHW tensor `x` and blended.

    `x`'s sides must be multiples of `multiple` (pad first, as the verbs do); `tile` and `overlap` are
    rounded up to it. `scale`: the output is `scale` times the input size (super-resolution). `margin`
    (default overlap // 4) pixels at a tile's inner edges get no weight; `shape` is the ramp,
    "linear" or "cosine". `shared_stats`: normalise every tile with statistics taken on a thumbnail of
    `x` (`zoo.nn.thumbnail_norm`: one more pass, on `x` downscaled to fit the activation budget, or `x`
    itself when it fits) instead of the tile's own. Returns the blended output in `network_fn`'s dtype on its device."""
    multiple, scale = int(multiple), int(scale)
    if multiple < 1 or scale < 1:
        raise ZooError(f"multiple and scale must be >= 1, got {multiple} and {scale}")
    if x.ndim != 4:
        raise ZooError(f"tiled takes a BCHW tensor, got shape {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % multiple or w % multiple:
        raise ZooError(f"the image is {w}x{h}, not a multiple of {multiple}: pad it first (zoo.imageio.pad_to_multiple)")
    overlap = _ceil_to(max(int(overlap), 0), multiple)
    tile = _ceil_to(int(tile), multiple)
    if tile <= overlap:
        raise ZooError(f"tile {tile} must be larger than the overlap {overlap}: pass a larger tile or a smaller overlap")
    margin = overlap // 4 if margin is None else int(margin)
    if not 0 <= 2 * margin < max(overlap, 1):
        raise ZooError(f"margin {margin} must be >= 0 and less than half the overlap {overlap}")
    stride = tile - overlap
    ys, xs = tile_starts(h, tile, stride), tile_starts(w, tile, stride)
    wy, wx = _axis_weights(h, tile, ys, margin, shape), _axis_weights(w, tile, xs, margin, shape)
    if shared_stats:
        network_fn = thumbnail_normalized(network_fn, thumbnail_of(x, _thumbnail_side(network_fn, x, tile, multiple),
                                                                   multiple))
    out: Tensor | None = None
    for y0, vy in zip(ys, wy):
        for x0, vx in zip(xs, wx):
            th, tw = len(vy), len(vx)
            y = network_fn(x[..., y0:y0 + th, x0:x0 + tw])
            if tuple(y.shape[-2:]) != (th * scale, tw * scale):
                raise ZooError(f"the network turned a {tw}x{th} tile into {y.shape[-1]}x{y.shape[-2]}, not "
                               f"{tw * scale}x{th * scale}: pass the network's scale and size multiple")
            if out is None:
                out = y.new_zeros(*y.shape[:-2], h * scale, w * scale)
            ry = vy.repeat_interleave(scale).to(y.device, y.dtype)
            rx = vx.repeat_interleave(scale).to(y.device, y.dtype)
            out[..., y0 * scale:(y0 + th) * scale, x0 * scale:(x0 + tw) * scale] += y * ry[:, None] * rx[None, :]
    assert out is not None
    return out


def _thumbnail_side(network_fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, multiple: int) -> int:
    """The thumbnail's longer side: as large as the activation budget allows (deep layers of a small
    thumbnail have too few positions for faithful statistics), at least the tile, within the pixel budget."""
    budget = get_budget() // max(int(x.shape[0]), 1)  # the thumbnail holds the whole batch
    side = max(tile, tile_size_for(network_fn, budget, multiple=multiple, channels=int(x.shape[1]),
                                   device=x.device, dtype=x.dtype))
    if get_max_pixels():
        side = min(side, max(_pixel_budget_side(multiple), tile))
    return side


def _pixel_budget_side(multiple: int) -> int:
    """The largest square side (a multiple of `multiple`) within the pixel budget `get_max_pixels()`."""
    return int(math.isqrt(get_max_pixels())) // multiple * multiple


class _OutputBytes:
    """A global forward hook that records the largest tensor output of any module while it is installed."""

    def __init__(self) -> None:
        self.largest = 0

    def __call__(self, module: nn.Module, args: Any, output: Any) -> None:
        outputs = output if isinstance(output, (tuple, list)) else [output]
        for t in outputs:
            if isinstance(t, Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())


_cache: "weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], float]]" = weakref.WeakKeyDictionary()


def bytes_per_pixel(network_fn: Callable[[Tensor], Tensor], *, channels: int = 3, multiple: int = 1,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                    cache_key: Any = None) -> float:
    """Estimated peak activation bytes per input pixel of `network_fn`: one forward pass (no grad) on a
    small probe, `PEAK_FACTOR` times the largest module output over the probe's pixels. Cached per
    `cache_key` (default: the network itself when it is an nn.Module; held weakly). The probe runs under
    a forked RNG, so dropout in a train-mode network draws the same numbers afterwards as without it."""
    key = cache_key if cache_key is not None else (network_fn if isinstance(network_fn, nn.Module) else None)
    entry = (str(device), dtype, channels, multiple)
    known = _cache.get(key) if key is not None else None
    if known is not None and entry in known:
        return known[entry]
    side = _ceil_to(_PROBE, multiple)
    device = torch.device(device)
    hook = _OutputBytes()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        probe = torch.rand(1, channels, side, side, device=device, dtype=dtype)
        handle = nn.modules.module.register_module_forward_hook(hook)
        try:
            with torch.inference_mode():
                y = network_fn(probe)
        finally:
            handle.remove()
    largest = max(hook.largest, y.numel() * y.element_size(), probe.numel() * probe.element_size())
    value = PEAK_FACTOR * largest / (side * side)
    if key is not None:
        _cache.setdefault(key, {})[entry] = value
    return value


def tile_size_for(network_fn: Callable[[Tensor], Tensor], budget_bytes: int, *, multiple: int = 1,
                  overlap: int = DEFAULT_OVERLAP, **probe: Any) -> int:
    """The largest tile side (a multiple of `multiple`) whose estimated activations fit `budget_bytes`;
    never less than twice the overlap (a tiny budget still runs, with tiles advancing by at least the overlap)."""
    per_pixel = bytes_per_pixel(network_fn, multiple=multiple, **probe)
    side = int(math.sqrt(max(budget_bytes, 0) / per_pixel)) // multiple * multiple
    return max(side, 2 * _ceil_to(overlap, multiple), multiple)


def plan_tile(tile: int | None, network_fn: Callable[[Tensor], Tensor], x: Tensor, *, multiple: int = 1,
              overlap: int = DEFAULT_OVERLAP, cache_key: Any = None) -> int | None:
    """The tile side a verb should use on `x`, or None to run the whole image at once.

    `tile=0`: never tile; a positive int: that side (rounded up to `multiple`; None when the image fits
    in one tile); None: tile only when the estimated activations of the whole image exceed `get_budget()`.
    An image above the pixel budget (`get_max_pixels()`) always runs in tiles no larger than the budget,
    and `tile=0` is refused for it (`check_pixels`)."""
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0):
        raise ZooError(f"tile must be None (automatic), 0 (never tile) or a tile side in pixels, got {tile!r}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    over = _over_budget(h, w)
    if tile == 0:
        check_pixels(h, w, what="tile=0")
        return None
    if tile is None:
        probe = dict(channels=int(x.shape[1]), device=x.device, dtype=x.dtype, cache_key=cache_key)
        budget = get_budget()
        if not over and bytes_per_pixel(network_fn, multiple=multiple, **probe) * h * w * x.shape[0] <= budget:
            return None
        tile = tile_size_for(network_fn, budget, multiple=multiple, overlap=overlap, **probe)
    if over:  # above the pixel budget no piece may be larger than it
        tile = min(tile, max(_pixel_budget_side(multiple), multiple))
    tile = _ceil_to(tile, multiple)
    if tile <= _ceil_to(overlap, multiple):
        raise ZooError(f"tile {tile} must be larger than the overlap {_ceil_to(overlap, multiple)} "
                       f"(size multiple {multiple}): pass a larger tile")
    return None if tile >= h and tile >= w else tile
