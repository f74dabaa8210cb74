"""SRResNet / SRGAN: Lornatang-layout networks (keys, counts, shapes), the VGG54 content loss against
torchvision, stage-2 initialisation from a stage-1 run, which network each update moves, the learning-rate
drop (also after resuming), overfitting, upscale on any input kind, validation metrics against independent
computations, and the converter."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import zoo
from zoo.errors import CheckpointError, WeightsNotFoundError, ZooError
from zoo.methods import srgan as srgan_module
from zoo.methods.srgan import SRGAN, Discriminator, SRResNet, from_official
from zoo.metrics.lpips import LPIPSNetwork
from zoo.metrics.pixel import psnr, ssim
from zoo.metrics.resize import imresize_matlab

from _helpers import assert_same_state, n_params, tiny_trainer


def tiny(**hparams) -> SRGAN:
    """Width 8, one residual block, D width 4, random VGG: the reference's code paths, far cheaper."""
    return SRGAN(**{"channels": 8, "num_blocks": 1, "d_channels": 4, "vgg_weights": None, **hparams})


def smooth_images(n: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    """Random images with structure at several scales, in [0, 1] (pure noise cannot be super-resolved)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size[0] // 8, size[1] // 8, generator=g)
    fine = torch.rand(n, 3, size[0] // 2, size[1] // 2, generator=g)
    up = lambda t: F.interpolate(t, size=size, mode="bicubic", align_corners=False)  # noqa: E731
    return (0.7 * up(coarse) + 0.3 * up(fine)).clamp(0, 1)


class Pairs(Dataset):
    """{"lr", "hr", "lr_path", "hr_path"} items; LR = MATLAB bicubic / scale of HR."""

    def __init__(self, hrs: list[torch.Tensor], scale: int = 4) -> None:
        self.hrs = hrs
        self.lrs = [imresize_matlab(h[None], 1 / scale)[0].clamp(0, 1) for h in hrs]

    def __len__(self) -> int:
        return len(self.hrs)

    def __getitem__(self, i: int) -> dict:
        return {"lr": self.lrs[i], "hr": self.hrs[i], "lr_path": f"lr/{i}.png", "hr_path": f"hr/{i}.png"}


def loader(hr: torch.Tensor | list[torch.Tensor], batch_size: int = 2, scale: int = 4) -> DataLoader:
    return DataLoader(Pairs(list(hr), scale), batch_size=batch_size, shuffle=False)


class Recorder(L.Callback):
    """Before every optimizer step: which network it updates, its lr, and G's and D's parameters / grads."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.start: dict | None = None

    @staticmethod
    def _params(module) -> dict:
        return {k: v.detach().clone() for k, v in module.named_parameters()}

    def on_fit_start(self, trainer, pl_module) -> None:
        self.start = {k: v.clone() for k, v in pl_module.G.state_dict().items()}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        which = "G" if optimizer is trainer.optimizers[0] else "D"
        entry = {"which": which, "lr": optimizer.param_groups[0]["lr"], "G": self._params(pl_module.G)}
        if hasattr(pl_module, "D"):
            entry["D"] = self._params(pl_module.D)
            entry["D_grad"] = {k: p.grad.clone() for k, p in pl_module.D.named_parameters()}
        self.steps.append(entry)

    def on_train_end(self, trainer, pl_module) -> None:
        self.steps.append({"which": "end", "G": self._params(pl_module.G), "D": self._params(pl_module.D)
                           if hasattr(pl_module, "D") else None})


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ networks
def test_x4_generator_has_the_lornatang_keys_and_parameter_count():
    G = SRGAN().G
    keys = list(G.state_dict())
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = ["conv1.0.weight", "conv1.0.bias", "conv1.1.weight"]
    for i in range(16):
        expected += [f"trunk.{i}.rcb.0.weight", *(f"trunk.{i}.rcb.1.{b}" for b in bn), f"trunk.{i}.rcb.2.weight",
                     f"trunk.{i}.rcb.3.weight", *(f"trunk.{i}.rcb.4.{b}" for b in bn)]
    expected += ["conv2.0.weight", *(f"conv2.1.{b}" for b in bn)]
    for i in range(2):
        expected += [f"upsampling.{i}.upsample_block.0.weight", f"upsampling.{i}.upsample_block.0.bias",
                     f"upsampling.{i}.upsample_block.2.weight"]
    expected += ["conv3.weight", "conv3.bias"]
    assert keys == expected and len(keys) == 225
    assert n_params(G) == 1_547_350
    assert SRGAN().io["scale"] == 4 and SRGAN(scale=2).io["scale"] == 2


@pytest.mark.parametrize("scale,blocks", [(2, 1), (4, 2), (8, 3)])
def test_upsampling_blocks_and_output_size(scale, blocks):
    G = SRResNet(scale=scale, channels=4, num_blocks=1)
    assert len(G.upsampling) == blocks
    assert G(torch.rand(2, 3, 5, 7)).shape == (2, 3, 5 * scale, 7 * scale)


def test_bad_hyperparameters_are_zoo_errors():
    with pytest.raises(ZooError, match="2, 4 or 8"):
        SRGAN(scale=3)
    with pytest.raises(ZooError, match="gan_mode 'wgan'"):
        SRGAN(gan_mode="wgan")
    with pytest.raises(ZooError, match="stage must be 'srresnet'"):
        SRGAN(stage="esrgan")


def test_discriminator_count_and_96x96_only():
    D = Discriminator()
    c = 64
    convs = [(3, c, True), (c, c, False), (c, 2 * c, False), (2 * c, 2 * c, False), (2 * c, 4 * c, False),
             (4 * c, 4 * c, False), (4 * c, 8 * c, False), (8 * c, 8 * c, False)]
    by_hand = sum(i * o * 9 + (o if bias else 2 * o) for i, o, bias in convs)  # BN: weight + bias
    by_hand += (8 * c * 6 * 6) * 1024 + 1024 + 1024 + 1
    assert by_hand == 23_563_649 and n_params(D) == by_hand
    assert len(D.state_dict()) == 48
    assert {k.rsplit(".", 1)[0] for k in D.state_dict()} >= {"features.0", "features.2", "features.3", "classifier.0",
                                                           "classifier.2"}
    small = Discriminator(4)
    assert small(torch.rand(2, 3, 96, 96)).shape == (2, 1)
    with pytest.raises(ZooError, match=r"judges 96x96 HR crops, got 128x96: set --data.crop_size 96"):
        small(torch.rand(1, 3, 128, 96))


# ---------------------------------------------------------------------------------------- the losses
def test_content_loss_is_torchvision_relu5_4_scaled_by_1_over_12_75():
    model = tiny(stage="srgan", generator_weights="unused")
    net = model.loss_net()
    assert net.arch == "vgg19" and net.layers == ("relu5_4",) and len(net.features) == 36
    tv = torchvision.models.vgg19(weights=None).features[:36].eval()
    assert isinstance(tv[35], torch.nn.ReLU)  # φ5,4 is after the ReLU of conv5_4
    tv.load_state_dict(net.features.state_dict())
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = ((tv((x - mean) / std) - tv((y - mean) / std)) / 12.75).square().mean()
        assert torch.allclose(model.content_loss(x, y), expected, rtol=1e-4)
        lornatang = tiny(stage="srgan", generator_weights="unused", variant="lornatang")
        assert torch.allclose(lornatang.content_loss(x, y), expected * 12.75**2, rtol=1e-4)
    assert "RANDOM VGG WEIGHTS" in model.card["warnings"][0]


def test_stage_srresnet_builds_no_discriminator_and_no_vgg(tmp_path):
    model = tiny()
    trainer = tiny_trainer(tmp_path, max_steps=1)
    trainer.fit(model, loader(smooth_images(2, (32, 32), 0)))
    assert not hasattr(model, "D") and "_loss_net" not in model.__dict__
    assert model.drop_after is None and tiny(stage="srgan").drop_after == 100_000


def test_every_generator_term_sends_gradients_to_G():
    model = tiny(stage="srgan", generator_weights="unused", variant="lornatang")
    hr = smooth_images(2, (96, 96), 1)
    sr = model.G(imresize_matlab(hr, 0.25))
    losses = model.generator_losses(hr, sr)
    assert set(losses) == {"loss_G_content", "loss_G_adv", "loss_G_pixel"}
    for name, value in losses.items():
        grads = torch.autograd.grad(value, list(model.G.parameters()), retain_graph=True, allow_unused=True)
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name
    assert "loss_G_pixel" not in tiny(stage="srgan", generator_weights="unused").generator_losses(hr, sr)


# ---------------------------------------------------------------------------------------- training
def test_stage_srgan_needs_generator_weights(tmp_path):
    with pytest.raises(ZooError, match=r"--model.generator_weights runs/srgan/checkpoints/last.ckpt.*srresnet-x4"):
        tiny_trainer(tmp_path, max_steps=2).fit(tiny(stage="srgan"), loader(smooth_images(2, (96, 96), 0)))


def test_stage_srgan_starts_from_stage1_and_updates_D_then_G(tmp_path):
    stage1 = tiny()
    trainer = tiny_trainer(tmp_path, max_steps=2)
    trainer.fit(stage1, loader(smooth_images(2, (32, 32), 0)))
    ckpt = tmp_path / "stage1.ckpt"
    trainer.save_checkpoint(ckpt)

    model = tiny(stage="srgan", generator_weights=str(ckpt), lr_drop_after=1)
    rec = Recorder()
    tiny_trainer(tmp_path, max_steps=4, callbacks=[rec]).fit(model, loader(smooth_images(2, (96, 96), 1)))
    assert same(rec.start, stage1.G.state_dict())  # G starts as the stage-1 SRResNet

    steps = rec.steps
    assert [s["which"] for s in steps] == ["D", "G", "D", "G", "end"]  # k = 1, D first
    for before, after in zip(steps, steps[1:]):
        moved, still = ("D", "G") if before["which"] == "D" else ("G", "D")
        assert same(before[still], after[still]), f"the {before['which']} update changed {still}"
        assert not same(before[moved], after[moved]), f"the {before['which']} update did not change {moved}"
    # D frozen during G's step: G's backward added nothing to D's gradients
    assert same(steps[0]["D_grad"], steps[1]["D_grad"])
    assert [s["lr"] for s in steps[:4]] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5])  # drop after 1 G update

    # the stage-2 model is self-contained: zoo.load does not need the stage-1 file
    model.save_pretrained(tmp_path / "srgan")
    ckpt.unlink()
    loaded = zoo.load(tmp_path / "srgan")
    assert_same_state(loaded.G, model.G)
    loaded.setup("fit")  # no reload of generator_weights (the file is gone), G stays
    assert_same_state(loaded.G, model.G)


