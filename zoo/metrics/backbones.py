"""The pretrained backbone files that zoo's metrics use, where zoo looks for them, and how it reads them.

Nothing here downloads: without internet the files are put in place by hand (or by a job that has
internet) and zoo only finds and reads them. A backbone file is found, for ``weights="default"``, at

1. the path in the backbone's environment variable (``ZOO_INCEPTION_WEIGHTS``, ...),
2. ``$TORCH_HOME/hub/checkpoints/<file>`` (where ``torch.hub`` would have cached the download;
   ``torch.hub.get_dir()`` gives the folder), and
3. ``<zoo cache>/weights/<file>`` (``$ZOO_CACHE``, else ``~/.cache/zoo``).

Files are read with ``torch.load(..., weights_only=True)``: never unpickled unsafely. A file whose
sha256 does not start with the published prefix is accepted, but the metric using it marks its results
not comparable with published numbers (`backbone_notes`).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from zoo.errors import CheckpointError, WeightsNotFoundError
from zoo.fsutil import zoo_cache_dir

__all__ = [
    "BackboneFile",
    "BACKBONES",
    "find_backbone_weights",
    "load_backbone_state_dict",
    "sha256_of",
    "is_published",
    "backbone_notes",
    "WeightsArg",
    "seeded_init",
    "HiddenNetMixin",
    "load_strict",
    "module_device",
]

WeightsArg = str | os.PathLike | None
"""``"default"`` (look the published file up), a path to a file, or ``None`` (random weights, results
marked not comparable)."""


@dataclass(frozen=True)
class BackboneFile:
    """One published backbone file: its `file` name, download `url`, the first hex digits of its
    sha256 (`sha256_prefix`, as in the file name), the environment variable that may point at it and
    what it is (`description`)."""

    name: str
    file: str
    url: str
    sha256_prefix: str
    env: str
    description: str


BACKBONES: dict[str, BackboneFile] = {
    b.name: b
    for b in (
        BackboneFile(
            "inception",
            "weights-inception-2015-12-05-6726825d.pth",
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            "weights-inception-2015-12-05-6726825d.pth",
            "6726825d",
            "ZOO_INCEPTION_WEIGHTS",
            "TF-Inception 2015-12-05 converted by torch-fidelity (FID/KID)",
        ),
        BackboneFile(
            "alexnet",
            "alexnet-owt-7be5be79.pth",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "7be5be79",
            "ZOO_ALEXNET_WEIGHTS",
            "torchvision ImageNet AlexNet (LPIPS net='alex')",
        ),
        BackboneFile(
            "vgg16",
            "vgg16-397923af.pth",
            "https://download.pytorch.org/models/vgg16-397923af.pth",
            "397923af",
            "ZOO_VGG16_WEIGHTS",
            "torchvision ImageNet VGG16 (LPIPS net='vgg')",
        ),
        BackboneFile(
            "vgg19",
            "vgg19-dcbb9e9d.pth",
            "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            "dcbb9e9d",
            "ZOO_VGG19_WEIGHTS",
            "torchvision ImageNet VGG19 (style and content losses)",
        ),
        BackboneFile(
            "vgg19-gatys",
            "vgg_conv.pth",
            "https://bethgelab.org/media/uploads/pytorch_models/vgg_conv.pth",
            "",  # not recorded: the file could not be downloaded here
            "ZOO_VGG_CONV_WEIGHTS",
            "Gatys et al.'s normalised VGG19 (Caffe preprocessing), from leongatys/PytorchNeuralStyleTransfer",
        ),
        BackboneFile(
            "vgg19-adain",
            "vgg_normalised.pth",
            "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth",
            "",  # not recorded: the file could not be downloaded here
            "ZOO_VGG_NORMALISED_WEIGHTS",
            "AdaIN's vgg_normalised encoder (1x1 preprocessing conv, reflection padding), naoto0804/pytorch-AdaIN",
        ),
    )
}


def _backbone(name: str) -> BackboneFile:
    try:
        return BACKBONES[name]
    except KeyError:
        raise WeightsNotFoundError(f"unknown backbone {name!r}; zoo knows {sorted(BACKBONES)}") from None


def _search_paths(spec: BackboneFile) -> list[Path]:
    return [
        Path(torch.hub.get_dir()) / "checkpoints" / spec.file,
        zoo_cache_dir() / "weights" / spec.file,
    ]


def find_backbone_weights(name: str, weights: WeightsArg = "default") -> Path | None:
    """The file to load for backbone `name` (a key of `BACKBONES`).

    ``weights=None`` → ``None`` (the caller builds a random backbone); a path → that file (it must
    exist); ``"default"`` → the first of ``$<env>``, ``$TORCH_HOME/hub/checkpoints/<file>`` and
    ``<zoo cache>/weights/<file>`` that exists. Raises `WeightsNotFoundError` naming the file, the places
    searched, the download URL and the alternatives when nothing is found."""
    spec = _backbone(name)
    if weights is None:
        return None
    if not (isinstance(weights, str) and weights == "default"):
        if not isinstance(weights, (str, os.PathLike)):
            raise WeightsNotFoundError(
                f"{name} weights must be 'default', a path or None, got {type(weights).__name__}"
            )
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"{name} weights file {str(path)!r} does not exist (passed as weights=); the published file is "
                f"{spec.file} from {spec.url}; pass weights=None for a random backbone (results not comparable)"
            )
        return path

    env_value = os.environ.get(spec.env)
    if env_value:
        path = Path(env_value).expanduser()
        if path.is_file():
            return path
        raise WeightsNotFoundError(
            f"${spec.env}={env_value!r} does not name an existing file; point it at {spec.file} "
            f"(download: {spec.url}) or unset it"
        )
    searched = _search_paths(spec)
    for path in searched:
        if path.is_file():
            return path
    places = "\n".join(f"  - {p}" for p in [f"${spec.env} (unset)", *searched])
    raise WeightsNotFoundError(
        f"{spec.description} weights not found: no {spec.file} in\n{places}\n"
        f"Download {spec.url} (on a machine with internet) and put it in one of those folders, "
        f"set ${spec.env} to its path, or pass weights='/path/to/{spec.file}'. "
        f"Pass weights=None for a random {name} backbone (explicitly not comparable with published numbers)."
    )


def load_backbone_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a state dict with ``torch.load(path, map_location="cpu", weights_only=True)``; a file that
    cannot be read that way (corrupt, truncated, pickled objects other than tensors) or that is not a
    mapping of tensors raises `CheckpointError` naming it."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - UnpicklingError, RuntimeError, EOFError, OSError, ...
        raise CheckpointError(
            f"cannot read backbone weights {str(path)!r} as a tensor-only state dict "
            f"(torch.load weights_only=True): {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(
            f"backbone weights {str(path)!r} are not a state dict (a mapping of names to tensors); "
            f"got {type(state).__name__}"
        )
    return dict(state)


_sha_cache: dict[tuple[str, int, int], str] = {}
_sha_lock = threading.Lock()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks; remembered per (path, mtime, size) for this process."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    with _sha_lock:
        if key in _sha_cache:
            return _sha_cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    hexdigest = digest.hexdigest()
    with _sha_lock:
        _sha_cache[key] = hexdigest
    return hexdigest


def is_published(name: str, path: str | os.PathLike) -> bool:
    """Whether the file's sha256 starts with the published prefix of backbone `name` (False when zoo has
    no recorded prefix for it)."""
    prefix = _backbone(name).sha256_prefix
    return bool(prefix) and sha256_of(path).startswith(prefix)


def backbone_notes(name: str, path: Path | None) -> list[str]:
    """Why results computed with backbone file `path` (``None``: random weights) are not comparable
    with published numbers; empty for the published file."""
    spec = _backbone(name)
    if path is None:
        return [
            f"random {name} weights (weights=None): the backbone is randomly initialised (seed 0), "
            "so values are only comparable with other runs that used weights=None"
        ]
    if not is_published(name, path):
        return [
            f"{name} weights are not the published file (sha256 {sha256_of(path)[:16]}..., published "
            f"{spec.file} starts with {spec.sha256_prefix}): {path}"
        ]
    return []


def seeded_init(build: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """Build a module with the CPU random generator forked and seeded, so that a random backbone
    (``weights=None``) is the same in every run and on every DDP rank, and the caller's RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


