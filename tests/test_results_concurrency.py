"""Benchmark results files under concurrency (issue 9): several real processes appending to one results
file at once leave one whole JSON line per record, and a run killed mid-method records nothing of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from zoo.benchmark.results import append_lines, read_results
from zoo.errors import ZooError

WRITER = textwrap.dedent("""
    import json, sys
    from zoo.benchmark.results import append_lines
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for i in range(n):
        # records far larger than a pipe buffer or a stdio buffer, several per append (as a speed run does)
        lines = [json.dumps({"who": who, "i": i, "j": j, "pad": who * 20000}) for j in range(3)]
        append_lines(path, lines)
""")


@pytest.mark.slow
def test_concurrent_appends_never_interleave(tmp_path):
    script, path = tmp_path / "writer.py", tmp_path / "results" / "speed.jsonl"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(path), who, "40"]) for who in "abcd"]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    records = read_results(path.parent)  # every line parses
    assert len(records) == 4 * 40 * 3
    for who in "abcd":
        mine = [(r["i"], r["j"]) for r in records if r["who"] == who]
        assert mine == [(i, j) for i in range(40) for j in range(3)]  # each process's lines in its order
        assert all(r["pad"] == who * 20000 for r in records if r["who"] == who)
    # each append's lines stay together: another process never lands between a method's records
    for k in range(0, len(records), 3):
        group = records[k:k + 3]
        assert len({(r["who"], r["i"]) for r in group}) == 1 and [r["j"] for r in group] == [0, 1, 2]


def test_a_partial_last_line_is_named(tmp_path):
    path = tmp_path / "speed.jsonl"
    append_lines(path, [json.dumps({"ok": 1})])
    with open(path, "a") as f:
        f.write('{"cut": ')  # what a filesystem without atomic appends could leave after a crash
    with pytest.raises(ZooError, match=r"speed.jsonl:2 is not a JSON line"):
        read_results(tmp_path)


@pytest.mark.slow
def test_a_speed_run_killed_mid_method_records_nothing_of_it(tmp_path):
    """SIGKILL while the second method is being measured: the file holds the first method's records, whole,
    and none of the second's."""
    out = tmp_path / "bench"
    argv = [sys.executable, "-m", "zoo.bench", "--suite", "speed", "--models", "identity,pix2pix", "--out", str(out),
            "--sizes", "32", "--batches", "1", "--repeats", "1", "--warmup", "0", "--threads", "1",
            "--min-seconds", "0", "--measure", "inference", "--set", "pix2pix.ngf=4", "--set", "pix2pix.ndf=4",
            "--set", "pix2pix.netG=unet_128", "--import", "stall_pix2pix", "--timeout", "600"]
    # imported by every worker (--import): pix2pix's worker stalls, so the kill lands mid-method
    (tmp_path / "stall_pix2pix.py").write_text("import sys, time\nif sys.argv[1:3] == ['--worker', 'pix2pix']:\n    time.sleep(120)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    seen = ""
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while "pix2pix ..." not in seen:  # identity is recorded, pix2pix's worker has started
        line = proc.stdout.readline()
        assert line and time.monotonic() < deadline, seen
        seen += line
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker
    proc.wait(timeout=30)
    records = [json.loads(line) for line in (out / "results" / "speed.jsonl").read_text().splitlines()]
    assert {r["method"] for r in records} == {"identity"} and all(r["measurement"] == "inference" for r in records)
