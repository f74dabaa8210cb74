"""Style-transfer losses and image priors against explicit numpy formulas, and the VGG taps they use."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

import zoo
from zoo.losses import (
    alpha_norm, content_loss, gram_matrix, layered_style_loss, mean_std, mean_std_style_loss, style_loss,
    total_variation,
)
from zoo.nn import VGGFeatures
from zoo.nn.vgg import vgg_layer_names

RNG = np.random.default_rng(0)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def _np_gram(f: np.ndarray) -> np.ndarray:  # one image (C, H, W) -> (C, C)
    flat = f.reshape(f.shape[0], -1)
    return flat @ flat.T


def test_content_loss_is_half_the_sum_of_squares_or_the_mse():
    f, p = RNG.normal(size=(2, 3, 4, 5)), RNG.normal(size=(2, 3, 4, 5))
    expected = np.mean([0.5 * np.sum((f[i] - p[i]) ** 2) for i in range(2)])
    assert float(content_loss(_t(f), _t(p))) == pytest.approx(expected, rel=1e-12)
    assert float(content_loss(_t(f), _t(p), "mse")) == pytest.approx(np.mean((f - p) ** 2), rel=1e-12)
    with pytest.raises(zoo.ZooError, match="content convention"):
        content_loss(_t(f), _t(p), "sum")


def test_gram_normalisations():
    f = RNG.normal(size=(2, 3, 4, 5))
    raw = np.stack([_np_gram(f[i]) for i in range(2)])
    assert np.allclose(gram_matrix(_t(f)).numpy(), raw)
    assert np.allclose(gram_matrix(_t(f), "hw").numpy(), raw / 20)
    assert np.allclose(gram_matrix(_t(f), "chw").numpy(), raw / 60)
    whole = f.reshape(6, 20)
    assert np.allclose(gram_matrix(_t(f), "bchw").numpy(), whole @ whole.T / 120)
    assert np.allclose(gram_matrix(_t(f[:1]), "bchw").numpy(), gram_matrix(_t(f[:1]), "chw").numpy()[0])


@pytest.mark.parametrize("convention", ["paper", "hw", "chw", "bchw"])
def test_style_loss_conventions_match_their_formulas(convention):
    f, s = RNG.normal(size=(2, 4, 3, 5)), RNG.normal(size=(1, 4, 3, 5))
    c, m = 4, 15
    if convention == "paper":  # E_l = 1/(4 N² M²) Σ (G − A)², per image, averaged
        a = _np_gram(s[0])
        expected = np.mean([np.sum((_np_gram(f[i]) - a) ** 2) / (4 * c**2 * m**2) for i in range(2)])
    elif convention == "bchw":
        g = f.reshape(8, 15) @ f.reshape(8, 15).T / (2 * 4 * 15)
        s2 = np.concatenate([s, s])  # the target must have the batch's shape under this convention
        a = s2.reshape(8, 15) @ s2.reshape(8, 15).T / (2 * 4 * 15)
        expected = np.mean((g - a) ** 2)
        s = s2
    else:
        scale = m if convention == "hw" else c * m
        a = _np_gram(s[0]) / scale
        expected = np.mean([(_np_gram(f[i]) / scale - a) ** 2 for i in range(2)])
    assert float(style_loss(_t(f), _t(s), convention)) == pytest.approx(expected, rel=1e-10)
    # a precomputed target Gram gives the same value
    norm = "none" if convention == "paper" else convention
    target = gram_matrix(_t(s), norm)
    assert float(style_loss(_t(f), target, convention, target_is_gram=True)) == pytest.approx(expected, rel=1e-10)


def test_layered_style_loss_weights_layers():
    feats = {n: _t(RNG.normal(size=(1, 2, 3, 3))) for n in ("relu1_1", "relu2_1")}
    targets = {n: _t(RNG.normal(size=(1, 2, 3, 3))) for n in ("relu1_1", "relu2_1")}
    weights = {"relu1_1": 0.2, "relu2_1": 0.8}
    expected = sum(w * float(style_loss(feats[n], targets[n])) for n, w in weights.items())
    assert float(layered_style_loss(feats, targets, weights)) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(zoo.ZooError, match="relu3_1"):
        layered_style_loss(feats, targets, {"relu3_1": 1.0})


def test_mean_std_statistics_and_loss():
    f, s = RNG.normal(size=(2, 3, 4, 4)), RNG.normal(2.0, 3.0, size=(2, 3, 4, 4))
    mu, sigma = mean_std(_t(f))
    flat = f.reshape(2, 3, -1)
    assert np.allclose(mu.numpy().squeeze(), flat.mean(2))
    assert np.allclose(sigma.numpy().squeeze(), np.sqrt(flat.var(2, ddof=1) + 1e-5))  # unbiased, eps inside
    fs, ss = f.reshape(2, 3, -1), s.reshape(2, 3, -1)
    expected = np.mean((fs.mean(2) - ss.mean(2)) ** 2) + np.mean(
        (np.sqrt(fs.var(2, ddof=1) + 1e-5) - np.sqrt(ss.var(2, ddof=1) + 1e-5)) ** 2)
    assert float(mean_std_style_loss(_t(f), _t(s))) == pytest.approx(expected, rel=1e-10)
    layered = mean_std_style_loss({"a": _t(f), "b": _t(s)}, {"a": _t(s), "b": _t(s)})
    assert float(layered) == pytest.approx(expected, rel=1e-10)
    assert float(mean_std_style_loss(_t(f), _t(f))) == 0.0


def test_total_variation_and_alpha_norm_are_deep_goggles():
    x = RNG.normal(size=(2, 3, 5, 6))
    d_w = np.concatenate([x[..., 1:], x[..., -1:]], axis=-1) - x
    d_h = np.concatenate([x[..., 1:, :], x[..., -1:, :]], axis=-2) - x
    for beta in (2.0, 1.0):
        expected = np.mean([np.sum((d_w[i] ** 2 + d_h[i] ** 2 + (0 if beta == 2 else 1e-8)) ** (beta / 2))
                            for i in range(2)])
        assert float(total_variation(_t(x), beta)) == pytest.approx(expected, rel=1e-9)
    flat = torch.ones(1, 3, 4, 4, requires_grad=True)
    total_variation(flat, beta=1.0).backward()
    assert torch.isfinite(flat.grad).all()  # eps keeps β < 2 differentiable at constant images
    assert float(alpha_norm(_t(x))) == pytest.approx(np.mean([np.sum(np.abs(x[i]) ** 6) for i in range(2)]), rel=1e-12)


def test_vgg19_taps_and_average_pooling(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.vgg19(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / "vgg19.pth")
    names = vgg_layer_names("vgg19")
    assert names[names.index("conv4_2")] == "conv4_2" and names[-1] == "pool5" and "relu5_4" in names
    taps = ("relu1_1", "conv4_2", "relu5_1")
    x = torch.rand(1, 3, 32, 32)
    norm = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        out = VGGFeatures("vgg19", taps, weights=tmp_path / "vgg19.pth")(x)
        for name in taps:
            i = names.index(name)
            assert torch.allclose(out[name], reference.features[: i + 1](norm), atol=1e-5), name
        avg = VGGFeatures("vgg19", ("relu2_1",), weights=tmp_path / "vgg19.pth", pool="avg")(x)["relu2_1"]
        manual = reference.features[:4](norm)  # up to relu1_2; pool1 (index 4) becomes an average
        manual = torch.nn.functional.avg_pool2d(manual, 2)
        assert torch.allclose(avg, reference.features[5:7](manual), atol=1e-5)
    with pytest.raises(ValueError, match="pool"):
        VGGFeatures("vgg19", weights=None, pool="median")


def test_adain_vgg_normalised_layout_and_keys(tmp_path):
    from zoo.nn.vgg import _adain_layers

    seq, names = _adain_layers()
    assert len(seq) == 53 and sum(p.numel() for p in seq.parameters()) == 20_024_396
    conv_keys = [0, 2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]
    assert list(seq.state_dict()) == [f"{i}.{p}" for i in conv_keys for p in ("weight", "bias")]
    assert names.index("relu1_1") == 3 and names.index("relu2_1") == 10 and names.index("relu3_1") == 17
    assert names.index("relu4_1") == 30  # the reference's enc_4 = [18:31]
    assert all(m.ceil_mode for m in seq if isinstance(m, torch.nn.MaxPool2d))
    torch.manual_seed(0)
    torch.save(seq.state_dict(), tmp_path / "vgg_normalised.pth")
    features = VGGFeatures("vgg19", ("relu4_1",), weights=tmp_path / "vgg_normalised.pth", variant="adain")
    x = torch.rand(1, 3, 35, 29)  # odd sizes: ceil_mode pooling
    with torch.no_grad():
        assert torch.allclose(features(x)["relu4_1"], seq[:31](x), atol=1e-5)  # input used as is (RGB [0, 1])
    assert not features.random_weights


def test_gatys_caffe_vgg_preprocessing_and_key_names(tmp_path, monkeypatch):
    torch.manual_seed(0)
    reference = torchvision.models.vgg19(weights=None).features.eval()
    names = vgg_layer_names("vgg19")
    state = {f"{names[i]}.{p}": t for i, m in enumerate(reference) if isinstance(m, torch.nn.Conv2d)
             for p, t in (("weight", m.weight.detach()), ("bias", m.bias.detach()))}
    assert "conv5_4.bias" in state and len(state) == 32
    folder = tmp_path / "vggs"
    folder.mkdir()
    torch.save(state, folder / "vgg_conv.pth")
    monkeypatch.setenv("ZOO_VGG_WEIGHTS", str(folder))  # a folder holding the variant's file
    features = VGGFeatures("vgg19", ("relu3_1",), variant="gatys")
    x = torch.rand(1, 3, 24, 24)
    caffe = (x.flip(1) - torch.tensor([0.40760392, 0.45795686, 0.48501961]).view(1, 3, 1, 1)) * 255
    with torch.no_grad():
        assert torch.allclose(features(x)["relu3_1"], reference[: names.index("relu3_1") + 1](caffe), atol=1e-3)
    monkeypatch.setenv("ZOO_VGG_WEIGHTS", str(tmp_path / "empty"))
    with pytest.raises(zoo.WeightsNotFoundError, match="ZOO_VGG_WEIGHTS.*vgg_conv.pth"):
        VGGFeatures("vgg19", ("relu3_1",), variant="gatys")
    monkeypatch.delenv("ZOO_VGG_WEIGHTS")
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(zoo.WeightsNotFoundError, match="bethgelab"):
        VGGFeatures("vgg19", ("relu3_1",), variant="gatys")
    with pytest.raises(ValueError, match="vgg19 only"):
        VGGFeatures("vgg16", variant="adain", weights=None)
