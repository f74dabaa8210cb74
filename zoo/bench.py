"""`python -m zoo.bench`: score models on a benchmark suite, append the results, rebuild the leaderboard.

    python -m zoo.bench --suite mini                                   # offline, CPU, seconds
    python -m zoo.bench --models 'pix2pix-*' --suite facades --metrics fid,kid,lpips,psnr,ssim
    python -m zoo.bench --models runs/pix2pix/pretrained --suite mini --devices 2 --strategy ddp
    python -m zoo.bench --leaderboard                                  # only regenerate LEADERBOARD.md

The work is done in `zoo.benchmark` (suites, data, runner, results; `zoo.benchmark.command` for the
command itself). Every number printed and written names its protocol and whether it is comparable
with published numbers. A user mistake ends with `error: ...` and exit status 2.
"""

from __future__ import annotations

import sys

from zoo.benchmark.command import build_parser, main, resolve_models

__all__ = ["main", "build_parser", "resolve_models"]

if __name__ == "__main__":
    sys.exit(main())
