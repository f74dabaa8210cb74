"""Colorization (Zhang et al. 2016): release layout, decoding, the rebalanced loss, the prior, training, colorize,
validation metrics and the converter. Everything that runs forward uses tiny widths."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import rgb2lab
from torch.utils.data import DataLoader

import zoo
import zoo.methods.colorization as colorization_module
from zoo.color import ab_gamut_bins, annealed_mean, empirical_prior, nearest_bin, rebalance_weights, rgb_to_lab
from zoo.errors import CheckpointError, DataError, ZooError
from zoo.methods.colorization import (
    Colorization,
    ECCVGenerator,
    from_official,
    multinomial_cross_entropy,
    rebalance_gradient,
)

from _helpers import assert_same_state, n_params, tiny_trainer

WIDTH = 1 / 16  # 4/8/16/32 channels: the same code paths, cheap on two cores


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny(**hparams) -> Colorization:
    return Colorization(**{"width": WIDTH, **hparams})


def colour_images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth, saturated colour images (random low-resolution colours upsampled)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def gray_images(n: int, size: int = 32, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g).expand(n, 3, size, size).clone()


# ------------------------------------------------------------------------------------- architecture
def test_release_keys_and_parameter_count():
    with torch.device("meta"):  # 32 M parameters: counted, never run
        net = ECCVGenerator()
    keys = list(net.state_dict())
    assert len(keys) == 82 and n_params(net) == 32_236_011
    expected = ["model1.0.weight", "model1.0.bias", "model1.2.weight", "model1.2.bias"]
    expected += [f"model1.4.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    assert keys[:9] == expected
    convs = {k.rsplit(".", 1)[0] for k in keys if k.endswith(".bias") and "running" not in k}
    bns = {k.rsplit(".", 1)[0] for k in keys if k.endswith("running_mean")}
    assert bns == {"model1.4", "model2.4"} | {f"model{i}.6" for i in range(3, 8)}
    assert convs - bns == {"model1.0", "model1.2", "model2.0", "model2.2"} | {
        f"model{i}.{j}" for i in range(3, 9) for j in (0, 2, 4)} | {"model8.6"}
    assert keys[-1] == "model_out.weight" and tuple(net.model_out.weight.shape) == (2, 313, 1, 1)
    assert net.model_out.bias is None and not net.model_out.weight.requires_grad


def test_bn_after_relu_strides_and_dilation_2_only_in_blocks_5_and_6():
    with torch.device("meta"):
        net = ECCVGenerator()
    for i in range(1, 8):
        block = getattr(net, f"model{i}")
        assert isinstance(block[-1], torch.nn.BatchNorm2d) and isinstance(block[-2], torch.nn.ReLU)
        convs = [m for m in block if isinstance(m, torch.nn.Conv2d)]
        assert all(m.kernel_size == (3, 3) and m.bias is not None for m in convs)
        assert [m.dilation for m in convs] == [(2, 2) if i in (5, 6) else (1, 1)] * len(convs)
        assert [m.padding for m in convs] == [(2, 2) if i in (5, 6) else (1, 1)] * len(convs)
        assert [m.stride for m in convs] == [(1, 1)] * (len(convs) - 1) + [(2, 2) if i <= 3 else (1, 1)]
    up = net.model8[0]
    assert isinstance(up, torch.nn.ConvTranspose2d)
    assert (up.kernel_size, up.stride, up.padding) == ((4, 4), (2, 2), (1, 1))
    kinds = [type(m).__name__ for m in net.model8]
    assert kinds == ["ConvTranspose2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d"]
    assert net.model8[6].kernel_size == (1, 1) and net.model8[6].out_channels == 313
    assert [m.in_channels for m in (net.model1[0], net.model4[0])] == [1, 256]


def test_bins_are_read_from_model_out_and_start_as_the_gamut_bins():
    net = ECCVGenerator(WIDTH)
    assert torch.allclose(net.bins, ab_gamut_bins(), atol=1e-4)
    with torch.no_grad():
        net.model_out.weight.mul_(0.5)
    assert torch.allclose(net.bins, ab_gamut_bins() * 0.5, atol=1e-4)


def test_forward_is_the_release_at_t1_and_the_annealed_mean_at_t038():
    torch.manual_seed(0)
    net = ECCVGenerator(WIDTH).eval()
    L_in = torch.rand(2, 1, 32, 40) * 100
    with torch.no_grad():
        logits = net.logits(L_in)
        assert logits.shape == (2, 313, 8, 10)
        logits = logits * 20  # sharper than at init, so T matters
        probs = torch.softmax(logits, dim=1)
        bins = ab_gamut_bins()
        independent = torch.einsum("bqhw,cq->bchw", probs, bins.T / 110)
        independent = F.interpolate(independent, scale_factor=4, mode="bilinear", align_corners=False) * 110
        assert torch.allclose(net.decode(logits, 1.0), independent, atol=1e-3)
        assert torch.allclose(net(L_in), net.decode(net.logits(L_in), 1.0))
        annealed = F.interpolate(annealed_mean(probs, bins, 0.38), scale_factor=4, mode="bilinear", align_corners=False)
        ours = net.decode(logits, 0.38)
        assert torch.allclose(ours, annealed, atol=1e-2)
        assert not torch.allclose(ours, independent, atol=1.0)  # the temperature changes the output
    with pytest.raises(ZooError, match="multiples of 8"):
        net(torch.zeros(1, 1, 30, 32))


# ------------------------------------------------------------------------------------------ losses
def test_rebalanced_gradient_is_the_weighted_loss_gradient_with_the_unweighted_value():
    torch.manual_seed(0)
    logits = torch.randn(2, 313, 3, 4)
    Z = torch.softmax(torch.randn(2, 313, 3, 4) * 3, dim=1)
    v = torch.rand(2, 1, 3, 4) * 3
    v[1] = 0  # a gray image: no gradient at all
    a = logits.clone().requires_grad_(True)
    value = multinomial_cross_entropy(rebalance_gradient(a, v), Z)
    value.backward()
    b = logits.clone().requires_grad_(True)
    weighted = -(v * (Z * torch.log_softmax(b, dim=1)).sum(1, keepdim=True)).mean()  # eq. 2 with v
    weighted.backward()
    unweighted = -(Z * torch.log_softmax(logits, dim=1)).sum(1).mean()
    assert torch.allclose(value, unweighted) and not torch.allclose(value, weighted)
    assert torch.allclose(a.grad, b.grad, atol=1e-7)
    assert torch.count_nonzero(a.grad[1]) == 0 and torch.count_nonzero(a.grad[0]) > 0
    # the cross-entropy's own gradient: (softmax - Z) / pixels, here times v
    expected = (torch.softmax(logits, 1) - Z) * v / (2 * 3 * 4)
    assert torch.allclose(a.grad, expected, atol=1e-7)


def test_class_weights_pick_the_argmax_bin_and_mask_gray_images():
    model = tiny()
    prior = torch.rand(313) + 0.01
    model.set_prior(prior)
    rgb = torch.cat([colour_images(1, 16), gray_images(1, 16)])
    ab = rgb_to_lab(rgb)[:, 1:, ::4, ::4]
    Z = colorization_module.soft_encode(ab, model.bins, 5, 5.0)
    v = model.class_weights(Z, ab)
    w = rebalance_weights(prior.double() / prior.sum(), 0.5).float()
    assert v.shape == (2, 1, 4, 4)
    assert torch.allclose(v[0, 0], w[nearest_bin(ab[:1], ab_gamut_bins())[0]], rtol=1e-5)
    assert torch.count_nonzero(v[1]) == 0


def test_training_step_targets_sum_to_one_and_gray_batches_give_no_gradient(monkeypatch):
    model = tiny(neighbours=10)
    model.set_prior(torch.ones(313))
    seen = {}

    def spy(logits, Z):
        seen.update(logits=logits, Z=Z)
        return multinomial_cross_entropy(logits, Z)

    monkeypatch.setattr(colorization_module, "multinomial_cross_entropy", spy)
    loss = model.training_step({"image": colour_images(2, 24), "path": ["a", "b"]}, 0)
    Z = seen["Z"]
    assert Z.shape == seen["logits"].shape == (2, 313, 6, 6)
    assert torch.allclose(Z.sum(1), torch.ones(2, 6, 6), atol=1e-5)
    assert ((Z > 0).sum(1) == 10).all()  # the Caffe code's 10 neighbours
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.net.model1[0].weight.grad.abs().sum() > 0 and model.net.model_out.weight.grad is None

    model.zero_grad()
    model.training_step({"image": gray_images(2, 24)}, 0).backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.net.parameters())
    with pytest.raises(DataError, match="crop_size"):
        model.training_step({"image": colour_images(1, 20)}, 0)


def test_a_tiny_model_overfits_two_images():
    torch.manual_seed(0)
    model = tiny(lr=2e-3, weight_decay=0.0)
    model.set_prior(torch.ones(313))
    optimizer = model.configure_optimizers()["optimizer"]
    assert all(p is not model.net.model_out.weight for g in optimizer.param_groups for p in g["params"])
    batch = {"image": colour_images(2, 32, seed=5)}
    bins = model.bins.clone()
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = model.training_step(batch, 0)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    assert torch.equal(model.bins, bins)  # the bins are not trained


def test_recipe_defaults_and_learning_rate_steps():
    model = tiny()
    hp = model.hparams
    assert (hp.neighbours, hp.sigma, hp.rebalance_lambda, hp.temperature, hp.gray_threshold) == (5, 5.0, 0.5, 0.38, 5.0)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    assert optimizer.defaults["betas"] == (0.9, 0.99) and optimizer.defaults["weight_decay"] == 1e-3
    rule = scheduler["scheduler"].lr_lambdas[0]
    lrs = [3e-5 * rule(s) for s in (0, 199_999, 200_000, 374_999, 375_000, 450_000)]
    assert np.allclose(lrs, [3e-5, 3e-5, 1e-5, 1e-5, 3e-6, 3e-6])
    for bad in ({"neighbours": 0}, {"neighbours": 314}, {"temperature": 0}, {"input_size": 100},
                {"lr_steps": [5, 1]}, {"rebalance_lambda": 1.5}):
        with pytest.raises(ZooError):
            tiny(**bad)


# -------------------------------------------------------------------------------------------- prior
class Photos(L.LightningDataModule):
    """Two colour and two gray 32x32 training crops; two whole validation images of different sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.train = torch.cat([colour_images(2, 32, seed=3), gray_images(2, 32)])
        self.val = [colour_images(1, 40, seed=7), colour_images(1, 24, seed=8)[..., :, :32]]
        self.train_calls = 0

    def train_dataloader(self) -> DataLoader:
        self.train_calls += 1
        return DataLoader([{"image": x, "path": f"{i}.png"} for i, x in enumerate(self.train)], batch_size=2,
                          shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader([{"image": x[0], "path": f"v{i}.png"} for i, x in enumerate(self.val)], batch_size=1)


def test_prior_is_computed_once_on_fit_start_saved_and_restored(tmp_path, monkeypatch):
    data = Photos()
    colourful = rgb_to_lab(data.train[:2])[:, 1:, ::4, ::4]
    expected = empirical_prior([colourful], ab_gamut_bins(), sigma=5.0).float()

    model = tiny()
    state = torch.get_rng_state()
    assert torch.allclose(model.estimate_prior(data.train_dataloader()), expected.double(), atol=1e-6)
    assert torch.equal(torch.get_rng_state(), state)  # the shuffled pass did not move the global stream

    calls = []
    original = colorization_module.empirical_prior
    monkeypatch.setattr(colorization_module, "empirical_prior", lambda *a, **k: calls.append(1) or original(*a, **k))
    torch.manual_seed(0)
    model = tiny(lr=1e-3)
    trainer = tiny_trainer(tmp_path, max_steps=2, enable_checkpointing=True, limit_val_batches=2)
    trainer.fit(model, datamodule=data)
    assert len(calls) == 1 and torch.allclose(model.prior, expected, atol=1e-6)
    assert "prior" not in model.state_dict()
    metrics = trainer.callback_metrics
    names = {"ab_error", "colourfulness", "ab_error_gray", "colourfulness_gray", "colourfulness_real"}
    assert {f"val/{n}" for n in names} | {"train/loss_cl"} <= set(metrics)
    assert float(metrics["val/colourfulness_gray"]) < 0.5 < float(metrics["val/colourfulness_real"])
    chroma = np.mean([np.hypot(*rgb2lab(x[0].permute(1, 2, 0).numpy())[..., 1:].transpose(2, 0, 1)).mean()
                      for x in data.val])
    assert math.isclose(float(metrics["val/ab_error_gray"]), chroma, rel_tol=1e-3)

    out = model.predict_step({"image": data.val[0], "path": ["v0.png"]}, 0)
    assert out["A_path"] == ["v0.png"] and out["a2b"].shape == data.val[0].shape

    ckpt = next((tmp_path / "checkpoints").glob("*.ckpt"))
    saved = torch.load(ckpt, weights_only=True)
    assert torch.allclose(saved["colorization_prior"], expected, atol=1e-6)
    resumed = tiny(lr=1e-3)
    tiny_trainer(tmp_path, max_steps=3, limit_val_batches=0).fit(resumed, datamodule=data, ckpt_path=str(ckpt))
    assert len(calls) == 1 and torch.equal(resumed.prior, model.prior)

    with pytest.raises(ZooError, match="set_prior"):
        tiny_trainer(tmp_path, max_steps=1).fit(tiny(), train_dataloaders=data.train_dataloader())
    with pytest.raises(DataError, match="colour"):
        tiny().estimate_prior([{"image": gray_images(2)}])


# ------------------------------------------------------------------------------------------ inference
def test_colorize_keeps_kind_size_and_the_inputs_lightness():
    torch.manual_seed(0)
    model = tiny(input_size=64)
    gray = Image.fromarray((np.add.outer(np.arange(37), np.arange(53)) * 2).astype(np.uint8), mode="L")
    out = model.colorize(gray)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == gray.size

    yy, xx = np.mgrid[0:37, 0:53]
    array = np.stack([xx * 4, yy * 6, 255 - xx * 4], axis=-1).clip(0, 255).astype(np.uint8)
    for image, L_in in ((gray, rgb2lab(np.asarray(gray.convert("RGB")))[..., 0]), (array, rgb2lab(array)[..., 0])):
        result = np.asarray(model.colorize(image))
        assert result.shape == (37, 53, 3) and result.dtype == np.uint8
        unclipped = ((result > 0) & (result < 255)).all(axis=-1)
        assert unclipped.mean() > 0.5
        assert np.abs(rgb2lab(result)[..., 0] - L_in)[unclipped].max() < 1.0
    with torch.autocast("cpu", dtype=torch.bfloat16):  # colour conversions stay float32 under mixed precision
        result = np.asarray(model.colorize(array))
    unclipped = ((result > 0) & (result < 255)).all(axis=-1)
    # 8-bit rounding alone moves L by <= ~0.2 here; a bf16 Lab conversion moves it by ~0.5
    assert np.abs(rgb2lab(result)[..., 0] - rgb2lab(array)[..., 0])[unclipped].max() < 0.35
    tensor = torch.rand(3, 19, 21)
    colored = model.colorize(tensor, temperature=1.0)
    assert colored.shape == (3, 19, 21) and colored.dtype == torch.float32 and 0 <= colored.min() <= colored.max() <= 1
    assert not torch.equal(colored, model.colorize(tensor, temperature=0.1))
    assert model.net.training  # eval mode only inside colorize


# ------------------------------------------------------------------------------------------ converter
def test_converter_loads_the_release_strictly():
    torch.manual_seed(0)
    release = ECCVGenerator()
    with torch.no_grad():
        release.model_out.weight.add_(torch.randn_like(release.model_out.weight) * 0.01)  # "their" pts_in_hull
    state = {k: v for k, v in release.state_dict().items() if not k.endswith("num_batches_tracked")}
    model = from_official({"state_dict": {f"module.{k}": v for k, v in state.items()}})
    assert isinstance(model, Colorization) and model.hparams.width == 1.0
    assert_same_state(model.net, release)
    assert torch.equal(model.bins, release.bins) and not model.net.model_out.weight.requires_grad
    x = torch.rand(1, 1, 16, 16) * 100
    with torch.no_grad():
        assert torch.equal(model.net.eval()(x), release.eval()(x))
    with pytest.raises(CheckpointError, match="model5.2.bias"):
        from_official({k: v for k, v in state.items() if k != "model5.2.bias"})
    with pytest.raises(CheckpointError, match="extra.weight"):
        from_official({**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="width"):
        from_official(state, width=0.5)
    assert zoo.registry.get_converter("colorization") is from_official


def test_save_pretrained_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = tiny(input_size=32)
    with torch.no_grad():
        model.net.model4[6].running_mean.uniform_(-1, 1)
    loaded = zoo.load(model.save_pretrained(tmp_path / "colorization-test"))
    assert isinstance(loaded, Colorization) and loaded.io["input_size"] == 32
    assert_same_state(model, loaded)
    x = torch.rand(1, 3, 20, 28)
    assert torch.equal(model.colorize(x), loaded.colorize(x))
