"""Kill and resume: `python -m zoo.fit` SIGKILLed mid-epoch (and once halfway through writing a checkpoint),
restarted with `--ckpt_path last`, ends with the weights of an uninterrupted run, bit for bit (CPU,
deterministic mode), for pix2pix, CycleGAN and johnson; damaged checkpoints are named, with the newest
intact one beside them; the sampler skips what an interrupted epoch consumed, per DDP rank.

The killed runs are real processes: `zoo.fit` run through a small wrapper (written into tmp_path) that
stalls at a chosen point, after the N-th training batch or halfway through the N-th checkpoint file, and
touches a marker file; the test then sends SIGKILL. The resumed runs are fresh `python -m zoo.fit`
processes; the uninterrupted references run in-process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.data.sampling import EpochSampler, ResumableLoader
from zoo.errors import CheckpointError, ZooError
from zoo.fit import main as fit_main
from zoo.training import AtomicCheckpointIO, checksum_path, verify_checkpoint

from _synthetic import make_aligned, make_unpaired

NOT_RESUMABLE = "dataloader is not resumable"

#: `stall.py batch N MARKER ARGS`: run zoo.fit, stall after the N-th training batch (counted over the run);
#: `stall.py write N MARKER ARGS`: stall halfway through writing the N-th checkpoint file.
STALL = '''
import io, pathlib, runpy, sys, time
import torch
from zoo.training import ZooCheckpoint

mode, n, marker, args = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4:]

def stall():
    marker.touch()
    time.sleep(600)

if mode == "batch":
    original = ZooCheckpoint.on_train_batch_end

    def on_train_batch_end(self, trainer, *rest):
        original(self, trainer, *rest)
        if self.every_n_batches and trainer.fit_loop.epoch_loop.batch_progress.total.processed == n:
            stall()

    ZooCheckpoint.on_train_batch_end = on_train_batch_end
else:
    save, calls = torch.save, [0]

    def partial_save(obj, f, *a, **k):
        calls[0] += 1
        if calls[0] != n:
            return save(obj, f, *a, **k)
        buffer = io.BytesIO()
        save(obj, buffer, *a, **k)
        f.write(buffer.getvalue()[: buffer.tell() // 2])
        f.flush()
        stall()

    torch.save = partial_save

sys.argv = ["zoo.fit", *args]
runpy.run_module("zoo.fit", run_name="__main__")
'''

QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--data.num_workers=0",
         "--trainer.deterministic=true", "--baseline=false", "--trainer.max_epochs=2", "--trainer.limit_val_batches=1",
         "--trainer.num_sanity_val_steps=0", "--trainer.logger=false", "--checkpoint_every_n_batches=2"]


@pytest.fixture(autouse=True, scope="module")
def one_thread_everywhere():
    """One intra-op thread in this process (the references) and in the subprocesses (OMP_NUM_THREADS in
    `_env`): the same float reductions on both sides, and no spin-waiting threads on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _env(tmp: Path) -> dict:
    env = {**os.environ, "ZOO_CACHE": str(tmp / "cache"), "TORCH_HOME": str(tmp / "torch"), "OMP_NUM_THREADS": "1"}
    for var in ("ZOO_VGG_WEIGHTS", "ZOO_VGG16_WEIGHTS", "ZOO_VGG19_WEIGHTS"):
        env.pop(var, None)
    return env


def _kill_at(tmp: Path, args: list[str], root: Path, mode: str, n: int) -> None:
    """Run zoo.fit ARGS into `root` through the stall wrapper; SIGKILL it once it stalls."""
    script, marker, log = tmp / "stall.py", tmp / f"stalled-{root.name}", tmp / f"stall-{root.name}.log"
    script.write_text(STALL)
    with open(log, "w") as output:  # a file, not a pipe: a full pipe would block the run before it stalls
        process = subprocess.Popen([sys.executable, str(script), mode, str(n), str(marker), *args,
                                    f"--trainer.default_root_dir={root}"], cwd=tmp, env=_env(tmp),
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            if process.poll() is not None:
                pytest.fail(f"the run ended before it stalled: {log.read_text()[-3000:]}")
            assert time.monotonic() < deadline, "the run never stalled"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def _resume(tmp: Path, args: list[str], root: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "zoo.fit", *args, f"--trainer.default_root_dir={root}",
                             "--ckpt_path=last"], cwd=tmp, env=_env(tmp), capture_output=True, text=True,
                            timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]


def _equal(x, y) -> bool:
    """Nested containers of tensors and plain values, equal bit for bit."""
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and torch.equal(x, y)
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return type(x) is type(y) and len(x) == len(y) and all(_equal(a, b) for a, b in zip(x, y))
    return x == y


