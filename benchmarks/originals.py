"""zoo's speed against the original implementations, on one machine and the same inputs (issue 8, item 4).

    git clone https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix
    git clone https://github.com/naoto0804/pytorch-AdaIN
    git clone https://github.com/pytorch/examples                    # examples/fast_neural_style
    git clone https://github.com/leongatys/PytorchNeuralStyleTransfer
    python benchmarks/originals.py --cyclegan-repo pytorch-CycleGAN-and-pix2pix --adain-repo pytorch-AdaIN \
        --johnson-repo examples/fast_neural_style/neural_style \
        --gatys-notebook PytorchNeuralStyleTransfer/NeuralStyleTransfer.ipynb

Nothing of the originals is copied into zoo: each is imported from the user's clone (its `models`,
`options`, `net`, `function`, `transformer_net` modules); from AdaIN's `test.py` and the Gatys notebook, which
are scripts, only the named function and class definitions (and the notebook's loop cell) are executed.

What is compared (random weights on both sides: the cost of a network does not depend on its weights; zoo's
VGG losses/encoders random too):

- pix2pix and CycleGAN, one training iteration at the recipe's batch 1 × 256²: the original's
  `set_input` + `optimize_parameters()` against zoo's step as `python -m zoo.fit` runs it (a real Lightning
  `Trainer`), one original iteration beside each Lightning step (L O, O L, ...; `zoo.benchmark.speed`);
- AdaIN and Johnson inference at 256², batch 1: `test.py`'s `style_transfer` (content and style through
  the VGG encoder, AdaIN, decoder) and `TransformerNet` on a 0-255 tensor (as `neural_style.py stylize`
  feeds it), under `torch.no_grad`, against zoo's `stylize` verb on a [0, 1] tensor, interleaved;
- Gatys: seconds per L-BFGS iteration at 256² (the notebook's loop: one closure evaluation per iteration,
  its VGG run to pool5 on every evaluation) against `zoo.create("gatys").optimize(..., steps=N)`, target
  set-up included on both sides.

Each comparison is also run with zoo's fast paths (`FAST_DEFAULT`, or `--fast compile,channels_last` for all).
Those run both sides in one process, so both share glibc's default malloc thresholds. `--processes` adds the
comparison as users run each: every side in fresh processes (original, zoo, zoo, zoo, zoo, original), the
original with glibc's defaults as its script runs, zoo once with them and once with the raised thresholds that
`zoo.fit` and `zoo.predict` set (`zoo.allocator`); ratio of the pooled medians. `--process-fast compile` adds
zoo with raised thresholds and that fast path (as `zoo.predict --compile true` runs);
`--process-fast compile,bf16,compile+channels_last` adds one variant per item, `+` combining paths in one
(as `zoo.predict --compile true --channels_last true` runs); bf16 is bfloat16 autocast (`zoo.predict --precision
bf16-mixed`, `zoo.fit --trainer.precision bf16-mixed`). `--only johnson,pix2pix`
limits the run to some comparisons.
`ratio` = original seconds / zoo seconds: above 1, zoo is faster. Results are appended to
`benchmarks/results/originals.jsonl`; a markdown table is printed.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as _dt
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

import zoo
from zoo.allocator import MALLOC_SETTINGS, apply_malloc_setting
from zoo.benchmark import speed
from zoo.fit import apply_fast_paths
from zoo.module import precision_context

SIZE = 256
#: zoo's fast paths compared by default (CycleGAN's compile takes minutes of compilation on CPU for each of
#: its four networks' forward and backward graphs: `--fast compile,channels_last` adds it)
FAST_DEFAULT = {"pix2pix": "compile,channels_last", "cyclegan": "channels_last", "adain": "compile,channels_last",
                "johnson": "compile,channels_last"}


@contextlib.contextmanager
def on_path(folder: str) -> Iterator[None]:
    """`folder` first on sys.path (the original's top-level modules importable), restored afterwards, with the
    modules it brought in forgotten so two originals with the same module names (`models`, `util`) do not mix."""
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)
        for name in set(sys.modules) - before:
            module = sys.modules[name]
            if (getattr(module, "__file__", None) or "").startswith(os.path.abspath(folder)):
                del sys.modules[name]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def definitions(source: str, names: set[str], namespace: dict[str, Any]) -> dict[str, Any]:
    """Execute only the top-level function/class definitions called `names` of a script's source in
    `namespace` (a script such as AdaIN's test.py runs its whole job when imported)."""
    tree = ast.parse(source)
    nodes = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]
    missing = names - {n.name for n in nodes}
    if missing:
        raise SystemExit(f"error: {', '.join(sorted(missing))} not found in the original's source")
    exec(compile(ast.Module(body=nodes, type_ignores=[]), "<original>", "exec"), namespace)  # noqa: S102
    return namespace


def _seconds(stats: dict[str, float]) -> float:
    return 1.0 / stats["median"]


# ------------------------------------------------------------------------------------------ training
class OriginalTrainLoop:
    """One training iteration of a junyanz model per `step()` (set_input + optimize_parameters), on a fixed
    batch; returns (seconds of optimize_parameters, seconds with set_input)."""

    def __init__(self, model: Any, batch: dict[str, Any]) -> None:
        self.model, self.batch = model, batch

    def step(self) -> tuple[float, float]:
        start = time.perf_counter()
        self.model.set_input(self.batch)
        t0 = time.perf_counter()
        self.model.optimize_parameters()
        end = time.perf_counter()
        return end - t0, end - start


def junyanz_model(repo: str, method: str, workdir: str) -> Any:
    """The original's training model as `python train.py --model <method> --gpu_ids -1` builds it."""
    from models import create_model
    from options.train_options import TrainOptions

    name = {"pix2pix": "pix2pix", "cyclegan": "cycle_gan"}[method]
    sys.argv = ["train.py", "--dataroot", workdir, "--name", name, "--model", name, "--gpu_ids", "-1",
                "--checkpoints_dir", workdir]
    if method == "pix2pix":
        sys.argv += ["--direction", "AtoB"]
    with quiet():
        opt = TrainOptions().parse()
        model = create_model(opt)
        model.setup(opt)
    return model


def compare_training(repo: str, method: str, fast: tuple[str, ...], steps: int, warmup: int) -> list[dict[str, Any]]:
    device = torch.device("cpu")
    records = []
    with on_path(repo), tempfile.TemporaryDirectory() as work:
        for variant in ("default", *fast):
            torch.manual_seed(0)
            original = junyanz_model(repo, method, work)
            model = zoo.create(method)
            apply_fast_paths(model, compile=variant == "compile", channels_last=variant == "channels_last")
            sample = speed.training_sample(model, SIZE, speed.recipe(model))
            batch = {"A": sample["A"][None], "B": sample["B"][None], "A_paths": ["a"], "B_paths": ["b"]}
            variant_warmup = warmup + (2 if variant == "compile" else 0)  # compiles in the first steps
            loader = speed._loader(speed._Repeat(sample, variant_warmup + steps + 1), 1)
            times = speed.fit_interleaved(model, loader, OriginalTrainLoop(original, batch), steps,
                                          variant_warmup, device, work)
            zoo_s = _seconds(speed._rate(times["lightning_iteration"], 1))
            orig_s = _seconds(speed._rate(times["plain_iteration"], 1))
            records.append({"comparison": f"{method} training iteration", "variant": variant,
                            "size": SIZE, "batch": 1, "zoo_s": zoo_s, "original_s": orig_s,
                            "ratio": orig_s / zoo_s, "n": len(times["lightning_iteration"]),
                            "original": "junyanz/pytorch-CycleGAN-and-pix2pix set_input + optimize_parameters"})
            print(_line(records[-1]), flush=True)
    return records


# ----------------------------------------------------------------------------------------- inference
def compare_inference(name: str, original: Callable[[], Any], make_zoo: Callable[[], Callable[[], Any]],
                      fast: tuple[str, ...], key: str, repeats: int, warmup: int, source: str) -> list[dict[str, Any]]:
    records = []
    for variant in ("default", *fast):
        model = speed.build_model(key, speed.SpeedConfig()).eval()  # random VGG where the method has one
        if variant != "default":
            speed.apply_fast_path(model, variant)
        run = make_zoo(model)
        run()  # compiles, for compile
        orig_s, zoo_s = speed.timed_pair(original, run, repeats, warmup, torch.device("cpu"), min_seconds=10.0)
        o, z = _seconds(speed._rate(orig_s, 1)), _seconds(speed._rate(zoo_s, 1))
        records.append({"comparison": name, "variant": variant, "size": SIZE, "batch": 1, "zoo_s": z,
                        "original_s": o, "ratio": o / z, "n": len(zoo_s), "original": source})
        print(_line(records[-1]), flush=True)
    return records


def adain_sides(repo: str) -> tuple[Callable[[], Any], Callable[[Any], Callable[[], Any]], str]:
    """The original's call and a maker of zoo's (from a built model) on one fixed 256² content and style."""
    g = torch.Generator().manual_seed(0)
    content, style = (torch.rand(1, 3, SIZE, SIZE, generator=g) for _ in range(2))
    with on_path(repo):
        import function
        import net

        adain = function.adaptive_instance_normalization
        space = definitions(Path(repo, "test.py").read_text(), {"style_transfer"},
                            {"torch": torch, "adaptive_instance_normalization": adain})
        decoder, vgg = net.decoder.eval(), net.vgg
        vgg = torch.nn.Sequential(*list(vgg.children())[:31]).eval()  # test.py: the encoder up to relu4_1

    def original() -> Any:
        with torch.no_grad():
            return space["style_transfer"](vgg, decoder, content, style, 1.0)

    return original, lambda m: (lambda: m.stylize(content, style)), "naoto0804/pytorch-AdaIN test.py style_transfer"


def johnson_sides(repo: str) -> tuple[Callable[[], Any], Callable[[Any], Callable[[], Any]], str]:
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, SIZE, SIZE, generator=g)
    with on_path(repo):
        from transformer_net import TransformerNet

        net = TransformerNet().eval()

    def original() -> Any:
        with torch.no_grad():  # neural_style.py stylize: ToTensor, mul(255), the network
            return net(content.mul(255))

    return original, lambda m: (lambda: m.stylize(content)), "pytorch/examples fast_neural_style TransformerNet"


