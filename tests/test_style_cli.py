"""The style methods from the command line: every `zoo.fit --model johnson|cin|adain` demo on the built-in
content/style sets (random VGG, said everywhere), exact resumption on user folders, runs on user data that
refuse random VGG weights, and `zoo.predict` for gatys, inversion and trained style models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.fit import main as fit_main
from zoo.nn.vgg import VGGFeatures, vgg_layer_names
from zoo.predict import main as predict_main

from _helpers import assert_same_state

#: per method: flags that make its demo tiny (widths, sizes), on top of the demo config.
TINY = {
    "johnson": ["--model.init_args.width=4", "--data.content_size=32", "--data.crop_size=32", "--data.style_size=32"],
    "cin": ["--model.init_args.width=4", "--data.content_size=32", "--data.crop_size=32", "--data.style_size=32"],
    "adain": ["--data.content_size=32", "--data.crop_size=32", "--data.style_size=32", "--data.style_crop_size=32"],
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """One $ZOO_CACHE for the module: the built-in sets are generated once."""
    return tmp_path_factory.mktemp("zoocache")


@pytest.fixture
def no_vgg(tmp_path, monkeypatch, shared_cache):
    monkeypatch.setenv("ZOO_CACHE", str(shared_cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("ZOO_VGG_WEIGHTS", "ZOO_VGG16_WEIGHTS", "ZOO_VGG19_WEIGHTS", "ZOO_VGG_CONV_WEIGHTS",
                "ZOO_VGG_NORMALISED_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)


def _images(folder, n: int, size: int = 40, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")


@pytest.mark.parametrize("method", ["johnson", "cin", "adain"])
def test_builtin_demo_trains_and_says_its_vgg_is_random(method, tmp_path, no_vgg, caplog):
    root = tmp_path / "run"
    cli = fit_main(["--model", method, *TINY[method], "--trainer.max_steps=2", "--trainer.limit_val_batches=1",
                    f"--trainer.default_root_dir={root}"])
    assert cli.datamodule.dataset_name == "zoo-builtin-photos+zoo-builtin-patterns"
    assert "RANDOM VGG WEIGHTS" in caplog.text
    assert torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["zoo"]["warnings"]
    card = (root / "pretrained" / "README.md").read_text()
    assert "> **WARNING:** RANDOM VGG WEIGHTS" in card
    model = zoo.load(root / "pretrained")
    assert model.method == method and model.random_features
    style = None if method == "johnson" else (0 if method == "cin" else torch.rand(1, 3, 24, 24))
    out = model.stylize(torch.rand(1, 3, 21, 27), style)
    assert out.shape == (1, 3, 21, 27) and 0 <= out.min() and out.max() <= 1


def test_runs_on_user_data_never_fall_back_to_random_vgg(tmp_path, no_vgg, capsys):
    _images(tmp_path / "content", 3)
    _images(tmp_path / "style", 1, seed=1)
    with pytest.raises(SystemExit) as code:
        fit_main(["--model", "johnson", f"--data.root={tmp_path / 'content'}",
                  f"--data.style={tmp_path / 'style' / '00.png'}", f"--trainer.default_root_dir={tmp_path / 'run'}"])
    assert code.value.code == 2
    err = capsys.readouterr().err
    assert "vgg16-397923af.pth" in err and "https://download.pytorch.org/models/vgg16-397923af.pth" in err


def _fit_johnson(content, style, root, epochs: int, resume: bool = False):
    args = ["--model", "johnson", f"--data.root={content}", f"--data.style={style}", "--model.init_args.width=4",
            "--model.init_args.vgg_weights=null", "--data.content_size=24", "--data.crop_size=16",
            "--data.crop=random", "--data.style_size=24", "--data.batch_size=2", "--data.num_workers=0",
            f"--trainer.max_epochs={epochs}", f"--trainer.default_root_dir={root}", "--trainer.deterministic=true",
            "--baseline=false"]
    return fit_main([*args, "--ckpt_path=last"] if resume else args).model


def test_johnson_resumes_exactly_on_user_folders(tmp_path, no_vgg):
    _images(tmp_path / "content", 5)
    _images(tmp_path / "style", 1, seed=1)
    content, style = tmp_path / "content", tmp_path / "style" / "00.png"
    straight = _fit_johnson(content, style, tmp_path / "straight", epochs=2)
    _fit_johnson(content, style, tmp_path / "resumed", epochs=1)
    resumed = _fit_johnson(content, style, tmp_path / "resumed", epochs=2, resume=True)
    assert_same_state(straight, resumed)
    assert straight.random_features  # vgg_weights=null: asked for, and still recorded


def _vgg_files(folder) -> None:
    """Random-weight stand-ins for vgg_conv.pth (Gatys' keys) and torchvision's vgg19 file."""
    folder.mkdir(parents=True, exist_ok=True)
    features = VGGFeatures("vgg19", ("pool5",), None).features.state_dict()
    names = vgg_layer_names("vgg19")
    torch.save({f"{names[int(k.split('.')[0])]}.{k.split('.')[1]}": v for k, v in features.items()},
               folder / "vgg_conv.pth")
    torch.save({f"features.{k}": v for k, v in features.items()}, folder / "vgg19-dcbb9e9d.pth")


def test_predict_runs_gatys_and_inversion_with_the_vgg_files_found_offline(tmp_path, no_vgg, monkeypatch, capsys):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(tmp_path / "s.png")
    with pytest.raises(SystemExit) as code:  # no VGG file: exactly what to download
        predict_main(["gatys", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"), "--out", str(tmp_path)])
    assert code.value.code == 2
    err = capsys.readouterr().err
    assert "vgg_conv.pth" in err and "bethgelab.org" in err
    _vgg_files(tmp_path / "vgg")
    monkeypatch.setenv("ZOO_VGG_WEIGHTS", str(tmp_path / "vgg"))
    [out] = predict_main(["gatys", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.png"), "--out",
                          str(tmp_path / "g"), "--set", "steps=2", "--set", "image_size=32", "--set", "progress=false"])
    with Image.open(out) as image:
        assert image.size == (28, 20) and "zoo-warning" not in image.text  # real lookup, no random weights
    [out] = predict_main(["inversion-relu2_1", str(tmp_path / "c.png"), "--out", str(tmp_path / "i"),
                          "--set", "steps=2", "--set", "image_size=32", "--set", "progress=false"])
    with Image.open(out) as image:  # reconstructed at the working size: shorter side image_size
        assert image.size == (round(28 * 32 / 20), 32)


def test_predict_a_trained_style_model_with_alpha_and_no_style(tmp_path, no_vgg):
    from zoo.methods.johnson import Johnson

    folder = Johnson(width=4, vgg_weights=None).save_pretrained(tmp_path / "johnson")
    Image.new("RGB", (19, 13), (10, 200, 30)).save(tmp_path / "c.png")
    [out] = predict_main([str(folder), str(tmp_path / "c.png"), "--alpha", "0", "--out", str(tmp_path / "o")])
    with Image.open(out) as image:  # alpha 0: the content itself
        assert image.size == (19, 13) and np.abs(np.asarray(image).astype(int) - [10, 200, 30]).max() <= 1
    with pytest.raises(SystemExit):
        predict_main([str(folder), str(tmp_path / "c.png"), "--n", "2", "--out", str(tmp_path / "o")])
