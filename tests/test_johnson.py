"""Johnson et al. fast style transfer: the pytorch/examples TransformerNet (keys, count, an independent
forward), the perceptual losses as formulas, training (overfit, where gradients go, one style only,
determinism), stylize at any size, the converter and save/load."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

import lightning as L

import zoo
from zoo.data.style import ContentStyleDataModule
from zoo.errors import CheckpointError, DataError, ZooError
from zoo.methods.johnson import Johnson, TransformerNet, from_official, strip_legacy_keys

from _helpers import assert_same_state, n_params, tiny_trainer


def tiny(**hparams) -> Johnson:
    """Width 8 (the reference is 32) and a random VGG: the reference's code paths at a fraction of the cost."""
    return Johnson(**{"width": 8, "vgg_weights": None, **hparams})


def write_images(folder, n: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")


def tiny_data(tmp_path, n_styles: int = 1, **kwargs) -> ContentStyleDataModule:
    """2 training and 1 validation content image, `n_styles` style images; 32-px centre crops."""
    write_images(tmp_path / "content" / "train", 2, 40, 0)
    write_images(tmp_path / "content" / "val", 1, 40, 1)
    write_images(tmp_path / "styles", n_styles, 32, 2)
    return ContentStyleDataModule(
        root=tmp_path / "content", style=tmp_path / "styles",
        **{"content_size": 32, "crop_size": 32, "crop": "center", "batch_size": 2, "num_workers": 0, **kwargs})


# ------------------------------------------------------------------------------------- architecture
def expected_keys() -> list[str]:
    def conv(name):
        return [f"{name}.conv2d.weight", f"{name}.conv2d.bias"]

    def norm(name):
        return [f"{name}.weight", f"{name}.bias"]

    keys = conv("conv1") + norm("in1") + conv("conv2") + norm("in2") + conv("conv3") + norm("in3")
    for r in range(1, 6):
        keys += conv(f"res{r}.conv1") + norm(f"res{r}.in1") + conv(f"res{r}.conv2") + norm(f"res{r}.in2")
    return keys + conv("deconv1") + norm("in4") + conv("deconv2") + norm("in5") + conv("deconv3")


def test_reference_parameter_count_and_keys():
    net = TransformerNet()
    assert n_params(net) == 1_679_235
    assert list(net.state_dict()) == expected_keys() and len(expected_keys()) == 62
    assert net.conv1.conv2d.weight.shape == (32, 3, 9, 9) and net.deconv3.conv2d.weight.shape == (3, 32, 9, 9)
    model = Johnson(vgg_weights=None)
    model.loss_net()  # built: still not part of the weights, the optimizer's parameters or the module tree
    assert list(model.state_dict()) == [f"transformer.{k}" for k in expected_keys()]
    assert n_params(model) == 1_679_235


def functional_transformer(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """TransformerNet written out with torch.nn.functional, from the state dict alone."""

    def conv(name, h, stride=1, upsample=False):
        w = sd[f"{name}.conv2d.weight"]
        if upsample:
            h = h.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        h = F.pad(h, (w.shape[-1] // 2,) * 4, mode="reflect")
        return F.conv2d(h, w, sd[f"{name}.conv2d.bias"], stride=stride)

    def norm(name, h):
        return F.instance_norm(h, weight=sd[f"{name}.weight"], bias=sd[f"{name}.bias"], eps=1e-5)

    h = F.relu(norm("in1", conv("conv1", x)))
    h = F.relu(norm("in2", conv("conv2", h, 2)))
    h = F.relu(norm("in3", conv("conv3", h, 2)))
    for r in range(1, 6):
        p = f"res{r}"
        h = h + norm(f"{p}.in2", conv(f"{p}.conv2", F.relu(norm(f"{p}.in1", conv(f"{p}.conv1", h)))))
    h = F.relu(norm("in4", conv("deconv1", h, upsample=True)))
    h = F.relu(norm("in5", conv("deconv2", h, upsample=True)))
    return conv("deconv3", h)


def test_transformer_matches_an_independent_functional_forward():
    torch.manual_seed(0)
    net = TransformerNet(width=4)
    with torch.no_grad():
        for p in net.parameters():  # affine IN parameters away from their (1, 0) initialisation
            p.add_(torch.randn_like(p) * 0.1)
        x = torch.rand(2, 3, 20, 28) * 255
        assert torch.allclose(net(x), functional_transformer(net.state_dict(), x), atol=1e-3, rtol=1e-4)


# ------------------------------------------------------------------------------------------- losses
def test_losses_are_the_pytorch_examples_formulas():
    torch.manual_seed(0)
    model = tiny(tv_weight=1e-3)
    x, style = torch.rand(2, 3, 32, 32), torch.rand(1, 3, 24, 40)
    y = model(x)
    parts = model.losses(x, y, model.style_targets({"style": style}))
    vgg = model.loss_net()
    fy, fx, fs = vgg(y), vgg(x), vgg(style)

    def gram(f):
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)

    assert torch.allclose(parts["loss_content"], ((fy["relu2_2"] - fx["relu2_2"]) ** 2).mean(), rtol=1e-5)
    style_loss = sum(((gram(fy[j]) - gram(fs[j])) ** 2).mean() for j in ("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
    assert torch.allclose(parts["loss_style"], style_loss, rtol=1e-4)
    y255 = y * 255
    tv = (((y255[..., :, 1:] - y255[..., :, :-1]) ** 2).sum((1, 2, 3))
          + ((y255[..., 1:, :] - y255[..., :-1, :]) ** 2).sum((1, 2, 3)))
    assert torch.allclose(parts["loss_tv"], tv.mean(), rtol=1e-4)
    total = 1e5 * parts["loss_content"] + 1e10 * parts["loss_style"] + 1e-3 * parts["loss_tv"]
    assert torch.allclose(model.total(parts), total)
    # the style Gram targets are computed once: a different style image later is not looked at
    again = model.style_targets({"style": torch.zeros(1, 3, 8, 8)})
    assert all(torch.equal(again[j], gram(fs[j])) for j in again)


def test_random_vgg_is_recorded_as_a_warning(caplog):
    model = tiny()
    with caplog.at_level(logging.WARNING):
        model.loss_net()
    assert model.random_features and "RANDOM VGG WEIGHTS" in model.card["warnings"][0]
    assert "RANDOM VGG WEIGHTS" in caplog.text


# ----------------------------------------------------------------------------------------- training
def test_training_overfits_with_gradients_on_the_transformer_only(tmp_path):
    torch.manual_seed(0)
    model = tiny(lr=1e-2)  # the recipe's 1e-3 falls too, only slower than a unit test should wait
    data = tiny_data(tmp_path)
    losses: list[float] = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))
            vgg = pl_module.loss_net()
            assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            net = pl_module.transformer
            assert all(p.grad is not None for p in net.parameters())
            # conv biases in front of an InstanceNorm are cancelled by it: look at weights and the output layer
            assert all(m.weight.grad.abs().sum() > 0 for m in net.modules() if hasattr(m, "weight"))
            assert net.deconv3.conv2d.bias.grad.abs().sum() > 0

    trainer = tiny_trainer(tmp_path, max_steps=20, callbacks=[Record()], check_val_every_n_epoch=20,
                           num_sanity_val_steps=1)  # Gram targets first computed in inference mode
    trainer.fit(model, datamodule=data)
    assert len(losses) == 20
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses  # the same batch every step: it overfits
    metrics = trainer.callback_metrics
    assert {"val/loss", "val/loss_content", "val/loss_style"} <= set(metrics)
    assert torch.allclose(metrics["val/loss"], 1e5 * metrics["val/loss_content"] + 1e10 * metrics["val/loss_style"],
                          rtol=1e-4)


def test_one_style_only(tmp_path):
    model = tiny()
    with pytest.raises(DataError, match="--data.style"):
        tiny_trainer(tmp_path, max_steps=1).fit(model, datamodule=tiny_data(tmp_path, n_styles=2))
    batch = {"content": torch.rand(2, 3, 16, 16), "style": torch.rand(2, 3, 16, 16), "style_path": ["a.png", "b.png"]}
    with pytest.raises(DataError, match="2 style images"):
        model.training_step(batch, 0)


def test_training_is_deterministic_under_a_seed():
    def run(steps: int) -> Johnson:
        L.seed_everything(3, verbose=False)
        model = tiny()
        optimizer = model.configure_optimizers()
        batch = {"content": torch.rand(2, 3, 16, 16), "style": torch.rand(1, 3, 16, 16)}
        for _ in range(steps):
            optimizer.zero_grad()
            x = batch["content"]
            model.total(model.losses(x, model(x), model.style_targets(batch))).backward()
            optimizer.step()
        return model

    a, b = run(2), run(2)
    assert_same_state(a, b)
    assert not torch.equal(a.transformer.conv1.conv2d.weight, run(0).transformer.conv1.conv2d.weight)


# ---------------------------------------------------------------------------------------- inference
def test_stylize_pads_odd_sizes_to_4_and_crops_back():
    torch.manual_seed(0)
    model = tiny().eval()
    for h, w in [(13, 10), (9, 9), (33, 47)]:
        out = model.stylize(torch.rand(1, 3, h, w))
        assert out.shape == (1, 3, h, w) and 0 <= out.min() and out.max() <= 1
    x = torch.rand(2, 3, 16, 20)  # already a multiple of 4: the network's output, clamped
    with torch.no_grad():
        direct = model.transformer(x * 255) / 255
    assert torch.allclose(model.stylize(x), direct.clamp(0, 1), atol=1e-5)
    assert torch.allclose(model.stylize(x, alpha=0.0), x, atol=1e-6)
    assert torch.allclose(model.stylize(x, alpha=0.25), (0.25 * direct + 0.75 * x).clamp(0, 1), atol=1e-5)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 17, 3), dtype=np.uint8))
    out = model.stylize(image)
    assert isinstance(out, Image.Image) and out.size == (17, 21)
    with pytest.raises(ZooError, match="without a style"):
        model.stylize(x, Image.new("RGB", (8, 8)))


