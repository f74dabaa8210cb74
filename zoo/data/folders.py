"""Image-file discovery and the three folder datasets (aligned, paired, unpaired).

Every dataset yields `{"A": Tensor, "B": Tensor, "A_path": str, "B_path": str}`; `swap=True`
(direction BtoA) exchanges A and B in every sample, as the pix2pix/CycleGAN repo does.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from zoo.errors import DataError, ImageReadError
from zoo.imageio import IMAGE_EXTENSIONS, is_image_file, read_image
from zoo.data.sampling import item_generator

__all__ = [
    "list_images",
    "require_images",
    "stem_key",
    "index_by_stem",
    "match_stems",
    "split_aligned",
    "AlignedDataset",
    "PairedDataset",
    "UnpairedDataset",
]

_EXTS = ", ".join(IMAGE_EXTENSIONS)


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """All image files under `folder`, recursively, sorted by relative path.

    Hidden files and dot-folders are ignored, as are files without an image extension. Symlinked
    folders are not followed (a symlink loop cannot hang the walk); symlinked files are kept.
    """
    root = Path(folder)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and is_image_file(name):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def require_images(folder: Path, what: str = "images") -> list[Path]:
    """`list_images(folder)`, raising `DataError` when the folder is missing or holds no images."""
    if not folder.exists():
        raise DataError(
            f"folder {folder} does not exist: create it and put the {what} there, "
            f"or pass --data.root to the dataset folder"
        )
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder: pass --data.root to the dataset folder")
    files = list_images(folder)
    if not files:
        raise DataError(
            f"folder {folder} contains no images (looked for {_EXTS}): put the {what} there "
            f"or pass --data.root to another folder"
        )
    return files


def stem_key(path: Path, folder: Path) -> str:
    """The pairing key of a file: its path relative to `folder`, without the extension."""
    return path.relative_to(folder).with_suffix("").as_posix()


def index_by_stem(files: Sequence[Path], folder: Path) -> dict[str, Path]:
    """Map stem key -> file; two files with one stem (a.png and a.jpg) raise `DataError`."""
    index: dict[str, Path] = {}
    for f in files:
        key = stem_key(f, folder)
        if key in index:
            raise DataError(
                f"{folder} holds two images with the stem {key!r}: {index[key].name} and {f.name}; "
                f"pairs are matched by file stem, so remove or rename one of them"
            )
        index[key] = f
    return index


def match_stems(
    a_files: Sequence[Path], a_dir: Path, b_files: Sequence[Path], b_dir: Path
) -> tuple[list[Path], list[Path]]:
    """Pair files of two folders by stem; a stem present on one side only raises `DataError`."""
    a_idx, b_idx = index_by_stem(a_files, a_dir), index_by_stem(b_files, b_dir)
    only_a = sorted(set(a_idx) - set(b_idx))
    only_b = sorted(set(b_idx) - set(a_idx))
    if only_a or only_b:
        parts = []
        for side, other, stems in ((a_dir, b_dir, only_a), (b_dir, a_dir, only_b)):
            n = len(stems)
            if n:
                more = f" and {n - 5} more" if n > 5 else ""
                parts.append(f"{n} in {side} have no match in {other} ({', '.join(stems[:5])}{more})")
        raise DataError(
            f"paired folders do not match ({len(a_idx)} files in {a_dir}, {len(b_idx)} in {b_dir}): "
            + "; ".join(parts)
            + ". Give each A image a B image with the same file stem, or use --data.layout unpaired"
        )
    keys = sorted(a_idx)
    return [a_idx[k] for k in keys], [b_idx[k] for k in keys]


def split_aligned(img: Image.Image, path: Path) -> tuple[Image.Image, Image.Image]:
    """Split an A|B side-by-side image: A = columns [0, w//2), B = [w//2, 2*(w//2)).

    With an odd width the last column is dropped, so both halves have the same size.
    """
    w, h = img.size
    if w < 2:
        raise ImageReadError(
            f"aligned image {path} is {w} pixel(s) wide, too narrow to split into A|B halves: "
            f"remove it, or use --data.layout paired with separate A/ and B/ folders"
        )
    half = w // 2
    return img.crop((0, 0, half, h)), img.crop((half, 0, 2 * half, h))


class _FolderDataset(Dataset):
    """Shared reading with `skip_bad`: a bad item warns once and the next readable one is used."""

    def __init__(self, skip_bad: bool, swap: bool) -> None:
        self.skip_bad = skip_bad
        self.swap = swap
        self._bad: set[int] = set()

    def _num_items(self) -> int:
        raise NotImplementedError

    def _read_item(self, index: int) -> tuple[tuple[Image.Image, ...], tuple[Path, Path]]:
        raise NotImplementedError

    def _read_with_skip(self, index: int) -> tuple[tuple[Image.Image, ...], tuple[Path, Path]]:
        n = self._num_items()
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            try:
                return self._read_item(i)
            except ImageReadError as e:
                if not self.skip_bad:
                    raise
                # Remembered, so each bad file warns once and is not re-read every epoch.
                self._bad.add(i)
                warnings.warn(f"skipping unreadable image (skip_bad=True): {e}", stacklevel=2)
        raise DataError(
            f"all {n} items of this dataset are unreadable (skip_bad=True skipped every one): "
            f"check the image files, see the warnings above for each file"
        )

    def _sample(self, a: torch.Tensor, b: torch.Tensor, a_path: Path, b_path: Path) -> dict:
        if self.swap:
            a, b, a_path, b_path = b, a, b_path, a_path
        return {"A": a, "B": b, "A_path": str(a_path), "B_path": str(b_path)}


class _PairDataset(_FolderDataset):
    """Items made of an A and a B image that get the same transform (same crop and flip)."""

    def __init__(self, n: int, transform: Callable, skip_bad: bool, swap: bool) -> None:
        super().__init__(skip_bad, swap)
        self._n = n
        self.transform = transform

    def __len__(self) -> int:
        return self._n

    def _num_items(self) -> int:
        return self._n

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, generator = item_generator(item)
        (a, b), (pa, pb) = self._read_with_skip(index)
        ta, tb = self.transform(a, b, generator=generator)
        return self._sample(ta, tb, pa, pb)


class AlignedDataset(_PairDataset):
    """A|B side-by-side images (pix2pix 'aligned'); both halves get the same transform."""

    def __init__(
        self, files: Sequence[Path], transform: Callable, skip_bad: bool = False, swap: bool = False
    ) -> None:
        self.files = list(files)
        super().__init__(len(self.files), transform, skip_bad, swap)

    def _read_item(self, index: int):
        path = self.files[index]
        return split_aligned(read_image(path), path), (path, path)


class PairedDataset(_PairDataset):
    """A/ and B/ folders matched by stem; both images get the same transform."""

    def __init__(
        self, a_files: Sequence[Path], b_files: Sequence[Path], transform: Callable,
        skip_bad: bool = False, swap: bool = False,
    ) -> None:
        if len(a_files) != len(b_files):
            raise DataError(f"paired lists differ in length ({len(a_files)} vs {len(b_files)})")
        self.a_files, self.b_files = list(a_files), list(b_files)
        super().__init__(len(self.a_files), transform, skip_bad, swap)

    def _read_item(self, index: int):
        pa, pb = self.a_files[index], self.b_files[index]
        return (read_image(pa), read_image(pb)), (pa, pb)


class UnpairedDataset(Dataset):
    """Two unrelated domains (CycleGAN 'unaligned'). Length = max(len(A), len(B)).

    Item i is A[i % len(A)] with, when `random_b`, a random B drawn from the item's generator (see
    `zoo.data.sampling`; the global RNG for plain indices), else B[i % len(B)]. A and B get independent
    transforms.
    """

    def __init__(
        self, a_files: Sequence[Path], b_files: Sequence[Path], transform: Callable,
        random_b: bool = True, skip_bad: bool = False, swap: bool = False,
    ) -> None:
        self.a = _SideReader(a_files, skip_bad)
        self.b = _SideReader(b_files, skip_bad)
        self.a_files, self.b_files = self.a.files, self.b.files
        self.transform = transform
        self.random_b = random_b
        self.swap = swap

    def __len__(self) -> int:
        return max(len(self.a_files), len(self.b_files))

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, generator = item_generator(item)
        img_a, pa = self.a.read(index % len(self.a_files))
        if self.random_b:
            j = int(torch.randint(len(self.b_files), (1,), generator=generator).item())
        else:
            j = index % len(self.b_files)
        img_b, pb = self.b.read(j)
        (ta,) = self.transform(img_a, generator=generator)
        (tb,) = self.transform(img_b, generator=generator)
        if self.swap:
            ta, tb, pa, pb = tb, ta, pb, pa
        return {"A": ta, "B": tb, "A_path": str(pa), "B_path": str(pb)}


class _SideReader(_FolderDataset):
    """One domain's files with skip_bad handling (used by `UnpairedDataset`)."""

    def __init__(self, files: Sequence[Path], skip_bad: bool) -> None:
        super().__init__(skip_bad, swap=False)
        self.files = list(files)

    def _num_items(self) -> int:
        return len(self.files)

    def _read_item(self, index: int):
        path = self.files[index]
        return (read_image(path),), (path, path)

    def read(self, index: int) -> tuple[Image.Image, Path]:
        (img,), (path, _) = self._read_with_skip(index)
        return img, path
