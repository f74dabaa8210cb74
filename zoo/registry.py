"""The method registry (`@zoo.register`) and `registry.yaml` (the named models), loaded and validated.

Two namespaces live here:

* **method keys** (``pix2pix``, ``cyclegan``, ...): a `ZooModule` subclass registered with `@register`;
  `zoo.create("pix2pix")` builds it untrained with the paper's defaults.
* **model names** (``pix2pix-facades``, ...): the entries of `registry.yaml`, ``<method>-<tag>``, which add
  hyperparameters, an I/O contract, the dataset, the paper, the licence and where the weights live.
  `zoo.load(name)` fetches the weights (see `zoo.hub`).

`registry.yaml` is read lazily, once, from ``$ZOO_REGISTRY`` when set, else from the file next to this module,
and validated as a whole: every problem raises `RegistryError` naming the entry, the field and what is expected.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
import inspect
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from zoo.fsutil import is_plain_name
from zoo.errors import RegistryError, UnknownModelError, ZooError
from zoo.module import DEFAULT_IO, ZooModule

__all__ = [
    "register",
    "get_method",
    "method_keys",
    "register_converter",
    "get_converter",
    "registry_path",
    "reload_registry",
    "entries",
    "get_entry",
    "list_models",
    "info",
    "create",
    "apply_entry",
    "validate_registry",
    "validate_entry",
    "unknown_hparams",
    "method_defaults",
    "resolve",
    "TASKS",
    "ORIGINS",
    "DIRECTIONS",
]

TASKS = ("translation", "translation-multimodal", "style", "super-resolution", "colorization")
ORIGINS = ("official", "trained")
DIRECTIONS = ("a2b", "b2a")
RANGES = ([-1.0, 1.0], [0.0, 1.0])
#: How official files are read: torch.load(weights_only=True), or TensorFlow's checkpoint reader.
OFFICIAL_FORMATS = ("torch", "tensorflow")
_PART_RE = re.compile(r"^[a-z][a-z0-9_]*$")

_REQUIRED_FIELDS = ("method", "task", "hparams", "weights", "io", "dataset", "paper", "license", "origin")
_OPTIONAL_FIELDS = ("results", "description", "notes")
_IO_REQUIRED = ("range", "size_multiple", "directions", "eval_mode")
_IO_OPTIONAL = ("channels", "domains", "scale", "input_size")

_KEY_RE = re.compile(r"^[a-z0-9]+$")
_NAME_RE = re.compile(r"^(?P<method>[a-z0-9]+)-(?P<tag>[a-z0-9][a-z0-9_.-]*)$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_URL_RE = re.compile(r"^https?://[^\s/]+/\S+$")

_M = TypeVar("_M", bound=type)

# ------------------------------------------------------------------------------------------ methods
_METHODS: dict[str, type[ZooModule]] = {}
_CONVERTERS: dict[str, Callable[..., ZooModule]] = {}


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise RegistryError(
            f"invalid {what} {key!r}: keys are lowercase letters and digits only, with no hyphen "
            f"(a model name is '<method>-<tag>', e.g. 'pix2pix-facades'); pass key='...' to fix it."
        )
    return key


def register(cls: _M | None = None, *, key: str | None = None) -> Any:
    """Register a `ZooModule` subclass as a method: ``@register`` or ``@register(key="pix2pix")``.

    The key defaults to the lowercased class name and is stored in ``cls.method``. Registering the same
    class again (a re-import) is a no-op; another class under a taken key raises `RegistryError`.
    """

    def decorate(klass: _M) -> _M:
        if not (isinstance(klass, type) and issubclass(klass, ZooModule)):
            raise RegistryError(
                f"@zoo.register expects a subclass of zoo.ZooModule, got {klass!r}; derive the method from ZooModule."
            )
        k = _check_key(key if key is not None else klass.__name__.lower(), "method key")
        old = _METHODS.get(k)
        if old is not None and old is not klass and not _same_definition(old, klass):
            raise RegistryError(
                f"method key {k!r} is already registered to {old.__module__}.{old.__qualname__}; "
                f"cannot register {klass.__module__}.{klass.__qualname__} under it: pick another key."
            )
        klass.method = k  # type: ignore[attr-defined]
        _METHODS[k] = klass  # type: ignore[assignment]
        return klass

    if cls is not None:
        return decorate(cls)
    return decorate


def _same_definition(a: type, b: type) -> bool:
    """The same class re-executed (importlib.reload, a notebook cell run twice) may replace itself."""
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__


def get_method(key: str) -> type[ZooModule]:
    """The class registered under `key`; `UnknownModelError` (with the closest keys) when there is none."""
    try:
        return _METHODS[key]
    except (KeyError, TypeError):
        raise UnknownModelError(
            f"unknown method {key!r}. {_closest_hint(str(key), method_keys())}"
            f"Registered methods: {', '.join(method_keys()) or '(none)'}."
        ) from None


def method_keys() -> list[str]:
    """Every registered method key, sorted."""
    return sorted(_METHODS)


def register_converter(key: str) -> Callable[[Callable[..., ZooModule]], Callable[..., ZooModule]]:
    """Register ``fn(state_dict, **hparams) -> ZooModule`` that converts a method's official checkpoint.

    For entries whose official weights ship one file per direction, `state_dict` is ``{direction: state_dict}``.
    """
    _check_key(key, "converter key")

    def decorate(fn: Callable[..., ZooModule]) -> Callable[..., ZooModule]:
        old = _CONVERTERS.get(key)
        if old is not None and old is not fn and (old.__module__, old.__qualname__) != (fn.__module__, fn.__qualname__):
            raise RegistryError(f"a converter is already registered for {key!r} ({old.__module__}.{old.__qualname__}).")
        _CONVERTERS[key] = fn
        return fn

    return decorate


def get_converter(key: str) -> Callable[..., ZooModule] | None:
    """The official-checkpoint converter registered under `key`, or None."""
    return _CONVERTERS.get(key)


# --------------------------------------------------------------------------------- signature help
def _init_params(cls: type) -> tuple[dict[str, Any], set[str], bool]:
    """(defaults, all named parameters, accepts **kwargs) of ``cls.__init__``."""
    sig = inspect.signature(cls.__init__)
    defaults: dict[str, Any] = {}
    names: set[str] = set()
    var_kw = False
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if i == 0 and pname in ("self", "cls"):
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
            continue
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        names.add(pname)
        if p.default is not inspect.Parameter.empty:
            defaults[pname] = copy.deepcopy(p.default)
    return defaults, names, var_kw


def method_defaults(key_or_cls: str | type[ZooModule]) -> dict[str, Any]:
    """The default hyperparameters of a method, read from its ``__init__`` signature."""
    cls = get_method(key_or_cls) if isinstance(key_or_cls, str) else key_or_cls
    return _init_params(cls)[0]


def unknown_hparams(cls: type[ZooModule], hparams: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the names in `hparams` that ``cls.__init__`` does not accept, the accepted names)."""
    _, names, var_kw = _init_params(cls)
    if var_kw:
        return [], sorted(names)
    return [h for h in hparams if h not in names], sorted(names)


