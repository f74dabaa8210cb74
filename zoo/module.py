"""`ZooModule`: the LightningModule base every method derives from.

It carries the method key, the image I/O contract (`io`) and the publishing verbs
(`save_pretrained`, `push_to_hub`, `from_pretrained`). The weight I/O itself lives in `zoo.hub`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
from pathlib import Path
from typing import Any, Callable, ClassVar

import lightning as L
import torch
from torch import nn

from zoo.training import capture_rng_state, check_training_size, restore_rng_state

__all__ = ["ZooModule", "DEFAULT_IO", "check_compile_support", "native_bf16", "emulated_bf16",
           "precision_context", "INFERENCE_PRECISIONS"]

log = logging.getLogger("zoo")

#: The I/O contract keys. `range`: the network's pixel range; `size_multiple`: inputs are padded to it;
#: `directions`: the translate() directions the weights support; `eval_mode`: whether inference runs in
#: eval() (False reproduces references that test in train mode, e.g. pix2pix's dropout + batch stats).
DEFAULT_IO: dict[str, Any] = {
    "range": [-1.0, 1.0],
    "channels": 3,
    "size_multiple": 1,
    "directions": ["a2b"],
    "eval_mode": True,
}


class ZooModule(L.LightningModule):
    """Base of every registered method.

    Subclasses set `task`, `default_io` and `inference_modules` (the attribute names of the submodules
    needed at inference, e.g. ``("G",)``; the others, such as discriminators, may be absent from
    published weights). `method` is set by `@zoo.register`.
    """

    method: ClassVar[str] = ""
    task: ClassVar[str] = ""
    default_io: ClassVar[dict[str, Any]] = DEFAULT_IO
    inference_modules: ClassVar[tuple[str, ...]] = ()
    #: The method's paper (e.g. "arXiv:1611.07004"), cited by every model card.
    paper: ClassVar[str] = ""
    #: True for models that need no trained weights (optimisation methods, baselines): `zoo.bench`
    #: scores them from `zoo.create(key)`.
    weight_free: ClassVar[bool] = False
    #: True for methods that optimise every output image (Gatys, inversion: minutes per image): `zoo.bench`
    #: leaves them out of wildcard model lists and scores them only when named.
    optimizes_per_image: ClassVar[bool] = False
    #: Smallest side the networks accept; task verbs pad smaller inputs up to it and crop back.
    min_input_size: int = 1
    #: The validation metric that picks the `best` checkpoint in `zoo.fit`, and its direction.
    monitor: ClassVar[tuple[str, str]] = ("val/L1", "min")
    #: The LightningDataModule `zoo.fit` trains the method on (import path), and the `--data.*` defaults
    #: of its recipe (applied before the demo config and the user's flags, which override them).
    datamodule: ClassVar[str] = "zoo.data.ImageFolderDataModule"
    data_defaults: ClassVar[dict[str, Any]] = {}
    #: How `configure_optimizers` builds Adam (`zoo.training.ADAM_IMPLEMENTATIONS`; `zoo.fit --adam`): set
    #: on an instance before training. Not a hyperparameter: the update is the same to float rounding.
    adam_implementation: str = "auto"

    def __init__(self) -> None:
        super().__init__()
        self.io: dict[str, Any] = copy.deepcopy({**DEFAULT_IO, **self.default_io})
        # Metadata that travels with the weights (dataset name, metrics, ...), filled by fit/bench.
        self.card: dict[str, Any] = {"paper": self.paper} if self.paper else {}

    # --------------------------------------------------------------------------------- logging
    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        """`LightningModule.log`, with every validation and test metric averaged over all DDP ranks.

        Under DDP each rank evaluates its own shard of the validation set; unsynced, the logged `val/L1`
        (and the `best` checkpoint chosen by it) would be rank 0's shard alone. Evaluation logs are
        epoch-level, so the reduction is one collective per metric per epoch; training logs are per-step
        and stay local (a collective there would be a host sync every step)."""
        trainer = self._trainer
        if trainer is not None and not trainer.training:
            kwargs["sync_dist"] = True
        super().log(name, value, *args, **kwargs)

    # ---------------------------------------------------------------------------- input sizes
    def size_probes(self, batch: Any) -> list[tuple[torch.Tensor, list[Callable[[torch.Tensor], Any]], int]]:
        """(images, networks, side multiple) for each image batch in `batch` that goes through networks:
        the networks are callables taking that image batch (a module, or a lambda for one that takes more,
        such as a conditional discriminator). Checked once per image size before a training, validation or
        test step runs (`on_after_batch_transfer`), so a crop too small for the architecture is a
        `DataError` naming the crop that works, not a traceback from inside a convolution. None by default."""
        return []

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = self._trainer
        if trainer is not None and not trainer.predicting:
            for images, networks, multiple in self.size_probes(batch):
                check_training_size(self, images, networks, multiple)
        return batch

    # --------------------------------------------------------------------------------- warnings
    def note_random_features(self, what: str) -> None:
        """Record that `what` (e.g. the VGG loss network) runs with random weights: logged loudly now,
        and carried by the model card, `config.json` and every checkpoint, so no output made with it
        passes for the method's."""
        warnings = self.card.setdefault("warnings", [])
        if what not in warnings:
            warnings.append(what)
        log.warning("%s", what)

    @property
    def random_features(self) -> bool:
        """True when a feature network of this model had random weights (see `note_random_features`)."""
        return bool(self.card.get("warnings"))

    # ------------------------------------------------------------------------------- fast paths
    def networks(self, inference_only: bool = False) -> dict[str, nn.Module]:
        """The networks the fast paths act on, by dotted name: the module's children (or only the
        `inference_modules`), with containers (`ModuleDict`, `ModuleList`) opened up, and modules without
        parameters (GAN criteria, metric holders) left out: they are never the hot path."""
        names = self.inference_modules if inference_only else tuple(name for name, _ in self.named_children())
        found: dict[str, nn.Module] = {}
        for name in names:
            module = getattr(self, name, None)
            if isinstance(module, nn.Module):
                _collect_networks(name, module, found)
        return found

    def compile_networks(self, inference_only: bool = False, **compile_kwargs: Any) -> list[str]:
        """`torch.compile` each network in place (`nn.Module.compile`): the state-dict keys, checkpoints
        and `save_pretrained` folders stay exactly as they were, and the verbs and training steps call the
        compiled code through the same attributes. Compilation happens on the first call of each network
        (seconds to minutes; again for each new input shape). `compile_kwargs` go to `torch.compile`
        (`mode="max-autotune"`, `backend="aot_eager"`, `dynamic=True`, ...). Returns the compiled names.

        Raises ZooError, before anything is changed, when compiling cannot work here (no TorchDynamo for
        this Python, or no C++ compiler for the default inductor backend on CPU)."""
        check_compile_support(compile_kwargs.get("backend", "inductor"), _device_of(self))
        targets = self.networks(inference_only)
        for module in targets.values():
            module.compile(**compile_kwargs)
        log.info("torch.compile: %s", ", ".join(targets) or "no networks")
        return list(targets)

    def to_channels_last(self) -> "ZooModule":
        """Put every 4-D weight in `torch.channels_last` memory format and make each network convert its
        4-D image inputs to it (a forward pre-hook), so convolutions run in NHWC from the first layer on,
        in training and in every verb. Outputs equal the default format's within float rounding. Returns
        self; calling it again changes nothing."""
        self.to(memory_format=torch.channels_last)
        if not getattr(self, "_channels_last_hooks", None):
            self._channels_last_hooks = [
                module.register_forward_pre_hook(_channels_last_inputs, with_kwargs=True)
                for module in self.networks().values()
            ]
        return self

    # ----------------------------------------------------------------------------------- config
    def config(self) -> dict[str, Any]:
        """What `config.json` stores: enough to rebuild the module without repeating any flag."""
        from zoo import __version__

        return {
            "method": self.method,
            "task": self.task,
            # Lightning's private entries (`_class_path` from LightningCLI) are not hyperparameters.
            "hparams": _jsonable({k: v for k, v in self.hparams.items() if not k.startswith("_")}),
            "io": _jsonable(self.io),
            "zoo_version": __version__,
        }

    # ------------------------------------------------------------------------------- publishing
    def save_pretrained(self, save_directory: str | Path, *, components: Any = None, **card: Any) -> Path:
        """Write `model.safetensors`, `config.json` and a `README.md` model card into `save_directory`.
        `components=model.inference_modules` keeps the generators only (no discriminators)."""
        from zoo import hub

        return hub.save_pretrained(self, save_directory, components=components, **card)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload a `save_pretrained` folder to the Hugging Face Hub; returns the commit URL."""
        from zoo import hub

        return hub.push_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs: Any) -> "ZooModule":
        """`zoo.load` restricted to this class: the weights must belong to this method."""
        from zoo import hub
        from zoo.errors import CheckpointError

        model = hub.load(name_or_path, **kwargs)
        if not isinstance(model, cls):
            raise CheckpointError(
                f"{name_or_path!s} holds a {type(model).method!r} model, not {cls.method or cls.__name__!r}; "
                f"use zoo.load({str(name_or_path)!r}) to load it as what it is."
            )
        return model

    # ---------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # "method" lets zoo.load() rebuild the right class from a .ckpt without unpickling classes;
        # "rng" makes `--ckpt_path` resumes draw the same dropout masks, crops and flips.
        checkpoint["zoo"] = {"method": self.method, "io": _jsonable(self.io), "rng": capture_rng_state()}
        if self.card.get("warnings"):
            checkpoint["zoo"]["warnings"] = list(self.card["warnings"])
        # Checkpoints are read back with weights_only=True: hyperparameters must be plain values
        # (a pathlib.Path root would otherwise make the file unloadable).
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):
            if key in checkpoint:
                checkpoint[key] = _jsonable(dict(checkpoint[key]))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        zoo_meta = checkpoint.get("zoo") or {}
        if "io" in zoo_meta:
            self.io = copy.deepcopy(zoo_meta["io"])
        for what in zoo_meta.get("warnings") or []:
            self.note_random_features(str(what))
        self._resume_rng_state = zoo_meta.get("rng")

    def on_train_start(self) -> None:
        # Restored here, not on load: the sanity-check validation in between must not shift the streams.
        state = getattr(self, "_resume_rng_state", None)
        if state is not None:
            restore_rng_state(state)
            self._resume_rng_state = None


def _collect_networks(name: str, module: nn.Module, found: dict[str, nn.Module]) -> None:
    """Add `module` (or, for a container, its members) to `found` when it holds parameters."""
    if isinstance(module, (nn.ModuleDict, nn.ModuleList)):
        for key, child in module.named_children():
            _collect_networks(f"{name}.{key}", child, found)
    elif any(True for _ in module.parameters()):
        found[name] = module


def _channels_last(value: Any) -> Any:
    """4-D floating tensors in channels_last format; everything else as it is."""
    if isinstance(value, torch.Tensor) and value.dim() == 4 and value.is_floating_point():
        return value.contiguous(memory_format=torch.channels_last)
    return value


def _channels_last_inputs(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Forward pre-hook of `ZooModule.to_channels_last`: the network's image inputs in NHWC."""
    return tuple(_channels_last(a) for a in args), {k: _channels_last(v) for k, v in kwargs.items()}


