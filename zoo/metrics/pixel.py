"""PSNR and SSIM under two pinned protocols.

Both protocols first quantize the images to uint8 by rounding (what a saved PNG holds, `as_uint8`),
then compute in float64 on [0, 255] values with data range 255, one value per image, and report the
mean of the per-image values.

``"rgb"``
    On the three RGB channels; no border crop unless ``crop_border`` is given. The usual setting of
    image-to-image translation papers (and of scikit-image with ``data_range=255``).

``"sr-y"``
    The super-resolution convention of EDSR / RCAN / SwinIR as implemented by BasicSR
    (``basicsr/metrics/psnr_ssim.py`` with ``test_y_channel=True``): ``crop_border`` pixels
    (default: the upscaling ``scale``) are removed from each border, and the metric is taken on the
    BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (R, G, B in [0, 255]), which is
    not rounded (BasicSR's ``to_y_channel``; MATLAB's ``rgb2ycbcr`` on uint8 would round it).

PSNR is ``10 log10(255² / MSE)`` with the MSE over the (cropped) pixels and channels of one image;
identical images give ``+inf`` (and so does a mean that includes one).

SSIM is Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5 (normalised to sum 1), K1 = 0.01,
K2 = 0.03, L = 255, population statistics, "valid" filtering (no padding: the SSIM map of an HxW image
is (H-10)x(W-10)), the mean of the map per channel, then the mean over channels. That equals
BasicSR's ``_ssim`` (``cv2.filter2D(...)[5:-5, 5:-5]``) and scikit-image's
``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)``, which filters the whole image with reflect padding but averages only the map
cropped by the filter radius (5 pixels), i.e. the valid region. Images smaller than 11x11 (after the
crop) are refused.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.errors import ZooError
from zoo.metrics.base import PerItemMetric, Protocol, as_uint8, check_images

__all__ = ["PROTOCOLS", "rgb_to_y", "psnr", "ssim", "PSNR", "SSIM"]

PROTOCOLS: tuple[str, ...] = ("rgb", "sr-y")

DATA_RANGE = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

_Y_COEFFS = (65.481, 128.553, 24.966)


def rgb_to_y(x: Tensor) -> Tensor:
    """BT.601 luma of RGB values in [0, 255]: ``16 + (65.481 R + 128.553 G + 24.966 B) / 255``.

    `x` is (B, 3, H, W) (float64 recommended); returns (B, 1, H, W) in [16, 235], not rounded
    (as BasicSR's ``to_y_channel``)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ZooError(f"rgb_to_y: expected (B, 3, H, W) RGB values in [0, 255], got shape {tuple(x.shape)}")
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return 16.0 + (_Y_COEFFS[0] * r + _Y_COEFFS[1] * g + _Y_COEFFS[2] * b) / 255.0


def _check_protocol(name: str, protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ZooError(f"{name}: unknown protocol {protocol!r}; valid protocols are {', '.join(map(repr, PROTOCOLS))}")
    return protocol


def _check_crop(name: str, crop_border: Any) -> int:
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ZooError(f"{name}: crop_border must be a non-negative int, got {crop_border!r}")
    return crop_border


def _prepare(name: str, preds: Tensor, target: Tensor, protocol: str, crop_border: int, min_size: int) -> tuple[Tensor, Tensor]:
    """Validate, quantize to uint8, go to float64 [0, 255], take RGB or Y, crop; returns (preds, target)."""
    _check_protocol(name, protocol)
    crop_border = _check_crop(name, crop_border)
    check_images(name, preds, "preds")
    check_images(name, target, "target")
    if preds.shape != target.shape:
        raise ZooError(
            f"{name}: preds and target must have the same shape, got preds {tuple(preds.shape)} "
            f"and target {tuple(target.shape)}"
        )
    h, w = preds.shape[-2:]
    ch, cw = h - 2 * crop_border, w - 2 * crop_border
    if ch < min_size or cw < min_size:
        crop = f" after cropping {crop_border} px from each border" if crop_border else ""
        raise ZooError(
            f"{name}: images of {h}x{w} are {max(ch, 0)}x{max(cw, 0)}{crop}; the minimum is {min_size}x{min_size}"
            f"{' (the SSIM window)' if min_size > 1 else ''}"
        )
    out = []
    for x in (preds, target):
        x = as_uint8(x).to(torch.float64)
        if protocol == "sr-y":
            x = rgb_to_y(x)
        if crop_border:
            x = x[..., crop_border : h - crop_border, crop_border : w - crop_border]
        out.append(x)
    return out[0], out[1]


def psnr(preds: Tensor, target: Tensor, protocol: Literal["rgb", "sr-y"] = "rgb", crop_border: int = 0) -> Tensor:
    """Per-image PSNR in dB (float64, shape (B,)) of BCHW RGB batches (float in [0, 1] or uint8).

    Inputs are rounded to uint8 first; data range 255; identical images give ``+inf``."""
    p, t = _prepare("psnr", preds, target, protocol, crop_border, 1)
    mse = (p - t).square().mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(DATA_RANGE**2 / mse)


def _gaussian_1d(device: torch.device) -> Tensor:
    """The normalised 11-tap Gaussian (sigma 1.5); the 2-D window is its outer product (sums to 1)."""
    r = SSIM_WINDOW // 2
    t = torch.arange(-r, r + 1, dtype=torch.float64, device=device)
    g = torch.exp(-(t * t) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def _ssim_per_channel(x: Tensor, y: Tensor) -> Tensor:
    """x, y: (B, C, H, W) float64 in [0, 255] → (B, C) mean of the valid SSIM map."""
    c = x.shape[1]
    g = _gaussian_1d(x.device)
    # Filter the five maps of every channel with depthwise "valid" convolutions (no padding). The
    # Gaussian window is separable, so an 11x1 pass then a 1x11 pass equals the 11x11 window (up to
    # float64 rounding) at a fraction of the cost.
    maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5C, H, W)
    f = F.conv2d(maps, g.view(1, 1, -1, 1).expand(5 * c, 1, SSIM_WINDOW, 1), groups=5 * c)
    f = F.conv2d(f, g.view(1, 1, 1, -1).expand(5 * c, 1, 1, SSIM_WINDOW), groups=5 * c)
    mx, my, exx, eyy, exy = f.split(c, dim=1)
    vx = exx - mx * mx
    vy = eyy - my * my
    vxy = exy - mx * my
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(2, 3))


def ssim(preds: Tensor, target: Tensor, protocol: Literal["rgb", "sr-y"] = "rgb", crop_border: int = 0) -> Tensor:
    """Per-image SSIM (float64, shape (B,)) of BCHW RGB batches (float in [0, 1] or uint8).

    Inputs are rounded to uint8 first; Wang et al. with an 11x11 Gaussian (sigma 1.5), valid region,
    mean per channel then over channels. Raises `ZooError` for images under 11x11 after the crop."""
    p, t = _prepare("ssim", preds, target, protocol, crop_border, SSIM_WINDOW)
    return _ssim_per_channel(p, t).mean(dim=1)


def _resolve(name: str, protocol: str, scale: int | None, crop_border: int | None) -> tuple[int, str, dict[str, Any], list[str]]:
    """(crop_border, protocol id, params, notes) of a metric class's settings."""
    _check_protocol(name, protocol)
    notes: list[str] = []
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int) or scale < 1):
        raise ZooError(f"{name}: scale must be a positive int (the SR upscaling factor), got {scale!r}")
    params: dict[str, Any] = {"quantize": "uint8-round"}
    if protocol == "sr-y":
        if scale is None:
            raise ZooError(
                f"{name}: protocol 'sr-y' needs the upscaling factor: pass scale=2, 3, 4, ... "
                "(crop_border defaults to it)"
            )
        crop = scale if crop_border is None else _check_crop(name, crop_border)
        if crop != scale:
            notes.append(f"crop_border {crop} differs from the scale {scale} that published SR results crop")
        pid = f"{name}/sr-y/crop{crop}/v1"
        params.update(channels="y-bt601", crop_border=crop, scale=scale)
    else:
        crop = 0 if crop_border is None else _check_crop(name, crop_border)
        pid = f"{name}/rgb/v1" if crop == 0 else f"{name}/rgb/crop{crop}/v1"
        params.update(channels="rgb", crop_border=crop)
    params["data_range"] = DATA_RANGE
    return crop, pid, params, notes


