"""MUNIT — Huang, Liu, Belongie, Kautz, "Multimodal Unsupervised Image-to-Image Translation", ECCV 2018
(arXiv:1804.04732).

Each domain i has an auto-encoder (`AdaINGenerator`): a content encoder E_i^c (downsampling convs +
residual blocks with InstanceNorm), a style encoder E_i^s (convs, global pooling, a 1x1 conv to an
8-d code) and a decoder G_i whose residual blocks use AdaIN with parameters produced from the style
code by an MLP (§3.2). Translation A -> B keeps A's content and draws B's style: x_ab = G_b(E_a^c(x_a),
s_b), s_b ~ N(0, I). Objective (eq. 5):

    min_{E, G} max_D  L_GAN^a + L_GAN^b + λ_x (L_recon^{x_a} + L_recon^{x_b})
                      + λ_c (L_recon^{c_a} + L_recon^{c_b}) + λ_s (L_recon^{s_a} + L_recon^{s_b})

with least-squares GAN losses on 3-scale discriminators, plus the optional cycle reconstruction
(λ_x_cyc) and domain-invariant perceptual (λ_vgg) terms of the reference implementation. The layers,
state_dict keys and the recipe (Adam 1e-4 β (0.5, 0.999), weight decay 1e-4, learning rate halved
every 100k iterations, batch 1, Kaiming init, D ~ N(0, 0.02)) are NVlabs/MUNIT's (edges2shoes config).
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import CheckpointError, DataError, ZooError
from zoo.hub import load_state_dict_strict
from zoo.imageio import crop_to, from_batch, from_range, pad_to_multiple, to_batch, to_range
from zoo.losses import GANLoss
from zoo.metrics.backbones import HiddenNetMixin
from zoo.metrics.swd import PatchSWD, log_domain_distances
from zoo.module import ZooModule
from zoo.nn import (
    MLP, AdaptiveInstanceNorm2d, Conv2dBlock, MultiScaleDiscriminator, ResBlocks, init_kaiming, init_normal,
)
from zoo.registry import DIRECTIONS, register, register_converter
from zoo.tasks import TranslationMixin, apply_network, inference_mode_of
from zoo.tiling import check_pixels
from zoo.training import adam, set_epoch_lr
from zoo.visual import GridCollector

__all__ = ["MUNIT", "AdaINGenerator", "StyleEncoder", "ContentEncoder", "Decoder", "from_official"]

log = logging.getLogger("zoo.munit")

# ------------------------------------------------------------------------------------------- networks


class StyleEncoder(nn.Module):
    """c7s1-dim, two stride-2 convs doubling the width, `n_downsample - 2` more at constant width, global
    average pooling, 1x1 conv to the style code (B, style_dim, 1, 1). No normalisation: IN would remove
    the very statistics that carry style (§B.2)."""

    def __init__(self, n_downsample: int, input_dim: int, dim: int, style_dim: int, norm: str, activ: str,
                 pad_type: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv2dBlock(input_dim, dim, 7, 1, 3, norm=norm, activation=activ, pad_type=pad_type)]
        for _ in range(2):
            layers.append(Conv2dBlock(dim, 2 * dim, 4, 2, 1, norm=norm, activation=activ, pad_type=pad_type))
            dim *= 2
        for _ in range(n_downsample - 2):
            layers.append(Conv2dBlock(dim, dim, 4, 2, 1, norm=norm, activation=activ, pad_type=pad_type))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, style_dim, 1, 1, 0)]
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ContentEncoder(nn.Module):
    """c7s1-dim, `n_downsample` stride-2 convs, `n_res` residual blocks, all with InstanceNorm."""

    def __init__(self, n_downsample: int, n_res: int, input_dim: int, dim: int, norm: str, activ: str,
                 pad_type: str) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv2dBlock(input_dim, dim, 7, 1, 3, norm=norm, activation=activ, pad_type=pad_type)]
        for _ in range(n_downsample):
            layers.append(Conv2dBlock(dim, 2 * dim, 4, 2, 1, norm=norm, activation=activ, pad_type=pad_type))
            dim *= 2
        layers.append(ResBlocks(n_res, dim, norm=norm, activation=activ, pad_type=pad_type))
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Decoder(nn.Module):
    """`n_res` AdaIN residual blocks, then `n_upsample` x (nearest 2x upsampling, 5x5 conv halving the
    width, MUNIT LayerNorm, ReLU), then c7s1-3 with tanh."""

    def __init__(self, n_upsample: int, n_res: int, dim: int, output_dim: int, res_norm: str = "adain",
                 activ: str = "relu", pad_type: str = "zero") -> None:
        super().__init__()
        layers: list[nn.Module] = [ResBlocks(n_res, dim, res_norm, activ, pad_type=pad_type)]
        for _ in range(n_upsample):
            layers += [nn.Upsample(scale_factor=2),
                       Conv2dBlock(dim, dim // 2, 5, 1, 2, norm="ln", activation=activ, pad_type=pad_type)]
            dim //= 2
        layers.append(Conv2dBlock(dim, output_dim, 7, 1, 3, norm="none", activation="tanh", pad_type=pad_type))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class AdaINGenerator(nn.Module):
    """One domain's auto-encoder (the reference's `AdaINGen`): `enc_style`, `enc_content`, `dec` and the
    `mlp` that maps a style code to the decoder's AdaIN parameters."""

    def __init__(self, input_dim: int = 3, dim: int = 64, style_dim: int = 8, n_downsample: int = 2, n_res: int = 4,
                 mlp_dim: int = 256, activ: str = "relu", pad_type: str = "reflect") -> None:
        super().__init__()
        self.style_dim = style_dim
        self.enc_style = StyleEncoder(4, input_dim, dim, style_dim, norm="none", activ=activ, pad_type=pad_type)
        self.enc_content = ContentEncoder(n_downsample, n_res, input_dim, dim, "in", activ, pad_type=pad_type)
        self.dec = Decoder(n_downsample, n_res, self.enc_content.output_dim, input_dim, res_norm="adain",
                           activ=activ, pad_type=pad_type)
        self.mlp = MLP(style_dim, self.num_adain_params(), mlp_dim, 3, norm="none", activ=activ)

    def adain_layers(self) -> list[AdaptiveInstanceNorm2d]:
        return [m for m in self.dec.modules() if isinstance(m, AdaptiveInstanceNorm2d)]

    def num_adain_params(self) -> int:
        return sum(2 * m.num_features for m in self.adain_layers())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Within-domain reconstruction G(E^c(x), E^s(x))."""
        content, style = self.encode(images)
        return self.decode(content, style)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.enc_content(images), self.enc_style(images)

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        self.assign_adain_params(self.mlp(style))
        try:
            return self.dec(content)
        finally:
            for m in self.adain_layers():  # do not keep the graph (or a stale style) alive
                m.weight = m.bias = None

    def assign_adain_params(self, adain_params: torch.Tensor) -> None:
        """Slice the MLP output in decoder module order: for each AdaIN layer, the next C values are its
        bias (β, the mean) and the C after them its weight (γ, the std), per sample."""
        offset = 0
        for m in self.adain_layers():
            c = m.num_features
            m.bias = adain_params[:, offset : offset + c].contiguous().view(-1)
            m.weight = adain_params[:, offset + c : offset + 2 * c].contiguous().view(-1)
            offset += 2 * c


# ---------------------------------------------------------------------------------------------- losses


def multiscale_gan_loss(criterion: GANLoss, outputs: list[torch.Tensor], target_is_real: bool, *,
                        for_discriminator: bool = True) -> torch.Tensor:
    """Σ over the discriminator's scales (the reference's `calc_dis_loss` / `calc_gen_loss`)."""
    return sum(criterion(out, target_is_real, for_discriminator=for_discriminator) for out in outputs)


#: MUNIT's gan_type -> zoo.losses.GANLoss mode (nsgan: the non-saturating loss on logits).
GAN_MODES = {"lsgan": "lsgan", "nsgan": "vanilla"}


class DomainInvariantPerceptualLoss(HiddenNetMixin, nn.Module):
    """MSE between instance-normalised VGG-16 relu5_3 features of a translation and of its source image
    (the reference's `compute_vgg_loss`; used by MUNIT for large-scale street scenes, §B.1). zoo uses
    torchvision's ImageNet VGG-16 (RGB, ImageNet normalisation) where the reference used a Caffe
    VGG-16 (BGR, mean-subtracted 0-255): the instance normalisation of the features makes the loss
    scale-free, but it is not numerically the reference's. The network is kept out of the module tree
    (no 60 MB of VGG in every checkpoint)."""

    def __init__(self, weights: str | os.PathLike | None = "default") -> None:
        super().__init__()
        from zoo.nn.vgg import VGGFeatures

        self._set_hidden_net(VGGFeatures("vgg16", ("relu5_3",), weights))

    def forward(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`image`, `target` in [-1, 1]."""
        feat_image = self.network((image + 1) / 2)["relu5_3"]
        feat_target = self.network((target + 1) / 2)["relu5_3"]
        return torch.mean((F.instance_norm(feat_image) - F.instance_norm(feat_target)) ** 2)


# ------------------------------------------------------------------------------------ LightningModule

#: translate() direction -> (domain whose content is kept, domain whose style and decoder are used).
DOMAINS_OF = {"a2b": ("a", "b"), "b2a": ("b", "a")}


class _Translator(nn.Module):
    """G_target(E_source^c(x), style) as one network, for `apply_network` (padding, modes, devices)."""

    def __init__(self, source: AdaINGenerator, target: AdaINGenerator, style: torch.Tensor) -> None:
        super().__init__()
        self.source, self.target = source, target
        self.style = style

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        content, style = broadcast_codes(self.source.enc_content(x), self.style)
        return self.target.decode(content, style)


def broadcast_codes(content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pair contents with styles: one style for every content, one content for every style (sampling),
    or as many of each; anything else is a `ZooError`."""
    style = style.to(content.device, content.dtype)
    b, n = content.shape[0], style.shape[0]
    if n == b:
        return content, style
    if n == 1:
        return content, style.expand(b, -1, -1, -1)
    if b == 1:
        return content.expand(n, -1, -1, -1), style
    raise ZooError(f"{b} images and {n} styles: pass one style, one per image, or one image with several styles")


@register(key="munit")
class MUNIT(TranslationMixin, ZooModule):
    """MUNIT as a LightningModule. Batches are dicts with unpaired "A" and "B" images in [-1, 1].

    Inference: `sample(x, n=8, seed=None, direction="a2b")` gives n translations with styles drawn from
    N(0, I) (the same seed, the same images); `translate(x, direction, style=None)` uses a style code
    (`(style_dim,)`, `(B, style_dim)` or `(B, style_dim, 1, 1)`) or a reference image of the target
    domain (example-guided, §3.1), and the prior's mean (the zero code) when `style` is None;
    `encode(x, domain)` / `decode(content, style, domain)` expose the codes."""

    task = "translation-multimodal"
    paper = "arXiv:1804.04732"
    default_io = {"range": [-1.0, 1.0], "channels": 3, "size_multiple": 4, "directions": ["a2b", "b2a"],
                  "eval_mode": True}
    inference_modules = ("gen_a", "gen_b")
    monitor = ("val/swd", "min")

    def __init__(
        self,
        dim: int = 64,
        style_dim: int = 8,
        n_downsample: int = 2,
        n_res: int = 4,
        mlp_dim: int = 256,
        activ: str = "relu",
        pad_type: str = "reflect",
        dis_dim: int = 64,
        dis_n_layer: int = 4,
        dis_norm: str = "none",
        dis_activ: str = "lrelu",
        num_scales: int = 3,
        dis_pad_type: str = "reflect",
        gan_type: str = "lsgan",
        gan_w: float = 1.0,
        recon_x_w: float = 10.0,
        recon_s_w: float = 1.0,
        recon_c_w: float = 1.0,
        recon_x_cyc_w: float = 0.0,
        vgg_w: float = 0.0,
        vgg_weights: str | None = "default",
        lr: float = 1e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        weight_decay: float = 1e-4,
        step_size: int = 100_000,
        gamma: float = 0.5,
        val_samples: int = 4,
        val_grid_size: int = 4,
        val_swd_patches: int = 128,
        val_lpips: bool = True,
    ) -> None:
        """
        Args:
            dim: generator width (filters of the first conv).
            style_dim: length of the style code.
            n_downsample: stride-2 convs of the content encoder (= decoder upsamplings).
            n_res: residual blocks in the content encoder and in the decoder.
            mlp_dim: hidden width of the MLP that produces AdaIN parameters.
            activ: generator activation (relu, lrelu, prelu, selu, tanh).
            pad_type: generator padding (reflect, replicate, zero).
            dis_dim: discriminator width.
            dis_n_layer: stride-2 conv layers per discriminator scale.
            dis_norm: discriminator normalisation (none, bn, in, ln).
            dis_activ: discriminator activation.
            num_scales: discriminator scales (each an average-pooled 2x smaller copy).
            dis_pad_type: discriminator padding.
            gan_type: `lsgan` (paper) or `nsgan` (non-saturating, BCE on logits).
            gan_w: weight of the adversarial terms.
            recon_x_w: λ_x, image reconstruction weight.
            recon_s_w: λ_s, style reconstruction weight.
            recon_c_w: λ_c, content reconstruction weight.
            recon_x_cyc_w: weight of the explicit cycle reconstruction x_aba (0 in edges2shoes, 10 in
                summer2winter_yosemite256).
            vgg_w: weight of the domain-invariant perceptual loss (1 in synthia2cityscape); needs VGG-16.
            vgg_weights: VGG-16 weights for that loss: "default" (looked up offline), a path, or None.
            lr: Adam learning rate.
            beta1: Adam β1.
            beta2: Adam β2.
            weight_decay: Adam weight decay (L2).
            step_size: iterations between learning-rate decays (StepLR, stepped every iteration).
            gamma: learning-rate decay factor.
            val_samples: translations per validation input (grid and LPIPS diversity).
            val_grid_size: validation inputs per logged grid.
            val_swd_patches: 7x7 patches per validation image for the domain distance `val/swd_*`.
            val_lpips: log `val/lpips_diversity_*` when the LPIPS weights are available offline.
        """
        super().__init__()
        if gan_type not in GAN_MODES:
            raise ZooError(f"unknown gan_type {gan_type!r}: choose one of {', '.join(GAN_MODES)}")
        if n_downsample < 0 or n_res < 0 or style_dim < 1:
            raise ZooError("n_downsample and n_res must be >= 0 and style_dim >= 1")
        if val_samples < 2:
            raise ZooError(f"val_samples must be >= 2 (several translations per input), got {val_samples}")
        self.save_hyperparameters()
        self.automatic_optimization = False  # discriminators first, then generators (reference order)

        def generator() -> AdaINGenerator:
            return init_kaiming(AdaINGenerator(3, dim, style_dim, n_downsample, n_res, mlp_dim, activ, pad_type))

        def discriminator() -> MultiScaleDiscriminator:
            return init_normal(init_kaiming(
                MultiScaleDiscriminator(3, dis_dim, dis_n_layer, dis_norm, dis_activ, num_scales, dis_pad_type)),
                0.02, batchnorm=False)

        self.gen_a, self.gen_b = generator(), generator()
        self.dis_a, self.dis_b = discriminator(), discriminator()
        self.criterion_GAN = GANLoss(GAN_MODES[gan_type])
        self.io["size_multiple"] = 2**n_downsample
        # Reflection paddings need 2 pixels where the style encoder's 4th stride-2 conv and the content
        # encoder's residual blocks run: smaller inputs are padded up by the task verbs.
        self.min_input_size = max(16, 2 ** (n_downsample + 1))
        # Not part of the model's weights: built on first use, kept out of the module tree.
        self._perceptual: list[DomainInvariantPerceptualLoss] = []
        self._diversity: dict[str, Any] = {}
        self.swd = nn.ModuleDict({d: PatchSWD(val_swd_patches, seed=i) for i, d in enumerate(DIRECTIONS)})
        self._grids = {d: GridCollector(val_grid_size) for d in DIRECTIONS}

    # ------------------------------------------------------------------------------ inference
    def generator_of(self, domain: str) -> AdaINGenerator:
        if domain not in ("a", "b"):
            raise ZooError(f"domain must be 'a' or 'b', got {domain!r}")
        return self.gen_a if domain == "a" else self.gen_b

    def sample_styles(self, n: int, seed: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
        """n style codes from the prior N(0, I), (n, style_dim, 1, 1). With a seed they are drawn on the CPU
        from their own generator (identical on every device); without one, from torch's global RNG."""
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        codes = torch.randn(n, self.hparams.style_dim, 1, 1, generator=generator)
        return codes.to(device if device is not None else self.device)

    def _style_code(self, style: Any, target: str) -> torch.Tensor:
        """A style code tensor, or the style of a reference image of domain `target`."""
        if style is None:
            return torch.zeros(1, self.hparams.style_dim, 1, 1, device=self.device)
        if isinstance(style, torch.Tensor) and (style.ndim <= 2 or (style.ndim == 4 and style.shape[-2:] == (1, 1))):
            if style.shape[-1 if style.ndim <= 2 else 1] != self.hparams.style_dim:
                raise ZooError(
                    f"style code of shape {tuple(style.shape)} does not fit this model's style_dim "
                    f"{self.hparams.style_dim}: pass (style_dim,), (B, style_dim) or (B, style_dim, 1, 1), or an image"
                )
            return style.reshape(-1, self.hparams.style_dim, 1, 1).to(self.device, torch.float32)
        images, _ = to_batch(style)  # a reference image: its style, from the target domain's encoder
        images, _ = pad_to_multiple(images.to(self.device), 1, min_size=self.min_input_size)
        encoder = self.generator_of(target).enc_style
        with torch.inference_mode(), inference_mode_of(encoder, True):
            return encoder(to_range(images, self.io["range"]))

    def generator(self, direction: str, style: Any = None) -> nn.Module:
        source, target = DOMAINS_OF[direction]
        return _Translator(self.generator_of(source), self.generator_of(target), self._style_code(style, target))

    def translate(self, x: Any, direction: str | None = None, *, style: Any = None,
                  eval_mode: bool | None = None, tile: int | None = None) -> Any:
        """Translate `x` keeping its content, with `style` (a code, or a reference image of the target
        domain; None = the zero code, the prior's mean). Any input kind and size; returns the same kind.
        `tile` as in `zoo.tasks.apply_network` (None: tiles only above `zoo.tiling`'s budget; 0: never)."""
        return apply_network(self, self.generator(self.resolve_direction(direction), style), x, eval_mode=eval_mode,
                             tile=tile)

    def sample(self, x: Any, n: int = 8, seed: int | None = None, direction: str | None = None) -> Any:
        """`n` translations of one image `x` with styles drawn from N(0, I): a (n, 3, H, W) tensor in [0, 1]
        for a tensor input, a list of n PIL images for a PIL image or path, (n, H, W, 3) for an array.
        The same `seed` gives the same images."""
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
            raise ZooError(f"n must be a positive integer, got {n!r}")
        batch, kind = to_batch(x)
        if batch.shape[0] != 1:
            raise DataError(f"sample() takes one image, got a batch of {batch.shape[0]}: call it once per image")
        direction = self.resolve_direction(direction)
        styles = self.sample_styles(int(n), seed)
        network = self.generator(direction, styles)
        padded, size = pad_to_multiple(batch.to(self.device), int(self.io["size_multiple"]), min_size=self.min_input_size)
        check_pixels(*padded.shape[-2:], what="MUNIT sample", tiling_possible=False)
        with torch.inference_mode(), inference_mode_of(network, True):
            y = network(to_range(padded, self.io["range"]))
        out = from_range(crop_to(y, size), self.io["range"])
        if kind.kind == "tensor":
            kind = dataclasses.replace(kind, chw=False)  # n images: always (n, 3, H, W)
        if kind.kind == "ndarray":
            kind = dataclasses.replace(kind, batched=True)
        result = from_batch(out, kind)
        return [result] if kind.kind == "pil" and n == 1 else result

    def encode(self, x: Any, domain: str = "a") -> tuple[torch.Tensor, torch.Tensor]:
        """(content code (B, C, H/2^k, W/2^k), style code (B, style_dim, 1, 1)) of images `x` of `domain`
        (any input kind; sides must be multiples of `io["size_multiple"]` for the content code to align)."""
        batch, _ = to_batch(x)
        gen = self.generator_of(domain)
        with torch.inference_mode(), inference_mode_of(gen, True):
            return gen.encode(to_range(batch.to(self.device), self.io["range"]))

    def decode(self, content: torch.Tensor, style: torch.Tensor, domain: str = "b") -> torch.Tensor:
        """Images of `domain` (BCHW in [0, 1]) from content and style codes."""
        gen = self.generator_of(domain)
        content, style = broadcast_codes(content.to(self.device), self._style_code(style, domain))
        with torch.inference_mode(), inference_mode_of(gen, True):
            return from_range(gen.decode(content, style), self.io["range"])

    # ------------------------------------------------------------------------------- training
    def _set_iteration_lr(self) -> None:
        """StepLR stepped every iteration, as the reference's `update_learning_rate()` at the start of each
        iteration: iteration i (0-based) trains at lr · γ^⌊(i + 1) / step_size⌋. Set from the iteration
        count (restored on resume), not by counting calls."""
        iteration = self.trainer.fit_loop.total_batch_idx
        for scheduler in self.lr_schedulers():
            set_epoch_lr(scheduler, iteration)

    def size_probes(self, batch: dict[str, Any]) -> list[tuple[torch.Tensor, list[Any], int]]:
        return [(x, [self.gen_a, self.dis_a], int(self.io["size_multiple"])) for x in (batch["A"], batch["B"])]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        hp = self.hparams
        opt_gen, opt_dis = self.optimizers()
        self._set_iteration_lr()
        x_a, x_b = batch["A"], batch["B"]
        n = len(x_a)

        # (1) Discriminators, on translations with random styles s ~ N(0, I).
        self.toggle_optimizer(opt_dis)
        s_a = torch.randn(n, hp.style_dim, 1, 1, device=self.device)
        s_b = torch.randn(n, hp.style_dim, 1, 1, device=self.device)
        with torch.no_grad():
            x_ba = self.gen_a.decode(self.gen_b.enc_content(x_b), s_a)
            x_ab = self.gen_b.decode(self.gen_a.enc_content(x_a), s_b)
        gan = self.criterion_GAN
        loss_D_a = hp.gan_w * (multiscale_gan_loss(gan, self.dis_a(x_ba), False)
                               + multiscale_gan_loss(gan, self.dis_a(x_a), True))
        loss_D_b = hp.gan_w * (multiscale_gan_loss(gan, self.dis_b(x_ab), False)
                               + multiscale_gan_loss(gan, self.dis_b(x_b), True))
        opt_dis.zero_grad(set_to_none=True)
        self.manual_backward(loss_D_a + loss_D_b)
        opt_dis.step()
        self.untoggle_optimizer(opt_dis)

        # (2) Generators (eq. 5), discriminators frozen.
        self.toggle_optimizer(opt_gen)
        s_a = torch.randn(n, hp.style_dim, 1, 1, device=self.device)
        s_b = torch.randn(n, hp.style_dim, 1, 1, device=self.device)
        c_a, s_a_prime = self.gen_a.encode(x_a)  # encode
        c_b, s_b_prime = self.gen_b.encode(x_b)
        x_a_recon = self.gen_a.decode(c_a, s_a_prime)  # decode within domain
        x_b_recon = self.gen_b.decode(c_b, s_b_prime)
        x_ba = self.gen_a.decode(c_b, s_a)  # decode across domains
        x_ab = self.gen_b.decode(c_a, s_b)
        c_b_recon, s_a_recon = self.gen_a.encode(x_ba)  # encode again
        c_a_recon, s_b_recon = self.gen_b.encode(x_ab)
        losses = {
            "loss_GAN_a": hp.gan_w * multiscale_gan_loss(gan, self.dis_a(x_ba), True, for_discriminator=False),
            "loss_GAN_b": hp.gan_w * multiscale_gan_loss(gan, self.dis_b(x_ab), True, for_discriminator=False),
            "loss_recon_x_a": hp.recon_x_w * F.l1_loss(x_a_recon, x_a),
            "loss_recon_x_b": hp.recon_x_w * F.l1_loss(x_b_recon, x_b),
            "loss_recon_c_a": hp.recon_c_w * F.l1_loss(c_a_recon, c_a),
            "loss_recon_c_b": hp.recon_c_w * F.l1_loss(c_b_recon, c_b),
            "loss_recon_s_a": hp.recon_s_w * F.l1_loss(s_a_recon, s_a),
            "loss_recon_s_b": hp.recon_s_w * F.l1_loss(s_b_recon, s_b),
        }
        if hp.recon_x_cyc_w > 0:  # decode again: x_aba = G_a(E_b^c(x_ab), E_a^s(x_a))
            losses["loss_cyc_x_a"] = hp.recon_x_cyc_w * F.l1_loss(self.gen_a.decode(c_a_recon, s_a_prime), x_a)
            losses["loss_cyc_x_b"] = hp.recon_x_cyc_w * F.l1_loss(self.gen_b.decode(c_b_recon, s_b_prime), x_b)
        if hp.vgg_w > 0:  # x_ba keeps x_b's content, x_ab keeps x_a's
            losses["loss_vgg_a"] = hp.vgg_w * self.perceptual(x_ba, x_b)
            losses["loss_vgg_b"] = hp.vgg_w * self.perceptual(x_ab, x_a)
        opt_gen.zero_grad(set_to_none=True)
        self.manual_backward(sum(losses.values()))
        opt_gen.step()
        self.untoggle_optimizer(opt_gen)

        logs = {"loss_D_a": loss_D_a, "loss_D_b": loss_D_b, **losses}
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, batch_size=n)

    def perceptual(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self._perceptual:
            self._perceptual.append(DomainInvariantPerceptualLoss(self.hparams.vgg_weights))
        return self._perceptual[0].to(self.device)(image, target)

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        hp = self.hparams
        kwargs = {"lr": hp.lr, "betas": (hp.beta1, hp.beta2), "weight_decay": hp.weight_decay,
                  "implementation": self.adam_implementation}
        opt_gen = adam([*self.gen_a.parameters(), *self.gen_b.parameters()], **kwargs)
        opt_dis = adam([*self.dis_a.parameters(), *self.dis_b.parameters()], **kwargs)

        def rule(iteration: int) -> float:
            return hp.gamma ** ((iteration + 1) // hp.step_size)

        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, rule) for opt in (opt_gen, opt_dis)]
        return [opt_gen, opt_dis], [{"scheduler": s, "interval": "step"} for s in schedulers]

    # ----------------------------------------------------------------------------- evaluation
    def _diversity_metric(self, direction: str) -> Any:
        """LPIPS diversity (AlexNet) when its weights are available offline; None otherwise (said once)."""
        if not self.hparams.val_lpips:
            return None
        if direction not in self._diversity:
            from zoo.errors import WeightsNotFoundError
            from zoo.metrics.lpips import LPIPSDiversity

            try:
                metric = LPIPSDiversity("alex", n_pairs=self.hparams.val_samples - 1)
            except WeightsNotFoundError as e:
                log.info("val/lpips_diversity is not logged: %s", str(e).splitlines()[0])
                metric = None
            self._diversity[direction] = metric
        metric = self._diversity[direction]
        return metric.to(self.device) if metric is not None else None

    def _evaluate(self, batch: dict[str, Any], batch_idx: int, stage: str) -> None:
        """Per domain: the auto-encoder's reconstruction error `<stage>/recon_x_a` ([0, 1] units); per
        direction: the patch sliced Wasserstein distance `<stage>/swd_a2b` between translations (one style
        per input, drawn from a seed fixed per batch) and real images of the target domain."""
        hp = self.hparams
        x = {"a": batch["A"], "b": batch["B"]}
        n = len(x["a"])
        with torch.no_grad():
            for domain in ("a", "b"):
                recon = self.generator_of(domain)(x[domain])
                self.log(f"{stage}/recon_x_{domain}", F.l1_loss(recon, x[domain]) / 2, batch_size=n)
            for direction, (source, target) in DOMAINS_OF.items():
                content = self.generator_of(source).enc_content(x[source])
                k = hp.val_samples
                styles = self.sample_styles(n * k, seed=batch_idx * 2 + (direction == "b2a"))
                samples = self.generator_of(target).decode(content.repeat_interleave(k, 0), styles)
                samples = ((samples + 1) / 2).clamp(0, 1).view(n, k, *samples.shape[1:])
                self.swd[direction].update(samples[:, 0], ((x[target] + 1) / 2).clamp(0, 1))
                diversity = self._diversity_metric(direction) if stage == "val" else None
                if diversity is not None:
                    diversity.update(samples)
                if stage == "val":
                    self._grids[direction].add(((x[source] + 1) / 2).clamp(0, 1), *samples.unbind(1))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def _log_epoch(self, stage: str) -> None:
        log_domain_distances(self, stage, self.swd)
        for direction, metric in self._diversity.items():
            if metric is not None and metric.update_called:
                self.log(f"{stage}/lpips_diversity_{direction}", float(metric.compute()))
                metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        for direction, grid in self._grids.items():
            grid.log(self, f"val/samples_{direction}")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")


# ------------------------------------------------------------------------------- official weights


def pytorch03_to_pytorch04(state: dict[str, torch.Tensor], generator: AdaINGenerator) -> dict[str, torch.Tensor]:
    """What the released (PyTorch 0.3) generators hold beyond today's modules: `running_mean` /
    `running_var` of the content encoder's InstanceNorm layers (0.3's InstanceNorm kept them; today's,
    without running statistics, has none). Dropped, as the reference's `pytorch03_to_pytorch04`, which
    deletes exactly those `enc_content...norm.running_*` keys; AdaIN's dummy `running_mean`/`running_var`
    are kept (today's module has them too). Any other key is kept, so a leftover key still fails the
    strict load by name. A DataParallel `module.` prefix goes too."""
    stale = {
        f"{name}.{buffer}"
        for name, module in generator.enc_content.named_modules(prefix="enc_content")
        if isinstance(module, nn.modules.instancenorm._InstanceNorm)
        for buffer in ("running_mean", "running_var")
        if buffer not in dict(module.named_buffers(recurse=False))
    }
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in state.items() if k not in stale}


