"""Training order and augmentation randomness as a pure function of (global seed, data seed, epoch).

`EpochSampler` yields `(index, sample_seed)` pairs; datasets draw every random choice of that item
(crop, flip, the unpaired B) from a generator seeded with `sample_seed`. Nothing then depends on
the global RNG's position, on the number of workers or on when Lightning creates the iterator, so a
run resumed from an epoch-end checkpoint sees exactly the samples an uninterrupted run sees.

Mid-epoch, `ResumableLoader` records how many batches the training loop has consumed in the current epoch
(Lightning stores that in the checkpoint) and, on resume, has the sampler leave those positions out of the
epoch's order: by index, before any image is read.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, DistributedSampler

__all__ = ["EpochSampler", "ResumableLoader", "item_generator"]

_MIX = 0x9E3779B97F4A7C15  # odd constant: spreads (seed, epoch) pairs over the generator's seed space


class EpochSampler(DistributedSampler):
    """Shuffles `n` items each epoch. The base seed is `torch.initial_seed()` at construction (what
    `seed_everything` set) mixed with `seed`, so `--seed_everything` and `--data.seed` both change it.

    It is a `DistributedSampler` so that Lightning neither wraps nor replaces it under DDP and calls
    its `set_epoch` every epoch; rank r takes positions r, r + R, ... of the padded global order (as
    DistributedSampler does), and an item's seed belongs to its global position, so augmentations do
    not depend on the number of processes."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, num_replicas: int = 1, rank: int = 0) -> None:
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.n = int(n)
        self.base_seed = (torch.initial_seed() * 1_000_003 + int(seed)) % (2**62)
        self._resume: tuple[int, int] | None = None  # (epoch, global positions already consumed)

    def resume(self, epoch: int, consumed: int) -> None:
        """Make the next iteration over `epoch` leave out its first `consumed` global positions (what every
        rank together consumed before an interruption). `len()` stays the whole epoch's, as Lightning counts
        the batches of a resumed epoch from the checkpoint's position."""
        self.set_epoch(epoch)
        self._resume = (int(epoch), max(0, int(consumed)))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed((self.base_seed + self.epoch * _MIX) % (2**62))
        order = torch.randperm(self.n, generator=generator) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=generator)
        skip = 0
        if self._resume is not None:  # once: the epochs after a resumed one are whole
            epoch, consumed = self._resume
            self._resume = None
            skip = consumed if epoch == self.epoch else 0
        # Global positions skip, skip+1, ... padded by wrapping around (like DistributedSampler) to a multiple of
        # the replicas; rank r takes every R-th. With skip = 0, or the same R as when the positions were
        # consumed, each rank gets exactly the tail of its uninterrupted share.
        count = -(-max(self.n - skip, 0) // self.num_replicas) * self.num_replicas
        positions = torch.arange(skip, skip + count) % max(self.n, 1)
        mine = positions[self.rank :: self.num_replicas]
        return iter(zip(order[mine].tolist(), seeds[mine].tolist()))


class ResumableLoader(DataLoader):
    """A training DataLoader over an `EpochSampler` that Lightning can checkpoint mid-epoch: it has
    `state_dict` / `load_state_dict`, so Lightning stores its state in each checkpoint and hands it back
    when resuming (and no longer warns that the loader is not resumable).

    `progress` (set by the DataModule) returns (batches the training loop consumed in the current epoch,
    whether the epoch is finished). It is the loop's count, not the iterator's: the iterator may run ahead
    of the loop (prefetching, worker processes)."""

    progress: Callable[[], tuple[int, bool]] | None = None

    def state_dict(self) -> dict[str, Any]:
        sampler = self.sampler
        if self.progress is None or not isinstance(sampler, EpochSampler):
            return {}
        batches, finished = self.progress()
        consumed = batches * int(self.batch_size or 1) * sampler.num_replicas  # global positions, all ranks
        return {"epoch": int(sampler.epoch), "consumed": int(consumed), "finished": bool(finished)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sampler = self.sampler
        if not state or not isinstance(sampler, EpochSampler):
            return
        # The epoch is set here too: with worker processes the iterator draws indices as soon as it is created,
        # which Lightning does on resume before it sets the sampler's epoch.
        if state["finished"]:
            sampler.set_epoch(int(state["epoch"]) + 1)
        else:
            sampler.resume(int(state["epoch"]), int(state["consumed"]))


def item_generator(item: int | tuple[int, int]) -> tuple[int, torch.Generator | None]:
    """`(index, generator)` for a dataset item: plain indices (validation, test) draw nothing random."""
    if isinstance(item, (tuple, list)):
        index, seed = item
        return int(index), torch.Generator().manual_seed(int(seed))
    return int(item), None
