"""Validation metrics under 2-process CPU DDP (gloo): every rank evaluates its own shard, and the logged
`val/*` figure (and so the `best` checkpoint picked by it) is the mean over all ranks, not rank 0's shard;
training logs stay per-rank (no collective, so no host sync, in the training step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent('''
    import json, sys
    import lightning as L
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from zoo.module import ZooModule

    class RankValued(ZooModule):
        """Logs its rank as a metric: rank 0 logs 0 and rank 1 logs 1, so the mean over ranks is 0.5."""
        def __init__(self):
            super().__init__()
            self.G = nn.Conv2d(1, 1, 1)

        def training_step(self, batch, batch_idx):
            self.log("train/rank", float(self.global_rank), batch_size=1)
            return self.G(batch[0]).mean()

        def validation_step(self, batch, batch_idx):
            self.log("val/rank", float(self.global_rank), batch_size=1)
            self.log_dict({"val/rank_dict": torch.tensor(float(self.global_rank))}, batch_size=1)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    class Record(L.Callback):
        def on_train_end(self, trainer, pl_module):
            seen = {k: float(v) for k, v in trainer.callback_metrics.items()}
            with open(f"{sys.argv[1]}/rank{trainer.global_rank}.json", "w") as f:
                json.dump(seen, f)

    if __name__ == "__main__":
        data = TensorDataset(torch.zeros(4, 1, 2, 2))
        trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0, callbacks=[Record()], default_root_dir=sys.argv[1])
        trainer.fit(RankValued(), DataLoader(data, batch_size=1), DataLoader(data, batch_size=1))
''')


def test_validation_metrics_are_the_mean_over_ranks_and_training_logs_stay_local(tmp_path):
    script = tmp_path / "rank_valued.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path,
                            env={**os.environ, "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for rank, metrics in enumerate(seen):
        assert metrics["val/rank"] == pytest.approx(0.5), (rank, metrics)
        assert metrics["val/rank_dict"] == pytest.approx(0.5), (rank, metrics)  # log_dict passes sync_dist=False
        assert metrics["train/rank"] == pytest.approx(float(rank)), (rank, metrics)
