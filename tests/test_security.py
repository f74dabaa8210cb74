"""Security (issue 9): no code path unpickles untrusted data, names from registry entries, URLs and archives
cannot reach outside zoo's cache folder, and access tokens never show in messages, logs or model cards."""

from __future__ import annotations

import logging
import pickle
import sys
import zipfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo  # noqa: E402
import zoo.convert  # noqa: E402
from test_hub import _model, _register_tiny_converter, tmp_registry  # noqa: E402,F401
from tinymethod import TinyNet  # noqa: E402
from zoo import hub, official  # noqa: E402
from zoo.errors import CheckpointError, WeightsNotFoundError, ZooError  # noqa: E402
from zoo.fsutil import plain_name  # noqa: E402
from zoo.metrics.backbones import load_backbone_state_dict  # noqa: E402
from zoo.redact import redact  # noqa: E402

ZOO_SOURCE = Path(zoo.__file__).resolve().parent
SENTINEL = "hf_SentinelTokenDoNotLeak0123456789"


class _Payload:
    """Unpickling this runs `open(marker, "w")`: the file appears if anything unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _crafted_files(folder: Path) -> tuple[Path, dict[str, Path]]:
    """The same payload as a torch zip checkpoint, a legacy (plain pickle) file and a zip archive member."""
    marker = folder / "payload-ran"
    state = {"state_dict": TinyNet().state_dict(), "zoo": {"method": "tinynet"}, "x": _Payload(marker)}
    files = {"zip": folder / "crafted.ckpt", "legacy": folder / "crafted_legacy.pth"}
    torch.save(state, files["zip"])
    files["legacy"].write_bytes(pickle.dumps(state, protocol=2))
    archive = folder / "release.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(files["zip"], "models/net_G.pth")
    files["archive"] = archive
    return marker, files


def test_a_crafted_pickle_is_refused_by_every_loader(tmp_path, tmp_registry, capsys):
    from zoo.training import AtomicCheckpointIO

    marker, files = _crafted_files(tmp_path)
    for kind in ("zip", "legacy"):
        with pytest.raises(CheckpointError):
            zoo.load(files[kind])  # a .ckpt / .pth handed to zoo.load
        with pytest.raises(CheckpointError):
            official.read_checkpoint(files[kind])  # an official release, before conversion
        with pytest.raises(CheckpointError):
            load_backbone_state_dict(files[kind])  # metric backbones (VGG, Inception, LPIPS heads)
        with pytest.raises(CheckpointError, match="refuses to unpickle"):  # zoo.fit --ckpt_path
            AtomicCheckpointIO().load_checkpoint(files[kind])
    with pytest.raises(CheckpointError):
        official.read_checkpoint(files["archive"], member="models/net_G.pth")
    calls: list = []
    _register_tiny_converter(calls)
    assert zoo.convert.main(["tinynet", str(files["zip"]), "--out", str(tmp_path / "out")]) == 2
    assert "unpickle" in capsys.readouterr().err and not calls and not (tmp_path / "out").exists()
    assert not marker.exists()


def test_no_unsafe_deserialisation_in_the_source():
    """Every call in zoo's source that reads serialised data is a safe one: torch.load with
    weights_only=True, yaml with a SafeLoader, numpy without pickles, no pickle/marshal/dill at all."""
    import ast

    import yaml

    from zoo import registry

    def name(node: ast.AST) -> str:
        if isinstance(node, ast.Attribute):
            return f"{name(node.value)}.{node.attr}"
        return node.id if isinstance(node, ast.Name) else ""

    offenders, loads = [], 0
    for path in sorted(ZOO_SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            called = name(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if called.split(".")[0] in ("pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib") and \
                    called.split(".")[-1] in ("load", "loads", "Unpickler", "open"):
                offenders.append(f"{path.name}:{node.lineno}: {called}")
            elif called == "torch.load":
                loads += 1
                flag = keywords.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    offenders.append(f"{path.name}:{node.lineno}: torch.load without weights_only=True")
            elif called in ("yaml.load", "yaml.load_all", "yaml.unsafe_load", "yaml.full_load"):
                loader = name(keywords.get("Loader", ast.Name(id="?")))
                safe = getattr(yaml, loader.split(".")[-1], None) or getattr(registry, loader, None)
                if not (isinstance(safe, type) and issubclass(safe, yaml.SafeLoader)):
                    offenders.append(f"{path.name}:{node.lineno}: {called} with Loader {loader}")
            elif called in ("np.load", "numpy.load"):
                flag = keywords.get("allow_pickle")
                if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                    offenders.append(f"{path.name}:{node.lineno}: np.load with allow_pickle")
    assert loads >= 3  # the scan sees the loaders it checks (official files, backbones, SRGAN stage 1)
    assert not offenders, offenders


@pytest.mark.parametrize("spec, what", [
    ({"url": "https://example.com/rel/model.pth", "filename": "../escaped.pth"}, "filename"),
    ({"url": "https://example.com/rel/model.pth", "filename": "/tmp/escaped.pth"}, "filename"),
    ({"url": "https://example.com/rel/model.pth", "filename": "sub/dir.pth"}, "filename"),
    ({"url": "https://example.com/rel/.."}, "URL"),
    ({"url": "https://example.com/"}, "URL"),
    ({"url": "https://example.com/rel/models.zip", "member": ".."}, "member"),
])
def test_names_from_registry_entries_cannot_escape_the_cache(spec, what):
    with pytest.raises(ZooError, match="not a plain file name") as error:
        official.official_cache_path(spec)
        official.present_file(spec)
        official.verify_sha256(Path("x"), spec, is_member=bool(spec.get("member")))
    assert what in str(error.value)


def test_registry_names_and_plain_names(tmp_path):
    for bad in ("../converted-elsewhere", "/abs/name", "a/b", "..", ".", "", "a\\b", "a\x00b"):
        with pytest.raises(ZooError, match="not a plain file name"):
            plain_name(bad, "name")
        with pytest.raises(ZooError):
            official.converted_cache_dir(bad)
        with pytest.raises(ZooError):
            with official.lock(bad):
                pass
    assert plain_name("cyclegan-horse2zebra", "name") == "cyclegan-horse2zebra"
    assert plain_name("latest_net_G.pth", "name") == "latest_net_G.pth"


@pytest.mark.parametrize("official_file", [
    {"url": "http://example.com/rel/tiny_G.pth", "filename": "../../outside.pth"},  # refused by the registry check
    {"url": "http://example.com/rel/.."},  # a URL whose last part climbs: refused when the entry is loaded
])
def test_loading_an_entry_with_an_escaping_name_writes_nothing_outside_the_cache(official_file, tmp_registry,
                                                                                 tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    # the file the entry points at exists outside the cache: it must be neither read nor replaced
    outside = tmp_path / "outside.pth"
    torch.save(_model(width=6).G.state_dict(), outside)
    before = outside.read_bytes()
    calls: list = []
    _register_tiny_converter(calls)
    with pytest.raises(ZooError, match="plain file name"):
        tmp_registry({"tinynet-escape": {
            "hparams": {"width": 6}, "weights": {"official": {"sha256": None, "converter": "tinynet", **official_file}}}})
        zoo.load("tinynet-escape")
    assert not calls and outside.read_bytes() == before
    cache = tmp_path / "zoocache"
    written = [p for p in tmp_path.rglob("*") if p.is_file() and cache not in p.parents]
    assert sorted(p.name for p in written) == ["outside.pth", "registry.yaml"]


# ------------------------------------------------------------------------------------------- tokens
def test_redact_hides_known_and_hub_shaped_tokens(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-0123456789")
    text = f"401 for Bearer {SENTINEL}; wandb key wandb-secret-0123456789; other hf_AbCdEfGhIjKlMnOpQrSt"
    out = redact(text, ["explicit-secret-value"]) + redact("token explicit-secret-value", ["explicit-secret-value"])
    assert SENTINEL not in out and "wandb-secret" not in out and "hf_AbCdEf" not in out and "explicit-secret" not in out
    assert out.count("***") == 4 and "401 for Bearer" in out


def test_a_sentinel_token_never_reaches_messages_logs_or_cards(tmp_path, monkeypatch, capsys, caplog):
    """The Hub client fails with the token in its message (as a leaky error might): zoo's error, its
    output, its logs and the model card all go without it; the upload that works never writes it."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import CommitInfo

    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    caplog.set_level(logging.DEBUG)
    seen: dict[str, str] = {}

    def leaky(self, repo_id, **kw):
        raise RuntimeError(f"401 Unauthorized: Authorization: Bearer {self.token or SENTINEL}")

    monkeypatch.setattr(HfApi, "create_repo", leaky)
    with pytest.raises(ZooError) as error:
        _model().push_to_hub("org/tiny", token=SENTINEL)
    assert SENTINEL not in str(error.value) and "401 Unauthorized" in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__

    # zoo.push's command line: the same failure, as a one-line message
    from zoo.push import main as push_main

    folder = _model().save_pretrained(tmp_path / "tiny")
    assert push_main([str(folder), "--repo", "org/tiny", "--results", str(tmp_path / "none")]) == 2

    def upload_folder(self, **kw):
        root = Path(kw["folder_path"])
        seen.update({p.name: p.read_bytes().decode("latin-1") for p in root.iterdir()})
        return CommitInfo(commit_url="https://huggingface.co/org/tiny/commit/abc", commit_message="m",
                          commit_description="", oid="abc", pr_url=None)

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: None)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    _model().push_to_hub("org/tiny", token=SENTINEL, name="tiny")
    assert set(seen) == {"README.md", "config.json", "model.safetensors"}
    assert not any(SENTINEL in text for text in seen.values())
    out = capsys.readouterr()
    assert SENTINEL not in out.out + out.err + caplog.text
    assert "error: pushing to Hugging Face Hub repo 'org/tiny' failed" in out.err


def test_hub_download_errors_are_redacted(monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)

    def leaky(*args, **kwargs):
        raise OSError(f"connection refused while sending token={SENTINEL}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", leaky)
    with pytest.raises(WeightsNotFoundError) as error:
        hub._hub_download("org/tiny", None)
    assert SENTINEL not in str(error.value) and "connection refused" in str(error.value)
