"""What `python -m zoo.bench` does: resolve the models, run each suite track, record, publish.

    python -m zoo.bench --suite mini                                   # offline, CPU, minutes
    python -m zoo.bench --models 'pix2pix-*' --suite facades --metrics fid,kid,lpips,psnr,ssim
    python -m zoo.bench --models runs/pix2pix/pretrained --suite mini --devices 2 --strategy ddp
    python -m zoo.bench --leaderboard                                  # only regenerate LEADERBOARD.md
    python -m zoo.bench --suite speed [--models 'pix2pix,adain'] [--device cuda] [--sizes 256 --batches 1] [--fast channels_last]
    python -m zoo.bench --suite speed --table                          # the README table of the last speed run

Every number printed and written names its protocol and whether it is comparable with published
numbers. A user mistake ends with `error: ...` and exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from zoo.allocator import MALLOC_SETTINGS
from zoo.errors import ZooError

__all__ = ["main", "build_parser", "resolve_models", "folder_name", "speed_config", "run_speed_command"]

log = logging.getLogger("zoo.bench")  # the command's name, as users see it


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m zoo.bench",
        description="Score zoo models on a benchmark suite (FID, KID, LPIPS, PSNR, SSIM under pinned protocols).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--models", action="append", default=None, metavar="PATTERN",
                   help="registry names or method keys (fnmatch pattern, comma-separated, repeatable), a save_pretrained "
                        "folder, a .ckpt or hf-hub:org/repo. Default: the suite's `models` (all)")
    p.add_argument("--suite", default=None, help="suite name (benchmarks/suites/NAME.yaml) or path to a suite .yaml (default: mini)")
    p.add_argument("--metrics", default=None, help="comma-separated subset of the suite's metrics, e.g. fid,psnr")
    p.add_argument("--root", default=None, help="dataset folder, over the suite's data.root (one-track suites)")
    p.add_argument("--limit", type=int, default=None, help="score only the first K inputs (results not comparable)")
    p.add_argument("--direction", default=None, help="translation direction (a2b or b2a); default: the model's first")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="1", help="devices per node (an int, or 'auto')")
    p.add_argument("--strategy", default="auto", help="Lightning strategy: auto, ddp, ddp_spawn, ...")
    p.add_argument("--num_nodes", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=1, help="inputs per step and device (same-size images are batched)")
    p.add_argument("--num_workers", type=int, default=0, help="DataLoader workers per device")
    p.add_argument("--seed", type=int, default=0, help="run seed; multimodal style codes use per-item seeds derived from it")
    p.add_argument("--out", default="benchmarks", help="folder of results/<suite>.jsonl and LEADERBOARD.md")
    p.add_argument("--leaderboard", action="store_true",
                   help="regenerate LEADERBOARD.md from the results (alone: only that). Runs always regenerate it")
    p.add_argument("--update-registry", action="store_true",
                   help="write each registry model's results into registry.yaml (and the card of folder models)")
    p.add_argument("--registry", default=None, help="registry.yaml to update (default: $ZOO_REGISTRY or the package's)")
    p.add_argument("--push", action="store_true", help="upload each scored model with its results to the Hub")
    p.add_argument("--repo", default=None, help="Hub repo for --push (default: the registry entry's weights.hub.repo)")
    p.add_argument("--logger", choices=("none", "wandb", "csv"), default="none",
                   help="also log to wandb (offline when no API key) or CSV: metrics, a results table, sample grids")
    p.add_argument("--project", default="zoo-bench", help="wandb project")
    p.add_argument("--inception-weights", default=None, help="FID/KID Inception weights file (else ZOO_INCEPTION_WEIGHTS, torch hub cache)")
    p.add_argument("--lpips-weights", default=None, help="LPIPS backbone file (torchvision alexnet/vgg16 format)")
    p.add_argument("--random-backbones", action="store_true",
                   help="use random Inception/LPIPS backbones (no weights needed); every result is marked not comparable")
    p.add_argument("--list", action="store_true", help="list suites and the models the suite would score, then exit")
    speed = p.add_argument_group(
        "speed suite (--suite speed: zoo.benchmark.speed; --models are method keys, results in OUT/results/speed.jsonl)")
    speed.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    speed.add_argument("--sizes", default=None, help="comma-separated image sides (default: 256,512)")
    speed.add_argument("--batches", default=None, help="comma-separated batch sizes (default: 1,8)")
    speed.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default: 3)")
    speed.add_argument("--warmup", type=int, default=None, help="untimed runs before them (default: 1)")
    speed.add_argument("--min-seconds", type=float, default=None,
                       help="repeat quick inference calls (up to 5 x --repeats) until they add up to this (default: 5)")
    speed.add_argument("--ratio-precision", type=float, default=None,
                       help="add API-ratio pairs (two at a time, up to 5 x --repeats) while the median's standard error "
                            "is above this; 0: never (default: 0.01)")
    speed.add_argument("--precision-seconds", type=float, default=None,
                       help="... until the timed calls of a figure add up to this (default: 300)")
    speed.add_argument("--train-steps", type=int, default=None, help="timed training steps of each loop, interleaved (default: 6)")
    speed.add_argument("--train-batch", type=int, default=None,
                       help="cap the recipe's training batch size (recorded). Default: 2 on CPU (a full run in minutes), "
                            "the recipe's on GPU")
    speed.add_argument("--train-crop", type=int, default=None, help="training crop instead of the recipe's (recorded)")
    speed.add_argument("--optim-size", type=int, default=None, help="Gatys/inversion image side (default: 64)")
    speed.add_argument("--optim-steps", type=int, default=None, help="Gatys/inversion optimizer steps (default: 20)")
    speed.add_argument("--measure", default=None,
                       help="comma-separated subset of inference,fast_path,training,train_fast_path,optimization "
                            "(default: all)")
    speed.add_argument("--fast", default=None,
                       help="comma-separated fast paths that fast_path compares with the default path "
                            "(default: channels_last,compile,bf16)")
    speed.add_argument("--train-fast", default=None,
                       help="comma-separated training fast paths that train_fast_path compares with the default step "
                            "(default: bf16,channels_last,compile,adam,workers)")
    speed.add_argument("--train-fast-steps", type=int, default=None,
                       help="timed training steps of each loop per training fast path (default: 4)")
    speed.add_argument("--set", action="append", default=None, metavar="METHOD.HPARAM=VALUE",
                       help="a hyperparameter of one method (repeatable), e.g. --set pix2pix.ngf=8; recorded")
    speed.add_argument("--malloc", choices=MALLOC_SETTINGS, default=None,
                       help="tuned: each method's process raises glibc's malloc thresholds first, as zoo.fit and "
                            "zoo.predict do (zoo.allocator); default: glibc's own (default: tuned, unless "
                            "ZOO_TUNE_MALLOC=0)")
    speed.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    speed.add_argument("--timeout", type=float, default=None, help="seconds per method before it is recorded as an error (default: 3600)")
    speed.add_argument("--import", dest="imports", action="append", default=None, metavar="MODULE",
                       help="a module to import in each method's process first (one that registers more methods)")
    speed.add_argument("--table", action="store_true", help="print the README table of the latest speed run (alone: only that)")
    speed.add_argument("--run", default=None,
                       help="with --table: the run id whose tables to print (default: the latest)")
    return p


#: the CPU default cap on the recipe's training batch (colorization's 40 x 176² would take minutes a step)
CPU_TRAIN_BATCH = 2
_SPEED_FLAGS = ("device", "sizes", "batches", "repeats", "warmup", "train_steps", "train_batch", "train_crop", "optim_size",
                "optim_steps", "measure", "fast", "train_fast", "train_fast_steps", "min_seconds", "ratio_precision",
                "precision_seconds", "set", "threads", "timeout", "imports", "malloc")


def _ints(text: str, flag: str) -> tuple[int, ...]:
    """'256,512' -> (256, 512); anything but positive integers is a `ZooError`."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise ZooError(f"{flag} takes comma-separated positive integers (e.g. {flag} 256,512), got {text!r}")
    return values


