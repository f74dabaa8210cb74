"""Official weights of the restoration methods (issue 7): Lornatang/SRGAN-PyTorch's SRResNet/SRGAN releases and
richzhang/colorization's ECCV16 release, built here from the key names and shapes the releases have (METHODS.md
§6, §7), converted, and checked against the official inference pipelines written out by hand from the state dicts
(Lornatang inference.py: G(x) clamped to [0, 1]; colorization demo_release.py: PIL bicubic resize of the 8-bit
image, skimage Lab, eccv16 forward, bilinear ab, skimage lab2rgb)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.color import lab2rgb, rgb2lab
from torch.optim.swa_utils import AveragedModel

import zoo.methods  # noqa: F401 - registers the converters
from zoo.color import ab_gamut_bins, lab_to_rgb, rgb_to_lab
from zoo.errors import CheckpointError
from zoo.methods.colorization import RELEASE_TEMPERATURE, pil_bicubic_resize
from zoo.methods.srgan import SRGAN, SRResNetModel
from zoo.registry import get_converter


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _random(shape: tuple[int, ...], key: str, g: torch.Generator) -> torch.Tensor:
    """Non-trivial values for one state-dict entry: He-scaled conv weights, BN statistics away from 0/1."""
    if key.endswith("num_batches_tracked"):
        return torch.tensor(int(torch.randint(1, 1000, (1,), generator=g)))
    if key.endswith("running_var"):
        return torch.rand(shape, generator=g) * 0.5 + 0.5
    if key.endswith("running_mean"):
        return torch.rand(shape, generator=g) * 0.2
    if len(shape) == 4:
        return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    if key.endswith(".weight"):  # PReLU slopes, BN gammas
        return torch.rand(shape, generator=g) * 0.5 + 0.5
    return torch.randn(shape, generator=g) * 0.05


# ------------------------------------------------------------------------------------ Lornatang SRResNet
def bn_keys(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def srresnet_spec(scale: int, channels: int = 64, blocks: int = 16) -> dict[str, tuple[int, ...]]:
    """Lornatang `SRResNet` state-dict keys and shapes (METHODS.md §6)."""
    c = channels
    spec: dict[str, tuple[int, ...]] = {"conv1.0.weight": (c, 3, 9, 9), "conv1.0.bias": (c,), "conv1.1.weight": (1,)}
    for i in range(blocks):
        p = f"trunk.{i}.rcb"
        spec |= {f"{p}.0.weight": (c, c, 3, 3), **bn_keys(f"{p}.1", c), f"{p}.2.weight": (1,),
                 f"{p}.3.weight": (c, c, 3, 3), **bn_keys(f"{p}.4", c)}
    spec |= {"conv2.0.weight": (c, c, 3, 3), **bn_keys("conv2.1", c)}
    for j in range(int(math.log2(scale))):
        p = f"upsampling.{j}.upsample_block"
        spec |= {f"{p}.0.weight": (4 * c, c, 3, 3), f"{p}.0.bias": (4 * c,), f"{p}.2.weight": (1,)}
    return spec | {"conv3.weight": (3, c, 9, 9), "conv3.bias": (3,)}


def srresnet_release(scale: int, channels: int = 64, blocks: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: _random(s, k, g) for k, s in srresnet_spec(scale, channels, blocks).items()}
    state["conv3.bias"] += 0.5  # outputs around 0.5: most inside [0, 1], some clamped
    return state


def lornatang_forward(s: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Lornatang `SRResNet._forward_impl` in eval mode, from the state dict, ending in clamp(0, 1)."""
    def bn(h: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(h, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"],
                            False, 0.0, 1e-5)

    head = F.prelu(F.conv2d(x, s["conv1.0.weight"], s["conv1.0.bias"], padding=4), s["conv1.1.weight"])
    h = head
    i = 0
    while f"trunk.{i}.rcb.0.weight" in s:
        p = f"trunk.{i}.rcb"
        r = F.prelu(bn(F.conv2d(h, s[f"{p}.0.weight"], padding=1), f"{p}.1"), s[f"{p}.2.weight"])
        h = h + bn(F.conv2d(r, s[f"{p}.3.weight"], padding=1), f"{p}.4")
        i += 1
    h = bn(F.conv2d(h, s["conv2.0.weight"], padding=1), "conv2.1") + head
    j = 0
    while f"upsampling.{j}.upsample_block.0.weight" in s:
        p = f"upsampling.{j}.upsample_block"
        h = F.prelu(F.pixel_shuffle(F.conv2d(h, s[f"{p}.0.weight"], s[f"{p}.0.bias"], padding=1), 2), s[f"{p}.2.weight"])
        j += 1
    return F.conv2d(h, s["conv3.weight"], s["conv3.bias"], padding=4).clamp(0.0, 1.0)


def test_srresnet_x4_release_is_225_keys_all_used():
    spec = srresnet_spec(4)
    assert len(spec) == 225 and sum(math.prod(s) for k, s in spec.items() if "running" not in k
                                    and "num_batches" not in k) == 1_547_350
    state = srresnet_release(4)
    model = get_converter("srresnet")({"state_dict": {f"_orig_mod.{k}": v for k, v in state.items()}})
    converted = model.G.state_dict()
    assert converted.keys() == state.keys()
    assert all(torch.equal(converted[k], v) for k, v in state.items())


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_upscale_is_lornatang_inference_on_floats_in_0_1(scale):
    state = srresnet_release(scale, channels=8, blocks=2, seed=scale)
    x = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(1))
    expected = lornatang_forward(state, x)
    assert 0.2 < ((expected > 0) & (expected < 1)).float().mean() < 1.0  # a test where the clamp decides nothing
    for key, cls in (("srresnet", SRResNetModel), ("srgan", SRGAN)):
        model = get_converter(key)(state)
        assert type(model) is cls and model.hparams.scale == scale == model.io["scale"]
        out = model.upscale(x)
        assert out.shape == (1, 3, 7 * scale, 9 * scale)
        assert (out - expected).abs().max() < 1e-5
        assert out.min() >= 0 and out.max() <= 1


