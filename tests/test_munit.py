"""MUNIT: architecture parity with NVlabs/MUNIT, its norms, the AdaIN plumbing, inference verbs, training
recipe, save/load, resume, the official-weights converter and the CLI."""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from PIL import Image

import zoo
from zoo.data import ImageFolderDataModule
from zoo.fit import main as fit_main
from zoo.methods.munit import MUNIT, AdaINGenerator, from_official
from zoo.nn import AdaptiveInstanceNorm2d, MultiScaleDiscriminator
from zoo.nn.norm import MunitLayerNorm

from _helpers import assert_same_state, n_params, run_cli, tiny_trainer
from _synthetic import make_unpaired

#: Tiny widths: the same code paths as the edges2shoes networks, a few thousand times cheaper.
TINY = dict(dim=8, mlp_dim=16, dis_dim=8, n_res=1)
NETWORKS = ("gen_a", "gen_b", "dis_a", "dis_b")




def tiny(**hparams) -> MUNIT:
    return zoo.create("munit", **{**TINY, "val_lpips": False, **hparams})


def tiny_generator(**kwargs) -> AdaINGenerator:
    return AdaINGenerator(**{"dim": 8, "mlp_dim": 16, "n_res": 1, **kwargs})




def tiny_data(root, **kwargs) -> ImageFolderDataModule:
    """64 px crops: the smallest size the default 3-scale, 4-layer discriminator takes (see the report on
    32 px crops: its coarsest scale would reach 1x1 before a reflection padding of 1)."""
    return ImageFolderDataModule(
        root=root, **{"load_size": 72, "crop_size": 64, "num_workers": 0, "layout": "unpaired", **kwargs}
    )


# ------------------------------------------------------------------------------------- architecture
def test_default_networks_have_the_reference_parameter_counts_and_keys():
    model = zoo.create("munit")
    for name in ("gen_a", "gen_b"):
        gen = getattr(model, name)
        assert n_params(gen) == 15_026_187, name
        state = gen.state_dict()
        assert len(state) == 82, name
        for key in ("enc_style.model.6.weight", "enc_style.model.4.conv.weight",
                    "enc_content.model.3.model.3.model.1.conv.weight", "dec.model.0.model.0.model.0.norm.running_mean",
                    "dec.model.2.norm.gamma", "dec.model.4.norm.beta", "dec.model.5.conv.weight", "mlp.model.2.fc.weight"):
            assert key in state, key
        assert tuple(state["mlp.model.2.fc.weight"].shape) == (4096, 256)
        assert tuple(state["enc_style.model.6.weight"].shape) == (8, 256, 1, 1)  # 1x1 conv to the 8-d code
        # the content encoder's InstanceNorm has no affine parameters and no running statistics
        content = [k for k in state if k.startswith("enc_content.")]
        assert content and all(k.endswith((".conv.weight", ".conv.bias")) for k in content), content
    for name in ("dis_a", "dis_b"):
        dis = getattr(model, name)
        assert n_params(dis) == 8_271_171, name
        keys = set(dis.state_dict())
        expected = {f"cnns.{s}.{i}.conv.{p}" for s in range(3) for i in range(4) for p in ("weight", "bias")}
        expected |= {f"cnns.{s}.4.{p}" for s in range(3) for p in ("weight", "bias")}
        assert keys == expected, sorted(keys ^ expected)
    with torch.no_grad():
        outputs = model.dis_a(torch.randn(1, 3, 64, 64))
        assert [tuple(o.shape) for o in outputs] == [(1, 1, 4, 4), (1, 1, 2, 2), (1, 1, 1, 1)]
        # the reference's 256 px: 16, 8, 4 (the sizes do not depend on the width: a narrow copy is enough)
        outputs = MultiScaleDiscriminator(dim=4)(torch.randn(1, 3, 256, 256))
        assert [tuple(o.shape) for o in outputs] == [(1, 1, 16, 16), (1, 1, 8, 8), (1, 1, 4, 4)]


