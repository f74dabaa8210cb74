"""`zoo.allocator`: raised glibc malloc thresholds reuse freed tensors instead of faulting fresh pages in."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from zoo import allocator

#: zoo.allocator acts on glibc only; elsewhere it must say so (False) and change nothing
HAS_GLIBC = allocator._glibc() is not None

#: a two-convolution network on a 1024² image: its 16-channel activation is 64 MiB, above glibc's largest default
#: mmap threshold (32 MiB). Prints the minor page faults of four forward passes after two warm-up ones, and a
#: digest of the output. Two, because with raised thresholds the second call still grows the heap now and then
#: while its layout settles: in 60 fresh processes, 9 calls right after one warm-up faulted in a 64 or 12 MiB
#: block (once in CI all three, 140 MiB), and none of the 420 calls after them faulted in more than a page.
PROBE = """
import hashlib, json, resource, sys
from zoo.allocator import tune_cpu_allocator
if sys.argv[1] == "trim16":  # a finite trim threshold below the freed 64 MiB block: the cliff
    tuned = tune_cpu_allocator(respect_env=False, trim_threshold=16 << 20)
else:
    tuned = tune_cpu_allocator(respect_env=sys.argv[1] == "env") if sys.argv[1] != "off" else False
import torch
torch.manual_seed(0)
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 3, 3, padding=1))
x = torch.rand(1, 3, 1024, 1024)
with torch.inference_mode():
    net(x)
    net(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        net(x)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    y = net(x)
print(json.dumps({"tuned": tuned, "faults": faults, "digest": hashlib.sha256(y.numpy().tobytes()).hexdigest()}))
"""

#: pages of the 64 MiB activation: faulted in on every call with glibc's defaults
PAGES_PER_CALL = 64 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")


def _probe(mode: str, **env: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                          env={**os.environ, **env})
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_default_glibc_faults_the_activations_in_on_every_call():
    # the baseline the fast path removes: each 64 MiB activation is a fresh mmap, every page faulted in again
    got = _probe("off")
    if HAS_GLIBC:
        assert got["faults"] >= 4 * PAGES_PER_CALL, got


def test_raised_thresholds_reuse_the_freed_block():
    got = _probe("on")
    assert got["tuned"] is HAS_GLIBC
    off = _probe("off")
    if HAS_GLIBC:
        # with the defaults every activation page of every call (about 80,000 pages a call); raised, once the
        # heap has settled (PROBE's two warm-up calls), none: the freed blocks are reused
        assert off["faults"] >= 4 * PAGES_PER_CALL, off
        assert got["faults"] <= 2 * PAGES_PER_CALL and got["faults"] < 0.15 * off["faults"], (got, off)
    assert got["digest"] == off["digest"]  # where memory comes from changes no result


def test_a_finite_trim_threshold_below_the_freed_block_faults_it_in_again():
    """Why zoo never trims (TRIM_THRESHOLD -1): when a call frees more than the trim threshold at the heap's
    top, glibc hands it back and the next call faults every page in again, as if nothing were tuned."""
    assert allocator.TRIM_THRESHOLD == -1
    cliff, never = _probe("trim16"), _probe("on")
    if HAS_GLIBC:
        assert cliff["faults"] >= 4 * PAGES_PER_CALL, cliff
        assert never["faults"] <= 2 * PAGES_PER_CALL, never
    assert cliff["digest"] == never["digest"]


def test_environment_variable_turns_it_off():
    got = _probe("env", ZOO_TUNE_MALLOC="0")
    assert got["tuned"] is False
    if HAS_GLIBC:
        assert got["faults"] >= 4 * PAGES_PER_CALL, got


@pytest.mark.parametrize("value, enabled", [("0", False), ("off", False), ("False", False), ("no", False),
                                            ("1", True), ("", True), ("yes", True)])
def test_switch_reads_the_environment(monkeypatch, value, enabled):
    monkeypatch.setenv(allocator.ENV_VAR, value)
    assert allocator.malloc_tuning_enabled() is enabled


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.tune_cpu_allocator(respect_env=False) is False


@pytest.mark.parametrize("kwargs", [{"mmap_threshold": 1 << 31}, {"trim_threshold": 0}, {"mmap_threshold": -5},
                                    {"mmap_threshold": -1}, {"trim_threshold": -2}])
def test_thresholds_must_fit_a_c_int(kwargs):
    with pytest.raises(ValueError, match="C int"):
        allocator.tune_cpu_allocator(respect_env=False, **kwargs)


def _record_calls(monkeypatch) -> list:
    calls: list = []
    monkeypatch.setattr(allocator, "tune_cpu_allocator", lambda **kw: calls.append(kw) or True)
    return calls


def test_fit_tunes_the_allocator_before_it_starts(monkeypatch, capsys):
    from zoo.fit import main

    calls = _record_calls(monkeypatch)
    with pytest.raises(SystemExit):
        main(["--model", "no-such-method"])
    assert calls == [{}]  # ZOO_TUNE_MALLOC is honoured inside tune_cpu_allocator


def test_predict_tunes_the_allocator(monkeypatch, tmp_path, capsys):
    from zoo.predict import main

    calls = _record_calls(monkeypatch)
    with pytest.raises(SystemExit):
        main(["no-such-model", str(tmp_path), "--out", str(tmp_path / "out")])
    assert calls == [{}]


@pytest.mark.parametrize("argv, env, expected", [
    ([], {}, "tuned"), (["--malloc", "default"], {}, "default"), ([], {"ZOO_TUNE_MALLOC": "0"}, "default"),
    (["--malloc", "tuned"], {"ZOO_TUNE_MALLOC": "0"}, "tuned"),
])
def test_speed_suite_malloc_setting(monkeypatch, argv, env, expected):
    from zoo.benchmark.command import build_parser, speed_config

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cfg = speed_config(build_parser().parse_args(["--suite", "speed", *argv]))
    assert cfg.malloc == expected


@pytest.mark.parametrize("setting, calls_expected", [("tuned", [{"respect_env": False}]), ("default", [])])
def test_speed_worker_applies_the_recorded_setting(monkeypatch, setting, calls_expected):
    from zoo.benchmark import speed

    calls = _record_calls(monkeypatch)
    cfg = speed.SpeedConfig(malloc=setting, measurements=())
    assert speed.measure_method("johnson", cfg) == []
    assert calls == calls_expected


@pytest.mark.parametrize("setting, calls_expected, raised", [("tuned", [{"respect_env": False}], True),
                                                            ("default", [], False)])
def test_apply_malloc_setting(monkeypatch, setting, calls_expected, raised):
    calls = _record_calls(monkeypatch)
    assert allocator.apply_malloc_setting(setting) is raised
    assert calls == calls_expected


def test_apply_malloc_setting_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="malloc setting must be one of tuned, default, got 'jemalloc'"):
        allocator.apply_malloc_setting("jemalloc")