def test_generator_weights_from_a_saved_folder_and_wrong_widths(tmp_path):
    stage1 = tiny()
    with torch.no_grad():
        stage1.G.conv3.bias.fill_(0.25)
    stage1.save_pretrained(tmp_path / "srresnet")
    model = tiny(stage="srgan", generator_weights=str(tmp_path / "srresnet"))
    model.setup("fit")
    assert_same_state(model.G, stage1.G)
    with pytest.raises(CheckpointError, match="conv1.0.weight"):
        SRGAN(channels=16, num_blocks=1, stage="srgan", vgg_weights=None).load_generator_weights(tmp_path / "srresnet")


def test_tiny_srresnet_overfits_two_images(tmp_path):
    torch.manual_seed(0)
    model = SRGAN(channels=8, num_blocks=1, lr=2e-3)
    data = loader(smooth_images(2, (32, 32), 3))
    batch = next(iter(data))
    with torch.no_grad():
        before = F.mse_loss(model.G(batch["lr"]), batch["hr"]).item()
    tiny_trainer(tmp_path, max_steps=50).fit(model, data)
    model.G.train()  # batch statistics, as in training
    with torch.no_grad():
        after = F.mse_loss(model.G(batch["lr"]), batch["hr"]).item()
    assert after < before / 20, (before, after)