def test_tiny_generator_keeps_the_image_size_and_tanh_range():
    torch.manual_seed(0)
    gen = tiny_generator()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        content, style = gen.encode(x)
        y = gen(x)
    assert tuple(content.shape) == (2, 32, 8, 8) and tuple(style.shape) == (2, 8, 1, 1)
    assert y.shape == x.shape and y.abs().max() <= 1.0
    # between discriminator scales: 3x3 average pooling, stride 2, padding not counted (borders stay 1 on ones)
    pooled = MultiScaleDiscriminator(dim=8).downsample(torch.ones(1, 3, 9, 9))
    assert tuple(pooled.shape) == (1, 3, 5, 5) and torch.allclose(pooled, torch.ones_like(pooled))


# ------------------------------------------------------------------------------------- norms
def _numpy_munit_layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    x = x.astype(np.float64)
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(1)[:, None, None, None]
    std = flat.std(1, ddof=1)[:, None, None, None]  # unbiased, eps outside the square root
    return (x - mean) / (std + eps) * gamma[None, :, None, None] + beta[None, :, None, None]


@pytest.mark.parametrize("batch", [1, 3])
def test_munit_layer_norm_is_unbiased_std_over_chw_with_per_channel_affine(batch):
    torch.manual_seed(batch)
    norm = MunitLayerNorm(4)
    assert torch.all(norm.gamma >= 0) and torch.all(norm.gamma < 1) and norm.gamma.std() > 0  # U(0, 1)
    assert torch.count_nonzero(norm.beta) == 0
    with torch.no_grad():
        norm.beta.copy_(torch.randn(4))  # a non-zero shift, to check where it is added
    gamma, beta = norm.gamma.detach().numpy(), norm.beta.detach().numpy()
    # unit-ish scale (the unbiased std matters), and a tiny scale where eps outside the square root matters
    for scale in (3.0, 1e-4):
        x = (torch.randn(batch, 4, 3, 5) + torch.arange(batch).view(-1, 1, 1, 1).float()) * scale
        with torch.no_grad():
            ours = norm(x)
        expected = _numpy_munit_layer_norm(x.numpy(), gamma, beta)
        np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-5)
        # and it is not torch's LayerNorm / GroupNorm(1) (biased variance, eps inside the square root)
        with torch.no_grad():
            layer_norm = F.layer_norm(x, x.shape[1:], eps=1e-5) * norm.gamma.view(1, -1, 1, 1) + norm.beta.view(1, -1, 1, 1)
            group_norm = F.group_norm(x, 1, norm.gamma, norm.beta, eps=1e-5)
        assert not np.allclose(layer_norm.numpy(), expected, atol=1e-4), scale
        assert not np.allclose(group_norm.numpy(), expected, atol=1e-4), scale
        assert torch.allclose(layer_norm, group_norm, atol=1e-5)  # (these two agree with each other)


def test_adaptive_instance_norm_uses_assigned_per_sample_parameters_and_biased_variance():
    torch.manual_seed(0)
    b, c = 2, 3
    adain = AdaptiveInstanceNorm2d(c)
    x = torch.randn(b, c, 5, 7) * 2 + 1
    with pytest.raises(RuntimeError, match="not assigned"):
        adain(x)
    with torch.no_grad():
        adain.running_mean.uniform_(-1, 1)
        adain.running_var.uniform_(0.5, 2)
    buffers = {k: v.clone() for k, v in adain.named_buffers()}
    weight, bias = torch.randn(b * c), torch.randn(b * c)
    adain.weight, adain.bias = weight, bias
    for mode in (True, False):  # train or eval: always the instance statistics
        adain.train(mode)
        with torch.no_grad():
            ours = adain(x).numpy()
        xn = x.numpy().astype(np.float64)
        mean = xn.mean(axis=(2, 3), keepdims=True)
        var = xn.var(axis=(2, 3), keepdims=True)  # biased
        w = weight.numpy().reshape(b, c, 1, 1)
        bb = bias.numpy().reshape(b, c, 1, 1)
        expected = (xn - mean) / np.sqrt(var + 1e-5) * w + bb
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
        unbiased = (xn - mean) / np.sqrt(xn.var(axis=(2, 3), ddof=1, keepdims=True) + 1e-5) * w + bb
        assert not np.allclose(ours, unbiased, atol=1e-4)  # the check can tell the two apart
    for k, v in adain.named_buffers():
        assert torch.equal(v, buffers[k]), k


