"""Images in and out: read any image file as 8-bit RGB, turn PIL | ndarray | path | tensor into a
float BCHW batch in [0, 1] and back into the kind that came in, pad to a size multiple and crop back,
and map between [0, 1] and a model's pixel range.

Transparency is always composited over WHITE (the usual look of a transparent PNG in a viewer), both
in `read_image` and for 4-channel arrays and tensors in `to_batch`.
"""

from __future__ import annotations

import errno
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from zoo.errors import DataError, ImageReadError

__all__ = [
    "IMAGE_EXTENSIONS",
    "is_image_file",
    "read_image",
    "to_rgb",
    "InputKind",
    "to_batch",
    "from_batch",
    "pad_to_multiple",
    "crop_to",
    "to_range",
    "from_range",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif",
)

_WHITE = (255, 255, 255, 255)
_ACCEPTED = (
    "a PIL image, an HWC/HW (or BHWC) numpy array (uint8, uint16 or float in [0, 1]), "
    "a path to an image file, or a CHW/BCHW float tensor in [0, 1]"
)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True if the file name ends with one of `IMAGE_EXTENSIONS` (case-insensitive)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


# ----------------------------------------------------------------------------------------- reading


def _bad_file(path: Path, what: str) -> ImageReadError:
    return ImageReadError(
        f"cannot read image {path}: {what}. Re-export the file as PNG/JPEG or remove it "
        f"(or pass skip_bad=True / --data.skip_bad true to the DataModule to skip unreadable files)"
    )


def _over_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, _WHITE)
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert a decoded PIL image of any mode to 8-bit RGB (alpha over white, 16-bit scaled).

    - '1', 'L', 'P', 'CMYK', 'YCbCr', 'LAB', 'HSV', 'RGBX', ... -> RGB via PIL;
    - 'LA', 'PA', 'RGBA', 'RGBa', and 'P'/'L'/'RGB' with a transparency key -> composited over white;
    - 'I;16*' and 'I' (16-bit data): 0..65535 -> 0..255 by dividing by 257 and rounding;
    - 'F': values in [0, 1] when the maximum is <= 1 (scaled by 255), else clipped to [0, 255].
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info
    ):
        return _over_white(img.convert("RGBA"))
    if mode == "La":  # premultiplied; PIL cannot convert it directly
        return _la_premultiplied(img)
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img).astype(np.float64)
        a = np.rint(np.clip(a, 0, 65535) / 257.0).astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    if mode == "F":
        a = np.asarray(img).astype(np.float64)
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        if a.size and a.max() <= 1.0:
            a = a * 255.0
        a = np.rint(np.clip(a, 0, 255)).astype(np.uint8)
        return Image.fromarray(a, mode="L").convert("RGB")
    return img.convert("RGB")


def _la_premultiplied(img: Image.Image) -> Image.Image:
    a = np.asarray(img).astype(np.float64) / 255.0  # H, W, 2: premultiplied gray, alpha
    gray = np.clip(a[..., 0] + (1.0 - a[..., 1]), 0, 1)  # premultiplied over white
    out = np.rint(gray * 255).astype(np.uint8)
    return Image.fromarray(out, mode="L").convert("RGB")


def _as_path(path: str | bytes | os.PathLike) -> Path:
    """A Path of a str, a PathLike, or a bytes name (a file name that is not UTF-8, as os.listdir(b".")
    gives it: decoded with the file-system encoding's surrogateescape, which os functions undo)."""
    return Path(os.fsdecode(path) if isinstance(path, bytes) else path)


def _broken_link(p: Path) -> str:
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"{p} is a symbolic link that loops (it resolves to itself): fix or remove the link"
    return f"{p} is a symbolic link to {os.readlink(p)}, which does not exist: fix or remove the link"


