"""AdaIN: the released layouts (vgg_normalised encoder to relu4_1, naoto's decoder), the AdaIN operation,
the test-time controls (alpha, style interpolation, colour preservation, spatial masks), the loss of
eq. 11-13, the per-iteration learning-rate decay (also across a resume), training, weights I/O and the
official-checkpoint converter."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

import zoo
from zoo.errors import CheckpointError, WeightsNotFoundError, ZooError
from zoo.methods.adain import AdaIN, Decoder, VGGEncoder, adain, coral, from_official, masked_adain
from zoo.nn.vgg import DEFAULT_OR_RANDOM, VGGFeatures

from _helpers import assert_same_state, n_params, tiny_trainer

CONV_INDICES = (1, 5, 8, 11, 14, 18, 21, 25, 28)
VGG_CONV_INDICES = (0, 2, 5, 9, 12, 16, 19, 22, 25, 29)  # vgg_normalised's convs up to relu4_1


def model(**hparams) -> AdaIN:
    return AdaIN(**{"vgg_weights": None, **hparams})


def pairs(n: int = 4, size: int = 32, style_size: int = 32, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"content": torch.rand(3, size, size, generator=g),
             "style": torch.rand(3, style_size, style_size, generator=g), "style_index": 0} for _ in range(n)]


@pytest.fixture
def no_vgg_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    for var in ("ZOO_VGG_WEIGHTS", "ZOO_VGG_NORMALISED_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def vgg_file(tmp_path):
    """A synthetic vgg_normalised.pth: the full 53-module Sequential's state dict (34 tensors)."""
    torch.manual_seed(123)
    full = VGGFeatures("vgg19", ("relu5_4",), None, variant="adain").features.state_dict()
    assert len(full) == 34 and "51.bias" in full
    path = tmp_path / "vgg_normalised.pth"
    torch.save(full, path)
    return path, full


# ------------------------------------------------------------------------------------- architecture
def test_decoder_has_the_released_keys_and_parameter_count():
    decoder = Decoder()
    assert list(decoder.state_dict()) == [f"{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")]
    assert n_params(decoder) == 3_505_219
    assert len(decoder) == 29 and isinstance(decoder[3], torch.nn.Upsample) and decoder[3].mode == "nearest"
    assert isinstance(decoder[0], torch.nn.ReflectionPad2d) and isinstance(decoder[28], torch.nn.Conv2d)
    assert not any(isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d, torch.nn.Tanh, torch.nn.Sigmoid))
                   for m in decoder)
    assert decoder(torch.randn(2, 512, 4, 5)).shape == (2, 3, 32, 40)  # three nearest x2 upsamplings


def test_encoder_is_vgg_normalised_cut_after_relu4_1(vgg_file):
    path, full = vgg_file
    encoder = VGGEncoder(path)
    assert list(encoder.state_dict()) == [f"{i}.{p}" for i in VGG_CONV_INDICES for p in ("weight", "bias")]
    assert all(torch.equal(v, full[k]) for k, v in encoder.state_dict().items())  # the file's own keys
    assert len(encoder) == 31 and encoder[-1].__class__ is torch.nn.ReLU
    pools = [m for m in encoder if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 3 and all(p.ceil_mode for p in pools)
    x = torch.rand(1, 3, 36, 20)
    feats = encoder.features(x)
    reference = VGGFeatures("vgg19", ("relu1_1", "relu2_1", "relu3_1", "relu4_1"), path, variant="adain")(x)
    for mine, name in zip(feats, ("relu1_1", "relu2_1", "relu3_1", "relu4_1")):
        assert torch.allclose(mine, reference[name])
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 36, 20), (128, 18, 10), (256, 9, 5), (512, 5, 3)]  # ceil
    assert torch.equal(encoder(x), feats[-1])
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training


def test_model_state_dict_holds_encoder_and_decoder_only():
    m = model()
    assert {k.split(".")[0] for k in m.state_dict()} == {"encoder", "decoder"}
    assert m.inference_modules == ("encoder", "decoder") and m.io["size_multiple"] == 8 and m.task == "style"
    assert m.monitor == ("val/loss", "min")