def _method_io(cls: type[ZooModule]) -> dict[str, Any]:
    return copy.deepcopy({**DEFAULT_IO, **(cls.default_io or {})})


# ---------------------------------------------------------------------------------- YAML loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""

    def construct_document(self, node: yaml.Node) -> Any:
        _check_duplicate_keys(node, ())
        return super().construct_document(node)


def _check_duplicate_keys(node: yaml.Node, path: tuple[str, ...]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value == "<<" and key_node.tag.endswith(":merge"):
                    continue
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    first, line = seen[ident].start_mark.line + 1, key_node.start_mark.line + 1
                    if not path:
                        raise RegistryError(
                            f"duplicate entry {key_node.value!r} at line {line} (first defined at line {first}): "
                            f"entry names must be unique; rename or remove one."
                        )
                    field = ".".join((*path[1:], key_node.value))
                    raise RegistryError(
                        f"entry {path[0]!r}, field {field!r}: duplicate key at line {line} "
                        f"(first defined at line {first}); keep only one."
                    )
                seen[ident] = key_node
                _check_duplicate_keys(value_node, (*path, str(key_node.value)))
            else:
                _check_duplicate_keys(value_node, (*path, "?"))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicate_keys(item, (*path, str(i)))


_lock = threading.RLock()
_registry_path_override: Path | None = None
_registry_cache: dict[str, dict[str, Any]] | None = None
_registry_cache_path: Path | None = None


def registry_path() -> Path:
    """Where `registry.yaml` is read from: `reload_registry(path)`, else ``$ZOO_REGISTRY``, else next to this module."""
    if _registry_path_override is not None:
        return _registry_path_override
    env = os.environ.get("ZOO_REGISTRY")
    if env:
        return Path(env).expanduser()
    return Path(__file__).with_name("registry.yaml")


def reload_registry(path: str | os.PathLike[str] | None = None) -> dict[str, dict[str, Any]]:
    """Drop the cached registry and read it again (from `path` when given; it stays in use until the next call).

    Returns a copy of the validated entries.
    """
    global _registry_path_override, _registry_cache, _registry_cache_path
    with _lock:
        _registry_path_override = Path(path).expanduser() if path is not None else None
        _registry_cache = None
        _registry_cache_path = None
    return copy.deepcopy(_entries())


def _entries() -> dict[str, dict[str, Any]]:
    """The validated entries (cached; not a copy — never hand it out)."""
    global _registry_cache, _registry_cache_path
    path = registry_path()
    with _lock:
        if _registry_cache is None or _registry_cache_path != path:
            data = _read_yaml(path)
            validate_registry(data, source=str(path))
            _registry_cache, _registry_cache_path = data, path
        return _registry_cache


def entries() -> dict[str, dict[str, Any]]:
    """A deep copy of every validated `registry.yaml` entry, by name."""
    return copy.deepcopy(_entries())


def get_entry(name: str) -> dict[str, Any]:
    """A deep copy of one raw entry; `UnknownModelError` with the closest names when absent."""
    ents = _entries()
    if name in ents:
        return copy.deepcopy(ents[name])
    raise _unknown(name)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(
            f"registry file {path} does not exist; unset ZOO_REGISTRY or point it at a registry.yaml."
        ) from None
    except OSError as e:
        raise RegistryError(f"cannot read registry file {path}: {e}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except RegistryError as e:
        raise RegistryError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise RegistryError(f"{path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RegistryError(
            f"{path}: the top level must be a mapping of model names to entries, got {type(data).__name__}."
        )
    return data


# ------------------------------------------------------------------------------------ validation
class _Where:
    def __init__(self, source: str, name: str) -> None:
        self.source, self.name = source, name

    def error(self, field: str, expected: str, got: Any = ..., hint: str = "") -> RegistryError:
        got_s = "" if got is ... else f", got {got!r}"
        return RegistryError(
            f"{self.source}: entry {self.name!r}, field {field!r}: expected {expected}{got_s}.{(' ' + hint) if hint else ''}"
        )


def validate_registry(data: Mapping[str, Any], *, source: str = "registry.yaml") -> None:
    """Validate parsed `registry.yaml` content in place (lists are normalised); raise `RegistryError`."""
    for name, entry in data.items():
        validate_entry(name, entry, source=source)


def validate_entry(name: Any, entry: Any, *, source: str = "registry.yaml") -> None:
    w = _Where(source, str(name))
    m = _NAME_RE.match(name) if isinstance(name, str) else None
    if m is None:
        raise RegistryError(
            f"{source}: entry name {name!r} is invalid: expected '<method>-<tag>' in lowercase "
            f"(e.g. 'pix2pix-facades'), where <method> is a registered method key."
        )
    prefix = m.group("method")
    if prefix not in _METHODS:
        raise RegistryError(
            f"{source}: entry {name!r}, field 'method': unknown method {prefix!r} (the part before the first '-'). "
            f"Registered methods: {', '.join(method_keys()) or '(none)'}. "
            f"Register the method with @zoo.register or fix the name."
        )
    if not isinstance(entry, dict):
        raise w.error("<entry>", "a mapping of fields", type(entry).__name__)

    for field in _REQUIRED_FIELDS:
        if field not in entry:
            raise w.error(field, "this required field to be present", hint=f"Required fields: {', '.join(_REQUIRED_FIELDS)}.")
    unknown = sorted(set(entry) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS), key=str)
    if unknown:
        raise w.error(
            str(unknown[0]), "a known field", hint=f"Allowed fields: {', '.join(_REQUIRED_FIELDS + _OPTIONAL_FIELDS)}."
        )

    if entry["method"] != prefix:
        raise w.error("method", f"{prefix!r} (the name's prefix)", entry["method"])
    cls = _METHODS[prefix]

    if entry["task"] not in TASKS:
        raise w.error("task", f"one of {', '.join(TASKS)}", entry["task"])
    if entry["origin"] not in ORIGINS:
        raise w.error("origin", f"one of {', '.join(ORIGINS)}", entry["origin"])
    for field in ("paper", "license"):
        if not isinstance(entry[field], str) or not entry[field].strip():
            raise w.error(field, "a non-empty string", entry[field])
    for field in ("description", "notes"):
        if field in entry and not isinstance(entry[field], str):
            raise w.error(field, "a string", entry[field])
    if "results" in entry and not isinstance(entry["results"], dict):
        raise w.error("results", "a mapping", entry["results"])

    # hparams
    hp = entry["hparams"]
    if hp is None:
        hp = entry["hparams"] = {}
    if not isinstance(hp, dict):
        raise w.error("hparams", "a mapping of __init__ arguments", hp)
    bad, valid = unknown_hparams(cls, hp)
    if bad:
        raise w.error(
            f"hparams.{bad[0]}",
            f"an argument of {cls.__name__}.__init__",
            hint=f"Unknown hyperparameter {bad[0]!r}; valid ones: {', '.join(valid) or '(none)'}.",
        )

    # dataset
    ds = entry["dataset"]
    if not isinstance(ds, dict):
        raise w.error("dataset", "a mapping with at least 'name'", ds)
    if not isinstance(ds.get("name"), str) or not ds["name"]:
        raise w.error("dataset.name", "a non-empty string", ds.get("name", None))
    if "layout" in ds and not isinstance(ds["layout"], str):
        raise w.error("dataset.layout", "a string (e.g. aligned, unaligned)", ds["layout"])
    if "direction" in ds and ds["direction"] not in ("AtoB", "BtoA"):
        raise w.error("dataset.direction", "AtoB or BtoA", ds["direction"])

    _validate_io(w, entry)
    _validate_weights(w, entry)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _validate_io(w: _Where, entry: dict[str, Any]) -> None:
    io = entry["io"]
    if not isinstance(io, dict):
        raise w.error("io", "a mapping (range, size_multiple, directions, eval_mode[, channels, domains])", io)
    unknown = sorted(set(io) - set(_IO_REQUIRED) - set(_IO_OPTIONAL), key=str)
    if unknown:
        raise w.error(f"io.{unknown[0]}", "a known io key", hint=f"Allowed: {', '.join(_IO_REQUIRED + _IO_OPTIONAL)}.")
    for k in _IO_REQUIRED:
        if k not in io:
            raise w.error(f"io.{k}", "this required io key to be present")
    rng = io["range"]
    if not (
        isinstance(rng, list)
        and len(rng) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)
        and [float(v) for v in rng] in RANGES
    ):
        raise w.error("io.range", "[-1, 1] or [0, 1]", rng)
    io["range"] = [float(v) for v in rng]
    for key in ("channels", "scale", "input_size"):
        if key in io and not (_is_int(io[key]) and io[key] >= 1):
            raise w.error(f"io.{key}", "an integer >= 1", io[key])
    if not (_is_int(io["size_multiple"]) and io["size_multiple"] >= 1):
        raise w.error("io.size_multiple", "a positive integer", io["size_multiple"])
    dirs = io["directions"]
    if not (isinstance(dirs, list) and dirs and all(d in DIRECTIONS for d in dirs) and len(set(dirs)) == len(dirs)):
        raise w.error("io.directions", "a non-empty list of a2b and/or b2a without duplicates", dirs)
    if not isinstance(io["eval_mode"], bool):
        raise w.error("io.eval_mode", "true or false", io["eval_mode"])
    if "domains" in io:
        dom = io["domains"]
        if not (isinstance(dom, dict) and dom and set(dom) <= {"a", "b"} and all(isinstance(v, str) for v in dom.values())):
            raise w.error("io.domains", "a mapping {a: <name>, b: <name>}", dom)


