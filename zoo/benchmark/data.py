"""The images a benchmark track scores: one dataset item per scored image, indexed, never padded.

Every item is a dict with its dataset `index` and `role`:

* ``"pair"``  — an `input` to translate and its `target` (paired layouts, SR, colorization): the output
  is compared with the target (PSNR/SSIM/LPIPS) and the target is a real image for FID/KID;
* ``"input"`` — an input without a target (unpaired testA, style content x style);
* ``"real"``  — a real image for FID/KID only (unpaired testB, style images).

`ShardSampler` gives rank r the items r, r + W, r + 2W, ... and nothing else: unlike
`DistributedSampler` it never repeats items to even out the ranks, so every image counts once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from zoo.data.builtin import PHOTOS, ensure_builtin, ensure_generated, held_out_crop
from zoo.data.folders import match_stems, require_images, split_aligned
from zoo.errors import DataError
from zoo.fsutil import zoo_cache_dir
from zoo.imageio import read_image
from zoo.benchmark.suites import Track

__all__ = ["BenchDataset", "ShardSampler", "collate_items", "resolve_root", "ensure_bench_photos"]

_PHOTOS_VERSION = 1


def ensure_bench_photos(size: int = 128, n: int = 8, seed: int = 0, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The built-in ``photos`` set: `n` held-out colour crops of scikit-image's photographs as
    ``HR/`` (super-resolution, colorization) and ``content/``, plus two ``style/`` images; offline,
    deterministic, cached in ``$ZOO_CACHE/datasets``."""
    root = Path(cache_dir) if cache_dir else zoo_cache_dir()
    final = root / "datasets" / f"photos-v{_PHOTOS_VERSION}-s{size}-n{n}-seed{seed}"

    def generate(tmp: Path) -> None:
        rng = np.random.default_rng(seed)
        names = list(PHOTOS)
        files = []
        photos = {k: load() for k, load in PHOTOS.items()}
        for folder in ("HR", "content", "style"):
            (tmp / folder).mkdir()
        for i in range(n):
            crop = held_out_crop(rng, photos[names[i % len(names)]], size)
            for folder in ("HR", "content"):
                Image.fromarray(crop).save(tmp / folder / f"{i:04d}.png")
                files.append(f"{folder}/{i:04d}.png")
        # Styles: whole photographs (not crops of the content photos), resized.
        for j, name in enumerate(("immunohistochemistry", "hubble_deep_field")):
            img = Image.fromarray(photos[name]).resize((size, size), Image.Resampling.LANCZOS)
            img.save(tmp / "style" / f"{j:04d}.png")
            files.append(f"style/{j:04d}.png")
        (tmp / "manifest.json").write_text(json.dumps({"name": "photos", "files": files}, indent=1))

    return ensure_generated(final, generate)


def resolve_root(track: Track, root: str | os.PathLike[str] | None = None) -> Path:
    """The track's data folder: `root` (from --root) over data.root; built-in sets are generated."""
    if root is not None:
        return Path(root).expanduser()
    data = track.data
    if "root" in data:
        return Path(os.path.expandvars(str(data["root"]))).expanduser()
    name = data["builtin"]
    if name == "photos":
        return ensure_bench_photos()
    try:
        return ensure_builtin(name)
    except DataError as error:
        raise DataError(f"{error} (built-in sets: photos, sketch2photo, edges2photo)") from None


def _to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


