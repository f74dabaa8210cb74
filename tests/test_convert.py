"""zoo.convert (from_official, the CLI, --all, --push) and zoo.load's official-release path: sha256 recorded and
enforced, archive members, file= side-loading, the cache lock under two concurrent processes."""

from __future__ import annotations

import hashlib
import io as _io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo  # noqa: E402
import zoo.convert  # noqa: E402
from test_hub import _model, _register_tiny_converter, _same_state, tmp_registry  # noqa: E402,F401
from tinymethod import TinyNet  # noqa: E402
from zoo import official, registry  # noqa: E402
from zoo.errors import CheckpointError, UnknownModelError, WeightsNotFoundError, ZooError  # noqa: E402

URL = "http://example.com/rel/tiny_G.pth"


def _entry(**official_spec):
    return {"hparams": {"width": 6}, "weights": {"official": {"url": URL, "sha256": None, "converter": "tinynet",
                                                              **official_spec}}}


def _save_g(path: Path, seed: int = 0) -> dict:
    state = _model(seed=seed, width=6).G.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def _equal_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def tiny(tmp_registry, tmp_path, monkeypatch):
    """A registry of tinynet entries with one official file each, offline, and a counting tinynet converter."""
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    calls: list = []
    _register_tiny_converter(calls)
    return calls