def _validate_weights(w: _Where, entry: dict[str, Any]) -> None:
    weights = entry["weights"]
    if weights is None:
        weights = entry["weights"] = {}
    if not isinstance(weights, dict):
        raise w.error("weights", "a mapping with optional 'hub' and 'official' (may be empty)", weights)
    unknown = sorted(set(weights) - {"hub", "official"}, key=str)
    if unknown:
        raise w.error(f"weights.{unknown[0]}", "'hub' or 'official'")
    if "hub" in weights:
        hub = weights["hub"]
        if not isinstance(hub, dict):
            raise w.error("weights.hub", "a mapping {repo, revision, sha256}", hub)
        extra = sorted(set(hub) - {"repo", "revision", "sha256"}, key=str)
        if extra:
            raise w.error(f"weights.hub.{extra[0]}", "only repo, revision and sha256")
        if not isinstance(hub.get("repo"), str) or not _REPO_RE.match(hub["repo"]):
            raise w.error("weights.hub.repo", "a Hugging Face repo id 'org/name'", hub.get("repo", None))
        if not isinstance(hub.get("revision"), str) or not hub["revision"]:
            raise w.error("weights.hub.revision", "a branch, tag or commit (string)", hub.get("revision", None))
        if not isinstance(hub.get("sha256"), str) or not _SHA256_RE.match(hub["sha256"]):
            raise w.error(
                "weights.hub.sha256", "64 lowercase hex characters (sha256 of model.safetensors)", hub.get("sha256", None)
            )
    if "official" in weights:
        off = weights["official"]
        directions = entry["io"]["directions"]
        if isinstance(off, dict) and "url" not in off and off and all(isinstance(p, str) for p in off):
            # several files: one per direction (a2b/b2a), or named parts the converter takes (decoder, vgg)
            converters = set()
            for d, spec in off.items():
                if d in DIRECTIONS and d not in directions:
                    raise w.error(f"weights.official.{d}", f"a direction listed in io.directions ({directions})")
                if not _PART_RE.match(d):
                    raise w.error(f"weights.official.{d}", "a part name: a2b/b2a or a lowercase identifier (decoder)")
                _validate_official_file(w, f"weights.official.{d}", spec)
                converters.add(spec["converter"])
            if len(converters) > 1:
                raise w.error("weights.official", "the same converter for every direction", sorted(converters))
        else:
            _validate_official_file(w, "weights.official", off)
        conv = next(iter(off.values()))["converter"] if "url" not in off else off["converter"]
        if conv != entry["method"]:  # a converter returns its own method's model
            raise w.error("weights.official.converter", f"{entry['method']!r}, the entry's method", conv)


