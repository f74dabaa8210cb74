"""MATLAB-compatible bicubic `imresize`, and the low-resolution inputs of SR benchmarks made with it.

Super-resolution benchmarks (EDSR, RCAN, SwinIR; BasicSR ``basicsr/utils/matlab_functions.py``) make
their LR inputs with MATLAB's ``imresize(hr, 1/scale, 'bicubic')``. That is not what
``torch.nn.functional.interpolate`` does, so this module re-implements MATLAB's definition:

* cubic convolution kernel with ``a = -0.5`` (Keys), support [-2, 2];
* when downscaling (``scale < 1``) the kernel is stretched by ``1/scale`` (antialiasing):
  ``h(t) = scale * cubic(scale * t)`` with width ``4 / scale``;
* output pixel ``x`` (1-based) samples the input at ``u = x / scale + 0.5 * (1 - 1 / scale)``
  (1-based), from the ``ceil(width) + 2`` input pixels starting at ``floor(u - width / 2)``;
* the weights of each output pixel are normalised to sum to 1, then out-of-range input indices are
  mirrored symmetrically (MATLAB's ``symmetric`` padding: ... 2 1 | 1 2 3 ... n | n n-1 ...);
* the two dimensions are resized separately. MATLAB resizes the dimension with the smaller scale first;
  with one scale for both dimensions (the only case here) that is height first, then width, which is
  what this module does.
* output size is ``ceil(in * scale)`` per dimension, as MATLAB computes it.

Everything is computed in float64; nothing is rounded or clamped (`make_lr` does that, as MATLAB does
for uint8 images).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from zoo.errors import ZooError
from zoo.metrics.base import check_images

__all__ = ["imresize_matlab", "mod_crop", "make_lr", "cubic_kernel"]


def cubic_kernel(t: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and PIL's bicubic), elementwise."""
    at = t.abs()
    at2 = at * at
    at3 = at2 * at
    inner = 1.5 * at3 - 2.5 * at2 + 1.0
    outer = -0.5 * at3 + 2.5 * at2 - 4.0 * at + 2.0
    return torch.where(at <= 1, inner, torch.where(at <= 2, outer, torch.zeros_like(at)))


def _weight_matrix(in_len: int, out_len: int, scale: float, device: torch.device) -> Tensor:
    """(out_len, in_len) float64 matrix M with ``out = M @ in`` along one dimension, MATLAB's way."""
    antialias = scale < 1
    width = 4.0 / scale if antialias else 4.0
    x = torch.arange(1, out_len + 1, dtype=torch.float64, device=device)  # 1-based output coordinates
    u = x / scale + 0.5 * (1 - 1 / scale)  # 1-based input coordinates
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = scale * cubic_kernel(scale * dist) if antialias else cubic_kernel(dist)
    w = w / w.sum(dim=1, keepdim=True)
    # Symmetric mirroring of the 0-based index j into [0, in_len): period 2n, second half reversed.
    j = idx.to(torch.long) - 1
    period = 2 * in_len
    j = torch.remainder(j, period)
    j = torch.where(j < in_len, j, period - 1 - j)
    m = torch.zeros(out_len, in_len, dtype=torch.float64, device=device)
    m.scatter_add_(1, j, w)
    return m


def _resize_hw(x: Tensor, out_h: int, out_w: int, scale: float) -> Tensor:
    """x (..., H, W) float64 → (..., out_h, out_w), height first then width."""
    mh = _weight_matrix(x.shape[-2], out_h, scale, x.device)
    mw = _weight_matrix(x.shape[-1], out_w, scale, x.device)
    x = torch.einsum("oh,...hw->...ow", mh, x)
    return torch.einsum("pw,...hw->...hp", mw, x)


def _check_scale(scale: float) -> float:
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise ZooError(f"imresize_matlab: scale must be a positive number, got {scale!r}") from None
    if not math.isfinite(s) or s <= 0:
        raise ZooError(f"imresize_matlab: scale must be a positive finite number, got {scale!r}")
    return s


