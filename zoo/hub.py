"""Weights in and out: `save_pretrained`, `load` (= `zoo.load`), `push_to_hub`, strict loading, sha256.

On disk a model is a folder: ``model.safetensors`` (the full state dict), ``config.json`` (method, hparams,
io contract, zoo version, components) and ``README.md`` (the model card). `load` accepts such a folder, a
Lightning ``.ckpt``, ``hf-hub:org/repo[@revision]`` (through the Hugging Face cache, so ``HF_HUB_OFFLINE=1``
and revision pins work), or a registry name (Hub copy first, then the official release through its
converter, cached under ``$ZOO_CACHE``). Nothing is ever unpickled beyond tensors and plain containers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from zoo import official, registry
from zoo.fsutil import fsync_dir, sha256_file, zoo_cache_dir
from zoo.errors import CheckpointError, UnknownModelError, WeightsNotFoundError, ZooError
from zoo.redact import redact
from zoo.module import ZooModule

__all__ = [
    "WEIGHTS_NAME",
    "CONFIG_NAME",
    "CARD_NAME",
    "save_pretrained",
    "load",
    "push_to_hub",
    "load_state_dict_strict",
    "sha256_file",
    "weights_sha256",
    "zoo_cache_dir",
    "official_cache_path",
    "converted_cache_dir",
    "is_offline",
    "weights_available",
]

log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
_FILES = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


# ------------------------------------------------------------------------------------ small helpers
def weights_sha256(model: torch.nn.Module) -> str:
    """The sha256 of `model`'s weights as `save_pretrained` would write them (model.safetensors): the
    same digest as the file of a folder saved from this model, computed in memory."""
    from safetensors.torch import save

    return hashlib.sha256(save(_safetensors_state(model), metadata={"format": "pt"})).hexdigest()


def _official_files(entry: Mapping[str, Any]) -> dict[str | None, dict[str, Any]]:
    return official.official_files(entry)


official_cache_path = official.official_cache_path
converted_cache_dir = official.converted_cache_dir


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (as huggingface_hub sees it) or ``ZOO_OFFLINE`` is set."""
    if _truthy(os.environ.get("ZOO_OFFLINE")) or _truthy(os.environ.get("HF_HUB_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - huggingface_hub is a dependency
        return False


def _truthy(v: str | None) -> bool:
    return v is not None and v.strip().lower() in ("1", "true", "yes", "on")


def _is_folder_complete(folder: Path) -> bool:
    return (folder / CONFIG_NAME).is_file() and (folder / WEIGHTS_NAME).is_file()


def weights_available(name: str, entry: Mapping[str, Any]) -> dict[str, bool]:
    """Which weight sources of a registry entry are already on this machine (no network)."""
    out: dict[str, bool] = {}
    weights = entry.get("weights") or {}
    hub = weights.get("hub")
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache

            paths = [try_to_load_from_cache(hub["repo"], f, revision=hub["revision"]) for f in (CONFIG_NAME, WEIGHTS_NAME)]
            out["hub"] = all(isinstance(p, str) for p in paths)
        except Exception:
            out["hub"] = False
    files = _official_files(entry)
    if files:
        out["official"] = all(official.present_file(spec) is not None for spec in files.values())
        out["converted"] = _is_folder_complete(converted_cache_dir(name))
    return out


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


# ------------------------------------------------------------------------------ save_pretrained
def _safetensors_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The full state dict, detached, on CPU, contiguous, with no two tensors sharing storage."""
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for key, t in model.state_dict().items():
        if not isinstance(t, torch.Tensor):  # pragma: no cover - get_extra_state() payloads
            raise CheckpointError(f"state_dict entry {key!r} is a {type(t).__name__}, not a tensor; safetensors stores tensors only.")
        t = t.detach().cpu()
        if t.layout is not torch.strided:
            t = t.to_dense()
        t = t.contiguous()
        storage = t.untyped_storage()
        ident = (storage.data_ptr(), storage.nbytes())
        if ident in seen or storage.nbytes() != t.numel() * t.element_size():
            t = t.clone()  # shared (tied weights, views) or a slice of a larger buffer: give it its own storage
            storage = t.untyped_storage()
            ident = (storage.data_ptr(), storage.nbytes())
        if t.numel():
            seen.add(ident)
        out[key] = t
    return out


def _card_value(card: Mapping[str, Any], model: ZooModule, key: str, default: Any = None) -> Any:
    if card.get(key) is not None:
        return card[key]
    mcard = getattr(model, "card", None) or {}
    if mcard.get(key) is not None:
        return mcard[key]
    return default


def _registry_entry_for_card(card: Mapping[str, Any], model: ZooModule) -> dict[str, Any] | None:
    name = _card_value(card, model, "name")
    if not isinstance(name, str):
        return None
    try:
        return registry.get_entry(name)
    except ZooError:
        return None


def _yaml_scalar(v: Any) -> str:
    return json.dumps(str(v))


def _model_card(model: ZooModule, config: dict[str, Any], weights_sha256: str, card: Mapping[str, Any]) -> str:
    entry = _registry_entry_for_card(card, model) or {}
    license_ = _card_value(card, model, "license", entry.get("license", "unknown"))
    paper = _card_value(card, model, "paper", entry.get("paper"))
    dataset = _card_value(card, model, "dataset", entry.get("dataset"))
    ds_name = dataset.get("name") if isinstance(dataset, Mapping) else dataset
    name = _card_value(card, model, "name", model.method)
    metrics = _card_value(card, model, "metrics", None) or (entry.get("results") or None)
    task = config.get("task") or model.task
    repo_hint = _card_value(card, model, "repo_id", None)

    fm = ["---", "library_name: zoo", f"license: {_yaml_scalar(str(license_).lower() if license_ else 'unknown')}", "tags:"]
    for tag in ("zoo", model.method, task, "image-to-image"):
        if tag:
            fm.append(f"- {_yaml_scalar(tag)}")
    if ds_name:
        fm += ["datasets:", f"- {_yaml_scalar(ds_name)}"]
    fm.append("---")

    lines = [*fm, "", f"# {name}", ""]
    for warning in _card_value(card, model, "warnings", None) or []:
        lines += [f"> **WARNING:** {warning}", ""]
    desc = _card_value(card, model, "description", entry.get("description"))
    if desc:
        lines += [str(desc), ""]
    lines += [f"- **Method:** `{model.method}` ({type(model).__name__})", f"- **Task:** {task or 'n/a'}"]
    if paper:
        link = f"https://arxiv.org/abs/{paper.split(':', 1)[1]}" if str(paper).lower().startswith("arxiv:") else None
        lines.append(f"- **Paper:** [{paper}]({link})" if link else f"- **Paper:** {paper}")
    if dataset:
        if isinstance(dataset, Mapping):
            extra = ", ".join(f"{k}: {v}" for k, v in dataset.items() if k != "name")
            lines.append(f"- **Dataset:** {ds_name}{f' ({extra})' if extra else ''}")
        else:
            lines.append(f"- **Dataset:** {dataset}")
    lines.append(f"- **License:** {license_ or 'unknown'}")
    origin = _card_value(card, model, "origin", entry.get("origin"))
    if origin:
        lines.append(f"- **Origin:** {origin}")
    lines += ["", "## Hyperparameters", "", "| name | value |", "|---|---|"]
    for k, v in sorted(config.get("hparams", {}).items()):
        lines.append(f"| `{k}` | `{json.dumps(v)}` |")
    if not config.get("hparams"):
        lines.append("| (defaults) | |")
    lines += ["", "## I/O contract", "", "| key | value |", "|---|---|"]
    for k, v in config.get("io", {}).items():
        lines.append(f"| `{k}` | `{json.dumps(v)}` |")
    lines += ["", "## Metrics", ""]
    if metrics:
        lines.append("```json")
        lines.append(json.dumps(metrics, indent=2, sort_keys=True, default=str))
        lines.append("```")
    else:
        lines.append("No metrics recorded yet (`python -m zoo.bench` writes them).")
    lines += [
        "",
        "## Files",
        "",
        f"- `{WEIGHTS_NAME}` sha256: `{weights_sha256}`",
        f"- `{CONFIG_NAME}`: method, hparams, io contract, zoo version ({config.get('zoo_version')})",
        "",
        "## How to load",
        "",
        "```python",
        "import zoo",
        f"model = zoo.load({('hf-hub:' + repo_hint) if repo_hint else 'path/to/this/folder'!r})",
    ]
    verb = {"translation": "translate", "translation-multimodal": "translate", "style": "stylize",
            "super-resolution": "upscale", "colorization": "colorize"}.get(task or "")
    if verb:
        lines.append(f"out = model.{verb}(image)  # PIL image, HWC uint8 array, path or BCHW tensor in [0, 1]")
    lines += ["```", ""]
    return "\n".join(lines)


def save_pretrained(
    model: ZooModule, directory: str | os.PathLike[str], *, components: Iterable[str] | None = None, **card: Any
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` into `directory`, atomically.

    The files are written and fsynced in a temporary sibling folder that is then swapped into place by
    two renames, so a crash leaves a complete folder: the previous one, the new one, or (if killed
    between the two renames) the previous one under ``.<name>.old-*`` beside it. Files already in `directory` other
    than these three are carried over. `card` adds model-card fields (name, dataset, license, paper,
    metrics, description, repo_id) over ``model.card``. `components` (e.g. ``model.inference_modules``)
    keeps only those top-level submodules' weights: a published model may hold its generators only.
    Returns the folder.
    """
    target = Path(directory).expanduser().resolve()
    if target.exists() and not target.is_dir():
        raise ZooError(f"{target} exists and is not a folder; save_pretrained writes a folder.")
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        # The folder is swapped out as a whole: that would pull the working directory from under us.
        raise ZooError(f"{target} is the current folder (or holds it): save into a dedicated folder, e.g. "
                       f"save_pretrained('{target / 'my-model'}')")
    target.parent.mkdir(parents=True, exist_ok=True)

    state = _safetensors_state(model)
    if components is not None:
        keep = set(components)
        unknown = keep - {name for name, _ in model.named_children()}
        if unknown:
            raise ZooError(f"save_pretrained: {type(model).__name__} has no component {sorted(unknown)[0]!r}")
        state = {k: v for k, v in state.items() if k.split(".", 1)[0] in keep}
    config = model.config()
    # the top-level submodules whose weights are in the file (G, D, ...), not parameter-free ones (losses)
    owners = {k.split(".", 1)[0] for k in state}
    config["components"] = [n for n, _ in model.named_children() if n in owners]
    # The card's fields (licence, dataset, description, benchmark results) travel with the weights,
    # so a folder loaded and saved again (e.g. by `zoo.bench --update-registry`) keeps its card.
    from zoo.module import _jsonable

    config["card"] = _jsonable({k: v for k, v in {**model.card, **card}.items() if k != "repo_id" and v is not None})

    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        from safetensors.torch import save_file

        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        digest = sha256_file(tmp / WEIGHTS_NAME)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        (tmp / CARD_NAME).write_text(_model_card(model, config, digest, card), encoding="utf-8")
        if target.is_dir():
            _carry_over(target, tmp)
        for f in _FILES:
            _fsync_file(tmp / f)
        fsync_dir(tmp)
        if target.is_dir():
            os.rename(target, old)
            os.rename(tmp, target)
            fsync_dir(target.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
            fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not target.exists():  # crashed between the two renames: put the old one back
            os.rename(old, target)
        raise
    return target


def _carry_over(src: Path, dst: Path) -> None:
    """Copy (hard-link when possible) what `src` holds besides our files into `dst`."""

    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    for item in src.iterdir():
        if item.name in _FILES:
            continue
        dest = dst / item.name
        if item.is_symlink():
            os.symlink(os.readlink(item), dest)
        elif item.is_dir():
            shutil.copytree(item, dest, symlinks=True, copy_function=link_or_copy)
        else:
            link_or_copy(str(item), str(dest))


# ------------------------------------------------------------------------------- strict loading
def _fmt_keys(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... and {len(keys) - limit} more" if len(keys) > limit else "")


def load_state_dict_strict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True) -> None:
    """Load `state_dict` into `model`, raising `CheckpointError` that names every problem.

    Unexpected keys, missing keys and shape mismatches are errors, except that a whole top-level component
    (first key segment) outside ``model.inference_modules`` may be absent (published weights often hold
    the generators only). With ``strict=False`` the problems are warned about and what matches is loaded.
    """
    expected = model.state_dict()
    optional = set()
    inference = tuple(getattr(model, "inference_modules", ()) or ())
    if inference:  # nothing declared needed -> nothing may be left out
        by_component: dict[str, list[str]] = {}
        for k in expected:
            by_component.setdefault(k.split(".", 1)[0], []).append(k)
        for comp, keys in by_component.items():
            if comp not in inference and not any(k in state_dict for k in keys):
                optional.add(comp)

    unexpected = [k for k in state_dict if k not in expected]
    missing = [k for k in expected if k not in state_dict and k.split(".", 1)[0] not in optional]
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(expected[k].shape))
        for k in state_dict
        if k in expected and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_fmt_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_fmt_keys(unexpected)}")
    if mismatched:
        shown = [f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in mismatched]
        problems.append(f"shape mismatches ({len(mismatched)}): {_fmt_keys(shown)}")
    if problems:
        msg = (
            f"the weights do not fit this {type(model).__name__} model: " + "; ".join(problems) + ". "
            "They were probably saved with other hyperparameters or by another method: rebuild the model with "
            "the hparams the weights were trained with (config.json), or pass strict=False to load what matches."
        )
        if strict:
            raise CheckpointError(msg)
        warnings.warn(msg, stacklevel=2)
    if optional:
        log.info("weights hold no %s; those components keep their initial values", ", ".join(sorted(optional)))
    bad = {k for k, _, _ in mismatched}
    filtered = {k: v for k, v in state_dict.items() if k in expected and k not in bad}
    model.load_state_dict(filtered, strict=False)


# ---------------------------------------------------------------------------------------- load
def _build(cls: type[ZooModule], hparams: Mapping[str, Any], source: str) -> ZooModule:
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"{source}: 'hparams' must be a mapping, got {type(hparams).__name__}.")
    # Lightning's own bookkeeping (LightningCLI records `_class_path`, `_instantiator`) is not a hyperparameter.
    hparams = {k: v for k, v in hparams.items() if not str(k).startswith("_")}
    bad, valid = registry.unknown_hparams(cls, hparams)
    if bad:
        raise CheckpointError(
            f"{source}: hyperparameter {bad[0]!r} is not accepted by {cls.__name__} ({cls.method!r}); valid ones: "
            f"{', '.join(valid) or '(none)'}. The weights were probably written by another zoo version."
        )
    return cls(**dict(hparams))