# ---------------------------------------------------------------------------------------- AdaIN op
def test_adain_output_has_the_style_mean_and_std():
    torch.manual_seed(0)
    c, s = torch.randn(2, 8, 6, 5) * 3 + 1, torch.randn(2, 8, 7, 4) * 0.5 - 2
    out = adain(c, s)
    assert torch.allclose(out.mean((2, 3)), s.mean((2, 3)), atol=1e-5)
    # unbiased std + eps: out's unbiased variance is σ_s² · var_c / (var_c + eps), σ_s² = var_s + eps
    var_c, var_s = c.flatten(2).var(2), s.flatten(2).var(2)
    expected = (var_s + 1e-5) * var_c / (var_c + 1e-5)
    assert torch.allclose(out.flatten(2).var(2), expected, rtol=1e-4)
    explicit = (c - c.mean((2, 3), keepdim=True)) / (c.flatten(2).var(2) + 1e-5).sqrt()[..., None, None] \
        * (s.flatten(2).var(2) + 1e-5).sqrt()[..., None, None] + s.mean((2, 3), keepdim=True)
    assert torch.allclose(out, explicit, atol=1e-5)
    assert torch.allclose(adain(c, s[:1]), adain(c, s[:1].expand(2, -1, -1, -1)), atol=1e-6)  # one style, 2 contents


# ------------------------------------------------------------------------------ test-time controls
def test_alpha_trades_content_features_for_the_adain_target():
    torch.manual_seed(0)
    m = model().eval()
    content, style = torch.rand(1, 3, 32, 40), torch.rand(1, 3, 24, 48)
    with torch.no_grad():
        fc, fs = m.encoder(content), m.encoder(style)
        plain, full = m.decoder(fc).clamp(0, 1), m.decoder(adain(fc, fs)).clamp(0, 1)
        half = m.decoder(0.5 * adain(fc, fs) + 0.5 * fc).clamp(0, 1)
    assert torch.allclose(m.stylize(content, style, alpha=0.0), plain, atol=1e-5)
    assert torch.allclose(m.stylize(content, style), full, atol=1e-5)
    assert torch.allclose(m.stylize(content, style, alpha=0.5), half, atol=1e-5)
    assert torch.allclose(m(content, style, alpha=0.5).clamp(0, 1), half, atol=1e-5)
    assert not torch.allclose(plain, full, atol=1e-3)
    odd = m.stylize(torch.rand(2, 3, 21, 30), style)  # any size: padded to 8 (and 16) and cropped back
    assert odd.shape == (2, 3, 21, 30) and 0 <= odd.min() and odd.max() <= 1


def test_style_interpolation_weights_blend_the_adain_targets():
    torch.manual_seed(1)
    m = model().eval()
    content, s1, s2 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 24), torch.rand(1, 3, 40, 40)
    single = m.stylize(content, s1)
    assert torch.allclose(m.stylize(content, [s1, s2], weights=[1.0, 0.0]), single, atol=1e-6)
    with torch.no_grad():
        fc = m.encoder(content)
        blended = m.decoder(0.3 * adain(fc, m.encoder(s1)) + 0.7 * adain(fc, m.encoder(s2))).clamp(0, 1)
    assert torch.allclose(m.stylize(content, [s1, s2], weights=[0.3, 0.7]), blended, atol=1e-5)
    assert torch.allclose(m.stylize(content, [s1, s2], weights=[3, 7]), blended, atol=1e-5)  # normalised to sum 1
    assert torch.allclose(m.stylize(content, [s1, s2]), m.stylize(content, [s1, s2], weights=[1, 1]), atol=1e-6)
    with pytest.raises(ZooError, match="3 weights for 2 style images"):
        m.stylize(content, [s1, s2], weights=[1, 1, 1])
    with pytest.raises(ZooError, match=">= 0"):
        m.stylize(content, [s1, s2], weights=[1, -1])


def test_coral_gives_the_style_image_the_content_colour_statistics():
    g = torch.Generator().manual_seed(0)
    mix = torch.tensor([[1.0, 0.3, 0.0], [0.2, 1.0, 0.4], [0.0, 0.5, 1.0]])
    content = (mix @ torch.rand(3, 32 * 32, generator=g)).view(1, 3, 32, 32) * 0.5
    style = torch.rand(1, 3, 48, 40, generator=g) * 0.3 + 0.6  # another size: the result must not depend on it

    def stats(x):
        flat = x.reshape(3, -1).double()
        return flat.mean(1), torch.cov(flat)

    for source in (style, style[..., :32, :32]):
        moved = coral(source, content)
        assert moved.shape == source.shape
        mean, cov = stats(moved)
        c_mean, c_cov = stats(content)
        assert torch.allclose(mean, c_mean, atol=1e-5)
        assert torch.allclose(cov, c_cov, atol=2e-3 * c_cov.abs().max())


