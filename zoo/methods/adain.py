"""AdaIN — Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance Normalization",
ICCV 2017 (arXiv:1703.06868).

A fixed encoder f (the normalised VGG-19 up to relu4_1, `vgg_normalised.pth`), one AdaIN layer and a
trained decoder g (§6.1):

    AdaIN(x, y) = σ(y) (x − μ(x)) / σ(x) + μ(y)                                  (eq. 8)
    t = AdaIN(f(c), f(s)),   T(c, s) = g(t)                                        (eq. 9, 10)
    L = L_c + λ L_s                                                                (eq. 11)
    L_c = ‖f(g(t)) − t‖₂                                                           (eq. 12)
    L_s = Σ_i ‖μ(φ_i(g(t))) − μ(φ_i(s))‖₂ + ‖σ(φ_i(g(t))) − σ(φ_i(s))‖₂                   (eq. 13)

with φ_1..φ_4 = relu1_1, relu2_1, relu3_1, relu4_1 of the encoder.

μ and σ are per sample and channel over the spatial positions, σ = sqrt(unbiased variance + 1e-5) (the
reference's `calc_mean_std`); the norms are mean squared errors as in naoto0804/pytorch-AdaIN's `net.py`,
whose recipe is the default: content weight 1, style weight 10, Adam 1e-4 with lr / (1 + 5e-5 · iteration)
set every iteration, batch 8, 256-px random crops of images whose shorter side is 512.

Test-time controls (the paper's runtime control, eq. 14, 15; the authors' `test.lua`): the content-style
trade-off `alpha`, interpolation between several styles with `weights`, colour preservation by CORAL
(`preserve_color`) and spatial control with `masks`.

Layouts and key names are the releases': the encoder is `vgg_normalised`'s Sequential cut after relu4_1
(keys `0.weight` ... `29.bias`), the decoder the naoto port's Sequential (keys `1.weight` ... `28.bias`,
3,505,219 parameters), so `decoder.pth` loads as it is, and `vgg_normalised.pth` after dropping its layers
past relu4_1, as the reference does (`from_official`). The encoder is frozen but part of the model's
weights: a model always runs with the encoder it was trained against.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import CheckpointError, ZooError
from zoo.hub import load_state_dict_strict
from zoo.imageio import pad_to_multiple, to_batch
from zoo.losses import mean_std, mean_std_style_loss, symmetric_power
from zoo.module import ZooModule
from zoo.nn.vgg import VGGFeatures, random_weights_warning
from zoo.registry import register, register_converter
from zoo.tasks import StyleMixin, blend_weights, inference_mode_of
from zoo.training import EvaluationSteps, adam
from zoo.visual import GridCollector

__all__ = ["AdaIN", "VGGEncoder", "Decoder", "adain", "coral", "masked_adain", "from_official",
           "encoder_state_from_official", "STYLE_LAYERS"]

#: The encoder's taps: φ_1..φ_4 of the style loss; the last one is f, the AdaIN input.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
EPS = 1e-5

# ------------------------------------------------------------------------------------------- networks


class VGGEncoder(nn.Sequential):
    """f: `vgg_normalised` (1x1 preprocessing conv that takes RGB in [0, 1], reflection padding, ceil_mode
    max pooling) cut after relu4_1, as the reference's 31-module Sequential, so its state_dict keys are
    the file's (`0.weight`, `2.weight`, ..., `29.bias`). Always frozen and in eval mode.

    `weights`: None (random), "default" (looked up offline; raises `WeightsNotFoundError` naming
    `vgg_normalised.pth`), "default-or-random" or a path. `random_weights` says which happened."""

    #: tap -> end index in the Sequential (the reference's enc_1 = [:4], enc_2 = [4:11], ...).
    TAPS: ClassVar[dict[str, int]] = {"relu1_1": 4, "relu2_1": 11, "relu3_1": 18, "relu4_1": 31}

    def __init__(self, weights: Any = None) -> None:
        if weights is None:  # the layout only (no 20M-parameter init of the layers cut off), then reset_random
            with torch.device("meta"):
                vgg = VGGFeatures("vgg19", STYLE_LAYERS, None, variant="adain")
            vgg.features.to_empty(device="cpu")
        else:
            vgg = VGGFeatures("vgg19", STYLE_LAYERS, weights, variant="adain")
        super().__init__(*vgg.features)
        self.random_weights = vgg.random_weights
        self.random_weights_note = vgg.random_weights_note
        if self.random_weights:
            self.reset_random()
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def reset_random(self) -> None:
        """Random weights that keep the features' scale: the real preprocessing conv (RGB [0, 1] -> BGR
        0-255 minus the Caffe mean, as `vgg_normalised`'s first layer) and He-normal 3x3 convs with zero
        biases. PyTorch's default init shrinks the variance ~6x per conv, so relu4_1 of a default-random
        VGG is ~1e-4 of its input and L_c vanishes (~1e-8); random features of constant scale still carry
        texture statistics, which keeps the random-weight demo meaningful."""
        pre = self[0]
        pre.weight.zero_()
        for i in range(3):
            pre.weight[i, 2 - i] = 255.0
        pre.bias.copy_(-torch.tensor([103.939, 116.779, 123.68]))
        for layer in list(self)[1:]:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def train(self, mode: bool = True) -> "VGGEncoder":
        return super().train(False)  # a fixed feature extractor, whatever the LightningModule's mode

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """f(x): relu4_1 of an RGB batch in [0, 1]."""
        return super().forward(x)

    def features(self, x: Tensor) -> list[Tensor]:
        """[φ_1(x), ..., φ_4(x)] = relu1_1, relu2_1, relu3_1, relu4_1 (the reference's encode_with_intermediate)."""
        out, start = [], 0
        for end in self.TAPS.values():
            for layer in list(self)[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out


class Decoder(nn.Sequential):
    """g: the encoder mirrored from relu4_1 (§6.1): 3x3 convs with reflection padding and ReLU, nearest
    x2 upsampling in place of pooling, no normalisation (it would fix the output's style to a mean/std)
    and no output activation. The reference's Sequential, index for index, so `decoder.pth` loads
    unchanged: convs at 1, 5, 8, 11, 14, 18, 21, 25, 28."""

    def __init__(self) -> None:
        layers: list[nn.Module] = []

        def conv(cin: int, cout: int, relu: bool = True) -> None:
            layers.extend([nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)] + ([nn.ReLU()] if relu else []))

        def up() -> None:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))

        conv(512, 256); up()                                                    # 0-3: relu4_1 -> 1/4
        conv(256, 256); conv(256, 256); conv(256, 256); conv(256, 128); up()    # 4-16: block 3 -> 1/2
        conv(128, 128); conv(128, 64); up()                                     # 17-23: block 2 -> 1/1
        conv(64, 64); conv(64, 3, relu=False)                                   # 24-28: block 1 -> RGB
        super().__init__(*layers)


