"""The speed suite (`python -m zoo.bench --suite speed`, zoo.benchmark.speed): records, ratios, table, flags.

Tiny widths and images, one repeat: these tests check what is recorded, never how fast anything is."""

from __future__ import annotations

import json
import math

import pytest
import torch

import zoo
from zoo.benchmark import speed
from zoo.benchmark.command import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--sizes", "32", "--batches", "1", "--repeats", "1", "--warmup", "0", "--threads", "1", "--min-seconds", "0",
        "--ratio-precision", "0",
        "--train-batch", "2", "--train-crop", "128", "--train-steps", "1", "--optim-size", "32", "--optim-steps", "2",
        "--fast", "channels_last,bf16", "--train-fast", "bf16,channels_last,adam,workers", "--train-fast-steps", "1",
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
    kinds = ("inference", "fast_path", "training", "train_fast_path")
    assert {r["measurement"] for r in records} == set(kinds), records
    for r in records:
        assert r["machine"]["cores"] >= 1 and r["machine"]["torch"] == torch.__version__ and r["machine"]["cpu"]
        assert r["date"] and "git_sha" in r and r["run"] and _finite_positive(r["matmul"]["flops"])
        assert _finite_positive(r["peak_memory_mb"]) and r["peak_memory_kind"] == "rss_high_water_of_process"
        assert r["config"]["malloc"] == "tuned"  # each method's process raised the thresholds, as zoo.fit does
    assert {(r["method"], r["measurement"]) for r in records} == {
        (m, kind) for m in ("pix2pix", "srresnet") for kind in kinds}


def test_ratios_positive_and_finite(run):
    _, records = run
    for r in records:
        if r["measurement"] in ("fast_path", "train_fast_path"):
            continue
        assert _finite_positive(r["ratio"]), r
        if r["measurement"] == "inference":
            assert r["verb"] in ("translate", "upscale") and r["size"] == 32 and r["batch"] == 1
            assert _finite_positive(r["verb_images_per_s"]["median"]) and _finite_positive(r["bare_images_per_s"]["median"])
            # one pair: the paired ratio is the ratio of the two medians
            assert r["ratio"] == pytest.approx(r["verb_images_per_s"]["median"] / r["bare_images_per_s"]["median"])
            assert r["ratio_stats"]["n"] == 1 and r["ratio_stats"]["median"] == r["ratio"]
            assert _finite_positive(r["flops_per_image"]) and _finite_positive(r["fraction_of_matmul"])
        else:
            assert r["batch"] == min(r["recipe_batch"], 2) and r["crop"] == 128 and r["at_recipe"] is False
            assert r["lightning_it_per_s"]["n"] == 1 and r["plain_it_per_s"]["n"] == 1 and r["interleaved"]
            assert _finite_positive(r["step_ratio"])
            assert r["ratio"] == pytest.approx(r["lightning_it_per_s"]["median"] / r["plain_it_per_s"]["median"])
    sr = next(r for r in records if r["method"] == "srresnet" and r["measurement"] == "inference")
    assert sr["input_size"] == [8, 8]  # size is the output side of a x4 upscaler
    assert sr["hparams_overrides"] == {"vgg_weights": None, "channels": 4, "num_blocks": 1, "d_channels": 4}


def test_fast_paths_are_compared_with_the_default_path(run):
    """Each requested fast path gets a gain (fast / default images/s); emulated bf16 says so and runs small."""
    from zoo.module import native_bf16

    _, records = run
    fast = [r for r in records if r["measurement"] == "fast_path"]
    assert sorted((r["method"], r["fast_path"]) for r in fast) == [
        ("pix2pix", "bf16"), ("pix2pix", "channels_last"), ("srresnet", "bf16"), ("srresnet", "channels_last")]
    for r in fast:
        assert _finite_positive(r["gain"]) and _finite_positive(r["first_call_s"]), r
        assert r["gain"] == pytest.approx(r["fast_images_per_s"]["median"] / r["default_images_per_s"]["median"])
        if r["fast_path"] == "bf16" and not native_bf16("cpu"):
            assert r["size"] == speed.EMULATED_BF16_SIZE and "emulated" in r["note"]
        else:
            assert r["size"] == 32


