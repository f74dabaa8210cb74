"""Super-resolution and colorization from the command line: the `zoo.fit` demos on the built-in whole photos
(tiny widths), stage 2 of SRGAN from a stage-1 checkpoint, the errors of a stage 2 without its inputs, and
`zoo.predict` with the trained models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.fit import main as fit_main
from zoo.predict import main as predict_main

COMMON = ["--trainer.max_steps=2", "--trainer.limit_val_batches=1", "--data.num_workers=0",
          "--data.crops_per_image=1", "--data.batch_size=3"]  # 5 photos: 2 steps = 1 epoch, then validation
TINY = {
    "srgan": ["--model.init_args.channels=8", "--model.init_args.num_blocks=1", "--data.crop_size=32"],
    "colorization": ["--model.init_args.width=0.0625", "--data.crop_size=32"],
}


@pytest.fixture(autouse=True)
def offline(tmp_path_factory, monkeypatch):
    """One $ZOO_CACHE for the module (the built-in photos are written once) and no VGG files anywhere."""
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path_factory.getbasetemp() / "zoocache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch"))
    for var in ("ZOO_VGG_WEIGHTS", "ZOO_VGG16_WEIGHTS", "ZOO_VGG19_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)


def _photos(folder, n: int, size: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{i:02d}.png")


def test_srgan_demo_trains_validates_on_held_out_photos_and_predicts(tmp_path, capsys):
    root = tmp_path / "run"
    cli = fit_main(["--model", "srgan", *TINY["srgan"], *COMMON, f"--trainer.default_root_dir={root}"])
    assert cli.datamodule.dataset_name == "zoo-builtin-hr-photos"
    metrics = cli.validation_record.metrics
    assert {"val/PSNR_Y", "val/SSIM_Y", "val/PSNR_Y_bicubic", "val/SSIM_Y_bicubic"} <= set(metrics)
    assert 20 < metrics["val/PSNR_Y_bicubic"] < 40  # the held-out chelsea photo, x4 bicubic
    assert (root / "checkpoints" / "last.ckpt").is_file()
    model = zoo.load(root / "pretrained")
    assert model.method == "srgan" and model.io["scale"] == 4
    out = model.upscale(Image.new("RGB", (13, 7), (200, 30, 60)))
    assert out.size == (52, 28)

    Image.fromarray(np.full((9, 11, 3), 128, np.uint8)).save(tmp_path / "small.png")
    predict_main([str(root / "pretrained"), str(tmp_path / "small.png"), "--out", str(tmp_path / "pred")])
    assert Image.open(tmp_path / "pred" / "small.png").size == (44, 36)

    # stage 2 on a user folder of 96-px crops: G starts from the stage-1 checkpoint, D judges 96x96
    _photos(tmp_path / "data" / "train", 2, 128)
    _photos(tmp_path / "data" / "val", 1, 64, seed=1)
    ckpt = root / "checkpoints" / "last.ckpt"
    stage1 = torch.load(ckpt, weights_only=True)["state_dict"]
    cli2 = fit_main(["--model", "srgan", "--model.init_args.stage=srgan", f"--model.init_args.generator_weights={ckpt}",
                     "--model.init_args.vgg_weights=null", "--model.init_args.d_channels=4", *TINY["srgan"],
                     f"--data.root={tmp_path / 'data'}", "--data.crop_size=96", *COMMON,
                     "--trainer.max_steps=0", f"--trainer.default_root_dir={tmp_path / 'run2'}"])
    g = cli2.model.G.state_dict()
    assert all(torch.equal(g[k], stage1[f"G.{k}"]) for k in g)
    assert cli2.model.D is not None


def test_srgan_stage2_without_its_inputs_says_what_to_pass(tmp_path, capsys):
    _photos(tmp_path / "data" / "train", 2, 128)
    base = ["--model", "srgan", "--model.init_args.stage=srgan", *TINY["srgan"], f"--data.root={tmp_path / 'data'}",
            "--data.crop_size=96", *COMMON, f"--trainer.default_root_dir={tmp_path / 'run'}"]
    with pytest.raises(SystemExit) as code:
        fit_main([*base, "--model.init_args.vgg_weights=null"])
    assert code.value.code == 2
    assert "generator_weights" in capsys.readouterr().err
    # user data never falls back to a random VGG-19: the missing file is named
    stage1 = zoo.create("srgan", channels=8, num_blocks=1)
    torch.save({"state_dict": {f"G.{k}": v for k, v in stage1.G.state_dict().items()}}, tmp_path / "g.ckpt")
    with pytest.raises(SystemExit) as code:
        fit_main([*base, f"--model.init_args.generator_weights={tmp_path / 'g.ckpt'}"])
    assert code.value.code == 2
    assert "vgg19" in capsys.readouterr().err


def test_colorization_demo_trains_on_a_prior_validates_and_predicts(tmp_path):
    root = tmp_path / "run"
    cli = fit_main(["--model", "colorization", *TINY["colorization"], *COMMON, f"--trainer.default_root_dir={root}"])
    assert cli.datamodule.dataset_name == "zoo-builtin-hr-photos"
    metrics = cli.validation_record.metrics
    assert {"val/ab_error", "val/ab_error_gray", "val/colourfulness", "val/colourfulness_gray",
            "val/colourfulness_real"} <= set(metrics)
    assert metrics["val/ab_error_gray"] > 5 and metrics["val/colourfulness_real"] > 10  # chelsea is colourful
    prior = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["colorization_prior"]
    assert prior.shape == (313,) and abs(float(prior.sum()) - 1) < 1e-6
    model = zoo.load(root / "pretrained")
    gray = Image.new("L", (30, 21), 120)
    out = model.colorize(gray)
    assert out.mode == "RGB" and out.size == (30, 21)

    gray.save(tmp_path / "g.png")
    predict_main([str(root / "pretrained"), str(tmp_path / "g.png"), "--out", str(tmp_path / "pred"),
                  "--set", "temperature=1"])
    assert Image.open(tmp_path / "pred" / "g.png").size == (30, 21)