# -------------------------------------------------------------------------------------- the operation
def adain(content_feat: Tensor, style_feat: Tensor, eps: float = EPS) -> Tensor:
    """Eq. 8: σ(y) (x − μ(x)) / σ(x) + μ(y) per sample and channel, with the reference's statistics
    (unbiased variance + eps). `style_feat` may be one sample for a batch of contents."""
    c_mean, c_std = mean_std(content_feat, eps)
    s_mean, s_std = mean_std(style_feat, eps)
    return (content_feat - c_mean) / c_std * s_std + s_mean


def masked_adain(content_feat: Tensor, style_feats: Sequence[Tensor], masks: Tensor, eps: float = EPS) -> Tensor:
    """Spatial control (the authors' `test.lua -mask`): the positions of region k get AdaIN(content
    features of region k, style k), each region normalised by its own content statistics; positions in no
    region keep the content features. `content_feat` (1, C, H, W); `masks` (K, H, W) bool, disjoint."""
    target = content_feat.clone()
    flat, out = content_feat.flatten(2), target.view(target.shape[0], target.shape[1], -1)
    for region, style in zip(masks, style_feats):
        index = region.flatten().nonzero().squeeze(1)
        if index.numel() == 0:
            continue
        if index.numel() == 1:  # no spread to normalise: (x − μ) = 0, so the style's mean
            out[:, :, index] = mean_std(style, eps)[0].flatten(2)
            continue
        part = flat[:, :, index].unsqueeze(-1)  # (1, C, n, 1): a region as a one-column image
        out[:, :, index] = adain(part, style, eps).squeeze(-1)
    return target


