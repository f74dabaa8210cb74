"""Sliced Wasserstein distance between the local-patch distributions of two image sets (Rabin et al.
2011; as a GAN metric, Karras et al. 2018, "Progressive Growing of GANs", §5 and appendix D).

It needs no pretrained network, so training runs use it offline to measure how far generated images
are from the target domain (the unpaired methods' validation: SWD(G_A(A), B)). Lower is closer. This
is a single-scale variant on raw [0, 1] RGB patches (ProGAN's uses a Laplacian pyramid and normalises
each set by its own statistics, which would hide the colour shifts that tell two domains apart), so its
numbers are not comparable with ProGAN's tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

__all__ = ["sliced_wasserstein", "patch_descriptors", "patch_swd", "PatchSWD", "log_domain_distances"]


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 512, seed: int = 0) -> Tensor:
    """Mean over `n_projections` random unit directions θ of W1(θ·x, θ·y), the 1-D Wasserstein-1
    distance between the projected samples. `x`, `y`: (N, D) with the same N (then W1 is the mean
    |difference| of the sorted projections). Directions come from a generator seeded with `seed`."""
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must both be (N, D) with the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    generator = torch.Generator().manual_seed(int(seed))
    directions = torch.randn(x.shape[1], n_projections, generator=generator, dtype=torch.float64)
    directions /= directions.norm(dim=0, keepdim=True)
    directions = directions.to(x.device)
    px = torch.sort(x.double() @ directions, dim=0).values
    py = torch.sort(y.double() @ directions, dim=0).values
    return (px - py).abs().mean()


def patch_descriptors(images: Tensor, n_patches: int, patch_size: int = 7, seed: int = 0) -> Tensor:
    """`n_patches` random `patch_size`² RGB patches of `images` (B, C, H, W), flattened to (n, C·p²).
    Image and position of each patch are drawn from a generator seeded with `seed`."""
    b, c, h, w = images.shape
    if h < patch_size or w < patch_size:
        raise ValueError(f"images of {h}x{w} are smaller than the {patch_size}x{patch_size} patches")
    generator = torch.Generator().manual_seed(int(seed))
    which = torch.randint(0, b, (n_patches,), generator=generator)
    top = torch.randint(0, h - patch_size + 1, (n_patches,), generator=generator)
    left = torch.randint(0, w - patch_size + 1, (n_patches,), generator=generator)
    offsets = torch.arange(patch_size)
    rows = (top[:, None] + offsets)[:, :, None].expand(-1, -1, patch_size)
    cols = (left[:, None] + offsets)[:, None, :].expand(-1, patch_size, -1)
    patches = images[which.to(images.device)[:, None, None], :, rows.to(images.device), cols.to(images.device)]
    return patches.permute(0, 3, 1, 2).reshape(n_patches, c * patch_size * patch_size)


def patch_swd(
    fake: Tensor, real: Tensor, *, n_patches: int = 4096, patch_size: int = 7, n_projections: int = 512, seed: int = 0
) -> float:
    """Sliced Wasserstein distance between `n_patches` random patches of `fake` and as many of `real`
    (both (B, 3, H, W) in [0, 1]; the two sets may differ in size). Deterministic for a given `seed`."""
    a = patch_descriptors(fake.float(), n_patches, patch_size, seed)
    b = patch_descriptors(real.float(), n_patches, patch_size, seed + 1)
    return float(sliced_wasserstein(a, b, n_projections, seed + 2))


class PatchSWD(Metric):
    """`patch_swd` as a torchmetrics Metric for streaming evaluation: `update(fake, real)` keeps
    `patches_per_image` random patches of each image (descriptors only, not the images), `compute()`
    returns the sliced Wasserstein distance between the two patch sets (the larger one subsampled to
    the smaller's size). Under DDP the descriptors of all processes are gathered first."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, patches_per_image: int = 128, patch_size: int = 7, n_projections: int = 512, seed: int = 0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.patches_per_image, self.patch_size = int(patches_per_image), int(patch_size)
        self.n_projections, self.seed = int(n_projections), int(seed)
        self.add_state("fake", default=[], dist_reduce_fx="cat")
        self.add_state("real", default=[], dist_reduce_fx="cat")
        self.num_updates = 0

    def update(self, fake: Tensor, real: Tensor) -> None:
        seed = self.seed + 1_000_003 * self.num_updates
        self.num_updates += 1
        for state, images, offset in ((self.fake, fake, 0), (self.real, real, 1)):
            state.append(patch_descriptors(images.float(), self.patches_per_image * len(images), self.patch_size,
                                           seed + offset).float())

    def compute(self) -> Tensor:
        fake, real = dim_zero_cat(self.fake), dim_zero_cat(self.real)
        n = min(len(fake), len(real))
        generator = torch.Generator().manual_seed(self.seed)
        fake = fake[torch.randperm(len(fake), generator=generator)[:n].to(fake.device)]
        real = real[torch.randperm(len(real), generator=generator)[:n].to(real.device)]
        return sliced_wasserstein(fake, real, self.n_projections, self.seed + 2).float()

    def reset(self) -> None:
        super().reset()
        self.num_updates = 0


def log_domain_distances(module: Any, stage: str, metrics: Mapping[str, PatchSWD]) -> None:
    """Log `<stage>/swd_<key>` for each metric and `<stage>/swd`, the mean of the `a2b` and `b2a` ones (the
    unpaired methods' monitor), then reset them all. Nothing is logged when no batch ran (e.g.
    `limit_val_batches=0`). Under DDP the metrics have gathered every process's patches, so every
    process logs the same values."""
    if metrics["a2b"].num_updates:
        values = {key: metric.compute() for key, metric in metrics.items()}
        for key, value in values.items():
            module.log(f"{stage}/swd_{key}", value)
        module.log(f"{stage}/swd", (values["a2b"] + values["b2a"]) / 2, prog_bar=stage == "val")
    for metric in metrics.values():
        metric.reset()
