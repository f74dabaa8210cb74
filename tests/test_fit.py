"""`python -m zoo.fit`: the CLI end to end, resume exactness, logging."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.fit import main as fit_main
from zoo.fit import prepare_argv
from zoo.methods.pix2pix import Pix2Pix
from zoo.training import ZooCheckpoint

from _helpers import assert_same_state, run_cli
from _synthetic import make_aligned

TINY = [
    "--model.init_args.netG=unet_128", "--model.init_args.ngf=8", "--model.init_args.ndf=8",
    "--data.load_size=140", "--data.crop_size=128", "--data.num_workers=0",
    "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
]




def test_cli_trains_checkpoints_resumes_and_publishes(tmp_path):
    data = make_aligned(tmp_path / "data", n_train=2, n_val=1, size=128)
    root = tmp_path / "run"
    args = ["--model", "pix2pix", f"--data.root={data}", f"--trainer.default_root_dir={root}", *TINY]
    first = run_cli([*args, "--trainer.max_epochs=1"], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"saved pretrained weights to {root / 'pretrained'}" in first.stdout
    assert "validation: val/L1" in first.stdout  # the baseline before training, and the end
    checkpoints = root / "checkpoints"
    assert (checkpoints / "last.ckpt").exists() and len(list(checkpoints.glob("best-*.ckpt"))) == 1
    rows = list(csv.DictReader((root / "logs" / "version_0" / "metrics.csv").open()))
    assert any(r.get("val/L1") for r in rows) and any(r.get("val/PSNR") for r in rows)
    assert list((root / "logs" / "version_0" / "images").glob("val_grid_*.png"))

    # the published folder loads by itself and translates an image of any size
    model = zoo.load(root / "pretrained")
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 173, 3), dtype=np.uint8))
    out = model.translate(photo)
    assert isinstance(out, Image.Image) and out.size == photo.size
    assert "pix2pix" in (root / "pretrained" / "README.md").read_text()

    # --ckpt_path last continues from epoch 1 with the saved optimizer/scheduler/step
    second = run_cli([*args, "--trainer.max_epochs=2", "--ckpt_path=last"], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Restoring states from the checkpoint path" in second.stderr + second.stdout
    state = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert state["epoch"] == 1 and state["global_step"] == 2 * 2 * 2  # 2 epochs x 2 batches x (D + G) steps
    assert "validation:" not in second.stdout  # no baseline when resuming
    from_ckpt = zoo.load(checkpoints / "last.ckpt")  # the README's way to use a checkpoint
    assert isinstance(from_ckpt, Pix2Pix) and from_ckpt.translate(photo).size == photo.size


def test_unknown_model_lists_the_closest_names(capsys):
    with pytest.raises(SystemExit) as exit_info:
        fit_main(["--model", "pix2pixx"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "pix2pixx" in err and "pix2pix" in err.replace("pix2pixx", "")


def print_config(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        fit_main([*args, "--print_config"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_demo_schedule_only_without_a_data_root(tmp_path, capsys):
    demo = print_config(["--model", "pix2pix"], capsys)
    assert "class_path: zoo.methods.pix2pix.Pix2Pix" in demo
    assert "max_epochs: 4" in demo and "n_epochs: 2" in demo and "root: null" in demo
    real = print_config(["--model", "pix2pix", f"--data.root={tmp_path}"], capsys)
    assert "n_epochs: 100" in real and "n_epochs_decay: 100" in real and "max_epochs: 4" not in real
    config = tmp_path / "cfg.yaml"
    config.write_text(f"data:\n  root: {tmp_path}\ntrainer:\n  max_epochs: 7\n")
    from_config = print_config(["--model", "pix2pix", "--config", str(config)], capsys)
    assert "max_epochs: 7" in from_config and "n_epochs: 100" in from_config


def test_registry_name_brings_its_hparams_and_direction(tmp_path, capsys):
    facades = print_config(["--model", "pix2pix-facades", f"--data.root={tmp_path}"], capsys)
    assert "direction: BtoA" in facades
    maps = print_config(["--model=pix2pix-maps", f"--data.root={tmp_path}", "--model.init_args.lambda_L1=10"], capsys)
    assert "- a2b\n" in maps and "- b2a\n" in maps and "lambda_L1: 10.0" in maps
    # flags before --model still override what zoo adds (demo schedule, the entry's data direction)
    before = print_config(["--trainer.max_epochs=9", "--data.direction=AtoB", "--model", "pix2pix-facades"], capsys)
    assert "max_epochs: 9" in before and "direction: AtoB" in before and "n_epochs: 2" in before
    argv, method = prepare_argv(["--model", "pix2pix", "--trainer.max_epochs=3"])
    assert method == "pix2pix" and argv[-3:-1] == ["--model", "zoo.methods.pix2pix.Pix2Pix"]


def _fit(data: Path, root: Path, epochs: int, resume: bool = False) -> Pix2Pix:
    """`python -m zoo.fit` in-process, with the CLI's own checkpoint callbacks and defaults."""
    args = ["--model", "pix2pix", f"--data.root={data}", *TINY, f"--trainer.max_epochs={epochs}",
            f"--trainer.default_root_dir={root}", "--model.init_args.n_epochs=1",
            "--model.init_args.n_epochs_decay=2", "--trainer.deterministic=true", "--baseline=false"]
    return fit_main([*args, "--ckpt_path=last"] if resume else args).model