INFERENCE = {"adain": ("AdaIN inference", adain_sides), "johnson": ("Johnson inference", johnson_sides)}


def compare_inference_of(key: str, repo: str, fast: tuple[str, ...], repeats: int, warmup: int) -> list[dict[str, Any]]:
    name, sides = INFERENCE[key]
    original, make_zoo, source = sides(repo)
    return compare_inference(name, original, make_zoo, fast, key, repeats, warmup, source)


# ------------------------------------------------------------------------------------------- gatys
def compare_gatys(notebook: str, iterations: int, repeats: int) -> list[dict[str, Any]]:
    """Seconds per L-BFGS iteration: the notebook's loop cell (its max_iter set to `iterations`) against zoo."""
    cells = ["".join(c["source"]) for c in json.loads(Path(notebook).read_text())["cells"] if c["cell_type"] == "code"]

    def cell(marker: str) -> str:
        return next(c for c in cells if marker in c)

    import torch.nn as nn
    import torch.nn.functional as F
    from torch import optim

    space: dict[str, Any] = {"torch": torch, "nn": nn, "F": F, "optim": optim, "Variable": lambda t, **k: t}
    exec(cell("class VGG("), space)  # noqa: S102
    exec(cell("class GramMatrix("), space)  # noqa: S102
    g = torch.Generator().manual_seed(0)
    content, style = (torch.rand(1, 3, SIZE, SIZE, generator=g) for _ in range(2))
    targets_cell = cell("style_layers = ")
    # one optimizer.step is 20 L-BFGS iterations (torch's max_iter), each one closure call
    if iterations % 20:
        raise SystemExit("error: --gatys-iterations must be a multiple of 20 (the notebook's L-BFGS steps)")
    loop_cell = cell("optimizer = optim.LBFGS([opt_img])").replace("max_iter = 500", f"max_iter = {iterations - 1}")
    loop_cell = loop_cell[:loop_cell.index("#display result")]  # the image display after the loop

    def original() -> None:
        vgg = space["VGG"]()
        for p in vgg.parameters():
            p.requires_grad = False
        # the notebook's prep: BGR, mean subtracted, 0-255
        mean = torch.tensor([0.40760392, 0.45795686, 0.48501961]).view(1, 3, 1, 1)
        style_image, content_image = ((x[:, [2, 1, 0]] - mean) * 255 for x in (style, content))
        local = {**space, "vgg": vgg, "style_image": style_image, "content_image": content_image,
                 "opt_img": content_image.clone().requires_grad_(True)}
        with quiet():
            exec(targets_cell, local)  # noqa: S102
            exec(loop_cell, local)  # noqa: S102
        assert local["n_iter"][0] == iterations, local["n_iter"]

    model = zoo.create("gatys", vgg_weights=None, progress=False)

    def ours() -> None:
        model.optimize(content, style, steps=iterations, image_size=SIZE, init="content")

    orig_s, zoo_s = speed.timed_pair(original, ours, repeats, 1, torch.device("cpu"))
    o, z = (_seconds(speed._rate(s, iterations)) for s in (orig_s, zoo_s))
    record = {"comparison": "Gatys L-BFGS iteration", "variant": "default", "size": SIZE, "batch": 1,
              "zoo_s": z, "original_s": o, "ratio": o / z, "n": len(zoo_s), "iterations": iterations,
              "original": "leongatys/PytorchNeuralStyleTransfer NeuralStyleTransfer.ipynb (VGG, Gram, loop cells)"}
    print(_line(record), flush=True)
    return [record]


