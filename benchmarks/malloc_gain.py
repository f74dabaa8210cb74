"""What raising glibc's malloc thresholds (`zoo.allocator.tune_cpu_allocator`) gains, per method, on CPU.

    python benchmarks/malloc_gain.py                                  # every method: verb 256² x 8, training
    python benchmarks/malloc_gain.py --models johnson,adain --size 512 --batch 1 --no-training
    python benchmarks/malloc_gain.py --table                          # each method's latest record

The allocator is process-wide, so the two settings cannot be timed side by side in one process as the speed
suite's fast paths are. Each method is measured in four fresh processes instead, glibc's default thresholds
(D) and the raised ones (T) in the order D T T D: a drift of the machine over the four then falls on both
sides alike. Each process times the verb (`zoo.benchmark.speed.inference_case`, seeded random input; Gatys
and inversion: seconds per optimizer step at the same side, as the speed suite times them) and `zoo.fit`'s
Lightning training step at the recipe's crop (batch capped at 2, as the CPU suite does), after
warm-up calls. Gain = the median time with glibc's defaults / the median with raised thresholds (above 1:
faster), from the pooled calls of both processes of each setting; minor page faults and peak RSS are
recorded beside it. Results are appended to `benchmarks/results/malloc_gain.jsonl`; a markdown table is
printed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "malloc_gain.jsonl"
ORDER = ("default", "tuned", "tuned", "default")
#: optimizer steps per timed Gatys/inversion run (each run's seconds per step is one sample)
OPTIM_STEPS = 5


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child(key: str, setting: str, size: int, batch: int, repeats: int, train_steps: int) -> dict[str, Any]:
    """Times of one method in this process under one allocator setting."""
    from zoo.allocator import apply_malloc_setting

    assert apply_malloc_setting(setting) == (setting == "tuned"), "glibc refused the thresholds"
    import torch

    from zoo.benchmark import speed

    device = torch.device("cpu")
    cfg = speed.SpeedConfig(train_batch=2)
    out: dict[str, Any] = {"method": key, "malloc": setting}
    model = speed.build_model(key, cfg).eval()
    case = speed.inference_case(model)
    if case is not None:
        x = speed.verb_input(case, size, batch, cfg.seed, device)
        faults = _faults()
        out["verb_s"] = speed.timed(lambda: case.verb(x), repeats, 1, device)
        out["verb_faults_per_call"] = (_faults() - faults) / (repeats + 1)
    elif getattr(model, "optimizes_per_image", False):  # gatys, inversion: seconds per optimizer step at size²
        optim = speed.SpeedConfig(optim_size=size, optim_steps=OPTIM_STEPS)
        speed.measure_optimization(key, model, optim, device)  # warm-up
        faults = _faults()
        out["optim_step_s"] = [speed.measure_optimization(key, model, optim, device)[0]["seconds_per_step"]
                               for _ in range(repeats)]
        out["optim_faults_per_step"] = (_faults() - faults) / (repeats * OPTIM_STEPS)
    del model
    data = speed.training_data(key, cfg, train_steps + 2) if train_steps else None
    if data is not None:
        model = speed.build_model(key, cfg)
        faults = _faults()
        with tempfile.TemporaryDirectory() as log_dir:
            times = speed.fit_interleaved(model, speed._loader(data["dataset"], data["used_batch"]), None,
                                          train_steps, 1, device, log_dir)
        out["train_step_s"] = times["lightning_step"]
        out["train_faults_per_step"] = (_faults() - faults) / (train_steps + 1)
        out["train_batch"], out["train_crop"] = data["used_batch"], data["used_crop"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _run_child(key: str, setting: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", key, setting, "--size", str(args.size), "--batch", str(args.batch),
           "--repeats", str(args.repeats), "--train-steps", str(0 if args.no_training else args.train_steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{key} ({setting}): {(proc.stderr or proc.stdout).strip().splitlines()[-3:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _gain(runs: list[dict[str, Any]], field: str) -> dict[str, float] | None:
    pooled = {s: [t for r in runs if r["malloc"] == s for t in r.get(field, [])] for s in ("default", "tuned")}
    if not pooled["default"] or not pooled["tuned"]:
        return None
    default, tuned = statistics.median(pooled["default"]), statistics.median(pooled["tuned"])
    return {"default_s": default, "tuned_s": tuned, "gain": default / tuned}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=None, help="comma-separated method keys or patterns (default: all)")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3, help="timed verb calls per process")
    p.add_argument("--train-steps", type=int, default=3, help="timed Lightning steps per process")
    p.add_argument("--no-training", action="store_true")
    p.add_argument("--table", action="store_true", help="only print the table of each method's latest record")
    p.add_argument("--out", type=Path, default=RESULTS, help="the results file (appended to)")
    p.add_argument("--child", nargs=2, metavar=("KEY", "SETTING"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        import warnings

        warnings.filterwarnings("ignore")
        import logging

        for name in ("lightning.pytorch", "lightning.fabric", "lightning", "zoo"):
            logging.getLogger(name).setLevel(logging.ERROR)
        print(json.dumps(child(args.child[0], args.child[1], args.size, args.batch, args.repeats, args.train_steps)))
        return 0

    if args.table:
        latest = {r["method"]: r for r in map(json.loads, args.out.read_text().splitlines()) if r}
        print(render([latest[k] for k in sorted(latest)]))
        return 0
    from zoo.benchmark.speed import machine_info, select_methods

    keys = select_methods([m.strip() for m in args.models.split(",")] if args.models else None)
    run = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    records = []
    for key in keys:
        t0 = time.perf_counter()
        runs = [_run_child(key, setting, args) for setting in ORDER]
        record: dict[str, Any] = {
            "run": run, "method": key, "size": args.size, "batch": args.batch, "order": list(ORDER),
            "verb": _gain(runs, "verb_s"), "training": _gain(runs, "train_step_s"),
            "optimization": _gain(runs, "optim_step_s"),
            "train_batch": runs[0].get("train_batch"), "train_crop": runs[0].get("train_crop"),
            "faults": {s: {f: statistics.mean(r[f] for r in runs if r["malloc"] == s)
                           for f in ("verb_faults_per_call", "train_faults_per_step", "optim_faults_per_step")
                           if f in runs[0]}
                       for s in ("default", "tuned")},
            "peak_rss_mb": {s: max(r["peak_rss_mb"] for r in runs if r["malloc"] == s) for s in ("default", "tuned")},
            "machine": machine_info("cpu"), "wall_s": time.perf_counter() - t0,
        }
        records.append(record)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(json.dumps(record) + "\n")
        gains = ", ".join(f"{name} {'-' if g is None else format(g['gain'], '.2f') + 'x'}"
                          for name, g in (("verb", record["verb"]), ("training", record["training"]),
                                          ("optimizer step", record["optimization"])))
        print(f"{key}: {gains} ({record['wall_s']:.0f} s)", flush=True)
    print(render(records))
    return 0


def render(records: list[dict[str, Any]]) -> str:
    """The README table of one run."""
    def cell(g: dict[str, float] | None) -> str:
        return "-" if g is None else f"{g['default_s']:.3g} → {g['tuned_s']:.3g} s ({g['gain']:.2f}×)"

    lines = ["| method | verb, default → raised thresholds | faults per call | training step (batch×crop) | "
             "faults per step | peak RSS MB |", "|---|---|---|---|---|---|"]
    for r in records:
        f = r["faults"]
        per_call = "verb_faults_per_call" if r.get("verb") else "optim_faults_per_step"
        first = r.get("verb") or r.get("optimization")
        vf = (f"{f['default'].get(per_call, 0):,.0f} → {f['tuned'].get(per_call, 0):,.0f}" if first else "-")
        tf = (f"{f['default'].get('train_faults_per_step', 0):,.0f} → "
              f"{f['tuned'].get('train_faults_per_step', 0):,.0f}" if r["training"] else "-")
        train = cell(r["training"]) + (f" ({r['train_batch']}×{r['train_crop']}²)" if r["training"] else "")
        rss = f"{r['peak_rss_mb']['default']:.0f} → {r['peak_rss_mb']['tuned']:.0f}"
        what = "" if r.get("verb") or not first else " per optimizer step"
        lines.append(f"| {r['method']} | {cell(first)}{what} | {vf} | {train} | {tf} | {rss} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