def test_lornatang_checkpoint_wrappers_and_the_documented_surgery():
    state = srresnet_release(2, channels=8, blocks=2)
    x = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(2))
    expected = lornatang_forward(state, x)
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    for variant in (
        {"state_dict": {f"_orig_mod.{k}": v for k, v in state.items()}, "ema_state_dict": None, "epoch": 18,
         "psnr": 30.0, "ssim": 0.9, "optimizer": {"state": {}, "param_groups": []}},
        {f"module.{k}": v for k, v in state.items()},
        no_counters,
    ):
        model = get_converter("srresnet")(variant)
        assert (model.upscale(x) - expected).abs().max() < 1e-5
    filled = get_converter("srresnet")(no_counters).G.state_dict()
    assert all(filled[k] == 0 for k in state if k.endswith("num_batches_tracked"))


def test_ema_state_dict_of_an_averaged_model_loads_and_a_stray_counter_does_not():
    state = srresnet_release(2, channels=8, blocks=2)
    network = get_converter("srresnet")(state).G
    ema = AveragedModel(network, avg_fn=lambda avg, new, n: 0.001 * avg + 0.999 * new)  # Lornatang's EMA
    ema.update_parameters(network)
    ema_state = {f"_orig_mod.{k}": v for k, v in ema.state_dict().items()}  # the compiled EMA of train_gan.py
    assert {"_orig_mod.n_averaged", "_orig_mod.module.conv3.bias"} <= ema_state.keys()
    x = torch.rand(1, 3, 6, 5, generator=torch.Generator().manual_seed(3))
    model = get_converter("srresnet")({"state_dict": state, "ema_state_dict": ema_state})
    assert torch.equal(model.upscale(x), get_converter("srresnet")(state).upscale(x))  # state_dict, not the EMA
    assert (get_converter("srresnet")(ema_state).upscale(x) - lornatang_forward(state, x)).abs().max() < 1e-5
    with pytest.raises(CheckpointError, match="n_averaged"):
        get_converter("srresnet")({**state, "n_averaged": torch.tensor(3)})


