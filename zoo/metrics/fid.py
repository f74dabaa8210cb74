"""FID and KID under torch-fidelity's protocol (TF-Inception 2015-12-05 features), DDP-exact.

Protocol (what published GAN numbers computed with torch-fidelity / the TF Inception use):

* images are quantized to uint8 by rounding (as saved PNGs) and fed to the TF-Inception 2015-12-05
  graph converted by torch-fidelity: TF1-exact bilinear resize to 299×299 (torchmetrics'
  ``NoTrainInceptionV3(antialias=False)``, i.e. *not* torchmetrics' antialiased default), ``(x-128)/128``,
  pool3 features (2048-d; 64/192/768 are earlier taps);
* FID: mean and covariance (n-1) in float64, ``‖μ_f-μ_r‖² + tr Σ_f + tr Σ_r - 2·Σᵢ √λᵢ(Σ_f Σ_r)``
  with the eigenvalues of the (non-symmetric) product from ``torch.linalg.eigvals`` in float64 and the *principal
  complex* square root, of which the real part is summed (torch-fidelity does exactly this in numpy).
  No clamping is needed or wanted: the product of two PSD matrices has real non-negative eigenvalues in
  exact arithmetic; round-off gives tiny negative ones (principal √ is imaginary → real part 0, the same
  as clamping them to 0) and conjugate pairs (their principal roots are conjugate, the imaginary parts
  cancel, and the real part is that of the matrix square root that scipy's ``sqrtm`` + ``.real`` gives;
  clamping the real part of a complex pair first would *not* equal that);
* KID: torch-fidelity's unbiased MMD² with the polynomial kernel ``(x·y/d + 1)³`` averaged over
  `subsets` random subsets of `subset_size` fake and real samples, drawn by
  ``numpy.random.RandomState(seed).choice(n, subset_size, replace=False)`` (fake, then real, per
  subset; seed 2020); ``extra["std"]`` is the standard deviation over subsets (ddof 0).

Features are stored per item with its dataset index (``update(imgs, real, index)``); `compute` keeps one
row per index and sorts by it, so padding duplicates of a DistributedSampler count once and the number
does not depend on batch size, process count or arrival order. Statistics are computed on the CPU in
float64 (KID's kernels on the metric's device, in float64).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics.image.fid import NoTrainInceptionV3
from torchmetrics.utilities import dim_zero_cat

from zoo.errors import ZooError
from zoo.metrics.backbones import (
    HiddenNetMixin,
    WeightsArg,
    backbone_notes,
    find_backbone_weights,
    load_backbone_state_dict,
    load_strict,
    module_device,
    seeded_init,
)
from zoo.metrics.base import MetricResult, Protocol, ZooMetric, as_uint8, check_images, unique_by_index

__all__ = ["InceptionFeatures", "FID", "KID", "INCEPTION_DIMS", "frechet_distance", "poly_mmd2_subsets"]

INCEPTION_DIMS = (64, 192, 768, 2048)
_INCEPTION_ID = "tf-inception-2015-12-05"


# --------------------------------------------------------------------------------------------------
# The feature network
# --------------------------------------------------------------------------------------------------

_NO_WEIGHTS = object()  # what the patched torch-fidelity loader returns: "build only, load nothing"
_build_lock = threading.Lock()


class _OfflineInceptionV3(NoTrainInceptionV3):
    """torchmetrics' Inception whose constructor loads nothing (see `_build_inception`)."""

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        if state_dict is _NO_WEIGHTS:  # called from torch-fidelity's __init__: keep the random init
            return None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _build_inception(dim: int) -> nn.Module:
    """The torch-fidelity Inception with random weights. Its constructor always fetches weights itself
    (``load_state_dict_from_url``, or an unsafe ``torch.load(weights_only=False)`` for a path); the module
    global it calls is swapped, for the duration of the constructor only, for a function that returns a
    sentinel, and the subclass skips loading on the sentinel."""
    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    with _build_lock:
        original = tfi.load_state_dict_from_url
        tfi.load_state_dict_from_url = lambda *args, **kwargs: _NO_WEIGHTS
        try:
            return _OfflineInceptionV3(name="inception-v3-compat", features_list=[str(dim)], antialias=False)
        finally:
            tfi.load_state_dict_from_url = original


