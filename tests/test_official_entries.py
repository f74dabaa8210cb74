"""The real registry entries, end to end: `zoo.load("<name>")` downloads each release from the entry's own URL
(served here from memory), checks and records its sha256, converts it with the entry's converter and hparams, caches
the conversion and returns a model whose task verb runs — one entry per converter, at the release's full size.

The fake releases carry the official key names (the converters' own tests check those names against METHODS.md);
here what is checked is the registry wiring: URL -> cache file (or archive member, or parts), converter = method,
hparams and io of the entry, the cache folder, and that nothing else is needed."""

from __future__ import annotations

import io as _io
import sys
import zipfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo  # noqa: E402
from zoo import official, registry  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def online(tmp_path, monkeypatch):
    """Network access simulated: urlopen serves `served[url]`; returns (served, fetched)."""
    import huggingface_hub.constants as hfc

    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", False)
    served: dict[str, bytes] = {}
    fetched: list[str] = []

    def urlopen(url, timeout=None):
        fetched.append(url)
        if url not in served:
            raise OSError(f"no route to {url}")
        return _io.BytesIO(served[url])

    monkeypatch.setattr(official.urllib.request, "urlopen", urlopen)
    return served, fetched


def _bytes(obj) -> bytes:
    buf = _io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _randomised(state: dict) -> dict:
    g = torch.Generator().manual_seed(0)

    def fake(key: str, v: torch.Tensor) -> torch.Tensor:
        if not v.is_floating_point():
            return v.clone()
        if key.endswith("running_var"):  # a variance: positive
            return torch.rand(v.shape, generator=g) + 0.5
        return torch.randn(v.shape, generator=g) * 0.05

    return {k: fake(k, v) for k, v in state.items()}


def _url(name: str, part: str | None = None) -> str:
    spec = official.official_files(registry.get_entry(name))[part]
    return spec["url"]


def _release(name: str) -> dict[str | None, dict]:
    """{part: state} with the official keys of entry `name`'s release(s)."""
    model = zoo.create(name)
    method = registry.get_entry(name)["method"]
    if method == "pix2pix":
        return {None: _randomised(model.G["a2b"].state_dict())}
    if method == "cyclegan":
        return {None: _randomised(model.G_A.state_dict())}
    if method == "johnson":
        state = _randomised(model.transformer.state_dict())
        state["in1.running_mean"] = torch.zeros(32)  # the deprecated buffers the release still has
        return {None: state}
    if method == "adain":
        from zoo.methods.adain import _vgg_normalised_layout

        vgg = {k: torch.randn(shape) * 0.05 for k, shape in _vgg_normalised_layout().items()}
        return {"decoder": _randomised(model.decoder.state_dict()), "vgg": vgg}
    if method in ("srresnet", "srgan"):
        state = {f"_orig_mod.{k}": v for k, v in _randomised(model.G.state_dict()).items()}
        return {None: {"state_dict": state, "epoch": 10}}
    if method == "colorization":
        state = _randomised(model.net.state_dict())
        state["model_out.weight"] = model.net.state_dict()["model_out.weight"]  # the bins, as released
        return {None: state}
    raise AssertionError(method)


@pytest.mark.parametrize("name", ["pix2pix-facades", "cyclegan-horse2zebra", "srresnet-x4", "srgan-x4",
                                  "colorization-eccv16", "adain-wikiart"])
def test_zoo_load_downloads_converts_and_caches_the_release(name, online, tmp_path, capsys):
    served, fetched = online
    release = _release(name)
    for part, state in release.items():
        served[_url(name, part)] = _bytes(state)
    model = zoo.load(name)
    entry = registry.get_entry(name)
    assert model.method == entry["method"] and not model.training
    assert all(model.hparams[k] == v for k, v in entry["hparams"].items())
    assert {k: model.io[k] for k in entry["io"]} == entry["io"]
    assert sorted(fetched) == sorted(served)  # every part from its own URL, each once
    printed = capsys.readouterr().err
    for part in release:  # unknown sha256: recorded beside the file and printed
        path = official.official_cache_path(official.official_files(entry)[part])
        assert path.is_file() and Path(f"{path}.sha256").is_file() and path.name in printed
    assert (official.converted_cache_dir(name) / "model.safetensors").is_file()
    x = torch.rand(1, 3, 64, 64)
    out = {"translation": lambda: model.translate(x), "super-resolution": lambda: model.upscale(x[..., :24, :24]),
           "colorization": lambda: model.colorize(x), "style": lambda: model.stylize(x, torch.rand(1, 3, 64, 64))}[
        entry["task"]]()
    assert out.dtype == torch.float32 and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    again = zoo.load(name)  # from the converted cache: no second download
    assert len(fetched) == len(served)
    a, b = model.state_dict(), again.state_dict()
    released = [k for k in b if k.split(".", 1)[0] in model.inference_modules]  # not fresh discriminators
    assert released and all(torch.equal(a[k], b[k]) for k in released)


