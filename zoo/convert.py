"""Official releases -> zoo models, from Python or the command line.

    >>> model = zoo.convert.from_official("cyclegan", "horse2zebra.pth")            # a method's converter
    >>> model = zoo.convert.from_official("cyclegan-horse2zebra", "horse2zebra.pth")  # + the entry's io and card
    >>> model = zoo.convert.from_official("adain", {"decoder": "decoder.pth", "vgg": "vgg_normalised.pth"})

    python -m zoo.convert cyclegan-horse2zebra horse2zebra.pth --out models/horse2zebra [--push org/repo]
    python -m zoo.convert adain decoder=decoder.pth vgg=vgg_normalised.pth --out models/adain
    python -m zoo.convert --all --out models [--from DIR] [--push ORG]

The output folder is a `save_pretrained` folder (``zoo.load(folder)``): the release's networks, the method's
hparams and io contract, and a model card with the licence, paper and dataset of the registry entry. Files are
read with ``torch.load(weights_only=True)`` or a tensor-only TensorFlow checkpoint reader; a file that needs more
than tensors to unpickle is refused. Every converter checks the key set: a missing or leftover key is an error
naming it.

A Hugging Face token for ``--push`` comes from where huggingface_hub looks (``HF_TOKEN``, ``hf auth login``); zoo
never takes it on the command line and never prints it.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo import official, registry
from zoo.errors import ZooError
from zoo.module import ZooModule

__all__ = ["from_official", "convert_file", "convert_all", "main"]

_PathLike = str | os.PathLike


def _resolve(key: str) -> tuple[str, str | None, dict[str, Any] | None]:
    """(converter key, registry name or None, registry entry or None) for a method key or registry name."""
    if key in registry.method_keys():
        return key, None, None
    _, name, entry = registry.resolve(key)  # UnknownModelError lists the closest names
    files = official.official_files(entry or {})
    if entry is None or not files:
        raise ZooError(f"{name} has no official release in registry.yaml; convert with its method key instead "
                       f"(python -m zoo.convert {registry.resolve(key)[0].method} FILE --out DIR).")
    return next(iter(files.values()))["converter"], name, entry


def _read(value: Any, member: str | None = None) -> Any:
    if isinstance(value, (str, os.PathLike)):
        return official.read_checkpoint(Path(os.fspath(value)).expanduser(), member=member)
    return value


def _load_checkpoint(checkpoint: Any, entry: Mapping[str, Any] | None) -> Any:
    """Read `checkpoint` (a path, an already-loaded object, or {part: path or object}) into what converters take."""
    files = official.official_files(entry or {})
    if isinstance(checkpoint, (str, os.PathLike)):
        spec = files.get(None) or {}
        return _read(checkpoint, spec.get("member"))
    if isinstance(checkpoint, Mapping) and any(isinstance(v, (str, os.PathLike)) for v in checkpoint.values()):
        return {part: _read(v, (files.get(part) or {}).get("member")) for part, v in checkpoint.items()}
    return checkpoint


def from_official(key: str, checkpoint: Any, **hparams: Any) -> ZooModule:
    """Convert an official release into a zoo model.

    `key` is a method key with a converter (``"cyclegan"``) or a registry name (``"cyclegan-horse2zebra"``: its
    converter and hparams, and afterwards its io contract, name, licence, paper and dataset). `checkpoint` is the
    release file's path, the object ``torch.load`` returned, or ``{part: path or object}`` for releases in several
    files (``{"a2b": ..., "b2a": ...}``; AdaIN's ``{"decoder": ..., "vgg": ...}``). `hparams` override the entry's.
    """
    conv_key, name, entry = _resolve(key)
    converter = registry.get_converter(conv_key)
    if converter is None:
        have = ", ".join(k for k in registry.method_keys() if registry.get_converter(k) is not None)
        raise ZooError(f"{conv_key!r} has no converter of official weights; methods with one: {have}.")
    merged = {**copy.deepcopy((entry or {}).get("hparams") or {}), **hparams}
    model = converter(_load_checkpoint(checkpoint, entry), **merged)
    if name is not None and entry is not None:
        registry.apply_entry(model, name, entry)
    return model


# ------------------------------------------------------------------------------------------- files
def _parse_files(files: Sequence[str], entry: Mapping[str, Any] | None) -> Any:
    """CLI files -> a path or {part: path}. ``part=PATH`` names a part; a bare file of a registry entry in
    several files is matched to the part whose file (or archive member) has its name."""
    parts = {p: spec for p, spec in official.official_files(entry or {}).items() if p is not None}
    named: dict[str, Path] = {}
    bare: list[Path] = []
    for item in files:
        part, sep, path = item.partition("=")
        if sep and part and not Path(item).exists():
            named[part] = Path(path).expanduser()
        else:
            bare.append(Path(item).expanduser())
    for path in bare:
        hits = [p for p, spec in parts.items()
                if path.name in {official.official_cache_path(spec).name, Path(spec.get("member") or "").name,
                                 Path(spec["url"].split("?")[0]).name}]
        if len(hits) == 1 and hits[0] not in named:
            named[hits[0]] = path
        elif not named and len(bare) == 1:
            return path
        else:
            expect = " ".join(f"{p}=FILE" for p in parts) or "a2b=FILE b2a=FILE (or decoder=FILE vgg=FILE)"
            raise ZooError(f"cannot tell which part of the release {path} is: name each file, e.g. {expect}")
    return named


def convert_file(key: str, files: Sequence[str], out: _PathLike, *, hparams: Mapping[str, Any] | None = None,
                 push: str | None = None, private: bool | None = None) -> Path:
    """Convert `files` with `key`'s converter into the save_pretrained folder `out` (and push it to `push`)."""
    _, name, entry = _resolve(key)
    model = from_official(key, _parse_files(files, entry), **dict(hparams or {}))
    card = {"name": name or Path(out).name, "origin": "official"}
    folder = model.save_pretrained(out, components=model.inference_modules, **card)
    if push:
        model.push_to_hub(push, private=private, **card)
    return folder


def convert_all(out: _PathLike, *, source: _PathLike | None = None, push_org: str | None = None,
                private: bool | None = None, echo: Any = print) -> tuple[list[str], list[str], list[str]]:
    """Convert every registry entry whose official file(s) are in `source` (default ``$ZOO_CACHE/official``) into
    ``out/<name>``; with `push_org`, publish each as ``<push_org>/<name>`` with its model card. Each file is checked
    against the sha256 registry.yaml (or this machine's first use) knows. Returns (converted, missing, failed)."""
    source = Path(source).expanduser() if source else official.official_dir()
    if not source.is_dir():
        raise ZooError(f"{source} is not a folder: put the downloaded official files there, or pass --from DIR.")
    converted, missing, failed = [], [], []
    for name, entry in registry.entries().items():
        files = official.official_files(entry)
        if not files or registry.get_converter(next(iter(files.values()))["converter"]) is None:
            continue
        found = {part: official.present_file(spec, source) for part, spec in files.items()}
        if any(p is None for p in found.values()):
            missing.append(name)
            continue
        try:
            for part, path in found.items():
                official.verify_sha256(path, files[part], is_member=official.is_extracted_member(path, files[part]))
            model = from_official(name, found[None] if None in found else found)
            card = {"name": name, "origin": entry.get("origin")}
            folder = model.save_pretrained(Path(out) / name, components=model.inference_modules, **card)
            if push_org:
                model.push_to_hub(f"{push_org}/{name}", private=private, **card)
        except ZooError as error:
            failed.append(f"{name}: {error}")
            echo(f"FAILED {name}: {error}")
            continue
        converted.append(name)
        echo(f"converted {name} -> {folder}" + (f" (pushed to {push_org}/{name})" if push_org else ""))
    return converted, missing, failed


# --------------------------------------------------------------------------------------------- CLI
def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ZooError(f"--set takes KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zoo.convert", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Method keys with a converter: " + ", ".join(
                                    k for k in registry.method_keys() if registry.get_converter(k) is not None))
    p.add_argument("key", nargs="?", help="method key (cyclegan) or registry name (cyclegan-horse2zebra)")
    p.add_argument("files", nargs="*", help="the release file(s); PART=FILE for releases in several files")
    p.add_argument("--out", required=True, help="the save_pretrained folder to write (with --all: a parent folder)")
    p.add_argument("--all", action="store_true", help="convert every registry entry whose files are in --from")
    p.add_argument("--from", dest="source", default=None, help="with --all: where the files are "
                   "(default $ZOO_CACHE/official)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a hyperparameter")
    p.add_argument("--push", default=None, help="publish to this Hub repo (with --all: this org, one repo per name)")
    p.add_argument("--private", action="store_true", help="create pushed repos private")
    args = p.parse_args(argv)
    try:
        if args.all:
            if args.key or args.files or args.set:
                raise ZooError("--all converts what it finds: give no key, files or --set with it")
            converted, missing, failed = convert_all(args.out, source=args.source, push_org=args.push,
                                                     private=args.private or None)
            print(f"{len(converted)} converted, {len(failed)} failed, {len(missing)} without their file(s) in the folder")
            return 1 if failed or not converted else 0
        if not args.key or not args.files:
            raise ZooError("give a method key or registry name and the release file(s), or --all")
        folder = convert_file(args.key, args.files, args.out, hparams=_parse_set(args.set), push=args.push,
                              private=args.private or None)
    except ZooError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"converted {args.key} -> {folder}" + (f" (pushed to {args.push})" if args.push else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