def _position(ckpt: Path) -> tuple[int, int]:
    """(epoch, batches done in it) that a checkpoint resumes from, by Lightning's loop counters."""
    loops = torch.load(ckpt, weights_only=True)["loops"]["fit_loop"]
    return loops["epoch_progress"]["current"]["processed"], loops["epoch_loop.batch_progress"]["current"]["processed"]


# ------------------------------------------------------------------------------------------- pix2pix
PIX2PIX = ["--model", "pix2pix", "--model.init_args.netG=unet_128", "--model.init_args.ngf=4",
           "--model.init_args.ndf=4", "--data.load_size=136", "--data.crop_size=128", "--model.init_args.n_epochs=1",
           "--model.init_args.n_epochs_decay=1", *QUIET]


@pytest.fixture(scope="module")
def pix2pix_kill(tmp_path_factory):
    """5 batches an epoch, 2 epochs, last.ckpt every 2 batches (not at an epoch's last batch). Checkpoint
    files are written after batch 2 (last), 4 (last), at the end of epoch 0 (best, last), after batch 6 (last:
    epoch 1, 1 batch in); the run is killed halfway through the next, after batch 8. A copy of what the kill
    left is kept in `left`."""
    tmp = tmp_path_factory.mktemp("pix2pix")
    data = make_aligned(tmp / "data", n_train=5, n_val=1, size=128)
    args = [*PIX2PIX, f"--data.root={data}"]
    start = time.monotonic()
    fit_main([*args, f"--trainer.default_root_dir={tmp / 'straight'}"])
    _kill_at(tmp, args, tmp / "killed", "write", 6)
    left = tmp / "left"
    shutil.copytree(tmp / "killed" / "checkpoints", left)
    resumed = _resume(tmp, args, tmp / "killed")
    return {"tmp": tmp, "args": args, "left": left, "resumed": resumed, "seconds": time.monotonic() - start}


@pytest.mark.slow
def test_pix2pix_killed_while_writing_a_checkpoint_resumes_bit_exact(pix2pix_kill):
    tmp, left = pix2pix_kill["tmp"], pix2pix_kill["left"]
    # The kill left a half-written temporary beside an intact last.ckpt (the batch-6 one, mid-epoch)...
    [partial] = [p for p in left.iterdir() if p.name.startswith(".last.ckpt.") and p.name.endswith(".tmp")]
    assert partial.stat().st_size > 0
    verify_checkpoint(left / "last.ckpt")
    assert _position(left / "last.ckpt") == (1, 1)
    # ...which `--ckpt_path last` took, not the temporary: the resumed run ends where the straight one did.
    _assert_same(_weights(tmp / "straight"), _weights(tmp / "killed"))
    assert NOT_RESUMABLE not in pix2pix_kill["resumed"].stderr
    assert not list((tmp / "killed" / "checkpoints").glob(".*.tmp"))  # the next write cleared it away
    assert zoo.load(tmp / "killed" / "pretrained").method == "pix2pix"


@pytest.mark.slow
def test_without_the_loaders_state_a_mid_epoch_resume_differs(pix2pix_kill, tmp_path):
    """The check has teeth: the same mid-epoch checkpoint without the loader's state (what a loader that is
    not resumable gives) restarts epoch 1 from its first batch, and ends elsewhere."""
    tmp, args = pix2pix_kill["tmp"], pix2pix_kill["args"]
    ckpt = torch.load(pix2pix_kill["left"] / "last.ckpt", weights_only=True)
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [
        {"epoch": 1, "consumed": 1, "finished": False}]
    del ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    torch.save(ckpt, tmp_path / "stripped.ckpt")
    fit_main([*args, f"--trainer.default_root_dir={tmp_path / 'run'}", f"--ckpt_path={tmp_path / 'stripped.ckpt'}"])
    a, b = _weights(tmp / "straight"), _weights(tmp_path / "run")
    assert not all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "tampered"])