def test_save_pretrained_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    with torch.no_grad():
        model.transformer.in1.weight.mul_(1.5)
    folder = model.save_pretrained(tmp_path / "johnson-test")
    assert set(load_file(str(folder / "model.safetensors"))) == set(model.state_dict())  # no VGG inside
    assert json.loads((folder / "config.json").read_text())["hparams"]["width"] == 8
    loaded = zoo.load(folder)
    assert isinstance(loaded, Johnson)
    assert_same_state(model, loaded)
    x = torch.rand(1, 3, 19, 22)
    assert torch.equal(model.stylize(x), loaded.stylize(x))


# ---------------------------------------------------------------------------------------- converter
def test_converter_strips_instance_norm_stats_and_module_prefixes():
    torch.manual_seed(0)
    reference = TransformerNet()
    state = dict(reference.state_dict())
    for name in ("in1", "in5", "res3.in2"):  # what PyTorch < 0.4 saved for InstanceNorm2d(affine=True)
        state[f"{name}.running_mean"] = torch.zeros(3)
        state[f"{name}.running_var"] = torch.ones(3)
    assert len(strip_legacy_keys(state)) == 62
    model = from_official({f"module.{k}": v for k, v in state.items()}, vgg_weights=None)
    assert_same_state(model.transformer, reference)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.transformer(x * 255), reference(x * 255))
    missing = {k: v for k, v in state.items() if k != "in2.weight"}
    with pytest.raises(CheckpointError, match="in2.weight"):
        from_official(missing, vgg_weights=None)
    with pytest.raises(CheckpointError, match="extra.weight"):
        from_official({**state, "extra.weight": torch.zeros(1)}, vgg_weights=None)
    with pytest.raises(CheckpointError, match="width 8"):
        from_official(state, vgg_weights=None, width=8)