def test_adain_parameters_are_sliced_bias_then_weight_in_decoder_module_order():
    gen = AdaINGenerator()
    assert gen.num_adain_params() == 4096
    # the decoder's AdaIN layers, named independently of the implementation's own list
    names = [f"dec.model.0.model.{i}.model.{j}.norm" for i in range(4) for j in range(2)]
    modules = dict(gen.named_modules())
    layers = [modules[n] for n in names]
    assert all(isinstance(m, AdaptiveInstanceNorm2d) and m.num_features == 256 for m in layers)
    assert [n for n, m in gen.named_modules() if isinstance(m, AdaptiveInstanceNorm2d)] == names
    p = torch.arange(2 * 4096, dtype=torch.float32).view(2, 4096)
    gen.assign_adain_params(p)
    offset = 0
    for name, m in zip(names, layers):
        c = m.num_features
        assert torch.equal(m.bias, p[:, offset : offset + c].flatten()), name
        assert torch.equal(m.weight, p[:, offset + c : offset + 2 * c].flatten()), name
        offset += 2 * c
    assert offset == p.shape[1]


def test_decode_clears_the_adain_parameters_and_depends_on_the_style():
    torch.manual_seed(0)
    gen = tiny_generator()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        content, style = gen.encode(x)
        y1 = gen.decode(content, style)
        assert all(m.weight is None and m.bias is None for m in gen.dec.modules() if isinstance(m, AdaptiveInstanceNorm2d))
        y2 = gen.decode(content, torch.randn_like(style) * 3)
    assert not torch.allclose(y1, y2, atol=1e-4)
    with pytest.raises(RuntimeError):
        gen.dec(content)  # nothing stale left to decode with


# ------------------------------------------------------------------------------------- codes
def test_generator_forward_is_decode_of_encode():
    torch.manual_seed(0)
    gen = tiny_generator()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(gen(x), gen.decode(*gen.encode(x)))


def test_model_encode_decode_reproduce_the_autoencoder_in_image_range():
    torch.manual_seed(0)
    model = tiny()
    x = torch.rand(1, 3, 32, 32)
    content, style = model.encode(x, "a")
    assert tuple(content.shape) == (1, 32, 8, 8) and tuple(style.shape) == (1, 8, 1, 1)
    y = model.decode(content, style, "a")
    with torch.no_grad():
        expected = ((model.gen_a(x * 2 - 1) + 1) / 2).clamp(0, 1)
        assert torch.allclose(style, model.gen_a.enc_style(x * 2 - 1), atol=1e-6)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
    assert torch.allclose(y, expected, atol=1e-6)
    # another domain's networks give other codes and images
    content_b, _ = model.encode(x, "b")
    assert not torch.allclose(content, content_b, atol=1e-4)
    assert not torch.allclose(model.decode(content, style, "b"), y, atol=1e-4)
    with pytest.raises(zoo.ZooError):
        model.encode(x, "c")


# ------------------------------------------------------------------------------------- inference verbs
def test_sample_draws_n_distinct_seeded_translations_of_one_image():
    torch.manual_seed(0)
    model = tiny()
    x = torch.rand(1, 3, 37, 53)
    out = model.sample(x, n=4, seed=3)
    assert tuple(out.shape) == (4, 3, 37, 53) and out.min() >= 0 and out.max() <= 1
    for i, j in itertools.combinations(range(4), 2):
        assert (out[i] - out[j]).abs().max() > 1e-3, (i, j)
    assert torch.equal(model.sample(x, n=4, seed=3), out)
    assert not torch.equal(model.sample(x, n=4, seed=4), out)
    # CHW input: still (n, 3, H, W)
    assert tuple(model.sample(x[0], n=2, seed=3).shape) == (2, 3, 37, 53)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8))
    images = model.sample(photo, n=4, seed=3)
    assert isinstance(images, list) and len(images) == 4
    assert all(isinstance(im, Image.Image) and im.size == (53, 37) and im.mode == "RGB" for im in images)
    one = model.sample(photo, n=1)
    assert isinstance(one, list) and len(one) == 1
    with pytest.raises(zoo.ZooError, match="one image"):
        model.sample(torch.rand(2, 3, 32, 32), n=2)
    for bad in (0, -1, 2.5):
        with pytest.raises(zoo.ZooError, match="positive integer"):
            model.sample(x, n=bad)


