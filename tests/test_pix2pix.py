"""pix2pix: architecture parity with the reference, losses, schedule, training behaviour, inference verbs."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import zoo
from zoo.data import ImageFolderDataModule
from zoo.losses import GANLoss
from zoo.methods.pix2pix import Pix2Pix
from zoo.training import linear_decay
from zoo.nn import PatchDiscriminator, UnetGenerator

from _helpers import n_params, tiny_trainer
from _synthetic import make_aligned




def tiny(**hparams) -> Pix2Pix:
    """unet_128 at width 8: the same code paths, thousands of times cheaper."""
    return Pix2Pix(**{"ngf": 8, "ndf": 8, "netG": "unet_128", **hparams})




def tiny_data(root, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(root=root, **{"load_size": 140, "crop_size": 128, "num_workers": 0, **kwargs})


# ------------------------------------------------------------------------------------- architecture
def test_reference_parameter_counts_and_keys():
    model = Pix2Pix()
    G, D = model.G["a2b"], model.D["a2b"]
    assert n_params(G) == 54_413_955
    assert n_params(D) == 2_768_705
    keys = list(G.state_dict())
    assert len(keys) == 82  # incl. BatchNorm buffers, as the reference's latest_net_G.pth
    assert keys[:3] == ["model.model.0.weight", "model.model.1.model.1.weight", "model.model.1.model.2.weight"]
    assert "model.model.3.bias" in keys and "model.model.0.bias" not in keys  # outermost: ConvT biased, conv not
    assert list(D.state_dict())[0] == "model.0.weight"
    assert {k.rsplit(".", 1)[0] for k in D.state_dict() if k.endswith("running_mean")} == {"model.3", "model.6", "model.9"}
    # CycleGAN's D: 3 channels, InstanceNorm without affine -> biased convs, no norm parameters
    assert n_params(PatchDiscriminator(3, norm="instance")) == 2_764_737


def test_discriminator_output_is_30x30_and_generator_keeps_size():
    model = Pix2Pix()
    x = torch.randn(1, 3, 256, 256)
    assert model.D["a2b"](torch.cat([x, x], 1)).shape == (1, 1, 30, 30)
    with torch.no_grad():
        y = model.G["a2b"].eval()(x)
    assert y.shape == x.shape and y.abs().max() <= 1.0


def test_init_is_normal_0_02():
    G = tiny().G["a2b"]
    convs = [m.weight for m in G.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    weights = torch.cat([w.flatten() for w in convs])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002
    bn_weights = torch.cat([m.weight for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert abs(bn_weights.mean().item() - 1.0) < 0.01
    D = Pix2Pix().D["a2b"]
    d_weights = torch.cat([m.weight.flatten() for m in D.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(d_weights.std().item() - 0.02) < 0.002
    biases = [m.bias for m in list(G.modules()) + list(D.modules()) if getattr(m, "bias", None) is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)  # conv and norm biases start at 0


def _functional_unet(sd: dict, x: torch.Tensor, levels: int) -> torch.Tensor:
    """An independent functional U-Net written from the reference's block definitions (eval mode): the
    skip branch of each inner level carries LeakyReLU(x), because the reference's LeakyReLU is in-place."""

    def bn(h, p):
        return F.batch_norm(h, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"], eps=1e-5)

    def level(p: str, x: torch.Tensor, depth: int) -> torch.Tensor:
        xr = F.leaky_relu(x, 0.2)
        if depth == levels - 1:  # innermost: no norm on the bottleneck conv
            h = F.conv2d(xr, sd[p + "1.weight"], stride=2, padding=1)
            h = bn(F.conv_transpose2d(F.relu(h), sd[p + "3.weight"], stride=2, padding=1), p + "4.")
        else:
            h = bn(F.conv2d(xr, sd[p + "1.weight"], stride=2, padding=1), p + "2.")
            h = level(p + "3.model.", h, depth + 1)
            h = bn(F.conv_transpose2d(F.relu(h), sd[p + "5.weight"], stride=2, padding=1), p + "6.")
        return torch.cat([xr, h], 1)

    h = F.conv2d(x, sd["model.model.0.weight"], stride=2, padding=1)
    h = level("model.model.1.model.", h, 1)
    return torch.tanh(F.conv_transpose2d(F.relu(h), sd["model.model.3.weight"], sd["model.model.3.bias"], stride=2, padding=1))


def test_unet_matches_an_independent_functional_forward():
    torch.manual_seed(0)
    G = UnetGenerator(3, 3, num_downs=6, ngf=4).eval()
    for m in G.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = G(x)
        reference = _functional_unet({k: v.clone() for k, v in G.state_dict().items()}, x, levels=6)
    assert torch.allclose(ours, reference, atol=1e-6)


def test_unet_rejects_too_few_levels():
    with pytest.raises(ValueError):
        UnetGenerator(num_downs=4)


# ------------------------------------------------------------------------------------- losses, schedule
def test_gan_losses_match_torch_definitions():
    logits = torch.randn(2, 1, 30, 30)
    assert torch.allclose(GANLoss("vanilla")(logits, True), F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits)))
    assert torch.allclose(GANLoss("vanilla")(logits, False), F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits)))
    assert torch.allclose(GANLoss("lsgan")(logits, True), ((logits - 1) ** 2).mean())
    assert torch.allclose(GANLoss("hinge")(logits, False), F.relu(1 + logits).mean())
    assert torch.allclose(GANLoss("hinge")(logits, True, for_discriminator=False), -logits.mean())
    with pytest.raises(zoo.ZooError, match="gan_mode"):
        GANLoss("wgan")