def _random_inception(dim: int) -> nn.Module:
    """The Inception with He-normal convolutions: PyTorch's default init shrinks activations ~3x per layer
    (pool3 features ~1e-8, FID ~1e-15, all round-off); He init keeps them O(0.1), so a random backbone
    still gives meaningful (if not comparable) distances."""
    net = _build_inception(dim)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    return net


class InceptionFeatures(nn.Module):
    """TF-Inception 2015-12-05 features as torch-fidelity computes them (the FID/KID protocol).

    Input: a BCHW batch, uint8 (or float in [0, 1], rounded to uint8 first); any size (resized to 299
    with TF1's bilinear). Output: (B, `dim`) float32. ``weights``: ``"default"`` (the published file, see
    `zoo.metrics.backbones`), a path, or ``None`` for a random network (seeded, reproducible; results are
    then not comparable). `notes` says why results would not be comparable (empty for the published
    file). The network is frozen and always in eval mode."""

    def __init__(self, dim: int = 2048, weights: WeightsArg = "default") -> None:
        super().__init__()
        if isinstance(dim, bool) or dim not in INCEPTION_DIMS:
            raise ZooError(f"InceptionFeatures: dim must be one of {INCEPTION_DIMS}, got {dim!r}")
        path = find_backbone_weights("inception", weights)
        state = load_backbone_state_dict(path) if path is not None else None
        self.inception = seeded_init(lambda: _random_inception(dim))
        if state is not None:
            load_strict(self.inception, state, path, "Inception")
        self.inception.requires_grad_(False)
        self.inception.eval()
        self.num_features = int(dim)
        self.weights_path = path
        self.notes: tuple[str, ...] = tuple(backbone_notes("inception", path))
        self.eval()

    def train(self, mode: bool = True) -> "InceptionFeatures":
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        x = as_uint8(check_images("InceptionFeatures", x))
        return self.inception(x).reshape(x.shape[0], -1).to(torch.float32)

    def extra_repr(self) -> str:
        return f"dim={self.num_features}, weights={str(self.weights_path) if self.weights_path else 'random'}"


