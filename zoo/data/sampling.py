"""Training order and augmentation randomness as a pure function of (global seed, data seed, epoch).

`EpochSampler` yields `(index, sample_seed)` pairs; datasets draw every random choice of that item
(crop, flip, the unpaired B) from a generator seeded with `sample_seed`. Nothing then depends on
the global RNG's position, on the number of workers or on when Lightning creates the iterator, so a
run resumed from an epoch-end checkpoint sees exactly the samples an uninterrupted run sees.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DistributedSampler

__all__ = ["EpochSampler", "item_generator"]

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

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed((self.base_seed + self.epoch * _MIX) % (2**62))
        order = torch.randperm(self.n, generator=generator) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=generator)
        positions = torch.arange(self.total_size) % max(self.n, 1)  # pad by wrapping around, like DistributedSampler
        mine = positions[self.rank : self.total_size : self.num_replicas]
        return iter(zip(order[mine].tolist(), seeds[mine].tolist()))


def item_generator(item: int | tuple[int, int]) -> tuple[int, torch.Generator | None]:
    """`(index, generator)` for a dataset item: plain indices (validation, test) draw nothing random."""
    if isinstance(item, (tuple, list)):
        index, seed = item
        return int(index), torch.Generator().manual_seed(int(seed))
    return int(item), None