def _validate_official_file(w: _Where, field: str, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise w.error(
            field,
            "a mapping {url, sha256, converter[, filename, manual, format, member]}, or part (a2b/b2a/decoder...) -> such a mapping",
            spec,
        )
    extra = sorted(set(spec) - {"url", "sha256", "converter", "filename", "manual", "format", "member"}, key=str)
    if extra:
        raise w.error(f"{field}.{extra[0]}", "only url, sha256, converter, filename, manual, format and member")
    member = spec.get("member")
    if member is not None and not (isinstance(member, str) and member.strip("/") and ".." not in member.split("/")):
        raise w.error(f"{field}.member", "the name of the file inside the zip archive at url (e.g. candy.pth)", member)
    if spec.setdefault("format", "torch") not in OFFICIAL_FORMATS:
        raise w.error(f"{field}.format", f"one of {', '.join(OFFICIAL_FORMATS)} (how the file is read)", spec["format"])
    if not isinstance(spec.setdefault("manual", False), bool):
        raise w.error(f"{field}.manual", "true (the URL is a page to download the file from by hand) or false",
                      spec["manual"])
    url = spec.get("url")
    if not isinstance(url, str) or not _URL_RE.match(url):
        raise w.error(f"{field}.url", "an http(s) URL of the released file", url)
    sha = spec.setdefault("sha256", None)
    if sha is not None and not (isinstance(sha, str) and _SHA256_RE.match(sha)):
        raise w.error(f"{field}.sha256", "64 lowercase hex characters, or null when unknown", sha)
    conv = spec.get("converter")
    if not isinstance(conv, str) or conv not in _METHODS:
        raise w.error(
            f"{field}.converter",
            f"a registered method key ({', '.join(method_keys())})",
            conv,
        )
    fn = spec.get("filename")
    if fn is not None and not is_plain_name(fn):
        raise w.error(f"{field}.filename", "a plain file name (no folders)", fn)


# ----------------------------------------------------------------------------------- public API
def _has_weights(entry: Mapping[str, Any]) -> bool:
    weights = entry.get("weights") or {}
    return bool(weights.get("hub") or weights.get("official"))


def list_models(pattern: str | Iterable[str] = "*", pretrained: bool | None = None) -> list[str]:
    """Registry names and method keys matching `pattern` (fnmatch, case-insensitive; or a list of patterns).

    `pretrained=True` keeps registry names with a weights source (Hub or official file); `False` keeps method
    keys and names without one; `None` keeps all.
    """
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    patterns = [p.lower() for p in patterns]
    ents = _entries()
    candidates: dict[str, bool] = {k: False for k in _METHODS}
    candidates.update({n: _has_weights(e) for n, e in ents.items()})
    out = []
    for name, has in candidates.items():
        if pretrained is True and not has:
            continue
        if pretrained is False and has:
            continue
        if any(fnmatch.fnmatchcase(name.lower(), p) for p in patterns):
            out.append(name)
    return sorted(out)


def _closest_hint(name: str, candidates: Iterable[str]) -> str:
    cands = list(candidates)
    lowered = {c.lower(): c for c in cands}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.5)
    return f"Did you mean: {', '.join(lowered[c] for c in close)}? " if close else ""