def test_a_damaged_checkpoint_is_named_with_the_previous_good_one(pix2pix_kill, tmp_path, capsys, damage):
    folder = tmp_path / "checkpoints"
    shutil.copytree(pix2pix_kill["left"], folder)
    last = folder / "last.ckpt"
    data = bytearray(last.read_bytes())
    if damage == "truncated":
        del data[len(data) // 3:]
    else:
        data[len(data) // 2] ^= 0x01
    last.write_bytes(bytes(data))
    [best] = folder.glob("best-*.ckpt")
    with pytest.raises(CheckpointError) as error:
        zoo.load(last)
    message = str(error.value)
    assert str(last) in message and str(best) in message
    assert ("bytes where last.ckpt.sha256 records" if damage == "truncated" else "sha256") in message
    # zoo.fit --ckpt_path last: exit status 2, the message instead of a traceback, nothing trained
    with pytest.raises(SystemExit) as exit_info:
        fit_main([*pix2pix_kill["args"], f"--trainer.default_root_dir={tmp_path}", "--ckpt_path=last"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: checkpoint {last} is damaged" in err and f"--ckpt_path {best}" in err
    assert not (tmp_path / "pretrained").exists()


@pytest.mark.slow
def test_a_truncated_checkpoint_without_a_checksum_file_is_named(pix2pix_kill, tmp_path):
    bad = tmp_path / "run.ckpt"
    bad.write_bytes((pix2pix_kill["left"] / "last.ckpt").read_bytes()[:5000])
    with pytest.raises(ZooError, match=f"checkpoint {bad} is damaged: it cannot be read"):
        AtomicCheckpointIO().load_checkpoint(bad)
    with pytest.raises(ZooError, match=str(bad)):
        zoo.load(bad)


# ------------------------------------------------------------------------------------------ CycleGAN
CYCLEGAN = ["--model", "cyclegan", "--data.layout=unpaired", "--model.init_args.ngf=4", "--model.init_args.ndf=4",
            "--model.init_args.netG=resnet_6blocks", "--data.load_size=36", "--data.crop_size=32",
            "--model.init_args.n_epochs=1", "--model.init_args.n_epochs_decay=1", "--model.init_args.pool_size=2",
            *QUIET]


@pytest.mark.slow
def test_cyclegan_killed_mid_epoch_resumes_bit_exact(tmp_path):
    """4 batches an epoch, last.ckpt every 2 (after batches 2 and 6, mid-epoch); killed after batch 7. The
    killed and resumed runs load in a worker process, the straight one in the main process: the samples do
    not depend on it, and a worker draws the resumed epoch's indices as soon as its iterator exists."""
    args = [*CYCLEGAN, f"--data.root={make_unpaired(tmp_path / 'data', n_train=4, n_val=1)}"]
    fit_main([*args, f"--trainer.default_root_dir={tmp_path / 'straight'}"])
    workers = [*args, "--data.num_workers=1"]
    _kill_at(tmp_path, workers, tmp_path / "killed", "batch", 7)
    assert _position(tmp_path / "killed" / "checkpoints" / "last.ckpt") == (1, 2)
    result = _resume(tmp_path, workers, tmp_path / "killed")
    assert NOT_RESUMABLE not in result.stderr
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "killed"))
    a, b = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)["zoo"]["image_pools"]
            for run in ("straight", "killed"))
    assert _equal(a, b) and "tensor" in str(a)  # the image pools too
    # and at an epoch boundary (in-process), where Lightning hands the loader no state
    fit_main([*workers, f"--trainer.default_root_dir={tmp_path / 'epoch'}", "--trainer.max_epochs=1"])
    fit_main([*workers, f"--trainer.default_root_dir={tmp_path / 'epoch'}", "--ckpt_path=last"])
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "epoch"))


