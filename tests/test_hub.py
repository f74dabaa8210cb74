"""zoo.hub: save_pretrained / load (folder, .ckpt, hf-hub:, registry names) / push_to_hub, strictness, atomicity."""

from __future__ import annotations

import hashlib
import io as _io
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo  # noqa: E402
from tinymethod import TinyNet, batches  # noqa: E402
from zoo import hub, official, registry  # noqa: E402
from zoo.errors import CheckpointError, UnknownModelError, WeightsNotFoundError, ZooError  # noqa: E402

COMMIT = "0123456789abcdef0123456789abcdef01234567"


# ------------------------------------------------------------------------------------------ helpers
def _model(seed: int = 0, **hp: Any) -> TinyNet:
    torch.manual_seed(seed)
    m = TinyNet(**hp)
    with torch.no_grad():  # non-trivial BN buffers
        m.G[1].running_mean.uniform_(-0.5, 0.5)
        m.G[1].running_var.uniform_(0.5, 2.0)
        m.G[1].num_batches_tracked.fill_(7)
    return m


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _rewrite_weights(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


@pytest.fixture
def saved(tmp_path) -> tuple[TinyNet, Path]:
    m = _model()
    return m, m.save_pretrained(tmp_path / "tiny")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An offline HF cache in tmp_path; returns a function that puts a save_pretrained folder in it."""
    import huggingface_hub.constants as hfc

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def put(repo: str, folder: Path, commit: str = COMMIT, ref: str | None = "main") -> Path:
        root = cache / ("models--" + repo.replace("/", "--"))
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        snap = root / "snapshots" / commit
        snap.mkdir(parents=True)
        for f in ("config.json", "model.safetensors", "README.md"):
            data = (folder / f).read_bytes()
            blob = root / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            (snap / f).symlink_to(os.path.relpath(blob, snap))
        if ref:
            (root / "refs").mkdir(exist_ok=True)
            (root / "refs" / ref).write_text(commit)
        return snap

    return put


@pytest.fixture
def tmp_registry(tmp_path, monkeypatch):
    for attr in ("_registry_path_override", "_registry_cache", "_registry_cache_path"):
        monkeypatch.setattr(registry, attr, getattr(registry, attr))
    monkeypatch.setattr(registry, "_CONVERTERS", dict(registry._CONVERTERS))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoocache"))

    def use(entries: dict[str, Any]) -> None:
        base = {
            "method": "tinynet", "task": "translation", "hparams": {}, "weights": {},
            "io": {"range": [-1, 1], "size_multiple": 4, "directions": ["a2b"], "eval_mode": True},
            "dataset": {"name": "facades"}, "paper": "arXiv:1611.07004", "license": "MIT", "origin": "trained",
        }
        path = tmp_path / "registry.yaml"
        path.write_text(yaml.safe_dump({n: {**base, **e} for n, e in entries.items()}))
        registry.reload_registry(path)

    return use


# ------------------------------------------------------------------------------------ save_pretrained
def test_save_pretrained_files_config_card(tmp_path):
    m = _model(width=5)
    m.io["domains"] = {"a": "labels", "b": "photo"}
    out = m.save_pretrained(tmp_path / "out", dataset={"name": "facades"}, license="MIT",
                            paper="arXiv:1611.07004", metrics={"fid": 12.5})
    assert out == (tmp_path / "out").resolve()
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left

    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == "tinynet" and cfg["task"] == "translation"
    assert cfg["hparams"] == {"width": 5, "channels": 3, "lr": 1e-2, "tied": False}
    assert cfg["io"]["domains"] == {"a": "labels", "b": "photo"} and cfg["io"]["size_multiple"] == 4
    assert cfg["components"] == ["G", "D"] and cfg["zoo_version"] == zoo.__version__
    assert "sha256" not in cfg

    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"}
        assert set(f.keys()) == set(m.state_dict())

    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "zoo" and front["license"] == "mit"
    assert front["tags"][:3] == ["zoo", "tinynet", "translation"] and front["datasets"] == ["facades"]
    assert hub.sha256_file(out / "model.safetensors") in card
    assert "arXiv:1611.07004" in card and "`width`" in card and "`5`" in card
    assert '"fid": 12.5' in card and "zoo.load(" in card and "domains" in card


def test_save_pretrained_dedups_shared_storage(tmp_path):
    m = _model(tied=True)  # H is G: safetensors refuses shared tensors unless we clone them
    folder = m.save_pretrained(tmp_path / "tied")
    back = zoo.load(folder)
    assert _same_state(m, back) and back.H is back.G


# ------------------------------------------------------------------------------------- load folder
def test_load_folder_round_trip(saved):
    m, folder = saved
    back = zoo.load(folder)
    assert isinstance(back, TinyNet) and not back.training
    assert _same_state(m, back) and back.io == m.io
    m.eval()
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        assert torch.equal(m(x), back(x))
    assert _same_state(TinyNet.from_pretrained(str(folder)), m)
    assert _same_state(zoo.load(folder / "model.safetensors"), m)


def test_eval_mode_false_is_left_to_the_method(tmp_path):
    m = _model()
    m.io["eval_mode"] = False
    back = zoo.load(m.save_pretrained(tmp_path / "trainmode"))
    assert back.training and back.io["eval_mode"] is False


@pytest.mark.parametrize(
    "edit, names",
    [
        (lambda s: s.pop("G.0.weight"), ["missing", "G.0.weight"]),
        (lambda s: s.__setitem__("G.9.weight", torch.zeros(1)), ["unexpected", "G.9.weight"]),
        (lambda s: s.__setitem__("G.0.weight", torch.zeros(4, 3, 5, 5)), ["G.0.weight", "[4, 3, 5, 5]", "[4, 3, 3, 3]"]),
        (lambda s: s.pop("D.0.weight"), ["missing", "D.0.weight"]),  # a partial D is an error
        (lambda s: [s.pop(k) for k in [k for k in s if k.startswith("G.")]], ["missing", "G.0.weight"]),
    ],
    ids=["missing", "unexpected", "shape", "partial-D", "no-G"],
)
def test_strict_loading_names_keys(saved, edit, names):
    _, folder = saved
    _rewrite_weights(folder, edit)
    with pytest.raises(CheckpointError) as ei:
        zoo.load(folder)
    for n in names:
        assert n in str(ei.value)


def test_generator_only_weights_load(saved):
    m, folder = saved
    _rewrite_weights(folder, lambda s: [s.pop(k) for k in [k for k in s if k.startswith("D.")]])
    back = zoo.load(folder)
    sm, sb = m.state_dict(), back.state_dict()
    assert all(torch.equal(sm[k], sb[k]) for k in sm if k.startswith("G."))


def test_strict_false_warns_and_loads_what_matches(saved):
    m, folder = saved
    _rewrite_weights(folder, lambda s: (s.pop("G.0.bias"), s.__setitem__("extra.w", torch.ones(1))))
    with pytest.warns(UserWarning, match="G.0.bias"):
        back = zoo.load(folder, strict=False)
    assert torch.equal(back.G[0].weight, m.G[0].weight)


def test_load_state_dict_strict_too_many_keys_are_counted():
    m = _model()
    state = dict(m.state_dict())
    state.update({f"junk.{i}": torch.zeros(1) for i in range(15)})
    with pytest.raises(CheckpointError, match=r"unexpected keys \(15\).*and 5 more"):
        hub.load_state_dict_strict(m, state)


def test_folder_missing_files_and_bad_config(saved):
    _, folder = saved
    (folder / "model.safetensors").rename(folder / "weights.bak")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        zoo.load(folder)
    (folder / "weights.bak").rename(folder / "model.safetensors")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json"):
        zoo.load(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "method": "nosuchmethod"}))
    with pytest.raises(CheckpointError, match="nosuchmethod"):
        zoo.load(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "hparams": {"depth": 2}}))
    with pytest.raises(CheckpointError, match="depth"):
        zoo.load(folder)


def test_load_unknown_things():
    with pytest.raises(CheckpointError, match="no such file or folder"):
        zoo.load("./does/not/exist")
    with pytest.raises(CheckpointError, match="hf-hub:org/repo"):
        zoo.load("org/repo")
    with pytest.raises(CheckpointError, match="no such file or folder"):
        zoo.load("missing.ckpt")
    with pytest.raises(CheckpointError, match="no such file or folder"):
        zoo.load(Path("tinynet-nothing"))
    with pytest.raises(UnknownModelError, match="list_models"):
        zoo.load("definitely-not-a-model")
    with pytest.raises(WeightsNotFoundError, match=r"zoo.create\('tinynet'\)"):
        zoo.load("tinynet")


# -------------------------------------------------------------------------------------------- .ckpt
def test_lightning_ckpt_loads_weights_only(tmp_path):
    import lightning as L

    m = TinyNet()
    trainer = L.Trainer(
        max_steps=1, accelerator="cpu", enable_progress_bar=False, logger=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(m, torch.utils.data.DataLoader(batches(), batch_size=2))
    (ckpt,) = list(tmp_path.rglob("*.ckpt"))
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)  # must not need arbitrary classes
    assert type(raw["hyper_parameters"]) is dict and raw["zoo"]["method"] == "tinynet"
    back = zoo.load(ckpt)
    assert isinstance(back, TinyNet) and not back.training and back.io == m.io
    assert _same_state(m.cpu(), back)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": TinyNet().state_dict(), "zoo": {"method": "tinynet"}, "x": _Evil(str(marker))}, path)
    with pytest.raises(CheckpointError) as ei:
        zoo.load(path)
    assert "refuses to unpickle" in str(ei.value) and "save_pretrained" in str(ei.value)
    assert not marker.exists()


def test_ckpt_without_zoo_metadata(tmp_path):
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": TinyNet().state_dict()}, path)
    with pytest.raises(CheckpointError, match="zoo metadata"):
        zoo.load(path)
    torch.save(TinyNet().G.state_dict(), tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="zoo.convert"):
        zoo.load(tmp_path / "bare.pth")


# ------------------------------------------------------------------------------------------- hf-hub:
def test_hf_hub_from_offline_cache(saved, hf_cache):
    m, folder = saved
    hf_cache("org/tiny", folder)
    for spec, kw in [("hf-hub:org/tiny", {}), ("hf-hub:org/tiny@main", {}), (f"hf-hub:org/tiny@{COMMIT}", {}),
                     ("hf-hub:org/tiny", {"revision": COMMIT})]:
        back = zoo.load(spec, **kw)
        assert _same_state(m, back) and not back.training, spec
    with pytest.raises(WeightsNotFoundError) as ei:
        zoo.load("hf-hub:org/tiny@v2")
    msg = str(ei.value)
    assert "org/tiny" in msg and "'v2'" in msg and "model.safetensors" in msg and "hf download" in msg
    with pytest.raises(WeightsNotFoundError, match="org/absent"):
        zoo.load("hf-hub:org/absent")
    with pytest.raises(ZooError, match="only one"):
        zoo.load("hf-hub:org/tiny@main", revision="v2")


def test_registry_name_with_hub_weights_checks_sha256(saved, hf_cache, tmp_registry):
    m, folder = saved
    hf_cache("org/tiny", folder)
    good = hub.sha256_file(folder / "model.safetensors")
    tmp_registry({
        "tinynet-good": {"weights": {"hub": {"repo": "org/tiny", "revision": "main", "sha256": good}}},
        "tinynet-bad": {"weights": {"hub": {"repo": "org/tiny", "revision": "main", "sha256": "0" * 64}}},
    })
    assert zoo.info("tinynet-good")["weights_available"] == {"hub": True}
    assert _same_state(zoo.load("tinynet-good"), m)
    with pytest.raises(CheckpointError, match="sha256"):
        zoo.load("tinynet-bad")


def test_registry_name_nothing_available_lists_sources(hf_cache, tmp_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    tmp_registry({
        "tinynet-nowhere": {"weights": {
            "hub": {"repo": "org/nowhere", "revision": "v1", "sha256": "1" * 64},
            "official": {"url": "http://example.com/rel/tiny_G.pth", "sha256": None, "converter": "tinynet"},
        }},
    })
    with pytest.raises(WeightsNotFoundError) as ei:
        zoo.load("tinynet-nowhere")
    msg = str(ei.value)
    cache = tmp_path / "zoocache"
    for needle in ("hf-hub:org/nowhere@v1", "http://example.com/rel/tiny_G.pth", str(cache / "official" / "tiny_G.pth"),
                   str(cache / "converted" / "tinynet-nowhere"), "offline", "save_pretrained",
                   "python -m zoo.fit --model tinynet"):
        assert needle in msg, needle


def _register_tiny_converter(calls: list) -> None:
    @registry.register_converter("tinynet")
    def convert(state_dict, **hparams):
        calls.append(state_dict)
        model = TinyNet(**hparams)
        g = state_dict["a2b"] if "a2b" in state_dict else state_dict
        model.G.load_state_dict(g)
        return model


def test_official_file_converted_and_cached(tmp_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    tmp_registry({
        "tinynet-off": {"hparams": {"width": 6},
                        "weights": {"official": {"url": "http://example.com/rel/tiny_G.pth", "sha256": None,
                                                 "converter": "tinynet"}}},
    })
    with pytest.raises(WeightsNotFoundError, match="no converter is registered"):
        (tmp_path / "zoocache" / "official").mkdir(parents=True)
        src = _model(width=6)
        torch.save(src.G.state_dict(), tmp_path / "zoocache" / "official" / "tiny_G.pth")
        zoo.load("tinynet-off")
    calls: list = []
    _register_tiny_converter(calls)
    first = zoo.load("tinynet-off")
    assert len(calls) == 1 and not first.training and first.hparams["width"] == 6
    assert all(torch.equal(a, b) for a, b in zip(src.G.state_dict().values(), first.G.state_dict().values()))
    conv = tmp_path / "zoocache" / "converted" / "tinynet-off"
    assert (conv / "model.safetensors").is_file() and (conv / "config.json").is_file()
    assert zoo.info("tinynet-off")["weights_available"] == {"official": True, "converted": True}
    second = zoo.load("tinynet-off")
    assert len(calls) == 1 and _same_state(first.G, second.G)  # served from the converted cache
    from safetensors.torch import load_file

    # the cache holds the release's generator only, not the freshly initialised discriminator
    assert {k.split(".")[0] for k in load_file(str(conv / "model.safetensors"))} == {"G"}


def test_official_per_direction_and_download(tmp_registry, tmp_path, monkeypatch):
    srcs = {d: _model(seed=i).G.state_dict() for i, d in enumerate(("a2b", "b2a"))}
    blobs = {}
    for d, sd in srcs.items():
        buf = _io.BytesIO()
        torch.save(sd, buf)
        blobs[f"http://example.com/rel/{d}.pth"] = buf.getvalue()
    sha_a = hashlib.sha256(blobs["http://example.com/rel/a2b.pth"]).hexdigest()
    tmp_registry({
        "tinynet-two": {
            "io": {"range": [-1, 1], "size_multiple": 4, "directions": ["a2b", "b2a"], "eval_mode": True},
            "weights": {"official": {
                "a2b": {"url": "http://example.com/rel/a2b.pth", "sha256": sha_a, "converter": "tinynet"},
                "b2a": {"url": "http://example.com/rel/b2a.pth", "sha256": None, "converter": "tinynet"},
            }},
        },
        "tinynet-corrupt": {"weights": {"official": {
            "url": "http://example.com/rel/b2a.pth", "sha256": "f" * 64, "converter": "tinynet",
            "filename": "corrupt.pth"}}},
    })
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", False)
    fetched = []

    def fake_urlopen(url, timeout=None):
        fetched.append(url)
        return _io.BytesIO(blobs[url])

    monkeypatch.setattr(official.urllib.request, "urlopen", fake_urlopen)
    calls: list = []
    _register_tiny_converter(calls)
    model = zoo.load("tinynet-two")
    assert sorted(fetched) == sorted(blobs) and set(calls[0]) == {"a2b", "b2a"}
    assert model.io["directions"] == ["a2b", "b2a"]
    assert all(torch.equal(a, b) for a, b in zip(srcs["a2b"].values(), model.G.state_dict().values()))
    assert (tmp_path / "zoocache" / "official" / "a2b.pth").read_bytes() == blobs["http://example.com/rel/a2b.pth"]

    with pytest.raises(CheckpointError, match="sha256"):
        zoo.load("tinynet-corrupt")
    assert not (tmp_path / "zoocache" / "official" / "corrupt.pth").exists()
    assert not [p for p in (tmp_path / "zoocache" / "official").iterdir() if p.name.endswith(".part")]


# -------------------------------------------------------------------------------------- push_to_hub
def test_push_to_hub_uploads_the_three_files(monkeypatch, capsys, caplog):
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import CommitInfo

    token = "hf_SuperSecretToken123456"
    seen: dict[str, Any] = {}

    def create_repo(self, repo_id, **kw):
        seen["create_repo"] = (repo_id, kw)

    def create_branch(self, repo_id, **kw):
        seen["create_branch"] = (repo_id, kw)

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        seen["files"] = sorted(p.name for p in folder.iterdir())
        seen["config"] = json.loads((folder / "config.json").read_text())
        seen["card"] = (folder / "README.md").read_text()
        seen["upload"] = kw
        seen["token"] = self.token
        return CommitInfo(commit_url="https://huggingface.co/org/tiny/commit/abc", commit_message="m",
                          commit_description="", oid="abc", pr_url=None)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    caplog.set_level(logging.DEBUG)
    url = _model().push_to_hub("org/tiny", revision="v1", private=True, token=token, commit_message="first")
    assert url == "https://huggingface.co/org/tiny/commit/abc"
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert seen["create_repo"] == ("org/tiny", {"exist_ok": True, "private": True, "repo_type": "model"})
    assert seen["create_branch"][0] == "org/tiny" and seen["create_branch"][1]["branch"] == "v1"
    up = seen["upload"]
    assert (up["repo_id"], up["revision"], up["commit_message"], up["create_pr"]) == ("org/tiny", "v1", "first", False)
    assert seen["token"] == token and seen["config"]["method"] == "tinynet"
    assert "hf-hub:org/tiny" in seen["card"]
    assert not Path(up["folder_path"]).exists()  # the temporary folder is gone
    out = capsys.readouterr()
    assert token not in out.out + out.err + caplog.text


# -------------------------------------------------------------------------------------- atomic save
def test_atomic_save_survives_a_crash(tmp_path, monkeypatch):
    import safetensors.torch

    target = tmp_path / "model"
    _model(seed=1).save_pretrained(target)
    (target / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        _model(seed=2).save_pretrained(target)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp folders left

    # a crash between moving the old folder aside and moving the new one in puts the old one back
    real_rename = os.rename
    calls = []

    def flaky_rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError("power cut")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky_rename)
    with pytest.raises(OSError, match="power cut"):
        _model(seed=3).save_pretrained(target)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]

    # a successful overwrite replaces our files and keeps the others
    new = _model(seed=4)
    new.save_pretrained(target)
    assert (target / ".gitattributes").read_text() == "*.safetensors filter=lfs\n"
    assert _same_state(zoo.load(target), new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    shutil.rmtree(target)


def test_save_pretrained_refuses_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    for target in (".", str(tmp_path.parent)):
        with pytest.raises(ZooError, match="dedicated folder"):
            _model(seed=1).save_pretrained(target)
    assert (tmp_path / "notes.txt").read_text() == "keep me" and Path.cwd() == tmp_path


def test_atomic_file_keeps_the_old_file_on_error_and_normal_permissions(tmp_path):
    from zoo.fsutil import atomic_file

    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as handle:
            handle.write(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]
    with atomic_file(target) as handle:
        handle.write(b"new")
    mask = os.umask(0)
    os.umask(mask)
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_official_tensorflow_checkpoint_is_read_without_tensorflow(tmp_registry, tmp_path, monkeypatch):
    """A magenta-style V1 checkpoint written by real TensorFlow (tests/data/tf) converts through zoo.load with
    TensorFlow unimportable: zoo.tfcheckpoint reads it; the cin converter gets {variable: array}."""
    from zoo.tfcheckpoint import read_tf_checkpoint

    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` would fail
    fixture = Path(__file__).resolve().parent / "data" / "tf" / "cin_v1.ckpt"
    tmp_registry({"cin-tiny": {
        "method": "cin", "task": "style", "hparams": {"vgg_weights": None},
        "io": {"range": [0, 1], "size_multiple": 4, "directions": ["a2b"], "eval_mode": True},
        "weights": {"official": {"url": "http://example.com/m/pastiche-tiny.ckpt", "sha256": None, "converter": "cin",
                                 "format": "tensorflow"}}}})
    (tmp_path / "zoocache" / "official").mkdir(parents=True)
    shutil.copy(fixture, tmp_path / "zoocache" / "official" / "pastiche-tiny.ckpt")
    model = zoo.load("cin-tiny")
    variables = read_tf_checkpoint(fixture)
    gamma = torch.from_numpy(variables["transformer/contract/conv1/InstanceNorm/gamma"])
    assert model.num_styles == gamma.shape[0]
    w = variables["transformer/contract/conv1/weights"]  # HWIO in TF, OIHW in zoo
    assert any(torch.equal(v, torch.from_numpy(w.transpose(3, 2, 0, 1))) for v in model.transformer.state_dict().values())


def test_weight_free_method_key_loads_as_its_recipe():
    from tinymethod import TinyNet as _T  # noqa: F401  (registers tinynet)

    with pytest.raises(WeightsNotFoundError, match="is a method, not a model with weights"):
        zoo.load("tinynet")
    model = zoo.load("bicubic")
    assert model.method == "bicubic" and not model.training
