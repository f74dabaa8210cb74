"""The pieces every style method shares: the `stylize` verb (StyleMixin), random-feature warnings that
travel with models, checkpoints, cards and images, the random-VGG fallback of the built-in demos, the
`zoo.fit` recipe data defaults, and `zoo.predict`'s style options."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import zoo
from zoo.errors import WeightsNotFoundError, ZooError
from zoo.module import ZooModule
from zoo.nn.vgg import DEFAULT_OR_RANDOM, VGGFeatures
from zoo.registry import register
from zoo.tasks import StyleMixin


@register(key="toystyle")
class ToyStyle(StyleMixin, ZooModule):
    """out = (1 - alpha) * content + alpha * (mean colour of the (weighted) styles) + bias: enough to
    see what the mixin hands over and gives back."""

    task = "style"
    default_io = {"range": [0.0, 1.0], "channels": 3, "size_multiple": 4, "directions": ["a2b"], "eval_mode": True}
    inference_modules = ("net",)

    def __init__(self, bias: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.net.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.net.bias.fill_(bias)
        self.seen: list[tuple[int, ...]] = []

    def stylize_batch(self, content, style, *, alpha=1.0, weights=None, **options):
        self.seen.append(tuple(content.shape))
        target = content if style is None else sum(
            w * s.mean((2, 3), keepdim=True) for w, s in zip(weights or [1 / len(style)] * len(style), style))
        with torch.no_grad():
            return self.net((1 - alpha) * content + alpha * target)


def test_stylize_pads_to_the_multiple_crops_back_and_keeps_the_input_kind():
    model = ToyStyle()
    content = Image.fromarray(np.random.default_rng(0).integers(0, 256, (13, 10, 3), dtype=np.uint8))
    red = Image.new("RGB", (7, 5), (255, 0, 0))
    out = model.stylize(content, red)
    assert isinstance(out, Image.Image) and out.size == content.size
    assert model.seen[-1] == (1, 3, 16, 12)  # padded to multiples of 4
    assert np.array_equal(np.asarray(out)[0, 0], [255, 0, 0])
    tensor = torch.rand(2, 3, 9, 9)
    same = model.stylize(tensor, alpha=0.0)  # no style: the content itself
    assert torch.allclose(same, tensor, atol=1e-6) and same.shape == tensor.shape
    blend = model.stylize(tensor, [red, Image.new("RGB", (3, 3), (0, 0, 255))], weights=[0.25, 0.75])
    assert torch.allclose(blend[0, :, 0, 0], torch.tensor([0.25, 0.0, 0.75]), atol=1e-6)


def test_stylize_clamps_and_rejects_bad_style_and_alpha():
    model = ToyStyle(bias=5.0)
    assert model.stylize(torch.rand(1, 3, 8, 8)).max() == 1.0  # clamped to [0, 1]
    with pytest.raises(ZooError, match="alpha must be in"):
        model.stylize(torch.rand(1, 3, 8, 8), alpha=1.5)
    with pytest.raises(ZooError, match="empty list"):
        model.stylize(torch.rand(1, 3, 8, 8), [])
    with pytest.raises(ZooError, match="2 style images for 1 content"):
        model.stylize(torch.rand(1, 3, 8, 8), torch.rand(2, 3, 8, 8))


def test_a_batch_of_styles_pairs_with_a_batch_of_contents():
    model = ToyStyle()
    styles = torch.stack([torch.full((3, 5, 5), 0.2), torch.full((3, 5, 5), 0.9)])
    out = model.stylize(torch.rand(2, 3, 6, 6), styles)
    assert out.shape == (2, 3, 6, 6)
    assert torch.allclose(out[0], torch.full_like(out[0], 0.2)) and torch.allclose(out[1], torch.full_like(out[1], 0.9))


def test_random_features_warning_travels_with_card_checkpoint_and_folder(tmp_path, caplog):
    model = ToyStyle()
    assert not model.random_features
    with caplog.at_level(logging.WARNING):
        model.note_random_features("RANDOM VGG WEIGHTS: test")
        model.note_random_features("RANDOM VGG WEIGHTS: test")  # recorded once
    assert model.random_features and model.card["warnings"] == ["RANDOM VGG WEIGHTS: test"]
    assert "RANDOM VGG WEIGHTS" in caplog.text
    checkpoint: dict = {}
    model.on_save_checkpoint(checkpoint)
    assert checkpoint["zoo"]["warnings"] == ["RANDOM VGG WEIGHTS: test"]
    resumed = ToyStyle()
    resumed.on_load_checkpoint(checkpoint)
    assert resumed.random_features
    folder = model.save_pretrained(tmp_path / "toy")
    assert "> **WARNING:** RANDOM VGG WEIGHTS: test" in (folder / "README.md").read_text()
    assert json.loads((folder / "config.json").read_text())["card"]["warnings"] == ["RANDOM VGG WEIGHTS: test"]
    loaded = zoo.load(folder)
    assert loaded.random_features
    with caplog.at_level(logging.WARNING):
        caplog.clear()
        loaded.stylize(torch.rand(1, 3, 4, 4))
    assert "random feature weights" in caplog.text  # every output says so in the log


@pytest.fixture
def no_vgg_files(tmp_path, monkeypatch):
    """No VGG weight file anywhere zoo looks."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo"))
    for var in ("ZOO_VGG_WEIGHTS", "ZOO_VGG16_WEIGHTS", "ZOO_VGG19_WEIGHTS", "ZOO_VGG_CONV_WEIGHTS",
                "ZOO_VGG_NORMALISED_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("variant,arch,file", [("torchvision", "vgg16", "vgg16-397923af.pth"),
                                                ("gatys", "vgg19", "vgg_conv.pth"),
                                                ("adain", "vgg19", "vgg_normalised.pth")])
