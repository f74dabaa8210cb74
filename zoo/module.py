"""`ZooModule`: the LightningModule base every method derives from.

It carries the method key, the image I/O contract (`io`) and the publishing verbs
(`save_pretrained`, `push_to_hub`, `from_pretrained`). The weight I/O itself lives in `zoo.hub`.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, ClassVar

import lightning as L

from zoo.training import capture_rng_state, restore_rng_state

__all__ = ["ZooModule", "DEFAULT_IO"]

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

    def __init__(self) -> None:
        super().__init__()
        self.io: dict[str, Any] = copy.deepcopy({**DEFAULT_IO, **self.default_io})
        # Metadata that travels with the weights (dataset name, metrics, ...), filled by fit/bench.
        self.card: dict[str, Any] = {"paper": self.paper} if self.paper else {}

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