def _method_for(key: Any, source: str) -> type[ZooModule]:
    try:
        return registry.get_method(key)
    except UnknownModelError:
        raise CheckpointError(
            f"{source} was written by method {key!r}, which is not registered here "
            f"(registered: {', '.join(registry.method_keys()) or 'none'}); upgrade zoo or import the package that "
            f"registers it."
        ) from None


def _finish(model: ZooModule, device: str | torch.device) -> ZooModule:
    model.to(device)
    if model.io.get("eval_mode", True) is not False:
        model.eval()
    # eval_mode False: the method decides its inference-time mode (e.g. pix2pix's test-time dropout).
    return model


def _load_files(config_path: Path, weights_path: Path, *, device: Any, strict: bool, source: str) -> ZooModule:
    try:
        config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {config_path}: {e}") from None
    if not isinstance(config, dict) or "method" not in config:
        raise CheckpointError(f"{config_path} has no 'method'; it was not written by zoo's save_pretrained.")
    cls = _method_for(config["method"], source)
    model = _build(cls, config.get("hparams") or {}, source)
    io = config.get("io") or {}
    if not isinstance(io, dict):
        raise CheckpointError(f"{config_path}: 'io' must be a mapping, got {type(io).__name__}.")
    model.io = {**model.io, **copy.deepcopy(io)}
    saved_card = config.get("card") or {}
    if isinstance(saved_card, dict):
        model.card.update(copy.deepcopy(saved_card))
    try:
        from safetensors.torch import load_file

        state = load_file(str(weights_path), device="cpu")
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"cannot read {weights_path}: {type(e).__name__}: {e}. Re-download or re-save it.") from None
    try:
        load_state_dict_strict(model, state, strict=strict)
    except CheckpointError as e:
        raise CheckpointError(f"{source}: {e}") from None
    return _finish(model, device)


