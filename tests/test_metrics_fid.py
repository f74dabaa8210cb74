"""FID / KID: the formulas against scipy / numpy references, DDP-style invariance, and the offline
handling of the Inception weights (random, from a path, from the env var, missing, wrong keys)."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from zoo.errors import CheckpointError, WeightsNotFoundError, ZooError
from zoo.metrics import backbones
from zoo.metrics.backbones import find_backbone_weights, is_published, sha256_of
from zoo.metrics.fid import FID, KID, InceptionFeatures, poly_mmd2_subsets

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE


class Lookup(nn.Module):
    """Maps each image to a fixed row of `table`: the image's pixel (0, 0) encodes the row number in
    its red (high byte) and green (low byte) channels."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)
        self.num_features = table.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.uint8
        return self.table[x[:, 0, 0, 0].long() * 256 + x[:, 1, 0, 0].long()]


def images(rows, as_float: bool = False) -> torch.Tensor:
    rows = torch.as_tensor(rows)
    x = torch.zeros(len(rows), 3, 4, 4, dtype=torch.uint8)
    x[:, 0, 0, 0] = rows // 256
    x[:, 1, 0, 0] = rows % 256
    return x.float() / 255 if as_float else x


@pytest.fixture(scope="module")
def features():
    """40 fake and 50 real 16-d features; rows 0..39 of the table are fake, 40..89 real."""
    g = np.random.default_rng(0)
    fake = g.normal(0.3, 1.0, (40, 16)) @ g.normal(0, 0.5, (16, 16))
    real = g.normal(0.0, 1.0, (50, 16)) @ g.normal(0, 0.5, (16, 16))
    return fake, real


def lookup_for(fake: np.ndarray, real: np.ndarray) -> Lookup:
    return Lookup(torch.from_numpy(np.concatenate([fake, real])))


