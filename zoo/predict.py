"""`python -m zoo.predict <name-or-dir> <inputs...> --out DIR [--direction a2b] [--device cpu]
[--n N --seed S | --style IMG] [--alpha A --weights W,...] [--set KEY=VALUE ...]
[--channels_last true] [--compile true] [--precision bf16-mixed]`: run a model's task verb
on image files or folders and write PNGs named after the inputs (multimodal models: N samples per input,
or the style of a reference image; style methods: `stylize` with `--style` image(s), or a style index or
weight vector for `cin`; `inversion`: the image reconstructed from its features; super-resolution models:
`upscale`; `colorization`: `colorize`). `--set` passes options to the verb (`--set steps=200 --set
init=content`, `--set temperature=1`). Images made with random feature weights carry a
`zoo-warning` PNG text entry. An input that cannot be read is reported as `error: cannot read image
<path>: ...` and skipped: the other outputs are written and the exit status is 2 (0 when every input was
written); any other mistake stops the command with `error: ...` and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.module import ZooModule

__all__ = ["main", "predict_files"]


def _inputs(paths: list[str]) -> list[tuple[Path, Path]]:
    """(image file, output name) pairs. Files in a folder keep their path below it, so `x.png` and
    `sub/x.png` do not collide; two inputs that would still write the same output are an error."""
    from zoo.data import list_images
    from zoo.errors import DataError

    items: list[tuple[Path, Path]] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise DataError(f"{p} contains no images: pass image files or a folder that holds some")
            items += [(Path(f), Path(f).relative_to(p).with_suffix(".png")) for f in found]
        elif p.is_file() or p.is_symlink():  # a broken link is reported by read_image, naming it
            items.append((p, Path(p.name).with_suffix(".png")))
        else:
            raise DataError(f"{p}: no such file or folder")
    seen: dict[Path, Path] = {}
    for source, name in items:
        if name in seen:
            raise DataError(
                f"{seen[name]} and {source} would both be written as {name}: rename one, or predict them "
                f"into different --out folders"
            )
        seen[name] = source
    return items


def _style_value(value: str) -> Any:
    """A `--style` value: an image file, else a style index (`3`) or weights (`0.5,0.5,0,...`) for `cin`,
    else the text itself (a `cin` style name; for other methods a missing file, which stylize reports)."""
    from zoo.imageio import read_image

    if Path(value).is_file():
        return read_image(value)
    numbers = _numbers(value)
    if numbers is None:
        return value
    return int(numbers[0]) if len(numbers) == 1 and numbers[0].is_integer() and "," not in value else numbers


def _numbers(value: str) -> list[float] | None:
    """`0.7,0.3` -> [0.7, 0.3]; None when `value` is not comma-separated numbers."""
    try:
        return [float(v) for v in value.split(",")]
    except ValueError:
        return None


def _options(items: list[str] | None) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs; values are read as JSON (numbers, true, lists), else kept as strings."""
    from zoo.errors import ZooError

    options: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise ZooError(f"--set {item!r}: write KEY=VALUE, e.g. --set steps=200")
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


