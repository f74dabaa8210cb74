"""Task verbs shared by methods: `translate` for image-to-image translation, `upscale` for
super-resolution, `stylize` for style transfer.

The verb takes any input kind of `zoo.imageio` (PIL, HWC uint8 array, path, BCHW tensor in [0, 1]) at
any size, pads it to the network's multiple, runs the network in the test-time mode of the I/O
contract, crops back and returns the input's kind.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Sequence
from typing import Any, Iterator

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.imageio import crop_to, from_batch, from_range, pad_to_multiple, to_batch, to_range
from zoo.tiling import DEFAULT_OVERLAP, check_pixels, plan_tile, tiled

__all__ = ["TranslationMixin", "normalize_direction", "SuperResolutionMixin", "StyleMixin", "apply_network", "inference_mode_of",
           "to_module", "blend_weights"]

log = logging.getLogger("zoo")


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


def normalize_direction(direction: str) -> str:
    """"a2b"/"b2a" for any spelling users bring from the reference repos (AtoB, BtoA, a_to_b, A2B)."""
    return {"atob": "a2b", "btoa": "b2a"}.get(direction.lower().replace("_", ""), direction.lower())


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
        normalized = normalize_direction(direction)
        if normalized not in directions:
            raise ZooError(
                f"this model translates {' and '.join(directions)} only, not {direction!r}: "
                f"pass direction={directions[0]!r} (or load a model trained for {direction!r})"
            )
        return normalized

    def translate(self, x: Any, direction: str | None = None, *, eval_mode: bool | None = None,
                  tile: int | None = None) -> Any:
        """Translate `x` (PIL image, HWC uint8 array, path, or BCHW/CHW tensor in [0, 1], any size) and
        return the same kind at the same size. `eval_mode=None` follows the model's I/O contract; `tile`
        as in `apply_network` (None: tile only above the memory budget of `zoo.tiling`, 0: never)."""
        return apply_network(self, self.generator(self.resolve_direction(direction)), x, eval_mode=eval_mode,
                             tile=tile)


class SuperResolutionMixin:
    """Adds `upscale(x)` to a ZooModule that implements `upscaler() -> nn.Module` (model range to
    model range, output `io["scale"]` times larger)."""

    io: dict[str, Any]

    def upscaler(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def upscale(self, x: Any, *, eval_mode: bool | None = None, tile: int | None = None) -> Any:
        """Upscale `x` (any input kind of `zoo.imageio`, any size) by `io["scale"]`; returns the same kind.
        `tile` (input pixels) as in `apply_network`: None tiles only above `zoo.tiling`'s budget, 0 never."""
        return apply_network(self, self.upscaler(), x, scale=int(self.io["scale"]), eval_mode=eval_mode, tile=tile)


def apply_network(model: Any, network: nn.Module, x: Any, *, scale: int = 1, eval_mode: bool | None = None,
                  tile: int | None = None) -> Any:
    """Run `network` on `x` under `model.io`: to a batch in the network's range and device, padded to
    `size_multiple`, test-time mode, then cropped back (`scale` times the input size) to x's kind.

    `tile`: None runs the whole image unless its estimated activations exceed `zoo.tiling.get_budget()`,
    then overlapping tiles blended by `zoo.tiling.tiled`; 0 never tiles; an int is the tile side in input
    pixels (rounded up to `size_multiple`). Networks with whole-image statistics (instance norm, batch
    statistics when `eval_mode=False`) normalise every tile with a thumbnail's statistics: see `zoo.tiling`."""
    batch, kind = to_batch(x)
    batch = to_module(batch, network)
    multiple = int(model.io["size_multiple"])
    padded, size = pad_to_multiple(batch, multiple, min_size=getattr(model, "min_input_size", 1))
    mode = model.io.get("eval_mode", True) if eval_mode is None else eval_mode
    with torch.inference_mode(), inference_mode_of(network, mode):
        inputs = to_range(padded, model.io["range"])
        side = plan_tile(tile, network, inputs, multiple=multiple)
        if side is None:
            y = network(inputs)
        else:
            y = tiled(network, inputs, tile=side, overlap=DEFAULT_OVERLAP, scale=scale, multiple=multiple)
        del inputs, padded, batch
        y = from_range(crop_to(y, (size[0] * scale, size[1] * scale)), model.io["range"])
    return from_batch(y, kind)


