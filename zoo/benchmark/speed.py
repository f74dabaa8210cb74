"""The speed suite behind `python -m zoo.bench --suite speed`: how fast every method infers and trains.

    python -m zoo.bench --suite speed                                   # every method: 256² and 512², batch 1 and 8
    python -m zoo.bench --suite speed --models 'pix2pix,adain' --sizes 256 --batches 1 --repeats 5
    python -m zoo.bench --suite speed --device cuda --models 'pix2pix,cyclegan,adain,johnson' --fast channels_last,bf16
    python -m zoo.bench --suite speed --models pix2pix --measure training,train_fast_path --train-fast bf16,adam
    python -m zoo.bench --suite speed --table                           # only print the README table of the last run

Per method key (built with `zoo.create(key)` at the paper's widths, random weights) it measures, each in
its own record of `benchmarks/results/speed.jsonl`:

- `inference`: images/s through the public verb (translate, stylize, upscale, colorize, munit's sample)
  on a BCHW tensor in [0, 1], and through the bare network on the tensor the verb would hand it
  (already padded and in the network's range), under `torch.inference_mode`; `ratio` = verb / bare is
  the API overhead, taken pair by pair (`paired_ratio`: the median of the ratios of calls run side by side).
  Achieved FLOP/s of the bare network (FLOPs of one forward, counted by
  `torch.utils.flop_counter.FlopCounterMode`, times its rate) as a fraction of the machine's dense
  fp32 matmul rate, measured once at the start of the run.
- `fast_path`: for each of channels_last, compile and bf16 autocast, the verb's images/s on a fresh model
  with the fast path against the default model (interleaved, first size and batch); `gain` = fast /
  default. bf16 on a device without native bf16 is measured small (it is emulated, and slow).
- `training`: iterations/s of the Lightning step (a real `lightning.Trainer` fit, as `zoo.fit` runs it
  with its CSV logger, on an in-memory dataset of the recipe's batch size and crop) and of a plain
  PyTorch loop over its own copy of the model, its own data loader and optimizers, one plain iteration
  beside each Lightning step (L P, P L, ...); `ratio` = lightning / plain iterations/s (batch fetch and
  the loop's own work included; `step_ratio`: the steps alone) is the framework overhead. The plain loop calls the method's own `training_step` (so the networks, losses and
  update order are the method's) with Lightning's plumbing replaced: `optimizers()` and
  `lr_schedulers()` return the plain objects built from `configure_optimizers()`, `manual_backward` is
  `loss.backward()` followed by the `on_after_backward` hook, `self.log`/`log_dict` do nothing, and a
  stand-in trainer carries only what the methods read (the optimizers for `toggle_optimizer`, the
  scheduler configs, the iteration count, `world_size`, no datamodule).
- `train_fast_path`: for each of bf16 autocast (`--trainer.precision bf16-mixed`), channels_last and compile,
  the Lightning iteration with the fast path on a fresh model interleaved with the plain float32 loop (as
  `training` runs it, `train_fast_steps` timed steps of each); `gain` = that ratio over `training`'s
  framework ratio, i.e. the fast Lightning step over the default one, the plain loop the yardstick both
  were timed against. `adam`: the method's own Adam optimizers rebuilt fused and foreach, each against the
  for-loop stepping the same parameters, interleaved, with the loop step's share of a plain iteration.
  `workers`: the method's DataModule on its built-in data, train-loader batches/s with zoo's loader
  defaults against no workers (the loader alone), and loading's share of an iteration without workers
  (the most workers can save). bf16 without native bf16 is not
  trained (it is emulated).
- `optimization` (Gatys, inversion): seconds per optimizer step and seconds to reach a loss of
  `LOSS_RATIO` x the initial loss (steps to reach it x seconds per step), at a small image size.

Every record carries the peak memory of its process so far (`ru_maxrss`; each method runs in a fresh
subprocess, so the high-water mark is the method's own; inference is measured before training) or
`torch.cuda.max_memory_allocated` since the measurement began, and the machine, date and git sha.
Timings are medians over `repeats` timed runs after `warmup` untimed ones, with the interquartile range
and min/max. Numbers from a shared machine are rough; compare ratios, which are taken within one process.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import inspect
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from zoo.errors import ZooError
from zoo.benchmark.results import append_lines

__all__ = [
    "SpeedConfig", "LOSS_RATIO", "FAST_PATHS", "measure_fast_paths", "apply_fast_path", "verb_input", "parse_sets", "select_methods", "matmul_rate", "machine_info", "measure_method",
    "run_speed", "read_speed_results", "fit_interleaved", "render_speed_table", "summary", "timed",
    "timed_pair", "paired_ratio", "training_data", "TRAIN_FAST_PATHS", "measure_train_fast_paths",
    "measure_adam_step", "measure_loader_workers", "datamodule_class", "trains", "median_standard_error",
    "more_pairs_wanted", "MAX_PAIRS_FACTOR", "most_pairs",
]

#: Gatys/inversion: the "converged" mark is a loss of LOSS_RATIO x the first iterate's.
LOSS_RATIO = 0.1
RESULTS_NAME = "speed"
#: The fast paths the suite measures for inference, each against the default path in the same process.
FAST_PATHS: tuple[str, ...] = ("channels_last", "compile", "bf16")
#: the training fast paths that `train_fast_path` measures: bf16 autocast (`--trainer.precision bf16-mixed`),
#: channels_last and compile on the Lightning step, Adam's multi-tensor/fused step (`zoo.training.adam`) and
#: the DataLoader settings from the machine (`zoo.data.loader_options`)
TRAIN_FAST_PATHS: tuple[str, ...] = ("bf16", "channels_last", "compile", "adam", "workers")
#: `srgan` is measured in its own stage (perceptual + adversarial loss, D then G); `zoo.create("srgan")`
#: defaults to stage 1, which `srresnet` already measures.
DEFAULT_OVERRIDES: dict[str, dict[str, Any]] = {"srgan": {"stage": "srgan"}}


@dataclass(frozen=True)
class SpeedConfig:
    """What one speed run measures. The defaults are the full grid (256² and 512², batch 1 and 8): about an
    hour for every method on 2 CPU cores; `--sizes 256 --batches 1` takes about a third of that."""

    device: str = "cpu"
    sizes: tuple[int, ...] = (256, 512)
    batches: tuple[int, ...] = (1, 8)
    repeats: int = 3
    warmup: int = 1
    #: inference: quick calls are repeated (up to 5 x `repeats`) until the timed calls add up to this
    min_seconds: float = 5.0
    #: API and framework ratios: after `repeats` pairs (`train_steps` steps), pairs are added (two at a time,
    #: up to 5 x as many) while the median's standard error is above this (0: never) and the timed calls add
    #: up to under `precision_seconds`. The rule looks at the spread of the pairs only, never at the ratio.
    ratio_precision: float = 0.01
    precision_seconds: float = 300.0
    #: timed training steps of each loop, interleaved (after `warmup` untimed ones)
    train_steps: int = 6
    #: None: the recipe's; an int caps it (recorded: the result is then not at the recipe's batch/crop)
    train_batch: int | None = None
    train_crop: int | None = None
    #: Gatys/inversion image side and the most optimizer steps to run
    optim_size: int = 64
    optim_steps: int = 20
    #: {method key: {hparam: value}} from --set key.hparam=value
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    measurements: tuple[str, ...] = ("inference", "fast_path", "training", "train_fast_path", "optimization")
    #: the fast paths that the `fast_path` measurement compares with the default path
    fast_paths: tuple[str, ...] = FAST_PATHS
    #: the training fast paths that `train_fast_path` compares with the default training step
    train_fast_paths: tuple[str, ...] = TRAIN_FAST_PATHS
    #: timed training steps of each loop per training fast path (their gains are large: fewer steps than
    #: the framework ratio's, so the whole grid fits in a run)
    train_fast_steps: int = 4
    #: the machine's dense fp32 matmul rate (FLOP/s), measured by the parent process
    matmul_flops: float | None = None
    threads: int | None = None
    seed: int = 0
    #: "tuned": each method's process raises glibc's malloc thresholds first, as zoo's command-line tools do
    #: (`zoo.allocator`); "default": glibc's own (what a script that does not call it gets)
    malloc: str = "tuned"

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "SpeedConfig":
        raw = json.loads(text)
        for key in ("sizes", "batches", "measurements", "fast_paths", "train_fast_paths"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)


# ------------------------------------------------------------------------------------ statistics
def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and range of repeated measurements (quartiles by linear interpolation; with one or
    two values they are the extremes)."""
    v = sorted(float(x) for x in values)
    if not v:
        raise ValueError("no measurements")

    def q(p: float) -> float:
        pos = p * (len(v) - 1)
        lo, hi = math.floor(pos), math.ceil(pos)
        return v[lo] + (v[hi] - v[lo]) * (pos - lo)

    return {"median": statistics.median(v), "q1": q(0.25), "q3": q(0.75), "min": v[0], "max": v[-1], "n": len(v)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], repeats: int, warmup: int, device: torch.device) -> list[float]:
    """Seconds of each of `repeats` calls of fn after `warmup` untimed ones (synchronised on GPU)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return out


def median_standard_error(values: Sequence[float]) -> float:
    """The standard error of the median of `values`, from their interquartile range (a robust sigma,
    IQR / 1.349) and the large-sample factor sqrt(pi / 2): 0.93 x IQR / sqrt(n); inf for fewer than 2."""
    if len(values) < 2:
        return math.inf
    stats = summary(values)
    return math.sqrt(math.pi / 2) * (stats["q3"] - stats["q1"]) / 1.349 / math.sqrt(len(values))


#: repeated calls and pairs added for precision stop at this many times the planned number
MAX_PAIRS_FACTOR = 5


def most_pairs(planned: int, precision: float) -> int:
    """The most timed pairs a paired ratio with `planned` pairs may take under `precision` (0: `planned`):
    what `more_pairs_wanted` can add up to, and so how many batches the framework ratio's data must hold."""
    return MAX_PAIRS_FACTOR * planned if precision > 0 else planned


