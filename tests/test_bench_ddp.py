"""`zoo.bench` under 2-process CPU DDP (gloo) gives exactly the single-process numbers on an odd-length
dataset: no item padded in twice, none dropped, per-item seeds for multimodal sampling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from _synthetic import make_aligned

# A multimodal method whose samples depend on the seed it is given: if a rank drew an item's style
# codes from anything but (run seed, item index), the diversity numbers would change with the ranks.
SCRIPT = textwrap.dedent(
    '''
    import sys
    import torch
    from torch import nn
    from zoo.module import ZooModule
    from zoo.registry import register

    @register(key="ddpnoise")
    class DDPNoise(ZooModule):
        task = "translation-multimodal"
        weight_free = True
        default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 1, "directions": ["a2b"], "eval_mode": True}

        def __init__(self):
            super().__init__()
            self.save_hyperparameters()
            self.G = nn.Conv2d(3, 3, 1)

        def sample(self, x, n=8, seed=None):
            g = torch.Generator().manual_seed(int(seed))
            noise = torch.rand(n, *x.shape[1:], generator=g).to(x.device)
            return (0.5 * x + 0.5 * noise).clamp(0, 1)

    from zoo.bench import main
    sys.exit(main(sys.argv[1:]))
    '''
)


def _run(tmp_path: Path, out: str, *extra: str) -> dict[str, dict]:
    env = {
        **os.environ,
        "ZOO_CACHE": str(tmp_path / "cache"),
        "TORCH_HOME": str(tmp_path / "torch"),  # no backbone weights: the suite allows random ones
        # Equal intra-op threads in both runs: Lightning gives each DDP process cpu_count / world_size
        # threads, and float32 convolutions round differently with different thread counts.
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, str(tmp_path / "bench.py"), "--out", str(tmp_path / out), "--accelerator", "cpu", *extra],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    records = {}
    for path in sorted((tmp_path / out / "results").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            records[r["model"]] = r
    return records


def test_two_process_ddp_equals_single_process_on_odd_length_data(tmp_path):
    data = make_aligned(tmp_path / "data", n_train=1, n_val=5, size=32)  # 5 items: rank 0 gets 3, rank 1 gets 2
    (tmp_path / "bench.py").write_text(SCRIPT)
    (tmp_path / "suite.yaml").write_text(textwrap.dedent(
        f"""
        name: ddp-odd
        backbones: local-or-random
        tracks:
          - task: translation
            data: {{root: {data}, layout: aligned, split: val}}
            metrics: [psnr, ssim, lpips, fid, kid]
            options: {{kid: {{subset_size: 2, subsets: 5}}}}
          - task: translation-multimodal
            data: {{root: {data}, layout: aligned, split: val}}
            metrics: [lpips-diversity]
            options: {{lpips-diversity: {{n_inputs: 5, n_pairs: 3}}}}
        """
    ))
    common = ["--suite", str(tmp_path / "suite.yaml"), "--models", "identity,ddpnoise", "--seed", "7"]
    one = _run(tmp_path, "one", *common)
    two = _run(tmp_path, "two", *common, "--devices", "2", "--strategy", "ddp")

    assert set(one) == set(two) == {"identity", "ddpnoise"}
    for model in one:
        a, b = one[model], two[model]
        assert (a["world_size"], b["world_size"]) == (1, 2) and b["strategy"] == "DDPStrategy"
        assert a["n"] == b["n"] == 5
        assert list(a["metrics"]) == list(b["metrics"])
        for name, ma in a["metrics"].items():
            mb = b["metrics"][name]
            assert ma["n"] == mb["n"] == 5, (model, name)  # every item once: no DistributedSampler padding
            assert ma["value"] == mb["value"], (model, name, ma["value"], mb["value"])  # exactly, not approximately
            assert ma["protocol"] == mb["protocol"]
        assert b["throughput"]["images"] == a["throughput"]["images"]
    assert two["identity"]["metrics"]["fid"]["extra"]["n_real"] == 5
    assert two["ddpnoise"]["throughput"]["images"] == 5 * 4  # n_pairs + 1 samples per input
    assert one["ddpnoise"]["metrics"]["lpips-diversity"]["value"] > 0

    # A different run seed draws different style codes, so the diversity number moves.
    other = _run(tmp_path, "other", "--suite", str(tmp_path / "suite.yaml"), "--models", "ddpnoise", "--seed", "8")
    assert other["ddpnoise"]["metrics"]["lpips-diversity"]["value"] != one["ddpnoise"]["metrics"]["lpips-diversity"]["value"]
