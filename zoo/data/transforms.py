"""Paired-safe transforms: the random resize/crop/flip parameters are sampled ONCE per call and
applied to every image passed in, so A and B of a pair stay pixel-aligned.

Randomness comes from the `generator` passed in (training items get one per item from
`zoo.data.sampling.EpochSampler`), or from the global torch RNG when none is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from zoo.errors import DataError
from zoo.imageio import to_range

__all__ = ["PREPROCESS_MODES", "PairedTransform", "CropParams", "pil_to_tensor"]

PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "crop", "resize", "none")
_BICUBIC = Image.Resampling.BICUBIC


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float CHW tensor in [0, 1]."""
    a = np.array(img.convert("RGB"), dtype=np.uint8)  # a copy: torch wants a writable array
    return torch.from_numpy(a).permute(2, 0, 1).float().div_(255.0)


@dataclass(frozen=True)
class CropParams:
    """One sample's geometry: resize to `resize` (W, H) (None = keep), crop box, flip."""

    resize: tuple[int, int] | None
    box: tuple[int, int, int, int] | None
    flip: bool


class PairedTransform:
    """Resize / crop / flip / to-tensor / to-range with one set of parameters for all inputs.

    train=True:
      - "resize_and_crop": resize to load_size x load_size (bicubic), random crop_size crop;
      - "crop": random crop_size crop at the original size (images smaller than crop_size are
        first scaled up, keeping the aspect ratio, until the shorter side is crop_size);
      - "resize": resize to crop_size x crop_size, no crop;
      - "none": keep the size, but resize each side to the nearest multiple of 4 (at least 4), as
        the reference repo does, so U-Net/ResNet generators with strided layers fit;
      then a random horizontal flip when `flip`.
    train=False: resize to crop_size x crop_size, no flip, nothing random ("none" keeps its
    multiple-of-4 size instead, so full-resolution evaluation stays possible).
    Images after the first are resized to the first one's size when they differ.
    """

    def __init__(
        self,
        load_size: int = 286,
        crop_size: int = 256,
        preprocess: str = "resize_and_crop",
        flip: bool = True,
        train: bool = True,
        pixel_range: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        if preprocess not in PREPROCESS_MODES:
            raise DataError(
                f"unknown preprocess {preprocess!r}: use one of {', '.join(PREPROCESS_MODES)}"
            )
        if crop_size < 1 or load_size < 1:
            raise DataError(
                f"load_size ({load_size}) and crop_size ({crop_size}) must be positive: "
                f"set --data.load_size and --data.crop_size to pixel sizes such as 286 and 256"
            )
        if preprocess == "resize_and_crop" and load_size < crop_size:
            raise DataError(
                f"load_size ({load_size}) is smaller than crop_size ({crop_size}): "
                f"set --data.load_size >= --data.crop_size (e.g. 286 and 256)"
            )
        self.load_size, self.crop_size = int(load_size), int(crop_size)
        self.preprocess, self.flip, self.train = preprocess, bool(flip), bool(train)
        self.pixel_range = (float(pixel_range[0]), float(pixel_range[1]))

    def sample_params(self, size: tuple[int, int], generator: torch.Generator | None = None) -> CropParams:
        """Draw the geometry for an image of `size` (W, H) from `generator` (the global RNG if None)."""
        w, h = size
        c = self.crop_size
        if self.preprocess == "none":
            return CropParams(_mult4(w, h), None, self.train and self.flip and _coin(generator))
        if not self.train or self.preprocess == "resize":
            return CropParams((c, c), None, self.train and self.flip and _coin(generator))
        if self.preprocess == "resize_and_crop":
            resize: tuple[int, int] | None = (self.load_size, self.load_size)
            rw, rh = resize
        else:  # "crop"
            scale = max(1.0, c / min(w, h))
            rw, rh = max(c, round(w * scale)), max(c, round(h * scale))
            resize = None if (rw, rh) == (w, h) else (rw, rh)
        x = int(torch.randint(0, rw - c + 1, (1,), generator=generator).item())
        y = int(torch.randint(0, rh - c + 1, (1,), generator=generator).item())
        return CropParams(resize, (x, y, x + c, y + c), self.flip and _coin(generator))

    def apply(self, img: Image.Image, p: CropParams) -> torch.Tensor:
        """Apply fixed geometry `p` to one image and return a CHW tensor in `pixel_range`."""
        if p.resize is not None and img.size != p.resize:
            img = img.resize(p.resize, _BICUBIC)
        if p.box is not None:
            img = img.crop(p.box)
        if p.flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_range(pil_to_tensor(img), self.pixel_range)

    def __call__(self, *images: Image.Image, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        if not images:
            raise DataError("PairedTransform needs at least one image")
        first = images[0]
        params = self.sample_params(first.size, generator)
        same = [im if im.size == first.size else im.resize(first.size, _BICUBIC) for im in images]
        return tuple(self.apply(im, params) for im in same)


def _coin(generator: torch.Generator | None = None) -> bool:
    return bool(torch.rand(1, generator=generator).item() < 0.5)


def _mult4(w: int, h: int) -> tuple[int, int]:
    return max(4, int(round(w / 4)) * 4), max(4, int(round(h / 4)) * 4)
