"""Training plumbing shared by every method: atomic, checksummed checkpoint files, checkpoint folders that
do not depend on the logger's version, and RNG state carried in checkpoints so that resuming is exact."""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path
from typing import Any, Callable

import lightning as L
import numpy as np
import torch
from torch import nn
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from zoo.errors import CheckpointError, ZooError
from zoo.fsutil import DigestWriter, atomic_file, is_temporary, sha256_file

__all__ = ["EvaluationSteps", "AtomicCheckpointIO", "ZooCheckpoint", "checksum_path", "checkpoint_problem",
           "verify_checkpoint", "capture_rng_state", "restore_rng_state", "set_epoch_lr", "linear_decay",
           "LinearDecaySchedule", "check_training_size", "adam", "ADAM_IMPLEMENTATIONS"]

#: `<name>.ckpt` is checked against `<name>.ckpt` + CHECKSUM_SUFFIX: JSON {"size", "sha256", "earlier": [...]}.
CHECKSUM_SUFFIX = ".sha256"
#: Records of earlier versions kept in the checksum file: the record of a new version is written just before
#: its rename, so a kill in between leaves the previous version in place, which must still verify.
_EARLIER_RECORDS = 2


def checksum_path(path: str | Path) -> Path:
    """The checksum file of checkpoint `path`."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _write_checksum(path: Path, size: int, sha256: str) -> None:
    sidecar = checksum_path(path)
    earlier: list[dict[str, Any]] = []
    try:
        old = json.loads(sidecar.read_text())
        earlier = [{"size": old["size"], "sha256": old["sha256"]}, *old.get("earlier", [])][:_EARLIER_RECORDS]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: start afresh
    record = {"file": path.name, "size": size, "sha256": sha256, "earlier": earlier}
    with atomic_file(sidecar) as handle:
        handle.write(json.dumps(record, indent=1).encode())


def checkpoint_problem(path: str | Path) -> str | None:
    """What is wrong with checkpoint `path` by its checksum file (size, then sha256), or None when it matches
    (or has no checksum file to be checked against: written by something else)."""
    path, sidecar = Path(path), checksum_path(path)
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
        records = [(int(r["size"]), str(r["sha256"])) for r in [record, *record.get("earlier", [])]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return f"its checksum file {sidecar.name} is unreadable"
    size = path.stat().st_size
    if all(size != expected for expected, _ in records):
        return f"it is {size} bytes where {sidecar.name} records {records[0][0]} (truncated or cut short by a crash)"
    digest = sha256_file(path)
    if (size, digest) not in records:
        return f"its sha256 {digest[:16]}... differs from the {records[0][1][:16]}... recorded in {sidecar.name} (modified or corrupted)"
    return None


def _intact_neighbour(path: Path) -> Path | None:
    """The newest other checkpoint in `path`'s folder that its checksum file vouches for."""
    candidates = [p for p in path.parent.glob("*.ckpt") if p != path and not is_temporary(p) and p.is_file()]
    for other in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        if checksum_path(other).is_file() and checkpoint_problem(other) is None:
            return other
    return None


def _damaged(path: Path, problem: str) -> CheckpointError:
    good = _intact_neighbour(path)
    if good is not None:
        advice = (f"The newest intact checkpoint there is {good}: resume from it with --ckpt_path {good} "
                  f"(or zoo.load it), or delete {path.name} to use it as `last`.")
    else:
        advice = f"No intact checkpoint is left in {path.parent}: delete {path} and train again without --ckpt_path."
    return CheckpointError(f"checkpoint {path} is damaged: {problem}. {advice}")


def verify_checkpoint(path: str | Path) -> None:
    """Raise `CheckpointError` naming `path`, what is wrong and the newest intact checkpoint beside it, when
    `path` does not match its checksum file."""
    path = Path(path)
    if path.is_file() and (problem := checkpoint_problem(path)) is not None:
        raise _damaged(path, problem)