def more_pairs_wanted(done: int, planned: int, ratios: Sequence[float], precision: float, elapsed: float,
                      max_seconds: float) -> bool:
    """The precision rule of the paired ratios (API: `timed_pair`; framework: `_Interleaved`): past `planned`
    pairs, one more while `precision` > 0, the timed calls add up to under `max_seconds`, and either the pairs
    added since are odd in number (pairs come two at a time, one in each order) or the median of `ratios` has
    a standard error above `precision`. It looks at the ratios' spread only, never at their value."""
    if precision <= 0 or done < planned or elapsed >= max_seconds:
        return False
    if (done - planned) % 2 == 1:
        return True
    return median_standard_error(ratios) > precision


def timed_pair(fn_a: Callable[[], Any], fn_b: Callable[[], Any], repeats: int, warmup: int,
               device: torch.device, min_seconds: float = 0.0, max_repeats: int | None = None,
               precision: float = 0.0, max_seconds: float = math.inf,
               ) -> tuple[list[float], list[float]]:
    """Seconds of `repeats` calls of each of fn_a and fn_b, interleaved (a b, b a, a b, ...) after `warmup`
    untimed calls of each: a ratio of the two is then not skewed by drift (clock boost, caches, a neighbour's
    load) between two blocks of repeats. Quick calls are repeated more: until the timed calls of both add
    up to `min_seconds`, at most `max_repeats` (default 5 x `repeats`) times each.

    `precision` > 0: noisy pairs are repeated more too, two at a time past `repeats` (one in each order), while the
    standard error of the median of the ratios b/a (`median_standard_error`) is above it, the timed calls
    add up to under `max_seconds`, and at most `max_repeats` times. It looks at the ratios' spread only."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    _sync(device)
    most = max(repeats, max_repeats if max_repeats is not None else MAX_PAIRS_FACTOR * repeats)
    out: tuple[list[float], list[float]] = ([], [])
    total = 0.0
    i = 0

    def imprecise() -> bool:
        ratios = [b / max(a, 1e-12) for a, b in zip(*out)]
        return more_pairs_wanted(i, repeats, ratios, precision, total, max_seconds)

    while i < repeats or (i < most and (total < min_seconds or imprecise())):
        order = ((0, fn_a), (1, fn_b)) if i % 2 == 0 else ((1, fn_b), (0, fn_a))
        for slot, fn in order:
            t0 = time.perf_counter()
            fn()
            _sync(device)
            out[slot].append(time.perf_counter() - t0)
            total += out[slot][-1]
        i += 1
    return out


def paired_ratio(seconds_a: Sequence[float], seconds_b: Sequence[float]) -> dict[str, float]:
    """Speed of a over speed of b from interleaved timings: the median (and spread) of b_i / a_i over the
    pairs taken side by side (a b, b a, ...). Each pair shares the machine's state of the moment, so the
    ratio is steadier than one of two medians, which can come from calls far apart."""
    pairs = [b / max(a, 1e-12) for a, b in zip(seconds_a, seconds_b)]
    if not pairs:
        raise ValueError("no paired measurements")
    se = median_standard_error(pairs)
    return {**summary(pairs), "se": se if math.isfinite(se) else None}


def _rate(seconds: Sequence[float], items: int) -> dict[str, float]:
    """items/s statistics from per-call seconds (the quartiles of the rates, not inverted quartiles)."""
    return summary([items / max(s, 1e-12) for s in seconds])


# --------------------------------------------------------------------------------------- machine
def matmul_rate(device: str = "cpu", n: int | None = None, repeats: int = 5) -> dict[str, Any]:
    """The dense fp32 matmul rate of this machine (FLOP/s of the best of `repeats` n x n torch.mm): the
    physical limit that achieved FLOP/s are divided by. Large n and best-of-5: a smaller or single product
    under-reads the rate (a 2048² product read 70-115 GFLOP/s on the 2-core development machine)."""
    dev = torch.device(device)
    n = n or (8192 if dev.type == "cuda" else 4096)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(dev)
    b = torch.randn(n, n, generator=g).to(dev)
    with torch.inference_mode():
        seconds = timed(lambda: torch.mm(a, b), repeats, 1, dev)
    return {"flops": 2.0 * n**3 / min(seconds), "n": n, "dtype": "float32", "seconds": min(seconds)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """The machine a record ran on: CPU model, cores (usable by this process), torch version, threads, and the
    GPU's name when the device is CUDA."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    info: dict[str, Any] = {
        "cpu": _cpu_model(), "cores": cores, "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "device": device,
    }
    try:
        import lightning

        info["lightning"] = lightning.__version__
    except ImportError:  # pragma: no cover - a dependency
        pass
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    else:
        info["device_name"] = info["cpu"]
    return info


def _git_sha() -> str | None:
    from zoo.benchmark.command import _git_sha as sha

    return sha()


def _peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20, "peak_memory_kind": "cuda_max_allocated"}
    # ru_maxrss is in KiB on Linux, bytes on macOS
    scale = 1 if sys.platform == "darwin" else 1024
    return {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20,
            "peak_memory_kind": "rss_high_water_of_process"}


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


# ------------------------------------------------------------------------------------ selection
def parse_sets(values: Sequence[str] | None) -> dict[str, dict[str, Any]]:
    """`--set pix2pix.ngf=8` -> {"pix2pix": {"ngf": 8}} (values parsed as YAML: numbers, booleans, lists)."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        method, dot, hparam = key.strip().partition(".")
        if not sep or not dot or not method or not hparam:
            raise ZooError(f"--set takes METHOD.HPARAM=VALUE (e.g. --set pix2pix.ngf=8), got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ZooError(f"--set {item!r}: cannot read the value: {error}") from error
        out.setdefault(method, {})[hparam] = value
    return out


def select_methods(patterns: Sequence[str] | None) -> list[str]:
    """Method keys matching the fnmatch patterns (all registered methods when none); a pattern that matches
    nothing is a `ZooError` naming the keys."""
    from zoo import registry

    keys = registry.method_keys()
    if not patterns:
        return [k for k in keys if k != "tinynet"]
    chosen: list[str] = []
    for pattern in patterns:
        found = fnmatch.filter(keys, pattern)
        if not found:
            raise ZooError(f"--models {pattern!r} matches no method key; the speed suite runs method keys: {', '.join(keys)}")
        chosen += [k for k in found if k not in chosen]
    return chosen


# --------------------------------------------------------------------------------- model set-up
def build_model(key: str, cfg: SpeedConfig) -> nn.Module:
    """`zoo.create(key, **overrides)` with random weights, ready to train: stage-2 SRGAN is told its
    generator is loaded (it is random here), colorization gets a uniform ab prior (both only need the
    data or weights that a speed run does not have)."""
    import zoo

    torch.manual_seed(cfg.seed)
    model = zoo.create(key, **_hparams(key, cfg))
    if getattr(model, "hparams", {}).get("stage") == "srgan" and hasattr(model, "_generator_loaded"):
        model._generator_loaded = True
    if hasattr(model, "set_prior") and hasattr(model, "bins"):
        model.set_prior(torch.ones(model.bins.shape[0]))
    return model


def _hparams(key: str, cfg: SpeedConfig) -> dict[str, Any]:
    """The hyperparameters given to `zoo.create` beyond the paper's defaults (recorded with every result):
    random VGG loss/encoder networks (same architecture and cost; no download needed), DEFAULT_OVERRIDES,
    then the user's --set."""
    from zoo import registry

    base: dict[str, Any] = {}
    if "vgg_weights" in registry.method_defaults(key):
        base["vgg_weights"] = None
    return {**base, **DEFAULT_OVERRIDES.get(key, {}), **cfg.overrides.get(key, {})}


# ------------------------------------------------------------------------------------ inference
@dataclass
class InferenceCase:
    """One method's verb and bare network on the same input: `verb(x)` takes the BCHW [0, 1] batch;
    `bare()` runs the network on the tensor the verb would give it (prepared once, outside the timing)."""

    verb_name: str
    verb: Callable[[torch.Tensor], Any]
    prepare: Callable[[torch.Tensor], tuple]
    network: Callable[..., Any]
    module: nn.Module
    eval_mode: bool = True
    #: the verb's input is this many times smaller than `size` (super-resolution: `size` is the output)
    input_divisor: int = 1
    #: munit's sample: one input image, `batch` outputs
    one_input: bool = False