@register_converter("munit")
def from_official(state_dicts: dict[str, Any], **hparams: Any) -> MUNIT:
    """A NVlabs/MUNIT release (`gen_<iter>.pt` / `edges2shoes.pt`: `{"a": gen_a state, "b": gen_b state}`)
    as a MUNIT model; a missing or leftover top-level entry is a `CheckpointError` naming it (the file
    holds the two generators and nothing else). The discriminators were not released and keep their
    initialisation."""
    if not isinstance(state_dicts, dict):
        raise CheckpointError(
            f"a MUNIT generator checkpoint is a dict {{'a': gen_a state, 'b': gen_b state}}, got "
            f"{type(state_dicts).__name__}"
        )
    missing = [d for d in ("a", "b") if d not in state_dicts]
    leftover = sorted(str(k) for k in state_dicts if k not in ("a", "b"))
    if missing or leftover:
        raise CheckpointError(
            "a MUNIT generator checkpoint holds {'a': gen_a state, 'b': gen_b state} (test.py's gen_*.pt): "
            + "; ".join(([f"missing {missing}"] if missing else [])
                        + ([f"leftover ({len(leftover)}) {leftover[:10]}"] if leftover else []))
            + ". Pass the gen_*.pt file (not dis_*.pt or optimizer.pt), or a dict with exactly 'a' and 'b'."
        )
    model = MUNIT(**hparams)
    for domain in ("a", "b"):
        generator = model.generator_of(domain)
        load_state_dict_strict(generator, pytorch03_to_pytorch04(dict(state_dicts[domain]), generator))
    return model
