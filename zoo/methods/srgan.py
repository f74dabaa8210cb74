"""SRResNet / SRGAN — Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", CVPR 2017 (arXiv:1609.04802). There is no official code; networks and key names are
those of Lornatang/SRGAN-PyTorch (`model.py`), whose released `SRResNet_x{2,4,8}` / `SRGAN_x{2,4,8}` /
`DiscriminatorForVGG_x{2,4,8}` weights load with `from_official` (METHODS.md §6).

Networks (paper Fig. 4):

- `SRResNet` G: conv 9x9 + PReLU, B = 16 residual blocks (conv3x3, BN, PReLU, conv3x3, BN; no conv bias),
  conv3x3 + BN and a global skip, log2(scale) x [conv3x3 c -> 4c, PixelShuffle(2), PReLU], conv 9x9 -> RGB.
  x4: 225 state-dict entries, 1,547,350 parameters. Input and output are RGB in [0, 1]. Lornatang clamps the
  output to [0, 1] inside `forward`; here the clamp happens at inference and evaluation only (`upscale`,
  validation), which gives the same eval outputs and keeps the MSE gradient alive where G overshoots.
- `Discriminator` D (Lornatang `DiscriminatorForVGG`): eight 3x3 convs of 64, 64/2, 128, 128/2, 256, 256/2,
  512, 512/2 filters (/2: stride 2), each followed by LeakyReLU(0.2); the first has a bias and no BN, the others
  BN and no bias; then Linear(512·6·6, 1024), LeakyReLU(0.2), Linear(1024, 1): a logit (the paper's sigmoid is
  in the BCE-with-logits loss). 48 state-dict entries, 23,563,649 parameters; it judges 96x96 HR crops only.

Objectives:

    stage "srresnet":  l^SR_MSE = 1/(r²WH) Σ (I^HR − G(I^LR))²                                   (eq. 4)
    stage "srgan":     l^SR = l^SR_X + 10⁻³ l^SR_Gen,   l^SR_Gen = Σ −log D(G(I^LR))             (eq. 3, 6)
                       l^SR_VGG/5.4 = 1/(WH) Σ (φ5,4(I^HR) − φ5,4(G(I^LR)))²                      (eq. 5)
                       D: max log D(I^HR) + log(1 − D(G(I^LR)))                                    (eq. 2)

φ5,4 is torchvision VGG-19's relu5_4 (after the ReLU of conv5_4, `features[:36]`; BasicSR/ESRGAN use the
pre-ReLU conv5_4 instead), with ImageNet normalisation of [0, 1] RGB. `variant="paper"` rescales the feature
maps by 1/12.75 (paper §3.2, "VGG losses of a scale comparable to the MSE loss"); `variant="lornatang"` is
that repository's `SRGAN_x4-ImageNet.yaml`: pixel MSE (weight 1) + relu5_4 MSE without rescaling (weight 1)
+ 10⁻³ vanilla adversarial loss.

Recipe (paper §3.2): 96x96 HR crops, batch 16, LR by bicubic x4, Adam β = (0.9, 0.999), k = 1 (one D update
per G update, D first). SRResNet: 10⁶ updates at 10⁻⁴ (`--trainer.max_steps 1000000`: with manual
optimisation Lightning's global_step counts every optimizer.step(), one per iteration here). SRGAN,
initialised from the trained SRResNet (`generator_weights`): 10⁵ updates at 10⁻⁴ then 10⁵ at 10⁻⁵, for G and
D; that is 2·10⁵ iterations of two optimizer steps, `--trainer.max_steps 400000`, the drop after 10⁵ G
updates (global_step 2·10⁵).

Differences from the paper: pixels are in [0, 1] in and out (Lornatang), not [0, 1] -> [−1, 1], so the
pixel MSE is 1/4 of the paper's; PSNR/SSIM are measured on the Y channel (BT.601, 16-235) with `scale`
border pixels cropped, as the paper's tables (METHODS.md §6 pitfall 1). Lornatang's own differences (EMA,
18 epochs with MultiStep x0.5, the pixel term) are not reproduced except through `variant="lornatang"`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.errors import CheckpointError, DataError, WeightsNotFoundError, ZooError
from zoo.hub import load_state_dict_strict
from zoo.losses import GAN_MODES, GANLoss, LossNetMixin
from zoo.metrics.base import as_uint8
from zoo.metrics.lpips import LPIPSNetwork
from zoo.metrics.pixel import psnr, ssim
from zoo.metrics.resize import imresize_matlab
from zoo.module import ZooModule
from zoo.registry import register, register_converter
from zoo.tasks import SuperResolutionMixin, inference_mode_of
from zoo.training import EvaluationSteps, adam
from zoo.visual import GridCollector

__all__ = ["SRGAN", "SRResNetModel", "SRResNet", "Discriminator", "ResidualConvBlock", "UpsampleBlock", "from_official",
           "step_drop", "CONTENT_LAYER", "SCALES", "VARIANTS"]

log = logging.getLogger("zoo.srgan")

SCALES = (2, 4, 8)
CONTENT_LAYER = "relu5_4"  # φ5,4: after the ReLU of conv5_4, before pool5 (paper §2.2.1)
D_INPUT_SIZE = 96  # the HR crop size; D's classifier is built for 6x6 maps after four stride-2 convs
#: variant -> (pixel_weight, content_weight, feature_scale)
VARIANTS: dict[str, tuple[float, float, float]] = {
    "paper": (0.0, 1.0, 1.0 / 12.75),
    "lornatang": (1.0, 1.0, 1.0),
}
SRGAN_DROP_AFTER = 100_000  # paper: 10⁵ G updates at 10⁻⁴, then 10⁵ at 10⁻⁵


# ------------------------------------------------------------------------------------------- networks
class ResidualConvBlock(nn.Module):
    """x + BN(conv(PReLU(BN(conv(x))))), 3x3 convs without bias (paper Fig. 4, `rcb` in Lornatang)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rcb = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.rcb(x)


