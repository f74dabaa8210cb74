"""Distributed faults under 2-process CPU DDP (gloo), with real processes: a rank that raises ends the run
at once with its error, a rank that stalls makes the others fail at the collective timeout instead of
hanging, and a rank killed mid-benchmark leaves no result recorded for that model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _synthetic import make_aligned

pytestmark = pytest.mark.slow

FAULTS = textwrap.dedent('''
    import os, time
    import lightning as L

    class RaiseOnRank1(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_rank == 1 and batch_idx == 1:
                raise RuntimeError("rank 1 failed on purpose")

    class StallOnRank1(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_rank == 1:
                time.sleep(600)
''')

TINY_FIT = ["--model", "pix2pix", "--model.init_args.netG=unet_128", "--model.init_args.ngf=4",
            "--model.init_args.ndf=4", "--data.load_size=140", "--data.crop_size=128", "--data.num_workers=0",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--baseline=false",
            "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.max_epochs=1"]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1", "ZOO_CACHE": str(tmp_path / "cache"), "TORCH_HOME": str(tmp_path / "torch")}


def _fit(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    (tmp_path / "faults.py").write_text(FAULTS)
    data = make_aligned(tmp_path / "data", n_train=6, n_val=1, size=128)
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "zoo.fit", *TINY_FIT, f"--data.root={data}",
                             f"--trainer.default_root_dir={tmp_path / 'run'}", *extra],
                            cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=420,
                            stdin=subprocess.DEVNULL)
    return result, time.monotonic() - start


def test_a_rank_that_raises_ends_the_run_with_its_error(tmp_path):
    result, seconds = _fit(tmp_path, "--trainer.callbacks+=faults.RaiseOnRank1", "--ddp_timeout=300")
    assert result.returncode != 0
    assert "rank 1 failed on purpose" in result.stderr  # the rank's own error is shown
    # ended by the launcher when rank 1 exited, not by the 300 s collective timeout
    assert seconds < 240, seconds
    assert not (tmp_path / "run" / "pretrained").exists()  # nothing published from a failed run


def test_a_stalled_rank_fails_the_run_at_the_collective_timeout(tmp_path):
    result, seconds = _fit(tmp_path, "--trainer.callbacks+=faults.StallOnRank1", "--ddp_timeout=10")
    assert result.returncode != 0
    assert "timed out" in result.stderr.lower() or "timeout" in result.stderr.lower(), result.stderr[-3000:]
    assert seconds < 300, seconds  # far less than the 600 s rank 1 sleeps
    assert not (tmp_path / "run" / "pretrained").exists()


BENCH = textwrap.dedent('''
    import os, signal, sys
    import torch
    from torch import nn
    from zoo.module import ZooModule
    from zoo.registry import register

    @register(key="dieonrank1")
    class DieOnRank1(ZooModule):
        """Identity, except that rank 1 of a DDP run is SIGKILLed on its second image."""
        task = "translation"
        weight_free = True
        default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 1, "directions": ["a2b"],
                      "eval_mode": True}

        def __init__(self):
            super().__init__()
            self.save_hyperparameters()
            self.G = nn.Identity()
            self.calls = 0

        def translate(self, x, direction=None, **kwargs):
            self.calls += 1
            if torch.distributed.is_initialized() and torch.distributed.get_rank() == 1 and self.calls == 2:
                print("rank 1: killing myself mid-benchmark", file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            return x

    from zoo.bench import main
    sys.exit(main(sys.argv[1:]))
''')


def test_a_rank_killed_mid_benchmark_records_nothing_for_that_model(tmp_path):
    data = make_aligned(tmp_path / "data", n_train=1, n_val=6, size=32)
    (tmp_path / "bench.py").write_text(BENCH)
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(f"""
        name: ddp-kill
        backbones: local-or-random
        tracks:
          - task: translation
            data: {{root: {data}, layout: aligned, split: val}}
            metrics: [psnr]
    """))
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(tmp_path / "bench.py"), "--out", str(tmp_path / "out"), "--accelerator", "cpu",
         "--suite", str(tmp_path / "suite.yaml"), "--models", "identity,dieonrank1", "--devices", "2",
         "--strategy", "ddp"],
        cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=420, stdin=subprocess.DEVNULL)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "rank 1: killing myself mid-benchmark" in result.stderr, result.stderr[-3000:]  # it got that far
    assert time.monotonic() - start < 300
    lines = (tmp_path / "out" / "results" / "ddp-kill.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole
    assert [r["model"] for r in records] == ["identity"]  # the killed model's run left no record
    assert records[0]["n"] == 6 and records[0]["world_size"] == 2