def _load_folder(folder: Path, *, device: Any, strict: bool) -> ZooModule:
    for f in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / f).is_file():
            raise CheckpointError(
                f"{folder} has no {f}; a zoo weights folder holds {CONFIG_NAME} and {WEIGHTS_NAME} "
                f"(written by model.save_pretrained(folder))."
            )
    return _load_files(folder / CONFIG_NAME, folder / WEIGHTS_NAME, device=device, strict=strict, source=str(folder))


def _torch_load_safe(path: Path) -> Any:
    return official.read_checkpoint(path)


def _load_ckpt(path: Path, *, device: Any, strict: bool) -> ZooModule:
    from zoo.training import verify_checkpoint

    verify_checkpoint(path)  # against the size and sha256 recorded when zoo.fit wrote it
    ckpt = _torch_load_safe(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint (no 'state_dict'). An official release (a bare state dict) is "
            f"converted with `python -m zoo.convert <method> {path} --out DIR`, then zoo.load(DIR)."
        )
    meta = ckpt.get("zoo")
    if not isinstance(meta, dict) or "method" not in meta:
        raise CheckpointError(
            f"{path} is a Lightning checkpoint without zoo metadata (checkpoint['zoo']['method']); it was not "
            f"written by a zoo.ZooModule. Rebuild the model with zoo.create(...) and load its 'state_dict' yourself."
        )
    cls = _method_for(meta["method"], str(path))
    model = _build(cls, ckpt.get("hyper_parameters") or {}, str(path))
    if isinstance(meta.get("io"), dict):
        model.io = {**model.io, **copy.deepcopy(meta["io"])}
    for warning in meta.get("warnings") or []:  # e.g. trained against random VGG features
        model.note_random_features(str(warning))
    try:
        load_state_dict_strict(model, ckpt["state_dict"], strict=strict)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return _finish(model, device)


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _hub_download(repo: str, revision: str | None) -> tuple[Path, Path]:
    """(config.json, model.safetensors) from the HF cache / Hub; `WeightsNotFoundError` when impossible."""
    from huggingface_hub import hf_hub_download

    rev = revision or "main"
    local_only = is_offline()  # ZOO_OFFLINE too, not only HF_HUB_OFFLINE
    try:
        config_path = Path(
            hf_hub_download(repo, CONFIG_NAME, revision=rev, library_name="zoo", local_files_only=local_only)
        )
        # pin the second file to the commit the first one resolved to
        commit = config_path.parent.name
        pinned = commit if _COMMIT_RE.match(commit) else rev
        weights_path = Path(
            hf_hub_download(repo, WEIGHTS_NAME, revision=pinned, library_name="zoo", local_files_only=local_only)
        )
    except Exception as e:  # every huggingface_hub failure (offline, 404, auth, connection) ends up here
        reason = redact(f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}")
        offline = " (offline mode: HF_HUB_OFFLINE or ZOO_OFFLINE is set)" if local_only else ""
        err = WeightsNotFoundError(
            f"could not get {CONFIG_NAME} and {WEIGHTS_NAME} of Hugging Face Hub repo {repo!r} at revision {rev!r}"
            f"{offline}: {reason}. Looked in the HF cache {_hf_cache_dir()}. To fix: go online (unset HF_HUB_OFFLINE and "
            f"ZOO_OFFLINE), "
            f"pre-download with `hf download {repo} --revision {rev}` (older: `huggingface-cli download`), "
            f"or pass a local save_pretrained folder to zoo.load()."
        )
        err.reason = f"{reason}{offline}; HF cache {_hf_cache_dir()}"  # type: ignore[attr-defined]
        raise err from None
    return config_path, weights_path


