"""Exceptions raised for user mistakes. Every message says what is wrong and what to do."""

from __future__ import annotations

__all__ = [
    "ZooError",
    "RegistryError",
    "UnknownModelError",
    "DataError",
    "ImageReadError",
    "CheckpointError",
    "WeightsNotFoundError",
]


class ZooError(Exception):
    """Base class of every error that `zoo` raises for a user mistake or a missing resource."""


class RegistryError(ZooError):
    """`registry.yaml` (or a registration) is malformed; the message names the entry and the field."""


class UnknownModelError(ZooError, KeyError):
    """A model or method name that the registry does not know; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DataError(ZooError):
    """A dataset folder is missing, empty, mis-laid-out, or its pairs do not match."""


class ImageReadError(DataError):
    """An image file is corrupt, truncated, or of a kind that cannot be turned into RGB."""


class CheckpointError(ZooError):
    """A checkpoint or weights folder has the wrong keys, shapes, config or checksum."""


class WeightsNotFoundError(ZooError):
    """No weights could be found (Hub, official file or cache); the message says what was looked for."""
