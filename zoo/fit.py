"""`python -m zoo.fit --model <method-or-name> [--data.root DIR] [--trainer.* / --model.* / --data.*]
[--config cfg.yaml] [--print_config] [--ckpt_path last|PATH]`: train any registered method.

Built on LightningCLI. `--model` takes a method key (`pix2pix`), a registry name (`pix2pix-facades`:
its hyperparameters and data direction are applied) or a class path. Without `--data.root`, the
method's built-in dataset and its short demo schedule (`zoo/configs/<method>-demo.yaml`) are used.
At the end the final weights are written as a `save_pretrained` folder, and its path is printed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from lightning.pytorch import Callback
from lightning.pytorch.cli import LightningCLI

from zoo.data import ImageFolderDataModule
from zoo.errors import ZooError
from zoo.module import ZooModule
from zoo.registry import resolve

__all__ = ["main", "ZooCLI", "ValidationRecord", "prepare_argv", "apply_fast_paths"]

log = logging.getLogger("zoo.fit")
CONFIG_DIR = Path(__file__).with_name("configs")
ROOT_PLACEHOLDER = "{default_root_dir}"


def _option(argv: list[str], name: str) -> list[str]:
    """Values given to `--name` (as `--name V` or `--name=V`)."""
    values = []
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith(name + "="):
            values.append(arg.split("=", 1)[1])
    return values


def _gives_data_root(argv: list[str]) -> bool:
    """True when the command line or one of its `--config` files chooses the data folder."""
    if any(a.split("=", 1)[0] in ("--data.root", "--data.init_args.root", "--data", "--data.style") for a in argv):
        return True
    for config in _option(argv, "--config"):
        try:
            data = (yaml.safe_load(Path(config).read_text()) or {}).get("data") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            continue  # LightningCLI reports unreadable configs itself
        init = (data.get("init_args") or {}) if isinstance(data, dict) else {}
        if isinstance(data, dict) and any(data.get(k) or init.get(k) for k in ("root", "style")):
            return True
    return False


def _flag_value(value: Any) -> str:
    """A value as a command-line flag's text: strings as they are (jsonargparse would keep JSON's quotes
    in a `str` argument), everything else as JSON (numbers, null, lists, mappings)."""
    return value if isinstance(value, str) else json.dumps(value)


def prepare_argv(argv: list[str]) -> tuple[list[str], str | None]:
    """Resolve `--model <key|name>` through the registry and add the built-in demo config when no data
    folder is given. Returns the new argv and the method key (None when a class path was given).

    What zoo adds (the method's data recipe, the demo config, a registry entry's data direction, in this
    order) goes first, so that every flag
    and config the user gives, before or after `--model`, overrides it; the entry's hyperparameters
    follow `--model` (they need its class) and precede the user's later `--model.*` flags."""
    out: list[str] = []
    recipe: list[str] = []  # the method's data recipe: first, so the demo config and the user override it
    demo_config: list[str] = []
    entry_data: list[str] = []  # a registry entry's data direction
    method: str | None = None
    argv = _fast_path_flags(argv)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--model" and i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        elif arg.startswith("--model="):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        if "." in value or value[:1].isupper() or value.endswith((".yaml", ".yml", ".json")):
            out += ["--model", value]  # a class path, class name or config: LightningCLI's business
            continue
        cls, _, entry = resolve(value)  # raises UnknownModelError with the closest names
        method = cls.method
        if cls.weight_free:
            style = " --style STYLE_IMAGE" if cls.task == "style" else ""
            raise ZooError(
                f"{method!r} has nothing to train: it needs no trained weights (it optimises each image, or is a "
                f"fixed baseline). Run it with: python -m zoo.predict {value} INPUT_IMAGES{style} --out DIR"
            )
        out += ["--model", f"{cls.__module__}.{cls.__qualname__}"]
        recipe += [f"--data.{key}={_flag_value(val)}" for key, val in cls.data_defaults.items()]
        if entry is not None:
            for key, val in entry.get("hparams", {}).items():
                out.append(f"--model.init_args.{key}={_flag_value(val)}")
            direction = (entry.get("dataset") or {}).get("direction")
            if direction:
                entry_data.append(f"--data.direction={direction}")
        demo = CONFIG_DIR / f"{method}-demo.yaml"
        if demo.exists() and not _gives_data_root(argv):
            demo_config = ["--config", str(demo)]
            log.warning("no --data.root given: training on the built-in dataset with the demo schedule %s", demo)
    return recipe + demo_config + entry_data + out, method


#: Fast-path switches that act on the built model, not on its constructor: `--model.compile true`,
#: `--model.channels_last true` (the issue's spelling) and `--model.adam fused` become zoo's own `--compile` /
#: `--channels_last` / `--adam`, so no method's signature or saved hyperparameters carry them.
FAST_PATH_FLAGS: tuple[str, ...] = ("compile", "channels_last", "adam")


