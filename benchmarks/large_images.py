"""Peak memory and time of the verbs on a 4000x3000 photo (issue 8: tiled inference), one process per model.

    python benchmarks/large_images.py                                   # pix2pix, johnson, srresnet, colorization
    python benchmarks/large_images.py --models johnson --width 6000 --height 4000 --budget-mb 1024

Each model is built at the paper's widths with random weights (the cost of a network does not depend on its
weights) in a fresh Python, so the peak RSS (`ru_maxrss`) is that model's alone. The input is a real photo
(scikit-image's astronaut, resized) as a PIL image, through the public verb with `tile=None` (zoo decides);
`upscale` gets a quarter-size input so that its output is the full size. Recorded: seconds, the process's RSS
before the call and its peak, the tile side zoo chose, and the network's estimated activation memory for
the whole image untiled (`zoo.tiling.bytes_per_pixel` x pixels), i.e. what running it untiled would need.
Results are appended to benchmarks/results/large_images.jsonl; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

VERBS = {"pix2pix": "translate", "johnson": "stylize", "srresnet": "upscale", "colorization": "colorize",
         "cyclegan": "translate", "cin": "stylize"}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(key: str, width: int, height: int, budget_mb: float | None) -> dict[str, Any]:
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    import zoo
    from zoo import tiling
    from zoo.benchmark.speed import build_model, SpeedConfig

    if budget_mb is not None:
        tiling.set_budget(budget_mb)
    model = build_model(key, SpeedConfig()).eval()
    verb = VERBS[key]
    scale = int(model.io.get("scale", 1)) if verb == "upscale" else 1
    photo = Image.fromarray(data.astronaut()).resize((width // scale, height // scale), Image.BICUBIC)
    network = {"translate": lambda: model.generator(model.resolve_direction(None)), "upscale": lambda: model.upscaler(),
               "stylize": lambda: getattr(model, model.inference_modules[0])}.get(verb)
    untiled_mb = None
    if network is not None:  # colorize runs its network at 256² whatever the photo's size
        per_pixel = tiling.bytes_per_pixel(network(), multiple=int(model.io["size_multiple"]))
        untiled_mb = per_pixel * photo.width * photo.height / 2**20
    chosen: list[Any] = []
    plan = tiling.plan_tile

    def recording_plan(*args: Any, **kwargs: Any) -> Any:
        chosen.append(plan(*args, **kwargs))
        return chosen[-1]

    import zoo.tasks

    zoo.tasks.plan_tile = recording_plan  # only to record the tile side zoo chose
    before = _current_rss_mb()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = getattr(model, verb)(photo) if verb != "stylize" or key != "cin" else model.stylize(photo, 0)
    seconds = time.perf_counter() - t0
    assert isinstance(out, Image.Image) and out.size == (width, height), (type(out), getattr(out, "size", None))
    assert np.asarray(out).std() > 0
    return {"method": key, "verb": verb, "output": [width, height], "input": [photo.width, photo.height],
            "seconds": seconds, "rss_before_mb": before, "peak_rss_mb": _rss_mb(),
            "budget_mb": tiling.get_budget() / 2**20,
            "tile": chosen[-1] if chosen else None, "untiled_activation_estimate_mb": untiled_mb,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "zoo": zoo.__version__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="pix2pix,johnson,srresnet,colorization")
    p.add_argument("--width", type=int, default=4000)
    p.add_argument("--height", type=int, default=3000)
    p.add_argument("--budget-mb", type=float, default=None, help="zoo.tiling budget (default: zoo's, 2048)")
    p.add_argument("--out", default="benchmarks/results/large_images.jsonl")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.width, args.height, args.budget_mb)))
        return 0
    from zoo.benchmark.speed import _git_sha, machine_info

    common = {"run": _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"), "machine": machine_info("cpu"),
              "git_sha": _git_sha()}
    rows = []
    for key in [k.strip() for k in args.models.split(",") if k.strip()]:
        if key not in VERBS:
            p.error(f"--models: {key!r} is not one of {', '.join(VERBS)}")
        cmd = [sys.executable, __file__, "--worker", key, "--width", str(args.width), "--height", str(args.height)]
        if args.budget_mb is not None:
            cmd += ["--budget-mb", str(args.budget_mb)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            record = {"method": key, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
        else:
            record = json.loads(proc.stdout.strip().splitlines()[-1])
        record = {**record, **common}
        print(json.dumps(record), flush=True)
        rows.append(record)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print("| method | verb | output | s | RSS before MB | peak RSS MB | tile | untiled activations (est.) MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | error: {r['error']} |")
            continue
        est = r["untiled_activation_estimate_mb"]
        print(f"| {r['method']} | {r['verb']} | {r['output'][0]}x{r['output'][1]} | {r['seconds']:.0f} | "
              f"{r['rss_before_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['tile'] or 'whole'} | "
              f"{'-' if est is None else f'{est:.0f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
