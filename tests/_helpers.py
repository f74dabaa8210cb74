"""Small helpers shared by the method tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import torch

__all__ = ["n_params", "tiny_trainer", "assert_same_state", "run_cli"]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def tiny_trainer(tmp_path, **kwargs) -> L.Trainer:
    """A CPU Trainer without logger, progress bar, checkpoints or sanity validation (override any)."""
    defaults = dict(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
    )
    return L.Trainer(**{**defaults, **kwargs})


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Bit-identical state dicts (same keys, equal tensors); names the first differing keys."""
    x, y = a.state_dict(), b.state_dict()
    assert x.keys() == y.keys()
    assert all(torch.equal(x[k], y[k]) for k in x), [k for k in x if not torch.equal(x[k], y[k])][:5]


def run_cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m zoo.fit ARGS` in a subprocess, no stdin, with $ZOO_CACHE under `cwd`."""
    environment = {**os.environ, "ZOO_CACHE": str(cwd / "cache"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "zoo.fit", *args], cwd=cwd, env=environment, capture_output=True, text=True,
        timeout=300, stdin=subprocess.DEVNULL,
    )