def test_resume_is_exact(tmp_path):
    """N epochs + resume N epochs == 2N epochs: same weights, BN buffers and learning rate, bit for bit
    (dropout, random crops and flips all draw from state carried in the checkpoint or derived from the
    seed and epoch)."""
    data = make_aligned(tmp_path / "data", n_train=3, n_val=1, size=128)
    straight = _fit(data, tmp_path / "straight", epochs=2)
    _fit(data, tmp_path / "resumed", epochs=1)
    resumed = _fit(data, tmp_path / "resumed", epochs=2, resume=True)
    assert_same_state(straight, resumed)
    a = straight.state_dict()
    assert straight.optimizers()[0].param_groups[0]["lr"] == resumed.optimizers()[0].param_groups[0]["lr"]
    # and the check has teeth: one more epoch changes the weights
    longer = _fit(data, tmp_path / "longer", epochs=3).state_dict()
    assert not all(torch.equal(a[k], longer[k]) for k in a)


def test_wandb_logs_offline_without_an_api_key(tmp_path):
    data = make_aligned(tmp_path / "data", n_train=2, n_val=1, size=128)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), ZOO_CACHE=str(tmp_path / "cache"), NETRC=str(tmp_path / "no-netrc"))
    wandb_dir = tmp_path / "wb"
    result = subprocess.run(
        [sys.executable, "-m", "zoo.fit", "--model", "pix2pix", f"--data.root={data}", *TINY,
         f"--trainer.default_root_dir={tmp_path / 'run'}", "--trainer.max_epochs=1",
         "--trainer.logger=WandbLogger", f"--trainer.logger.init_args.save_dir={wandb_dir}",
         "--trainer.logger.init_args.project=zoo-test", "--trainer.log_every_n_steps=1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list(wandb_dir.rglob("*"))[:20]
    records = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
    for key in (b"val/L1", b"val/PSNR", b"train/loss_G_L1"):
        assert key in records
    assert list((runs[0] / "files" / "media" / "images").rglob("*.png"))  # the A | G(A) | B grids


def test_predict_cli_writes_one_png_per_input(tmp_path, capsys):
    from zoo.predict import main as predict_main

    model = Pix2Pix(netG="unet_128", ngf=8, ndf=8)
    folder = model.save_pretrained(tmp_path / "w")
    images = tmp_path / "in"
    images.mkdir()
    for i, size in enumerate([(50, 70), (130, 20)]):
        Image.fromarray(np.full((size[1], size[0], 3), 40 * i, np.uint8)).save(images / f"img{i}.jpg")
    (images / "notes.txt").write_text("not an image")
    written = predict_main([str(folder), str(images), "--out", str(tmp_path / "out")])
    assert sorted(p.name for p in written) == ["img0.png", "img1.png"]
    assert Image.open(tmp_path / "out" / "img1.png").size == (130, 20)
    with pytest.raises(SystemExit) as exit_info:
        predict_main(["pix2pix-facadez", str(images), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "pix2pix-facades" in capsys.readouterr().err


def test_predict_cli_samples_and_restyles_with_a_multimodal_model(tmp_path, capsys):
    from zoo.predict import main as predict_main

    folder = zoo.create("munit", dim=8, mlp_dim=16, dis_dim=8, n_res=1).save_pretrained(tmp_path / "w")
    images = tmp_path / "in"
    images.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(images / "x.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "style.png")
    out = tmp_path / "out"
    written = predict_main([str(folder), str(images), "--out", str(out), "--n", "3", "--seed", "1"])
    assert sorted(p.name for p in written) == ["x_s00.png", "x_s01.png", "x_s02.png"]
    samples = [np.asarray(Image.open(p)) for p in sorted(written)]
    assert samples[0].shape == (30, 45, 3) and not np.array_equal(samples[0], samples[1])
    again = predict_main([str(folder), str(images), "--out", str(tmp_path / "again"), "--n", "3", "--seed", "1"])
    assert all(np.array_equal(np.asarray(Image.open(a)), b) for a, b in zip(sorted(again), samples))
    styled = predict_main([str(folder), str(images), "--out", str(tmp_path / "s"), "--style", str(tmp_path / "style.png"),
                           "--direction", "b2a"])
    assert [p.name for p in styled] == ["x.png"]
    pix = Pix2Pix(netG="unet_128", ngf=8, ndf=8).save_pretrained(tmp_path / "p")
    with pytest.raises(SystemExit) as exit_info:
        predict_main([str(pix), str(images), "--out", str(out), "--n", "2"])
    assert exit_info.value.code == 2 and "multimodal" in capsys.readouterr().err


def test_user_callbacks_are_kept_and_own_checkpointing_wins(tmp_path):
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    data = make_aligned(tmp_path / "data", n_train=1, n_val=1, size=128)
    common = ["--model", "pix2pix", f"--data.root={data}", *TINY, "--trainer.max_epochs=1", "--baseline=false",
              f"--pretrained_dir={tmp_path / 'w'}"]
    cli = fit_main([*common, f"--trainer.default_root_dir={tmp_path / 'a'}",
                    "--trainer.callbacks+=LearningRateMonitor"])
    kinds = [type(c) for c in cli.trainer.callbacks]
    assert LearningRateMonitor in kinds and kinds.count(ZooCheckpoint) == 2
    cli = fit_main([*common, f"--trainer.default_root_dir={tmp_path / 'b'}",
                    "--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.save_last=true"])
    checkpoints = [c for c in cli.trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert len(checkpoints) == 1 and not isinstance(checkpoints[0], ZooCheckpoint)


def test_predict_keeps_subfolders_and_refuses_clashes(tmp_path, capsys):
    from zoo.predict import main as predict_main

    folder = Pix2Pix(netG="unet_128", ngf=8, ndf=8).save_pretrained(tmp_path / "w")
    images = tmp_path / "in"
    (images / "sub").mkdir(parents=True)
    for name in ("x.png", "sub/x.png"):
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(images / name)
    written = predict_main([str(folder), str(images), "--out", str(tmp_path / "out")])
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in written) == ["sub/x.png", "x.png"]
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(images / "x.jpg")
    with pytest.raises(SystemExit):
        predict_main([str(folder), str(images), "--out", str(tmp_path / "out2")])
    assert "would both be written as x.png" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()  # refused before writing anything
    with pytest.raises(SystemExit):
        predict_main([str(folder), str(images / "sub"), "--out", str(tmp_path / "o"), "--device", "nonsense"])
    assert "not a device name" in capsys.readouterr().err


def test_data_mistakes_end_with_the_message_not_a_traceback(tmp_path, capsys):
    for root, expected in ((tmp_path / "missing", "does not exist"), (tmp_path, "cannot tell the layout")):
        with pytest.raises(SystemExit) as exit_info:
            fit_main(["--model", "pix2pix", f"--data.root={root}", f"--trainer.default_root_dir={tmp_path / 'r'}"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "error: " in err and expected in err and "Traceback" not in err
    # a corrupt training image surfaces the same way, naming the file (here from a DataLoader worker)
    data = make_aligned(tmp_path / "data", n_train=2, n_val=1, size=128)
    broken = data / "train" / "001.png"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(SystemExit) as exit_info:
        fit_main(["--model", "pix2pix", f"--data.root={data}", *TINY, "--data.num_workers=1", "--baseline=false",
                  f"--trainer.default_root_dir={tmp_path / 'r2'}", "--trainer.max_epochs=1"])
    assert exit_info.value.code == 2 and "001.png" in capsys.readouterr().err


def test_two_process_cpu_ddp_trains_each_rank_on_its_share(tmp_path):
    """`--trainer.strategy ddp` works for GAN steps (zoo switches on find_unused_parameters) and the
    epoch-seeded sampler splits the 5 training pairs over 2 ranks: 3 iterations each (one padded)."""
    data = make_aligned(tmp_path / "data", n_train=5, n_val=2, size=128)
    root = tmp_path / "run"
    result = run_cli(["--model", "pix2pix", f"--data.root={data}", *TINY, f"--trainer.default_root_dir={root}",
                      "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
                      "--trainer.max_epochs=1"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "find_unused_parameters_true" in result.stderr
    state = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["global_step"] == 3 * 2  # ceil(5 / 2) iterations x (D + G) steps


@pytest.mark.parametrize("flags, fused, foreach", [
    ([], True, False),                         # auto: the fused kernel, on CPU as on CUDA
    (["--model.adam", "foreach"], False, True),
    (["--adam=for-loop"], False, False),
])
def test_adam_implementation_reaches_the_optimizers(tmp_path, flags, fused, foreach):
    data = make_aligned(tmp_path / "data", n_train=2, n_val=1, size=128)
    cli = fit_main(["--model", "pix2pix", f"--data.root={data}", *TINY, "--baseline=false",
                    f"--trainer.default_root_dir={tmp_path / 'r'}", "--trainer.max_epochs=1",
                    "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1", *flags])
    optimizers = cli.trainer.optimizers
    assert len(optimizers) == 2  # G and D
    for opt in optimizers:
        assert bool(opt.defaults["fused"]) is fused and bool(opt.defaults["foreach"]) is foreach
        assert opt.state  # it stepped
    assert "adam" not in cli.model.hparams  # not a hyperparameter: checkpoints and folders do not carry it


def test_unknown_adam_implementation_is_refused_before_training(tmp_path, capsys):
    data = make_aligned(tmp_path / "data", n_train=2, n_val=1, size=128)
    with pytest.raises(SystemExit) as exit_info:
        fit_main(["--model", "pix2pix", f"--data.root={data}", *TINY, f"--trainer.default_root_dir={tmp_path / 'r'}",
                  "--adam", "sgd"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--adam 'sgd'" in err and "fused, foreach, for-loop" in err
    assert not (tmp_path / "r" / "checkpoints").exists()