# --------------------------------------------------------------------------------------- from_official
def test_from_official_by_method_key_registry_name_path_object_and_parts(tiny, tmp_registry, tmp_path):
    tmp_registry({"tinynet-rel": {**_entry(), "io": {"range": [-1, 1], "size_multiple": 4, "directions": ["a2b"],
                                                       "eval_mode": True, "domains": {"a": "labels", "b": "photo"}}}})
    state = _save_g(tmp_path / "G.pth")
    by_key = zoo.convert.from_official("tinynet", tmp_path / "G.pth", width=6)
    assert _equal_state(by_key.G.state_dict(), state) and "domains" not in by_key.io
    by_name = zoo.convert.from_official("tinynet-rel", str(tmp_path / "G.pth"))  # the entry's hparams (width 6)
    assert by_name.hparams["width"] == 6 and by_name.io["domains"] == {"a": "labels", "b": "photo"}
    assert by_name.card["name"] == "tinynet-rel" and by_name.card["license"] == "MIT"
    by_object = zoo.convert.from_official("tinynet", state, width=6)  # what torch.load returned
    assert _equal_state(by_object.G.state_dict(), state)
    by_parts = zoo.convert.from_official("tinynet", {"a2b": tmp_path / "G.pth"}, width=6)  # paths inside a mapping
    assert _equal_state(by_parts.G.state_dict(), state) and set(tiny[-1]) == {"a2b"}
    with pytest.raises(UnknownModelError, match="tinynet"):
        zoo.convert.from_official("tinynet-nope", tmp_path / "G.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        zoo.convert.from_official("tinynet", tmp_path / "missing.pth")


def test_from_official_refuses_pickled_code_and_methods_without_converter(tiny, tmp_path):
    torch.save({"G": TinyNet().G}, tmp_path / "module.pth")  # a pickled nn.Module, not a state dict
    with pytest.raises(CheckpointError, match="refuses to unpickle"):
        zoo.convert.from_official("tinynet", tmp_path / "module.pth")
    with pytest.raises(ZooError, match="no converter.*methods with one:.*cyclegan"):
        zoo.convert.from_official("gatys", {})


def test_legacy_pytorch_format_is_read_weights_only(tiny, tmp_path):
    """Releases from PyTorch < 1.6 (MUNIT's 0.3 files, the junyanz generators) are the legacy, non-zip format."""
    state = _model(width=6).G.state_dict()
    torch.save(state, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(tmp_path / "old.pth")
    assert _equal_state(zoo.convert.from_official("tinynet", tmp_path / "old.pth", width=6).G.state_dict(), state)


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_writes_a_loadable_folder_with_card_and_set(tiny, tmp_registry, tmp_path, capsys):
    tmp_registry({"tinynet-rel": _entry()})
    state = _save_g(tmp_path / "G.pth")
    out = tmp_path / "out"
    assert zoo.convert.main(["tinynet-rel", str(tmp_path / "G.pth"), "--out", str(out)]) == 0
    assert "converted tinynet-rel ->" in capsys.readouterr().out
    loaded = zoo.load(out)
    assert _equal_state(loaded.G.state_dict(), state) and not loaded.training
    config = json.loads((out / "config.json").read_text())
    assert config["components"] == ["G"] and config["card"]["origin"] == "official"
    card = (out / "README.md").read_text()
    assert "# tinynet-rel" in card and "MIT" in card and "arXiv:1611.07004" in card
    # --set overrides a hyperparameter (a width the file does not have: the converter's strict load says so)
    assert zoo.convert.main(["tinynet", str(tmp_path / "G.pth"), "--out", str(tmp_path / "o2"), "--set", "width=6"]) == 0
    assert zoo.load(tmp_path / "o2").hparams["width"] == 6
    assert zoo.convert.main(["tinynet-nope", str(tmp_path / "G.pth"), "--out", str(tmp_path / "o3")]) == 2
    assert "tinynet-nope" in capsys.readouterr().err and not (tmp_path / "o3").exists()
    assert zoo.convert.main(["tinynet", "--out", str(tmp_path / "o4")]) == 2  # no files


def test_cli_parts_named_or_matched_by_file_name(tiny, tmp_registry, tmp_path):
    tmp_registry({"tinynet-two": {
        "io": {"range": [-1, 1], "size_multiple": 4, "directions": ["a2b", "b2a"], "eval_mode": True},
        "hparams": {"width": 6},
        "weights": {"official": {"a2b": {"url": "http://e.com/x/sat2map.pth", "sha256": None, "converter": "tinynet"},
                                 "b2a": {"url": "http://e.com/x/map2sat.pth", "sha256": None, "converter": "tinynet"}}},
    }})
    a, b = _save_g(tmp_path / "sat2map.pth", 1), _save_g(tmp_path / "map2sat.pth", 2)
    assert zoo.convert.main(["tinynet-two", str(tmp_path / "map2sat.pth"), str(tmp_path / "sat2map.pth"),
                             "--out", str(tmp_path / "o")]) == 0
    assert set(tiny[-1]) == {"a2b", "b2a"} and _equal_state(tiny[-1]["a2b"], a) and _equal_state(tiny[-1]["b2a"], b)
    assert zoo.convert.main(["tinynet-two", f"b2a={tmp_path / 'sat2map.pth'}", f"a2b={tmp_path / 'map2sat.pth'}",
                             "--out", str(tmp_path / "o2")]) == 0
    assert _equal_state(tiny[-1]["a2b"], b)  # named parts win over file names
    (tmp_path / "other.pth").write_bytes((tmp_path / "sat2map.pth").read_bytes())
    with pytest.raises(ZooError, match="a2b=FILE b2a=FILE"):
        zoo.convert.convert_file("tinynet-two", [str(tmp_path / "other.pth"), str(tmp_path / "map2sat.pth")],
                                 tmp_path / "o3")


def _fake_hub(monkeypatch) -> list:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import CommitInfo

    uploads: list = []

    def upload_folder(self, repo_id, folder_path, **kw):
        uploads.append((repo_id, {p.name: p.read_text() if p.suffix in (".md", ".json") else p.stat().st_size
                                  for p in Path(folder_path).iterdir()}))
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/abc", commit_message="m",
                          commit_description="", oid="abc")

    monkeypatch.setattr(HfApi, "create_repo", lambda self, *a, **k: None)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return uploads


def test_all_converts_what_the_folder_holds_checks_sha256_and_pushes(tiny, tmp_registry, tmp_path, monkeypatch, capsys):
    files = tmp_path / "downloads"
    sa = _save_g(files / "a.pth", 1)
    _save_g(files / "b.pth", 2)
    sha_a = hashlib.sha256((files / "a.pth").read_bytes()).hexdigest()
    tmp_registry({
        "tinynet-a": _entry(url="http://e.com/a.pth", sha256=sha_a),
        "tinynet-b": _entry(url="http://e.com/b.pth", sha256="0" * 64),  # not this file: refused
        "tinynet-c": _entry(url="http://e.com/c.pth"),  # not downloaded
        "tinynet-free": {},
    })
    uploads = _fake_hub(monkeypatch)
    assert zoo.convert.main(["--all", "--from", str(files), "--out", str(tmp_path / "models"), "--push", "myorg"]) == 1
    out = capsys.readouterr().out
    assert "converted tinynet-a" in out and "FAILED tinynet-b" in out and "expects 000" in out
    assert "1 converted, 1 failed, 1 without their file(s)" in out
    assert _equal_state(zoo.load(tmp_path / "models" / "tinynet-a").G.state_dict(), sa)
    assert not (tmp_path / "models" / "tinynet-b").exists()
    assert [repo for repo, _ in uploads] == ["myorg/tinynet-a"]
    card = uploads[0][1]["README.md"]
    assert "library_name: zoo" in card and "# tinynet-a" in card and "hf-hub:myorg/tinynet-a" in card
    assert zoo.convert.main(["--all", "--from", str(tmp_path / "nothing"), "--out", str(tmp_path / "m2")]) == 2


# --------------------------------------------------------------------------------------- sha256
def test_unknown_sha256_is_recorded_printed_then_enforced(tiny, tmp_registry, tmp_path, capsys):
    tmp_registry({"tinynet-rel": _entry()})
    cache = tmp_path / "zoocache" / "official"
    _save_g(cache / "tiny_G.pth", 1)
    digest = hashlib.sha256((cache / "tiny_G.pth").read_bytes()).hexdigest()
    zoo.load("tinynet-rel")
    assert f"sha256 {digest}" in capsys.readouterr().err
    assert (cache / "tiny_G.pth.sha256").read_text().split()[0] == digest
    # another file under the same name: refused, even when the converted cache is gone
    import shutil

    shutil.rmtree(tmp_path / "zoocache" / "converted")
    _save_g(cache / "tiny_G.pth", 2)
    with pytest.raises(CheckpointError, match=f"first used on this machine had {digest}"):
        zoo.load("tinynet-rel")
    with pytest.raises(CheckpointError, match="first used on this machine"):  # a side-loaded copy too
        zoo.load("tinynet-rel", file=cache / "tiny_G.pth")
    assert not (tmp_path / "zoocache" / "converted" / "tinynet-rel").exists()


def test_known_sha256_mismatch_is_refused(tiny, tmp_registry, tmp_path):
    tmp_registry({"tinynet-rel": _entry(sha256="a" * 64)})
    _save_g(tmp_path / "zoocache" / "official" / "tiny_G.pth")
    with pytest.raises(CheckpointError, match="expects a{64}"):
        zoo.load("tinynet-rel")


# ------------------------------------------------------------------------------------ side-loading
def test_offline_error_says_url_and_where_then_file_side_loads_and_caches(tiny, tmp_registry, tmp_path):
    tmp_registry({"tinynet-rel": _entry()})
    with pytest.raises(WeightsNotFoundError) as err:
        zoo.load("tinynet-rel")
    msg = str(err.value)
    assert URL in msg and str(tmp_path / "zoocache" / "official" / "tiny_G.pth") in msg and "file=PATH" in msg
    state = _save_g(tmp_path / "elsewhere" / "G.pth")
    model = zoo.load("tinynet-rel", file=tmp_path / "elsewhere" / "G.pth")
    assert _equal_state(model.G.state_dict(), state) and len(tiny) == 1
    again = zoo.load("tinynet-rel")  # served from the converted cache, no file needed
    assert _same_state(again.G, model.G) and len(tiny) == 1
    with pytest.raises(ZooError, match="not one"):
        zoo.load("tinynet", file=tmp_path / "elsewhere" / "G.pth")
    with pytest.raises(ZooError, match="no part 'b2a'"):
        zoo.load("tinynet-rel", file={"b2a": tmp_path / "elsewhere" / "G.pth"})
    with pytest.raises(CheckpointError, match="does not exist"):
        zoo.load("tinynet-rel", file=tmp_path / "nope.pth")


def test_archive_member_downloaded_once_and_extracted_member_accepted(tiny, tmp_registry, tmp_path, monkeypatch):
    """pytorch/examples ship candy.pth inside saved_models.zip: zoo downloads the archive and reads the member."""
    buf = _io.BytesIO()
    states = {n: _model(seed=i, width=6).G.state_dict() for i, n in enumerate(("candy", "mosaic"))}
    with zipfile.ZipFile(buf, "w") as z:
        for n, sd in states.items():
            member = _io.BytesIO()
            torch.save(sd, member)
            z.writestr(f"saved_models/{n}.pth", member.getvalue())
    url = "https://www.dropbox.com/s/xyz/saved_models.zip?dl=1"
    tmp_registry({f"tinynet-{n}": _entry(url=url, member=f"{n}.pth") for n in ("candy", "mosaic", "nope")})
    monkeypatch.setenv("ZOO_OFFLINE", "0")
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", False)
    fetched: list = []
    monkeypatch.setattr(official.urllib.request, "urlopen", lambda u, timeout=None: fetched.append(u) or _io.BytesIO(buf.getvalue()))
    assert _equal_state(zoo.load("tinynet-candy").G.state_dict(), states["candy"])
    assert _equal_state(zoo.load("tinynet-mosaic").G.state_dict(), states["mosaic"])
    assert fetched == [url] and (tmp_path / "zoocache" / "official" / "saved_models.zip").is_file()
    with pytest.raises(CheckpointError, match="has no 'nope.pth'.*saved_models/candy.pth"):
        zoo.load("tinynet-nope")
    # a user behind a firewall who unzipped it: the extracted member in the cache folder is used as it is
    extracted = tmp_path / "zoocache" / "official" / "nope.pth"
    torch.save(states["candy"], extracted)
    assert _equal_state(zoo.load("tinynet-nope").G.state_dict(), states["candy"])
    assert (tmp_path / "zoocache" / "official" / "nope.pth.sha256").is_file()


def test_registry_validates_parts_and_member(tmp_registry):
    with pytest.raises(zoo.RegistryError, match="weights.official.Decoder"):
        tmp_registry({"tinynet-x": {"weights": {"official": {"Decoder": {"url": URL, "converter": "tinynet"}}}}})
    with pytest.raises(zoo.RegistryError, match="member"):
        tmp_registry({"tinynet-x": _entry(member="../evil.pth")})
    tmp_registry({"tinynet-x": {"weights": {"official": {"decoder": {"url": URL, "converter": "tinynet"},
                                                         "vgg": {"url": URL + "2", "converter": "tinynet"}}}}})
    assert set(official.official_files(registry.get_entry("tinynet-x"))) == {"decoder", "vgg"}


# --------------------------------------------------------------------------------------------- lock
_CHILD = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import torch, zoo
    from zoo import registry
    from tinymethod import TinyNet

    registry.reload_registry({registry!r})

    @registry.register_converter("tinynet")
    def convert(state, **hp):
        with open({log!r}, "a") as f:
            f.write("convert\\n")
        time.sleep(1.5)  # long enough for the other process to arrive while this one converts
        model = TinyNet(**hp)
        model.G.load_state_dict(state)
        return model

    model = zoo.load("tinynet-rel")
    torch.save(model.G.state_dict(), sys.argv[1])
""")


def test_two_processes_loading_at_once_convert_once_and_agree(tmp_registry, tmp_path):
    tmp_registry({"tinynet-rel": _entry()})
    state = _save_g(tmp_path / "zoocache" / "official" / "tiny_G.pth")
    script = tmp_path / "child.py"
    script.write_text(_CHILD.format(tests=str(Path(__file__).resolve().parent), registry=str(tmp_path / "registry.yaml"),
                                    log=str(tmp_path / "calls.log")))
    env = {**os.environ, "ZOO_CACHE": str(tmp_path / "zoocache"), "ZOO_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / f"out{i}.pt")], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert (tmp_path / "calls.log").read_text().count("convert") == 1  # the second process used the cache
    for i in range(2):
        assert _equal_state(torch.load(tmp_path / f"out{i}.pt", weights_only=True), state)
    conv = tmp_path / "zoocache" / "converted"
    assert sorted(p.name for p in conv.iterdir()) == ["tinynet-rel"]  # no temporary folders left behind