@pytest.mark.parametrize("key", ["srresnet", "srgan"])
def test_missing_extra_and_misshaped_keys_are_named(key):
    state = srresnet_release(4, channels=8, blocks=2)
    convert = get_converter(key)
    with pytest.raises(CheckpointError, match=r"trunk\.1\.rcb\.2\.weight"):
        convert({k: v for k, v in state.items() if k != "trunk.1.rcb.2.weight"})
    with pytest.raises(CheckpointError, match=r"conv2\.1\.running_var"):
        convert({"state_dict": {k: v for k, v in state.items() if k != "conv2.1.running_var"}})
    with pytest.raises(CheckpointError, match=r"upsampling\.1\.upsample_block\.0\.extra"):
        convert({**state, "upsampling.1.upsample_block.0.extra": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"conv3\.bias"):
        convert({**state, "conv3.bias": torch.zeros(4)})


# ------------------------------------------------------------------------------------ colorization ECCV16
#: block -> (convs, stride of the last conv, dilation), eccv16.py; BN after the last ReLU of each
ECCV_BLOCKS = {"model1": (2, 2, 1), "model2": (2, 2, 1), "model3": (3, 2, 1), "model4": (3, 1, 1),
               "model5": (3, 1, 2), "model6": (3, 1, 2), "model7": (3, 1, 1)}
ECCV_WIDTHS = {"model1": (1, 64), "model2": (64, 128), "model3": (128, 256), "model4": (256, 512),
               "model5": (512, 512), "model6": (512, 512), "model7": (512, 512)}
SIDE = 64  # the network's input side for these tests (the release: 256); util.preprocess_img takes any HW


def eccv16_spec() -> dict[str, tuple[int, ...]]:
    """`colorization_release_v2-9b330a0b.pth` keys and shapes (METHODS.md §7), BN counters included."""
    spec: dict[str, tuple[int, ...]] = {}
    for name, (n, _, _) in ECCV_BLOCKS.items():
        c_in, c = ECCV_WIDTHS[name]
        for i in range(n):
            spec |= {f"{name}.{2 * i}.weight": (c, c_in if i == 0 else c, 3, 3), f"{name}.{2 * i}.bias": (c,)}
        spec |= bn_keys(f"{name}.{2 * n}", c)
    spec |= {"model8.0.weight": (512, 256, 4, 4), "model8.0.bias": (256,), "model8.2.weight": (256, 256, 3, 3),
             "model8.2.bias": (256,), "model8.4.weight": (256, 256, 3, 3), "model8.4.bias": (256,),
             "model8.6.weight": (313, 256, 1, 1), "model8.6.bias": (313,)}
    return spec | {"model_out.weight": (2, 313, 1, 1)}


@pytest.fixture(scope="module")
def eccv16_release() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    state = {k: _random(s, k, g) for k, s in eccv16_spec().items()}
    state["model8.0.weight"] = torch.randn(512, 256, 4, 4, generator=g) / math.sqrt(256 * 4)  # fan-in of a ConvT
    state["model8.6.weight"] *= 8.0  # logits spread enough that the temperature matters
    bins = ab_gamut_bins() + torch.randn(313, 2, generator=g)  # "their" pts_in_hull, not our reconstruction
    state["model_out.weight"] = (bins / 110.0).T[:, :, None, None].contiguous()
    return state


def eccv16_forward(s: dict[str, torch.Tensor], L: torch.Tensor) -> torch.Tensor:
    """eccv16.py `ECCVGenerator.forward` in eval mode from the state dict: ab (B, 2, H, W) for L in [0, 100]."""
    x = (L - 50.0) / 100.0
    for name, (n, stride, dilation) in ECCV_BLOCKS.items():
        for i in range(n):
            x = F.relu(F.conv2d(x, s[f"{name}.{2 * i}.weight"], s[f"{name}.{2 * i}.bias"],
                                stride=stride if i == n - 1 else 1, padding=dilation, dilation=dilation))
        p = f"{name}.{2 * n}"
        x = F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"],
                         False, 0.0, 1e-5)
    x = F.relu(F.conv_transpose2d(x, s["model8.0.weight"], s["model8.0.bias"], stride=2, padding=1))
    x = F.relu(F.conv2d(x, s["model8.2.weight"], s["model8.2.bias"], padding=1))
    x = F.relu(F.conv2d(x, s["model8.4.weight"], s["model8.4.bias"], padding=1))
    logits = F.conv2d(x, s["model8.6.weight"], s["model8.6.bias"])
    ab = F.conv2d(torch.softmax(logits, dim=1), s["model_out.weight"])  # no temperature in the release
    return F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False) * 110.0