def read_image(path: str | bytes | os.PathLike[str]) -> Image.Image:
    """Read an image file as an 8-bit RGB PIL image.

    Applies the EXIF orientation, takes the first frame of multi-frame files (GIF/TIFF), converts
    every mode with `to_rgb` (transparency composited over white), and fully decodes the file so
    that truncated files fail here. Any failure raises `ImageReadError` naming the file.
    """
    p = _as_path(path)
    if not p.exists():
        if p.is_symlink():
            raise ImageReadError(_broken_link(p))
        raise ImageReadError(f"image file {p} does not exist: check the path")
    if p.is_dir():
        raise ImageReadError(f"{p} is a folder, not an image file: pass the path of an image")
    try:
        # A decompression-bomb warning is treated as an error: such files are almost always
        # corrupt or hostile, and decoding them could exhaust memory.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                img.seek(0)  # first frame of animated GIF / multi-page TIFF
                img.load()  # full decode now, so truncation is caught at read time
                img = ImageOps.exif_transpose(img)
                rgb = to_rgb(img)
                rgb.load()
    except UnidentifiedImageError:
        size = p.stat().st_size
        what = "the file is empty (0 bytes)" if size == 0 else "it is not an image PIL recognises"
        raise _bad_file(p, what) from None
    except PermissionError as e:
        raise ImageReadError(
            f"cannot read image {p}: permission denied ({e.strerror}). Make the file readable "
            f"(chmod a+r) or remove it (or pass skip_bad=True / --data.skip_bad true to the DataModule "
            f"to skip unreadable files)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise _bad_file(p, f"it is too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as e:
        # PIL reports truncation and corruption through a mix of these exception types.
        raise _bad_file(p, f"the file is corrupt or truncated ({type(e).__name__}: {e})") from None
    return rgb


# ----------------------------------------------------------------------------- batches in and out


@dataclass(frozen=True)
class InputKind:
    """What `to_batch` received, so `from_batch` can return the same kind.

    kind: "pil" (a PIL image or a path), "ndarray" or "tensor"; batched: the input had a batch
    axis (BHWC array / BCHW tensor); chw: a 3-D tensor; dtype: the input's numpy or torch dtype;
    device: the input tensor's device.
    """

    kind: str
    batched: bool = False
    chw: bool = False
    dtype: Any = None
    device: Any = None


def _array_to_float01(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    if np.issubdtype(a.dtype, np.integer):
        # int32/int64 arrays usually come from np.array([...]) of 8-bit values
        if a.size and (a.min() < 0 or a.max() > 255):
            raise DataError(
                f"integer array of dtype {a.dtype} has values outside 0..255: "
                f"pass uint8 (0..255), uint16 (0..65535) or float (0..1) pixels"
            )
        return a.astype(np.float32) / 255.0
    raise DataError(f"unsupported array dtype {a.dtype}: pass {_ACCEPTED}")


def _merge_channels(x: torch.Tensor, what: str) -> torch.Tensor:
    """BCHW with C in {1, 3, 4} -> BCHW RGB; alpha composited over white."""
    c = x.shape[1]
    if c == 3:
        return x
    if c == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    if c == 4:
        rgb, alpha = x[:, :3], x[:, 3:4]
        return rgb * alpha + (1.0 - alpha)
    raise DataError(
        f"{what} has {c} channels: pass 1 (gray), 3 (RGB) or 4 (RGBA) channels ({_ACCEPTED})"
    )


def to_batch(x: Any) -> tuple[torch.Tensor, InputKind]:
    """Turn `x` into a float32 BCHW tensor in [0, 1] and remember what it was.

    Accepts a PIL image (any mode; no EXIF rotation is applied to in-memory images), a path, a numpy
    array (HW, HWC or BHWC; uint8 / 255, uint16 / 65535, float taken as [0, 1]) or a torch tensor
    (CHW or BCHW, float in [0, 1], or uint8 / 255). 1 channel is repeated to RGB, 4 channels are
    composited over white. Tensors stay on their device and keep their autograd graph.
    """
    if isinstance(x, (str, bytes, os.PathLike)):
        p = _as_path(x)
        if not p.is_file():
            if p.is_symlink():
                raise ImageReadError(_broken_link(p))
            raise DataError(f"{p} is not a file: pass an existing image path, or {_ACCEPTED}")
        batch, _ = to_batch(read_image(p))
        return batch, InputKind("pil")
    if isinstance(x, Image.Image):
        rgb = to_rgb(x)
        a = np.array(rgb, dtype=np.uint8)
        t = torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        return t, InputKind("pil")
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            a, batched = x[None, :, :, None], False
        elif x.ndim == 3:
            a, batched = x[None], False
        elif x.ndim == 4:
            a, batched = x, True
        else:
            raise DataError(f"array of shape {x.shape} is not an image: pass HW, HWC or BHWC")
        if 0 in a.shape:
            raise DataError(f"array of shape {x.shape} is empty: pass a non-empty image")
        t = torch.from_numpy(np.ascontiguousarray(_array_to_float01(a))).permute(0, 3, 1, 2)
        t = _merge_channels(t, f"array of shape {x.shape}")
        return t.contiguous(), InputKind("ndarray", batched=batched, dtype=x.dtype)
    if isinstance(x, torch.Tensor):
        if x.ndim not in (3, 4):
            raise DataError(
                f"tensor of shape {tuple(x.shape)} is not an image: pass CHW or BCHW ({_ACCEPTED})"
            )
        t = x.unsqueeze(0) if x.ndim == 3 else x
        if 0 in t.shape:
            raise DataError(f"tensor of shape {tuple(x.shape)} is empty: pass a non-empty image")
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        elif t.is_floating_point():
            t = t.float()
            if not t.requires_grad:  # an optimised image may leave [0, 1] transiently
                if not bool(torch.isfinite(t).all()):
                    raise DataError(
                        f"tensor of shape {tuple(x.shape)} holds NaN or infinite values: pass finite "
                        f"values in [0, 1] (e.g. torch.nan_to_num(x).clamp(0, 1))"
                    )
                lo, hi = float(t.min()), float(t.max())
                if lo < -1e-3 or hi > 1 + 1e-3:
                    raise DataError(
                        f"tensor values span [{lo:.3g}, {hi:.3g}] but must be in [0, 1]: "
                        f"map them first (e.g. (x + 1) / 2 for [-1, 1], x / 255 for 0..255)"
                    )
        else:
            raise DataError(f"tensor dtype {x.dtype} is not supported: pass float in [0, 1] or uint8")
        t = _merge_channels(t, f"tensor of shape {tuple(x.shape)}")
        kind = InputKind("tensor", batched=x.ndim == 4, chw=x.ndim == 3, dtype=x.dtype, device=x.device)
        return t, kind
    raise DataError(f"unsupported input type {type(x).__name__}: pass {_ACCEPTED}")


def from_batch(y: torch.Tensor, kind: InputKind) -> Any:
    """Turn a BCHW batch in [0, 1] back into the kind recorded by `to_batch`.

    PIL or path in -> an RGB PIL image (a list of them when B > 1); ndarray in -> HWC array (BHWC
    when the input was batched or B > 1) of the input's dtype (uint8/uint16 rounded, float in
    [0, 1]); tensor in -> a tensor in [0, 1] on the input's device and dtype, CHW if it was CHW.
    """
    if not isinstance(y, torch.Tensor) or y.ndim != 4:
        raise DataError(f"from_batch expects a BCHW tensor, got {getattr(y, 'shape', type(y))}")
    y = y.clamp(0.0, 1.0)
    if kind.kind == "tensor":
        dtype, device = kind.dtype, kind.device
        out = (y * 255.0).round().to(torch.uint8) if dtype == torch.uint8 else y.to(dtype)
        out = out.to(device)
        return out[0] if kind.chw and out.shape[0] == 1 else out
    hwc = y.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()
    if kind.kind == "pil":
        images = [Image.fromarray(_quantize(im, np.uint8), mode="RGB") for im in hwc]
        return images[0] if len(images) == 1 else images
    if kind.kind == "ndarray":
        dtype = np.dtype(kind.dtype) if kind.dtype is not None else np.dtype(np.uint8)
        if np.issubdtype(dtype, np.floating):
            arr = hwc.astype(dtype)
        elif dtype == np.uint16:
            arr = _quantize(hwc, np.uint16)
        else:  # uint8, bool, other integer inputs: 8-bit output
            arr = _quantize(hwc, np.uint8)
        return arr if (kind.batched or arr.shape[0] > 1) else arr[0]
    raise DataError(f"unknown InputKind.kind {kind.kind!r}: use the InputKind that to_batch returned")


def _quantize(a: np.ndarray, dtype: type) -> np.ndarray:
    peak = float(np.iinfo(dtype).max)
    return np.rint(np.clip(a, 0.0, 1.0) * peak).astype(dtype)  # round, not truncate


# ---------------------------------------------------------------------------- padding and ranges


def _pad_dim(x: torch.Tensor, pad: int, dim: int, mode: str) -> torch.Tensor:
    """Pad the end of dim -1 (W) or -2 (H) by `pad` pixels."""
    spec = (lambda p: (0, p, 0, 0)) if dim == -1 else (lambda p: (0, 0, 0, p))
    if mode == "constant":
        return F.pad(x, spec(pad), mode="constant", value=0.0)
    while pad > 0:
        size = x.shape[dim]
        if mode == "reflect" and size > 1:
            # Reflect padding must be smaller than the size: reflect in steps (the size grows each
            # time, so few steps are needed) ...
            step = min(pad, size - 1)
            x = F.pad(x, spec(step), mode="reflect")
        else:  # ... and replicate when a side is a single pixel (or when asked to)
            step = pad
            x = F.pad(x, spec(step), mode="replicate")
        pad -= step
    return x


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "reflect", min_size: int = 1
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad a BCHW tensor at the bottom/right so H and W are multiples of `multiple`, and at least
    `min_size` (networks whose reflection paddings need a few pixels at the bottleneck).

    `mode` is "reflect" (falls back to replicate where a side is too small, so any size works,
    1x1 included), "replicate" or "constant" (zeros). Returns the padded tensor and the original
    (H, W) for `crop_to`.
    """
    if x.ndim != 4:
        raise DataError(f"pad_to_multiple expects a BCHW tensor, got shape {tuple(x.shape)}")
    if multiple < 1:
        raise DataError(f"multiple must be >= 1, got {multiple}")
    if mode not in ("reflect", "replicate", "constant"):
        raise DataError(f"padding mode {mode!r} is not supported: use reflect, replicate or constant")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    floor = -(-int(min_size) // multiple) * multiple  # min_size rounded up to the multiple
    x = _pad_dim(x, max((-h) % multiple, floor - h), -2, mode)
    x = _pad_dim(x, max((-w) % multiple, floor - w), -1, mode)
    return x, (h, w)


def crop_to(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop the top-left (H, W) = `size` of a (..., H', W') tensor: undoes `pad_to_multiple`."""
    h, w = int(size[0]), int(size[1])
    return x[..., :h, :w]


def _check_range(rng: Sequence[float]) -> tuple[float, float]:
    if len(rng) != 2 or not float(rng[1]) > float(rng[0]):
        raise DataError(
            f"pixel range {tuple(rng)} is invalid: pass (low, high) with low < high, e.g. (-1, 1)"
        )
    return float(rng[0]), float(rng[1])


def to_range(x01: torch.Tensor, rng: Sequence[float]) -> torch.Tensor:
    """Map [0, 1] linearly onto `rng`, e.g. (-1, 1)."""
    lo, hi = _check_range(rng)
    if (lo, hi) == (0.0, 1.0):
        return x01
    return x01 * (hi - lo) + lo


def from_range(x: torch.Tensor, rng: Sequence[float]) -> torch.Tensor:
    """Map `rng` linearly onto [0, 1] and clamp to [0, 1]."""
    lo, hi = _check_range(rng)
    return ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
