"""Score one model on one suite track through Lightning's `trainer.test`, under any strategy.

`BenchModule` wraps the model and the track's metrics; each rank scores its shard of the items
(`ShardSampler`: no padding), the metrics gather their per-item states and every rank computes the
same numbers. Multimodal models draw their style codes from a seed derived from (run seed, item
index), so a sample does not depend on which rank drew it or on the number of ranks.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import sys
import time
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from zoo.benchmark.data import BenchDataset, ShardSampler, collate_items
from zoo.benchmark.suites import Track
from zoo.errors import WeightsNotFoundError, ZooError
from zoo.distributed import EndAllRanksOnError, ddp_with_timeout
from zoo.metrics.base import MetricResult, ZooMetric

__all__ = ["BenchModule", "BenchData", "build_metric", "build_metrics", "item_seed", "run_track", "hardware"]

log = logging.getLogger(__name__)

#: what each task calls on the model (inputs are BCHW float tensors in [0, 1])
VERBS = {
    "translation": "translate",
    "translation-multimodal": "sample",
    "super-resolution": "upscale",
    "colorization": "colorize",
    "style": "stylize",
}
_BACKBONE_METRICS = ("fid", "kid", "lpips", "lpips-diversity")


def item_seed(seed: int, index: int) -> int:
    """The seed of item `index` in a run seeded `seed`: independent of ranks and batch sizes."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def build_metric(
    name: str,
    track: Track,
    *,
    backbones: str = "local",
    weights: dict[str, Any] | None = None,
) -> ZooMetric:
    """One metric of `track` under the track's protocol. `backbones`: "local" (weights must be on
    disk), "local-or-random" (random weights when absent, results marked not comparable) or
    "random" (asked for explicitly). `weights` maps "inception"/"lpips" to files."""
    from zoo.metrics import FID, KID, LPIPS, PSNR, SSIM, LPIPSDiversity

    weights = weights or {}
    protocol = track.protocols.get(name)
    options = dict(track.options.get(name, {}) or {})
    if name in ("psnr", "ssim"):
        cls = PSNR if name == "psnr" else SSIM
        default = "sr-y" if track.task == "super-resolution" else "rgb"
        scale = track.data.get("scale")
        return cls(protocol=protocol or default, scale=scale, **options)

    def with_weights(build: Any, key: str) -> ZooMetric:
        if backbones == "random":
            return build(None)
        given = weights.get(key)
        try:
            return build(given if given is not None else "default")
        except WeightsNotFoundError:
            if backbones != "local-or-random" or given is not None:
                raise
            log.warning("%s: backbone weights not found; the suite allows random weights, results marked not comparable", name)
            return build(None)

    if name in ("fid", "kid"):
        if protocol not in (None, "tf-inception"):
            raise ZooError(f"{name} has one protocol, 'tf-inception' (torch-fidelity's), not {protocol!r}")
        cls = FID if name == "fid" else KID
        return with_weights(lambda w: cls(weights=w, **options), "inception")
    if name == "lpips":
        return with_weights(lambda w: LPIPS(net=protocol or "alex", weights=w, **options), "lpips")
    if name == "lpips-diversity":
        return with_weights(lambda w: LPIPSDiversity(net=protocol or "alex", weights=w, **options), "lpips")
    raise ZooError(f"unknown metric {name!r}")


def build_metrics(track: Track, metrics: list[str] | tuple[str, ...] | None = None, **kwargs: Any) -> dict[str, ZooMetric]:
    names = list(metrics or track.metrics)
    return {name: build_metric(name, track, **kwargs) for name in names}


class BenchData(L.LightningDataModule):
    """Hands each rank its shard of the track's items, read at their stored size."""

    def __init__(self, dataset: BenchDataset, batch_size: int = 1, num_workers: int = 0) -> None:
        super().__init__()
        self.dataset, self.batch_size, self.num_workers = dataset, batch_size, num_workers

    def test_dataloader(self) -> DataLoader:
        world = self.trainer.world_size if self.trainer else 1
        rank = self.trainer.global_rank if self.trainer else 0
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=ShardSampler(len(self.dataset), world, rank),
            num_workers=self.num_workers,
            collate_fn=collate_items,
            persistent_workers=False,
        )


