"""Benchmark suites: YAML files that pin what a leaderboard number means.

A suite names, for each task it covers (a *track*), the dataset folder and its layout, the split, the
metrics and their protocols. A suite with one task writes the track's keys at the top level; a suite
with several (the built-in ``mini``) lists them under ``tracks:``::

    name: facades
    description: pix2pix facades, label -> photo, the 106 test pairs
    comparable: true            # the data and protocols are those of published numbers
    task: translation
    data: {root: datasets/facades, layout: aligned, split: test, direction: BtoA}
    metrics: [fid, kid, lpips, psnr, ssim]      # the first one orders the leaderboard
    protocols: {psnr: rgb, ssim: rgb}
    published:                  # the paper's numbers, shown beside ours
      pix2pix-facades: {fid: 0.0, source: "paper, Table N"}

Data layouts: ``aligned`` (pix2pix ``val/``/``test/`` of A|B images), ``paired`` (``testA/ testB/``
matched by stem), ``unpaired`` (``testA/ testB/``: G(testA) against the real testB), ``sr`` (``HR/``,
with ``LR/`` given or made by MATLAB-compatible bicubic), ``style`` (``content/`` + ``style/``),
``colorization`` (colour photos; the input is their luminance). ``builtin: <name>`` instead of ``root``
uses data generated offline from package-shipped photographs.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from zoo.errors import ZooError

__all__ = ["Suite", "Track", "TASKS", "METRICS", "load_suite", "list_suites", "suite_dirs"]

TASKS = ("translation", "translation-multimodal", "style", "super-resolution", "colorization")
#: metric name -> the tasks (or data layouts) it makes sense for
METRICS = ("fid", "kid", "lpips", "psnr", "ssim", "lpips-diversity")
#: metrics that need a reference image for each output (a paired target)
PAIRED_METRICS = ("lpips", "psnr", "ssim")
LAYOUTS = {
    "translation": ("aligned", "paired", "unpaired"),
    "translation-multimodal": ("aligned", "paired", "unpaired"),
    "super-resolution": ("sr",),
    "colorization": ("colorization",),
    "style": ("style",),
}
_TRACK_KEYS = {"task", "data", "metrics", "protocols", "limit", "options"}
_SUITE_KEYS = {"name", "description", "comparable", "backbones", "published", "tracks", "models"} | _TRACK_KEYS
_DATA_KEYS = {"root", "builtin", "layout", "split", "direction", "scale", "max_items", "styles"}


@dataclass(frozen=True)
class Track:
    """One task of a suite: where the images are, which metrics, which protocols."""

    task: str
    data: dict[str, Any]
    metrics: tuple[str, ...]
    protocols: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def layout(self) -> str:
        return self.data["layout"]

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    tracks: tuple[Track, ...]
    path: Path | None = None
    #: whether numbers on this suite can be compared with published ones (same data, same protocol)
    comparable: bool = False
    #: "local" (backbone weights must be on disk) or "local-or-random" (random, marked not comparable)
    backbones: str = "local"
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the default --models pattern(s)
    models: tuple[str, ...] = ("*",)

    def track_for(self, task: str) -> Track | None:
        for track in self.tracks:
            if track.task == task:
                return track
        return None


def suite_dirs() -> list[Path]:
    """Where `--suite NAME` looks: ./benchmarks/suites, then the source checkout's benchmarks/suites."""
    dirs = [Path.cwd() / "benchmarks" / "suites", Path(__file__).resolve().parents[2] / "benchmarks" / "suites"]
    extra = os.environ.get("ZOO_SUITES")
    if extra:
        dirs.insert(0, Path(extra))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def list_suites() -> list[str]:
    names: set[str] = set()
    for d in suite_dirs():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.yaml"))
    return sorted(names)


def load_suite(name_or_path: str | os.PathLike[str]) -> Suite:
    """A suite by name (`mini`) or path (`my/suite.yaml`), validated; mistakes raise `ZooError`."""
    text = str(name_or_path)
    path = Path(text)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        found = [d / f"{text}.yaml" for d in suite_dirs() if (d / f"{text}.yaml").is_file()]
        if not found:
            known = list_suites()
            close = fnmatch.filter(known, f"*{text}*") or known
            raise ZooError(
                f"unknown suite {text!r}: looked for {text}.yaml in {', '.join(str(d) for d in suite_dirs())}. "
                f"Known suites: {', '.join(close) or 'none'}; or pass the path of a suite .yaml file"
            )
        path = found[0]
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ZooError(f"cannot read suite {path}: {error}") from error
    return parse_suite(raw, path=path)