def test_training_fast_paths_are_timed_against_the_plain_loop(run):
    """Each training fast path: the fast Lightning iteration against the plain float32 loop (vs_plain), over
    the default's framework ratio (gain); Adam's step against its single-tensor copy, with its share of an
    iteration; emulated bf16 is not trained (it would take many times longer) and says why."""
    from zoo.data.datamodule import default_num_workers
    from zoo.module import native_bf16

    _, records = run
    fast = {(r["method"], r["fast_path"]): r for r in records if r["measurement"] == "train_fast_path"}
    assert sorted(fast) == [(m, p) for m in ("pix2pix", "srresnet")
                            for p in ("adam", "bf16", "channels_last", "workers")]
    for method in ("pix2pix", "srresnet"):
        train = next(r for r in records if r["method"] == method and r["measurement"] == "training")
        paths = ["channels_last"] + (["bf16"] if native_bf16("cpu") else [])
        if not native_bf16("cpu"):
            assert "emulates" in fast[method, "bf16"]["skipped"] and "gain" not in fast[method, "bf16"]
        for path in paths:
            r = fast[method, path]
            assert (r["batch"], r["crop"], r["steps"], r["warmup_steps"]) == (train["batch"], 128, 1, 1), r
            assert r["precision"] == ("bf16-mixed" if path == "bf16" else "32-true")
            # one pair: the paired ratio is the ratio of the two rates
            assert r["vs_plain"] == pytest.approx(r["fast_it_per_s"]["median"] / r["plain_it_per_s"]["median"])
            assert r["framework_ratio"] == train["ratio"] and r["gain"] == pytest.approx(r["vs_plain"] / train["ratio"])
            assert _finite_positive(r["first_step_s"]) and _finite_positive(r["peak_memory_mb"])
        adam = fast[method, "adam"]
        assert adam["implementation"] == "fused" and adam["optimizers"] == (2 if method == "pix2pix" else 1)
        assert set(adam["gains"]) == {"fused", "foreach"} and all(_finite_positive(g) for g in adam["gains"].values())
        assert adam["gain"] == adam["gains"]["fused"] and adam["parameters"] > 0
        assert adam["step_s"] == adam["implementation_step_s"]["fused"] and adam["for_loop_step_s"]["n"] == 2
        plain = train["plain_it_per_s"]["median"]
        assert adam["loop_share_of_iteration"] == pytest.approx(adam["for_loop_step_s"]["median"] * plain)
        assert adam["share_of_iteration"] == pytest.approx(adam["step_s"]["median"] * plain)
        workers = fast[method, "workers"]
        n = default_num_workers()
        assert workers["loader_options"] == {"num_workers": n, "pin_memory": False, "persistent_workers": n > 0}
        assert (workers["batch"], workers["crop"]) == (train["batch"], 128) and workers["block_batches"] >= 1
        assert workers["gain"] == pytest.approx(
            workers["batches_per_s"]["median"] / workers["no_worker_batches_per_s"]["median"])
        assert workers["load_share"] == pytest.approx(
            train["plain_it_per_s"]["median"] / workers["no_worker_batches_per_s"]["median"])
        assert _finite_positive(workers["first_block_s"])