def test_missing_vgg_weights_name_the_file_and_only_the_demo_falls_back(no_vgg_files, caplog, variant, arch, file):
    with pytest.raises(WeightsNotFoundError, match=file) as error:
        VGGFeatures(arch, ("relu1_1",), "default", variant=variant)
    assert "http" in str(error.value)  # where it is published
    with caplog.at_level(logging.WARNING):
        vgg = VGGFeatures(arch, ("relu1_1",), DEFAULT_OR_RANDOM, variant=variant)
    assert vgg.random_weights
    assert "RANDOM VGG WEIGHTS" in caplog.text and file in caplog.text


def test_default_or_random_uses_the_file_when_there(no_vgg_files, tmp_path, monkeypatch):
    torch.manual_seed(0)
    reference = VGGFeatures("vgg16", ("pool5",), None)
    state = {f"features.{k}": v for k, v in reference.features.state_dict().items()}
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    monkeypatch.setenv("ZOO_VGG_WEIGHTS", str(path))
    torch.manual_seed(1)
    found = VGGFeatures("vgg16", ("relu1_1",), DEFAULT_OR_RANDOM)
    assert not found.random_weights
    assert torch.equal(found.features[0].weight, reference.features[0].weight)


def test_predict_passes_style_options_and_marks_random_outputs(tmp_path):
    from zoo.predict import _options, _style_value, predict_files

    Image.new("RGB", (6, 6), (0, 255, 0)).save(tmp_path / "style.png")
    Image.new("RGB", (10, 7), (9, 9, 9)).save(tmp_path / "content.png")
    assert _style_value(str(tmp_path / "style.png")).size == (6, 6)
    assert _style_value("3") == 3 and _style_value("0.5,0.5") == [0.5, 0.5]
    assert _style_value("03-galaxy") == "03-galaxy"  # a cin style name
    with pytest.raises(ZooError, match="nope.png is not a file"):
        ToyStyle().stylize(torch.rand(1, 3, 4, 4), _style_value("nope.png"))
    assert _options(["steps=20", "init=content", "sizes=[64, 128]"]) == {
        "steps": 20, "init": "content", "sizes": [64, 128]}
    with pytest.raises(ZooError, match="KEY=VALUE"):
        _options(["steps"])
    model = ToyStyle()
    model.note_random_features("RANDOM VGG WEIGHTS: predict test")
    [out] = predict_files(model, [str(tmp_path / "content.png")], tmp_path / "out", style=str(tmp_path / "style.png"),
                          alpha=0.5)
    with Image.open(out) as image:
        assert image.size == (10, 7)
        assert image.text["zoo-warning"] == "RANDOM VGG WEIGHTS: predict test" and image.text["zoo-model"] == "toystyle"
        assert abs(int(np.asarray(image)[0, 0, 1]) - 132) <= 1  # (9 + 255) / 2
    with pytest.raises(ZooError, match="--n and --seed need a multimodal"):
        predict_files(model, [str(tmp_path / "content.png")], tmp_path / "out", n=2)


def test_fit_applies_recipe_data_defaults_before_demo_config_and_flags(monkeypatch):
    from zoo.fit import prepare_argv
    from zoo.methods.pix2pix import Pix2Pix

    monkeypatch.setattr(Pix2Pix, "data_defaults", {"batch_size": 3})
    argv, method = prepare_argv(["--model", "pix2pix", "--data.batch_size=5"])
    assert method == "pix2pix"
    recipe, config, user = (argv.index("--data.batch_size=3"), argv.index("--config"),
                            argv.index("--data.batch_size=5"))
    assert recipe < config < user  # the demo config and the user's flags win


def test_fit_refuses_weight_free_methods_with_the_predict_command():
    from zoo.fit import prepare_argv

    with pytest.raises(ZooError, match="python -m zoo.predict toystyle INPUT_IMAGES --style STYLE_IMAGE --out DIR") as error:
        ToyStyle.weight_free = True
        try:
            prepare_argv(["--model", "toystyle"])
        finally:
            ToyStyle.weight_free = False
    assert "nothing to train" in str(error.value)
