"""Official-weight converters of the feed-forward style methods (issue 7): naoto0804/pytorch-AdaIN's
`decoder.pth` + `vgg_normalised.pth` (`adain`) and pytorch/examples fast_neural_style's `candy.pth` & co
(`johnson`).

The "releases" here are state dicts built from the official key names and shapes of
`reference/METHODS.md` §3 and §5 (no zoo module involved), so a key zoo renamed, dropped or reshaped
fails. The expected outputs are computed by hand, functionally, from those state dicts and the official
inference pipelines (test.py's `style_transfer` with `save_image`'s clamp to [0, 1]; neural_style.py's
`stylize`: content × 255, TransformerNet, clamp to [0, 255])."""

from __future__ import annotations

import argparse
import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import zoo
from zoo.errors import CheckpointError, ZooError
from zoo.methods.adain import AdaIN, from_official as adain_from_official
from zoo.methods.johnson import Johnson, from_official as johnson_from_official


def names(problem: str, key: str) -> str:
    """A pattern for an error message that lists `key` (whole) under `problem`."""
    return rf"{problem} \(\d+\): .*(?<![\w.]){re.escape(key)}(?!\w|\.\w)"


# -------------------------------------------------------------------------------- the AdaIN release
#: vgg_normalised.pth: Sequential index -> (out, in, kernel) of its 17 convs (0 is the 1x1 preprocessing
#: conv); ReflectionPad2d(1) before each 3x3 conv, ReLU after, ceil-mode 2x2 max pools at 7, 14, 27, 40.
VGG_CONVS = {0: (3, 3, 1), 2: (64, 3, 3), 5: (64, 64, 3), 9: (128, 64, 3), 12: (128, 128, 3),
             16: (256, 128, 3), 19: (256, 256, 3), 22: (256, 256, 3), 25: (256, 256, 3), 29: (512, 256, 3),
             32: (512, 512, 3), 35: (512, 512, 3), 38: (512, 512, 3), 42: (512, 512, 3), 45: (512, 512, 3),
             48: (512, 512, 3), 51: (512, 512, 3)}
#: the encoder AdaIN runs: modules 0 ... 30 (relu4_1), with pools after these convs
ENCODER_PLAN = (0, 2, 5, "pool", 9, 12, "pool", 16, 19, 22, 25, "pool", 29)
#: decoder.pth: index -> (out, in) of its 3x3 convs; nearest x2 upsampling after 1, 14 and 21; no ReLU after 28
DECODER_CONVS = {1: (256, 512), 5: (256, 256), 8: (256, 256), 11: (256, 256), 14: (128, 256),
                 18: (128, 128), 21: (64, 128), 25: (64, 64), 28: (3, 64)}
DECODER_PLAN = (1, "up", 5, 8, 11, 14, "up", 18, 21, "up", 25, 28)


