"""Thumbnail instance normalisation (zoo.nn.thumbnail_norm): tiles normalised with statistics recorded on
a thumbnail. With the whole image as its own thumbnail, a per-pixel network with any of zoo's
normalisations gives the untiled output exactly; per-tile statistics do not. On real generators the
thumbnail's statistics bring tiled output much closer to the untiled output than per-tile statistics."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo.tiling as tiling
from zoo.errors import ZooError
from zoo.losses import mean_std
from zoo.nn import AdaptiveInstanceNorm2d, ConditionalInstanceNorm2d, MunitLayerNorm
from zoo.nn.thumbnail_norm import norm_statistics, thumbnail_normalized, thumbnail_of
from zoo.tiling import tiled

pytestmark = pytest.mark.usefixtures("one_thread")


class _AdaIN(nn.Module):
    """AdaIN (Huang & Belongie eq. 8) through zoo.losses.mean_std, towards fixed target statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = mean_std(x)
        return (x - mean) / std * 0.5 + 0.25


class _Cin(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = ConditionalInstanceNorm2d(4, 2)
        nn.init.uniform_(self.norm.gamma, 0.5, 1.5)
        nn.init.normal_(self.norm.beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x, torch.tensor([[0.3, 0.7]]))


class _MunitAdaIN(AdaptiveInstanceNorm2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]  # (B·C,) parameters, as MUNIT's assign_adain_params gives them
        self.weight, self.bias = torch.linspace(0.5, 2.0, 4).repeat(b), torch.linspace(-1.0, 1.0, 4).repeat(b)
        return super().forward(x)


def _instance_affine() -> nn.Module:
    norm = nn.InstanceNorm2d(4, affine=True)
    nn.init.uniform_(norm.weight, 0.5, 1.5)
    nn.init.normal_(norm.bias)
    return norm


NORMS = {
    "InstanceNorm2d": lambda: nn.InstanceNorm2d(4),
    "InstanceNorm2d-affine": _instance_affine,
    "ConditionalInstanceNorm2d": _Cin,
    "AdaptiveInstanceNorm2d": lambda: _MunitAdaIN(4),
    "MunitLayerNorm": lambda: MunitLayerNorm(4),
    "BatchNorm2d-train": lambda: nn.BatchNorm2d(4).train(),
    "mean_std": _AdaIN,
}


def _pointwise(norm: nn.Module) -> nn.Module:
    """1x1 convolutions around `norm`: no receptive field, so only the statistics can make tiles differ."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 1), norm, nn.ReLU(), nn.Conv2d(4, 3, 1))


def _image(h: int, w: int, batch: int = 2) -> torch.Tensor:
    """Left half dark, right half bright: tiles on either side have very different statistics."""
    torch.manual_seed(1)
    x = torch.rand(batch, 3, h, w) * 0.3
    x[..., w // 2:] += 0.6
    return x


def _photo(h: int, w: int) -> torch.Tensor:
    """scikit-image's coffee photograph, downscaled: a thumbnail keeps a photo's statistics (most of its
    energy is at low frequencies), unlike pixel noise, which averaging removes."""
    from skimage import data

    photo = torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255
    return nn.functional.interpolate(photo, size=(h, w), mode="area")


@pytest.mark.parametrize("kind", list(NORMS))
def test_whole_image_as_thumbnail_gives_the_untiled_output(kind):
    net = _pointwise(NORMS[kind]())
    x = _image(48, 96)
    with torch.no_grad():
        whole = net(x)
        shared = tiled(thumbnail_normalized(net, x), x, tile=40, overlap=16, shared_stats=False)
        own = tiled(net, x, tile=40, overlap=16, shared_stats=False)
    torch.testing.assert_close(shared, whole, rtol=1e-4, atol=1e-5)
    assert (own - whole).abs().max() > 0.05  # per-tile statistics do change the output


def test_batch_norm_replay_leaves_running_statistics_alone():
    bn = nn.BatchNorm2d(4).train()
    net = _pointwise(bn)
    x = _image(32, 64)
    shared = thumbnail_normalized(net, x)
    before = bn.running_mean.clone(), bn.running_var.clone()
    with torch.no_grad():
        shared(x[..., :32])
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.running_var, before[1])


def test_tiled_default_takes_the_statistics_of_the_whole_image_when_it_fits_the_budget():
    """`tiled` (as the verbs call it) makes the thumbnail as large as the activation budget allows: here
    the whole image, so a per-pixel network's tiles give the untiled output."""
    net = _pointwise(_instance_affine())
    x = _photo(64, 128)
    with torch.no_grad():
        torch.testing.assert_close(tiled(net, x, tile=48, overlap=16), net(x), rtol=1e-4, atol=1e-5)


def test_a_downscaled_thumbnail_is_closer_than_per_tile_statistics(monkeypatch):
    """With a budget that fits only an 80-pixel square, the thumbnail is downscaled to 80 pixels: its
    statistics are approximate, and still much closer to the whole image's than each tile's own."""
    net = _pointwise(_instance_affine())
    x = _photo(64, 128)
    seen = []
    monkeypatch.setattr(tiling, "thumbnail_of", lambda image, side, multiple=1: seen.append(side) or
                        thumbnail_of(image, side, multiple))
    with torch.no_grad():
        whole = net(x)
        tiling.set_budget(tiling.bytes_per_pixel(net) * 80.5**2 / 2**20)
        try:
            small = tiled(net, x, tile=48, overlap=16)
        finally:
            tiling.set_budget(None)
        own = tiled(net, x, tile=48, overlap=16, shared_stats=False)
    assert seen == [80]
    assert (small - whole).abs().mean() < 0.5 * (own - whole).abs().mean()


def test_a_network_without_normalisation_is_returned_unchanged():
    net = nn.Conv2d(3, 3, 3, padding=1)
    assert thumbnail_normalized(net, torch.rand(1, 3, 8, 8)) is net


def test_a_network_that_normalises_a_different_number_of_times_is_refused():
    calls = iter([1, 2])

    def varying(x: torch.Tensor) -> torch.Tensor:
        for _ in range(next(calls, 2)):
            x = nn.functional.instance_norm(x)
        return x

    shared = thumbnail_normalized(varying, torch.rand(1, 3, 8, 8))
    with pytest.raises(ZooError, match="normalised more than the 1 times"):
        shared(torch.rand(1, 3, 8, 8))

    def fewer(x: torch.Tensor) -> torch.Tensor:
        return x if x.shape[-1] == 4 else nn.functional.instance_norm(x)

    shared = thumbnail_normalized(fewer, torch.rand(1, 3, 8, 8))
    with pytest.raises(ZooError, match="0 times on a tile but 1"):
        shared(torch.rand(1, 3, 4, 4))


def test_norm_statistics_outside_tiling_computes():
    stats = (torch.zeros(1), torch.ones(1))
    assert norm_statistics(lambda: stats) is stats


def test_thumbnail_of_keeps_multiples_and_means():
    x = _image(300, 200, batch=1)
    t = thumbnail_of(x, 64, multiple=4)
    assert t.shape[-2:] == (64, 40) and t.shape[-2] % 4 == 0 and t.shape[-1] % 4 == 0
    assert abs(float(t.mean() - x.mean())) < 0.01
    assert thumbnail_of(x, 300) is x


def _verb(key: str):
    """A tiny model of `key` and its verb as run(x, tile)."""
    import zoo

    torch.manual_seed(0)
    if key == "johnson":
        model = zoo.create("johnson", width=4, vgg_weights=None)
        return lambda x, tile: model.stylize(x, tile=tile)
    if key == "adain":
        model = zoo.create("adain", vgg_weights=None)
        style = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
        return lambda x, tile: model.stylize(x, style, tile=tile)
    if key == "munit":
        model = zoo.create("munit", dim=8, mlp_dim=16, dis_dim=8, n_res=1, val_lpips=False)
        return lambda x, tile: model.translate(x, tile=tile)
    model = zoo.create("cyclegan", ngf=4, ndf=4, netG="resnet_6blocks")
    return lambda x, tile: model.translate(x, tile=tile)


@pytest.mark.parametrize("key", ["johnson", "cyclegan", "munit", "adain"])
def test_verbs_tiles_agree_with_the_whole_image(key, monkeypatch):
    """On the methods' own networks (random weights): the verb's tiles with the thumbnail's statistics
    are much closer to the untiled result than tiles with their own statistics."""
    run = _verb(key)
    x = _photo(96, 160)
    whole, shared = run(x, 0), run(x, 48)
    assert shared.shape == whole.shape == x.shape
    original = tiling.thumbnail_normalized
    monkeypatch.setattr(tiling, "thumbnail_normalized", lambda fn, thumbnail: fn)  # per-tile statistics
    own = run(x, 48)
    monkeypatch.setattr(tiling, "thumbnail_normalized", original)
    shared_error, own_error = (shared - whole).abs().mean(), (own - whole).abs().mean()
    assert shared_error < 0.75 * own_error, (float(shared_error), float(own_error))  # measured: 0.08-0.54