class _PixelMetric(PerItemMetric):
    higher_is_better: ClassVar[bool | None] = True
    _fn: ClassVar[Any] = None

    def __init__(self, protocol: str = "rgb", scale: int | None = None, crop_border: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        crop, pid, params, notes = _resolve(self.name, protocol, scale, crop_border)
        self.protocol_name = protocol
        self.scale = scale
        self.crop_border = crop
        self._set_protocol(Protocol(pid, self._describe(protocol, crop), {**params, **self._extra_params()}))
        for note in notes:
            self._not_comparable(note)

    def _describe(self, protocol: str, crop: int) -> str:
        raise NotImplementedError

    def _extra_params(self) -> dict[str, Any]:
        return {}

    def update(self, preds: Tensor, target: Tensor, index: Tensor | None = None) -> None:
        """Add the per-image scores of a batch; `index` holds one dataset index per image (duplicates count once)."""
        scores = type(self)._fn(preds, target, self.protocol_name, self.crop_border)
        self._add(scores, index)


class PSNR(_PixelMetric):
    """Mean per-image PSNR (dB) under the ``"rgb"`` or ``"sr-y"`` protocol (see the module docstring)."""

    name: ClassVar[str] = "psnr"
    _fn = staticmethod(psnr)

    def _describe(self, protocol: str, crop: int) -> str:
        crop_txt = f", {crop} px cropped from each border" if crop else ""
        if protocol == "sr-y":
            return f"PSNR on the BT.601 Y channel of uint8-rounded RGB{crop_txt}, data range 255, mean of per-image values"
        return f"PSNR on uint8-rounded RGB{crop_txt}, data range 255, mean of per-image values"


class SSIM(_PixelMetric):
    """Mean per-image SSIM (Wang et al., 11x11 Gaussian sigma 1.5, valid region) under ``"rgb"`` or ``"sr-y"``."""

    name: ClassVar[str] = "ssim"
    _fn = staticmethod(ssim)

    def _describe(self, protocol: str, crop: int) -> str:
        crop_txt = f", {crop} px cropped from each border" if crop else ""
        where = "the BT.601 Y channel of uint8-rounded RGB" if protocol == "sr-y" else "uint8-rounded RGB"
        return (
            f"SSIM (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, valid region) on {where}{crop_txt}, "
            "data range 255, mean of per-image values"
        )

    def _extra_params(self) -> dict[str, Any]:
        return {"window": SSIM_WINDOW, "sigma": SSIM_SIGMA, "k1": SSIM_K1, "k2": SSIM_K2, "padding": "valid"}