# ------------------------------------------------------------------------- each side in its own process
PROCESS_FAST_PATHS = ("compile", "channels_last", "bf16")


def fast_variant(variant: str) -> tuple[str, ...]:
    """The fast paths of one process variant: '' (none), one of `PROCESS_FAST_PATHS`, or several joined by '+'
    (e.g. 'compile+channels_last'). bf16: inference under bfloat16 autocast (`zoo.predict --precision
    bf16-mixed`), training with `--trainer.precision bf16-mixed`."""
    paths = tuple(p for p in variant.split("+") if p)
    unknown = [p for p in paths if p not in PROCESS_FAST_PATHS]
    if unknown:
        raise SystemExit(f"error: unknown fast path {unknown[0]!r} in {variant!r}: "
                         f"use {', '.join(PROCESS_FAST_PATHS)}, or several joined by '+'")
    return paths


def process_order(fast: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """(side, malloc, fast path) of each process: zoo under glibc's default malloc thresholds and under the raised
    ones of zoo.fit/zoo.predict (`zoo.allocator`), against the original as its own script runs (glibc's
    defaults), O Zd Zt Zt Zd O; each fast path f adds zoo with raised thresholds and f in the middle."""
    first = [("original", "default", ""), ("zoo", "default", ""), ("zoo", "tuned", "")]
    first += [("zoo", "tuned", f) for f in fast]
    return first + first[::-1]


def time_side(key: str, side: str, repo: str, repeats: int, steps: int, fast: str = "") -> list[float]:
    """Seconds of each timed call (inference) or iteration (training) of one side, in this process; `fast`:
    zoo fast paths (a `fast_variant`: compile, channels_last, bf16, or several as `compile+channels_last`) applied
    to zoo's model first (compiled in the warm-up)."""
    device = torch.device("cpu")
    paths = fast_variant(fast)
    if key in INFERENCE:
        original, make_zoo, _ = INFERENCE[key][1](repo)
        if side == "original":
            return speed.timed(original, repeats, 1, device)
        model = speed.build_model(key, speed.SpeedConfig()).eval()
        for path in paths:
            if path != "bf16":
                speed.apply_fast_path(model, path)
        zoo_call, precision = make_zoo(model), "bf16-mixed" if "bf16" in paths else "32-true"

        def call() -> Any:
            with precision_context(precision, device):
                return zoo_call()
        return speed.timed(call, repeats, 2 if "compile" in paths else 1, device)
    with on_path(repo), tempfile.TemporaryDirectory() as work:
        torch.manual_seed(0)
        model = zoo.create(key)
        sample = speed.training_sample(model, SIZE, speed.recipe(model))
        if side == "original":
            batch = {"A": sample["A"][None], "B": sample["B"][None], "A_paths": ["a"], "B_paths": ["b"]}
            loop = OriginalTrainLoop(junyanz_model(repo, key, work), batch)
            loop.step()
            return [loop.step()[1] for _ in range(steps)]
        apply_fast_paths(model, compile="compile" in paths, channels_last="channels_last" in paths)
        warmup = 3 if "compile" in paths else 1
        loader = speed._loader(speed._Repeat(sample, steps + warmup + 2), 1)
        precision = "bf16-mixed" if "bf16" in paths else "32-true"
        return speed.fit_interleaved(model, loader, None, steps + 1, warmup, device, work,
                                     precision)["lightning_iteration"]


def compare_in_processes(key: str, repo: str, repeats: int, steps: int,
                         fast: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """zoo's side with glibc's default and with raised malloc thresholds (and with those and each fast path)
    against the original, every side in a fresh process (the allocator is process-wide), in the order of
    `process_order`; ratio of pooled medians."""
    order = process_order(fast)
    pooled: dict[tuple[str, str, str], list[float]] = {}
    for side, malloc, path in order:
        cmd = [sys.executable, __file__, "--child", key, side, malloc, os.path.abspath(repo),
               "--repeats", str(repeats), "--steps", str(steps), "--fast", path]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"error: {key} {side} ({malloc} {path}): {(proc.stderr or proc.stdout).strip()[-800:]}")
        pooled.setdefault((side, malloc, path), []).extend(json.loads(proc.stdout.strip().splitlines()[-1]))
    orig_s = statistics.median(pooled[("original", "default", "")])
    name = INFERENCE[key][0] if key in INFERENCE else f"{key} training iteration"
    records = []
    for _, malloc, path in [o for o in order[:len(order) // 2] if o[0] == "zoo"]:
        zoo_s = statistics.median(pooled[("zoo", malloc, path)])
        variant = f"own processes, zoo malloc {malloc}" + (f" + {' + '.join(fast_variant(path))}" if path else "")
        records.append({"comparison": name, "variant": variant, "size": SIZE, "batch": 1, "zoo_s": zoo_s,
                        "original_s": orig_s, "ratio": orig_s / zoo_s, "n": len(pooled[("zoo", malloc, path)]),
                        "processes": [list(o) for o in order], "original_malloc": "default"})
        print(_line(records[-1]), flush=True)
    return records


def _child(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("key")
    p.add_argument("side", choices=("original", "zoo"))
    p.add_argument("malloc", choices=MALLOC_SETTINGS)
    p.add_argument("repo")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--fast", default="",
                   help="a process variant (fast_variant): '', compile, bf16, compile+channels_last, ...")
    a = p.parse_args(argv)
    assert apply_malloc_setting(a.malloc) == (a.malloc == "tuned"), "glibc refused the malloc thresholds"
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("lightning.pytorch", "lightning.fabric", "lightning", "zoo"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with quiet():
        times = time_side(a.key, a.side, a.repo, a.repeats, a.steps, a.fast)
    print(json.dumps(times))
    return 0


# ---------------------------------------------------------------------------------------------- run
def _line(r: dict[str, Any]) -> str:
    return (f"{r['comparison']} [{r['variant']}]: zoo {r['zoo_s']:.3g} s, original {r['original_s']:.3g} s, "
            f"ratio {r['ratio']:.2f}")


def table(records: list[dict[str, Any]]) -> str:
    lines = ["| comparison | zoo path | size | zoo s | original s | ratio (original / zoo) |",
             "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['comparison']} | {r['variant']} | {r['size']}² | {r['zoo_s']:.3g} | "
                     f"{r['original_s']:.3g} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cyclegan-repo", help="a clone of junyanz/pytorch-CycleGAN-and-pix2pix (pix2pix, CycleGAN)")
    p.add_argument("--adain-repo", help="a clone of naoto0804/pytorch-AdaIN")
    p.add_argument("--johnson-repo", help="pytorch/examples' fast_neural_style/neural_style folder")
    p.add_argument("--gatys-notebook", help="leongatys/PytorchNeuralStyleTransfer's NeuralStyleTransfer.ipynb")
    p.add_argument("--fast", default=None,
                   help="zoo fast paths also compared, for every comparison ('' for none; default: FAST_DEFAULT)")
    p.add_argument("--steps", type=int, default=4, help="timed training iterations of each side")
    p.add_argument("--repeats", type=int, default=5, help="timed inference calls / Gatys runs of each side")
    p.add_argument("--gatys-iterations", type=int, default=20, help="a multiple of 20")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="benchmarks/results/originals.jsonl")
    p.add_argument("--only", default=None,
                   help="comma-separated subset of pix2pix,cyclegan,adain,johnson,gatys "
                        "(default: every original named)")
    p.add_argument("--processes", action="store_true",
                   help="also time each side in its own processes: zoo with glibc's default and with raised malloc "
                        "thresholds (as zoo.fit/zoo.predict run) against the original as its script runs")
    p.add_argument("--process-fast", default=None,
                   help="with --processes: also zoo with raised thresholds and these fast paths, one process variant "
                        "per comma-separated item; '+' combines paths in one variant "
                        "(e.g. compile,compile+channels_last)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    only = None if args.only is None else {k.strip() for k in args.only.split(",") if k.strip()}
    process_variants = tuple(v for v in (args.process_fast or "").split(",") if v)
    for variant in process_variants:
        fast_variant(variant)  # an unknown fast path stops the run here, before anything is timed

    def chosen(key: str) -> bool:
        return only is None or key in only

    def fast(key: str) -> tuple[str, ...]:
        chosen = args.fast if args.fast is not None else FAST_DEFAULT[key]
        return tuple(f for f in chosen.split(",") if f)

    records: list[dict[str, Any]] = []
    if args.cyclegan_repo:
        for method in [m for m in ("pix2pix", "cyclegan") if chosen(m)]:
            records += compare_training(os.path.abspath(args.cyclegan_repo), method, fast(method), args.steps, 1)
    for key, repo in (("adain", args.adain_repo), ("johnson", args.johnson_repo)):
        if repo and chosen(key):
            records += compare_inference_of(key, os.path.abspath(repo), fast(key), args.repeats, 1)
    if args.processes:
        for key, repo in (("pix2pix", args.cyclegan_repo), ("cyclegan", args.cyclegan_repo),
                          ("adain", args.adain_repo), ("johnson", args.johnson_repo)):
            if repo and chosen(key):
                records += compare_in_processes(key, repo, args.repeats, args.steps, process_variants)
    if args.gatys_notebook and chosen("gatys"):
        records += compare_gatys(args.gatys_notebook, args.gatys_iterations, min(args.repeats, 3))
    if not records:
        p.error("name at least one original (--cyclegan-repo, --adain-repo, --johnson-repo, --gatys-notebook)")
    common = {"run": _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"),
              "machine": speed.machine_info("cpu"), "git_sha": speed._git_sha()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        for r in records:
            f.write(json.dumps({**r, **common}) + "\n")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[2:]) if sys.argv[1:2] == ["--child"] else main())
