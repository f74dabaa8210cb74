"""Folders of whole photographs for restoration tasks: `PhotoDataModule` (colorization) and `SRDataModule`
(super-resolution).

Folder layout (`root`): `train/` and `val/` (or `test/`) folders of images; without a `train/` folder, the
images in `root` itself are the training set and a fixed 10% of them (at least one) is held out for
validation. For super-resolution a split folder may instead hold `HR/` and `LR/` folders of matching file
names (explicit low-resolution inputs, e.g. a benchmark's own); otherwise the LR input is made from the HR
image with MATLAB's antialiased bicubic `imresize(hr, 1/scale)` rounded to uint8 levels
(`zoo.metrics.resize.make_lr`), as SR papers make theirs.

Training items are random square crops (with a random horizontal flip) of the training images, drawn from
the item's own generator (`zoo.data.sampling`), `crops_per_image` of them per image and epoch. Validation
items are whole images (batch size 1: their sizes differ), never cropped or resized, so the numbers are
those of full images.

Batches: `PhotoDataModule` -> {"image": [B,3,H,W] in [0, 1], "path": list[str]};
`SRDataModule` -> {"lr": [B,3,h,w], "hr": [B,3,s*h,s*w], both in [0, 1], "lr_path", "hr_path"}.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from zoo.data.builtin import PHOTO_SETS, ensure_photo_builtin
from zoo.data.datamodule import _DEFAULT_WORKERS, SeededLoaders, loader_options
from zoo.data.folders import _SideReader, index_by_stem, require_images
from zoo.data.layouts import _holdout
from zoo.data.sampling import item_generator
from zoo.data.transforms import pil_to_tensor
from zoo.errors import DataError
from zoo.imageio import read_image
from zoo.metrics.resize import make_lr

__all__ = ["PhotoDataModule", "SRDataModule", "PhotoCrops", "WholePhotos", "SRCrops", "WholeSRPairs", "SR_SCALES"]

log = logging.getLogger("zoo.data")

SR_SCALES: tuple[int, ...] = (2, 3, 4, 8)
_VAL_SPLITS = ("val", "test")


# ----------------------------------------------------------------------------------------- datasets


class _Reader(Dataset):
    """Reads image `index` of `files`; with `skip_bad` an unreadable file warns once and the next one is used
    (`zoo.data.folders`' reader). `read` also says which file it returned, for the matching LR file."""

    def __init__(self, files: list[Path], skip_bad: bool) -> None:
        if not files:
            raise DataError("no images in this split: add images to the folder, or check --data.root")
        self.files = list(files)
        self._reader = _SideReader(self.files, skip_bad)
        self._position = {path: i for i, path in enumerate(self.files)}

    def read(self, index: int) -> tuple[int, Image.Image]:
        img, path = self._reader.read(index)
        return self._position[path], img


def _crop_origin(h: int, w: int, side: int, step: int, generator: torch.Generator | None) -> tuple[int, int]:
    """Top-left corner of a random `side` crop on a grid of `step` pixels (step = scale keeps LR aligned)."""
    ys, xs = (h - side) // step + 1, (w - side) // step + 1
    y = int(torch.randint(ys, (1,), generator=generator).item()) * step
    x = int(torch.randint(xs, (1,), generator=generator).item()) * step
    return y, x


def _flip(generator: torch.Generator | None, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if bool(torch.rand(1, generator=generator).item() < 0.5):
        return tuple(im.flip(-1) for im in images)
    return images


class PhotoCrops(_Reader):
    """`crops_per_image` random `crop_size` crops per image and epoch (random flips when `flip`). Images
    smaller than the crop are scaled up (bicubic) so that their shorter side fits it."""

    def __init__(self, files: list[Path], crop_size: int, crops_per_image: int = 1, flip: bool = True,
                 skip_bad: bool = False) -> None:
        super().__init__(files, skip_bad)
        self.crop_size, self.crops_per_image, self.flip = int(crop_size), int(crops_per_image), bool(flip)

    def __len__(self) -> int:
        return len(self.files) * self.crops_per_image

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, generator = item_generator(item)
        i, img = self.read(index // self.crops_per_image)
        if min(img.size) < self.crop_size:
            f = self.crop_size / min(img.size)
            img = img.resize((max(self.crop_size, math.ceil(img.width * f)), max(self.crop_size, math.ceil(img.height * f))),
                             Image.Resampling.BICUBIC)
        x = pil_to_tensor(img)
        y0, x0 = _crop_origin(x.shape[1], x.shape[2], self.crop_size, 1, generator)
        crop = x[:, y0:y0 + self.crop_size, x0:x0 + self.crop_size]
        if self.flip:
            (crop,) = _flip(generator, crop)
        return {"image": crop.contiguous(), "path": str(self.files[i])}


class WholePhotos(_Reader):
    """Whole images, unchanged."""

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        i, img = self.read(item_generator(item)[0])
        return {"image": pil_to_tensor(img), "path": str(self.files[i])}


def _lr_label(hr_path: Path, scale: int) -> str:
    return f"{hr_path} (bicubic x1/{scale})"


class _SRReader(_Reader):
    """HR files, with their LR files when the split has an `LR/` folder (None: LR made by `make_lr`)."""

    def __init__(self, hr_files: list[Path], lr_files: list[Path] | None, scale: int, skip_bad: bool) -> None:
        super().__init__(hr_files, skip_bad)
        self.lr_files, self.scale = (list(lr_files) if lr_files is not None else None), int(scale)

    def read_pair(self, index: int) -> tuple[int, torch.Tensor, torch.Tensor | None]:
        """(file index, HR [3,H,W] mod-cropped to the scale, LR [3,H/s,W/s] from the LR file or None)."""
        i, img = self.read(index)
        hr = pil_to_tensor(img)
        s = self.scale
        if hr.shape[1] < s or hr.shape[2] < s:
            raise DataError(f"{self.files[i]} is {hr.shape[2]}x{hr.shape[1]}: smaller than the scale {s}; remove it")
        hr = hr[:, : hr.shape[1] - hr.shape[1] % s, : hr.shape[2] - hr.shape[2] % s]
        if self.lr_files is None:
            return i, hr, None
        lr = pil_to_tensor(read_image(self.lr_files[i]))
        if (lr.shape[1] * s, lr.shape[2] * s) != tuple(hr.shape[1:]):
            raise DataError(
                f"{self.lr_files[i]} is {lr.shape[2]}x{lr.shape[1]} but its HR image {self.files[i]} is "
                f"{img.width}x{img.height}: at scale {s} the HR image (cropped to multiples of {s}) must be "
                f"exactly {s}x the LR image; fix the pair or --data.scale"
            )
        return i, hr, lr

    def lr_path(self, i: int) -> str:
        return str(self.lr_files[i]) if self.lr_files is not None else _lr_label(self.files[i], self.scale)


class SRCrops(_SRReader):
    """Aligned random crops: an HR crop of `crop_size` (a multiple of the scale) at a position on the scale's
    grid, and the LR crop of `crop_size / scale` covering exactly the same area.

    Made LR crops equal the crops of the whole image's `make_lr`: the bicubic is computed on the HR crop
    plus a margin of 3 x scale pixels (more than the kernel's reach of 2 x scale + 1, clipped at the image
    border, where the whole-image resize mirrors the same pixels), then the margin is cut off."""

    def __init__(self, hr_files: list[Path], lr_files: list[Path] | None, scale: int, crop_size: int,
                 crops_per_image: int = 1, flip: bool = True, skip_bad: bool = False) -> None:
        super().__init__(hr_files, lr_files, scale, skip_bad)
        self.crop_size, self.crops_per_image, self.flip = int(crop_size), int(crops_per_image), bool(flip)

    def __len__(self) -> int:
        return len(self.files) * self.crops_per_image

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, generator = item_generator(item)
        i, hr, lr = self.read_pair(index // self.crops_per_image)
        s, c = self.scale, self.crop_size
        if min(hr.shape[1:]) < c:
            raise DataError(
                f"{self.files[i]} is {hr.shape[2]}x{hr.shape[1]}, smaller than the HR crop {c}: lower "
                f"--data.crop_size or remove the image (HR images are never scaled up)"
            )
        y, x = _crop_origin(hr.shape[1], hr.shape[2], c, s, generator)
        hr_crop = hr[:, y:y + c, x:x + c]
        if lr is not None:
            lr_crop = lr[:, y // s:(y + c) // s, x // s:(x + c) // s]
        else:
            m = 3 * s
            top, left = max(0, y - m), max(0, x - m)
            bottom, right = min(hr.shape[1], y + c + m), min(hr.shape[2], x + c + m)
            lr_area = make_lr(hr[:, top:bottom, left:right], s)
            oy, ox = (y - top) // s, (x - left) // s
            lr_crop = lr_area[:, oy:oy + c // s, ox:ox + c // s]
        if self.flip:
            lr_crop, hr_crop = _flip(generator, lr_crop, hr_crop)
        return {"lr": lr_crop.contiguous(), "hr": hr_crop.contiguous(), "lr_path": self.lr_path(i),
                "hr_path": str(self.files[i])}


class WholeSRPairs(_SRReader):
    """Whole images: HR cropped to multiples of the scale, and its LR (file, or `make_lr`)."""

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        i, hr, lr = self.read_pair(item_generator(item)[0])
        lr = make_lr(hr, self.scale) if lr is None else lr
        return {"lr": lr, "hr": hr, "lr_path": self.lr_path(i), "hr_path": str(self.files[i])}


# --------------------------------------------------------------------------------------- DataModules


class PhotoDataModule(SeededLoaders):
    """Folders of photographs as a LightningDataModule (see the module docstring for the layout).

    Args:
        root: dataset folder; None uses the built-in whole-photo set `builtin` (written into $ZOO_CACHE or
            ~/.cache/zoo on first use).
        builtin: built-in set used when root is None: "hr-photos" (five photos for training, three held out).
        crop_size: side of the random square training crops (176 in Zhang et al.).
        crops_per_image: training items per image and epoch (each a fresh random crop).
        batch_size: training crops per batch (validation always uses 1 whole image per batch).
        flip: random horizontal flips of training crops.
        num_workers: DataLoader worker processes (0 loads in the main process); None = from the machine.
        skip_bad: skip unreadable images with a warning instead of raising ImageReadError.
        seed: seed of the held-out subset (folders without val/) and of the crops.
        pin_memory: pin batches in page-locked memory; None = when CUDA is available.
        persistent_workers: keep workers alive between epochs; None = when num_workers > 0.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        builtin: str = "hr-photos",
        crop_size: int = 176,
        crops_per_image: int = 1,
        batch_size: int = 40,
        flip: bool = True,
        num_workers: int | None = _DEFAULT_WORKERS,
        skip_bad: bool = False,
        seed: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
    ) -> None:
        super().__init__()
        if root is None and builtin not in PHOTO_SETS:
            raise DataError(f"builtin={builtin!r} is not valid: use one of {', '.join(PHOTO_SETS)} (--data.builtin)")
        for name, value in (("crop_size", crop_size), ("crops_per_image", crops_per_image), ("batch_size", batch_size)):
            if int(value) < 1:
                raise DataError(f"{name} must be >= 1, got {value}: set --data.{name}")
        loading = loader_options(num_workers, pin_memory, persistent_workers)  # checks num_workers
        # SRDataModule's `scale` is the model's too: Lightning refuses to merge two different values (None here).
        self.save_hyperparameters(ignore=["scale"])
        self._root_arg, self.builtin = root, builtin
        self.crop_size, self.crops_per_image, self.batch_size = int(crop_size), int(crops_per_image), int(batch_size)
        self.flip, self.num_workers, self.skip_bad, self.seed = bool(flip), loading["num_workers"], bool(skip_bad), int(seed)
        self.pin_memory, self.persistent_workers = loading["pin_memory"], loading["persistent_workers"]
        self._root: Path | None = None
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None

    @property
    def root(self) -> Path:
        """The resolved dataset folder (the built-in set's folder when root was None)."""
        if self._root is None:
            if self._root_arg is None:
                self._root = ensure_photo_builtin(self.builtin)
                log.info("no root given: using the built-in '%s' photos at %s", self.builtin, self._root)
            else:
                self._root = Path(self._root_arg).expanduser().resolve()
                if not self._root.is_dir():
                    raise DataError(f"dataset root {self._root} does not exist or is not a folder: pass --data.root "
                                    f"to a folder of images (or leave it out to use the built-in photos)")
        return self._root

    @property
    def dataset_name(self) -> str:
        """What model cards record: the built-in set's name or the folder's name (never a local path)."""
        return f"zoo-builtin-{self.builtin}" if self._root_arg is None else Path(self._root_arg).resolve().name

    def _splits(self) -> tuple[Path, Path | None, str]:
        """(train folder, validation folder or None = hold out 10% of train, description)."""
        root = self.root
        if (root / "train").is_dir():
            for name in _VAL_SPLITS:
                if (root / name).is_dir():
                    return root / "train", root / name, f"{root}/train, {root}/{name}"
            return root / "train", None, f"{root}/train (10% held out for validation: no val/ or test/ folder)"
        return root, None, f"{root} (10% held out for validation)"

    def prepare_data(self) -> None:
        self.root  # noqa: B018 - builds the built-in set once

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        train_dir, val_dir, described = self._splits()
        train, val = self._split_files(train_dir, val_dir)
        self.train_dataset, self.val_dataset = self._datasets(train, val)
        log.info("%d training images, %d held out (%s)", len(train), len(val), described)

    def _split_files(self, train_dir: Path, val_dir: Path | None) -> tuple[list[Path], list[Path]]:
        train = require_images(train_dir, "training images")
        if val_dir is not None:
            return train, require_images(val_dir, "validation images")
        tr, va = _holdout(len(train), self.seed)
        return [train[i] for i in tr], [train[i] for i in va]

    def _datasets(self, train: list[Path], val: list[Path]) -> tuple[Dataset, Dataset]:
        return (PhotoCrops(train, self.crop_size, self.crops_per_image, self.flip, self.skip_bad),
                WholePhotos(val, self.skip_bad))

    def _whole_images(self, folder: Path) -> Dataset:
        """The whole images of a split folder (the test split's)."""
        return WholePhotos(require_images(folder, "test images"), self.skip_bad)

    def _whole_loader(self, dataset: Dataset) -> DataLoader:
        # Whole images of different sizes: one per batch.
        return DataLoader(dataset, batch_size=1, shuffle=False,
                          **loader_options(self.num_workers, self.pin_memory, self.persistent_workers))

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        assert self.val_dataset is not None
        return self._whole_loader(self.val_dataset)

    def test_dataloader(self) -> DataLoader:
        """`root/test/` when there is one next to `root/val/`; else the validation images."""
        self.setup("test")
        test = self.root / "test"
        if (self.root / "train").is_dir() and (self.root / "val").is_dir() and test.is_dir():
            return self._whole_loader(self._whole_images(test))
        return self.val_dataloader()

    predict_dataloader = test_dataloader


class SRDataModule(PhotoDataModule):
    """HR photographs (and optional explicit LR images) for super-resolution.

    Args (besides `PhotoDataModule`'s):
        scale: upscaling factor; None takes the model's (`io["scale"]`) when training starts, and a
            value that disagrees with the model's is an error.
        crop_size: side of the HR training crops (96 in SRGAN: 24x24 LR inputs at x4); a multiple of
            the scale.
        batch_size: 16 in SRGAN.

    A split folder with `HR/` and `LR/` folders pairs them by file name; each HR image (cropped to
    multiples of the scale) must be exactly `scale` times its LR image.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        builtin: str = "hr-photos",
        scale: int | None = None,
        crop_size: int = 96,
        crops_per_image: int = 1,
        batch_size: int = 16,
        flip: bool = True,
        num_workers: int | None = _DEFAULT_WORKERS,
        skip_bad: bool = False,
        seed: int = 0,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
    ) -> None:
        super().__init__(root, builtin, crop_size, crops_per_image, batch_size, flip, num_workers, skip_bad, seed,
                         pin_memory, persistent_workers)
        if scale is not None:
            self._check_scale(int(scale))
        self._scale_arg = None if scale is None else int(scale)

    def _check_scale(self, scale: int) -> None:
        if scale not in SR_SCALES:
            raise DataError(f"scale must be one of {', '.join(map(str, SR_SCALES))}, got {scale}: set --data.scale")
        if self.crop_size % scale:
            raise DataError(
                f"crop_size {self.crop_size} is not a multiple of the scale {scale}: the LR crop would not align; "
                f"set --data.crop_size to a multiple of {scale} (96 at x4 as in SRGAN)"
            )

    @property
    def scale(self) -> int:
        """The scale in use: given, else the model's, else 4."""
        model = getattr(getattr(self, "trainer", None), "lightning_module", None)
        model_scale = None if model is None else (getattr(model, "io", {}) or {}).get("scale")
        if self._scale_arg is not None and model_scale is not None and int(model_scale) != self._scale_arg:
            raise DataError(
                f"--data.scale {self._scale_arg} disagrees with the model's scale {model_scale}: leave --data.scale "
                f"out (it follows the model) or set both to the same value"
            )
        scale = self._scale_arg or int(model_scale or 4)
        self._check_scale(scale)
        return scale

    def _whole_images(self, folder: Path) -> Dataset:
        hr, lr = self._split_pairs(folder)
        return WholeSRPairs(hr, lr, self.scale, self.skip_bad)

    def _split_pairs(self, folder: Path) -> tuple[list[Path], list[Path] | None]:
        if (folder / "HR").is_dir() or (folder / "LR").is_dir():
            if not ((folder / "HR").is_dir() and (folder / "LR").is_dir()):
                raise DataError(f"{folder} has only one of HR/ and LR/: add the other, or put the HR images in "
                                f"{folder} itself to have the LR inputs made by bicubic downscaling")
            hr, lr = require_images(folder / "HR", "HR images"), require_images(folder / "LR", "LR images")
            hr_index, lr_index = index_by_stem(hr, folder / "HR"), index_by_stem(lr, folder / "LR")
            unmatched = sorted(set(hr_index) ^ set(lr_index))
            if unmatched:
                raise DataError(
                    f"{folder}/HR and {folder}/LR do not match: {len(unmatched)} file name(s) are in one folder "
                    f"only ({', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}); give every HR image "
                    f"an LR image with the same name"
                )
            keys = sorted(hr_index)
            return [hr_index[k] for k in keys], [lr_index[k] for k in keys]
        return require_images(folder, "HR images"), None

    def setup(self, stage: str | None = None) -> None:
        if self.train_dataset is not None:
            return
        scale = self.scale
        train_dir, val_dir, described = self._splits()
        train_hr, train_lr = self._split_pairs(train_dir)
        if val_dir is not None:
            val_hr, val_lr = self._split_pairs(val_dir)
        else:
            tr, va = _holdout(len(train_hr), self.seed)
            val_hr, val_lr = [train_hr[i] for i in va], None if train_lr is None else [train_lr[i] for i in va]
            train_hr, train_lr = [train_hr[i] for i in tr], None if train_lr is None else [train_lr[i] for i in tr]
        self.train_dataset = SRCrops(train_hr, train_lr, scale, self.crop_size, self.crops_per_image, self.flip,
                                     self.skip_bad)
        self.val_dataset = WholeSRPairs(val_hr, val_lr, scale, self.skip_bad)
        lr_source = "LR/ folders" if train_lr is not None else f"bicubic x1/{scale} (MATLAB imresize)"
        log.info("x%d: %d HR training images, %d held out, LR from %s (%s)", scale, len(train_hr), len(val_hr),
                 lr_source, described)
