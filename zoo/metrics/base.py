"""What every zoo metric shares: a pinned protocol, results that carry it, and per-item states.

Every number a zoo metric returns is a `MetricResult`: a `float` that also says which protocol
produced it, over how many items, and whether it can be compared with published numbers (and if not,
why). Per-item states are stored with the dataset index of each item, so that

* an item seen twice (DistributedSampler pads the last batch by repeating indices) counts once, and
* the reduction runs over the items sorted by index in float64, so the number does not depend on the
  batch size, the number of processes or the order in which they finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from zoo.errors import ZooError

__all__ = ["Protocol", "MetricResult", "ZooMetric", "PerItemMetric", "as_uint8", "check_images", "unique_by_index"]


@dataclass(frozen=True)
class Protocol:
    """A pinned way of computing a metric. `id` is what results record (e.g. ``"psnr/sr-y/crop4/v1"``);
    `description` says it in words for the leaderboard; `params` are the settings that define it."""

    id: str
    description: str
    params: dict[str, Any] = field(default_factory=dict)


class MetricResult(float):
    """A metric value that carries its provenance. It is a float (arithmetic, formatting, `json.dumps`
    and `LightningModule.log` treat it as one) with the attributes `metric`, `protocol`, `comparable`,
    `n` and `notes` (why the value is not comparable with published numbers, when it is not)."""

    metric: str
    protocol: str
    comparable: bool
    n: int
    notes: tuple[str, ...]
    extra: dict[str, float]

    def __new__(
        cls,
        value: float,
        *,
        metric: str,
        protocol: str,
        comparable: bool,
        n: int,
        notes: tuple[str, ...] | list[str] = (),
        extra: dict[str, float] | None = None,
    ) -> "MetricResult":
        self = super().__new__(cls, float(value))
        self.metric = metric
        self.protocol = protocol
        self.comparable = bool(comparable)
        self.n = int(n)
        self.notes = tuple(notes)
        self.extra = dict(extra or {})  # secondary numbers, e.g. KID's standard deviation over subsets
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": float(self),
            "protocol": self.protocol,
            "comparable": self.comparable,
            "n": self.n,
            "notes": list(self.notes),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    def __repr__(self) -> str:
        tag = "comparable" if self.comparable else "not comparable: " + "; ".join(self.notes or ("see protocol",))
        return f"{self.metric} {float(self):.6g} [{self.protocol}, n={self.n}, {tag}]"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # copy/pickle keep the provenance
        return (_rebuild_result, (float(self), self.metric, self.protocol, self.comparable, self.n, self.notes, self.extra))


def _rebuild_result(
    value: float, metric: str, protocol: str, comparable: bool, n: int, notes: tuple[str, ...], extra: dict[str, float]
) -> MetricResult:
    return MetricResult(value, metric=metric, protocol=protocol, comparable=comparable, n=n, notes=notes, extra=extra)


class ZooMetric(Metric):
    """Base of zoo's torchmetrics metrics: `protocol` is fixed at construction and recorded in every
    result. Subclasses set `name`, call `_set_protocol(...)` in `__init__`, add notes with
    `_not_comparable(reason)` when a setting departs from the published protocol (random backbone,
    custom feature network, ...), and return `self._result(value, n)` from `compute()`."""

    name: ClassVar[str] = ""
    full_state_update: ClassVar[bool] = False
    is_differentiable: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._protocol: Protocol | None = None
        self._notes: list[str] = []

    #: True when the metric's backbone has random weights (asked for with weights=None): a different
    #: protocol, so its id says so (".../random-weights/v1") and such numbers never share a table
    #: with those of the published backbone.
    random_backbone: bool = False

    @property
    def protocol(self) -> Protocol:
        assert self._protocol is not None, f"{type(self).__name__} did not set its protocol"
        if not self.random_backbone:
            return self._protocol
        head, _, version = self._protocol.id.rpartition("/")
        return Protocol(
            f"{head}/random-weights/{version}",
            self._protocol.description + "; with a RANDOM backbone (weights=None), not the published weights",
            {**self._protocol.params, "weights": "random (seed 0)"},
        )

    @property
    def comparable(self) -> bool:
        return not self._notes

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(self._notes)

    def _set_protocol(self, protocol: Protocol) -> None:
        self._protocol = protocol

    def _not_comparable(self, reason: str) -> None:
        if reason not in self._notes:
            self._notes.append(reason)

    def _result(self, value: float | Tensor, n: int, extra: dict[str, float] | None = None) -> MetricResult:
        if isinstance(value, Tensor):
            value = value.item()
        return MetricResult(
            value, metric=self.name, protocol=self.protocol.id, comparable=self.comparable, n=n, notes=self._notes, extra=extra
        )


class PerItemMetric(ZooMetric):
    """A metric that is the mean of one score per item (PSNR, SSIM, LPIPS, LPIPS diversity).

    Subclasses compute the scores of a batch and call `self._add(scores, index)`. `compute()` keeps one
    score per index (the first seen), sorts by index and averages in float64. Items added without an
    index are all kept and sorted by value instead, which is equally order-independent."""

    higher_is_better: ClassVar[bool | None] = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("indices", default=[], dist_reduce_fx="cat")
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def _add(self, scores: Tensor, index: Tensor | None = None) -> None:
        scores = scores.detach().to(torch.float64).reshape(-1)
        if index is None:
            index = torch.full_like(scores, -1, dtype=torch.long)
        index = torch.as_tensor(index, device=scores.device).to(torch.long).reshape(-1)
        if index.numel() != scores.numel():
            raise ZooError(f"{self.name}: {index.numel()} indices for {scores.numel()} scores; pass one index per item")
        self.indices.append(index)
        self.scores.append(scores)

    def compute(self) -> MetricResult:
        # After a DDP sync the list states arrive concatenated into one tensor.
        if (len(self.scores) if isinstance(self.scores, list) else self.scores.numel()) == 0:
            raise ZooError(f"{self.name}: no items were added; call update() with at least one image")
        indices = dim_zero_cat(self.indices)
        scores = dim_zero_cat(self.scores).to(torch.float64)
        kept = unique_by_index(indices, scores)
        return self._result(kept.sum() / kept.numel(), kept.numel())


def unique_by_index(indices: Tensor, values: Tensor) -> Tensor:
    """`values` (N, ...) with one row per non-negative index (the first occurrence), rows with index -1
    all kept; indexed rows ordered by index, the others after them ordered by their first element.
    Deterministic whatever the order of the input rows."""
    indices = indices.reshape(-1).cpu()
    values = values.cpu()
    indexed = indices >= 0
    rows = []
    if indexed.any():
        idx = indices[indexed]
        val = values[indexed]
        # Stable sort by index, then keep the first row of each run of equal indices.
        order = torch.sort(idx, stable=True).indices
        idx, val = idx[order], val[order]
        first = torch.ones_like(idx, dtype=torch.bool)
        first[1:] = idx[1:] != idx[:-1]
        rows.append(val[first])
    if (~indexed).any():
        val = values[~indexed]
        key = val.reshape(val.shape[0], -1)[:, 0]
        rows.append(val[torch.sort(key, stable=True).indices])
    return torch.cat(rows)


def check_images(name: str, x: Tensor, what: str = "images") -> Tensor:
    """Validate a BCHW batch of RGB images, float in [0, 1] or uint8; returns it unchanged."""
    if not isinstance(x, Tensor):
        raise ZooError(f"{name}: {what} must be a torch.Tensor (BCHW), got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ZooError(f"{name}: {what} must be a BCHW batch of RGB images (B, 3, H, W), got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x
    if not x.is_floating_point():
        raise ZooError(f"{name}: {what} must be float in [0, 1] or uint8 in [0, 255], got dtype {x.dtype}")
    if x.numel() and (torch.isnan(x).any() or x.min() < 0 or x.max() > 1):
        lo, hi = float(x.nan_to_num(0).min()), float(x.nan_to_num(0).max())
        raise ZooError(
            f"{name}: float {what} must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}"
            f"{', with NaN' if torch.isnan(x).any() else ''}); map a [-1, 1] network output with (x + 1) / 2"
        )
    return x


def as_uint8(x: Tensor) -> Tensor:
    """[0, 1] floats to uint8 by rounding halves up, exactly as torchvision's `save_image` writes a PNG
    (`x * 255 + 0.5`, truncated); uint8 passes through. Truncation (`(x * 255).byte()`, torchmetrics'
    `normalize=True`) would bias every pixel down by half a level."""
    if x.dtype == torch.uint8:
        return x
    return (x.to(torch.float64) * 255 + 0.5).floor().clamp(0, 255).to(torch.uint8)