def _fast_path_flags(argv: list[str]) -> list[str]:
    """`--model.compile V`, `--model.init_args.compile V` (and `=V` forms) -> `--compile V`; likewise
    `channels_last` and `adam`."""
    out: list[str] = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        for flag in FAST_PATH_FLAGS:
            if name in (f"--model.{flag}", f"--model.init_args.{flag}"):
                arg = f"--{flag}{sep}{value}"
        out.append(arg)
    return out


def apply_fast_paths(model: ZooModule, *, compile: bool = False, channels_last: bool = False,
                     adam: str = "auto") -> None:
    """Apply `--channels_last` (NHWC weights and inputs) and `--compile` (each network `torch.compile`d in
    place) to a freshly built model, in that order (compiled code then sees NHWC tensors), and `--adam` (the
    Adam implementation its `configure_optimizers` builds; an unknown one is a ZooError, before training)."""
    from zoo.training import ADAM_IMPLEMENTATIONS

    if adam not in ADAM_IMPLEMENTATIONS:
        raise ZooError(f"--adam {adam!r} is not an Adam implementation: choose from {', '.join(ADAM_IMPLEMENTATIONS)}")
    model.adam_implementation = adam
    if channels_last:
        model.to_channels_last()
    if compile:
        model.compile_networks()


def _wandb_offline_unless_logged_in() -> None:
    """wandb would prompt for a key on stdin; with none configured, record offline instead."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE"):
        return
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return
    os.environ["WANDB_MODE"] = "offline"
    log.warning("wandb: no API key configured, logging offline (sync later with `wandb sync <run dir>`)")


def _warn_emulated_bf16(precision: Any, accelerator: Any) -> None:
    """bf16 precision on a CPU without native bf16 runs emulated, many times slower than fp32 (40-200x slower for
    zoo's networks on a 2-core AVX2 machine): say so before training starts."""
    from zoo.module import emulated_bf16

    on_cpu = accelerator == "cpu" or (accelerator in (None, "auto") and not torch.cuda.is_available())
    if on_cpu and emulated_bf16(precision, "cpu"):
        log.warning("--trainer.precision %s on a CPU without native bf16 (no AVX512-BF16/AMX): autocast emulates it "
                    "and trains many times slower than the default 32-true", precision)


class ValidationRecord(Callback):
    """The validation metrics of the last validation run *during fit* (not the baseline, not sanity)."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}


class ZooCLI(LightningCLI):
    """LightningCLI with zoo's defaults: checkpoints in `<root>/checkpoints` (best by the method's monitor,
    and `last`), atomic checkpoint writes, a CSV logger, `--ckpt_path`, and publishing at the end."""

    validation_record: ValidationRecord

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--ckpt_path", type=Optional[str], default=None,
                            help="resume from a checkpoint: 'last' (in <default_root_dir>/checkpoints) or a path")
        parser.add_argument("--pretrained_dir", type=Optional[str], default=None,
                            help="where to write the save_pretrained folder (default: <default_root_dir>/pretrained)")
        parser.add_argument("--compile", type=bool, default=False,
                            help="torch.compile every network (also --model.compile true); the first steps compile")
        parser.add_argument("--channels_last", type=bool, default=False,
                            help="train in channels_last (NHWC) memory format (also --model.channels_last true)")
        parser.add_argument("--adam", type=str, default="auto",
                            help="Adam's implementation: auto (fused on CPU and CUDA), fused, foreach or for-loop "
                                 "(also --model.adam); the same update to float rounding")
        parser.add_argument("--baseline", type=bool, default=True,
                            help="validate once before training (not when resuming) so the log shows the start")
        parser.add_argument("--ddp_timeout", type=Optional[float], default=None,
                            help="DDP: seconds a rank waits for the others in a collective before the run fails "
                                 "(default: $ZOO_DDP_TIMEOUT_S or 600)")
        parser.add_argument("--checkpoint_every_n_batches", type=int, default=0,
                            help="also write checkpoints/last.ckpt every N training batches, mid-epoch (0: at the "
                                 "end of each epoch only); --ckpt_path last then resumes exactly where it was")

    def before_instantiate_classes(self) -> None:
        trainer = self.config.trainer
        if isinstance(trainer.strategy, str) and trainer.strategy in ("ddp", "ddp_spawn"):
            # GAN steps backpropagate through one network at a time (D's loss never reaches G), which
            # plain DDP reports as unused parameters; the find_unused variant handles it.
            trainer.strategy = f"{trainer.strategy}_find_unused_parameters_true"
            log.info("strategy: using %s (each GAN update leaves the other network's parameters unused)",
                     trainer.strategy)
        _warn_emulated_bf16(trainer.precision, trainer.accelerator)
        loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
        for logger in loggers:
            init = getattr(logger, "init_args", None)
            if init is None:
                continue
            if isinstance(init.get("save_dir"), str) and ROOT_PLACEHOLDER in init.save_dir:
                init.save_dir = init.save_dir.replace(ROOT_PLACEHOLDER, str(trainer.default_root_dir))
            if "wandb" in str(getattr(logger, "class_path", "")).lower():
                _wandb_offline_unless_logged_in()
                if init.get("save_dir") in (None, "."):
                    init.save_dir = str(trainer.default_root_dir)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Any:
        from lightning.pytorch.callbacks import ModelCheckpoint

        from zoo.distributed import EndAllRanksOnError, ddp_with_timeout
        from zoo.training import ZooCheckpoint

        # a DDP strategy named by a string gets zoo's collective timeout (a stalled rank fails the run)
        config = {**config, "strategy": ddp_with_timeout(config.get("strategy", "auto"), self.config.get("ddp_timeout"))}
        self.validation_record = ValidationRecord()
        callbacks = [*callbacks, self.validation_record, EndAllRanksOnError()]
        configured = config.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        every = int(self.config.get("checkpoint_every_n_batches") or 0)
        if every < 0:
            raise ZooError(f"--checkpoint_every_n_batches must be >= 0, got {every}")
        if any(isinstance(c, ModelCheckpoint) for c in configured):
            if every:
                log.warning("--checkpoint_every_n_batches applies to zoo's own checkpoints, which your ModelCheckpoint "
                            "replaces: give it every_n_train_steps instead")
        else:  # the user's own take precedence
            monitor, mode = self.model.monitor
            # Two callbacks: since Lightning 2.6 `save_last=True` only refreshes last.ckpt when the monitored
            # metric improved, and resuming needs the latest state every epoch.
            callbacks = [
                *callbacks,
                ZooCheckpoint(monitor=monitor, mode=mode, save_top_k=1,
                              filename="best-epoch{epoch:03d}-step{step:07d}", auto_insert_metric_name=False),
                ZooCheckpoint(save_top_k=1, filename=ZooCheckpoint.CHECKPOINT_NAME_LAST, enable_version_counter=False,
                              every_n_batches=every),
            ]
        return super()._instantiate_trainer(config, callbacks)


def main(argv: list[str] | None = None) -> ZooCLI:
    """Entry point of `python -m zoo.fit` and `zoo fit`. A user mistake (`ZooError`: unknown model,
    missing or malformed data, bad checkpoint) ends with its message and exit status 2, not a traceback."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from zoo.allocator import tune_cpu_allocator

    tune_cpu_allocator()  # reuse freed activations instead of faulting them in each step (ZOO_TUNE_MALLOC=0: off)
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