def test_lr_drop_counts_G_updates_and_survives_resume(tmp_path):
    data = loader(smooth_images(2, (32, 32), 0))
    rec = Recorder()
    tiny_trainer(tmp_path, max_steps=5, callbacks=[rec]).fit(tiny(lr_drop_after=3), data)
    assert [s["lr"] for s in rec.steps[:-1]] == pytest.approx([1e-4] * 3 + [1e-5] * 2)

    trainer = tiny_trainer(tmp_path, max_steps=2)
    trainer.fit(tiny(lr_drop_after=3), data)
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    rec = Recorder()
    tiny_trainer(tmp_path, max_steps=5, callbacks=[rec]).fit(tiny(lr_drop_after=3), data,
                                                             ckpt_path=tmp_path / "two.ckpt")
    assert [s["lr"] for s in rec.steps[:-1]] == pytest.approx([1e-4, 1e-5, 1e-5])


def test_mismatched_lr_and_hr_sizes_are_a_data_error(tmp_path):
    batch = {"lr": torch.rand(1, 3, 8, 8), "hr": torch.rand(1, 3, 16, 16)}
    with pytest.raises(ZooError, match=r"upscales by 4 \(HR must be 32x32\)"):
        tiny()._evaluate(batch, "val")


# --------------------------------------------------------------------------------- inference, metrics
def test_upscale_returns_4x_in_the_same_kind():
    model = tiny()
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (11, 13, 3), dtype=np.uint8))
    out = model.upscale(pil)
    assert isinstance(out, Image.Image) and out.size == (52, 44)
    t = torch.rand(1, 3, 7, 9)
    y = model.upscale(t)
    assert isinstance(y, torch.Tensor) and y.shape == (1, 3, 28, 36) and 0 <= y.min() and y.max() <= 1
    model.G.eval()
    with torch.no_grad():
        assert torch.allclose(y, model.G(t).clamp(0, 1), atol=1e-6)
    arr = model.upscale(np.zeros((5, 3, 3), dtype=np.uint8))
    assert arr.shape == (20, 12, 3) and arr.dtype == np.uint8


