"""DDP as zoo runs it: a collective timeout, so that a rank that stalls makes the others fail with a timeout
error instead of waiting forever, and `EndAllRanksOnError`, so that the ranks the launching process started
end with it. (A started rank that raises or dies already ends the run: Lightning's launcher watches them and
kills every process as soon as one exits with an error.)"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from typing import Any

import lightning as L

from zoo.errors import ZooError

__all__ = ["DEFAULT_DDP_TIMEOUT_S", "ddp_timeout_s", "ddp_with_timeout", "EndAllRanksOnError"]

#: seconds a rank waits in a collective (all-reduce, barrier) for the others; $ZOO_DDP_TIMEOUT_S overrides.
#: Longer than any step or checkpoint write, far shorter than torch's 30 minutes.
DEFAULT_DDP_TIMEOUT_S = 600.0
_START_METHODS = {"ddp": "popen", "ddp_spawn": "spawn", "ddp_fork": "fork", "ddp_notebook": "fork"}
_FIND_UNUSED = "_find_unused_parameters_true"


def ddp_timeout_s(timeout_s: float | None = None) -> float:
    """`timeout_s`, else $ZOO_DDP_TIMEOUT_S, else `DEFAULT_DDP_TIMEOUT_S`; must be positive."""
    if timeout_s is None:
        env = os.environ.get("ZOO_DDP_TIMEOUT_S")
        try:
            timeout_s = float(env) if env else DEFAULT_DDP_TIMEOUT_S
        except ValueError:
            raise ZooError(f"$ZOO_DDP_TIMEOUT_S={env!r} is not a number of seconds: set e.g. 600") from None
    if not float(timeout_s) > 0:
        raise ZooError(f"the DDP timeout must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)


def ddp_with_timeout(strategy: Any, timeout_s: float | None = None, *, find_unused: bool = False) -> Any:
    """A DDP strategy named by a string ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", each optionally with
    "_find_unused_parameters_true") as a `DDPStrategy` with the collective timeout; anything else unchanged."""
    if not isinstance(strategy, str):
        return strategy
    name = strategy.removesuffix(_FIND_UNUSED)
    if name not in _START_METHODS:
        return strategy
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(start_method=_START_METHODS[name], find_unused_parameters=find_unused or name != strategy,
                       timeout=timedelta(seconds=ddp_timeout_s(timeout_s)))


class EndAllRanksOnError(L.Callback):
    """When the launching process (rank 0) fails, for instance at the collective timeout, SIGKILL the ranks it
    started. Lightning does so only for Ctrl-C: a rank stalled outside a collective (a hung data read, an
    endless loop) would otherwise outlive the failed run, holding its memory and the caller's output pipes."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

        launcher = getattr(trainer.strategy, "launcher", None)
        if isinstance(launcher, _SubprocessScriptLauncher) and launcher.procs:
            launcher.kill(signal.SIGKILL)
