"""Mahendran & Vedaldi feature inversion: the normalised error falls, the objective's three terms are the
reference's (α = 6, β = 2, λ_TV by depth, σ scaling), deep-goggle's schedule and its σ² scaling, feature
input, determinism and the refusals. Random VGG (weights=None)."""

from __future__ import annotations

import math

import pytest
import torch

import zoo
from zoo.errors import ZooError
from zoo.imageopt import from_caffe_range
from zoo.methods.inversion import PIXEL_SIGMA, Inversion, default_lambda_tv
from zoo.registry import method_defaults


@pytest.fixture(scope="module")
def model() -> Inversion:
    return Inversion(vgg_weights=None, image_size=None, progress=False)


def smooth(*shape, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.avg_pool2d(torch.rand(*shape, generator=g), 3, 1, 1, count_include_pad=False)
    return (x - x.min()) / (x.max() - x.min())


IMAGE = smooth(1, 3, 32, 32, seed=1)


def test_defaults_are_the_papers_experiment():
    d = method_defaults("inversion")
    assert d["optimizer"] == "sgd" and d["momentum"] == 0.9
    assert d["lr_schedule"] == [[100, 0.004], [200, 0.0004], [100, 0.00004]]  # 0.004 x [1, 0.1, 0.01]
    assert (d["alpha"], d["lambda_alpha"], d["tv_beta"], d["lambda_tv"]) == (6.0, 8e-10, 2.0, None)
    assert PIXEL_SIGMA * math.sqrt(227 * 227 * 3) == pytest.approx(27098.1157)  # deep-goggle's x0_sigma
    assert Inversion.weight_free and Inversion.paper == "arXiv:1412.0035"
    assert not hasattr(Inversion, "stylize")  # zoo.predict routes it to invert()
    # λ_TV by depth: CaffeNet's 1 / 10 / 100 groups mapped onto VGG blocks (pool_b goes with block b + 1)
    assert [default_lambda_tv(n) for n in ("conv1_1", "relu2_2", "pool1", "pool2", "relu3_1", "relu4_4",
                                           "pool4", "relu5_1", "pool5")] == [1, 1, 1, 10, 10, 10, 100, 100, 100]


def test_normalised_error_falls_by_a_large_factor(model):
    result = model.invert(IMAGE, steps=40)  # the paper's schedule and priors, in proportion
    first, last = result.history[0], result.history[-1]
    assert first["loss"] > 20 * last["loss"]  # E of the random start is mostly its TV
    assert first["loss_feature"] > 4 * last["loss_feature"]
    assert result.tensor.shape == (1, 3, 32, 32) and result.image.size == (32, 32)
    assert result.layer == "relu3_1" and result.random_features
    # a weaker prior lets the data term go further: the normalised error falls > 3x (its square > 10x)
    weak = model.invert(IMAGE, steps=40, lambda_tv=0.1)
    assert weak.history[0]["loss_feature"] > 10 * weak.history[-1]["loss_feature"]
    assert weak.error < math.sqrt(weak.history[0]["loss_feature"]) / 3


def test_error_is_the_normalised_feature_distance_of_the_returned_image(model):
    result = model.invert(IMAGE, "relu2_1", steps=5)
    target = model.features(IMAGE, "relu2_1")
    explicit = (model.features(result.tensor, "relu2_1") - target).norm() / target.norm()
    assert result.error == pytest.approx(float(explicit), rel=1e-5)
    assert target.shape[1] == 128 and model.vgg_width("relu2_1") == 128


def test_objective_terms_are_the_references(model):
    s = model._settings({})
    sigma2 = (PIXEL_SIGMA**2) * 3 * 32 * 32
    target = model.features(IMAGE, "relu3_1")
    x = torch.randn(1, 3, 32, 32) * 60
    terms = model.objective(target, "relu3_1", s, sigma2)(x)
    d1 = torch.cat([x[..., 1:], x[..., -1:]], -1) - x  # deep-goggle's tv(): differences to the replicated edge
    d2 = torch.cat([x[..., 1:, :], x[..., -1:, :]], -2) - x
    phi = model.features(from_caffe_range(x), "relu3_1")
    assert terms["loss_feature"].item() == pytest.approx(((phi - target).pow(2).sum() / target.pow(2).sum()).item(),
                                                         rel=1e-5)
    assert terms["loss_tv"].item() == pytest.approx((10.0 / 2 * (d1**2 + d2**2).sum() / sigma2).item(), rel=1e-5)
    assert terms["loss_alpha"].item() == pytest.approx((8e-10 / 2 * x.pow(6).sum() / sigma2).item(), rel=1e-5)
    custom = model.objective(target, "relu3_1", model._settings({"lambda_tv": 3.0, "alpha": 2.0}), sigma2)(x)
    assert custom["loss_tv"].item() == pytest.approx(0.3 * terms["loss_tv"].item(), rel=1e-5)
    assert custom["loss_alpha"].item() == pytest.approx((8e-10 / 2 * x.pow(2).sum() / sigma2).item(), rel=1e-5)


def test_sgd_runs_deep_goggles_schedule_scaled_by_sigma_squared(model):
    sigma2 = (PIXEL_SIGMA**2) * 3 * 32 * 32
    s = model._settings({})
    full = model._schedule(s, sigma2)["lr_schedule"]
    assert [n for n, _ in full] == [100, 200, 100]
    assert [lr / sigma2 for _, lr in full] == pytest.approx([0.004, 0.0004, 0.00004])
    result = model.invert(IMAGE, steps=8)  # the schedule in proportion: 2, 4, 2 iterations
    rates = [h["lr"] / sigma2 for h in result.history[:-1]]
    assert rates == pytest.approx([0.004] * 2 + [0.0004] * 4 + [0.00004] * 2)
    assert model._schedule(model._settings({"optimizer": "adam"}), sigma2) == {"steps": 400, "lr": 10.0}


def test_start_is_randn_scaled_to_sigma_and_runs_are_deterministic(model):
    start = model.invert(IMAGE, steps=0, seed=3)
    n = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    x0 = n / n.norm() * PIXEL_SIGMA * math.sqrt(3 * 32 * 32)
    assert torch.allclose(start.tensor, from_caffe_range(x0).clamp(0, 1), atol=1e-6)
    a, b = model.invert(IMAGE, steps=3, seed=1), model.invert(IMAGE, steps=3, seed=1)
    assert torch.equal(a.tensor, b.tensor) and a.history == b.history


def test_feature_input_needs_the_image_size(model):
    from_image = model.invert(IMAGE, "relu2_1", steps=3)
    features = model.features(IMAGE, "relu2_1")
    from_features = model.invert(features[0], "relu2_1", size=(32, 32), steps=3)
    assert torch.equal(from_image.tensor, from_features.tensor) and from_image.error == from_features.error
    with pytest.raises(ZooError, match="pass size="):
        model.invert(features, "relu2_1")
    with pytest.raises(ZooError, match="features of a 40x40 image are 20x20"):
        model.invert(features, "relu2_1", size=40)
    with pytest.raises(ZooError, match="size= is for feature input"):
        model.invert(IMAGE, size=(32, 32))


def test_refusals(model):
    with pytest.raises(ZooError, match="python -m zoo.predict inversion"):
        model.training_step({}, 0)
    with pytest.raises(ZooError, match="has no layer 'relu6_1'"):
        model.invert(IMAGE, "relu6_1")
    with pytest.raises(ZooError, match="no option 'beta'"):
        model.invert(IMAGE, beta=2)
    with pytest.raises(ZooError, match="one image"):
        model.invert(torch.rand(2, 3, 16, 16))
    assert model.state_dict() == {} and zoo.registry.get_method("inversion") is Inversion
