"""CycleGAN — Zhu, Park, Isola, Efros, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017 (arXiv:1703.10593).

Networks: two ResNet generators, G_A: A -> B and G_B: B -> A (`zoo.nn.ResnetGenerator`: InstanceNorm
without affine or running statistics, reflection padding, transposed convolutions, tanh; 9 blocks for
256 px, 6 for 128 px), and two 70x70 PatchGANs with InstanceNorm: D_A judges domain B, D_B judges A.
Objective (paper eq. 3, plus the identity term of §5.2):

    L(G_A, G_B, D_A, D_B) = L_GAN(G_A, D_A) + L_GAN(G_B, D_B)
                            + λ_A ||G_B(G_A(a)) - a||_1 + λ_B ||G_A(G_B(b)) - b||_1
                            + λ_idt (λ_B ||G_A(b) - b||_1 + λ_A ||G_B(a) - a||_1)

with the junyanz reference's recipe: least-squares GAN (§4), λ_A = λ_B = 10, λ_idt = 0.5, discriminators
updated from a history of 50 generated images per domain and with their loss halved, Adam 2e-4 β1 0.5,
batch 1, 100 epochs at constant rate then 100 of linear decay, and the reference's update order:
generators first (discriminators frozen), then discriminators.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import CheckpointError, ZooError
from zoo.hub import load_state_dict_strict
from zoo.losses import GANLoss
from zoo.metrics.swd import PatchSWD, log_domain_distances
from zoo.module import ZooModule
from zoo.nn import RESNET_BLOCKS, ImagePool, PatchDiscriminator, ResnetGenerator, init_normal
from zoo.registry import DIRECTIONS, register, register_converter
from zoo.tasks import TranslationMixin, normalize_direction
from zoo.training import LinearDecaySchedule
from zoo.visual import GridCollector

__all__ = ["CycleGAN", "from_official", "strip_instance_norm_stats"]

#: translate() direction -> the generator that performs it.
GENERATOR_OF = {"a2b": "G_A", "b2a": "G_B"}


@register(key="cyclegan")
class CycleGAN(LinearDecaySchedule, TranslationMixin, ZooModule):
    """CycleGAN as a LightningModule. Batches are dicts with unpaired "A" and "B" images in [-1, 1].
    `translate(x, direction="a2b")` runs G_A, `"b2a"` runs G_B, at any size (padded to a multiple of 4
    and cropped back)."""

    task = "translation"
    paper = "arXiv:1703.10593"
    default_io = {"range": [-1.0, 1.0], "channels": 3, "size_multiple": 4, "directions": ["a2b", "b2a"],
                  "eval_mode": True}
    monitor = ("val/swd", "min")
    min_input_size = 8  # the 1/4-resolution residual blocks reflect-pad by 1: they need 2 pixels

    def __init__(
        self,
        ngf: int = 64,
        ndf: int = 64,
        netG: str = "resnet_9blocks",
        n_layers_D: int = 3,
        norm: str = "instance",
        use_dropout: bool = False,
        init_gain: float = 0.02,
        gan_mode: str = "lsgan",
        lambda_A: float = 10.0,
        lambda_B: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        lr: float = 2e-4,
        beta1: float = 0.5,
        beta2: float = 0.999,
        n_epochs: int = 100,
        n_epochs_decay: int = 100,
        epoch_count: int = 1,
        val_grid_size: int = 4,
        val_swd_patches: int = 128,
    ) -> None:
        """
        Args:
            ngf: generator width (filters of its first conv).
            ndf: discriminator width.
            netG: `resnet_9blocks` (paper, >= 256 px) or `resnet_6blocks` (paper, 128 px).
            n_layers_D: PatchGAN depth; 3 gives 70x70 patches.
            norm: `instance` (paper), `batch` or `none`.
            use_dropout: Dropout(0.5) inside the residual blocks (off in the paper and the releases).
            init_gain: std of the N(0, init_gain) weight init.
            gan_mode: `lsgan` (paper), `vanilla` or `hinge`.
            lambda_A: weight of the forward cycle loss ||G_B(G_A(a)) - a||_1.
            lambda_B: weight of the backward cycle loss ||G_A(G_B(b)) - b||_1.
            lambda_identity: identity loss weight relative to λ (0.5 -> weight 5); 0 disables it.
            pool_size: generated images kept per domain for discriminator updates; 0 disables the pool.
            lr: Adam learning rate for generators and discriminators.
            beta1: Adam β1.
            beta2: Adam β2.
            n_epochs: epochs at the initial learning rate.
            n_epochs_decay: epochs of linear decay to zero after that.
            epoch_count: the reference's starting epoch (shifts the schedule when fine-tuning).
            val_grid_size: validation samples per logged grid (A | G_A(A) | G_B(G_A(A)), and the same from B).
            val_swd_patches: 7x7 patches per validation image for the domain distance `val/swd_*`.
        """
        super().__init__()
        if netG not in RESNET_BLOCKS:
            raise ZooError(f"unknown netG {netG!r}: choose one of {', '.join(RESNET_BLOCKS)}")
        if min(lambda_A, lambda_B, lambda_identity) < 0:
            raise ZooError("lambda_A, lambda_B and lambda_identity must be >= 0")
        if pool_size < 0:
            raise ZooError(f"pool_size must be >= 0 (0 disables the image pool), got {pool_size}")
        self.save_hyperparameters()
        self.automatic_optimization = False  # two optimizers: generators, then discriminators

        def generator() -> nn.Module:
            return init_normal(ResnetGenerator(3, 3, ngf, norm, use_dropout, RESNET_BLOCKS[netG]), init_gain)

        def discriminator() -> nn.Module:
            return init_normal(PatchDiscriminator(3, ndf, n_layers_D, norm), init_gain)

        self.G_A, self.G_B = generator(), generator()
        self.D_A, self.D_B = discriminator(), discriminator()  # D_A: is it from B?  D_B: is it from A?
        self.criterion_GAN = GANLoss(gan_mode)
        self.fake_A_pool, self.fake_B_pool = ImagePool(pool_size), ImagePool(pool_size)
        self.swd = nn.ModuleDict({d: PatchSWD(val_swd_patches, seed=i) for i, d in enumerate(("a2b", "b2a", "input"))})
        self._grids = {d: GridCollector(val_grid_size) for d in DIRECTIONS}

    @property
    def inference_modules(self) -> tuple[str, ...]:  # type: ignore[override]
        """The generators of the directions these weights support (a released single-direction model
        holds G_A only)."""
        return tuple(GENERATOR_OF[d] for d in self.io["directions"])

    # ------------------------------------------------------------------------------ inference
    def resolve_direction(self, direction: str | None) -> str:
        """As `TranslationMixin.resolve_direction`, but a direction whose generator these weights lack (a
        released single-direction file holds G_A only; G_B is untrained) is refused by name."""
        if isinstance(direction, str):
            wanted = normalize_direction(direction)
            if wanted in GENERATOR_OF and wanted not in self.io["directions"]:
                raise ZooError(
                    f"direction {direction!r} is absent from these weights: they translate "
                    f"{' and '.join(self.io['directions'])} only, and {GENERATOR_OF[wanted]} (which would translate "
                    f"{wanted}) is untrained, as each released CycleGAN file holds one direction. Translate with "
                    f"direction={self.io['directions'][0]!r}, or load the release for the other direction "
                    f"(e.g. zebra2horse next to horse2zebra)."
                )
        return super().resolve_direction(direction)

    def generator(self, direction: str) -> nn.Module:
        """The generator of `direction`; a direction these weights lack is a `ZooError` (see
        `resolve_direction`), so `forward` never runs an untrained generator either."""
        return getattr(self, GENERATOR_OF[self.resolve_direction(direction)])

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return self.generator(direction)(x)

    # ------------------------------------------------------------------------------- training
    def size_probes(self, batch: dict[str, Any]) -> list[tuple[torch.Tensor, list[Any], int]]:
        return [(x, [self.G_A, self.D_A], int(self.io["size_multiple"])) for x in (batch["A"], batch["B"])]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        hp = self.hparams
        opt_G, opt_D = self.optimizers()
        real_A, real_B = batch["A"], batch["B"]

        fake_B = self.G_A(real_A)  # G_A(a)
        rec_A = self.G_B(fake_B)  # G_B(G_A(a))
        fake_A = self.G_B(real_B)  # G_B(b)
        rec_B = self.G_A(fake_A)  # G_A(G_B(b))

        # (1) Generators, discriminators frozen: adversarial + cycle (eq. 2) + identity (§5.2) terms.
        self.toggle_optimizer(opt_G)
        if hp.lambda_identity > 0:
            loss_idt_A = F.l1_loss(self.G_A(real_B), real_B) * hp.lambda_B * hp.lambda_identity
            loss_idt_B = F.l1_loss(self.G_B(real_A), real_A) * hp.lambda_A * hp.lambda_identity
        else:
            loss_idt_A = loss_idt_B = torch.zeros((), device=real_A.device)
        loss_G_A = self.criterion_GAN(self.D_A(fake_B), True, for_discriminator=False)
        loss_G_B = self.criterion_GAN(self.D_B(fake_A), True, for_discriminator=False)
        loss_cycle_A = F.l1_loss(rec_A, real_A) * hp.lambda_A
        loss_cycle_B = F.l1_loss(rec_B, real_B) * hp.lambda_B
        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        opt_G.zero_grad(set_to_none=True)
        self.manual_backward(loss_G)
        opt_G.step()
        self.untoggle_optimizer(opt_G)

        # (2) Discriminators on real images and on generated ones drawn from the history pools;
        # each D's loss is halved to slow it relative to G (§4).
        self.toggle_optimizer(opt_D)
        loss_D_A = 0.5 * (
            self.criterion_GAN(self.D_A(real_B), True)
            + self.criterion_GAN(self.D_A(self.fake_B_pool.query(fake_B)), False)
        )
        loss_D_B = 0.5 * (
            self.criterion_GAN(self.D_B(real_A), True)
            + self.criterion_GAN(self.D_B(self.fake_A_pool.query(fake_A)), False)
        )
        opt_D.zero_grad(set_to_none=True)
        self.manual_backward(loss_D_A + loss_D_B)
        opt_D.step()
        self.untoggle_optimizer(opt_D)

        logs = {
            "loss_D_A": loss_D_A, "loss_G_A": loss_G_A, "loss_cycle_A": loss_cycle_A, "loss_idt_A": loss_idt_A,
            "loss_D_B": loss_D_B, "loss_G_B": loss_G_B, "loss_cycle_B": loss_cycle_B, "loss_idt_B": loss_idt_B,
        }
        self.log_dict({f"train/{k}": v.detach() for k, v in logs.items()}, batch_size=len(real_A))

    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        return self.linear_decay_optimizers(
            [*self.G_A.parameters(), *self.G_B.parameters()], [*self.D_A.parameters(), *self.D_B.parameters()]
        )

    # --------------------------------------------------------------- exact resumption: the pools
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["zoo"]["image_pools"] = {"A": self.fake_A_pool.state_dict(), "B": self.fake_B_pool.state_dict()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        pools = (checkpoint.get("zoo") or {}).get("image_pools") or {}
        for domain, pool in (("A", self.fake_A_pool), ("B", self.fake_B_pool)):
            if domain in pools:
                pool.load_state_dict(pools[domain], device=self.device)

    # ----------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        """Per direction: the cycle error `<stage>/cycle_A` (mean |G_B(G_A(a)) - a| in [0, 1] units) and
        the patch sliced Wasserstein distance `<stage>/swd_a2b` between G_A(A) and real B (how far the
        translations are from the target domain; `swd_input` = SWD(A, B) is the untranslated baseline)."""
        real_A, real_B = batch["A"], batch["B"]
        n = len(real_A)
        with torch.no_grad():
            fake_B = self.G_A(real_A)
            fake_A = self.G_B(real_B)
            rec_A, rec_B = self.G_B(fake_B), self.G_A(fake_A)
        unit = {k: ((v + 1) / 2).clamp(0, 1) for k, v in
                {"A": real_A, "B": real_B, "fake_A": fake_A, "fake_B": fake_B, "rec_A": rec_A, "rec_B": rec_B}.items()}
        self.log(f"{stage}/cycle_A", F.l1_loss(unit["rec_A"], unit["A"]), batch_size=n)
        self.log(f"{stage}/cycle_B", F.l1_loss(unit["rec_B"], unit["B"]), batch_size=n)
        self.swd["a2b"].update(unit["fake_B"], unit["B"])
        self.swd["b2a"].update(unit["fake_A"], unit["A"])
        self.swd["input"].update(unit["A"], unit["B"])
        if stage == "val":
            self._grids["a2b"].add(unit["A"], unit["fake_B"], unit["rec_A"])
            self._grids["b2a"].add(unit["B"], unit["fake_A"], unit["rec_B"])

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        log_domain_distances(self, "val", self.swd)
        for direction, grid in self._grids.items():
            grid.log(self, f"val/grid_{direction}")

    def on_test_epoch_end(self) -> None:
        log_domain_distances(self, "test", self.swd)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        out: dict[str, Any] = {"A_path": batch.get("A_path"), "B_path": batch.get("B_path")}
        for direction, source in (("a2b", batch["A"]), ("b2a", batch["B"])):
            if direction in self.io["directions"]:
                with torch.no_grad():
                    out[direction] = ((self.generator(direction)(source) + 1) / 2).clamp(0, 1)
        return out


def strip_instance_norm_stats(state: dict[str, torch.Tensor], network: nn.Module) -> dict[str, torch.Tensor]:
    """Drop what PyTorch < 0.4 stored for `network`'s InstanceNorm layers (`running_mean`, `running_var`,
    `num_batches_tracked`), which today's InstanceNorm2d(track_running_stats=False) does not have: the
    reference's `BaseModel.__patch_instance_norm_state_dict`, which pops such a key only where it names an
    InstanceNorm layer without that buffer. Any other key is kept, so a leftover key still fails the strict
    load by name. A DataParallel `module.` prefix goes too."""
    stale = set()
    for name, module in network.named_modules():
        if isinstance(module, nn.modules.instancenorm._InstanceNorm):
            own = dict(module.named_buffers(recurse=False))
            stale |= {f"{name}.{b}" for b in ("running_mean", "running_var", "num_batches_tracked") if b not in own}
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in state.items() if k not in stale}


@register_converter("cyclegan")
def from_official(state_dicts: dict[str, Any], **hparams: Any) -> CycleGAN:
    """A junyanz CycleGAN release as a CycleGAN model.

    The released files (`<name>.pth`, saved as `latest_net_G.pth`) each hold one generator
    (resnet_9blocks, instance norm, no dropout), which translates the name's first domain into its
    second: it becomes G_A and the model translates `a2b` only. A mapping `{"a2b": G_A state, "b2a":
    G_B state}` (e.g. `latest_net_G_A.pth` and `latest_net_G_B.pth` of a training run) gives both
    directions. The discriminators were not released and keep their initialisation."""
    if not isinstance(state_dicts, Mapping):
        raise CheckpointError(f"a junyanz generator file holds a state dict, got {type(state_dicts).__name__}")
    per_direction = state_dicts if state_dicts and set(state_dicts) <= set(DIRECTIONS) else {"a2b": state_dicts}
    model = CycleGAN(**hparams)
    model.io["directions"] = [d for d in DIRECTIONS if d in per_direction]
    for direction, state in per_direction.items():
        generator = model.generator(direction)
        load_state_dict_strict(generator, strip_instance_norm_stats(dict(state), generator))
    return model
