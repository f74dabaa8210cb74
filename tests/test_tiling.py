"""zoo.tiling and the verbs' `tile=` keyword: tiled output equals untiled output where the network is
local enough (exactly for receptive fields within the margin), stays close for instance-norm networks
(which share a thumbnail's statistics: tests/test_thumbnail_norm.py),
and the budget decides when verbs tile."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
import zoo.tiling as tiling
from zoo.errors import ZooError
from zoo.tiling import plan_tile, set_budget, tile_starts, tiled

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _budget_reset(monkeypatch):
    monkeypatch.delenv("ZOO_TILE_BUDGET_MB", raising=False)
    monkeypatch.delenv("ZOO_MAX_PIXELS", raising=False)
    yield
    set_budget(None)
    tiling.set_max_pixels(None)


def _local_net(scale: int = 1) -> nn.Module:
    """Receptive-field radius 1 + 2 + 1 = 4 pixels (at most the default margin of 32 // 4 = 8), stride 2
    inside: tiled == untiled up to float rounding when tile starts are multiples of 2."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, 2, 1), nn.ReLU(),
                               nn.ConvTranspose2d(6, 6, 4, 2, 1), nn.ReLU()]
    layers += [nn.Conv2d(6, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)] if scale > 1 else \
              [nn.Conv2d(6, 3, 3, padding=1)]
    return nn.Sequential(*layers).eval()


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, h // 8 + 1, w // 8 + 1, generator=g)
    return nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_local_network_tiled_equals_untiled(scale, shape):
    net, x = _local_net(scale), _image(70, 94)
    x = x[..., :70 // 2 * 2, :94 // 2 * 2]
    with torch.inference_mode():
        whole = net(x)
        parts = tiled(net, x, tile=40, overlap=16, scale=scale, multiple=2, shape=shape)
    assert parts.shape == whole.shape
    torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)


def test_windows_are_a_partition_of_unity_and_cover_the_image():
    for length, tile, overlap in [(100, 40, 16), (257, 64, 32), (64, 64, 32), (30, 64, 32)]:
        starts = tile_starts(length, tile, tile - overlap)
        assert starts[0] == 0 and min(starts[-1] + tile, length) == length
        weights = tiling._axis_weights(length, tile, starts, overlap // 4, "linear")
        total = torch.zeros(length, dtype=torch.float64)
        for s, w in zip(starts, weights):
            total[s:s + len(w)] += w
        torch.testing.assert_close(total, torch.ones(length, dtype=torch.float64))


def test_tiled_identity_is_exact_and_checks_sizes():
    x = _image(48, 64)
    torch.testing.assert_close(tiled(lambda t: t, x, tile=24, overlap=8), x, atol=1e-6, rtol=0)
    with pytest.raises(ZooError, match="not a multiple of 5"):
        tiled(lambda t: t, x, tile=25, overlap=5, multiple=5)
    with pytest.raises(ZooError, match="larger than the overlap"):
        tiled(lambda t: t, x, tile=8, overlap=8)
    with pytest.raises(ZooError, match="scale"):
        tiled(lambda t: t, x, tile=24, overlap=8, scale=2)


def test_plan_tile_follows_tile_and_budget(monkeypatch):
    net, x = _local_net(), _image(64, 96)
    assert plan_tile(0, net, x) is None
    assert plan_tile(40, net, x, multiple=8) == 40
    assert plan_tile(200, net, x) is None  # one tile covers the image
    set_budget(1e4)  # 10 GB: fits
    assert plan_tile(None, net, x) is None
    set_budget(0.05)  # 50 kB: tiles, never smaller than twice the overlap
    assert plan_tile(None, net, x, multiple=4) == 64
    set_budget(None)
    monkeypatch.setenv("ZOO_TILE_BUDGET_MB", "0.2")
    side = plan_tile(None, net, x, multiple=4)
    assert side is not None and side < 96 and side % 4 == 0
    monkeypatch.setenv("ZOO_TILE_BUDGET_MB", "lots")
    with pytest.raises(ZooError, match="ZOO_TILE_BUDGET_MB"):
        plan_tile(None, net, x)
    for bad in (-1, 2.5, True):
        with pytest.raises(ZooError, match="tile must be"):
            plan_tile(bad, net, x)
    with pytest.raises(ZooError, match=">= 0"):
        set_budget(-1)


def test_bytes_per_pixel_is_cached_and_leaves_the_rng_alone():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Dropout(0.5)).train()
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    per_pixel = tiling.bytes_per_pixel(net)
    assert torch.equal(torch.rand(3), expected)
    assert per_pixel == pytest.approx(tiling.PEAK_FACTOR * 16 * 4)
    assert tiling.bytes_per_pixel(net) == per_pixel