class UpsampleBlock(nn.Module):
    """x2 sub-pixel upsampling (Shi et al. 2016): conv3x3 c -> 4c, PixelShuffle(2), PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.upsample_block = nn.Sequential(nn.Conv2d(channels, channels * 4, 3, 1, 1), nn.PixelShuffle(2), nn.PReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.upsample_block(x)


class SRResNet(nn.Module):
    """The generator G of SRResNet and SRGAN (paper Fig. 4; Lornatang `SRResNet` keys). RGB [0, 1] in, RGB
    `scale` times larger out, not clamped (Lornatang clamps here; see the module doc)."""

    def __init__(self, scale: int = 4, channels: int = 64, num_blocks: int = 16) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ZooError(f"SRResNet upscales by 2, 4 or 8 (log2(scale) x2 sub-pixel blocks), got scale={scale!r}")
        if channels < 1 or num_blocks < 1:
            raise ZooError(f"channels and num_blocks must be >= 1, got {channels} and {num_blocks}")
        self.scale = scale
        self.conv1 = nn.Sequential(nn.Conv2d(3, channels, 9, 1, 4), nn.PReLU())
        self.trunk = nn.Sequential(*(ResidualConvBlock(channels) for _ in range(num_blocks)))
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))
        self.upsampling = nn.Sequential(*(UpsampleBlock(channels) for _ in range(int(math.log2(scale)))))
        self.conv3 = nn.Conv2d(channels, 3, 9, 1, 4)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # Lornatang's init: Kaiming-normal convs with zero biases, BN weight 1.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.fill_(1.0)
                m.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x)
        x = self.conv2(self.trunk(h)) + h  # the global skip over the B residual blocks
        return self.conv3(self.upsampling(x))


class Discriminator(nn.Module):
    """D of the paper's Fig. 4 (Lornatang `DiscriminatorForVGG`) for 96x96 RGB crops in [0, 1]: returns
    logits (B, 1). Widths are `channels` x (1, 1, 2, 2, 4, 4, 8, 8)."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        if channels < 1:
            raise ZooError(f"d_channels must be >= 1, got {channels}")
        c = channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        plan = [(c, c, 2), (c, 2 * c, 1), (2 * c, 2 * c, 2), (2 * c, 4 * c, 1), (4 * c, 4 * c, 2), (4 * c, 8 * c, 1),
                (8 * c, 8 * c, 2)]
        for cin, cout, stride in plan:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(8 * c * 6 * 6, 1024), nn.LeakyReLU(0.2, True), nn.Linear(1024, 1))

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != (D_INPUT_SIZE, D_INPUT_SIZE):
            raise ZooError(
                f"the SRGAN discriminator judges {D_INPUT_SIZE}x{D_INPUT_SIZE} HR crops, got "
                f"{x.shape[-2]}x{x.shape[-1]}: set --data.crop_size {D_INPUT_SIZE}"
            )
        return self.classifier(torch.flatten(self.features(x), 1))


