"""The authors' releases: where their files live, how they are fetched, verified, read and converted.

A registry entry's ``weights.official`` names one file, or one file per part (``a2b``/``b2a`` for releases with a
file per direction, named parts such as ``decoder``/``vgg`` for AdaIN). Each file is looked for in
``$ZOO_CACHE/official/`` and downloaded there when missing (``manual: true`` URLs are pages, never fetched). A file
inside an archive (``member: candy.pth`` of ``saved_models.zip``) is read from the archive, or from the extracted
file if the user put that in the cache.

sha256: a digest in registry.yaml is enforced. Where it is unknown (``null``) the first file used is recorded
beside it (``<file>.sha256``) and its digest printed; a later file of the same name with another digest is refused.

Files are read with ``torch.load(weights_only=True)`` or, for TensorFlow checkpoints, a tensor-only reader
(`zoo.tfcheckpoint`): nothing is ever unpickled beyond tensors and plain containers.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import logging
import pickle
import sys
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from zoo import registry
from zoo.errors import CheckpointError, ZooError
from zoo.fsutil import atomic_file, plain_name, sha256_file, zoo_cache_dir
from zoo.module import ZooModule

__all__ = [
    "official_files",
    "official_dir",
    "is_extracted_member",
    "present_file",
    "how_to_provide",
    "official_cache_path",
    "converted_cache_dir",
    "lock",
    "verify_sha256",
    "read_checkpoint",
    "fetch_and_convert",
    "REFUSE_PICKLE",
]

log = logging.getLogger(__name__)

REFUSE_PICKLE = (
    "zoo refuses to unpickle anything but tensors and plain containers, because a pickle can run arbitrary "
    "code. If you trust this file, load it yourself (torch.load(path, weights_only=False)), rebuild the "
    "model and call model.save_pretrained(folder); then zoo.load(folder)."
)
_LOCK_TIMEOUT_S = 3600.0


# ----------------------------------------------------------------------------------------- where
def official_files(entry: Mapping[str, Any]) -> dict[str | None, dict[str, Any]]:
    """{None: spec} for one file, {part: spec} for releases in several files, {} when there is none."""
    off = (entry.get("weights") or {}).get("official")
    if not off:
        return {}
    if "url" in off:
        return {None: off}
    return dict(off)


def _url_name(spec: Mapping[str, Any]) -> str:
    if spec.get("filename"):
        return plain_name(spec["filename"], "the registry entry's filename")
    return plain_name(Path(urllib.parse.urlparse(spec["url"]).path).name, f"the file name of URL {spec['url']}")


def _member_name(spec: Mapping[str, Any]) -> str:
    """The file name of an archive member (its folders inside the archive are dropped)."""
    return plain_name(Path(spec["member"]).name, "the registry entry's member")


def official_dir() -> Path:
    """``$ZOO_CACHE/official``: where official files are downloaded to, or put by hand."""
    return zoo_cache_dir() / "official"


def is_extracted_member(path: Path, spec: Mapping[str, Any]) -> bool:
    """True when `path` is the file an archive release holds (put there by hand), not the archive itself."""
    return bool(spec.get("member")) and not _is_archive(path)


def official_cache_path(spec: Mapping[str, Any]) -> Path:
    """Where an official file is kept: ``$ZOO_CACHE/official/<filename or URL basename>`` (for a member of an
    archive, the archive)."""
    return official_dir() / _url_name(spec)


def _member_cache_path(spec: Mapping[str, Any]) -> Path | None:
    """Where a user may put the already-extracted member of an archive release."""
    member = spec.get("member")
    return official_dir() / _member_name(spec) if member else None


def converted_cache_dir(name: str) -> Path:
    """Where the converted official weights of registry entry `name` are cached (a save_pretrained folder)."""
    return zoo_cache_dir() / "converted" / plain_name(name, "registry name")


def present_file(spec: Mapping[str, Any], folder: Path | None = None) -> Path | None:
    """The official file of `spec` in `folder` (default `official_dir()`: the extracted member first, then the
    file or archive the URL names), or None."""
    folder = official_dir() if folder is None else folder
    names = [_member_name(spec)] if spec.get("member") else []
    names.append(_url_name(spec))
    return next((folder / n for n in names if (folder / n).is_file()), None)


@contextlib.contextmanager
def lock(name: str) -> Iterator[None]:
    """An inter-process lock for fetching and converting registry entry `name`: a second process waits, then
    finds the converted folder the first one wrote (save_pretrained also swaps folders in atomically)."""
    from filelock import FileLock, Timeout

    path = zoo_cache_dir() / "locks" / f"{plain_name(name, 'registry name')}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    file_lock = FileLock(str(path))
    try:
        file_lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another process that is converting %s (lock %s)", name, path)
        try:
            file_lock.acquire(timeout=_LOCK_TIMEOUT_S)
        except Timeout:
            raise ZooError(f"{name}: another process has held {path} for over {_LOCK_TIMEOUT_S:.0f} s; if no zoo "
                           f"process is running, delete that file and retry.") from None
    try:
        yield
    finally:
        file_lock.release()


# ------------------------------------------------------------------------------------------- sha256
def verify_sha256(path: Path, spec: Mapping[str, Any], *, is_member: bool = False) -> str:
    """Check an official file's sha256 and return it.

    Against registry.yaml's digest when it has one (for archive releases that digest is the archive's, so an
    extracted member is checked against its record only); otherwise against the digest recorded the first time a
    file of this name was used, which is written then and printed. A mismatch raises `CheckpointError`."""
    digest = sha256_file(path)
    cache_name = _member_name(spec) if is_member else _url_name(spec)
    expected = None if is_member else spec.get("sha256")
    if expected:
        if digest != expected:
            raise CheckpointError(
                f"{path} has sha256 {digest} but registry.yaml expects {expected} for {spec['url']}: the file is "
                f"corrupt or another release; delete it and download it again."
            )
        return digest
    record = official_dir() / f"{cache_name}.sha256"
    if record.is_file():
        recorded = (record.read_text(encoding="utf-8").split() or [""])[0]
        if recorded != digest:
            raise CheckpointError(
                f"{path} has sha256 {digest}, but the {cache_name} first used on this machine had {recorded} "
                f"(recorded in {record}; registry.yaml has no digest for {spec['url']}). Refusing a file that changed: "
                f"if the release really changed upstream, delete {record} and retry."
            )
        return digest
    with atomic_file(record) as out:
        out.write(f"{digest}  {spec['url']}\n".encode())
    print(f"zoo: {cache_name} ({spec['url']}) has no sha256 in registry.yaml; this copy has sha256 {digest}, "
          f"recorded in {record}: a different file under this name will be refused.", file=sys.stderr)
    return digest


# ----------------------------------------------------------------------------------------- reading
def _torch_load(source: Path | io.BytesIO, label: str) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        detail = next((ln.strip() for ln in first if "GLOBAL" in ln or "global" in ln), first[0] if first else "")
        raise CheckpointError(f"{label} needs more than weights to unpickle ({detail}). {REFUSE_PICKLE}") from None
    except Exception as e:
        raise CheckpointError(f"cannot read {label}: {type(e).__name__}: {e}") from None


def read_checkpoint(path: str | Path, *, member: str | None = None, format: str | None = None) -> Any:
    """The tensors of an official file: a PyTorch file through ``torch.load(weights_only=True)`` (the zip format,
    the legacy PyTorch <= 1.5 format incl. 0.3 files, ``.pth.tar``); a TensorFlow V1/V2 checkpoint through
    `zoo.tfcheckpoint` ({variable name: array}, no TensorFlow needed); `member` of a zip archive (matched by its
    name in any folder of the archive). `format` ("torch" or "tensorflow") forces the reader; by default the
    file's bytes decide. Anything else raises `CheckpointError` saying why."""
    path = Path(path)
    from zoo.tfcheckpoint import is_tf_checkpoint, read_tf_checkpoint

    if not path.exists() and not Path(f"{path}.index").is_file():
        raise CheckpointError(f"no such file: {path}")
    if member is not None and _is_archive(path):
        return _torch_load(io.BytesIO(_member_bytes(path, member)), f"{member} in {path}")
    if format == "tensorflow" or (format is None and is_tf_checkpoint(path)):
        return read_tf_checkpoint(path)
    return _torch_load(path, str(path))