def test_preserve_color_stylizes_with_the_coral_transferred_style():
    torch.manual_seed(2)
    m = model().eval()
    content, style = torch.rand(1, 3, 32, 32) * 0.5, torch.rand(1, 3, 24, 40)
    with torch.no_grad():  # coral's output may leave [0, 1] slightly: it goes to the encoder unclamped
        fc = m.encoder(content)
        expected = m.decoder(adain(fc, m.encoder(coral(style, content)))).clamp(0, 1)
    out = m.stylize(content, style, preserve_color=True)
    assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(out, m.stylize(content, style), atol=1e-3)
    two = m.stylize(torch.cat([content, content.flip(-1)]), style, preserve_color=True)  # per content image
    assert torch.allclose(two[:1], expected, atol=1e-5)


def test_masks_give_each_region_its_own_style():
    torch.manual_seed(3)
    m = model().eval()
    content, s1, s2 = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 32), torch.rand(1, 3, 40, 32) * 0.5
    full = torch.ones(32, 48)
    # test.lua's single mask with two styles: inside -> style 1; an all-inside mask is style 1 everywhere
    assert torch.allclose(m.stylize(content, [s1, s2], masks=full), m.stylize(content, s1), atol=1e-5)
    left = torch.zeros(32, 48)
    left[:, :24] = 1
    assert torch.allclose(m.stylize(content, [s1, s2], masks=left),
                          m.stylize(content, [s1, s2], masks=[left, 1 - left]), atol=1e-6)
    # at the feature level: each region carries its style's statistics, normalised by its own content stats
    with torch.no_grad():
        fc, f1, f2 = m.encoder(content), m.encoder(s1), m.encoder(s2)
    regions = torch.zeros(2, *fc.shape[-2:], dtype=torch.bool)
    regions[0, :, :3], regions[1, :, 3:] = True, True
    t = masked_adain(fc, [f1, f2], regions)
    for k, (style_feat, region) in enumerate(((f1, regions[0]), (f2, regions[1]))):
        part = t[0][:, region]
        assert torch.allclose(part.mean(1), style_feat.mean((2, 3))[0], atol=1e-3), k
        assert torch.allclose(adain(fc[..., region].unsqueeze(-1), style_feat).squeeze(-1), t[..., region], atol=1e-5)
    changed = masked_adain(fc, [f1 * 2 + 1, f2], regions)
    assert torch.equal(changed[..., regions[1]], t[..., regions[1]])  # style 1 does not reach region 2
    assert not torch.allclose(changed[..., regions[0]], t[..., regions[0]])
    with pytest.raises(ZooError, match="3 masks for 2 style images"):
        m.stylize(content, [s1, s2], masks=[left, 1 - left, left])
    with pytest.raises(ZooError, match="overlap"):
        m.stylize(content, [s1, s2], masks=[full, left])
    with pytest.raises(ZooError, match="masks and weights"):
        m.stylize(content, [s1, s2], masks=left, weights=[1, 1])


def test_styles_are_encoded_once_outside_the_tiles_and_the_memory_probe(monkeypatch):
    """f(s) does not grow with the content: `stylize` encodes each style once, so a large style image neither
    inflates the per-pixel memory estimate (which made a 512² AdaIN stylize tile) nor is re-encoded per tile."""
    import zoo.tasks
    from zoo import tiling

    torch.manual_seed(0)
    m = model().eval()
    content, style = torch.rand(1, 3, 128, 128), torch.rand(1, 3, 256, 256)
    encoded = m.encode_styles([style])
    assert torch.equal(m.stylize_batch(content, encoded), m.stylize_batch(content, [style]))
    content_only = tiling.bytes_per_pixel(lambda p: m.stylize_batch(p, encoded), multiple=8)
    with_style = tiling.bytes_per_pixel(lambda p: m.stylize_batch(p, [style]), multiple=8)
    assert with_style > 10 * content_only  # what the probe saw when the style was encoded inside it
    shapes: list[tuple[int, int]] = []
    forward = m.encoder.forward
    monkeypatch.setattr(m.encoder, "forward", lambda x: (shapes.append(tuple(x.shape[-2:])), forward(x))[1])
    tiles: list[int] = []
    monkeypatch.setattr(zoo.tasks, "tiled", lambda fn, x, **k: (tiles.append(k["tile"]), tiling.tiled(fn, x, **k))[1])
    tiling.set_budget(2 * content_only * 128 * 128 / 2**20)  # the content fits twice over
    try:
        whole = m.stylize(content, style)
    finally:
        tiling.set_budget(None)
    assert not tiles and shapes.count((256, 256)) == 1
    assert torch.allclose(whole, m.stylize(content, style, tile=0), atol=1e-6)
    shapes.clear()
    m.stylize(content, style, tile=64)
    assert tiles == [64] and shapes.count((256, 256)) == 1 and shapes.count((64, 64)) > 1  # one encoding, 4+ tiles