def _parse_hf_hub(spec: str, revision: str | None) -> tuple[str, str | None]:
    body = spec[len("hf-hub:"):].strip()
    repo, _, rev = body.partition("@")
    if not registry._REPO_RE.match(repo):
        raise ZooError(f"{spec!r}: expected 'hf-hub:org/name' or 'hf-hub:org/name@revision'.")
    rev = rev or None
    if rev and revision and rev != revision:
        raise ZooError(f"{spec!r} pins revision {rev!r} but revision={revision!r} was passed; give only one.")
    return repo, rev or revision


def _looks_like_path(s: str) -> bool:
    return (
        "/" in s
        or "\\" in s
        or s.startswith((".", "~"))
        or s.lower().endswith((".ckpt", ".pth", ".pt", ".safetensors", ".json", ".bin"))
    )


def load(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    device: str | torch.device = "cpu",
    strict: bool = True,
    file: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
) -> ZooModule:
    """A model ready for inference (`zoo.load`).

    `name_or_path` is a folder written by `save_pretrained`, a Lightning ``.ckpt``, ``hf-hub:org/repo[@rev]``
    or a registry name (see `zoo.list_models(pretrained=True)`). `revision` pins the Hub revision. The model
    is moved to `device` and put in eval() unless its io contract says ``eval_mode: false``.

    `file` side-loads a registry name's official release (for machines that cannot download it): the path of
    the authors' file, or ``{part: path}`` for releases in several files (``{"a2b": ..., "b2a": ...}``). It is
    checked against the sha256 that registry.yaml (or this machine's first use) knows, converted, and the
    conversion cached like a download's.
    """
    if file is not None:
        return _load_side_loaded(name_or_path, file, device=device, strict=strict)
    if isinstance(name_or_path, str) and name_or_path.startswith("hf-hub:"):
        repo, rev = _parse_hf_hub(name_or_path, revision)
        cfg, weights = _hub_download(repo, rev)
        return _load_files(cfg, weights, device=device, strict=strict, source=f"{name_or_path}")

    s = os.fspath(name_or_path)
    path = Path(s).expanduser()
    if path.is_dir():
        explicit = isinstance(name_or_path, os.PathLike)
        if explicit or _is_folder_complete(path) or not _is_registry_name(s, quiet=True):
            return _load_folder(path, device=device, strict=strict)
    elif path.is_file():
        if path.name in (CONFIG_NAME, WEIGHTS_NAME):
            return _load_folder(path.parent, device=device, strict=strict)
        return _load_ckpt(path, device=device, strict=strict)

    if isinstance(name_or_path, os.PathLike):
        raise CheckpointError(f"no such file or folder: {s!r} (resolved to {path.absolute()}).")
    if _is_registry_name(s):
        return _load_registry(s, revision=revision, device=device, strict=strict)
    if s in registry.method_keys() and registry.get_method(s).weight_free:
        return _finish(registry.create(s), device)  # an optimisation method: the recipe is the model
    if s in registry.method_keys():
        raise WeightsNotFoundError(
            f"{s!r} is a method, not a model with weights: zoo.create({s!r}) builds it untrained, "
            f"zoo.list_models({s + '-*'!r}, pretrained=True) lists its pretrained models, and "
            f"`python -m zoo.fit --model {s}` trains one."
        )
    if _looks_like_path(s):
        hint = ""
        if s.count("/") == 1 and not s.startswith((".", "/", "~")) and Path(s).suffix == "":
            hint = f" If you meant a Hugging Face Hub repo, write 'hf-hub:{s}'."
        raise CheckpointError(f"no such file or folder: {s!r} (resolved to {path.absolute()}).{hint}")
    raise registry._unknown(s)