def inference_case(model: nn.Module) -> InferenceCase | None:
    """The verb and bare network of a model, by what it offers (None: no feed-forward verb, e.g. Gatys)."""
    from zoo.imageio import pad_to_multiple, to_range

    io = getattr(model, "io", {})
    multiple = int(io.get("size_multiple", 1))
    min_size = getattr(model, "min_input_size", 1)

    def padded(x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, multiple, min_size=min_size)[0]

    if getattr(model, "optimizes_per_image", False):
        return None
    if hasattr(model, "sample") and hasattr(model, "sample_styles"):  # munit: n styles for one image
        direction = model.resolve_direction(None)

        def sample_prepare(x: torch.Tensor) -> tuple:
            net = model.generator(direction, model.sample_styles(len(x), seed=0))
            return (net, to_range(padded(x[:1]), io["range"]))

        return InferenceCase("sample", lambda x: model.sample(x[:1], n=len(x), seed=0), sample_prepare,
                             lambda net, t: net(t), model, True, one_input=True)
    if hasattr(model, "colorize"):
        from zoo.color import lab_lightness, lab_to_rgb
        from zoo.methods.colorization import pil_bicubic_resize

        side = int(io.get("input_size", model.hparams.input_size))
        temperature = model.hparams.temperature

        def release_pipeline(x: torch.Tensor) -> torch.Tensor:
            # The network maps L at side² to ab at side², not an image to an image: its bare run is the
            # release's demo written plainly (preprocess_img, the network, postprocess_tens: L of the resized
            # image, ab resized to the input's size, joined to its L, Lab -> RGB in float64), without the
            # verb's input handling, 8-bit level snapping and stripes.
            ab = model.net(lab_lightness(pil_bicubic_resize(x, (side, side))).float(), temperature)
            ab_full = F.interpolate(ab.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)
            return lab_to_rgb(torch.cat([lab_lightness(x.double()), ab_full.double()], dim=1)).float()

        return InferenceCase("colorize", lambda x: model.colorize(x), lambda x: (x,), release_pipeline, model.net)
    if hasattr(model, "stylize"):
        style_prepare: Callable[[torch.Tensor], tuple]
        if model.method == "adain":
            def style_prepare(x: torch.Tensor) -> tuple:
                return (padded(x), _style_image(x))

            return InferenceCase("stylize", lambda x: model.stylize(x, _style_image(x)), style_prepare,
                                 lambda c, s: model(c, s), model)
        if model.method == "cin":
            def cin_prepare(x: torch.Tensor) -> tuple:
                w = torch.zeros(1, model.num_styles, device=x.device, dtype=x.dtype)
                w[0, 0] = 1
                return (padded(x), w)

            return InferenceCase("stylize", lambda x: model.stylize(x, 0), cin_prepare,
                                 lambda c, w: model(c, w), model)
        return InferenceCase("stylize", lambda x: model.stylize(x), lambda x: (padded(x),), lambda c: model(c), model)
    if hasattr(model, "upscale"):
        scale = int(io.get("scale", 1))
        net = model.upscaler()
        return InferenceCase("upscale", lambda x: model.upscale(x), lambda x: (to_range(padded(x), io["range"]),),
                             net, net, bool(io.get("eval_mode", True)), input_divisor=scale)
    if hasattr(model, "translate"):
        net = model.generator(model.resolve_direction(None))
        return InferenceCase("translate", lambda x: model.translate(x), lambda x: (to_range(padded(x), io["range"]),),
                             net, net, bool(io.get("eval_mode", True)))
    return None


_STYLE_CACHE: dict[tuple, torch.Tensor] = {}


def _style_image(x: torch.Tensor) -> torch.Tensor:
    """One fixed random style image (1, 3, H, W) in [0, 1] of the content's size and device."""
    key = (tuple(x.shape[-2:]), x.device, x.dtype)
    if key not in _STYLE_CACHE:
        g = torch.Generator().manual_seed(1)
        _STYLE_CACHE[key] = torch.rand(1, 3, *x.shape[-2:], generator=g).to(x)
    return _STYLE_CACHE[key]


