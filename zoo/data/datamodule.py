"""`ImageFolderDataModule`: one LightningDataModule for aligned, paired and unpaired image folders."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from zoo.data.builtin import BUILTIN_DATASETS, builtin_layout, ensure_builtin
from zoo.data.folders import AlignedDataset, PairedDataset, UnpairedDataset
from zoo.data.sampling import EpochSampler, ResumableLoader
from zoo.data.layouts import LAYOUTS, LayoutFiles, SplitFiles, collect_files, detect_layout
from zoo.data.transforms import PREPROCESS_MODES, PairedTransform
from zoo.errors import DataError

__all__ = ["ImageFolderDataModule", "SeededLoaders", "DATA_DIRECTIONS", "loader_options", "default_num_workers"]

log = logging.getLogger("zoo.data")

#: The reference repo's `--direction` values (which folder side is the input), not translate()'s a2b/b2a.
DATA_DIRECTIONS: tuple[str, ...] = ("AtoB", "BtoA")
#: The most DataLoader workers chosen automatically: image decoding and cropping saturate well before this.
MAX_AUTO_WORKERS = 8
_DEFAULT_WORKERS = None  # `--data.num_workers` unset: `default_num_workers()` at construction


def default_num_workers() -> int:
    """Workers for an unset `num_workers`: one per core this process may run on, less one for the training
    loop itself, at most `MAX_AUTO_WORKERS`; 0 (load in the main process) on a single core. Counts the
    cores of the affinity mask (containers, `taskset`), not the machine's, where the OS tells them."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        cores = os.cpu_count() or 1
    return max(0, min(cores - 1, MAX_AUTO_WORKERS))


def loader_options(num_workers: int | None = None, pin_memory: bool | None = None,
                   persistent_workers: bool | None = None) -> dict[str, Any]:
    """The DataLoader settings every zoo DataModule uses, from what the user set and the machine: unset
    `num_workers` -> `default_num_workers()`; unset `pin_memory` -> whether CUDA is available (page-locked
    batches copy to the GPU asynchronously); `persistent_workers` (unset: whenever there are workers, so
    each epoch does not pay to start them again) is forced off without workers, where DataLoader refuses it.
    Raises DataError for a negative `num_workers`."""
    if num_workers is None:
        num_workers = default_num_workers()
    if int(num_workers) < 0:
        raise DataError(f"num_workers must be >= 0, got {num_workers}: set --data.num_workers")
    num_workers = int(num_workers)
    pin = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
    persistent = (num_workers > 0 if persistent_workers is None else bool(persistent_workers)) and num_workers > 0
    return {"num_workers": num_workers, "pin_memory": pin, "persistent_workers": persistent}


class SeededLoaders(L.LightningDataModule):
    """DataLoaders whose training order and per-item randomness come from (seed, epoch) alone
    (`zoo.data.sampling.EpochSampler`), with this process's share under DDP. Subclasses set
    `train_dataset` / `val_dataset` in `setup()` and the loader attributes (`batch_size`, `num_workers`,
    `pin_memory`, `persistent_workers`, `seed`)."""

    train_dataset: Dataset | None
    val_dataset: Dataset | None
    batch_size: int
    num_workers: int
    pin_memory: bool
    persistent_workers: bool
    seed: int

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        assert dataset is not None
        # Training order and augmentations come from (seed, epoch) alone: see zoo.data.sampling.
        sampler = EpochSampler(len(dataset), seed=self.seed, **self._replicas()) if shuffle else None
        # Training loaders resume mid-epoch (zoo.data.sampling.ResumableLoader); evaluation ones restart.
        loader = (ResumableLoader if shuffle else DataLoader)(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            # Its own generator: creating an iterator must not draw from the global RNG, whose
            # stream (dropout) is restored on resume at a point Lightning's iterator set-up precedes.
            generator=torch.Generator().manual_seed(self.seed),
            drop_last=False,
            **loader_options(self.num_workers, self.pin_memory, self.persistent_workers),
        )
        if isinstance(loader, ResumableLoader):
            loader.progress = self._epoch_progress
            trainer = getattr(self, "trainer", None)
            if trainer is not None and sampler is not None:
                # The epoch Lightning trains next (restored on resume). With worker processes the iterator
                # draws indices as soon as it is created, which Lightning does before it sets the epoch.
                sampler.set_epoch(int(trainer.fit_loop.epoch_progress.current.processed))
        return loader

    def _epoch_progress(self) -> tuple[int, bool]:
        """(batches the training loop consumed in the current epoch, whether the epoch is done), from the
        loop's own counters: saved mid-batch-end they count the batch just trained."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, False
        done = int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        return done, done >= trainer.num_training_batches

    def _replicas(self) -> dict[str, int]:
        """This process's share of the training set under DDP (Lightning leaves our sampler alone)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {"num_replicas": 1, "rank": 0}
        return {"num_replicas": int(trainer.world_size), "rank": int(trainer.global_rank)}

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_dataset, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        return self._loader(self.val_dataset, shuffle=False)