def _is_registry_name(s: str, quiet: bool = False) -> bool:
    if "-" not in s or _looks_like_path(s):
        return False
    try:
        registry.resolve(s)
    except UnknownModelError:
        return False
    except ZooError:  # a broken registry.yaml: report it, unless we only wondered
        if quiet:
            return False
        raise
    return True


def _load_registry(name: str, *, revision: str | None, device: Any, strict: bool) -> ZooModule:
    cls, key, entry = registry.resolve(name)
    assert entry is not None
    weights = entry.get("weights") or {}
    if not weights:  # a weight-free entry (e.g. optimisation methods): the model is its recipe
        model = registry.create(key)
        return _finish(model, device)

    tried: list[str] = []
    hub = weights.get("hub")
    if hub:
        rev = revision or hub["revision"]
        try:
            cfg, wpath = _hub_download(hub["repo"], rev)
        except WeightsNotFoundError as e:
            tried.append(f"Hugging Face Hub hf-hub:{hub['repo']}@{rev} ({CONFIG_NAME}, {WEIGHTS_NAME}): {getattr(e, 'reason', e)}")
        else:
            if rev == hub["revision"]:
                digest = sha256_file(wpath)
                if digest != hub["sha256"]:
                    raise CheckpointError(
                        f"{key}: {WEIGHTS_NAME} from hf-hub:{hub['repo']}@{rev} ({wpath}) has sha256 {digest}, but "
                        f"registry.yaml expects {hub['sha256']}. The download is corrupt or the revision was "
                        f"rewritten: delete it from the HF cache and retry, or report the mismatch."
                    )
            return _load_files(cfg, wpath, device=device, strict=strict, source=f"{key} (hf-hub:{hub['repo']}@{rev})")

    files = _official_files(entry)
    if files:
        conv_dir = converted_cache_dir(key)
        model = _cached_conversion(conv_dir, device=device, strict=strict, tried=tried)
        if model is not None:
            return model
        with official.lock(key):  # a second process waits here, then loads what the first one cached
            model = _cached_conversion(conv_dir, device=device, strict=strict, tried=None)
            if model is not None:
                return model
            model = official.fetch_and_convert(key, entry, offline=is_offline(), tried=tried)
            if model is not None:
                _cache_conversion(model, key, entry)
                return _finish(model, device)

    how = []
    for part, spec in files.items():
        if registry.get_converter(spec["converter"]) is None:
            how.append(f"download {spec['url']} to {official_cache_path(spec)}, once a {spec['converter']!r} "
                       f"converter exists (this zoo version has none: the file cannot be read yet)")
        else:
            how.append(official.how_to_provide(key, spec, part) + " (zoo.load then converts and caches it)")
    how.append("zoo.load('<a folder written by model.save_pretrained>')")
    how.append(f"train one: python -m zoo.fit --model {entry['method']}")
    raise WeightsNotFoundError(
        f"no weights found for {key!r}. Sources tried:\n"
        + "\n".join(f"  {i}. {t}" for i, t in enumerate(tried, 1))
        + "\nTo provide weights:\n"
        + "\n".join(f"  - {h}" for h in how)
    )