def _conv_state(convs: dict[int, tuple[int, ...]], g: torch.Generator) -> dict[str, Tensor]:
    """He-normal weights and small random biases under the given keys (feature scale kept layer to layer)."""
    state = {}
    for i, shape in convs.items():
        out, cin, k = shape if len(shape) == 3 else (*shape, 3)
        state[f"{i}.weight"] = torch.randn(out, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5
        state[f"{i}.bias"] = torch.randn(out, generator=g) * 0.1
    return state


def _conv(x: Tensor, state: dict[str, Tensor], i: int) -> Tensor:
    w = state[f"{i}.weight"]
    if w.shape[-1] == 3:
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return F.conv2d(x, w, state[f"{i}.bias"])


def official_encode(x: Tensor, vgg: dict[str, Tensor]) -> Tensor:
    """relu4_1 of vgg_normalised, from the file's tensors: 1x1 conv (no ReLU), then pad-conv-ReLU and pools."""
    for step in ENCODER_PLAN:
        if step == "pool":
            x = F.max_pool2d(x, 2, 2, 0, ceil_mode=True)
        else:
            x = _conv(x, vgg, step)
            x = x if step == 0 else F.relu(x)
    return x


def official_decode(t: Tensor, decoder: dict[str, Tensor]) -> Tensor:
    for step in DECODER_PLAN:
        if step == "up":
            t = F.interpolate(t, scale_factor=2, mode="nearest")
        else:
            t = _conv(t, decoder, step)
            t = t if step == 28 else F.relu(t)
    return t


def official_adain(c: Tensor, s: Tensor, eps: float = 1e-5) -> Tensor:
    """calc_mean_std: unbiased variance + eps, then sqrt."""
    def stats(f: Tensor) -> tuple[Tensor, Tensor]:
        flat = f.flatten(2)
        return flat.mean(2)[..., None, None], (flat.var(2) + eps).sqrt()[..., None, None]

    (cm, cs), (sm, ss) = stats(c), stats(s)
    return (c - cm) / cs * ss + sm


def official_style_transfer(content: Tensor, style: Tensor, alpha: float, vgg: dict, decoder: dict) -> Tensor:
    """test.py: decoder(α AdaIN(f(c), f(s)) + (1 − α) f(c)), unclamped."""
    content_f, style_f = official_encode(content, vgg), official_encode(style, vgg)
    return official_decode(alpha * official_adain(content_f, style_f) + (1 - alpha) * content_f, decoder)


@pytest.fixture(scope="module")
def adain_release() -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(decoder.pth, vgg_normalised.pth) state dicts; the decoder's last conv rescaled so outputs are
    ~0.5 ± 0.3, partly outside [0, 1] as a trained decoder's are (so the clamp matters)."""
    g = torch.Generator().manual_seed(0)
    vgg = _conv_state(VGG_CONVS, g)
    vgg["0.weight"] = torch.zeros(3, 3, 1, 1)  # vgg_normalised's RGB [0, 1] -> BGR 0-255 minus the mean
    for c in range(3):
        vgg["0.weight"][c, 2 - c] = 255.0
    vgg["0.bias"] = -torch.tensor([103.939, 116.779, 123.68])
    decoder = _conv_state(DECODER_CONVS, g)
    probe = torch.rand(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        out = official_decode(official_encode(probe, vgg), decoder)
        k = 0.3 / out.std(dim=(0, 2, 3))
        decoder["28.weight"] *= k.view(3, 1, 1, 1)
        decoder["28.bias"] = decoder["28.bias"] * k + 0.5 - (out.mean(dim=(0, 2, 3)) * k)
    return decoder, vgg


def test_adain_release_layout_is_the_documented_one(adain_release):
    decoder, vgg = adain_release
    assert len(vgg) == 34 and sum(v.numel() for v in vgg.values()) == 20_024_396  # METHODS.md Appendix A
    assert len(decoder) == 18 and sum(v.numel() for v in decoder.values()) == 3_505_219


def test_adain_mapping_form_uses_every_key_and_drops_the_layers_after_relu4_1(adain_release, tmp_path):
    decoder, vgg = adain_release
    model = adain_from_official({"decoder": decoder, "vgg": vgg})
    assert isinstance(model, AdaIN) and not model.random_features
    assert model.decoder.state_dict().keys() == decoder.keys()
    assert all(torch.equal(v, decoder[k]) for k, v in model.decoder.state_dict().items())
    kept = {k for k in vgg if int(k.split(".")[0]) < 31}  # test.py: nn.Sequential(*list(vgg.children())[:31])
    assert model.encoder.state_dict().keys() == kept and len(kept) == 20
    assert all(torch.equal(v, vgg[k]) for k, v in model.encoder.state_dict().items())
    # paths (read weights_only) and DataParallel prefixes give the same model
    torch.save({f"module.{k}": v for k, v in decoder.items()}, tmp_path / "decoder.pth")
    torch.save(vgg, tmp_path / "vgg_normalised.pth")
    from_paths = adain_from_official({"decoder": tmp_path / "decoder.pth", "vgg": str(tmp_path / "vgg_normalised.pth")})
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), from_paths.state_dict().values()))
    assert zoo.registry.get_converter("adain") is adain_from_official


@pytest.mark.parametrize("part, key", [("vgg", "51.bias"), ("vgg", "29.weight"), ("vgg", "0.bias"),
                                       ("decoder", "28.bias"), ("decoder", "1.weight")])
def test_adain_missing_key_is_named(adain_release, part, key):
    """Every key of both files is required, the unused relu4_2 ... relu5_4 ones too (test.py loads the
    whole file strictly before slicing)."""
    release = dict(zip(("decoder", "vgg"), adain_release))
    release[part] = {k: v for k, v in release[part].items() if k != key}
    with pytest.raises(CheckpointError, match=names("missing keys", key)):
        adain_from_official(release)


@pytest.mark.parametrize("part, key", [("vgg", "53.weight"), ("vgg", "1.weight"), ("decoder", "29.weight"),
                                       ("decoder", "0.weight")])
def test_adain_leftover_key_is_named(adain_release, part, key):
    release = dict(zip(("decoder", "vgg"), adain_release))
    release[part] = {**release[part], key: torch.zeros(1)}
    with pytest.raises(CheckpointError, match=names("unexpected keys", key)):
        adain_from_official(release)


def test_adain_shape_mismatch_beyond_relu4_1_is_named(adain_release):
    decoder, vgg = adain_release
    with pytest.raises(CheckpointError, match=r"shape mismatches.*\b42\.weight\b"):
        adain_from_official({"decoder": decoder, "vgg": {**vgg, "42.weight": torch.zeros(512, 512, 1, 1)}})