def test_linear_decay_is_the_reference_rule():
    rule = linear_decay(n_epochs=100, n_epochs_decay=100)
    assert [rule(e) for e in (0, 50, 99)] == [1.0, 1.0, 1.0]
    assert math.isclose(rule(100), 1 - 1 / 101) and math.isclose(rule(199), 1 / 101)


def test_schedule_steps_per_epoch_not_per_iteration(tmp_path):
    data = tiny_data(make_aligned(tmp_path / "d", n_train=3, n_val=1, size=128))
    model = tiny(n_epochs=1, n_epochs_decay=2)
    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append((trainer.current_epoch, pl_module.optimizers()[0].param_groups[0]["lr"]))

    tiny_trainer(tmp_path, max_epochs=3, limit_val_batches=0, callbacks=[Record()]).fit(model, datamodule=data)
    lrs = {}
    for epoch, lr in seen:
        lrs.setdefault(epoch, set()).add(lr)
    assert all(len(v) == 1 for v in lrs.values())  # constant within an epoch
    # n_epochs=1 at the full rate, then n_epochs_decay=2 decaying towards zero in thirds
    assert [lrs[e].pop() for e in range(3)] == pytest.approx([2e-4, 2e-4 * 2 / 3, 2e-4 * 1 / 3])


def test_each_update_reaches_only_its_network(tmp_path, monkeypatch):
    data = tiny_data(make_aligned(tmp_path / "d", n_train=1, n_val=1, size=128))
    model = tiny()
    grads = []
    original = model.manual_backward

    def snapshot(net):
        return [None if p.grad is None else p.grad.clone() for p in net.parameters()]

    def changed(old, net):
        return any(
            (g is None) != (p.grad is None) or (g is not None and not torch.equal(g, p.grad))
            for g, p in zip(old, net.parameters())
        )

    def recording_backward(loss, *args, **kwargs):
        g, d = snapshot(model.G), snapshot(model.D)
        original(loss, *args, **kwargs)
        grads.append((changed(g, model.G), changed(d, model.D)))

    monkeypatch.setattr(model, "manual_backward", recording_backward)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(model, datamodule=data)
    # D step first (fake detached: no gradient into G), then G step (D frozen: no gradient into D)
    assert grads == [(False, True), (True, False)]
    changed = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"G", "D"}


def test_overfit_halves_validation_l1(tmp_path):
    torch.manual_seed(0)
    root = make_aligned(tmp_path / "d", n_train=2, n_val=2, size=128, same_val=True)
    data = tiny_data(root, load_size=128, crop_size=128, flip=False)
    model = tiny(ngf=16, ndf=8, lr=1e-3, use_dropout=False)
    start = tiny_trainer(tmp_path).validate(model, datamodule=data, verbose=False)[0]["val/L1"]
    trainer = tiny_trainer(tmp_path, max_epochs=60, limit_val_batches=0)
    trainer.fit(model, datamodule=data)
    end = tiny_trainer(tmp_path).validate(model, datamodule=data, verbose=False)[0]["val/L1"]
    assert end < 0.5 * start, (start, end)