def _datamodule_class(method: str | None) -> type:
    """The DataModule a registered method trains on (`ZooModule.datamodule`); ImageFolderDataModule for
    class paths."""
    if method is None:
        return ImageFolderDataModule
    import importlib

    from zoo.registry import get_method

    module_name, _, class_name = get_method(method).datamodule.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def _run(argv: list[str]) -> ZooCLI:
    argv, method = prepare_argv(argv)
    root = f"runs/{method or 'model'}"
    datamodule_class = _datamodule_class(method)
    # We pass the rewritten argv as `args`; LightningCLI would warn that sys.argv is set as well.
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
    cli = ZooCLI(
        ZooModule,
        datamodule_class,
        subclass_mode_model=True,
        run=False,
        args=argv,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "default_root_dir": root,
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                       "init_args": {"save_dir": ROOT_PLACEHOLDER, "name": "logs"}},
            "plugins": [{"class_path": "zoo.training.AtomicCheckpointIO"}],
        },
        parser_kwargs={"description": __doc__, "default_env": False},
    )
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    apply_fast_paths(model, compile=cli.config.compile, channels_last=cli.config.channels_last, adam=cli.config.adam)
    ckpt_path = cli.config.ckpt_path
    if cli.config.baseline and ckpt_path is None:
        trainer.validate(model, datamodule=data, verbose=False)
        start = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    else:
        start = {}
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    if trainer.is_global_zero and not trainer.interrupted:
        end = cli.validation_record.metrics
        model.card.update(metrics=end, metrics_at_start=start, dataset=data.dataset_name,
                          trained_epochs=trainer.current_epoch)
        out = Path(cli.config.pretrained_dir or Path(trainer.default_root_dir) / "pretrained")
        path = model.save_pretrained(out)
        if start and end:
            changes = ", ".join(f"{k} {start[k]:.4f} -> {end[k]:.4f}" for k in sorted(end) if k in start)
            print(f"validation: {changes}")
        elif not end:
            print("validation: none ran during training (see --trainer.limit_val_batches / check_val_every_n_epoch)")
        print(f"saved pretrained weights to {path}\nload them with: zoo.load({str(path)!r})")
    return cli


if __name__ == "__main__":
    main()
