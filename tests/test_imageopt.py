"""zoo.imageopt: the image-optimisation loop of gatys and inversion — L-BFGS counts iterations, the clamp
sits outside the closure, SGD follows deep-goggle's momentum update and resets, histories, determinism."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import ZooError
from zoo.imageopt import (
    caffe_range_bounds, from_caffe_range, optimize_image, resize_shorter, scaled_schedule, to_caffe_range,
)

A = torch.tensor([1.0, 3.0, 0.5, 2.0]).view(1, 1, 2, 2)
TARGET = torch.tensor([2.0, -1.0, 0.25, 3.0]).view(1, 1, 2, 2)


def quadratic(calls: list | None = None):
    """½ Σ a (x − t)²: a known minimum, and a record of every point the objective is evaluated at."""

    def objective(x):
        if calls is not None:
            calls.append(x.detach().clone())
        return {"loss_fit": 0.5 * (A * (x - TARGET) ** 2).sum(), "loss_small": 0.01 * x.pow(2).sum()}

    return objective


def torch_lbfgs(x0: torch.Tensor, steps: int, clamp: tuple[float, float] | None = None) -> list[torch.Tensor]:
    """The reference: torch's L-BFGS with max_iter=1 driven by hand for `steps` iterations on `quadratic`, the
    closure untouched and the clamp (if any) applied after each step. Returns every iterate, x0 first."""
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1)

    def closure():
        opt.zero_grad()
        loss = sum(quadratic()(x).values())
        loss.backward()
        return loss

    seen = [x.detach().clone()]
    for _ in range(steps):
        opt.step(closure)
        if clamp is not None:
            with torch.no_grad():
                x.clamp_(*clamp)
        seen.append(x.detach().clone())
    return seen


def test_lbfgs_step_is_one_iteration_not_a_closure_evaluation():
    calls: list = []
    x0 = torch.zeros(1, 1, 2, 2)
    image, history = optimize_image(x0, quadratic(calls), optimizer="lbfgs", steps=5)
    # 5 iterations: one closure per iteration (no line search) + the final evaluation of the result
    assert len(history) == 6 and len(calls) == 6
    assert torch.equal(x0, torch.zeros(1, 1, 2, 2))  # x0 untouched
    # the same as driving torch's LBFGS with max_iter=1 by hand, five times
    assert torch.equal(image, torch_lbfgs(x0, 5)[-1])
    # with a line search the closure runs more often, but the steps are still iterations
    calls.clear()
    _, history = optimize_image(x0, quadratic(calls), optimizer="lbfgs", steps=5, line_search_fn="strong_wolfe")
    assert len(history) == 6 and len(calls) > 6
    best = A * TARGET / (A + 0.02)  # the minimiser of ½ a (x − t)² + 0.01 x²
    minimum = float(sum(quadratic()(best).values()))
    assert history[-1]["loss"] - minimum < 1e-3 * (history[0]["loss"] - minimum)


def test_clamp_is_applied_after_each_step_outside_the_closure():
    calls: list = []
    x0 = torch.full((1, 1, 2, 2), 0.5)
    image, history = optimize_image(x0, quadratic(calls), optimizer="lbfgs", steps=4, clamp=(0.0, 1.0))
    assert image.min() >= 0 and image.max() <= 1
    free, _ = optimize_image(x0, quadratic(), optimizer="lbfgs", steps=4)
    assert free.max() > 1.5 and free.min() < -0.5  # the clamp did bite
    # reference: torch's L-BFGS, closure untouched, clamp after the step
    seen = torch_lbfgs(x0, 4, clamp=(0.0, 1.0))
    assert torch.equal(image, seen[-1])
    # the closure saw exactly the clamped iterates (and nothing clamped inside it)
    assert all(torch.equal(a, b) for a, b in zip(calls, seen))
    # tensor bounds (per channel) work too
    lo, hi = torch.tensor([0.0]).view(1, 1, 1, 1), torch.tensor([0.75]).view(1, 1, 1, 1)
    image, _ = optimize_image(x0, quadratic(), optimizer="adam", lr=0.5, steps=3, clamp=(lo, hi))
    assert image.max() <= 0.75


def test_sgd_follows_deep_goggle_momentum_and_resets_it_when_the_rate_changes():
    schedule = [(3, 0.1), (2, 0.01), (2, 0.01), (3, 0.05)]
    image, history = optimize_image(torch.zeros(1, 1, 2, 2), quadratic(), optimizer="sgd", momentum=0.9,
                                    lr_schedule=schedule)
    # invert_nn.m: m = 0.9 m − lr ∇E; x += m; m = 0 whenever lr changes
    x, m, previous = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), None
    rates = []
    for n, lr in schedule:
        if lr != previous:
            m = torch.zeros_like(m)
            previous = lr
        for _ in range(n):
            grad = A * (x - TARGET) + 0.02 * x
            m = 0.9 * m - lr * grad
            x = x + m
            rates.append(lr)
    assert torch.allclose(image, x, atol=1e-6)
    assert [h["lr"] for h in history[:-1]] == rates
    # without the reset the result differs (the test would notice a missing reset)
    x2, m2 = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    for lr in rates:
        m2 = 0.9 * m2 - lr * (A * (x2 - TARGET) + 0.02 * x2)
        x2 = x2 + m2
    assert not torch.allclose(image, x2, atol=1e-4)


def test_history_terms_callback_and_determinism():
    seen = []
    image, history = optimize_image(torch.zeros(1, 1, 2, 2), quadratic(), optimizer="adam", lr=0.1, steps=6,
                                    callback=lambda step, x, losses: seen.append((step, losses["loss"])))
    assert [s for s, _ in seen] == list(range(1, 7))
    assert [loss for _, loss in seen] == [h["loss"] for h in history[:-1]]
    assert set(history[0]) == {"loss_fit", "loss_small", "loss", "lr"}
    assert history[0]["loss"] == pytest.approx(history[0]["loss_fit"] + history[0]["loss_small"])
    assert history[-1]["loss"] < history[0]["loss"]
    again, history2 = optimize_image(torch.zeros(1, 1, 2, 2), quadratic(), optimizer="adam", lr=0.1, steps=6)
    assert torch.equal(image, again) and history == history2


def test_bad_arguments_raise_zoo_errors():
    x0 = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ZooError, match="unknown optimizer"):
        optimize_image(x0, quadratic(), optimizer="rmsprop", steps=1)
    with pytest.raises(ZooError, match="needs steps"):
        optimize_image(x0, quadratic())
    with pytest.raises(ZooError, match="lr_schedule has 3 steps"):
        optimize_image(x0, quadratic(), optimizer="sgd", steps=4, lr_schedule=[(3, 0.1)])
    with pytest.raises(ZooError, match="applies to optimizer=.lbfgs. only"):
        optimize_image(x0, quadratic(), optimizer="adam", steps=1, line_search_fn="strong_wolfe")
    with pytest.raises(ZooError, match="lower the learning rate"):
        optimize_image(torch.ones(1, 1, 2, 2), lambda x: {"loss": x.pow(2).sum()}, optimizer="sgd", lr=10.0, steps=60)


def test_scaled_schedule_caffe_range_and_resize():
    assert scaled_schedule([(100, 1.0), (200, 0.1), (100, 0.01)], 40) == [(10, 1.0), (20, 0.1), (10, 0.01)]
    assert sum(n for n, _ in scaled_schedule([(100, 1.0), (200, 0.1), (100, 0.01)], 7)) == 7
    rgb = torch.rand(1, 3, 5, 4)
    x = to_caffe_range(rgb)
    assert torch.allclose(x[:, 0], (rgb[:, 0] - 123.68 / 255) * 255, atol=1e-4)
    assert torch.allclose(from_caffe_range(x), rgb, atol=1e-6)
    lo, hi = caffe_range_bounds(x)
    assert torch.allclose(from_caffe_range(lo), torch.zeros(1, 3, 1, 1), atol=1e-6)
    assert torch.allclose(from_caffe_range(hi), torch.ones(1, 3, 1, 1), atol=1e-6)
    assert resize_shorter(torch.rand(1, 3, 20, 30), 10).shape[-2:] == (10, 15)
    same = torch.rand(1, 3, 8, 9)
    assert resize_shorter(same, None) is same


def test_lbfgs_line_search_gets_evaluations_and_never_increases_the_loss():
    weights = torch.tensor([1.0, 20.0, 300.0, 4000.0]).view(1, 1, 2, 2)

    def objective(x):  # a double well plus stiff quartics: a unit L-BFGS step overshoots
        return {"loss": ((x**2 - 1) ** 2).sum() + (weights * x**4).sum()}

    x0 = 0.1 * torch.tensor([1.0, -1.0, 0.5, 2.0]).view(1, 1, 2, 2)
    _, fixed = optimize_image(x0, objective, steps=8)
    assert fixed[1]["loss"] > 10 * fixed[0]["loss"]
    calls: list = []
    _, searched = optimize_image(x0, lambda x: calls.append(1) or objective(x), steps=8, line_search_fn="strong_wolfe")
    losses = [h["loss"] for h in searched]
    assert all(b <= a for a, b in zip(losses, losses[1:])) and losses[-1] < fixed[-1]["loss"]
    assert 8 + 1 < len(calls) <= 8 * 26 + 1  # the search ran (up to 25 evaluations per iteration)