def speed_config(args: argparse.Namespace) -> Any:
    """The `SpeedConfig` of the command line, validated (mistakes raise `ZooError`)."""
    from zoo.benchmark.speed import FAST_PATHS, TRAIN_FAST_PATHS, SpeedConfig, parse_sets

    cfg = SpeedConfig()
    kw: dict[str, Any] = {}
    if args.device is not None:
        if args.device.split(":")[0] not in ("cpu", "cuda"):
            raise ZooError(f"--device is cpu or cuda (or cuda:N), got {args.device!r}")
        kw["device"] = args.device
    if args.sizes is not None:
        kw["sizes"] = _ints(args.sizes, "--sizes")
    if args.batches is not None:
        kw["batches"] = _ints(args.batches, "--batches")
    for flag, low in (("repeats", 1), ("warmup", 0), ("train_steps", 1), ("train_fast_steps", 1), ("train_batch", 1),
                      ("train_crop", 8),
                      ("optim_size", 16), ("optim_steps", 1), ("threads", 1)):
        value = getattr(args, flag)
        if value is not None:
            if value < low:
                raise ZooError(f"--{flag.replace('_', '-')} must be at least {low}, got {value}")
            kw[flag] = value
    if args.measure is not None:
        chosen = tuple(m.strip() for m in args.measure.split(",") if m.strip())
        bad = [m for m in chosen if m not in cfg.measurements]
        if bad or not chosen:
            raise ZooError(f"--measure takes a subset of {','.join(cfg.measurements)}, got {args.measure!r}")
        kw["measurements"] = chosen
    for flag in ("min_seconds", "ratio_precision", "precision_seconds"):
        value = getattr(args, flag)
        if value is not None:
            if not 0 <= value < math.inf:  # NaN fails too
                raise ZooError(f"--{flag.replace('_', '-')} must be a finite number, 0 or more, got {value}")
            kw[flag] = value
    for flag, field, choices in (("fast", "fast_paths", FAST_PATHS),
                                 ("train_fast", "train_fast_paths", TRAIN_FAST_PATHS)):
        text = getattr(args, flag)
        if text is not None:
            paths = tuple(p.strip() for p in text.split(",") if p.strip())
            if not paths or any(p not in choices for p in paths):
                raise ZooError(f"--{flag.replace('_', '-')} takes a subset of {','.join(choices)}, got {text!r}")
            kw[field] = paths
    if args.set:
        kw["overrides"] = parse_sets(args.set)
    from zoo.allocator import malloc_tuning_enabled

    kw["malloc"] = args.malloc or ("tuned" if malloc_tuning_enabled() else "default")
    if args.train_batch is None and kw.get("device", cfg.device).startswith("cpu"):
        kw["train_batch"] = CPU_TRAIN_BATCH
    return SpeedConfig(**{**cfg.__dict__, **kw})


