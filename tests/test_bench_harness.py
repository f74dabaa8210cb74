"""zoo.bench end to end: suites, data layouts, the runner for every task, results, leaderboard,
registry update, push, loggers and error exits. Backbones are random (no weights exist offline)."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_tiny  # noqa: E402,F401  (registers benchmm, benchsr, benchcolor, benchstyle)
from _synthetic import make_aligned  # noqa: E402

from zoo import bench, registry  # noqa: E402
from zoo.benchmark import BenchDataset, ShardSampler, load_suite, parse_suite  # noqa: E402
from zoo.benchmark.results import read_results, render_leaderboard  # noqa: E402
from zoo.errors import DataError, ZooError  # noqa: E402


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no backbone weights anywhere
    for var in ("ZOO_INCEPTION_WEIGHTS", "ZOO_ALEXNET_WEIGHTS", "ZOO_VGG16_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _rgb(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _suite(tmp_path: Path, text: str, name: str = "suite") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _aligned_suite(tmp_path: Path, metrics: str = "[psnr, ssim, lpips, fid, kid]", n: int = 3) -> tuple[Path, Path]:
    data = make_aligned(tmp_path / "data", n_train=1, n_val=n, size=32)
    suite = _suite(tmp_path, f"""
        name: tiny
        task: translation
        backbones: local-or-random
        data: {{root: {data}, layout: aligned, split: val}}
        metrics: {metrics}
        options: {{kid: {{subset_size: 2, subsets: 4}}}}
    """)
    return suite, data


def _records(out: Path, suite: str) -> list[dict[str, Any]]:
    return [json.loads(l) for l in (out / "results" / f"{suite}.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------------------------- suites
def test_shipped_suites_parse():
    names = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "benchmarks" / "suites").glob("*.yaml"))
    assert {"mini", "facades", "set5"} <= set(names)
    for name in names:
        suite = load_suite(name)
        assert suite.name == name and suite.tracks
    mini = load_suite("mini")
    assert {t.task for t in mini.tracks} == {"translation", "translation-multimodal", "super-resolution", "colorization", "style"}
    assert not mini.comparable and mini.backbones == "local-or-random"
    assert load_suite("set5").published["bicubic"]["psnr"] == 28.43


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"name": "x", "task": "translation", "data": {"root": "d"}, "metrics": ["psnr"], "colour": 1}, "unknown key"),
        ({"name": "x", "task": "painting", "data": {"root": "d"}, "metrics": ["psnr"]}, "task must be one of"),
        ({"name": "x", "task": "translation", "data": {"root": "d", "layout": "sr"}, "metrics": ["psnr"]}, "does not fit task"),
        ({"name": "x", "task": "translation", "data": {"root": "d", "layout": "unpaired"}, "metrics": ["psnr"]}, "use fid/kid"),
        ({"name": "x", "task": "translation", "data": {"root": "d"}, "metrics": ["lpips-diversity"]}, "multimodal"),
        ({"name": "x", "task": "super-resolution", "data": {"root": "d"}, "metrics": ["psnr"]}, "data.scale"),
        ({"name": "x", "task": "translation", "data": {"root": "d", "builtin": "photos"}, "metrics": ["psnr"]}, "exactly one of"),
        ({"name": "x", "task": "translation", "data": {"root": "d"}, "metrics": ["bleu"]}, "unknown metric"),
        ({"name": "x", "task": "style", "data": {"root": "d"}, "metrics": ["psnr"]}, "no pixel-exact target"),
    ],
)
def test_bad_suites_are_explained(raw, message):
    with pytest.raises(ZooError, match=message):
        parse_suite(raw)


def test_unknown_suite_lists_the_known_ones():
    with pytest.raises(ZooError, match="Known suites: .*mini"):
        load_suite("nope")


# --------------------------------------------------------------------------------------------- data
def test_sharding_covers_every_item_once_without_padding():
    for n in range(10):
        for world in range(1, 5):
            shards = [list(ShardSampler(n, world, r)) for r in range(world)]
            flat = sorted(i for s in shards for i in s)
            assert flat == list(range(n)) and sum(len(ShardSampler(n, world, r)) for r in range(world)) == n


def _track(task: str, data: dict[str, Any], metrics: list[str]):
    return parse_suite({"name": "t", "task": task, "data": data, "metrics": metrics}).tracks[0]


def test_dataset_layouts(tmp_path):
    a, b = _rgb(1), _rgb(2)
    _save(tmp_path / "al" / "test" / "0.png", np.concatenate([a, b], axis=1))
    item = BenchDataset(_track("translation", {"root": str(tmp_path / "al")}, ["psnr"]))[0]
    assert torch.equal(item["input"], torch.from_numpy(a).permute(2, 0, 1)) and item["role"] == "pair"
    swapped = BenchDataset(_track("translation", {"root": str(tmp_path / "al"), "direction": "BtoA"}, ["psnr"]))[0]
    assert torch.equal(swapped["input"], torch.from_numpy(b).permute(2, 0, 1))

    for i in range(3):
        _save(tmp_path / "pa" / "testA" / f"{i}.png", _rgb(10 + i))
        _save(tmp_path / "pa" / "testB" / f"{i}.jpg" if i == 2 else tmp_path / "pa" / "testB" / f"{i}.png", _rgb(20 + i))
    paired = BenchDataset(_track("translation", {"root": str(tmp_path / "pa"), "layout": "paired"}, ["psnr"]))
    assert len(paired) == 3 and paired[1]["name"] == "testA/1.png"
    _save(tmp_path / "pa" / "testB" / "extra.png", _rgb(3))
    with pytest.raises(DataError, match="do not match"):
        BenchDataset(_track("translation", {"root": str(tmp_path / "pa"), "layout": "paired"}, ["psnr"]))
    unpaired = BenchDataset(_track("translation", {"root": str(tmp_path / "pa"), "layout": "unpaired"}, ["fid"]))
    assert unpaired.counts() == {"input": 3, "real": 4} and "target" not in unpaired[0] and "input" not in unpaired[3]
    capped = BenchDataset(_track("translation", {"root": str(tmp_path / "pa"), "layout": "unpaired"}, ["fid"]), limit=2)
    assert capped.counts() == {"input": 2, "real": 2} and capped.limited

    _save(tmp_path / "sr" / "HR" / "0.png", _rgb(5, 35, 42))
    sr = BenchDataset(_track("super-resolution", {"root": str(tmp_path / "sr"), "scale": 4}, ["psnr"]))[0]
    assert sr["target"].shape == (3, 32, 40) and sr["input"].shape == (3, 8, 10)  # HR mod-cropped, LR by MATLAB bicubic
    from zoo.metrics.resize import make_lr

    expected = (make_lr(sr["target"].unsqueeze(0), 4) * 255).round().to(torch.uint8)[0]
    assert torch.equal(sr["input"], expected)
    _save(tmp_path / "sr" / "LR" / "0.png", _rgb(6, 9, 10))
    with pytest.raises(DataError, match="needs an LR of 10x8"):
        BenchDataset(_track("super-resolution", {"root": str(tmp_path / "sr"), "scale": 4}, ["psnr"]))[0]

    _save(tmp_path / "col" / "0.png", _rgb(7))
    grey = BenchDataset(_track("colorization", {"root": str(tmp_path / "col")}, ["psnr"]))[0]["input"]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])

    for i in range(2):
        _save(tmp_path / "st" / "content" / f"{i}.png", _rgb(30 + i))
    for j in range(3):
        _save(tmp_path / "st" / "style" / f"{j}.png", _rgb(40 + j))
    style = BenchDataset(_track("style", {"root": str(tmp_path / "st"), "styles": 2}, ["lpips"]))
    assert style.counts() == {"input": 4, "real": 2} and "style" in style[0]

    (tmp_path / "empty" / "test").mkdir(parents=True)
    with pytest.raises(DataError, match="contains no images"):
        BenchDataset(_track("translation", {"root": str(tmp_path / "empty")}, ["psnr"]))


# ------------------------------------------------------------------------------------- end to end
def test_identity_end_to_end_numbers_records_and_notes(tmp_path, capsys):
    from skimage.metrics import peak_signal_noise_ratio

    suite, data = _aligned_suite(tmp_path)
    out = tmp_path / "out"
    assert bench.main(["--models", "identity", "--suite", str(suite), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[psnr/rgb/v1]" in printed and "NOT comparable" in printed and "random-weights" in printed
    (record,) = _records(out, "tiny")
    assert record["model"] == "identity" and record["task"] == "translation" and record["n"] == 3
    assert record["metric_order"] == ["psnr", "ssim", "lpips", "fid", "kid"]
    for key in ("weights_sha256", "protocols", "devices", "hardware", "zoo_version", "git_sha", "date", "seed"):
        assert key in record
    assert record["throughput"]["images_per_s"] > 0 and record["throughput"]["images"] == 3
    for name, metric in record["metrics"].items():
        assert metric["protocol"] == record["protocols"][name] and metric["n"] == 3 and metric["comparable"] is False
        assert any("not a published benchmark" in note for note in metric["notes"])
    assert any("random" in note for note in record["metrics"]["fid"]["notes"])
    # Identity's PSNR is the PSNR between the A and B halves: check against skimage on the files.
    expected = []
    for f in sorted((data / "val").glob("*.png")):
        ab = np.asarray(Image.open(f))
        half = ab.shape[1] // 2
        expected.append(peak_signal_noise_ratio(ab[:, half:].astype(float), ab[:, :half].astype(float), data_range=255))
    assert abs(record["metrics"]["psnr"]["value"] - np.mean(expected)) < 1e-6

    assert bench.main(["--models", "identity", "--suite", str(suite), "--out", str(out), "--metrics", "psnr", "--limit", "2"]) == 0
    first, second = _records(out, "tiny")
    assert first == record  # append-only
    assert list(second["metrics"]) == ["psnr"] and second["n"] == 2
    assert any("--limit 2" in note for note in second["metrics"]["psnr"]["notes"])
    assert (out / "LEADERBOARD.md").is_file()


def test_every_task_runs_through_the_harness(tmp_path):
    data = make_aligned(tmp_path / "data", n_train=1, n_val=3, size=32)
    for i in range(3):
        _save(tmp_path / "photos" / "HR" / f"{i}.png", _rgb(50 + i, 48, 48))
        _save(tmp_path / "photos" / "content" / f"{i}.png", _rgb(60 + i))
    for j in range(2):  # FID needs two real images at least
        _save(tmp_path / "photos" / "style" / f"{j}.png", _rgb(70 + j))
    photos = tmp_path / "photos"
    suite = _suite(tmp_path, f"""
        name: tasks
        backbones: local-or-random
        tracks:
          - task: translation-multimodal
            data: {{root: {data}, layout: aligned, split: val}}
            metrics: [lpips-diversity, fid]
            options: {{lpips-diversity: {{n_inputs: 3, n_pairs: 2}}}}
          - task: super-resolution
            data: {{root: {photos}, layout: sr, scale: 4}}
            metrics: [psnr, ssim]
          - task: colorization
            data: {{root: {photos}, layout: colorization}}
            metrics: [psnr, ssim, lpips]
          - task: style
            data: {{root: {photos}, layout: style}}
            metrics: [lpips, fid]
    """)
    out = tmp_path / "out"
    args = ["--suite", str(suite), "--out", str(out), "--models", "benchmm,benchsr,benchcolor,benchstyle,bicubic"]
    assert bench.main([*args, "--seed", "3"]) == 0
    records = {r["model"]: r for r in _records(out, "tasks")}
    assert set(records) == {"benchmm", "benchsr", "benchcolor", "benchstyle", "bicubic"}
    diversity = records["benchmm"]["metrics"]["lpips-diversity"]
    assert diversity["value"] > 0 and diversity["protocol"] == "lpips-diversity/alex-v0.1/3x2/random-weights/v1"
    assert records["benchmm"]["throughput"]["images"] == 3 * 3  # n_pairs + 1 samples per input
    assert records["benchsr"]["metrics"]["psnr"]["protocol"] == "psnr/sr-y/crop4/v1"
    assert records["bicubic"]["metrics"]["psnr"]["value"] > records["benchsr"]["metrics"]["psnr"]["value"]  # bicubic beats nearest
    assert records["benchstyle"]["metrics"]["fid"]["extra"]["n_real"] == 2 and records["benchstyle"]["n"] == 3 * 2
    assert np.isfinite(records["benchcolor"]["metrics"]["psnr"]["value"])

    # Same seed, same samples; another seed, other samples.
    assert bench.main([*args[:4], "--models", "benchmm", "--seed", "3"]) == 0
    assert bench.main([*args[:4], "--models", "benchmm", "--seed", "4"]) == 0
    runs = [r["metrics"]["lpips-diversity"]["value"] for r in _records(out, "tasks") if r["model"] == "benchmm"]
    assert runs[0] == runs[1] != runs[2]


def test_builtin_mini_suite_runs_offline(tmp_path, capsys):
    out = tmp_path / "out"
    assert bench.main(["--suite", "mini", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skip pix2pix-facades: weights not on this machine" in printed
    assert "skip adain-wikiart: weights not on this machine" in printed
    assert "skip gatys-paper: optimises every image" in printed and "skip inversion: optimises every image" in printed
    records = _records(out, "mini")
    assert {"identity", "bicubic"} <= {r["model"] for r in records}
    for r in records:
        assert r["suite"] == "mini" and not r["comparable"]
        for metric in r["metrics"].values():
            assert metric["protocol"] and metric["comparable"] is False and metric["notes"]
    board = (out / "LEADERBOARD.md").read_text()
    assert "## mini — translation" in board and "## mini — super-resolution" in board


# ------------------------------------------------------------------------------------ leaderboard
def _record(model: str, suite: str, values: dict[str, float], **extra: Any) -> dict[str, Any]:
    metrics = {m: {"value": v, "protocol": f"{m}/p/v1", "comparable": True, "n": 4, "notes": []} for m, v in values.items()}
    return {"model": model, "suite": suite, "task": "translation", "metrics": metrics, "metric_order": list(values),
            "n": 4, "devices": 1, "num_nodes": 1, "hardware": {"cpu_count": 2}, "throughput": {"images_per_s": 10.0},
            "date": "2026-01-01T00:00:00+00:00", **extra}


def test_leaderboard_order_latest_paper_and_determinism(tmp_path):
    records = [
        _record("a", "s1", {"psnr": 20.0, "fid": 30.0}),
        _record("b", "s1", {"psnr": 25.0, "fid": 40.0}),
        _record("c", "s1", {"psnr": 10.0, "fid": 50.0}),
        _record("c", "s1", {"psnr": 30.0, "fid": 10.0}),  # c's latest run wins
        _record("a", "s2", {"fid": 12.0}),
        _record("b", "s2", {"fid": 8.0}),
    ]
    text = render_leaderboard(records, {"s1": {"b": {"psnr": 26.5, "source": "Table 9"}}})
    s1 = text[text.index("## s1"):text.index("## s2")]
    rows = [l for l in s1.splitlines() if l.startswith("| ") and "`" in l]
    assert [r.split("`")[1] for r in rows] == ["c", "b", "a"]  # psnr first: higher is better
    assert "25.00 (paper 26.50)" in s1 and "Table 9" in s1 and "30.00" in rows[0]
    s2 = text[text.index("## s2"):]
    assert [r.split("`")[1] for r in s2.splitlines() if r.startswith("| ") and "`" in r] == ["b", "a"]  # fid: lower first

    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    (out / "results" / "s1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert bench.main(["--leaderboard", "--out", str(out)]) == 0
    first = (out / "LEADERBOARD.md").read_bytes()
    assert bench.main(["--leaderboard", "--out", str(out)]) == 0
    assert (out / "LEADERBOARD.md").read_bytes() == first

    with (out / "results" / "s1.jsonl").open("a") as f:
        f.write('{"model": "trunc\n')
    with pytest.raises(ZooError, match="s1.jsonl:7"):
        read_results(out / "results")


# ------------------------------------------------------------------------ registry, card, push
@pytest.fixture
def tmp_registry(tmp_path, monkeypatch):
    for attr in ("_registry_path_override", "_registry_cache", "_registry_cache_path"):
        monkeypatch.setattr(registry, attr, getattr(registry, attr))
    source = Path(__file__).resolve().parents[1] / "registry.yaml"
    entry = textwrap.dedent("""
        {name}:
          method: identity
          task: translation
          hparams: {{}}
          weights: {{}}
          io: {{range: [0, 1], size_multiple: 1, directions: [a2b], eval_mode: true}}
          dataset: {{name: sketch2photo}}
          paper: none
          license: MIT
          origin: trained
        """)
    text = (source.read_text() + "\n# a weight-free entry for the test" + entry.format(name="identity-test")
            + "\n# ---- the next section: its heading comment must stay above its entry" + entry.format(name="identity-other"))
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    registry.reload_registry(path)
    return path


def test_update_registry_writes_results_and_keeps_comments(tmp_path, tmp_registry):
    suite, _ = _aligned_suite(tmp_path, metrics="[psnr, ssim]")
    before = tmp_registry.read_text()
    assert bench.main(["--models", "identity-test", "--suite", str(suite), "--out", str(tmp_path / "out"),
                       "--update-registry", "--registry", str(tmp_registry)]) == 0
    after = tmp_registry.read_text()
    assert before.split("identity-test:")[0] == after.split("identity-test:")[0]  # comments, other entries untouched
    tail = before[before.index("\n# ---- the next section"):]
    assert after.endswith(tail) and "results" not in tail  # the next entry keeps its heading; results stay above it
    entry = yaml.safe_load(after)["identity-test"]
    result = entry["results"]["tiny"]
    assert result["metrics"]["psnr"]["protocol"] == "psnr/rgb/v1" and result["n"] == 3
    assert result["metrics"]["psnr"]["value"] == _records(tmp_path / "out", "tiny")[0]["metrics"]["psnr"]["value"]
    assert registry.info("identity-test")["results"]["tiny"]["metrics"]["ssim"]["comparable"] is False
    card_model = registry.create("identity-test")
    card = card_model.save_pretrained(tmp_path / "card") / "README.md"
    assert "psnr/rgb/v1" in card.read_text()  # the card shows the registry's results


@pytest.fixture
def tiny_folder(tmp_path):
    import zoo
    from zoo.hub import sha256_file

    torch.manual_seed(0)
    folder = zoo.create("pix2pix", ngf=4, ndf=4).save_pretrained(
        tmp_path / "tiny", license="CC-BY-4.0", description="A tiny test translator.")
    return folder, sha256_file(folder / "model.safetensors")


def test_folder_model_card_gets_results(tmp_path, tiny_folder):
    folder, digest = tiny_folder
    suite, _ = _aligned_suite(tmp_path, metrics="[psnr, ssim]")
    assert bench.main(["--models", str(folder), "--suite", str(suite), "--out", str(tmp_path / "out"), "--update-registry"]) == 0
    (record,) = _records(tmp_path / "out", "tiny")
    assert record["weights_sha256"] == digest and record["model"] == "tiny"
    card = (folder / "README.md").read_text()
    assert "psnr/rgb/v1" in card and f"{record['metrics']['psnr']['value']}" in card
    assert "CC-BY-4.0" in card and "A tiny test translator." in card  # the rest of the card survives
    # A second suite adds its results beside the first instead of replacing them.
    other = _suite(tmp_path, (suite.read_text().replace("name: tiny", "name: tiny2")), name="suite2")
    assert bench.main(["--models", str(folder), "--suite", str(other), "--out", str(tmp_path / "out"), "--update-registry"]) == 0
    card = (folder / "README.md").read_text()
    assert '"tiny"' in card and '"tiny2"' in card and "CC-BY-4.0" in card
    from zoo.hub import sha256_file

    assert sha256_file(folder / "model.safetensors") == digest  # weights unchanged


def _fake_hub(monkeypatch) -> dict[str, Any]:
    from huggingface_hub import CommitInfo, HfApi

    seen: dict[str, Any] = {"uploads": []}

    def create_repo(self, repo_id, **kw):
        seen["repo"] = repo_id

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        seen["uploads"].append({"repo": kw["repo_id"], "files": sorted(p.name for p in folder.iterdir()),
                                "card": (folder / "README.md").read_text()})
        return CommitInfo(commit_url=f"https://huggingface.co/{kw['repo_id']}/commit/1", commit_message="m",
                          commit_description="", oid="1", pr_url=None)

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return seen


def test_push_uploads_exactly_the_model_files_with_metrics_and_never_the_token(tmp_path, tiny_folder, monkeypatch, capsys, caplog):
    folder, _ = tiny_folder
    secret = "hf_secret_value_123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    seen = _fake_hub(monkeypatch)
    caplog.set_level(logging.DEBUG)
    suite, _ = _aligned_suite(tmp_path, metrics="[psnr, ssim]")
    out = tmp_path / "out"
    assert bench.main(["--models", str(folder), "--suite", str(suite), "--out", str(out), "--push", "--repo", "org/x"]) == 0
    from zoo import push

    assert push.main([str(folder), "--repo", "org/y", "--results", str(out / "results")]) == 0
    assert [u["repo"] for u in seen["uploads"]] == ["org/x", "org/y"]
    value = str(_records(out, "tiny")[0]["metrics"]["psnr"]["value"])
    for upload in seen["uploads"]:
        assert upload["files"] == ["README.md", "config.json", "model.safetensors"]
        assert "psnr/rgb/v1" in upload["card"] and value in upload["card"]
    captured = capsys.readouterr()
    assert secret not in captured.out + captured.err + caplog.text

    assert push.main([str(folder), "--results", str(out / "results")]) == 2
    assert "error:" in capsys.readouterr().err
    # bench --push without a repo refuses before scoring anything.
    assert bench.main(["--models", str(folder), "--suite", str(suite), "--out", str(tmp_path / "out2"), "--push"]) == 2
    assert "pass --repo" in capsys.readouterr().err and not (tmp_path / "out2" / "results").exists()
    assert len(seen["uploads"]) == 2


# ---------------------------------------------------------------------------------------- errors
def test_user_mistakes_exit_2_with_a_message(tmp_path, capsys):
    from tinymethod import TinyNet

    no_verb = TinyNet().save_pretrained(tmp_path / "noverb")  # a translation model without translate()
    suite, _ = _aligned_suite(tmp_path, metrics="[psnr]")
    out = ["--out", str(tmp_path / "out")]
    cases = [
        (["--suite", "no-such-suite", *out], "unknown suite"),
        (["--models", "pix2pixx", "--suite", str(suite), *out], "unknown model"),
        (["--models", "bicubic", "--suite", str(suite), *out], "super-resolution model"),
        (["--models", f"identity,{no_verb}", "--suite", str(suite), "--push", "--repo", "o/r", *out], "one Hub repo"),
        (["--models", str(no_verb), "--suite", str(suite), *out], "has no translate() method"),
    ]
    local = _suite(tmp_path, f"""
        name: local
        task: translation
        data: {{root: {tmp_path / 'data'}, layout: aligned, split: val}}
        metrics: [fid]
    """, name="local")
    cases.append((["--models", "identity", "--suite", str(local), *out], "weights-inception-2015-12-05-6726825d.pth"))
    for argv, message in cases:
        assert bench.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err, (argv, err)
    # The same suite with random backbones asked for explicitly works, and says so.
    assert bench.main(["--models", "identity", "--suite", str(local), "--random-backbones", *out]) == 0
    assert "random-weights" in capsys.readouterr().out


# --------------------------------------------------------------------------------------- loggers
def test_wandb_offline_and_csv_loggers(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandbdir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    suite, _ = _aligned_suite(tmp_path, metrics="[psnr, ssim]")
    out = tmp_path / "out"
    assert bench.main(["--models", "identity", "--suite", str(suite), "--out", str(out), "--logger", "csv"]) == 0
    assert list((out / "logs").rglob("metrics.csv")) and list((out / "logs").rglob("bench_samples*.png"))
    assert bench.main(["--models", "identity", "--suite", str(suite), "--out", str(out), "--logger", "wandb"]) == 0
    runs = list((out / "logs").rglob("offline-run-*"))
    assert runs, "no offline wandb run written"
