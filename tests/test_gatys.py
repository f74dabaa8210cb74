"""Gatys et al.: the paper's recipe as defaults, the objective (eq. 1-7) and its fall under L-BFGS and
Adam, init modes, true L-BFGS iterations, the clamp, coarse-to-fine passes, colour preservation, saved
intermediates, style blending, determinism and the missing-weights message. Random VGG (weights=None)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import WeightsNotFoundError, ZooError
from zoo.imageopt import from_caffe_range, resize_shorter, to_caffe_range
from zoo.losses.style import gram_matrix
from zoo.methods.gatys import Gatys, match_color, rgb_to_yiq, yiq_to_rgb
from zoo.registry import method_defaults


@pytest.fixture(scope="module")
def model() -> Gatys:
    return Gatys(vgg_weights=None, image_size=None, progress=False)


def smooth(*shape, seed=0, lo=0.0, hi=1.0) -> torch.Tensor:
    """A blurred random image in [lo, hi] (photographs are smoother than white noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(*shape, generator=g), 3, 1, 1, count_include_pad=False)
    return lo + (hi - lo) * (x - x.min()) / (x.max() - x.min())


CONTENT, STYLE = smooth(1, 3, 32, 32, seed=1), smooth(1, 3, 28, 36, seed=2)


def test_defaults_are_the_papers_recipe():
    d = method_defaults("gatys")
    assert d["content_layers"] == {"relu4_2": 1.0}
    assert d["style_layers"] == {"relu1_1": 0.2, "relu2_1": 0.2, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.2}
    assert d["convention"] == "paper" and d["content_weight"] / d["style_weight"] == pytest.approx(1e-3)
    assert (d["optimizer"], d["init"], d["pool"], d["vgg_variant"], d["steps"], d["image_size"]) == (
        "lbfgs", "noise", "avg", "gatys", 500, 512)
    assert d["tv_weight"] == 0 and d["preserve_color"] is None and d["multiscale"] is None and d["clamp"] is False
    assert Gatys.weight_free and Gatys.paper == "arXiv:1508.06576" and Gatys.task == "style"


def test_objective_is_eq_7_with_the_papers_normalisation(model):
    x = to_caffe_range(smooth(1, 3, 32, 32, seed=3))
    p, a = model.targets(CONTENT, [STYLE])
    s = model._settings({})
    terms = model.objective(p, a, s, alpha=0.5)(x)
    feats = model.vgg(from_caffe_range(x))
    content = 0.5 * (feats["relu4_2"] - p["relu4_2"]).pow(2).sum()  # eq. 1
    style_feats = model.vgg(STYLE)
    style = 0.0
    for name in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"):
        f = feats[name]
        n, m = f.shape[1], f.shape[2] * f.shape[3]
        fs = style_feats[name]
        target = gram_matrix(fs) * m / (fs.shape[2] * fs.shape[3])  # the style Gram at the output's size
        style = style + 0.2 * (gram_matrix(f) - target).pow(2).sum() / (4 * n**2 * m**2)  # eq. 4, 5
    assert terms["loss_content"].item() == pytest.approx(1.0 * content.item(), rel=1e-4)
    assert terms["loss_style"].item() == pytest.approx(0.5 * 1e3 * style.item(), rel=1e-4)  # alpha scales β
    assert "loss_tv" not in terms


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_objective_falls_tenfold_from_noise(model, optimizer):
    result = model.optimize(CONTENT, STYLE, steps=30, optimizer=optimizer)
    first, last = result.history[0], result.history[-1]
    assert first["loss"] > 10 * last["loss"]
    assert last["loss_style"] < first["loss_style"] and last["loss_content"] < first["loss_content"]
    assert result.tensor.shape == (1, 3, 32, 32) and 0 <= result.tensor.min() and result.tensor.max() <= 1
    assert result.random_features and result.image.size == (32, 32)