def run_speed_command(args: argparse.Namespace) -> int:
    """`--suite speed`: measure the selected methods (or only print the table with --table)."""
    import importlib

    from zoo.benchmark.speed import read_speed_results, render_speed_table, run_speed, select_methods

    path = Path(args.out) / "results" / "speed.jsonl"
    given = [f for f in _SPEED_FLAGS if getattr(args, f) is not None]
    if args.run is not None and not (args.table and not given and args.models is None):
        raise ZooError("--run picks the run that --table prints: use it with --table alone")
    if args.table and not given and args.models is None:
        print(render_speed_table(read_speed_results(path), args.run), end="")
        return 0
    if args.timeout is not None and args.timeout <= 0:
        raise ZooError(f"--timeout must be positive seconds, got {args.timeout}")
    cfg = speed_config(args)
    for module in args.imports or []:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ZooError(f"--import {module}: {error}") from error
    keys = select_methods(_patterns(args.models))
    for key in cfg.overrides:
        if key not in keys:
            raise ZooError(f"--set names {key!r}, which is not among the measured methods ({', '.join(keys)})")
    run_speed(keys, cfg, path.parent, imports=args.imports or [], timeout=args.timeout or 3600.0)
    print()
    print(render_speed_table(read_speed_results(path)), end="")
    return 0


