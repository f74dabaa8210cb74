"""zoo: a PyTorch Lightning model zoo for neural style transfer and image-to-image translation.

    >>> import zoo
    >>> zoo.list_models("pix2pix-*")
    >>> model = zoo.load("path/to/save_pretrained_folder")
    >>> out = model.translate(Image.open("facade_labels.png"))
"""

from __future__ import annotations

__version__ = "0.1.0"

from zoo.errors import (
    CheckpointError,
    DataError,
    ImageReadError,
    RegistryError,
    UnknownModelError,
    WeightsNotFoundError,
    ZooError,
)
from zoo.module import ZooModule
from zoo.registry import create, info, list_models, register
from zoo.hub import load

import zoo.methods  # noqa: E402,F401  (registers every method)

__all__ = [
    "__version__",
    "ZooError",
    "RegistryError",
    "UnknownModelError",
    "DataError",
    "ImageReadError",
    "CheckpointError",
    "WeightsNotFoundError",
    "ZooModule",
    "register",
    "create",
    "list_models",
    "info",
    "load",
]
