"""Content/style pairs for style transfer (Johnson, Dumoulin, Huang & Belongie): the
`ContentStyleDataModule` and its dataset.

Every item is `{"content": Tensor[3,H,W], "style": Tensor[3,h,w], "style_index": int, "content_path": str,
"style_path": str}` with pixels in [0, 1]; batches stack them (style_index becomes a LongTensor).

- Content images: the shorter side is resized to `content_size` (aspect kept), then a `crop_size`
  square is cropped (random or centred in training, centred in validation), optionally flipped.
- Style images: the shorter side is resized to `style_size` (None keeps the size), then a
  `style_crop_size` square is cropped (random in training, centred in validation) when it is given.
  Without `style_crop_size`, styles whose transformed sizes differ cannot be stacked into one batch,
  so all of them are centre-cropped to the largest square every one of them holds (the smallest
  shorter side: `style_size` when it is set). One style, or styles of one shape, are not cropped.
- Pairing: a training item draws its style index from its own generator (a pure function of seed and
  epoch, see `zoo.data.sampling`); validation pairs content i with style i % num_styles.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from zoo.data.builtin import CONTENT_SETS, STYLE_SETS, ensure_content_builtin, ensure_style_builtin
from zoo.data.datamodule import _DEFAULT_WORKERS, SeededLoaders, loader_options, _choice
from zoo.data.folders import _SideReader, list_images, require_images, stem_key
from zoo.data.layouts import _split_holdout
from zoo.data.sampling import item_generator
from zoo.data.transforms import pil_to_tensor
from zoo.errors import DataError, ImageReadError
from zoo.imageio import IMAGE_EXTENSIONS, is_image_file, read_image

__all__ = [
    "ContentStyleDataModule", "ContentStyleDataset", "ContentTransform", "StyleTransform",
    "CROP_MODES", "resize_shorter", "read_style",
]

log = logging.getLogger("zoo.data")

CROP_MODES: tuple[str, ...] = ("random", "center")
#: Style sets up to this size are fully decoded at setup, so a broken style fails before training;
#: larger ones (WikiArt: ~80k) only have their headers read and fail when the broken file is drawn.
_VERIFY_LIMIT = 256
_BICUBIC = Image.Resampling.BICUBIC


def resize_shorter(img: Image.Image, size: int) -> Image.Image:
    """Resize `img` (bicubic) so its shorter side is `size` pixels, keeping the aspect ratio."""
    w, h = img.size
    if min(w, h) == size:
        return img
    return img.resize(_shorter_size(w, h, size), _BICUBIC)


def _shorter_size(w: int, h: int, size: int) -> tuple[int, int]:
    """The (W, H) that `resize_shorter` gives a (w, h) image."""
    scale = size / min(w, h)
    return (size, max(size, round(h * scale))) if w <= h else (max(size, round(w * scale)), size)


def _square_crop(img: Image.Image, side: int, random: bool, generator: torch.Generator | None) -> Image.Image:
    """A `side` x `side` crop: at a random place (from `generator`) or in the centre."""
    w, h = img.size
    if random:
        x = int(torch.randint(0, w - side + 1, (1,), generator=generator).item())
        y = int(torch.randint(0, h - side + 1, (1,), generator=generator).item())
    else:
        x, y = (w - side) // 2, (h - side) // 2
    return img.crop((x, y, x + side, y + side))


class ContentTransform:
    """Shorter side -> `content_size`, a `crop_size` square crop (random when `random_crop`), a
    horizontal flip with probability 1/2 when `flip`; returns CHW in [0, 1]. Random draws come from
    the generator passed in (the global RNG when None)."""

    def __init__(self, content_size: int, crop_size: int, random_crop: bool, flip: bool) -> None:
        self.content_size, self.crop_size = int(content_size), int(crop_size)
        self.random_crop, self.flip = bool(random_crop), bool(flip)

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        img = _square_crop(resize_shorter(img, self.content_size), self.crop_size, self.random_crop, generator)
        if self.flip and bool(torch.rand(1, generator=generator).item() < 0.5):
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return pil_to_tensor(img)


class StyleTransform:
    """Shorter side -> `style_size` (None keeps it; an image smaller than `crop_size` is scaled up
    to it), then a `crop_size` square crop, random when `random_crop` else centred (None: no crop)."""

    def __init__(self, style_size: int | None, crop_size: int | None, random_crop: bool) -> None:
        self.style_size = None if style_size is None else int(style_size)
        self.crop_size = None if crop_size is None else int(crop_size)
        self.random_crop = bool(random_crop)

    def __call__(self, img: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.style_size is not None:
            img = resize_shorter(img, self.style_size)
        if self.crop_size is not None:
            if min(img.size) < self.crop_size:
                img = resize_shorter(img, self.crop_size)
            img = _square_crop(img, self.crop_size, self.random_crop, generator)
        return pil_to_tensor(img)


def read_style(path: Path) -> Image.Image:
    """`read_image` for a style image: a style is never skipped, so the message says so."""
    try:
        return read_image(path)
    except ImageReadError as e:
        reason = str(e).split(". Re-export")[0]
        raise ImageReadError(
            f"{reason}. Style images are never skipped (--data.skip_bad only skips content images): "
            f"re-export or remove {path}, or pass --data.style to another image or folder"
        ) from None


class ContentStyleDataset(Dataset):
    """Content images paired with style images (see the module docstring).

    `train=True`: the style of an item is drawn from the item's generator (`(index, seed)` items from
    `EpochSampler`; the global RNG for plain indices). `train=False`: content i gets style i % S.
    Unreadable content images are skipped with a warning when `skip_bad`; style images never are.
    """

    def __init__(
        self, content_files: list[Path], style_files: list[Path], content_transform: ContentTransform,
        style_transform: StyleTransform, train: bool, skip_bad: bool = False,
    ) -> None:
        if not content_files or not style_files:
            raise DataError("ContentStyleDataset needs at least one content and one style image")
        self.content = _SideReader(content_files, skip_bad)
        self.content_files, self.style_files = self.content.files, list(style_files)
        self.content_transform, self.style_transform = content_transform, style_transform
        self.train = bool(train)

    def __len__(self) -> int:
        return len(self.content_files)

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, generator = item_generator(item)
        img, content_path = self.content.read(index)
        content = self.content_transform(img, generator)
        n = len(self.style_files)
        j = int(torch.randint(n, (1,), generator=generator).item()) if self.train else index % n
        style = self.style_transform(read_style(self.style_files[j]), generator)
        return {"content": content, "style": style, "style_index": j,
                "content_path": str(content_path), "style_path": str(self.style_files[j])}


class ContentStyleDataModule(SeededLoaders):
    """Content images and style images for feed-forward style transfer, as a LightningDataModule.

    Batches are `{"content": Tensor[B,3,H,W], "style": Tensor[B,3,h,w], "style_index": LongTensor[B],
    "content_path": list[str], "style_path": list[str]}`, pixels in [0, 1]. After `setup()`:
    `train_dataset`, `val_dataset`; `num_styles`, `style_paths` (sorted), `style_names` (file stems,
    relative to the style folder) and `dataset_name` are available any time (they list the files).

    Args:
        root: content folder (images found recursively). With root/train/ the split is train/ and
            root/<val_split>/ (or 10% of train/ held out when that is absent); without it, 10% of all
            images (at least 1, chosen by `seed`) are held out for validation. None = the built-in
            content set `builtin` (generated offline into $ZOO_CACHE on first use).
        style: a folder of style images (recursive), or one image file. None = the built-in style set
            `builtin_style`.
        builtin: built-in content set: "photos" (crops of five colour photographs shipped in
            scikit-image; 48 train, 8 val).
        builtin_style: built-in style set: "patterns" (8 square images rendered from scikit-image's
            sample images; the first, "00-mosaic", is the one `max_styles=1` keeps).
        content_size: the content images' shorter side is resized to this (aspect kept).
        crop_size: side of the square content crop (at most content_size).
        crop: "random" or "center": where training crops are taken (validation always centres).
        style_size: the style images' shorter side is resized to this; None keeps their size.
        style_crop_size: side of a square style crop (random in training, centred in validation);
            None = no crop, except that styles of different transformed sizes are all centre-cropped
            to the largest square each of them holds so they can share a batch.
        batch_size: images per batch.
        num_workers: DataLoader worker processes (0 loads in the main process); None = from the machine.
        flip: random horizontal flips of the content crops in training.
        seed: seed of the built-in content set, the held-out validation images and (with the global
            seed) the training order, crops and style draws.
        skip_bad: skip unreadable content images with a warning instead of raising ImageReadError.
            A style image must always load.
        val_split: validation folder next to root/train/.
        max_styles: use only the first N styles (sorted order) of the style folder or built-in set.
        pin_memory: pin batches in page-locked memory; None = when CUDA is available.
        persistent_workers: keep workers alive between epochs; None = when num_workers > 0.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        style: str | Path | None = None,
        *,
        builtin: str = "photos",
        builtin_style: str = "patterns",
        content_size: int = 256,
        crop_size: int = 256,
        crop: str = "random",
        style_size: int | None = None,
        style_crop_size: int | None = None,
        batch_size: int = 4,
        num_workers: int | None = _DEFAULT_WORKERS,
        flip: bool = False,
        seed: int = 0,
        skip_bad: bool = False,
        val_split: str = "val",
        max_styles: int | None = None,
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
    ) -> None:
        super().__init__()
        _choice("crop", crop, CROP_MODES)
        if root is None:
            _choice("builtin", builtin, tuple(CONTENT_SETS))
        if style is None:
            _choice("builtin_style", builtin_style, tuple(STYLE_SETS))
        for name, value in (("content_size", content_size), ("crop_size", crop_size),
                            ("style_size", style_size), ("style_crop_size", style_crop_size),
                            ("batch_size", batch_size), ("max_styles", max_styles)):
            if value is not None and value < 1:
                raise DataError(f"{name} must be >= 1, got {value}: set --data.{name}")
        if crop_size > content_size:
            raise DataError(
                f"crop_size ({crop_size}) is larger than content_size ({content_size}), the content images' "
                f"shorter side: set --data.crop_size <= --data.content_size (e.g. 256 and 256)"
            )
        if style_size is not None and style_crop_size is not None and style_crop_size > style_size:
            raise DataError(
                f"style_crop_size ({style_crop_size}) is larger than style_size ({style_size}), the style "
                f"images' shorter side: set --data.style_crop_size <= --data.style_size (e.g. 256 and 512)"
            )
        loading = loader_options(num_workers, pin_memory, persistent_workers)  # checks num_workers
        self.save_hyperparameters()
        self._root_arg, self._style_arg = root, style
        self.builtin, self.builtin_style = builtin, builtin_style
        self.content_size, self.crop_size, self.crop = int(content_size), int(crop_size), crop
        self.style_size = None if style_size is None else int(style_size)
        self.style_crop_size = None if style_crop_size is None else int(style_crop_size)
        self.batch_size, self.num_workers = int(batch_size), loading["num_workers"]
        self.flip, self.seed, self.skip_bad = bool(flip), int(seed), bool(skip_bad)
        self.val_split, self.max_styles = val_split, max_styles
        self.pin_memory, self.persistent_workers = loading["pin_memory"], loading["persistent_workers"]
        self._content_root: Path | None = None
        self._style_root: Path | None = None
        self._style_paths: list[Path] | None = None
        self._ready = False
        self.train_dataset: ContentStyleDataset | None = None
        self.val_dataset: ContentStyleDataset | None = None

    # ------------------------------------------------------------------------ resolving the files

    @property
    def content_root(self) -> Path:
        """The content folder (the built-in set's folder when root was None)."""
        if self._content_root is None:
            if self._root_arg is None:
                size = max(256, self.content_size)  # never upsample the stored pixels
                self._content_root = ensure_content_builtin(self.builtin, seed=self.seed, size=size)
                log.info("no root given: using the built-in content set '%s' at %s", self.builtin, self._content_root)
            else:
                root = Path(self._root_arg).expanduser().resolve()
                if not root.is_dir():
                    raise DataError(
                        f"content folder {root} does not exist or is not a folder: pass --data.root to a folder "
                        f"of content images (or leave it out to use the built-in '{self.builtin}' set)"
                    )
                self._content_root = root
        return self._content_root

    @property
    def style_paths(self) -> list[Path]:
        """The style images in use, sorted by path relative to the style folder (first `max_styles`)."""
        if self._style_paths is None:
            self._style_paths = self._find_styles()
        return list(self._style_paths)

    @property
    def num_styles(self) -> int:
        """How many style images there are (`style_index` runs over 0 .. num_styles - 1)."""
        return len(self.style_paths)

    @property
    def style_names(self) -> list[str]:
        """The styles' names: file stems, relative to the style folder ("00-mosaic", "wikiart/x")."""
        paths = self.style_paths
        assert self._style_root is not None
        return [stem_key(p, self._style_root) if self._style_root.is_dir() else p.stem for p in paths]

    @property
    def dataset_name(self) -> str:
        """What model cards record: '<content>+<style>', each a built-in set's name or a folder's (or
        the style file's) name, never a local path."""
        content = f"zoo-builtin-{self.builtin}" if self._root_arg is None else Path(self._root_arg).resolve().name
        style = f"zoo-builtin-{self.builtin_style}" if self._style_arg is None else Path(self._style_arg).resolve().name
        return f"{content}+{style}"

    def _find_styles(self) -> list[Path]:
        if self._style_arg is None:
            size = max(256, self.style_size or 0, self.style_crop_size or 0)
            folder = ensure_style_builtin(self.builtin_style, size=size)
            log.info("no style given: using the built-in style set '%s' at %s", self.builtin_style, folder)
            files = list_images(folder)
        else:
            folder = Path(self._style_arg).expanduser().resolve()
            hint = "pass --data.style to a style image or a folder of style images"
            if not folder.exists():
                raise DataError(f"style {folder} does not exist: {hint} (or leave it out for the built-in "
                                f"'{self.builtin_style}' set)")
            if folder.is_dir():
                files = list_images(folder)
                if not files:
                    raise DataError(f"style folder {folder} contains no images (looked for "
                                    f"{', '.join(IMAGE_EXTENSIONS)}): put style images there, or {hint}")
            elif folder.is_file() and is_image_file(folder):
                files = [folder]
            else:
                raise DataError(f"style {folder} is neither a folder nor an image file (looked for "
                                f"{', '.join(IMAGE_EXTENSIONS)}): {hint}")
        self._style_root = folder
        if self.max_styles is not None and self.max_styles < len(files):
            log.info("max_styles=%d: using %d of the %d styles in %s", self.max_styles, self.max_styles,
                     len(files), folder)
            files = files[: self.max_styles]
        return files

    def _content_split(self) -> tuple[list[Path], list[Path], str]:
        root = self.content_root
        if (root / "train").is_dir():
            train = require_images(root / "train", "training content images")
            if (root / self.val_split).is_dir():
                return train, require_images(root / self.val_split, "validation content images"), f"{self.val_split}/"
            if self.val_split != "val":
                raise DataError(
                    f"validation folder {root / self.val_split} not found: create it, or leave --data.val_split "
                    f"at 'val' to hold out 10% of train/"
                )
            train, val = _split_holdout(train, self.seed)
            return train, val, "10% of train/ held out (no val/ folder)"
        if self.val_split != "val":
            raise DataError(
                f"--data.val_split {self.val_split!r} names a folder next to {root / 'train'}, which does not "
                f"exist: put the training images in train/ and the validation images in {self.val_split}/, "
                f"or leave --data.val_split at 'val'"
            )
        train, val = _split_holdout(require_images(root, "content images"), self.seed)
        return train, val, "10% of the images held out (no train/ folder)"

    def _check_styles(self, paths: list[Path]) -> list[tuple[int, int]]:
        """Each style's (W, H) as read; small sets are fully decoded so a broken style fails now."""
        if len(paths) <= _VERIFY_LIMIT:
            return [read_style(p).size for p in paths]
        sizes = []
        for p in paths:
            try:
                with Image.open(p) as img:  # the header only
                    w, h = img.size
                    # EXIF rotation by 90 degrees (read_image applies it). Only formats that keep EXIF in
                    # the header: PIL decodes a whole PNG to find its EXIF chunk.
                    if img.format in ("JPEG", "MPO", "TIFF", "WEBP") and img.getexif().get(0x0112) in (5, 6, 7, 8):
                        w, h = h, w
            except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
                read_style(p)  # raises ImageReadError naming the file and saying styles are never skipped
                raise
            sizes.append((w, h))
        return sizes

    def _common_style_crop(self, sizes: list[tuple[int, int]]) -> int | None:
        """The square every style is centre-cropped to when their transformed sizes differ (else None)."""
        if self.style_crop_size is not None:
            return None
        shapes = {_shorter_size(w, h, self.style_size) if self.style_size else (w, h) for w, h in sizes}
        if len(shapes) <= 1:
            return None
        side = min(min(s) for s in shapes)
        log.info(
            "the %d style images have %d different sizes: all are centre-cropped to %dx%d so they can share "
            "a batch (set --data.style_crop_size to choose the crop)", len(sizes), len(shapes), side, side
        )
        return side

    # ----------------------------------------------------------------------------- Lightning hooks

    def prepare_data(self) -> None:
        # Builds the built-in sets once (rank 0); concurrent builds elsewhere are safe anyway.
        _ = self.content_root, self.style_paths

    def setup(self, stage: str | None = None) -> None:
        if self._ready:
            return
        train, val, source = self._content_split()
        styles = self.style_paths
        crop = self.style_crop_size or self._common_style_crop(self._check_styles(styles))
        train_content = ContentTransform(self.content_size, self.crop_size, self.crop == "random", self.flip)
        val_content = ContentTransform(self.content_size, self.crop_size, False, False)
        self.train_dataset = ContentStyleDataset(
            train, styles, train_content, StyleTransform(self.style_size, crop, self.style_crop_size is not None),
            train=True, skip_bad=self.skip_bad,
        )
        self.val_dataset = ContentStyleDataset(
            val, styles, val_content, StyleTransform(self.style_size, crop, False), train=False, skip_bad=self.skip_bad,
        )
        self._ready = True
        log.info("%d train content images, %d val (%s), %d style(s)", len(train), len(val), source, len(styles))

    def predict_dataloader(self) -> DataLoader:
        self.setup("predict")
        return self._loader(self.val_dataset, shuffle=False)