def fid_scipy(f: np.ndarray, r: np.ndarray) -> float:
    mu1, mu2 = f.mean(0), r.mean(0)
    s1, s2 = np.cov(f, rowvar=False), np.cov(r, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kid_numpy(f: np.ndarray, r: np.ndarray, subsets: int, m: int, seed: int) -> tuple[float, float]:
    d = f.shape[1]
    rng = np.random.RandomState(seed)
    vals = []
    for _ in range(subsets):
        x = f[rng.choice(len(f), m, replace=False)]
        y = r[rng.choice(len(r), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        vals.append(
            (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.sum() / (m * m)
        )
    return float(np.mean(vals)), float(np.std(vals))


def fill(metric, n_fake=40, n_real=50, order=None, batch=7, dup=(), as_float=False, with_index=True):
    """Add fake rows 0..n_fake-1 and real rows 40..40+n_real-1 (index = position within its side) in
    `order`, in batches of `batch`, plus the positions in `dup` again (DistributedSampler padding)."""
    for side, n, offset in (("fake", n_fake, 0), ("real", n_real, 40)):
        pos = list(order(n) if order else range(n)) + list(dup)
        for i in range(0, len(pos), batch):
            p = torch.tensor(pos[i : i + batch])
            metric.update(images(p + offset, as_float), real=side == "real", index=p if with_index else None)
    return metric


def test_fid_equals_scipy_sqrtm(features):
    fake, real = features
    fid = fill(FID(feature=lookup_for(fake, real)))
    value = fid.compute()
    ref = fid_scipy(fake, real)
    assert abs(value - ref) <= 1e-6 * abs(ref)
    assert value.protocol == "fid/custom/v1" and not value.comparable and "custom feature network" in value.notes
    assert value.n == 40 and value.extra["n_real"] == 50


def test_kid_equals_numpy_mmd(features):
    fake, real = features
    kid = fill(KID(feature=lookup_for(fake, real), subsets=10, subset_size=20, seed=7))
    value = kid.compute()
    ref_mean, ref_std = kid_numpy(fake, real, 10, 20, 7)
    assert abs(value - ref_mean) <= 1e-6 * abs(ref_mean)
    assert abs(value.extra["std"] - ref_std) <= 1e-6 * ref_std
    assert value.protocol == "kid/custom/s10x20/seed7/v1"
    # Both code paths (full kernel matrices indexed / kernels per subset) give the reference.
    f, r = torch.from_numpy(fake), torch.from_numpy(real)
    for subsets in (2, 30):
        ref = kid_numpy(fake, real, subsets, 20, 3)[0]
        assert abs(poly_mmd2_subsets(f, r, subsets, 20, 3).mean().item() - ref) <= 1e-9 * abs(ref)


def test_kid_small_sets_use_smaller_subsets(features):
    fake, real = features
    kid = fill(KID(feature=lookup_for(fake, real)))  # protocol: 100 subsets of 1000
    value = kid.compute()
    assert abs(value - kid_numpy(fake, real, 100, 40, 2020)[0]) <= 1e-6 * abs(value)
    assert value.extra["subset_size"] == 40 and any("fewer than the protocol's 1000" in n for n in value.notes)
    assert value.protocol == "kid/custom/s100x1000/v1"
    assert not any("1000" in n for n in kid.notes)  # the note belongs to that result, not to the metric


def test_fid_and_kid_equal_torch_fidelity(features):
    from torch_fidelity.metric_fid import fid_statistics_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    fake, real = features
    fid = fill(FID(feature=lookup_for(fake, real))).compute()
    stats = [{"mu": x.mean(0), "sigma": np.cov(x, rowvar=False)} for x in (fake, real)]
    ref = fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]
    assert abs(fid - ref) <= 1e-9 * ref
    kid = fill(KID(feature=lookup_for(fake, real), subsets=10, subset_size=30)).compute()
    ref = kid_features_to_metric(
        torch.from_numpy(fake), torch.from_numpy(real), kid_subsets=10, kid_subset_size=30, rng_seed=2020,
        verbose=False, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
    )
    assert abs(kid - ref["kernel_inception_distance_mean"]) <= 1e-9 * abs(kid)
    assert abs(kid.extra["std"] - ref["kernel_inception_distance_std"]) <= 1e-9 * kid.extra["std"]


@pytest.mark.parametrize("cls", [FID, KID])
def test_order_batches_and_duplicates_do_not_matter(features, cls):
    fake, real = features
    kwargs = {"subsets": 5, "subset_size": 30} if cls is KID else {}
    make = lambda: cls(feature=lookup_for(fake, real), **kwargs)  # noqa: E731
    base = float(fill(make()).compute())
    rev = lambda n: reversed(range(n))  # noqa: E731
    assert float(fill(make(), order=rev, batch=3).compute()) == base
    assert float(fill(make(), batch=16, dup=(0, 1, 2)).compute()) == base
    assert float(fill(make(), as_float=True).compute()) == base  # float in [0, 1] is rounded to the same uint8
    # Without indices the rows are sorted by value: still order-independent.
    unindexed = float(fill(make(), with_index=False).compute())
    assert float(fill(make(), order=rev, with_index=False).compute()) == unindexed
    # Two "ranks" (DistributedSampler split with padding), merged as DDP's all-gather would.
    r0, r1 = make(), make()
    for side, n, offset in (("fake", 40, 0), ("real", 50, 40)):
        pos = list(range(n)) + [0] * (n % 2)
        for rank, metric in ((0, r0), (1, r1)):
            p = torch.tensor(pos[rank::2])
            metric.update(images(p + offset), real=side == "real", index=p)
    r0.merge_state(r1)
    assert float(r0.compute()) == base


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric FID was called before")
def test_reset_real_features_and_errors(features):
    fake, real = features
    keep = fill(FID(feature=lookup_for(fake, real), reset_real_features=False))
    first = float(keep.compute())
    keep.reset()
    assert not keep.fake_features and keep.real_features
    keep.update(images(range(40)), real=False, index=torch.arange(40))
    assert float(keep.compute()) == first
    fid = fill(FID(feature=lookup_for(fake, real)))
    fid.reset()
    with pytest.raises(ZooError, match="at least 2"):
        fid.compute()
    fid.update(images([0]), real=False, index=torch.tensor([0]))
    fid.update(images([40, 41]), real=True)
    with pytest.raises(ZooError, match="1 fake sample"):
        fid.compute()
    with pytest.raises(ZooError, match="real must be True or False"):
        fid.update(images([0]), torch.tensor([0]))
    with pytest.raises(ZooError, match="indices"):
        fid.update(images([0, 1]), real=False, index=torch.tensor([0]))
    with pytest.raises(ZooError, match=r"\[0, 1\]"):
        fid.update(torch.full((1, 3, 4, 4), 2.0), real=False)


def test_inception_random_weights_offline():
    net = InceptionFeatures(weights=None)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    out = net(x)
    assert out.shape == (2, 2048) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert out.std() > 1e-3  # He init: not vanishing features
    assert torch.equal(net(x), out)
    assert torch.equal(InceptionFeatures(weights=None)(x), out)  # seeded: the same random network every time
    assert torch.equal(net(x.float() / 255), out)  # floats are rounded to the same uint8
    assert net.notes and "random inception weights (weights=None)" in net.notes[0]
    assert not net.training and not any(p.requires_grad for p in net.parameters())

    assert FID(feature=net).protocol.id == "fid/tf-inception-2015-12-05/random-weights/v1"  # a protocol of its own
    small = InceptionFeatures(64, weights=None)  # (a 2048-d FID takes seconds of eigenvalues on a CPU)
    fid = FID(feature=small)  # an InceptionFeatures can be shared between FID and KID
    assert fid.protocol.id == "fid/tf-inception-2015-12-05/dim64/random-weights/v1" and not fid.comparable
    assert list(fid.state_dict()) == [] and list(fid.parameters()) == []  # the backbone stays out of checkpoints
    fid.update(x, real=True)
    fid.update(torch.flip(x, dims=[3]), real=False)
    value = fid.compute()
    assert value > 0 and not value.comparable and value.notes[: len(net.notes)] == net.notes
    assert any("64-d Inception features" in n for n in value.notes)  # published FID is 2048-d
    kid = KID(feature=small, subsets=3)
    assert kid.protocol.id == "kid/tf-inception-2015-12-05/dim64/s3x1000/random-weights/v1"
    with pytest.raises(ZooError, match="feature must be one of"):
        FID(feature=100, weights=None)


@pytest.fixture
def no_lookup(tmp_path, monkeypatch):
    """Empty torch hub and zoo caches, no env var: the default lookup finds nothing."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    monkeypatch.delenv("ZOO_INCEPTION_WEIGHTS", raising=False)
    return tmp_path


def test_inception_weights_from_path_env_and_caches(no_lookup, monkeypatch):
    source = InceptionFeatures(64, weights=None)  # 64-d: the same state dict, a shorter forward
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        for p in source.parameters():
            p.mul_(1 + 0.5 * torch.rand(p.shape, generator=g))  # different from the seeded random network
    path = no_lookup / "my-inception.pth"
    torch.save(source.inception.state_dict(), path)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    expected = source(x)
    assert not torch.equal(InceptionFeatures(64, weights=None)(x), expected)

    from_path = InceptionFeatures(64, weights=path)
    assert torch.equal(from_path(x), expected)
    # The same numbers as torch-fidelity's own extractor given the same file (it unpickles: our file).
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    odd = torch.randint(0, 256, (2, 3, 37, 53), dtype=torch.uint8)
    fidelity = FeatureExtractorInceptionV3("inception-v3-compat", ["64"], feature_extractor_weights_path=str(path))
    assert torch.equal(from_path(odd), fidelity(odd)[0])
    assert from_path.weights_path == path
    assert len(from_path.notes) == 1 and "not the published file (sha256" in from_path.notes[0]
    fid = FID(feature=64, weights=str(path))
    assert not fid.comparable and "not the published file" in fid.notes[0]

    monkeypatch.setenv("ZOO_INCEPTION_WEIGHTS", str(path))
    assert torch.equal(InceptionFeatures(64)(x), expected)
    monkeypatch.setenv("ZOO_INCEPTION_WEIGHTS", str(no_lookup / "nope.pth"))
    with pytest.raises(WeightsNotFoundError, match="ZOO_INCEPTION_WEIGHTS"):
        find_backbone_weights("inception")
    monkeypatch.delenv("ZOO_INCEPTION_WEIGHTS")

    for folder in (no_lookup / "zoo" / "weights", no_lookup / "torch" / "hub" / "checkpoints"):
        folder.mkdir(parents=True)
        shutil.copy(path, folder / INCEPTION_FILE)
        assert find_backbone_weights("inception") == folder / INCEPTION_FILE  # the hub cache wins over zoo's

    # A file with the published sha256 prefix is comparable (prefix patched to this file's).
    published = dataclasses.replace(backbones.BACKBONES["inception"], sha256_prefix=sha256_of(path)[:8])
    monkeypatch.setitem(backbones.BACKBONES, "inception", published)
    assert is_published("inception", path)
    assert InceptionFeatures(64, weights=path).notes == ()  # the published network: nothing to note
    # ...but a 64-d tap is not the published protocol (2048-d pool3): that alone is noted.
    assert FID(feature=64, weights=path).notes == ("64-d Inception features; published FID/KID use the 2048-d pool3",)


def test_inception_weights_missing_or_wrong(no_lookup):
    with pytest.raises(WeightsNotFoundError) as err:
        FID()
    message = str(err.value)
    for part in (INCEPTION_FILE, INCEPTION_URL, "ZOO_INCEPTION_WEIGHTS", "weights=None", str(no_lookup / "torch")):
        assert part in message
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        InceptionFeatures(weights=no_lookup / "missing.pth")

    wrong = no_lookup / "wrong.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3), "extra.weight": torch.zeros(1)}, wrong)
    with pytest.raises(CheckpointError, match=r"missing keys: .*Conv2d_2a_3x3.*unexpected keys: extra\.weight"):
        InceptionFeatures(weights=wrong)
    shape = no_lookup / "shape.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(3, 3)}, shape)
    with pytest.raises(CheckpointError, match="do not fit"):
        InceptionFeatures(weights=shape)
    corrupt = no_lookup / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pth"):
        InceptionFeatures(weights=corrupt)
    pickled = no_lookup / "pickled.pth"
    torch.save({"net": nn.Linear(2, 2)}, pickled)  # a pickled module: refused by weights_only=True
    with pytest.raises(CheckpointError, match="pickled.pth"):
        InceptionFeatures(weights=pickled)
    with pytest.raises(ZooError, match="weights= applies to the built-in Inception"):
        FID(feature=nn.Identity(), weights=None)
