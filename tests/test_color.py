import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from zoo.color import (ab_gamut_bins, annealed_mean, empirical_prior, lab_lightness, lab_to_rgb, rebalance_weights,
                       rgb_to_lab, soft_encode)


@pytest.fixture(scope="module")
def bins():
    return ab_gamut_bins()


@pytest.mark.filterwarnings("ignore:Conversion from CIE-LAB")
def test_lab_matches_skimage_and_round_trips():
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 8, 9, generator=g, dtype=torch.float64)
    lab = rgb_to_lab(rgb)
    ref = rgb2lab(rgb.permute(0, 2, 3, 1).numpy())
    assert np.abs(lab.permute(0, 2, 3, 1).numpy() - ref).max() < 1e-4
    back = lab_to_rgb(lab)
    assert (back - rgb).abs().max() < 1e-4
    ref_rgb = lab2rgb(ref)
    assert np.abs(back.permute(0, 2, 3, 1).numpy() - ref_rgb).max() < 1e-4
    # out-of-gamut Lab: clipping agrees with skimage
    wild = torch.tensor([[50.0, 100.0, -110.0], [90.0, -100.0, 100.0], [20.0, 0.0, 80.0]], dtype=torch.float64)
    out = lab_to_rgb(wild.T.reshape(1, 3, 3, 1))[0, :, :, 0].T.numpy()
    exp = lab2rgb(wild.numpy()[None])[0]
    assert np.abs(out - exp).max() < 1e-4 and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lightness_alone_is_rgb_to_lab_l_and_skimage_l(dtype):
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(2, 3, 7, 5, generator=g, dtype=torch.float64).to(dtype)
    rgb[0, :, 0, 0] = 0.0  # the linear branches of both the sRGB decoding and f
    light = lab_lightness(rgb)
    assert light.shape == (2, 1, 7, 5) and light.dtype == dtype
    # the same formulas; only the order of the 3-term sum in the matrix product may differ (an ulp)
    ulps = 1e-12 if dtype == torch.float64 else 3e-5
    torch.testing.assert_close(light, rgb_to_lab(rgb)[:, :1], rtol=0, atol=ulps)
    ref = rgb2lab(rgb.double().permute(0, 2, 3, 1).numpy())[..., 0]
    assert np.abs(light[:, 0].double().numpy() - ref).max() < (1e-10 if dtype == torch.float64 else 1e-4)


def test_bins_313_grid_and_gamut(bins):
    assert bins.shape == (313, 2)
    assert torch.all(bins % 10 == 0) and bins.abs().max() <= 110
    keys = bins[:, 0] * 1000 + bins[:, 1]
    assert torch.all(keys[1:] > keys[:-1])  # sorted by a then b, unique
    # every bin is near (<= 14 ab) some sRGB colour, checked with skimage rgb2lab
    v = np.linspace(0, 1, 40)
    rgb = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(-1, 1, 3)
    ab = torch.from_numpy(rgb2lab(rgb).reshape(-1, 3)[:, 1:]).float()
    assert torch.cdist(bins, ab).min(1).values.max() <= 14.5
    # every centre that is itself in gamut for some L (skimage lab2rgb round trip) is kept
    L = np.arange(0, 101, 2.0)
    axis = np.arange(-110, 111, 10.0)
    A, B = np.meshgrid(axis, axis, indexing="ij")
    lab = np.stack(np.broadcast_arrays(L[:, None, None], A[None], B[None]), -1)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rt = rgb2lab(lab2rgb(lab))
    ok = (np.abs(rt - lab).max(-1) < 1e-3).any(0)
    strict = {(a, b) for a, b in zip(A[ok], B[ok])}
    kept = {tuple(p) for p in bins.tolist()}
    assert len(strict) > 200 and strict <= kept


def test_soft_encode(bins):
    ab = (torch.rand(2, 2, 4, 5, generator=torch.Generator().manual_seed(1)) - 0.5) * 120
    for k in (5, 10):
        z = soft_encode(ab, bins, neighbours=k)
        assert z.shape == (2, 313, 4, 5)
        assert torch.allclose(z.sum(1), torch.ones(2, 4, 5), atol=1e-6)
        assert torch.all((z > 0).sum(1) == k)
        d = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), bins)
        nearest = d.argmin(1)
        assert torch.equal(z.permute(0, 2, 3, 1).reshape(-1, 313).argmax(1), nearest)


def test_annealed_mean(bins):
    logits = torch.randn(1, 313, 3, 3, generator=torch.Generator().manual_seed(2)) * 3
    p = logits.softmax(1).double()
    mean = torch.einsum("bqhw,qc->bchw", p, bins.double())
    assert torch.allclose(annealed_mean(p, bins, T=1.0), mean, atol=1e-6)
    mode = bins.double()[p.argmax(1)].permute(0, 3, 1, 2)
    assert torch.allclose(annealed_mean(p, bins, T=0.01), mode, atol=1e-3)


def test_prior_and_rebalance(bins):
    ab = torch.randn(4, 2, 6, 6, generator=torch.Generator().manual_seed(3)) * 20
    prior = empirical_prior([ab[:2], ab[2:]], bins, sigma=5)
    assert prior.shape == (313,) and abs(prior.sum().item() - 1) < 1e-9 and torch.all(prior >= 0)
    w = rebalance_weights(prior, lam=0.5)
    assert abs((prior * w).sum().item() - 1) < 1e-9
    order = prior.argsort()
    assert torch.all(w[order][1:] <= w[order][:-1] + 1e-12)  # rarer bin -> larger weight
    assert w[prior.argmin()] > w[prior.argmax()]