# ------------------------------------------------------------------------------------------- johnson
def _images(folder: Path, n: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")


@pytest.mark.slow
def test_johnson_killed_mid_epoch_resumes_bit_exact(tmp_path):
    """8 content images in batches of 2 (4 batches an epoch), random crops, a random VGG (asked for)."""
    _images(tmp_path / "content", 8, 24, seed=0)
    _images(tmp_path / "style", 1, 24, seed=1)
    args = ["--model", "johnson", f"--data.root={tmp_path / 'content'}", f"--data.style={tmp_path / 'style' / '00.png'}",
            "--model.init_args.width=4", "--model.init_args.vgg_weights=null", "--data.content_size=20",
            "--data.crop_size=16", "--data.crop=random", "--data.style_size=16", "--data.batch_size=2", *QUIET]
    fit_main([*args, f"--trainer.default_root_dir={tmp_path / 'straight'}"])
    _kill_at(tmp_path, args, tmp_path / "killed", "batch", 7)
    assert _position(tmp_path / "killed" / "checkpoints" / "last.ckpt") == (1, 2)
    result = _resume(tmp_path, args, tmp_path / "killed")
    assert NOT_RESUMABLE not in result.stderr
    _assert_same(_weights(tmp_path / "straight"), _weights(tmp_path / "killed"))


# ------------------------------------------------------------------------------------ sampler, loader
@pytest.mark.parametrize("replicas", [1, 2, 3])
def test_a_resumed_epoch_is_the_tail_of_each_ranks_share(replicas):
    """Skipping c batches of b items on R ranks leaves out global positions [0, c*b*R): each rank gets
    exactly the rest of what it would have had, by index (nothing is decoded to skip)."""
    torch.manual_seed(0)
    for n, batch, done in [(11, 2, 2), (10, 1, 3), (7, 3, 1)]:
        for rank in range(replicas):
            whole = EpochSampler(n, seed=5, num_replicas=replicas, rank=rank)
            whole.set_epoch(3)
            expected = list(whole)[done * batch:]
            resumed = EpochSampler(n, seed=5, num_replicas=replicas, rank=rank)
            resumed.resume(3, done * batch * replicas)
            assert list(resumed) == expected and len(resumed) == len(whole)
            assert list(resumed) == list(whole)  # once: iterated again, the epoch is whole


def test_a_resume_on_another_number_of_ranks_shares_out_the_rest():
    """Not exact (Lightning counts the resumed epoch's batches by the old share), but the samplers of the new
    ranks together hold each remaining item once, padded as DistributedSampler pads."""
    torch.manual_seed(0)
    whole = EpochSampler(10, seed=1)
    order = list(whole)
    left = set(order[4:])  # 2 ranks consumed 2 items each
    shares = []
    for rank in range(3):
        sampler = EpochSampler(10, seed=1, num_replicas=3, rank=rank)
        sampler.resume(0, 4)
        shares += list(sampler)
    assert set(shares) == left and len(shares) == 6


class _Indices(torch.utils.data.Dataset):
    """Items are their (index, seed) keys: what the sampler chose, nothing decoded."""

    def __len__(self) -> int:
        return 9

    def __getitem__(self, item):
        return item


def test_the_loader_state_counts_what_the_loop_consumed_not_what_was_fetched():
    torch.manual_seed(0)
    sampler = EpochSampler(9, seed=0)
    loader = ResumableLoader(_Indices(), batch_size=2, sampler=sampler, collate_fn=lambda items: items)
    sampler.set_epoch(4)
    iterator = iter(loader)
    for _ in range(3):  # fetched three batches (one ahead); the loop says it trained on two
        next(iterator)
    loader.progress = lambda: (2, False)
    state = loader.state_dict()
    assert state == {"epoch": 4, "consumed": 4, "finished": False}
    fresh_sampler = EpochSampler(9, seed=0)
    fresh = ResumableLoader(_Indices(), batch_size=2, sampler=fresh_sampler, collate_fn=lambda items: items)
    fresh.load_state_dict(state)
    full = EpochSampler(9, seed=0)
    full.set_epoch(4)
    assert [item for b in fresh for item in b] == list(full)[4:] and fresh_sampler.epoch == 4
    fresh.load_state_dict({"epoch": 4, "consumed": 10, "finished": True})
    assert fresh_sampler.epoch == 5 and len(list(fresh)) == 5


def test_checksum_file_survives_a_kill_between_its_write_and_the_rename(tmp_path, monkeypatch):
    """The new record is written before the rename; the version still in place must verify, not only the new."""
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)
    old = path.read_bytes()

    def killed(*_):
        raise KeyboardInterrupt  # stands for a kill after the checksum file, before the rename

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == old and '"earlier"' in checksum_path(path).read_text()
    verify_checkpoint(path)
    assert int(io.load_checkpoint(path)["step"]) == 1
    io.remove_checkpoint(path)
    assert not checksum_path(path).exists()


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    """Simulated ENOSPC halfway through a checkpoint: a CheckpointError (zoo.fit: `error: ...`, exit 2) that
    names the file and the cause; the previous checkpoint still verifies and loads; no temporary is left."""
    import errno

    from zoo.fsutil import DigestWriter

    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1), "weights": torch.arange(1000.0)}, path)
    real_write = DigestWriter.write

    def full_disk(self, data):
        if self.size > 100:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(DigestWriter, "write", full_disk)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*last\.ckpt \(No space left on device\); "
                                              r"the previous one is intact"):
        io.save_checkpoint({"step": torch.tensor(2), "weights": torch.zeros(1000)}, path)
    with pytest.raises(CheckpointError, match="no earlier one exists"):
        io.save_checkpoint({"step": torch.tensor(2), "weights": torch.zeros(1000)}, tmp_path / "other.ckpt")
    monkeypatch.undo()
    verify_checkpoint(path)
    state = io.load_checkpoint(path)
    assert int(state["step"]) == 1 and torch.equal(state["weights"], torch.arange(1000.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]