def test_archive_member_release_johnson(online):
    """johnson-candy: the entry's URL is pytorch/examples' saved_models.zip; candy.pth is read from it."""
    served, fetched = online
    state = _release("johnson-candy")[None]
    archive = _io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for style in ("candy", "mosaic", "udnie", "rain_princess"):
            z.writestr(f"saved_models/{style}.pth", _bytes(state if style == "candy" else _randomised(state)))
    served[_url("johnson-candy")] = archive.getvalue()
    model = zoo.load("johnson-candy")
    expected = {k: v for k, v in state.items() if "running" not in k}
    assert all(torch.equal(model.transformer.state_dict()[k], v) for k, v in expected.items())
    zoo.load("johnson-mosaic")  # the same archive, already in the cache
    assert fetched == [_url("johnson-candy")]


def test_google_drive_release_needs_the_manual_step_then_side_loads(online, tmp_path):
    """munit-edges2shoes sits in a Google Drive folder: never fetched; the error says where to put the file, and
    file= side-loads it (a PyTorch-0.3 style file with the content encoder's InstanceNorm statistics)."""
    served, fetched = online
    with pytest.raises(zoo.WeightsNotFoundError) as err:
        zoo.load("munit-edges2shoes")
    msg = str(err.value)
    assert "drive.google.com" in msg and "edges2shoes.pt" in msg and "file=PATH" in msg and fetched == []
    model = zoo.create("munit-edges2shoes")
    release = {"a": _randomised(model.gen_a.state_dict()), "b": _randomised(model.gen_b.state_dict())}
    release["a"]["enc_content.model.0.norm.running_mean"] = torch.zeros(64)
    torch.save(release, tmp_path / "edges2shoes.pt", _use_new_zipfile_serialization=False)
    loaded = zoo.load("munit-edges2shoes", file=tmp_path / "edges2shoes.pt")
    gen_b = loaded.gen_b.state_dict()
    assert all(torch.equal(gen_b[k], v) for k, v in release["b"].items())
    out = loaded.translate(torch.rand(1, 3, 32, 32), style=torch.zeros(8))
    assert out.shape == (1, 3, 32, 32) and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert zoo.load("munit-edges2shoes").gen_a.state_dict().keys() == loaded.gen_a.state_dict().keys()  # cached


def test_every_official_entry_is_complete():
    """Each release has a URL, a converter of its own method, a licence, a paper, a dataset and directions."""
    names = [n for n, e in registry.entries().items() if official.official_files(e)]
    cyclegan = ("apple2orange orange2apple summer2winter_yosemite winter2summer_yosemite horse2zebra zebra2horse "
                "monet2photo style_monet style_cezanne style_ukiyoe style_vangogh sat2map map2sat cityscapes_photo2label "
                "cityscapes_label2photo facades_photo2label facades_label2photo iphone2dslr_flower").split()
    released = {  # the PyTorch / TensorFlow releases METHODS.md lists for zoo's methods
        *(f"pix2pix-{n}" for n in ("facades", "edges2shoes", "maps", "day2night")),
        *(f"cyclegan-{n}" for n in cyclegan), "munit-edges2shoes", "munit-edges2handbags",
        *(f"johnson-{n}" for n in ("candy", "mosaic", "udnie", "rain_princess")), "adain-wikiart",
        "adain-wikiart-port", "cin-monet", "cin-varied", *(f"{m}-x{s}" for m in ("srresnet", "srgan") for s in (2, 4, 8)),
        "colorization-eccv16",
    }
    assert set(names) == released
    for name in names:
        entry = registry.get_entry(name)
        for spec in official.official_files(entry).values():
            assert spec["url"].startswith(("http://", "https://")) and spec["converter"] == entry["method"]
            assert registry.get_converter(spec["converter"]) is not None, name
        assert entry["license"] and entry["paper"] and entry["dataset"]["name"] and entry["io"]["directions"]
        assert entry["origin"] == "official"
