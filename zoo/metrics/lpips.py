"""LPIPS (v0.1, AlexNet or VGG16) and the MUNIT/BicycleGAN LPIPS-diversity protocol.

The network is torchmetrics' LPIPS (``torchmetrics.functional.image.lpips``): its backbone containers
(``slice1..5``) and the v0.1 linear layers that ship inside torchmetrics (``lpips_models/<net>.pth``,
read here with ``weights_only=True`` and a strict key check). The ImageNet backbone is read from the
torchvision file (``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``, found as described in
`zoo.metrics.backbones`); its ``features.<i>.*`` tensors are mapped onto the slice that holds module
``i``. The distance itself follows the reference ``lpips`` package exactly: features are unit-normalised
as ``f / (‖f‖ + 1e-10)`` (torchmetrics uses ``f / √(‖f‖² + 1e-8)``, which differs where a feature
vector is small), then the squared differences go through the linear layers, are averaged over space
and summed over the five layers.

Images (float in [0, 1] or uint8) are first quantized to uint8 by rounding (as saved PNGs), then mapped
to [-1, 1] by ``u / 255 * 2 - 1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from zoo.errors import CheckpointError, ZooError
from zoo.metrics.backbones import (
    BACKBONES,
    HiddenNetMixin,
    WeightsArg,
    backbone_notes,
    find_backbone_weights,
    load_backbone_state_dict,
    module_device,
    seeded_init,
)
from zoo.metrics.base import MetricResult, PerItemMetric, Protocol, as_uint8, check_images

__all__ = ["LPIPS", "LPIPSDiversity", "LPIPSNetwork", "LPIPS_NETS"]

LPIPS_NETS = {"alex": "alexnet", "vgg": "vgg16"}  # LPIPS net name -> backbone name in BACKBONES


def _lin_weights_path(net: str) -> Path:
    import torchmetrics.functional.image.lpips as tm_lpips

    return Path(tm_lpips.__file__).resolve().parent / "lpips_models" / f"{net}.pth"


def _load_lins(model: nn.Module, net: str) -> None:
    """The v0.1 linear layers bundled with torchmetrics, strictly (torchmetrics itself loads them with
    ``strict=False``, which would silently keep random layers if the keys ever changed)."""
    path = _lin_weights_path(net)
    state = load_backbone_state_dict(path)
    # `lin0..4` are also registered as `lins.0..4` (same modules): the file names the former.
    expected = {k for k in model.state_dict() if k.startswith("lin") and not k.startswith("lins.")}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"LPIPS linear layers {str(path)!r} do not match torchmetrics' network "
            f"(missing {missing}, unexpected {unexpected}); is torchmetrics within the supported range?"
        )
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"LPIPS linear layers {str(path)!r} do not fit the network: {e}") from e


def _load_torchvision_features(trunk: nn.Module, state: dict[str, Tensor], path: Path, backbone: str) -> None:
    """Load torchvision's ``features.<i>.<param>`` tensors into the LPIPS trunk, whose slices hold the
    modules of ``features`` under their original index (``slice2.3`` is ``features[3]``). Every trunk
    tensor must be provided, and every ``features.*`` key must land somewhere; other keys
    (``classifier.*``) are ignored."""
    where: dict[int, str] = {}
    for slice_name, block in trunk.named_children():
        for child_name, _ in block.named_children():
            where[int(child_name)] = f"{slice_name}.{child_name}"
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    for key, value in state.items():
        if not key.startswith("features."):
            continue
        index, _, rest = key[len("features.") :].partition(".")
        if not index.isdigit() or int(index) not in where or not rest:
            unexpected.append(key)
            continue
        mapped[f"{where[int(index)]}.{rest}"] = value
        origin[f"{where[int(index)]}.{rest}"] = key
    back = {v: k for k, v in where.items()}
    missing = []
    for name in trunk.state_dict():
        if name not in mapped:
            prefix, _, rest = name.rpartition(".")
            missing.append(f"features.{back.get(prefix, prefix)}.{rest}")
    if missing or unexpected:
        hint = "" if mapped else f" (no torchvision 'features.<i>.*' keys; the file has {sorted(state)[:5]}...)"
        raise CheckpointError(
            f"{backbone} weights {str(path)!r} do not match LPIPS' {backbone} trunk{hint}: "
            f"missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected keys {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    try:
        trunk.load_state_dict(mapped, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{backbone} weights {str(path)!r} do not fit LPIPS' {backbone} trunk: {e}") from e


class LPIPSNetwork(nn.Module):
    """The LPIPS v0.1 distance network (frozen, always in eval mode). ``forward(a, b)`` takes two BCHW
    batches already in [-1, 1] and returns the (B,) distances. `notes` says why its values would not be
    comparable with published numbers (empty with the published backbone file)."""

    def __init__(self, net: str = "alex", weights: WeightsArg = "default") -> None:
        super().__init__()
        if net not in LPIPS_NETS:
            raise ZooError(f"LPIPS: net must be one of {sorted(LPIPS_NETS)}, got {net!r}")
        from torchmetrics.functional.image.lpips import _NoTrainLpips

        backbone = LPIPS_NETS[net]
        path = find_backbone_weights(backbone, weights)
        state = load_backbone_state_dict(path) if path is not None else None
        # pnet_rand=True: torchvision builds the trunk with random weights (no download); seeded, so a
        # random backbone (weights=None) is the same in every run and on every DDP rank.
        self.lpips = seeded_init(lambda: _NoTrainLpips(pretrained=False, net=net, pnet_rand=True))
        _load_lins(self.lpips, net)
        if state is not None:
            _load_torchvision_features(self.lpips.net, state, path, backbone)  # type: ignore[arg-type]
        self.lpips.requires_grad_(False)
        self.lpips.eval()
        self.net_name = net
        self.weights_path = path
        self.notes: tuple[str, ...] = tuple(backbone_notes(backbone, path))
        self.eval()

    def train(self, mode: bool = True) -> "LPIPSNetwork":
        return super().train(False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        model = self.lpips
        fa, fb = model.net(model.scaling_layer(a)), model.net(model.scaling_layer(b))
        total = None
        for lin, xa, xb in zip(model.lins, fa, fb):
            na = xa / (xa.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            nb = xb / (xb.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            term = lin((na - nb).square()).mean(dim=(2, 3))
            total = term if total is None else total + term
        assert total is not None
        return total.reshape(a.shape[0])

    def extra_repr(self) -> str:
        return f"net={self.net_name!r}, weights={str(self.weights_path) if self.weights_path else 'random'}"


def _to_unit_range(x: Tensor, device: torch.device) -> Tensor:
    """uint8-rounded images as float32 in [-1, 1]."""
    return as_uint8(x).to(device=device, dtype=torch.float32) / 255 * 2 - 1


class _LPIPSMetric(HiddenNetMixin, PerItemMetric):
    """Shared by LPIPS and LPIPSDiversity: the network (outside the module tree, see `HiddenNetMixin`)
    and the distance of two batches of images."""

    def __init__(self, net: str = "alex", weights: WeightsArg = "default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        network = LPIPSNetwork(net, weights)
        self._set_hidden_net(network)
        self.net_name = net
        self.random_backbone = network.weights_path is None
        for note in network.notes:
            self._not_comparable(note)

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        network = self.network
        device = module_device(network, a.device)
        with torch.no_grad():
            return network(_to_unit_range(a, device), _to_unit_range(b, device)).to(torch.float64)


class LPIPS(_LPIPSMetric):
    """Mean LPIPS v0.1 distance between generated and target images (lower is better).

    ``LPIPS(net="alex" | "vgg", weights="default")``; ``update(preds, target, index=None)`` with BCHW
    batches of the same shape, float in [0, 1] or uint8; one distance per pair, deduplicated by
    `index` (see `PerItemMetric`)."""

    name: ClassVar[str] = "lpips"
    higher_is_better: ClassVar[bool] = False

    def __init__(self, net: str = "alex", weights: WeightsArg = "default", **kwargs: Any) -> None:
        super().__init__(net, weights, **kwargs)
        self._set_protocol(
            Protocol(
                f"lpips/{net}-v0.1/v1",
                f"LPIPS v0.1 ({LPIPS_NETS[net]} trunk, ImageNet torchvision weights, lpips-package "
                "normalisation) between uint8-rounded images mapped to [-1, 1]; mean over images",
                {"net": net, "version": "0.1", "weights": _backbone_file(net), "quantize": "round to uint8"},
            )
        )

    def update(self, preds: Tensor, target: Tensor, index: Tensor | None = None) -> None:  # type: ignore[override]
        preds = check_images(self.name, preds, "preds")
        target = check_images(self.name, target, "target")
        if preds.shape != target.shape:
            raise ZooError(
                f"{self.name}: preds {tuple(preds.shape)} and target {tuple(target.shape)} must have the same shape"
            )
        self._add(self._distance(preds, target), index)


class LPIPSDiversity(_LPIPSMetric):
    """LPIPS diversity of a multimodal translator (MUNIT / BicycleGAN protocol; higher is more diverse).

    For each input, the mean LPIPS over `n_pairs` pairs of its outputs sampled with different style
    codes; the result is the mean over inputs (the protocol: 100 inputs × 19 pairs, AlexNet).
    ``update(samples, index=None)`` takes ``samples`` of shape (N, K, 3, H, W) with K = n_pairs + 1
    outputs per input, and scores the consecutive pairs (0, 1), (1, 2), ..., (K-2, K-1). Each pair is two
    independent draws, so every pair has the same expected distance as a pair of fresh draws: the
    expectation equals that of independent pairs (pairs sharing an output are correlated, which only
    changes the variance) at half the generator cost (K = 20 outputs instead of 38 for 19 pairs).
    A number of inputs other than `n_inputs` makes the result not comparable."""

    name: ClassVar[str] = "lpips_diversity"
    higher_is_better: ClassVar[bool] = True

    def __init__(
        self,
        net: str = "alex",
        weights: WeightsArg = "default",
        n_pairs: int = 19,
        n_inputs: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(net, weights, **kwargs)
        if int(n_pairs) < 1 or int(n_inputs) < 1:
            raise ZooError(f"LPIPSDiversity: n_pairs and n_inputs must be >= 1, got {n_pairs} and {n_inputs}")
        self.n_pairs, self.n_inputs = int(n_pairs), int(n_inputs)
        self._set_protocol(
            Protocol(
                f"lpips-diversity/{net}-v0.1/{self.n_inputs}x{self.n_pairs}/v1",
                f"Mean over {self.n_inputs} inputs of the mean LPIPS v0.1 ({LPIPS_NETS[net]}) over {self.n_pairs} "
                "consecutive pairs of outputs sampled with different style codes (MUNIT / BicycleGAN)",
                {"net": net, "n_pairs": self.n_pairs, "n_inputs": self.n_inputs, "weights": _backbone_file(net)},
            )
        )

    def update(self, samples: Tensor, index: Tensor | None = None) -> None:  # type: ignore[override]
        if not isinstance(samples, Tensor) or samples.ndim != 5:
            shape = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
            raise ZooError(
                f"{self.name}: samples must be (N, K, 3, H, W) with K = n_pairs + 1 = {self.n_pairs + 1}, got {shape}"
            )
        n, k = samples.shape[:2]
        if k != self.n_pairs + 1:
            raise ZooError(
                f"{self.name}: {k} outputs per input, the protocol scores {self.n_pairs} consecutive pairs, "
                f"which needs K = n_pairs + 1 = {self.n_pairs + 1} outputs per input"
            )
        check_images(self.name, samples.reshape(n * k, *samples.shape[2:]), "samples")
        scores = torch.empty(n, dtype=torch.float64)
        for i in range(n):  # one input at a time bounds the memory (K-1 pairs through the trunk)
            scores[i] = self._distance(samples[i, :-1], samples[i, 1:]).mean().cpu()
        self._add(scores.to(self.device), index)

    def compute(self) -> MetricResult:
        result = super().compute()
        if result.n != self.n_inputs:  # a property of this computation: not kept in self.notes
            note = f"{result.n} inputs, the protocol uses {self.n_inputs}"
            result = MetricResult(
                float(result), metric=result.metric, protocol=result.protocol, comparable=False, n=result.n,
                notes=(*result.notes, note), extra=result.extra,
            )
        return result


def _backbone_file(net: str) -> str:
    return BACKBONES[LPIPS_NETS[net]].file