def predict_files(model: "ZooModule", inputs: list[str], out: str | Path, *, direction: str | None = None,
                  eval_mode: bool | None = None, n: int | None = None, seed: int | None = None,
                  style: str | list[str] | None = None, alpha: float | None = None,
                  weights: list[float] | None = None, options: dict[str, Any] | None = None,
                  unreadable: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Run the model's verb on every image in `inputs` (files or folders) into `out`; returns the paths.

    Multimodal models (MUNIT): `n` writes n samples per input as `<name>_s00.png ...` (styles drawn
    with `seed`), `style` translates with the style of that reference image. Style methods: `stylize`
    with `style` (image path(s), or a style index / weights for `cin`), `alpha`, `weights` and
    `options`; `inversion`: `invert(image, **options)`; super-resolution: `upscale(image)`; colorization:
    `colorize(image, **options)`.

    An input that cannot be read (corrupt, truncated, empty, not an image, a broken link, no read
    permission) raises `ImageReadError` naming it; when `unreadable` is a list, it is appended there as
    (path, message) instead and the other inputs are still written."""
    from zoo.errors import ImageReadError, ZooError
    from zoo.imageio import read_image

    options = dict(options or {})
    multimodal = hasattr(model, "sample")
    stylizes = hasattr(model, "stylize")
    inverts = hasattr(model, "invert")
    colorizes = hasattr(model, "colorize")
    if (n is not None or seed is not None) and not multimodal:
        raise ZooError(f"--n and --seed need a multimodal model; {model.method!r} has one output per input")
    if style is not None and not (multimodal or stylizes):
        raise ZooError(f"--style needs a multimodal or style-transfer model; {model.method!r} takes none")
    if (alpha is not None or weights is not None) and not stylizes:
        raise ZooError(f"--alpha and --weights are for style-transfer models; {model.method!r} is not one")
    if options and not (stylizes or inverts or colorizes):
        raise ZooError(f"--set passes options to stylize(), invert() or colorize(); {model.method!r} has none of them")
    if n is not None and style is not None:
        raise ZooError("pass either --n (random styles) or --style (a reference image), not both")
    styles = [style] if isinstance(style, str) else list(style or [])
    if multimodal and len(styles) > 1:
        raise ZooError(f"{model.method!r} translates with one reference style: pass --style once")
    out = Path(out)
    written = []
    style_arg: Any = None
    if stylizes and styles:
        values = [_style_value(s) for s in styles]
        style_arg = values[0] if len(values) == 1 else values
    for path, name in _inputs(inputs):
        try:
            image = read_image(path)
        except ImageReadError as error:
            if unreadable is None:
                raise
            unreadable.append((path, str(error)))
            continue
        if stylizes:
            kwargs = {"alpha": alpha} if alpha is not None else {}
            results = {name: model.stylize(image, style_arg, weights=weights, **kwargs, **options)}
        elif inverts:
            results = {name: model.invert(image, **options).image}
        elif colorizes:
            results = {name: model.colorize(image, **options)}
        elif hasattr(model, "upscale"):
            results = {name: model.upscale(image, eval_mode=eval_mode)}
        elif n is not None:
            results = {name.with_name(f"{name.stem}_s{i:02d}.png"): im
                       for i, im in enumerate(model.sample(image, n=n, seed=seed, direction=direction))}
        elif styles:
            results = {name: model.translate(image, direction=direction, style=read_image(styles[0]))}
        else:
            results = {name: model.translate(image, direction=direction, eval_mode=eval_mode)}
        for rel, result in results.items():
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            result.save(target, pnginfo=_png_info(model))
            written.append(target)
    return written


def _png_info(model: "ZooModule") -> Any:
    """PNG text entries: `zoo-model`, and `zoo-warning` for outputs made with random feature weights."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("zoo-model", model.method)
    for warning in model.card.get("warnings") or []:
        info.add_text("zoo-warning", str(warning))
    return info


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(prog="python -m zoo.predict", description=__doc__)
    parser.add_argument("model", help="registry name, save_pretrained folder, hf-hub:org/repo[@rev] or .ckpt")
    parser.add_argument("inputs", nargs="+", help="image files or folders of images")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--direction", default=None, help="a2b or b2a (default: the model's first)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval_mode", choices=("true", "false"), default=None,
                        help="false reproduces the reference test mode (dropout + batch statistics)")
    parser.add_argument("--n", type=int, default=None,
                        help="multimodal models: write N samples per input (<name>_s00.png ...)")
    parser.add_argument("--seed", type=int, default=None, help="multimodal models: seed of the sampled styles")
    parser.add_argument("--style", action="append", default=None,
                        help="multimodal models: take the style of this image; style methods: the style image "
                             "(repeat for several), or a style index / comma-separated weights for cin")
    parser.add_argument("--alpha", type=float, default=None, help="style methods: content-style trade-off in [0, 1]")
    parser.add_argument("--weights", default=None, help="style methods: comma-separated weights blending the styles")
    parser.add_argument("--channels_last", choices=("true", "false"), default="false",
                        help="run the networks in channels_last (NHWC) memory format")
    parser.add_argument("--compile", choices=("true", "false"), default="false",
                        help="torch.compile the inference networks (pays off over many images of one size)")
    # zoo.module.INFERENCE_PRECISIONS, written out so that --help does not import torch
    parser.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true",
                        help="bf16-mixed: the networks under bfloat16 autocast (fast on GPUs and on CPUs with "
                             "AVX512-BF16/AMX; emulated and slow on other CPUs); outputs are 8-bit PNGs either way")
    parser.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                        help="an option of stylize()/invert(), e.g. --set steps=200 (repeatable)")
    args = parser.parse_args(argv)
    import zoo
    from zoo.allocator import tune_cpu_allocator
    from zoo.module import emulated_bf16, precision_context

    tune_cpu_allocator()  # freed activations are reused from one image to the next (ZOO_TUNE_MALLOC=0: off)
    try:
        _check_device(args.device)
        model = zoo.load(args.model, device=args.device)
        if args.channels_last == "true":
            model.to_channels_last()
        if args.compile == "true":
            model.compile_networks(inference_only=True)
        mode = None if args.eval_mode is None else args.eval_mode == "true"
        weights = None if args.weights is None else _weights(args.weights)
        unreadable: list[tuple[Path, str]] = []
        if emulated_bf16(args.precision, args.device):
            print(f"warning: --precision {args.precision} on a CPU without native bf16 (no AVX512-BF16/AMX): "
                  f"autocast emulates it and runs many times slower than the default 32-true", file=sys.stderr)
        with precision_context(args.precision, args.device):
            written = predict_files(model, args.inputs, args.out, direction=args.direction, eval_mode=mode,
                                    n=args.n, seed=args.seed, style=args.style, alpha=args.alpha, weights=weights,
                                    options=_options(args.set), unreadable=unreadable)
    except zoo.ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print(f"wrote {len(written)} image(s) to {args.out}")
    if unreadable:
        for _, message in unreadable:
            print(f"error: {message}", file=sys.stderr)
        print(f"error: {len(unreadable)} input(s) could not be read (listed above) and were skipped; the other "
              f"outputs were written", file=sys.stderr)
        raise SystemExit(2)
    return written


def _weights(value: str) -> list[float]:
    from zoo.errors import ZooError

    numbers = _numbers(value)
    if numbers is None:
        raise ZooError(f"--weights {value!r}: write comma-separated numbers, e.g. --weights 0.7,0.3")
    return numbers


def _check_device(device: str) -> None:
    import torch

    from zoo.errors import ZooError

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ZooError(f"--device {device!r} is not a device name: use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"--device {device!r}: no CUDA GPU is available here; use --device cpu")


if __name__ == "__main__":
    main()
