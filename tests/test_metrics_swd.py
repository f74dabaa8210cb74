"""Sliced Wasserstein distance: agreement with scipy's 1-D Wasserstein distance, patch sampling, and the
streaming metric used by the unpaired methods' validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import wasserstein_distance

from zoo.metrics import PatchSWD, patch_swd, sliced_wasserstein
from zoo.metrics.swd import patch_descriptors


def _directions(dim: int, n: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(dim, n, generator=g, dtype=torch.float64)
    return (d / d.norm(dim=0, keepdim=True)).numpy()


def test_sliced_wasserstein_is_the_mean_of_scipy_1d_distances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 5)), rng.normal(1.0, 2.0, size=(300, 5))
    theta = _directions(5, 64, seed=7)
    expected = np.mean([wasserstein_distance(x @ t, y @ t) for t in theta.T])
    got = float(sliced_wasserstein(torch.from_numpy(x), torch.from_numpy(y), n_projections=64, seed=7))
    assert got == pytest.approx(expected, rel=1e-10)


def test_sliced_wasserstein_properties():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(200, 3)))
    assert float(sliced_wasserstein(x, x[torch.randperm(200)])) == pytest.approx(0.0, abs=1e-12)
    shift = torch.tensor([3.0, 0.0, -4.0], dtype=torch.float64)  # |shift| = 5
    theta = torch.from_numpy(_directions(3, 512, seed=0))
    expected = float((shift @ theta).abs().mean())  # a translation moves every projection by θ·v
    assert float(sliced_wasserstein(x, x + shift)) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError):
        sliced_wasserstein(x, x[:10])


def test_patch_descriptors_are_the_pixels_of_seeded_patches():
    images = torch.rand(3, 3, 20, 17)
    d = patch_descriptors(images, 6, patch_size=5, seed=4)
    g = torch.Generator().manual_seed(4)
    which = torch.randint(0, 3, (6,), generator=g)
    top = torch.randint(0, 16, (6,), generator=g)
    left = torch.randint(0, 13, (6,), generator=g)
    for i in range(6):
        patch = images[which[i], :, top[i] : top[i] + 5, left[i] : left[i] + 5]
        assert torch.equal(d[i], patch.reshape(-1))
    with pytest.raises(ValueError, match="smaller"):
        patch_descriptors(torch.rand(1, 3, 4, 4), 2, patch_size=7)


def test_patch_swd_ranks_domains_and_is_deterministic():
    torch.manual_seed(0)
    photos = torch.rand(4, 3, 32, 32) * 0.5 + 0.25
    drawings = torch.ones(4, 3, 32, 32)
    drawings[:, :, ::6] = 0.0  # black lines on white
    other_photos = torch.rand(4, 3, 32, 32) * 0.5 + 0.25
    near, far = patch_swd(other_photos, photos), patch_swd(drawings, photos)
    assert near < far / 5
    assert patch_swd(drawings, photos) == far  # same seed, same value


def test_streaming_metric_matches_the_direct_computation():
    torch.manual_seed(1)
    fake, real = torch.rand(6, 3, 24, 24), torch.rand(6, 3, 24, 24) ** 2
    metric = PatchSWD(patches_per_image=16, n_projections=128, seed=3)
    descriptors = {"fake": [], "real": []}
    for i, batch in enumerate((slice(0, 4), slice(4, 6))):
        metric.update(fake[batch], real[batch])
        seed = 3 + 1_000_003 * i
        descriptors["fake"].append(patch_descriptors(fake[batch], 16 * len(fake[batch]), 7, seed))
        descriptors["real"].append(patch_descriptors(real[batch], 16 * len(real[batch]), 7, seed + 1))
    a, b = torch.cat(descriptors["fake"]), torch.cat(descriptors["real"])
    g = torch.Generator().manual_seed(3)
    a, b = a[torch.randperm(len(a), generator=g)], b[torch.randperm(len(b), generator=g)]
    expected = float(sliced_wasserstein(a, b, 128, 5))
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-6)
    metric.reset()
    assert metric.num_updates == 0
    # unequal set sizes: the larger one is subsampled
    metric.update(fake[:1], real[:1])
    metric.update(fake[1:3], real[1:2])
    assert float(metric.compute()) > 0
