"""Task verbs shared by methods: `translate` for image-to-image translation.

The verb takes any input kind of `zoo.imageio` (PIL, HWC uint8 array, path, BCHW tensor in [0, 1]) at
any size, pads it to the network's multiple, runs the network in the test-time mode of the I/O
contract, crops back and returns the input's kind.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.imageio import crop_to, from_batch, from_range, pad_to_multiple, to_batch, to_range

__all__ = ["TranslationMixin", "SuperResolutionMixin", "apply_network", "inference_mode_of"]


@contextlib.contextmanager
def inference_mode_of(network: nn.Module, eval_mode: bool) -> Iterator[nn.Module]:
    """Put `network` in the test-time mode, then restore its train/eval flags.

    `eval_mode=False` reproduces references that test in train mode (pix2pix: dropout on, batch
    statistics in BatchNorm, paper §3.3 / `test.py` without `--eval`); the stored running statistics
    are put back afterwards, so inference never changes the weights."""
    flags = {m: m.training for m in network.modules()}
    # Only train mode touches BatchNorm's running statistics, so only then are they saved and put back.
    norms = [] if eval_mode else [m for m in network.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in norms]
    try:
        network.train(not eval_mode)
        yield network
    finally:
        with torch.no_grad():
            for m, buffers in zip(norms, saved):
                for name, value in buffers.items():
                    getattr(m, name).copy_(value)
        for m, flag in flags.items():
            m.training = flag


class TranslationMixin:
    """Adds `translate(x, direction=None, *, eval_mode=None)` to a ZooModule that implements
    `generator(direction) -> nn.Module` (mapping the model's range to itself)."""

    io: dict[str, Any]

    def generator(self, direction: str) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def resolve_direction(self, direction: str | None) -> str:
        directions = list(self.io["directions"])
        if direction is None:
            return directions[0]
        if not isinstance(direction, str):
            raise ZooError(f"direction must be one of {directions} (a string), got {direction!r}")
        normalized = {"atob": "a2b", "btoa": "b2a"}.get(direction.lower().replace("_", ""), direction.lower())
        if normalized not in directions:
            raise ZooError(
                f"this model translates {' and '.join(directions)} only, not {direction!r}: "
                f"pass direction={directions[0]!r} (or load a model trained for {direction!r})"
            )
        return normalized

    def translate(self, x: Any, direction: str | None = None, *, eval_mode: bool | None = None) -> Any:
        """Translate `x` (PIL image, HWC uint8 array, path, or BCHW/CHW tensor in [0, 1], any size) and
        return the same kind at the same size. `eval_mode=None` follows the model's I/O contract."""
        return apply_network(self, self.generator(self.resolve_direction(direction)), x, eval_mode=eval_mode)


class SuperResolutionMixin:
    """Adds `upscale(x)` to a ZooModule that implements `upscaler() -> nn.Module` (model range to
    model range, output `io["scale"]` times larger)."""

    io: dict[str, Any]

    def upscaler(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def upscale(self, x: Any, *, eval_mode: bool | None = None) -> Any:
        """Upscale `x` (any input kind of `zoo.imageio`, any size) by `io["scale"]`; returns the same kind."""
        return apply_network(self, self.upscaler(), x, scale=int(self.io["scale"]), eval_mode=eval_mode)


def apply_network(model: Any, network: nn.Module, x: Any, *, scale: int = 1, eval_mode: bool | None = None) -> Any:
    """Run `network` on `x` under `model.io`: to a batch in the network's range and device, padded to
    `size_multiple`, test-time mode, then cropped back (`scale` times the input size) to x's kind."""
    batch, kind = to_batch(x)
    parameter = next(iter(network.parameters()), None)
    buffer = next(iter(network.buffers()), None)
    reference = parameter if parameter is not None else buffer
    if reference is not None:
        batch = batch.to(device=reference.device, dtype=reference.dtype)
    padded, size = pad_to_multiple(batch, int(model.io["size_multiple"]), min_size=getattr(model, "min_input_size", 1))
    mode = model.io.get("eval_mode", True) if eval_mode is None else eval_mode
    with torch.inference_mode(), inference_mode_of(network, mode):
        y = network(to_range(padded, model.io["range"]))
    return from_batch(from_range(crop_to(y, (size[0] * scale, size[1] * scale)), model.io["range"]), kind)