# --------------------------------------------------------------------------------------------------
# The statistics
# --------------------------------------------------------------------------------------------------


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """``‖μ1-μ2‖² + tr Σ1 + tr Σ2 - 2·Σ Re √eig(Σ1Σ2)`` in float64 (principal complex square root; see
    the module docstring for why there is no clamping)."""
    mu1, mu2, sigma1, sigma2 = (t.to(torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    diff = mu1 - mu2
    tr_covmean = torch.linalg.eigvals(sigma1 @ sigma2).sqrt().real.sum()
    return diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2 * tr_covmean


def _mean_cov(x: Tensor) -> tuple[Tensor, Tensor]:
    x = x.to(torch.float64)
    mu = x.mean(dim=0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def _poly_kernel(x: Tensor, y: Tensor) -> Tensor:
    return (x @ y.T / x.shape[1] + 1) ** 3


def _mmd2_unbiased(k_xx: Tensor, k_xy: Tensor, k_yy: Tensor) -> Tensor:
    m = k_xx.shape[0]
    off_xx = k_xx.sum() - k_xx.diagonal().sum()
    off_yy = k_yy.sum() - k_yy.diagonal().sum()
    return (off_xx + off_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)


def poly_mmd2_subsets(x: Tensor, y: Tensor, subsets: int, subset_size: int, seed: int) -> Tensor:
    """torch-fidelity's KID: unbiased MMD² with the kernel ``(a·b/d + 1)³`` on `subsets` subsets of
    `subset_size` rows of `x` (drawn first) and `y` (second) from ``RandomState(seed)``; float64, on
    `x`'s device. Returns the (subsets,) values. When the full kernel matrices are cheaper than the
    per-subset ones (few samples, big subsets) they are computed once and indexed."""
    x, y = x.to(torch.float64), y.to(torch.float64)
    nx, ny, m = x.shape[0], y.shape[0], subset_size
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(nx, m, replace=False), rng.choice(ny, m, replace=False)) for _ in range(subsets)]
    full = nx * nx + ny * ny + nx * ny
    precompute = full <= 3 * subsets * m * m and full <= 2**27  # cheaper, and at most 1 GiB of float64
    if precompute:
        k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    out = torch.empty(subsets, dtype=torch.float64)
    for i, (ix, iy) in enumerate(draws):
        tx = torch.as_tensor(ix, device=x.device)
        ty = torch.as_tensor(iy, device=x.device)
        if precompute:
            kxx, kyy, kxy = k_xx[tx][:, tx], k_yy[ty][:, ty], k_xy[tx][:, ty]
        else:
            xs, ys = x[tx], y[ty]
            kxx, kyy, kxy = _poly_kernel(xs, xs), _poly_kernel(ys, ys), _poly_kernel(xs, ys)
        out[i] = _mmd2_unbiased(kxx, kxy, kyy).cpu()
    return out


# --------------------------------------------------------------------------------------------------
# The metrics
# --------------------------------------------------------------------------------------------------


class _FeatureSetMetric(HiddenNetMixin, ZooMetric):
    """Shared by FID and KID: the feature network, and per side (real / fake) a list state of features
    and one of dataset indices (``dist_reduce_fx="cat"``)."""

    higher_is_better: ClassVar[bool] = False
    _metric_title: ClassVar[str] = ""

    def __init__(
        self,
        feature: int | nn.Module = 2048,
        weights: WeightsArg = "default",
        reset_real_features: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(feature, nn.Module):
            if not (isinstance(weights, str) and weights == "default"):
                raise ZooError(
                    f"{self.name}: weights= applies to the built-in Inception (feature=<int>); "
                    "a feature module brings its own weights"
                )
            net = feature
        elif isinstance(feature, int) and not isinstance(feature, bool):
            if feature not in INCEPTION_DIMS:
                raise ZooError(f"{self.name}: feature must be one of {INCEPTION_DIMS} or an nn.Module, got {feature}")
            net = InceptionFeatures(feature, weights=weights)
        else:
            raise ZooError(
                f"{self.name}: feature must be an int {INCEPTION_DIMS} or an nn.Module, got {type(feature).__name__}"
            )
        self.custom_feature = not isinstance(net, InceptionFeatures)
        if self.custom_feature:
            self._not_comparable("custom feature network")
            nf = getattr(net, "num_features", None)
            self.num_features: int | None = int(nf) if nf is not None else None
        else:
            for note in net.notes:
                self._not_comparable(note)
            self.random_backbone = net.weights_path is None
            self.num_features = net.num_features
            if self.num_features != 2048:
                self._not_comparable(f"{self.num_features}-d Inception features; published FID/KID use the 2048-d pool3")
        self._set_hidden_net(net)
        self.reset_real_features = bool(reset_real_features)
        for side in ("real", "fake"):
            self.add_state(f"{side}_features", default=[], dist_reduce_fx="cat")
            self.add_state(f"{side}_indices", default=[], dist_reduce_fx="cat")

    def _feature_id(self) -> str:
        if self.custom_feature:
            return "custom"
        return _INCEPTION_ID + ("" if self.num_features == 2048 else f"/dim{self.num_features}")

    def _feature_params(self) -> dict[str, Any]:
        if self.custom_feature:
            return {"feature": "custom"}
        return {
            "feature": f"{_INCEPTION_ID} pool{self.num_features}",
            "weights": "weights-inception-2015-12-05-6726825d.pth",
            "resize": "TF1 bilinear to 299 (torch-fidelity; no antialias)",
            "quantize": "round to uint8",
        }

    def update(self, imgs: Tensor, real: bool, index: Tensor | None = None) -> None:  # type: ignore[override]
        """Add a BCHW batch (float in [0, 1] or uint8) to the real (``real=True``) or fake side; `index`:
        the dataset index of each image (one per image), so duplicates count once."""
        if not isinstance(real, (bool, np.bool_)):
            raise ZooError(
                f"{self.name}.update(imgs, real, index): real must be True or False, got {type(real).__name__}"
            )
        imgs = as_uint8(check_images(self.name, imgs))
        batch = imgs.shape[0]
        net = self.network
        with torch.no_grad():
            feats = net(imgs.to(module_device(net, imgs.device)))
        if not isinstance(feats, Tensor) or feats.ndim != 2 or feats.shape[0] != batch:
            shape = tuple(feats.shape) if isinstance(feats, Tensor) else type(feats).__name__
            raise ZooError(f"{self.name}: the feature network must return (B, d) = ({batch}, d), got {shape}")
        if self.num_features is None:
            self.num_features = int(feats.shape[1])
        elif feats.shape[1] != self.num_features:
            raise ZooError(
                f"{self.name}: the feature network returned {feats.shape[1]} features, expected {self.num_features}"
            )
        if not torch.isfinite(feats).all():
            raise ZooError(f"{self.name}: the feature network returned NaN or infinite features")
        # float32 network outputs are stored as float32 (lossless); statistics run in float64.
        feats = feats.detach().to(self.device, torch.float64 if feats.dtype == torch.float64 else torch.float32)
        if index is None:
            idx = torch.full((batch,), -1, dtype=torch.long, device=self.device)
        else:
            idx = torch.as_tensor(index).to(self.device, torch.long).reshape(-1)
            if idx.numel() != batch:
                raise ZooError(f"{self.name}: {idx.numel()} indices for {batch} images; pass one index per image")
        side = "real" if real else "fake"
        getattr(self, f"{side}_features").append(feats)
        getattr(self, f"{side}_indices").append(idx)

    def forward(self, *args: Any, **kwargs: Any) -> None:
        """Same as `update` (a set-level metric has no per-batch value)."""
        self.update(*args, **kwargs)

    def reset(self) -> None:
        if self.reset_real_features:
            super().reset()
            return
        kept = {}
        for key in ("real_features", "real_indices"):
            value = getattr(self, key)
            kept[key] = list(value) if isinstance(value, list) else value  # reset() clears lists in place
        super().reset()
        for k, v in kept.items():
            setattr(self, k, v)

    def _side(self, side: str) -> Tensor:
        """(n, d) float64 CPU features of one side, one row per index, sorted by index."""
        feats, idx = getattr(self, f"{side}_features"), getattr(self, f"{side}_indices")
        if isinstance(feats, list) and not feats:
            return torch.zeros(0, self.num_features or 0, dtype=torch.float64)
        feats = dim_zero_cat(feats).to(torch.float64)
        idx = dim_zero_cat(idx).to(torch.long)
        return unique_by_index(idx, feats).reshape(-1, feats.shape[-1])

    def _sides(self, minimum: int) -> tuple[Tensor, Tensor]:
        fake, real = self._side("fake"), self._side("real")
        for side, x in (("fake", fake), ("real", real)):
            if x.shape[0] < minimum:
                raise ZooError(
                    f"{self.name}: {x.shape[0]} {side} sample(s); {self._metric_title} needs at least {minimum} "
                    f"per side; call update(imgs, real={side == 'real'}) with more images"
                )
        return fake, real


class FID(_FeatureSetMetric):
    """Fréchet Inception Distance under torch-fidelity's protocol (see the module docstring).

    ``FID(feature=2048, weights="default", reset_real_features=True)``; ``update(imgs, real, index=None)``;
    ``compute()`` → `MetricResult` with ``n`` = fake samples and ``extra["n_real"]``. `feature` may be
    an `InceptionFeatures` (to share one network between FID and KID) or any module mapping a uint8
    BCHW batch to (B, d) (results then not comparable, protocol ``fid/custom/v1``).
    ``reset_real_features=False`` keeps the real features across `reset()`."""

    name: ClassVar[str] = "fid"
    _metric_title: ClassVar[str] = "FID"

    def __init__(
        self,
        feature: int | nn.Module = 2048,
        weights: WeightsArg = "default",
        reset_real_features: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature, weights, reset_real_features, **kwargs)
        self._set_protocol(
            Protocol(
                f"fid/{self._feature_id()}/v1",
                "Fréchet distance between Gaussian fits (float64 mean, covariance with n-1) of TF-Inception "
                "2015-12-05 features of fake and real images, as torch-fidelity computes it: uint8 input "
                "(rounded), TF1 bilinear resize to 299, trace of the matrix square root from the eigenvalues "
                "of Σ_fake·Σ_real",
                self._feature_params(),
            )
        )

    def compute(self) -> MetricResult:
        fake, real = self._sides(2)
        mu_f, sigma_f = _mean_cov(fake)
        mu_r, sigma_r = _mean_cov(real)
        value = frechet_distance(mu_f, sigma_f, mu_r, sigma_r)
        return self._result(value, fake.shape[0], extra={"n_real": int(real.shape[0])})


class KID(_FeatureSetMetric):
    """Kernel Inception Distance under torch-fidelity's protocol (see the module docstring).

    ``KID(feature=2048, weights="default", subsets=100, subset_size=1000, seed=2020,
    reset_real_features=True)``. The value is the mean unbiased MMD² over subsets; ``extra["std"]`` its
    standard deviation (ddof 0, as torch-fidelity). With fewer than `subset_size` samples on a side the
    subsets have ``min(n_fake, n_real)`` samples and the result is marked not comparable."""

    name: ClassVar[str] = "kid"
    _metric_title: ClassVar[str] = "KID"

    def __init__(
        self,
        feature: int | nn.Module = 2048,
        weights: WeightsArg = "default",
        subsets: int = 100,
        subset_size: int = 1000,
        seed: int = 2020,
        reset_real_features: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(feature, weights, reset_real_features, **kwargs)
        if int(subsets) < 1 or int(subset_size) < 2:
            raise ZooError(f"KID: subsets must be >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)
        seed_part = "" if self.seed == 2020 else f"/seed{self.seed}"
        self._set_protocol(
            Protocol(
                f"kid/{self._feature_id()}/s{self.subsets}x{self.subset_size}{seed_part}/v1",
                "Unbiased MMD² with the polynomial kernel (x·y/d + 1)³ between TF-Inception 2015-12-05 "
                f"features of fake and real images, mean over {self.subsets} subsets of {self.subset_size} "
                f"samples drawn with numpy RandomState({self.seed}) (torch-fidelity's KID)",
                {
                    **self._feature_params(),
                    "subsets": self.subsets,
                    "subset_size": self.subset_size,
                    "seed": self.seed,
                },
            )
        )

    def compute(self) -> MetricResult:
        fake, real = self._sides(2)
        n_fake, n_real = fake.shape[0], real.shape[0]
        m, notes = self.subset_size, []
        if min(n_fake, n_real) < m:
            m = min(n_fake, n_real)
            notes.append(
                f"subsets of {m} samples: fewer than the protocol's {self.subset_size} "
                f"(n_fake {n_fake}, n_real {n_real})"
            )
        mmds = poly_mmd2_subsets(fake.to(self.device), real.to(self.device), self.subsets, m, self.seed)
        extra = {"std": float(mmds.std(correction=0)), "n_real": int(n_real), "subset_size": int(m)}
        result = self._result(mmds.mean(), n_fake, extra=extra)
        if notes:  # a property of this computation, not of the metric: not kept in self.notes
            result = MetricResult(
                float(result), metric=result.metric, protocol=result.protocol, comparable=False, n=result.n,
                notes=(*result.notes, *notes), extra=result.extra,
            )
        return result
