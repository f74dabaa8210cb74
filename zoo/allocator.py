"""Keep large tensors' memory in the process between calls (glibc malloc), a CPU fast path of issue 8.

glibc serves every block above its mmap threshold (128 KiB, raised adaptively to at most 32 MiB) with a fresh
`mmap` and hands it back with `munmap` when the tensor is freed. An image network's activations are such
blocks, so each forward pass on CPU faults in and zeroes its activations' pages again: on a 2-core machine the
kernel spends a quarter to a third of a Johnson or AdaIN forward pass doing that (`ru_minflt` counts about a
million faults per AdaIN call at 256² x 8; `benchmarks/malloc_gain.py`). Raising the mmap and trim
thresholds (`mallopt`, as the `MALLOC_MMAP_THRESHOLD_`/`MALLOC_TRIM_THRESHOLD_` environment variables do at
start-up) lets freed blocks be reused from the heap instead. The cost: the process keeps its peak heap
resident until it exits instead of returning it after each call. PyTorch's CPU tuning guide makes the same
point when it recommends jemalloc or TCMalloc.

`python -m zoo.fit`, `zoo.predict`, `zoo.bench` and the speed suite's processes call `tune_cpu_allocator()`
when they start; set `ZOO_TUNE_MALLOC=0` to keep glibc's defaults. In your own scripts, call it once before the
first large tensor. Numerics are unchanged (only where memory comes from changes). Elsewhere (macOS, Windows,
musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["tune_cpu_allocator", "malloc_tuning_enabled", "apply_malloc_setting", "MALLOC_SETTINGS", "ENV_VAR",
           "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

log = logging.getLogger("zoo")

#: "0" (or "false", "no", "off") keeps glibc's defaults in zoo's command-line tools
ENV_VAR = "ZOO_TUNE_MALLOC"
#: blocks up to 1 GiB come from the heap (mallopt takes a C int, so 2 GiB is the most it can say)
MMAP_THRESHOLD = 1 << 30
#: -1: free memory at the top of the heap is never returned to the system (mallopt(3): -1 disables trimming).
#: Any finite threshold is a cliff, even the largest mallopt takes (2 GiB - 1): a network whose freed
#: activations leave more than it free at the heap's top hands them all back after every call and faults them
#: in again on the next (CycleGAN at 512² x 8: ~550,000 faults and 10 % of each 19-s call).
TRIM_THRESHOLD = -1
#: a benchmark process's allocator setting: "tuned" (the raised thresholds) or "default" (glibc's own)
MALLOC_SETTINGS = ("tuned", "default")

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def malloc_tuning_enabled() -> bool:
    """False when `ZOO_TUNE_MALLOC` says no (0/false/no/off), True otherwise."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has it (musl's mallopt is a stub)
    except (OSError, AttributeError):
        return None
    return libc


def tune_cpu_allocator(*, mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD,
                       respect_env: bool = True) -> bool:
    """Raise glibc's mmap and trim thresholds so that freed activations are reused, not unmapped and faulted
    in again on the next call. Returns True when glibc took the thresholds, False where there is no glibc or
    `ZOO_TUNE_MALLOC=0` (with `respect_env`). Process-wide; call it once, early. Thresholds must fit a C int
    (at most 2**31 - 1); `trim_threshold=-1`, the default, never trims (see `TRIM_THRESHOLD`)."""
    if respect_env and not malloc_tuning_enabled():
        return False
    for name, value, never in (("mmap_threshold", mmap_threshold, False), ("trim_threshold", trim_threshold, True)):
        if not (0 < int(value) < 1 << 31 or (never and int(value) == -1)):
            raise ValueError(f"{name} must be in 1 .. 2**31 - 1 bytes (mallopt takes a C int)"
                             + (" or -1 (never trim)" if never else "") + f", got {value}")
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
    if not ok:
        log.debug("glibc refused the malloc thresholds; its defaults stay")
    return ok


def apply_malloc_setting(setting: str) -> bool:
    """Put this process under a benchmark's recorded `setting` (`MALLOC_SETTINGS`): "tuned" raises the
    thresholds whatever `ZOO_TUNE_MALLOC` says, "default" leaves glibc's own. Returns whether they were raised."""
    if setting not in MALLOC_SETTINGS:
        raise ValueError(f"malloc setting must be one of {', '.join(MALLOC_SETTINGS)}, got {setting!r}")
    return setting == "tuned" and tune_cpu_allocator(respect_env=False)