def test_bad_style_input_is_rejected_with_what_to_do():
    m = model()
    with pytest.raises(ZooError, match="needs a style image"):
        m.stylize(torch.rand(1, 3, 16, 16))
    with pytest.raises(ZooError, match="at least 9 pixels"):
        m.stylize(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 8, 30))
    assert m.stylize(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 8, 30), style_size=16).shape == (1, 3, 16, 16)
    with pytest.raises(ZooError, match="no option 'steps'"):
        m.stylize(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), steps=3)


# -------------------------------------------------------------------------------------- training
def _stats(x):
    flat = x.flatten(2)
    return flat.mean(2), (flat.var(2, unbiased=True) + 1e-5).sqrt()


def test_loss_is_eq_11_to_13_written_out():
    torch.manual_seed(4)
    m = model(content_weight=2.0, style_weight=3.0)
    content, style = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 24, 40)
    loss_c, loss_s, g_t = m.losses(content, style)
    enc = list(m.encoder)
    slices = [torch.nn.Sequential(*enc[a:b]) for a, b in ((0, 4), (4, 11), (11, 18), (18, 31))]

    def phis(x):
        out = []
        for block in slices:
            x = block(x)
            out.append(x)
        return out

    fs, fc = phis(style), phis(content)[-1]
    (mc, sc), (ms, ss) = _stats(fc), _stats(fs[-1])
    t = (fc - mc[..., None, None]) / sc[..., None, None] * ss[..., None, None] + ms[..., None, None]
    g = m.decoder(t)
    assert torch.allclose(g, g_t, atol=1e-5)
    fg = phis(g)
    explicit_c = ((fg[-1] - t) ** 2).mean()
    explicit_s = sum(((_stats(a)[0] - _stats(b)[0]) ** 2).mean() + ((_stats(a)[1] - _stats(b)[1]) ** 2).mean()
                     for a, b in zip(fg, fs))
    assert torch.allclose(loss_c, explicit_c, rtol=1e-4) and torch.allclose(loss_s, explicit_s, rtol=1e-4)
    total = m.training_step({"content": content, "style": style}, 0)
    assert torch.allclose(total, 2.0 * explicit_c + 3.0 * explicit_s, rtol=1e-4)


class _RecordLR(Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_lr_decays_every_iteration_and_continues_after_resume(tmp_path):
    lr, decay = 1e-4, 0.5  # a large decay makes every step's value distinct
    loader = DataLoader(pairs(2, size=16, style_size=16), batch_size=1)
    first = _RecordLR()
    trainer = tiny_trainer(tmp_path, max_steps=3, callbacks=[first], limit_val_batches=0)
    trainer.fit(model(lr=lr, lr_decay=decay), loader)
    assert first.lrs == pytest.approx([lr / (1 + decay * i) for i in range(3)], rel=1e-12)
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(lr / (1 + decay * 3), rel=1e-12)
    trainer.save_checkpoint(tmp_path / "step3.ckpt")
    resumed = _RecordLR()
    trainer = tiny_trainer(tmp_path, max_steps=5, callbacks=[resumed], limit_val_batches=0)
    trainer.fit(model(lr=lr, lr_decay=decay), loader, ckpt_path=tmp_path / "step3.ckpt")
    assert resumed.lrs == pytest.approx([lr / (1 + decay * i) for i in (3, 4)], rel=1e-12)
    m = model()
    sched = m.configure_optimizers()["lr_scheduler"]
    assert sched["interval"] == "step" and sched["frequency"] == 1
    opt = sched["scheduler"].optimizer
    for _ in range(1000):
        opt.step()
        sched["scheduler"].step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4 / (1 + 5e-5 * 1000), rel=1e-12)  # the recipe's default