def _cached_conversion(conv_dir: Path, *, device: Any, strict: bool, tried: list[str] | None) -> ZooModule | None:
    """The converted cache folder as a model, or None (noting why in `tried`) when absent or unreadable."""
    if not _is_folder_complete(conv_dir):
        if tried is not None:
            tried.append(f"converted cache {conv_dir}: not present")
        return None
    try:
        return _load_folder(conv_dir, device=device, strict=strict)
    except CheckpointError as e:
        log.warning("cached conversion %s does not load (%s); converting again", conv_dir, e)
        if tried is not None:
            tried.append(f"converted cache {conv_dir}: {e}")
        return None


def _cache_conversion(model: ZooModule, key: str, entry: Mapping[str, Any]) -> None:
    """Write the converted release into the cache: its inference networks only (no freshly initialised
    discriminators), swapped in atomically by save_pretrained."""
    conv_dir = converted_cache_dir(key)
    try:
        save_pretrained(model, conv_dir, components=model.inference_modules, name=key, origin=entry.get("origin"))
    except OSError as e:
        log.warning("could not cache the converted weights in %s: %s", conv_dir, e)


def _load_side_loaded(name: Any, file: Any, *, device: Any, strict: bool) -> ZooModule:
    """zoo.load(name, file=...): convert a user-provided official file of registry entry `name`."""
    s = os.fspath(name) if isinstance(name, (str, os.PathLike)) else name
    if not isinstance(s, str) or not _is_registry_name(s):
        raise ZooError(f"file= side-loads the official release of a registry name; {name!r} is not one "
                       f"(zoo.list_models(pretrained=True) lists them).")
    _, key, entry = registry.resolve(s)
    assert entry is not None
    files = _official_files(entry)
    if not files:
        raise ZooError(f"{key} has no official release to side-load (its weights: {sorted(entry.get('weights') or {})}).")
    if isinstance(file, Mapping):
        side = {str(part): Path(os.fspath(p)).expanduser() for part, p in file.items()}
    elif None in files:
        side = {None: Path(os.fspath(file)).expanduser()}
    else:
        raise ZooError(f"{key}'s release is in several files ({', '.join(map(str, files))}): pass "
                       f"file={{{', '.join(f'{p!r}: PATH' for p in files)}}}.")
    tried: list[str] = []
    with official.lock(key):
        model = official.fetch_and_convert(key, entry, side_loaded=side, offline=is_offline(), tried=tried)
        if model is None:  # a part that was not side-loaded is missing too
            raise WeightsNotFoundError(f"{key}: cannot convert the side-loaded file(s):\n" + "\n".join(f"  - {t}" for t in tried))
        _cache_conversion(model, key, entry)
    return _finish(model, device)