def test_two_directions_train_two_generators(tmp_path):
    data = tiny_data(make_aligned(tmp_path / "d", n_train=2, n_val=1, size=128))
    model = tiny(directions=["a2b", "b2a"])
    assert set(model.G) == {"a2b", "b2a"} and model.io["directions"] == ["a2b", "b2a"]
    trainer = tiny_trainer(tmp_path, max_epochs=1)
    trainer.fit(model, datamodule=data)
    for name in ("train/loss_G_L1_a2b", "train/loss_G_L1_b2a", "val/L1_a2b", "val/L1_b2a", "val/L1"):
        assert name in trainer.callback_metrics
    with pytest.raises(zoo.ZooError, match="directions"):
        tiny(directions=["sideways"])


# ------------------------------------------------------------------------------------- inference verbs
def test_translate_any_size_and_input_kind():
    model = tiny().eval()
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (70, 301, 3), dtype=np.uint8)
    out = model.translate(Image.fromarray(array))
    assert isinstance(out, Image.Image) and out.size == (301, 70) and out.mode == "RGB"
    out = model.translate(array)
    assert isinstance(out, np.ndarray) and out.shape == array.shape and out.dtype == np.uint8
    x = torch.rand(2, 3, 33, 40)
    y = model.translate(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    # same pixels whatever the input kind (batch of one)
    via_tensor = model.translate(torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255)
    assert np.abs(np.asarray(model.translate(Image.fromarray(array))) - (via_tensor[0].permute(1, 2, 0).numpy() * 255)).max() <= 1
    with pytest.raises(zoo.ZooError, match="a2b"):
        model.translate(array, direction="b2a")
    with pytest.raises(zoo.ZooError, match="string"):
        model.translate(array, direction=1)
    with pytest.raises(zoo.ZooError, match="RGB"):
        tiny(input_nc=1)


def test_reference_test_mode_uses_dropout_and_batch_stats_without_changing_weights():
    model = tiny()
    x = torch.rand(1, 3, 128, 128)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    assert torch.equal(model.translate(x), model.translate(x))  # eval: deterministic
    torch.manual_seed(1)
    a = model.translate(x, eval_mode=False)
    torch.manual_seed(2)
    b = model.translate(x, eval_mode=False)
    assert not torch.equal(a, b)  # dropout on at test time (the paper's noise)
    assert not torch.equal(a, model.translate(x))
    assert all(torch.equal(v, buffers[k]) for k, v in model.state_dict().items())  # incl. num_batches_tracked
    assert model.training  # a fresh module is in train mode, and translate() gave that back


def test_save_pretrained_round_trip_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = tiny(directions=["a2b", "b2a"])
    model.G["a2b"].train()(torch.rand(2, 3, 128, 128))  # move the BN running stats off their init
    folder = model.save_pretrained(tmp_path / "weights")
    loaded = zoo.load(folder)
    assert isinstance(loaded, Pix2Pix) and loaded.hparams.netG == "unet_128"
    x = torch.rand(1, 3, 130, 77)
    for d in ("a2b", "b2a"):
        assert torch.equal(model.translate(x, d), loaded.translate(x, d))
    assert Pix2Pix.from_pretrained(folder).io == model.io


def test_losses_are_the_papers_equation(tmp_path, monkeypatch):
    """Recompute both losses of one iteration independently: D's is halved (§3.3), G's is
    BCE(D(x, G(x)), 1) + λ·L1 with λ = 100, D judges cat(x, y), and G's term uses the updated D."""
    import copy

    data = tiny_data(make_aligned(tmp_path / "d", n_train=1, n_val=1, size=128), load_size=128, flip=False)
    model = tiny(use_dropout=False)  # no dropout: G(x) can be recomputed exactly
    G0, D0 = copy.deepcopy(model.G["a2b"]), copy.deepcopy(model.D["a2b"])
    seen: dict = {}

    class Batch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen["A"], seen["B"] = batch["A"].clone(), batch["B"].clone()

    losses = []
    original = model.manual_backward

    def record(loss, *args, **kwargs):
        with torch.no_grad():
            A, B = seen["A"], seen["B"]
            fake = G0.train()(A)
            bce = F.binary_cross_entropy_with_logits
            if not losses:  # D step, with D before any update
                real_logits, fake_logits = D0.train()(torch.cat([A, B], 1)), D0(torch.cat([A, fake], 1))
                expected = 0.5 * (bce(fake_logits, torch.zeros_like(fake_logits)) + bce(real_logits, torch.ones_like(real_logits)))
            else:  # G step, judged by the D just updated
                logits = copy.deepcopy(model.D["a2b"]).train()(torch.cat([A, fake], 1))
                expected = bce(logits, torch.ones_like(logits)) + 100.0 * F.l1_loss(fake, B)
        losses.append((loss.item(), expected.item()))
        original(loss, *args, **kwargs)

    monkeypatch.setattr(model, "manual_backward", record)
    tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0, callbacks=[Batch()]).fit(model, datamodule=data)
    assert len(losses) == 2
    for got, expected in losses:
        assert got == pytest.approx(expected, rel=1e-5)