def _patterns(values: Sequence[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [p.strip() for p in v.split(",") if p.strip()]
    return out


def _is_path_or_hub(spec: str) -> bool:
    """A weights folder, a .ckpt or hf-hub:org/repo, rather than a registry name or method key."""
    return spec.startswith("hf-hub:") or Path(spec).expanduser().exists()


def resolve_models(patterns: Sequence[str], tasks: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(model specs to score, [(name, why skipped)]). Globs skip models without local weights or
    without a track for their task; an exact name is always kept (loading it explains what is missing)."""
    from zoo import hub, registry

    chosen: list[str] = []
    skipped: list[tuple[str, str]] = []
    for pattern in patterns:
        is_glob = any(c in pattern for c in "*?[")
        if not is_glob and _is_path_or_hub(pattern):
            chosen.append(pattern)
            continue
        names = registry.list_models(pattern)
        if not names and not is_glob:
            registry.resolve(pattern)  # raises UnknownModelError with the closest names
        for name in names:
            cls, key, entry = registry.resolve(name)
            if cls.task not in tasks:
                if is_glob:
                    skipped.append((name, f"task {cls.task!r} has no track in this suite"))
                    continue
                raise ZooError(f"{name} is a {cls.task} model; this suite scores {', '.join(tasks)} only: pick another --suite")
            if is_glob and cls.optimizes_per_image:
                skipped.append((name, "optimises every image (minutes each on a CPU): name it to score it"))
                continue
            if entry is None:
                if not cls.weight_free:
                    if is_glob:
                        skipped.append((name, "a method without weights: train one (zoo.fit) and pass its folder"))
                        continue
                    raise ZooError(
                        f"{name!r} is a method, not a model with weights: pass a registry name, a save_pretrained folder "
                        f"(e.g. runs/{name}/pretrained) or hf-hub:org/repo"
                    )
            elif is_glob and (entry.get("weights") or {}):
                available = hub.weights_available(key, entry)
                if not any(available.values()):
                    skipped.append((name, "weights not on this machine (zoo.load names the files; or pass them explicitly)"))
                    continue
            if name not in chosen:
                chosen.append(name)
    return chosen, skipped


def _git_sha() -> str | None:
    here = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def folder_name(path: Path) -> str:
    """A weights folder's leaderboard name: its folder name, with the run's name before zoo.fit's
    generic `pretrained` (runs/pix2pix/pretrained -> pix2pix/pretrained)."""
    path = path.resolve()
    return f"{path.parent.name}/{path.name}" if path.name == "pretrained" and path.parent.name else path.name


def _load_model(spec: str) -> tuple[Any, dict[str, Any]]:
    """The model and what identifies its weights."""
    import zoo
    from zoo import hub, registry

    source: dict[str, Any] = {"spec": spec}
    cls, key, entry = None, None, None
    if not _is_path_or_hub(spec):
        cls, key, entry = registry.resolve(spec)  # resolve_models has already checked the name
    if cls is not None and cls.weight_free and not ((entry or {}).get("weights") or {}):
        model = zoo.create(key)
        model.eval()
        source["name"] = key
        return model, source
    model = zoo.load(spec)
    folder = Path(spec).expanduser()
    source["name"] = key or (folder_name(folder) if folder.exists() else spec)
    if folder.is_dir() and (folder / hub.WEIGHTS_NAME).is_file():
        source["weights_sha256"] = hub.sha256_file(folder / hub.WEIGHTS_NAME)
    elif any(True for _ in model.parameters()) or any(True for _ in model.buffers()):
        source["weights_sha256"] = hub.weights_sha256(model)
    return model, source


def _say(text: str) -> None:
    """Print on the global-rank-0 process only (DDP re-runs this script once per rank)."""
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) == 0:
        print(text)


def _metric_line(name: str, result: Any) -> str:
    tag = "comparable" if result["comparable"] else "NOT comparable: " + "; ".join(result["notes"] or ["see protocol"])
    value = result["value"]
    extra = f" ± {result['extra']['std']:.4g}" if result.get("extra", {}).get("std") is not None else ""
    return f"  {name:<16} {value:>12.6g}{extra}  [{result['protocol']}]  {tag}"


def _record(
    model_name: str, source: dict[str, Any], suite: Any, track: Any, module: Any, trainer: Any,
    dataset: Any, args: argparse.Namespace,
) -> dict[str, Any]:
    import zoo
    from zoo.benchmark.runner import hardware

    notes: list[str] = []
    if not suite.comparable:
        notes.append(f"suite {suite.name!r} is not a published benchmark")
    if dataset.limited:
        notes.append(f"--limit {args.limit}: {len(dataset)} of the {dataset.n_available} inputs")
    metrics = {}
    for name, result in module.results.items():
        d = result.as_dict()
        d["notes"] = list(d["notes"]) + notes
        d["comparable"] = bool(d["comparable"] and not notes)
        metrics[name] = d
    counts = dataset.counts()
    return {
        "model": model_name,
        "weights_sha256": source.get("weights_sha256"),
        "suite": suite.name,
        "task": track.task,
        "protocols": {m: v["protocol"] for m, v in metrics.items()},
        "metric_order": list(module.results),  # the track's order: the first one ranks the leaderboard
        "metrics": metrics,
        "comparable": all(v["comparable"] for v in metrics.values()),
        "n": counts.get("pair", 0) + counts.get("input", 0),
        "n_real": counts.get("pair", 0) + counts.get("real", 0),
        "devices": trainer.num_devices,
        "num_nodes": trainer.num_nodes,
        "world_size": trainer.world_size,
        "strategy": type(trainer.strategy).__name__,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "limit": args.limit,
        "throughput": module.throughput,
        "hardware": hardware(trainer),
        "zoo_version": zoo.__version__,
        "git_sha": _git_sha(),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


def _logger(args: argparse.Namespace, model_name: str, suite_name: str) -> Any:
    if args.logger == "none":
        return False
    save_dir = Path(args.out) / "logs"
    save_dir.mkdir(parents=True, exist_ok=True)
    if args.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(save_dir), name=f"{suite_name}-{model_name}")
    from lightning.pytorch.loggers import WandbLogger

    from zoo.fit import _wandb_offline_unless_logged_in

    _wandb_offline_unless_logged_in()
    return WandbLogger(project=args.project, name=f"{model_name}@{suite_name}", save_dir=str(save_dir),
                       job_type="benchmark", tags=["zoo-bench", suite_name])


def _log_record(logger: Any, record: dict[str, Any]) -> None:
    if not logger:
        return
    flat = {f"bench/{m}": v["value"] for m, v in record["metrics"].items()}
    if record["throughput"].get("images_per_s") is not None:
        flat["bench/images_per_s"] = record["throughput"]["images_per_s"]
    logger.log_metrics(flat, step=0)
    if hasattr(logger, "log_table"):
        columns = ["model", "suite", "task", "metric", "value", "protocol", "comparable", "n"]
        rows = [[record["model"], record["suite"], record["task"], m, v["value"], v["protocol"], v["comparable"], v["n"]]
                for m, v in record["metrics"].items()]
        logger.log_table(key="bench/results", columns=columns, data=rows)
    logger.save()
    if hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
        logger.experiment.finish()


def _published(suites_seen: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from zoo.benchmark.suites import list_suites, load_suite

    out = {name: s.published for name, s in suites_seen.items()}
    for name in list_suites():
        if name not in out:
            try:
                out[name] = load_suite(name).published
            except ZooError:
                continue
    return out


def _regenerate(out_dir: Path, suites_seen: dict[str, Any]) -> Path:
    from zoo.benchmark.results import read_results, write_leaderboard

    return write_leaderboard(out_dir / "LEADERBOARD.md", read_results(out_dir / "results"), _published(suites_seen))


def run(args: argparse.Namespace) -> int:
    from zoo.benchmark.data import BenchDataset
    from zoo.benchmark.results import append_result
    from zoo.benchmark.runner import build_metrics, run_track
    from zoo.benchmark.suites import list_suites, load_suite, validate_metrics

    out_dir = Path(args.out)
    if args.suite == "speed" or (args.table and args.suite is None):
        return run_speed_command(args)
    misplaced = [f"--{f.replace('_', '-')}" for f in _SPEED_FLAGS if getattr(args, f) is not None] + (
        ["--table"] if args.table else []) + (["--run"] if args.run is not None else [])
    if misplaced:
        raise ZooError(f"{', '.join(misplaced)} belong(s) to the speed suite: add --suite speed")
    if args.leaderboard and args.models is None and args.suite is None:
        path = _regenerate(out_dir, {})
        print(f"leaderboard: {path}")
        return 0

    suite = load_suite(args.suite or "mini")
    if args.root is not None and len(suite.tracks) != 1:
        raise ZooError(f"--root sets the data folder of a one-track suite; {suite.name} has {len(suite.tracks)} tracks")
    metrics_override = _patterns([args.metrics]) if args.metrics else None
    patterns = _patterns(args.models) or list(suite.models)
    specs, skipped = resolve_models(patterns, [t.task for t in suite.tracks])
    if args.list:
        print(f"suites: {', '.join(list_suites())}")
        print(f"suite {suite.name}: {len(suite.tracks)} track(s): " + ", ".join(f"{t.task} [{', '.join(t.metrics)}]" for t in suite.tracks))
        for s in specs:
            print(f"  would score {s}")
        for name, why in skipped:
            print(f"  skip {name}: {why}")
        return 0
    if args.push and args.repo and len(specs) > 1:
        raise ZooError(f"--repo names one Hub repo, but {len(specs)} models are selected ({', '.join(specs)}): pick one with --models")
    if args.push and not args.repo:
        from zoo.push import repo_for

        for spec in specs:  # before any scoring: a run must not end in a missing repo after minutes of work
            repo_for(spec)
    backbones = "random" if args.random_backbones else suite.backbones
    weights = {"inception": args.inception_weights, "lpips": args.lpips_weights}
    devices: Any = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer_kwargs = {"accelerator": args.accelerator, "devices": devices, "strategy": args.strategy,
                      "num_nodes": args.num_nodes,
                      "enable_progress_bar": sys.stderr.isatty()}

    records: list[dict[str, Any]] = []
    is_zero = True
    for name, why in skipped:
        _say(f"skip {name}: {why}")
    if not specs:
        _say(f"no model to score on suite {suite.name} (patterns: {', '.join(patterns)})")
    for spec in specs:
        model, source = _load_model(spec)
        track = suite.track_for(model.task)
        if track is None:
            raise ZooError(f"{spec} is a {model.task} model; suite {suite.name} has no {model.task} track")
        names = list(track.metrics)
        if metrics_override:
            validate_metrics(metrics_override, track.task, track.layout, f"--metrics for suite {suite.name}")
            names = metrics_override
        dataset = BenchDataset(track, root=args.root, limit=args.limit)
        metric_objs = build_metrics(track, names, backbones=backbones, weights=weights)
        logger = _logger(args, source["name"], suite.name)
        module, trainer = run_track(
            model, track, metric_objs, dataset, trainer_kwargs={**trainer_kwargs, "logger": logger}, seed=args.seed,
            batch_size=args.batch_size, num_workers=args.num_workers, direction=args.direction,
        )
        is_zero = trainer.is_global_zero
        record = _record(source["name"], source, suite, track, module, trainer, dataset, args)
        records.append(record)
        if not is_zero:
            continue
        path = append_result(out_dir / "results", suite.name, record)
        _log_record(logger, record)
        tp = record["throughput"]
        print(f"{record['model']} on {suite.name}/{track.task} (n={record['n']}, {record['world_size']} process(es), "
              f"{tp['images_per_s']} images/s, peak {tp['peak_memory_mb']} MB {tp['peak_memory_kind']}):")
        for m, result in record["metrics"].items():
            print(_metric_line(m, result))
        print(f"  -> {path}")
        if args.update_registry:
            _update_registry(args, spec, source, model, record)
        if args.push:
            _push(args, spec, source, model, record)
    if is_zero:
        path = _regenerate(out_dir, {suite.name: suite})
        print(f"leaderboard: {path}")
    return 0


def _update_registry(args: argparse.Namespace, spec: str, source: dict[str, Any], model: Any, record: dict[str, Any]) -> None:
    from zoo import registry
    from zoo.benchmark.results import results_summary, update_registry_results

    folder = Path(spec).expanduser()
    if folder.is_dir():
        # A save_pretrained folder: its card (README.md) gets the results; the weights are rewritten unchanged.
        card_metrics = dict(model.card.get("metrics") or {})
        card_metrics[record["suite"]] = results_summary(record)
        model.card["metrics"] = card_metrics
        model.save_pretrained(folder)
        print(f"  card updated: {folder / 'README.md'}")
        return
    path = Path(args.registry) if args.registry else registry.registry_path()
    if update_registry_results(path, source["name"], record):
        active = registry.registry_path()
        if active.resolve() == path.resolve():  # re-read the file this process uses, keeping its path
            registry.reload_registry(active)
        print(f"  registry updated: {path} [{source['name']}.results.{record['suite']}]")
    else:
        print(f"  {source['name']} has no entry in {path}: registry not updated")


def _push(args: argparse.Namespace, spec: str, source: dict[str, Any], model: Any, record: dict[str, Any]) -> None:
    from zoo.benchmark.results import results_summary
    from zoo.push import push_model, repo_for

    repo = args.repo or repo_for(source["name"])
    metrics = dict(model.card.get("metrics") or {})
    metrics[record["suite"]] = results_summary(record)
    url = push_model(model, repo, name=source["name"], metrics=metrics)
    print(f"  pushed to {repo}: {url}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Lightning's banner lines (GPU available, tips) would bury the numbers; warnings still show.
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from zoo.allocator import tune_cpu_allocator

    tune_cpu_allocator()  # the scoring runs' own activations; the speed suite's processes follow --malloc
    try:
        return run(args)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

