"""Lab colour space and the quantised-ab machinery of Zhang, Isola & Efros 2016, "Colorful Image
Colorization" (ECCV, richzhang/colorization): sRGB <-> CIE Lab (skimage-compatible), the Q = 313
in-gamut ab bins (§3.1), soft encoding of ab targets (§3.1), the annealed mean (eq. 5) and class
rebalancing weights (eq. 4).

All functions are pure torch; the Lab conversions and `annealed_mean` are differentiable.
Images are BCHW; sRGB in [0, 1] (D65, 2° observer); L in [0, 100], ab roughly in [-110, 110].
In float64 `rgb_to_lab` / `lab_to_rgb` agree with skimage's rgb2lab / lab2rgb to ~1e-14 (same formulas and
branch thresholds); in float32, L is within a few float32 ulps (~1e-5) of skimage's float64 L. Where that
matters (reproducing a release that runs skimage on uint8 images, `Colorization.colorize_batch`), convert
in float64.
"""

from __future__ import annotations

from typing import Iterable

import torch

__all__ = [
    "D65_WHITE",
    "XYZ_FROM_RGB",
    "AB_GAMUT_RADIUS",
    "rgb_to_lab",
    "lab_lightness",
    "lab_to_rgb",
    "ab_gamut_bins",
    "nearest_bin",
    "soft_encode",
    "annealed_mean",
    "empirical_prior",
    "rebalance_weights",
    "colourfulness",
    "ab_error",
]

# Same constants as skimage.color (sRGB primaries, D65 2° reference white).
XYZ_FROM_RGB: tuple[tuple[float, float, float], ...] = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
D65_WHITE: tuple[float, float, float] = (0.95047, 1.0, 1.08883)

# Bin-selection radius (ab units) for `ab_gamut_bins`; see its docstring.
AB_GAMUT_RADIUS: float = 14.0


