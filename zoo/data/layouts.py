"""Dataset folder layouts: detect which one a root folder uses and list each split's files.

- aligned:  root/train/, root/val/, root/test/ holding A|B side-by-side images;
- paired:   root/A/ + root/B/ (one split), or root/trainA/ + root/trainB/ (+ valA/valB, testA/testB),
            files matched by stem;
- unpaired: root/trainA/ + root/trainB/ (+ valA/valB, testA/testB), independent domains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.data.folders import index_by_stem, list_images, match_stems, require_images
from zoo.errors import DataError

__all__ = ["LAYOUTS", "SplitFiles", "LayoutFiles", "detect_layout", "collect_files"]

LAYOUTS: tuple[str, ...] = ("auto", "aligned", "paired", "unpaired")

_DESCRIPTION = {
    "aligned": "train/ val/ test/ with A|B side-by-side images",
    "paired": "A and B folders, images matched by file stem",
    "unpaired": "trainA/ trainB/ domains sampled independently",
}


@dataclass
class SplitFiles:
    """The files of one split: `a` (and `b` for paired/unpaired); `source` says where they came from."""

    a: list[Path]
    b: list[Path] = field(default_factory=list)
    source: str = ""


@dataclass
class LayoutFiles:
    layout: str
    train: SplitFiles
    val: SplitFiles
    test: SplitFiles | None


def _is_dir(root: Path, name: str) -> bool:
    return (root / name).is_dir()


def _all_stems_match(root: Path) -> tuple[bool, str]:
    """Do trainA/trainB (and valA/valB, testA/testB where both exist) have the same stems?"""
    total = 0
    for split in ("train", "val", "test"):
        da, db = root / f"{split}A", root / f"{split}B"
        if not (da.is_dir() and db.is_dir()):
            continue
        ka = set(index_by_stem(list_images(da), da))
        kb = set(index_by_stem(list_images(db), db))
        if ka != kb:
            n = len(ka ^ kb)
            return False, f"{n} file stem(s) of {split}A/ and {split}B/ have no counterpart"
        total += len(ka)
    if total == 0:
        return False, "trainA/ and trainB/ hold no images to match"
    return True, f"every one of the {total} file stems in trainA/ etc. has a counterpart in trainB/ etc."


def detect_layout(root: Path) -> tuple[str, str]:
    """Return (layout, reason) for `root`; `DataError` when unrecognised or ambiguous."""
    if not root.is_dir():
        raise DataError(
            f"dataset root {root} does not exist or is not a folder: pass --data.root to a folder "
            f"(or leave it out to use the built-in dataset)"
        )
    aligned = _is_dir(root, "train")
    ab = _is_dir(root, "A") or _is_dir(root, "B")
    domains = _is_dir(root, "trainA") or _is_dir(root, "trainB")
    found = [name for name, hit in (("train/", aligned), ("A/ B/", ab), ("trainA/ trainB/", domains)) if hit]
    if len(found) > 1:
        raise DataError(
            f"dataset root {root} is ambiguous: it has {' and '.join(found)}. Keep one layout per "
            f"folder, or pass --data.layout aligned|paired|unpaired to choose"
        )
    if aligned:
        return "aligned", f"found train/: layout 'aligned' ({_DESCRIPTION['aligned']})"
    if ab:
        return "paired", f"found A/ and B/: layout 'paired' ({_DESCRIPTION['paired']})"
    if domains:
        if not (_is_dir(root, "trainA") and _is_dir(root, "trainB")):
            missing = "trainB" if _is_dir(root, "trainA") else "trainA"
            raise DataError(f"dataset root {root} has no {missing}/ folder: add it, next to its partner")
        same, why = _all_stems_match(root)
        layout = "paired" if same else "unpaired"
        return layout, f"found trainA/ and trainB/; {why}: layout '{layout}' ({_DESCRIPTION[layout]})"
    raise DataError(
        f"cannot tell the layout of {root}: looked for train/ (aligned A|B images), A/ + B/ "
        f"(paired), trainA/ + trainB/ (paired or unpaired) and found none. Arrange the folder "
        f"like one of these, or pass --data.root to the dataset folder"
    )


def _holdout(n: int, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic 10% (at least 1) validation indices; with 1 item it serves both splits."""
    if n < 2:
        return list(range(n)), list(range(n))
    k = max(1, int(round(0.1 * n)))
    perm = np.random.default_rng(seed).permutation(n)
    val = sorted(int(i) for i in perm[:k])
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], val