class BenchModule(L.LightningModule):
    """`trainer.test(BenchModule(model, track, metrics))` scores the model; `results` then holds one
    `MetricResult` per metric and `throughput` the images/s and peak memory of the run."""

    def __init__(
        self,
        model: nn.Module,
        track: Track,
        metrics: dict[str, ZooMetric],
        *,
        seed: int = 0,
        direction: str | None = None,
        grid_items: int = 4,
    ) -> None:
        super().__init__()
        verb = VERBS[track.task]
        if not callable(getattr(model, verb, None)):
            raise ZooError(
                f"{type(model).__name__} ({getattr(model, 'method', '?')}, task {getattr(model, 'task', '?')!r}) has no "
                f"{verb}() method, which a {track.task} benchmark calls: score it on a suite track of its own task"
            )
        self.model = model
        self.track = track
        self.metric_names = list(metrics)
        self.scores = nn.ModuleDict({n.replace("-", "_"): m for n, m in metrics.items()})
        self.seed, self.direction, self.grid_items = seed, direction, grid_items
        diversity = metrics.get("lpips-diversity")
        self.n_samples = (diversity.n_pairs + 1) if diversity is not None else 1
        self.results: dict[str, MetricResult] = {}
        self.throughput: dict[str, Any] = {}
        self._infer_s = 0.0
        self._n_out = 0
        self._grid: list[list[torch.Tensor]] = []

    def metric(self, name: str) -> ZooMetric:
        return self.scores[name.replace("-", "_")]

    # ---------------------------------------------------------------------------- inference
    def _infer(self, items: list[dict[str, Any]]) -> torch.Tensor:
        """Outputs for a group of same-size items: (B, 3, H, W), or (B, K, 3, H, W) for multimodal."""
        x = torch.stack([it["input"] for it in items]).float().div_(255)
        task = self.track.task
        model = self.model
        if task == "translation":
            return model.translate(x, self.direction)
        if task == "translation-multimodal":
            outs = []
            for i, it in enumerate(items):
                y = model.sample(x[i : i + 1], n=self.n_samples, seed=item_seed(self.seed, it["index"]))
                outs.append(y.reshape(self.n_samples, *y.shape[-3:]))
            return torch.stack(outs)
        if task == "super-resolution":
            return model.upscale(x)
        if task == "colorization":
            return model.colorize(x)
        if task == "style":
            style = torch.stack([it["style"] for it in items]).float().div_(255)
            return model.stylize(x, style=style)
        raise ZooError(f"no benchmark verb for task {task!r}")  # pragma: no cover

    def test_step(self, batch: list[dict[str, Any]], batch_idx: int) -> None:
        inputs = [it for it in batch if it["role"] in ("pair", "input")]
        for group in _same_size_groups(inputs):
            start = time.perf_counter()
            out = self._infer(group)
            if out.is_cuda:
                torch.cuda.synchronize(out.device)
            self._infer_s += time.perf_counter() - start
            self._n_out += out.shape[0] * (out.shape[1] if out.ndim == 5 else 1)
            self._update(group, out)
        reals = [it for it in batch if it["role"] in ("pair", "real")]
        for group in _same_size_groups(reals, key="target"):
            target = torch.stack([it["target"] for it in group])
            index = torch.tensor([it["index"] for it in group], device=target.device)
            for name in ("fid", "kid"):
                if name in self.metric_names:
                    self.metric(name).update(target, real=True, index=index)

    def _update(self, group: list[dict[str, Any]], out: torch.Tensor) -> None:
        index = torch.tensor([it["index"] for it in group], device=out.device)
        samples = out if out.ndim == 5 else None
        first = out[:, 0] if samples is not None else out
        reference = None
        if "target" in group[0]:
            reference = torch.stack([it["target"] for it in group])
        elif self.track.task == "style":  # content preservation: LPIPS to the content image
            reference = torch.stack([it["input"] for it in group])
        if reference is not None and tuple(reference.shape[-2:]) != tuple(first.shape[-2:]):
            raise ZooError(
                f"the model returned {first.shape[-1]}x{first.shape[-2]} images for {group[0].get('name')}, "
                f"whose reference is {reference.shape[-1]}x{reference.shape[-2]}: check the model's task and scale"
            )
        first = first.clamp(0, 1)
        for name in self.metric_names:
            metric = self.metric(name)
            if name in ("psnr", "ssim", "lpips"):
                metric.update(first, reference, index=index)
            elif name in ("fid", "kid"):
                metric.update(first, real=False, index=index)
            elif name == "lpips-diversity":
                metric.update(samples.clamp(0, 1), index=index)
        if len(self._grid) < self.grid_items:
            for i in range(min(len(group), self.grid_items - len(self._grid))):
                row = [group[i]["input"].float() / 255, first[i].float()]
                if reference is not None:
                    row.append(reference[i].float() / 255)
                self._grid.append([r.detach().cpu() for r in row])

    def on_test_epoch_end(self) -> None:
        # compute() is a collective under DDP: every rank calls it, in the same order.
        self.results = {name: self.metric(name).compute() for name in self.metric_names}
        device = self.device
        if device.type == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
        else:
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak, kind = (rss / 2**20 if sys.platform == "darwin" else rss / 2**10), "cpu_max_rss"
        local = torch.tensor([self._infer_s, float(self._n_out), peak], dtype=torch.float64, device=device)
        gathered = self.all_gather(local).reshape(-1, 3).cpu()
        busiest = float(gathered[:, 0].max())
        n_out = int(gathered[:, 1].sum())
        self.throughput = {
            "images_per_s": round(n_out / busiest, 3) if busiest > 0 else None,
            "images": n_out,
            "inference_s": round(busiest, 3),
            "peak_memory_mb": round(float(gathered[:, 2].max()), 1),
            "peak_memory_kind": kind,
        }
        self._log_grid()

    def _log_grid(self) -> None:
        if not self._grid or not self.trainer.loggers:
            return
        from torch.nn.functional import interpolate

        from zoo.visual import image_grid, log_image_grid

        size = max(max(t.shape[-2:]) for row in self._grid for t in row)
        width = max(len(row) for row in self._grid)
        columns = []
        for c in range(width):
            col = []
            for row in self._grid:
                t = row[c] if c < len(row) else torch.ones_like(row[0])
                col.append(interpolate(t[None], size=(size, size), mode="nearest")[0])
            columns.append(torch.stack(col))
        log_image_grid(self, "bench/samples", image_grid(columns))


