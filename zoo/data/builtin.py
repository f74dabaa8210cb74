"""Built-in paired datasets, generated offline from photographs shipped inside scikit-image.

`edges2photo`: B = a square crop of a colour photograph, A = its Canny edges as black lines on
white (like edges2shoes). Saved as A|B side-by-side PNGs in the `aligned` layout:
`train/0000.png ...`, `val/0000.png ...`, plus `manifest.json` (written last: the folder is
complete iff it exists) listing every file's sha256, source photo and crop box. `sketch2photo` is
the same with a coloured sketch as A.

`edges2photo-unpaired` (CycleGAN, MUNIT): two unpaired domains in the `unpaired` layout
(`trainA/ trainB/ valA/ valB/`). A = edge drawings (black lines on white), B = colour photographs,
where every A image is drawn from its own crop, independent of every B crop: no image of one domain
has a counterpart in the other, as in horse2zebra.

Validation never shares pixels with training: train crops come from the left 75% of each photo's
columns, val crops from the right 25%.

For style transfer (`zoo.data.ContentStyleDataModule`) there are two more kinds of set:

- content sets (`CONTENT_SETS`): `photos` = square crops of the real colour photographs (astronaut,
  chelsea, coffee, rocket, motorcycle), `train/0000.png ...` and `val/0000.png ...`, with the same
  column split; made by `ensure_content_builtin`.
- style sets (`STYLE_SETS`): `patterns` = 8 square style images rendered from package-shipped images
  (`00-mosaic.png ... 07-gravel.png`, sorted = the order listed in `PATTERN_STYLES`; the first,
  `00-mosaic`, is what a one-style method trains on with `max_styles=1`); made by `ensure_style_builtin`.

For super-resolution and colorization (`zoo.data.SRDataModule`, `zoo.data.PhotoDataModule`), whole-photo
sets (`PHOTO_SETS`): `hr-photos` = five photographs stored whole in `train/` (crops are taken on the fly)
and three others held out whole in `val/` (chelsea, coffee, rocket), which training never sees; made by
`ensure_photo_builtin`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from zoo.fsutil import apply_umask, zoo_cache_dir
from zoo.errors import DataError

__all__ = [
    "BUILTIN_DATASETS", "UNPAIRED_BUILTINS", "builtin_layout", "PHOTOS", "builtin_dir", "cache_root", "ensure_builtin", "ensure_generated", "held_out_crop",
    "canny_edges", "colour_sketch",
    "CONTENT_SETS", "STYLE_SETS", "PATTERN_STYLES", "ensure_content_builtin", "ensure_style_builtin",
    "PHOTO_SETS", "ensure_photo_builtin",
]

_VERSION = 1
_TRAIN_FRACTION = 0.75  # share of each photo's columns that train crops may use
_SCALE_RANGE = (0.35, 1.0)  # crop side as a fraction of the photo's shorter side


def _photo(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        if name == "motorcycle_left":
            img = skimage.data.stereo_motorcycle()[0]
        else:
            img = getattr(skimage.data, name)()
        return np.ascontiguousarray(img[..., :3])

    return load


# Colour photographs that scikit-image ships in its wheel (no download needed).
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    name: _photo(name)
    for name in (
        "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
        "immunohistochemistry", "motorcycle_left", "retina",
    )
}


def canny_edges(rgb: np.ndarray) -> np.ndarray:
    """Canny edges (sigma 2) of an RGB uint8 image as black lines on white, HxWx3 uint8.

    Thresholds are quantiles of the gradient magnitude (0.8 / 0.9), not absolute values, so
    low-contrast crops (retina, night sky) still get their structure drawn.
    """
    from skimage.color import rgb2gray
    from skimage.feature import canny

    gray = rgb2gray(rgb)
    edges = canny(gray, sigma=2.0, low_threshold=0.8, high_threshold=0.9, use_quantiles=True)
    out = np.where(edges, 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def colour_sketch(rgb: np.ndarray) -> np.ndarray:
    """A coloured sketch: the photo's colour layout blurred away (Gaussian, sigma = 1/32 of the side),
    with its Canny edges drawn on top in black, HxWx3 uint8 -- the kind of input of sketch-and-colour
    conditional synthesis. The generator must restore texture and sharp boundaries from it, which a
    U-Net learns within minutes on a CPU (edges alone take hours before outputs beat a flat grey)."""
    from skimage.filters import gaussian

    layout = gaussian(rgb.astype(np.float64) / 255.0, sigma=max(1.0, rgb.shape[0] / 32), channel_axis=-1)
    out = np.round(layout * 255).astype(np.uint8)
    out[canny_edges(rgb)[..., 0] == 0] = 0
    return out


# name -> structure map (photo crop -> A image). Add a dataset by adding an entry here.
BUILTIN_DATASETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sketch2photo": colour_sketch,
    "edges2photo": canny_edges,
    "edges2photo-unpaired": canny_edges,
}
#: Built-in sets whose A images are rendered from crops of their own (layout `unpaired`).
UNPAIRED_BUILTINS = frozenset({"edges2photo-unpaired"})


def builtin_layout(name: str) -> str:
    """The folder layout of built-in set `name`: `unpaired` or `aligned`."""
    return "unpaired" if name in UNPAIRED_BUILTINS else "aligned"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """`cache_dir`, else `$ZOO_CACHE`, else `~/.cache/zoo`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else zoo_cache_dir()


