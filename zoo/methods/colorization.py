"""Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016 (arXiv:1603.08511): colorization as
per-pixel classification over Q = 313 quantised in-gamut ab bins.

Given the lightness X = L of a photo, a CNN G predicts a distribution Ẑ = G(X) ∈ [0, 1]^{H×W×Q} over ab
bins at 1/4 resolution (§3.1). The ground-truth ab Y is soft-encoded into Z = H_gt⁻¹(Y) (each pixel's
5 nearest bins, Gaussian weights σ = 5), and the loss is the class-rebalanced multinomial cross-entropy

    L_cl(Ẑ, Z) = − Σ_{h,w} v(Z_{h,w}) Σ_q Z_{h,w,q} log Ẑ_{h,w,q}                              (eq. 2)
    v(Z_{h,w}) = w_{q*},  q* = argmax_q Z_{h,w,q},
    w ∝ ((1 − λ) p̃ + λ / Q)⁻¹,  E_p̃[w] = 1,  λ = 1/2                                          (eq. 3-4)

with p̃ the Gaussian-smoothed (σ = 5) empirical ab distribution of the training set. At test time ab is
the annealed mean of Ẑ (eq. 5): H(Z) = E_{f_T(Z)}[bin centre], f_T(z) = exp(log z / T) / Σ exp(log z / T),
T = 0.38; it is concatenated with the input's own L.

Reference (richzhang/colorization, METHODS.md §7):

- Network: `colorizers/eccv16.py` `ECCVGenerator`: blocks model1..model8 of 3×3 convs with biases,
  BatchNorm after the last ReLU of blocks 1-7, stride 2 at the end of blocks 1-3, dilation 2 in blocks 5-6,
  a 4×4 stride-2 transposed conv at the start of block 8, then a 1×1 conv to the 313 logits; `softmax`,
  `model_out` (1×1 conv 313 → 2 without bias whose weights are the bin centres / 110: the expectation over
  bins), ×4 bilinear upsampling, ×110. L enters as (L − 50) / 100. 82 state-dict entries, 32,236,011
  parameters. Our `forward(L, temperature)` is exactly the release's for T = 1; softmax(logits / T) equals
  f_T(softmax(logits)), so T = 0.38 is the paper's annealed mean. The bins everywhere (soft encoding,
  decoding) are read from `model_out.weight`, so converted weights decode with the release's own
  `pts_in_hull`; untrained models start from `zoo.color.ab_gamut_bins()`. Converted release weights
  decode at T = 1, as `eccv16.py` does (`from_official`; the Caffe deploy net's ×2.606 logit scale is not in
  the PyTorch code).
- Inference (`colorizers/util.py`): the 8-bit RGB input is resized to 256×256 (PIL bicubic, done by Pillow
  here too), its L (skimage's float64 rgb2lab) goes through the network, the predicted ab is resized
  bilinearly to the input's size and joined to the input's full-resolution L, then Lab → RGB (skimage
  conventions, `zoo.color`). A float input is read as 8 bits for the resize, as the release reads files.
- Training (Caffe `colorization_train_val_v2.prototxt`, `resources/caffe_traininglayers.py`): 176×176
  random crops, batch 40; the ab target is point-sampled at stride 4 (a stride-4 1×1 conv); `NNEncLayer`
  soft-encodes it (10 neighbours in the code, 5 in the paper: `neighbours`); `NonGrayMaskLayer` zeroes the
  weight of images whose subsampled |a|, |b| never exceed 5; `PriorBoostLayer` picks w at the argmax bin;
  `ClassRebalanceMultLayer` multiplies the GRADIENT only (identity forward), so the logged loss is the
  un-weighted cross-entropy (issue #18). Adam β = (0.9, 0.99), weight decay 1e-3, lr 3e-5 → 1e-5 → 3e-6
  at 200k and 375k iterations (~450k in all).

Differences: the network starts from PyTorch's default initialisation (the paper uses k-means
initialisation); p̃ is computed from the training data in one pass before training (`set_prior` takes the
reference's ImageNet `prior_probs.npy` instead); our 313 bins are a reconstruction of `pts_in_hull.npy`
(`zoo.color.ab_gamut_bins`), not guaranteed point-for-point the same.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from zoo.color import (
    ab_error,
    ab_gamut_bins,
    colourfulness,
    empirical_prior,
    lab_lightness,
    lab_to_rgb,
    rebalance_weights,
    rgb_to_lab,
    soft_encode,
)
from zoo.errors import CheckpointError, DataError, ZooError
from zoo.hub import load_state_dict_strict
from zoo.imageio import from_batch, to_batch
from zoo.module import ZooModule
from zoo.registry import register, register_converter
from zoo.tasks import inference_mode_of, to_module
from zoo.tiling import check_pixels, get_budget
from zoo.training import EvaluationSteps, adam
from zoo.visual import GridCollector

__all__ = [
    "Colorization",
    "ECCVGenerator",
    "multinomial_cross_entropy",
    "rebalance_gradient",
    "from_official",
    "AB_SCALE",
    "NUM_BINS",
    "RELEASE_TEMPERATURE",
    "pil_bicubic_resize",
]

log = logging.getLogger("zoo.colorization")

#: ab is predicted in units of 110 (the release's `unnormalize_ab`); L enters as (L - 50) / 100.
AB_SCALE = 110.0
L_CENTRE, L_SCALE = 50.0, 100.0
NUM_BINS = 313
#: T of converted release weights: eccv16.py decodes softmax(logits) with no temperature (see `from_official`).
RELEASE_TEMPERATURE = 1.0
#: Total downsampling of blocks 1-3 (three stride-2 convs); the logits come out at 1/4 (block 8 upsamples x2).
SIZE_MULTIPLE = 8
#: peak bytes per pixel of the full-size float64 Lab join in `colorize_batch` (measured: ~10 temporaries of 8-24 B)
LAB_BYTES_PER_PIXEL = 256
LOGIT_STRIDE = 4

# ------------------------------------------------------------------------------------------- network


@functools.lru_cache(maxsize=1)
def _default_bins() -> Tensor:
    """`ab_gamut_bins()` computed once, on the CPU (also when modules are built under a meta/CUDA device context)."""
    with torch.device("cpu"):
        return ab_gamut_bins()


def _block(c_in: int, c_out: int, n: int, *, stride_last: int = 1, dilation: int = 1) -> nn.Sequential:
    """n × [3×3 conv (bias), ReLU] then BatchNorm: the eccv16.py index layout (conv 0, 2, 4, ..., BN last)."""
    layers: list[nn.Module] = []
    for i in range(n):
        stride = stride_last if i == n - 1 else 1
        layers += [
            nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride=stride, padding=dilation, dilation=dilation),
            nn.ReLU(True),
        ]
    layers.append(nn.BatchNorm2d(c_out))  # after the ReLU, as the release
    return nn.Sequential(*layers)


class ECCVGenerator(nn.Module):
    """G of Zhang et al. 2016 with the state-dict layout of richzhang/colorization `eccv16.py`.

    `width` scales the 64/128/256/512 channels (rounded, at least 1) for tests and demos; width 1 is the
    release. `model_out.weight` holds the bin centres / 110 and is not trained (requires_grad False).
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        if not width > 0:
            raise ZooError(f"width must be > 0, got {width}")
        c1, c2, c3, c4 = (max(1, int(round(c * width))) for c in (64, 128, 256, 512))
        self.model1 = _block(1, c1, 2, stride_last=2)
        self.model2 = _block(c1, c2, 2, stride_last=2)
        self.model3 = _block(c2, c3, 3, stride_last=2)
        self.model4 = _block(c3, c4, 3)
        self.model5 = _block(c4, c4, 3, dilation=2)  # "à trous" convolutions keep the 1/8 resolution (§3)
        self.model6 = _block(c4, c4, 3, dilation=2)
        self.model7 = _block(c4, c4, 3)
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(c4, c3, 4, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(c3, c3, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(c3, c3, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(c3, NUM_BINS, 1),
        )
        # The expectation over bins as a 1×1 conv (the release's `model_out`): its weights are the bins / 110.
        self.model_out = nn.Conv2d(NUM_BINS, 2, 1, bias=False)
        with torch.no_grad():
            self.model_out.weight.copy_((_default_bins() / AB_SCALE).T[:, :, None, None])
        self.model_out.weight.requires_grad_(False)

    @property
    def bins(self) -> Tensor:
        """The Q ab bin centres (Q, 2), read from `model_out` (a converted release carries its own)."""
        return self.model_out.weight[:, :, 0, 0].T * AB_SCALE

    def logits(self, L: Tensor) -> Tensor:
        """Ẑ before the softmax: (B, 1, H, W) L in [0, 100] -> (B, Q, H/4, W/4) logits."""
        if L.dim() != 4 or L.shape[1] != 1:
            raise ZooError(f"L must be (B, 1, H, W) lightness in [0, 100], got {tuple(L.shape)}")
        h, w = L.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ZooError(f"input sides must be multiples of {SIZE_MULTIPLE}, got {h}x{w}: resize or pad the "
                           f"input first (colorize() does this for any size)")
        x = (L - L_CENTRE) / L_SCALE
        for block in (self.model1, self.model2, self.model3, self.model4, self.model5, self.model6, self.model7,
                      self.model8):
            x = block(x)
        return x

    def decode(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        """ab (B, 2, 4h, 4w) from logits (B, Q, h, w): softmax(logits / T) -> E[bin] -> bilinear ×4 -> ×110.
        softmax(z / T) = f_T(softmax(z)) (eq. 5), so T = 0.38 is the annealed mean and T = 1 the release."""
        if not temperature > 0:
            raise ZooError(f"temperature must be > 0 (0.38 = the paper's annealed mean, 1 = the mean), "
                           f"got {temperature}")
        probs = torch.softmax(logits / temperature, dim=1)
        ab = self.model_out(probs)
        return F.interpolate(ab, scale_factor=LOGIT_STRIDE, mode="bilinear", align_corners=False) * AB_SCALE

    def forward(self, L: Tensor, temperature: float = 1.0) -> Tensor:
        """(B, 1, H, W) L in [0, 100], sides multiples of 8 -> (B, 2, H, W) ab."""
        return self.decode(self.logits(L), temperature)


# -------------------------------------------------------------------------------------------- losses


def multinomial_cross_entropy(logits: Tensor, Z: Tensor) -> Tensor:
    """L_cl of eq. 2 without v: −Σ_q Z log softmax(Ẑ), summed over q and averaged over the pixels (and images)."""
    return -(Z * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()


class _RebalanceGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the logits' gradient by the per-pixel weight v (Caffe's
    `ClassRebalanceMultLayer`): the gradient of the rebalanced loss, with the forward value un-weighted."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, weights: Tensor) -> Tensor:
        ctx.save_for_backward(weights)
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (weights,) = ctx.saved_tensors
        return grad * weights, None


def rebalance_gradient(logits: Tensor, weights: Tensor) -> Tensor:
    """`logits` unchanged, but their gradient is scaled by `weights` (B, 1, h, w) per pixel (eq. 2's v)."""
    return _RebalanceGradient.apply(logits, weights.detach().to(logits.dtype))


def _float32(x: Tensor) -> torch.autocast:
    """Autocast off: colour conversions in float32 (bf16 Lab would be off by whole L units)."""
    return torch.autocast(x.device.type, enabled=False)


# ---------------------------------------------------------------------- the release's 8-bit pre-processing
def _lab_dtype(device: torch.device) -> torch.dtype:
    """float64 for the Lab conversions at inference (skimage works in float64; float32 L is 1-2 ulp off,
    which the network turns into ~1e-5 of RGB), float32 where the device has no float64 (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _exact_8bit(rgb: Tensor, dtype: torch.dtype) -> Tensor:
    """`rgb` in `dtype`, with every value that is the float32 rounding of some k/255 replaced by k/255 itself:
    the release reads uint8 files, and skimage's rgb2lab divides them by 255 in float64, so an 8-bit image
    handed over as float32 must be read back as its exact levels. Other values are only widened."""
    wide = rgb.to(dtype)
    levels = (wide * 255.0).round().clamp(0.0, 255.0) / 255.0
    return torch.where(levels.to(rgb.dtype) == rgb, levels, wide)


def pil_bicubic_resize(rgb: Tensor, size: tuple[int, int]) -> Tensor:
    """`util.resize_img` of the release: the 8-bit image of `rgb` (B, 3, H, W) in [0, 1] resized to `size`
    (h, w) by `PIL.Image.resize(..., BICUBIC)` itself, returned as levels / 255 in float64 (float32 on MPS) on
    `rgb`'s device. Pillow resamples in 22-bit fixed point, rounds to 8 bits between its horizontal and vertical
    passes, and its pass order changed between versions (13.0 does not always start with the horizontal one),
    so only Pillow itself reproduces the release's input bit for bit; the image goes through the CPU."""
    levels = (rgb.detach().cpu().double() * 255.0).round().clamp(0.0, 255.0).to(torch.uint8)
    h, w = size
    resized = [np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((w, h), Image.Resampling.BICUBIC))
               for image in levels.permute(0, 2, 3, 1).cpu().numpy()]
    out = torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2)
    return out.to(device=rgb.device, dtype=_lab_dtype(rgb.device)) / 255.0


@contextmanager
def _rng_untouched(device: torch.device) -> Iterator[None]:
    """Every global RNG stream (torch, CUDA, numpy, random) comes back as it was: a pass over the data must
    not change the crops and flips training sees, nor make a run differ from a resumed one."""
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


# -------------------------------------------------------------------------------- the LightningModule
@register(key="colorization")
class Colorization(EvaluationSteps, ZooModule):
    """Zhang et al.'s colorization as a LightningModule. Batches are {"image": (B, 3, H, W) RGB in [0, 1],
    "path": list[str]}: square random crops (sides multiples of 8) for training, whole images of any size
    for validation. `colorize(x)` takes any image (gray or colour, any size) and returns it coloured, with
    its own lightness."""

    task = "colorization"
    paper = "arXiv:1603.08511"
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": SIZE_MULTIPLE, "directions": ["a2b"],
                  "eval_mode": True, "input_size": 256}
    inference_modules = ("net",)
    monitor = ("val/ab_error", "min")
    datamodule = "zoo.data.PhotoDataModule"
    data_defaults: ClassVar[dict[str, Any]] = {"crop_size": 176, "batch_size": 40}

    def __init__(
        self,
        width: float = 1.0,
        neighbours: int = 5,
        sigma: float = 5.0,
        rebalance_lambda: float = 0.5,
        prior_sigma: float = 5.0,
        temperature: float = 0.38,
        gray_threshold: float = 5.0,
        lr: float = 3e-5,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 1e-3,
        lr_steps: list[int] = [200_000, 375_000],  # noqa: B006 - a list so LightningCLI shows and parses it
        lr_factors: list[float] = [1 / 3, 1 / 10],  # noqa: B006
        input_size: int = 256,
        val_grid_size: int = 4,
    ) -> None:
        """
        Args:
            width: channel multiplier of the network (1 = the release; e.g. 1/16 for tests and demos).
            neighbours: bins per pixel in the soft-encoded target (5 in the paper, 10 in the Caffe code).
            sigma: σ of the soft encoding's Gaussian weights (ab units).
            rebalance_lambda: λ of eq. 4, mixing p̃ with the uniform distribution (1 = no rebalancing).
            prior_sigma: σ of the Gaussian that smooths the empirical ab distribution p̃ (0 = none).
            temperature: T of the annealed mean at inference (0.38; 1 = the plain mean, → 0 the mode).
            gray_threshold: an image takes part in the loss only if some subsampled |a| or |b| exceeds it.
            lr: Adam's learning rate.
            betas: Adam's (β1, β2).
            weight_decay: L2 weight decay (Adam's coupled form, as Caffe's).
            lr_steps: optimizer steps at which the learning rate changes.
            lr_factors: the learning rate from each of `lr_steps` on, as a multiple of `lr`.
            input_size: the side of the square the network sees at inference (the input is resized to it).
            val_grid_size: validation images in the logged gray | colorized | real grid.
        """
        super().__init__()
        if not 1 <= int(neighbours) <= NUM_BINS or int(neighbours) != neighbours:
            raise ZooError(f"neighbours must be an integer in 1..{NUM_BINS} (5 = paper, 10 = Caffe code), "
                           f"got {neighbours}")
        if not sigma > 0 or prior_sigma < 0:
            raise ZooError(f"sigma must be > 0 and prior_sigma >= 0, got {sigma} and {prior_sigma}")
        if not 0.0 <= rebalance_lambda <= 1.0:
            raise ZooError(f"rebalance_lambda must be in [0, 1] (0.5 = paper, 1 = no rebalancing), "
                           f"got {rebalance_lambda}")
        if not temperature > 0:
            raise ZooError(f"temperature must be > 0 (0.38 = paper), got {temperature}")
        if gray_threshold < 0:
            raise ZooError(f"gray_threshold must be >= 0, got {gray_threshold}")
        if not lr > 0 or weight_decay < 0 or len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ZooError(f"need lr > 0, weight_decay >= 0 and two betas in [0, 1); got {lr}, {weight_decay}, {betas}")
        if len(lr_steps) != len(lr_factors) or list(lr_steps) != sorted(lr_steps) or any(s < 0 for s in lr_steps):
            raise ZooError(f"lr_steps must be increasing steps >= 0 with one factor each in lr_factors, got "
                           f"{list(lr_steps)} and {list(lr_factors)}")
        if input_size < SIZE_MULTIPLE or input_size % SIZE_MULTIPLE:
            raise ZooError(f"input_size must be a multiple of {SIZE_MULTIPLE} (256 = the release), got {input_size}")
        self.save_hyperparameters()
        self.net = ECCVGenerator(width)
        # p̃ (§3.2): computed from the training data once per run, or given with set_prior. Not in the state
        # dict (inference does not need it); checkpoints carry it under "colorization_prior".
        self.register_buffer("prior", torch.zeros(0), persistent=False)
        self.io.update(input_size=int(input_size))
        self._grid = GridCollector(val_grid_size)

    # ---------------------------------------------------------------------------------- the model
    def forward(self, L: Tensor, temperature: float | None = None) -> Tensor:
        """ab (B, 2, H, W) for L (B, 1, H, W) in [0, 100], sides multiples of 8; T defaults to the hparam."""
        return self.net(L, self.hparams.temperature if temperature is None else temperature)

    @property
    def bins(self) -> Tensor:
        return self.net.bins

    # ------------------------------------------------------------------------------ the prior p̃
    def set_prior(self, prior: Tensor | np.ndarray) -> None:
        """Use `prior` (Q,) as p̃ (e.g. the reference's ImageNet `prior_probs.npy`) instead of computing it
        from the training data. It is normalised to sum 1."""
        p = torch.as_tensor(prior).detach().to(torch.float64).flatten().cpu()
        q = self.bins.shape[0]
        if p.numel() != q or not torch.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
            raise ZooError(f"the prior must be {q} finite non-negative numbers with a positive sum (one per ab bin), "
                           f"got shape {tuple(torch.as_tensor(prior).shape)}")
        if not torch.isfinite(rebalance_weights(p, self.hparams.rebalance_lambda)).all():
            raise ZooError("this prior has empty bins and rebalance_lambda is 0, so their weights are infinite: "
                           "smooth the prior or set rebalance_lambda > 0")
        self.prior = (p / p.sum()).to(device=self.prior.device, dtype=torch.float32)

    def _colourful_ab(self, images: Tensor) -> Tensor:
        """ab at stride 4 (B', 2, h, w) of the images that pass the non-gray test."""
        ab = rgb_to_lab(images.to(self.device, torch.float32))[:, 1:, ::LOGIT_STRIDE, ::LOGIT_STRIDE]
        return ab[self._non_gray(ab)]

    def _non_gray(self, ab_small: Tensor) -> Tensor:
        """(B,) bool: some subsampled |a| or |b| exceeds gray_threshold (Caffe's NonGrayMaskLayer)."""
        return (ab_small.abs() > self.hparams.gray_threshold).flatten(1).any(dim=1)

    def estimate_prior(self, loader: Any) -> Tensor:
        """p̃ (Q,) from one pass over `loader` (batches with "image"): nearest-bin histogram of the stride-4
        ab of the colourful images, smoothed with σ = prior_sigma. The global RNG streams are left as they were."""
        prior, pixels = self._prior_and_pixels(loader)
        if not pixels:
            raise self._no_colour()
        return prior

    def _no_colour(self) -> DataError:
        return DataError(f"no training image has colour (|a| or |b| > {self.hparams.gray_threshold}): "
                         f"colorization learns from colour photos; check --data.root")

    def _prior_and_pixels(self, loader: Any) -> tuple[Tensor, int]:
        """`estimate_prior` and the number of pixels it counted (0 and a zero prior when none was colourful)."""
        pixels = 0

        def colourful() -> Iterator[Tensor]:
            nonlocal pixels
            for batch in loader:
                ab = self._colourful_ab(batch["image"])
                pixels += ab[:, 0].numel()
                yield ab

        with _rng_untouched(self.device), torch.no_grad():
            try:
                prior = empirical_prior(colourful(), self.bins.detach(), sigma=self.hparams.prior_sigma)
            except ValueError:
                if pixels:
                    raise
                prior = torch.zeros(self.bins.shape[0], dtype=torch.float64)
        return prior, pixels

    def _ensure_prior(self) -> None:
        if self.prior.numel():
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            raise ZooError("colorization needs the ab prior p̃ before training: fit with a datamodule "
                           "(trainer.fit(model, datamodule=...), whose train_dataloader() is read once) or call "
                           "model.set_prior(prior) first (e.g. with the reference's prior_probs.npy)")
        log.info("computing the ab prior p̃ (one pass over the training data)")
        prior, pixels = self._prior_and_pixels(datamodule.train_dataloader())
        if self.trainer.world_size > 1:
            # zoo's loaders give each DDP rank its share of the data: pool the ranks' priors, weighted by their
            # pixel counts, so that every rank (and the checkpoint) trains with one p̃.
            local = torch.cat([prior * pixels, prior.new_tensor([pixels])]).to(self.device)
            total = self.all_gather(local).reshape(-1, local.numel()).sum(dim=0).cpu()
            prior, pixels = total[:-1] / total[-1].clamp_min(1), int(total[-1])
        if not pixels:
            raise self._no_colour()
        self.set_prior(prior)

    def on_fit_start(self) -> None:
        # Strategies that restore checkpoints after setup do it after this hook: wait for on_train_start.
        if not (self.trainer.ckpt_path and self.trainer.strategy.restore_checkpoint_after_setup):
            self._ensure_prior()

    def on_train_start(self) -> None:
        super().on_train_start()
        self._ensure_prior()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.prior.numel():
            checkpoint["colorization_prior"] = self.prior.detach().cpu()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        if checkpoint.get("colorization_prior") is not None:
            self.set_prior(checkpoint["colorization_prior"])

    def class_weights(self, Z: Tensor, ab_small: Tensor) -> Tensor:
        """v (B, 1, h, w) of eq. 3: w of the argmax bin of Z, times the image's non-gray mask."""
        if not self.prior.numel():
            raise ZooError("no ab prior p̃ yet: train through a Trainer with a datamodule, or call set_prior(prior)")
        w = rebalance_weights(self.prior.to(torch.float64), self.hparams.rebalance_lambda).to(Z.device, Z.dtype)
        mask = self._non_gray(ab_small).to(Z.dtype)
        return (w[Z.argmax(dim=1)] * mask[:, None, None]).unsqueeze(1)

    # ------------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        hp = self.hparams
        rgb = batch["image"]
        if rgb.shape[-1] % SIZE_MULTIPLE or rgb.shape[-2] % SIZE_MULTIPLE:
            raise DataError(f"training crops of {rgb.shape[-2]}x{rgb.shape[-1]} do not fit colorization: sides must "
                            f"be multiples of {SIZE_MULTIPLE}; set --data.crop_size (176 in the paper)")
        with _float32(rgb):  # Lab in float32 also under mixed precision
            lab = rgb_to_lab(rgb.float())
        X, Y = lab[:, :1], lab[:, 1:]  # lightness input, ab target
        Z_hat = self.net.logits(X)  # Ẑ = G(X), logits at 1/4 resolution
        h, w = Z_hat.shape[-2:]
        Y_small = Y[..., ::LOGIT_STRIDE, ::LOGIT_STRIDE][..., :h, :w]  # Caffe's stride-4 point sampling
        with torch.no_grad():
            Z = soft_encode(Y_small, self.bins.detach(), hp.neighbours, hp.sigma)  # Z = H_gt⁻¹(Y) (§3.1)
            v = self.class_weights(Z, Y_small)  # v(Z_h,w) (eq. 3-4) × non-gray mask
        # eq. 2: v scales the gradient only, so the value logged is the un-weighted cross-entropy (issue #18)
        loss_cl = multinomial_cross_entropy(rebalance_gradient(Z_hat, v), Z)
        self.log("train/loss_cl", loss_cl.detach(), batch_size=len(rgb), prog_bar=True)
        return loss_cl

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        params = [p for p in self.net.parameters() if p.requires_grad]  # not model_out: the fixed bins
        optimizer = adam(params, hp.lr, tuple(hp.betas), self.adam_implementation, weight_decay=hp.weight_decay)
        steps, factors = list(hp.lr_steps), list(hp.lr_factors)

        def factor(step: int) -> float:  # 3e-5 -> 1e-5 -> 3e-6 at 200k and 375k iterations
            drops = [f for s, f in zip(steps, factors) if step >= s]
            return float(drops[-1]) if drops else 1.0

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------ inference
    def colorize_batch(self, rgb: Tensor, temperature: float | None = None, *, rows: int | None = None) -> Tensor:
        """RGB (B, 3, H, W) in [0, 1], any size, gray or colour -> coloured RGB of the same size, with the
        input's own L: the release's util.py pipeline. `preprocess_img`: L of the input, and L of its 8-bit
        image resized to input_size² by PIL's bicubic (`pil_bicubic_resize`), both from float64 Lab as skimage's
        rgb2lab of a uint8 image (`_exact_8bit`), handed to the network in float32; `postprocess_tens`: the ab
        resized bilinearly to the input's size, joined to its L, Lab -> RGB (in float64; skimage's lab2rgb of the
        float32 Lab differs from it by its own float32 rounding, < 1e-5). Runs in eval mode without gradients.

        `rows`: the full-size Lab work (float64, ~10 image-sized temporaries) runs in stripes of that many
        rows, each pixel's result unchanged (Lab is per pixel; the ab map is resized once, whole), so a
        4000x3000 photo needs ~0.5 GB beyond its input and output instead of ~3 GB; None: one stripe."""
        T = self.hparams.temperature if temperature is None else float(temperature)
        side = int(self.io.get("input_size", self.hparams.input_size))
        rgb = rgb.to(self.device, torch.float32)
        dtype = _lab_dtype(rgb.device)
        height = rgb.shape[-2]
        step = height if not rows else max(1, int(rows))
        with torch.no_grad(), inference_mode_of(self.net, True):
            with _float32(rgb):
                L_small = lab_lightness(pil_bicubic_resize(rgb, (side, side))).float()
            ab = self.net(L_small, T)
            with _float32(rgb):
                ab_full = F.interpolate(ab.float(), size=rgb.shape[-2:], mode="bilinear", align_corners=False)
                if step >= height:
                    L_full = lab_lightness(_exact_8bit(rgb, dtype)).float()
                    return lab_to_rgb(torch.cat([L_full, ab_full], dim=1).to(dtype)).float()
                out = torch.empty_like(rgb)
                for top in range(0, height, step):
                    part = slice(top, top + step)
                    L_part = lab_lightness(_exact_8bit(rgb[..., part, :], dtype)).float()
                    lab = torch.cat([L_part, ab_full[..., part, :]], dim=1).to(dtype)
                    out[..., part, :] = lab_to_rgb(lab).float()
                return out

    def colorize(self, x: Any, *, temperature: float | None = None, tile: int | None = None) -> Any:
        """Colour `x` (PIL image incl. mode "L", path, HW/HWC array, or BCHW/CHW tensor in [0, 1]; gray or
        colour, any size). Returns the input's kind and size. `temperature` overrides the annealed-mean T.

        The network always sees the whole image at `input_size`², so nothing of it is tiled; `tile` sets
        the stripes of the full-size Lab join (`colorize_batch(rows=)`), which give the same result:
        None picks them from `zoo.tiling.get_budget()`, 0 does the whole image at once, an int N runs
        stripes of N² pixels."""
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 0):
            raise ZooError(f"tile must be None (automatic), 0 (never tile) or a tile side in pixels, got {tile!r}")
        batch, kind = to_batch(x)
        pixels_per_row = batch.shape[0] * batch.shape[-1]
        if tile == 0:
            check_pixels(*batch.shape[-2:], what="colorize with tile=0")
        if tile is None:
            rows = max(1, get_budget() // (LAB_BYTES_PER_PIXEL * pixels_per_row))
        else:
            rows = max(1, tile * tile // pixels_per_row) if tile else None
        return from_batch(self.colorize_batch(to_module(batch, self.net), temperature, rows=rows), kind)

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        """Per whole image: `ab_error` (mean ab distance of the output to the real image), `colourfulness` of
        the output, the all-gray baseline's `ab_error_gray` and `colourfulness_gray` (≈ 0), and the real
        image's `colourfulness_real`."""
        rgb = batch["image"]
        n = len(rgb)
        pred = self.colorize_batch(rgb)
        with _float32(rgb):
            lab = rgb_to_lab(rgb.float())
            gray = lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], dim=1))
            metrics = {
                "ab_error": ab_error(rgb_to_lab(pred)[:, 1:], lab[:, 1:]),
                "colourfulness": colourfulness(pred),
                "ab_error_gray": ab_error(torch.zeros_like(lab[:, 1:]), lab[:, 1:]),
                "colourfulness_gray": colourfulness(gray),
                "colourfulness_real": colourfulness(rgb),
            }
        for name, values in metrics.items():
            self.log(f"{stage}/{name}", values.float().mean(), batch_size=n, prog_bar=name == "ab_error")
        if stage == "val" and self._grid.wants_more():
            self._grid.add(*(_thumbnail(t) for t in (gray, pred, rgb)))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"a2b": self.colorize_batch(batch["image"]), "A_path": batch.get("path")}