def _split_holdout(files: list[Path], seed: int) -> tuple[list[Path], list[Path]]:
    tr, va = _holdout(len(files), seed)
    return [files[i] for i in tr], [files[i] for i in va]


def _split_holdout_pairs(a: list[Path], b: list[Path], seed: int) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
    """Hold out the same 10% of positions from two matched lists: (train A, train B, val A, val B)."""
    tr, va = _holdout(len(a), seed)
    return [a[i] for i in tr], [b[i] for i in tr], [a[i] for i in va], [b[i] for i in va]


def collect_files(root: Path, layout: str, val_split: str = "val", seed: int = 0) -> LayoutFiles:
    """List train/val/test files of `root` under `layout` (not "auto").

    Validation uses the `val_split` folder; when it is absent (and `val_split` is the default
    "val"), the test split; when that is absent too, a deterministic 10% of train held out by `seed`.
    """
    if layout == "aligned":
        return _collect_aligned(root, val_split, seed)
    if layout == "paired" and (_is_dir(root, "A") or _is_dir(root, "B")):
        return _collect_paired_ab(root, seed)
    if layout in ("paired", "unpaired"):
        return _collect_domains(root, layout, val_split, seed)
    raise DataError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")


def _missing_val(root: Path, val_split: str, what: str) -> DataError:
    return DataError(
        f"validation split {what} not found under {root}: create it, or leave --data.val_split at "
        f"'val' to fall back to the test split or a held-out part of train"
    )


def _collect_aligned(root: Path, val_split: str, seed: int) -> LayoutFiles:
    train = require_images(root / "train", "training A|B images")
    test = SplitFiles(require_images(root / "test"), source="test/") if _is_dir(root, "test") else None
    if _is_dir(root, val_split):
        val = SplitFiles(require_images(root / val_split), source=f"{val_split}/")
    elif val_split != "val":
        raise _missing_val(root, val_split, f"{val_split}/")
    elif test is not None:
        val = SplitFiles(test.a, source="test/ (no val/ folder)")
    else:
        train, held = _split_holdout(train, seed)
        val = SplitFiles(held, source="10% of train/ held out (no val/ or test/ folder)")
    return LayoutFiles("aligned", SplitFiles(train, source="train/"), val, test)


def _collect_paired_ab(root: Path, seed: int) -> LayoutFiles:
    da, db = root / "A", root / "B"
    a, b = match_stems(require_images(da, "A images"), da, require_images(db, "B images"), db)
    train_a, train_b, val_a, val_b = _split_holdout_pairs(a, b, seed)
    train = SplitFiles(train_a, train_b, source="A/ B/")
    val = SplitFiles(val_a, val_b, source="10% of A/ B/ held out")
    return LayoutFiles("paired", train, val, None)


def _domain_split(root: Path, split: str, paired: bool) -> SplitFiles:
    da, db = root / f"{split}A", root / f"{split}B"
    a = require_images(da, f"{split} A images")
    b = require_images(db, f"{split} B images")
    if paired:
        a, b = match_stems(a, da, b, db)
    return SplitFiles(a, b, source=f"{split}A/ {split}B/")


def _collect_domains(root: Path, layout: str, val_split: str, seed: int) -> LayoutFiles:
    paired = layout == "paired"
    train = _domain_split(root, "train", paired)
    has = lambda split: _is_dir(root, f"{split}A") or _is_dir(root, f"{split}B")  # noqa: E731
    test = _domain_split(root, "test", paired) if has("test") else None
    if has(val_split):
        val = _domain_split(root, val_split, paired)
    elif val_split != "val":
        raise _missing_val(root, val_split, f"{val_split}A/ {val_split}B/")
    elif test is not None:
        val = SplitFiles(test.a, test.b, source="testA/ testB/ (no valA/ valB/)")
    elif paired:
        train_a, train_b, val_a, val_b = _split_holdout_pairs(train.a, train.b, seed)
        val = SplitFiles(val_a, val_b, source="10% of train held out")
        train = SplitFiles(train_a, train_b, source=train.source)
    else:  # unpaired: hold out each domain independently
        a_tr, a_va = _split_holdout(train.a, seed)
        b_tr, b_va = _split_holdout(train.b, seed + 1)
        val = SplitFiles(a_va, b_va, source="10% of trainA/ trainB/ held out")
        train = SplitFiles(a_tr, b_tr, source=train.source)
    return LayoutFiles(layout, train, val, test)
