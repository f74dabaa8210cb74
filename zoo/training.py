"""Training plumbing shared by every method: atomic checkpoint files, checkpoint folders that do not
depend on the logger's version, and RNG state carried in checkpoints so that resuming is exact."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from zoo.fsutil import atomic_file

__all__ = ["AtomicCheckpointIO", "ZooCheckpoint", "capture_rng_state", "restore_rng_state", "set_epoch_lr"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `<name>.ckpt` through a temporary file in the same folder, fsyncs it, then renames it into
    place: a crash or a full disk mid-write leaves the previous checkpoint untouched."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if "://" in str(path):  # remote filesystems: fsspec's own write semantics
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_file(path) as handle:
            torch.save(checkpoint, handle)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        # Our own checkpoints hold tensors and plain containers only; never unpickle anything else.
        return super().load_checkpoint(path, map_location=map_location, weights_only=True)


class ZooCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes into `<default_root_dir>/checkpoints` unless told otherwise, so
    `--ckpt_path last` finds `last.ckpt` again in the next run (the logger's version folder changes)."""

    def _use_root_dir(self, trainer: "L.Trainer") -> None:
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")

    def setup(self, trainer: "L.Trainer", pl_module: "L.LightningModule", stage: str) -> None:
        self._use_root_dir(trainer)
        super().setup(trainer, pl_module, stage)

    def _find_last_checkpoints(self, trainer: "L.Trainer") -> set[str]:
        # `ckpt_path="last"` is resolved before setup(): the folder must be known by then too.
        self._use_root_dir(trainer)
        return super()._find_last_checkpoints(trainer)


def capture_rng_state() -> dict[str, Any]:
    """Every RNG a training step can draw from, as tensors and plain Python values (weights_only-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value


def set_epoch_lr(scheduler: torch.optim.lr_scheduler.LambdaLR, epoch: int) -> None:
    """Put a LambdaLR at `epoch` (0-based): lr = base_lr * lambda(epoch), a function of the epoch alone."""
    scheduler.last_epoch = epoch
    for group, base_lr, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base_lr * factor(epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