@pytest.mark.parametrize("flags", [{"foreach": False, "fused": False}, {"foreach": True}, {"fused": True}])
def test_adam_rebuilt_like_the_measurement_steps_like_the_methods_own(flags):
    """Each side of the Adam measurement (the method's param groups without their flags, the flags as
    defaults) is the same update as the optimizer the method built, with that implementation."""
    model = zoo.create("pix2pix", ngf=4, ndf=4, netG="unet_128")
    with speed.plain_hooks(model) as (optimizers, _, _):
        pass
    assert all(o.defaults["fused"] for o in optimizers)  # zoo's own: fused
    params = [p for o in optimizers for g in o.param_groups for p in g["params"]]
    start = [p.detach().clone() for p in params]
    for i, p in enumerate(params):
        p.grad = torch.full_like(p, 0.01 * (i % 3 + 1))
    for o in optimizers:
        o.step()
    after_own = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, s in zip(params, start):
            p.copy_(s)
    copies = [torch.optim.Adam([{k: v for k, v in g.items() if k not in ("fused", "foreach")} for g in o.param_groups],
                               **flags) for o in optimizers]
    for o in copies:
        o.step()
    assert all(bool(g[k]) == v for o in copies for g in o.param_groups for k, v in flags.items())
    assert all(g["lr"] == o.param_groups[0]["lr"] for o in copies for g in o.param_groups)
    assert all(torch.allclose(p, q, atol=1e-7) for p, q in zip(params, after_own))
    assert any((p - s).abs().max() > 0 for p, s in zip(params, start))


def test_a_training_fast_path_that_fails_is_recorded_and_the_others_still_run(monkeypatch):
    import zoo.module

    monkeypatch.setattr(zoo.module, "_cxx_compiler", lambda: None)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory in the test")

    monkeypatch.setattr(speed, "interleaved_training", broken)
    cfg = speed.SpeedConfig(repeats=1, warmup=0, min_seconds=0, train_batch=2, train_crop=128,
                            train_fast_paths=("compile", "channels_last", "adam"),
                            overrides={"pix2pix": {"ngf": 4, "ndf": 4, "netG": "unet_128"}})
    compile_, channels_last, adam = speed.measure_train_fast_paths("pix2pix", cfg, torch.device("cpu"))
    assert "C++ compiler" in compile_["skipped"] and "gain" not in compile_
    assert channels_last["skipped"] == "failed while training: RuntimeError: out of memory in the test"
    assert _finite_positive(adam["gain"]) and adam["share_of_iteration"] is None  # no training record given
    table = "\n".join(speed.render_train_fast_path_table([compile_, channels_last, adam], []))
    assert table.count("not run") == 2 and "C++ compiler" in table and "out of memory in the test" in table
    assert "| pix2pix | - | - | not run | not run |" in table


def test_without_the_training_record_the_gain_is_against_the_plain_loop(tmp_path):
    cfg = speed.SpeedConfig(warmup=0, train_batch=1, train_crop=128, train_fast_steps=1,
                            train_fast_paths=("channels_last",),
                            overrides={"pix2pix": {"ngf": 4, "ndf": 4, "netG": "unet_128"}})
    (record,) = speed.measure_train_fast_paths("pix2pix", cfg, torch.device("cpu"))
    assert record["framework_ratio"] is None and record["gain"] is None and _finite_positive(record["vs_plain"])
    assert "vs plain" in "\n".join(speed.render_train_fast_path_table([record], []))
    assert "gain -" in speed._line(record)


def test_a_fast_path_that_cannot_run_is_recorded_with_why(monkeypatch):
    import zoo.module

    monkeypatch.setattr(zoo.module, "_cxx_compiler", lambda: None)
    cfg = speed.SpeedConfig(sizes=(32,), repeats=1, warmup=0, min_seconds=0, fast_paths=("compile",),
                            measurements=("fast_path",), overrides={"srresnet": {"channels": 4, "num_blocks": 1}})
    (record,) = speed.measure_method("srresnet", cfg)
    assert record["fast_path"] == "compile" and "C++ compiler" in record["skipped"] and "gain" not in record
    table = "\n".join(speed.render_fast_path_table([record]))
    assert "not run" in table and "C++ compiler" in table