# ------------------------------------------------------------------------------------ push_to_hub
def push_to_hub(
    model: ZooModule,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    **card: Any,
) -> str:
    """Upload ``model.safetensors``, ``config.json`` and ``README.md`` to `repo_id`; return the commit (or PR) URL.

    The repo is created when missing; a `revision` other than main is created as a branch when missing.
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        folder = save_pretrained(model, Path(tmp) / "model", **{"repo_id": repo_id, **card})
        try:
            api.create_repo(repo_id, exist_ok=True, private=private, repo_type="model")
            if revision and revision != "main" and not create_pr:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            info = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(folder),
                revision=revision,
                commit_message=commit_message or f"Upload {model.method} model with zoo",
                create_pr=create_pr,
                repo_type="model",
            )
        except Exception as e:  # noqa: BLE001 - auth, network, quota: said once, without the token
            # `from None`: the original exception (and its traceback's locals) may carry the token.
            raise ZooError(f"pushing to Hugging Face Hub repo {repo_id!r} failed: "
                           f"{redact(f'{type(e).__name__}: {e}', [token])}. Check the repo name, your network "
                           "and that your token (HF_TOKEN or `hf auth login`) may write to it.") from None
    url = (getattr(info, "pr_url", None) if create_pr else None) or getattr(info, "commit_url", None) or str(info)
    log.info("pushed %s to %s", model.method, repo_id)
    return url
