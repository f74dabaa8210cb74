"""`python -m zoo.predict <name-or-dir> <inputs...> --out DIR [--direction a2b] [--device cpu]
[--n N --seed S | --style IMG]`: run a model's task verb on image files or folders and write PNGs named
after the inputs (multimodal models: N samples per input, or the style of a reference image)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

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
        elif p.is_file():
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


def predict_files(model: "ZooModule", inputs: list[str], out: str | Path, *, direction: str | None = None,
                  eval_mode: bool | None = None, n: int | None = None, seed: int | None = None,
                  style: str | None = None) -> list[Path]:
    """Translate every image in `inputs` (files or folders) into `out`; returns the written paths.

    Multimodal models (MUNIT): `n` writes n samples per input as `<name>_s00.png ...` (styles drawn
    with `seed`), `style` translates with the style of that reference image."""
    from zoo.errors import ZooError
    from zoo.imageio import read_image

    multimodal = hasattr(model, "sample")
    if (n is not None or seed is not None or style is not None) and not multimodal:
        raise ZooError(f"--n, --seed and --style need a multimodal model; {model.method!r} has one output per input")
    if n is not None and style is not None:
        raise ZooError("pass either --n (random styles) or --style (a reference image), not both")
    out = Path(out)
    written = []
    for path, name in _inputs(inputs):
        image = read_image(path)
        if n is not None:
            results = {name.with_name(f"{name.stem}_s{i:02d}.png"): im
                       for i, im in enumerate(model.sample(image, n=n, seed=seed, direction=direction))}
        elif style is not None:
            results = {name: model.translate(image, direction=direction, style=read_image(style))}
        else:
            results = {name: model.translate(image, direction=direction, eval_mode=eval_mode)}
        for rel, result in results.items():
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            result.save(target)
            written.append(target)
    return written


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
    parser.add_argument("--style", default=None, help="multimodal models: take the style of this image")
    args = parser.parse_args(argv)
    import zoo

    try:
        _check_device(args.device)
        model = zoo.load(args.model, device=args.device)
        mode = None if args.eval_mode is None else args.eval_mode == "true"
        written = predict_files(model, args.inputs, args.out, direction=args.direction, eval_mode=mode,
                                n=args.n, seed=args.seed, style=args.style)
    except zoo.ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print(f"wrote {len(written)} image(s) to {args.out}")
    return written


def _check_device(device: str) -> None:
    import torch

    from zoo.errors import ZooError

    try:
        kind = torch.device(device).type
    except RuntimeError as error:
        raise ZooError(f"--device {device!r} is not a device name: use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"--device {device!r}: no CUDA GPU is available here; use --device cpu")


if __name__ == "__main__":
    main()
