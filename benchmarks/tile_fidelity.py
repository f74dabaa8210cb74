"""How far tiled inference is from untiled inference, with the thumbnail's statistics and with per-tile ones.

    python benchmarks/tile_fidelity.py                          # 768x512 photo, 256-pixel tiles
    python benchmarks/tile_fidelity.py --models johnson,cyclegan --tile 128

Each method is built at the paper's widths with random weights (`zoo.benchmark.speed.build_model`) and runs
its public verb on a real photo (scikit-image's coffee, resized; a quarter of the size for `upscale`) three
times: whole (`tile=0`), then in tiles normalised with the statistics of a thumbnail shared by every tile
(`zoo.nn.thumbnail_norm`): zoo's default, the largest thumbnail the activation budget allows (for this photo
the whole image), and a thumbnail of one tile's size (as for a photo far larger than the budget); and in
tiles normalised by their own statistics (the thumbnail step switched off in `zoo.tiling`). Reported
against the whole image: PSNR (dB, [0, 1] range), mean absolute difference, and the share of 8-bit pixel
values that change. Results go to benchmarks/results/tile_fidelity.jsonl.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

VERBS = ("johnson", "cin", "adain", "cyclegan", "munit", "pix2pix", "srresnet")


def _runner(key: str, model: Any) -> Callable[[Any, int], Any]:
    import torch

    if key == "adain":
        style = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
        return lambda x, tile: model.stylize(x, style, tile=tile)
    if key == "cin":
        return lambda x, tile: model.stylize(x, 0, tile=tile)
    if key == "johnson":
        return lambda x, tile: model.stylize(x, tile=tile)
    if key == "srresnet":
        return lambda x, tile: model.upscale(x, tile=tile)
    return lambda x, tile: model.translate(x, tile=tile)


def _compare(out: Any, whole: Any) -> dict[str, float]:
    import torch

    mse = float(((out - whole) ** 2).mean())
    levels = (out * 255).round() != (whole * 255).round()
    return {"psnr_db": math.inf if mse == 0 else 10 * math.log10(1.0 / mse),
            "mean_abs": float((out - whole).abs().mean()), "changed_8bit": float(levels.float().mean()),
            "max_abs": float((out - whole).abs().max()), "finite": bool(torch.isfinite(out).all())}


def measure(key: str, width: int, height: int, tile: int) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    from skimage import data

    from zoo import tiling
    from zoo.benchmark.speed import SpeedConfig, build_model

    model = build_model(key, SpeedConfig()).eval()
    scale = int(model.io.get("scale", 1)) if key == "srresnet" else 1
    photo = torch.from_numpy(data.coffee()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(photo, size=(height // scale, width // scale), mode="area")
    run = _runner(key, model)
    # larger than the overlap (pix2pix's U-Net rounds it up to 256, its size multiple)
    input_tile = max(tile // scale, 2 * int(model.io["size_multiple"]), 64)
    thumbnail_normalized, thumbnail_side = tiling.thumbnail_normalized, tiling._thumbnail_side
    with torch.inference_mode():
        whole = run(x, 0)
        shared = run(x, input_tile)  # zoo's default: the largest thumbnail the budget allows (here: all of x)
        tiling._thumbnail_side = lambda fn, image, tile, multiple: tile  # a thumbnail of one tile's size
        try:
            small = run(x, input_tile)
        finally:
            tiling._thumbnail_side = thumbnail_side
        tiling.thumbnail_normalized = lambda fn, thumbnail: fn  # per-tile statistics
        try:
            own = run(x, input_tile)
        finally:
            tiling.thumbnail_normalized = thumbnail_normalized
    return {"method": key, "output": [width, height], "input_tile": input_tile,
            "thumbnail_stats": _compare(shared, whole), "tile_sized_thumbnail_stats": _compare(small, whole),
            "per_tile_stats": _compare(own, whole)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(VERBS))
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--tile", type=int, default=256, help="tile side in output pixels")
    p.add_argument("--out", default="benchmarks/results/tile_fidelity.jsonl")
    args = p.parse_args(argv)
    import torch

    from zoo.benchmark.speed import _git_sha, machine_info

    common = {"run": _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"), "machine": machine_info("cpu"),
              "git_sha": _git_sha(), "random_weights": True}
    rows = []
    for key in [k.strip() for k in args.models.split(",") if k.strip()]:
        if key not in VERBS:
            p.error(f"--models: {key!r} is not one of {', '.join(VERBS)}")
        torch.manual_seed(0)
        rows.append({**measure(key, args.width, args.height, args.tile), **common})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    print("| method | tile (input px) | statistics | PSNR dB | mean abs | 8-bit values changed |")
    print("|---|---|---|---|---|---|")
    names = {"thumbnail_stats": "whole-image thumbnail (default, fits the budget)",
             "tile_sized_thumbnail_stats": "thumbnail of one tile's size", "per_tile_stats": "each tile's own"}
    for r in rows:
        for field, name in names.items():
            a = r[field]
            print(f"| {r['method']} | {r['input_tile']} | {name} | {a['psnr_db']:.1f} | {a['mean_abs']:.4f} | "
                  f"{a['changed_8bit']:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