def _os_error(error: BaseException) -> OSError | None:
    """The OSError behind `error`: itself, or what it was raised from or while handling (torch.save reports a
    failed write of its zip writer as a RuntimeError raised while handling the file's OSError)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `<name>.ckpt` through a temporary file in the same folder, fsyncs it, records its size and
    sha256 in `<name>.ckpt.sha256`, then renames it into place: a crash or a full disk mid-write leaves the
    previous checkpoint untouched, and a truncated or altered checkpoint is detected when it is loaded."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if "://" in str(path):  # remote filesystems: fsspec's own write semantics
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        writer: DigestWriter | None = None
        try:
            with atomic_file(path, before_replace=lambda: _write_checksum(path, writer.size, writer.sha256)) as handle:
                writer = DigestWriter(handle)
                torch.save(checkpoint, writer)
        except Exception as error:
            cause = _os_error(error)
            if cause is None:
                raise
            # a full disk, a quota, a read-only folder: said once, with what is left
            before = "the previous one is intact" if path.is_file() else "no earlier one exists"
            raise CheckpointError(f"could not write checkpoint {path} ({cause.strerror or cause}); {before}. Free "
                                  "space (or choose another --trainer.default_root_dir) and resume with "
                                  "--ckpt_path last.") from None
        # Temporaries of this name left by a process killed mid-write: never checkpoints, only wasted space.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if "://" not in str(path):
            verify_checkpoint(path)
        try:
            # Our own checkpoints hold tensors and plain containers only; never unpickle anything else.
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as error:  # truncated zip, bad pickle, ...: a checkpoint without a checksum file
            if "://" in str(path):
                raise
            if isinstance(error, pickle.UnpicklingError):  # intact, but it holds more than tensors: refused
                from zoo.official import REFUSE_PICKLE

                raise CheckpointError(f"checkpoint {path} needs more than weights to unpickle. {REFUSE_PICKLE}") from None
            raise _damaged(Path(path), f"it cannot be read ({type(error).__name__}: {error})") from error

    def remove_checkpoint(self, path: str | Path) -> None:
        super().remove_checkpoint(path)
        if "://" not in str(path):
            checksum_path(path).unlink(missing_ok=True)


class ZooCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes into `<default_root_dir>/checkpoints` unless told otherwise, so
    `--ckpt_path last` finds `last.ckpt` again in the next run (the logger's version folder changes).

    `every_n_batches` > 0 also writes this callback's file every that many training batches (iterations, not
    Lightning's optimizer steps: a GAN batch steps two or three optimizers), mid-epoch: meant for `last.ckpt`
    (no monitor), so that a killed run resumes where it was (zoo's training loaders resume mid-epoch exactly)."""

    def __init__(self, *args: Any, every_n_batches: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if every_n_batches < 0:
            raise ValueError(f"every_n_batches must be >= 0, got {every_n_batches}")
        self.every_n_batches = int(every_n_batches)

    def on_train_batch_end(self, trainer: "L.Trainer", pl_module: "L.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        progress = trainer.fit_loop.epoch_loop.batch_progress
        # The epoch's last batch is left to the end-of-epoch save that follows it.
        if (self.every_n_batches and progress.total.processed % self.every_n_batches == 0
                and not progress.is_last_batch and not trainer.sanity_checking and self.dirpath is not None):
            # Public API, called on every rank (the strategy writes on rank 0), into this callback's file name.
            metrics = {"epoch": torch.tensor(trainer.current_epoch), "step": torch.tensor(trainer.global_step)}
            trainer.save_checkpoint(self.format_checkpoint_name(metrics))

    def _use_root_dir(self, trainer: "L.Trainer") -> None:
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")

    def setup(self, trainer: "L.Trainer", pl_module: "L.LightningModule", stage: str) -> None:
        self._use_root_dir(trainer)
        super().setup(trainer, pl_module, stage)

    def _find_last_checkpoints(self, trainer: "L.Trainer") -> set[str]:
        # `ckpt_path="last"` is resolved before setup(): the folder must be known by then too. (Lightning only
        # takes `last*.ckpt`: never the checksum files nor the `.last.ckpt.*.tmp` left by a killed write.)
        self._use_root_dir(trainer)
        return super()._find_last_checkpoints(trainer)


def capture_rng_state() -> dict[str, Any]:
    """Every RNG a training step can draw from, as tensors and plain Python values (weights_only-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_lists(v) for v in value]
    return value


#: Adam's implementations (`adam(implementation=...)`, `ZooModule.adam_implementation`, `zoo.fit --adam`):
#: "fused" (one kernel over all parameters: on CUDA, and on CPU since torch 2.4), "foreach" (one batched op per
#: state tensor), "for-loop" (a loop over the parameters: torch's own choice on CPU); "auto": fused where every
#: parameter lives on one device with the kernel (CPU or CUDA), else torch's choice. All compute the same
#: update to float rounding; on this project's 2-core CPU the speed suite measured the fused step several
#: times faster than the loop, and foreach no faster than it.
ADAM_IMPLEMENTATIONS: tuple[str, ...] = ("auto", "fused", "foreach", "for-loop")
_FUSED_ADAM_DEVICES = ("cpu", "cuda")


def adam(params: Any, lr: float, betas: tuple[float, float] = (0.9, 0.999), implementation: str = "auto",
         **kwargs: Any) -> torch.optim.Adam:
    """`torch.optim.Adam` with the `implementation` of `ADAM_IMPLEMENTATIONS` ("auto": fused when all the
    parameters are floating point on one CPU or CUDA device). `kwargs` (weight_decay, eps, ...) go to Adam; an
    explicit fused/foreach there wins. `configure_optimizers` runs after Lightning has moved the module to
    its device, so the parameters' device is the training device. An unknown implementation is a ZooError."""
    if implementation not in ADAM_IMPLEMENTATIONS:
        raise ZooError(f"unknown Adam implementation {implementation!r}: choose from {', '.join(ADAM_IMPLEMENTATIONS)}")
    params = list(params)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict) else [group])]
    if "fused" not in kwargs and "foreach" not in kwargs:
        if implementation == "auto":
            devices = {t.device for t in tensors}
            fusable = (len(devices) == 1 and next(iter(devices)).type in _FUSED_ADAM_DEVICES
                       and all(t.is_floating_point() for t in tensors))
            implementation = "fused" if fusable else "torch"
        if implementation == "fused":
            kwargs["fused"] = True
        elif implementation == "foreach":
            kwargs["foreach"] = True
        elif implementation == "for-loop":
            kwargs.update(foreach=False, fused=False)
    optimizer = torch.optim.Adam(params, lr=lr, betas=tuple(betas), **kwargs)
    optimizer.register_load_state_dict_post_hook(_keep_implementation)
    return optimizer