def _matrix(x: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    m = torch.tensor(XYZ_FROM_RGB, dtype=torch.float64)
    if inverse:
        m = torch.linalg.inv(m)
    return m.to(device=x.device, dtype=x.dtype)


def _white(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(D65_WHITE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


def _check_bchw(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be (B, 3, H, W), got {tuple(x.shape)}")


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (B,3,H,W) -> CIE Lab (B,3,H,W), matching ``skimage.color.rgb2lab``.

    sRGB decoding uses the 0.04045 threshold; XYZ is divided by the D65 white; f(t) = t^(1/3) for
    t > 0.008856 else 7.787 t + 16/116; L = 116 f(Y) - 16, a = 500 (f(X) - f(Y)), b = 200 (f(Y) - f(Z)).
    The input is not clipped (values outside [0, 1] are converted by the same formulas).
    """
    _check_bchw(rgb, "rgb")
    if not rgb.is_floating_point():
        raise TypeError("rgb must be a floating-point tensor in [0, 1]")
    xyz = torch.einsum("ij,bjhw->bihw", _matrix(rgb), _srgb_to_linear(rgb)) / _white(rgb)
    f = _lab_f(xyz)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def _srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).clamp_min(0.0) ** 2.4, rgb / 12.92)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > 0.008856, t.clamp_min(0.008856) ** (1.0 / 3.0), 7.787 * t + 16.0 / 116.0)


def lab_lightness(rgb: torch.Tensor) -> torch.Tensor:
    """L of `rgb_to_lab(rgb)` alone (B,1,H,W), by the same formulas: Y (the white's Y is 1) and f(Y) only,
    a third of the work where a and b are not needed (colorization's full-size input)."""
    _check_bchw(rgb, "rgb")
    if not rgb.is_floating_point():
        raise TypeError("rgb must be a floating-point tensor in [0, 1]")
    y = torch.einsum("j,bjhw->bhw", _matrix(rgb)[1], _srgb_to_linear(rgb)).unsqueeze(1)
    return 116.0 * _lab_f(y) - 16.0


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """CIE Lab (B,3,H,W) -> sRGB (B,3,H,W), matching ``skimage.color.lab2rgb``.

    Inverse of `rgb_to_lab`: like skimage, a negative f(Z) is set to 0, the inverse f uses the
    0.2068966 threshold, sRGB encoding uses 0.0031308, and the result is clipped to [0, 1] unless
    ``clip=False`` (used by the gamut test).
    """
    _check_bchw(lab, "lab")
    if not lab.is_floating_point():
        raise TypeError("lab must be a floating-point tensor")
    L, a, b = lab[:, 0:1], lab[:, 1:2], lab[:, 2:3]
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp_min(0.0)
    f = torch.cat([fx, fy, fz], dim=1)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787) * _white(lab)
    lin = torch.einsum("ij,bjhw->bihw", _matrix(lab, inverse=True), xyz)
    rgb = torch.where(
        lin > 0.0031308,
        1.055 * lin.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055,
        12.92 * lin,
    )
    return rgb.clamp(0.0, 1.0) if clip else rgb


def ab_gamut_bins(grid: float = 10.0, radius: float = AB_GAMUT_RADIUS, samples: int = 48) -> torch.Tensor:
    """The quantised in-gamut ab bin centres of §3.1 (Q = 313 for the defaults), shape (Q, 2) float32.

    Candidates are the points of a ``grid``-step lattice on [-110, 110]^2 (ab). A candidate is kept
    when its Euclidean ab distance to the sRGB gamut's projection onto the ab plane (i.e. to the ab
    of some sRGB colour, any L) is <= ``radius``; the gamut is sampled as a ``samples``^3 RGB
    lattice. Why this rule: the stricter readings of "in gamut" do not give 313 (centre itself in
    gamut for some L: 229; bins hit by nearest-bin rounding of all sRGB colours: 261-262; lattice
    points inside the convex hull of sRGB ab: 233). With grid 10 the sorted distances jump from
    ~13.75 (313th) to ~14.16 (314th), so radius 14 gives exactly 313. The set is our
    reconstruction: 310 of its points are in the reference ``pts_in_hull.npy``, which also holds
    points outside sRGB's reach (a = -90) and was not derived from the sRGB gamut alone. Converted
    official weights carry the reference's own bins (see `zoo.methods.colorization`).
    Order: sorted by a, then b (ascending).
    """
    n = int(round(110.0 / grid))
    axis = torch.arange(-n, n + 1, dtype=torch.float64) * grid
    ca, cb = torch.meshgrid(axis, axis, indexing="ij")
    centres = torch.stack([ca.reshape(-1), cb.reshape(-1)], dim=1)  # sorted by a then b

    v = torch.linspace(0.0, 1.0, samples, dtype=torch.float64)
    r, g, b = torch.meshgrid(v, v, v, indexing="ij")
    rgb = torch.stack([r.reshape(-1), g.reshape(-1), b.reshape(-1)], dim=0).view(1, 3, -1, 1)
    ab = rgb_to_lab(rgb)[0, 1:, :, 0].T  # (N, 2)
    best = torch.full((centres.shape[0],), float("inf"), dtype=torch.float64)
    for chunk in ab.split(32768):
        best = torch.minimum(best, torch.cdist(centres, chunk).min(dim=1).values)
    return centres[best <= radius].to(torch.float32)


def _sq_dist(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """(B,2,H,W) ab and (Q,2) bins -> (B,H,W,Q) squared distances."""
    if ab.dim() != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must be (B, 2, H, W), got {tuple(ab.shape)}")
    if bins.dim() != 2 or bins.shape[1] != 2:
        raise ValueError(f"bins must be (Q, 2), got {tuple(bins.shape)}")
    x = ab.permute(0, 2, 3, 1).unsqueeze(-2)  # (B,H,W,1,2)
    c = bins.to(device=ab.device, dtype=ab.dtype)
    return ((x - c) ** 2).sum(-1)


def nearest_bin(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Index of the nearest bin centre for each pixel: (B,2,H,W) -> (B,H,W) long."""
    return _sq_dist(ab, bins).argmin(dim=-1)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """Soft-encode ab (B,2,H,W) over Q bins -> (B,Q,H,W) targets Z (§3.1).

    Each pixel puts mass on its ``neighbours`` nearest bin centres, weighted by exp(-d^2 / (2 sigma^2))
    and normalised to sum 1 (paper: 5 neighbours, sigma 5; the released Caffe training layer
    ``NNEncLayer`` uses 10 neighbours). Not differentiable w.r.t. the neighbour choice.
    """
    q = bins.shape[0]
    if not 1 <= neighbours <= q:
        raise ValueError(f"neighbours must be in [1, {q}], got {neighbours}")
    d2 = _sq_dist(ab, bins)
    near, idx = d2.topk(neighbours, dim=-1, largest=False)  # ascending distances
    w = torch.exp(-(near - near[..., :1]) / (2.0 * sigma**2))  # shift by nearest: stable, same after norm
    w = w / w.sum(-1, keepdim=True)
    out = torch.zeros(*d2.shape, dtype=ab.dtype, device=ab.device).scatter_(-1, idx, w)
    return out.permute(0, 3, 1, 2).contiguous()


def annealed_mean(probs: torch.Tensor, bins: torch.Tensor, T: float = 0.38) -> torch.Tensor:
    """Annealed mean H(Z) (eq. 5): f_T(z) = exp(log z / T) / sum_q exp(log z_q / T), then E_{f_T}[bin centre].

    probs: (B,Q,H,W) distribution over bins -> (B,2,H,W) ab. T = 1 gives the mean, T -> 0 the mode;
    the paper uses T = 0.38.
    """
    if probs.dim() != 4 or probs.shape[1] != bins.shape[0]:
        raise ValueError(f"probs must be (B, {bins.shape[0]}, H, W), got {tuple(probs.shape)}")
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    tiny = torch.finfo(probs.dtype).tiny
    f = torch.softmax(torch.log(probs.clamp_min(tiny)) / T, dim=1)
    c = bins.to(device=probs.device, dtype=probs.dtype)
    return torch.einsum("bqhw,qc->bchw", f, c)


def empirical_prior(ab_batches: Iterable[torch.Tensor], bins: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """Empirical bin distribution p~ (Q,) float64 from an iterable of (B,2,H,W) ab tensors (§3.2).

    Counts nearest-bin assignments, smooths the histogram with a Gaussian kernel of width ``sigma``
    over ab space (p~_q ∝ sum_j n_j exp(-|c_q - c_j|^2 / (2 sigma^2)); sigma <= 0: no smoothing) and
    normalises it to sum 1.
    """
    q = bins.shape[0]
    counts = torch.zeros(q, dtype=torch.float64)
    for ab in ab_batches:
        idx = nearest_bin(ab, bins).reshape(-1).cpu()
        counts += torch.bincount(idx, minlength=q).to(torch.float64)
    if counts.sum() <= 0:
        raise ValueError("empirical_prior needs at least one pixel")
    if sigma > 0:
        c = bins.to(torch.float64).cpu()
        kernel = torch.exp(-torch.cdist(c, c) ** 2 / (2.0 * sigma**2))
        counts = kernel @ counts
    return counts / counts.sum()


def rebalance_weights(prior: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    """Class-rebalancing weights (eq. 4): w ∝ ((1 - lam) p~ + lam / Q)^-1, scaled so E_p~[w] = 1.

    prior: (Q,) smoothed empirical distribution p~ (normalised here if it does not sum to 1).
    """
    if prior.dim() != 1:
        raise ValueError(f"prior must be (Q,), got {tuple(prior.shape)}")
    p = prior / prior.sum()
    w = 1.0 / ((1.0 - lam) * p + lam / p.shape[0])
    return w / (p * w).sum()


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Süsstrunk's colourfulness M (2003, "Measuring colourfulness in natural images", M_3):
    with rg = R - G and yb = (R + G) / 2 - B on [0, 255] values, M = sqrt(σ_rg² + σ_yb²) + 0.3 sqrt(μ_rg² + μ_yb²)
    per image. (B, 3, H, W) in [0, 1] -> (B,) float64. A gray image scores 0; ~59 is "highly colourful"."""
    _check_bchw(rgb, "rgb")
    x = rgb.to(torch.float64) * 255.0
    rg = x[:, 0] - x[:, 1]
    yb = 0.5 * (x[:, 0] + x[:, 1]) - x[:, 2]
    spread = (rg.flatten(1).var(dim=1, unbiased=False) + yb.flatten(1).var(dim=1, unbiased=False)).sqrt()
    mean = (rg.flatten(1).mean(dim=1) ** 2 + yb.flatten(1).mean(dim=1) ** 2).sqrt()
    return spread + 0.3 * mean


def ab_error(ab_pred: torch.Tensor, ab_true: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance in the ab plane per image: (B, 2, H, W) twice -> (B,) float64. The all-gray
    prediction (ab = 0) scores the mean chroma of the true image."""
    if ab_pred.shape != ab_true.shape or ab_pred.dim() != 4 or ab_pred.shape[1] != 2:
        raise ValueError(f"ab_pred and ab_true must both be (B, 2, H, W), got {tuple(ab_pred.shape)} and {tuple(ab_true.shape)}")
    d = (ab_pred.to(torch.float64) - ab_true.to(torch.float64)).square().sum(dim=1).sqrt()
    return d.flatten(1).mean(dim=1)