def _count_flops(fn: Callable[[], Any]) -> int | None:
    """FLOPs of one call (matmuls and convolutions, as FlopCounterMode counts them); None if it cannot."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            fn()
        return int(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - an uncountable op must not sink the timing
        return None


def verb_input(case: InferenceCase, size: int, batch: int, seed: int, device: torch.device) -> torch.Tensor:
    """The seeded random (batch, 3, side, side) [0, 1] input of `case`'s verb for output side `size`."""
    side = max(1, size // case.input_divisor)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, side, side, generator=g).to(device)


def apply_fast_path(model: nn.Module, path: str) -> None:
    """Put `model` on a fast path that changes the model: channels_last or compile (its inference networks)."""
    if path == "channels_last":
        model.to_channels_last()
    elif path == "compile":
        model.compile_networks(inference_only=True)
    else:
        raise ZooError(f"unknown fast path {path!r}: choose from {', '.join(FAST_PATHS)}")


def measure_inference(key: str, model: nn.Module, cfg: SpeedConfig, device: torch.device) -> list[dict[str, Any]]:
    """One record per (size, batch): verb and bare images/s, their ratio, FLOP/s of the bare network."""
    from zoo.tasks import inference_mode_of

    case = inference_case(model)
    if case is None:
        return []
    records = []
    for size in cfg.sizes:
        for batch in cfg.batches:
            x = verb_input(case, size, batch, cfg.seed, device)
            side = x.shape[-1]
            _reset_peak(device)
            with torch.inference_mode(), inference_mode_of(case.module, case.eval_mode):
                args = case.prepare(x)

            def bare() -> Any:
                with torch.inference_mode(), inference_mode_of(case.module, case.eval_mode):
                    return case.network(*args)

            verb_s, bare_s = timed_pair(lambda: case.verb(x), bare, cfg.repeats, cfg.warmup, device,
                                        min_seconds=cfg.min_seconds, precision=cfg.ratio_precision,
                                        max_seconds=cfg.precision_seconds)
            with torch.inference_mode(), inference_mode_of(case.module, case.eval_mode):
                flops = _count_flops(lambda: case.network(*args))
            verb, bare = _rate(verb_s, batch), _rate(bare_s, batch)
            ratio = paired_ratio(verb_s, bare_s)
            record: dict[str, Any] = {
                "method": key, "measurement": "inference", "verb": case.verb_name, "size": size, "batch": batch,
                "input_size": [side, side], "inputs_per_call": 1 if case.one_input else batch,
                "verb_images_per_s": verb, "bare_images_per_s": bare,
                "ratio": ratio["median"], "ratio_stats": ratio,
                "flops_per_image": None if flops is None else flops / batch,
            }
            if flops is not None and cfg.matmul_flops:
                achieved = flops / batch * bare["median"]
                record["achieved_flops"] = achieved
                record["fraction_of_matmul"] = achieved / cfg.matmul_flops
            record.update(_peak_memory(device))
            records.append(record)
    return records


# -------------------------------------------------------------------------------------- training
def datamodule_class(model: nn.Module) -> type | None:
    """The DataModule class `zoo.fit` trains `model` on (its `datamodule` import path), or None."""
    import importlib

    path = getattr(model, "datamodule", "")
    if not path:
        return None
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def recipe(model: nn.Module) -> dict[str, Any]:
    """The training data of `zoo.fit`'s recipe: the method's `data_defaults` over its datamodule's defaults."""
    cls = datamodule_class(model)
    defaults: dict[str, Any] = {}
    if cls is not None:
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.default is not inspect.Parameter.empty:
                defaults[p.name] = p.default
    return {**defaults, **getattr(model, "data_defaults", {})}


def trains(model: nn.Module) -> bool:
    """Whether `model` has a training step to time: not weight-free, not optimised per image."""
    return not (getattr(model, "weight_free", False) or getattr(model, "optimizes_per_image", False))


class _Repeat(torch.utils.data.Dataset):
    """`n` copies of one sample: in-memory data that costs the loader nothing but collation."""

    def __init__(self, sample: dict[str, Any], n: int) -> None:
        self.sample, self.n = sample, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        out = dict(self.sample)
        if "style_index" in out:  # cin: the batch spans its styles, as the recipe's random styles do
            out["style_index"] = index % int(out["style_index"])
            out["style_path"] = f"style-{out['style_index']}.png"
        return out


def training_sample(model: nn.Module, crop: int, rec: dict[str, Any]) -> dict[str, Any]:
    """One training sample in the layout of the method's datamodule, random pixels in its range."""
    from zoo.imageio import to_range

    g = torch.Generator().manual_seed(0)
    rand = lambda s: torch.rand(3, s, s, generator=g)  # noqa: E731
    datamodule = getattr(model, "datamodule", "")
    if datamodule.endswith("ContentStyleDataModule"):
        style = int(rec.get("style_crop_size") or rec.get("style_size") or crop)
        sample: dict[str, Any] = {"content": rand(crop), "style": rand(min(style, crop * 2)), "style_path": "style-0.png"}
        if model.method == "cin":
            sample["style_index"] = int(model.num_styles - model.hparams.frozen_styles)  # _Repeat spreads it
        return sample
    if datamodule.endswith("SRDataModule"):
        scale = int(model.io.get("scale", 4))
        return {"lr": rand(crop // scale), "hr": rand(crop)}
    if datamodule.endswith("PhotoDataModule"):
        return {"image": rand(crop)}
    rng = model.io.get("range", [-1.0, 1.0])
    return {"A": to_range(rand(crop)[None], rng)[0], "B": to_range(rand(crop)[None], rng)[0]}


def _loader(dataset: torch.utils.data.Dataset, batch: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, num_workers=0, drop_last=True)


class _StandInTrainer:
    """What zoo's training steps read from `self.trainer` in the plain loop (see the module docstring)."""

    def __init__(self, optimizers: list, lr_scheduler_configs: list) -> None:
        from types import SimpleNamespace

        self.optimizers = optimizers
        self.lr_scheduler_configs = lr_scheduler_configs
        self.fit_loop = SimpleNamespace(total_batch_idx=0)
        self.global_step = 0
        self.current_epoch = 0
        self.world_size = 1
        self.datamodule = None
        self.ckpt_path = None
        self.training = True
        self.sanity_checking = False
        self.num_devices = 1


@contextlib.contextmanager
def plain_hooks(model: nn.Module) -> Iterator[tuple[list, list, _StandInTrainer]]:
    """Lightning's plumbing on `model` replaced by plain objects for the duration (see the module
    docstring); yields (optimizers, schedulers, stand-in trainer)."""
    from lightning.pytorch.core import optimizer as lo

    optimizers, schedulers_raw, monitor = lo._configure_optimizers(model.configure_optimizers())
    scheduler_configs = (lo._configure_schedulers_automatic_opt(schedulers_raw, monitor) if model.automatic_optimization
                         else lo._configure_schedulers_manual_opt(schedulers_raw))
    schedulers = [c.scheduler for c in scheduler_configs]
    stand_in = _StandInTrainer(optimizers, scheduler_configs)

    def manual_backward(loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        loss.backward(*args, **kwargs)
        model.on_after_backward()

    patches = {
        "optimizers": lambda use_pl_optimizer=True: optimizers[0] if len(optimizers) == 1 else optimizers,
        "lr_schedulers": lambda: None if not schedulers else schedulers[0] if len(schedulers) == 1 else schedulers,
        "manual_backward": manual_backward,
        "log": lambda *a, **k: None,
        "log_dict": lambda *a, **k: None,
    }
    saved_trainer = model._trainer
    for name, fn in patches.items():
        setattr(model, name, fn)
    model._trainer = stand_in  # type: ignore[assignment]
    try:
        yield optimizers, scheduler_configs, stand_in
    finally:
        model._trainer = saved_trainer
        for name in patches:
            with contextlib.suppress(AttributeError):
                delattr(model, name)


class _PlainLoop:
    """A plain PyTorch loop over `model` (inside `plain_hooks`), one iteration per `step()`: fetch the next
    batch, move it to the device, the method's `training_step`, then (automatic optimization) zero_grad,
    backward, `on_after_backward`, step, and the per-step schedulers."""

    def __init__(self, model: nn.Module, loader: Any, device: torch.device, optimizers: list,
                 scheduler_configs: list, stand_in: _StandInTrainer) -> None:
        self.model, self.loader, self.device = model, loader, device
        self.optimizers, self.scheduler_configs, self.stand_in = optimizers, scheduler_configs, stand_in
        self.data = iter(loader)
        self.index = 0
        model.to(device)
        model.train()
        model.setup("fit")
        model.on_fit_start()
        model.on_train_start()

    def step(self) -> tuple[float, float]:
        """(seconds of the step alone, seconds of the whole iteration with the batch fetch)."""
        _sync(self.device)
        start = time.perf_counter()
        try:
            batch = next(self.data)
        except StopIteration:
            self.data = iter(self.loader)
            batch = next(self.data)
        batch = _to_device(batch, self.device)
        _sync(self.device)
        t0 = time.perf_counter()
        model = self.model
        if model.automatic_optimization:
            loss = model.training_step(batch, self.index)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            model.on_after_backward()
            for opt in self.optimizers:
                opt.step()
            for config in self.scheduler_configs:
                if config.interval == "step":
                    config.scheduler.step()
        else:
            model.training_step(batch, self.index)
        self.index += 1
        self.stand_in.fit_loop.total_batch_idx += 1
        self.stand_in.global_step += 1
        _sync(self.device)
        end = time.perf_counter()
        return end - t0, end - start


class _Interleaved:
    """Lightning callback that runs one plain-loop iteration beside each Lightning step, before it on odd
    steps and after it on even ones (L P, P L, L P, ...), so drift of the machine's speed (clock boost,
    caches, a neighbour's load) falls on both alike. Lightning's step is timed from on_train_batch_start to
    on_train_batch_end, its iteration from one step end to the next with the plain work in between taken
    out; the first `warmup` iterations of each are not kept."""

    def __init__(self, plain: Any, warmup: int, device: torch.device, steps: int | None = None,
                 ratio_precision: float = 0.0, max_seconds: float = math.inf) -> None:
        import lightning as L

        outer = self
        self.plain, self.warmup = plain, warmup
        self.steps, self.ratio_precision, self.max_seconds = steps, ratio_precision, max_seconds
        self.light_step: list[float] = []
        self.light_iteration: list[float] = []
        self.plain_step: list[float] = []
        self.plain_iteration: list[float] = []
        self.first_step: float | None = None  # untimed warm-up, kept apart: compile's compilation is in it
        self.start = 0.0
        self.last_end: float | None = None
        self.excluded = 0.0

        class Callback(L.Callback):
            def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
                if batch_idx % 2 == 1:
                    outer._plain(batch_idx)
                _sync(device)
                outer.start = time.perf_counter()

            def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
                _sync(device)
                now = time.perf_counter()
                if batch_idx == 0:
                    outer.first_step = now - outer.start
                if batch_idx >= outer.warmup:
                    outer.light_step.append(now - outer.start)
                    if outer.last_end is not None:
                        outer.light_iteration.append(now - outer.last_end - outer.excluded)
                outer.last_end, outer.excluded = now, 0.0
                if batch_idx % 2 == 0:
                    outer._plain(batch_idx)
                if outer._precise_enough(batch_idx):
                    trainer.should_stop = True

        self.callback = Callback()

    def _precise_enough(self, batch_idx: int) -> bool:
        """With `ratio_precision`: past `steps` timed pairs, stop once `more_pairs_wanted` (the rule of
        `timed_pair`'s API ratio) wants no more of the Lightning/plain iteration pairs."""
        if self.steps is None or self.ratio_precision <= 0 or self.plain is None:
            return False
        kept = batch_idx + 1 - self.warmup
        ratios = [p / max(light, 1e-12) for light, p in zip(self.light_iteration, self.plain_iteration)]
        elapsed = sum(self.light_iteration) + sum(self.plain_iteration)
        return kept >= self.steps and not more_pairs_wanted(kept, self.steps, ratios, self.ratio_precision,
                                                            elapsed, self.max_seconds)

    def _plain(self, batch_idx: int) -> None:
        if self.plain is None:  # the Lightning steps alone
            return
        t0 = time.perf_counter()
        step, iteration = self.plain.step()
        if batch_idx >= self.warmup:
            self.plain_step.append(step)
            self.plain_iteration.append(iteration)
        self.excluded += time.perf_counter() - t0


def fit_interleaved(light_model: nn.Module, loader: Any, other: Any | None, steps: int, warmup: int,
                    device: torch.device, log_dir: str, precision: str = "32-true", *, ratio_precision: float = 0.0,
                    max_seconds: float = math.inf) -> dict[str, list[float]]:
    """Seconds of `steps` steady-state training steps (and whole iterations) of a real `Trainer.fit` on
    `light_model`, set up as `zoo.fit` does (CSV logger, default logging interval; no validation or
    checkpoints), interleaved with as many iterations of `other` (anything whose `step()` runs one and
    returns its (step seconds, iteration seconds): zoo's plain loop, or an original implementation; None: the
    Lightning steps alone, and the plain lists stay empty). `precision`: the Trainer's, as `--trainer.precision`.
    `lightning_first_step`: the seconds of the first (untimed) Lightning step. `ratio_precision` > 0: more
    steps (up to 5 x `steps`; `loader` must hold them) while the Lightning/plain iteration ratio is imprecise
    (`_Interleaved._precise_enough`)."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    pair = _Interleaved(other, warmup, device, steps, ratio_precision, max_seconds)
    most = most_pairs(steps, ratio_precision if other is not None else 0.0)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu", devices=1, max_epochs=1, precision=precision,
        limit_train_batches=warmup + most, limit_val_batches=0, num_sanity_val_steps=0,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        logger=CSVLogger(log_dir, name="speed"), callbacks=[pair.callback],
    )
    trainer.fit(light_model, train_dataloaders=loader)
    return {"lightning_step": pair.light_step, "lightning_iteration": pair.light_iteration,
            "plain_step": pair.plain_step, "plain_iteration": pair.plain_iteration,
            "lightning_first_step": [] if pair.first_step is None else [pair.first_step]}


def interleaved_training(light_model: nn.Module, plain_model: nn.Module, loader: Any, plain_loader: Any, steps: int,
                         warmup: int, device: torch.device, log_dir: str,
                         precision: str = "32-true", **until: float) -> dict[str, list[float]]:
    """`fit_interleaved` against zoo's plain PyTorch loop over `plain_model` (the same method and
    hyperparameters, its own copy, always float32) on the same data (`plain_loader`: a loader of its own).
    `until`: fit_interleaved's `ratio_precision` and `max_seconds`."""
    with plain_hooks(plain_model) as (optimizers, scheduler_configs, stand_in):
        plain = _PlainLoop(plain_model, plain_loader, device, optimizers, scheduler_configs, stand_in)
        return fit_interleaved(light_model, loader, plain, steps, warmup, device, log_dir, precision=precision,
                               **until)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def training_data(key: str, cfg: SpeedConfig, iterations: int) -> dict[str, Any] | None:
    """The training data of `key` as the suite trains it: the recipe's batch size and crop (`batch`, `crop`),
    those capped by `cfg.train_batch`/`cfg.train_crop` (`used_batch`, `used_crop`), and a `dataset` of one
    random sample repeated for `iterations` batches, with the `recipe` and the `datamodule` class. None for
    methods that do not train (weight-free, optimised per image)."""
    probe = build_model(key, cfg)
    if not trains(probe):
        return None
    rec = recipe(probe)
    batch = int(rec.get("batch_size", 1))
    crop = int(rec.get("crop_size", 256))
    used_batch = min(batch, cfg.train_batch) if cfg.train_batch else batch
    used_crop = cfg.train_crop or crop
    dataset = _Repeat(training_sample(probe, used_crop, rec), used_batch * iterations)
    return {"batch": batch, "crop": crop, "used_batch": used_batch, "used_crop": used_crop, "dataset": dataset,
            "recipe": rec, "datamodule": datamodule_class(probe)}


def measure_training(key: str, cfg: SpeedConfig, device: torch.device) -> list[dict[str, Any]]:
    """Lightning vs plain-loop iterations/s at the recipe's batch size and crop (or the capped ones)."""
    steps = cfg.train_steps
    warmup = max(cfg.warmup, 1)  # the first step builds optimizer state and caches: never timed
    data = training_data(key, cfg, warmup + most_pairs(steps, cfg.ratio_precision) + 1)
    if data is None:
        return []
    batch, crop, used_batch, used_crop, dataset = (
        data[k] for k in ("batch", "crop", "used_batch", "used_crop", "dataset"))

    _reset_peak(device)
    light_model = build_model(key, cfg)
    plain_model = build_model(key, cfg)  # same seed: the same weights as light_model
    with tempfile.TemporaryDirectory() as log_dir:
        times = interleaved_training(light_model, plain_model, _loader(dataset, used_batch),
                                     _loader(dataset, used_batch), steps, warmup, device, log_dir,
                                     ratio_precision=cfg.ratio_precision, max_seconds=cfg.precision_seconds)
    del light_model, plain_model

    def rates(seconds: list[float]) -> dict[str, float] | None:
        return _rate(seconds, 1) if seconds else None

    def pair_median(light_s: list[float], plain_s: list[float]) -> float | None:
        return paired_ratio(light_s, plain_s)["median"] if light_s and plain_s else None

    light, plain = rates(times["lightning_iteration"]), rates(times["plain_iteration"])
    stats = paired_ratio(times["lightning_iteration"], times["plain_iteration"]) if light and plain else None
    light_step, plain_step = rates(times["lightning_step"]), rates(times["plain_step"])
    record: dict[str, Any] = {
        "method": key, "measurement": "training", "batch": used_batch, "crop": used_crop,
        "recipe_batch": batch, "recipe_crop": crop, "at_recipe": used_batch == batch and used_crop == crop,
        "steps": len(times["lightning_iteration"]), "warmup_steps": warmup, "interleaved": True,
        "lightning_it_per_s": light, "plain_it_per_s": plain,
        "lightning_step_per_s": light_step, "plain_step_per_s": plain_step,
        "ratio": stats["median"] if stats else None, "ratio_stats": stats,
        "step_ratio": pair_median(times["lightning_step"], times["plain_step"]),
        "plain_loop": "model.training_step with plain optimizers/schedulers, manual_backward = backward + "
                      "on_after_backward, log = no-op, a stand-in trainer; one plain iteration beside each "
                      "Lightning step (L P, P L, ...)",
    }
    record.update(_peak_memory(device))
    return [record]


# ----------------------------------------------------------------------------- training fast paths
def measure_train_fast_paths(key: str, cfg: SpeedConfig, device: torch.device,
                             training: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """For each of `cfg.train_fast_paths`, the Lightning training iteration with the fast path (bf16:
    `precision="bf16-mixed"`; channels_last, compile: on a fresh model) interleaved with the plain float32
    loop of `measure_training` on a fresh copy (L P, P L, ...). `vs_plain` = fast Lightning / plain
    iterations/s; with `training` (that measurement's record, same process) `gain` = vs_plain / its
    framework ratio: the fast Lightning step over the default one, the plain loop the yardstick both were
    timed against. `adam`: `measure_adam_step`; `workers`: `measure_loader_workers`. A path that cannot run
    here, or fails while it runs, is recorded with why, and the other paths still run."""
    from zoo.module import native_bf16

    steps = cfg.train_fast_steps
    data = training_data(key, cfg, max(cfg.warmup, 2) + steps + 1)  # enough batches for compile's warm-up
    if data is None:  # nothing to train, so no training fast path
        return []
    records: list[dict[str, Any]] = []
    framework = training.get("ratio") if training else None
    for path in cfg.train_fast_paths:
        if path == "adam":
            records += measure_adam_step(key, cfg, device, training)
            continue
        if path == "workers":
            records += measure_loader_workers(key, cfg, device, training, data)
            continue
        warmup = max(cfg.warmup, 2 if path == "compile" else 1)  # compile: the GAN steps' second call recompiles
        record: dict[str, Any] = {"method": key, "measurement": "train_fast_path", "fast_path": path,
                                  "batch": data["used_batch"], "crop": data["used_crop"], "steps": steps,
                                  "warmup_steps": warmup, "interleaved": True}
        precision = "32-true"
        light_model = build_model(key, cfg)
        try:
            if path == "bf16":
                if not native_bf16(device):
                    raise ZooError(f"no native bf16 on this {device.type}: autocast emulates it, many times slower "
                                   "than float32 (the fast_path measurement shows by how much)")
                precision = "bf16-mixed"
            elif path == "channels_last":
                light_model.to_channels_last()
            elif path == "compile":
                light_model.compile_networks()
            else:
                raise ZooError(f"unknown training fast path {path!r}: choose from {', '.join(TRAIN_FAST_PATHS)}")
        except ZooError as error:
            records.append({**record, "skipped": str(error)})
            continue
        plain_model = build_model(key, cfg)
        dataset, batch = data["dataset"], data["used_batch"]
        _reset_peak(device)
        try:
            with tempfile.TemporaryDirectory() as log_dir:
                times = interleaved_training(light_model, plain_model, _loader(dataset, batch),
                                             _loader(dataset, batch), steps, warmup, device, log_dir,
                                             precision=precision)
        except Exception as error:  # noqa: BLE001 - one path's failure must not lose the method's other records
            records.append({**record, "skipped": f"failed while training: {type(error).__name__}: {error}"[:500]})
            continue
        finally:
            del light_model, plain_model
        vs_plain = paired_ratio(times["lightning_iteration"], times["plain_iteration"])
        record.update({
            "precision": precision, "fast_it_per_s": _rate(times["lightning_iteration"], 1),
            "plain_it_per_s": _rate(times["plain_iteration"], 1), "vs_plain": vs_plain["median"],
            "vs_plain_stats": vs_plain, "framework_ratio": framework,
            "gain": vs_plain["median"] / framework if framework else None,
            "first_step_s": (times["lightning_first_step"] or [None])[0],
        })
        record.update(_peak_memory(device))
        records.append(record)
    return records


def measure_adam_step(key: str, cfg: SpeedConfig, device: torch.device,
                      training: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The method's own Adam optimizers (`configure_optimizers`) rebuilt with each of the fused and foreach
    implementations and with the for-loop (`zoo.training.ADAM_IMPLEMENTATIONS`), stepping the same
    parameters with the same random gradients, each timed against the for-loop, interleaved: `gains` =
    loop / implementation seconds; `gain`: that of the implementation zoo uses here (`implementation`, what
    `zoo.training.adam` chose). `loop_share_of_iteration`: the for-loop step's seconds over the plain loop's
    iteration (`training`), all that a faster step can save; `share_of_iteration`: zoo's step's."""
    model = build_model(key, cfg)
    if not trains(model):
        return []
    model.to(device)
    with plain_hooks(model) as (optimizers, _, _):
        adams = [o for o in optimizers if isinstance(o, torch.optim.Adam)]
    record: dict[str, Any] = {"method": key, "measurement": "train_fast_path", "fast_path": "adam"}
    if not adams:
        return [{**record, "skipped": "no Adam optimizer in configure_optimizers"}]
    params = [p for o in adams for group in o.param_groups for p in group["params"]]
    g = torch.Generator().manual_seed(cfg.seed)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=g) * 1e-3).to(device)
    defaults = adams[0].defaults
    implementation = "fused" if defaults.get("fused") else "foreach" if defaults.get("foreach") else "for-loop"

    def rebuilt(**flags: bool) -> Callable[[], None]:
        """The optimizers again over the same parameter groups, with `flags` (fused, foreach) as defaults."""
        opts = [torch.optim.Adam([{k: v for k, v in group.items() if k not in ("fused", "foreach")}
                                  for group in o.param_groups], **flags) for o in adams]

        def step() -> None:
            for opt in opts:
                opt.step()
        return step

    loop = rebuilt(foreach=False, fused=False)
    gains: dict[str, float] = {}
    steps: dict[str, dict[str, float]] = {}
    loop_s: list[float] = []
    for name, flags in (("fused", {"fused": True}), ("foreach", {"foreach": True})):
        fast_s, base_s = timed_pair(rebuilt(**flags), loop, cfg.repeats, cfg.warmup, device,
                                    min_seconds=cfg.min_seconds)
        gains[name], steps[name] = paired_ratio(fast_s, base_s)["median"], summary(fast_s)
        loop_s += base_s
    loop_step = summary(loop_s)
    plain = (training or {}).get("plain_it_per_s")
    mine = steps.get(implementation, loop_step)
    record.update({
        "implementation": implementation, "optimizers": len(adams), "parameters": sum(p.numel() for p in params),
        "gain": gains.get(implementation, 1.0), "gains": gains, "step_s": mine,
        "implementation_step_s": steps, "for_loop_step_s": loop_step,
        "share_of_iteration": mine["median"] * plain["median"] if plain else None,
        "loop_share_of_iteration": loop_step["median"] * plain["median"] if plain else None,
    })
    record.update(_peak_memory(device))
    return [record]


#: batches per timed block of the `workers` measurement (fewer when an epoch of the built-in data is shorter)
LOADER_BLOCK = 8


def measure_loader_workers(key: str, cfg: SpeedConfig, device: torch.device,
                           training: dict[str, Any] | None = None,
                           data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The method's own DataModule on its recipe's data (the built-in data `zoo.fit --model KEY` trains on),
    at the batch size used: train-loader batches/s with zoo's defaults (`loader_options`: workers from the
    machine, persistent, pinned on GPU) against `num_workers=0`, in blocks of `LOADER_BLOCK` batches, each
    from a fresh iterator, alternating (A B, B A, ...) after one untimed block of each (the workers' start-up,
    recorded); `gain` = defaults / none, the loader alone. `load_share`: the seconds of loading one batch in
    the training process (no workers) over the plain loop's iteration (`training`): all that workers, which
    load beside the step, can take off an iteration. `data`: `training_data`'s (built here if not given)."""
    data = data if data is not None else training_data(key, cfg, 1)
    if data is None:
        return []
    record: dict[str, Any] = {"method": key, "measurement": "train_fast_path", "fast_path": "workers"}
    rec, cls = data["recipe"], data["datamodule"]
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in rec.items() if k in accepted and k != "num_workers"}
    kwargs["batch_size"] = data["used_batch"]
    if cfg.train_crop and "crop_size" in accepted:
        kwargs["crop_size"] = data["used_crop"]
    try:
        fast_data, zero_data = cls(**kwargs), cls(**kwargs, num_workers=0)
        fast_loader, zero_loader = fast_data.train_dataloader(), zero_data.train_dataloader()
    except ZooError as error:
        return [{**record, "skipped": str(error)}]
    block = min(LOADER_BLOCK, len(fast_loader), len(zero_loader))
    if block < 1:
        return [{**record, "skipped": "the built-in data has no full training batch at this batch size"}]

    def blocks(loader: Any) -> Callable[[], None]:
        def run() -> None:
            batches = iter(loader)
            for _ in range(block):
                next(batches)
        return run

    t0 = time.perf_counter()
    blocks(fast_loader)()
    startup = time.perf_counter() - t0
    fast_s, zero_s = timed_pair(blocks(fast_loader), blocks(zero_loader), cfg.repeats, cfg.warmup,
                                device, min_seconds=cfg.min_seconds)
    fast, zero = _rate(fast_s, block), _rate(zero_s, block)
    plain = (training or {}).get("plain_it_per_s")
    record.update({
        "batch": kwargs["batch_size"], "crop": kwargs.get("crop_size", rec.get("crop_size")),
        "loader_options": {k: getattr(fast_data, k) for k in ("num_workers", "pin_memory", "persistent_workers")},
        "block_batches": block, "batches_per_s": fast, "no_worker_batches_per_s": zero,
        "gain": paired_ratio(fast_s, zero_s)["median"], "first_block_s": startup,
        "load_share": plain["median"] / zero["median"] if plain else None,
    })
    record.update(_peak_memory(device))
    return [record]


# ---------------------------------------------------------------------------------- optimization
def measure_optimization(key: str, model: nn.Module, cfg: SpeedConfig, device: torch.device) -> list[dict[str, Any]]:
    """Gatys (L-BFGS) and inversion (its recipe's optimizer): seconds per step over `optim_steps` steps at
    `optim_size`², and the seconds to reach LOSS_RATIO x the first iterate's loss (steps x s/step)."""
    if not getattr(model, "optimizes_per_image", False):
        return []
    g = torch.Generator().manual_seed(cfg.seed)
    size = cfg.optim_size
    content = torch.rand(1, 3, size, size, generator=g).to(device)
    model.to(device)
    options = {"steps": cfg.optim_steps, "image_size": size, "progress": False}
    _reset_peak(device)
    _sync(device)
    t0 = time.perf_counter()
    if hasattr(model, "optimize"):
        style = torch.rand(1, 3, size, size, generator=g).to(device)
        result = model.optimize(content, style, **options)
        optimizer = model.hparams.optimizer
    elif hasattr(model, "invert"):
        result = model.invert(content, **options)
        optimizer = model.hparams.optimizer
    else:
        return []
    _sync(device)
    total = time.perf_counter() - t0
    losses = [float(h["loss"]) for h in result.history if "loss" in h]
    done = max(len(losses) - 1, 1)  # iterates after the first = steps taken
    per_step = total / done
    reach = next((k for k, v in enumerate(losses) if v <= LOSS_RATIO * losses[0]), None) if losses else None
    record = {
        "method": key, "measurement": "optimization", "optimizer": optimizer, "size": size,
        "steps_run": done, "seconds_total": total, "seconds_per_step": per_step,
        "loss_ratio_target": LOSS_RATIO, "steps_to_target": reach,
        "seconds_to_target": None if reach is None else reach * per_step,
        "final_loss_ratio": losses[-1] / losses[0] if losses and losses[0] else None,
        "note": "total wall time / steps (the set-up of targets included); seconds_to_target = steps x s/step",
    }
    record.update(_peak_memory(device))
    return [record]


# ------------------------------------------------------------------------------------- fast paths
#: Without native bf16 (no AVX512-BF16/AMX on this CPU) autocast emulates it at a small fraction of fp32
#: speed: measured at this side, one timed call, so a run does not spend minutes showing it.
EMULATED_BF16_SIZE = 64


def measure_fast_paths(key: str, cfg: SpeedConfig, device: torch.device) -> list[dict[str, Any]]:
    """For each of `cfg.fast_paths`: verb images/s with the fast path on a fresh model against the default
    model on the same input (at the first size and batch), interleaved; `gain` = fast / default. Compile
    records the first call's seconds (compilation). A path that cannot run here is recorded with why."""
    from zoo.module import native_bf16, precision_context

    default = build_model(key, cfg).to(device).eval()
    base_case = inference_case(default)
    if base_case is None:
        return []
    records = []
    for path in cfg.fast_paths:
        size, batch, repeats, warmup = cfg.sizes[0], cfg.batches[0], cfg.repeats, cfg.warmup
        record: dict[str, Any] = {"method": key, "measurement": "fast_path", "fast_path": path,
                                  "verb": base_case.verb_name}
        precision = "32-true"
        model = build_model(key, cfg).to(device).eval()
        try:
            if path == "bf16":  # autocast around the call (zoo.predict --precision bf16-mixed); model unchanged
                precision = "bf16-mixed"
                if not native_bf16(device):  # zoo.module
                    size, repeats, warmup = EMULATED_BF16_SIZE, 1, 0
                    record["note"] = (f"no native bf16 on this {device.type} (emulated): measured at {size}², "
                                      "one timed call")
            else:
                apply_fast_path(model, path)
        except ZooError as error:
            records.append({**record, "skipped": str(error)})
            continue
        case = inference_case(model)
        x = verb_input(case, size, batch, cfg.seed, device)
        _reset_peak(device)

        def fast() -> Any:
            with precision_context(precision, device):
                return case.verb(x)

        t0 = time.perf_counter()
        fast()  # compiles, for compile: timed alone
        _sync(device)
        first = time.perf_counter() - t0
        base_s, fast_s = timed_pair(lambda: base_case.verb(x), fast, repeats, warmup, device,
                                    min_seconds=cfg.min_seconds if repeats > 1 else 0.0)
        base, quick = _rate(base_s, batch), _rate(fast_s, batch)
        record.update({"size": size, "batch": batch, "default_images_per_s": base, "fast_images_per_s": quick,
                       "gain": paired_ratio(fast_s, base_s)["median"], "first_call_s": first})
        record.update(_peak_memory(device))
        records.append(record)
    return records


# ------------------------------------------------------------------------------------ one method
def measure_method(key: str, cfg: SpeedConfig) -> list[dict[str, Any]]:
    """Every measurement of one method in this process (the CLI runs each method in its own subprocess)."""
    device = torch.device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    from zoo.allocator import apply_malloc_setting

    apply_malloc_setting(cfg.malloc)
    records: list[dict[str, Any]] = []
    model = build_model(key, cfg).to(device)
    model.eval()
    if "inference" in cfg.measurements:
        records += measure_inference(key, model, cfg, device)
    if "optimization" in cfg.measurements:
        records += measure_optimization(key, model, cfg, device)
    del model
    if "fast_path" in cfg.measurements:
        records += measure_fast_paths(key, cfg, device)
    training: list[dict[str, Any]] = []
    if "training" in cfg.measurements:
        training = measure_training(key, cfg, device)
        records += training
    if "train_fast_path" in cfg.measurements:
        records += measure_train_fast_paths(key, cfg, device, training[0] if training else None)
    hparams = _hparams(key, cfg)
    for r in records:
        r["hparams_overrides"] = hparams
        r["random_weights"] = True
    return records


def _worker(argv: Sequence[str]) -> int:
    """`python -m zoo.benchmark.speed --worker KEY CONFIG_JSON OUT [--import MODULE ...]`."""
    import importlib

    key, config, out = argv[0], argv[1], argv[2]
    for i, arg in enumerate(argv):
        if arg == "--import":
            importlib.import_module(argv[i + 1])
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "zoo"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore")
    records = measure_method(key, SpeedConfig.from_json(Path(config).read_text()))
    Path(out).write_text("\n".join(json.dumps(r) for r in records) + ("\n" if records else ""))
    return 0


def _run_subprocess(key: str, cfg: SpeedConfig, imports: Sequence[str], timeout: float) -> list[dict[str, Any]]:
    """`measure_method` in a fresh Python, so the RSS high-water mark is this method's alone."""
    with tempfile.TemporaryDirectory() as tmp:
        config, out = Path(tmp) / "config.json", Path(tmp) / "records.jsonl"
        config.write_text(cfg.to_json())
        cmd = [sys.executable, "-m", "zoo.benchmark.speed", "--worker", key, str(config), str(out)]
        for module in imports:
            cmd += ["--import", module]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return [{"method": key, "measurement": "error", "error": f"timed out after {timeout:.0f} s"}]
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            return [{"method": key, "measurement": "error", "error": " | ".join(tail) or f"exit status {proc.returncode}"}]
        records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        for r in records:
            r["method_wall_s"] = time.perf_counter() - t0
        return records


# ----------------------------------------------------------------------------------------- a run
def run_speed(keys: Sequence[str], cfg: SpeedConfig, out_dir: Path, *, subprocesses: bool = True,
              imports: Sequence[str] = (), timeout: float = 3600.0,
              say: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Measure `keys`, append every record to `out_dir/speed.jsonl` (with the run id, machine, date and git
    sha) and return them."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ZooError("--device cuda, but torch sees no CUDA device here: run with --device cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    say(f"measuring the dense fp32 matmul rate on {cfg.device} ...")
    mm = matmul_rate(cfg.device)
    cfg = replace(cfg, matmul_flops=mm["flops"])
    say(f"  {mm['flops'] / 1e9:.1f} GFLOP/s ({mm['n']}x{mm['n']} torch.mm)")
    common = {
        "run": _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
        "machine": machine_info(cfg.device), "matmul": mm, "git_sha": _git_sha(),
        "config": {k: v for k, v in asdict(cfg).items() if k != "matmul_flops"},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{RESULTS_NAME}.jsonl"
    records: list[dict[str, Any]] = []
    for key in keys:
        say(f"{key} ...")
        t0 = time.perf_counter()
        got = _run_subprocess(key, cfg, imports, timeout) if subprocesses else measure_method(key, cfg)
        date = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        got = [{**r, **common, "date": date} for r in got]
        # one locked append per method: a concurrent run into the same file never splits these lines, and a
        # run killed mid-method has recorded nothing of that method
        append_lines(path, [json.dumps(r) for r in got])
        for r in got:
            records.append(r)
            say("  " + _line(r))
        say(f"  ({time.perf_counter() - t0:.0f} s)")
    say(f"-> {path}")
    return records


def _fmt(stats: dict[str, float] | None, digits: int = 3) -> str:
    if not stats:
        return "-"
    return f"{stats['median']:.{digits}g} [{stats['q1']:.{digits}g}-{stats['q3']:.{digits}g}]"


def _fmt_ratio(stats: dict[str, Any]) -> str:
    """A paired ratio to three decimals (a ratio of 1.001 reads "1.001", not "1"), [interquartile range] ±SE."""
    return f"{stats['median']:.3f} [{stats['q1']:.3f}-{stats['q3']:.3f}]{_precision(stats)}"


def _precision(stats: dict[str, Any] | None) -> str:
    """' ±SE (N pairs)' of a paired ratio's statistics; '' where not recorded (runs before `ratio_precision`)."""
    se = (stats or {}).get("se")
    return f" ±{se:.3f} ({stats['n']} pairs)" if stats and se is not None else ""


def _line(r: dict[str, Any]) -> str:
    m = r["measurement"]
    if m == "inference":
        frac = r.get("fraction_of_matmul")
        return (f"inference {r['verb']} {r['size']}² x{r['batch']}: verb {_fmt(r['verb_images_per_s'])} img/s, bare "
                f"{_fmt(r['bare_images_per_s'])} img/s, ratio {r['ratio']:.3f}{_precision(r.get('ratio_stats'))}"
                + (f", {100 * frac:.1f}% of matmul" if frac is not None else ""))
    if m == "training":
        ratio = f"{r['ratio']:.3f}" if r["ratio"] is not None else "-"
        return (f"training batch {r['batch']} crop {r['crop']}: lightning {_fmt(r['lightning_it_per_s'])} it/s, plain "
                f"{_fmt(r['plain_it_per_s'])} it/s, ratio {ratio}")
    if m == "fast_path":
        if "skipped" in r:
            return f"fast path {r['fast_path']}: not run: {r['skipped']}"
        return (f"fast path {r['fast_path']} {r['size']}² x{r['batch']}: {_fmt(r['fast_images_per_s'])} img/s against "
                f"{_fmt(r['default_images_per_s'])}, gain {r['gain']:.2f}x (first call {r['first_call_s']:.1f} s)")
    if m == "train_fast_path":
        if "skipped" in r:
            return f"training fast path {r['fast_path']}: not run: {r['skipped']}"
        if r["fast_path"] == "adam":
            share = r.get("loop_share_of_iteration")
            gains = ", ".join(f"{name} {gain:.2f}x" for name, gain in r["gains"].items())
            return (f"training fast path adam (zoo's: {r['implementation']}): optimizer step against the for-loop's "
                    f"{_fmt(r['for_loop_step_s'])} s: {gains}"
                    + (f"; the loop's step is {100 * share:.1f}% of an iteration" if share is not None else ""))
        if r["fast_path"] == "workers":
            return (f"training fast path workers ({_workers(r['loader_options']['num_workers'])}): "
                    f"{_fmt(r['batches_per_s'])} batches/s against {_fmt(r['no_worker_batches_per_s'])} with none, "
                    f"gain {r['gain']:.2f}x, first block {r['first_block_s']:.1f} s"
                    + (f", loading {100 * r['load_share']:.1f}% of an iteration without workers"
                       if r["load_share"] is not None else ""))
        gain = f"gain {r['gain']:.2f}x" if r["gain"] is not None else "gain -"
        return (f"training fast path {r['fast_path']} batch {r['batch']} crop {r['crop']}: {_fmt(r['fast_it_per_s'])} "
                f"it/s against plain {_fmt(r['plain_it_per_s'])}, {gain} (vs plain {r['vs_plain']:.2f}x, first step "
                f"{r['first_step_s']:.1f} s)")
    if m == "optimization":
        to = r["seconds_to_target"]
        return (f"optimization {r['optimizer']} {r['size']}²: {r['seconds_per_step']:.3g} s/step, "
                f"{'not reached' if to is None else f'{to:.3g} s'} to {r['loss_ratio_target']}x loss")
    return f"{m}: {r.get('error', '')}"


# ----------------------------------------------------------------------------------- the table
def read_speed_results(path: Path) -> list[dict[str, Any]]:
    """Every record of a speed.jsonl file (a missing file is a `ZooError` saying how to make one)."""
    if not path.is_file():
        raise ZooError(f"no speed results at {path}: run `python -m zoo.bench --suite speed` first")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _precision_note(config: dict[str, Any]) -> str:
    precision = config.get("ratio_precision")
    if not precision:
        return ""
    return (f", ± the median's standard error, pairs added while it was above {precision:g} up to "
            f"{config['precision_seconds']:g} s of calls")


_MALLOC_NOTE = {"tuned": "malloc thresholds raised (zoo.allocator)", "default": "glibc's default malloc thresholds"}


def render_speed_table(records: Sequence[dict[str, Any]], run: str | None = None) -> str:
    """The README's speed table (markdown) of one run (default: the latest), with its machine."""
    if not records:
        raise ZooError("the speed results are empty: run `python -m zoo.bench --suite speed` first")
    runs = sorted({r["run"] for r in records})
    run = run or runs[-1]
    if run not in runs:
        raise ZooError(f"no speed run {run!r} in the results: the latest are {', '.join(runs[-5:])}")
    rows = [r for r in records if r["run"] == run]
    first = rows[0]
    mach = first["machine"]
    # runs since the framework ratio follows ratio_precision record its standard error
    grown = any(_precision(r.get("ratio_stats")) for r in rows if r["measurement"] == "training")
    lines = [
        f"Speed run {run} (git {first.get('git_sha') or '?'}) on {mach.get('device_name')} ({mach.get('cores')} cores, "
        f"torch {mach.get('torch')}, {mach.get('threads')} threads); dense fp32 matmul "
        f"{first['matmul']['flops'] / 1e9:.1f} GFLOP/s. Medians [interquartile range] over "
        f"{first['config']['repeats']} repeats after {first['config']['warmup']} warm-up (training: "
        f"{'at least ' if grown else ''}"
        f"{first['config'].get('train_steps') or first['config']['repeats']} steps of each loop, interleaved); "
        f"{_MALLOC_NOTE[first['config'].get('malloc', 'default')]}; ratios: the median of the ratios of calls run "
        "side by side (API ratio: with their interquartile range" + _precision_note(first["config"]) + "); "
        "random weights.",
        "",
        "| method | verb | size | batch | verb img/s | bare img/s | API ratio | % of matmul | train batch×crop | "
        "Lightning it/s | plain it/s | framework ratio | s/step (optim.) | s to 0.1× loss | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    methods: list[str] = []
    for r in rows:
        if r["method"] not in methods:
            methods.append(r["method"])
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        infer = [r for r in mine if r["measurement"] == "inference"]
        train = next((r for r in mine if r["measurement"] == "training"), None)
        optim = next((r for r in mine if r["measurement"] == "optimization"), None)
        error = next((r for r in mine if r["measurement"] == "error"), None)
        # the default paths' peak (RSS is a high-water mark: the last record before the training fast
        # paths, which build and compile more models, holds it)
        peak = max((r.get("peak_memory_mb") or 0 for r in mine if r["measurement"] != "train_fast_path"), default=0)
        t_cells = ["-"] * 4
        if train:
            mark = "" if train["at_recipe"] else f" (recipe {train['recipe_batch']}×{train['recipe_crop']})"
            t_cells = [f"{train['batch']}×{train['crop']}{mark}", _fmt(train["lightning_it_per_s"]),
                       _fmt(train["plain_it_per_s"]),
                       "-" if train["ratio"] is None else f"{train['ratio']:.3f}{_precision(train.get('ratio_stats'))}"]
        o_cells = ["-", "-"]
        if optim:
            to = optim["seconds_to_target"]
            o_cells = [f"{optim['seconds_per_step']:.3g} ({optim['optimizer']}, {optim['size']}²)",
                       "not in %d steps" % optim["steps_run"] if to is None else f"{to:.3g}"]
        peak_cell = f"{peak:.0f}" if peak else "-"
        if error and not (infer or train or optim):
            lines.append(f"| {method} | error: {error['error'][:80]} |" + " |" * 13)
            continue
        for i, r in enumerate(infer or [None]):  # type: ignore[list-item]
            i_cells = ["-"] * 7
            if r is not None:
                frac = r.get("fraction_of_matmul")
                i_cells = [r["verb"], f"{r['size']}²", str(r["batch"]), _fmt(r["verb_images_per_s"]),
                           _fmt(r["bare_images_per_s"]),
                           _fmt_ratio(r["ratio_stats"]) if "ratio_stats" in r else f"{r['ratio']:.3f}",
                           f"{100 * frac:.1f}" if frac is not None else "-"]
            rest = t_cells + o_cells + [peak_cell] if i == 0 else [""] * 7
            lines.append("| " + " | ".join([method if i == 0 else "", *i_cells, *rest]) + " |")
    fast = [r for r in rows if r["measurement"] == "fast_path"]
    if fast:
        lines += ["", *render_fast_path_table(fast)]
    train_fast = [r for r in rows if r["measurement"] == "train_fast_path"]
    if train_fast:
        lines += ["", *render_train_fast_path_table(train_fast, [r for r in rows if r["measurement"] == "training"])]
    return "\n".join(lines) + "\n"


def render_fast_path_table(records: Sequence[dict[str, Any]]) -> list[str]:
    """Lines of the fast-path table: per method, the default verb's images/s and each path's gain
    (fast / default, interleaved in one process), with compile's first-call seconds and any note."""
    paths: list[str] = []
    for r in records:
        if r["fast_path"] not in paths:
            paths.append(r["fast_path"])
    lines = ["| method | verb | size | batch | default img/s | " + " | ".join(f"{p} gain" for p in paths) + " |",
             "|---|---|---|---|---|" + "---|" * len(paths)]
    methods: list[str] = []
    for r in records:
        if r["method"] not in methods:
            methods.append(r["method"])
    notes: list[str] = []
    for method in methods:
        mine = {r["fast_path"]: r for r in records if r["method"] == method}
        ref = next((r for r in mine.values() if "gain" in r and r["size"] == max(
            x.get("size", 0) for x in mine.values())), None)
        cells = []
        for p in paths:
            r = mine.get(p)
            cell = _unmeasured_cell(method, p, r, notes)
            if cell is None:
                cell = f"{r['gain']:.2f}×"
                if p == "compile":
                    cell += f" (compile {r['first_call_s']:.0f} s)"
                if r["size"] != (ref or r)["size"]:
                    cell += f" at {r['size']}²"
            cells.append(cell)
        head = [method, (ref or next(iter(mine.values())))["verb"]]
        head += [f"{ref['size']}²", str(ref["batch"]), _fmt(ref["default_images_per_s"])] if ref else ["-"] * 3
        lines.append("| " + " | ".join(head + cells) + " |")
    return lines + ([""] + [f"- {n}" for n in notes] if notes else [])


def _workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def _unmeasured_cell(method: str, path: str, record: dict[str, Any] | None, notes: list[str]) -> str | None:
    """A fast-path table's cell for a path not measured ("-") or not run ("not run", its reason added to
    `notes`); None for a measured one."""
    if record is None:
        return "-"
    if "skipped" in record:
        notes.append(f"{method} {path}: {record['skipped']}")
        return "not run"
    return None


def _train_fast_cell(path: str, r: dict[str, Any]) -> str:
    """The training fast-path table's cell of a measured path."""
    if path == "workers":
        share = r["load_share"]
        return (f"{r['gain']:.2f}× ({_workers(r['loader_options']['num_workers'])}"
                + (f"; loading {100 * share:.1f} %)" if share is not None else ")"))
    if path == "adam":
        share = r.get("loop_share_of_iteration")
        others = "".join(f", {name} {gain:.2f}×" for name, gain in r.get("gains", {}).items()
                         if name != r["implementation"])
        return (f"{r['gain']:.2f}× ({r['implementation']}{others}"
                + (f"; loop {100 * share:.1f} %)" if share is not None else ")"))
    cell = f"{r['gain']:.2f}×" if r["gain"] is not None else f"{r['vs_plain']:.2f}× vs plain"
    if path == "compile" and r.get("first_step_s") is not None:
        cell += f" (first step {r['first_step_s']:.0f} s)"
    return cell


_TRAIN_FAST_HEADS = {"adam": "Adam step gain over the for-loop (the loop step's share of an iteration)",
                     "workers": "loader workers gain, loader alone (loading's share of an iteration without)"}


def render_train_fast_path_table(records: Sequence[dict[str, Any]], training: Sequence[dict[str, Any]]) -> list[str]:
    """Lines of the training fast-path table: per method, the default Lightning iterations/s and each path's
    gain (the fast Lightning iteration against the plain float32 loop, over the default's framework ratio;
    compile with its first step's seconds), Adam's optimizer-step gains over the for-loop with the loop
    step's share of an iteration, and the loader's gain from its workers with loading's share of an
    iteration without them."""
    paths = list(dict.fromkeys(r["fast_path"] for r in records))
    lines = ["| method | train batch×crop | Lightning it/s | " + " | ".join(
        _TRAIN_FAST_HEADS.get(p, f"{p} gain") for p in paths) + " |",
        "|---|---|---|" + "---|" * len(paths)]
    notes: list[str] = []
    for method in dict.fromkeys(r["method"] for r in records):
        mine = {r["fast_path"]: r for r in records if r["method"] == method}
        train = next((t for t in training if t["method"] == method), None)
        cells = []
        for p in paths:
            r = mine.get(p)
            cells.append(_unmeasured_cell(method, p, r, notes) or _train_fast_cell(p, r))
        head = [method, f"{train['batch']}×{train['crop']}" if train else "-",
                _fmt(train["lightning_it_per_s"]) if train else "-"]
        lines.append("| " + " | ".join(head + cells) + " |")
    return lines + ([""] + [f"- {n}" for n in notes] if notes else [])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.exit(_worker(sys.argv[2:]))
    sys.exit("usage: python -m zoo.bench --suite speed [...] (this module's own entry is for its worker processes)")
