"""Tiny synthetic paired data for method and CLI tests (built in tmp folders, never committed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def pair_images(index: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A: black outline of a rectangle on white (a structure map); B: the same rectangle filled with a
    colour over a coloured background (the 'photo'). Deterministic in `index`."""
    rng = np.random.default_rng(index)
    y0, x0 = rng.integers(2, size // 2, 2)
    y1, x1 = y0 + rng.integers(size // 4, size // 2), x0 + rng.integers(size // 4, size // 2)
    a = np.full((size, size, 3), 255, np.uint8)
    a[y0:y1, [x0, x1 - 1]] = 0
    a[[y0, y1 - 1], x0:x1] = 0
    b = np.empty((size, size, 3), np.uint8)
    b[:] = rng.integers(0, 256, 3)
    b[y0:y1, x0:x1] = rng.integers(0, 256, 3)
    return a, b


def make_aligned(root: Path, n_train: int = 4, n_val: int = 2, size: int = 64, same_val: bool = False) -> Path:
    """`root/train/*.png` and `root/val/*.png` with A|B side by side. `same_val` reuses the training
    pairs for validation (for overfitting tests)."""
    for split, count, offset in (("train", n_train, 0), ("val", n_val, 0 if same_val else 1000)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a, b = pair_images(offset + i, size)
            Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{i:03d}.png")
    return root


def make_unpaired(root: Path, n_train: int = 4, n_val: int = 2, size: int = 32, same_val: bool = False) -> Path:
    """`root/{train,val}{A,B}/*.png`: A = rectangle outlines, B = filled rectangles, each from its own
    index (no image of A has a counterpart in B). `same_val` reuses the training images for validation."""
    for split, count, offset in (("train", n_train, 0), ("val", n_val, 0 if same_val else 1000)):
        for domain, pick, shift in (("A", 0, 0), ("B", 1, 500)):
            folder = root / f"{split}{domain}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(pair_images(offset + shift + i, size)[pick]).save(folder / f"{i:03d}.png")
    return root