def coral(source: Tensor, target: Tensor) -> Tensor:
    """Colour transfer by correlation alignment (the reference's `coral`, used by `preserve_color`): give
    `source` (3, H, W) or (1, 3, H, W) in [0, 1] the channel means and covariance of `target`.

    Each image is standardised per channel (unbiased std); the standardised source is whitened with the
    inverse square root of its channel correlation matrix and coloured with the square root of the
    target's, then takes the target's channel std and mean. The reference regularises the unnormalised
    scatter matrices with + I, which scales the result by ≈ sqrt(N_target / N_source) when the two images
    have different pixel counts; here each correlation matrix gets + I / (N − 1): identical to the
    reference for images of equal size, and correct for any sizes."""
    shape = source.shape
    src, tgt = source.reshape(3, -1).double(), target.reshape(3, -1).double()

    def standardise(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mean, std = x.mean(1, keepdim=True), x.std(1, keepdim=True).clamp_min(1e-8)
        norm = (x - mean) / std
        n = x.shape[1]
        corr = norm @ norm.t() / (n - 1) + torch.eye(3, dtype=x.dtype, device=x.device) / (n - 1)
        return norm, mean, std, corr

    if src.shape[1] < 2 or tgt.shape[1] < 2:
        raise ZooError("colour preservation needs images of at least 2 pixels")
    s_norm, _, _, s_corr = standardise(src)
    _, t_mean, t_std, t_corr = standardise(tgt)
    transferred = symmetric_power(t_corr, 0.5) @ symmetric_power(s_corr, -0.5) @ s_norm
    return (transferred * t_std + t_mean).to(source.dtype).reshape(shape)


# ----------------------------------------------------------------------------------- the LightningModule
class _PreparedMasks:
    """Masks already turned into a (K, 1, H, W) bool tensor at the padded content size (see `stylize`)."""

    def __init__(self, masks: Tensor) -> None:
        self.masks = masks


class _EncodedStyles:
    """The style images' relu4_1 features f(s_k), encoded once per `stylize` call: the encoding does not
    depend on the content, so neither tiles nor the tiling's memory probe repeat or count it."""

    def __init__(self, features: list[Tensor]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)


@register(key="adain")
class AdaIN(EvaluationSteps, StyleMixin, ZooModule):
    """AdaIN as a LightningModule. Training batches are dicts with "content" and "style" images in [0, 1]
    (`zoo.data.ContentStyleDataModule`); `stylize(content, style, alpha=..., weights=...,
    preserve_color=..., masks=..., style_size=...)` works at any size (padded to a multiple of 8 and
    cropped back)."""

    task = "style"
    paper = "arXiv:1703.06868"
    # 3 ceil_mode poolings and 3 x2 upsamplings: the output is the input's size for multiples of 8.
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 8, "directions": ["a2b"], "eval_mode": True}
    inference_modules = ("encoder", "decoder")
    monitor = ("val/loss", "min")
    min_input_size = 16  # relu4_1 (1/8) must be >= 2 pixels for the reflection paddings
    datamodule = "zoo.data.style.ContentStyleDataModule"
    # naoto's recipe: 512-px images (shorter side, as the paper), random 256-px crops (the DataModule's
    # default crop mode), batch 8.
    data_defaults: ClassVar[dict[str, Any]] = {
        "content_size": 512, "crop_size": 256, "style_size": 512, "style_crop_size": 256, "batch_size": 8,
    }

    def __init__(
        self,
        content_weight: float = 1.0,
        style_weight: float = 10.0,
        lr: float = 1e-4,
        lr_decay: float = 5e-5,
        vgg_weights: str | None = "default",
        val_grid_size: int = 4,
    ) -> None:
        """
        Args:
            content_weight: weight of L_c (eq. 11 has 1).
            style_weight: λ, the weight of L_s (10 in the reference).
            lr: Adam's initial learning rate.
            lr_decay: the rate is lr / (1 + lr_decay · iteration), updated every iteration.
            vgg_weights: the encoder's `vgg_normalised.pth`, loaded before training (`configure_model`):
                "default" (looked up offline), a path, "default-or-random" (the built-in demo: random
                weights with a loud warning when the file is absent) or None (random; tests).
            val_grid_size: validation samples in the logged content | style | output grid.
        """
        super().__init__()
        if content_weight < 0 or style_weight < 0:
            raise ZooError("content_weight and style_weight must be >= 0")
        if lr <= 0 or lr_decay < 0:
            raise ZooError(f"lr must be > 0 and lr_decay >= 0, got lr={lr}, lr_decay={lr_decay}")
        self.save_hyperparameters()
        # Random until `configure_model` loads vgg_normalised, or a state dict (zoo.load, a checkpoint,
        # the converter) brings the encoder it was trained with: loading needs no VGG file.
        self.encoder = VGGEncoder(None)
        self.decoder = Decoder()
        self._encoder_ready = False
        self.encoder.register_load_state_dict_pre_hook(self._encoder_loaded_hook)
        self._grid = GridCollector(val_grid_size)

    # ------------------------------------------------------------------------------- the encoder
    def _encoder_loaded_hook(self, module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        if any(k.startswith(prefix) for k in state_dict):
            self._encoder_ready = True

    def load_encoder(self, weights: Any = "default") -> None:
        """Put `vgg_normalised` weights (see `VGGEncoder`; None draws random ones) into the encoder; random
        weights are recorded as a warning in the model card, config and checkpoints (`random_features`)."""
        if weights is None:
            self.encoder.reset_random()
            self._note_random_encoder()
        else:
            vgg = VGGEncoder(weights)
            with torch.no_grad():
                for mine, theirs in zip(self.encoder.state_dict().values(), vgg.state_dict().values()):
                    mine.copy_(theirs)
            if vgg.random_weights_note:
                self._note_random_encoder(vgg.random_weights_note)
        self._encoder_ready = True

    def _note_random_encoder(self, warning: str | None = None) -> None:
        """Record the random encoder (`warning`: VGGFeatures' note; None: random weights asked for)."""
        warning = warning or random_weights_warning("adain", "vgg19", "weights=None")
        self._configured_warning = warning
        self.note_random_features(warning)

    def configure_model(self) -> None:
        """Lightning calls this before training and before restoring a checkpoint: load the published
        encoder once, unless the model's weights already brought their own (zoo.load, converter)."""
        if self._encoder_ready:
            return
        if self.hparams.vgg_weights is None:  # keep the random encoder of __init__
            self._note_random_encoder()
            self._encoder_ready = True
        else:
            self.load_encoder(self.hparams.vgg_weights)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # The checkpoint's encoder replaces whatever configure_model loaded: so do its warnings.
        configured = self.__dict__.pop("_configured_warning", None)
        saved = (checkpoint.get("zoo") or {}).get("warnings") or []
        warnings = self.card.get("warnings") or []
        if configured in warnings and configured not in saved:
            warnings.remove(configured)
            if not warnings:
                self.card.pop("warnings")
        super().on_load_checkpoint(checkpoint)

    # ---------------------------------------------------------------------------------- the model
    def forward(self, content: Tensor, style: Tensor, alpha: float = 1.0) -> Tensor:
        """T(c, s, α) = g((1 − α) f(c) + α AdaIN(f(c), f(s))) (eq. 14), unclamped; `style` holds one image
        per content image, or one for all."""
        content_feat = self.encoder(content)
        t = adain(content_feat, self.encoder(style))
        return self.decoder(alpha * t + (1 - alpha) * content_feat)

    def losses(self, content: Tensor, style: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(L_c, L_s, g(t)) of eq. 12 and 13 for a batch of content images and their style images."""
        style_feats = self.encoder.features(style)  # φ_i(s)
        t = adain(self.encoder(content), style_feats[-1])  # eq. 9
        g_t = self.decoder(t)
        g_t_feats = self.encoder.features(g_t)  # φ_i(g(t)); f(g(t)) is the last
        loss_c = F.mse_loss(g_t_feats[-1], t)  # the target is t, not f(c)
        loss_s = mean_std_style_loss(dict(zip(STYLE_LAYERS, g_t_feats)), dict(zip(STYLE_LAYERS, style_feats)), EPS)
        return loss_c, loss_s, g_t

    # ------------------------------------------------------------------------------- training
    def size_probes(self, batch: dict[str, Any]) -> list[tuple[Tensor, list[Any], int]]:
        # The content image through eq. 12-13 (encoder, decoder, the loss features); the style image
        # through the encoder only, at any size.
        return [(batch["content"], [lambda x: self.losses(x, x)], 1), (batch["style"], [self.encoder.features], 1)]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        hp = self.hparams
        loss_c, loss_s, _ = self.losses(batch["content"], batch["style"])
        loss = hp.content_weight * loss_c + hp.style_weight * loss_s  # eq. 11
        n = len(batch["content"])
        self.log_dict({"train/loss_c": loss_c.detach(), "train/loss_s": loss_s.detach()}, batch_size=n)
        self.log("train/loss", loss.detach(), batch_size=n, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam on the decoder only (the encoder is fixed), with the reference's inverse decay applied at
        every iteration: iteration i trains at lr / (1 + lr_decay · i). Lightning saves the scheduler's
        step count in checkpoints, so a resumed run continues the same curve."""
        hp = self.hparams
        optimizer = adam(self.decoder.parameters(), hp.lr, implementation=self.adam_implementation)
        decay = float(hp.lr_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1.0 / (1.0 + decay * i))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        hp = self.hparams
        content, style = batch["content"], batch["style"]
        with torch.no_grad():
            loss_c, loss_s, g_t = self.losses(content, style)
        n = len(content)
        self.log(f"{stage}/loss_c", loss_c, batch_size=n)
        self.log(f"{stage}/loss_s", loss_s, batch_size=n)
        self.log(f"{stage}/loss", hp.content_weight * loss_c + hp.style_weight * loss_s, batch_size=n)
        if stage == "val" and self._grid.wants_more():
            size = content.shape[-2:]
            shown = F.interpolate(style, size=size, mode="bilinear", align_corners=False, antialias=True)
            self._grid.add(content, shown, g_t[..., : size[0], : size[1]].clamp(0, 1))

    # ------------------------------------------------------------------------------ inference
    def target_features(self, content_feat: Tensor, style_feats: Sequence[Tensor], *, alpha: float = 1.0,
                        weights: Sequence[float] | None = None, masks: Tensor | None = None) -> Tensor:
        """The decoder's input for relu4_1 content features (B, 512, H, W) and one relu4_1 tensor per
        style: Σ_k w_k AdaIN(f(c), f(s_k)) (eq. 15; weights normalised to sum 1, equal when None), or the
        masked AdaIN of `masked_adain` when `masks` (K, H, W) bool is given; then blended with the
        content features: α t + (1 − α) f(c) (eq. 14)."""
        if masks is not None:
            t = torch.cat([masked_adain(c, style_feats, masks) for c in content_feat.split(1)])
        else:
            w = blend_weights(weights, len(style_feats))
            t = sum(wk * adain(content_feat, s) for wk, s in zip(w, style_feats))
        return alpha * t + (1 - alpha) * content_feat

    def stylize(self, content: Any, style: Any = None, *, alpha: float = 1.0,
                weights: Sequence[float] | None = None, masks: Any = None, **options: Any) -> Any:
        """Stylize `content` with one style image, or several blended by `weights` (normalised to sum 1;
        equal weights when None). Options:

        - `preserve_color=True`: each style image first takes the content's colour statistics (`coral`).
        - `masks`: spatial control with several styles: one mask per style image (image-likes or
          tensors, HW / 1HW, any size, stretched to the content; > 0.5 is inside), or, as `test.lua
          -mask`, a single mask with two styles (inside: the first style, outside: the second). Each
          region is normalised by its own content statistics; positions in no mask keep the content.
        - `style_size=N`: resize each style image's shorter side to N first (`test.lua -styleSize`).
        """
        if masks is not None and not isinstance(masks, _PreparedMasks):
            batch, _ = to_batch(content)
            masks = _PreparedMasks(self._prepare_masks(masks, tuple(batch.shape[-2:])))
        if masks is not None:
            options["masks"] = masks
        pairs = isinstance(style, Tensor) and style.ndim == 4 and style.shape[0] > 1  # stylize's (content i, style i)
        if style is not None and not pairs and not options.get("preserve_color"):  # coral needs each content
            style = self.encode_styles(self.prepare_style(style), style_size=options.pop("style_size", None))
        return super().stylize(content, style, alpha=alpha, weights=weights, **options)

    def prepare_style(self, style: Any) -> Any:
        return style if isinstance(style, _EncodedStyles) else super().prepare_style(style)

    def encode_styles(self, styles: Sequence[Tensor], style_size: int | None = None) -> _EncodedStyles:
        """f(s_k) of (1, 3, h, w) style images in [0, 1] (shorter side resized to `style_size` first)."""
        with torch.inference_mode():
            return _EncodedStyles([self.encoder(s) for s in self._checked_styles(styles, style_size)])

    @staticmethod
    def _checked_styles(styles: Sequence[Tensor], style_size: int | None) -> list[Tensor]:
        styles = [_resize_shorter(s, style_size) for s in styles] if style_size else list(styles)
        for s in styles:
            if -(-min(s.shape[-2:]) // 8) < 2:
                raise ZooError(
                    f"a style image of {s.shape[-1]}x{s.shape[-2]} is too small for the encoder (relu4_1 is 1/8 of "
                    f"it and needs 2 pixels): pass style images of at least 9 pixels a side, or style_size=256"
                )
        return styles

    def _prepare_masks(self, masks: Any, size: tuple[int, int]) -> Tensor:
        """(K, 1, H', W') bool masks at the content's size, padded as `stylize` pads the content."""
        items = list(masks) if isinstance(masks, (list, tuple)) else [masks]
        single = not isinstance(masks, (list, tuple))
        out = []
        for item in items:
            if isinstance(item, Tensor):
                item = item.float() if item.dtype == torch.bool else item
                item = item[None] if item.ndim == 2 else item
            mask, _ = to_batch(item)
            if mask.shape[0] != 1:
                raise ZooError(f"a mask must be one image, got a batch of {mask.shape[0]}: pass a list of masks")
            mask = mask.float().mean(1, keepdim=True).cpu()  # grey level, whatever the channels
            if tuple(mask.shape[-2:]) != size:
                mask = F.interpolate(mask, size=size, mode="nearest")
            out.append(mask > 0.5)
        if single:  # test.lua: the mask's inside takes style 1, its outside style 2
            out.append(~out[0])
        stacked = torch.cat(out).float()
        padded, _ = pad_to_multiple(stacked, int(self.io.get("size_multiple", 1)), min_size=self.min_input_size)
        return padded > 0.5

    def stylize_batch(self, content: Tensor, style: Any, *, alpha: float = 1.0,
                      weights: Sequence[float] | None = None, preserve_color: bool = False,
                      masks: Any = None, style_size: int | None = None, **options: Any) -> Tensor:
        """g(target) for a padded content batch in [0, 1] and a list of (1, 3, h, w) style images (or their
        features from `encode_styles`)."""
        if options:
            raise ZooError(
                f"adain takes no option {', '.join(map(repr, options))}: its options are preserve_color, masks and "
                f"style_size (and alpha, weights)"
            )
        if not style:
            raise ZooError("adain needs a style image: stylize(content, style_image) (or a list of style images)")
        encoded = style if isinstance(style, _EncodedStyles) else None
        if encoded is not None and (preserve_color or style_size):
            raise ZooError("preserve_color and style_size act on style images: pass images, not encoded styles")
        styles = [] if encoded is not None else self._checked_styles(style, style_size)
        count = len(encoded) if encoded is not None else len(styles)
        mask_tensor = None
        if masks is not None:
            if weights is not None:
                raise ZooError("masks and weights do not combine: masks give each style its own region, weights blend "
                               "all styles everywhere; pass one of them")
            mask_tensor = masks.masks if isinstance(masks, _PreparedMasks) else self._prepare_masks(
                masks, tuple(content.shape[-2:]))
            if len(mask_tensor) != count:
                raise ZooError(
                    f"{len(mask_tensor)} masks for {count} style images: pass one mask per style image, or one "
                    f"mask with exactly two styles (inside: the first, outside: the second)"
                )
        if weights is not None:
            blend_weights(weights, count)  # fail before any work
        outputs = []
        # The decoder has no dropout or batch norm, but the I/O contract says eval, and the flags come back.
        # inference_mode, not no_grad: no autograd bookkeeping at all (issue 8).
        with torch.inference_mode(), inference_mode_of(self.decoder, bool(self.io.get("eval_mode", True))):
            contents = content.split(1) if preserve_color else [content]
            for c in contents:
                used = [coral(s, c) for s in styles] if preserve_color else styles
                content_feat = self.encoder(c)
                regions = None
                if mask_tensor is not None:
                    regions = F.interpolate(mask_tensor.float().to(c.device), size=content_feat.shape[-2:],
                                            mode="nearest").squeeze(1) > 0.5
                    if (regions.sum(0) > 1).any():
                        raise ZooError("the masks overlap: each position may belong to one style only")
                style_feats = encoded.features if encoded is not None else [self.encoder(s) for s in used]
                t = self.target_features(content_feat, style_feats, alpha=alpha, weights=weights, masks=regions)
                outputs.append(self.decoder(t))
            return torch.cat(outputs)[..., : content.shape[-2], : content.shape[-1]]


def _resize_shorter(image: Tensor, size: int) -> Tensor:
    h, w = image.shape[-2:]
    scale = int(size) / min(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image, size=new, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


# ------------------------------------------------------------------------------------- the converter
#: The parts of the release, as `from_official`'s mapping form names them.
OFFICIAL_PARTS = ("decoder", "vgg")


def _read_part(part: str, value: Any) -> dict[str, Tensor]:
    """One part of the release as a state dict: a loaded state dict, or a path read with
    `torch.load(weights_only=True)` (never more than tensors); a DataParallel `module.` prefix is dropped."""
    if isinstance(value, (str, os.PathLike)):
        from zoo.official import read_checkpoint

        try:
            value = read_checkpoint(value)
        except CheckpointError as e:
            raise CheckpointError(f"the AdaIN {part} file: {e}") from None
    if not isinstance(value, Mapping) or not all(isinstance(v, Tensor) for v in value.values()):
        raise CheckpointError(f"the AdaIN {part} should be a state dict (names -> tensors) or its file's path, "
                              f"got {type(value).__name__}")
    return {k.removeprefix("module."): v for k, v in value.items()}


def _vgg_normalised_layout() -> dict[str, tuple[int, ...]]:
    """key -> shape of the whole `vgg_normalised.pth`: the reference's 53-module Sequential up to relu5_4,
    34 tensors (`0.weight` ... `51.bias`), laid out on the meta device (no memory, no init)."""
    with torch.device("meta"):
        full = VGGFeatures("vgg19", ("relu5_4",), None, variant="adain").features
    return {k: tuple(v.shape) for k, v in full.state_dict().items()}


def encoder_state_from_official(vgg_state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The `VGGEncoder` state of a `vgg_normalised.pth` state dict. The file is checked whole, as the
    reference's `test.py` loads it (strictly, into the full 53-module `net.vgg`): a missing or leftover
    key or a wrong shape is a `CheckpointError` naming it. Then the one documented surgery: the layers
    after relu4_1 (`32.weight` ... `51.bias`, relu4_2 to relu5_4) are dropped, as the reference slices them
    off with `nn.Sequential(*list(vgg.children())[:31])`: AdaIN never runs them."""
    layout = _vgg_normalised_layout()
    missing = [k for k in layout if k not in vgg_state]
    unexpected = [k for k in vgg_state if k not in layout]
    mismatched = [f"{k}: file {list(v.shape)} vs vgg_normalised {list(layout[k])}"
                  for k, v in vgg_state.items() if k in layout and tuple(v.shape) != layout[k]]
    problems = [f"{what} ({len(keys)}): {', '.join(keys)}"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("shape mismatches", mismatched)) if keys]
    if problems:
        raise CheckpointError("this is not the vgg_normalised.pth of naoto0804/pytorch-AdaIN (a 53-module "
                              "Sequential, keys 0.weight ... 51.bias): " + "; ".join(problems))
    used = VGGEncoder.TAPS["relu4_1"]  # modules 0 ... 30
    return {k: v for k, v in vgg_state.items() if int(k.split(".", 1)[0]) < used}


def _load_decoder(model: AdaIN, state: Mapping[str, Tensor]) -> None:
    try:
        load_state_dict_strict(model.decoder, state)
    except CheckpointError as e:
        raise CheckpointError(
            f"this is not the AdaIN decoder.pth of naoto0804/pytorch-AdaIN (keys 1.weight ... 28.bias): {e}"
        ) from None


@register_converter("adain")
def from_official(checkpoint: Mapping[str, Any], **hparams: Any) -> AdaIN:
    """The naoto0804/pytorch-AdaIN release (v0.0.0) as an AdaIN model. `checkpoint` is either

    - `{"decoder": ..., "vgg": ...}`: `decoder.pth` and `vgg_normalised.pth`, each a loaded state dict or
      the file's path (read with `weights_only=True`); the `vgg_weights` hparam must not be given then; or
    - `decoder.pth`'s state dict alone (or `{"decoder": ...}`), with the encoder found like every VGG file
      (hparam `vgg_weights`: "default" or a path; a missing file raises `WeightsNotFoundError` naming it).

    Keys are checked strictly (a missing or leftover key is a `CheckpointError` naming it). Allowed surgery:
    a DataParallel `module.` prefix, and the vgg layers after relu4_1, which the reference's `test.py` slices
    off (`encoder_state_from_official`). The Lua `.t7` files go through the port's `torch_to_pytorch.py` first."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"decoder.pth should hold a state dict, got {type(checkpoint).__name__}")
    parts = dict(checkpoint) if any(k in OFFICIAL_PARTS for k in checkpoint) else {"decoder": checkpoint}
    extra = [k for k in parts if k not in OFFICIAL_PARTS]
    if extra or "decoder" not in parts:
        raise CheckpointError(f"the AdaIN release is {{'decoder': <decoder.pth>, 'vgg': <vgg_normalised.pth>}}: "
                              f"{'unexpected part(s) ' + ', '.join(map(repr, extra)) if extra else 'no decoder'}")
    if "vgg" in parts and "vgg_weights" in hparams:
        raise ZooError("the encoder is given twice (the 'vgg' part and vgg_weights=): pass one of them")
    decoder_state = _read_part("decoder", parts["decoder"])
    encoder_state = encoder_state_from_official(_read_part("vgg", parts["vgg"])) if "vgg" in parts else None
    model = AdaIN(**hparams)
    _load_decoder(model, decoder_state)
    if encoder_state is None:
        model.load_encoder(hparams.get("vgg_weights", "default"))
    else:
        load_state_dict_strict(model.encoder, encoder_state)
        model._encoder_ready = True
    return model
