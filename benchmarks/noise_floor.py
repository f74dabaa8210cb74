"""The speed suite's noise floor: a call timed against itself (A/A) beside the verb against the bare network.

    python benchmarks/noise_floor.py                                   # johnson, 256², batch 8, 6 pairs
    python benchmarks/noise_floor.py --model cin --size 512 --batch 1 --pairs 10

The API ratio of `python -m zoo.bench --suite speed` is the median of the ratios of calls run side by side
(`zoo.benchmark.speed.timed_pair` and `paired_ratio`). Timing the verb against itself, and the bare network
against itself, with the same harness shows how far such a median strays from 1 when there is nothing to
find: a ratio of verb against bare within that spread says nothing about overhead. Prints the four paired
ratios (median [q1-q3], min-max) for one method, size and batch, as the suite builds them.
"""

from __future__ import annotations

import argparse
import sys

from zoo.allocator import MALLOC_SETTINGS, apply_malloc_setting


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="johnson", help="a method key with a feed-forward verb")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--pairs", type=int, default=6, help="timed pairs per comparison (after one warm-up pair)")
    p.add_argument("--malloc", choices=MALLOC_SETTINGS, default="tuned",
                   help="glibc's malloc thresholds: raised, as the speed suite's workers run (default), or glibc's own")
    args = p.parse_args(argv)
    apply_malloc_setting(args.malloc)

    import torch

    from zoo.benchmark.speed import SpeedConfig, build_model, inference_case, paired_ratio, timed_pair, verb_input

    torch.manual_seed(0)
    model = build_model(args.model, SpeedConfig()).eval()
    case = inference_case(model)
    if case is None:
        p.error(f"--model {args.model} has no feed-forward verb to time")
    device = torch.device("cpu")
    x = verb_input(case, args.size, args.batch, 0, device)
    bare_args = case.prepare(x)

    def verb() -> object:
        return case.verb(x)

    def bare() -> object:
        return case.network(*bare_args)

    print(f"{args.model} {case.verb_name} {args.size}² x{args.batch}, {args.pairs} pairs, "
          f"{torch.get_num_threads()} threads, malloc {args.malloc}; ratio = speed of the first / speed of the second "
          f"(as the suite's API ratio)")
    with torch.inference_mode():
        for name, first, second in (("verb against bare", verb, bare), ("verb against verb (A/A)", verb, verb),
                                    ("bare against bare (A/A)", bare, bare)):
            a, b = timed_pair(first, second, args.pairs, 1, device)
            r = paired_ratio(a, b)
            print(f"  {name}: {r['median']:.3f} [{r['q1']:.3f}-{r['q3']:.3f}], min {r['min']:.3f}, "
                  f"max {r['max']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