def imresize_matlab(x: Tensor, scale: float) -> Tensor:
    """Resize like MATLAB's ``imresize(x, scale, 'bicubic')`` (antialiased when downscaling).

    `x` is a float CHW image or BCHW batch (any range: the operation is linear); the output has
    ``ceil(H * scale) x ceil(W * scale)`` pixels and `x`'s dtype and device. Computed in float64,
    height first then width; not rounded or clamped (bicubic overshoots, so callers clamp/quantize).
    """
    if not isinstance(x, Tensor):
        raise ZooError(f"imresize_matlab: x must be a torch.Tensor (CHW or BCHW), got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ZooError(f"imresize_matlab: x must be CHW or BCHW, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ZooError(
            f"imresize_matlab: x must be a float tensor, got {x.dtype}; convert uint8 images with "
            "x.float() / 255 (or use make_lr, which rounds back to uint8 levels)"
        )
    s = _check_scale(scale)
    h, w = x.shape[-2:]
    if h < 1 or w < 1:
        raise ZooError(f"imresize_matlab: x has an empty spatial size {h}x{w}")
    out_h, out_w = math.ceil(h * s), math.ceil(w * s)
    return _resize_hw(x.to(torch.float64), out_h, out_w, s).to(x.dtype)


def mod_crop(x: Tensor, scale: int) -> Tensor:
    """Crop the bottom/right of a (..., H, W) tensor so that H and W are multiples of `scale` (BasicSR)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ZooError(f"mod_crop: scale must be a positive int, got {scale!r}")
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise ZooError(f"mod_crop: x must be a tensor (..., H, W), got {getattr(x, 'shape', type(x).__name__)}")
    h, w = x.shape[-2:]
    hc, wc = h - h % scale, w - w % scale
    if hc == 0 or wc == 0:
        raise ZooError(f"mod_crop: image of size {h}x{w} is smaller than the scale {scale}")
    return x[..., :hc, :wc]


def make_lr(hr: Tensor, scale: int) -> Tensor:
    """The LR input of SR benchmarks: ``round(clamp(imresize(mod_crop(hr), 1 / scale)))`` at uint8 levels.

    `hr` is a BCHW batch (or CHW image) of RGB, uint8 or float in [0, 1]. It is mod-cropped to a
    multiple of `scale`, resized with `imresize_matlab` by ``1 / scale``, clamped to [0, 1] and rounded
    (halves up) to the 256 uint8 levels, as MATLAB's ``imresize`` on a uint8 image does (the resize runs on the
    [0, 255] values, exactly as MATLAB's uint8 path, which is the same linear map as resizing [0, 1]
    values and scaling). Returns floats in [0, 1] (``level / 255``): float32 for uint8 input, the
    input's dtype for float input; the size is ``(H // scale, W // scale)``.
    """
    squeeze = isinstance(hr, Tensor) and hr.ndim == 3
    batch = hr.unsqueeze(0) if squeeze else hr
    check_images("make_lr", batch, "hr")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ZooError(f"make_lr: scale must be a positive int, got {scale!r}")
    out_dtype = batch.dtype if batch.is_floating_point() else torch.float32
    batch = mod_crop(batch, scale)
    v = batch.to(torch.float64)
    if not batch.dtype == torch.uint8:
        v = v * 255
    h, w = batch.shape[-2:]
    lr = _resize_hw(v, h // scale, w // scale, 1.0 / scale)
    # MATLAB's conversion to uint8 rounds halves away from zero (torch.round would round them to even).
    # Ties are real: at x2 and x4 the weights are dyadic, so integer pixels give exact .5 sums.
    lr = (torch.floor(lr.clamp(0, 255) + 0.5) / 255).to(out_dtype)
    return lr.squeeze(0) if squeeze else lr
