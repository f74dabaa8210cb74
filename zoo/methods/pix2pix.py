"""pix2pix — Isola, Zhu, Zhou, Efros, "Image-to-Image Translation with Conditional Adversarial Networks",
CVPR 2017 (arXiv:1611.07004).

Networks: U-Net generator (`zoo.nn.UnetGenerator`, unet_256: BatchNorm, dropout) and the conditional
70x70 PatchGAN (`zoo.nn.PatchDiscriminator` on cat(x, y), 6 channels). Objective (paper eq. 4):

    G* = arg min_G max_D  L_cGAN(G, D) + λ L_L1(G),   λ = 100

with the recipe of the junyanz reference: vanilla GAN loss on logits, D's loss halved (§3.3), Adam
2e-4 β1 0.5, batch 1, n_epochs at constant rate then n_epochs_decay of linear decay, stepped per epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from zoo.errors import CheckpointError, ZooError
from zoo.losses import GANLoss
from zoo.module import ZooModule
from zoo.nn import PatchDiscriminator, UnetGenerator, init_normal
from zoo.hub import load_state_dict_strict
from zoo.registry import DIRECTIONS, register, register_converter
from zoo.tasks import TranslationMixin, inference_mode_of
from zoo.training import EvaluationSteps, LinearDecaySchedule
from zoo.visual import GridCollector

__all__ = ["Pix2Pix", "from_official"]

UNET_LEVELS = {"unet_256": 8, "unet_128": 7}


@register(key="pix2pix")
class Pix2Pix(EvaluationSteps, LinearDecaySchedule, TranslationMixin, ZooModule):
    """pix2pix as a LightningModule. Batches are dicts with "A" and "B" in [-1, 1]; a direction
    "a2b" learns A -> B, "b2a" learns B -> A; `directions=["a2b", "b2a"]` trains one generator and
    one discriminator per direction (e.g. the released maps models: sat2map and map2sat)."""

    task = "translation"
    paper = "arXiv:1611.07004"
    default_io = {"range": [-1.0, 1.0], "channels": 3, "size_multiple": 256, "directions": ["a2b"], "eval_mode": True}
    inference_modules = ("G",)

    def __init__(
        self,
        input_nc: int = 3,
        output_nc: int = 3,
        ngf: int = 64,
        ndf: int = 64,
        netG: str = "unet_256",
        n_layers_D: int = 3,
        norm: str = "batch",
        use_dropout: bool = True,
        init_gain: float = 0.02,
        gan_mode: str = "vanilla",
        lambda_L1: float = 100.0,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        n_epochs: int = 100,
        n_epochs_decay: int = 100,
        epoch_count: int = 1,
        directions: list[str] = ["a2b"],  # noqa: B006 - a list so LightningCLI shows and parses it
        val_grid_size: int = 4,
    ) -> None:
        """
        Args:
            input_nc: channels of the source images.
            output_nc: channels of the target images.
            ngf: generator width (filters in its first conv).
            ndf: discriminator width.
            netG: `unet_256` (8 levels, inputs padded to multiples of 256) or `unet_128` (7 levels).
            n_layers_D: PatchGAN depth; 3 gives the paper's 70x70 patches.
            norm: `batch` (paper), `instance` or `none`.
            use_dropout: Dropout(0.5) in the three innermost decoder levels (paper §3.1).
            init_gain: std of the N(0, init_gain) weight init.
            gan_mode: `vanilla` (paper, BCE-with-logits), `lsgan` or `hinge`.
            lambda_L1: weight λ of the L1 term (paper eq. 4).
            lr: Adam learning rate for G and D.
            beta1: Adam β1.
            beta2: Adam β2.
            n_epochs: epochs at the initial learning rate.
            n_epochs_decay: epochs of linear decay to zero after that.
            epoch_count: the reference's starting epoch (shifts the schedule when fine-tuning).
            directions: which generators to train: ["a2b"], ["b2a"] or both.
            val_grid_size: how many validation samples go into the logged A | G(A) | B grid.
        """
        super().__init__()
        if (input_nc, output_nc) != (3, 3):
            # Every zoo image path (DataModule, translate) delivers 3-channel RGB.
            raise ZooError(f"pix2pix here maps RGB to RGB: input_nc and output_nc must be 3, got {input_nc}, {output_nc}")
        if netG not in UNET_LEVELS:
            raise ZooError(f"unknown netG {netG!r}: choose one of {', '.join(UNET_LEVELS)}")
        directions = list(dict.fromkeys(directions))
        if not directions or any(d not in DIRECTIONS for d in directions):
            raise ZooError(f"directions must be a non-empty subset of {list(DIRECTIONS)}, got {directions!r}")
        self.save_hyperparameters()
        self.automatic_optimization = False  # two optimizers, updated D first then G (reference order)

        self.G = nn.ModuleDict(
            {
                d: init_normal(
                    UnetGenerator(input_nc, output_nc, UNET_LEVELS[netG], ngf, norm, use_dropout), init_gain
                )
                for d in directions
            }
        )
        # Conditional D: judges cat(source, target), so it sees input_nc + output_nc channels.
        self.D = nn.ModuleDict(
            {d: init_normal(PatchDiscriminator(input_nc + output_nc, ndf, n_layers_D, norm), init_gain) for d in directions}
        )
        self.criterion_GAN = GANLoss(gan_mode)
        self.io.update(size_multiple=self.G[directions[0]].size_multiple, directions=directions, channels=output_nc)
        self._grid = GridCollector(val_grid_size)

    # ------------------------------------------------------------------------------ inference
    def generator(self, direction: str) -> nn.Module:
        return self.G[direction]

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return self.G[direction](x)

    @staticmethod
    def _pairs(batch: dict[str, Any], directions) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(direction, source, target) for each trained direction."""
        return [(d, batch["A"], batch["B"]) if d == "a2b" else (d, batch["B"], batch["A"]) for d in directions]

    def _name(self, name: str, direction: str) -> str:
        return name if len(self.G) == 1 else f"{name}_{direction}"

    # ------------------------------------------------------------------------------- training
    def size_probes(self, batch: dict[str, Any]) -> list[tuple[torch.Tensor, list[Any], int]]:
        # Each source through G and the conditional D on cat(x, G(x)), as in eq. 1.
        return [(src, [lambda x, d=d: self.D[d](torch.cat([x, self.G[d](x)], 1))], int(self.io["size_multiple"]))
                for d, src, _ in self._pairs(batch, self.G.keys())]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        opt_G, opt_D = self.optimizers()
        pairs = self._pairs(batch, self.G.keys())
        fake = {d: self.G[d](src) for d, src, _ in pairs}
        logs: dict[str, torch.Tensor] = {}

        # (1) D: max log D(x, y) + log(1 - D(x, G(x)))  — eq. 1, halved (§3.3)
        self.toggle_optimizer(opt_D)
        loss_D = 0.0
        for d, src, tgt in pairs:
            loss_D_fake = self.criterion_GAN(self.D[d](torch.cat([src, fake[d].detach()], 1)), False)
            loss_D_real = self.criterion_GAN(self.D[d](torch.cat([src, tgt], 1)), True)
            loss_D = loss_D + 0.5 * (loss_D_fake + loss_D_real)
            logs[self._name("loss_D_fake", d)] = loss_D_fake
            logs[self._name("loss_D_real", d)] = loss_D_real
        opt_D.zero_grad(set_to_none=True)
        self.manual_backward(loss_D)
        opt_D.step()
        self.untoggle_optimizer(opt_D)

        # (2) G: min -log D(x, G(x)) + λ ||y - G(x)||_1  — eq. 4, D frozen
        self.toggle_optimizer(opt_G)
        loss_G = 0.0
        for d, src, tgt in pairs:
            loss_G_GAN = self.criterion_GAN(self.D[d](torch.cat([src, fake[d]], 1)), True, for_discriminator=False)
            loss_G_L1 = F.l1_loss(fake[d], tgt) * self.hparams.lambda_L1
            loss_G = loss_G + loss_G_GAN + loss_G_L1
            logs[self._name("loss_G_GAN", d)] = loss_G_GAN
            logs[self._name("loss_G_L1", d)] = loss_G_L1
        opt_G.zero_grad(set_to_none=True)
        self.manual_backward(loss_G)
        opt_G.step()
        self.untoggle_optimizer(opt_G)

        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, prog_bar=False, batch_size=len(batch["A"]))

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        return self.linear_decay_optimizers(self.G.parameters(), self.D.parameters())

    # ----------------------------------------------------------------------------- evaluation
    def _translate_batch(self, batch: dict[str, Any]) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(direction, source, G(source), target), all in [0, 1], in the contract's test-time mode."""
        out = []
        for d, src, tgt in self._pairs(batch, self.G.keys()):
            with inference_mode_of(self.G[d], self.io.get("eval_mode", True)):
                fake = self.G[d](src)
            out.append((d, (src + 1) / 2, ((fake + 1) / 2).clamp(0, 1), ((tgt + 1) / 2).clamp(0, 1)))
        return out

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        """Logs `<stage>/L1` (mean |G(x) - y| in [0, 1] pixel units), `PSNR` (dB) and `SSIM` (gaussian
        11/1.5) per direction, and collects the first samples for the A | G(A) | B grid."""
        n = len(batch["A"])
        l1s = []
        for d, src, fake, tgt in self._translate_batch(batch):
            l1s.append(F.l1_loss(fake, tgt))
            self.log(f"{stage}/{self._name('L1', d)}", l1s[-1], batch_size=n, prog_bar=stage == "val")
            self.log(f"{stage}/{self._name('PSNR', d)}", peak_signal_noise_ratio(fake, tgt, data_range=1.0), batch_size=n)
            self.log(
                f"{stage}/{self._name('SSIM', d)}",
                structural_similarity_index_measure(fake, tgt, data_range=1.0),
                batch_size=n,
            )
            if stage == "val" and len(l1s) == 1:
                self._grid.add(src, fake, tgt)
        if len(l1s) > 1:  # one number to monitor for checkpoints
            self.log(f"{stage}/L1", torch.stack(l1s).mean(), batch_size=n)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {d: fake for d, _, fake, _ in self._translate_batch(batch)} | {
            "A_path": batch.get("A_path"),
            "B_path": batch.get("B_path"),
        }