def test_init_modes_give_the_right_start(model):
    noise = model.optimize(CONTENT, STYLE, steps=0, init="noise", seed=3)
    expected = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))  # N(0, 1) in 0-255 units
    assert torch.allclose(noise.tensor, from_caffe_range(expected), atol=1e-6)
    content = model.optimize(CONTENT, STYLE, steps=0, init="content")
    assert torch.allclose(content.tensor, CONTENT, atol=1e-5)
    style = model.optimize(CONTENT, STYLE, steps=0, init="style")
    scaled = resize_shorter(STYLE, 32)  # style_scale 1: the style's shorter side is the content's
    stretched = torch.nn.functional.interpolate(scaled, size=(32, 32), mode="bilinear", align_corners=False,
                                                antialias=True)
    assert torch.allclose(style.tensor, stretched, atol=1e-5)
    assert len(content.history) == 1  # no step: only the start was evaluated


def test_lbfgs_steps_are_iterations(model):
    calls = []
    hook = model.vgg.register_forward_hook(lambda *args: calls.append(1))
    try:
        result = model.optimize(CONTENT, STYLE, steps=4)
    finally:
        hook.remove()
    # targets: content + style; then one closure per L-BFGS iteration and the final evaluation
    assert len(calls) == 2 + 4 + 1 and len(result.history) == 5


def test_clamp_keeps_every_iterate_in_range(model, monkeypatch):
    def run(clamp):
        seen = []
        original = Gatys.objective

        def spy(self, *args, **kwargs):
            terms = original(self, *args, **kwargs)

            def wrapped(x):
                rgb = from_caffe_range(x.detach())
                seen.append((float(rgb.min()), float(rgb.max())))
                return terms(x)

            return wrapped

        monkeypatch.setattr(Gatys, "objective", spy)
        model.optimize(CONTENT, STYLE, steps=6, optimizer="adam", lr=200.0, clamp=clamp)
        monkeypatch.setattr(Gatys, "objective", original)
        return seen

    free = run(False)
    assert min(lo for lo, _ in free) < -0.05 or max(hi for _, hi in free) > 1.05  # the steps leave [0, 1]
    clamped = run(True)
    assert all(lo >= -1e-5 and hi <= 1 + 1e-5 for lo, hi in clamped)


def test_multiscale_runs_each_size_and_stylize_returns_the_contents_size(model):
    result = model.optimize(CONTENT, STYLE, multiscale=[16, 24], steps=[2, 3])
    assert [h["size"] for h in result.history] == [16.0] * 3 + [24.0] * 4
    assert result.tensor.shape == (1, 3, 24, 24)
    content = Image.fromarray((np.random.default_rng(0).random((30, 20, 3)) * 255).astype(np.uint8))
    out = model.stylize(content, STYLE, multiscale=[16, 24], steps=1)
    assert isinstance(out, Image.Image) and out.size == (20, 30)


def test_preserve_color_luminance_keeps_the_contents_chroma(model):
    content = smooth(1, 3, 32, 32, seed=4, lo=0.3, hi=0.7)
    out = model.stylize(content, STYLE, preserve_color="luminance", init="content", steps=3)
    inside = ((out > 1e-3) & (out < 1 - 1e-3)).all(1, keepdim=True).expand(-1, 2, -1, -1)  # not clipped
    assert inside.float().mean() > 0.5
    assert torch.allclose(rgb_to_yiq(out)[:, 1:][inside], rgb_to_yiq(content)[:, 1:][inside], atol=1e-4)
    assert not torch.allclose(out, content, atol=1e-3)  # the luminance did change
    rgb = torch.rand(1, 3, 4, 4)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(rgb)), rgb, atol=1e-5)


def test_preserve_color_histogram_gives_the_style_the_contents_colours(model, monkeypatch):
    matched = match_color(STYLE, CONTENT)
    for stat in (lambda t: t.mean((2, 3)), lambda t: t.flatten(2).std(2)):
        assert torch.allclose(stat(matched), stat(CONTENT), atol=1e-4)
    assert not torch.allclose(STYLE.mean((2, 3)), CONTENT.mean((2, 3)), atol=1e-2)
    seen = []
    original = Gatys.targets
    monkeypatch.setattr(Gatys, "targets", lambda self, c, styles, *a, **k: seen.append(styles) or original(
        self, c, styles, *a, **k))
    model.optimize(CONTENT, STYLE, preserve_color="histogram", steps=0, style_scale=28 / 32)
    assert torch.allclose(seen[0][0], matched, atol=1e-5)