def to_module(batch: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """`batch` on the device and in the dtype of `module`'s first floating parameter or buffer (as it is
    when the module holds none)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        if tensor.is_floating_point():
            return batch.to(device=tensor.device, dtype=tensor.dtype)
    return batch


def blend_weights(weights: Sequence[float] | torch.Tensor | None, n: int) -> list[float]:
    """Weights that blend `n` style images, normalised to sum 1 (jcjohnson's `-style_blend_weights`,
    AdaIN's test.lua/test.py interpolation); equal when None."""
    if weights is None:
        return [1.0 / n] * n
    w = [float(v) for v in (weights.tolist() if isinstance(weights, torch.Tensor) else weights)]
    if len(w) != n:
        raise ZooError(f"{len(w)} weights for {n} style images: pass one weight per style image")
    if any(v < 0 for v in w) or sum(w) <= 0:
        raise ZooError(f"style weights must be >= 0 with a positive sum, got {w}")
    return [v / sum(w) for v in w]


class StyleMixin:
    """Adds `stylize(content, style=None, *, alpha=1.0, weights=None, **options)` to a ZooModule that
    implements `stylize_batch(content, style, *, alpha, weights, **options) -> Tensor`.

    `content` is any input kind of `zoo.imageio` at any size; the mixin hands `stylize_batch` a float
    BCHW batch in [0, 1] on the model's device, padded (reflection) to `io["size_multiple"]` and
    `min_input_size`, then crops the result back, clamps it to [0, 1] and returns the content's kind.
    `style` goes through `prepare_style` first: image-likes become (1, 3, h, w) tensors in [0, 1] on the
    model's device; a list of them is blended (with `weights`), while a (B, 3, h, w) style tensor for B
    content images pairs them (content i with style i, as `zoo.bench` does). No grad or eval mode is set here: optimisation methods (Gatys) need gradients, so
    `stylize_batch` chooses its own modes."""

    io: dict[str, Any]
    min_input_size: int

    def stylize_batch(self, content: torch.Tensor, style: Any, *, alpha: float = 1.0,
                      weights: Sequence[float] | None = None, **options: Any) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def prepare_style(self, style: Any) -> Any:
        """None -> None; one image-like -> [tensor]; a list or tuple of image-likes -> list of tensors."""
        if style is None:
            return None
        items = list(style) if isinstance(style, (list, tuple)) else [style]
        if not items:
            raise ZooError("style is an empty list: pass one style image or several")
        styles = []
        for item in items:
            batch, _ = to_batch(item)
            if batch.shape[0] != 1:
                raise ZooError(
                    f"a style image must be one image, got a batch of {batch.shape[0]}: pass a list of images instead"
                )
            styles.append(to_module(batch, self))  # type: ignore[arg-type]
        return styles

    def stylize(self, content: Any, style: Any = None, *, alpha: float = 1.0,
                weights: Sequence[float] | None = None, tile: int | None = None, **options: Any) -> Any:
        """Stylize `content` (PIL image, HWC uint8 array, path, or BCHW/CHW tensor in [0, 1], any size) with
        `style` (style image(s), or what the method takes instead, e.g. a style index for `cin`); `alpha`
        trades content for style, `weights` blends several styles. Returns the content's kind and size.

        `tile` (feed-forward methods only, i.e. those with `inference_modules`): None tiles only when the
        estimated activations exceed `zoo.tiling.get_budget()`, 0 never, an int is the tile side. Tiles
        share the instance-norm/AdaIN statistics of a thumbnail of the whole image (`zoo.tiling`), so a
        tiled result stays close to the whole image's; optimisation methods (Gatys) and masks never tile."""
        if not 0.0 <= float(alpha) <= 1.0:
            raise ZooError(f"alpha must be in [0, 1] (0 keeps the content, 1 is full style), got {alpha}")
        batch, kind = to_batch(content)
        if isinstance(style, torch.Tensor) and style.ndim == 4 and style.shape[0] > 1:
            # A batch of styles for a batch of contents: pairs (content i, style i), as zoo.bench runs them.
            if style.shape[0] != batch.shape[0]:
                raise ZooError(
                    f"{style.shape[0]} style images for {batch.shape[0]} content images: pass one style per "
                    f"content image, or a list of styles to blend"
                )
            outs = [self.stylize(batch[i:i + 1], style[i:i + 1], alpha=alpha, weights=weights, tile=tile, **options)
                    for i in range(batch.shape[0])]
            return from_batch(torch.cat(outs), kind)
        batch = to_module(batch, self)  # type: ignore[arg-type]
        prepared = self.prepare_style(style)
        padded, size = pad_to_multiple(batch, int(self.io.get("size_multiple", 1)),
                                       min_size=getattr(self, "min_input_size", 1))
        multiple = int(self.io.get("size_multiple", 1))

        def network_fn(part: torch.Tensor) -> torch.Tensor:
            return self.stylize_batch(part, prepared, alpha=float(alpha), weights=weights, **options)

        side = self._style_tile(tile, network_fn, padded, multiple, masked=options.get("masks") is not None)
        if side is None:
            out = network_fn(padded)
        else:
            out = tiled(network_fn, padded, tile=side, overlap=DEFAULT_OVERLAP, multiple=multiple)
        for warning in getattr(self, "card", {}).get("warnings") or []:
            log.warning("this output was made with random feature weights: %s", warning)
        return from_batch(crop_to(out.detach(), size).clamp(0.0, 1.0), kind)

    def _style_tile(self, tile: int | None, network_fn: Any, padded: torch.Tensor, multiple: int, *,
                    masked: bool) -> int | None:
        """The tile side for `stylize` (None: whole image). Only feed-forward methods tile: an optimised
        image (Gatys: `inference_modules` empty) has no network to tile, and masks are drawn on the whole image."""
        feed_forward = bool(getattr(self, "inference_modules", ()))
        if not feed_forward or masked:
            why = "masks cover the whole image" if masked else f"{type(self).__name__} optimises the whole image"
            if tile:
                raise ZooError(f"stylize cannot tile here ({why}): leave tile=None (or 0)")
            check_pixels(*padded.shape[-2:], what=f"stylize ({why})", tiling_possible=False)
            return None
        return plan_tile(tile, network_fn, padded, multiple=multiple, cache_key=self)