def test_validation_logs_y_psnr_ssim_and_bicubic_of_any_size(tmp_path, caplog, monkeypatch):
    def missing(*args, **kwargs):
        raise WeightsNotFoundError("no alexnet-owt-7be5be79.pth")

    monkeypatch.setattr(srgan_module, "LPIPSNetwork", missing)
    model = tiny()
    hrs = [smooth_images(1, (40, 36), 5)[0], smooth_images(1, (48, 52), 6)[0]]  # whole images, two sizes
    data = loader(hrs, batch_size=1)
    with caplog.at_level(logging.WARNING):
        metrics = tiny_trainer(tmp_path).validate(model, data, verbose=False)[0]
        tiny_trainer(tmp_path).validate(model, data, verbose=False)
    assert caplog.text.count("val/LPIPS will not be logged") == 1 and "val/LPIPS" not in metrics

    model.G.eval()
    sr, bic, hr = [], [], []
    with torch.no_grad():
        for item in Pairs(hrs):
            lr = item["lr"][None]
            sr.append(model.G(lr).clamp(0, 1))
            bic.append(imresize_matlab(lr, 4).clamp(0, 1))
            hr.append(item["hr"][None])
    for name, images in (("", sr), ("_bicubic", bic)):
        p = np.mean([psnr(a, b, protocol="sr-y", crop_border=4).item() for a, b in zip(images, hr)])
        s = np.mean([ssim(a, b, protocol="sr-y", crop_border=4).item() for a, b in zip(images, hr)])
        assert metrics[f"val/PSNR_Y{name}"] == pytest.approx(p, abs=1e-4)
        assert metrics[f"val/SSIM_Y{name}"] == pytest.approx(s, abs=1e-5)
    assert metrics["val/PSNR_Y_bicubic"] > 20  # smooth images: bicubic is a real baseline


def test_validation_logs_lpips_when_the_backbone_is_there(tmp_path, monkeypatch):
    monkeypatch.setattr(srgan_module, "LPIPSNetwork", lambda net, weights: LPIPSNetwork(net, None))
    model = tiny()
    hrs = [smooth_images(1, (64, 64), 7)[0]]
    metrics = tiny_trainer(tmp_path).validate(model, loader(hrs, batch_size=1), verbose=False)[0]
    model.G.eval()
    item = Pairs(hrs)[0]
    with torch.no_grad():
        sr = model.G(item["lr"][None]).clamp(0, 1)
        to_unit = lambda x: torch.round(x * 255) / 255 * 2 - 1  # noqa: E731 - uint8 levels, [-1, 1]
        expected = LPIPSNetwork("alex", None)(to_unit(sr), to_unit(item["hr"][None])).item()
    assert metrics["val/LPIPS"] == pytest.approx(expected, rel=1e-4)


# ------------------------------------------------------------------------------------------ converter
def lornatang_state(scale: int = 2, channels: int = 8, blocks: int = 2, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    G = SRResNet(scale, channels, blocks)
    with torch.no_grad():  # non-trivial BN statistics, so that a round trip that dropped them would show
        for m in G.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return G.eval(), {k: v.clone() for k, v in G.state_dict().items()}


def test_converter_loads_prefixed_lornatang_checkpoints_and_infers_the_architecture():
    G, state = lornatang_state()
    ckpt = {"state_dict": {f"_orig_mod.{k}": v for k, v in state.items()}, "epoch": 18, "psnr": 30.1}
    model = from_official(ckpt)
    assert (model.hparams.scale, model.hparams.channels, model.hparams.num_blocks) == (2, 8, 2)
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(model.eval().G(x), G(x))
    round_trip = from_official({f"module.{k}": v for k, v in model.G.state_dict().items()})
    with torch.no_grad():
        assert torch.equal(round_trip.eval().G(x), G(x))
    assert model.upscale(x).shape == (1, 3, 18, 22)


def test_converter_names_missing_and_unexpected_keys_and_scale_mismatch():
    _, state = lornatang_state()
    broken = {k: v for k, v in state.items() if k != "trunk.1.rcb.4.running_var"}
    with pytest.raises(CheckpointError, match=r"trunk\.1\.rcb\.4\.running_var"):
        from_official(broken)
    with pytest.raises(CheckpointError, match=r"conv3\.extra"):
        from_official({**state, "conv3.extra": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="scale=2, but scale=4"):
        from_official(state, scale=4)


def test_converter_takes_a_discriminator_for_stage_srgan():
    _, g_state = lornatang_state(scale=4)
    D = Discriminator(4)
    model = from_official({"G": {"state_dict": g_state}, "D": {"state_dict": D.state_dict()}}, vgg_weights=None)
    assert model.hparams.stage == "srgan" and model.hparams.d_channels == 4
    assert_same_state(model.D, D)
    model.setup("fit")  # weights are in: no generator_weights needed
    with pytest.raises(CheckpointError, match="stage 'srgan'"):
        from_official({"G": g_state, "D": D.state_dict()}, stage="srresnet")
