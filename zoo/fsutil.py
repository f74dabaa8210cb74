"""Crash-safe file writes shared by checkpoints, downloads, weights folders and built-in datasets."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

__all__ = ["atomic_file", "fsync_dir", "apply_umask", "zoo_cache_dir", "is_plain_name", "plain_name", "is_temporary",
           "DigestWriter", "sha256_file"]


def zoo_cache_dir() -> Path:
    """Where zoo keeps built-in datasets, official files and conversions: ``$ZOO_CACHE``, else
    ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_CACHE") or Path.home() / ".cache" / "zoo").expanduser()


def is_plain_name(name: object) -> bool:
    """Whether `name` is one plain file or folder name: a non-empty string, not "." or "..", without "/",
    "\\", NUL, and not absolute."""
    return (isinstance(name, str) and bool(name) and name not in (".", "..") and "/" not in name
            and "\\" not in name and "\x00" not in name and not os.path.isabs(name)
            and os.path.basename(name) == name)


def plain_name(name: str, what: str) -> str:
    """`name` itself if it is one plain file or folder name (`is_plain_name`), else `ZooError`: names that come
    from a registry entry, a URL or an archive are joined to zoo's cache folders, and `../`, absolute paths,
    separators or an empty name would reach outside them."""
    text = str(name)
    if not is_plain_name(text):
        from zoo.errors import ZooError

        raise ZooError(f"{what} {name!r} is not a plain file name: zoo keeps such files inside its cache "
                       f"folder ({zoo_cache_dir()}), so a name with '/', '..' or an absolute path is refused. "
                       "Fix the registry entry (or the file you were given).")
    return text


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def apply_umask(path: str | os.PathLike[str]) -> None:
    """Give a file or folder made by `tempfile` (0600 / 0700) the permissions an ordinary `open` or
    `mkdir` would have given it, so other users and jobs can read what was published."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is (by its name) an `atomic_file` temporary: `.<name>.<random>.tmp`. A process killed
    mid-write leaves one behind; it is never a finished file."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".tmp")


class DigestWriter:
    """A write-only file object that passes bytes on to `target` and counts their size and sha256 on the way,
    so a file's checksum is known when it is written without reading it back."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.size = 0
        self._sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha256.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], before_replace: Callable[[], None] | None = None) -> Iterator[BinaryIO]:
    """Write `path` through a temporary file in the same folder: on success it is flushed, fsynced
    and renamed into place; on any error the temporary file is removed and `path` is left untouched.
    `before_replace` runs after the fsync, just before the rename (e.g. to record the new file's checksum)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        apply_umask(tmp)
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)
