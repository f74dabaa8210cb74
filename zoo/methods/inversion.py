"""Mahendran & Vedaldi — "Understanding Deep Image Representations by Inverting Them", CVPR 2015
(arXiv:1412.0035): reconstruct an image from its representation Φ0 = Φ(x0) at one layer of a CNN.

    x* = argmin_x  ‖Φ(x) − Φ0‖² / ‖Φ0‖²  +  λ_TV/2 · TV_β(x) / σ²  +  λ_α/2 · Σ |x|^α / σ²   (§3, as coded)

as the authors' code implements it (aravindhm/deep-goggle `core/invert_nn.m`, paper settings from
`experiments/experiment_cnn.m`; `../shared/reference/METHODS.md` §2): α = 6 with λ_α = 8e-10, TV^β with
β = 2 (β = 1 gives spikes, Fig. 2) and λ_TV by depth, the image in 0-255 units minus the mean, σ the
norm of a typical such image, x initialised as σ · n / ‖n‖ with n ~ N(0, I), and gradient descent with
momentum 0.9 over 400 iterations at 0.004 × [1 (100), 0.1 (200), 0.01 (100)], the momentum reset at each
learning-rate change. The reference's update, m = 0.9 m − lr·σ²·∇E, x += m, is momentum SGD on the
objective E above with learning rate lr·σ²; zoo runs exactly that (`history` shows the scaled rates).

Choices where the reference cannot be followed:

- Network: VGG-19 (torchvision's ImageNet weights by default; `vgg_variant="gatys"` for vgg_conv.pth)
  instead of CaffeNet, whose weights zoo does not have. The data term is normalised by ‖Φ0‖², so the
  network's feature scale does not change the balance of the terms.
- Image space: x is optimised in 0-255 units minus the ImageNet mean (the Caffe range; the reference
  subtracts CaffeNet's mean image) and handed to the VGG through its own preprocessing, so λ_TV, λ_α and
  σ keep the reference's meaning for every VGG variant.
- σ: deep-goggle's `x0_sigma.mat` holds 27098.1 for 227 x 227 x 3 images, i.e. 68.92 per element; zoo
  uses σ = 68.92 · sqrt(3·H·W) (`pixel_sigma`), the same value at 227 px and the same per-pixel balance at
  any size.
- λ_TV by depth: the paper's 1 / 10 / 100 for CaffeNet layers 1-6 / 7-12 / 13-20 (conv1-relu2 /
  pool2-relu4 / conv5-fc8) mapped by stage onto VGG-19's blocks: blocks 1-2 → 1, blocks 3-4 → 10,
  block 5 → 100, where pool_b counts with block b + 1 (as CaffeNet's pool2 sits in the λ = 10 group and
  pool5 in the λ = 100 one) (`default_lambda_tv`).
- The image is resized to a shorter side of `image_size` (224) instead of squashed to 227 x 227.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from zoo.errors import ZooError
from zoo.imageio import InputKind, from_batch, to_batch
from zoo.imageopt import (
    OPTIMIZERS, PerImageOptimizer, from_caffe_range, optimize_image, resize_shorter, scaled_schedule,
)
from zoo.losses.regularizers import alpha_norm, total_variation
from zoo.module import ZooModule
from zoo.nn.vgg import vgg_layer_names
from zoo.registry import register

__all__ = ["Inversion", "InversionResult", "default_lambda_tv", "normalised_error", "PIXEL_SIGMA", "LR_SCHEDULE"]

log = logging.getLogger("zoo.inversion")

#: deep-goggle's x0_sigma (27098.1 at 227 x 227 x 3) per image element.
PIXEL_SIGMA = 27098.11571533 / math.sqrt(227 * 227 * 3)
#: experiment_cnn.m: 0.004 x [1 for 100 iterations, 0.1 for 200, 0.01 for 100].
LR_SCHEDULE: list[list[float]] = [[100, 0.004], [200, 0.0004], [100, 0.00004]]
#: Default learning rates of the other optimisers, in 0-255 pixel units (the reference has none: Adam's is
#: jcjohnson's for Gatys in the same space, L-BFGS's torch's).
DEFAULT_LR = {"adam": 10.0, "lbfgs": 1.0}

OPTIONS = ("optimizer", "lr", "lr_schedule", "steps", "momentum", "lambda_tv", "tv_beta", "lambda_alpha", "alpha",
           "pixel_sigma", "image_size", "seed", "progress")

_LAYER_RE = re.compile(r"^(conv|relu)(\d)_\d$|^pool(\d)$")


def default_lambda_tv(layer: str) -> float:
    """The paper's λ_TV for a VGG layer (see the module doc): blocks 1-2 → 1, 3-4 → 10, 5 → 100, a
    pooling layer counting with the next block."""
    match = _LAYER_RE.match(layer)
    if match is None:
        raise ZooError(f"{layer!r} is not a VGG layer name (conv3_1, relu3_1, pool3, ...)")
    block = int(match.group(2)) if match.group(2) else int(match.group(3)) + 1
    return 1.0 if block <= 2 else 10.0 if block <= 4 else 100.0


def normalised_error(features: Tensor, target: Tensor) -> float:
    """‖Φ(x) − Φ0‖ / ‖Φ0‖, the paper's normalised reconstruction error (Table 1)."""
    return float((features - target).norm() / target.norm().clamp_min(1e-12))