def _luminance_rgb(rgb: np.ndarray) -> np.ndarray:
    """The CIE L* of `rgb` shown as a grey RGB image: what a colorization model receives."""
    from skimage.color import lab2rgb, rgb2lab

    lab = rgb2lab(rgb)
    lab[..., 1:] = 0
    # a = b = 0 is neutral grey; the three channels agree up to round-off, so average them exactly.
    grey = (np.clip(lab2rgb(lab), 0, 1).mean(axis=-1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


class BenchDataset(Dataset):
    """The items of one track (see the module docstring). Images are uint8 CHW tensors at their
    stored size; nothing is cropped or resized except the SR protocol's mod-crop of HR images."""

    def __init__(self, track: Track, root: str | os.PathLike[str] | None = None, limit: int | None = None) -> None:
        self.track = track
        self.root = resolve_root(track, root)
        if not self.root.is_dir():
            raise DataError(f"benchmark data folder {self.root} does not exist: pass --root DIR or fix data.root in the suite")
        self.split = str(track.data.get("split", "test"))
        self.items: list[dict[str, Any]] = self._collect()
        max_items = track.data.get("max_items")
        for cap in (max_items, limit):
            if cap is not None:
                self._cap(int(cap))
        if not any(it["role"] in ("pair", "input") for it in self.items):
            raise DataError(f"no inputs to score in {self.root} ({track.layout} layout, split {self.split!r})")
        self.limited = limit is not None and limit < self.n_available

    # ----------------------------------------------------------------------------- discovery
    def _collect(self) -> list[dict[str, Any]]:
        layout, root, split = self.track.layout, self.root, self.split
        swap = str(self.track.data.get("direction", "AtoB")).lower() in ("btoa", "b2a")
        if layout == "aligned":
            folder = root / split
            items = [{"role": "pair", "aligned": p, "swap": swap} for p in require_images(folder, f"{split} A|B images")]
        elif layout == "paired":
            da, db = root / f"{split}A", root / f"{split}B"
            a, b = match_stems(require_images(da, "A images"), da, require_images(db, "B images"), db)
            if swap:
                a, b = b, a
            items = [{"role": "pair", "input": x, "target": y} for x, y in zip(a, b)]
        elif layout == "unpaired":
            da, db = root / f"{split}A", root / f"{split}B"
            a, b = require_images(da, "A images"), require_images(db, "B images")
            if swap:
                a, b = b, a
            items = [{"role": "input", "input": x} for x in a] + [{"role": "real", "target": y} for y in b]
        elif layout == "sr":
            hr_dir = root / "HR"
            hr = require_images(hr_dir, "high-resolution images")
            lr_dir = root / "LR"
            if lr_dir.is_dir():
                lr, hr = match_stems(require_images(lr_dir, "low-resolution images"), lr_dir, hr, hr_dir)
                items = [{"role": "pair", "input": x, "target": y, "make_lr": False} for x, y in zip(lr, hr)]
            else:
                items = [{"role": "pair", "target": y, "make_lr": True} for y in hr]
        elif layout == "colorization":
            folder = root / split if (root / split).is_dir() else root / "HR" if (root / "HR").is_dir() else root
            items = [{"role": "pair", "target": y, "gray": True} for y in require_images(folder, "colour photographs")]
        elif layout == "style":
            contents = require_images(root / "content", "content images")
            styles = require_images(root / "style", "style images")
            n_styles = self.track.data.get("styles")
            styles = styles[: int(n_styles)] if n_styles else styles
            items = [{"role": "input", "input": c, "style": s} for s in styles for c in contents]
            items += [{"role": "real", "target": s} for s in styles]
        else:  # pragma: no cover - validated by the suite
            raise DataError(f"unknown layout {layout!r}")
        self.n_available = sum(it["role"] != "real" for it in items)
        return items

    def _cap(self, cap: int) -> None:
        """Keep the first `cap` inputs (and, for unpaired data, the first `cap` real images)."""
        if cap < 1:
            raise DataError(f"--limit must be >= 1, got {cap}")
        kept, counts = [], {"pair": 0, "input": 0, "real": 0}
        for it in self.items:
            if counts[it["role"]] < cap:
                kept.append(it)
                counts[it["role"]] += 1
        self.items = kept

    # -------------------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self.items)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items:
            out[it["role"]] = out.get(it["role"], 0) + 1
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        it = self.items[index]
        out: dict[str, Any] = {"index": index, "role": it["role"]}
        if "aligned" in it:
            a, b = split_aligned(read_image(it["aligned"]), it["aligned"])
            if it["swap"]:
                a, b = b, a
            out["input"], out["target"] = _to_tensor(a), _to_tensor(b)
            out["name"] = it["aligned"].relative_to(self.root).as_posix()
            return out
        if "target" in it:
            target = read_image(it["target"])
            out["name"] = it["target"].relative_to(self.root).as_posix()
            if it.get("make_lr") is not None:
                out.update(self._sr_pair(target, it))
                return out
            if it.get("gray"):
                out["input"] = _to_tensor(Image.fromarray(_luminance_rgb(np.asarray(target))))
            out["target"] = _to_tensor(target)
        if "input" in it:
            out["input"] = _to_tensor(read_image(it["input"]))
            out["name"] = it["input"].relative_to(self.root).as_posix()
        if "style" in it:
            out["style"] = _to_tensor(read_image(it["style"]))
            out["name"] = f"{out['name']}+{it['style'].name}"
        return out

    def _sr_pair(self, hr_img: Image.Image, it: dict[str, Any]) -> dict[str, torch.Tensor]:
        from zoo.metrics.resize import make_lr, mod_crop

        scale = int(self.track.data["scale"])
        hr = mod_crop(_to_tensor(hr_img).unsqueeze(0), scale)
        if it["make_lr"]:
            lr = (make_lr(hr, scale) * 255).round().to(torch.uint8)
        else:
            lr = _to_tensor(read_image(it["input"])).unsqueeze(0)
            want = (hr.shape[-2] // scale, hr.shape[-1] // scale)
            if tuple(lr.shape[-2:]) != want:
                raise DataError(
                    f"{it['input']} is {lr.shape[-1]}x{lr.shape[-2]}, but its HR image {it['target'].name} "
                    f"(cropped to a multiple of {scale}) needs an LR of {want[1]}x{want[0]}: fix or remove the LR/ folder"
                )
        return {"input": lr[0], "target": hr[0]}


class ShardSampler(Sampler[int]):
    """Rank `rank` of `num_replicas` takes items rank, rank + W, ...: no padding, no repeats, and
    the union over ranks is every item exactly once (ranks may get one item fewer than others)."""

    def __init__(self, n: int, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for {num_replicas} replicas")
        self.n, self.num_replicas, self.rank = n, num_replicas, rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))


def collate_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep items separate: images of a track may differ in size; the runner batches equal sizes."""
    return items