def test_translate_uses_zero_code_a_given_code_or_the_target_domains_style_encoder():
    torch.manual_seed(0)
    model = tiny()
    x = torch.rand(1, 3, 32, 32)
    plain = model.translate(x)
    assert plain.shape == x.shape and torch.equal(plain, model.translate(x))  # style None: deterministic
    code = torch.randn(8)
    styled = model.translate(x, style=code)
    assert not torch.allclose(styled, plain, atol=1e-4)
    assert torch.equal(model.translate(x, style=code.view(1, 8)), styled)
    assert torch.equal(model.translate(x, style=code.view(1, 8, 1, 1)), styled)
    # zero code == style None
    assert torch.equal(model.translate(x, style=torch.zeros(8)), plain)

    # a reference image of the target domain: its style from gen_b.enc_style for a2b
    reference = torch.rand(1, 3, 32, 32)
    by_image = model.translate(x, "a2b", style=reference)
    content, _ = model.encode(x, "a")
    with torch.no_grad():
        s_b = model.gen_b.enc_style(reference * 2 - 1)
        s_a = model.gen_a.enc_style(reference * 2 - 1)
    assert torch.allclose(by_image, model.decode(content, s_b, "b"), atol=1e-6)
    assert not torch.allclose(by_image, model.decode(content, s_a, "b"), atol=1e-4)  # not the source's encoder

    b2a = model.translate(x, "b2a", style=reference)
    content_b, _ = model.encode(x, "b")
    with torch.no_grad():
        s_a_ref = model.gen_a.enc_style(reference * 2 - 1)
    assert torch.allclose(b2a, model.decode(content_b, s_a_ref, "a"), atol=1e-6)
    assert not torch.allclose(b2a, by_image, atol=1e-4)

    # a batch with one code per image: each image gets its own code
    batch, codes = torch.rand(2, 3, 32, 32), torch.randn(2, 8)
    together = model.translate(batch, style=codes)
    for i in range(2):
        assert torch.allclose(together[i : i + 1], model.translate(batch[i : i + 1], style=codes[i]), atol=1e-6)
    assert not torch.allclose(together[1:], model.translate(batch[1:], style=codes[0]), atol=1e-4)

    for wrong in (torch.zeros(7), torch.zeros(1, 9), torch.zeros(1, 4, 1, 1)):
        with pytest.raises(zoo.ZooError, match="style_dim"):
            model.translate(x, style=wrong)
    for size in ((1, 1), (3, 5)):
        y = model.translate(torch.rand(1, 3, *size), "b2a", style=code)
        assert tuple(y.shape) == (1, 3, *size) and torch.isfinite(y).all()
    photo = Image.fromarray(np.full((21, 30, 3), 128, np.uint8))
    out = model.translate(photo, style=photo)
    assert isinstance(out, Image.Image) and out.size == (30, 21)


# ------------------------------------------------------------------------------------- training recipe
def _tiny_run(tmp_path, model: MUNIT, max_steps: int, n_train: int = 1, **trainer_kwargs) -> L.Trainer:
    data = tiny_data(make_unpaired(tmp_path / "d", n_train=n_train, n_val=1, size=64))
    trainer = tiny_trainer(tmp_path, max_steps=max_steps, limit_val_batches=0, **trainer_kwargs)
    trainer.fit(model, datamodule=data)
    return trainer


