"""The speed suite (`python -m zoo.bench --suite speed`, zoo.benchmark.speed): records, ratios, table, flags.

Tiny widths and images, one repeat: these tests check what is recorded, never how fast anything is."""

from __future__ import annotations

import json
import math

import pytest
import torch

from zoo.benchmark import speed
from zoo.benchmark.command import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--sizes", "32", "--batches", "1", "--repeats", "1", "--warmup", "0", "--threads", "1",
        "--train-batch", "2", "--train-crop", "128", "--optim-size", "32", "--optim-steps", "2",
        "--set", "pix2pix.ngf=4", "--set", "pix2pix.ndf=4", "--set", "pix2pix.netG=unet_128",
        "--set", "srresnet.channels=4", "--set", "srresnet.num_blocks=1", "--set", "srresnet.d_channels=4"]


def _finite_positive(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One CLI run over two tiny real methods, each in its own process (as a full run does)."""
    out = tmp_path_factory.mktemp("speed")
    code = main(["--suite", "speed", "--models", "pix2pix,srresnet", "--out", str(out), *TINY])
    assert code == 0
    lines = (out / "results" / "speed.jsonl").read_text().splitlines()
    return out, [json.loads(line) for line in lines]


def test_records_have_the_machine_and_every_measurement(run):
    _, records = run
    assert {r["measurement"] for r in records} == {"inference", "training"}, records
    for r in records:
        assert r["machine"]["cores"] >= 1 and r["machine"]["torch"] == torch.__version__ and r["machine"]["cpu"]
        assert r["date"] and "git_sha" in r and r["run"] and _finite_positive(r["matmul"]["flops"])
        assert _finite_positive(r["peak_memory_mb"]) and r["peak_memory_kind"] == "rss_high_water_of_process"
    assert {(r["method"], r["measurement"]) for r in records} == {
        ("pix2pix", "inference"), ("pix2pix", "training"), ("srresnet", "inference"), ("srresnet", "training")}


def test_ratios_positive_and_finite(run):
    _, records = run
    for r in records:
        assert _finite_positive(r["ratio"]), r
        if r["measurement"] == "inference":
            assert r["verb"] in ("translate", "upscale") and r["size"] == 32 and r["batch"] == 1
            assert _finite_positive(r["verb_images_per_s"]["median"]) and _finite_positive(r["bare_images_per_s"]["median"])
            assert r["ratio"] == pytest.approx(r["verb_images_per_s"]["median"] / r["bare_images_per_s"]["median"])
            assert _finite_positive(r["flops_per_image"]) and _finite_positive(r["fraction_of_matmul"])
        else:
            assert r["batch"] == min(r["recipe_batch"], 2) and r["crop"] == 128 and r["at_recipe"] is False
            assert r["lightning_it_per_s"]["n"] == 1 and r["plain_it_per_s"]["n"] == 1
    sr = next(r for r in records if r["method"] == "srresnet" and r["measurement"] == "inference")
    assert sr["input_size"] == [8, 8]  # size is the output side of a x4 upscaler
    assert sr["hparams_overrides"] == {"vgg_weights": None, "channels": 4, "num_blocks": 1, "d_channels": 4}


def test_table_renders_the_latest_run(run, capsys):
    out, records = run
    assert main(["--table", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| method |" in table and "| pix2pix | translate | 32²" in table and "| srresnet | upscale |" in table
    assert records[0]["machine"]["device_name"] in table
    older = [{**r, "run": "0"} for r in records]  # an older run is not shown
    assert speed.render_speed_table(older + records).count("| pix2pix |") == 1


def test_optimization_measurement_in_process():
    """Gatys: seconds per L-BFGS step and the loss-ratio mark, from the optimizer's history."""
    cfg = speed.SpeedConfig(optim_size=32, optim_steps=2, measurements=("optimization",))
    (record,) = speed.measure_method("gatys", cfg)
    assert record["measurement"] == "optimization" and record["optimizer"] == "lbfgs" and record["size"] == 32
    assert record["steps_run"] >= 1 and _finite_positive(record["seconds_per_step"])
    assert record["steps_to_target"] is None or record["seconds_to_target"] >= 0


def test_plain_hooks_are_removed_afterwards():
    """The plain loop's stand-ins for Lightning's plumbing do not outlive it."""
    import zoo

    model = zoo.create("pix2pix", ngf=4, ndf=4, netG="unet_128")
    with speed.plain_hooks(model) as (optimizers, _, stand_in):
        assert model.optimizers() == optimizers and model.trainer is stand_in
        model.log("x", 1.0)  # a no-op, not Lightning's "not attached" warning
    assert "optimizers" not in vars(model) and model._trainer is None
    with pytest.raises(RuntimeError):
        model.trainer  # noqa: B018 - back to Lightning's own property


def test_timed_pair_interleaves_and_alternates_the_order():
    calls: list[str] = []
    a_s, b_s = speed.timed_pair(lambda: calls.append("a"), lambda: calls.append("b"), repeats=3, warmup=1,
                                device=torch.device("cpu"))
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]  # warm-up, then ab, ba, ab
    assert len(a_s) == len(b_s) == 3 and all(t >= 0 for t in a_s + b_s)


def test_summary_statistics():
    s = speed.summary([4.0, 1.0, 3.0, 2.0])
    assert s == {"median": 2.5, "q1": 1.75, "q3": 3.25, "min": 1.0, "max": 4.0, "n": 4}


@pytest.mark.parametrize("argv, message", [
    (["--suite", "speed", "--sizes", "abc"], "--sizes"),
    (["--suite", "speed", "--batches", "0"], "--batches"),
    (["--suite", "speed", "--device", "tpu"], "--device"),
    (["--suite", "speed", "--models", "no-such-method*"], "matches no method key"),
    (["--suite", "speed", "--set", "pix2pix"], "--set"),
    (["--suite", "speed", "--measure", "speedup"], "--measure"),
    (["--suite", "speed", "--repeats", "0"], "--repeats"),
    (["--suite", "mini", "--sizes", "256"], "--suite speed"),
])
def test_bad_flags_exit_2_with_a_message(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
    assert not (tmp_path / "results" / "speed.jsonl").exists()


def test_table_without_results_is_an_error(tmp_path, capsys):
    assert main(["--suite", "speed", "--table", "--out", str(tmp_path)]) == 2
    assert "run `python -m zoo.bench --suite speed` first" in capsys.readouterr().err
