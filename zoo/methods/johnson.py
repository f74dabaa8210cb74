"""Johnson, Alahi, Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution", ECCV 2016
(arXiv:1603.08155): a feed-forward image transformation network f_W trained for one style with
perceptual losses computed by a fixed VGG-16 φ (§3):

    ŷ = f_W(x)
    ℓ_feat(ŷ, y_c) = ‖φ_j(ŷ) − φ_j(y_c)‖²                                   (feature reconstruction, §3.2)
    ℓ_style(ŷ, y_s) = Σ_j ‖G_j(ŷ) − G_j(y_s)‖²,  G_j = φ_j φ_jᵀ / (C_j H_j W_j)  (style reconstruction, §3.2)
    L = λ_c ℓ_feat(ŷ, x) + λ_s ℓ_style(ŷ, y_s) + λ_TV ℓ_TV(ŷ)               (the content target is x itself)

Network and recipe are pytorch/examples' `fast_neural_style` (METHODS.md §3), whose released models
(candy, mosaic, rain_princess, udnie) load with `from_official`:

- `TransformerNet`: reflection-padded convs, affine InstanceNorm, five residual blocks, nearest ×2
  upsample + conv, no output activation; pixels in [0, 255] in and out. State dict keys as the
  release (`conv1.conv2d.weight`, `in1.weight`, `res1.conv1.conv2d.weight`, ..., 62 entries,
  1,679,235 parameters).
- Loss net: torchvision's VGG-16 (RGB [0, 1], ImageNet mean/std); content relu2_2, weight 1e5;
  style relu1_2, relu2_2, relu3_3, relu4_3, weight 1e10; Gram / (C·H·W) and mean squared errors
  (the norms above become means); no TV term (tv_weight 0).
- Adam 1e-3, batch 4, content images resized to 256 and centre-cropped to 256, the style image at
  its own size, 2 epochs of COCO 2014 train.

Differences from the paper / the authors' Lua code (jcjohnson/fast-neural-style): there the loss net
is Caffe's VGG-16 (BGR, 0-255), content relu3_3 weight 1, style weight 5, TV 1e-6, transposed-conv
upsampling, BatchNorm (paper) or InstanceNorm, `150·tanh` output and unpadded residual convs; the Lua
`instance_norm` models are also half as wide (`width=16` gives those widths, not their layers). The
weights 1e5 / 1e10 belong to torchvision's feature scale and do not transfer to Caffe's (§0).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import CheckpointError, DataError, ZooError
from zoo.hub import load_state_dict_strict
from zoo.losses import LossNetMixin, total_variation
from zoo.module import ZooModule
from zoo.nn.style_blocks import ReflectConv2d
from zoo.registry import register, register_converter
from zoo.tasks import StyleMixin, inference_mode_of
from zoo.training import EvaluationSteps, adam
from zoo.visual import GridCollector

__all__ = ["Johnson", "TransformerNet", "ResidualBlock", "from_official", "strip_legacy_keys",
           "CONTENT_LAYER", "STYLE_LAYERS"]

log = logging.getLogger("zoo.johnson")

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

# ------------------------------------------------------------------------------------------- networks


class ResidualBlock(nn.Module):
    """x + in2(conv2(ReLU(in1(conv1(x))))), 3x3 reflection-padded convs (pytorch/examples; He et al.)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ReflectConv2d(channels, channels, 3)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ReflectConv2d(channels, channels, 3)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.in2(self.conv2(self.relu(self.in1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """f_W of pytorch/examples `fast_neural_style` (§3.1, Johnson et al. supplementary Table 1 with
    upsample-convs): c9s1-w, d2w, d4w, R4w ×5, u2w, uw, c9s1-3, with w = `width` (32). Input and
    output are RGB in [0, 255]; the output is not clamped (nor bounded: no output activation)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = int(width)
        self.conv1 = ReflectConv2d(3, w, 9)
        self.in1 = nn.InstanceNorm2d(w, affine=True)
        self.conv2 = ReflectConv2d(w, 2 * w, 3, stride=2)
        self.in2 = nn.InstanceNorm2d(2 * w, affine=True)
        self.conv3 = ReflectConv2d(2 * w, 4 * w, 3, stride=2)
        self.in3 = nn.InstanceNorm2d(4 * w, affine=True)
        self.res1, self.res2, self.res3, self.res4, self.res5 = (ResidualBlock(4 * w) for _ in range(5))
        self.deconv1 = ReflectConv2d(4 * w, 2 * w, 3, upsample=2)
        self.in4 = nn.InstanceNorm2d(2 * w, affine=True)
        self.deconv2 = ReflectConv2d(2 * w, w, 3, upsample=2)
        self.in5 = nn.InstanceNorm2d(w, affine=True)
        self.deconv3 = ReflectConv2d(w, 3, 9)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)


def _style_hint() -> str:
    return ("pass one style image with --data.style STYLE.jpg (or --data.max_styles 1 for the first style of "
            "the built-in set), or train the multi-style method `cin`")


# ----------------------------------------------------------------------------------- the LightningModule
@register(key="johnson")
class Johnson(EvaluationSteps, LossNetMixin, StyleMixin, ZooModule):
    """Fast style transfer for one style as a LightningModule. Training batches are dicts with
    "content" and "style" images in [0, 1] (`zoo.data.ContentStyleDataModule` with one style image).
    `stylize(content, alpha=...)` works at any size (padded to a multiple of 4 and cropped back); the
    style is in the weights, so no style is passed. `alpha` blends linearly between the content (0)
    and the stylised image (1) in pixel space."""

    task = "style"
    paper = "arXiv:1603.08155"
    # two stride-2 convs and two ×2 upsamplings: the output has the input's size for multiples of 4
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 4, "directions": ["a2b"], "eval_mode": True}
    inference_modules = ("transformer",)
    monitor = ("val/loss", "min")
    min_input_size = 8  # the 1/4-resolution residual blocks reflect-pad by 1: they need 2 pixels
    datamodule = "zoo.data.style.ContentStyleDataModule"
    data_defaults: ClassVar[dict[str, Any]] = {
        "content_size": 256, "crop_size": 256, "crop": "center", "style_size": None, "batch_size": 4,
    }

    def __init__(
        self,
        content_weight: float = 1e5,
        style_weight: float = 1e10,
        tv_weight: float = 0.0,
        lr: float = 1e-3,
        content_layer: str = CONTENT_LAYER,
        style_layers: Sequence[str] = STYLE_LAYERS,
        width: int = 32,
        vgg_weights: str | None = "default",
        val_grid_size: int = 4,
    ) -> None:
        """
        Args:
            content_weight: λ_c (pytorch/examples 1e5; Lua 1.0 with Caffe's VGG and relu3_3).
            style_weight: λ_s, applied to the sum over the style layers (pytorch/examples 1e10; its README
                used 5e10 or 1e11 for some released models).
            tv_weight: λ_TV of the total-variation prior on ŷ in [0, 255] (0 in pytorch/examples; Lua 1e-6).
            lr: Adam's learning rate.
            content_layer: the VGG-16 layer of ℓ_feat (relu2_2; the paper uses relu3_3).
            style_layers: the VGG-16 layers of ℓ_style.
            width: channels of the first conv (32); the others are 2x and 4x it. 32 loads the released models.
            vgg_weights: the torchvision VGG-16 loss net: "default" (looked up offline; a missing file raises
                WeightsNotFoundError naming it), a path, "default-or-random" (the built-in demo: random
                weights with a loud warning when absent) or None (random; tests).
            val_grid_size: validation samples in the logged content | style | output grid.
        """
        super().__init__()
        if min(content_weight, style_weight, tv_weight) < 0:
            raise ZooError("content_weight, style_weight and tv_weight must be >= 0")
        if lr <= 0:
            raise ZooError(f"lr must be > 0, got {lr}")
        if width < 1:
            raise ZooError(f"width must be >= 1, got {width}")
        style_layers = tuple(style_layers)
        if not style_layers:
            raise ZooError("style_layers is empty: name at least one VGG-16 layer, e.g. relu2_2")
        self.save_hyperparameters()
        self.hparams.style_layers = style_layers
        self.transformer = TransformerNet(width)
        self._grid = GridCollector(val_grid_size)

    def loss_layers(self) -> tuple[str, ...]:
        hp = self.hparams
        return tuple(dict.fromkeys((hp.content_layer, *hp.style_layers)))

    # ---------------------------------------------------------------------------------- the model
    def forward(self, content: Tensor) -> Tensor:
        """ŷ = f_W(x) for content in [0, 1], returned in [0, 1] units (unclamped)."""
        return self.transformer(content * 255.0) / 255.0

    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        n = getattr(datamodule, "num_styles", None)
        if n is not None and n != 1:
            raise DataError(f"johnson trains one network per style, but the data has {n} style images: {_style_hint()}")

    def style_targets(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """G_j(y_s) of the one style, computed from the first batch and cached. A batch that holds more
        than one style (a plain DataLoader over several) is an error."""
        paths = batch.get("style_path")
        if paths is not None and len(set(paths)) > 1:
            raise DataError(f"johnson trains one network per style, but a batch holds {len(set(paths))} style "
                            f"images: {_style_hint()}")
        return self.style_grams(0, batch["style"][:1], "chw")

    def losses(self, content: Tensor, stylized: Tensor, grams: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """ℓ_feat, ℓ_style and ℓ_TV of a batch: stylized = f_W(x) / 255 in [0, 1] units."""
        parts = self.content_style_losses(content, stylized, grams, "chw")
        tv = self.hparams.tv_weight > 0
        parts["loss_tv"] = total_variation(stylized * 255.0) if tv else stylized.new_zeros(())
        return parts

    def total(self, parts: Mapping[str, Tensor]) -> Tensor:
        hp = self.hparams
        return (hp.content_weight * parts["loss_content"] + hp.style_weight * parts["loss_style"]
                + hp.tv_weight * parts["loss_tv"])

    # ------------------------------------------------------------------------------- training
    def size_probes(self, batch: dict[str, Any]) -> list[tuple[Tensor, list[Any], int]]:
        # ŷ must have x's size for ℓ_feat: the transformer's two stride-2 stages need multiples of 4.
        return [(batch["content"], [self.transformer], int(self.io["size_multiple"]))]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        x = batch["content"]
        y_hat = self(x)  # ŷ = f_W(x)
        parts = self.losses(x, y_hat, self.style_targets(batch))
        loss = self.total(parts)  # λ_c ℓ_feat + λ_s ℓ_style + λ_TV ℓ_TV
        n = len(x)
        self.log_dict({f"train/{k}": v.detach() for k, v in parts.items()}, batch_size=n)
        self.log("train/loss", loss.detach(), batch_size=n, prog_bar=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return adam(self.transformer.parameters(), self.hparams.lr, implementation=self.adam_implementation)

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        x, style = batch["content"], batch["style"]
        with torch.no_grad():
            y_hat = self(x)
            parts = self.losses(x, y_hat, self.style_targets(batch))
        n = len(x)
        for key in ("loss_content", "loss_style"):
            self.log(f"{stage}/{key}", parts[key], batch_size=n)
        self.log(f"{stage}/loss", self.total(parts), batch_size=n)
        if stage == "val" and self._grid.wants_more():
            shown = F.interpolate(style, size=x.shape[-2:], mode="bilinear", align_corners=False, antialias=True)
            self._grid.add(x, shown.clamp(0, 1), y_hat.clamp(0, 1))

    # ------------------------------------------------------------------------------ inference
    def stylize_batch(self, content: Tensor, style: Any, *, alpha: float = 1.0,
                      weights: Sequence[float] | None = None, **options: Any) -> Tensor:
        """(1 − α) x + α f_W(255 x) / 255 for a padded content batch in [0, 1]."""
        if style is not None or weights is not None:
            raise ZooError("a johnson model has its one style in its weights: call stylize(content) without a style "
                           "or weights (load another johnson-* model for another style, or use adain/cin)")
        if options:
            raise ZooError(f"johnson takes no option {', '.join(map(repr, options))}: only alpha")
        # inference_mode, not no_grad: no autograd bookkeeping at all (issue 8); the output is a plain result.
        with torch.inference_mode(), inference_mode_of(self.transformer, True):
            out = self(content)
            return alpha * out + (1.0 - alpha) * content


# ------------------------------------------------------------------------------------- the converter
_LEGACY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


def strip_legacy_keys(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the InstanceNorm running statistics that PyTorch < 0.4 saved (`in1.running_mean`, ...;
    pytorch/examples #367, removed there by `neural_style.stylize`) and DataParallel `module.` prefixes."""
    return {k.removeprefix("module."): v for k, v in state.items() if not _LEGACY.search(k)}


@register_converter("johnson")
def from_official(state: Mapping[str, Any], **hparams: Any) -> Johnson:
    """A pytorch/examples `fast_neural_style` release (`candy.pth`, `mosaic.pth`, `rain_princess.pth`,
    `udnie.pth`: TransformerNet state dicts) as a Johnson model, loaded strictly after
    `strip_legacy_keys`. The Lua `.t7` models have another architecture and do not load."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"a fast_neural_style .pth holds a state dict, got {type(state).__name__}")
    model = Johnson(**hparams)
    try:
        load_state_dict_strict(model.transformer, strip_legacy_keys(state))
    except CheckpointError as e:
        raise CheckpointError(
            f"this is not a pytorch/examples fast_neural_style TransformerNet (keys conv1.conv2d.weight ... "
            f"deconv3.conv2d.bias) of width {model.hparams.width}: {e}"
        ) from None
    return model
