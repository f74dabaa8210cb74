"""Optimise an image against an objective: the loop shared by the optimisation methods (`gatys`,
`inversion`), plus the pieces both need (the Caffe-range image space, a loss VGG with usable random
weights, shorter-side resizing).

`optimize_image(x0, objective, ...)` minimises Σ objective(x).values() over the pixels of x with
L-BFGS, Adam or momentum SGD:

- L-BFGS is `torch.optim.LBFGS(max_iter=1)`: one `step()` is exactly one L-BFGS iteration (one
  direction, one update; the closure runs once, plus the line search's evaluations when
  `line_search_fn="strong_wolfe"`, at most 25), so `steps` counts iterations, not closure evaluations
  (`../shared/reference/METHODS.md` §1 pitfall 3). History size and tolerances are torch's defaults;
  the curvature memory persists across steps.
- SGD with momentum follows deep-goggle's `invert_nn.m`: `lr_schedule` phases, and the momentum is
  reset to 0 whenever the learning rate changes. Within a phase torch's SGD (buf = μ·buf + g,
  x −= lr·buf) is the reference's m = μ·m − lr·g, x += m.
- `clamp` is applied to x after each step, never inside the closure: clamping there would change the
  point whose gradient L-BFGS records (§1 pitfall 3).

The loop itself draws no random numbers: the result depends only on x0 and the objective.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.errors import ZooError
from zoo.metrics.backbones import HiddenNetMixin
from zoo.nn.vgg import VGGFeatures

__all__ = [
    "optimize_image", "ImageOptResult", "OPTIMIZERS", "Objective", "Callback",
    "CAFFE_MEAN_RGB", "to_caffe_range", "from_caffe_range", "caffe_range_bounds",
    "PerImageOptimizer", "resize_shorter", "scaled_schedule",
]

log = logging.getLogger("zoo.imageopt")

OPTIMIZERS = ("lbfgs", "adam", "sgd")

#: objective(x) -> {term name: weighted scalar term}; the sum of the terms is minimised.
Objective = Callable[[Tensor], Mapping[str, Tensor]]
#: callback(step, x, losses): `step` iterations done (1-based), `x` the current iterate (detached; do not
#: modify it), `losses` the terms evaluated at the start of that step.
Callback = Callable[[int, Tensor, Mapping[str, float]], None]


class ImageOptResult(NamedTuple):
    """The optimised image (detached, the optimiser's space) and one dict of floats per iterate:
    history[k] holds the terms, their sum "loss" and the learning rate "lr" at iterate x_k, k = 0 (the
    start) ... the number of steps run (the returned image)."""

    image: Tensor
    history: list[dict[str, float]]


def _phases(steps: int | None, lr: float | None, lr_schedule: Sequence[Sequence[float]] | None,
            default_lr: float) -> list[tuple[int, float]]:
    if lr_schedule is None:
        if steps is None:
            raise ZooError("optimize_image needs steps=N (or an lr_schedule of (steps, lr) phases)")
        if int(steps) < 0:
            raise ZooError(f"steps must be >= 0, got {steps}")
        return [(int(steps), default_lr if lr is None else float(lr))]
    phases = []
    for phase in lr_schedule:
        if len(phase) != 2 or int(phase[0]) < 0 or float(phase[1]) <= 0:
            raise ZooError(f"an lr_schedule phase is (steps >= 0, lr > 0), got {tuple(phase)!r}")
        phases.append((int(phase[0]), float(phase[1])))
    total = sum(n for n, _ in phases)
    if steps is not None and int(steps) != total:
        raise ZooError(f"steps={steps} but the lr_schedule has {total} steps: pass one of them "
                       f"(or rescale the schedule with zoo.imageopt.scaled_schedule)")
    if lr is not None:
        raise ZooError("pass lr or lr_schedule, not both: the schedule sets the learning rate of every step")
    return phases


def scaled_schedule(schedule: Sequence[Sequence[float]], steps: int) -> list[tuple[int, float]]:
    """`schedule` ((steps, lr) phases) stretched or shrunk to `steps` iterations in the same proportions
    (rounded; the last phase takes the remainder; phases left empty are dropped)."""
    total = sum(int(n) for n, _ in schedule)
    if total <= 0 or steps <= 0:
        return []
    out, used = [], 0
    for i, (n, lr) in enumerate(schedule):
        count = steps - used if i == len(schedule) - 1 else round(steps * int(n) / total)
        count = max(0, min(count, steps - used))
        used += count
        if count:
            out.append((count, float(lr)))
    return out


def optimize_image(
    x0: Tensor,
    objective: Objective,
    *,
    optimizer: str = "lbfgs",
    steps: int | None = None,
    lr: float | None = None,
    momentum: float = 0.9,
    lr_schedule: Sequence[Sequence[float]] | None = None,
    clamp: tuple[Any, Any] | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    line_search_fn: str | None = None,
    description: str = "optimising",
) -> ImageOptResult:
    """Minimise Σ objective(x).values() over x, starting from `x0` (left unchanged).

    Args:
        optimizer: "lbfgs" (one iteration per step; default lr 1), "adam" (default lr 1e-2) or "sgd"
            (momentum `momentum`; default lr 1e-2).
        steps: iterations; or give `lr_schedule`, a list of (steps, lr) phases (SGD resets its momentum
            at every learning-rate change, as deep-goggle).
        clamp: (lo, hi) floats or tensors broadcastable to x, applied after every step (outside the
            L-BFGS closure); None leaves x free.
        callback: called after every step as callback(step, x, losses) (e.g. to save intermediates).
        progress: a tqdm bar with the step and the current terms (shown on terminals only).
        line_search_fn: None or "strong_wolfe" (L-BFGS only).
    Returns `ImageOptResult(image, history)`; see there. An L-BFGS run stops early when a step leaves x
    unchanged (torch's tolerances were met).
    """
    if optimizer not in OPTIMIZERS:
        raise ZooError(f"unknown optimizer {optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
    if line_search_fn not in (None, "strong_wolfe"):
        raise ZooError(f"line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
    if line_search_fn is not None and optimizer != "lbfgs":
        raise ZooError("line_search_fn applies to optimizer='lbfgs' only")
    phases = _phases(steps, lr, lr_schedule, {"lbfgs": 1.0, "adam": 1e-2, "sgd": 1e-2}[optimizer])
    total = sum(n for n, _ in phases)
    first_lr = phases[0][1] if phases else (lr if lr is not None else 1.0)

    x = x0.detach().clone().requires_grad_(True)
    if optimizer == "lbfgs":
        # max_eval bounds the line search's evaluations (max_ls = max_eval − 1): torch's default for
        # max_iter=1 would leave it none; 25 is the line search's own default.
        opt: torch.optim.Optimizer = torch.optim.LBFGS([x], lr=first_lr, max_iter=1, max_eval=1 + 25,
                                                       line_search_fn=line_search_fn)
    elif optimizer == "adam":
        opt = torch.optim.Adam([x], lr=first_lr)
    else:
        opt = torch.optim.SGD([x], lr=first_lr, momentum=momentum)
    lo, hi = clamp if clamp is not None else (None, None)
    if isinstance(lo, Tensor) or isinstance(hi, Tensor):  # torch.clamp takes two tensors or two numbers
        lo, hi = (None if v is None else torch.as_tensor(v, device=x.device, dtype=x.dtype) for v in (lo, hi))

    history: list[dict[str, float]] = []
    evaluated: list[dict[str, float]] = []  # the terms of the closure's first evaluation in this step

    def terms_of(values: Mapping[str, Tensor], lr_now: float) -> dict[str, float]:
        out = {k: float(v.detach()) for k, v in values.items()}
        out["loss"] = float(sum(out.values()))
        out["lr"] = lr_now
        return out

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        values = objective(x)
        if not values:
            raise ZooError("the objective returned no terms: return a dict of named scalar losses")
        loss = sum(values.values())
        loss.backward()
        if not evaluated:
            evaluated.append(terms_of(values, opt.param_groups[0]["lr"]))
        return loss

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=description, disable=None, leave=False, dynamic_ncols=True)
    step, previous_lr, converged = 0, None, False
    try:
        for n, phase_lr in phases:
            if converged:
                break
            for group in opt.param_groups:
                group["lr"] = phase_lr
            if optimizer == "sgd" and previous_lr is not None and phase_lr != previous_lr:
                for state in opt.state.values():  # deep-goggle: momentum back to 0 at an lr change
                    state.pop("momentum_buffer", None)
            previous_lr = phase_lr
            for _ in range(n):
                evaluated.clear()
                before = x.detach().clone() if optimizer == "lbfgs" else None
                if optimizer == "lbfgs":
                    opt.step(closure)
                else:
                    closure()
                    opt.step()
                converged = before is not None and torch.equal(before, x.detach())
                if clamp is not None:
                    with torch.no_grad():
                        x.clamp_(lo, hi)
                step += 1
                terms = evaluated[0]
                history.append(terms)
                if not all(math.isfinite(v) for v in terms.values()):
                    raise ZooError(f"the objective became {terms['loss']} at step {step}: lower the learning "
                                   f"rate (lr=...) or the loss weights")
                if callback is not None:
                    callback(step, x.detach(), terms)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4g}" for k, v in terms.items() if k != "lr"}, refresh=False)
                    bar.update(1)
                if converged:
                    log.info("L-BFGS converged after %d of %d steps (torch's tolerances met)", step, total)
                    break
    finally:
        if bar is not None:
            bar.close()
    with torch.no_grad():
        history.append(terms_of(objective(x), opt.param_groups[0]["lr"]))
    return ImageOptResult(x.detach(), history)


# ------------------------------------------------------------------------------ the Caffe-range space
#: The ImageNet mean of the Caffe VGGs, RGB order, in [0, 1] (Caffe lists it BGR: 103.939, 116.779, 123.68).
CAFFE_MEAN_RGB = (123.68 / 255.0, 116.779 / 255.0, 103.939 / 255.0)


def _mean(x: Tensor) -> Tensor:
    return torch.tensor(CAFFE_MEAN_RGB, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)


def to_caffe_range(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] -> 0-255 minus the ImageNet mean (RGB order): the space in which the Caffe-era
    references optimise their images (Gatys' notebook, jcjohnson, deep-goggle), whatever VGG variant
    computes the features."""
    return (rgb - _mean(rgb)) * 255.0


def from_caffe_range(x: Tensor) -> Tensor:
    """The inverse of `to_caffe_range` (no clamping)."""
    return x / 255.0 + _mean(x)


def caffe_range_bounds(like: Tensor) -> tuple[Tensor, Tensor]:
    """(lo, hi) per channel of the valid pixels [0, 1] in the Caffe-range space, shaped (1, 3, 1, 1)."""
    mean = _mean(like)
    return -255.0 * mean, 255.0 * (1.0 - mean)


# ----------------------------------------------------------------------------------- the loss network
class PerImageOptimizer(HiddenNetMixin):
    """Base of the methods that optimise every output image against a frozen VGG (gatys, inversion):
    the VGG is the whole model, kept out of the state dict (`HiddenNetMixin`, `self.network`), random
    VGG weights are noted on the model, and there is nothing to train. Subclasses set `usage`, what to
    run instead of training, and call `use_vgg(...)` in `__init__`."""

    weight_free: ClassVar[bool] = True
    optimizes_per_image: ClassVar[bool] = True
    #: what `training_step` tells a user to run instead, e.g. "`python -m zoo.predict gatys ...`".
    usage: ClassVar[str] = ""
    method: ClassVar[str]

    def use_vgg(self, variant: str, arch: str, layers: Sequence[str], weights: Any, pool: str) -> VGGFeatures:
        """Build the frozen `VGGFeatures` (an unknown variant, arch or layer is a `ZooError`; random weights,
        weights=None or "default-or-random" with no file, are VGGFeatures' seeded He-normal ones and noted
        with `note_random_features`)."""
        try:
            net = VGGFeatures(arch, tuple(layers), weights, pool=pool, variant=variant)
        except ValueError as e:  # unknown variant / arch / layer
            raise ZooError(str(e)) from None
        self._set_hidden_net(net)
        # No parameters: this buffer (not saved) gives `.to()` something to move, and the verbs the device.
        self.register_buffer("_device_anchor", torch.zeros(()), persistent=False)  # type: ignore[attr-defined]
        if net.random_weights_note:
            self.note_random_features(net.random_weights_note)  # type: ignore[attr-defined]
        return net

    def training_step(self, batch: Any, batch_idx: int) -> None:
        raise ZooError(f"{self.method} optimises each output image on its own (there are no weights to train): "
                       f"run {self.usage}")

    def configure_optimizers(self) -> None:
        return None


def resize_shorter(image: Tensor, size: int | float | None) -> Tensor:
    """Resize (B, C, H, W) so that its shorter side is `size` (bilinear, antialiased when shrinking);
    None returns it unchanged."""
    if size is None:
        return image
    h, w = image.shape[-2:]
    scale = float(size) / min(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    if new == (h, w):
        return image
    return F.interpolate(image, size=new, mode="bilinear", align_corners=False, antialias=scale < 1)