def test_adain_release_container_errors(adain_release, tmp_path):
    decoder, vgg = adain_release
    with pytest.raises(CheckpointError, match="'extra'"):
        adain_from_official({"decoder": decoder, "vgg": vgg, "extra": vgg})
    with pytest.raises(CheckpointError, match="no decoder"):
        adain_from_official({"vgg": vgg})
    with pytest.raises(ZooError, match="twice"):
        adain_from_official({"decoder": decoder, "vgg": vgg}, vgg_weights=None)
    torch.save(argparse.Namespace(weights=1), tmp_path / "pickled.pth")  # more than tensors: refused
    with pytest.raises(CheckpointError, match="weights_only"):
        adain_from_official({"decoder": tmp_path / "pickled.pth", "vgg": vgg})
    with pytest.raises(CheckpointError, match="state dict"):
        adain_from_official({"decoder": decoder, "vgg": [vgg]})


def test_adain_decoder_only_form_takes_the_encoder_from_vgg_weights(adain_release, tmp_path):
    decoder, vgg = adain_release
    torch.save(vgg, tmp_path / "vgg_normalised.pth")
    old = adain_from_official(decoder, vgg_weights=str(tmp_path / "vgg_normalised.pth"))
    new = adain_from_official({"decoder": decoder, "vgg": vgg})
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"missing keys.*\b14\.weight\b"):
        adain_from_official({k: v for k, v in decoder.items() if k != "14.weight"}, vgg_weights=None)


@pytest.mark.parametrize("alpha", [1.0, 0.6])
def test_adain_stylize_is_the_official_pipeline(adain_release, alpha):
    """stylize(c, s, alpha) on [0, 1] tensors = clamp(test.py's style_transfer, 0, 1), the style at its own
    (non-multiple-of-8) size; a content size that is not a multiple of 8 comes back at its own size."""
    decoder, vgg = adain_release
    model = adain_from_official({"decoder": decoder, "vgg": vgg})
    g = torch.Generator().manual_seed(1)
    content, style = torch.rand(1, 3, 32, 40, generator=g), torch.rand(1, 3, 30, 21, generator=g)
    with torch.no_grad():
        expected = official_style_transfer(content, style, alpha, vgg, decoder)
    assert ((expected < 0) | (expected > 1)).any() and ((expected > 0.05) & (expected < 0.95)).float().mean() > 0.5
    out = model.stylize(content, style, alpha=alpha)
    assert out.shape == content.shape and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out, expected.clamp(0, 1), rtol=0, atol=1e-5)
    odd = model.stylize(content[..., :29, :37], style, alpha=alpha)
    assert odd.shape == (1, 3, 29, 37) and 0 <= odd.min() and odd.max() <= 1


# ------------------------------------------------------------------------------ the johnson releases
def _johnson_layers() -> dict[str, tuple[str, tuple[int, ...]]]:
    """TransformerNet (pytorch/examples): conv name -> (kind, (out, in, k)); IN name -> ("in", (channels,))."""
    layers = {"conv1": ("conv", (32, 3, 9)), "in1": ("in", (32,)), "conv2": ("conv", (64, 32, 3)),
              "in2": ("in", (64,)), "conv3": ("conv", (128, 64, 3)), "in3": ("in", (128,))}
    for r in range(1, 6):
        for j in (1, 2):
            layers[f"res{r}.conv{j}"] = ("conv", (128, 128, 3))
            layers[f"res{r}.in{j}"] = ("in", (128,))
    layers.update({"deconv1": ("conv", (64, 128, 3)), "in4": ("in", (64,)), "deconv2": ("conv", (32, 64, 3)),
                   "in5": ("in", (32,)), "deconv3": ("conv", (3, 32, 9))})
    return layers


