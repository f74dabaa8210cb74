"""zoo.metrics.pixel: PSNR / SSIM against scikit-image under both protocols, the metric classes, errors.

The scikit-image reference is independent of zoo's code: uint8 rounding with numpy, the Y channel from
`skimage.color.rgb2ycbcr` (float, not rounded), `peak_signal_noise_ratio(..., data_range=255)` and
`structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=255)`. scikit-image filters the whole image (reflect padding) but averages the SSIM map
cropped by the filter radius (5 px), which is exactly the "valid" 11x11 region zoo computes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.color import rgb2ycbcr
from skimage.filters import gaussian
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from zoo.errors import ZooError
from zoo.metrics.base import MetricResult
from zoo.metrics.pixel import PSNR, SSIM, psnr, rgb_to_y, ssim

TOL = 1e-4

# ------------------------------------------------------------------------------------ references


def _u8(x: np.ndarray) -> np.ndarray:
    """HWC float [0, 1] or uint8 → uint8, rounding (the reference's own quantization)."""
    if x.dtype == np.uint8:
        return x
    return np.clip(np.round(x.astype(np.float64) * 255), 0, 255).astype(np.uint8)


def _ref_planes(img: np.ndarray, protocol: str, crop: int) -> np.ndarray:
    u8 = _u8(img)
    v = rgb2ycbcr(u8)[..., 0] if protocol == "sr-y" else u8.astype(np.float64)
    if crop:
        v = v[crop:-crop, crop:-crop]
    return v


def ref_psnr(pred: np.ndarray, gt: np.ndarray, protocol: str, crop: int) -> float:
    p, g = _ref_planes(pred, protocol, crop), _ref_planes(gt, protocol, crop)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # division by zero for identical images → inf
        return float(peak_signal_noise_ratio(g, p, data_range=255))


def ref_ssim(pred: np.ndarray, gt: np.ndarray, protocol: str, crop: int) -> float:
    p, g = _ref_planes(pred, protocol, crop), _ref_planes(gt, protocol, crop)
    return float(
        structural_similarity(
            g,
            p,
            channel_axis=-1 if protocol == "rgb" else None,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
    )


def _t(img: np.ndarray) -> torch.Tensor:
    """HWC numpy (uint8 or float [0, 1]) → 1CHW tensor (uint8 stays uint8, floats become float32)."""
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    return t if t.dtype == torch.uint8 else t.to(torch.float32)


def _batch(imgs: list[np.ndarray]) -> torch.Tensor:
    return torch.cat([_t(i) for i in imgs])


# ------------------------------------------------------------------------------------ test images


def _degrade(gt_u8: np.ndarray, seed: int) -> np.ndarray:
    """Blur + Gaussian noise, float in [0, 1] (so that zoo's rounding is exercised)."""
    rng = np.random.default_rng(seed)
    x = gaussian(gt_u8.astype(np.float64) / 255, sigma=1.2, channel_axis=-1)
    x = x + rng.normal(0, 0.03, x.shape)
    return np.clip(x, 0, 1).astype(np.float32)


def _natural() -> list[tuple[str, np.ndarray, np.ndarray]]:
    crops = [
        ("astronaut", skdata.astronaut()),  # full 512x512
        ("astronaut-crop", skdata.astronaut()[60:188, 170:330]),
        ("chelsea", skdata.chelsea()[40:161, 120:277]),
        ("coffee", skdata.coffee()[100:228, 200:392]),
    ]
    return [(n, _degrade(gt, i), gt) for i, (n, gt) in enumerate(crops)]


def _random(h: int, w: int, seed: int, noisy: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if noisy:  # correlated with gt: SSIM well away from 0
        pred = np.clip(gt.astype(np.float64) / 255 + rng.normal(0, 0.05, gt.shape), 0, 1).astype(np.float32)
    else:  # independent: SSIM near 0
        pred = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return pred, gt


CASES: list[tuple[str, np.ndarray, np.ndarray]] = _natural() + [
    ("random-48x64-noisy", *_random(48, 64, 1, True)),
    ("random-40x40-indep", *_random(40, 40, 2, False)),
    ("odd-97x131", *_random(97, 131, 3, True)),
    ("odd-33x45", *_random(33, 45, 4, True)),
    ("odd-33x45-indep", *_random(33, 45, 5, False)),
]


# ------------------------------------------------------------------------------------ functional


@pytest.mark.parametrize("protocol", ["rgb", "sr-y"])
@pytest.mark.parametrize("crop", [0, 4])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_functional_matches_skimage(case, protocol, crop):
    _, pred, gt = case
    p, g = _t(pred), _t(gt)
    got_psnr = float(psnr(p, g, protocol=protocol, crop_border=crop)[0])
    got_ssim = float(ssim(p, g, protocol=protocol, crop_border=crop)[0])
    assert abs(got_psnr - ref_psnr(pred, gt, protocol, crop)) < TOL
    assert abs(got_ssim - ref_ssim(pred, gt, protocol, crop)) < TOL


def test_functional_returns_float64_per_image_and_batch_matches_single():
    _, p1, g1 = CASES[1]
    p2 = _degrade(g1, 7)
    preds, target = _batch([p1, p2]), _batch([g1, g1])
    for fn in (psnr, ssim):
        out = fn(preds, target, protocol="sr-y", crop_border=2)
        assert out.dtype == torch.float64 and out.shape == (2,)
        single = torch.cat([fn(preds[i : i + 1], target[i : i + 1], protocol="sr-y", crop_border=2) for i in range(2)])
        assert torch.allclose(out, single, rtol=0, atol=1e-12)


def test_smallest_ssim_sizes():
    pred, gt = _random(11, 11, 8, True)
    assert abs(float(ssim(_t(pred), _t(gt))[0]) - ref_ssim(pred, gt, "rgb", 0)) < TOL
    pred, gt = _random(19, 23, 9, True)  # 11x15 after a 4 px crop
    for protocol in ("rgb", "sr-y"):
        got = float(ssim(_t(pred), _t(gt), protocol=protocol, crop_border=4)[0])
        assert abs(got - ref_ssim(pred, gt, protocol, 4)) < TOL


def test_float_and_uint8_inputs_agree_after_rounding():
    _, pred, gt = CASES[4]
    p_u8 = _t(_u8(pred))
    p_f = _t(pred)
    for fn in (psnr, ssim):
        assert torch.equal(fn(p_f, _t(gt)), fn(p_u8, _t(gt)))
        # Truncation would differ: the float input is rounded, not floored.
        assert torch.equal(fn(p_f, _t(gt), protocol="sr-y", crop_border=3), fn(p_u8, _t(gt), protocol="sr-y", crop_border=3))


def test_rgb_to_y_matches_skimage():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    ours = rgb_to_y(_t(u8).to(torch.float64))[0, 0].numpy()
    assert np.abs(ours - rgb2ycbcr(u8)[..., 0]).max() < 1e-10
    white = rgb_to_y(torch.full((1, 3, 1, 1), 255.0, dtype=torch.float64))
    black = rgb_to_y(torch.zeros((1, 3, 1, 1), dtype=torch.float64))
    assert abs(float(white) - 235.0) < 1e-10 and abs(float(black) - 16.0) < 1e-12


def test_identical_images_give_inf_psnr_and_ssim_one():
    _, _, gt = CASES[5]
    for protocol in ("rgb", "sr-y"):
        assert torch.isinf(psnr(_t(gt), _t(gt), protocol=protocol)).all()
        assert torch.allclose(ssim(_t(gt), _t(gt), protocol=protocol), torch.ones(1, dtype=torch.float64), atol=1e-12)
    m = PSNR()
    m.update(_t(gt), _t(gt))
    res = m.compute()
    assert res == float("inf") and isinstance(res, MetricResult)


# ------------------------------------------------------------------------------------ metric classes

REF = {"psnr": ref_psnr, "ssim": ref_ssim}


@pytest.mark.parametrize("cls", [PSNR, SSIM])
@pytest.mark.parametrize(
    "protocol,scale,crop_arg,crop", [("rgb", None, None, 0), ("sr-y", 3, None, 3), ("rgb", None, 4, 4), ("sr-y", 2, 4, 4)]
)
def test_metric_over_updates_is_mean_of_skimage(cls, protocol, scale, crop_arg, crop):
    h, w = 40, 52
    items = [_random(h, w, 20 + i, True) for i in range(5)]
    m = cls(protocol=protocol, scale=scale, crop_border=crop_arg)
    m.update(_batch([p for p, _ in items[:2]]), _batch([g for _, g in items[:2]]), torch.tensor([0, 1]))
    m.update(_batch([p for p, _ in items[2:]]), _batch([g for _, g in items[2:]]), torch.tensor([2, 3, 4]))
    res = m.compute()
    expected = np.mean([REF[cls.name](p, g, protocol, crop) for p, g in items])
    assert isinstance(res, MetricResult)
    assert abs(float(res) - expected) < TOL
    assert res.n == 5 and res.metric == cls.name


def test_protocol_ids_and_comparable():
    cases = [
        (PSNR(), "psnr/rgb/v1"),
        (PSNR(crop_border=4), "psnr/rgb/crop4/v1"),
        (PSNR("sr-y", scale=4), "psnr/sr-y/crop4/v1"),
        (PSNR("sr-y", scale=2, crop_border=2), "psnr/sr-y/crop2/v1"),
        (SSIM(), "ssim/rgb/v1"),
        (SSIM(crop_border=6), "ssim/rgb/crop6/v1"),
        (SSIM("sr-y", scale=3), "ssim/sr-y/crop3/v1"),
    ]
    pred, gt = _random(24, 24, 30, True)
    for m, pid in cases:
        assert m.protocol.id == pid
        assert m.protocol.description and m.protocol.description.endswith("values")
        assert m.higher_is_better is True
        for key in ("quantize", "channels", "crop_border"):
            assert key in m.protocol.params
        if m.name == "ssim":
            assert m.protocol.params["window"] == 11 and m.protocol.params["sigma"] == 1.5
            assert (m.protocol.params["k1"], m.protocol.params["k2"]) == (0.01, 0.03)
        m.update(_t(pred), _t(gt))
        res = m.compute()
        assert res.protocol == pid and res.comparable is True and res.notes == ()
    assert PSNR("sr-y", scale=4).protocol.params["channels"] != PSNR().protocol.params["channels"]


def test_sr_y_crop_other_than_scale_is_recorded_as_not_comparable():
    m = SSIM("sr-y", scale=4, crop_border=0)
    assert m.protocol.id == "ssim/sr-y/crop0/v1"
    pred, gt = _random(24, 24, 31, True)
    m.update(_t(pred), _t(gt))
    res = m.compute()
    assert res.comparable is False and "scale 4" in res.notes[0]


@pytest.mark.parametrize("cls", [PSNR, SSIM])
def test_duplicate_indices_count_once(cls):
    items = [_random(24, 28, 40 + i, True) for i in range(4)]
    m = cls()
    m.update(_batch([items[0][0], items[1][0]]), _batch([items[0][1], items[1][1]]), torch.tensor([0, 1]))
    # Index 1 again, with a different image (as DistributedSampler padding would repeat it): ignored.
    m.update(_batch([items[3][0], items[2][0]]), _batch([items[3][1], items[2][1]]), torch.tensor([1, 2]))
    res = m.compute()
    expected = np.mean([REF[cls.name](p, g, "rgb", 0) for p, g in items[:3]])
    assert res.n == 3 and abs(float(res) - expected) < TOL


@pytest.mark.parametrize("cls", [PSNR, SSIM])
def test_result_does_not_depend_on_batch_split_or_order(cls):
    items = [_random(26, 30, 50 + i, True) for i in range(6)]
    preds, target = _batch([p for p, _ in items]), _batch([g for _, g in items])
    whole = cls("sr-y", scale=2)
    whole.update(preds, target, torch.arange(6))
    split = cls("sr-y", scale=2)
    for sel in ([5, 2], [0], [4, 1, 3]):
        split.update(preds[sel], target[sel], torch.tensor(sel))
    a, b = whole.compute(), split.compute()
    assert abs(float(a) - float(b)) < 1e-12 and a.n == b.n == 6
    per_item = psnr if cls is PSNR else ssim
    one_by_one = torch.cat([per_item(preds[i : i + 1], target[i : i + 1], "sr-y", 2) for i in range(6)])
    assert torch.allclose(per_item(preds, target, "sr-y", 2), one_by_one, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ errors


def test_bad_inputs_raise_zoo_error():
    good = torch.rand(2, 3, 24, 24)
    with pytest.raises(ZooError, match="BCHW"):
        psnr(torch.rand(3, 24, 24), torch.rand(3, 24, 24))
    with pytest.raises(ZooError, match="BCHW"):
        ssim(torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24))
    with pytest.raises(ZooError, match=r"\[0, 1\]"):
        psnr(good * 2 - 1, good)
    with pytest.raises(ZooError, match=r"\[0, 1\]"):
        SSIM().update(good, good * 255)
    with pytest.raises(ZooError, match=r"\(2, 3, 24, 24\).*\(2, 3, 24, 26\)"):
        PSNR().update(good, torch.rand(2, 3, 24, 26))
    with pytest.raises(ZooError, match="10x10.*11x11"):
        ssim(torch.rand(1, 3, 10, 10), torch.rand(1, 3, 10, 10))
    with pytest.raises(ZooError, match="10x10 .*4 px.*11x11"):
        SSIM("sr-y", scale=4).update(torch.rand(1, 3, 18, 18), torch.rand(1, 3, 18, 18))
    with pytest.raises(ZooError, match="scale"):
        PSNR("sr-y")
    with pytest.raises(ZooError, match="scale"):
        SSIM(protocol="sr-y", crop_border=4)
    with pytest.raises(ZooError, match="'rgb', 'sr-y'"):
        PSNR("y")
    with pytest.raises(ZooError, match="'rgb', 'sr-y'"):
        ssim(good, good, protocol="RGB")
    with pytest.raises(ZooError, match="crop_border"):
        psnr(good, good, crop_border=-1)
    with pytest.raises(ZooError, match="indices"):
        PSNR().update(good, good, torch.tensor([0, 1, 2]))
    with pytest.raises(ZooError, match="no items"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchmetrics: compute() called before update()
        SSIM().compute()