# ------------------------------------------------------------------------------------- the LightningModule
@register(key="srgan")
class SRGAN(EvaluationSteps, LossNetMixin, SuperResolutionMixin, ZooModule):
    """SRResNet (stage "srresnet": MSE) and SRGAN (stage "srgan": VGG54 + adversarial, from a trained
    SRResNet) as a LightningModule. Batches are dicts with "lr" (B, 3, h, w) and "hr" (B, 3, s·h, s·w) in
    [0, 1] (plus "lr_path" / "hr_path"); validation batches are whole images of any size.
    `upscale(x)` returns any input kind `scale` times larger, clamped to [0, 1]."""

    task = "super-resolution"
    paper = "arXiv:1609.04802"
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 1, "directions": ["a2b"], "eval_mode": True,
                  "scale": 4}
    inference_modules = ("G",)
    monitor = ("val/PSNR_Y", "max")
    datamodule = "zoo.data.SRDataModule"
    #: the stages this key trains (`srresnet` allows stage 1 only)
    stages: ClassVar[tuple[str, ...]] = ("srresnet", "srgan")
    data_defaults: ClassVar[dict[str, Any]] = {"crop_size": D_INPUT_SIZE, "batch_size": 16}
    _vgg_arch = "vgg19"

    def __init__(
        self,
        scale: int = 4,
        channels: int = 64,
        num_blocks: int = 16,
        d_channels: int = 64,
        stage: str = "srresnet",
        generator_weights: str | None = None,
        variant: str = "paper",
        pixel_weight: float | None = None,
        content_weight: float | None = None,
        adversarial_weight: float = 1e-3,
        feature_scale: float | None = None,
        vgg_weights: str | None = "default",
        gan_mode: str = "vanilla",
        lr: float = 1e-4,
        beta1: float = 0.9,
        beta2: float = 0.999,
        lr_drop_after: int | None = None,
        val_grid_size: int = 4,
    ) -> None:
        """
        Args:
            scale: upscaling factor, 2, 4 (paper) or 8.
            channels: G's width (64).
            num_blocks: G's residual blocks B (16).
            d_channels: D's first width (64; the others are 2x, 4x, 8x it).
            stage: "srresnet" (MSE only; no D, no VGG) or "srgan" (perceptual loss; needs `generator_weights`).
            generator_weights: stage "srgan": the trained SRResNet G starts from: a zoo `.ckpt` (its `G.*`
                entries), a `save_pretrained` folder or a registry name (srresnet-x4). Loaded strictly when
                training starts (`setup`), unless weights were loaded into this model already (a resumed
                checkpoint overwrites it anyway, `zoo.load`, `from_official`).
            variant: "paper" (l_VGG54 on feature maps / 12.75 + 1e-3 l_adv) or "lornatang" (pixel MSE +
                unscaled l_VGG54 + 1e-3 l_adv).
            pixel_weight: weight of the pixel MSE in stage srgan (None: the variant's, 0 or 1).
            content_weight: weight of l_VGG54 (None: the variant's, 1).
            adversarial_weight: weight of l_Gen (10⁻³).
            feature_scale: factor on the relu5_4 feature maps before their MSE (None: the variant's, 1/12.75 or 1).
            vgg_weights: torchvision VGG-19 of l_VGG54 (stage srgan only): "default" (looked up offline; a
                missing file raises WeightsNotFoundError naming it), a path, "default-or-random" (demos:
                random weights with a loud warning when absent) or None (random; tests).
            gan_mode: "vanilla" (paper: BCE with logits, −log D(G(x)) for G), "lsgan" or "hinge".
            lr: Adam learning rate of G and D (10⁻⁴).
            beta1: Adam β1 (0.9).
            beta2: Adam β2 (0.999).
            lr_drop_after: G updates after which the learning rates are multiplied by 0.1 (None: 10⁵ for
                stage srgan, never for stage srresnet).
            val_grid_size: validation samples in the logged bicubic | SR | HR grid.
        """
        super().__init__()
        if stage not in self.stages:
            if self.stages == ("srresnet",):
                raise ZooError(f"{self.method!r} is stage 1 alone (MSE); for stage {stage!r} use --model srgan "
                               f"--model.stage {stage}")
            raise ZooError(f"stage must be 'srresnet' (MSE pre-training) or 'srgan' (adversarial), got {stage!r}")
        if variant not in VARIANTS:
            raise ZooError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
        if generator_weights is not None and not isinstance(generator_weights, (str, Path)):
            raise ZooError(
                f"generator_weights must be a path or a registry name, got {type(generator_weights).__name__}"
            )
        if gan_mode not in GAN_MODES:
            raise ZooError(f"unknown gan_mode {gan_mode!r}: choose one of {', '.join(GAN_MODES)} (the paper: vanilla)")
        pixel, content, fscale = VARIANTS[variant]
        self.loss_weights = {
            "pixel": pixel if pixel_weight is None else float(pixel_weight),
            "content": content if content_weight is None else float(content_weight),
            "adversarial": float(adversarial_weight),
        }
        self.feature_scale = fscale if feature_scale is None else float(feature_scale)
        if min(self.loss_weights.values()) < 0 or self.feature_scale <= 0:
            raise ZooError(f"loss weights must be >= 0 and feature_scale > 0, got {self.loss_weights}, "
                           f"feature_scale={self.feature_scale}")
        if lr <= 0:
            raise ZooError(f"lr must be > 0, got {lr}")
        if lr_drop_after is not None and (isinstance(lr_drop_after, bool) or int(lr_drop_after) < 0):
            raise ZooError(f"lr_drop_after must be a number of G updates >= 0 or None, got {lr_drop_after!r}")
        self.save_hyperparameters()
        if isinstance(generator_weights, Path):
            self.hparams.generator_weights = str(generator_weights)
        self.automatic_optimization = False  # stage srgan: D then G each iteration (k = 1); one code path for both

        self.G = SRResNet(scale, channels, num_blocks)
        if stage == "srgan":
            self.D = Discriminator(d_channels)
            self.criterion_GAN = GANLoss(gan_mode)
        self.io["scale"] = int(scale)
        if lr_drop_after is None:  # paper: the learning rate drops in the SRGAN stage only
            lr_drop_after = SRGAN_DROP_AFTER if stage == "srgan" else None
        self.drop_after = lr_drop_after
        self._generator_loaded = False  # set once G holds trained weights (generator_weights, a checkpoint)
        self._grid = GridCollector(val_grid_size)

    # ---------------------------------------------------------------------------------- inference
    def forward(self, x: Tensor) -> Tensor:
        """G(I^LR) for RGB in [0, 1], unclamped."""
        return self.G(x)

    def upscaler(self) -> nn.Module:
        return self.G  # apply_network maps the output back from io["range"] with a clamp to [0, 1]

    # ---------------------------------------------------------------------- stage-2 initialisation
    def load_generator_weights(self, source: str | Path) -> None:
        """Load a trained SRResNet into G, strictly: a zoo Lightning `.ckpt` (the `G.*` entries of its
        `state_dict`; a Lornatang `SRResNet_x4-ImageNet.pth.tar` works too), a `save_pretrained` folder or a
        registry name (read with `zoo.load`)."""
        path = Path(source).expanduser()
        if path.is_file():
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, ...
                raise CheckpointError(f"cannot read generator_weights {str(path)!r} as a weights-only checkpoint: "
                                      f"{type(e).__name__}: {e}") from None
            state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
            if not isinstance(state, Mapping):
                raise CheckpointError(f"generator_weights {str(path)!r} holds no state dict: pass the stage-1 "
                                      f"checkpoint (runs/srgan/checkpoints/last.ckpt)")
            g_state = {k[2:]: v for k, v in state.items() if k.startswith("G.")} or _strip_prefixes(state)
        else:
            from zoo.hub import load

            model = load(str(source))
            if not isinstance(getattr(model, "G", None), SRResNet):
                raise CheckpointError(f"generator_weights {str(source)!r} is a {model.method!r} model, not an "
                                      f"SRResNet/SRGAN one: pass a stage-1 srgan checkpoint or srresnet-x4")
            g_state = model.G.state_dict()
        try:
            load_state_dict_strict(self.G, g_state)
        except CheckpointError as e:
            raise CheckpointError(f"generator_weights {str(source)!r}: {e}") from None
        self._generator_loaded = True

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if any(k.startswith("G.") for k in state_dict):
            self._generator_loaded = True  # a checkpoint or saved model: G is trained, generator_weights not needed
        return result

    def setup(self, stage: str) -> None:
        # Stage srgan starts from the trained SRResNet (paper §3.2). On a resume, Lightning restores the
        # stage-2 checkpoint after this hook, which overwrites G again.
        if self.hparams.stage != "srgan" or self._generator_loaded:
            return
        if self.hparams.generator_weights is None:
            raise ZooError(
                "stage 'srgan' fine-tunes a trained SRResNet, but no generator_weights were given: train stage "
                "'srresnet' first and pass its checkpoint (--model.generator_weights runs/srgan/checkpoints/last.ckpt) "
                "or a registry name (--model.generator_weights srresnet-x4)"
            )
        self.load_generator_weights(self.hparams.generator_weights)

    # --------------------------------------------------------------------------------- the losses
    def loss_layers(self) -> tuple[str, ...]:
        return (CONTENT_LAYER,)

    def configure_model(self) -> None:
        if self.hparams.stage == "srgan":  # only the perceptual stage needs VGG-19
            super().configure_model()

    def content_loss(self, sr: Tensor, hr: Tensor) -> Tensor:
        """l^SR_VGG/5.4 (eq. 5): MSE of the relu5_4 feature maps of I^SR and I^HR, each times `feature_scale`."""
        net = self.loss_net(sr.device)
        phi_sr = net(sr)[CONTENT_LAYER]
        with torch.no_grad():
            phi_hr = net(hr)[CONTENT_LAYER]
        return F.mse_loss(phi_sr * self.feature_scale, phi_hr * self.feature_scale)

    def discriminator_losses(self, hr: Tensor, sr: Tensor) -> dict[str, Tensor]:
        """−log D(I^HR) and −log(1 − D(G(I^LR))) (eq. 2), G(I^LR) detached."""
        return {
            "loss_D_real": self.criterion_GAN(self.D(hr), True),
            "loss_D_fake": self.criterion_GAN(self.D(sr.detach()), False),
        }

    def generator_losses(self, hr: Tensor, sr: Tensor) -> dict[str, Tensor]:
        """The weighted terms of l^SR (eq. 3): content (VGG54), adversarial (eq. 6) and, when weighted, pixel MSE."""
        w = self.loss_weights
        losses = {
            "loss_G_content": w["content"] * self.content_loss(sr, hr),
            "loss_G_adv": w["adversarial"] * self.criterion_GAN(self.D(sr), True, for_discriminator=False),
        }
        if w["pixel"] > 0:
            losses["loss_G_pixel"] = w["pixel"] * F.mse_loss(sr, hr)
        return losses

    # ------------------------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        lr_img, hr_img = batch["lr"], batch["hr"]
        self._check_pair(lr_img, hr_img)
        optimizers = self._as_list(self.optimizers())
        opt_G = optimizers[0]
        sr_img = self.G(lr_img)  # I^SR = G_θG(I^LR)
        logs: dict[str, Tensor] = {}

        if self.hparams.stage == "srresnet":
            # θ_G = argmin l^SR_MSE (eq. 4)
            loss_G_MSE = F.mse_loss(sr_img, hr_img)
            opt_G.zero_grad(set_to_none=True)
            self.manual_backward(loss_G_MSE)
            opt_G.step()
            logs["loss_G_MSE"] = loss_G_MSE
        else:
            opt_D = optimizers[1]
            # (1) D: max log D(I^HR) + log(1 − D(G(I^LR)))  (eq. 2), one update (k = 1)
            self.toggle_optimizer(opt_D)
            d_losses = self.discriminator_losses(hr_img, sr_img)
            opt_D.zero_grad(set_to_none=True)
            self.manual_backward(d_losses["loss_D_real"] + d_losses["loss_D_fake"])
            opt_D.step()
            self.untoggle_optimizer(opt_D)

            # (2) G: min l^SR = l^SR_VGG/5.4 + 10⁻³ l^SR_Gen  (eq. 3), D frozen
            self.toggle_optimizer(opt_G)
            g_losses = self.generator_losses(hr_img, sr_img)
            opt_G.zero_grad(set_to_none=True)
            self.manual_backward(sum(g_losses.values()))
            opt_G.step()
            self.untoggle_optimizer(opt_G)
            logs.update(d_losses)
            logs.update(g_losses)

        # Both learning rates follow the count of G updates (the scheduler state is in every checkpoint).
        for scheduler in self._as_list(self.lr_schedulers()):
            scheduler.step()
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, batch_size=len(lr_img))

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        hp = self.hparams
        networks = [self.G] + ([self.D] if hp.stage == "srgan" else [])
        optimizers = [adam(n.parameters(), hp.lr, (hp.beta1, hp.beta2), self.adam_implementation) for n in networks]
        rule = step_drop(self.drop_after)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, rule) for o in optimizers]
        return optimizers, [{"scheduler": s, "interval": "step"} for s in schedulers]

    @staticmethod
    def _as_list(value: Any) -> list[Any]:
        return value if isinstance(value, list) else [value]

    def _check_pair(self, lr_img: Tensor, hr_img: Tensor) -> None:
        s = int(self.hparams.scale)
        want = (lr_img.shape[-2] * s, lr_img.shape[-1] * s)
        if tuple(hr_img.shape[-2:]) != want:
            raise DataError(
                f"an LR image of {lr_img.shape[-2]}x{lr_img.shape[-1]} comes with an HR image of "
                f"{hr_img.shape[-2]}x{hr_img.shape[-1]}, but this model upscales by {s} "
                f"(HR must be {want[0]}x{want[1]}): make the data's scale match --model.scale"
            )

    # --------------------------------------------------------------------------------- evaluation
    def _upscale_batch(self, lr_img: Tensor) -> Tensor:
        """I^SR in [0, 1] in the contract's test-time mode (BN in inference mode, paper §3.2)."""
        with torch.no_grad(), inference_mode_of(self.G, self.io.get("eval_mode", True)):
            return self.G(lr_img).clamp(0, 1)

    def _lpips_net(self, device: torch.device) -> LPIPSNetwork | None:
        """LPIPS (AlexNet) built once and kept out of the state dict; None, after one warning, when its
        backbone weights are not on this machine."""
        if "_lpips" not in self.__dict__:
            try:
                net: LPIPSNetwork | None = LPIPSNetwork("alex", "default")
            except (WeightsNotFoundError, CheckpointError) as e:
                log.warning("val/LPIPS will not be logged in this run: %s", e)
                net = None
            object.__setattr__(self, "_lpips", net)
        net = self.__dict__["_lpips"]
        return net.to(device) if net is not None else None

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        """Logs `<stage>/PSNR_Y` and `SSIM_Y` of I^SR (Y channel, `scale` border pixels cropped), the same for
        the MATLAB-bicubic upscale (`PSNR_Y_bicubic`, `SSIM_Y_bicubic`) and `LPIPS` (AlexNet) when available."""
        lr_img, hr_img = batch["lr"], batch["hr"]
        self._check_pair(lr_img, hr_img)
        s, n = int(self.hparams.scale), len(lr_img)
        sr_img = self._upscale_batch(lr_img)
        bicubic = imresize_matlab(lr_img, s).clamp(0, 1)
        for name, image in (("", sr_img), ("_bicubic", bicubic)):
            self.log(f"{stage}/PSNR_Y{name}", psnr(image, hr_img, protocol="sr-y", crop_border=s).mean().float(),
                     batch_size=n, prog_bar=stage == "val" and not name)
            self.log(f"{stage}/SSIM_Y{name}", ssim(image, hr_img, protocol="sr-y", crop_border=s).mean().float(),
                     batch_size=n)
        lpips = self._lpips_net(sr_img.device)
        if lpips is not None:
            with torch.no_grad():
                distance = lpips(as_uint8(sr_img).float() / 255 * 2 - 1, as_uint8(hr_img).float() / 255 * 2 - 1)
            self.log(f"{stage}/LPIPS", distance.mean(), batch_size=n)
        if stage == "val" and self._grid.wants_more():
            side = 32 * s  # validation images differ in size: one central tile each, for a common grid
            self._grid.add(*(_tile(x, side) for x in (bicubic, sr_img, hr_img)))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"a2b": self._upscale_batch(batch["lr"]), "A_path": batch.get("lr_path")}