class HiddenNetMixin:
    """For metrics holding a frozen network: the network is kept out of the module tree, so it is not in
    ``state_dict()`` (a 100 MB backbone in every checkpoint), not in ``parameters()`` (optimizers, DDP
    buffer broadcasts) and not switched by ``train()``; ``.to(device)`` / ``.cuda()`` still move it.
    Dtype casts (``.half()`` of an enclosing LightningModule) do not reach it."""

    _hidden_net: nn.Module

    def _set_hidden_net(self, net: nn.Module) -> None:
        object.__setattr__(self, "_hidden_net", net)

    @property
    def network(self) -> nn.Module:
        return self._hidden_net

    def _apply(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        out = super()._apply(fn, *args, **kwargs)  # type: ignore[misc]
        net = self.__dict__.get("_hidden_net")
        if net is not None:
            ref = next(iter(net.parameters()), None)
            if ref is None:
                ref = next(iter(net.buffers()), None)
            if ref is not None:
                device = fn(torch.zeros((), device=ref.device)).device
                net.to(device)
        return out


def load_strict(module: nn.Module, state: dict[str, Tensor], path: Any, what: str) -> None:
    """``module.load_state_dict(state)`` that raises `CheckpointError` naming the file and the missing /
    unexpected keys or the shape mismatch."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # size mismatches are raised even with strict=False
        raise CheckpointError(f"{what} weights {str(path)!r} do not fit the network: {e}") from e
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")

        parts = ([f"missing keys: {show(missing)}"] if missing else []) + (
            [f"unexpected keys: {show(unexpected)}"] if unexpected else []
        )
        raise CheckpointError(f"{what} weights {str(path)!r} do not match the network; " + "; ".join(parts))


def module_device(module: nn.Module, fallback: torch.device) -> torch.device:
    """The device of the first parameter (or buffer) of `module`; `fallback` when it has none."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return fallback