def _is_archive(path: Path) -> bool:
    """A zip archive of release files (saved_models.zip), not one torch.save file (also a zip, with a data.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return not any(n.endswith("/data.pkl") or n == "data.pkl" for n in z.namelist())


def _member_bytes(archive: Path, member: str) -> bytes:
    want = Path(member).name
    try:
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            hits = [n for n in names if n == member or Path(n).name == want]
            if not hits:
                raise CheckpointError(
                    f"{archive} has no {member!r}; it holds {', '.join(sorted(names)[:12]) or 'nothing'}. "
                    f"Delete the archive to download it again, or put {want} itself in {archive.parent}."
                )
            return z.read(sorted(hits, key=len)[0])
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"{archive} is not a readable zip archive ({e}); delete it and download it again.") from None


# ---------------------------------------------------------------------------------------- download
def _download(url: str, dest: Path, sha256: str | None) -> None:
    h = hashlib.sha256()
    with atomic_file(dest) as out, urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (http(s) only)
        while block := resp.read(1 << 20):
            out.write(block)
            h.update(block)
        if sha256 is not None and h.hexdigest() != sha256:
            raise CheckpointError(f"{url} downloaded with sha256 {h.hexdigest()}, expected {sha256}; not kept.")


def how_to_provide(name: str, spec: Mapping[str, Any], part: str | None) -> str:
    """One line telling a user behind a firewall how to side-load this file."""
    label = f" ({part})" if part else ""
    target = official_cache_path(spec)
    get = (f"download {target.name} by hand from the page {spec['url']}" if spec.get("manual")
           else f"download {spec['url']}")
    member = f" (or only its {spec['member']}, as {_member_cache_path(spec)})" if spec.get("member") else ""
    side = f"zoo.load({name!r}, file=PATH)" if part is None else f"zoo.load({name!r}, file={{{part!r}: PATH, ...}})"
    return f"{get}{label} and put it at {target}{member}, or pass it: {side}"


def _locate(name: str, part: str | None, spec: Mapping[str, Any], side_loaded: Path | None, offline: bool,
            tried: list[str]) -> tuple[Path, bool] | None:
    """(path, is_extracted_member) of the official file, downloading it when allowed; None with the reason in
    `tried` when it is not here and cannot be fetched."""
    label = f"official file{f' ({part})' if part else ''} {spec['url']} -> {official_cache_path(spec)}"
    if side_loaded is not None:
        if not side_loaded.exists():
            raise CheckpointError(f"{name}: the side-loaded file {side_loaded} does not exist.")
        return side_loaded, is_extracted_member(side_loaded, spec)
    path = present_file(spec)
    if path is not None:
        return path, is_extracted_member(path, spec)
    if registry.get_converter(spec["converter"]) is None:  # no point downloading what cannot be converted
        tried.append(f"{label}: not present, and no {spec['converter']!r} converter is registered to read it")
        return None
    if spec.get("manual"):  # a page (Google Drive folder, ...), not the file: fetching would store HTML as weights
        tried.append(f"{label}: not present; it is behind a page: {how_to_provide(name, spec, part)}")
        return None
    if offline:
        tried.append(f"{label}: not present, and offline mode (HF_HUB_OFFLINE / ZOO_OFFLINE) forbids downloading; "
                     f"{how_to_provide(name, spec, part)}")
        return None
    path = official_cache_path(spec)
    try:
        _download(spec["url"], path, spec.get("sha256"))
    except CheckpointError:
        raise
    except Exception as e:
        tried.append(f"{label}: not present, download failed ({type(e).__name__}: {e}); "
                     f"{how_to_provide(name, spec, part)}")
        return None
    return path, False


def fetch_and_convert(name: str, entry: Mapping[str, Any], *, side_loaded: Mapping[str | None, Path] | None = None,
                      offline: bool = False, tried: list[str]) -> ZooModule | None:
    """Find or download the official file(s) of registry entry `name`, verify their sha256, read and convert them;
    None (with the reasons appended to `tried`) when a file is missing and cannot be fetched."""
    files = official_files(entry)
    side_loaded = dict(side_loaded or {})
    unknown = set(side_loaded) - set(files)
    if unknown:
        parts = ", ".join(repr(p) for p in files if p) or "none (one file: pass file=PATH)"
        raise ZooError(f"{name}: no part {sorted(map(str, unknown))[0]!r} among its official files; parts: {parts}")
    located: dict[str | None, tuple[Path, bool]] = {}
    for part, spec in files.items():
        found = _locate(name, part, spec, side_loaded.get(part), offline, tried)
        if found is not None:
            located[part] = found
    if len(located) < len(files):
        return None
    conv_key = next(iter(files.values()))["converter"]
    converter = registry.get_converter(conv_key)
    if converter is None:
        tried.append(f"official file(s) {', '.join(str(p) for p, _ in located.values())}: present, but no converter "
                     f"is registered for {conv_key!r} (zoo.registry.register_converter)")
        return None
    states = {}
    for part, (path, is_member) in located.items():
        spec = files[part]
        verify_sha256(path, spec, is_member=is_member)
        states[part] = read_checkpoint(path, member=None if is_member else spec.get("member"),
                                       format=spec.get("format"))
    arg = states[None] if None in states else states
    try:
        model = converter(arg, **copy.deepcopy(entry.get("hparams") or {}))
    except CheckpointError as e:
        sources = ", ".join(str(p) for p, _ in located.values())
        raise CheckpointError(f"{name}: converting {sources}: {e}") from None
    if not isinstance(model, ZooModule) or model.method != entry["method"]:
        raise CheckpointError(
            f"converter {conv_key!r} returned {type(model).__name__}, expected a {entry['method']!r} ZooModule."
        )
    return registry.apply_entry(model, name, entry)