def step_drop(drop_after: int | None, factor: float = 0.1) -> Callable[[int], float]:
    """Learning-rate factor after `n` G updates: 1, then `factor` from update `drop_after` + 1 on (paper
    §3.2: 10⁵ updates at 10⁻⁴, then 10⁵ at 10⁻⁵); always 1 when `drop_after` is None."""

    def rule(n: int) -> float:
        return factor if drop_after is not None and n >= drop_after else 1.0

    return rule


def _tile(x: Tensor, side: int) -> Tensor:
    """The central side x side crop of a BCHW batch, padded with white where the image is smaller."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    x = x[..., top:top + side, left:left + side]
    return F.pad(x, (0, side - x.shape[-1], 0, side - x.shape[-2]), value=1.0)


# ------------------------------------------------------------------------------------------ the converter
def _strip_prefixes(state: Mapping[str, Any]) -> dict[str, Any]:
    """Drop torch.compile's `_orig_mod.` and DataParallel's `module.` prefixes (in any order)."""
    out = {}
    for key, value in state.items():
        previous = None
        while previous != key:
            previous, key = key, key.removeprefix("_orig_mod.").removeprefix("module.")
        out[key] = value
    return out


def _drop_averaging_counter(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """A `torch.optim.swa_utils.AveragedModel` state dict (Lornatang's `ema_state_dict`, `_orig_mod.`-prefixed
    when compiled) holds the network under `module.` plus the `n_averaged` counter: the counter is dropped
    (`_strip_prefixes` removes `module.`). Any other state dict is returned as it is."""
    keys = [k.removeprefix("_orig_mod.") for k in state]
    if "n_averaged" in keys and all(k == "n_averaged" or k.startswith("module.") for k in keys):
        return {k: v for k, v in state.items() if k.removeprefix("_orig_mod.") != "n_averaged"}
    return state


def _unwrap(state: Any, what: str) -> dict[str, Any]:
    """A Lornatang checkpoint ({"state_dict": ..., "epoch": ...}) or a bare state dict (an AveragedModel's
    included), prefixes stripped."""
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"the {what} weights must be a state dict of tensors or a Lornatang checkpoint "
                              f"with a 'state_dict', got {type(state).__name__}")
    return _strip_prefixes(_drop_averaging_counter(state))


def _load_strict(network: nn.Module, state: dict[str, Any]) -> None:
    """`load_state_dict_strict`, after filling in BatchNorm's `num_batches_tracked` where a file lacks it (it
    is a training counter, unused in eval mode)."""
    for key, value in network.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    load_state_dict_strict(network, state)


def _infer(hparams: dict[str, Any], name: str, found: int | None) -> None:
    """Take G's `name` from the weights where the caller did not give it; a contradiction is an error."""
    if found is None:
        return
    given = hparams.setdefault(name, found)
    if given != found:
        raise CheckpointError(f"the weights are an SRResNet with {name}={found}, but {name}={given} was asked for: "
                              f"drop --{name} or pass weights of that {name}")


