"""Image grids for validation, sent to whichever Lightning loggers are attached."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torchvision.utils import make_grid, save_image

__all__ = ["image_grid", "log_image_grid", "GridCollector"]


def image_grid(columns: list[torch.Tensor]) -> torch.Tensor:
    """One row per sample, one column per tensor (each BCHW in [0, 1]): e.g. A | G(A) | B."""
    rows = torch.stack(columns, dim=1).flatten(0, 1)  # (B*C, 3, H, W), row-major
    return make_grid(rows.float().clamp(0, 1).cpu(), nrow=len(columns), padding=2, pad_value=1.0)


def log_image_grid(module: "L.LightningModule", key: str, grid: torch.Tensor) -> list[str]:
    """Log `grid` (3HW in [0, 1]) to every logger that takes images (wandb, TensorBoard); loggers that
    don't (CSV) get a PNG in their log folder. Returns where it went, for tests and messages."""
    trainer = module.trainer
    step = trainer.global_step
    sent: list[str] = []
    for logger in trainer.loggers:
        name = type(logger).__name__
        if hasattr(logger, "log_image"):  # WandbLogger (and others with the same API)
            logger.log_image(key=key, images=[grid], step=step)
            sent.append(name)
        elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
            logger.experiment.add_image(key, grid, global_step=step)
            sent.append(name)
        elif getattr(logger, "log_dir", None) and trainer.is_global_zero:  # one file, not one per DDP rank
            path = Path(logger.log_dir) / "images" / f"{key.replace('/', '_')}_step{step:07d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_image(grid, path)
            sent.append(str(path))
    return sent


class GridCollector:
    """Collects the first `limit` validation samples, column by column (e.g. A | G(A) | B), and logs them
    as one grid at the epoch's end (not during the sanity check)."""

    def __init__(self, limit: int) -> None:
        self.limit = int(limit)
        self.parts: list[list[torch.Tensor]] = []

    def wants_more(self) -> bool:
        return sum(len(p[0]) for p in self.parts) < self.limit

    def add(self, *columns: torch.Tensor) -> None:
        if self.wants_more():
            self.parts.append([c.detach().float().cpu() for c in columns])

    def log(self, module: "L.LightningModule", key: str) -> None:
        if self.parts and not module.trainer.sanity_checking:
            columns = [torch.cat(parts)[: self.limit] for parts in zip(*self.parts)]
            log_image_grid(module, key, image_grid(columns))
        self.parts = []