def test_only_the_decoder_learns_and_a_fixed_pair_is_fitted(tmp_path):
    torch.manual_seed(5)
    m = model()  # the recipe's Adam 1e-4 (1e-3 already oscillates on a fixed pair)
    encoder_before = {k: v.clone() for k, v in m.encoder.state_dict().items()}
    loss_c, loss_s, _ = m.losses(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    (loss_c + 10 * loss_s).backward()
    assert all(p.grad is None for p in m.encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.decoder.parameters())
    m.zero_grad(set_to_none=True)

    loader = DataLoader(pairs(1, size=32, style_size=32, seed=7), batch_size=1)  # one fixed pair
    batch = next(iter(loader))
    with torch.no_grad():
        before = sum(w * v for w, v in zip((1.0, 10.0), m.losses(batch["content"], batch["style"])[:2]))
    trainer = tiny_trainer(tmp_path, max_steps=30, limit_val_batches=0)
    trainer.fit(m, loader)
    with torch.no_grad():
        after = sum(w * v for w, v in zip((1.0, 10.0), m.losses(batch["content"], batch["style"])[:2]))
    assert after < 0.75 * before, (before, after)
    assert all(torch.equal(v, encoder_before[k]) for k, v in m.encoder.state_dict().items())
    assert not m.encoder.training and not any(p.requires_grad for p in m.encoder.parameters())
    assert m.random_features  # vgg_weights=None was recorded by configure_model


def test_validation_logs_the_loss_terms(tmp_path):
    m = model()
    trainer = tiny_trainer(tmp_path, max_steps=1, limit_val_batches=1)
    loader = DataLoader(pairs(2, size=16, style_size=24), batch_size=2)
    trainer.fit(m, loader, loader)
    metrics = trainer.callback_metrics
    assert {"val/loss_c", "val/loss_s", "val/loss"} <= set(metrics)
    assert torch.allclose(metrics["val/loss"], metrics["val/loss_c"] + 10 * metrics["val/loss_s"], rtol=1e-5)


def test_training_is_deterministic_under_a_seed(tmp_path):
    states = []
    for run in range(2):
        L.seed_everything(11, verbose=False)
        m = model()
        tiny_trainer(tmp_path / str(run), max_steps=2, limit_val_batches=0).fit(
            m, DataLoader(pairs(4, size=16, style_size=16), batch_size=2, shuffle=True))
        states.append(m)
    assert_same_state(states[0], states[1])


# ----------------------------------------------------------------------------------- weights I/O
def test_save_pretrained_round_trip_keeps_the_encoder(tmp_path):
    torch.manual_seed(6)
    m = model()
    m.configure_model()
    with torch.no_grad():
        m.decoder[28].bias.add_(0.3)
    folder = m.save_pretrained(tmp_path / "adain")
    loaded = zoo.load(folder)
    assert type(loaded) is AdaIN and loaded.random_features
    assert_same_state(m, loaded)
    content, style = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 32, 16)
    assert torch.equal(loaded.stylize(content, style), m.eval().stylize(content, style))
    loaded.configure_model()  # a loaded model keeps its own encoder when trained further
    assert_same_state(m, loaded)


def test_configure_model_loads_vgg_normalised_once(vgg_file, no_vgg_files, monkeypatch, caplog):
    path, full = vgg_file
    with pytest.raises(WeightsNotFoundError, match="vgg_normalised.pth"):
        AdaIN().configure_model()
    with caplog.at_level(logging.WARNING):
        demo = AdaIN(vgg_weights=DEFAULT_OR_RANDOM)
        demo.configure_model()
    assert demo.random_features and "RANDOM VGG WEIGHTS" in caplog.text
    monkeypatch.setenv("ZOO_VGG_WEIGHTS", str(path))
    m = AdaIN()
    assert not torch.equal(m.encoder[2].weight, full["2.weight"])
    m.configure_model()
    assert all(torch.equal(v, full[k]) for k, v in m.encoder.state_dict().items())
    assert not m.random_features
    with torch.no_grad():
        m.encoder[2].weight.add_(1.0)  # e.g. restored from a checkpoint: a second call must not reload
    m.configure_model()
    assert not torch.equal(m.encoder[2].weight, full["2.weight"])
    # resuming: configure_model's random encoder is replaced by the checkpoint's, and so is its warning
    demo.on_load_checkpoint({"zoo": {}})
    assert not demo.random_features


def test_converter_reads_the_released_decoder_and_vgg_normalised(vgg_file, no_vgg_files):
    path, full = vgg_file
    torch.manual_seed(8)
    decoder_state = {f"module.{k}": v.clone() for k, v in Decoder().state_dict().items()}  # DataParallel prefix
    converted = from_official(decoder_state, vgg_weights=str(path))
    assert isinstance(converted, AdaIN) and not converted.random_features
    assert all(torch.equal(v, decoder_state[f"module.{k}"]) for k, v in converted.decoder.state_dict().items())
    assert all(torch.equal(v, full[k]) for k, v in converted.encoder.state_dict().items())
    assert zoo.registry.get_converter("adain") is from_official
    with pytest.raises(WeightsNotFoundError, match="vgg_normalised.pth"):
        from_official(decoder_state)  # "default": looked up, not there
    bad = {k: v for k, v in decoder_state.items() if not k.endswith("28.bias")}
    bad["module.29.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"(?s)28\.bias.*29\.weight"):
        from_official(bad, vgg_weights=str(path))