# ------------------------------------------------------------------------------------------------ verbs
def _bicubic_like_srresnet():
    from zoo.methods.srgan import SRGAN

    torch.manual_seed(0)
    return SRGAN(channels=4, num_blocks=1, vgg_weights=None)


def test_upscale_tiles_when_over_budget_and_matches_untiled(monkeypatch):
    model, x = _bicubic_like_srresnet(), _image(48, 80)
    calls = []
    real = tiling.tiled
    monkeypatch.setattr("zoo.tasks.tiled", lambda *a, **k: calls.append(k["tile"]) or real(*a, **k))
    whole = model.upscale(x, tile=0)
    assert not calls and whole.shape == (1, 3, 192, 320)
    set_budget(0.05)
    auto = model.upscale(x)
    assert calls and calls[0] < 80
    explicit = model.upscale(x, tile=48)
    # receptive field ~9 LR pixels (9x9 convs at both ends) against the margin of 8: a few seam pixels
    # differ by < 1e-2, the rest to float rounding
    for tiled_out in (auto, explicit):
        torch.testing.assert_close(tiled_out, whole, atol=1e-2, rtol=0)
        assert (tiled_out - whole).abs().mean() < 1e-4


def test_translate_instance_norm_tiles_stay_close():
    """CycleGAN's instance norm takes a thumbnail's statistics in every tile (tests/test_thumbnail_norm.py);
    the receptive field still makes tiles differ a little from the whole image."""
    from zoo.methods.cyclegan import CycleGAN

    torch.manual_seed(0)
    model, x = CycleGAN(ngf=4, ndf=4, netG="resnet_6blocks"), _image(64, 96)
    whole, parts = model.translate(x, tile=0), model.translate(x, tile=48)
    assert parts.shape == whole.shape == x.shape
    assert (parts - whole).abs().mean() < 0.1


def test_stylize_tiles_feed_forward_methods_only():
    from zoo.methods.gatys import Gatys
    from zoo.methods.johnson import Johnson

    torch.manual_seed(0)
    model, x = Johnson(width=4, vgg_weights=None), _image(64, 96)
    whole, parts = model.stylize(x, tile=0), model.stylize(x, tile=48)
    assert parts.shape == whole.shape == x.shape
    assert (parts - whole).abs().mean() < 0.05
    with pytest.raises(ZooError, match="cannot tile"):
        Gatys(vgg_weights=None).stylize(x, x, tile=32)


@pytest.mark.parametrize("key", ["johnson", "cin", "adain"])
def test_feed_forward_stylize_runs_in_inference_mode(key):
    from zoo.methods.adain import AdaIN
    from zoo.methods.cin import CIN
    from zoo.methods.johnson import Johnson

    torch.manual_seed(0)
    x = _image(32, 32)
    model = {"johnson": lambda: Johnson(width=4, vgg_weights=None),
             "cin": lambda: CIN(num_styles=2, width=4, vgg_weights=None),
             "adain": lambda: AdaIN(vgg_weights=None)}[key]()
    style = {"johnson": None, "cin": 0, "adain": model.prepare_style(_image(32, 32, seed=1))}[key]
    assert model.stylize_batch(x, style).is_inference()