def _thumbnail(x: Tensor, side: int = 128) -> Tensor:
    """x fitted into a side×side white square (aspect kept): validation images differ in size, a grid does not."""
    h, w = x.shape[-2:]
    scale = side / max(h, w)
    th, tw = max(1, round(h * scale)), max(1, round(w * scale))
    small = F.interpolate(x.float(), size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
    out = torch.ones(*x.shape[:-2], side, side, dtype=small.dtype, device=small.device)
    top, left = (side - th) // 2, (side - tw) // 2
    out[..., top:top + th, left:left + tw] = small.clamp(0.0, 1.0)
    return out


# ------------------------------------------------------------------------------------- the converter
@register_converter("colorization")
def from_official(state: Mapping[str, Any], **hparams: Any) -> Colorization:
    """richzhang/colorization's PyTorch ECCV16 release (`colorization_release_v2-9b330a0b.pth`: keys
    model1.0.weight ... model_out.weight) as a Colorization model. A `state_dict` wrapper and DataParallel
    `module.` prefixes are removed and BatchNorm's `num_batches_tracked` is filled in if absent; any other
    missing, leftover or mis-shaped key is a CheckpointError naming it. The release's `model_out` weights
    (its pts_in_hull / 110) replace our reconstructed bins.

    The temperature defaults to 1 here (pass `temperature=` to override): the release's `eccv16.py` takes
    softmax(logits) then `model_out`, with no temperature (METHODS.md §7 pitfall 1, issue #93), and
    `decode(logits, 1.0)` is exactly that, so `colorize` equals demo_release.py's output (to < 1e-6 of RGB) at
    T = 1 only; the paper's T = 0.38 (this class's default for networks zoo trains) moves the colours by
    tenths. The Caffe deploy net scales its logits by 2.606 = 1/0.38 before the softmax; whether the PyTorch
    port folded that factor into `model8.6` is not documented, so T = 1 is the only setting that reproduces the
    release as published, and T = 0.38 on top of it may anneal twice."""
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"the ECCV16 release .pth holds a state dict, got {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    first = state.get("model1.0.weight")
    if first is not None and tuple(first.shape) != (64, 1, 3, 3):
        raise CheckpointError(f"model1.0.weight has shape {tuple(first.shape)}, not the release's (64, 1, 3, 3): "
                              f"this is not the ECCV16 network (siggraph17 is another architecture)")
    if float(hparams.get("width", 1.0)) != 1.0:
        raise CheckpointError(f"the ECCV16 release has width 1, got width={hparams['width']}: leave width out")
    model = Colorization(**{"temperature": RELEASE_TEMPERATURE, **hparams})
    for key, value in model.net.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    try:
        load_state_dict_strict(model.net, state)
    except CheckpointError as e:
        raise CheckpointError(f"this is not richzhang/colorization's ECCV16 state dict (keys model1.0.weight ... "
                              f"model_out.weight): {e}") from None
    return model