def _device_of(module: nn.Module) -> torch.device:
    return next((t.device for t in module.parameters()), torch.device("cpu"))


def check_compile_support(backend: Any = "inductor", device: torch.device | str = "cpu") -> None:
    """Raise ZooError (what is missing, what to do) when `torch.compile` cannot work on this machine:
    TorchDynamo unsupported on this Python, or inductor on CPU without a C++ compiler."""
    from zoo.errors import ZooError

    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise ZooError("torch.compile is not supported on this Python/PyTorch build: run without --compile")
    if backend == "inductor" and torch.device(device).type == "cpu" and not _cxx_compiler():
        raise ZooError(
            "torch.compile on CPU needs a C++ compiler (g++ or clang++) and none was found: install one "
            "(e.g. apt-get install g++), set $CXX to it, or run without --compile"
        )


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether `device` computes in bfloat16 natively (CUDA: `torch.cuda.is_bf16_supported`; CPU: oneDNN's
    check for AVX512-BF16/AMX). Without it, bf16 autocast on CPU is emulated and many times slower than fp32."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


#: Precisions of zoo.predict (Lightning's names; zoo.fit takes all of Lightning's as `--trainer.precision`)
INFERENCE_PRECISIONS = ("32-true", "bf16-mixed")


def emulated_bf16(precision: Any, device: torch.device | str = "cpu") -> bool:
    """Whether `precision` asks for bfloat16 on `device` where it would be emulated: a CPU without native bf16
    (see `native_bf16`), on which bf16 autocast runs many times slower than float32."""
    return str(precision).startswith("bf16") and torch.device(device).type == "cpu" and not native_bf16("cpu")


def precision_context(precision: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """The context to run a verb in at `precision` on `device`: '32-true' nothing, 'bf16-mixed' bfloat16 autocast
    (convolutions and matrix products in bf16, what autocast keeps in float32 stays there; a verb still returns
    its input's dtype). Another name is a `ZooError`."""
    from zoo.errors import ZooError

    if precision == "32-true":
        return contextlib.nullcontext()
    if precision == "bf16-mixed":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ZooError(f"unknown inference precision {precision!r}: use one of {', '.join(INFERENCE_PRECISIONS)}")


def _cxx_compiler() -> str | None:
    """The C++ compiler inductor would use ($CXX, else g++, clang++ or c++ on PATH), or None."""
    import os

    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++", "c++"]
    return next((found for c in candidates if (found := shutil.which(c))), None)


def _jsonable(value: Any) -> Any:
    """Tuples to lists, paths to strings, recursively: config.json and weights_only checkpoints need it."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