def _reference_generator_state() -> tuple[UnetGenerator, dict]:
    """A generator with non-trivial weights and BN statistics, and its state dict as the reference
    saves it through DataParallel in an old PyTorch: `module.` prefixes, no num_batches_tracked."""
    torch.manual_seed(3)
    ref = UnetGenerator(3, 3, num_downs=7, ngf=8)
    for m in ref.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
    state = {f"module.{k}": v.clone() for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    return ref.eval(), state


def test_official_converter_gives_the_reference_outputs_and_checks_keys():
    from zoo.registry import get_converter

    ref, state = _reference_generator_state()
    convert = get_converter("pix2pix")
    model = convert(state, netG="unet_128", ngf=8)
    assert set(model.G) == {"a2b"}
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.allclose(model.G["a2b"].eval()(x * 2 - 1), ref(x * 2 - 1), atol=1e-6)
    leftover = {**state, "module.model.extra.weight": torch.zeros(1)}
    with pytest.raises(zoo.CheckpointError, match="model.extra.weight"):
        convert(leftover, netG="unet_128", ngf=8)
    missing = {k: v for k, v in state.items() if k != "module.model.model.0.weight"}
    with pytest.raises(zoo.CheckpointError, match="model.model.0.weight"):
        convert(missing, netG="unet_128", ngf=8)
    both = convert({"a2b": state, "b2a": state}, netG="unet_128", ngf=8, directions=["a2b", "b2a"])
    assert set(both.G) == {"a2b", "b2a"}


def test_registry_name_loads_the_official_file_through_the_converter(tmp_path, monkeypatch):
    from zoo.registry import reload_registry

    ref, state = _reference_generator_state()
    (tmp_path / "official").mkdir()
    torch.save(state, tmp_path / "official" / "tiny_label2photo.pth")
    registry = tmp_path / "registry.yaml"
    registry.write_text(
        "pix2pix-tiny:\n  method: pix2pix\n  task: translation\n  hparams: {netG: unet_128, ngf: 8}\n"
        "  weights:\n    official: {url: 'http://example.invalid/tiny_label2photo.pth', sha256: null, converter: pix2pix}\n"
        "  io: {range: [-1, 1], channels: 3, size_multiple: 128, directions: [a2b], eval_mode: true}\n"
        "  dataset: {name: tiny, layout: aligned}\n  paper: arXiv:1611.07004\n  license: BSD-3-Clause\n  origin: official\n"
    )
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    try:
        reload_registry(registry)
        model = zoo.load("pix2pix-tiny")
        x = torch.rand(1, 3, 100, 90)
        padded = F.pad(x * 2 - 1, (0, 38, 0, 28), mode="reflect")
        with torch.no_grad():
            expected = ((ref(padded)[..., :100, :90] + 1) / 2).clamp(0, 1)
        assert torch.allclose(model.translate(x), expected, atol=1e-5)
        assert (tmp_path / "converted" / "pix2pix-tiny" / "model.safetensors").is_file()  # cached conversion
        assert zoo.list_models("pix2pix-tiny", pretrained=True) == ["pix2pix-tiny"]
    finally:
        reload_registry()


def test_model_card_cites_the_paper(tmp_path):
    card = tiny().save_pretrained(tmp_path / "w").joinpath("README.md").read_text()
    assert "arXiv:1611.07004" in card and "https://arxiv.org/abs/1611.07004" in card


def test_create_with_a_wrongly_typed_hparam_is_a_zoo_error():
    with pytest.raises(zoo.ZooError, match="ngf='x'"):
        zoo.create("pix2pix", ngf="x")