def demo_release(s: dict[str, torch.Tensor], img: np.ndarray, side: int) -> np.ndarray:
    """util.preprocess_img -> eccv16 -> util.postprocess_tens on a uint8 HWC image."""
    resized = np.asarray(Image.fromarray(img).resize((side, side), Image.Resampling.BICUBIC))
    L_orig = torch.from_numpy(rgb2lab(img)[..., 0]).float()[None, None]
    L_small = torch.from_numpy(rgb2lab(resized)[..., 0]).float()[None, None]
    ab = eccv16_forward(s, L_small)
    if ab.shape[-2:] != L_orig.shape[-2:]:
        ab = F.interpolate(ab, size=L_orig.shape[-2:], mode="bilinear", align_corners=False)
    return lab2rgb(torch.cat([L_orig, ab], dim=1)[0].permute(1, 2, 0).numpy())


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """uint8 RGB with smooth colour and noise (the resize and every branch of the Lab formulas matter)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in (0.0, 1.0, 2.0)], axis=-1) * 0.45 + 0.5
    return (np.clip(base + rng.normal(0, 0.1, (h, w, 3)), 0, 1) * 255).round().astype(np.uint8)


def test_eccv16_release_is_82_keys_all_used(eccv16_release):
    spec = eccv16_spec()
    assert len(spec) == 82
    assert sum(math.prod(s) for k, s in spec.items() if "running" not in k and "num_batches" not in k) == 32_236_011
    model = get_converter("colorization")({"state_dict": {f"module.{k}": v for k, v in eccv16_release.items()}})
    converted = model.net.state_dict()
    assert converted.keys() == eccv16_release.keys()
    assert all(torch.equal(converted[k], v) for k, v in eccv16_release.items())
    assert torch.allclose(model.bins, eccv16_release["model_out.weight"][:, :, 0, 0].T * 110, atol=1e-4)


def test_colorize_is_demo_release_at_the_release_temperature(eccv16_release):
    model = get_converter("colorization")(dict(eccv16_release), input_size=SIDE)
    assert model.hparams.temperature == RELEASE_TEMPERATURE == 1.0
    for h, w in ((SIDE, SIDE), (50, 75)):  # the network's own size (no resize) and a resize both ways
        img = photo(h, w, seed=h)
        expected = demo_release(eccv16_release, img, SIDE)
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
        out = model.colorize(x)
        assert out.shape == (1, 3, h, w) and out.min() >= 0 and out.max() <= 1
        assert np.abs(out[0].permute(1, 2, 0).numpy() - expected).max() < 1e-5
        annealed = model.colorize(x, temperature=0.38)[0].permute(1, 2, 0).numpy()
        assert np.abs(annealed - expected).max() > 1e-3  # the paper's T = 0.38 is not the release's decoding
    paper = get_converter("colorization")(dict(eccv16_release), input_size=SIDE, temperature=0.38)
    assert paper.hparams.temperature == 0.38


def test_eccv16_missing_extra_and_misshaped_keys_are_named(eccv16_release):
    convert = get_converter("colorization")
    no_counters = {k: v for k, v in eccv16_release.items() if not k.endswith("num_batches_tracked")}
    assert convert(no_counters).net.model4[6].num_batches_tracked == 0
    with pytest.raises(CheckpointError, match=r"model6\.4\.bias"):
        convert({k: v for k, v in eccv16_release.items() if k != "model6.4.bias"})
    with pytest.raises(CheckpointError, match=r"model8\.8\.weight"):
        convert({**eccv16_release, "model8.8.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"model_out\.weight"):
        convert({**eccv16_release, "model_out.weight": torch.zeros(2, 529, 1, 1)})


# ------------------------------------------------------------------------------ the pre-processing pieces
@pytest.mark.parametrize("size", [(17, 23), (300, 170), (64, 64), (40, 256)])
def test_pil_bicubic_resize_is_pillow_on_8_bit_images(size):
    img = np.random.default_rng(size[0]).integers(0, 256, (*size, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    for out in ((64, 64), (33, 90)):
        expected = np.asarray(Image.fromarray(img).resize(out[::-1], Image.Resampling.BICUBIC))
        ours = pil_bicubic_resize(x, out)
        assert ours.dtype == torch.float64 and ours.shape == (1, 3, *out)
        assert np.array_equal((ours[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy(), expected)


def test_zoo_color_is_skimage_in_float64():
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    rgb[..., :4, :] *= 0.03  # dark pixels: the linear branches of the sRGB and Lab curves
    lab = rgb_to_lab(rgb)
    expected = rgb2lab(rgb[0].permute(1, 2, 0).numpy())
    assert np.abs(lab[0].permute(1, 2, 0).numpy() - expected).max() < 1e-10
    wild = torch.cat([lab[:, :1], torch.randn(1, 2, 16, 16, generator=g, dtype=torch.float64) * 60], dim=1)
    with np.errstate(all="ignore"), pytest.warns(UserWarning, match="negative Z values"):
        expected_rgb = lab2rgb(wild[0].permute(1, 2, 0).numpy())  # out of gamut: skimage clips, so must we
    assert np.abs(lab_to_rgb(wild)[0].permute(1, 2, 0).numpy() - expected_rgb).max() < 1e-10
