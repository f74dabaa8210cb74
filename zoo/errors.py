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

    def __str__(self) -> str:
        return _unwrap_worker(super().__str__(), type(self))


def _unwrap_worker(message: str, cls: type) -> str:
    """The original message of an error re-raised from a DataLoader worker. torch re-raises it as
    `cls("Caught X in DataLoader worker process N.\nOriginal Traceback ...\n<module>.X: <message>")`,
    which would put a traceback into the one-line `error: ...` of the command-line tools."""
    if not (message.startswith("Caught ") and "\nOriginal Traceback (most recent call last):" in message):
        return message
    head = f"\n{cls.__module__}.{cls.__qualname__}: "
    at = message.rfind(head)
    return message[at + len(head):].rstrip("\n") if at >= 0 else message


class RegistryError(ZooError):
    """`registry.yaml` (or a registration) is malformed; the message names the entry and the field."""


class UnknownModelError(ZooError, KeyError):
    """A model or method name that the registry does not know; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return _unwrap_worker(str(self.args[0]), type(self)) if self.args else ""


class DataError(ZooError):
    """A dataset folder is missing, empty, mis-laid-out, or its pairs do not match."""


class ImageReadError(DataError):
    """An image file is corrupt, truncated, or of a kind that cannot be turned into RGB."""


class CheckpointError(ZooError):
    """A checkpoint or weights folder has the wrong keys, shapes, config or checksum."""


class WeightsNotFoundError(ZooError):
    """No weights could be found (Hub, official file or cache); the message says what was looked for."""