def _keep_implementation(optimizer: torch.optim.Optimizer) -> None:
    """`load_state_dict` replaces each param group by the saved one, flags included: put back the fused and
    foreach flags this optimizer was built with, so resuming with another `--adam` (or a checkpoint written
    before a change of default) steps with the implementation asked for. The state is the same for all."""
    for group in optimizer.param_groups:
        group["fused"], group["foreach"] = optimizer.defaults["fused"], optimizer.defaults["foreach"]


def set_epoch_lr(scheduler: torch.optim.lr_scheduler.LambdaLR, epoch: int) -> None:
    """Put a LambdaLR at `epoch` (0-based): lr = base_lr * lambda(epoch), a function of the epoch alone."""
    scheduler.last_epoch = epoch
    for group, base_lr, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base_lr * factor(epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def linear_decay(n_epochs: int, n_epochs_decay: int, epoch_count: int = 1) -> Callable[[int], float]:
    """LR factor for the 0-based epoch `e`: 1 for the first `n_epochs`, then linear towards 0 over
    `n_epochs_decay` (the reference's `lambda_rule`). Epoch e trains at factor(e): full rate for epochs
    1..100, then 100/101 ... 1/101, the paper's "constant, then linearly decayed to zero" and the
    reference's schedule while it stepped at each epoch's end. Later reference revisions step at each
    epoch's start, which shifts this by one epoch (decay from epoch 100, the last epoch at rate 0)."""

    def factor(e: int) -> float:
        return 1.0 - max(0, e + epoch_count - n_epochs) / float(n_epochs_decay + 1)

    return factor


class LinearDecaySchedule:
    """Mixin for the junyanz recipe (pix2pix, CycleGAN): one Adam per network group, each with the
    `linear_decay` rule, applied once per epoch. Needs hparams lr, beta1, beta2, n_epochs,
    n_epochs_decay and epoch_count."""

    hparams: Any

    def linear_decay_optimizers(self, *groups: Any) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        """`configure_optimizers` output: Adam(lr, (beta1, beta2)) per parameter group in `groups`."""
        hp = self.hparams
        optimizers = [adam(params, hp.lr, (hp.beta1, hp.beta2), self.adam_implementation) for params in groups]
        rule = linear_decay(hp.n_epochs, hp.n_epochs_decay, hp.epoch_count)
        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, rule) for opt in optimizers]
        return optimizers, [{"scheduler": s, "interval": "epoch"} for s in schedulers]

    def on_train_epoch_start(self) -> None:
        # The reference changes the learning rate once per epoch, never per iteration. Setting it from
        # the epoch number, not by counting steps, keeps it right after resuming from any checkpoint.
        schedulers = self.lr_schedulers()  # type: ignore[attr-defined]
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            set_epoch_lr(scheduler, self.current_epoch)  # type: ignore[attr-defined]