def test_each_update_reaches_only_its_networks(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = tiny()
    reached = []
    original = model.manual_backward

    def snapshot():
        return {n: [None if p.grad is None else p.grad.clone() for p in getattr(model, n).parameters()] for n in NETWORKS}

    def changed(old):
        return {
            n for n in NETWORKS
            if any((g is None) != (p.grad is None) or (g is not None and not torch.equal(g, p.grad))
                   for g, p in zip(old[n], getattr(model, n).parameters()))
        }

    def recording_backward(loss, *args, **kwargs):
        before = snapshot()
        original(loss, *args, **kwargs)
        reached.append(changed(before))

    monkeypatch.setattr(model, "manual_backward", recording_backward)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _tiny_run(tmp_path, model, max_steps=2)  # one iteration: a D step, then a G step
    # D step first (translations made without gradient), then G step (D frozen)
    assert reached == [{"dis_a", "dis_b"}, {"gen_a", "gen_b"}]
    updated = {k.split(".")[0] for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert updated == set(NETWORKS)


def test_learning_rate_is_stepped_per_iteration(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = tiny(step_size=2, gamma=0.5, lr=1e-4)
    seen = []
    original = model.manual_backward

    def recording_backward(loss, *args, **kwargs):
        opt_gen, opt_dis = model.optimizers()
        seen.append((opt_gen.param_groups[0]["lr"], opt_dis.param_groups[0]["lr"]))
        original(loss, *args, **kwargs)

    monkeypatch.setattr(model, "manual_backward", recording_backward)
    _tiny_run(tmp_path, model, max_steps=10, n_train=2)  # 5 iterations, 3 epochs
    assert len(seen) == 10
    expected = [1e-4 * 0.5 ** ((i + 1) // 2) for i in range(5)]
    gen_lrs = [g for g, _ in seen[1::2]]  # the G step of each iteration
    dis_lrs = [d for _, d in seen[0::2]]  # the D step
    assert gen_lrs == pytest.approx(expected, rel=1e-12)
    assert dis_lrs == pytest.approx(expected, rel=1e-12)
    assert [g for g, _ in seen[0::2]] == pytest.approx(expected, rel=1e-12)  # set before the D step too


def test_adam_has_the_reference_betas_and_weight_decay():
    model = tiny()
    optimizers, schedulers = model.configure_optimizers()
    opt_gen, opt_dis = optimizers
    for opt in optimizers:
        assert len(opt.param_groups) == 1
        group = opt.param_groups[0]
        assert isinstance(opt, torch.optim.Adam)
        assert group["weight_decay"] == pytest.approx(1e-4) and tuple(group["betas"]) == (0.5, 0.999)
        assert group["lr"] == pytest.approx(1e-4)
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(opt_gen.param_groups[0]["params"]) == ids([*model.gen_a.parameters(), *model.gen_b.parameters()])
    assert ids(opt_dis.param_groups[0]["params"]) == ids([*model.dis_a.parameters(), *model.dis_b.parameters()])
    assert all(s["interval"] == "step" for s in schedulers)


def test_tiny_overfit_reduces_reconstruction(tmp_path):
    torch.manual_seed(0)
    root = make_unpaired(tmp_path / "d", n_train=2, n_val=2, size=64, same_val=True)
    data = tiny_data(root, load_size=64, crop_size=64, flip=False)
    model = tiny(lr=1e-3)
    losses = []

    class Collect(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(trainer.callback_metrics["train/loss_recon_x_a"]))

    start = tiny_trainer(tmp_path).validate(model, datamodule=data, verbose=False)[0]
    tiny_trainer(tmp_path, max_steps=120, limit_val_batches=0, callbacks=[Collect()]).fit(model, datamodule=data)
    end = tiny_trainer(tmp_path).validate(model, datamodule=data, verbose=False)[0]
    assert len(losses) == 60  # 60 iterations = 120 optimizer steps (D + G)
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert last < 0.6 * first, (first, last)
    assert end["val/recon_x_a"] < start["val/recon_x_a"], (start, end)
    # domain A (outlines on white) is matched by a near-white output whatever the loss; the coloured domain B
    # needs the reconstruction term (without it, recon_x_w=0, this ends near 0.6x its start, not below 0.4x)
    assert end["val/recon_x_b"] < 0.4 * start["val/recon_x_b"], (start, end)


def test_cycle_loss_is_logged_only_when_weighted(tmp_path):
    torch.manual_seed(0)
    trainer = _tiny_run(tmp_path / "off", tiny(), max_steps=2)
    assert "train/loss_recon_x_a" in trainer.callback_metrics
    assert not any(k.startswith("train/loss_cyc") for k in trainer.callback_metrics)
    trainer = _tiny_run(tmp_path / "on", tiny(recon_x_cyc_w=10.0), max_steps=2)
    for key in ("train/loss_cyc_x_a", "train/loss_cyc_x_b"):
        assert key in trainer.callback_metrics and float(trainer.callback_metrics[key]) > 0


def test_validation_writes_sample_grids_and_logs_swd(tmp_path):
    torch.manual_seed(0)
    data = tiny_data(make_unpaired(tmp_path / "d", n_train=1, n_val=2, size=64))
    model = tiny()
    logger = CSVLogger(tmp_path / "logs", name="munit")
    trainer = tiny_trainer(tmp_path, logger=logger)
    metrics = trainer.validate(model, datamodule=data, verbose=False)[0]
    for key in ("val/swd_a2b", "val/swd_b2a", "val/swd", "val/recon_x_a", "val/recon_x_b"):
        assert key in metrics and np.isfinite(metrics[key]), key
    assert metrics["val/swd"] == pytest.approx((metrics["val/swd_a2b"] + metrics["val/swd_b2a"]) / 2, rel=1e-5)
    images = Path(logger.log_dir) / "images"
    for direction in ("a2b", "b2a"):
        grids = list(images.glob(f"val_samples_{direction}_step*.png"))
        assert len(grids) == 1, list(images.iterdir()) if images.exists() else "no images folder"
        # 2 rows (inputs), 1 + val_samples = 5 columns of 64 px, make_grid padding 2
        assert Image.open(grids[0]).size == (5 * 66 + 2, 2 * 66 + 2)


# ------------------------------------------------------------------------------------- save / load
def test_save_pretrained_round_trip_is_bitwise(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    x = torch.rand(1, 3, 36, 44)
    code = torch.randn(8)
    loaded = zoo.load(model.save_pretrained(tmp_path / "w"))
    assert isinstance(loaded, MUNIT) and loaded.hparams.dim == 8
    assert torch.equal(model.sample(x, n=3, seed=1), loaded.sample(x, n=3, seed=1))
    assert torch.equal(model.translate(x, style=code), loaded.translate(x, style=code))
    assert torch.equal(model.translate(x, "b2a", style=code), loaded.translate(x, "b2a", style=code))

    from safetensors import safe_open

    folder = model.save_pretrained(tmp_path / "gens", components=model.inference_modules)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("dis_") for k in keys)
    assert {k.split(".")[0] for k in keys} == {"gen_a", "gen_b"}
    generators_only = zoo.load(folder)
    assert torch.equal(model.sample(x, n=3, seed=1), generators_only.sample(x, n=3, seed=1))


# ------------------------------------------------------------------------------------- resume
RESUME_ARGS = [
    "--model.init_args.dim=8", "--model.init_args.mlp_dim=16", "--model.init_args.dis_dim=8",
    "--model.init_args.n_res=1", "--model.init_args.val_lpips=false", "--model.init_args.step_size=2",
    "--data.layout=unpaired", "--data.load_size=72", "--data.crop_size=64", "--data.num_workers=0",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
]


def _fit(data: Path, root: Path, epochs: int, resume: bool = False) -> MUNIT:
    """`python -m zoo.fit` in-process, with the CLI's own checkpoint callbacks and defaults."""
    args = ["--model", "munit", f"--data.root={data}", *RESUME_ARGS, f"--trainer.max_epochs={epochs}",
            f"--trainer.default_root_dir={root}", "--trainer.deterministic=true", "--baseline=false"]
    return fit_main([*args, "--ckpt_path=last"] if resume else args).model


def test_resume_is_exact(tmp_path):
    """1 epoch + resume to 2 == 2 epochs: same weights and (per-iteration) learning rate, bit for bit (random
    styles, crops and flips all draw from state carried in the checkpoint)."""
    data = make_unpaired(tmp_path / "data", n_train=3, n_val=1, size=64)
    straight = _fit(data, tmp_path / "straight", epochs=2)
    _fit(data, tmp_path / "resumed", epochs=1)
    resumed = _fit(data, tmp_path / "resumed", epochs=2, resume=True)
    assert_same_state(straight, resumed)
    a = straight.state_dict()
    for i in range(2):
        lr_straight = straight.optimizers()[i].param_groups[0]["lr"]
        assert lr_straight == resumed.optimizers()[i].param_groups[0]["lr"]
        assert lr_straight == pytest.approx(1e-4 * 0.5 ** (6 // 2))  # 6th iteration (index 5): 3 halvings
    # and the check has teeth: one more epoch changes the weights
    longer = _fit(data, tmp_path / "longer", epochs=3).state_dict()
    assert not all(torch.equal(a[k], longer[k]) for k in a)


# ------------------------------------------------------------------------------------- official weights
def _release_state(gen: AdaINGenerator) -> dict[str, torch.Tensor]:
    """A generator's state as the PyTorch 0.3 release holds it: plus InstanceNorm running statistics in the
    content encoder (which today's affine-free, stat-free InstanceNorm does not have)."""
    state = {k: v.clone() for k, v in gen.state_dict().items()}
    blocks = [f"enc_content.model.{i}" for i in range(3)]
    n_res = len(gen.enc_content.model[3].model)
    blocks += [f"enc_content.model.3.model.{i}.model.{j}" for i in range(n_res) for j in range(2)]
    for block in blocks:
        channels = gen.get_submodule(block).conv.out_channels
        state[f"{block}.norm.running_mean"] = torch.randn(channels)
        state[f"{block}.norm.running_var"] = torch.rand(channels) + 0.5
    return state


def test_official_converter_drops_pytorch03_statistics_and_checks_keys():
    torch.manual_seed(0)
    sources = {"a": tiny_generator(), "b": tiny_generator()}
    for gen in sources.values():  # non-trivial AdaIN dummy buffers: they must be carried over, not reset
        for m in gen.modules():
            if isinstance(m, AdaptiveInstanceNorm2d):
                m.running_mean.uniform_(-1, 1)
    states = {d: _release_state(g) for d, g in sources.items()}
    assert "enc_content.model.0.norm.running_mean" in states["a"]
    assert "enc_content.model.3.model.0.model.0.norm.running_var" in states["a"]
    model = from_official(states, **TINY)
    assert isinstance(model, MUNIT)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        for d, source in sources.items():
            gen = model.generator_of(d)
            for k, v in source.state_dict().items():
                assert torch.equal(gen.state_dict()[k], v), k
            content, style = source.encode(x)
            assert torch.equal(gen.decode(content, style), source.decode(content, style))
            assert torch.equal(gen(x), source(x))

    missing = {"a": states["a"], "b": {k: v for k, v in states["b"].items() if k != "dec.model.5.conv.weight"}}
    with pytest.raises(zoo.ZooError, match="dec.model.5.conv.weight"):
        from_official(missing, **TINY)
    with pytest.raises(zoo.CheckpointError):
        from_official(missing, **TINY)
    extra = {"a": {**states["a"], "dec.model.9.conv.weight": torch.zeros(1)}, "b": states["b"]}
    with pytest.raises(zoo.ZooError, match="dec.model.9.conv.weight"):
        from_official(extra, **TINY)
    with pytest.raises(zoo.ZooError):
        from_official({"gen_a": states["a"], "gen_b": states["b"]}, **TINY)
    with pytest.raises(zoo.ZooError):
        from_official(states["a"], **TINY)  # a bare generator state, not {'a': ..., 'b': ...}


def test_registry_name_asks_for_the_manual_download_then_converts_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.ZooError) as error:
        zoo.load("munit-edges2shoes")
    assert isinstance(error.value, zoo.WeightsNotFoundError)
    message = str(error.value)
    assert "edges2shoes.pt" in message and "by hand" in message, message
    assert str(tmp_path / "official" / "edges2shoes.pt") in message
    assert not (tmp_path / "official" / "edges2shoes.pt").exists()  # nothing (e.g. an HTML page) was stored

    torch.manual_seed(0)
    gen_a, gen_b = AdaINGenerator(), AdaINGenerator()
    (tmp_path / "official").mkdir()
    torch.save({"a": _release_state(gen_a), "b": _release_state(gen_b)}, tmp_path / "official" / "edges2shoes.pt")
    model = zoo.load("munit-edges2shoes")
    assert isinstance(model, MUNIT) and model.io["directions"] == ["a2b", "b2a"]
    assert torch.equal(model.gen_b.state_dict()["mlp.model.2.fc.weight"], gen_b.state_dict()["mlp.model.2.fc.weight"])
    assert torch.equal(model.gen_a.state_dict()["enc_style.model.6.weight"], gen_a.state_dict()["enc_style.model.6.weight"])
    x = torch.rand(1, 3, 32, 32)
    samples = model.sample(x, n=2, seed=0)
    assert tuple(samples.shape) == (2, 3, 32, 32) and 0 <= samples.min() and samples.max() <= 1
    # the release's generators are cached as a converted folder
    assert (tmp_path / "converted" / "munit-edges2shoes" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------- CLI


def test_cli_trains_on_the_builtin_unpaired_set_and_publishes(tmp_path):
    root = tmp_path / "run"
    result = run_cli([
        "--model", "munit", "--model.init_args.dim=8", "--model.init_args.mlp_dim=16",
        "--model.init_args.dis_dim=8", "--model.init_args.n_res=1", "--data.load_size=72", "--data.crop_size=64",
        "--data.num_workers=0", "--trainer.max_steps=4", "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false", f"--trainer.default_root_dir={root}",
    ], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "saved pretrained weights" in result.stdout, result.stdout[-2000:]
    # the built-in set was generated in ZOO_CACHE, in the unpaired layout
    builtin = [p.parent for p in (tmp_path / "cache").rglob("manifest.json")]
    assert builtin and all((b / "trainA").is_dir() and (b / "trainB").is_dir() for b in builtin), builtin
    state = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 4  # 2 iterations x (D + G)
    model = zoo.load(root / "pretrained")
    assert isinstance(model, MUNIT) and model.hparams.dim == 8
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 45, 3), dtype=np.uint8))
    samples = model.sample(photo, n=2, seed=0)
    assert len(samples) == 2 and all(im.size == (45, 30) for im in samples)


# ------------------------------------------------------------------------------------- user mistakes
def test_mismatched_styles_and_sizes_are_zoo_errors(tmp_path):
    model = tiny().eval()
    images = torch.rand(2, 3, 24, 24)
    with pytest.raises(zoo.ZooError, match="2 images and 3 styles"):
        model.translate(images, style=torch.randn(3, 8))
    one = torch.rand(1, 3, 24, 24)
    content, _ = model.encode(one, "a")
    styles = torch.randn(2, 8)
    decoded = model.decode(content, styles, "b")  # one content, several styles
    assert decoded.shape == (2, 3, 24, 24) and not torch.equal(decoded[0], decoded[1])
    assert model.sample(one, n=np.int64(2), seed=0).shape == (2, 3, 24, 24)
    # training crops too small for the 3-scale discriminator: a DataError saying which size works
    data = tiny_data(make_unpaired(tmp_path / "d", n_train=1, n_val=1), load_size=36, crop_size=32)
    with pytest.raises(zoo.DataError, match="at least 64 pixels"):
        tiny_trainer(tmp_path, max_steps=2, limit_val_batches=0).fit(tiny(), datamodule=data)


# ---------------------------------------------------------------------------- perceptual loss (vgg_w)
def test_vgg_features_load_a_torchvision_file_and_name_their_layers(tmp_path, monkeypatch):
    import torchvision

    from zoo.nn import VGGFeatures

    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None).eval()
    path = tmp_path / "vgg16.pth"
    torch.save(reference.state_dict(), path)
    features = VGGFeatures("vgg16", ("relu3_3", "relu5_3"), weights=path)
    x = torch.rand(1, 3, 32, 32)
    normalised = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = features(x)
        assert torch.allclose(out["relu3_3"], reference.features[:16](normalised), atol=1e-6)
        assert torch.allclose(out["relu5_3"], reference.features[:30](normalised), atol=1e-6)
    assert not any(p.requires_grad for p in features.parameters()) and not features.train().training
    with pytest.raises(ValueError, match="relu9_9"):
        VGGFeatures("vgg16", ("relu9_9",), weights=None)
    monkeypatch.setenv("ZOO_VGG16_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(zoo.WeightsNotFoundError, match="ZOO_VGG16_WEIGHTS"):
        VGGFeatures("vgg16")


def test_domain_invariant_perceptual_loss_trains_and_is_kept_out_of_the_weights(tmp_path):
    from zoo.methods.munit import DomainInvariantPerceptualLoss

    torch.manual_seed(0)
    loss = DomainInvariantPerceptualLoss(weights=None)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    fa, fb = loss.network((a + 1) / 2)["relu5_3"], loss.network((b + 1) / 2)["relu5_3"]
    expected = torch.mean((F.instance_norm(fa) - F.instance_norm(fb)) ** 2)
    assert torch.allclose(loss(a, b), expected) and float(loss(a, a)) == pytest.approx(0.0, abs=1e-10)
    model = tiny(vgg_w=1.0, vgg_weights=None)
    trainer = _tiny_run(tmp_path, model, max_steps=2)
    for key in ("train/loss_vgg_a", "train/loss_vgg_b"):
        assert key in trainer.callback_metrics and float(trainer.callback_metrics[key]) > 0
    assert not any("vgg" in k for k in model.state_dict())  # no VGG in checkpoints or published weights
