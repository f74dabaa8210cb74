"""zoo.registry: method registration, registry.yaml validation, list_models / info / create."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo  # noqa: E402
from tinymethod import TinyNet  # noqa: E402
from zoo import registry  # noqa: E402
from zoo.errors import RegistryError, UnknownModelError, ZooError  # noqa: E402
from zoo.module import ZooModule  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHA = "ab" * 32


def _entry(**over: Any) -> dict[str, Any]:
    e = {
        "method": "tinynet",
        "task": "translation",
        "hparams": {"width": 6},
        "weights": {},
        "io": {"range": [-1, 1], "size_multiple": 8, "directions": ["a2b"], "eval_mode": True},
        "dataset": {"name": "facades", "layout": "aligned", "direction": "BtoA"},
        "paper": "arXiv:1611.07004",
        "license": "MIT",
        "origin": "trained",
    }
    e.update(over)
    return e


def _entries() -> dict[str, Any]:
    return {
        "tinynet-demo": _entry(),
        "tinynet-hubbed": _entry(weights={"hub": {"repo": "org/tiny", "revision": "main", "sha256": SHA}}),
        "tinynet-official": _entry(
            weights={"official": {"url": "http://example.com/files/tiny.pth", "sha256": None, "converter": "tinynet"}}
        ),
        "tinynet-split": _entry(
            hparams={},
            io={"range": [0, 1], "size_multiple": 4, "directions": ["a2b", "b2a"], "eval_mode": False,
                "domains": {"a": "x", "b": "y"}},
            weights={"official": {
                "a2b": {"url": "https://example.com/x2y.pth", "sha256": SHA, "converter": "tinynet"},
                "b2a": {"url": "https://example.com/y2x.pth", "sha256": None, "converter": "tinynet",
                        "filename": "y2x-v1.pth"},
            }},
        ),
    }


@pytest.fixture
def use_registry(tmp_path, monkeypatch):
    """Point the registry at a temporary yaml (text or dict); restores the real one afterwards."""
    for attr in ("_registry_path_override", "_registry_cache", "_registry_cache_path"):
        monkeypatch.setattr(registry, attr, getattr(registry, attr))
    counter = iter(range(1000))

    def use(content: str | dict) -> Path:
        path = tmp_path / f"registry-{next(counter)}.yaml"
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
        registry.reload_registry(path)
        return path

    return use


@pytest.fixture
def isolated_methods(monkeypatch):
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))
    monkeypatch.setattr(registry, "_CONVERTERS", dict(registry._CONVERTERS))


# --------------------------------------------------------------------------------- registration
def test_register_create_get_method(isolated_methods):
    assert registry.get_method("tinynet") is TinyNet
    assert TinyNet.method == "tinynet"
    assert "tinynet" in registry.method_keys()
    assert registry.register(TinyNet, key="tinynet") is TinyNet  # a re-import is fine

    model = zoo.create("tinynet", width=5)
    assert isinstance(model, TinyNet) and model.hparams["width"] == 5
    assert model.G[0].out_channels == 5

    @registry.register
    class Foo2(ZooModule):
        pass

    assert Foo2.method == "foo2" and registry.get_method("foo2") is Foo2

    @registry.register(key="bar")
    class Whatever(ZooModule):
        pass

    assert Whatever.method == "bar" and registry.get_method("bar") is Whatever


def test_register_rejects_bad_keys_and_clashes(isolated_methods):
    for bad in ("tiny-net", "tiny_net", "Tiny", "", "a b"):
        with pytest.raises(RegistryError, match="lowercase"):
            registry.register(key=bad)(type("X", (ZooModule,), {}))
    with pytest.raises(RegistryError, match="lowercase"):
        registry.register(type("Has_Underscore", (ZooModule,), {}))

    class Other(ZooModule):
        pass

    with pytest.raises(RegistryError, match="tinynet.*already registered"):
        registry.register(Other, key="tinynet")
    assert registry.get_method("tinynet") is TinyNet

    with pytest.raises(RegistryError, match="ZooModule"):
        registry.register(key="notamodule")(dict)


def test_get_method_unknown_lists_registered():
    with pytest.raises(UnknownModelError) as ei:
        registry.get_method("tinynte")
    assert "tinynet" in str(ei.value)


def test_converters(isolated_methods):
    assert registry.get_converter("tinynet") is None

    @registry.register_converter("tinynet")
    def convert(state_dict, **hparams):
        return TinyNet(**hparams)

    assert registry.get_converter("tinynet") is convert
    with pytest.raises(RegistryError):
        registry.register_converter("bad-key")


# ------------------------------------------------------------------------------ list/info/create
def test_list_models_patterns_and_pretrained(use_registry):
    use_registry(_entries())
    names = ["tinynet-demo", "tinynet-hubbed", "tinynet-official", "tinynet-split"]
    assert zoo.list_models("tinynet*") == ["tinynet", *names]
    assert zoo.list_models("TINYNET-*") == names  # case-insensitive
    assert zoo.list_models(["tinynet-d*", "tinynet-s*"]) == ["tinynet-demo", "tinynet-split"]
    assert zoo.list_models("tinynet*", pretrained=True) == ["tinynet-hubbed", "tinynet-official", "tinynet-split"]
    assert zoo.list_models("tinynet*", pretrained=False) == ["tinynet", "tinynet-demo"]
    everything = zoo.list_models()
    assert everything == sorted(everything) and set(names) <= set(everything) and "tinynet" in everything
    assert zoo.list_models("nothing-like-this*") == []


def test_info_merges_defaults(use_registry, tmp_path, monkeypatch):
    use_registry(_entries())
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    inf = zoo.info("tinynet-demo")
    assert inf["name"] == "tinynet-demo" and inf["method"] == "tinynet"
    assert inf["hparams"] == {"width": 6, "channels": 3, "lr": 1e-2, "tied": False}
    # method default io under the entry's
    assert inf["io"]["channels"] == 3 and inf["io"]["size_multiple"] == 8 and inf["io"]["range"] == [-1.0, 1.0]
    assert inf["weights_available"] == {}
    # it is a copy
    inf["hparams"]["width"] = 99
    assert zoo.info("tinynet-demo")["hparams"]["width"] == 6

    off = zoo.info("tinynet-official")
    assert off["weights_available"] == {"official": False, "converted": False}
    (tmp_path / "cache" / "official").mkdir(parents=True)
    (tmp_path / "cache" / "official" / "tiny.pth").write_bytes(b"x")
    assert zoo.info("tinynet-official")["weights_available"]["official"] is True
    # per-direction: every file must be there; `filename` overrides the URL basename
    (tmp_path / "cache" / "official" / "x2y.pth").write_bytes(b"x")
    assert zoo.info("tinynet-split")["weights_available"]["official"] is False
    (tmp_path / "cache" / "official" / "y2x-v1.pth").write_bytes(b"x")
    assert zoo.info("tinynet-split")["weights_available"]["official"] is True

    method = zoo.info("tinynet")
    assert method["method"] == "tinynet" and method["task"] == "translation"
    assert method["hparams"] == {"width": 4, "channels": 3, "lr": 1e-2, "tied": False}
    assert method["io"]["size_multiple"] == 4


def test_create_from_registry_name(use_registry):
    use_registry(_entries())
    m = zoo.create("tinynet-demo")
    assert m.hparams["width"] == 6 and m.io["size_multiple"] == 8 and m.io["channels"] == 3
    assert m.card["name"] == "tinynet-demo" and m.card["dataset"]["name"] == "facades"
    m2 = zoo.create("tinynet-demo", width=3)
    assert m2.hparams["width"] == 3
    m3 = zoo.create("tinynet-split")
    assert m3.io["directions"] == ["a2b", "b2a"] and m3.io["eval_mode"] is False and m3.io["range"] == [0.0, 1.0]
    with pytest.raises(ZooError, match="widht") as ei:
        zoo.create("tinynet-demo", widht=3)
    assert "width" in str(ei.value)  # lists the valid ones
    with pytest.raises(ZooError, match="depth"):
        zoo.create("tinynet", depth=3)


def test_unknown_name_suggests_closest():
    registry.reload_registry()
    with pytest.raises(UnknownModelError) as ei:
        zoo.create("pix2pix-facade")
    msg = str(ei.value)
    assert "pix2pix-facades" in msg and "zoo.list_models()" in msg
    assert isinstance(ei.value, KeyError)
    with pytest.raises(UnknownModelError, match="pix2pix-facades"):
        zoo.info("pix2pix-facade")


# ---------------------------------------------------------------------------------- validation
def _mut(path: str, value: Any, name: str = "tinynet-demo") -> dict[str, Any]:
    """_entries() with `path` (dotted) set to `value` in entry `name` (value ... deletes it)."""
    data = copy.deepcopy(_entries())
    node = data[name]
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


BAD_CASES = [
    ("missing license", _mut("license", ...), "tinynet-demo", "license"),
    ("missing hparams", _mut("hparams", ...), "tinynet-demo", "hparams"),
    ("missing dataset", _mut("dataset", ...), "tinynet-demo", "dataset"),
    ("dataset no name", _mut("dataset", {"layout": "aligned"}), "tinynet-demo", "dataset.name"),
    ("dataset direction", _mut("dataset.direction", "AB"), "tinynet-demo", "dataset.direction"),
    ("bad task", _mut("task", "segmentation"), "tinynet-demo", "task"),
    ("bad origin", _mut("origin", "stolen"), "tinynet-demo", "origin"),
    ("method mismatch", _mut("method", "pix2pix"), "tinynet-demo", "method"),
    ("unknown field", _mut("weigths", {}), "tinynet-demo", "weigths"),
    ("unknown hparam", _mut("hparams", {"depth": 3}), "tinynet-demo", "hparams.depth"),
    ("hparams not mapping", _mut("hparams", [1]), "tinynet-demo", "hparams"),
    ("hub sha short", _mut("weights.hub.sha256", "abc", "tinynet-hubbed"), "tinynet-hubbed", "weights.hub.sha256"),
    ("hub sha upper", _mut("weights.hub.sha256", "AB" * 32, "tinynet-hubbed"), "tinynet-hubbed", "weights.hub.sha256"),
    ("hub sha missing", _mut("weights.hub.sha256", ..., "tinynet-hubbed"), "tinynet-hubbed", "weights.hub.sha256"),
    ("hub repo", _mut("weights.hub.repo", "no-slash", "tinynet-hubbed"), "tinynet-hubbed", "weights.hub.repo"),
    ("official sha", _mut("weights.official.sha256", "xyz", "tinynet-official"), "tinynet-official",
     "weights.official.sha256"),
    ("official url", _mut("weights.official.url", "ftp://x/y.pth", "tinynet-official"), "tinynet-official",
     "weights.official.url"),
    ("official converter", _mut("weights.official.converter", "nosuch", "tinynet-official"), "tinynet-official",
     "weights.official.converter"),
    ("split sha", _mut("weights.official.b2a.sha256", "12" * 31, "tinynet-split"), "tinynet-split",
     "weights.official.b2a.sha256"),
    ("weights unknown source", _mut("weights", {"torrent": {}}), "tinynet-demo", "weights.torrent"),
    ("io range", _mut("io.range", [0, 255]), "tinynet-demo", "io.range"),
    ("io range scalar", _mut("io.range", 1), "tinynet-demo", "io.range"),
    ("io directions empty", _mut("io.directions", []), "tinynet-demo", "io.directions"),
    ("io directions dup", _mut("io.directions", ["a2b", "a2b"]), "tinynet-demo", "io.directions"),
    ("io directions bad", _mut("io.directions", ["a2c"]), "tinynet-demo", "io.directions"),
    ("io size zero", _mut("io.size_multiple", 0), "tinynet-demo", "io.size_multiple"),
    ("io size float", _mut("io.size_multiple", 2.5), "tinynet-demo", "io.size_multiple"),
    ("io size bool", _mut("io.size_multiple", True), "tinynet-demo", "io.size_multiple"),
    ("io size missing", _mut("io.size_multiple", ...), "tinynet-demo", "io.size_multiple"),
    ("io channels", _mut("io.channels", 0), "tinynet-demo", "io.channels"),
    ("io eval_mode", _mut("io.eval_mode", "yes"), "tinynet-demo", "io.eval_mode"),
    ("io unknown key", _mut("io.colour", "rgb"), "tinynet-demo", "io.colour"),
    ("io domains", _mut("io.domains", {"a": "x", "c": "y"}), "tinynet-demo", "io.domains"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_validation_errors_name_entry_and_field(use_registry, case):
    _, data, entry, field = case
    with pytest.raises(RegistryError) as ei:
        use_registry(data)
    msg = str(ei.value)
    assert entry in msg and field in msg, msg
    assert "expected" in msg or "Allowed" in msg or "valid" in msg, msg


def test_unknown_method_entry(use_registry):
    data = _entries()
    data["nosuchmethod-thing"] = _entry(method="nosuchmethod")
    with pytest.raises(RegistryError) as ei:
        use_registry(data)
    msg = str(ei.value)
    assert "nosuchmethod-thing" in msg and "method" in msg and "tinynet" in msg  # lists the registered ones


def test_bad_entry_name(use_registry):
    data = _entries()
    data["TinyNet_Demo"] = _entry()
    with pytest.raises(RegistryError, match="TinyNet_Demo"):
        use_registry(data)


def test_unknown_hparam_lists_valid(use_registry):
    with pytest.raises(RegistryError) as ei:
        use_registry(_mut("hparams", {"widht": 3}))
    assert "widht" in str(ei.value) and "width" in str(ei.value) and "tied" in str(ei.value)


def test_duplicate_keys_detected(use_registry):
    text = yaml.safe_dump({"tinynet-demo": _entry()}, sort_keys=False)
    with pytest.raises(RegistryError) as ei:
        use_registry(text + text)
    assert "tinynet-demo" in str(ei.value) and "duplicate" in str(ei.value)

    inner = "tinynet-other:\n  license: MIT\n" + "\n".join(
        "  " + line for line in yaml.safe_dump(_entry(), sort_keys=False).splitlines()
    )
    with pytest.raises(RegistryError) as ei:
        use_registry(inner)
    assert "tinynet-other" in str(ei.value) and "license" in str(ei.value) and "duplicate" in str(ei.value)


def test_env_registry_and_lazy_cache(tmp_path, monkeypatch, use_registry):
    use_registry(_entries())  # just to snapshot/restore the cache state
    monkeypatch.setattr(registry, "_registry_path_override", None)
    path = tmp_path / "env-registry.yaml"
    path.write_text(yaml.safe_dump({"tinynet-envonly": _entry()}))
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    assert registry.registry_path() == path
    assert zoo.list_models("tinynet-*") == ["tinynet-envonly"]
    path.write_text(yaml.safe_dump({"tinynet-changed": _entry()}))
    assert zoo.list_models("tinynet-*") == ["tinynet-envonly"]  # cached
    assert "tinynet-changed" in registry.reload_registry()


def test_empty_and_non_mapping_registry(use_registry):
    use_registry("# nothing yet\n")
    assert zoo.list_models("tinynet*") == ["tinynet"]
    with pytest.raises(RegistryError, match="mapping"):
        use_registry("- a\n- b\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        use_registry("a: [unclosed\n")


# ----------------------------------------------------------------------- the shipped registry.yaml
def test_shipped_registry_validates(monkeypatch):
    monkeypatch.delenv("ZOO_REGISTRY", raising=False)
    monkeypatch.setattr(registry, "_registry_path_override", None)
    assert (REPO_ROOT / "zoo" / "registry.yaml").resolve() == (REPO_ROOT / "registry.yaml").resolve()
    ents = registry.reload_registry()
    base = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/"
    expected = {
        "pix2pix-facades": ("facades_label2photo.pth", "facades", "BtoA", ["a2b"], {"a": "labels", "b": "photo"}),
        "pix2pix-edges2shoes": ("edges2shoes.pth", "edges2shoes", "AtoB", ["a2b"], {"a": "edges", "b": "photo"}),
        "pix2pix-day2night": ("day2night.pth", "night2day", "BtoA", ["a2b"], {"a": "day", "b": "night"}),
    }
    for name, (fname, ds, direction, dirs, domains) in expected.items():
        e = ents[name]
        assert e["weights"]["official"] == {"url": base + fname, "sha256": None, "converter": "pix2pix", "manual": False, "format": "torch"}
        assert "hub" not in e["weights"]
        assert e["dataset"] == {"name": ds, "layout": "aligned", "direction": direction}
        assert e["io"] == {"range": [-1.0, 1.0], "channels": 3, "size_multiple": 256, "directions": dirs,
                           "eval_mode": True, "domains": domains}
        assert (e["license"], e["paper"], e["origin"], e["task"], e["hparams"]) == (
            "BSD-3-Clause", "arXiv:1611.07004", "official", "translation", {})
    maps = ents["pix2pix-maps"]
    assert maps["weights"]["official"] == {
        "a2b": {"url": base + "sat2map.pth", "sha256": None, "converter": "pix2pix", "manual": False, "format": "torch"},
        "b2a": {"url": base + "map2sat.pth", "sha256": None, "converter": "pix2pix", "manual": False, "format": "torch"},
    }
    assert maps["io"]["directions"] == ["a2b", "b2a"] and maps["hparams"] == {"directions": ["a2b", "b2a"]}
    assert maps["io"]["domains"] == {"a": "aerial", "b": "map"}
    assert maps["dataset"] == {"name": "maps", "layout": "aligned", "direction": "AtoB"}
    assert set(zoo.list_models("pix2pix-*", pretrained=True)) >= set(expected) | {"pix2pix-maps"}
    assert zoo.info("pix2pix-maps")["hparams"]["directions"] == ["a2b", "b2a"]


def test_shipped_unpaired_entries(monkeypatch):
    monkeypatch.delenv("ZOO_REGISTRY", raising=False)
    monkeypatch.setattr(registry, "_registry_path_override", None)
    ents = registry.reload_registry()
    cyclegan = {k: v for k, v in ents.items() if k.startswith("cyclegan-")}
    assert len(cyclegan) == 18
    for name, e in cyclegan.items():
        tag = name.removeprefix("cyclegan-")
        assert e["weights"]["official"]["url"] == f"http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{tag}.pth"
        assert e["io"]["directions"] == ["a2b"] and e["io"]["size_multiple"] == 4 and e["hparams"] == {}
        assert e["dataset"]["layout"] == "unpaired" and e["dataset"]["direction"] in ("AtoB", "BtoA")
    for tag in ("edges2shoes", "edges2handbags"):
        official = ents[f"munit-{tag}"]["weights"]["official"]
        assert official["manual"] is True and official["filename"] == f"{tag}.pt" and official["converter"] == "munit"


def test_official_manual_flag_must_be_a_boolean(tmp_path):
    entry = {
        "method": "pix2pix", "task": "translation", "hparams": {},
        "weights": {"official": {"url": "https://example.invalid/folder", "sha256": None, "converter": "pix2pix",
                                 "manual": "yes"}},
        "io": {"range": [-1, 1], "size_multiple": 256, "directions": ["a2b"], "eval_mode": True},
        "dataset": {"name": "x"}, "paper": "arXiv:1611.07004", "license": "BSD-3-Clause", "origin": "official",
    }
    with pytest.raises(zoo.RegistryError, match="manual"):
        registry.validate_entry("pix2pix-x", entry)
    entry["weights"]["official"]["manual"] = True
    registry.validate_entry("pix2pix-x", entry)
    entry["weights"]["official"]["format"] = "onnx"
    with pytest.raises(zoo.RegistryError, match="format.*torch, tensorflow"):
        registry.validate_entry("pix2pix-x", entry)
    entry["weights"]["official"]["format"] = "tensorflow"
    registry.validate_entry("pix2pix-x", entry)