def check_training_size(module: Any, images: torch.Tensor, networks: list[Callable[[torch.Tensor], Any]],
                        multiple: int) -> None:
    """Raise `DataError` (once per image size, with what to do) when images of this size cannot go through
    `networks` (modules or callables taking an image batch): sides not multiples of `multiple` (the
    generators would return another size), or too small for stride-2 convolutions, reflection paddings or
    batch statistics. Sizes are tried by one forward pass of a zero batch of the same shape, without
    gradients, eagerly (a compiled network is not compiled for it), and leaving no trace: the RNG streams
    and every buffer (BatchNorm running statistics) are as before, so resuming stays exact."""
    from zoo.errors import DataError

    checked = module.__dict__.setdefault("_checked_training_sizes", set())
    h, w = int(images.shape[-2]), int(images.shape[-1])
    if (h, w) in checked:
        return
    if any(isinstance(m, nn.SyncBatchNorm) and m.training for m in module.modules()):
        # A probe would be a collective that the other ranks do not join (they may not probe this size).
        return
    buffers = {name: buffer.clone() for name, buffer in module.named_buffers()}

    def fits(size_h: int, size_w: int) -> bool:
        probe = images.new_zeros(images.shape[0], images.shape[1], size_h, size_w)
        try:  # fork_rng: a dropout layer in the probe must not move the RNG streams (exact resumption)
            with torch.no_grad(), torch.compiler.set_stance("force_eager"), \
                    torch.random.fork_rng(devices=[images.device] if images.is_cuda else []):
                for network in networks:
                    network(probe)
        except (RuntimeError, ValueError):  # padding larger than the input, 1-pixel InstanceNorm, ...
            return False
        finally:
            with torch.no_grad():
                for name, buffer in module.named_buffers():
                    buffer.copy_(buffers[name])
        return True

    if h % multiple or w % multiple or not fits(h, w):
        side = multiple  # the smallest square side that works, so the message names the true minimum
        while side < 4096 and not fits(side, side):
            side += multiple
        name = getattr(module, "method", "") or type(module).__name__
        need = f"multiples of {multiple} and at least {side} pixels" if multiple > 1 else f"at least {side} pixels"
        raise DataError(f"images of {h}x{w} do not fit {name}: its networks need sides that are {need}; "
                        f"set --data.crop_size to such a size (and --data.load_size no smaller, where the "
                        f"data has one)")
    checked.add((h, w))


class EvaluationSteps:
    """`validation_step` and `test_step` run the method's `_evaluate(batch, stage)` ("val" / "test"); the
    image grid it collects during validation (`self._grid`, a `zoo.visual.GridCollector`) is logged as
    `val/grid` at the end of the epoch. Put it before `ZooModule` in the bases."""

    _grid: Any

    def _evaluate(self, batch: Any, stage: str) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._grid.log(self, "val/grid")