class ImageFolderDataModule(SeededLoaders):
    """Aligned, paired or unpaired image folders as a LightningDataModule.

    Batches are `{"A": Tensor[B,3,H,W], "B": Tensor[B,3,H,W], "A_path": list[str],
    "B_path": list[str]}` with A and B in `pixel_range`. After `setup()`: `train_dataset`,
    `val_dataset`, `test_dataset` (None without a test split); `root` and `layout` are resolved
    on first use.

    Args:
        root: dataset folder. None uses the built-in dataset named by `builtin` (generated offline
            into $ZOO_CACHE or ~/.cache/zoo on first use).
        layout: "auto" (detect from the folder), "aligned" (train/ val/ test/ with A|B side-by-side
            images), "paired" (A/ + B/, or trainA/ + trainB/ matched by file stem) or "unpaired"
            (trainA/ trainB/ testA/ testB/ sampled independently).
        direction: "AtoB", or "BtoA" to swap A and B in every sample.
        load_size: training images are resized to load_size x load_size before the random crop.
        crop_size: size of the random training crop; validation/test images are resized to it.
        batch_size: images per batch.
        num_workers: DataLoader worker processes (0 loads in the main process); None = from the machine
            (`default_num_workers`: cores - 1, at most 8).
        flip: random horizontal flips during training (the same flip for A and B of a pair).
        preprocess: "resize_and_crop" (resize to load_size, random crop_size crop), "crop" (random
            crop only), "resize" (resize to crop_size) or "none" (keep the size, rounded to a
            multiple of 4).
        skip_bad: skip unreadable images with a warning instead of raising ImageReadError.
        pixel_range: (low, high) range of the output tensors, e.g. (-1, 1) or (0, 1).
        val_split: split folder used for validation (root/<val_split>/ or <val_split>A/ + B/);
            if "val" is absent the test split is used, and failing that 10% of train held out.
        seed: seed of the held-out validation subset and of the built-in dataset.
        builtin: built-in dataset used when root is None: "sketch2photo", "edges2photo" (aligned
            pairs) or "edges2photo-unpaired" (two unpaired domains, for CycleGAN and MUNIT).
        pin_memory: pin batches in page-locked memory; None = when CUDA is available.
        persistent_workers: keep workers alive between epochs; None = when num_workers > 0.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        layout: str = "auto",
        direction: str = "AtoB",
        load_size: int = 286,
        crop_size: int = 256,
        batch_size: int = 1,
        num_workers: int | None = _DEFAULT_WORKERS,
        flip: bool = True,
        preprocess: str = "resize_and_crop",
        skip_bad: bool = False,
        pixel_range: tuple[float, float] = (-1.0, 1.0),
        val_split: str = "val",
        seed: int = 0,
        builtin: str = "sketch2photo",
        pin_memory: bool | None = None,
        persistent_workers: bool | None = None,
    ) -> None:
        super().__init__()
        _choice("layout", layout, LAYOUTS)
        _choice("direction", direction, DATA_DIRECTIONS)
        _choice("preprocess", preprocess, PREPROCESS_MODES)
        if root is None:
            _choice("builtin", builtin, tuple(BUILTIN_DATASETS))
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}: set --data.batch_size")
        loading = loader_options(num_workers, pin_memory, persistent_workers)  # checks num_workers
        if len(pixel_range) != 2 or not pixel_range[1] > pixel_range[0]:
            raise DataError(f"pixel_range {pixel_range} is invalid: pass (low, high), e.g. (-1, 1)")
        # Checks load_size/crop_size now rather than in a worker later.
        PairedTransform(load_size, crop_size, preprocess, flip, True, pixel_range)
        self.save_hyperparameters()
        self._root_arg = root
        self.layout_arg = layout
        self.direction = direction
        self.load_size, self.crop_size = int(load_size), int(crop_size)
        self.batch_size, self.num_workers = int(batch_size), loading["num_workers"]
        self.flip, self.preprocess, self.skip_bad = bool(flip), preprocess, bool(skip_bad)
        self.pixel_range = (float(pixel_range[0]), float(pixel_range[1]))
        self.val_split, self.seed, self.builtin = val_split, int(seed), builtin
        self.pin_memory, self.persistent_workers = loading["pin_memory"], loading["persistent_workers"]
        self._root: Path | None = None
        self._layout: str | None = None
        self._files: LayoutFiles | None = None
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None

    # ------------------------------------------------------------------ resolving root and layout

    @property
    def root(self) -> Path:
        """The resolved dataset folder (the built-in set's folder when root was None)."""
        self._resolve()
        assert self._root is not None
        return self._root

    @property
    def layout(self) -> str:
        """The layout in use: "aligned", "paired" or "unpaired" (detected when layout="auto")."""
        self._resolve()
        assert self._layout is not None
        return self._layout

    def _builtin_size(self) -> int:
        # 256 like pix2pix's datasets (resized up to load_size as the reference does); larger
        # only when the crops would otherwise be upsampled beyond the stored pixels.
        return max(256, self.crop_size)

    def _resolve(self) -> None:
        if self._layout is not None:
            return
        if self._root_arg is None:
            root = ensure_builtin(self.builtin, seed=self.seed, size=self._builtin_size())
            log.info("no root given: using the built-in '%s' set at %s", self.builtin, root)
            layout = builtin_layout(self.builtin)
        else:
            root = Path(self._root_arg).expanduser().resolve()
            if self.layout_arg == "auto":
                layout, why = detect_layout(root)
                log.info("%s: %s", root, why)
                if layout == "paired" and (root / "trainA").is_dir():
                    # trainA/trainB usually means unpaired domains; matching names may be a coincidence.
                    warnings.warn(
                        f"{root}: trainA/ and trainB/ file names all match, so layout='auto' pairs them "
                        f"by name; pass layout='unpaired' if the two domains are unrelated", stacklevel=2
                    )
            else:
                if not root.is_dir():
                    raise DataError(
                        f"dataset root {root} does not exist or is not a folder: pass --data.root "
                        f"to a folder (or leave it out to use the built-in dataset)"
                    )
                layout = self.layout_arg
                log.info("%s: layout '%s' (set by layout=)", root, layout)
        self._root, self._layout = root, layout

    # ----------------------------------------------------------------------------- Lightning hooks

    def prepare_data(self) -> None:
        # Builds the built-in set once (rank 0); concurrent builds elsewhere are safe anyway.
        self._resolve()

    def setup(self, stage: str | None = None) -> None:
        if self._files is not None:
            return
        files = collect_files(self.root, self.layout, self.val_split, self.seed)
        self._files = files
        self.train_dataset = self._dataset(files.train, train=True)
        self.val_dataset = self._dataset(files.val, train=False)
        self.test_dataset = self._dataset(files.test, train=False) if files.test else None
        log.info(
            "%d train items (%s), %d val items (%s), %s",
            len(self.train_dataset), files.train.source, len(self.val_dataset), files.val.source,
            f"{len(self.test_dataset)} test items ({files.test.source})" if files.test else "no test split",
        )

    def _dataset(self, split: SplitFiles, train: bool) -> Dataset:
        tf = PairedTransform(
            self.load_size, self.crop_size, self.preprocess, self.flip, train, self.pixel_range
        )
        swap = self.direction == "BtoA"
        if self.layout == "aligned":
            return AlignedDataset(split.a, tf, skip_bad=self.skip_bad, swap=swap)
        if self.layout == "paired":
            return PairedDataset(split.a, split.b, tf, skip_bad=self.skip_bad, swap=swap)
        return UnpairedDataset(split.a, split.b, tf, random_b=train, skip_bad=self.skip_bad, swap=swap)

    @property
    def dataset_name(self) -> str:
        """What model cards record as the dataset: the built-in set's name, or the folder's name (never
        a local path, which would leak into published cards)."""
        return f"zoo-builtin-{self.builtin}" if self._root_arg is None else Path(self._root_arg).resolve().name

    def test_dataloader(self) -> DataLoader:
        self.setup("test")
        if self.test_dataset is None:
            raise DataError(
                f"{self.root} has no test split (test/ or testA/ testB/): add one, or run "
                f"validate instead of test"
            )
        return self._loader(self.test_dataset, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        self.setup("predict")
        split = self.test_dataset if self.test_dataset is not None else self.val_dataset
        return self._loader(split, shuffle=False)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DataError(
            f"{name}={value!r} is not valid: use one of {', '.join(allowed)} (--data.{name})"
        )