def test_training_interleaves_lightning_and_plain_steps(tmp_path):
    """One plain iteration beside each Lightning step, after it on even steps and before it on odd ones."""
    import zoo

    calls: list[str] = []

    def tiny() -> torch.nn.Module:
        torch.manual_seed(0)
        return zoo.create("pix2pix", ngf=4, ndf=4, netG="unet_128")

    light, plain = tiny(), tiny()
    for model, tag in ((light, "L"), (plain, "P")):
        step = model.training_step
        model.training_step = lambda batch, i, _step=step, _tag=tag: (calls.append(_tag), _step(batch, i))[1]
    sample = speed.training_sample(light, 128, speed.recipe(light))
    dataset = speed._Repeat(sample, 8)
    times = speed.interleaved_training(light, plain, speed._loader(dataset, 2), speed._loader(dataset, 2),
                                       steps=3, warmup=1, device=torch.device("cpu"), log_dir=str(tmp_path))
    assert "".join(calls) == "LPPLLPPL"
    assert {k: len(v) for k, v in times.items()} == {
        "lightning_step": 3, "lightning_iteration": 3, "plain_step": 3, "plain_iteration": 3, "lightning_first_step": 1}
    assert times["lightning_first_step"][0] > 0  # the untimed warm-up step, kept apart (compile's compilation)
    for k in ("lightning", "plain"):  # an iteration (with its batch fetch) takes at least its step
        assert all(it >= st > 0 for it, st in zip(times[f"{k}_iteration"], times[f"{k}_step"]))


def test_lightning_steps_alone_without_another_loop(tmp_path):
    """other=None (benchmarks/malloc_gain.py, originals.py --processes): only Lightning steps, all of them timed."""
    import zoo

    torch.manual_seed(0)
    model = zoo.create("pix2pix", ngf=4, ndf=4, netG="unet_128")
    steps: list[int] = []
    step = model.training_step
    model.training_step = lambda batch, batch_idx: (steps.append(batch_idx), step(batch, batch_idx))[1]
    dataset = speed._Repeat(speed.training_sample(model, 128, speed.recipe(model)), 8)
    times = speed.fit_interleaved(model, speed._loader(dataset, 2), None, 3, 1, torch.device("cpu"), str(tmp_path))
    assert steps == [0, 1, 2, 3]
    assert {k: len(v) for k, v in times.items()} == {
        "lightning_step": 3, "lightning_iteration": 3, "plain_step": 0, "plain_iteration": 0, "lightning_first_step": 1}
    assert all(it >= st > 0 for it, st in zip(times["lightning_iteration"], times["lightning_step"]))