@dataclass
class InversionResult:
    """`tensor` (1, 3, H, W) in [0, 1], the reconstruction at the working size; `error` its normalised
    error ‖Φ(x) − Φ0‖ / ‖Φ0‖ (computed on the returned, [0, 1]-clipped image); `history` one dict per
    iterate (loss_feature = ‖Φ(x) − Φ0‖²/‖Φ0‖², loss_tv, loss_alpha, their sum "loss" and "lr");
    `layer`; `random_features` (True: the VGG had random weights, not the method's result). `image` is
    the PIL image."""

    tensor: Tensor
    error: float
    history: list[dict[str, float]] = field(default_factory=list)
    layer: str = ""
    random_features: bool = False

    @property
    def image(self) -> Any:
        return from_batch(self.tensor.detach().clamp(0, 1), InputKind("pil"))


@register(key="inversion")
class Inversion(PerImageOptimizer, ZooModule):
    """Feature inversion. `invert(image_or_features, layer=None, size=None, **options)` returns an
    `InversionResult`. Nothing is trained: the VGG (kept out of the state dict) is the whole model."""

    task = "style"
    paper = "arXiv:1412.0035"
    usage = ("`python -m zoo.predict inversion image.jpg --out DIR` (--set layer=relu4_1), or "
             "model.invert(image)")
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 1, "directions": ["a2b"], "eval_mode": True}
    inference_modules = ()

    def __init__(
        self,
        layer: str = "relu3_1",
        optimizer: str = "sgd",
        lr_schedule: list[list[float]] | None = LR_SCHEDULE,
        lr: float | None = None,
        steps: int | None = None,
        momentum: float = 0.9,
        lambda_tv: float | None = None,
        tv_beta: float = 2.0,
        lambda_alpha: float = 8e-10,
        alpha: float = 6.0,
        pixel_sigma: float = PIXEL_SIGMA,
        image_size: int | None = 224,
        seed: int | None = 0,
        progress: bool = True,
        vgg_variant: str = "torchvision",
        vgg_arch: str = "vgg19",
        pool: str = "max",
        vgg_weights: str | None = "default",
    ) -> None:
        """
        Args:
            layer: the VGG layer to invert (conv1_1 ... pool5); `invert(layer=...)` overrides it per call.
            optimizer: "sgd" (the reference: momentum SGD on `lr_schedule`), "adam" or "lbfgs".
            lr_schedule: SGD's (iterations, learning rate) phases, applied as lr·σ² (see the module doc).
            lr: a constant learning rate instead (SGD: also scaled by σ²; Adam/L-BFGS: 0-255 pixel units,
                default 10 / 1).
            steps: iterations; None = the schedule's 400 (SGD) or 400 (Adam, L-BFGS). With SGD and a
                schedule, steps=N stretches or shrinks the schedule's phases to N in proportion.
            momentum: SGD momentum (0.9).
            lambda_tv: λ_TV; None = the paper's value for the layer's depth (`default_lambda_tv`).
            tv_beta: β of TV^β (2; 1 gives spikes). lambda_alpha, alpha: λ_α and α of the α-norm (8e-10, 6).
            pixel_sigma: σ per image element (68.92, deep-goggle's x0_sigma / sqrt(227·227·3)).
            image_size: the image's shorter side is resized to it first (None: as given).
            seed: the random start's seed (None: the global RNG). progress: a progress bar.
            vgg_variant, vgg_arch, pool: the loss network ("torchvision" vgg19 with max pooling, or the
                "gatys" vgg_conv.pth).
            vgg_weights: "default" (looked up offline; raises WeightsNotFoundError naming the file), a
                path, "default-or-random" (demos) or None (random, for tests).
        """
        super().__init__()
        if vgg_variant not in ("torchvision", "gatys"):
            raise ZooError(f"inversion runs on the 'torchvision' or 'gatys' VGG, not {vgg_variant!r}")
        self.save_hyperparameters()
        self._names = vgg_layer_names(vgg_arch) if vgg_arch in ("vgg16", "vgg19") else []
        self._settings({})
        self.use_vgg(vgg_variant, vgg_arch, ("pool5",), vgg_weights, pool)

    # ------------------------------------------------------------------------------------ options
    def _check_layer(self, layer: str) -> str:
        if layer not in self._names:
            raise ZooError(f"{self.hparams.vgg_arch} has no layer {layer!r}; its layers are {', '.join(self._names)}")
        return layer

    def _settings(self, options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ZooError(f"inversion has no option {', '.join(map(repr, unknown))}; its options are "
                           f"layer, size and {', '.join(OPTIONS)}")
        s = {**{k: self.hparams[k] for k in OPTIONS}, **options}
        if s["optimizer"] not in OPTIMIZERS:
            raise ZooError(f"unknown optimizer {s['optimizer']!r}: choose one of {', '.join(OPTIMIZERS)}")
        if s["steps"] is not None and int(s["steps"]) < 0:
            raise ZooError(f"steps must be >= 0, got {s['steps']}")
        if s["image_size"] is not None and int(s["image_size"]) < 1:
            raise ZooError(f"image_size must be a positive integer or None, got {s['image_size']}")
        if s["pixel_sigma"] <= 0 or s["lambda_alpha"] < 0 or (s["lambda_tv"] is not None and s["lambda_tv"] < 0):
            raise ZooError("pixel_sigma must be > 0, lambda_alpha and lambda_tv >= 0")
        return s

    def _schedule(self, s: Mapping[str, Any], sigma2: float) -> dict[str, Any]:
        """optimize_image's steps / lr / lr_schedule for these settings (SGD rates scaled by σ²)."""
        if s["optimizer"] != "sgd":
            steps = 400 if s["steps"] is None else int(s["steps"])
            return {"steps": steps, "lr": DEFAULT_LR[s["optimizer"]] if s["lr"] is None else float(s["lr"])}
        if s["lr"] is not None or not s["lr_schedule"]:
            lr = 0.004 if s["lr"] is None else float(s["lr"])
            return {"steps": 400 if s["steps"] is None else int(s["steps"]), "lr": lr * sigma2}
        schedule = [(int(n), float(lr)) for n, lr in s["lr_schedule"]]
        if s["steps"] is not None:
            schedule = scaled_schedule(schedule, int(s["steps"]))
        return {"lr_schedule": [(n, lr * sigma2) for n, lr in schedule]}

    # ------------------------------------------------------------------------------- the network
    @property
    def vgg(self) -> Any:
        return self.network

    def features(self, image: Tensor, layer: str | None = None) -> Tensor:
        """Φ(image) at `layer` for an RGB batch (not necessarily in [0, 1]); runs the VGG up to it only."""
        layer = self._check_layer(layer or self.hparams.layer)
        x = self.vgg.preprocess(image)
        for name, module in zip(self._names, self.vgg.features):
            x = module(x)
            if name == layer:
                return x
        raise AssertionError(layer)  # pragma: no cover - _check_layer guarantees it

    def objective(self, target: Tensor, layer: str, s: Mapping[str, Any], sigma2: float) -> Any:
        """x (Caffe-range image) -> {loss_feature, loss_tv, loss_alpha}: the three terms of E."""
        lambda_tv = default_lambda_tv(layer) if s["lambda_tv"] is None else float(s["lambda_tv"])
        norm2 = target.pow(2).sum().clamp_min(1e-12)

        def terms(x: Tensor) -> dict[str, Tensor]:
            phi = self.features(from_caffe_range(x), layer)
            return {
                "loss_feature": (phi - target).pow(2).sum() / norm2,
                "loss_tv": lambda_tv / 2 * total_variation(x, s["tv_beta"]) / sigma2,
                "loss_alpha": s["lambda_alpha"] / 2 * alpha_norm(x, s["alpha"]) / sigma2,
            }

        return terms

    # ---------------------------------------------------------------------------------- the verb
    def _target(self, image_or_features: Any, layer: str, size: Any,
                s: Mapping[str, Any]) -> tuple[Tensor, tuple[int, int]]:
        reference = next(self.vgg.parameters())  # the VGG's dtype: .double() does not reach a hidden net
        device, dtype = reference.device, reference.dtype
        width = self.vgg_width(layer)
        if isinstance(image_or_features, Tensor) and image_or_features.ndim in (3, 4) and \
                image_or_features.shape[-3] == width and width > 4:
            feats = image_or_features if image_or_features.ndim == 4 else image_or_features[None]
            if feats.shape[0] != 1:
                raise ZooError(f"invert takes the features of one image, got a batch of {feats.shape[0]}")
            if size is None:
                raise ZooError(f"these look like {layer} features ({width} channels): pass size=(H, W), the size of "
                               f"the image they were computed from")
            h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
            with torch.no_grad():
                expected = self.features(torch.zeros(1, 3, h, w, device=device, dtype=dtype), layer).shape
            if tuple(feats.shape[-2:]) != tuple(expected[-2:]):
                raise ZooError(f"{layer} features of a {h}x{w} image are {expected[-2]}x{expected[-1]}, got "
                               f"{feats.shape[-2]}x{feats.shape[-1]}: pass the size of the image they came from")
            return feats.detach().to(device, dtype).clone(), (h, w)
        if size is not None:
            raise ZooError("size= is for feature input (a tensor of features); an image sets its own size")
        batch, _ = to_batch(image_or_features)
        if batch.shape[0] != 1:
            raise ZooError(f"invert takes one image, got a batch of {batch.shape[0]}")
        image = resize_shorter(batch.to(device, dtype).clone(), s["image_size"])
        pools = sum(name.startswith("pool") for name in self._names[: self._names.index(layer) + 1])
        if min(image.shape[-2:]) < 2**pools:
            raise ZooError(
                f"a {image.shape[-1]}x{image.shape[-2]} image is too small for {layer}, which sits behind {pools} "
                f"poolings: pass an image of at least {2**pools} pixels a side, or image_size={2**pools} or more"
            )
        with torch.no_grad():
            return self.features(image, layer).detach(), (image.shape[-2], image.shape[-1])

    def vgg_width(self, layer: str) -> int:
        """Channels of `layer`'s output."""
        self._check_layer(layer)
        width = 3
        for name, module in zip(self._names, self.vgg.features):
            if isinstance(module, torch.nn.Conv2d):
                width = module.out_channels
            if name == layer:
                return width
        raise AssertionError(layer)  # pragma: no cover

    def invert(self, image_or_features: Any, layer: str | None = None, *, size: Any = None,
               **options: Any) -> InversionResult:
        """Reconstruct an image from its features at `layer` (default: the `layer` hyperparameter).

        `image_or_features`: an image-like (PIL, HWC uint8 array, path, CHW/1CHW tensor in [0, 1]; resized
        to `image_size` first, its features are the target) or a tensor of `layer` features ((1,) C, h, w;
        then `size=(H, W)` gives the image size). `options` override the hyperparameters for this call
        (`OPTIONS`: steps, optimizer, lr, lambda_tv, ...)."""
        s = self._settings(options)
        layer = self._check_layer(layer or self.hparams.layer)
        with torch.inference_mode(False), torch.enable_grad():
            target, (h, w) = self._target(image_or_features, layer, size, s)
            sigma = float(s["pixel_sigma"]) * math.sqrt(3 * h * w)
            generator = torch.Generator().manual_seed(int(s["seed"])) if s["seed"] is not None else None
            x0 = torch.randn(1, 3, h, w, generator=generator)
            x0 = (x0 / x0.norm() * sigma).to(target)  # deep-goggle: x = randn; x = x / ‖x‖ · x0_sigma
            x, history = optimize_image(
                x0, self.objective(target, layer, s, sigma**2), optimizer=s["optimizer"], momentum=s["momentum"],
                progress=bool(s["progress"]), description=f"inverting {layer}", **self._schedule(s, sigma**2),
            )
            out = from_caffe_range(x).clamp(0, 1)
            with torch.no_grad():
                error = normalised_error(self.features(out, layer), target)
        for warning in self.card.get("warnings") or []:
            log.warning("this reconstruction was made with random feature weights: %s", warning)
        return InversionResult(out.detach(), error, history, layer, self.random_features)