def test_save_every_writes_the_intermediates(model, tmp_path):
    model.optimize(CONTENT, STYLE, steps=4, save_every=2, save_dir=str(tmp_path / "a"))
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["step00002.png", "step00004.png"]
    model.optimize(CONTENT, STYLE, steps=[2, 1], multiscale=[16, 20], save_every=1, save_dir=str(tmp_path / "b"))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "16px_step00001.png", "16px_step00002.png", "20px_step00001.png"]
    with pytest.raises(ZooError, match="save_dir"):
        model.optimize(CONTENT, STYLE, steps=1, save_every=1)


def test_style_weights_blend_the_gram_targets(model):
    other = smooth(1, 3, 32, 32, seed=5)
    _, a1 = model.targets(CONTENT, [STYLE])
    _, a2 = model.targets(CONTENT, [other])
    _, blend = model.targets(CONTENT, [STYLE, other], [1.0, 3.0])
    for name in a1:
        assert torch.allclose(blend[name], 0.25 * a1[name] + 0.75 * a2[name], rtol=1e-5)
    _, only_first = model.targets(CONTENT, [STYLE, other], [1.0, 0.0])
    assert torch.allclose(only_first["relu3_1"], a1["relu3_1"])
    out = model.stylize(CONTENT, [STYLE, other], weights=[1.0, 3.0], steps=2)
    assert out.shape == CONTENT.shape
    with pytest.raises(ZooError, match="2 weights for 1 style"):
        model.stylize(CONTENT, STYLE, weights=[1.0, 2.0], steps=1)


def test_deterministic_under_a_seed(model):
    a = model.optimize(CONTENT, STYLE, steps=3, seed=7)
    b = model.optimize(CONTENT, STYLE, steps=3, seed=7)
    c = model.optimize(CONTENT, STYLE, steps=3, seed=8)
    assert torch.equal(a.tensor, b.tensor) and a.history == b.history
    assert not torch.equal(a.tensor, c.tensor)


def test_alpha_scales_the_style_weight(model):
    result = model.stylize(CONTENT, STYLE, alpha=0.0, init="content", steps=2)
    assert torch.allclose(result, CONTENT, atol=1e-4)  # nothing but the content to match: it stays
    with pytest.raises(ZooError, match="alpha must be in"):
        model.stylize(CONTENT, STYLE, alpha=2.0)


def test_missing_vgg_weights_name_vgg_conv_pth(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    for var in ("ZOO_VGG_WEIGHTS", "ZOO_VGG_CONV_WEIGHTS", "ZOO_VGG19_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(WeightsNotFoundError, match="vgg_conv.pth") as error:
        zoo.create("gatys")
    assert "https://bethgelab.org/media/uploads/pytorch_models/vgg_conv.pth" in str(error.value)


def test_random_features_are_noted_the_vgg_is_not_saved_and_training_refuses(model, tmp_path, caplog):
    assert model.random_features and "RANDOM VGG WEIGHTS" in model.card["warnings"][0]
    assert "vgg_conv.pth" in model.card["warnings"][0]
    assert model.state_dict() == {} and list(model.parameters()) == []
    with pytest.raises(ZooError, match="python -m zoo.predict gatys content.jpg --style style.jpg --out DIR"):
        model.training_step({}, 0)
    folder = model.save_pretrained(tmp_path / "gatys")
    loaded = zoo.load(folder)
    assert isinstance(loaded, Gatys) and loaded.random_features and loaded.hparams.image_size is None
    assert torch.equal(loaded.vgg.features[0].weight, model.vgg.features[0].weight)  # seeded random VGG
    with caplog.at_level(logging.WARNING):
        loaded.stylize(CONTENT, STYLE, steps=1)
    assert "random feature weights" in caplog.text


def test_bad_options_and_inputs_raise_zoo_errors(model):
    with pytest.raises(ZooError, match="no option 'stepz'"):
        model.stylize(CONTENT, STYLE, stepz=3)
    with pytest.raises(ZooError, match="needs a style image"):
        model.stylize(CONTENT)
    with pytest.raises(ZooError, match="unknown init"):
        model.optimize(CONTENT, STYLE, init="zeros")
    with pytest.raises(ZooError, match="one per multiscale pass"):
        model.optimize(CONTENT, STYLE, multiscale=[16, 24], steps=[1, 2, 3])
    with pytest.raises(ZooError, match="has no layer"):
        Gatys(vgg_weights=None, content_layers={"relu9_9": 1.0})