def test_table_renders_the_latest_run(run, capsys):
    out, records = run
    assert main(["--table", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| method |" in table and "| pix2pix | translate | 32²" in table and "| srresnet | upscale |" in table
    assert records[0]["machine"]["device_name"] in table
    assert "| channels_last gain | bf16 gain |" in table and "| pix2pix | translate | 32² | 1 |" in table
    assert "| Lightning it/s | bf16 gain | channels_last gain | Adam step gain over the for-loop" in table
    assert "(fused, foreach " in table and "; loop " in table and "; loading " in table
    older = [{**r, "run": "0", "machine": {**r["machine"], "device_name": "an older machine"}} for r in records]
    with open(out / "results" / "speed.jsonl", "a") as f:  # an older run, picked by --run
        f.writelines(json.dumps(r) + "\n" for r in older)
    assert main(["--table", "--run", "0", "--out", str(out)]) == 0
    assert "Speed run 0 " in capsys.readouterr().out
    assert main(["--table", "--run", "1999", "--out", str(out)]) == 2
    assert "no speed run '1999'" in capsys.readouterr().err
    assert main(["--table", "--out", str(out)]) == 0 and "an older machine" not in capsys.readouterr().out
    assert speed.render_speed_table(older + records).count("| pix2pix |") == 3  # speed, fast-path, training fast paths
    # the peak column is the default paths': not the training fast paths', which build and compile more models
    huge = [{**r, "peak_memory_mb": 99999.0} if r["measurement"] == "train_fast_path" else r for r in records]
    assert "99999" not in speed.render_speed_table(huge)
    # the API ratio's standard error and pairs when recorded (this run: --ratio-precision 0, one pair, none)
    assert " pairs)" not in table
    precise = [{**r, "config": {**r["config"], "ratio_precision": 0.01, "precision_seconds": 300.0},
                "ratio_stats": {**r["ratio_stats"], "se": 0.0123, "n": 24}} if r["measurement"] == "inference" else
               {**r, "config": {**r["config"], "ratio_precision": 0.01, "precision_seconds": 300.0}} for r in records]
    precise = [{**r, "steps": 14, "ratio_stats": {"median": r["ratio"], "se": 0.0046, "n": 14}}
               if r["measurement"] == "training" else r for r in precise]
    table = speed.render_speed_table(precise)
    assert " ±0.012 (24 pairs) |" in table and "above 0.01 up to 300 s of calls" in table
    r = next(r for r in precise if r["measurement"] == "inference")
    stats = r["ratio_stats"]
    assert f"| {stats['median']:.3f} [{stats['q1']:.3f}-{stats['q3']:.3f}] ±0.012 (24 pairs) |" in table
    assert " ±0.005 (14 pairs) |" in table and "training: at least 1 steps" in table


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


def test_timed_pair_repeats_quick_calls_up_to_a_cap():
    calls: list[str] = []
    a_s, b_s = speed.timed_pair(lambda: calls.append("a"), lambda: calls.append("b"), repeats=2, warmup=0,
                                device=torch.device("cpu"), min_seconds=60.0, max_repeats=4)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a"] and len(a_s) == len(b_s) == 4


class _FakeClock:
    """time.perf_counter for timed_pair: each call of a timed function advances it by its next duration."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def call(self, durations: list[float]):
        it = iter(durations)

        def fn() -> None:
            self.now += next(it)
        return fn


def _noisy_pairs(monkeypatch, ratio: float, spread: float, **kw) -> tuple[list[float], list[float]]:
    """timed_pair on a fake clock: a takes 1 s, b alternately ratio -/+ spread seconds."""
    clock = _FakeClock()
    monkeypatch.setattr(speed.time, "perf_counter", clock)
    b = [ratio + (spread if i % 2 else -spread) for i in range(1000)]
    return speed.timed_pair(clock.call([1.0] * 1000), clock.call(b), warmup=0, device=torch.device("cpu"), **kw)


def test_timed_pair_adds_pairs_while_the_ratio_is_imprecise(monkeypatch):
    # steady pairs: the standard error is 0 after `repeats`, nothing is added
    a_s, _ = _noisy_pairs(monkeypatch, 0.95, 0.0, repeats=3, precision=0.01)
    assert len(a_s) == 3
    # pairs 0.9/1.1: a standard error of about 0.19 / sqrt(n) > 0.01 until the cap of 5 x repeats
    a_s, b_s = _noisy_pairs(monkeypatch, 1.0, 0.1, repeats=4, precision=0.01)
    assert len(a_s) == len(b_s) == 20
    # a looser precision stops earlier, two pairs at a time (one in each order) past `repeats`
    a_s, _ = _noisy_pairs(monkeypatch, 1.0, 0.1, repeats=5, precision=0.06)
    n = len(a_s)
    assert 5 < n < 25 and (n - 5) % 2 == 0
    assert speed.median_standard_error([1.1 / 1.0 if i % 2 else 0.9 for i in range(n)]) <= 0.06
    assert speed.median_standard_error([1.1 if i % 2 else 0.9 for i in range(n - 2)]) > 0.06
    # the rule never looks at the ratio itself: a slower b with the same spread gets as many pairs
    assert len(_noisy_pairs(monkeypatch, 0.5, 0.1, repeats=5, precision=0.06)[0]) == n
    # the time cap: each pair takes 2 s of timed calls, so 20 s stops it at 10 pairs
    assert len(_noisy_pairs(monkeypatch, 1.0, 0.1, repeats=4, precision=0.01, max_seconds=20.0)[0]) == 10
    # precision 0 (the default): exactly `repeats`
    assert len(_noisy_pairs(monkeypatch, 1.0, 0.1, repeats=4)[0]) == 4


def test_api_ratio_pairs_follow_the_ratio_precision():
    """measure_inference hands the configured precision to timed_pair: 0 keeps `repeats` pairs, an
    unreachable one runs to the cap (5 x repeats); the record carries the median's standard error."""
    from zoo.benchmark.command import build_parser, speed_config

    model = zoo.create("srresnet", channels=4, num_blocks=1, d_channels=4, vgg_weights=None).eval()
    for precision, pairs in ((0.0, 1), (1e-12, 5)):
        cfg = speed.SpeedConfig(sizes=(32,), batches=(1,), repeats=1, warmup=0, min_seconds=0,
                                ratio_precision=precision)
        (record,) = speed.measure_inference("srresnet", model, cfg, torch.device("cpu"))
        assert record["ratio_stats"]["n"] == pairs
        assert (record["ratio_stats"]["se"] is None) == (pairs == 1)
    args = build_parser().parse_args(["--suite", "speed", "--ratio-precision", "0.02", "--precision-seconds", "60"])
    cfg = speed_config(args)
    assert cfg.ratio_precision == 0.02 and cfg.precision_seconds == 60.0
    assert speed.SpeedConfig.from_json(cfg.to_json()) == cfg


def test_framework_ratio_steps_follow_the_ratio_precision():
    """measure_training: precision 0 keeps `train_steps` pairs; an unreachable precision runs to the cap
    (5 x train_steps), the Trainer stopped by the callback, not by running out of data."""
    for precision, steps in ((0.0, 1), (1e-12, 5)):
        cfg = speed.SpeedConfig(warmup=0, train_steps=1, train_batch=1, train_crop=32, ratio_precision=precision,
                                overrides={"srresnet": {"channels": 4, "num_blocks": 1, "d_channels": 4}})
        (record,) = speed.measure_training("srresnet", cfg, torch.device("cpu"))
        assert record["steps"] == steps == record["lightning_it_per_s"]["n"] == record["plain_it_per_s"]["n"]
        assert record["ratio_stats"]["n"] == steps and record["ratio"] == record["ratio_stats"]["median"]


def test_interleaved_training_stops_once_precise():
    """_Interleaved: past `steps`, two pairs at a time, until the standard error or the time cap says so."""
    pair = speed._Interleaved(object(), warmup=1, device=torch.device("cpu"), steps=2, ratio_precision=0.05)
    pair.light_iteration, pair.plain_iteration = [1.0, 1.0], [0.9, 1.1]
    assert not pair._precise_enough(1)  # one timed pair, fewer than steps
    assert not pair._precise_enough(2)  # 2 pairs: standard error 0.93 x 0.1 / sqrt(2) = 0.066 > 0.05
    pair.light_iteration, pair.plain_iteration = [1.0] * 3, [0.9, 1.1, 1.0]
    assert not pair._precise_enough(3)  # 3 pairs: the second of the two added not run yet
    pair.light_iteration, pair.plain_iteration = [1.0] * 4, [0.9, 1.1, 1.0, 1.0]
    assert pair._precise_enough(4)  # 4 pairs: 0.93 x 0.05 / 2 = 0.023
    pair.max_seconds = 1.0
    pair.light_iteration, pair.plain_iteration = [1.0, 1.0], [0.9, 1.1]
    assert pair._precise_enough(2)  # over the time cap
    assert not speed._Interleaved(None, 1, torch.device("cpu"), 2, 0.05)._precise_enough(2)  # nothing to pair


def test_median_standard_error_matches_the_sampling_spread_of_the_median():
    """Against independent estimates, on average over 50 samples of 40 normal values: scipy's Maritz-Jarrett
    standard error of the median, and the spread of the medians of 4000 such samples."""
    from scipy.stats.mstats import mjci

    gen = torch.Generator().manual_seed(0)
    samples = (1.0 + 0.05 * torch.randn(50, 40, generator=gen)).tolist()
    ours = sum(speed.median_standard_error(v) for v in samples) / 50
    maritz_jarrett = sum(float(mjci(v, prob=[0.5])[0]) for v in samples) / 50
    spread_of_medians = float((1.0 + 0.05 * torch.randn(4000, 40, generator=gen)).median(dim=1).values.std())
    assert ours == pytest.approx(maritz_jarrett, rel=0.1) and ours == pytest.approx(spread_of_medians, rel=0.1)
    assert speed.median_standard_error([1.0]) == math.inf
    assert speed.paired_ratio([1.0], [1.0])["se"] is None
    assert speed.paired_ratio([1.0, 1.0], [1.0, 1.0])["se"] == 0.0


def test_paired_ratio_is_the_median_of_side_by_side_ratios():
    # b is 1.2x slower than a in two pairs; the machine slowed down between pairs. The pairs say 1.2, the
    # medians of the two lists (10 and 9) would say 0.9.
    r = speed.paired_ratio([1.0, 10.0, 10.1], [1.2, 12.0, 9.0])
    assert r["median"] == pytest.approx(1.2) and r["n"] == 3
    assert r["min"] == pytest.approx(9.0 / 10.1) and r["max"] == pytest.approx(1.2)
    with pytest.raises(ValueError):
        speed.paired_ratio([], [])


def test_colorization_bare_run_is_the_release_pipeline_of_the_verb():
    """The bare side of colorization's API ratio does the verb's work in plain torch: same image out."""
    torch.manual_seed(0)
    model = zoo.create("colorization", width=1 / 16).eval()
    case = speed.inference_case(model)
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        bare = case.network(*case.prepare(x))
    verb = case.verb(x)
    assert bare.shape == verb.shape == x.shape
    assert (bare - verb).abs().max() < 1e-6


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
    (["--suite", "speed", "--fast", "fp8"], "--fast"),
    (["--suite", "speed", "--train-fast", "compile,fp8"], "--train-fast takes a subset of bf16,channels_last"),
    (["--suite", "speed", "--train-fast-steps", "0"], "--train-fast-steps"),
    (["--suite", "speed", "--run", "20261127T000000Z"], "--run picks the run that --table prints"),
    (["--suite", "mini", "--run", "20261127T000000Z"], "--run belong(s) to the speed suite"),
    (["--suite", "speed", "--min-seconds", "-1"], "--min-seconds"),
    (["--suite", "speed", "--ratio-precision", "nan"], "--ratio-precision must be a finite number"),
    (["--suite", "speed", "--precision-seconds", "inf"], "--precision-seconds must be a finite number"),
    (["--suite", "mini", "--ratio-precision", "0.02"], "--suite speed"),
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


def test_compile_in_training_is_measured_after_its_compilation(tmp_path):
    """compile: two untimed steps (the first compiles, a GAN's second call may recompile), the first one's
    seconds kept apart; then the compiled Lightning step timed against the plain loop."""
    cfg = speed.SpeedConfig(warmup=0, train_batch=1, train_crop=32, train_fast_steps=1, train_fast_paths=("compile",),
                            overrides={"srresnet": {"channels": 4, "num_blocks": 1, "d_channels": 4}})
    (record,) = speed.measure_train_fast_paths("srresnet", cfg, torch.device("cpu"),
                                               {"ratio": 1.25, "plain_it_per_s": {"median": 2.0}})
    assert "skipped" not in record, record
    assert record["warmup_steps"] == 2 and record["steps"] == 1 and record["precision"] == "32-true"
    assert record["gain"] == pytest.approx(record["vs_plain"] / 1.25) and record["framework_ratio"] == 1.25
    assert _finite_positive(record["first_step_s"])
    assert "(first step " in "\n".join(speed.render_train_fast_path_table([record], []))