@register(key="srresnet")
class SRResNetModel(SRGAN):
    """`srresnet`: the MSE-trained SRResNet of paper §3.2 on its own (stage 1 of `srgan`, whose class this is,
    with stage "srresnet" the only one allowed); the key of Lornatang's SRResNet_x{2,4,8} releases
    (`srresnet-x4`). `python -m zoo.fit --model srresnet` and `--model srgan` train the same stage 1."""

    stages: ClassVar[tuple[str, ...]] = ("srresnet",)


@register_converter("srresnet")
def _from_official_srresnet(state: Mapping[str, Any], **hparams: Any) -> "SRResNetModel":
    """Lornatang's SRResNet release as an `srresnet` model (see `from_official`)."""
    return from_official(state, model_class=SRResNetModel, **hparams)  # type: ignore[return-value]


@register_converter("srgan")
def from_official(state: Any, *, model_class: type[SRGAN] | None = None, **hparams: Any) -> SRGAN:
    """Lornatang/SRGAN-PyTorch weights as an SRGAN model. `state` is a `SRResNet_x*`/`SRGAN_x*` checkpoint
    ({"state_dict": ..., "ema_state_dict": ..., ...}) or a bare state dict, or {"G": ..., "D": ...} with a
    `DiscriminatorForVGG_x*` checkpoint for D (stage "srgan", to fine-tune further).

    Of a checkpoint, `state_dict` is used: it is what Lornatang's inference.py and test.py load
    (`utils.load_pretrained_state_dict`) and what his training validated. `ema_state_dict` is a
    `torch.optim.swa_utils.AveragedModel` whose avg_fn (1 − 0.999)·avg + 0.999·new keeps 0.1 % of the history,
    i.e. practically the last weights, and whose BN statistics are not averaged (torch's AveragedModel copies
    them from G in current versions); pass `state["ema_state_dict"]` to load it anyway (its `n_averaged`
    counter is dropped).

    `_orig_mod.` and `module.` prefixes are dropped and a missing BatchNorm `num_batches_tracked` is filled in;
    every other key must match exactly (Lornatang's own loader silently skips mismatches; here a missing or
    unexpected key is a CheckpointError naming it). scale, channels and num_blocks are read from the weights.
    `upscale(x)` equals inference.py's G(x) (its `SRResNet.forward` ends in clamp(0, 1)) on any float input.
    `model_class` (default SRGAN) is the class built (`srresnet` passes its own)."""
    if isinstance(state, Mapping) and "G" in state and set(state) <= {"G", "D"}:
        g_state = _unwrap(state["G"], "generator")
        d_state = _unwrap(state["D"], "discriminator") if "D" in state else None
    else:
        g_state, d_state = _unwrap(state, "generator"), None
    hparams = dict(hparams)
    ups = {k.split(".")[1] for k in g_state if k.startswith("upsampling.")}
    _infer(hparams, "scale", 2 ** len(ups) if ups else None)
    _infer(hparams, "num_blocks", len({k.split(".")[1] for k in g_state if k.startswith("trunk.")}) or None)
    conv1 = g_state.get("conv1.0.weight")
    _infer(hparams, "channels", int(conv1.shape[0]) if conv1 is not None else None)
    if d_state is not None:
        if hparams.setdefault("stage", "srgan") != "srgan":
            raise CheckpointError("discriminator weights only serve stage 'srgan': drop 'D' or pass stage='srgan'")
        features = d_state.get("features.0.weight")
        if features is not None:
            hparams.setdefault("d_channels", int(features.shape[0]))
    if hparams.get("scale") not in SCALES:
        raise CheckpointError(f"these weights have {len(ups)} upsampling blocks (scale {hparams.get('scale')}); "
                              f"an SRResNet has 1, 2 or 3 (x2, x4, x8)")
    model = (model_class or SRGAN)(**hparams)
    _load_strict(model.G, g_state)
    if d_state is not None:
        _load_strict(model.D, d_state)
    model._generator_loaded = True
    return model