@register_converter("pix2pix")
def from_official(state_dicts: dict[str, Any], **hparams: Any) -> Pix2Pix:
    """The junyanz release (`latest_net_G.pth`: unet_256, batch norm, dropout) as a Pix2Pix model.

    `state_dicts` is the generator's state dict, or `{direction: state_dict}` for releases with one
    file per direction (maps: sat2map = a2b, map2sat = b2a). The only key surgery: a DataParallel
    `module.` prefix is dropped, and BatchNorm's `num_batches_tracked` (absent from files written
    before PyTorch 0.4.1, unused in eval) is filled in. Any other missing or leftover key is an error
    naming it. The discriminators were not released: D keeps its fresh initialisation (fine-tuning
    trains it from there)."""
    if not isinstance(state_dicts, Mapping):
        raise CheckpointError(f"a junyanz generator file holds a state dict, got {type(state_dicts).__name__}")
    per_direction = (
        state_dicts if state_dicts and set(state_dicts) <= set(DIRECTIONS) else {"a2b": state_dicts}
    )
    model = Pix2Pix(**{**hparams, "directions": list(per_direction)})
    for direction, state in per_direction.items():
        state = {k.removeprefix("module."): v for k, v in state.items()}
        for key, value in model.G[direction].state_dict().items():
            if key.endswith("num_batches_tracked") and key not in state:
                state[key] = torch.zeros_like(value)
        load_state_dict_strict(model.G[direction], state)
    return model