def test_colorize_stripes_give_the_same_image():
    from zoo.methods.colorization import Colorization

    torch.manual_seed(0)
    model, x = Colorization(width=0.125), _image(40, 56)
    whole = model.colorize(x, tile=0)
    assert torch.equal(model.colorize(x, tile=8), whole)  # 64 pixels: one row per stripe
    set_budget(0.01)
    assert torch.equal(model.colorize(x), whole)
    with pytest.raises(ZooError, match="tile must be"):
        model.colorize(x, tile=-3)


# ------------------------------------------------------------------------------------ the pixel budget
def _says_both_ways_out(error: pytest.ExceptionInfo, tiling_possible: bool = True) -> None:
    message = str(error.value)
    assert "megapixels" in message and "set_max_pixels" in message and "ZOO_MAX_PIXELS" in message
    assert ("tile=None" in message) == tiling_possible


def test_pixel_budget_refuses_untiled_inference_and_tiles_otherwise(monkeypatch):
    model, x = _bicubic_like_srresnet(), _image(48, 80)  # 3840 pixels
    calls = []
    real = tiling.tiled
    monkeypatch.setattr("zoo.tasks.tiled", lambda *a, **k: calls.append(k["tile"]) or real(*a, **k))
    whole = model.upscale(x)  # under the default budget (50 MP) and the memory budget: one piece
    assert not calls and tiling.get_max_pixels() == tiling.DEFAULT_MAX_PIXELS
    tiling.set_max_pixels(48 * 48)
    with pytest.raises(ZooError) as refused:
        model.upscale(x, tile=0)
    _says_both_ways_out(refused)
    assert "48x80" in str(refused.value)
    auto = model.upscale(x)  # tiling on (the default): tiles no larger than the budget, not an error
    assert calls and calls[-1] ** 2 <= 48 * 48
    assert auto.shape == whole.shape and (auto - whole).abs().mean() < 1e-4
    model.upscale(x, tile=200)  # an explicit tile larger than the budget is capped too
    assert calls[-1] ** 2 <= 48 * 48
    tiling.set_max_pixels(0)  # no limit
    assert torch.equal(model.upscale(x, tile=0), whole)
    tiling.set_max_pixels(None)
    monkeypatch.setenv("ZOO_MAX_PIXELS", "1000")
    with pytest.raises(ZooError, match="above the pixel budget of 0.0 megapixels"):
        model.upscale(x, tile=0)
    monkeypatch.setenv("ZOO_MAX_PIXELS", "lots")
    with pytest.raises(ZooError, match="ZOO_MAX_PIXELS"):
        model.upscale(x)
    for bad in (-1, 2.5, True):
        with pytest.raises(ZooError, match="pixel budget"):
            tiling.set_max_pixels(bad)


def test_pixel_budget_where_tiling_is_impossible_or_off():
    from zoo.methods.colorization import Colorization
    from zoo.methods.gatys import Gatys

    torch.manual_seed(0)
    x = _image(40, 56)
    tiling.set_max_pixels(32 * 32)
    with pytest.raises(ZooError) as gatys:
        Gatys(vgg_weights=None).stylize(x, x, steps=1)
    _says_both_ways_out(gatys, tiling_possible=False)
    munit = zoo.create("munit", dim=8, mlp_dim=16, dis_dim=8, n_res=1, val_lpips=False)
    with pytest.raises(ZooError) as sample:
        munit.sample(x, n=2, seed=0)
    _says_both_ways_out(sample, tiling_possible=False)
    colour = Colorization(width=0.125)
    with pytest.raises(ZooError) as whole:
        colour.colorize(x, tile=0)
    _says_both_ways_out(whole)
    assert colour.colorize(x).shape == x.shape  # the default runs the full-size Lab work in stripes
    tiling.set_max_pixels(None)
    assert munit.sample(x, n=2, seed=0).shape == (2, 3, 40, 56)