def official_transformer(x255: Tensor, state: dict[str, Tensor]) -> Tensor:
    """TransformerNet.forward from the state dict: reflection-padded convs, affine IN (eps 1e-5), nearest x2
    upsampling before deconv1 and deconv2, no output activation; pixels in [0, 255]."""
    def conv(x: Tensor, name: str, stride: int = 1, up: bool = False) -> Tensor:
        w = state[f"{name}.conv2d.weight"]
        x = F.interpolate(x, scale_factor=2, mode="nearest") if up else x
        x = F.pad(x, (w.shape[-1] // 2,) * 4, mode="reflect")
        return F.conv2d(x, w, state[f"{name}.conv2d.bias"], stride=stride)

    def norm(x: Tensor, name: str) -> Tensor:
        return F.instance_norm(x, weight=state[f"{name}.weight"], bias=state[f"{name}.bias"], eps=1e-5)

    y = F.relu(norm(conv(x255, "conv1"), "in1"))
    y = F.relu(norm(conv(y, "conv2", 2), "in2"))
    y = F.relu(norm(conv(y, "conv3", 2), "in3"))
    for r in range(1, 6):
        y = y + norm(conv(F.relu(norm(conv(y, f"res{r}.conv1"), f"res{r}.in1")), f"res{r}.conv2"), f"res{r}.in2")
    y = F.relu(norm(conv(y, "deconv1", up=True), "in4"))
    y = F.relu(norm(conv(y, "deconv2", up=True), "in5"))
    return conv(y, "deconv3")


@pytest.fixture(scope="module")
def johnson_release() -> dict[str, Tensor]:
    """A candy.pth-like state dict: the 62 TransformerNet entries plus the `running_mean/var` that
    PyTorch 0.3 saved for every InstanceNorm2d; the last conv scaled so the output (0-255 units) is
    ~127 ± 70, partly outside [0, 255]."""
    g = torch.Generator().manual_seed(0)
    state: dict[str, Tensor] = {}
    for name, (kind, shape) in _johnson_layers().items():
        if kind == "conv":
            out, cin, k = shape
            state[f"{name}.conv2d.weight"] = torch.randn(out, cin, k, k, generator=g) * (2.0 / (cin * k * k)) ** 0.5
            state[f"{name}.conv2d.bias"] = torch.randn(out, generator=g) * 0.1
        else:
            state[f"{name}.weight"] = torch.rand(shape, generator=g) + 0.5
            state[f"{name}.bias"] = torch.randn(shape, generator=g) * 0.1
            state[f"{name}.running_mean"] = torch.randn(shape, generator=g) * 0.1
            state[f"{name}.running_var"] = torch.rand(shape, generator=g) + 0.5
    state["deconv3.conv2d.weight"] *= 70.0
    state["deconv3.conv2d.bias"] += 127.0
    return state


def _official_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var"))}


def test_johnson_release_uses_every_key_after_dropping_the_instance_norm_stats(johnson_release):
    official = _official_keys(johnson_release)
    assert len(johnson_release) == 92 and len(official) == 62
    assert sum(v.numel() for v in official.values()) == 1_679_235  # METHODS.md Appendix A
    model = johnson_from_official(johnson_release, vgg_weights=None)
    assert isinstance(model, Johnson)
    assert model.transformer.state_dict().keys() == official.keys()
    assert all(torch.equal(v, official[k]) for k, v in model.transformer.state_dict().items())
    prefixed = johnson_from_official({f"module.{k}": v for k, v in johnson_release.items()}, vgg_weights=None)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), prefixed.state_dict().values()))
    assert zoo.registry.get_converter("johnson") is johnson_from_official


@pytest.mark.parametrize("key", ["res3.in2.weight", "deconv3.conv2d.bias", "conv1.conv2d.weight"])
def test_johnson_missing_key_is_named(johnson_release, key):
    with pytest.raises(CheckpointError, match=names("missing keys", key)):
        johnson_from_official({k: v for k, v in johnson_release.items() if k != key}, vgg_weights=None)


@pytest.mark.parametrize("key", ["res6.conv1.conv2d.weight", "conv1.conv2d.running_mean", "deconv1.running_var"])
def test_johnson_leftover_key_is_named(johnson_release, key):
    """Only `in<k>.running_mean/var` are dropped: running stats elsewhere are not the documented surgery."""
    with pytest.raises(CheckpointError, match=names("unexpected keys", key)):
        johnson_from_official({**johnson_release, key: torch.zeros(3)}, vgg_weights=None)


def test_johnson_stylize_is_the_official_pipeline(johnson_release):
    """stylize(x) on [0, 1] = neural_style.stylize's TransformerNet(x · 255) clamped to [0, 255], / 255;
    a size that is not a multiple of 4 comes back at its own size."""
    model = johnson_from_official(johnson_release, vgg_weights=None)
    official = _official_keys(johnson_release)
    x = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = official_transformer(x.mul(255), official)
    assert ((expected < 0) | (expected > 255)).any() and ((expected > 10) & (expected < 245)).float().mean() > 0.5
    out = model.stylize(x)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out, expected.clamp(0, 255) / 255, rtol=0, atol=1e-5)
    with torch.no_grad():  # the network itself, unclamped, in the official 0-255 units
        torch.testing.assert_close(model.transformer(x * 255), expected, rtol=0, atol=1e-3)
    odd = model.stylize(x[..., :21, :30])
    assert odd.shape == (1, 3, 21, 30) and 0 <= odd.min() and odd.max() <= 1