def _unknown(name: Any) -> UnknownModelError:
    try:
        names = list(_entries()) + list(_METHODS)
    except RegistryError:
        names = list(_METHODS)
    return UnknownModelError(
        f"unknown model or method {name!r}. {_closest_hint(str(name), names)}"
        f"zoo.list_models() lists all of them."
    )


def resolve(name: str) -> tuple[type[ZooModule], str, dict[str, Any] | None]:
    """(class, canonical name, raw entry or None for a method key). Matched exactly, then lowercased."""
    if not isinstance(name, str):
        raise UnknownModelError(f"expected a model name or method key (a string), got {type(name).__name__}.")
    for n in (name, name.strip().lower()):
        if n in _METHODS:  # method keys have no hyphen, names always do: no clash, no registry read needed
            return _METHODS[n], n, None
    ents = _entries()
    for n in (name, name.strip().lower()):
        if n in ents:
            return _METHODS[ents[n]["method"]], n, ents[n]
    raise _unknown(name)


def info(name: str) -> dict[str, Any]:
    """The registry entry `name`, resolved (a copy): default hparams and io merged under the entry's, plus
    ``name`` and ``weights_available`` (which weight sources are already on this machine; no network).

    A method key gives an entry-less view: method, task, default hparams and io.
    """
    cls, key, entry = resolve(name)
    defaults = method_defaults(cls)
    if entry is None:
        return {
            "name": cls.method,
            "method": cls.method,
            "task": cls.task,
            "hparams": defaults,
            "io": _method_io(cls),
            "weights": {},
            "weights_available": {},
        }
    out = {"name": key, **copy.deepcopy(entry)}
    out["hparams"] = {**defaults, **out.get("hparams", {})}
    out["io"] = {**_method_io(cls), **out["io"]}
    from zoo import hub  # lazy: hub imports this module

    out["weights_available"] = hub.weights_available(key, out)
    return out


