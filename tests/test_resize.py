"""zoo.metrics.resize: MATLAB imresize against a brute-force reference and PIL; mod_crop, make_lr.

The reference below is written straight from MATLAB's definition (imresize.m, `contributions`), one
output pixel at a time, with scalar Python arithmetic and MATLAB's 1-based indexing and its
``aux = [1:n, n:-1:1]`` mirror table; it shares no code with zoo.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from zoo.errors import ZooError
from zoo.metrics.resize import imresize_matlab, make_lr, mod_crop

# ------------------------------------------------------------------------------------ reference


def _cubic(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _contributions(n_in: int, n_out: int, scale: float) -> list[tuple[list[int], list[float]]]:
    """Per output pixel: (0-based input indices after mirroring, normalised weights)."""
    aa = scale < 1
    width = 4 / scale if aa else 4.0
    aux = list(range(1, n_in + 1)) + list(range(n_in, 0, -1))  # MATLAB's symmetric mirror table
    out = []
    for x in range(1, n_out + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = math.ceil(width) + 2
        idx, w = [], []
        for k in range(taps):
            j = left + k  # 1-based, may be out of range
            d = u - j
            w.append(scale * _cubic(scale * d) if aa else _cubic(d))
            idx.append(aux[(j - 1) % len(aux)] - 1)
        total = sum(w)
        out.append((idx, [v / total for v in w]))
    return out


def ref_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) float64 → (ceil(H s), ceil(W s)), every output pixel a double sum over its taps."""
    h, w = img.shape
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    rows, cols = _contributions(h, oh, scale), _contributions(w, ow, scale)
    out = np.zeros((oh, ow))
    for i, (ri, rw) in enumerate(rows):
        for j, (ci, cw) in enumerate(cols):
            acc = 0.0
            for a, wa in zip(ri, rw):
                for b, wb in zip(ci, cw):
                    acc += wa * wb * img[a, b]
            out[i, j] = acc
    return out


# ------------------------------------------------------------------------------------ brute force

SHAPES_SCALES = [
    ((24, 32), 1 / 4),
    ((23, 29), 1 / 4),  # odd: ceil → 6x8
    ((5, 7), 1 / 4),  # the 18-tap kernel wraps around the mirror table several times
    ((20, 26), 1 / 2),
    ((21, 27), 1 / 2),
    ((30, 33), 1 / 3),
    ((31, 20), 1 / 3),
    ((7, 9), 2),
    ((9, 6), 2),
    ((5, 7), 4),
    ((3, 2), 4),
    ((13, 11), 0.75),
    ((6, 10), 1.5),
]


@pytest.mark.parametrize("shape,scale", SHAPES_SCALES, ids=[f"{s[0]}x{s[1]}@{sc:.3g}" for s, sc in SHAPES_SCALES])
def test_matches_brute_force_reference(shape, scale):
    rng = np.random.default_rng(1000 * shape[0] + shape[1])
    img = rng.random((2, 3) + shape)  # float64, BCHW
    ours = imresize_matlab(torch.from_numpy(img), scale).numpy()
    oh, ow = math.ceil(shape[0] * scale), math.ceil(shape[1] * scale)
    assert ours.shape == (2, 3, oh, ow) and ours.dtype == np.float64
    for b, c in [(0, 0), (1, 2)]:
        ref = ref_imresize(img[b, c], scale)
        assert np.abs(ours[b, c] - ref).max() < 1e-10


def test_chw_input_and_dtype_preserved():
    x = torch.rand(3, 12, 16)
    y = imresize_matlab(x, 0.5)
    assert y.shape == (3, 6, 8) and y.dtype == torch.float32
    ref = ref_imresize(x[1].double().numpy(), 0.5)
    assert np.abs(y[1].double().numpy() - ref).max() < 1e-6  # float32 output of a float64 computation


def test_constant_image_stays_constant():
    for scale in (1 / 4, 1 / 3, 1 / 2, 0.7, 2, 3, 4):
        x = torch.full((1, 3, 13, 17), 0.6372, dtype=torch.float64)
        y = imresize_matlab(x, scale)
        assert torch.allclose(y, torch.full_like(y, 0.6372), rtol=0, atol=1e-12)


def test_no_rounding_or_clamping():
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    x[..., 8:, :] = 1.0  # a step: bicubic overshoots on both sides
    y = imresize_matlab(x, 2)
    assert y.min() < 0 and y.max() > 1


# ------------------------------------------------------------------------------------ PIL


def _interior(n_in: int, n_out: int, scale: float) -> np.ndarray:
    """Output indices whose kernel support lies inside [0, n_in - 1] (0-based), so no mirroring."""
    half = (2 / scale if scale < 1 else 2.0) + 1e-9
    x0 = np.arange(n_out)
    u0 = (x0 + 0.5) / scale - 0.5
    return x0[(u0 - half >= 0) & (u0 + half <= n_in - 1)]


