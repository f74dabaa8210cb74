"""The benchmark harness behind `python -m zoo.bench`: suites, the Lightning runner, results and leaderboard, and
the speed suite (`zoo.benchmark.speed`)."""

from zoo.benchmark.data import BenchDataset, ShardSampler, ensure_bench_photos
from zoo.benchmark.results import append_result, read_results, render_leaderboard, update_registry_results, write_leaderboard
from zoo.benchmark.runner import BenchModule, build_metric, build_metrics, item_seed, run_track
from zoo.benchmark.speed import SpeedConfig, read_speed_results, render_speed_table, run_speed
from zoo.benchmark.suites import Suite, Track, list_suites, load_suite, parse_suite

__all__ = [
    "BenchDataset", "ShardSampler", "ensure_bench_photos",
    "append_result", "read_results", "render_leaderboard", "update_registry_results", "write_leaderboard",
    "BenchModule", "build_metric", "build_metrics", "item_seed", "run_track",
    "SpeedConfig", "read_speed_results", "render_speed_table", "run_speed",
    "Suite", "Track", "list_suites", "load_suite", "parse_suite",
]