def create(name: str, **hparams: Any) -> ZooModule:
    """An untrained model: a method key with the paper's defaults, or a registry name with its hparams.

    Keyword arguments override hyperparameters. A registry name also sets the entry's io contract.
    """
    cls, key, entry = resolve(name)
    merged = {**(copy.deepcopy(entry["hparams"]) if entry else {}), **hparams}
    bad, valid = unknown_hparams(cls, merged)
    if bad:
        raise ZooError(
            f"{cls.method!r} has no hyperparameter {bad[0]!r}"
            f"{' (also: ' + ', '.join(map(repr, bad[1:])) + ')' if len(bad) > 1 else ''}; "
            f"valid ones: {', '.join(valid) or '(none)'}."
        )
    try:
        model = cls(**merged)
    except (TypeError, ValueError) as error:  # e.g. ngf="64": the network cannot be built from it
        shown = ", ".join(f"{k}={v!r}" for k, v in hparams.items()) or "the entry's hyperparameters"
        raise ZooError(
            f"{cls.method!r} cannot be built with {shown}: {type(error).__name__}: {error}. "
            f"Check the values' types against zoo.info({key!r})['hparams']."
        ) from error
    if entry is not None:
        apply_entry(model, key, entry)
    return model


def apply_entry(model: ZooModule, name: str, entry: Mapping[str, Any]) -> ZooModule:
    """Give `model` the I/O contract of registry entry `name`, and its name, dataset, paper and licence
    for the model card (where the card does not say otherwise)."""
    model.io = {**model.io, **copy.deepcopy(entry["io"])}
    card = getattr(model, "card", None)
    if isinstance(card, dict):
        card.setdefault("name", name)
        for field in ("dataset", "paper", "license"):
            card.setdefault(field, copy.deepcopy(entry[field]))
    return model