@pytest.mark.parametrize("shape,scale", [((64, 80), 1 / 4), ((40, 48), 1 / 2), ((45, 60), 1 / 3), ((17, 23), 2), ((11, 13), 4)])
def test_interior_matches_pil_bicubic(shape, scale):
    """PIL's bicubic (a = -0.5, kernel widened by 1/scale when reducing, centre (x + 0.5) * in/out)
    is MATLAB's in the interior when in/out == 1/scale; PIL renormalises over the in-range taps at
    the border instead of mirroring, so borders differ."""
    rng = np.random.default_rng(0)
    img = rng.random(shape)
    oh, ow = math.ceil(shape[0] * scale), math.ceil(shape[1] * scale)
    assert (shape[0] / oh, shape[1] / ow) == (1 / scale, 1 / scale)  # else PIL's sampling grid differs
    pil = np.asarray(Image.fromarray(img.astype(np.float32)).resize((ow, oh), Image.Resampling.BICUBIC), dtype=np.float64)
    ours = imresize_matlab(torch.from_numpy(img)[None], scale)[0].numpy()
    ri, ci = _interior(shape[0], oh, scale), _interior(shape[1], ow, scale)
    assert len(ri) >= 2 and len(ci) >= 2
    assert np.abs(ours[np.ix_(ri, ci)] - pil[np.ix_(ri, ci)]).max() < 1e-4


# ------------------------------------------------------------------------------------ mod_crop / make_lr


def test_mod_crop():
    x = torch.rand(2, 3, 37, 50)
    assert mod_crop(x, 4).shape == (2, 3, 36, 48)
    assert torch.equal(mod_crop(x, 4), x[..., :36, :48])
    assert mod_crop(x[0], 3).shape == (3, 36, 48)
    assert mod_crop(x, 1).shape == x.shape
    with pytest.raises(ZooError):
        mod_crop(x, 0)
    with pytest.raises(ZooError):
        mod_crop(torch.rand(1, 3, 3, 3), 4)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_make_lr(scale):
    rng = np.random.default_rng(scale)
    hr_u8 = torch.from_numpy(rng.integers(0, 256, (2, 3, 29, 34), dtype=np.uint8))
    lr = make_lr(hr_u8, scale)
    assert lr.shape == (2, 3, 29 // scale, 34 // scale) and lr.dtype == torch.float32
    assert lr.min() >= 0 and lr.max() <= 1
    levels = lr.double() * 255
    assert torch.allclose(levels, levels.round(), rtol=0, atol=1e-4)  # uint8 levels
    # The same as resizing the [0, 255] values with the reference and rounding like MATLAB's uint8 path.
    hc, wc = 29 - 29 % scale, 34 - 34 % scale
    ref = ref_imresize(hr_u8[1, 0, :hc, :wc].double().numpy(), 1 / scale)
    assert np.array_equal(levels[1, 0].round().numpy(), np.floor(np.clip(ref, 0, 255) + 0.5))
    # float [0, 1] input gives the same levels, in its own dtype; a CHW image works too.
    lr_f = make_lr(hr_u8.double() / 255, scale)
    assert lr_f.dtype == torch.float64 and torch.allclose(lr_f, lr.double(), rtol=0, atol=1e-6)
    assert torch.equal(make_lr(hr_u8[0], scale), lr[0])


def test_make_lr_rounds_halves_up_like_matlab():
    """At x2 the interior weights are multiples of 1/256 (0.43359375 = 111/256 at the centre taps), so
    integer pixels can resize to an exact .5, which MATLAB's uint8 conversion rounds up (not to even)."""
    hr = torch.full((1, 3, 16, 16), 101, dtype=torch.uint8)
    hr[..., 8] = 229  # +128 in column 8: output column 4 gets 101 + 128 * 111/256, column 5 101 - 128 * 9/256
    ref = ref_imresize(hr[0, 0].double().numpy(), 0.5)
    assert ref[3, 4] == 156.5 and ref[3, 5] == 96.5
    levels = make_lr(hr, 2)[0, 0].double() * 255
    assert float(levels[3, 4].round()) == 157.0 and float(levels[3, 5].round()) == 97.0  # half-to-even: 156, 96
    assert np.array_equal(levels.round().numpy(), np.floor(np.clip(ref, 0, 255) + 0.5))


def test_bad_inputs():
    with pytest.raises(ZooError, match="float"):
        imresize_matlab(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(ZooError, match="CHW"):
        imresize_matlab(torch.zeros(8, 8), 0.5)
    with pytest.raises(ZooError, match="scale"):
        imresize_matlab(torch.zeros(1, 3, 8, 8), 0)
    with pytest.raises(ZooError, match=r"\[0, 1\]"):
        make_lr(torch.full((1, 3, 8, 8), 2.0), 2)
    with pytest.raises(ZooError, match="scale"):
        make_lr(torch.zeros(1, 3, 8, 8), 1.5)