def parse_suite(raw: Any, *, path: Path | None = None) -> Suite:
    where = str(path) if path else "suite"
    if not isinstance(raw, Mapping):
        raise ZooError(f"{where}: a suite is a YAML mapping with name, task/tracks, data and metrics")
    unknown = set(raw) - _SUITE_KEYS
    if unknown:
        raise ZooError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_SUITE_KEYS)}")
    name = raw.get("name") or (path.stem if path else None)
    if not name or not isinstance(name, str):
        raise ZooError(f"{where}: give the suite a `name`")
    if "tracks" in raw:
        if any(k in raw for k in _TRACK_KEYS):
            raise ZooError(f"{where}: put task/data/metrics either at the top level or under `tracks`, not both")
        items = raw["tracks"]
        if not isinstance(items, list) or not items:
            raise ZooError(f"{where}: `tracks` must be a non-empty list of {{task, data, metrics}} mappings")
    else:
        items = [{k: raw[k] for k in _TRACK_KEYS if k in raw}]
    tracks = tuple(_parse_track(item, f"{where} track {i + 1}") for i, item in enumerate(items))
    tasks = [t.task for t in tracks]
    if len(set(tasks)) != len(tasks):
        raise ZooError(f"{where}: one track per task, got {tasks}")
    backbones = raw.get("backbones", "local")
    if backbones not in ("local", "local-or-random"):
        raise ZooError(f"{where}: backbones must be 'local' or 'local-or-random', got {backbones!r}")
    published = raw.get("published") or {}
    if not isinstance(published, Mapping) or not all(isinstance(v, Mapping) for v in published.values()):
        raise ZooError(f"{where}: `published` maps model names to {{metric: value, source: text}}")
    models = raw.get("models", ["*"])
    models = (models,) if isinstance(models, str) else tuple(models)
    return Suite(
        name=name,
        description=str(raw.get("description", "")).strip(),
        tracks=tracks,
        path=path,
        comparable=bool(raw.get("comparable", False)),
        backbones=backbones,
        published={str(k): dict(v) for k, v in published.items()},
        models=models,
    )


def _parse_track(raw: Any, where: str) -> Track:
    if not isinstance(raw, Mapping):
        raise ZooError(f"{where}: a track is a mapping with task, data and metrics")
    unknown = set(raw) - _TRACK_KEYS
    if unknown:
        raise ZooError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TRACK_KEYS)}")
    task = raw.get("task")
    if task not in TASKS:
        raise ZooError(f"{where}: task must be one of {list(TASKS)}, got {task!r}")
    data = dict(raw.get("data") or {})
    bad = set(data) - _DATA_KEYS
    if bad:
        raise ZooError(f"{where}: unknown data key(s) {sorted(bad)}; allowed: {sorted(_DATA_KEYS)}")
    if ("root" in data) == ("builtin" in data):
        raise ZooError(f"{where}: data needs exactly one of `root` (a folder) or `builtin` (a built-in set)")
    data.setdefault("layout", LAYOUTS[task][0])
    if data["layout"] not in LAYOUTS[task]:
        raise ZooError(f"{where}: layout {data['layout']!r} does not fit task {task!r}; use one of {list(LAYOUTS[task])}")
    data.setdefault("split", "test")
    if task == "super-resolution":
        if not isinstance(data.get("scale"), int) or data["scale"] < 1:
            raise ZooError(f"{where}: a super-resolution track needs data.scale, an integer >= 1 (e.g. 4)")
    metrics = raw.get("metrics")
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if not metrics or not isinstance(metrics, list):
        raise ZooError(f"{where}: list the metrics, e.g. metrics: [fid, lpips, psnr, ssim]")
    validate_metrics(metrics, task, data["layout"], where)
    protocols = {str(k): str(v) for k, v in (raw.get("protocols") or {}).items()}
    for k in protocols:
        if k not in metrics:
            raise ZooError(f"{where}: protocol given for {k!r}, which is not among the metrics {metrics}")
    return Track(task=task, data=data, metrics=tuple(metrics), protocols=protocols, options=dict(raw.get("options") or {}))


def validate_metrics(metrics: list[str] | tuple[str, ...], task: str, layout: str, where: str) -> None:
    for m in metrics:
        if m not in METRICS:
            raise ZooError(f"{where}: unknown metric {m!r}; zoo.bench computes {', '.join(METRICS)}")
        if m in PAIRED_METRICS and (layout == "unpaired" or task == "translation-multimodal" and layout != "aligned"):
            raise ZooError(
                f"{where}: {m} compares each output with its own target, which layout {layout!r} does not have; "
                f"use fid/kid for unpaired data"
            )
        if task == "style" and m in ("psnr", "ssim"):
            raise ZooError(f"{where}: a stylized image has no pixel-exact target; style tracks take fid, kid and lpips (to the content)")
        if m == "lpips-diversity" and task != "translation-multimodal":
            raise ZooError(f"{where}: lpips-diversity needs a multimodal task (translation-multimodal), not {task!r}")