def _same_size_groups(items: list[dict[str, Any]], key: str = "input") -> list[list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for it in items:
        shape = tuple(it[key].shape) + (tuple(it["style"].shape) if "style" in it else ())
        groups.setdefault(shape, []).append(it)
    return list(groups.values())


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="ignore"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware(trainer: L.Trainer | None = None) -> dict[str, Any]:
    """What ran the benchmark: accelerator, device name, CPU, library versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(terse=True),
        "cpu": _cpu_name(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if trainer is not None and trainer.strategy.root_device.type == "cuda":
        info["accelerator"] = "cuda"
        info["device_name"] = torch.cuda.get_device_name(trainer.strategy.root_device)
    else:
        info["accelerator"] = "cpu"
        try:
            info["cpu_count"] = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # pragma: no cover - not Linux
            info["cpu_count"] = os.cpu_count()
    return info


def run_track(
    model: nn.Module,
    track: Track,
    metrics: dict[str, ZooMetric],
    dataset: BenchDataset,
    *,
    trainer_kwargs: dict[str, Any],
    seed: int = 0,
    batch_size: int = 1,
    num_workers: int = 0,
    direction: str | None = None,
) -> tuple[BenchModule, L.Trainer]:
    """Run `trainer.test` for one (model, track); returns the module (results, throughput) and trainer."""
    L.seed_everything(seed, verbose=False)
    # Reference numbers need full float32: no TF32 matmuls/convolutions, no autocast (METRICS.md §1).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    module = BenchModule(model, track, metrics, seed=seed, direction=direction)
    kwargs = {
        "precision": "32-true",
        "logger": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "use_distributed_sampler": False,
        "inference_mode": True,
        **trainer_kwargs,
    }
    # zoo.distributed: a DDP strategy with the collective timeout (a new object per Trainer: Lightning binds a
    # strategy object to the Trainer it serves), and the started ranks end with a failing launcher
    kwargs["strategy"] = ddp_with_timeout(kwargs.get("strategy", "auto"))
    kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), EndAllRanksOnError()]
    trainer = L.Trainer(**kwargs)
    trainer.test(module, datamodule=BenchData(dataset, batch_size, num_workers), verbose=False)
    return module, trainer