def builtin_dir(
    name: str, *, seed: int = 0, size: int = 256, n_train: int = 48, n_val: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Where `ensure_builtin` keeps a set (it may not exist yet)."""
    folder = f"{name}-v{_VERSION}-s{size}-n{n_train}x{n_val}-seed{seed}"
    return cache_root(cache_dir) / "datasets" / folder


def _check_sizes(size: int, n_train: int, n_val: int) -> None:
    if size < 8:
        raise DataError(f"built-in image size {size} is too small: use at least 8 (default 256)")
    if n_train < 1 or n_val < 1:
        raise DataError(f"n_train ({n_train}) and n_val ({n_val}) must be >= 1")


def _check_args(name: str, size: int, n_train: int, n_val: int) -> None:
    if name not in BUILTIN_DATASETS:
        raise DataError(
            f"unknown built-in dataset {name!r}: use one of {', '.join(sorted(BUILTIN_DATASETS))}, "
            f"or pass --data.root to your own dataset folder"
        )
    _check_sizes(size, n_train, n_val)


def _is_complete(folder: Path) -> bool:
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all((folder / rel).is_file() for rel in files)


def held_out_crop(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """A random square crop from the validation columns (right 25%) of `photo`, resized to `size`."""
    h, w = photo.shape[:2]
    return _crop(photo, _crop_box(rng, w, h, train=False), size)


def _crop_box(rng: np.random.Generator, w: int, h: int, train: bool) -> tuple[int, int, int, int]:
    split = int(w * _TRAIN_FRACTION)
    x_lo, x_hi = (0, split) if train else (split, w)
    strip = x_hi - x_lo
    side = int(round(rng.uniform(*_SCALE_RANGE) * min(w, h)))
    side = max(1, min(side, strip, h))  # a strip narrower than the crop: crop side = strip width
    x0 = x_lo + int(rng.integers(0, strip - side + 1))
    y0 = int(rng.integers(0, h - side + 1))
    return x0, y0, x0 + side, y0 + side


def _crop(photo: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(photo).crop(box).resize((size, size), Image.Resampling.LANCZOS))


def _generate(folder: Path, name: str, seed: int, size: int, n_train: int, n_val: int) -> None:
    structure = BUILTIN_DATASETS[name]
    photos = {k: load() for k, load in PHOTOS.items()}
    names = list(photos)
    rng = np.random.default_rng(seed)
    files: dict[str, dict] = {}
    unpaired = name in UNPAIRED_BUILTINS
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            photo_name = names[i % len(names)]
            photo = photos[photo_name]
            h, w = photo.shape[:2]
            box = _crop_box(rng, w, h, train=split == "train")
            b = _crop(photo, box, size)
            if unpaired:
                # A comes from a crop of its own (another photo, another place): the domains share no image.
                a_name = names[(i + len(names) // 2) % len(names)]
                a_photo = photos[a_name]
                a_box = _crop_box(rng, a_photo.shape[1], a_photo.shape[0], train=split == "train")
                items = {
                    f"{split}A/{i:04d}.png": (structure(_crop(a_photo, a_box, size)), a_name, a_photo, a_box),
                    f"{split}B/{i:04d}.png": (b, photo_name, photo, box),
                }
            else:
                items = {f"{split}/{i:04d}.png": (np.concatenate([structure(b), b], axis=1), photo_name, photo, box)}
            for rel, (pixels, source, source_photo, source_box) in items.items():
                files[rel] = {
                    "sha256": _write_png(folder, rel, pixels), "photo": source,
                    "photo_size": list(source_photo.shape[1::-1]),
                    "box": list(source_box), "train_columns": [0, int(source_photo.shape[1] * _TRAIN_FRACTION)],
                }
    manifest = {
        "name": name, "version": _VERSION, "seed": seed, "size": size,
        "n_train": n_train, "n_val": n_val, "layout": builtin_layout(name), "files": files,
    }
    # Written last: its presence marks the folder complete.
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def _write_png(folder: Path, rel: str, pixels: np.ndarray) -> str:
    """Save `pixels` as `folder/rel` and return the file's sha256."""
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    # PIL writes no timestamps into PNGs, so the bytes depend only on the pixels.
    Image.fromarray(pixels).save(folder / rel, format="PNG", compress_level=6)
    return hashlib.sha256((folder / rel).read_bytes()).hexdigest()


def _discard(folder: Path) -> None:
    """Remove `folder`; renamed away first so no reader ever sees it half-deleted."""
    trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.trash-", dir=folder.parent))
    try:
        os.rename(folder, trash / "old")
    except OSError:
        pass  # already gone (another process discarded or replaced it)
    shutil.rmtree(trash, ignore_errors=True)


def ensure_builtin(
    name: str = "sketch2photo", *, seed: int = 0, size: int = 256, n_train: int = 48,
    n_val: int = 8, cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Return the folder of built-in set `name`, generating it (a few seconds) if not cached.

    The folder is laid out as `builtin_layout(name)` says. Generation is deterministic (same arguments ->
    byte-identical files) and atomic: files are written into a temporary sibling folder that is
    renamed into place, so concurrent processes all end with a complete folder.
    """
    _check_args(name, size, n_train, n_val)
    final = builtin_dir(name, seed=seed, size=size, n_train=n_train, n_val=n_val, cache_dir=cache_dir)
    return ensure_generated(final, lambda tmp: _generate(tmp, name, seed, size, n_train, n_val))


def ensure_generated(final: Path, generate: Callable[[Path], None]) -> Path:
    """Return `final`, first running `generate(tmp)` into a temporary sibling folder and renaming it
    into place if `final` is not complete yet. `generate` must write `manifest.json` (with a "files"
    list or mapping) last: its presence marks the folder complete. Concurrent callers all end with
    a complete folder."""
    if _is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        generate(tmp)
        apply_umask(tmp)  # mkdtemp made it private; the cache is shared
        for _ in range(2):
            try:
                os.rename(tmp, final)
                return final
            except OSError:
                if _is_complete(final):  # another process won the race: use its copy
                    return final
                _discard(final)  # a broken leftover (no manifest): replace it
        raise DataError(
            f"could not create the built-in dataset folder {final}: check that its parent is "
            f"writable, or set $ZOO_CACHE to a writable folder"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- style-transfer sets

#: Content sets for style transfer: name -> the `PHOTOS` it crops (real photographs only; the
#: microscopy, sky and retina images are kept for the style set).
CONTENT_SETS: dict[str, tuple[str, ...]] = {
    "photos": ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left"),
}


def ensure_content_builtin(
    name: str = "photos", *, seed: int = 0, size: int = 256, n_train: int = 48, n_val: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Return the folder of built-in content set `name` (`train/0000.png ...`, `val/0000.png ...`,
    `manifest.json`), generating it (about a second) if not cached.

    Each image is a random square crop (side 35-100% of the photo's shorter side, from `seed`) of one
    of the set's photographs, resized to `size`; train crops come from the left 75% of the columns,
    val crops from the right 25%. Deterministic and atomic like `ensure_builtin`.
    """
    if name not in CONTENT_SETS:
        raise DataError(
            f"unknown built-in content set {name!r}: use one of {', '.join(sorted(CONTENT_SETS))} "
            f"(--data.builtin), or pass --data.root to a folder of content images"
        )
    _check_sizes(size, n_train, n_val)
    final = builtin_dir(name, seed=seed, size=size, n_train=n_train, n_val=n_val, cache_dir=cache_dir)
    return ensure_generated(final, lambda tmp: _generate_content(tmp, name, seed, size, n_train, n_val))


def _generate_content(folder: Path, name: str, seed: int, size: int, n_train: int, n_val: int) -> None:
    names = CONTENT_SETS[name]
    photos = {k: PHOTOS[k]() for k in names}
    rng = np.random.default_rng(seed)
    files: dict[str, dict] = {}
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            source = names[i % len(names)]
            photo = photos[source]
            box = _crop_box(rng, photo.shape[1], photo.shape[0], train=split == "train")
            rel = f"{split}/{i:04d}.png"
            files[rel] = {
                "sha256": _write_png(folder, rel, _crop(photo, box, size)), "photo": source,
                "photo_size": list(photo.shape[1::-1]), "box": list(box),
                "train_columns": [0, int(photo.shape[1] * _TRAIN_FRACTION)],
            }
    manifest = {
        "name": name, "kind": "content", "version": _VERSION, "seed": seed, "size": size,
        "n_train": n_train, "n_val": n_val, "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


_STYLE_VERSION = 1


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def _square(img: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).crop(box).resize((size, size), Image.Resampling.LANCZOS))


def _tint(gray: np.ndarray, palette: list[tuple[int, int, int]]) -> np.ndarray:
    """Map a grayscale texture through a colour ramp (dark -> light), after stretching its 1-99%
    range to full contrast: a photographed texture becomes a coloured print of it."""
    g = gray.astype(np.float64)
    lo, hi = np.percentile(g, [1, 99])
    g = np.clip((g - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    ramp = np.asarray(palette, dtype=np.float64)
    stops = np.linspace(0.0, 1.0, len(ramp))
    out = np.stack([np.interp(g, stops, ramp[:, c]) for c in range(3)], axis=-1)
    return np.round(out).astype(np.uint8)


def _tinted(texture: str, palette: list[tuple[int, int, int]], size: int) -> np.ndarray:
    """A 512x512 grayscale texture of skimage, tinted with `palette`, resized to `size`."""
    return _square(_tint(_skimage(texture), palette), (0, 0, 512, 512), size)


def _wheel(size: int) -> np.ndarray:
    """The square inside skimage's colour wheel (no black corners)."""
    return _square(_skimage("colorwheel"), (60, 60, 310, 310), size)


def _mosaic(size: int) -> np.ndarray:
    """Stained glass: ~90 SLIC superpixels of the colour wheel, each filled with its mean colour,
    separated by dark lead lines."""
    from skimage.morphology import dilation, disk
    from skimage.segmentation import find_boundaries, slic

    wheel = _wheel(size)
    cells = slic(wheel, n_segments=90, compactness=20, start_label=0)
    out = np.zeros_like(wheel)
    for label in np.unique(cells):
        inside = cells == label
        out[inside] = np.round(wheel[inside].mean(axis=0)).astype(np.uint8)
    lines = dilation(find_boundaries(cells), disk(max(1, round(size / 256))))
    out[lines] = 20
    return out


def _swirl(size: int) -> np.ndarray:
    """Brush strokes: the colour wheel shaded by the grass texture, then swirled about the centre."""
    from skimage.transform import swirl

    colour = _wheel(size).astype(np.float64) / 255.0
    grass = _square(_skimage("grass"), (0, 0, 512, 512), size).astype(np.float64)
    grass = (grass - grass.min()) / max(grass.max() - grass.min(), 1e-6)
    shaded = colour * (0.35 + 0.65 * grass[..., None])
    out = swirl(shaded, strength=8, radius=200 * size / 256)
    return np.round(np.clip(out, 0.0, 1.0) * 255).astype(np.uint8)


#: The `patterns` style set, in order: name -> (source, what was done, renderer(size) -> HxWx3 uint8).
PATTERN_STYLES: dict[str, tuple[str, str, Callable[[int], np.ndarray]]] = {
    "mosaic": ("skimage.data.colorwheel", "SLIC superpixels, mean colours, dark lead lines", _mosaic),
    "swirl": ("skimage.data.colorwheel, skimage.data.grass", "colour wheel shaded by grass, swirled", _swirl),
    "stain": ("skimage.data.immunohistochemistry", "crop (0, 0, 384, 384)",
              lambda s: _square(_skimage("immunohistochemistry"), (0, 0, 384, 384), s)),
    "galaxy": ("skimage.data.hubble_deep_field", "crop (300, 200, 700, 600)",
               lambda s: _square(_skimage("hubble_deep_field"), (300, 200, 700, 600), s)),
    "retina": ("skimage.data.retina", "crop (150, 400, 750, 1000)",
               lambda s: _square(_skimage("retina"), (150, 400, 750, 1000), s)),
    "brick": ("skimage.data.brick", "tinted indigo -> gold",
              lambda s: _tinted("brick", [(20, 24, 82), (70, 90, 170), (240, 200, 90)], s)),
    "grass": ("skimage.data.grass", "tinted dark green -> yellow",
              lambda s: _tinted("grass", [(10, 40, 30), (60, 120, 60), (250, 220, 80)], s)),
    "gravel": ("skimage.data.gravel", "tinted purple -> pink -> cream",
               lambda s: _tinted("gravel", [(40, 10, 60), (200, 60, 120), (250, 240, 200)], s)),
}

#: Style sets: name -> {style name: (source, recipe, renderer)}. Files are `NN-<style>.png`, so their
#: sorted order is the order here.
STYLE_SETS: dict[str, dict[str, tuple[str, str, Callable[[int], np.ndarray]]]] = {"patterns": PATTERN_STYLES}


def ensure_style_builtin(
    name: str = "patterns", *, size: int = 256, cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Return the folder of built-in style set `name` (`00-mosaic.png ...`, `manifest.json` naming
    each image's source), generating it (under a second) if not cached. The images are square,
    `size` pixels, and depend on nothing but `size` (no seed)."""
    if name not in STYLE_SETS:
        raise DataError(
            f"unknown built-in style set {name!r}: use one of {', '.join(sorted(STYLE_SETS))} "
            f"(--data.builtin_style), or pass --data.style to a style image or a folder of them"
        )
    if size < 32:
        raise DataError(f"built-in style image size {size} is too small: use at least 32 (default 256)")
    final = cache_root(cache_dir) / "datasets" / f"{name}-v{_STYLE_VERSION}-s{size}"
    return ensure_generated(final, lambda tmp: _generate_styles(tmp, name, size))


def _generate_styles(folder: Path, name: str, size: int) -> None:
    files: dict[str, dict] = {}
    for i, (style, (source, recipe, render)) in enumerate(STYLE_SETS[name].items()):
        rel = f"{i:02d}-{style}.png"
        files[rel] = {"sha256": _write_png(folder, rel, render(size)), "style": style,
                      "source": source, "recipe": recipe}
    manifest = {"name": name, "kind": "style", "version": _STYLE_VERSION, "size": size, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


# ------------------------------------------------------------------- whole-photo sets (SR, colorization)

#: Whole-photograph sets for restoration tasks (super-resolution, colorization): name -> the `PHOTOS`
#: stored whole for training (random crops are taken on the fly) and those held out whole for validation.
#: No held-out photo is ever seen in training: the split is by photograph, not by region.
PHOTO_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "hr-photos": {
        "train": ("astronaut", "motorcycle_left", "immunohistochemistry", "hubble_deep_field", "retina"),
        "val": ("chelsea", "coffee", "rocket"),
    },
}
#: Longer side of the stored training photos (the large microscopy / sky images are reduced to it).
PHOTO_MAX_SIDE = 640
_PHOTO_SET_VERSION = 1


def ensure_photo_builtin(name: str = "hr-photos", *, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder of whole-photo set `name` (`train/<photo>.png`, `val/<photo>.png`, `manifest.json`),
    writing it (about a second) if not cached. Photos whose longer side exceeds `PHOTO_MAX_SIDE` are reduced
    to it (Lanczos); the others are stored as shipped. Deterministic and atomic like `ensure_builtin`."""
    if name not in PHOTO_SETS:
        raise DataError(
            f"unknown built-in photo set {name!r}: use one of {', '.join(sorted(PHOTO_SETS))} (--data.builtin), "
            f"or pass --data.root to a folder of images"
        )
    final = cache_root(cache_dir) / "datasets" / f"{name}-v{_PHOTO_SET_VERSION}-max{PHOTO_MAX_SIDE}"
    return ensure_generated(final, lambda tmp: _generate_photo_set(tmp, name))


def _generate_photo_set(folder: Path, name: str) -> None:
    files: dict[str, dict] = {}
    for split, photos in PHOTO_SETS[name].items():
        for source in photos:
            photo = PHOTOS[source]()
            h, w = photo.shape[:2]
            if max(h, w) > PHOTO_MAX_SIDE:
                f = PHOTO_MAX_SIDE / max(h, w)
                photo = np.asarray(Image.fromarray(photo).resize((round(w * f), round(h * f)), Image.Resampling.LANCZOS))
            rel = f"{split}/{source}.png"
            files[rel] = {"sha256": _write_png(folder, rel, photo), "photo": source,
                          "photo_size": [w, h], "size": list(photo.shape[1::-1])}
    manifest = {"name": name, "kind": "photos", "version": _PHOTO_SET_VERSION, "max_side": PHOTO_MAX_SIDE,
                "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
